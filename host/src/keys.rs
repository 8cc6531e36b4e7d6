//! ed25519 key files, shared by the audit trail's checkpoint key and plugin publishers'
//! keys: a secret key file holds the 32-byte seed as 64 hex digits (owner-only), a public
//! key is written `ed25519:` and 64 hex digits, inline or in a file.
//!
//! Also compiled into `host/build.rs` (which signs the bundled plugins), so it uses no
//! other module of the crate.

use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};

/// How a public key is written everywhere (config, audit, terminal): `ed25519:<hex>`.
pub fn key_id(key: &VerifyingKey) -> String {
    format!("ed25519:{}", hex::encode(key.as_bytes()))
}

/// Reads the secret key at `path`; `what` names it in errors ("the audit signing key").
pub fn load_secret(path: &Path, what: &str) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    parse_secret(&text).map_err(|e| format!("{what} {} is not usable: {e}", path.display()))
}

/// Loads the secret key at `path`, or creates one there when there is none. Two processes
/// creating it at once end up with the same key (the loser reads the winner's).
pub fn load_or_create_secret(path: &Path, what: &str) -> Result<SigningKey, String> {
    match create_secret(path, what) {
        Ok(key) => Ok(key),
        Err(Created::Exists) => load_secret(path, what),
        Err(Created::Failed(e)) => Err(e),
    }
}

/// Why [`create_secret`] did not create a key.
#[derive(Debug)]
pub enum Created {
    /// A file is already there; it is left alone.
    Exists,
    Failed(String),
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Created::Exists => f.write_str("the file exists"),
            Created::Failed(e) => f.write_str(e),
        }
    }
}

/// Creates a new secret key at `path`, readable by its owner only, synced; never
/// overwrites an existing file.
pub fn create_secret(path: &Path, what: &str) -> Result<SigningKey, Created> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| Created::Failed(format!("no randomness for {what}: {e}")))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Created::Failed(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(path).and_then(|mut file| {
        file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(SigningKey::from_bytes(&seed)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Created::Exists),
        Err(e) => Err(Created::Failed(format!(
            "cannot create {what} {}: {e}",
            path.display()
        ))),
    }
}

fn parse_secret(text: &str) -> Result<SigningKey, String> {
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("it must hold 64 hex digits (an ed25519 seed)")?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A public key given as 64 hex digits (optionally `ed25519:`-prefixed), or a file
/// holding them.
pub fn parse_public_key(given: &str) -> Result<VerifyingKey, String> {
    let text = given.trim();
    let text = text.strip_prefix("ed25519:").unwrap_or(text);
    let from_file;
    let text = if text.len() != 64 && Path::new(text).is_file() {
        from_file =
            std::fs::read_to_string(text).map_err(|e| format!("cannot read {text}: {e}"))?;
        from_file.trim().trim_start_matches("ed25519:").to_owned()
    } else {
        text.to_owned()
    };
    let bytes: [u8; 32] = hex::decode(&text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!(
                "`{given}` is not 64 hex digits (an ed25519 public key) nor a file holding them"
            )
        })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("`{given}` is not an ed25519 public key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_owner_only_never_overwritten_and_reloads_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k/publisher.key");
        let key = create_secret(&path, "the key").expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            create_secret(&path, "the key"),
            Err(Created::Exists)
        ));
        let again = load_or_create_secret(&path, "the key").expect("loaded");
        assert_eq!(key.to_bytes(), again.to_bytes());
        let id = key_id(&key.verifying_key());
        assert_eq!(parse_public_key(&id).expect("parses"), key.verifying_key());
        std::fs::write(dir.path().join("pub"), format!("{id}\n")).expect("write");
        let from_file = dir.path().join("pub").display().to_string();
        assert_eq!(
            parse_public_key(&from_file).expect("file"),
            key.verifying_key()
        );
        let bad = parse_public_key("ed25519:1234").expect_err("short");
        assert!(bad.contains("64 hex digits"), "{bad}");
        std::fs::write(&path, "not a key").expect("write");
        let broken = load_secret(&path, "the key").expect_err("broken");
        assert!(broken.contains("64 hex digits"), "{broken}");
    }
}
