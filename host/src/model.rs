//! The host's own vocabulary for access: subjects, entitlements, actions, outcomes and the
//! errors a connector reports. These mirror the WIT types but belong to the host, so the
//! CLI, audit log and (later) the scheduler and store never depend on generated bindings.
//! Conversions to and from each contract version's generated types live in
//! [`crate::guest`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// Who receives or loses access, in the application's own identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subject {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// One permission in one application.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entitlement {
    pub kind: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

impl fmt::Display for Entitlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.level {
            Some(level) => write!(f, "{} {} at {}", self.kind, self.resource, level),
            None => write!(f, "{} {}", self.kind, self.resource),
        }
    }
}

/// One change to carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub subject: Subject,
    pub entitlement: Entitlement,
    pub idempotency_key: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementKind {
    pub name: String,
    pub description: String,
    /// Lowest first: a higher level implies every lower one.
    pub levels: Vec<String>,
    pub read_modify_write: bool,
}

impl EntitlementKind {
    /// Position of `level` in the kind's order, if the kind has it.
    pub fn rank(&self, level: &str) -> Option<usize> {
        self.levels.iter().position(|l| l == level)
    }

    /// Whether holding `held` satisfies a request for `wanted` (admin implies write).
    pub fn satisfies(&self, held: Option<&str>, wanted: Option<&str>) -> bool {
        match (held, wanted) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(held), Some(wanted)) => match (self.rank(held), self.rank(wanted)) {
                (Some(h), Some(w)) => h >= w,
                _ => held == wanted,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub kinds: Vec<EntitlementKind>,
    /// What each kind supports beyond grant, revoke and verify (contract 0.2.0; for a
    /// 0.1.0 plugin, list-grants for every kind).
    #[serde(default)]
    pub capabilities: Vec<KindCapabilities>,
}

impl ConnectorInfo {
    pub fn kind(&self, name: &str) -> Option<&EntitlementKind> {
        self.kinds.iter().find(|k| k.name == name)
    }

    /// What `kind` supports; none of the optional operations when it is not listed.
    pub fn capabilities_of(&self, kind: &str) -> KindCapabilities {
        self.capabilities
            .iter()
            .find(|c| c.kind == kind)
            .cloned()
            .unwrap_or_else(|| KindCapabilities {
                kind: kind.to_owned(),
                list_grants: false,
                set_level: false,
                usage: false,
            })
    }
}

/// The optional operations one kind supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCapabilities {
    pub kind: String,
    pub list_grants: bool,
    pub set_level: bool,
    pub usage: bool,
}

/// What a set-level did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SetLevelOutcome {
    Changed,
    AlreadyAtLevel,
    Pending { detail: String },
}

/// A page request for a connector's usage export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    pub kind: String,
    pub resource: Option<String>,
    pub cursor: Option<String>,
}

/// When one subject last used one entitlement, as the application reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub subject: Subject,
    pub entitlement: Entitlement,
    /// Seconds since the Unix epoch; none when the application has no record of use.
    pub last_active_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePage {
    pub records: Vec<UsageRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub principal: String,
    pub scopes: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum GrantOutcome {
    Granted,
    AlreadyPresent,
    Pending { detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RevokeOutcome {
    Revoked,
    AlreadyAbsent,
}

/// What the application reports when read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Observed {
    Present { level: Option<String> },
    Absent,
    Pending { level: Option<String> },
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observed::Present { level: Some(l) } => write!(f, "present at {l}"),
            Observed::Present { level: None } => f.write_str("present"),
            Observed::Absent => f.write_str("absent"),
            Observed::Pending { level: Some(l) } => write!(f, "pending at {l}"),
            Observed::Pending { level: None } => f.write_str("pending"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub subject: Subject,
    pub entitlement: Entitlement,
    pub pending: bool,
    pub last_used_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantQuery {
    pub kind: String,
    pub resource: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantPage {
    pub grants: Vec<Grant>,
    pub next_cursor: Option<String>,
}

/// A failure the connector reported, classified by what the host should do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "class", content = "message", rename_all = "kebab-case")]
pub enum ConnectorError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("rate limited{}: {message}", retry_after_ms.map(|ms| format!(" (retry after {ms} ms)")).unwrap_or_default())]
    RateLimited {
        retry_after_ms: Option<u64>,
        message: String,
    },
    #[error("transient failure: {0}")]
    Transient(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl ConnectorError {
    /// Rate limits and passing failures are worth retrying; the rest never succeed as made.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::RateLimited { .. } | ConnectorError::Transient(_)
        )
    }
}

// ---- What runs do: shared by the engine, the audit trail and the state ----

/// Grant, revoke, or change a held level in place (contract 0.2.0 `set-level`, for kinds
/// that declare it: a decrease without a revoke and a second invitation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Grant,
    Revoke,
    SetLevel,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Grant => "grant",
            Op::Revoke => "revoke",
            Op::SetLevel => "set-level",
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ActionOutcome {
    /// Read-back shows the requested state.
    Verified,
    /// Accepted, not in force yet (for example an invitation); re-check later.
    Pending { detail: String },
    /// Could not be made to converge; `reason` says why. Operators must look.
    Alerted { reason: String },
}

/// One outbound request as the audit and the caller see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub refused: Option<String>,
}

/// What a grant is on, independent of its level: one row per (app, kind, resource) in the
/// desired, managed and observed state. Ordered by app, then kind, then resource, so every
/// list keyed by it comes out in the same order on every run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    /// The app instance name, as in `[apps.NAME]` of the config.
    pub app: String,
    pub kind: String,
    pub resource: String,
}

impl Target {
    pub fn new(
        app: impl Into<String>,
        kind: impl Into<String>,
        resource: impl Into<String>,
    ) -> Target {
        Target {
            app: app.into(),
            kind: kind.into(),
            resource: resource.into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.app, self.kind, self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_kind() -> EntitlementKind {
        EntitlementKind {
            name: "repository".into(),
            description: String::new(),
            levels: ["read", "triage", "write", "maintain", "admin"]
                .map(String::from)
                .to_vec(),
            read_modify_write: false,
        }
    }

    #[test]
    fn higher_level_satisfies_lower() {
        let kind = repo_kind();
        assert!(kind.satisfies(Some("admin"), Some("write")));
        assert!(kind.satisfies(Some("write"), Some("write")));
        assert!(!kind.satisfies(Some("triage"), Some("write")));
        assert!(!kind.satisfies(None, Some("read")));
        assert!(kind.satisfies(None, None));
    }

    #[test]
    fn only_rate_limits_and_transient_failures_retry() {
        assert!(ConnectorError::Transient("x".into()).is_retryable());
        assert!(
            ConnectorError::RateLimited {
                retry_after_ms: None,
                message: "x".into()
            }
            .is_retryable()
        );
        assert!(!ConnectorError::Unauthorized("x".into()).is_retryable());
        assert!(!ConnectorError::InvalidRequest("x".into()).is_retryable());
    }
}

/// Who or what started a run: recorded with every action it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOrigin {
    /// `cli`, `api`, `schedule`, `hr-webhook`, `demo`, `actions-file`.
    pub source: String,
    /// The person at the keyboard (`cli`: the OS user) or the API token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The API token the run was requested with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The scheduled job (`reconcile`) that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

impl RunOrigin {
    /// A run started from a shell: the OS user is the operator.
    pub fn cli() -> RunOrigin {
        RunOrigin {
            source: "cli".into(),
            operator: Some(os_user()),
            ..RunOrigin::default()
        }
    }
}

/// Who runs this process: `$USER` or `$LOGNAME` as a shell sets them, else (services,
/// containers, cron) the account of the process's uid, so a CLI action is never
/// anonymous in the trail.
fn os_user() -> String {
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
    {
        return name;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) {
            let account = std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|passwd| {
                    passwd.lines().find_map(|line| {
                        let mut fields = line.split(':');
                        let name = fields.next()?;
                        let id = fields.nth(1)?;
                        (id == uid.to_string()).then(|| name.to_owned())
                    })
                });
            return account.unwrap_or_else(|| format!("uid {uid}"));
        }
    }
    "unknown".to_owned()
}

/// Why one action ran: the run's origin plus what in the policy and the HR feed asked
/// for it. Written with the action's intent, so the trail answers "why" per action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// What started the run ([`RunOrigin::source`]).
    pub source: String,
    /// The person (directory id) the action is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The policy rules that want (or stopped wanting) the access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// The policy's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The person's last HR event in effect (hire, move, leave) when the plan was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr_event: Option<String>,
    /// The approval that allowed a sensitive grant or a dormant revoke, and who gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

impl Trigger {
    /// The part every action of a run shares.
    pub fn from_origin(origin: &RunOrigin) -> Trigger {
        Trigger {
            source: origin.source.clone(),
            operator: origin.operator.clone(),
            token: origin.token.clone(),
            schedule: origin.schedule.clone(),
            ..Trigger::default()
        }
    }
}
