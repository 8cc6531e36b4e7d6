//! Shared helpers for the end-to-end tests: one wasmtime runtime and compile cache for the
//! whole test binary (compiling a plugin in a debug build takes a few hundred ms), the
//! paths of the adversarial fixtures, and configs that point plugins at simulators.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use portcullis::audit::{AuditSink, MemorySink};
use portcullis::config::{AppConfig, Config, NetworkPolicy};
use portcullis::secrets::SecretSource;
use portcullis::{Host, Runtime};

pub mod josh;
pub mod moto;
pub mod peers;

/// Paths of the connector components in plugins/, built by build.rs.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// Paths of the adversarial fixture components in tests/fixtures/, built by build.rs.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

/// One runtime per test binary: engines are heavy, and sharing one also shares the
/// allocator pool, as a real host does.
pub fn runtime() -> Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new().expect("the wasmtime runtime starts"))
        .clone()
}

/// Compiled plugins survive between test binaries and runs.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-compile-cache")
}

/// An app served by `plugin` (a bundled name or a .wasm path) at `base_url`, with loopback
/// allowed (the simulators listen on 127.0.0.1) and the given secrets.
pub fn app(plugin: &str, base_url: &str, secrets: &[(&str, &str)]) -> AppConfig {
    AppConfig {
        plugin: plugin.to_owned(),
        base_url: url::Url::parse(base_url).expect("valid base URL"),
        secrets: secrets
            .iter()
            .map(|(name, value)| ((*name).to_owned(), SecretSource::Value((*value).into())))
            .collect(),
        reveal: Vec::new(),
        settings: BTreeMap::new(),
        network: NetworkPolicy {
            allow_loopback: true,
            ..NetworkPolicy::default()
        },
        limits: None,
        rate_limit: portcullis::ratelimit::RateLimitConfig::default(),
        ignore_subjects: Vec::new(),
    }
}

/// A host over `apps`, recording audit events in memory.
pub fn host(apps: Vec<(&str, AppConfig)>) -> (Host, MemorySink) {
    host_with(Config::default(), apps)
}

/// Like [`host`], with non-app parts of the config (limits) taken from `base`.
pub fn host_with(base: Config, apps: Vec<(&str, AppConfig)>) -> (Host, MemorySink) {
    let audit = MemorySink::new();
    let host = host_with_sink(base, apps, Arc::new(audit.clone()));
    (host, audit)
}

/// Like [`host_with`], recording audit events in `sink` (the engine benchmark uses the
/// production JSON-lines file).
pub fn host_with_sink(
    mut base: Config,
    apps: Vec<(&str, AppConfig)>,
    sink: Arc<dyn AuditSink>,
) -> Host {
    for (name, app) in apps {
        base.apps.insert(name.to_owned(), app);
    }
    Host::builder(base)
        .runtime(runtime())
        .cache_dir(cache_dir())
        .audit(sink)
        .build()
        .expect("host builds")
}
