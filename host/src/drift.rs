//! Drift: where what the apps hold (discovery) differs from what the policy wants.
//!
//! Two directions:
//! - **outside policy**: an app holds a grant for a person in the directory, on a target
//!   the policy manages (some rule grants or denies it, or Portcullis granted it), that the
//!   policy does not want, or at a higher level than it wants. Typically someone granted
//!   it by hand in the app.
//! - **missing**: the policy wants a grant (and it is not waiting for approval or held)
//!   that a complete listing of its app and kind does not show.
//!
//! Grants of subjects no one in the directory has, and grants on targets the policy does
//! not manage, are reported as unmanaged and never touched: Portcullis only corrects what
//! it manages. The correction is an ordinary [`Plan`], so it is printed and applied like
//! any other.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{ConnectorInfo, Target};
use crate::people::People;
use crate::plan::{Change, ChangeOp, PersonPlan, Plan, PlanSummary};
use crate::policy::{Policy, PolicyError};
use crate::state::{Hold, ManagedGrant, ObservedGrant};

/// One difference between an app and the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftItem {
    /// The person whose account it is; None for unknown subjects.
    pub person: Option<String>,
    pub target: Target,
    pub subject: String,
    /// What the app holds (None: nothing).
    pub observed_level: Option<String>,
    pub observed: bool,
    /// What the policy wants (None: nothing, or a presence-only kind).
    pub wanted_level: Option<String>,
    pub wanted: bool,
    /// The rules that want it.
    pub rules: Vec<String>,
    pub why: String,
}

/// One line: `github repository acme/x [mona = E2] held write wanted no: why`.
impl std::fmt::Display for DriftItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let person = self
            .person
            .as_deref()
            .map(|p| format!(" = {p}"))
            .unwrap_or_default();
        let shown = |present: bool, level: &Option<String>| match (present, level) {
            (false, _) => "no".to_owned(),
            (true, Some(level)) => level.clone(),
            (true, None) => "yes".to_owned(),
        };
        // Subjects, levels and reasons can come from an app: escaped, so the item stays
        // one line whatever they hold.
        use crate::untrusted::Shown;
        write!(
            f,
            "{} [{}{person}] held {} wanted {}: {}",
            Shown(&self.target.to_string()),
            Shown(&self.subject),
            Shown(&shown(self.observed, &self.observed_level)),
            Shown(&shown(self.wanted, &self.wanted_level)),
            Shown(&self.why)
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub at: DateTime<Utc>,
    pub outside_policy: Vec<DriftItem>,
    pub missing: Vec<DriftItem>,
    /// Seen in apps but not Portcullis's to manage; reported, never changed.
    pub unmanaged: Vec<DriftItem>,
}

/// Compares `observed` (complete listings of `complete` app+kind pairs) with the policy.
#[allow(clippy::too_many_arguments)]
pub fn drift(
    policy: &Policy,
    people: &People,
    catalog: &BTreeMap<String, ConnectorInfo>,
    managed: &[ManagedGrant],
    holds: &[Hold],
    observed: &[ObservedGrant],
    complete: &BTreeSet<(String, String)>,
    at: DateTime<Utc>,
) -> Result<(DriftReport, Plan), PolicyError> {
    policy.validate(catalog)?;
    // (app, subject) -> person, from the directory's accounts.
    let mut owner: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for person in people.people.values() {
        for (app, subject) in &person.accounts {
            owner.insert((app.as_str(), subject.as_str()), person.id.as_str());
        }
    }
    let managed_targets: BTreeSet<&Target> = managed.iter().map(|m| &m.target).collect();

    let mut wanted: BTreeMap<(&str, Target), crate::policy::DesiredGrant> = BTreeMap::new();
    for person in people.active() {
        let evaluated = policy.evaluate(person, catalog)?;
        for (target, grant) in evaluated.grants {
            wanted.insert((person.id.as_str(), target), grant);
        }
    }

    let mut report = DriftReport {
        at,
        ..DriftReport::default()
    };
    let mut seen: BTreeSet<(&str, &Target)> = BTreeSet::new();
    for grant in observed {
        if !complete.contains(&(grant.target.app.clone(), grant.target.kind.clone())) {
            continue;
        }
        let person = owner
            .get(&(grant.target.app.as_str(), grant.subject.as_str()))
            .copied();
        let in_scope = policy.in_scope(&grant.target) || managed_targets.contains(&grant.target);
        let want = person.and_then(|p| wanted.get(&(p, grant.target.clone())));
        let item = |why: String| DriftItem {
            person: person.map(str::to_owned),
            target: grant.target.clone(),
            subject: grant.subject.clone(),
            observed_level: grant.level.clone(),
            observed: true,
            wanted_level: want.and_then(|w| w.level.clone()),
            wanted: want.is_some(),
            rules: want.map(|w| w.rules.clone()).unwrap_or_default(),
            why,
        };
        let Some(person_id) = person else {
            if in_scope {
                report.unmanaged.push(item(format!(
                    "subject {} is no one in the directory; left alone",
                    grant.subject
                )));
            }
            continue;
        };
        if !in_scope {
            continue;
        }
        seen.insert((person_id, &grant.target));
        match want {
            None => report
                .outside_policy
                .push(item("held, but no rule grants it".into())),
            Some(w)
                if above(
                    catalog,
                    &grant.target,
                    grant.level.as_deref(),
                    w.level.as_deref(),
                ) =>
            {
                report.outside_policy.push(item(format!(
                    "held at {}, above the {} the policy grants",
                    grant.level.as_deref().unwrap_or("-"),
                    w.level.as_deref().unwrap_or("-")
                )))
            }
            Some(w)
                if above(
                    catalog,
                    &grant.target,
                    w.level.as_deref(),
                    grant.level.as_deref(),
                ) =>
            {
                report.missing.push(item(format!(
                    "held at {}, below the {} the policy grants",
                    grant.level.as_deref().unwrap_or("-"),
                    w.level.as_deref().unwrap_or("-")
                )))
            }
            Some(_) => {}
        }
    }
    let held: BTreeSet<(&str, &Target)> = holds
        .iter()
        .map(|h| (h.person.as_str(), &h.target))
        .collect();
    for ((person, target), want) in &wanted {
        // Sensitive grants wait for approval and held ones must stay away: neither is
        // missing.
        if seen.contains(&(*person, target))
            || !complete.contains(&(target.app.clone(), target.kind.clone()))
            || want.sensitive
            || held.contains(&(*person, target))
        {
            continue;
        }
        report.missing.push(DriftItem {
            person: Some((*person).to_owned()),
            target: target.clone(),
            subject: want.subject.clone(),
            observed_level: None,
            observed: false,
            wanted_level: want.level.clone(),
            wanted: true,
            rules: want.rules.clone(),
            why: "the policy grants it, but the app does not show it".into(),
        });
    }

    let correction = correction_plan(policy, people, &report, at);
    Ok((report, correction))
}

fn above(
    catalog: &BTreeMap<String, ConnectorInfo>,
    target: &Target,
    a: Option<&str>,
    b: Option<&str>,
) -> bool {
    let Some(kind) = catalog.get(&target.app).and_then(|c| c.kind(&target.kind)) else {
        return false;
    };
    match (a, b) {
        (Some(a), Some(b)) => kind.rank(a) > kind.rank(b),
        _ => false,
    }
}

/// Revoke what is outside policy; grant what is missing.
fn correction_plan(
    policy: &Policy,
    people: &People,
    report: &DriftReport,
    at: DateTime<Utc>,
) -> Plan {
    let mut by_person: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for item in &report.outside_policy {
        let Some(person) = &item.person else { continue };
        // Above the wanted level: revoke what is held; the next apply grants the wanted
        // level again (a decrease, like the planner's).
        by_person.entry(person.clone()).or_default().push(Change {
            target: item.target.clone(),
            subject: item.subject.clone(),
            op: ChangeOp::Revoke {
                hold: None,
                approval: None,
            },
            level: item.observed_level.clone(),
            rules: Vec::new(),
            why: format!("drift: {}", item.why),
        });
    }
    for item in &report.missing {
        let Some(person) = &item.person else { continue };
        by_person.entry(person.clone()).or_default().push(Change {
            target: item.target.clone(),
            subject: item.subject.clone(),
            op: ChangeOp::Grant {
                approval: None,
                time_bound: None,
                sensitive: false,
            },
            level: item.wanted_level.clone(),
            rules: item.rules.clone(),
            why: format!("drift: {}", item.why),
        });
    }
    let mut summary = PlanSummary::default();
    let people_plans = by_person
        .into_iter()
        .map(|(id, mut changes)| {
            changes.sort_by(|a, b| a.target.cmp(&b.target));
            for c in &changes {
                match c.op {
                    ChangeOp::Revoke { .. } => summary.revoke += 1,
                    _ => summary.grant += 1,
                }
            }
            let person = people.people.get(&id);
            PersonPlan {
                name: person.and_then(|p| p.name.clone()),
                status: if person.is_some_and(|p| p.is_active()) {
                    "active".into()
                } else {
                    "terminated".into()
                },
                id,
                rules: Vec::new(),
                changes,
            }
        })
        .collect();
    Plan {
        at,
        policy_hash: policy.hash().to_owned(),
        policy_origin: policy.origin().to_owned(),
        people: people_plans,
        scheduled: Vec::new(),
        summary,
        desired: None,
    }
}
