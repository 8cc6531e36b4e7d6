//! One connector call in a fresh sandbox: a new `Store` and instance per call, with a CPU
//! budget (epoch deadline, host time excluded), a memory cap, a host-call cap, a
//! wall-clock budget over everything, and an audit record before and after.
//!
//! Architecture invariants:
//! - No state survives a call: the store is dropped at the end, trap or not.
//! - A call whose intent cannot be audited does not run.
//! - Whatever the plugin does, the caller gets a [`CallError`] that names the cause; a
//!   misbehaving plugin affects only its own call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::app::App;
use crate::audit::{AuditError, AuditEvent, AuditRecord, AuditSink};
use crate::guest::Instance as PluginInstance;
use crate::model::{ConnectorError, Entitlement, Subject};
use crate::runtime::{EPOCH_TICK, Runtime};

/// A limit the sandbox enforced. Raised as the trap error, then reported to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LimitExceeded {
    #[error(
        "the plugin used more than its {limit_ms} ms of CPU time and was stopped (limits.cpu_ms)"
    )]
    Cpu { limit_ms: u64 },
    #[error(
        "the plugin tried to grow its memory to {requested_mib} MiB, over its {limit_mib} MiB cap, and was stopped (limits.memory_mib)"
    )]
    Memory { limit_mib: u32, requested_mib: u64 },
    #[error(
        "the plugin made more than {limit} host calls in one call and was stopped (limits.host_calls)"
    )]
    HostCalls { limit: u32 },
    #[error(
        "the call did not finish within its {limit_ms} ms wall-clock budget and was stopped (limits.wall_ms)"
    )]
    WallClock { limit_ms: u64 },
}

impl LimitExceeded {
    fn name(&self) -> &'static str {
        match self {
            LimitExceeded::Cpu { .. } => "cpu",
            LimitExceeded::Memory { .. } => "memory",
            LimitExceeded::HostCalls { .. } => "host-calls",
            LimitExceeded::WallClock { .. } => "wall-clock",
        }
    }
}

/// Why a connector call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum CallError {
    /// The plugin ran and reported a failure.
    #[error("{0}")]
    Connector(ConnectorError),
    /// The sandbox stopped the plugin.
    #[error("{0}")]
    Limit(LimitExceeded),
    /// The plugin crashed (panic, unreachable, stack overflow, bad memory access).
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The call was refused before it ran.
    #[error("{0}")]
    Refused(String),
}

impl CallError {
    /// Whether trying again may succeed: rate limits and passing failures, and a call
    /// that ran out of wall-clock time (the network may have been slow).
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Connector(e) => e.is_retryable(),
            CallError::Limit(LimitExceeded::WallClock { .. }) => true,
            _ => false,
        }
    }
}

// Shared with the audit trail, which sits below the sandbox.
pub use crate::model::HttpCall;

/// What a call cost and did, whatever its result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallReport {
    pub call_id: String,
    pub duration_ms: f64,
    pub host_calls: u32,
    pub http: Vec<HttpCall>,
    pub log_lines_dropped: u32,
}

/// A result plus its report.
#[derive(Debug, Clone)]
pub struct Call<T> {
    pub result: Result<T, CallError>,
    pub report: CallReport,
}

/// What is being called, for the audit record.
#[derive(Debug, Clone)]
pub struct Operation {
    pub name: &'static str,
    pub subject: Option<Subject>,
    pub entitlement: Option<Entitlement>,
    pub idempotency_key: Option<String>,
}

impl Operation {
    pub fn simple(name: &'static str) -> Operation {
        Operation {
            name,
            subject: None,
            entitlement: None,
            idempotency_key: None,
        }
    }
}

/// Counters of one call, read by the limits and the report.
#[derive(Debug)]
pub(crate) struct Meter {
    pub started: Instant,
    /// Time spent inside host imports, excluded from the CPU budget.
    pub host_time: Duration,
    pub host_calls: u32,
    pub log_lines: u32,
    pub log_bytes: u32,
    pub log_lines_dropped: u32,
    pub http: Vec<HttpCall>,
}

/// The data of one sandbox `Store`.
pub struct CallState {
    pub(crate) app: Arc<App>,
    pub(crate) call_id: String,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) meter: Meter,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    /// Counts a host call; past the cap, the error becomes a trap that ends the call.
    pub(crate) fn enter_host_call(&mut self) -> wasmtime::Result<()> {
        self.meter.host_calls += 1;
        let limit = self.app.limits.host_calls;
        if self.meter.host_calls > limit {
            return Err(wasmtime::Error::new(LimitExceeded::HostCalls { limit }));
        }
        Ok(())
    }

    pub(crate) fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        record(&*self.audit, &self.app, &self.call_id, event)
    }
}

fn record(
    audit: &dyn AuditSink,
    app: &App,
    call_id: &str,
    event: AuditEvent,
) -> Result<(), AuditError> {
    audit.record(&AuditRecord {
        at: Utc::now(),
        call_id: call_id.to_owned(),
        app: app.name.clone(),
        plugin_sha256: app.plugin.sha256.clone(),
        event,
    })
}

/// Enforces the per-call memory cap with an error that says which limit was hit.
struct MemoryLimiter {
    limit_mib: u32,
    max_bytes: usize,
}

/// Tables, instances and memories a plugin may create: far above what a Rust or
/// wit-bindgen component uses, far below what could hurt the host.
const MAX_TABLE_ELEMENTS: usize = 20_000;
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 4;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit_mib: self.limit_mib,
                requested_mib: (desired as u64).div_ceil(1024 * 1024),
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

fn new_call_id() -> String {
    format!(
        "{:x}-{}",
        std::process::id(),
        NEXT_CALL.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) type GuestFuture<'a, T> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<T, ConnectorError>>> + Send + 'a>>;

/// Runs one export of `app`'s plugin in a fresh sandbox.
pub(crate) async fn run<T, F>(
    runtime: &Runtime,
    audit: &Arc<dyn AuditSink>,
    app: &Arc<App>,
    operation: Operation,
    call: F,
) -> Call<T>
where
    T: Send,
    F: for<'a> FnOnce(&'a PluginInstance, &'a mut Store<CallState>) -> GuestFuture<'a, T>,
{
    let call_id = new_call_id();
    let started = Instant::now();
    let intent = AuditEvent::CallStarted {
        operation: operation.name.to_owned(),
        subject: operation.subject.clone(),
        entitlement: operation.entitlement.clone(),
        idempotency_key: operation.idempotency_key.clone(),
    };
    if let Err(e) = record(&**audit, app, &call_id, intent) {
        return Call {
            result: Err(CallError::Refused(format!(
                "the call was not run because its intent could not be audited: {e}"
            ))),
            report: CallReport {
                call_id,
                ..CallReport::default()
            },
        };
    }

    // Secrets are read when their app is first used: a missing one refuses this app's
    // calls, naming it, and no other app's. `describe` needs none.
    if operation.name != "describe"
        && let Err(problem) = app.secrets.load()
    {
        let error = CallError::Refused(format!(
            "{problem}; calls to app `{}` are refused until it can be read (other apps are not affected)",
            app.name
        ));
        let finished = AuditEvent::CallFinished {
            operation: operation.name.to_owned(),
            ok: false,
            result: error.to_string(),
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            host_calls: 0,
            http_requests: 0,
        };
        if let Err(e) = record(&**audit, app, &call_id, finished) {
            tracing::error!(call_id, error = %e, "could not audit the end of a call");
        }
        return Call {
            result: Err(error),
            report: CallReport {
                call_id,
                ..CallReport::default()
            },
        };
    }

    let limits = &app.limits;
    let mut store = new_store(runtime, audit, app, call_id.clone(), started);
    let wall = Duration::from_millis(limits.wall_ms);
    let outcome = tokio::time::timeout(wall, async {
        let instance = app.plugin.pre.instantiate_async(&mut store).await?;
        call(&instance, &mut store).await
    })
    .await;

    let result = match outcome {
        Err(_elapsed) => Err(CallError::Limit(LimitExceeded::WallClock {
            limit_ms: limits.wall_ms,
        })),
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(connector_error))) => Err(CallError::Connector(connector_error)),
        Ok(Err(trap)) => Err(classify_trap(&trap)),
    };

    let state = store.data();
    if let Err(CallError::Limit(limit)) = &result {
        let _ = state.record(AuditEvent::LimitExceeded {
            limit: limit.name().to_owned(),
            detail: limit.to_string(),
        });
    }
    let duration_ms = started.elapsed().as_secs_f64() * 1e3;
    let report = CallReport {
        call_id: call_id.clone(),
        duration_ms,
        host_calls: state.meter.host_calls,
        http: state.meter.http.clone(),
        log_lines_dropped: state.meter.log_lines_dropped,
    };
    let finished = AuditEvent::CallFinished {
        operation: operation.name.to_owned(),
        ok: result.is_ok(),
        result: match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        },
        duration_ms,
        host_calls: report.host_calls,
        http_requests: report.http.len() as u32,
    };
    if let Err(e) = state.record(finished) {
        tracing::error!(call_id, error = %e, "could not audit the end of a call");
    }
    crate::metrics::call_finished(
        &app.name,
        operation.name,
        &result,
        started.elapsed(),
        &report.http,
    );
    Call { result, report }
}

/// A fresh store with every limit of `app` armed.
fn new_store(
    runtime: &Runtime,
    audit: &Arc<dyn AuditSink>,
    app: &Arc<App>,
    call_id: String,
    started: Instant,
) -> Store<CallState> {
    let limits = &app.limits;
    let mut store = Store::new(
        runtime.engine(),
        CallState {
            app: Arc::clone(app),
            call_id,
            audit: Arc::clone(audit),
            meter: Meter {
                started,
                host_time: Duration::ZERO,
                host_calls: 0,
                log_lines: 0,
                log_bytes: 0,
                log_lines_dropped: 0,
                http: Vec::new(),
            },
            wasi: empty_wasi(),
            table: resource_table(),
            limiter: MemoryLimiter {
                limit_mib: limits.memory_mib,
                max_bytes: limits.memory_bytes(),
            },
        },
    );
    store.limiter(|state| &mut state.limiter);
    let cpu_budget = Duration::from_millis(limits.cpu_ms);
    store.set_epoch_deadline(ticks_for(cpu_budget));
    let cpu_limit_ms = limits.cpu_ms;
    store.epoch_deadline_callback(move |ctx| {
        let meter = &ctx.data().meter;
        let guest_time = meter.started.elapsed().saturating_sub(meter.host_time);
        match cpu_budget.checked_sub(guest_time) {
            Some(left) if !left.is_zero() => Ok(UpdateDeadline::Continue(ticks_for(left))),
            _ => Err(wasmtime::Error::new(LimitExceeded::Cpu {
                limit_ms: cpu_limit_ms,
            })),
        }
    });
    store
}

/// Benchmark baseline: one instance, many grants, each timed. See
/// `Host::bench_reused_instance_grants`.
pub(crate) async fn time_reused_instance(
    runtime: &Runtime,
    audit: &Arc<dyn AuditSink>,
    app: &Arc<App>,
    action: &crate::model::Action,
    iterations: usize,
) -> Result<Vec<Duration>, CallError> {
    let mut store = new_store(runtime, audit, app, new_call_id(), Instant::now());
    let instance = app
        .plugin
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| classify_trap(&e))?;
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        // Keep the meters from tripping: this loop measures calls, not limits.
        store.data_mut().meter.host_calls = 0;
        store.data_mut().meter.started = Instant::now();
        store.data_mut().meter.host_time = Duration::ZERO;
        let start = Instant::now();
        let result = instance
            .guest()
            .grant(&mut store, action)
            .await
            .map_err(|e| classify_trap(&e))?;
        times.push(start.elapsed());
        result.map_err(CallError::Connector)?;
    }
    Ok(times)
}

/// Benchmark floor: creates a fresh sandbox exactly as a call does (store, limits,
/// instantiation) and drops it without calling anything. See `Host::bench_empty_sandbox`.
pub(crate) async fn instantiate_and_drop(
    runtime: &Runtime,
    audit: &Arc<dyn AuditSink>,
    app: &Arc<App>,
) -> Result<(), CallError> {
    let mut store = new_store(runtime, audit, app, new_call_id(), Instant::now());
    app.plugin
        .pre
        .instantiate_async(&mut store)
        .await
        .map(drop)
        .map_err(|e| classify_trap(&e))
}

/// WASI resources (streams, pollables) one call may hold at once; a connector needs a
/// handful, and a plugin creating them in a loop must not grow host memory unbounded.
const MAX_WASI_RESOURCES: usize = 256;

fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_WASI_RESOURCES);
    table
}

/// A WASI context that grants nothing: no arguments, environment or preopened
/// directories; stdio discarded; sockets and name lookup refused.
fn empty_wasi() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

fn ticks_for(budget: Duration) -> u64 {
    (budget.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

/// Turns a trap into the reason the caller sees.
fn classify_trap(error: &wasmtime::Error) -> CallError {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return CallError::Limit(limit.clone());
    }
    if let Some(audit) = error.downcast_ref::<AuditError>() {
        return CallError::Refused(format!("the call was stopped because {audit}"));
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        let hint = match trap {
            wasmtime::Trap::StackOverflow => " (unbounded recursion?)",
            wasmtime::Trap::UnreachableCodeReached => " (a panic or abort in the plugin)",
            _ => "",
        };
        return CallError::Trap(format!("{trap}{hint}"));
    }
    // Other traps carry a backtrace with the plugin's own function names: bounded, like
    // every plugin-supplied text.
    CallError::Trap(crate::untrusted::bound(
        format!("{error:#}"),
        crate::untrusted::caps::MESSAGE_BYTES,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_never_reach_zero() {
        assert_eq!(ticks_for(Duration::ZERO), 2);
        assert!(ticks_for(Duration::from_millis(1000)) >= 500);
    }

    #[test]
    fn wall_clock_limits_are_retryable_crashes_are_not() {
        assert!(CallError::Limit(LimitExceeded::WallClock { limit_ms: 1 }).is_retryable());
        assert!(!CallError::Limit(LimitExceeded::Cpu { limit_ms: 1 }).is_retryable());
        assert!(!CallError::Trap("x".into()).is_retryable());
    }
}
