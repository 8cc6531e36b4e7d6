//! A pool of Portcullis workers against two GitHub simulators, for `tests/workers.rs` and
//! `benches/workers.rs` (each includes this file and uses part of it).
//!
//! People `dev0000…` each get `open_repos` repositories on `github-open` and
//! `limited_repos` on `github-limited`, whose simulator can enforce a request rate.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use portcullis_simulators::postgres::PgCluster;
use portcullis_simulators::{GITHUB_DEMO_TOKEN, GithubSimulator};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const BOT: &str = "portcullis-bot";

/// What a trial sets up.
#[derive(Debug, Clone)]
pub struct Setup {
    pub people: usize,
    pub open_repos: usize,
    pub limited_repos: usize,
    /// The rate the limited app's simulator enforces (any 1 s window), if any.
    pub enforced_per_second: Option<u32>,
    /// The rate the limited app's config gives the pool.
    pub configured_per_second: Option<u32>,
    pub lease_s: u64,
    /// Added to every answer of both simulators.
    pub latency: Option<Duration>,
}

impl Setup {
    pub fn grants(&self) -> usize {
        self.people * (self.open_repos + self.limited_repos)
    }
}

pub struct Trial {
    pub setup: Setup,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, or None for a SQLite state.
    pub database: Option<String>,
    pub open: GithubSimulator,
    pub limited: GithubSimulator,
}

pub fn login(i: usize) -> String {
    format!("dev{i:04}")
}

async fn simulator(setup: &Setup, repos: usize) -> GithubSimulator {
    let sim = GithubSimulator::start().await.expect("simulator starts");
    // Verifying an invitation reads every page of a repository's invitations: a trial
    // of this size uses more than GitHub's 5,000 requests an hour, and the pool would
    // rightly wait for the reset.
    sim.set_rate_limit(1_000_000);
    sim.add_user(BOT);
    sim.add_token(GITHUB_DEMO_TOKEN, BOT, &["repo", "read:org"]);
    for i in 0..setup.people {
        sim.add_user(&login(i));
    }
    for r in 0..repos {
        let repo = format!("acme/r{r}");
        sim.add_repo(&repo);
        sim.set_collaborator(&repo, BOT, "admin");
    }
    if let Some(latency) = setup.latency {
        sim.faults().slow_responses(u32::MAX, latency);
    }
    sim
}

impl Trial {
    /// A trial on database `name` of `cluster`, or on a SQLite file without one.
    pub async fn new(setup: Setup, cluster: Option<&PgCluster>, name: &str) -> Trial {
        let url = cluster.map(|c| c.create_database(name).expect("database"));
        let open = simulator(&setup, setup.open_repos).await;
        let limited = simulator(&setup, setup.limited_repos).await;
        if let Some(rate) = setup.enforced_per_second {
            limited.faults().enforce_rate(rate);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        write_files(&setup, dir.path(), url.as_deref(), &open, &limited);
        Trial {
            setup,
            dir,
            database: url.map(|_| name.to_owned()),
            open,
            limited,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The PUTs each simulator saw per (repository, user): every grant's write.
    pub fn writes(&self) -> BTreeMap<String, usize> {
        let mut writes = BTreeMap::new();
        for (app, sim) in [("open", &self.open), ("limited", &self.limited)] {
            for request in sim.requests() {
                if request.method == "PUT" && request.path.contains("/collaborators/") {
                    *writes.entry(format!("{app} {}", request.path)).or_insert(0) += 1;
                }
            }
        }
        writes
    }

    /// What the run must leave behind, whatever happened to its workers: every grant
    /// written once and invited, no over-limit answer, every action managed, completed and
    /// settled once in the trail.
    pub fn check_exactly_once(&self, cluster: &PgCluster) {
        let grants = self.setup.grants();
        let writes = self.writes();
        assert_eq!(writes.len(), grants, "every grant written");
        let repeated: Vec<_> = writes.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "written more than once: {repeated:?}");
        assert_eq!(
            self.limited.faults().over_limit_responses(),
            0,
            "the limited app answered over its limit"
        );
        for i in 0..self.setup.people {
            for (sim, repos) in [
                (&self.open, self.setup.open_repos),
                (&self.limited, self.setup.limited_repos),
            ] {
                for r in 0..repos {
                    assert!(
                        sim.pending_invitation(&format!("acme/r{r}"), &login(i))
                            .is_some(),
                        "{} invited to acme/r{r}",
                        login(i)
                    );
                }
            }
        }
        let database = self.database.as_deref().expect("a PostgreSQL trial");
        let sql = |q: &str| cluster.psql(database, q).expect("psql");
        assert_eq!(sql("SELECT count(*) FROM managed"), grants.to_string());
        assert_eq!(
            sql("SELECT count(*) FROM queue_jobs WHERE state = 'completed'"),
            grants.to_string()
        );
        assert_eq!(sql("SELECT count(*) FROM actions"), grants.to_string());
        // The trail: every action finished once, by the worker that carried it out, or,
        // when that worker died first, found done by the one that took it over. A worker
        // killed after its action's `action-finished` and before the queue heard of it
        // leaves both records: one write, told twice (finished, then confirmed).
        let trail = std::fs::read_to_string(self.path().join("audit.jsonl")).expect("trail");
        let mut finished: BTreeMap<String, usize> = BTreeMap::new();
        let mut recovered: BTreeMap<String, usize> = BTreeMap::new();
        for line in trail.lines() {
            let record: Value = serde_json::from_str(line).expect("audit line");
            let key = record["call_id"].as_str().unwrap_or_default().to_owned();
            match record["event"].as_str().unwrap_or_default() {
                "action-finished" => *finished.entry(key).or_insert(0) += 1,
                "action-recovered" if record["finding"].as_str() == Some("applied") => {
                    *recovered.entry(key).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        let settled: std::collections::BTreeSet<&String> =
            finished.keys().chain(recovered.keys()).collect();
        assert_eq!(settled.len(), grants, "every action settled in the trail");
        let twice: Vec<_> = finished
            .iter()
            .chain(&recovered)
            .filter(|(_, n)| **n > 1)
            .collect();
        assert!(
            twice.is_empty(),
            "finished or recovered twice in the trail: {twice:?}"
        );
    }
}

fn write_files(
    setup: &Setup,
    dir: &Path,
    url: Option<&str>,
    open: &GithubSimulator,
    limited: &GithubSimulator,
) {
    std::fs::write(dir.join("github.token"), format!("{GITHUB_DEMO_TOKEN}\n")).expect("token");
    let mut policy = String::from(
        "[[rule]]\nname = \"engineers\"\nwhen = 'person.department == \"Engineering\"'\n",
    );
    for (app, repos) in [
        ("github-open", setup.open_repos),
        ("github-limited", setup.limited_repos),
    ] {
        for r in 0..repos {
            policy.push_str(&format!(
                "\n[[rule.grant]]\napp = \"{app}\"\nkind = \"repository\"\nresource = \"acme/r{r}\"\nlevel = \"write\"\n"
            ));
        }
    }
    std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    let people: Vec<Value> = (0..setup.people)
        .map(|i| {
            serde_json::json!({
                "id": format!("E{i:04}"),
                "name": format!("Developer {i}"),
                "attributes": { "department": "Engineering" },
                "accounts": { "github-open": login(i), "github-limited": login(i) },
            })
        })
        .collect();
    std::fs::write(
        dir.join("people.json"),
        serde_json::json!({ "people": people }).to_string(),
    )
    .expect("people");
    let state = match url {
        Some(url) => format!("url = \"{url}\""),
        None => "path = \"state.db\"".to_owned(),
    };
    let rate = match setup.configured_per_second {
        Some(n) => format!("rate_limit = {{ per_second = {n}, burst = 1 }}"),
        None => String::new(),
    };
    let common = format!(
        r#"
[audit]
path = "audit.jsonl"
[state]
{state}
[queue]
lease_s = {lease_s}
[engine]
max_attempts = 3

[apps.github-open]
plugin = "github"
base_url = "{open}"
secrets = {{ token = "file:github.token" }}
network = {{ allow_loopback = true }}

[apps.github-limited]
plugin = "github"
base_url = "{limited}"
secrets = {{ token = "file:github.token" }}
network = {{ allow_loopback = true }}
{rate}
"#,
        lease_s = setup.lease_s,
        open = open.base_url(),
        limited = limited.base_url()
    );
    // The run's coordinator (`apply`) plans from the policy. The workers only carry out
    // what runs enqueue: with no policy their scheduled reconcile has nothing to plan and
    // never competes with the test's apply for the run lock.
    std::fs::write(
        dir.join("portcullis.toml"),
        format!(
            "[policy]\npath = \"policy.toml\"\n[people]\ndirectory = \"people.json\"\n{common}"
        ),
    )
    .expect("config");
    std::fs::write(
        dir.join("worker.toml"),
        format!("[server.schedule]\nreconcile_every_s = 3600\ndrift_every_s = 0\ndormant_every_s = 0\n{common}"),
    )
    .expect("worker config");
}

pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env_remove("PORTCULLIS_CONFIG")
        .kill_on_drop(true);
    command
}

/// A `portcullis worker` and the lines it prints.
pub struct Worker {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// What it wrote to stderr, for failures.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Worker {
    /// Starts a worker and waits until it has joined the pool.
    pub async fn start(dir: &Path) -> Worker {
        let mut child = command(dir)
            .args(["--config", "worker.toml", "worker"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("worker starts");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let errors = child.stderr.take().expect("stderr");
        let kept = std::sync::Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut reader = BufReader::new(errors).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut kept = kept.lock().expect("stderr buffer");
                // The last 64 KiB are enough to explain a failure.
                if kept.len() > 64 * 1024 {
                    kept.clear();
                }
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
        let mut worker = Worker {
            child,
            lines,
            stderr,
        };
        worker
            .expect("joined the pool", Duration::from_secs(120))
            .await;
        worker
    }

    /// Waits for a line containing `text`.
    pub async fn expect(&mut self, text: &str, within: Duration) -> String {
        let found = tokio::time::timeout(within, async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(text) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        let stderr = || self.stderr.lock().expect("stderr buffer").clone();
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the worker ended before printing `{text}`:\n{}", stderr()),
            Err(_) => panic!(
                "no `{text}` from the worker within {within:?}:\n{}",
                stderr()
            ),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn kill(&mut self) {
        // Already gone is fine: a test may kill a worker twice.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// `portcullis apply` of the policy, as a child process to wait for later.
pub fn apply(dir: &Path) -> Child {
    command(dir)
        .args(["--json", "apply"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("apply starts")
}

/// Waits for an apply to end with every action pending (the invitations), none alerted.
pub async fn finished(apply: Child) {
    let output = tokio::time::timeout(Duration::from_secs(600), apply.wait_with_output())
        .await
        .expect("apply ends within 10 minutes")
        .expect("apply output");
    assert_eq!(
        output.status.code(),
        Some(3),
        "apply: {:?}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until at least `n` queued actions are completed.
pub async fn completed_at_least(cluster: &PgCluster, database: &str, n: usize) {
    tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let done = cluster
                .psql(
                    database,
                    "SELECT count(*) FROM queue_jobs WHERE state = 'completed'",
                )
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if done >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the run makes progress");
}
