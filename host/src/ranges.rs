//! The accepted range of every numeric setting in the config, in one table ([`SETTINGS`]).
//! Config validation checks against it, README's configuration reference is generated from
//! it (a test keeps the two equal) and the bounds test walks it, so the code, the docs and
//! the tests cannot disagree.
//!
//! A new numeric key in `[limits]`, `[engine]`, `rate_limit` or a later section gets a row
//! here and an entry in its section's [`Numeric`] impl; a test fails for a numeric key
//! without both. Must never: keep a bound anywhere else, or accept a value a later call
//! would fail on (zero memory, zero attempts).

use std::fmt;
use std::path::Path;

use crate::config::{AuditConfig, Config, HrWebhookConfig, SandboxLimitsOverride, ScheduleConfig};
use crate::limits::SandboxLimits;
use crate::options::EngineOptions;
use crate::ratelimit::RateLimitConfig;

/// Where a setting lives in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `[limits]`, and each app's `limits = { .. }` override.
    Limits,
    /// `[engine]`.
    Engine,
    /// Each app's `rate_limit = { .. }`.
    RateLimit,
    /// `[server.schedule]`: how often `portcullis serve` runs its jobs.
    Schedule,
    /// `[server.hr_webhook]`: HR webhook signature checks.
    HrWebhook,
    /// `[audit]`: checkpoints and segments of the audit trail.
    Audit,
    /// `[queue]`: the workers of a PostgreSQL state.
    Queue,
}

impl Section {
    /// How the README reference names a key of this section.
    fn reference_prefix(self) -> &'static str {
        match self {
            Section::Limits => "limits.",
            Section::Engine => "engine.",
            Section::RateLimit => "apps.NAME.rate_limit.",
            Section::Schedule => "server.schedule.",
            Section::HrWebhook => "server.hr_webhook.",
            Section::Audit => "audit.",
            Section::Queue => "queue.",
        }
    }
}

/// The values a setting accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bounds {
    /// Whole numbers from `min` to `max`, both included.
    Int { min: u64, max: u64 },
    /// A number greater than `above` and at most `max` (a share such as 0.2).
    Share { above: f64, max: f64 },
}

impl Bounds {
    fn contains(&self, value: Num) -> bool {
        match (*self, value) {
            (Bounds::Int { min, max }, Num::Int(v)) => (min..=max).contains(&v),
            // NaN compares false both ways, so it is out of range.
            (Bounds::Share { above, max }, Num::Float(v)) => v > above && v <= max,
            // A mismatch is a wrong row in the table; the section tests catch it. Refuse.
            _ => false,
        }
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bounds::Int { min, max } => write!(f, "{min}..={max}"),
            Bounds::Share { above, max } => write!(f, "> {above} and <= {max}"),
        }
    }
}

/// One numeric setting: its key, its range and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub section: Section,
    /// The key inside its section (`memory_mib`).
    pub key: &'static str,
    pub bounds: Bounds,
    pub unit: &'static str,
    /// The value when the key is absent, as the reference shows it. For `[limits]` and
    /// `[engine]` a test checks it against the `Default` impl.
    pub default: &'static str,
    /// Why the range is what it is, for the reference.
    pub why: &'static str,
}

/// The ceiling of `limits.memory_mib`: the runtime's hard limit on any plugin's memory.
pub const MEMORY_MIB_MAX: u64 = (crate::runtime::MAX_LINEAR_MEMORY / (1024 * 1024)) as u64;

const fn int(min: u64, max: u64) -> Bounds {
    Bounds::Int { min, max }
}

/// Every numeric setting with its range. The single source of truth.
pub const SETTINGS: &[Setting] = &[
    // [limits] (and apps.NAME.limits)
    Setting {
        section: Section::Limits,
        key: "memory_mib",
        bounds: int(1, MEMORY_MIB_MAX),
        unit: "MiB",
        default: "64",
        why: "linear memory per call; the runtime's ceiling is the maximum",
    },
    Setting {
        section: Section::Limits,
        key: "cpu_ms",
        bounds: int(1, 600_000),
        unit: "ms",
        default: "1000",
        why: "wasm CPU time per call (host calls excluded); at most 10 minutes",
    },
    Setting {
        section: Section::Limits,
        key: "wall_ms",
        bounds: int(1, 3_600_000),
        unit: "ms",
        default: "60000",
        why: "whole call, network included; at most an hour",
    },
    Setting {
        section: Section::Limits,
        key: "host_calls",
        bounds: int(1, 1_000_000),
        unit: "calls",
        default: "1000",
        why: "host imports per call; every call needs at least one",
    },
    Setting {
        section: Section::Limits,
        key: "log_lines",
        bounds: int(0, 100_000),
        unit: "lines",
        default: "200",
        why: "plugin log lines per call; 0 drops every line",
    },
    Setting {
        section: Section::Limits,
        key: "log_bytes",
        bounds: int(0, 16 * 1024 * 1024),
        unit: "bytes",
        default: "65536",
        why: "plugin log bytes per call; 0 drops every line",
    },
    Setting {
        section: Section::Limits,
        key: "http_connect_timeout_ms",
        bounds: int(1, 300_000),
        unit: "ms",
        default: "5000",
        why: "TCP and TLS connect; at most 5 minutes",
    },
    Setting {
        section: Section::Limits,
        key: "http_timeout_ms",
        bounds: int(1, 600_000),
        unit: "ms",
        default: "30000",
        why: "one request, first byte sent to last byte read; at most 10 minutes",
    },
    Setting {
        section: Section::Limits,
        key: "http_max_response_bytes",
        bounds: int(1, crate::runtime::MAX_LINEAR_MEMORY as u64),
        unit: "bytes",
        default: "16777216",
        why: "response body buffered for the plugin; a larger one could not fit in its memory",
    },
    Setting {
        section: Section::Limits,
        key: "list_max_pages",
        bounds: int(1, 1_000_000),
        unit: "pages",
        default: "1000",
        why: "pages one whole listing may take before it stops as partial",
    },
    Setting {
        section: Section::Limits,
        key: "list_wall_ms",
        bounds: int(1, 86_400_000),
        unit: "ms",
        default: "300000",
        why: "one whole listing, every page; at most a day",
    },
    // [engine]
    Setting {
        section: Section::Engine,
        key: "max_attempts",
        bounds: int(1, 100),
        unit: "attempts",
        default: "3",
        why: "write + read-back attempts per action; 1 means no retry",
    },
    Setting {
        section: Section::Engine,
        key: "backoff_base_ms",
        bounds: int(1, 600_000),
        unit: "ms",
        default: "250",
        why: "first backoff, doubled per attempt; at most backoff_max_ms",
    },
    Setting {
        section: Section::Engine,
        key: "backoff_max_ms",
        bounds: int(1, 3_600_000),
        unit: "ms",
        default: "10000",
        why: "longest backoff between attempts; at most an hour",
    },
    Setting {
        section: Section::Engine,
        key: "max_revokes",
        bounds: int(0, 1_000_000),
        unit: "revokes",
        default: "50",
        why: "blast-radius guard per run; 0 refuses any revoke without --allow-large-revoke",
    },
    Setting {
        section: Section::Engine,
        key: "max_revoke_share",
        bounds: Bounds::Share {
            above: 0.0,
            max: 1.0,
        },
        unit: "share",
        default: "0.2",
        why: "blast-radius guard as a share of the managed grants; 1 allows revoking all",
    },
    Setting {
        section: Section::Engine,
        key: "share_min_revokes",
        bounds: int(0, 1_000_000),
        unit: "revokes",
        default: "10",
        why: "the share guard applies only to runs revoking more than this many grants",
    },
    // apps.NAME.rate_limit
    Setting {
        section: Section::RateLimit,
        key: "per_second",
        bounds: int(1, 10_000),
        unit: "requests",
        default: "no limit",
        why: "requests per second; remove the key for no limit",
    },
    Setting {
        section: Section::RateLimit,
        key: "per_minute",
        bounds: int(1, 600_000),
        unit: "requests",
        default: "no limit",
        why: "requests per minute; remove the key for no limit",
    },
    Setting {
        section: Section::RateLimit,
        key: "per_hour",
        bounds: int(1, 36_000_000),
        unit: "requests",
        default: "no limit",
        why: "requests per hour; remove the key for no limit",
    },
    Setting {
        section: Section::RateLimit,
        key: "burst",
        bounds: int(1, 10_000),
        unit: "requests",
        default: "1 for per_second, else the count capped at 100",
        why: "requests that may go at once before the rate applies",
    },
    Setting {
        section: Section::RateLimit,
        key: "concurrency",
        bounds: int(1, crate::runtime::POOL_INSTANCES as u64),
        unit: "actions",
        default: "8",
        why: "actions of the app in flight at once; the runtime pools that many instances",
    },
    // server.schedule
    Setting {
        section: Section::Schedule,
        key: "reconcile_every_s",
        bounds: int(1, 3600),
        unit: "seconds",
        default: "10",
        why: "how late a time-bound grant may end or an effective HR event apply",
    },
    Setting {
        section: Section::Schedule,
        key: "recheck_first_s",
        bounds: int(1, 86_400),
        unit: "seconds",
        default: "60",
        why: "first re-check of a pending grant (an invitation); doubles per check",
    },
    Setting {
        section: Section::Schedule,
        key: "recheck_max_s",
        bounds: int(1, 604_800),
        unit: "seconds",
        default: "3600",
        why: "longest wait between re-checks of a pending grant",
    },
    Setting {
        section: Section::Schedule,
        key: "drift_every_s",
        bounds: int(0, 604_800),
        unit: "seconds",
        default: "3600",
        why: "discovery and drift report; 0 turns it off",
    },
    Setting {
        section: Section::Schedule,
        key: "dormant_every_s",
        bounds: int(0, 2_592_000),
        unit: "seconds",
        default: "86400",
        why: "dormant sweep (revoke requests for unused grants); 0 turns it off",
    },
    Setting {
        section: Section::Schedule,
        key: "dormant_days",
        bounds: int(1, 3650),
        unit: "days",
        default: "90",
        why: "days unused before a managed grant is dormant",
    },
    // server.hr_webhook
    Setting {
        section: Section::HrWebhook,
        key: "tolerance_s",
        bounds: int(1, 3600),
        unit: "seconds",
        default: "300",
        why: "oldest signature timestamp accepted (replay window)",
    },
    // audit
    Setting {
        section: Section::Audit,
        key: "checkpoint_every",
        bounds: int(1, 1_000_000),
        unit: "records",
        default: "1000",
        why: "a signed checkpoint after this many records",
    },
    Setting {
        section: Section::Audit,
        key: "checkpoint_interval_s",
        bounds: int(1, 86_400),
        unit: "seconds",
        default: "60",
        why: "a signed checkpoint when records came and this long passed",
    },
    Setting {
        section: Section::Audit,
        key: "segment_mib",
        bounds: int(0, 1_048_576),
        unit: "MiB",
        default: "0",
        why: "rotate the trail into a new segment at this size; 0 never rotates",
    },
    // queue
    Setting {
        section: Section::Queue,
        key: "concurrency",
        bounds: int(1, 1024),
        unit: "actions",
        default: "32",
        why: "actions one worker carries out at once (each app's own concurrency still applies)",
    },
    Setting {
        section: Section::Queue,
        key: "lease_s",
        bounds: int(2, 3600),
        unit: "seconds",
        default: "30",
        why: "a dead worker's actions, and the scheduler, are taken over within this",
    },
];

/// The row for `key` of `section`.
pub fn setting(section: Section, key: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.section == section && s.key == key)
}

/// A numeric value as read from the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(u64),
    Float(f64),
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(v) => write!(f, "{v}"),
            // Debug keeps the decimal point, so `2.0` reads back as the operator wrote it.
            Num::Float(v) => write!(f, "{v:?}"),
        }
    }
}

/// A config section's numeric keys and values (`None`: not set, the default applies).
pub trait Numeric {
    const SECTION: Section;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)>;
}

fn int_value<T: Into<u64>>(v: T) -> Option<Num> {
    Some(Num::Int(v.into()))
}

fn opt_int<T: Into<u64>>(v: Option<T>) -> Option<Num> {
    v.map(|v| Num::Int(v.into()))
}

impl Numeric for SandboxLimits {
    const SECTION: Section = Section::Limits;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![
            ("memory_mib", int_value(self.memory_mib)),
            ("cpu_ms", int_value(self.cpu_ms)),
            ("wall_ms", int_value(self.wall_ms)),
            ("host_calls", int_value(self.host_calls)),
            ("log_lines", int_value(self.log_lines)),
            ("log_bytes", int_value(self.log_bytes)),
            (
                "http_connect_timeout_ms",
                int_value(self.http_connect_timeout_ms),
            ),
            ("http_timeout_ms", int_value(self.http_timeout_ms)),
            (
                "http_max_response_bytes",
                int_value(self.http_max_response_bytes),
            ),
            ("list_max_pages", int_value(self.list_max_pages)),
            ("list_wall_ms", int_value(self.list_wall_ms)),
        ]
    }
}

impl Numeric for SandboxLimitsOverride {
    const SECTION: Section = Section::Limits;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![
            ("memory_mib", opt_int(self.memory_mib)),
            ("cpu_ms", opt_int(self.cpu_ms)),
            ("wall_ms", opt_int(self.wall_ms)),
            ("host_calls", opt_int(self.host_calls)),
            ("log_lines", opt_int(self.log_lines)),
            ("log_bytes", opt_int(self.log_bytes)),
            (
                "http_connect_timeout_ms",
                opt_int(self.http_connect_timeout_ms),
            ),
            ("http_timeout_ms", opt_int(self.http_timeout_ms)),
            (
                "http_max_response_bytes",
                opt_int(self.http_max_response_bytes),
            ),
            ("list_max_pages", opt_int(self.list_max_pages)),
            ("list_wall_ms", opt_int(self.list_wall_ms)),
        ]
    }
}

impl Numeric for EngineOptions {
    const SECTION: Section = Section::Engine;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![
            ("max_attempts", int_value(self.max_attempts)),
            ("backoff_base_ms", int_value(self.backoff_base_ms)),
            ("backoff_max_ms", int_value(self.backoff_max_ms)),
            (
                "max_revokes",
                // usize is at most 64 bits on every target Portcullis builds for.
                self.max_revokes.map(|v| Num::Int(v as u64)),
            ),
            ("max_revoke_share", self.max_revoke_share.map(Num::Float)),
            (
                "share_min_revokes",
                Some(Num::Int(self.share_min_revokes as u64)),
            ),
        ]
    }
}

impl Numeric for ScheduleConfig {
    const SECTION: Section = Section::Schedule;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![
            ("reconcile_every_s", int_value(self.reconcile_every_s)),
            ("recheck_first_s", int_value(self.recheck_first_s)),
            ("recheck_max_s", int_value(self.recheck_max_s)),
            ("drift_every_s", int_value(self.drift_every_s)),
            ("dormant_every_s", int_value(self.dormant_every_s)),
            ("dormant_days", int_value(self.dormant_days)),
        ]
    }
}

impl Numeric for HrWebhookConfig {
    const SECTION: Section = Section::HrWebhook;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![("tolerance_s", int_value(self.tolerance_s))]
    }
}

impl Numeric for AuditConfig {
    const SECTION: Section = Section::Audit;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![
            ("checkpoint_every", int_value(self.checkpoint_every)),
            (
                "checkpoint_interval_s",
                int_value(self.checkpoint_interval_s),
            ),
            ("segment_mib", int_value(self.segment_mib)),
        ]
    }
}

impl Numeric for crate::config::QueueConfig {
    const SECTION: Section = Section::Queue;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![
            ("concurrency", int_value(self.concurrency)),
            ("lease_s", int_value(self.lease_s)),
        ]
    }
}

impl Numeric for RateLimitConfig {
    const SECTION: Section = Section::RateLimit;
    fn numeric(&self) -> Vec<(&'static str, Option<Num>)> {
        vec![
            ("per_second", opt_int(self.per_second)),
            ("per_minute", opt_int(self.per_minute)),
            ("per_hour", opt_int(self.per_hour)),
            ("burst", opt_int(self.burst)),
            ("concurrency", opt_int(self.concurrency)),
        ]
    }
}

/// A setting outside its range, or two settings in the wrong order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} = {value} {problem}")]
pub struct RangeProblem {
    /// The full key, as written in the file (`apps.gh.limits.memory_mib`).
    pub key: String,
    pub value: Num,
    /// What is wrong and the fix.
    pub problem: String,
}

/// Checks every numeric setting of `config`; every problem at once, in file order.
pub fn check(config: &Config) -> Vec<RangeProblem> {
    let mut problems = Vec::new();
    check_section(&config.limits, "limits.", None, &mut problems);
    check_section(&config.engine, "engine.", None, &mut problems);
    check_section(
        &config.server.schedule,
        "server.schedule.",
        None,
        &mut problems,
    );
    if let Some(hook) = &config.server.hr_webhook {
        check_section(hook, "server.hr_webhook.", None, &mut problems);
    }
    check_section(&config.audit, "audit.", None, &mut problems);
    check_section(&config.queue, "queue.", None, &mut problems);
    let (base, max) = (config.engine.backoff_base_ms, config.engine.backoff_max_ms);
    if base > max {
        problems.push(RangeProblem {
            key: "engine.backoff_base_ms".into(),
            value: Num::Int(base),
            problem: format!(
                "is more than engine.backoff_max_ms = {max}: the first backoff cannot exceed \
                 the longest; lower backoff_base_ms or raise backoff_max_ms"
            ),
        });
    }
    for (name, app) in &config.apps {
        if let Some(limits) = &app.limits {
            check_section(
                limits,
                &format!("apps.{name}.limits."),
                Some("to use the [limits] value"),
                &mut problems,
            );
        }
        check_section(
            &app.rate_limit,
            &format!("apps.{name}.rate_limit."),
            None,
            &mut problems,
        );
    }
    problems
}

/// Checks one section's values; `prefix` is the full key prefix, `absent` what removing
/// the key does when that is not the table's default (a per-app override inherits).
fn check_section<S: Numeric>(
    section: &S,
    prefix: &str,
    absent: Option<&str>,
    problems: &mut Vec<RangeProblem>,
) {
    for (key, value) in section.numeric() {
        let Some(value) = value else { continue };
        let Some(setting) = setting(S::SECTION, key) else {
            // A key without a row is a bug the table tests catch; never refuse a config for it.
            continue;
        };
        if !setting.bounds.contains(value) {
            let absent = absent.map_or_else(
                || format!("for the default ({})", setting.default),
                str::to_owned,
            );
            problems.push(RangeProblem {
                key: format!("{prefix}{key}"),
                value,
                problem: format!(
                    "is out of range: must be {} ({}); set a value in that range or remove \
                     the key {absent}",
                    setting.bounds, setting.unit
                ),
            });
        }
    }
}

/// `portcullis.toml: limits.memory_mib = 0 is out of range: ...`; with several problems, a
/// count and then one line each, like the policy's problems.
pub fn render(path: &Path, problems: &[RangeProblem]) -> String {
    let path = path.display();
    match problems {
        [one] => format!("{path}: {one}"),
        many => {
            let mut text = format!("{path}: {} settings out of range:", many.len());
            for problem in many {
                text.push_str(&format!("\n  {path}: {problem}"));
            }
            text
        }
    }
}

/// The configuration reference table for README.md, generated from [`SETTINGS`].
pub fn reference_table() -> String {
    let mut text =
        String::from("| key | range | unit | default | notes |\n|---|---|---|---|---|\n");
    for s in SETTINGS {
        text.push_str(&format!(
            "| `{}{}` | {} | {} | {} | {} |\n",
            s.section.reference_prefix(),
            s.key,
            s.bounds,
            s.unit,
            s.default,
            s.why
        ));
    }
    text.push_str(
        "\nPer-app overrides (`apps.NAME.limits.KEY`) take the same ranges as `[limits]`.\n",
    );
    text
}

#[cfg(test)]
mod tests;
