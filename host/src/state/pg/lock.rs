//! The run lock on PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held on a
//! connection of its own, whose thread lives inside the returned [`RunLock`] guard.
//! Dropping the guard unlocks and closes that connection; a process that dies however it
//! dies loses its connection, and the server ends the lock with it, so a crashed run
//! never leaves a stale lock.
//!
//! The holder's description is written to `run_lock_holders` under the holder's backend
//! pid; a refused run names the row of the backend that `pg_locks` says holds the lock.
//!
//! The lock lives exactly as long as its session. That connection never reconnects (a new
//! session would not hold the lock): if the server restarts during a run, the lock is gone
//! and another run may take it. Restarting the database under a running apply is an
//! operator's act, like removing a SQLite lock file by hand.

use super::conn::Actor;
use super::{Fail, RUN_LOCK_KEY};
use crate::state::{RunLock, StateError};

/// Takes the run lock of the database `config` reaches for `holder`, or names its holder.
pub(super) fn take(
    db: &str,
    config: &tokio_postgres::Config,
    holder: &str,
) -> Result<RunLock, StateError> {
    let op = "take the run lock";
    let mut config = config.clone();
    config.application_name("portcullis run lock");
    let actor = Actor::spawn("portcullis-run-lock", config, false)
        .map_err(|fail| fail.into_state_error(db, op.into()))?;
    let asking = holder.to_owned();
    let refused = actor
        .call(move |tx| {
            let taken: bool = tx
                .query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY])?
                .try_get(0)
                .map_err(Fail::Sql)?;
            if taken {
                tx.execute(
                    "INSERT INTO run_lock_holders (backend_pid, holder)
                     VALUES (pg_backend_pid(), $1)
                     ON CONFLICT (backend_pid) DO UPDATE SET holder = EXCLUDED.holder,
                         since = now()",
                    &[&asking],
                )?;
                // Other rows are of holders that are gone: their lock ended with them.
                tx.execute(
                    "DELETE FROM run_lock_holders WHERE backend_pid <> pg_backend_pid()",
                    &[],
                )?;
                return Ok(None);
            }
            let row = tx.query_opt(
                "SELECT l.pid, h.holder
                 FROM pg_catalog.pg_locks l
                 LEFT JOIN run_lock_holders h ON h.backend_pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                   AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                     WHERE datname = current_database())
                   AND ((l.classid::int8 << 32) | l.objid::int8) = $1",
                &[&RUN_LOCK_KEY],
            )?;
            Ok(Some(match row {
                None => "holder unknown; the lock was released meanwhile, try again".to_owned(),
                Some(row) => {
                    let pid: i32 = row.try_get(0).map_err(Fail::Sql)?;
                    let holder: Option<String> = row.try_get(1).map_err(Fail::Sql)?;
                    holder.unwrap_or_else(|| {
                        format!("holder unknown; PostgreSQL backend {pid} holds it (see pg_stat_activity)")
                    })
                }
            }))
        })
        .map_err(|fail| fail.into_state_error(db, op.into()))?;
    match refused {
        Some(holder) => Err(StateError::Locked {
            db: db.to_owned(),
            holder,
        }),
        None => Ok(RunLock::new(Held { actor: Some(actor) })),
    }
}

/// The lock's connection; dropping it unlocks and closes the connection.
struct Held {
    actor: Option<Actor>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(actor) = self.actor.take() else {
            return;
        };
        // Unlock explicitly before closing: the server ends a closed session's locks only
        // once its backend notices, and the next run may ask at once. Best effort: if this
        // fails the connection is gone, and the lock with it.
        let released = actor.call(|tx| {
            tx.execute(
                "DELETE FROM run_lock_holders WHERE backend_pid = pg_backend_pid()",
                &[],
            )?;
            tx.query_one("SELECT pg_advisory_unlock($1)", &[&RUN_LOCK_KEY])?;
            Ok(())
        });
        if let Err(fail) = released {
            tracing::debug!(error = %fail.into_source(), "run lock release: the connection was already gone");
        }
    }
}
