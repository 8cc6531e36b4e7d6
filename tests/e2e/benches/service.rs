//! Service benchmark: prints figures, asserts nothing (CI never gates on wall time).
//!
//! Run: `cargo bench -p portcullis-e2e --bench service`
//!
//! `portcullis serve` runs in this process on 127.0.0.1; every figure is measured through
//! its HTTP API, next to a baseline run in the same process without the service.
//! (a) Josh's signed hire event (HR-4711) to his grants verified, with 150 ms added to every
//!     API call. Baseline: the same plan applied through the library operations directly
//!     (no HTTP, no webhook, no job) on a fresh world. Target < 1.5 s.
//! (b) Hot swap under load: 50 callers keep calling GitHub's `check` while the plugin file
//!     is replaced; from the file write to the new sha256 serving, and the calls that
//!     failed. Baseline: compiling the same new bytes alone (the swap's floor: a new
//!     version is new machine code). Target < 100 ms after compilation, 0 failed calls.
//! (c) `GET /v1/plan?person=E1001`, p50 and p99 over 200 sequential calls. Baseline: the
//!     same situation-and-plan through the library directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use portcullis::audit::JsonLinesSink;
use portcullis::config::{Config, HrWebhookConfig, Role, TokenConfig};
use portcullis::engine::NoProgress;
use portcullis::ops::{Sources, Workspace};
use portcullis::plugin::sha256_hex;
use portcullis::secrets::SecretSource;
use portcullis::service::{ServeOptions, hr::sign, serve};
use portcullis::state::SqliteStore;
use portcullis_e2e::josh::Josh;
use portcullis_e2e::{app, host_with_sink, plugins};
use portcullis_simulators::{GITHUB_DEMO_TOKEN, github_demo};
use serde_json::Value;

const LATENCY: Duration = Duration::from_millis(150);
const TOKEN: &str = "bench-operator-token-0123456789";
const HR_TOKEN: &str = "bench-hr-token-0123456789";
const HR_SECRET: &str = "bench-hr-secret-0123456789";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn josh_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/josh")
        .join(name)
}

/// The config the service runs on: `apps`, Josh's policy and directory, state and audit
/// in `dir`, tokens and the webhook secret.
fn config(dir: &Path, apps: Vec<(&'static str, portcullis::config::AppConfig)>) -> Config {
    let mut config = Config::default();
    for (name, app) in apps {
        config.apps.insert(name.to_owned(), app);
    }
    config.policy.path = Some(josh_file("policy.toml"));
    config.people.directory = Some(josh_file("people.json"));
    config.state.path = Some(dir.join("state.db"));
    config.server.schedule.reconcile_every_s = 3600;
    config.server.schedule.drift_every_s = 0;
    config.server.schedule.dormant_every_s = 0;
    config.server.tokens = vec![
        TokenConfig {
            name: "bench".into(),
            role: Role::Operator,
            secret: SecretSource::Value(TOKEN.into()),
        },
        TokenConfig {
            name: "bench-hr".into(),
            role: Role::HrSource,
            secret: SecretSource::Value(HR_TOKEN.into()),
        },
    ];
    config.server.hr_webhook = Some(HrWebhookConfig {
        secret: SecretSource::Value(HR_SECRET.into()),
        tolerance_s: 300,
    });
    config
}

fn workspace(config: Config, dir: &Path) -> Workspace {
    let sink = Arc::new(JsonLinesSink::open(&dir.join("audit.jsonl")).expect("audit file"));
    let host = host_with_sink(config.clone(), Vec::new(), sink);
    let store = SqliteStore::open(&dir.join("state.db")).expect("state");
    Workspace::new(config, Arc::new(host), Arc::new(store))
}

/// Starts the service on its own task; returns its base URL.
async fn start(ws: Workspace) -> String {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let options = ServeOptions {
        listen: Some("127.0.0.1:0".into()),
        on_listening: Box::new(move |addr| {
            let _ = tx.send(addr);
        }),
    };
    tokio::spawn(async move {
        if let Err(e) = serve(ws, options).await {
            eprintln!("the service stopped: {e}");
        }
    });
    format!("http://{}", rx.await.expect("the service listens"))
}

async fn get(http: &reqwest::Client, url: &str) -> Value {
    let response = http
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answered");
    serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or(Value::Null)
}

async fn wait_for_first_reconcile(http: &reqwest::Client, url: &str) {
    loop {
        let jobs = get(http, &format!("{url}/v1/jobs")).await;
        if jobs["scheduled"][0]["last_outcome"].is_string() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        webhook_to_verified().await;
        hot_swap_under_load().await;
        plan_latency().await;
    });
}

/// The hire event from `examples/josh/hr-events.json`, as the HR system would send it.
fn hire_event() -> String {
    let events: Value = serde_json::from_str(
        &std::fs::read_to_string(josh_file("hr-events.json")).expect("events"),
    )
    .expect("json");
    serde_json::json!({ "events": [events["events"][0].clone()] }).to_string()
}

async fn webhook_to_verified() {
    let http = reqwest::Client::new();
    // Baseline: the library operations directly, on a world of its own.
    let baseline = {
        let josh = Josh::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let events = dir.path().join("hire.json");
        std::fs::write(&events, hire_event()).expect("events");
        let ws = workspace(config(dir.path(), josh.apps()), dir.path());
        // Described once, as the running service has done before the event arrives.
        ws.situation(&Sources::default()).await.expect("situation");
        josh.set_latency(LATENCY);
        let started = Instant::now();
        let sources = Sources {
            events: Some(events),
            ..Sources::default()
        };
        let prepared = ws
            .prepare_apply(&sources, None, "bench")
            .await
            .expect("prepared");
        let applied = ws
            .run(
                &prepared,
                "bench-direct",
                false,
                Arc::new(NoProgress),
                &portcullis::model::RunOrigin::default(),
            )
            .await
            .expect("ran");
        (started.elapsed(), applied.outcome.report.actions.len())
    };

    let josh = Josh::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = start(workspace(config(dir.path(), josh.apps()), dir.path())).await;
    wait_for_first_reconcile(&http, &url).await;
    josh.set_latency(LATENCY);
    let body = hire_event();
    let started = Instant::now();
    let response = http
        .post(format!("{url}/v1/hr-events"))
        .bearer_auth(HR_TOKEN)
        .header(
            "X-Portcullis-Signature",
            sign(HR_SECRET, chrono::Utc::now().timestamp(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("answered");
    let accepted_after = started.elapsed();
    let answer: Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    let job_url = answer["url"].as_str().expect("job url").to_owned();
    let job = loop {
        let job = get(&http, &job_url).await["job"].clone();
        if !job["finished_at"].is_null() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = started.elapsed();
    let detail = &job["detail"];
    println!("(a) Josh's signed hire event to his grants read back, {LATENCY:?} per API call:");
    println!(
        "    service:  {:>7.0} ms  (accepted and stored in {:.0} ms; {} actions: {} verified, {} pending, {} alerted)",
        ms(elapsed),
        ms(accepted_after),
        detail["actions"],
        detail["verified"],
        detail["pending"],
        detail["alerted"]
    );
    println!(
        "    baseline: {:>7.0} ms  (the same plan through the library, {} actions)",
        ms(baseline.0),
        baseline.1
    );
    println!(
        "    ratio service / baseline: {:.2}; target < 1500 ms",
        ms(elapsed) / ms(baseline.0)
    );
}

/// `bytes` with a custom section appended: new bytes, same component.
fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"portcullis-bench-build";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

async fn hot_swap_under_load() {
    let http = reqwest::Client::new();
    let sim = github_demo().await.expect("simulator");
    // Thousands of checks: above GitHub's hourly budget, which is not what is measured.
    sim.set_rate_limit(u32::MAX);
    let dir = tempfile::tempdir().expect("tempdir");
    let original = std::fs::read(plugins::GITHUB).expect("github plugin");
    let file = dir.path().join("github.wasm");
    std::fs::write(&file, &original).expect("plugin file");
    let apps = vec![(
        "github",
        app(
            &file.display().to_string(),
            &sim.base_url(),
            &[("token", GITHUB_DEMO_TOKEN)],
        ),
    )];
    let mut cfg = config(dir.path(), apps);
    // Josh's policy names six apps; this world has one.
    cfg.policy.path = None;
    cfg.people.directory = None;
    let ws = workspace(cfg, dir.path());
    // Bytes no earlier run compiled, so neither figure is a compile-cache hit.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Baseline: compiling new bytes alone.
    let compile_only = {
        let probe = dir.path().join("probe.wasm");
        std::fs::write(&probe, rebuilt(&original, &format!("probe-{run}"))).expect("probe");
        let started = Instant::now();
        ws.host
            .compile_plugin_file("github", &probe)
            .await
            .expect("compiles");
        started.elapsed()
    };
    let url = start(ws).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, url, stop) = (http.clone(), url.clone(), Arc::clone(&stop));
        let (calls, failed) = (Arc::clone(&calls), Arc::clone(&failed));
        callers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = http
                    .post(format!("{url}/v1/apps/github/check"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                calls.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let next = rebuilt(&original, &format!("next-{run}"));
    let wanted = sha256_hex(&next);
    let started = Instant::now();
    std::fs::write(&file, &next).expect("new plugin file");
    // As an operator's deploy would: write, then ask (the watcher would notice within 1 s).
    let reload = http
        .post(format!("{url}/v1/plugins/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answered");
    let reload: Value = serde_json::from_slice(&reload.bytes().await.expect("body")).expect("json");
    loop {
        let plugin = get(&http, &format!("{url}/v1/plugins/github")).await;
        if plugin["sha256"] == wanted.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let serving = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    while callers.join_next().await.is_some() {}
    println!("(b) hot swap under load (50 callers on GitHub check):");
    println!(
        "    file written + reload asked -> new version serving: {:>7.0} ms ({})",
        ms(serving),
        reload["plugins"][0]["outcome"]
    );
    println!(
        "    baseline, compiling the new bytes alone: {:>7.0} ms; the swap beyond compiling: {:.0} ms (target < 100)",
        ms(compile_only),
        ms(serving) - ms(compile_only)
    );
    println!(
        "    calls during the run: {}, failed: {}",
        calls.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}

async fn plan_latency() {
    let http = reqwest::Client::new();
    let josh = Josh::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("hire.json");
    std::fs::write(&events, hire_event()).expect("events");
    let mut cfg = config(dir.path(), josh.apps());
    cfg.people.events = Some(events);
    let url = start(workspace(cfg.clone(), dir.path())).await;
    // Its first reconcile applies Josh's hire; then both measure the same plan.
    wait_for_first_reconcile(&http, &url).await;
    let mut api_ms = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let plan = get(&http, &format!("{url}/v1/plan?person=E1001")).await;
        assert!(plan["plan"].is_object());
        api_ms.push(ms(started.elapsed()));
    }
    // Baseline: a second workspace on the same state (plans only read it).
    let direct_dir = dir.path().join("direct");
    std::fs::create_dir_all(&direct_dir).expect("dir");
    let sink = Arc::new(JsonLinesSink::open(&direct_dir.join("audit.jsonl")).expect("audit"));
    let host = host_with_sink(cfg.clone(), Vec::new(), sink);
    let store = SqliteStore::open(&dir.path().join("state.db")).expect("state");
    let direct = Workspace::new(cfg, Arc::new(host), Arc::new(store));
    direct
        .situation(&Sources::default())
        .await
        .expect("situation");
    let mut direct_ms = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let situation = direct
            .situation(&Sources::default())
            .await
            .expect("situation");
        let mut plan = direct.plan(&situation).expect("plan");
        plan.retain(|p, _| p.id == "E1001");
        direct_ms.push(ms(started.elapsed()));
    }
    println!("(c) one person's plan (Josh, 6 apps):");
    println!(
        "    GET /v1/plan?person=E1001: p50 {:.2} ms, p99 {:.2} ms",
        percentile(api_ms.clone(), 0.5),
        percentile(api_ms, 0.99)
    );
    println!(
        "    baseline, library directly: p50 {:.2} ms, p99 {:.2} ms",
        percentile(direct_ms.clone(), 0.5),
        percentile(direct_ms, 0.99)
    );
}
