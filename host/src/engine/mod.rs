//! The execution engine: runs a set of grant and revoke actions in parallel across
//! applications, inside each application's concurrency limit and rate limits, and counts an
//! action only when reading it back proves it took effect.
//!
//! Per action: wait out any server-supplied wait -> write (grant or revoke, idempotency key
//! derived from run and action) -> verify -> on "not applied", a retryable error or a
//! retryable read-back failure, back off (jittered exponential, never shorter than the
//! server's wait) and try again, up to `max_attempts` -> otherwise raise an alert with the
//! full context. Pending (an invitation) is its own outcome, never a success.
//!
//! Architecture invariants:
//! - Every action is checked against its app's connector (`validate.rs`) before the first
//!   write; one invalid action stops the whole run, and every problem is reported at once.
//! - A run that would revoke more than the blast-radius limits stops before executing
//!   anything unless the caller overrides it.
//! - Within an app, revokes are started before grants.
//! - Writes to one resource of a read-modify-write kind run one at a time.
//! - Every action is audited before it runs (intent) and after (outcome, attempts,
//!   evidence, HTTP calls). An action whose intent cannot be audited does not run.

mod spec;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Semaphore};

pub use spec::{ActionsFile, SpecError};
pub use validate::{ActionProblem, Catalog, check};

use crate::audit::{AuditEvent, AuditRecord};
use crate::host::Host;
use crate::model::{
    Action, ConnectorError, ConnectorInfo, Entitlement, GrantOutcome, Observed, RevokeOutcome,
    SetLevelOutcome, Subject,
};
// Shared with config, audit and state, so they live below the engine.
pub use crate::model::{ActionOutcome, Op};
pub use crate::options::EngineOptions;
use crate::readback::{Verdict, grant_verdict, revoke_verdict, set_level_verdict};
use crate::sandbox::{CallError, HttpCall};

/// One action of a run, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSpec {
    pub op: Op,
    pub app: String,
    pub subject: Subject,
    pub entitlement: Entitlement,
    pub reason: String,
    /// Why it runs (policy rule, HR event, approval, operator, schedule): written with
    /// its intent.
    #[serde(default)]
    pub trigger: crate::model::Trigger,
}

/// Everything known about one action after the run: the alert context when alerted.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    pub index: usize,
    pub op: Op,
    pub app: String,
    pub subject: Subject,
    pub entitlement: Entitlement,
    pub idempotency_key: String,
    pub outcome: ActionOutcome,
    pub attempts: u32,
    pub last_observed: Option<Observed>,
    pub last_error: Option<CallError>,
    /// Every HTTP call of every attempt (write and read-back).
    pub http: Vec<HttpCall>,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub actions: Vec<ActionReport>,
    pub duration_ms: f64,
}

impl RunReport {
    pub fn count(&self, pred: impl Fn(&ActionOutcome) -> bool) -> usize {
        self.actions.iter().filter(|a| pred(&a.outcome)).count()
    }

    pub fn alerts(&self) -> impl Iterator<Item = &ActionReport> {
        self.actions
            .iter()
            .filter(|a| matches!(a.outcome, ActionOutcome::Alerted { .. }))
    }
}

/// Why a run did not start. Nothing was executed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "blast-radius guard: the run would revoke {revokes} grants ({detail}); nothing was executed. Review the actions, then re-run with --allow-large-revoke (or raise engine.max_revokes / engine.max_revoke_share)"
    )]
    BlastRadius { revokes: usize, detail: String },
    /// Actions that cannot run as given (see [`check`]), every one of them.
    #[error("{}", validate::render(None, .problems))]
    Invalid { problems: Vec<ActionProblem> },
}

/// What the engine reports while it runs, for live displays.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    Queued,
    Started,
    /// Waiting for a server-supplied wait to end before the next attempt.
    WaitingForRateLimit,
    Retrying {
        attempt: u32,
    },
    Finished(ActionOutcome),
}

pub trait Progress: Send + Sync {
    fn event(&self, app: &str, event: ProgressEvent);
}

/// A progress sink that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _app: &str, _event: ProgressEvent) {}
}

/// The idempotency key of action `index` of `run_id`: stable across retries of the action,
/// different for every action and run.
pub fn idempotency_key(run_id: &str, index: usize, spec: &ActionSpec) -> String {
    let mut digest = Sha256::new();
    for part in [
        run_id,
        &index.to_string(),
        spec.op.as_str(),
        &spec.app,
        &spec.subject.id,
        &spec.entitlement.kind,
        &spec.entitlement.resource,
        spec.entitlement.level.as_deref().unwrap_or(""),
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    format!("{run_id}-{index}-{}", &hex::encode(digest.finalize())[..12])
}

/// Everything [`run`] does before its first write: describes each app the actions name,
/// checks every action against its connector ([`check`]), then the blast-radius guard.
/// `apply --dry-run` stops here; `Ok` carries what the actions were checked against.
pub async fn preflight(
    host: &Host,
    actions: &[ActionSpec],
    options: &EngineOptions,
) -> Result<Catalog, RunError> {
    let catalog = Catalog::describe(host, actions).await;
    let problems = check(actions, &catalog);
    if !problems.is_empty() {
        return Err(RunError::Invalid { problems });
    }
    check_blast_radius(actions, options)?;
    Ok(catalog)
}

/// Where the engine reports each action's intent (before its first write call) and its
/// end, for a caller that keeps them durably (`plan::execute`: the state's intents, so a
/// run cut off is settled by the next one).
pub type Journal = tokio::sync::mpsc::UnboundedSender<JournalEntry>;

#[derive(Debug)]
pub enum JournalEntry {
    /// The action is about to start; it runs only after `recorded` answers `Ok`.
    Intent {
        index: usize,
        spec: ActionSpec,
        key: String,
        recorded: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// The action ended (verified, pending or alerted).
    Finished { report: ActionReport },
}

/// Runs `actions`. Returns before executing anything when validation or the blast-radius
/// guard refuses the run.
pub async fn run(
    host: Arc<Host>,
    run_id: &str,
    actions: Vec<ActionSpec>,
    options: &EngineOptions,
    progress: Arc<dyn Progress>,
) -> Result<RunReport, RunError> {
    run_journaled(host, run_id, actions, options, progress, None).await
}

/// [`run`], reporting every action's intent and end to `journal`.
pub async fn run_journaled(
    host: Arc<Host>,
    run_id: &str,
    actions: Vec<ActionSpec>,
    options: &EngineOptions,
    progress: Arc<dyn Progress>,
    journal: Option<Journal>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let catalog = preflight(&host, &actions, options).await?;
    // Levels for read-back, and which kinds are read-modify-write: every app was described.
    let infos: HashMap<String, Option<ConnectorInfo>> = actions
        .iter()
        .map(|spec| (spec.app.clone(), catalog.info(&spec.app).cloned()))
        .collect();
    let infos = Arc::new(infos);

    // Per-app concurrency; per-resource locks for read-modify-write kinds.
    let mut semaphores: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut locks: HashMap<(String, String), Arc<Mutex<()>>> = HashMap::new();
    for spec in &actions {
        if let Some(app) = host.app(&spec.app) {
            semaphores
                .entry(spec.app.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(app.limiter.concurrency().max(1))));
        }
        let rmw = infos
            .get(&spec.app)
            .and_then(|i| i.as_ref())
            .and_then(|i| i.kind(&spec.entitlement.kind))
            .is_some_and(|k| k.read_modify_write);
        if rmw {
            locks
                .entry((spec.app.clone(), spec.entitlement.resource.clone()))
                .or_default();
        }
    }

    // Revokes first: tasks are spawned in this order and the semaphores are fair (FIFO).
    let mut order: Vec<usize> = (0..actions.len()).collect();
    order.sort_by_key(|&i| (actions[i].op != Op::Revoke, i));

    let mut tasks = tokio::task::JoinSet::new();
    for index in order {
        let spec = actions[index].clone();
        progress.event(&spec.app, ProgressEvent::Queued);
        let key = idempotency_key(run_id, index, &spec);
        let semaphore = semaphores.get(&spec.app).cloned();
        let lock = locks
            .get(&(spec.app.clone(), spec.entitlement.resource.clone()))
            .cloned();
        let host = Arc::clone(&host);
        let infos = Arc::clone(&infos);
        let progress = Arc::clone(&progress);
        let options = options.clone();
        let run_id = run_id.to_owned();
        let journal = journal.clone();
        tasks.spawn(async move {
            let _permit = match &semaphore {
                Some(s) => Some(Arc::clone(s).acquire_owned().await),
                None => None,
            };
            let _guard = match &lock {
                Some(lock) => Some(lock.lock().await),
                None => None,
            };
            let info = infos.get(&spec.app).and_then(|i| i.as_ref());
            execute(
                &host,
                &run_id,
                index,
                spec,
                key,
                info,
                &options,
                &*progress,
                journal.as_ref(),
            )
            .await
        });
    }
    let mut reports = Vec::with_capacity(actions.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(report) => reports.push(report),
            Err(e) => tracing::error!(error = %e, "an action task failed to complete"),
        }
    }
    reports.sort_by_key(|r| r.index);
    Ok(RunReport {
        run_id: run_id.to_owned(),
        actions: reports,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Action `index` of engine run `run_id`, alone: a queue worker's entry point. The phase
/// it belongs to was checked as a whole by [`preflight`] where it was enqueued (validation
/// and the blast-radius guard see every action of the phase, not one), so this runs only
/// the action: the same idempotency key, journal, audit, attempts and read-back as inside
/// [`run`]. Per-resource order for read-modify-write kinds is the caller's (the queue
/// serialises such actions across workers).
pub async fn run_one(
    host: &Host,
    run_id: &str,
    index: usize,
    spec: ActionSpec,
    options: &EngineOptions,
    progress: &dyn Progress,
    journal: Option<&Journal>,
) -> ActionReport {
    let info = host.connector_info(&spec.app).await.ok();
    let key = idempotency_key(run_id, index, &spec);
    execute(
        host,
        run_id,
        index,
        spec,
        key,
        info.as_ref(),
        options,
        progress,
        journal,
    )
    .await
}

fn check_blast_radius(actions: &[ActionSpec], options: &EngineOptions) -> Result<(), RunError> {
    if options.allow_large_revoke {
        return Ok(());
    }
    let revokes = actions.iter().filter(|a| a.op == Op::Revoke).count();
    if let Some(limit) = options.max_revokes
        && revokes > limit
    {
        return Err(RunError::BlastRadius {
            revokes,
            detail: format!("more than engine.max_revokes = {limit}"),
        });
    }
    if let (Some(share), Some(managed)) = (options.max_revoke_share, options.managed_grants)
        && managed > 0
        && revokes > options.share_min_revokes
        && revokes as f64 > share * managed as f64
    {
        return Err(RunError::BlastRadius {
            revokes,
            detail: format!(
                "{:.0}% of the {managed} grants Portcullis manages, over engine.max_revoke_share = {share} (applied above engine.share_min_revokes = {})",
                100.0 * revokes as f64 / managed as f64,
                options.share_min_revokes
            ),
        });
    }
    Ok(())
}

/// The jittered exponential backoff before attempt `attempt + 1`, never shorter than a
/// server-supplied wait.
fn backoff(options: &EngineOptions, attempt: u32, server_wait: Option<Duration>) -> Duration {
    let exp = options
        .backoff_base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(options.backoff_max_ms);
    // "Equal jitter": half fixed, half random, so retries from many actions spread out.
    let jittered = exp / 2 + fastrand::u64(0..=exp / 2);
    let ours = Duration::from_millis(jittered);
    server_wait.map_or(ours, |wait| wait.max(ours))
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
async fn execute(
    host: &Host,
    run_id: &str,
    index: usize,
    spec: ActionSpec,
    key: String,
    info: Option<&ConnectorInfo>,
    options: &EngineOptions,
    progress: &dyn Progress,
    journal: Option<&Journal>,
) -> ActionReport {
    let started = Instant::now();
    let action = Action {
        subject: spec.subject.clone(),
        entitlement: spec.entitlement.clone(),
        idempotency_key: key.clone(),
        reason: spec.reason.clone(),
    };
    let mut report = ActionReport {
        index,
        op: spec.op,
        app: spec.app.clone(),
        subject: spec.subject.clone(),
        entitlement: spec.entitlement.clone(),
        idempotency_key: key.clone(),
        outcome: ActionOutcome::Alerted {
            reason: "not run".into(),
        },
        attempts: 0,
        last_observed: None,
        last_error: None,
        http: Vec::new(),
        duration_ms: 0.0,
    };
    let Some(app) = host.app(&spec.app) else {
        report.outcome = ActionOutcome::Alerted {
            reason: format!("no app named `{}`", spec.app),
        };
        return report;
    };
    let audit = |event: AuditEvent| {
        host.audit_sink().record(&AuditRecord {
            at: chrono::Utc::now(),
            call_id: key.clone(),
            app: app.name.clone(),
            plugin_sha256: app.plugin.sha256.clone(),
            event,
        })
    };
    crate::crash::point("before-intent");
    if let Some(journal) = journal {
        let (recorded, answer) = tokio::sync::oneshot::channel();
        let entry = JournalEntry::Intent {
            index,
            spec: spec.clone(),
            key: key.clone(),
            recorded,
        };
        let outcome = match journal.send(entry) {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err("the run's journal stopped".into())),
            Err(_) => Err("the run's journal stopped".into()),
        };
        if let Err(e) = outcome {
            report.outcome = ActionOutcome::Alerted {
                reason: format!("not run: its intent could not be recorded in state: {e}"),
            };
            return report;
        }
    }
    // The intent's audit record is synced to disk (group commit) before the first write;
    // off the async threads, so concurrent intents can share one sync.
    if let Err(e) = blocking(|| {
        audit(AuditEvent::ActionStarted {
            run: run_id.to_owned(),
            op: spec.op.as_str().to_owned(),
            subject: spec.subject.clone(),
            entitlement: spec.entitlement.clone(),
            idempotency_key: key.clone(),
            trigger: spec.trigger.clone(),
        })
    }) {
        report.outcome = ActionOutcome::Alerted {
            reason: format!("not run: its intent could not be audited: {e}"),
        };
        // Its intent may already be in state: settle it, so the run's record says why
        // nothing was sent (the next plan proposes the action again).
        if let Some(journal) = journal {
            let _ = journal.send(JournalEntry::Finished {
                report: report.clone(),
            });
        }
        return report;
    }
    crate::crash::point("after-intent");
    progress.event(&spec.app, ProgressEvent::Started);
    let kind = info.and_then(|i| i.kind(&spec.entitlement.kind));

    let max_attempts = options.max_attempts.max(1);
    let outcome = loop {
        report.attempts += 1;
        let attempt = report.attempts;
        if let Some(until) = app.limiter.blocked_until()
            && until > Instant::now()
        {
            progress.event(&spec.app, ProgressEvent::WaitingForRateLimit);
            tokio::time::sleep_until(until.into()).await;
        }

        let step = attempt_once(host, &spec, &action, kind, &mut report).await;
        let server_wait = match &report.last_error {
            Some(CallError::Connector(ConnectorError::RateLimited {
                retry_after_ms: Some(ms),
                ..
            })) => {
                let wait = Duration::from_millis(*ms);
                app.limiter
                    .block_until(Instant::now() + wait, "connector reported rate-limited");
                Some(wait)
            }
            _ => None,
        };
        match step {
            Step::Done(outcome) => break outcome,
            Step::Retry(reason) if attempt >= max_attempts => {
                break ActionOutcome::Alerted {
                    reason: format!("gave up after {attempt} attempts: {reason}"),
                };
            }
            Step::Retry(_) => {
                progress.event(&spec.app, ProgressEvent::Retrying { attempt });
                tokio::time::sleep(backoff(options, attempt, server_wait)).await;
            }
        }
    };
    report.outcome = outcome;
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    if let ActionOutcome::Alerted { reason } = &report.outcome {
        tracing::error!(
            app = %report.app,
            subject = %report.subject.id,
            entitlement = %report.entitlement,
            attempts = report.attempts,
            last_observed = ?report.last_observed,
            last_error = ?report.last_error.as_ref().map(ToString::to_string),
            "ALERT: action did not converge: {reason}"
        );
    }
    if let Err(e) = audit(AuditEvent::ActionFinished {
        run: run_id.to_owned(),
        outcome: report.outcome.clone(),
        attempts: report.attempts,
        evidence: report.last_observed.clone(),
        last_error: report.last_error.as_ref().map(ToString::to_string),
        http: report.http.clone(),
    }) {
        tracing::error!(key, error = %e, "could not audit the end of an action");
    }
    if let Some(journal) = journal {
        // The receiver settles it in state; if it is gone the intent stays open and the
        // next run reads the action back.
        let _ = journal.send(JournalEntry::Finished {
            report: report.clone(),
        });
    }
    crate::metrics::action_finished(&spec.app, &report.outcome);
    progress.event(&spec.app, ProgressEvent::Finished(report.outcome.clone()));
    report
}

/// Runs blocking work (a synced audit write) without stalling the runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

enum Step {
    Done(ActionOutcome),
    Retry(String),
}

/// One write plus its read-back.
async fn attempt_once(
    host: &Host,
    spec: &ActionSpec,
    action: &Action,
    kind: Option<&crate::model::EntitlementKind>,
    report: &mut ActionReport,
) -> Step {
    // The write, whichever op; then one read-back that judges it.
    let written = match spec.op {
        Op::Grant => {
            let write = host.grant(&spec.app, action).await;
            report.http.extend(write.report.http);
            write.result.map(Written::Grant)
        }
        Op::SetLevel => {
            let write = host.set_level(&spec.app, action).await;
            report.http.extend(write.report.http);
            write.result.map(Written::SetLevel)
        }
        Op::Revoke => {
            let write = host.revoke(&spec.app, action).await;
            report.http.extend(write.report.http);
            write.result.map(Written::Revoke)
        }
    };
    crate::crash::point("after-write");
    let written = match written {
        Err(error) => return failed_write(error, report),
        Ok(written) => written,
    };
    let readback = host
        .verify(&spec.app, &action.subject, &action.entitlement)
        .await;
    report.http.extend(readback.report.http);
    crate::crash::point("after-readback");
    let verdict = match (readback.result, written) {
        (Err(error), _) => Verdict::Failed { error },
        (Ok(observed), Written::Grant(outcome)) => grant_verdict(kind, action, &outcome, observed),
        (Ok(observed), Written::SetLevel(outcome)) => set_level_verdict(action, &outcome, observed),
        (Ok(observed), Written::Revoke(outcome)) => revoke_verdict(&outcome, observed),
    };
    match verdict {
        Verdict::Verified { observed } => {
            report.last_observed = Some(observed);
            report.last_error = None;
            Step::Done(ActionOutcome::Verified)
        }
        Verdict::Pending { observed, detail } => {
            report.last_observed = Some(observed);
            Step::Done(ActionOutcome::Pending { detail })
        }
        Verdict::NotApplied { observed } => {
            let reason = format!(
                "the application acknowledged the {} but read-back shows {observed}",
                if spec.op == Op::Grant {
                    "grant"
                } else {
                    "revoke"
                }
            );
            report.last_observed = Some(observed);
            Step::Retry(reason)
        }
        Verdict::Failed { error } => failed_write(error, report),
    }
}

/// What a write answered, kept for the read-back's verdict.
enum Written {
    Grant(GrantOutcome),
    SetLevel(SetLevelOutcome),
    Revoke(RevokeOutcome),
}

fn failed_write(error: CallError, report: &mut ActionReport) -> Step {
    let reason = error.to_string();
    let retryable = error.is_retryable();
    report.last_error = Some(error);
    if retryable {
        Step::Retry(reason)
    } else {
        Step::Done(ActionOutcome::Alerted {
            reason: format!("not retryable: {reason}"),
        })
    }
}

/// Counts per app, for the final table and the live display.
pub fn summary(report: &RunReport) -> BTreeMap<String, (usize, usize, usize)> {
    let mut per_app: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for action in &report.actions {
        let entry = per_app.entry(action.app.clone()).or_default();
        match action.outcome {
            ActionOutcome::Verified => entry.0 += 1,
            ActionOutcome::Pending { .. } => entry.1 += 1,
            ActionOutcome::Alerted { .. } => entry.2 += 1,
        }
    }
    per_app
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(op: Op) -> ActionSpec {
        ActionSpec {
            op,
            app: "gh".into(),
            subject: Subject {
                id: "josh".into(),
                email: None,
            },
            entitlement: Entitlement {
                kind: "repository".into(),
                resource: "acme/api".into(),
                level: Some("write".into()),
            },
            reason: "test".into(),
            trigger: Default::default(),
        }
    }

    #[test]
    fn idempotency_keys_are_stable_per_action_and_distinct_across_runs() {
        let a = spec(Op::Grant);
        assert_eq!(idempotency_key("r1", 0, &a), idempotency_key("r1", 0, &a));
        assert_ne!(idempotency_key("r1", 0, &a), idempotency_key("r2", 0, &a));
        assert_ne!(idempotency_key("r1", 0, &a), idempotency_key("r1", 1, &a));
        assert_ne!(
            idempotency_key("r1", 0, &a),
            idempotency_key("r1", 0, &spec(Op::Revoke))
        );
    }

    #[test]
    fn blast_radius_stops_large_revokes_unless_overridden() {
        let revokes = vec![spec(Op::Revoke); 5];
        let mut options = EngineOptions {
            max_revokes: Some(4),
            ..EngineOptions::default()
        };
        assert!(matches!(
            check_blast_radius(&revokes, &options),
            Err(RunError::BlastRadius { revokes: 5, .. })
        ));
        options.max_revokes = None;
        options.managed_grants = Some(10);
        options.max_revoke_share = Some(0.4);
        options.share_min_revokes = 4;
        assert!(check_blast_radius(&revokes, &options).is_err());
        options.allow_large_revoke = true;
        assert!(check_blast_radius(&revokes, &options).is_ok());
    }

    #[test]
    fn the_share_guard_leaves_runs_of_few_revokes_alone() {
        // Ten managed grants, one leaver holding three: 30% is over a 20% share, but three
        // revokes are not a blast radius.
        let options = EngineOptions {
            managed_grants: Some(10),
            ..EngineOptions::default()
        };
        assert!(check_blast_radius(&vec![spec(Op::Revoke); 3], &options).is_ok());
        assert!(check_blast_radius(&vec![spec(Op::Revoke); 10], &options).is_ok());
        let many = EngineOptions {
            managed_grants: Some(40),
            ..options
        };
        let err = check_blast_radius(&vec![spec(Op::Revoke); 11], &many).expect_err("11 of 40");
        assert!(
            err.to_string().contains("engine.share_min_revokes = 10"),
            "{err}"
        );
    }

    #[test]
    fn backoff_grows_is_jittered_and_respects_server_waits() {
        let options = EngineOptions::default();
        for _ in 0..100 {
            let first = backoff(&options, 1, None);
            assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(250));
            let third = backoff(&options, 3, None);
            assert!(third >= Duration::from_millis(500) && third <= Duration::from_millis(1000));
            let capped = backoff(&options, 30, None);
            assert!(capped <= Duration::from_millis(10_000));
        }
        let server = Duration::from_secs(7);
        assert!(backoff(&options, 1, Some(server)) >= server);
    }
}
