//! Scaling out on PostgreSQL: prints figures, asserts nothing (CI never gates on wall
//! time).
//!
//! Run: `cargo bench -p portcullis --bench workers` (needs Debian's `postgresql`).
//!
//! The same 1,000-grant apply (250 people, 4 GitHub repositories each, over two
//! simulators that answer every request 50 ms late), in one process:
//! - the baseline: the single-process engine on a SQLite state;
//! - on PostgreSQL with 1, 2 and 3 workers (the apply's own process is the first worker;
//!   the others are `portcullis worker` processes).
//!
//! Then the queue's own cost per action: enqueue 1,000 rows, claim them 32 at a time and
//! complete each, against the same PostgreSQL, no connector involved.

#[path = "../tests/support/pool.rs"]
mod pool;

use std::time::{Duration, Instant};

use pool::{Setup, Trial, Worker, apply, finished};
use portcullis_simulators::postgres::PgCluster;

fn setup() -> Setup {
    Setup {
        people: 250,
        open_repos: 3,
        limited_repos: 1,
        enforced_per_second: None,
        configured_per_second: None,
        lease_s: 30,
        latency: Some(Duration::from_millis(50)),
    }
}

/// One apply with `extra` worker processes beside it; its wall time.
async fn run(cluster: Option<&PgCluster>, name: &str, extra: usize) -> Duration {
    let trial = Trial::new(setup(), cluster, name).await;
    let mut workers = Vec::new();
    for _ in 0..extra {
        workers.push(Worker::start(trial.path()).await);
    }
    // Compile the plugin into the cache first, so every variant measures the run alone.
    let warm = pool::command(trial.path())
        .args(["plugin", "inspect", "github"])
        .output()
        .await
        .expect("inspect runs");
    assert!(warm.status.success(), "plugin inspect failed");
    let started = Instant::now();
    finished(apply(trial.path())).await;
    let took = started.elapsed();
    assert_eq!(
        trial.writes().len(),
        trial.setup.grants(),
        "every grant written"
    );
    for worker in &mut workers {
        worker.kill().await;
    }
    took
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cluster = match PgCluster::start() {
            Ok(cluster) => cluster,
            Err(reason) => {
                eprintln!("workers benchmark skipped: {reason} (apt-get install postgresql)");
                return;
            }
        };
        let grants = setup().grants() as f64;
        println!("1,000 grants, every request answered 50 ms late");
        let baseline = run(None, "baseline", 0).await;
        let per_s = |d: Duration| grants / d.as_secs_f64();
        println!(
            "  SQLite, one process      {:>7.2} s  {:>7.1} actions/s  (baseline)",
            baseline.as_secs_f64(),
            per_s(baseline)
        );
        for workers in 1..=3 {
            let took = run(Some(&cluster), &format!("bench_{workers}"), workers - 1).await;
            println!(
                "  PostgreSQL, {workers} worker{}     {:>7.2} s  {:>7.1} actions/s  ratio {:.2}",
                if workers == 1 { " " } else { "s" },
                took.as_secs_f64(),
                per_s(took),
                per_s(took) / per_s(baseline)
            );
        }
        match portcullis::queue::bench::claim_and_complete(&cluster.url_of("bench_3"), 1000).await {
            Ok(per_action) => println!(
                "  queue overhead: {:.0} us per action (enqueue + claim + complete, batches of 32)",
                per_action.as_secs_f64() * 1e6
            ),
            Err(e) => println!("  queue overhead: not measured: {e}"),
        }
    });
}
