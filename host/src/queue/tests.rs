//! The queue's primitives against a real PostgreSQL (`portcullis_simulators::postgres`):
//! claims, leases and takeovers, conditional completion, hand-backs, the shared rate
//! buckets and server waits, the scheduler election. Skipped without PostgreSQL (a note
//! on stderr), except under `CI=true`. What a whole pool does is in `tests/workers.rs`.

use std::time::Duration;

use portcullis_simulators::postgres::{Database, cluster_or_skip};

use super::bench::sample_job;
use super::limits::PgRateLimits;
use super::*;
use crate::model::ActionOutcome;
use crate::ratelimit::{RateSpec, SharedRate};

/// A migrated fresh database and its config.
fn database(test: &str) -> Option<(Database, tokio_postgres::Config)> {
    let cluster = cluster_or_skip(test)?;
    let database = cluster.fresh_database().expect("fresh database");
    // Opening the store migrates it.
    drop(crate::state::PgStore::open(&database.url, None).expect("migrates"));
    let config = crate::state::pg_config(&database.url, None).expect("config");
    Some((database, config))
}

fn queue(config: &tokio_postgres::Config, worker: &str, lease: Duration) -> Queue {
    Queue::new(
        Session::new(config.clone(), "test", worker),
        worker.to_owned(),
        lease,
    )
}

fn result(worker: &str) -> JobResult {
    JobResult {
        op: Op::Grant,
        outcome: ActionOutcome::Verified,
        attempts: 1,
        last_observed: None,
        last_error: None,
        http_calls: 2,
        duration_ms: 1.0,
        worker: worker.to_owned(),
        taken_over: false,
    }
}

#[tokio::test]
async fn claims_never_hand_one_row_to_two_workers() {
    let Some((_, config)) = database("claims_never_hand_one_row_to_two_workers") else {
        return;
    };
    let a = queue(&config, "a", Duration::from_secs(30));
    let b = queue(&config, "b", Duration::from_secs(30));
    let jobs: Vec<JobPayload> = (0..50).map(|i| sample_job("r1", i)).collect();
    a.enqueue("r1", 1, &jobs).await.expect("enqueue");
    // Enqueueing the same phase again adds nothing.
    a.enqueue("r1", 1, &jobs).await.expect("enqueue again");
    let (mine, theirs) = tokio::join!(a.claim(30, None), b.claim(30, None));
    let (mine, theirs) = (mine.expect("a claims"), theirs.expect("b claims"));
    assert_eq!(mine.len() + theirs.len(), 50, "every row claimed once");
    let ids: std::collections::BTreeSet<i64> = mine.iter().chain(&theirs).map(|c| c.id).collect();
    assert_eq!(ids.len(), 50, "no row claimed twice");
    assert!(mine.iter().chain(&theirs).all(|c| c.attempt == 1));
    assert!(a.claim(10, None).await.expect("claim").is_empty());
    let progress = a.progress("r1", 1).await.expect("progress");
    assert_eq!((progress.total, progress.completed), (50, 0));
}

#[tokio::test]
async fn a_lapsed_lease_is_taken_over_and_the_old_holder_cannot_complete() {
    let Some((_, config)) = database("a_lapsed_lease_is_taken_over") else {
        return;
    };
    let dying = queue(&config, "dying", Duration::from_secs(1));
    let taker = queue(&config, "taker", Duration::from_secs(30));
    dying
        .enqueue("r1", 1, &[sample_job("r1", 0)])
        .await
        .expect("enqueue");
    let held = dying.claim(1, None).await.expect("claim").remove(0);
    // Held and fresh: nobody else gets it.
    assert!(taker.claim(1, None).await.expect("claim").is_empty());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let taken = taker.claim(1, None).await.expect("claim").remove(0);
    assert_eq!(taken.id, held.id);
    assert_eq!(taken.attempt, 2, "a takeover counts as a new attempt");
    assert_eq!(taken.taken_from.as_deref(), Some("dying"));
    // The old holder's heartbeat and completion find the row gone from it.
    assert_eq!(
        dying.heartbeat(&[held.id]).await.expect("beat"),
        vec![held.id]
    );
    assert!(
        !dying
            .complete(&held, &result("dying"))
            .await
            .expect("complete")
    );
    assert!(
        taker
            .complete(&taken, &result("taker"))
            .await
            .expect("complete")
    );
    let results = taker.results("r1", 1).await.expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1.worker, "taker");
    assert!(taker.busy_runs().await.expect("busy").is_empty());
}

#[tokio::test]
async fn a_heartbeat_keeps_a_lease_and_a_released_row_waits_its_turn() {
    let Some((_, config)) = database("a_heartbeat_keeps_a_lease") else {
        return;
    };
    let holder = queue(&config, "holder", Duration::from_secs(2));
    let other = queue(&config, "other", Duration::from_secs(30));
    holder
        .enqueue("r1", 1, &[sample_job("r1", 0)])
        .await
        .expect("enqueue");
    let held = holder.claim(1, None).await.expect("claim").remove(0);
    // Four beats over longer than one lease.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(holder.heartbeat(&[held.id]).await.expect("beat").is_empty());
        assert!(other.claim(1, None).await.expect("claim").is_empty());
    }
    holder
        .release(&held, Duration::from_secs(1), "cannot read it back")
        .await
        .expect("release");
    assert!(
        other.claim(1, None).await.expect("claim").is_empty(),
        "not before its time"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = other.claim(1, None).await.expect("claim").remove(0);
    assert_eq!(again.attempt, 2);
    // A claim limited to another run sees nothing of this one.
    assert!(other.claim(1, Some("r2")).await.expect("claim").is_empty());
}

fn per_second(n: u32, burst: u32) -> Vec<RateSpec> {
    let interval = Duration::from_secs(1) / n;
    vec![RateSpec {
        period: "per_second",
        interval,
        tolerance: interval * (burst - 1),
    }]
}

#[tokio::test]
async fn the_shared_bucket_holds_the_rate_for_every_worker_together() {
    let Some((_, config)) = database("the_shared_bucket_holds_the_rate") else {
        return;
    };
    let a = PgRateLimits::new(Session::new(config.clone(), "test", "a"));
    let b = PgRateLimits::new(Session::new(config.clone(), "test", "b"));
    let rates = per_second(10, 3);
    // The burst, shared: three tokens between both workers, then a wait of about one
    // interval (100 ms), whoever asks.
    let mut taken = 0;
    for limits in [&a, &b, &a, &b] {
        if limits.take("app", &rates).await.is_zero() {
            taken += 1;
        }
    }
    assert_eq!(taken, 3, "the burst is the pool's, not each worker's");
    let wait = b.take("app", &rates).await;
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "waits about one interval: {wait:?}"
    );
    // Another app has its own bucket.
    assert!(a.take("other", &rates).await.is_zero());
}

#[tokio::test]
async fn a_server_wait_seen_by_one_worker_holds_them_all() {
    let Some((_, config)) = database("a_server_wait_holds_them_all") else {
        return;
    };
    let a = PgRateLimits::new(Session::new(config.clone(), "test", "a"));
    let b = PgRateLimits::new(Session::new(config.clone(), "test", "b"));
    assert!(
        b.take("app", &[]).await.is_zero(),
        "no configured rate, no wait"
    );
    a.block("app", Duration::from_secs(30)).await;
    // A shorter wait does not shorten it.
    a.block("app", Duration::from_secs(1)).await;
    let wait = b.take("app", &[]).await;
    assert!(
        wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
        "the other worker waits the server's 30 s: {wait:?}"
    );
}

#[tokio::test]
async fn one_worker_leads_and_another_takes_over_when_it_goes() {
    let Some((_, config)) = database("one_worker_leads") else {
        return;
    };
    let every = Duration::from_millis(100);
    let first = Leadership::start(Session::new(config.clone(), "test", "first"), every);
    let mut leading = first.watch();
    tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|l| *l))
        .await
        .expect("the first leads")
        .expect("watch");
    let second = Leadership::start(Session::new(config.clone(), "test", "second"), every);
    tokio::time::sleep(every * 5).await;
    assert!(
        first.is_leading() && !second.is_leading(),
        "one leader at a time"
    );
    // Its session ends with it (as a killed process's does).
    drop(first);
    let mut leading = second.watch();
    tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|l| *l))
        .await
        .expect("the second takes over")
        .expect("watch");
}
