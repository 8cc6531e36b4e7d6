//! Runtime benchmark: prints figures, asserts nothing (CI never gates on wall time).
//!
//! Run: `cargo bench -p portcullis-e2e --bench runtime`
//!
//! 1. One connector call with one host call in a FRESH sandbox (new store + instance per
//!    call, the production path through `Host::grant`, audit included), next to the same
//!    call on a REUSED instance (the floor wasmtime allows). Target: fresh <= 15 µs.
//! 2. Each bundled plugin's compile time and its load time from the compile cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::audit::{AuditError, AuditRecord, AuditSink};
use portcullis::config::Config;
use portcullis::model::{Action, Entitlement, Subject};
use portcullis::plugin::Plugin;
use portcullis::{Host, Runtime};
use portcullis_e2e::{app, fixtures};

/// Audit sink that keeps nothing, so the figures are the runtime's own cost.
struct Discard;

impl AuditSink for Discard {
    fn record(&self, _record: &AuditRecord) -> Result<(), AuditError> {
        Ok(())
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let runtime = Runtime::new().expect("runtime");
        let mut config = Config::default();
        config.apps.insert(
            "bench".into(),
            app(fixtures::HOSTILE, "http://127.0.0.1:9", &[]),
        );
        let host = Host::builder(config)
            .runtime(runtime.clone())
            .no_cache()
            .audit(Arc::new(Discard))
            .build()
            .expect("host");
        // Kind `ok` makes exactly one host call (config.base-url) and returns.
        let action = Action {
            subject: Subject { id: "bench".into(), email: None },
            entitlement: Entitlement { kind: "ok".into(), resource: "r".into(), level: None },
            idempotency_key: "bench".into(),
            reason: "bench".into(),
        };

        const WARMUP: usize = 500;
        const ITERATIONS: usize = 20_000;
        for _ in 0..WARMUP {
            let call = host.grant("bench", &action).await;
            call.result.expect("warm-up call succeeds");
        }
        let mut fresh = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let start = Instant::now();
            let call = host.grant("bench", &action).await;
            fresh.push(start.elapsed());
            call.result.expect("call succeeds");
        }
        let reused = host
            .bench_reused_instance_grants("bench", &action, ITERATIONS)
            .await
            .expect("reused-instance calls succeed");
        let fresh_p99 = micros(percentile(&fresh, 0.99));
        let fresh_us = micros(median(fresh));
        let reused_us = micros(median(reused));
        println!("connector call with one host call ({ITERATIONS} iterations, median)");
        println!("  fresh sandbox per call (Host::grant, audit on): {fresh_us:>9.2} µs   target <= 15 µs: {}",
            if fresh_us <= 15.0 { "met" } else { "NOT met" });
        println!("  fresh sandbox, 99th percentile:                 {fresh_p99:>9.2} µs");
        println!("  same call on a reused instance (baseline):      {reused_us:>9.2} µs");
        println!("  ratio fresh / reused:                           {:>9.1}x", fresh_us / reused_us);

        // PORTCULLIS_BENCH_CALLS_ONLY=1 skips compilation, for profiling the call path.
        if std::env::var_os("PORTCULLIS_BENCH_CALLS_ONLY").is_some() {
            return;
        }
        println!("\nbundled plugins: compile and cached load (median)");
        let cache_dir = tempfile::tempdir().expect("tempdir");
        let cache = portcullis::cache::CompileCache::new(cache_dir.path()).expect("cache");
        for name in portcullis::bundled_plugins() {
            let bytes = portcullis::bundled_plugin(name).expect("bundled");
            let compile = median((0..5).map(|_| {
                let start = Instant::now();
                Plugin::from_bytes(&runtime, None, name, bytes).expect("compiles");
                start.elapsed()
            }).collect());
            Plugin::from_bytes(&runtime, Some(&cache), name, bytes).expect("fills the cache");
            let cached = median((0..50).map(|_| {
                let start = Instant::now();
                Plugin::from_bytes(&runtime, Some(&cache), name, bytes).expect("loads");
                start.elapsed()
            }).collect());
            println!(
                "  {name:<10} {:>7} bytes   compile {:>8.2} ms   cached load {:>8.1} µs   ({:.0}x faster)",
                bytes.len(),
                compile.as_secs_f64() * 1e3,
                micros(cached),
                compile.as_secs_f64() / cached.as_secs_f64()
            );
        }
    });
}
