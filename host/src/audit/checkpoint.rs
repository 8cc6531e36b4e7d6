//! Signed checkpoints of the audit trail: "the first N records have Merkle root R", at a
//! time, signed with ed25519 (RFC 8032, `ed25519-dalek`). Like a Certificate Transparency
//! signed tree head, a checkpoint commits to every record before it, so an auditor holding
//! the public key can check a whole trail, or one record with an inclusion proof, and a
//! copy kept elsewhere (the `[audit] checkpoints` file) still shows a tail cut off after
//! the last checkpoint in the trail itself.
//!
//! The signed message is text, one field per line, so any ed25519 tool can check it:
//!
//! ```text
//! portcullis-audit-checkpoint/v1
//! trail <sha256 of record 1>
//! size <N>
//! root <hex Merkle root of records 1..N>
//! time <RFC 3339, as in the record's "at">
//! ```
//!
//! Keys: a 32-byte seed, hex, in a file only its owner may read; generated on first use
//! when missing, or supplied by the operator. The public key is printed by
//! `portcullis audit key`.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

/// One checkpoint, as stored in the trail (with `seq`/`prev` around it) and in the
/// second location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The trail it belongs to: the sha256 of record 1's line.
    pub trail: String,
    /// How many records (seq 1 to this) the root covers.
    pub tree_size: u64,
    /// Hex Merkle root of those records.
    pub root: String,
    /// RFC 3339 time of signing; also the record's `at`.
    pub at: String,
    /// Hex ed25519 public key that signed it.
    pub key: String,
    /// Hex ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
    /// Why it was written: `every-n`, `interval`, `run-end`, `shutdown`, `segment`.
    pub reason: String,
}

impl Checkpoint {
    /// The bytes that are signed.
    pub fn message(trail: &str, tree_size: u64, root: &str, at: &str) -> String {
        format!(
            "portcullis-audit-checkpoint/v1\ntrail {trail}\nsize {tree_size}\nroot {root}\ntime {at}\n"
        )
    }

    /// Checks the signature against the key the checkpoint names, and that key against
    /// `expected` when the auditor supplied one. The error says which failed.
    pub fn check(&self, expected: Option<&VerifyingKey>) -> Result<(), String> {
        let key = parse_public_key(&self.key)
            .map_err(|e| format!("its key is not an ed25519 public key: {e}"))?;
        if let Some(expected) = expected
            && expected != &key
        {
            return Err(format!(
                "signed by key {} where {} was expected: forged or re-signed",
                self.key,
                hex::encode(expected.as_bytes())
            ));
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("its signature is not 64 hex-encoded bytes")?;
        let message = Checkpoint::message(&self.trail, self.tree_size, &self.root, &self.at);
        key.verify(message.as_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| {
                "its signature does not match its contents: the checkpoint was forged or changed"
                    .to_owned()
            })
    }
}

/// Signs checkpoints.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// Loads the key at `path`, or creates one there (readable by its owner only) when
    /// there is none.
    pub fn load_or_create(path: &Path) -> Result<Signer, String> {
        crate::keys::load_or_create_secret(path, "the audit signing key")
            .map(|key| Signer { key })
            .map_err(|e| format!("{e}; restore it, or point [audit] signing_key at the right file"))
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    pub fn sign(
        &self,
        trail: &str,
        tree_size: u64,
        root: &str,
        at: &str,
        reason: &str,
    ) -> Checkpoint {
        let message = Checkpoint::message(trail, tree_size, root, at);
        Checkpoint {
            trail: trail.to_owned(),
            tree_size,
            root: root.to_owned(),
            at: at.to_owned(),
            key: self.public_hex(),
            signature: hex::encode(self.key.sign(message.as_bytes()).to_bytes()),
            reason: reason.to_owned(),
        }
    }
}

/// Where a trail's signing key lives when `[audit] signing_key` is not set: beside it.
pub fn default_key_path(trail: &Path) -> PathBuf {
    let mut name = trail
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".key");
    trail.with_file_name(name)
}

pub use crate::keys::parse_public_key;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_owner_only_reused_and_its_signatures_check() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys/audit.key");
        let signer = Signer::load_or_create(&path).expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Signer::load_or_create(&path).expect("loaded");
        assert_eq!(signer.public_hex(), again.public_hex());
        let public = parse_public_key(&signer.public_hex()).expect("pub");
        let checkpoint = signer.sign("t", 3, "ab", "2026-12-07T00:00:00Z", "run-end");
        checkpoint.check(Some(&public)).expect("valid");
        checkpoint
            .check(None)
            .expect("valid without an expected key");

        let mut changed = checkpoint.clone();
        changed.tree_size = 2;
        assert!(
            changed
                .check(None)
                .expect_err("changed")
                .contains("forged or changed")
        );
        let other = Signer::load_or_create(&dir.path().join("other.key")).expect("other");
        let forged = other.sign("t", 3, "ab", "2026-12-07T00:00:00Z", "run-end");
        forged.check(None).expect("self-consistent");
        assert!(
            forged
                .check(Some(&public))
                .expect_err("other key")
                .contains("was expected")
        );
    }

    #[test]
    fn a_damaged_key_file_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.key");
        std::fs::write(&path, "not hex").expect("write");
        let err = Signer::load_or_create(&path).expect_err("refused");
        assert!(
            err.contains("audit.key") && err.contains("64 hex digits"),
            "{err}"
        );
        assert!(parse_public_key("zz").is_err());
    }
}
