//! Applying a plan: its changes become engine actions, the engine runs them (in parallel,
//! inside rate limits, each read back), and what was proven lands in the state store.
//!
//! Order and guarantees:
//! 1. The run is recorded as started, then the engine runs phase 1 (grants, rechecks,
//!    raises, revokes, and the revoke half of each level decrease). The engine's
//!    blast-radius guard sees the store's managed-grant count, so a run that would revoke
//!    too large a share stops before anything executes.
//! 2. Phase 2 grants the lower level of each decrease whose revoke verified.
//! 3. State follows evidence only: a grant becomes managed when read-back verified it (or
//!    it is pending, like an invitation); a managed grant is forgotten only when read-back
//!    verified the revoke. An alerted action changes nothing in state, so the next plan
//!    proposes it again.
//! 4. Sensitive grants without an approval get an approval request; holds the policy no
//!    longer needs are lifted; every action is recorded with its evidence and the policy
//!    hash.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Change, ChangeOp, Plan};
use crate::engine::{
    self, ActionOutcome, ActionReport, ActionSpec, EngineOptions, Op, Progress, RunError, RunReport,
};
use crate::host::Host;
use crate::model::{Entitlement, Subject};
use crate::people::People;
use crate::state::{
    ActionRecord, Approval, Hold, ManagedGrant, ManagedStatus, NewApproval, PersonRecord,
    RunRecord, StateError, StateStore,
};

/// What an apply did.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub run_id: String,
    /// Both phases' actions, phase 1 first.
    pub report: RunReport,
    /// Approval requests recorded by this apply (sensitive grants).
    pub requested_approvals: Vec<Approval>,
    /// Holds lifted because the policy stopped wanting the grant.
    pub lifted_holds: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Refused(#[from] RunError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// One engine action and the plan change it carries out.
struct Planned<'a> {
    person: &'a str,
    change: &'a Change,
}

/// Runs `plan` through the engine and records the outcome in `store`.
#[allow(clippy::too_many_arguments)]
pub async fn apply_plan(
    host: Arc<Host>,
    store: &dyn StateStore,
    plan: &Plan,
    people: &People,
    run_id: &str,
    options: &EngineOptions,
    progress: Arc<dyn Progress>,
) -> Result<ApplyOutcome, ApplyError> {
    let at = plan.at;
    // Runs carry the wall-clock time they ran; `at` (what the plan was made for) decides
    // the state's own times (granted, requested, expiry), so `--at` runs stay reproducible.
    store.begin_run(&RunRecord {
        id: run_id.to_owned(),
        started_at: Utc::now(),
        finished_at: None,
        as_of: Some(at),
        policy_hash: Some(plan.policy_hash.clone()),
        summary: serde_json::Value::Null,
    })?;

    let mut options = options.clone();
    options.managed_grants = Some(store.managed_count()?);

    let email = |person: &str| {
        people
            .people
            .get(person)
            .and_then(|p| p.attributes.get("email"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let mut planned = Vec::new();
    let mut specs = Vec::new();
    for person in &plan.people {
        for change in &person.changes {
            let op = match &change.op {
                ChangeOp::Grant { .. } | ChangeOp::Raise { .. } | ChangeOp::Recheck { .. } => {
                    Op::Grant
                }
                ChangeOp::Revoke { .. } | ChangeOp::Lower { .. } => Op::Revoke,
                _ => continue,
            };
            let level = match &change.op {
                // The revoke half of a decrease removes what is held now.
                ChangeOp::Lower { from, .. } => from.clone(),
                _ => change.level.clone(),
            };
            specs.push(spec(
                op,
                change,
                level,
                email(&person.id),
                &plan.policy_hash,
                &person.id,
            ));
            planned.push(Planned {
                person: &person.id,
                change,
            });
        }
    }

    let first = match engine::run(
        Arc::clone(&host),
        run_id,
        specs,
        &options,
        Arc::clone(&progress),
    )
    .await
    {
        Ok(report) => report,
        Err(refused) => {
            store.finish_run(
                run_id,
                Utc::now(),
                &json!({ "refused": refused.to_string() }),
            )?;
            return Err(refused.into());
        }
    };

    // Phase 2: the grant half of each level decrease whose revoke verified.
    let mut second_planned = Vec::new();
    let mut second_specs = Vec::new();
    for (p, report) in planned.iter().zip(&first.actions) {
        if matches!(p.change.op, ChangeOp::Lower { .. })
            && report.outcome == ActionOutcome::Verified
        {
            second_specs.push(spec(
                Op::Grant,
                p.change,
                p.change.level.clone(),
                email(p.person),
                &plan.policy_hash,
                p.person,
            ));
            second_planned.push(Planned {
                person: p.person,
                change: p.change,
            });
        }
    }
    let second = if second_specs.is_empty() {
        None
    } else {
        // Phase 2 only grants, so the blast-radius guard has nothing to add.
        Some(
            engine::run(
                host,
                &format!("{run_id}.2"),
                second_specs,
                &options,
                progress,
            )
            .await?,
        )
    };

    // State follows the evidence.
    let mut index = 0u32;
    for (p, report) in planned.iter().zip(&first.actions) {
        record(store, plan, run_id, index, p, report)?;
        index += 1;
    }
    if let Some(second) = &second {
        for (p, report) in second_planned.iter().zip(&second.actions) {
            record(store, plan, run_id, index, p, report)?;
            index += 1;
        }
    }

    let mut requested_approvals = Vec::new();
    let mut lifted_holds = 0;
    for person in &plan.people {
        for change in &person.changes {
            match &change.op {
                ChangeOp::AwaitApproval { approval: None } => {
                    requested_approvals.push(store.request_approval(&NewApproval {
                        person: person.id.clone(),
                        op: "grant".into(),
                        target: change.target.clone(),
                        subject: change.subject.clone(),
                        level: change.level.clone(),
                        rules: change.rules.clone(),
                        why: format!("sensitive entitlement (rule {})", change.rules.join(", ")),
                        requested_at: at,
                        policy_hash: plan.policy_hash.clone(),
                    })?);
                }
                ChangeOp::LiftHold if store.clear_hold(&person.id, &change.target)? => {
                    lifted_holds += 1;
                }
                _ => {}
            }
        }
    }

    store.upsert_people(&person_records(people, at))?;
    if let Some(desired) = &plan.desired {
        store.replace_desired(&plan.policy_hash, at, desired)?;
    }

    let mut actions = first.actions;
    if let Some(second) = second {
        actions.extend(second.actions);
    }
    let report = RunReport {
        run_id: run_id.to_owned(),
        duration_ms: first.duration_ms,
        actions,
    };
    store.finish_run(
        run_id,
        Utc::now(),
        &json!({
            "actions": report.actions.len(),
            "verified": report.count(|o| *o == ActionOutcome::Verified),
            "pending": report.count(|o| matches!(o, ActionOutcome::Pending { .. })),
            "alerted": report.count(|o| matches!(o, ActionOutcome::Alerted { .. })),
            "approvals_requested": requested_approvals.len(),
            "holds_lifted": lifted_holds,
        }),
    )?;
    Ok(ApplyOutcome {
        run_id: run_id.to_owned(),
        report,
        requested_approvals,
        lifted_holds,
    })
}

fn spec(
    op: Op,
    change: &Change,
    level: Option<String>,
    email: Option<String>,
    policy_hash: &str,
    person: &str,
) -> ActionSpec {
    let why = if change.why.is_empty() {
        String::new()
    } else {
        format!("{}; ", change.why)
    };
    ActionSpec {
        op,
        app: change.target.app.clone(),
        subject: Subject {
            id: change.subject.clone(),
            email,
        },
        entitlement: Entitlement {
            kind: change.target.kind.clone(),
            resource: change.target.resource.clone(),
            level,
        },
        reason: format!(
            "portcullis policy {} for {person}: {why}rule {}",
            &policy_hash[..policy_hash.len().min(12)],
            change.rules.join(", ")
        ),
    }
}

/// Records one action and moves state as far as its evidence allows.
fn record(
    store: &dyn StateStore,
    plan: &Plan,
    run_id: &str,
    index: u32,
    planned: &Planned<'_>,
    report: &ActionReport,
) -> Result<(), StateError> {
    let at = plan.at;
    let change = planned.change;
    let person = planned.person;
    let (outcome, detail) = match &report.outcome {
        ActionOutcome::Verified => ("verified", serde_json::Value::Null),
        ActionOutcome::Pending { detail } => ("pending", json!(detail)),
        ActionOutcome::Alerted { reason } => ("alerted", json!(reason)),
    };
    store.record_action(&ActionRecord {
        run_id: run_id.to_owned(),
        index,
        idempotency_key: report.idempotency_key.clone(),
        op: match report.op {
            Op::Grant => "grant".into(),
            Op::Revoke => "revoke".into(),
        },
        person: Some(person.to_owned()),
        target: change.target.clone(),
        subject: change.subject.clone(),
        level: report.entitlement.level.clone(),
        reason: change.why.clone(),
        outcome: outcome.to_owned(),
        attempts: report.attempts,
        detail: json!({
            "detail": detail,
            "policy_hash": plan.policy_hash,
            "rules": change.rules,
            "last_observed": report.last_observed,
            "last_error": report.last_error.as_ref().map(ToString::to_string),
            "http": report.http,
        }),
        finished_at: Utc::now(),
    })?;

    let managed = |status: ManagedStatus, granted_at: DateTime<Utc>| ManagedGrant {
        person: person.to_owned(),
        target: change.target.clone(),
        subject: change.subject.clone(),
        level: change.level.clone(),
        rules: change.rules.clone(),
        status,
        granted_at,
        expires_at: match &change.op {
            ChangeOp::Grant { time_bound, .. }
            | ChangeOp::Raise { time_bound, .. }
            | ChangeOp::Lower { time_bound, .. }
            | ChangeOp::Recheck { time_bound, .. } => time_bound.map(|b| b.expires_at(at)),
            _ => None,
        },
        policy_hash: plan.policy_hash.clone(),
        run_id: run_id.to_owned(),
    };
    match (report.op, &report.outcome) {
        (Op::Grant, ActionOutcome::Verified) => {
            store.record_managed(&managed(ManagedStatus::Active, at))?;
            if let ChangeOp::Grant {
                approval: Some(id), ..
            } = change.op
            {
                store.mark_approval_done(id)?;
            }
        }
        (Op::Grant, ActionOutcome::Pending { .. }) => {
            let since = match change.op {
                ChangeOp::Recheck { since, .. } => since,
                _ => at,
            };
            store.record_managed(&managed(ManagedStatus::Pending, since))?;
        }
        (Op::Revoke, ActionOutcome::Verified) => {
            store.forget_managed(person, &change.target)?;
            if let ChangeOp::Revoke { hold, approval } = &change.op {
                if let Some(hold) = hold {
                    store.add_hold(&Hold {
                        person: person.to_owned(),
                        target: change.target.clone(),
                        reason: hold.reason,
                        since: at,
                        detail: hold.detail.clone(),
                    })?;
                }
                if let Some(id) = approval {
                    store.mark_approval_done(*id)?;
                }
            }
            // A level decrease's grant half follows in phase 2, whose record makes the
            // grant managed again at the new level.
        }
        // Alerted, or a revoke reported pending: state is left as it was, so the next
        // plan proposes the change again.
        _ => {}
    }
    Ok(())
}

fn person_records(people: &People, at: DateTime<Utc>) -> Vec<PersonRecord> {
    people
        .people
        .values()
        .map(|p| PersonRecord {
            id: p.id.clone(),
            name: p.name.clone(),
            attributes: serde_json::Value::Object(
                p.attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            accounts: p.accounts.clone(),
            status: if p.is_active() {
                PersonRecord::ACTIVE.into()
            } else {
                PersonRecord::TERMINATED.into()
            },
            updated_at: at,
        })
        .collect()
}
