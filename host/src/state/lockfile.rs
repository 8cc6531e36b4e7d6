//! The run lock of a file-backed store: an OS advisory lock (`flock` on Unix,
//! `LockFileEx` on Windows) on a file beside the database, `portcullis.db.lock` for
//! `portcullis.db`.
//!
//! Why an OS lock and not a row in the database: the kernel releases it when the process
//! ends however it ends, so there is no stale lock to expire, guess about or break by hand.
//! The holder's description is written into the file so that a refused run can say who
//! holds it; it is only ever read while the lock is held by someone else.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{RunLock, StateError};

/// The lock file for the database at `db_path`.
pub(super) fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock beside `db_path` for `holder`, or says who has it.
pub(super) fn lock_beside(db_path: &Path, db: &str, holder: &str) -> Result<RunLock, StateError> {
    let path = lock_path(db_path);
    let failed = |op: &str, e: std::io::Error| StateError::Backend {
        db: db.to_owned(),
        op: format!("{op} the run lock {}", path.display()),
        source: Box::new(e),
    };
    // Never truncate on open: until we hold the lock, the text is the holder's.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| failed("open", e))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(|e| failed("write", e))?;
            file.write_all(holder.as_bytes())
                .and_then(|()| file.flush())
                .map_err(|e| failed("write", e))?;
            Ok(RunLock::new(HeldFile(file)))
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // Best effort: the holder may not have written its description yet.
            let _ = file.read_to_string(&mut text);
            let text = text.trim();
            Err(StateError::Locked {
                db: db.to_owned(),
                holder: if text.is_empty() {
                    format!("holder unknown; lock file {}", path.display())
                } else {
                    text.to_owned()
                },
            })
        }
        Err(TryLockError::Error(e)) => Err(failed("take", e)),
    }
}

/// The locked file; dropping it clears the holder's description and closes the file,
/// which releases the lock.
struct HeldFile(File);

impl Drop for HeldFile {
    fn drop(&mut self) {
        // Best effort: a leftover description is harmless (it is only read while someone
        // else holds the lock, and they rewrite it first).
        let _ = self.0.set_len(0);
    }
}

/// The run lock of a store that lives in this process only (in memory).
pub(super) fn lock_in_process(
    flag: &Arc<AtomicBool>,
    db: &str,
    holder: &str,
) -> Result<RunLock, StateError> {
    if flag.swap(true, Ordering::AcqRel) {
        return Err(StateError::Locked {
            db: db.to_owned(),
            holder: format!("another run in this process; asked for by {holder}"),
        });
    }
    Ok(RunLock::new(InProcess(Arc::clone(flag))))
}

struct InProcess(Arc<AtomicBool>);

impl Drop for InProcess {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
