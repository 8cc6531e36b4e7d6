//! Dormant access: managed grants nobody has used for a while.
//!
//! Last use comes from two places: what a connector reports in `list-grants`
//! (`last-used-at`, stored by discovery) and usage events imported from a file (an app's
//! audit-log export). A grant is dormant when its last use is older than the threshold,
//! or when it was never used since it was granted longer ago than the threshold, in an
//! app some usage source covers. Without any usage data for an app, nothing in it is
//! called dormant: unknown is not unused.
//!
//! Dormant grants are not revoked directly: each gets a revoke approval request, and an
//! approved one is revoked by the next `apply` and held so the policy does not re-grant it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Target;
use crate::people::parse_time;
use crate::state::{ManagedGrant, ManagedStatus, ObservedGrant, ObservedListing, UsageRecord};

/// The default threshold.
pub const DEFAULT_DAYS: u32 = 90;

/// A managed grant unused for longer than the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DormantGrant {
    pub person: String,
    pub target: Target,
    pub subject: String,
    pub level: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub granted_at: DateTime<Utc>,
    pub days_unused: i64,
    /// "unused for 132 days (last used 2026-07-16)", "never used in 95 days since granted".
    pub why: String,
}

/// The managed grants unused for `days` or more as of `at`, by person and target.
///
/// Where the last listing of an app and kind was partial (`listings`), a grant that
/// listing did not show is skipped rather than judged: its use may be on a page that was
/// never read, and no decision rests on absence from a partial listing.
pub fn dormant(
    managed: &[ManagedGrant],
    observed: &[ObservedGrant],
    listings: &[ObservedListing],
    usage: &[UsageRecord],
    days: u32,
    at: DateTime<Utc>,
) -> Vec<DormantGrant> {
    let partial: BTreeMap<(&str, &str), DateTime<Utc>> = listings
        .iter()
        .filter(|l| !l.complete)
        .map(|l| ((l.app.as_str(), l.kind.as_str()), l.listed_at))
        .collect();
    let seen_in_partial: BTreeSet<(&str, &str, &str, &str)> = observed
        .iter()
        .filter(|o| {
            partial
                .get(&(o.target.app.as_str(), o.target.kind.as_str()))
                .is_some_and(|listed| o.observed_at >= *listed)
        })
        .map(|o| {
            (
                o.target.app.as_str(),
                o.subject.as_str(),
                o.target.kind.as_str(),
                o.target.resource.as_str(),
            )
        })
        .collect();
    let mut last: BTreeMap<(&str, &str, &str, &str), DateTime<Utc>> = BTreeMap::new();
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    for o in observed {
        if let Some(used) = o.last_used_at {
            covered.insert(o.target.app.as_str());
            let key = (
                o.target.app.as_str(),
                o.subject.as_str(),
                o.target.kind.as_str(),
                o.target.resource.as_str(),
            );
            let entry = last.entry(key).or_insert(used);
            *entry = (*entry).max(used);
        }
    }
    for u in usage {
        covered.insert(u.app.as_str());
        let key = (
            u.app.as_str(),
            u.subject.as_str(),
            u.kind.as_str(),
            u.resource.as_str(),
        );
        let entry = last.entry(key).or_insert(u.last_used_at);
        *entry = (*entry).max(u.last_used_at);
    }

    let threshold = i64::from(days);
    let mut found = Vec::new();
    for grant in managed {
        if grant.status != ManagedStatus::Active || !covered.contains(grant.target.app.as_str()) {
            continue;
        }
        let key = (
            grant.target.app.as_str(),
            grant.subject.as_str(),
            grant.target.kind.as_str(),
            grant.target.resource.as_str(),
        );
        let in_partial = partial.contains_key(&(key.0, key.2));
        let from_usage = usage.iter().any(|u| {
            (
                u.app.as_str(),
                u.subject.as_str(),
                u.kind.as_str(),
                u.resource.as_str(),
            ) == key
        });
        if in_partial && !seen_in_partial.contains(&key) && !from_usage {
            continue;
        }
        let used = last.get(&key).copied();
        let since = used.unwrap_or(grant.granted_at);
        let days_unused = (at - since).num_days();
        if days_unused < threshold {
            continue;
        }
        let why = match used {
            Some(u) => format!(
                "unused for {days_unused} days (last used {})",
                u.format("%Y-%m-%d")
            ),
            None => format!("never used in the {days_unused} days since it was granted"),
        };
        found.push(DormantGrant {
            person: grant.person.clone(),
            target: grant.target.clone(),
            subject: grant.subject.clone(),
            level: grant.level.clone(),
            last_used_at: used,
            granted_at: grant.granted_at,
            days_unused,
            why,
        });
    }
    found
}

/// Usage events file (JSON):
///
/// ```json
/// { "usage": [ { "app": "github", "subject": "josh-platform", "kind": "repository",
///                "resource": "acme/platform-api", "last_used_at": "2026-07-16T09:12:00Z" } ] }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageFile {
    usage: Vec<UsageLine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageLine {
    app: String,
    subject: String,
    kind: String,
    resource: String,
    last_used_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("cannot read usage file {path}: {source}; check the path")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Reads a usage events file.
pub fn load_usage(path: &Path) -> Result<Vec<UsageRecord>, UsageError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsageError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_usage(&text, &path.display().to_string())
}

pub fn parse_usage(text: &str, origin: &str) -> Result<Vec<UsageRecord>, UsageError> {
    let invalid = |message: String| UsageError::Invalid {
        path: origin.to_owned(),
        message,
    };
    let file: UsageFile = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    file.usage
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            for (field, value) in [
                ("app", &line.app),
                ("subject", &line.subject),
                ("kind", &line.kind),
                ("resource", &line.resource),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(format!("usage[{i}]: `{field}` is empty")));
                }
            }
            let last_used_at = parse_time(&line.last_used_at).ok_or_else(|| {
                invalid(format!(
                    "usage[{i}]: last_used_at `{}` is not a date (YYYY-MM-DD) or RFC 3339 time",
                    line.last_used_at
                ))
            })?;
            Ok(UsageRecord {
                app: line.app,
                subject: line.subject,
                kind: line.kind,
                resource: line.resource,
                last_used_at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .expect("valid date")
    }

    fn managed(app: &str, resource: &str, granted: DateTime<Utc>) -> ManagedGrant {
        ManagedGrant {
            person: "E1".into(),
            target: Target {
                app: app.into(),
                kind: "repository".into(),
                resource: resource.into(),
            },
            subject: "josh".into(),
            level: Some("write".into()),
            rules: vec!["r".into()],
            status: ManagedStatus::Active,
            granted_at: granted,
            expires_at: None,
            policy_hash: "h".into(),
            run_id: "run".into(),
        }
    }

    fn used(app: &str, resource: &str, when: DateTime<Utc>) -> UsageRecord {
        UsageRecord {
            app: app.into(),
            subject: "josh".into(),
            kind: "repository".into(),
            resource: resource.into(),
            last_used_at: when,
        }
    }

    #[test]
    fn a_partial_listing_decides_only_for_the_grants_it_showed() {
        let now = at(2027, 1, 1);
        let listed_at = at(2026, 12, 31);
        let grants = [
            managed("github", "acme/shown", at(2026, 1, 1)),
            managed("github", "acme/unread", at(2026, 1, 1)),
        ];
        let shown = ObservedGrant {
            target: Target::new("github", "repository", "acme/shown"),
            subject: "josh".into(),
            level: Some("write".into()),
            pending: false,
            last_used_at: Some(at(2026, 2, 1)),
            observed_at: listed_at,
        };
        let partial = ObservedListing {
            app: "github".into(),
            kind: "repository".into(),
            listed_at,
            complete: false,
            reason: Some("page 3 failed".into()),
        };
        let found = dormant(
            &grants,
            std::slice::from_ref(&shown),
            std::slice::from_ref(&partial),
            &[],
            90,
            now,
        );
        let names: Vec<&str> = found.iter().map(|d| d.target.resource.as_str()).collect();
        assert_eq!(
            names,
            ["acme/shown"],
            "acme/unread may be on an unread page"
        );
        // The same listing, complete: the unread grant's absence now proves it unused.
        let complete = ObservedListing {
            complete: true,
            reason: None,
            ..partial
        };
        assert_eq!(
            dormant(&grants, &[shown], &[complete], &[], 90, now).len(),
            2
        );
    }

    #[test]
    fn old_use_is_dormant_recent_use_is_not_and_unknown_apps_are_left_alone() {
        let now = at(2027, 1, 1);
        let grants = [
            managed("github", "acme/old", at(2026, 1, 1)),
            managed("github", "acme/fresh", at(2026, 1, 1)),
            managed("github", "acme/never", at(2026, 1, 1)),
            managed("github", "acme/new", at(2026, 12, 20)),
            managed("jira", "PLAT/Developers", at(2026, 1, 1)),
        ];
        let usage = [
            used("github", "acme/old", at(2026, 8, 1)),
            used("github", "acme/fresh", at(2026, 12, 1)),
        ];
        let found = dormant(&grants, &[], &[], &usage, DEFAULT_DAYS, now);
        let names: Vec<&str> = found.iter().map(|d| d.target.resource.as_str()).collect();
        assert_eq!(names, ["acme/old", "acme/never"]);
        assert_eq!(found[0].days_unused, 153);
        assert!(
            found[0].why.contains("last used 2026-08-01"),
            "{}",
            found[0].why
        );
        assert!(found[1].why.contains("never used"), "{}", found[1].why);
    }

    #[test]
    fn connector_reported_last_use_counts_and_the_latest_source_wins() {
        let now = at(2027, 1, 1);
        let grant = managed("github", "acme/x", at(2026, 1, 1));
        let observed = ObservedGrant {
            target: grant.target.clone(),
            subject: "josh".into(),
            level: Some("write".into()),
            pending: false,
            last_used_at: Some(at(2026, 12, 15)),
            observed_at: now,
        };
        let old_usage = [used("github", "acme/x", at(2026, 2, 1))];
        assert!(
            dormant(
                std::slice::from_ref(&grant),
                &[observed],
                &[],
                &old_usage,
                90,
                now
            )
            .is_empty()
        );
        assert_eq!(dormant(&[grant], &[], &[], &old_usage, 90, now).len(), 1);
    }

    #[test]
    fn usage_file_is_strict_and_names_the_problem() {
        let ok = r#"{"usage":[{"app":"github","subject":"josh","kind":"repository","resource":"acme/x","last_used_at":"2026-07-16"}]}"#;
        assert_eq!(parse_usage(ok, "u.json").expect("parses").len(), 1);
        let bad_time = ok.replace("2026-07-16", "last tuesday");
        let err = parse_usage(&bad_time, "u.json").expect_err("bad time");
        assert!(
            err.to_string()
                .contains("usage[0]: last_used_at `last tuesday`"),
            "{err}"
        );
        let unknown = ok.replace("\"app\"", "\"application\"");
        let err = parse_usage(&unknown, "u.json").expect_err("unknown key");
        assert!(
            err.to_string().contains("unknown field `application`"),
            "{err}"
        );
    }
}
