//! Applying a plan: its changes become engine actions, the engine runs them (in parallel,
//! inside rate limits, each read back), and what was proven lands in the state store.
//!
//! Order and guarantees:
//! 1. The run is recorded as started, then the engine runs phase 1 (grants, rechecks,
//!    raises, revokes, and the revoke half of each level decrease). The engine's
//!    blast-radius guard sees the store's managed-grant count, so a run that would revoke
//!    too large a share stops before anything executes.
//! 2. Phase 2 grants the lower level of each decrease whose revoke verified. A decrease of
//!    a kind whose connector declares `set-level` (contract 0.2.0) is one in-place change
//!    in phase 1 instead: no revoke, no second invitation.
//! 3. State follows evidence only: a grant becomes managed when read-back verified it (or
//!    it is pending, like an invitation); a managed grant is forgotten only when read-back
//!    verified the revoke. An alerted action changes nothing in state, so the next plan
//!    proposes it again.
//! 4. Sensitive grants without an approval get an approval request; holds the policy no
//!    longer needs are lifted; every action is recorded with its evidence and the policy
//!    hash.
//! 5. Crash safety: each action's intent is in state before its first write and its
//!    outcome as soon as it ends ([`Settle`]); an intent left open by a run that was cut
//!    off is read back and settled by `ops::recover` before the next run plans.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Change, ChangeOp, Plan};
use std::collections::HashMap;

use crate::engine::{
    self, ActionOutcome, ActionReport, ActionSpec, EngineOptions, JournalEntry, Op, Progress,
    RunError, RunReport,
};
use crate::host::Host;
use crate::model::{Entitlement, RunOrigin, Subject, Trigger};
use crate::people::People;
use crate::queue::{JobPayload, Pool};
use crate::state::{
    ActionRecord, Approval, Hold, Intent, ManagedGrant, ManagedStatus, NewApproval, PersonRecord,
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
    /// The job queue failed while the run waited for its actions.
    #[error("{0}")]
    Queue(String),
}

/// One engine action and the plan change it carries out.
struct Planned<'a> {
    person: &'a str,
    change: &'a Change,
}

/// Where a run's actions are carried out.
#[derive(Debug, Clone, Copy)]
pub enum Execution<'a> {
    /// In this process: the engine runs each phase's actions at once.
    InProcess,
    /// As rows of the PostgreSQL job queue, by every worker of the pool, this process
    /// among them ([`crate::queue`]).
    Queue(&'a Arc<Pool>),
}

/// Runs `plan` through the engine and records the outcome in `store`: each action's
/// intent before its first write, its outcome as soon as it ends.
#[allow(clippy::too_many_arguments)]
pub async fn apply_plan(
    host: Arc<Host>,
    store: &dyn StateStore,
    plan: &Plan,
    people: &People,
    run_id: &str,
    options: &EngineOptions,
    progress: Arc<dyn Progress>,
    origin: &RunOrigin,
) -> Result<ApplyOutcome, ApplyError> {
    apply_plan_via(
        Execution::InProcess,
        host,
        store,
        plan,
        people,
        run_id,
        options,
        progress,
        origin,
    )
    .await
}

/// [`apply_plan`], its actions carried out where `execution` says.
#[allow(clippy::too_many_arguments)]
pub async fn apply_plan_via(
    execution: Execution<'_>,
    host: Arc<Host>,
    store: &dyn StateStore,
    plan: &Plan,
    people: &People,
    run_id: &str,
    options: &EngineOptions,
    progress: Arc<dyn Progress>,
    origin: &RunOrigin,
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

    let triggers = Triggers::new(store, plan, people, origin)?;
    let email = |person: &str| {
        people
            .people
            .get(person)
            .and_then(|p| p.attributes.get("email"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    // Kinds whose connector changes levels in place (contract 0.2.0 `set-level`): a
    // decrease is one set-level, not a revoke and a grant (no second invitation).
    let lowered: std::collections::BTreeSet<(String, String)> = plan
        .people
        .iter()
        .flat_map(|person| &person.changes)
        .filter(|change| matches!(change.op, ChangeOp::Lower { .. }))
        .map(|change| (change.target.app.clone(), change.target.kind.clone()))
        .collect();
    let mut in_place: HashMap<(String, String), bool> = HashMap::new();
    for (app, kind) in lowered {
        let supported = host
            .connector_info(&app)
            .await
            .is_ok_and(|info| info.capabilities_of(&kind).set_level);
        in_place.insert((app, kind), supported);
    }
    let mut planned = Vec::new();
    let mut specs = Vec::new();
    for person in &plan.people {
        for change in &person.changes {
            let lowers_in_place = matches!(change.op, ChangeOp::Lower { .. })
                && in_place
                    .get(&(change.target.app.clone(), change.target.kind.clone()))
                    .copied()
                    .unwrap_or(false);
            let op = match &change.op {
                ChangeOp::Grant { .. } | ChangeOp::Raise { .. } | ChangeOp::Recheck { .. } => {
                    Op::Grant
                }
                ChangeOp::Lower { .. } if lowers_in_place => Op::SetLevel,
                ChangeOp::Revoke { .. } | ChangeOp::Lower { .. } => Op::Revoke,
                _ => continue,
            };
            let level = match &change.op {
                // The revoke half of a decrease removes what is held now.
                ChangeOp::Lower { from, .. } if !lowers_in_place => from.clone(),
                _ => change.level.clone(),
            };
            specs.push(spec(
                op,
                change,
                level,
                email(&person.id),
                &plan.policy_hash,
                &person.id,
                triggers.of(&person.id, change),
            ));
            planned.push(Planned {
                person: &person.id,
                change,
            });
        }
    }

    let settle = Settle {
        store,
        at,
        policy_hash: &plan.policy_hash,
        run_id,
    };
    let first = match journaled(
        execution, &host, &settle, run_id, specs, &planned, 0, &options, &progress,
    )
    .await
    {
        Ok(report) => report,
        Err(ApplyError::Refused(refused)) => {
            store.finish_run(
                run_id,
                Utc::now(),
                &json!({ "refused": refused.to_string() }),
            )?;
            return Err(refused.into());
        }
        Err(e) => return Err(e),
    };

    // Phase 2: the grant half of each level decrease whose revoke verified.
    let mut second_planned = Vec::new();
    let mut second_specs = Vec::new();
    for (p, report) in planned.iter().zip(&first.actions) {
        if matches!(p.change.op, ChangeOp::Lower { .. })
            && report.op == Op::Revoke
            && report.outcome == ActionOutcome::Verified
        {
            second_specs.push(spec(
                Op::Grant,
                p.change,
                p.change.level.clone(),
                email(p.person),
                &plan.policy_hash,
                p.person,
                triggers.of(p.person, p.change),
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
        let offset = first.actions.len() as u32;
        Some(
            journaled(
                execution,
                &host,
                &settle,
                &format!("{run_id}.2"),
                second_specs,
                &second_planned,
                offset,
                &options,
                &progress,
            )
            .await?,
        )
    };

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

/// Runs one phase through the engine while recording, as the engine reports them, each
/// action's intent (before its first write) and its outcome (as soon as it ends).
#[allow(clippy::too_many_arguments)]
async fn journaled(
    execution: Execution<'_>,
    host: &Arc<Host>,
    settle: &Settle<'_>,
    engine_run: &str,
    specs: Vec<ActionSpec>,
    planned: &[Planned<'_>],
    offset: u32,
    options: &EngineOptions,
    progress: &Arc<dyn Progress>,
) -> Result<RunReport, ApplyError> {
    if let Execution::Queue(pool) = execution {
        return queued(
            pool, host, settle, engine_run, specs, planned, offset, options,
        )
        .await;
    }
    let (journal, mut entries) = tokio::sync::mpsc::unbounded_channel();
    let run = engine::run_journaled(
        Arc::clone(host),
        engine_run,
        specs,
        options,
        Arc::clone(progress),
        Some(journal),
    );
    let record = record_journal(settle, &mut entries, |index| {
        let p = &planned[index];
        (offset + index as u32, p.person, p.change)
    });
    let (report, state_error) = tokio::join!(run, record);
    let report = report?;
    if let Some(e) = state_error {
        return Err(e.into());
    }
    Ok(report)
}

/// One phase through the job queue: checked as a whole here (validation, the
/// blast-radius guard), enqueued, carried out by the pool (this process working on its
/// own run meanwhile), and read back as the engine's report.
#[allow(clippy::too_many_arguments)]
async fn queued(
    pool: &Arc<Pool>,
    host: &Arc<Host>,
    settle: &Settle<'_>,
    engine_run: &str,
    specs: Vec<ActionSpec>,
    planned: &[Planned<'_>],
    offset: u32,
    options: &EngineOptions,
) -> Result<RunReport, ApplyError> {
    let started = std::time::Instant::now();
    let catalog = engine::preflight(host, &specs, options).await?;
    // The second phase follows the first in the run's records.
    let phase = if offset == 0 { 1 } else { 2 };
    let jobs: Vec<JobPayload> = specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let read_modify_write = catalog
                .info(&spec.app)
                .and_then(|info| info.kind(&spec.entitlement.kind))
                .is_some_and(|kind| kind.read_modify_write);
            JobPayload {
                engine_run: engine_run.to_owned(),
                index,
                state_index: offset + index as u32,
                serial: read_modify_write
                    .then(|| format!("{}\u{0}{}", spec.app, spec.entitlement.resource)),
                spec,
                person: planned[index].person.to_owned(),
                change: planned[index].change.clone(),
                policy_hash: settle.policy_hash.to_owned(),
                as_of: settle.at,
            }
        })
        .collect();
    let queue_failed = |e: crate::queue::QueueError| {
        ApplyError::Queue(format!(
            "{e}; what the workers already did is in state and the audit trail, and the next apply carries on from there"
        ))
    };
    pool.queue
        .enqueue(settle.run_id, phase, &jobs)
        .await
        .map_err(queue_failed)?;
    pool.work_phase(settle.run_id, phase)
        .await
        .map_err(queue_failed)?;
    let results = pool
        .queue
        .results(settle.run_id, phase)
        .await
        .map_err(queue_failed)?;
    let actions = results
        .iter()
        .map(|(payload, result)| {
            let key = engine::idempotency_key(&payload.engine_run, payload.index, &payload.spec);
            result.report(payload, key)
        })
        .collect();
    Ok(RunReport {
        run_id: engine_run.to_owned(),
        actions,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Records what the engine journals, as it journals it: each action's intent before its
/// first write, its outcome as soon as it ends. `planned(i)` is the engine's action `i`:
/// its index among the run's recorded actions, its person and its plan change. Ends when
/// the engine drops every sender; returns the first state error (the intent of an action
/// whose outcome could not be recorded stays open, so the next run reads it back).
async fn record_journal<'c>(
    settle: &Settle<'_>,
    entries: &mut tokio::sync::mpsc::UnboundedReceiver<JournalEntry>,
    planned: impl Fn(usize) -> (u32, &'c str, &'c Change),
) -> Option<StateError> {
    let mut state_error: Option<StateError> = None;
    while let Some(entry) = entries.recv().await {
        match entry {
            JournalEntry::Intent {
                index,
                spec,
                key,
                recorded,
            } => {
                let (index, person, change) = planned(index);
                let written = settle.store.record_intent(&Intent {
                    idempotency_key: key,
                    run_id: settle.run_id.to_owned(),
                    index,
                    person: Some(person.to_owned()),
                    spec: json!(spec),
                    change: Some(json!(change)),
                    policy_hash: Some(settle.policy_hash.to_owned()),
                    as_of: settle.at,
                    started_at: Utc::now(),
                });
                let _ = recorded.send(written.map_err(|e| e.to_string()));
            }
            JournalEntry::Finished { report } => {
                let (index, person, change) = planned(report.index);
                if let Err(e) = settle.action(index, person, change, &report) {
                    tracing::error!(error = %e, key = %report.idempotency_key, "could not record an action's outcome");
                    state_error.get_or_insert(e);
                }
            }
        }
    }
    state_error
}

/// One action of a phase enqueued elsewhere (a queue worker): engine action `index` of
/// `engine_run`, recorded as action `state_index` of the settle's run, journaled exactly as
/// inside [`apply_plan`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn execute_one(
    host: &Host,
    settle: &Settle<'_>,
    engine_run: &str,
    index: usize,
    state_index: u32,
    spec: ActionSpec,
    person: &str,
    change: &Change,
    options: &EngineOptions,
) -> Result<ActionReport, StateError> {
    let (journal, mut entries) = tokio::sync::mpsc::unbounded_channel();
    let run = async move {
        engine::run_one(
            host,
            engine_run,
            index,
            spec,
            options,
            &engine::NoProgress,
            Some(&journal),
        )
        .await
    };
    let record = record_journal(settle, &mut entries, |_| (state_index, person, change));
    let (report, state_error) = tokio::join!(run, record);
    match state_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Moves state as far as an action's evidence allows: the one place an outcome becomes
/// state, for a finished action and for one recovered after a crash.
pub(crate) struct Settle<'a> {
    pub store: &'a dyn StateStore,
    /// The time the plan was made for.
    pub at: DateTime<Utc>,
    pub policy_hash: &'a str,
    pub run_id: &'a str,
}

/// Each action's trigger: the run's origin, the person's last HR event, the approval.
struct Triggers {
    origin: Trigger,
    hr_events: HashMap<String, String>,
    approvers: HashMap<i64, Option<String>>,
    policy_hash: String,
}

impl Triggers {
    fn new(
        store: &dyn StateStore,
        plan: &Plan,
        people: &People,
        origin: &RunOrigin,
    ) -> Result<Triggers, StateError> {
        let hr_events = people
            .applied
            .iter()
            .map(|e| (e.person.clone(), e.id.clone()))
            .collect();
        let mut approvers = HashMap::new();
        for change in plan.people.iter().flat_map(|p| &p.changes) {
            if let ChangeOp::Grant {
                approval: Some(id), ..
            }
            | ChangeOp::Revoke {
                approval: Some(id), ..
            } = change.op
            {
                approvers.insert(id, store.approval(id)?.and_then(|a| a.decided_by));
            }
        }
        Ok(Triggers {
            origin: Trigger::from_origin(origin),
            hr_events,
            approvers,
            policy_hash: plan.policy_hash.clone(),
        })
    }

    fn of(&self, person: &str, change: &Change) -> Trigger {
        let approval = match change.op {
            ChangeOp::Grant { approval, .. } | ChangeOp::Revoke { approval, .. } => approval,
            _ => None,
        };
        Trigger {
            person: Some(person.to_owned()),
            rules: change.rules.clone(),
            policy: Some(self.policy_hash.clone()),
            hr_event: self.hr_events.get(person).cloned(),
            approval,
            approver: approval.and_then(|id| self.approvers.get(&id).cloned().flatten()),
            ..self.origin.clone()
        }
    }
}

fn spec(
    op: Op,
    change: &Change,
    level: Option<String>,
    email: Option<String>,
    policy_hash: &str,
    person: &str,
    trigger: Trigger,
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
        trigger,
    }
}

impl Settle<'_> {
    /// Records one action and moves state as far as its evidence allows, then settles
    /// its intent. Every step is an upsert, so a crash part-way is repaired by doing it
    /// again (recovery does).
    pub(crate) fn action(
        &self,
        index: u32,
        person: &str,
        change: &Change,
        report: &ActionReport,
    ) -> Result<(), StateError> {
        let store = self.store;
        let at = self.at;
        let (outcome, detail) = match &report.outcome {
            ActionOutcome::Verified => ("verified", serde_json::Value::Null),
            ActionOutcome::Pending { detail } => ("pending", json!(detail)),
            ActionOutcome::Alerted { reason } => ("alerted", json!(reason)),
        };
        store.record_action(&ActionRecord {
            run_id: self.run_id.to_owned(),
            index,
            idempotency_key: report.idempotency_key.clone(),
            op: report.op.as_str().into(),
            person: Some(person.to_owned()),
            target: change.target.clone(),
            subject: change.subject.clone(),
            level: report.entitlement.level.clone(),
            reason: change.why.clone(),
            outcome: outcome.to_owned(),
            attempts: report.attempts,
            detail: json!({
                "detail": detail,
                "policy_hash": self.policy_hash,
                "rules": change.rules,
                "last_observed": report.last_observed,
                "last_error": report.last_error.as_ref().map(ToString::to_string),
                "http": report.http,
            }),
            finished_at: Utc::now(),
        })?;
        crate::crash::point("state-record");

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
            policy_hash: self.policy_hash.to_owned(),
            run_id: self.run_id.to_owned(),
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
            // A level changed in place: managed at the new level, as a grant would be.
            (Op::SetLevel, ActionOutcome::Verified) => {
                store.record_managed(&managed(ManagedStatus::Active, at))?;
            }
            (Op::SetLevel, ActionOutcome::Pending { .. }) => {
                store.record_managed(&managed(ManagedStatus::Pending, at))?;
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
        store.close_intent(&report.idempotency_key)
    }
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
