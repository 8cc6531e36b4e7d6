//! Crash points for the crash-safety tests: with `PORTCULLIS_CRASH_AT=POINT:N` in its
//! environment, the process kills itself with SIGKILL the N-th time it reaches POINT
//! (N defaults to 1), so a test can stop a run at exactly one step and check what the
//! restart recovers. Without the variable a point costs one relaxed atomic load.
//!
//! Points, in the order an action passes them: `before-intent`, `after-intent`,
//! `after-write`, `after-readback`, `state-record` (between an action's state records) and
//! `audit-line` (half of an audit line written).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Armed {
    point: String,
    nth: u64,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("PORTCULLIS_CRASH_AT").ok()?;
            let (point, nth) = match spec.split_once(':') {
                Some((point, nth)) => (point.to_owned(), nth.parse().ok()?),
                None => (spec, 1),
            };
            Some(Armed {
                point,
                nth,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Dies here if the environment asks for it.
pub fn point(name: &str) {
    let Some(armed) = armed() else { return };
    if armed.point != name || armed.seen.fetch_add(1, Ordering::SeqCst) + 1 != armed.nth {
        return;
    }
    eprintln!(
        "PORTCULLIS_CRASH_AT: killing the process at {name}:{}",
        armed.nth
    );
    // SIGKILL, not abort or exit: nothing runs after it (no destructor, no flush), like a
    // power cut for the process.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
