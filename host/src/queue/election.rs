//! Which worker runs the scheduler: the one holding a session advisory lock. PostgreSQL
//! releases the lock when the holder's connection ends (the process died, was killed, or
//! lost the network), and the others try for it every `every`, so one of them takes over
//! within that period.
//!
//! A leader that cannot confirm its session stops leading at once. Between a leader's
//! session ending and it noticing, it may still start a job it thinks is its own; such a
//! job takes the run lock like every run, so two scheduled runs never overlap.

use std::time::Duration;

use tokio::sync::watch;

use super::Session;

/// The advisory lock key of the scheduler ("PCULSCHD").
const SCHEDULER_KEY: i64 = 0x5043_554C_5343_4844;

/// This worker's part in the election; dropping it stops campaigning (and the lock goes
/// with the session when the process ends).
#[derive(Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Leadership {
    /// Campaigns on its own session from now on, checking every `every`.
    pub(crate) fn start(session: Session, every: Duration) -> Leadership {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(campaign(session, every, tx));
        Leadership { leading: rx, task }
    }

    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Changes of leadership as they happen.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }
}

async fn campaign(session: Session, every: Duration, leading: watch::Sender<bool>) {
    loop {
        let held = *leading.borrow();
        let step = async {
            let client = session.client().await?;
            if held {
                // The lock lives as long as this session: a live session is a held lock.
                client.query_one("SELECT 1", &[]).await.map(|_| true)
            } else {
                client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&SCHEDULER_KEY])
                    .await
                    .map(|row| row.get::<_, bool>(0))
            }
        };
        let now_leading = match step.await {
            Ok(now) => now,
            Err(e) => {
                if held {
                    tracing::warn!(db = %session.db(), error = %e, "lost the scheduler's lock with the database session; another worker takes over");
                }
                session.disconnect().await;
                false
            }
        };
        if now_leading != held {
            if now_leading {
                tracing::info!("this worker now runs the scheduler");
            }
            leading.send_replace(now_leading);
        }
        if leading.is_closed() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}
