//! Planning: the difference between what the policy wants each person to hold and what
//! Portcullis has granted, as a list of changes a person can read before anything runs.
//!
//! Inputs are all values (people as of a time, the policy, each app's `describe`, and a
//! snapshot of the state store); the output is a [`Plan`]. Nothing here performs I/O or
//! reads the clock, so the same inputs always give the same plan (snapshot-tested).
//!
//! The rules the planner follows:
//! - Only managed grants (recorded in state because Portcullis made them) are ever revoked
//!   by a plan. Grants someone else made are drift ([`crate::drift`]), never touched here.
//! - A grant the policy wants and no managed record has is granted, unless it is sensitive
//!   (then it waits for an approval), held (expired or revoked for dormancy), or denied.
//! - A managed grant the policy no longer wants is revoked: a mover loses what only the
//!   old role granted, a leaver loses everything managed, in every app.
//! - A time-bound grant past its end is revoked and held, so the rule that still matches
//!   does not grant it again.
//! - A pending grant (an invitation) is re-checked by granting again, which the connector
//!   answers idempotently.
//! - A level decrease is a revoke followed by a grant at the new level (connectors answer a
//!   grant below the held level with "already present"), run in two phases by
//!   [`execute`].

pub mod execute;
pub mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{ConnectorInfo, Target};
use crate::people::{People, Person, PersonStatus};
use crate::policy::{DesiredGrant, Policy, PolicyError, TimeBound};
use crate::state::{Approval, ApprovalStatus, DesiredRow, Hold, ManagedGrant, ManagedStatus};

pub use execute::{ApplyOutcome, apply_plan};

/// What the state store holds that the planner needs, read once before planning.
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    pub managed: Vec<ManagedGrant>,
    pub holds: Vec<Hold>,
    pub approvals: Vec<Approval>,
}

/// One planned change to one person's access on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub target: Target,
    /// The app's id for the person.
    pub subject: String,
    pub op: ChangeOp,
    /// The level the change leaves (grant, keep) or removes (revoke).
    pub level: Option<String>,
    /// The rules behind it: those that want it, or, for a revoke, those that once did.
    pub rules: Vec<String>,
    /// Why, in words: "no rule grants it any more", "expired 2027-01-01T08:00:00Z".
    pub why: String,
}

/// The kinds of change, in the order a plan prints them for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum ChangeOp {
    /// New access.
    Grant {
        /// Needs approval and has one (its id is marked done once the grant verifies).
        approval: Option<i64>,
        /// Expires this long after it is verified, or at this time.
        time_bound: Option<TimeBound>,
        sensitive: bool,
    },
    /// The level rises: a grant at the higher level.
    Raise {
        from: Option<String>,
        time_bound: Option<TimeBound>,
    },
    /// The level falls: revoke, then grant at the lower level.
    Lower {
        from: Option<String>,
        time_bound: Option<TimeBound>,
    },
    /// Granted but not in force yet (an invitation): granting again re-checks it.
    Recheck {
        since: DateTime<Utc>,
        /// Counted from when the re-check verifies it, like a first grant.
        time_bound: Option<TimeBound>,
    },
    /// Taken away.
    Revoke {
        /// What the revoke leaves behind so the policy does not grant it again.
        hold: Option<HoldPlan>,
        /// The approval that allowed it (dormant access), marked done once verified.
        approval: Option<i64>,
    },
    /// Sensitive: waits for `portcullis approve`. `approval` is None until `apply`
    /// records the request.
    AwaitApproval { approval: Option<i64> },
    /// Sensitive and denied by a person: not granted while the denial stands.
    Denied {
        approval: i64,
        by: Option<String>,
        reason: Option<String>,
    },
    /// Wanted by the policy, but held: expired or revoked for dormancy.
    Held { reason: String },
    /// A hold the policy no longer needs (it stopped wanting the grant): lifted on apply
    /// so a later rule match grants afresh.
    LiftHold,
    /// Unchanged.
    Keep,
}

/// The hold a revoke leaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldPlan {
    pub reason: crate::state::HoldReason,
    pub detail: String,
}

impl ChangeOp {
    /// True for changes that call a connector.
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            ChangeOp::Grant { .. }
                | ChangeOp::Raise { .. }
                | ChangeOp::Lower { .. }
                | ChangeOp::Recheck { .. }
                | ChangeOp::Revoke { .. }
        )
    }

    /// The one-character marker the plan prints, terraform-style.
    pub fn marker(&self) -> char {
        match self {
            ChangeOp::Grant { .. } => '+',
            ChangeOp::Revoke { .. } => '-',
            ChangeOp::Raise { .. } | ChangeOp::Lower { .. } | ChangeOp::Recheck { .. } => '~',
            ChangeOp::AwaitApproval { .. } => '?',
            ChangeOp::Denied { .. } | ChangeOp::Held { .. } | ChangeOp::LiftHold => '!',
            ChangeOp::Keep => '=',
        }
    }
}

/// Everything planned for one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonPlan {
    pub id: String,
    pub name: Option<String>,
    /// `active`, `terminated`, or `absent` (has managed grants but is in neither the
    /// directory nor the HR events: treated as a leaver).
    pub status: String,
    /// Rules whose condition holds for the person.
    pub rules: Vec<String>,
    /// By app, kind, resource.
    pub changes: Vec<Change>,
}

/// Counts for the plan's last line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub grant: usize,
    pub change: usize,
    pub revoke: usize,
    pub awaiting_approval: usize,
    pub held: usize,
    pub keep: usize,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The time the plan is for: HR events effective by then are applied; expiry is
    /// judged against it.
    pub at: DateTime<Utc>,
    /// sha256 of the policy file: recorded with every decision the plan leads to.
    pub policy_hash: String,
    pub policy_origin: String,
    /// People with at least one change or kept grant, by id.
    pub people: Vec<PersonPlan>,
    /// HR events effective after `at`: "id kind person effective".
    pub scheduled: Vec<String>,
    pub summary: PlanSummary,
    /// Every grant the policy wants, as the state store keeps it (`apply` replaces the
    /// store's desired snapshot with this). Not printed.
    /// None for plans that are not a policy evaluation (drift corrections).
    #[serde(skip)]
    pub desired: Option<Vec<DesiredRow>>,
}

/// Why a plan could not be made. Nothing has run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Several people's problems at once, so an operator fixes them in one pass.
    #[error("{} people could not be planned:\n{}", .0.len(), render_list(.0))]
    People(Vec<String>),
}

fn render_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("  - {}", i.replace('\n', "\n    ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Works out the plan. Pure: the same inputs give the same plan.
pub fn plan(
    policy: &Policy,
    people: &People,
    catalog: &BTreeMap<String, ConnectorInfo>,
    state: &StateSnapshot,
    at: DateTime<Utc>,
) -> Result<Plan, PlanError> {
    policy.validate(catalog)?;

    let mut managed: BTreeMap<&str, BTreeMap<&Target, &ManagedGrant>> = BTreeMap::new();
    for grant in &state.managed {
        managed
            .entry(grant.person.as_str())
            .or_default()
            .insert(&grant.target, grant);
    }
    let mut holds: BTreeMap<&str, BTreeMap<&Target, &Hold>> = BTreeMap::new();
    for hold in &state.holds {
        holds
            .entry(hold.person.as_str())
            .or_default()
            .insert(&hold.target, hold);
    }
    let judge = Judge {
        approvals: Approvals::index(&state.approvals),
        catalog,
        at,
    };

    let ids: BTreeSet<&str> = people
        .people
        .keys()
        .map(String::as_str)
        .chain(managed.keys().copied())
        .chain(holds.keys().copied())
        .collect();

    let mut problems = Vec::new();
    let mut plans = Vec::new();
    let mut desired_rows = Vec::new();
    let empty_managed = BTreeMap::new();
    let empty_holds = BTreeMap::new();
    for id in ids {
        let person = people.people.get(id);
        let evaluated = match person {
            Some(p) => match policy.evaluate(p, catalog) {
                Ok(e) => Some(e),
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            },
            None => None,
        };
        if let Some(e) = &evaluated {
            desired_rows.extend(e.grants.values().map(|g| DesiredRow {
                person: id.to_owned(),
                target: g.target.clone(),
                level: g.level.clone(),
                rules: g.rules.clone(),
                sensitive: g.sensitive,
                policy_hash: policy.hash().to_owned(),
                computed_at: at,
            }));
        }
        let person_plan = plan_person(
            &judge,
            id,
            person,
            evaluated.as_ref().map(|e| (&e.grants, &e.matched_rules)),
            managed.get(id).unwrap_or(&empty_managed),
            holds.get(id).unwrap_or(&empty_holds),
        );
        if !person_plan.changes.is_empty() {
            plans.push(person_plan);
        }
    }
    if !problems.is_empty() {
        return Err(PlanError::People(problems));
    }

    let summary = summarise(&plans);
    Ok(Plan {
        at,
        policy_hash: policy.hash().to_owned(),
        policy_origin: policy.origin().to_owned(),
        people: plans,
        scheduled: people
            .scheduled
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} effective {}",
                    e.id,
                    e.kind,
                    e.person,
                    e.effective.to_rfc3339()
                )
            })
            .collect(),
        summary,
        desired: Some(desired_rows),
    })
}

/// The counts of a plan's changes by kind.
fn summarise(people: &[PersonPlan]) -> PlanSummary {
    let mut summary = PlanSummary::default();
    for change in people.iter().flat_map(|p| &p.changes) {
        match &change.op {
            ChangeOp::Grant { .. } => summary.grant += 1,
            ChangeOp::Raise { .. } | ChangeOp::Lower { .. } | ChangeOp::Recheck { .. } => {
                summary.change += 1
            }
            ChangeOp::Revoke { .. } => summary.revoke += 1,
            ChangeOp::AwaitApproval { .. } => summary.awaiting_approval += 1,
            ChangeOp::Denied { .. } | ChangeOp::Held { .. } | ChangeOp::LiftHold => {
                summary.held += 1
            }
            ChangeOp::Keep => summary.keep += 1,
        }
    }
    summary
}

impl Plan {
    /// Keeps only the changes `keep` accepts (for one person's plan, or the re-checks that
    /// are due), dropping people left without changes, and recounts the summary. The
    /// desired-state rows stay whole: they are the policy's, not this selection's.
    pub fn retain(&mut self, mut keep: impl FnMut(&PersonPlan, &Change) -> bool) {
        for person in &mut self.people {
            let changes = std::mem::take(&mut person.changes);
            let kept = changes
                .into_iter()
                .filter(|change| keep(person, change))
                .collect();
            person.changes = kept;
        }
        self.people.retain(|p| !p.changes.is_empty());
        self.summary = summarise(&self.people);
    }

    /// Whether running the plan would call any app.
    pub fn has_actions(&self) -> bool {
        self.people
            .iter()
            .flat_map(|p| &p.changes)
            .any(|c| c.op.is_action())
    }
}

/// Approvals by what they are for, latest first.
struct Approvals<'a> {
    by_change: BTreeMap<(&'a str, &'a str, &'a Target), Vec<&'a Approval>>,
}

impl<'a> Approvals<'a> {
    fn index(all: &'a [Approval]) -> Approvals<'a> {
        let mut by_change: BTreeMap<_, Vec<&Approval>> = BTreeMap::new();
        for a in all {
            by_change
                .entry((a.person.as_str(), a.op.as_str(), &a.target))
                .or_default()
                .push(a);
        }
        for list in by_change.values_mut() {
            list.sort_by_key(|a| std::cmp::Reverse(a.id));
        }
        Approvals { by_change }
    }

    /// The latest approval for (person, op, target) at `level` that is still relevant:
    /// pending, approved, or denied. Done approvals were used up.
    fn latest(
        &self,
        person: &str,
        op: &str,
        target: &Target,
        level: Option<&str>,
    ) -> Option<&'a Approval> {
        self.by_change
            .get(&(person, op, target))?
            .iter()
            .copied()
            .find(|a| a.level.as_deref() == level && a.status != ApprovalStatus::Done)
    }
}

/// What every person's plan is judged against.
struct Judge<'a> {
    approvals: Approvals<'a>,
    catalog: &'a BTreeMap<String, ConnectorInfo>,
    at: DateTime<Utc>,
}

fn plan_person(
    judge: &Judge<'_>,
    id: &str,
    person: Option<&Person>,
    evaluated: Option<(&BTreeMap<Target, DesiredGrant>, &Vec<String>)>,
    managed: &BTreeMap<&Target, &ManagedGrant>,
    holds: &BTreeMap<&Target, &Hold>,
) -> PersonPlan {
    let empty = BTreeMap::new();
    let (desired, matched) = match evaluated {
        Some((grants, rules)) => (grants, rules.clone()),
        None => (&empty, Vec::new()),
    };
    let (status, leaving_reason) = match person.map(|p| &p.status) {
        Some(PersonStatus::Active) => ("active".to_owned(), None),
        Some(PersonStatus::Terminated { effective, event }) => (
            "terminated".to_owned(),
            Some(format!(
                "terminated {} ({event})",
                effective.format("%Y-%m-%d")
            )),
        ),
        None => (
            "absent".to_owned(),
            Some("no longer in the directory or HR events".to_owned()),
        ),
    };

    let targets: BTreeSet<&Target> = desired
        .keys()
        .chain(managed.keys().copied())
        .chain(holds.keys().copied())
        .collect();
    let mut changes = Vec::new();
    for target in targets {
        let want = desired.get(target);
        let have = managed.get(target).copied();
        let hold = holds.get(target).copied();
        let current = Current { want, have, hold };
        if let Some(change) = plan_target(judge, id, target, current, leaving_reason.as_deref()) {
            changes.push(change);
        }
    }
    PersonPlan {
        id: id.to_owned(),
        name: person.and_then(|p| p.name.clone()),
        status,
        rules: matched,
        changes,
    }
}

/// What the policy wants, what Portcullis granted, and any hold, for one target.
struct Current<'a> {
    want: Option<&'a DesiredGrant>,
    have: Option<&'a ManagedGrant>,
    hold: Option<&'a Hold>,
}

fn plan_target(
    judge: &Judge<'_>,
    person: &str,
    target: &Target,
    current: Current<'_>,
    leaving: Option<&str>,
) -> Option<Change> {
    let Current { want, have, hold } = current;
    let (approvals, catalog, at) = (&judge.approvals, judge.catalog, judge.at);
    let change = |subject: &str, op: ChangeOp, level: Option<&String>, rules: &[String], why| {
        Some(Change {
            target: target.clone(),
            subject: subject.to_owned(),
            op,
            level: level.cloned(),
            rules: rules.to_vec(),
            why,
        })
    };
    let Some(want) = want else {
        // Not wanted (any more).
        if let Some(have) = have {
            let why = match leaving {
                Some(reason) => reason.to_owned(),
                None => format!(
                    "no rule grants it any more (granted by {})",
                    have.rules.join(", ")
                ),
            };
            let op = ChangeOp::Revoke {
                hold: None,
                approval: None,
            };
            return change(&have.subject, op, have.level.as_ref(), &have.rules, why);
        }
        let hold = hold?;
        return change(
            "",
            ChangeOp::LiftHold,
            None,
            &[],
            format!(
                "the policy no longer wants it; lifting the hold ({})",
                hold.detail
            ),
        );
    };

    // Wanted.
    let expired_until = match want.time_bound {
        Some(TimeBound::Until(end)) if at >= end => Some(end),
        _ => None,
    };
    if let Some(have) = have {
        let expired_at = have.expires_at.filter(|end| at >= *end).or(expired_until);
        if let Some(end) = expired_at {
            let detail = format!("expired {}", end.to_rfc3339());
            let op = ChangeOp::Revoke {
                hold: Some(HoldPlan {
                    reason: crate::state::HoldReason::Expired,
                    detail: detail.clone(),
                }),
                approval: None,
            };
            return change(&have.subject, op, have.level.as_ref(), &want.rules, detail);
        }
        if let Some(approval) = approvals.latest(person, "revoke", target, have.level.as_deref())
            && approval.status == ApprovalStatus::Approved
        {
            let detail = approval.why.clone();
            let op = ChangeOp::Revoke {
                hold: Some(HoldPlan {
                    reason: crate::state::HoldReason::Dormant,
                    detail: detail.clone(),
                }),
                approval: Some(approval.id),
            };
            let by = approval.decided_by.as_deref().unwrap_or("?");
            return change(
                &have.subject,
                op,
                have.level.as_ref(),
                &want.rules,
                format!("{detail}; revocation approved by {by}"),
            );
        }
        if have.status == ManagedStatus::Pending {
            return change(
                &want.subject,
                ChangeOp::Recheck {
                    since: have.granted_at,
                    time_bound: want.time_bound,
                },
                want.level.as_ref(),
                &want.rules,
                "not in force yet (pending); granting again re-checks it".into(),
            );
        }
        if have.level != want.level {
            let rises = level_rises(
                catalog,
                target,
                have.level.as_deref(),
                want.level.as_deref(),
            );
            let op = if rises {
                ChangeOp::Raise {
                    from: have.level.clone(),
                    time_bound: want.time_bound,
                }
            } else {
                ChangeOp::Lower {
                    from: have.level.clone(),
                    time_bound: want.time_bound,
                }
            };
            let why = format!(
                "level {} -> {}",
                have.level.as_deref().unwrap_or("-"),
                want.level.as_deref().unwrap_or("-")
            );
            return change(&want.subject, op, want.level.as_ref(), &want.rules, why);
        }
        return change(
            &have.subject,
            ChangeOp::Keep,
            have.level.as_ref(),
            &want.rules,
            String::new(),
        );
    }

    if let Some(hold) = hold {
        return change(
            &want.subject,
            ChangeOp::Held {
                reason: hold.detail.clone(),
            },
            want.level.as_ref(),
            &want.rules,
            format!("held since {}: {}", hold.since.to_rfc3339(), hold.detail),
        );
    }
    if let Some(end) = expired_until {
        return change(
            &want.subject,
            ChangeOp::Held {
                reason: format!("ended {}", end.to_rfc3339()),
            },
            want.level.as_ref(),
            &want.rules,
            format!("time-bound until {}, which has passed", end.to_rfc3339()),
        );
    }
    if want.sensitive {
        let approval = approvals.latest(person, "grant", target, want.level.as_deref());
        return match approval {
            Some(a) if a.status == ApprovalStatus::Approved => change(
                &want.subject,
                ChangeOp::Grant {
                    approval: Some(a.id),
                    time_bound: want.time_bound,
                    sensitive: true,
                },
                want.level.as_ref(),
                &want.rules,
                format!(
                    "sensitive; approved by {} (approval {})",
                    a.decided_by.as_deref().unwrap_or("?"),
                    a.id
                ),
            ),
            Some(a) if a.status == ApprovalStatus::Denied => change(
                &want.subject,
                ChangeOp::Denied {
                    approval: a.id,
                    by: a.decided_by.clone(),
                    reason: a.decision_reason.clone(),
                },
                want.level.as_ref(),
                &want.rules,
                format!(
                    "sensitive; denied by {} (approval {}){}",
                    a.decided_by.as_deref().unwrap_or("?"),
                    a.id,
                    a.decision_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            ),
            Some(a) => change(
                &want.subject,
                ChangeOp::AwaitApproval {
                    approval: Some(a.id),
                },
                want.level.as_ref(),
                &want.rules,
                format!(
                    "sensitive; waiting for approval {} (portcullis approve {})",
                    a.id, a.id
                ),
            ),
            None => change(
                &want.subject,
                ChangeOp::AwaitApproval { approval: None },
                want.level.as_ref(),
                &want.rules,
                "sensitive; apply records an approval request".into(),
            ),
        };
    }
    change(
        &want.subject,
        ChangeOp::Grant {
            approval: None,
            time_bound: want.time_bound,
            sensitive: false,
        },
        want.level.as_ref(),
        &want.rules,
        String::new(),
    )
}

/// Whether going from `from` to `to` raises the level, in the kind's order (`describe`).
/// A level the kind no longer lists ranks lowest.
fn level_rises(
    catalog: &BTreeMap<String, ConnectorInfo>,
    target: &Target,
    from: Option<&str>,
    to: Option<&str>,
) -> bool {
    let kind = catalog.get(&target.app).and_then(|c| c.kind(&target.kind));
    let rank = |level: Option<&str>| level.and_then(|l| kind.and_then(|k| k.rank(l)));
    match (from, to) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(_), Some(_)) => rank(to) > rank(from),
    }
}
