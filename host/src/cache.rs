//! On-disk cache of compiled plugins, so a host restart loads a plugin in microseconds
//! instead of recompiling it.
//!
//! Architecture invariant: only artifacts this host wrote are ever deserialised. Entries
//! are named by the SHA-256 of the plugin bytes *and* of the engine's compatibility hash,
//! written atomically into a directory created with owner-only permissions. Loading a
//! precompiled artifact is `unsafe` because it is native code: anyone who can write to the
//! cache directory can run code as the host, so keep it private to the host's user.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// Uses (and creates, owner-only) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<CompileCache> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(CompileCache { dir })
    }

    /// The default location: `$XDG_CACHE_HOME/portcullis` or `~/.cache/portcullis`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .map(|base| base.join("portcullis"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss. A cache
    /// that cannot be written is not an error: the component is still returned.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.entry_path(engine, sha256);
        if path.is_file() {
            // SAFETY: the entry's name binds it to these exact plugin bytes and this
            // engine's configuration, and only this host writes into the owner-only cache
            // directory (see the module invariant).
            #[allow(unsafe_code, reason = "deserialising our own precompiled artifact")]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compile-cache entry");
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write compile-cache entry");
        }
        Ok(component)
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        let artifact = component.serialize()?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&artifact)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    fn entry_path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut key = Sha256::new();
        key.update(sha256.as_bytes());
        key.update(engine_hash.finish().to_le_bytes());
        key.update(env!("CARGO_PKG_VERSION").as_bytes());
        self.dir
            .join(format!("{}.cwasm", &hex::encode(key.finalize())[..32]))
    }
}
