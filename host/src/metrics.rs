//! Process-wide metrics, recorded where things happen (every sandboxed call, every HTTP
//! request a plugin made, every rate-limit wait, every action's verdict) and rendered in
//! the Prometheus text format by `portcullis serve` at `/metrics`. Labels are app, export,
//! outcome and status: bounded sets, never subjects or resources.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::model::{ActionOutcome, HttpCall};
use crate::sandbox::CallError;

struct Metrics {
    registry: Registry,
    calls: IntCounterVec,
    call_seconds: HistogramVec,
    http: IntCounterVec,
    rate_waits: IntCounterVec,
    rate_wait_seconds: HistogramVec,
    verdicts: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(counter.clone()))
        .expect("registered once");
    counter
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let histogram = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    registry
        .register(Box::new(histogram.clone()))
        .expect("registered once");
    histogram
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let seconds = vec![
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    Metrics {
        calls: counter(
            &registry,
            "portcullis_connector_calls_total",
            "Connector calls, each in a fresh sandbox, by app, export and outcome.",
            &["app", "export", "outcome"],
        ),
        call_seconds: histogram(
            &registry,
            "portcullis_connector_call_duration_seconds",
            "Wall-clock time of connector calls, network included.",
            &["app", "export"],
            seconds.clone(),
        ),
        http: counter(
            &registry,
            "portcullis_http_requests_total",
            "HTTP requests plugins made through the host, by app and status (refused: stopped by the egress policy; failed: no answer).",
            &["app", "status"],
        ),
        rate_waits: counter(
            &registry,
            "portcullis_rate_limit_waits_total",
            "Requests that waited for a rate-limit token or a server-supplied wait.",
            &["app"],
        ),
        rate_wait_seconds: histogram(
            &registry,
            "portcullis_rate_limit_wait_seconds",
            "How long requests waited for their rate limit.",
            &["app"],
            seconds,
        ),
        verdicts: counter(
            &registry,
            "portcullis_action_verdicts_total",
            "Actions by their read-back verdict: verified, pending or alerted.",
            &["app", "verdict"],
        ),
        registry,
    }
});

/// One sandboxed call ended.
pub(crate) fn call_finished<T>(
    app: &str,
    export: &str,
    result: &Result<T, CallError>,
    duration: Duration,
    http: &[HttpCall],
) {
    let m = &*METRICS;
    let outcome = match result {
        Ok(_) => "ok",
        Err(CallError::Connector(_)) => "connector-error",
        Err(CallError::Limit(_)) => "limit-exceeded",
        Err(CallError::Trap(_)) => "trap",
        Err(CallError::Refused(_)) => "refused",
    };
    m.calls.with_label_values(&[app, export, outcome]).inc();
    m.call_seconds
        .with_label_values(&[app, export])
        .observe(duration.as_secs_f64());
    for call in http {
        let status = match (call.status, &call.refused) {
            (Some(status), _) => status.to_string(),
            (None, Some(_)) => "refused".to_owned(),
            (None, None) => "failed".to_owned(),
        };
        m.http.with_label_values(&[app, status.as_str()]).inc();
    }
}

/// A request of `app` waited `waited` for its rate limit (nothing recorded for no wait).
pub(crate) fn rate_waited(app: &str, waited: Duration) {
    if waited.is_zero() {
        return;
    }
    let m = &*METRICS;
    m.rate_waits.with_label_values(&[app]).inc();
    m.rate_wait_seconds
        .with_label_values(&[app])
        .observe(waited.as_secs_f64());
}

/// An action of `app` ended with `outcome`.
pub(crate) fn action_finished(app: &str, outcome: &ActionOutcome) {
    let verdict = match outcome {
        ActionOutcome::Verified => "verified",
        ActionOutcome::Pending { .. } => "pending",
        ActionOutcome::Alerted { .. } => "alerted",
    };
    METRICS.verdicts.with_label_values(&[app, verdict]).inc();
}

/// Gauges a caller computes at scrape time (queue depth, loaded plugins, schedules).
pub struct Gauges {
    registry: Registry,
}

impl Gauges {
    pub fn new() -> Gauges {
        Gauges {
            registry: Registry::new(),
        }
    }

    /// A gauge family with one sample per label set.
    pub fn family(&self, name: &str, help: &str, labels: &[&str], samples: &[(Vec<&str>, i64)]) {
        let Ok(gauge) = IntGaugeVec::new(Opts::new(name, help), labels) else {
            return;
        };
        for (values, value) in samples {
            gauge.with_label_values(values).set(*value);
        }
        let _ = self.registry.register(Box::new(gauge));
    }
}

impl Default for Gauges {
    fn default() -> Self {
        Gauges::new()
    }
}

/// Everything recorded so far plus `gauges`, in the Prometheus text format (0.0.4).
pub fn render(gauges: &Gauges) -> String {
    let mut families = METRICS.registry.gather();
    families.extend(gauges.registry.gather());
    let mut out = Vec::new();
    if TextEncoder::new().encode(&families, &mut out).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
