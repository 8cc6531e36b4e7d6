//! Jobs: runs the service carries out (requested applies, HR-event applies) and its
//! scheduled work (reconcile, drift, dormant sweep), each visible in `/v1/jobs`.
//!
//! The schedule is derived from state, so it survives restarts: what reconcile runs is the
//! plan as of now (time-bound grants that ended, HR events now effective, approved
//! changes, pending grants whose re-check is due), never a queue kept in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;

use super::Service;
use crate::engine::NoProgress;
use crate::model::ActionOutcome;
use crate::ops::{self, OpError, Sources, lock_holder, new_run_id};
use crate::plan::{ChangeOp, Plan};
use crate::state::Target;

/// How a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    Queued,
    Running,
    /// Everything it ran was verified.
    Succeeded,
    /// It ran; some changes are pending (invitations) or wait for approval.
    Pending,
    /// Something did not converge, or the run was refused.
    Failed,
}

/// One job, as `/v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    /// `apply`, `hr-event`, `reconcile`, `drift`, `dormant`.
    pub kind: String,
    /// The caller that asked, or `schedule`.
    pub requested_by: String,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What it did: run id, counts, approvals, the error.
    pub detail: serde_json::Value,
}

/// One scheduled job's rhythm and last outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Scheduled {
    pub name: String,
    pub every_s: u64,
    pub last_run: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub last_job: Option<String>,
}

/// Most jobs kept for `/v1/jobs`; older finished ones are dropped (runs stay in state).
const KEPT_JOBS: usize = 500;

#[derive(Default)]
pub(super) struct Jobs {
    inner: Mutex<JobsInner>,
}

#[derive(Default)]
struct JobsInner {
    next: u64,
    jobs: BTreeMap<u64, Job>,
    scheduled: BTreeMap<String, Scheduled>,
    /// Last re-check of each pending grant (person, target), for the backoff.
    rechecked: HashMap<(String, Target), DateTime<Utc>>,
}

impl Jobs {
    pub fn create(&self, kind: &str, requested_by: &str) -> String {
        let mut inner = self.inner.lock();
        inner.next += 1;
        let n = inner.next;
        let id = format!("job-{n}");
        inner.jobs.insert(
            n,
            Job {
                id: id.clone(),
                kind: kind.into(),
                requested_by: requested_by.into(),
                status: JobStatus::Queued,
                created_at: Utc::now(),
                finished_at: None,
                detail: serde_json::Value::Null,
            },
        );
        while inner.jobs.len() > KEPT_JOBS {
            let oldest = inner
                .jobs
                .iter()
                .find(|(_, j)| j.finished_at.is_some())
                .map(|(n, _)| *n);
            match oldest {
                Some(n) => inner.jobs.remove(&n),
                None => break,
            };
        }
        id
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        let mut inner = self.inner.lock();
        if let Some(job) = inner.jobs.values_mut().find(|j| j.id == id) {
            f(job);
        }
    }

    pub fn get(&self, id: &str) -> Option<Job> {
        self.inner
            .lock()
            .jobs
            .values()
            .find(|j| j.id == id)
            .cloned()
    }

    pub fn list(&self) -> (Vec<Job>, Vec<Scheduled>) {
        let inner = self.inner.lock();
        (
            inner.jobs.values().rev().cloned().collect(),
            inner.scheduled.values().cloned().collect(),
        )
    }

    /// Jobs not finished yet (queue depth for `/readyz` and shutdown).
    pub fn unfinished(&self) -> usize {
        self.inner
            .lock()
            .jobs
            .values()
            .filter(|j| j.finished_at.is_none())
            .count()
    }

    pub fn schedule(&self, name: &str, every_s: u64) {
        self.inner.lock().scheduled.insert(
            name.into(),
            Scheduled {
                name: name.into(),
                every_s,
                last_run: None,
                next_run: Some(Utc::now()),
                last_outcome: None,
                last_job: None,
            },
        );
    }

    fn scheduled_ran(&self, name: &str, job: &Job) {
        let mut inner = self.inner.lock();
        if let Some(s) = inner.scheduled.get_mut(name) {
            s.last_run = Some(job.created_at);
            s.next_run = Some(Utc::now() + chrono::Duration::seconds(s.every_s as i64));
            s.last_outcome = Some(
                job.detail
                    .get("outcome")
                    .and_then(|o| o.as_str())
                    .unwrap_or("done")
                    .to_owned(),
            );
            s.last_job = Some(job.id.clone());
        }
    }
}

/// Which part of the plan a run carries out.
#[derive(Debug, Clone)]
pub(super) enum Scope {
    /// Everyone.
    All,
    /// The named people only (a request for one person, an HR event).
    People(Vec<String>),
    /// What is due now: everything but re-checks of pending grants not due yet.
    Due,
}

/// Plans as of now and runs `scope` of it, under the service's run turn. Returns the job's
/// final status and detail.
pub(super) async fn run_policy(
    service: &Service,
    scope: &Scope,
    allow_large_revoke: bool,
    holder: &str,
    origin: &crate::model::RunOrigin,
) -> (JobStatus, serde_json::Value) {
    let ws = &service.workspace;
    let mut prepared = match ws.prepare_apply(&Sources::default(), None, holder).await {
        Ok(prepared) => prepared,
        Err(e) => return failed(&e),
    };
    let now = prepared.situation.at;
    match scope {
        Scope::All => {}
        Scope::People(ids) => prepared.plan.retain(|p, _| ids.contains(&p.id)),
        Scope::Due => {
            let schedule = &ws.config.server.schedule;
            // Forget re-checks of grants no longer pending, so the map stays as small as
            // the set of pending grants.
            let pending: std::collections::HashSet<(String, Target)> = prepared
                .plan
                .people
                .iter()
                .flat_map(|p| {
                    p.changes
                        .iter()
                        .filter(|c| matches!(c.op, ChangeOp::Recheck { .. }))
                        .map(|c| (p.id.clone(), c.target.clone()))
                })
                .collect();
            let checked = {
                let mut inner = service.jobs.inner.lock();
                inner.rechecked.retain(|key, _| pending.contains(key));
                inner.rechecked.clone()
            };
            prepared.plan.retain(|person, change| match &change.op {
                ChangeOp::Recheck { since, .. } => {
                    let last = checked.get(&(person.id.clone(), change.target.clone()));
                    recheck_due(
                        *since,
                        last.copied(),
                        schedule.recheck_first_s,
                        schedule.recheck_max_s,
                        now,
                    )
                }
                // Already requested: nothing to record again.
                ChangeOp::AwaitApproval { approval: Some(_) } => false,
                op => {
                    op.is_action()
                        || matches!(op, ChangeOp::AwaitApproval { .. } | ChangeOp::LiftHold)
                }
            });
        }
    }
    if !worth_running(&prepared.plan) {
        return (
            JobStatus::Succeeded,
            json!({ "outcome": "nothing to do", "as_of": now }),
        );
    }
    {
        let mut inner = service.jobs.inner.lock();
        for person in &prepared.plan.people {
            for change in &person.changes {
                if matches!(change.op, ChangeOp::Recheck { .. }) {
                    inner
                        .rechecked
                        .insert((person.id.clone(), change.target.clone()), now);
                }
            }
        }
    }
    let run_id = new_run_id();
    match ws
        .run(
            &prepared,
            &run_id,
            allow_large_revoke,
            Arc::new(NoProgress),
            origin,
        )
        .await
    {
        Err(e) => failed(&e),
        Ok(applied) => {
            let report = &applied.outcome.report;
            let count = |f: fn(&ActionOutcome) -> bool| report.count(f);
            let verified = count(|o| *o == ActionOutcome::Verified);
            let pending = count(|o| matches!(o, ActionOutcome::Pending { .. }));
            let alerted = count(|o| matches!(o, ActionOutcome::Alerted { .. }));
            let status = if alerted > 0 {
                JobStatus::Failed
            } else if pending > 0 || applied.awaiting > 0 {
                JobStatus::Pending
            } else {
                JobStatus::Succeeded
            };
            let alerts: Vec<_> = report
                .alerts()
                .map(|a| json!({ "app": a.app, "entitlement": a.entitlement.to_string(), "subject": a.subject.id, "outcome": a.outcome }))
                .collect();
            (
                status,
                json!({
                    "outcome": match status {
                        JobStatus::Failed => "alerted",
                        JobStatus::Pending => "pending",
                        _ => "verified",
                    },
                    "run_id": run_id,
                    "as_of": now,
                    "actions": report.actions.len(),
                    "verified": verified,
                    "pending": pending,
                    "alerted": alerted,
                    "alerts": alerts,
                    "awaiting_approval": applied.awaiting,
                    "approvals_requested": applied.outcome.requested_approvals.iter().map(|a| a.id).collect::<Vec<_>>(),
                    "holds_lifted": applied.outcome.lifted_holds,
                }),
            )
        }
    }
}

fn worth_running(plan: &Plan) -> bool {
    plan.people.iter().flat_map(|p| &p.changes).any(|c| {
        c.op.is_action()
            || matches!(
                c.op,
                ChangeOp::AwaitApproval { approval: None } | ChangeOp::LiftHold
            )
    })
}

fn failed(error: &OpError) -> (JobStatus, serde_json::Value) {
    (
        JobStatus::Failed,
        json!({ "outcome": "failed", "error": error.to_string() }),
    )
}

/// Whether a pending grant pending `since` is due for a re-check: checks fall at
/// `since + first`, then at doubling intervals up to `max`; due when one fell after the
/// last check (or there was none) and by `now`.
pub(super) fn recheck_due(
    since: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
    first_s: u64,
    max_s: u64,
    now: DateTime<Utc>,
) -> bool {
    let mut interval = first_s.max(1);
    let mut next = since + chrono::Duration::seconds(interval as i64);
    if let Some(last) = last {
        while next <= last {
            interval = (interval * 2).min(max_s.max(1));
            next += chrono::Duration::seconds(interval as i64);
        }
    }
    next <= now
}

/// Starts a job on its own task and returns its id at once.
pub(super) fn spawn_policy_job(
    service: &Arc<Service>,
    kind: &str,
    requested_by: &str,
    scope: Scope,
    allow_large_revoke: bool,
) -> String {
    let id = service.jobs.create(kind, requested_by);
    let job = id.clone();
    let svc = Arc::clone(service);
    let holder = format!("{kind} job {id} for {requested_by}");
    let kind = kind.to_owned();
    let requested_by = requested_by.to_owned();
    let mut tasks = service.tasks.lock();
    // Finished tasks are kept until joined: reap them, so a long-running service does not
    // accumulate one per job.
    while tasks.try_join_next().is_some() {}
    tasks.spawn(async move {
        svc.jobs.update(&job, |j| j.status = JobStatus::Running);
        // An HR event's job names the HR source's token; a request the operator's.
        let origin = crate::model::RunOrigin {
            source: if kind == "hr-event" {
                "hr-webhook"
            } else {
                "api"
            }
            .into(),
            operator: None,
            token: Some(requested_by.clone()),
            schedule: None,
        };
        let (status, detail) = run_policy(&svc, &scope, allow_large_revoke, &holder, &origin).await;
        svc.jobs.update(&job, |j| {
            j.status = status;
            j.detail = detail;
            j.finished_at = Some(Utc::now());
        });
        if let Some(finished) = svc.jobs.get(&job)
            && finished.status == JobStatus::Failed
        {
            svc.alert(&finished).await;
        }
    });
    id
}

/// The scheduler: each configured job on its own interval until shutdown.
pub(super) async fn scheduler(service: Arc<Service>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let schedule = service.workspace.config.server.schedule.clone();
    let mut jobs: Vec<(&str, u64)> = vec![("reconcile", schedule.reconcile_every_s)];
    if schedule.drift_every_s > 0 {
        jobs.push(("drift", schedule.drift_every_s));
    }
    if schedule.dormant_every_s > 0 {
        jobs.push(("dormant", schedule.dormant_every_s));
    }
    for (name, every) in &jobs {
        service.jobs.schedule(name, *every);
    }
    let mut next: Vec<tokio::time::Instant> =
        jobs.iter().map(|_| tokio::time::Instant::now()).collect();
    loop {
        let (i, at) = next
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|(_, at)| *at)
            .expect("reconcile is always scheduled");
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let (name, every) = jobs[i];
        if !service.runs_scheduler() {
            // Another worker runs the scheduler; look again soon, so a takeover starts
            // the jobs without waiting a whole interval.
            next[i] = tokio::time::Instant::now() + Duration::from_secs(every.min(1));
            continue;
        }
        run_scheduled(&service, name).await;
        if let Err(e) = service.workspace.host.audit_sink().tick() {
            tracing::error!(error = %e, "could not write an interval audit checkpoint");
        }
        next[i] = tokio::time::Instant::now() + Duration::from_secs(every);
    }
}

async fn run_scheduled(service: &Arc<Service>, name: &str) {
    let id = service.jobs.create(name, "schedule");
    service.jobs.update(&id, |j| j.status = JobStatus::Running);
    let holder = format!("scheduled {name} ({id})");
    let (status, detail) = match name {
        "reconcile" => {
            let origin = crate::model::RunOrigin {
                source: "schedule".into(),
                schedule: Some(name.to_owned()),
                ..Default::default()
            };
            run_policy(service, &Scope::Due, false, &holder, &origin).await
        }
        "drift" => drift_report(service).await,
        _ => dormant_sweep(service).await,
    };
    service.jobs.update(&id, |j| {
        j.status = status;
        j.detail = detail;
        j.finished_at = Some(Utc::now());
    });
    if let Some(job) = service.jobs.get(&id) {
        service.jobs.scheduled_ran(name, &job);
        if job.status == JobStatus::Failed {
            service.alert(&job).await;
        }
    }
}

async fn drift_report(service: &Service) -> (JobStatus, serde_json::Value) {
    match service.workspace.drift(&Sources::default(), None).await {
        Err(e) => failed(&e),
        Ok(drifted) => (
            JobStatus::Succeeded,
            json!({
                "outcome": format!(
                    "{} outside policy, {} missing, {} unmanaged",
                    drifted.report.outside_policy.len(),
                    drifted.report.missing.len(),
                    drifted.report.unmanaged.len()
                ),
                "drift": drifted.report,
                "not_listed": drifted.not_listed,
            }),
        ),
    }
}

async fn dormant_sweep(service: &Service) -> (JobStatus, serde_json::Value) {
    let days = service.workspace.config.server.schedule.dormant_days;
    let days = u32::try_from(days).unwrap_or(u32::MAX);
    let store = service.workspace.store.as_ref();
    let collected = match ops::collect_usage(&service.workspace.host, store).await {
        Ok(collected) => collected,
        Err(e) => return failed(&e),
    };
    match ops::dormant_sweep(store, days, None, Utc::now()) {
        Err(e) => failed(&e),
        Ok(sweep) => (
            JobStatus::Succeeded,
            json!({
                "outcome": format!("{} dormant grants", sweep.found.len()),
                "approvals": sweep.approvals.iter().map(|a| a.id).collect::<Vec<_>>(),
                "usage_collected": collected,
            }),
        ),
    }
}

/// Who holds the state while the service runs, as a refused CLI run shows it.
pub(super) fn service_holder(url: &str) -> String {
    lock_holder(&format!(
        "`portcullis serve` at {url}; send changes through its API ({url}/v1) or stop it"
    ))
}

#[cfg(test)]
mod tests {
    use super::recheck_due;
    use chrono::{TimeZone as _, Utc};

    #[test]
    fn re_checks_back_off_from_the_first_wait_to_the_longest() {
        let since = Utc
            .with_ymd_and_hms(2027, 1, 4, 9, 0, 0)
            .single()
            .expect("time");
        let at = |s: i64| since + chrono::Duration::seconds(s);
        assert!(!recheck_due(since, None, 60, 3600, at(59)));
        assert!(recheck_due(since, None, 60, 3600, at(60)));
        // Checked at 60: the next falls at 60 + 120 = 180.
        assert!(!recheck_due(since, Some(at(60)), 60, 3600, at(179)));
        assert!(recheck_due(since, Some(at(60)), 60, 3600, at(180)));
        // Checked at 180: next at 180 + 240 = 420.
        assert!(!recheck_due(since, Some(at(180)), 60, 3600, at(419)));
        assert!(recheck_due(since, Some(at(180)), 60, 3600, at(420)));
        // Far on, the interval stays at the longest wait.
        let late = at(100_000);
        assert!(!recheck_due(since, Some(late), 60, 3600, late));
        assert!(recheck_due(
            since,
            Some(late),
            60,
            3600,
            late + chrono::Duration::seconds(3600)
        ));
    }
}
