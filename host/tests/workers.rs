//! Several workers on one PostgreSQL state, as an organisation runs them: `portcullis
//! worker` processes and an `apply` (its coordinator, a worker of its own run) carry out
//! 1,000 grants against two GitHub simulators, one of which enforces a rate limit.
//! Checked every time: no over-limit answer, every grant written exactly once in its app
//! (one PUT per repository and user), settled exactly once in the audit trail and in
//! state. Then the same with a worker killed mid-run (SIGKILL), with PostgreSQL restarted
//! mid-run, and the scheduler taken over when the worker running it is killed.
//!
//! PostgreSQL 15 comes from Debian's `postgresql` package, started by the harness as an
//! unprivileged user in a temporary directory; without it these tests say so and skip
//! (under CI=true they fail).

#[path = "support/pool.rs"]
mod pool;

use std::time::Duration;

use pool::{Setup, Trial, Worker, apply, completed_at_least, finished};
use portcullis_simulators::postgres::{PgCluster, cluster_or_skip, skip_or_fail};

const LEASE_S: u64 = 3;

/// 1,000 grants: 750 on the app without a limit, 250 on the one enforcing 80 requests in
/// any second, whose config gives the pool 60 (the margin is the jitter between leaving a
/// worker and arriving).
fn setup() -> Setup {
    Setup {
        people: 250,
        open_repos: 3,
        limited_repos: 1,
        enforced_per_second: Some(80),
        configured_per_second: Some(60),
        lease_s: LEASE_S,
        latency: None,
    }
}

/// The tests of this file take turns: each starts several processes.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn database(trial: &Trial) -> &str {
    trial.database.as_deref().expect("a PostgreSQL trial")
}

/// The index of a worker that holds a running action now.
async fn holding_worker(cluster: &PgCluster, database: &str, workers: &[Worker]) -> usize {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let holders = cluster
                .psql(
                    database,
                    "SELECT DISTINCT worker FROM queue_jobs WHERE state = 'running'",
                )
                .unwrap_or_default();
            for (i, worker) in workers.iter().enumerate() {
                let pid = worker.pid().map(|p| format!(":{p}:"));
                if pid.is_some_and(|pid| holders.lines().any(|h| h.contains(&pid))) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a worker holds an action")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_carry_out_a_thousand_grants_once_within_the_rate_limit() {
    let Some(cluster) = cluster_or_skip("three_workers_carry_out_a_thousand_grants") else {
        return;
    };
    let _turn = TURN.lock().await;
    let trial = Trial::new(setup(), Some(cluster), "workers_three").await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Worker::start(trial.path()).await);
    }
    finished(apply(trial.path())).await;
    trial.check_exactly_once(cluster);
    // Work was shared: more than one process completed actions.
    let by_worker = cluster
        .psql(
            database(&trial),
            "SELECT count(DISTINCT result->>'worker') FROM queue_jobs",
        )
        .expect("psql");
    assert!(
        by_worker.parse::<usize>().expect("count") >= 2,
        "one process did everything"
    );
    for worker in &mut workers {
        worker.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_no_action_and_duplicates_none() {
    let Some(cluster) = cluster_or_skip("a_worker_killed_mid_run") else {
        return;
    };
    let _turn = TURN.lock().await;
    let trial = Trial::new(setup(), Some(cluster), "workers_killed").await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Worker::start(trial.path()).await);
    }
    let run = apply(trial.path());
    completed_at_least(cluster, database(&trial), trial.setup.grants() / 4).await;
    // Kill a worker while it holds actions, so they must be taken over.
    let victim = holding_worker(cluster, database(&trial), &workers).await;
    workers[victim].kill().await;
    finished(run).await;
    trial.check_exactly_once(cluster);
    let taken_over = cluster
        .psql(
            database(&trial),
            "SELECT count(*) FROM queue_jobs WHERE attempt > 1",
        )
        .expect("psql");
    assert_ne!(
        taken_over, "0",
        "nothing the killed worker held was taken over"
    );
    for worker in &mut workers {
        worker.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_when_postgresql_restarts_mid_run() {
    let _turn = TURN.lock().await;
    // A cluster of its own: restarting the shared one would cut the other tests off.
    let cluster = match PgCluster::start() {
        Ok(cluster) => cluster,
        Err(reason) => return skip_or_fail("workers_reconnect_when_postgresql_restarts", &reason),
    };
    let trial = Trial::new(setup(), Some(&cluster), "workers_restart").await;
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(Worker::start(trial.path()).await);
    }
    let run = apply(trial.path());
    completed_at_least(&cluster, database(&trial), trial.setup.grants() / 4).await;
    cluster.restart().expect("PostgreSQL restarts");
    finished(run).await;
    trial.check_exactly_once(&cluster);
    for worker in &mut workers {
        worker.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_worker_takes_the_scheduler_over_when_its_worker_dies() {
    let Some(cluster) = cluster_or_skip("another_worker_takes_the_scheduler_over") else {
        return;
    };
    let _turn = TURN.lock().await;
    let trial = Trial::new(setup(), Some(cluster), "workers_scheduler").await;
    let mut first = Worker::start(trial.path()).await;
    first
        .expect("now runs the scheduler", Duration::from_secs(30))
        .await;
    let mut second = Worker::start(trial.path()).await;
    // The first keeps it while it lives.
    let kept = tokio::time::timeout(
        Duration::from_secs(2 * LEASE_S),
        second.expect("now runs the scheduler", Duration::from_secs(3600)),
    )
    .await;
    assert!(kept.is_err(), "two workers ran the scheduler at once");
    let killed = std::time::Instant::now();
    first.kill().await;
    second
        .expect("now runs the scheduler", Duration::from_secs(30))
        .await;
    // Campaigns go every third of a lease; the slack is for a loaded machine.
    let took = killed.elapsed();
    eprintln!("the scheduler was taken over {took:?} after its worker was killed");
    assert!(
        took <= Duration::from_secs(2 * LEASE_S + 2),
        "took the scheduler over after {took:?}; campaigns go every {} ms",
        LEASE_S * 1000 / 3
    );
    second.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgresql_is_a_worker_of_the_pool() {
    let Some(cluster) = cluster_or_skip("serve_on_postgresql_is_a_worker_of_the_pool") else {
        return;
    };
    let _turn = TURN.lock().await;
    let setup = Setup {
        people: 50,
        open_repos: 2,
        limited_repos: 0,
        enforced_per_second: None,
        configured_per_second: None,
        lease_s: LEASE_S,
        latency: None,
    };
    let trial = Trial::new(setup, Some(cluster), "workers_serve").await;
    const OPS_TOKEN: &str = "ops-token-0123456789abcdef";
    std::fs::write(trial.path().join("ops.token"), OPS_TOKEN).expect("token");
    let mut config = std::fs::read_to_string(trial.path().join("portcullis.toml")).expect("config");
    config.push_str(
        "\n[server]\nlisten = \"127.0.0.1:0\"\n[[server.tokens]]\nname = \"it-ops\"\nrole = \"operator\"\nsecret = \"file:ops.token\"\n",
    );
    std::fs::write(trial.path().join("portcullis.toml"), config).expect("config");
    let mut worker = Worker::start(trial.path()).await;
    let mut serve = pool::command(trial.path())
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = serve.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("listening within 120 s")
        .expect("stdout readable")
        .expect("a line on stdout");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    // An apply through the API: a job of the service, its actions rows of the queue.
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/apply"))
        .bearer_auth(OPS_TOKEN)
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status().as_u16(), 202);
    let grants = trial.setup.grants();
    tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let open = cluster
                .psql(
                    database(&trial),
                    "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FROM queue_jobs",
                )
                .unwrap_or_default();
            let managed = cluster
                .psql(database(&trial), "SELECT count(*) FROM managed")
                .unwrap_or_default();
            if open == format!("{grants}|{grants}") && managed == grants.to_string() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the service's apply completes through the queue");
    trial.check_exactly_once(cluster);
    let _ = serve.start_kill();
    worker.kill().await;
}
