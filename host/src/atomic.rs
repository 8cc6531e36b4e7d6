//! All-or-nothing file writes, for files a host or an operator reads while they change
//! (plugins, signatures): the bytes go to a temporary file beside the target, are synced,
//! and are renamed over it, so a reader sees the old file or the new one, never part.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` atomically (creating its directory if needed).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_file_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/plugin.wasm");
        super::write(&path, b"one").expect("first");
        super::write(&path, b"two").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let entries = std::fs::read_dir(dir.path().join("sub"))
            .expect("dir")
            .count();
        assert_eq!(entries, 1, "no temporary file left");
    }
}
