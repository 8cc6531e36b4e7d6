//! Engine benchmark: prints figures, asserts nothing (CI never gates on wall time).
//!
//! Run: `cargo bench -p portcullis-e2e --bench engine`
//!
//! (a) Josh's joiner run (`examples/josh/actions.toml`, 24 grants, 6 apps) with 150 ms of
//!     latency added to every API call (the simulators' `slow_responses` fault; a delay
//!     proxy in front of moto), next to the physical floor: the longest chain of sequential
//!     round trips one action needs (grant + read-back), times 150 ms, since actions run in
//!     parallel. Target: < 1 s.
//! (b) Verified actions per second against a zero-latency Slack simulator (1,000 channel
//!     grants), next to a plain reqwest client in the same process replaying the SAME HTTP
//!     calls (method + URL as recorded in the run's reports, same bodies and auth header,
//!     sequential within an action, the same per-app concurrency). Target ratio >= 0.9.
//!     A third figure measures the ceiling a fresh sandbox per call allows: the same
//!     replay plus, per action, two fresh Slack sandboxes created and dropped unused (the
//!     write's and the read-back's), with no guest code, audit or host call at all. A
//!     fourth repeats engine and replay with 2 ms added to every answer.
//! (c) Rate-limit efficiency: the Jira simulator enforcing N requests/s
//!     (`faults().enforce_rate(N)`), the app configured `rate_limit = { per_second = N }`;
//!     achieved request rate / N and the over-limit answers. Target >= 0.95 with 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::Host;
use portcullis::audit::JsonLinesSink;
use portcullis::config::Config;
use portcullis::engine::{
    ActionOutcome, ActionSpec, ActionsFile, EngineOptions, NoProgress, Op, RunReport, run,
};
use portcullis::model::{Entitlement, Subject};
use portcullis::ratelimit::RateLimitConfig;
use portcullis_e2e::josh::{self, Josh};
use portcullis_e2e::{app, host_with, host_with_sink, plugins};
use portcullis_simulators::{JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN, SlackSimulator, jira_demo};

const LATENCY: Duration = Duration::from_millis(150);
const SLACK_TOKEN: &str = "xoxb-bench-0000000000-portcullis";
const SLACK_BOT: &str = "U0300PBOT1";
const SLACK_USER: &str = "U0300JOSH1";
const CHANNELS: usize = 1000;
/// (b)'s last figure: a server answering in 2 ms, nearer than any SaaS API.
const NEARBY: Duration = Duration::from_millis(2);
const ROUNDS: usize = 3;
const RATE: u32 = 20;
const RATE_ACTIONS: usize = 32;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn outcomes(report: &RunReport) -> String {
    let verified = report.count(|o| *o == ActionOutcome::Verified);
    let pending = report.count(|o| matches!(o, ActionOutcome::Pending { .. }));
    let alerted = report.count(|o| matches!(o, ActionOutcome::Alerted { .. }));
    format!("{verified} verified, {pending} pending, {alerted} alerted")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `cargo bench --bench engine -- throughput` runs only the sections named.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run_section = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w));
    rt.block_on(async {
        if run_section("latency") {
            latency().await;
        }
        if run_section("throughput") {
            throughput().await;
        }
        if run_section("rate-limit") {
            rate_limit().await;
        }
    });
}

/// (a)
async fn latency() {
    let actions = ActionsFile::load(&josh::actions_path())
        .expect("actions file")
        .into_actions();
    let josh = Josh::start().await;
    let host = josh.host();
    // Describe every app once so plugin loading is not in the figure (the engine asks
    // each app's describe once per host; a long-running host has it already).
    for name in josh::APPS {
        let _ = host.connector_info(name).await;
    }
    josh.set_latency(LATENCY);
    let options = EngineOptions::default();
    let started = Instant::now();
    let report = run(
        Arc::clone(&host),
        "bench-josh-1",
        actions.clone(),
        &options,
        Arc::new(NoProgress),
    )
    .await
    .expect("run starts");
    let wall = started.elapsed();

    let longest = report
        .actions
        .iter()
        .max_by_key(|a| a.http.len())
        .expect("actions");
    let floor = LATENCY * u32::try_from(longest.http.len()).unwrap_or(u32::MAX);
    println!(
        "(a) Josh, {} actions, {} ms per API call",
        actions.len(),
        LATENCY.as_millis()
    );
    println!("    first run: {:.0} ms ({})", ms(wall), outcomes(&report));
    println!(
        "    floor: {} sequential calls ({} {} {}) x {} ms = {:.0} ms; overhead {:.0} ms",
        longest.http.len(),
        longest.app,
        longest.entitlement.kind,
        longest.entitlement.resource,
        LATENCY.as_millis(),
        ms(floor),
        ms(wall) - ms(floor)
    );
    for name in josh::APPS {
        let calls: Vec<usize> = report
            .actions
            .iter()
            .filter(|a| a.app == name)
            .map(|a| a.http.len())
            .collect();
        println!(
            "      {name:<12} {} actions, calls per action {:?}",
            calls.len(),
            calls
        );
    }

    josh.accept_invitations();
    let started = Instant::now();
    let again = run(
        Arc::clone(&host),
        "bench-josh-2",
        actions,
        &options,
        Arc::new(NoProgress),
    )
    .await
    .expect("run starts");
    println!(
        "    second run after accepting invitations: {:.0} ms ({})",
        ms(started.elapsed()),
        outcomes(&again)
    );
    josh.set_latency(Duration::ZERO);
}

async fn slack_workspace(latency: Duration) -> SlackSimulator {
    let sim = SlackSimulator::start().await.expect("slack simulator");
    if !latency.is_zero() {
        sim.faults().slow_responses(u32::MAX, latency);
    }
    sim.add_bot(
        SLACK_TOKEN,
        SLACK_BOT,
        "portcullis",
        &portcullis_simulators::slack::SLACK_DEMO_SCOPES,
    );
    sim.add_user(SLACK_USER, "josh");
    for i in 0..CHANNELS {
        let id = channel(i);
        sim.add_channel(&id, &format!("bench-{i}"), false);
        sim.add_bot_to_channel(&id);
    }
    sim
}

fn channel(i: usize) -> String {
    format!("C03{i:07}")
}

/// (b)
async fn throughput() {
    let actions: Vec<ActionSpec> = (0..CHANNELS)
        .map(|i| ActionSpec {
            op: Op::Grant,
            app: "slack".into(),
            subject: Subject {
                id: SLACK_USER.into(),
                email: None,
            },
            entitlement: Entitlement {
                kind: "channel".into(),
                resource: channel(i),
                level: None,
            },
            reason: "bench".into(),
            trigger: Default::default(),
        })
        .collect();
    let rounds: Vec<Round> = rounds_of(&actions, Duration::ZERO, true).await;
    let engine = median(rounds.iter().map(|r| r.engine).collect());
    let native = median(rounds.iter().map(|r| r.native).collect());
    let ceiling = median(rounds.iter().filter_map(|r| r.ceiling).collect());
    println!(
        "(b) {CHANNELS} Slack channel grants, zero latency, concurrency {}, {} calls per action (median of {ROUNDS})",
        rounds[0].concurrency, rounds[0].calls_per_action
    );
    println!(
        "    engine (wasm sandbox per call, read-back, audit): {engine:.0} verified actions/s"
    );
    println!("    native reqwest replay of the same calls:          {native:.0} actions/s");
    println!("    ratio engine/native: {:.2}", engine / native);
    println!(
        "    ceiling: native replay + 2 empty fresh sandboxes per action: {ceiling:.0} actions/s = {:.2} of native",
        ceiling / native
    );

    let rounds = rounds_of(&actions, NEARBY, false).await;
    let engine = median(rounds.iter().map(|r| r.engine).collect());
    let native = median(rounds.iter().map(|r| r.native).collect());
    println!(
        "    with {} ms per API call (a nearby server): engine {engine:.0} /s, native {native:.0} /s, ratio {:.2}",
        NEARBY.as_millis(),
        engine / native
    );
}

/// One round of (b): the engine's figures and the native replay's, on fresh simulators.
struct Round {
    engine: f64,
    native: f64,
    ceiling: Option<f64>,
    concurrency: usize,
    calls_per_action: usize,
}

async fn rounds_of(actions: &[ActionSpec], latency: Duration, ceiling: bool) -> Vec<Round> {
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        rounds.push(throughput_round(actions, round, latency, ceiling).await);
    }
    rounds
}

async fn throughput_round(
    actions: &[ActionSpec],
    round: usize,
    latency: Duration,
    ceiling: bool,
) -> Round {
    let client = reqwest::Client::new();
    let sim = slack_workspace(latency).await;
    // The production audit sink: one JSON line per event, appended and flushed.
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let sink = JsonLinesSink::open(&audit_dir.path().join("audit.jsonl")).expect("audit file");
    let host = Arc::new(host_with_sink(
        Config::default(),
        vec![(
            "slack",
            app(plugins::SLACK, &sim.base_url(), &[("token", SLACK_TOKEN)]),
        )],
        Arc::new(sink),
    ));
    let _ = host.connector_info("slack").await;
    let concurrency = host.app("slack").map_or(1, |a| a.limiter.concurrency());
    let started = Instant::now();
    let report = run(
        Arc::clone(&host),
        &format!("bench-slack-{round}"),
        actions.to_vec(),
        &EngineOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .expect("run starts");
    let wall = started.elapsed();
    let verified = report.count(|o| *o == ActionOutcome::Verified);
    assert_eq!(
        verified, CHANNELS,
        "every action verified on its first attempt"
    );
    let engine = verified as f64 / wall.as_secs_f64();

    // The same calls (path and query as the run's reports recorded them) from plain
    // reqwest, against an identically seeded workspace.
    let base = sim.base_url();
    let plans: Vec<Vec<(String, String, Option<String>)>> = report
        .actions
        .iter()
        .map(|a| {
            a.http
                .iter()
                .map(|c| {
                    let path = c.url.strip_prefix(&base).unwrap_or(&c.url).to_owned();
                    let body = (c.method == "POST").then(|| {
                        if c.url.ends_with("/conversations.invite") {
                            format!(
                                r#"{{"channel":"{}","users":"{}"}}"#,
                                a.entitlement.resource, a.subject.id
                            )
                        } else {
                            "{}".to_owned()
                        }
                    });
                    (c.method.clone(), path, body)
                })
                .collect()
        })
        .collect();
    let fresh = slack_workspace(latency).await;
    let started = Instant::now();
    let ok = replay(&client, &fresh.base_url(), plans.clone(), concurrency, None).await;
    let native = ok as f64 / started.elapsed().as_secs_f64();
    let members = fresh
        .channel_members(&channel(0))
        .contains(&SLACK_USER.to_owned());
    assert!(members, "the native replay did the same work");

    // The ceiling: the same replay, plus the two sandboxes every action needs (its write
    // and its read-back), created and dropped without running anything in them.
    let ceiling = if ceiling {
        let floor = slack_workspace(latency).await;
        let started = Instant::now();
        let ok = replay(&client, &floor.base_url(), plans, concurrency, Some(&host)).await;
        Some(ok as f64 / started.elapsed().as_secs_f64())
    } else {
        None
    };
    Round {
        engine,
        native,
        ceiling,
        concurrency,
        calls_per_action: report.actions.first().map_or(0, |a| a.http.len()),
    }
}

/// Replays each action's calls in order, `concurrency` actions at a time; returns how many
/// actions got only 2xx answers. With `sandboxes`, each action first creates and drops two
/// fresh Slack sandboxes, one each for the engine's write and read-back, calling nothing.
async fn replay(
    client: &reqwest::Client,
    base_url: &str,
    plans: Vec<Vec<(String, String, Option<String>)>>,
    concurrency: usize,
    sandboxes: Option<&Arc<Host>>,
) -> usize {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        let client = client.clone();
        let semaphore = Arc::clone(&semaphore);
        let sandboxes = sandboxes.cloned();
        let base_url = base_url.to_owned();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let mut ok = true;
            if let Some(host) = sandboxes {
                for _ in 0..2 {
                    ok &= host.bench_empty_sandbox("slack").await.is_ok();
                }
            }
            for (method, path, body) in plan {
                let url = format!("{base_url}{path}");
                let request = match method.as_str() {
                    "POST" => client
                        .post(&url)
                        .header("content-type", "application/json; charset=utf-8")
                        .body(body.unwrap_or_default()),
                    _ => client.get(&url),
                };
                let answer = request.bearer_auth(SLACK_TOKEN).send().await;
                match answer {
                    Ok(answer) => {
                        ok &= answer.status().is_success();
                        // Read and parse the body, as the connector does.
                        let parsed = answer
                            .bytes()
                            .await
                            .ok()
                            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
                        ok &= parsed.is_some();
                    }
                    Err(_) => ok = false,
                }
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        if matches!(done, Ok(true)) {
            ok += 1;
        }
    }
    ok
}

/// (c)
async fn rate_limit() {
    let sim = jira_demo().await.expect("jira simulator");
    let roles = [
        "PLAT/Developers",
        "PLAT/Viewers",
        "OPS/Developers",
        "OPS/Viewers",
    ];
    let users: Vec<String> = (0..RATE_ACTIONS)
        .map(|i| format!("bench-user-{i:03}"))
        .collect();
    for user in &users {
        sim.add_user(user);
    }
    let actions: Vec<ActionSpec> = users
        .iter()
        .enumerate()
        .map(|(i, user)| ActionSpec {
            op: Op::Grant,
            app: "jira".into(),
            subject: Subject {
                id: user.clone(),
                email: None,
            },
            entitlement: Entitlement {
                kind: "project-role".into(),
                resource: roles[i % roles.len()].into(),
                level: None,
            },
            reason: "bench".into(),
            trigger: Default::default(),
        })
        .collect();
    let mut config = app(
        plugins::JIRA,
        &sim.base_url(),
        &[("email", JIRA_DEMO_EMAIL), ("api-token", JIRA_DEMO_TOKEN)],
    );
    config.rate_limit = RateLimitConfig {
        per_second: Some(RATE),
        ..RateLimitConfig::default()
    };
    let (host, _audit) = host_with(Config::default(), vec![("jira", config)]);
    let host: Arc<Host> = Arc::new(host);
    let _ = host.connector_info("jira").await;
    // A fresh window: nothing before the run counts against the enforced rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.faults().enforce_rate(RATE);
    let before = sim.faults().arrivals().len();
    let over_before = sim.faults().over_limit_responses();
    let started = Instant::now();
    let report = run(
        Arc::clone(&host),
        "bench-rate",
        actions,
        &EngineOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .expect("run starts");
    let wall = started.elapsed();
    let arrivals: Vec<Instant> = sim.faults().arrivals().split_off(before);
    let over = sim.faults().over_limit_responses() - over_before;
    let requests = arrivals.len();
    let span = match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) => last.saturating_duration_since(*first),
        _ => Duration::ZERO,
    };
    // n requests spaced 1/N apart span (n - 1)/N seconds.
    let steady = if span.is_zero() {
        0.0
    } else {
        (requests.saturating_sub(1)) as f64 / span.as_secs_f64()
    };
    let overall = requests as f64 / wall.as_secs_f64();
    println!(
        "(c) Jira enforcing {RATE} req/s, app rate_limit per_second = {RATE}: {RATE_ACTIONS} actions, {requests} requests in {:.2} s ({})",
        wall.as_secs_f64(),
        outcomes(&report)
    );
    println!(
        "    achieved {steady:.2} req/s between first and last request = {:.3} of configured; {overall:.2} req/s over the whole run = {:.3}",
        steady / f64::from(RATE),
        overall / f64::from(RATE)
    );
    println!("    over-limit answers: {over}");
}
