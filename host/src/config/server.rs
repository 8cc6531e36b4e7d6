//! `[server]`: how `portcullis serve` listens, who may call it (bearer tokens with roles),
//! how HR webhooks are signed, and how often its scheduled jobs run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::secrets::SecretSource;

/// `[server]` of the config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; `--listen` overrides it. Loopback by default: exposing the
    /// service is a decision, not an accident.
    pub listen: String,
    /// API callers. No tokens, no access: every `/v1` call needs one.
    pub tokens: Vec<TokenConfig>,
    /// Verification of `POST /v1/hr-events`; without it the endpoint refuses everything.
    pub hr_webhook: Option<HrWebhookConfig>,
    pub schedule: ScheduleConfig,
    /// Where alerts go besides the audit trail: jobs that failed or did not converge, runs
    /// stopped by the blast-radius guard.
    pub alerts: Vec<AlertSinkConfig>,
}

/// One alert destination: a webhook that takes JSON.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSinkConfig {
    /// Named in the audit trail's delivery records.
    pub name: String,
    /// The webhook URL, from a secret source: an incoming-webhook URL is a credential.
    pub url: SecretSource,
    #[serde(default)]
    pub format: AlertFormat,
}

/// The body an alert webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertFormat {
    /// `{"alert": SUMMARY, "job": {...}}`.
    #[default]
    Json,
    /// `{"text": SUMMARY}`, as Slack incoming webhooks take it.
    Slack,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8740".into(),
            tokens: Vec::new(),
            hr_webhook: None,
            schedule: ScheduleConfig::default(),
            alerts: Vec::new(),
        }
    }
}

/// One API caller.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who calls: recorded with every call in the audit trail.
    pub name: String,
    pub role: Role,
    /// Where the token's value comes from (`env:NAME` or `file:PATH`).
    pub secret: SecretSource,
}

/// What a token may do. `operator` may do what `approver` may, which may do what `reader`
/// may; `hr-source` may only deliver HR events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    HrSource,
    Reader,
    Approver,
    Operator,
}

impl Role {
    /// Whether a caller with this role may make a call that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::HrSource, Role::HrSource) => true,
            (Role::HrSource, _) | (_, Role::HrSource) => false,
            (held, needed) => held >= needed,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::HrSource => "hr-source",
            Role::Reader => "reader",
            Role::Approver => "approver",
            Role::Operator => "operator",
        })
    }
}

/// How HR webhooks are signed: header `X-Portcullis-Signature: t=UNIX_SECONDS,v1=HEX`,
/// where HEX is HMAC-SHA256 with the shared secret over `"{t}.{raw body}"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HrWebhookConfig {
    /// The shared signing secret (`env:NAME` or `file:PATH`).
    pub secret: SecretSource,
    /// Oldest (or furthest in the future) signature timestamp accepted, in seconds.
    #[serde(default = "default_tolerance_s")]
    pub tolerance_s: u64,
}

fn default_tolerance_s() -> u64 {
    300
}

/// How often the scheduled jobs run. 0 turns a job off.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Reconcile: time-bound grants ending, HR events becoming effective, approved
    /// changes and due re-checks of pending invitations are planned and applied.
    pub reconcile_every_s: u64,
    /// First wait before a pending grant (an invitation) is re-checked; doubles per check.
    pub recheck_first_s: u64,
    /// Longest wait between re-checks of a pending grant.
    pub recheck_max_s: u64,
    /// Discovery and drift (report only); 0 = off.
    pub drift_every_s: u64,
    /// The dormant sweep; 0 = off.
    pub dormant_every_s: u64,
    /// Days unused before a managed grant is dormant.
    pub dormant_days: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            reconcile_every_s: 10,
            recheck_first_s: 60,
            recheck_max_s: 3600,
            drift_every_s: 3600,
            dormant_every_s: 86_400,
            dormant_days: 90,
        }
    }
}

impl ServerConfig {
    pub(super) fn resolve_relative(&mut self, base_dir: &Path) {
        for token in &mut self.tokens {
            token.secret.resolve_relative(base_dir);
        }
        if let Some(hook) = &mut self.hr_webhook {
            hook.secret.resolve_relative(base_dir);
        }
        for sink in &mut self.alerts {
            sink.url.resolve_relative(base_dir);
        }
    }

    /// Problems a loaded `[server]` has, each naming its field.
    pub(super) fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push((
                "server.listen".into(),
                format!(
                    "`{}` is not an address and port; write it like 127.0.0.1:8740",
                    self.listen
                ),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, token) in self.tokens.iter().enumerate() {
            if token.name.trim().is_empty() || token.name.chars().any(char::is_control) {
                problems.push((
                    format!("server.tokens[{i}].name"),
                    "must be a non-empty name without control characters: it is who the audit trail says called".into(),
                ));
            } else if !names.insert(token.name.as_str()) {
                problems.push((
                    format!("server.tokens[{i}].name"),
                    format!(
                        "`{}` names two tokens; give each caller its own name",
                        token.name
                    ),
                ));
            }
        }
        let s = &self.schedule;
        if s.recheck_first_s > s.recheck_max_s {
            problems.push((
                "server.schedule.recheck_first_s".into(),
                format!(
                    "{} is more than server.schedule.recheck_max_s = {}; lower it or raise recheck_max_s",
                    s.recheck_first_s, s.recheck_max_s
                ),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_include_the_ones_below_and_hr_source_stands_apart() {
        assert!(Role::Operator.allows(Role::Approver));
        assert!(Role::Operator.allows(Role::Reader));
        assert!(Role::Approver.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Approver));
        assert!(!Role::Approver.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::HrSource));
        assert!(!Role::HrSource.allows(Role::Reader));
        assert!(Role::HrSource.allows(Role::HrSource));
    }
}
