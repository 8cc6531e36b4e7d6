//! Per-app rate limits shared by every worker on one PostgreSQL state: the GCRA buckets
//! and server-supplied waits live in the database (`portcullis_take_token`,
//! `portcullis_block` in the queue migration), on the database's clock, so the limit an
//! app is configured with holds for the sum of all workers and a 429 one worker sees
//! slows all of them.
//!
//! Each request costs one round trip to the database. It never fails open: while the
//! database cannot be reached, requests wait (and say so in the log) rather than go out
//! uncounted.

use std::time::Duration;

use crate::ratelimit::{RateSpec, SharedFuture, SharedRate};

use super::Session;

/// How long to wait before asking an unreachable database again.
const RETRY: Duration = Duration::from_millis(500);

/// [`SharedRate`] on the state's PostgreSQL database.
#[derive(Debug)]
pub struct PgRateLimits {
    session: Session,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl PgRateLimits {
    pub(crate) fn new(session: Session) -> PgRateLimits {
        PgRateLimits { session }
    }

    async fn try_take(&self, app: &str, rates: &[RateSpec]) -> Result<Duration, String> {
        let client = self.session.client().await.map_err(|e| e.to_string())?;
        let periods: Vec<&str> = rates.iter().map(|r| r.period).collect();
        let intervals: Vec<i64> = rates.iter().map(|r| micros(r.interval)).collect();
        let tolerances: Vec<i64> = rates.iter().map(|r| micros(r.tolerance)).collect();
        let row = client
            .query_one(
                "SELECT portcullis_take_token($1, $2, $3, $4)",
                &[&app, &periods, &intervals, &tolerances],
            )
            .await
            .map_err(|e| e.to_string())?;
        let wait: i64 = row.get(0);
        Ok(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
    }
}

impl SharedRate for PgRateLimits {
    fn take<'a>(&'a self, app: &'a str, rates: &'a [RateSpec]) -> SharedFuture<'a, Duration> {
        Box::pin(async move {
            loop {
                match self.try_take(app, rates).await {
                    Ok(wait) => return wait,
                    Err(e) => {
                        tracing::warn!(app, error = %e, db = %self.session.db(), "cannot reach the shared rate limit; requests to this app wait");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        })
    }

    fn block<'a>(&'a self, app: &'a str, wait: Duration) -> SharedFuture<'a, ()> {
        Box::pin(async move {
            let result = async {
                let client = self.session.client().await?;
                client
                    .execute("SELECT portcullis_block($1, $2)", &[&app, &micros(wait)])
                    .await
            }
            .await;
            // This process honours the wait locally either way; the others learn of it at
            // their next request, or from their own 429.
            if let Err(e) = result {
                tracing::warn!(app, error = %e, "could not share a server-supplied wait with the other workers");
            }
        })
    }
}
