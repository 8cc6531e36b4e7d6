//! The PostgreSQL test harness itself: a cluster starts, serves databases, survives a
//! restart with its data, and never outlives its process, even one that is SIGKILLed.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_simulators::postgres::{PgCluster, cluster_or_skip, skip_or_fail};

/// Set in the child process of the SIGKILL test: where it reports its cluster.
const CHILD_REPORT: &str = "PORTCULLIS_PG_HARNESS_CHILD";

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cluster_serves_fresh_databases_and_keeps_its_data_across_a_restart() {
    let Some(shared) = cluster_or_skip("a_cluster_serves_fresh_databases") else {
        return;
    };
    let one = shared.fresh_database().expect("database");
    let two = shared.fresh_database().expect("another");
    assert_ne!(one.name, two.name);
    assert_eq!(
        one.url,
        format!(
            "postgres://portcullis@127.0.0.1:{}/{}",
            shared.port(),
            one.name
        )
    );
    assert_eq!(shared.psql(&one.name, "SELECT 1 + 1").expect("query"), "2");
    assert!(
        shared.create_database("Bad-Name").is_err(),
        "names are checked before they reach SQL"
    );

    // Restarting a cluster of its own (the shared one serves other tests meanwhile).
    let own = match PgCluster::start() {
        Ok(cluster) => cluster,
        Err(reason) => return skip_or_fail("a_cluster_serves_fresh_databases", &reason),
    };
    let dir = own.dir().to_path_buf();
    own.create_database("kept").expect("database");
    own.psql("kept", "CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
        .expect("write");
    own.restart().expect("restart");
    assert_eq!(own.psql("kept", "SELECT v FROM t").expect("read"), "7");
    let port = own.port();
    own.stop().expect("stop");
    assert!(!listening(port), "stopped");
    assert!(dir.exists(), "a stop keeps the data");
    drop(own);
    assert!(!dir.exists(), "a drop removes the directory");
}

#[test]
fn a_password_cluster_needs_its_password() {
    if let Err(reason) = PgCluster::installed() {
        return skip_or_fail("a_password_cluster_needs_its_password", &reason);
    }
    let cluster = PgCluster::start_with_password("harness-pw-1").expect("start");
    assert_eq!(cluster.password(), Some("harness-pw-1"));
    cluster
        .create_database("locked")
        .expect("psql logs in with it");
    assert_eq!(cluster.psql("locked", "SELECT 1").expect("query"), "1");
}

/// The child of the SIGKILL test: starts a cluster, reports it, and waits to be killed.
fn child(report: &str) {
    let cluster = PgCluster::start().expect("child cluster");
    std::fs::write(
        report,
        format!("{}\n{}\n", cluster.port(), cluster.dir().display()),
    )
    .expect("report");
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
fn a_cluster_does_not_outlive_a_killed_process() {
    if let Ok(report) = std::env::var(CHILD_REPORT) {
        return child(&report);
    }
    if let Err(reason) = PgCluster::installed() {
        return skip_or_fail("a_cluster_does_not_outlive_a_killed_process", &reason);
    }
    let scratch = std::env::temp_dir().join(format!("pg-harness-report-{}", std::process::id()));
    let _ = std::fs::remove_file(&scratch);
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_cluster_does_not_outlive_a_killed_process",
            "--nocapture",
        ])
        .env(CHILD_REPORT, &scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child");
    let deadline = Instant::now() + Duration::from_secs(90);
    let report = loop {
        if let Ok(text) = std::fs::read_to_string(&scratch)
            && text.ends_with('\n')
            && text.lines().count() == 2
        {
            break text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child exited before its cluster started: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the child's cluster did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&scratch);
    let mut lines = report.lines();
    let port: u16 = lines.next().and_then(|p| p.parse().ok()).expect("port");
    let dir = PathBuf::from(lines.next().expect("dir"));
    assert!(listening(port), "the child's server is up");

    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap");
    eventually("the server stops", Duration::from_secs(30), || {
        !listening(port)
    });
    eventually("its directory is removed", Duration::from_secs(30), || {
        !dir.exists()
    });
}
