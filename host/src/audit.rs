//! The audit trail: what every connector call set out to do, every HTTP request it made,
//! every secret it was given or refused, every limit it hit, and how it ended.
//!
//! Events go to an [`AuditSink`]. This module ships a JSON-lines file sink and an in-memory
//! sink for tests; the tamper-evident, hash-chained store implements the same trait.
//!
//! Architecture invariants:
//! - An event never contains a secret value or a request/response body. URLs are recorded
//!   without user-info and with credential-looking query parameters redacted; every line
//!   is scrubbed of loaded secret values ([`crate::redact`]) before it is written.
//! - Writing the intent of a call is a precondition of running it: if the sink fails, the
//!   call is refused (fail closed), so nothing happens that the trail does not show.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

use crate::model::{Entitlement, Subject};

pub mod chain;
pub mod checkpoint;
pub mod file;
pub mod merkle;
pub mod prove;
pub mod query;
pub mod verify;

pub use file::{JsonLinesSink, TrailOptions};

/// One line of the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    /// Identifies one connector call; every event of that call carries it.
    pub call_id: String,
    pub app: String,
    pub plugin_sha256: String,
    #[serde(flatten)]
    pub event: AuditEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum AuditEvent {
    /// Written before the plugin runs.
    CallStarted {
        operation: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<Subject>,
        #[serde(skip_serializing_if = "Option::is_none")]
        entitlement: Option<Entitlement>,
        #[serde(skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
    },
    /// One outbound request, sent or refused.
    Http {
        method: String,
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        latency_ms: f64,
        /// Why the host refused or failed the request; absent when it was answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        refused: Option<String>,
    },
    SecretRevealed {
        name: String,
    },
    SecretRefused {
        name: String,
        reason: String,
    },
    /// The call hit a sandbox limit and was stopped.
    LimitExceeded {
        limit: String,
        detail: String,
    },
    /// Written by the engine before an action's first attempt.
    ActionStarted {
        run: String,
        op: String,
        subject: Subject,
        entitlement: Entitlement,
        idempotency_key: String,
        /// What set it off: rule, HR event, approval and approver, operator and token,
        /// schedule.
        trigger: crate::model::Trigger,
    },
    /// An action whose intent was recorded but whose run was cut off (a crash, a kill):
    /// read back before anything else ran, and settled by what the app shows.
    /// `call_id` is the action's idempotency key.
    ActionRecovered {
        run: String,
        /// `applied` (the app shows it; state now records it), `not-applied` (the plan
        /// proposes it again) or `app-removed` (no longer configured: closed unread).
        finding: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        evidence: Option<crate::model::Observed>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Written by the engine when an action is verified, pending or alerted.
    ActionFinished {
        run: String,
        outcome: crate::model::ActionOutcome,
        attempts: u32,
        /// What the last read-back showed.
        #[serde(skip_serializing_if = "Option::is_none")]
        evidence: Option<crate::model::Observed>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_error: Option<String>,
        /// Every HTTP call of every attempt: method, URL, status, latency.
        http: Vec<crate::model::HttpCall>,
    },
    /// A person approved or denied a change that waited for approval (a sensitive grant,
    /// a dormant grant's revocation). `call_id` is `approval-ID`.
    ApprovalDecided {
        approval: i64,
        /// `approved` or `denied`.
        decision: String,
        by: String,
        reason: String,
        person: String,
        op: String,
        entitlement: Entitlement,
        policy_hash: String,
    },
    /// One call of the service's API, answered or refused. `call_id` is `api-N`.
    ApiCall {
        /// The token's name; `anonymous` when no valid token came with the call.
        caller: String,
        method: String,
        path: String,
        status: u16,
        /// Why the call was refused (401, 403, 4xx), in words.
        #[serde(skip_serializing_if = "Option::is_none")]
        refused: Option<String>,
    },
    /// Something needs a person: a scheduled or requested job that did not converge, a
    /// run stopped by the blast-radius guard. `call_id` is the job's id.
    Alert {
        job: String,
        kind: String,
        summary: String,
        detail: serde_json::Value,
    },
    /// An alert reached one of `[[server.alerts]]` (`delivered`), or did not after every
    /// attempt (`error` says why). `call_id` is the job's id.
    AlertDelivery {
        sink: String,
        delivered: bool,
        attempts: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// An HR event delivered to the service and stored (or recognised as a replay).
    HrEventReceived {
        event_id: String,
        kind: String,
        person: String,
        effective: DateTime<Utc>,
        /// The token that delivered it.
        source: String,
        /// Already stored by an earlier delivery: accepted once, ignored now.
        replay: bool,
    },
    /// A new plugin version took over an app (`portcullis serve` reload). Calls that had
    /// started finish on the old version. `call_id` is `reload-N`.
    PluginSwapped {
        origin: String,
        from_sha256: String,
        to_sha256: String,
        imports_added: Vec<String>,
        imports_removed: Vec<String>,
        kinds_added: Vec<String>,
        kinds_removed: Vec<String>,
        requested_by: String,
    },
    /// A new plugin file was refused; the old version keeps serving.
    PluginSwapRefused {
        origin: String,
        from_sha256: String,
        to_sha256: String,
        reason: String,
        requested_by: String,
    },
    /// A plugin version was accepted for an app (upgrade review): by an operator
    /// (`portcullis plugin accept`), on first use, or because it only narrowed or kept
    /// what the accepted version could do. Both sha256s, and what changed.
    PluginAccepted {
        origin: String,
        from_sha256: Option<String>,
        to_sha256: String,
        by: String,
        widened: Vec<String>,
        narrowed: Vec<String>,
    },
    /// A plugin version widens what the accepted one could do; it does not serve until an
    /// operator accepts it.
    PluginUpgradeHeld {
        origin: String,
        from_sha256: String,
        to_sha256: String,
        widened: Vec<String>,
    },
    /// A plugin's `describe` broke a rule of the contract; none of its other exports run.
    PluginRefused {
        origin: String,
        reason: String,
    },
    /// Written after the plugin returns, fails or is stopped.
    CallFinished {
        operation: String,
        ok: bool,
        result: String,
        duration_ms: f64,
        host_calls: u32,
        http_requests: u32,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("audit sink failed: {0}")]
pub struct AuditError(pub String);

/// Where audit events go. Implementations must be cheap to call from many tasks.
pub trait AuditSink: Send + Sync + 'static {
    fn record(&self, record: &AuditRecord) -> Result<(), AuditError>;

    /// Seals what was recorded so far with a signed checkpoint (run end, shutdown, an
    /// idle service's timer). `reason` is stored with it. Sinks without checkpoints
    /// ignore it.
    fn checkpoint(&self, reason: &str) -> Result<(), AuditError> {
        let _ = reason;
        Ok(())
    }

    /// Called by a long-running process (the service's scheduler) between records, so an
    /// idle trail still gets its interval checkpoint.
    fn tick(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// The sink a config asks for: its `[audit] path` as a checkpointed JSON-lines trail,
/// else tracing.
pub fn configured_sink(
    config: &crate::config::AuditConfig,
) -> Result<Arc<dyn AuditSink>, AuditError> {
    Ok(match &config.path {
        Some(path) => Arc::new(JsonLinesSink::with_options(path, config.trail_options())?),
        None => Arc::new(TracingSink),
    })
}

/// Keeps events in memory; for tests and for commands that print what happened.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl MemorySink {
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().clone()
    }

    /// Events of one call, in order.
    pub fn call(&self, call_id: &str) -> Vec<AuditEvent> {
        self.records
            .lock()
            .iter()
            .filter(|r| r.call_id == call_id)
            .map(|r| r.event.clone())
            .collect()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self.records.lock().push(record.clone());
        Ok(())
    }
}

/// Sends every event to several sinks; fails if any fails.
pub struct FanOut(pub Vec<Arc<dyn AuditSink>>);

impl AuditSink for FanOut {
    fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self.0.iter().try_for_each(|sink| sink.record(record))
    }

    fn checkpoint(&self, reason: &str) -> Result<(), AuditError> {
        self.0.iter().try_for_each(|sink| sink.checkpoint(reason))
    }

    fn tick(&self) -> Result<(), AuditError> {
        self.0.iter().try_for_each(|sink| sink.tick())
    }
}

/// Emits events as `tracing` events (target `portcullis::audit`) and keeps nothing; the
/// default when no audit file is configured.
#[derive(Debug, Default)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        // Serialising costs more than the sandbox itself; skip it when nobody listens.
        if tracing::enabled!(target: "portcullis::audit", tracing::Level::DEBUG) {
            let json = serde_json::to_string(record).map_err(|e| AuditError(e.to_string()))?;
            tracing::debug!(target: "portcullis::audit", "{}", crate::redact::scrub(&json));
        }
        Ok(())
    }
}

/// A URL as it may appear in the audit trail: no user-info, credential-looking query
/// values replaced by `REDACTED`.
pub fn redact_url(url: &url::Url) -> String {
    const SENSITIVE: &[&str] = &[
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "password",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "code",
    ];
    let mut clean = url.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    if clean.query().is_some() {
        let pairs: Vec<(String, String)> = clean
            .query_pairs()
            .map(|(k, v)| {
                let hidden = SENSITIVE.iter().any(|s| k.eq_ignore_ascii_case(s));
                let value = if hidden {
                    "REDACTED".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), value)
            })
            .collect();
        clean.query_pairs_mut().clear().extend_pairs(pairs);
    }
    clean.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials() {
        let url = url::Url::parse("https://user:pw@api.example.com/x?page=2&access_token=abc")
            .expect("url");
        let shown = redact_url(&url);
        assert_eq!(
            shown,
            "https://api.example.com/x?page=2&access_token=REDACTED"
        );
    }

    #[test]
    fn json_lines_are_appended_one_per_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit/trail.jsonl");
        let sink = JsonLinesSink::open(&path).expect("open");
        for n in 0..3 {
            sink.record(&AuditRecord {
                at: Utc::now(),
                call_id: format!("c{n}"),
                app: "gh".into(),
                plugin_sha256: "00".into(),
                event: AuditEvent::SecretRevealed { name: "k".into() },
            })
            .expect("record");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["call_id"], "c2");
        assert_eq!(lines[0]["event"], "secret-revealed");
    }
}
