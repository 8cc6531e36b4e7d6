//! Recovery of runs that were cut off (a crash, SIGKILL, power loss). Whoever takes the
//! run lock next first reads back every action whose intent is in state without an
//! outcome, and settles it by what the app shows, before anything is planned:
//! - applied (present at the level, or pending like an invitation): state records it, so
//!   the plan does not write it again (no second invitation);
//! - not applied: recorded as `interrupted`; the plan proposes it again, and it runs
//!   with a fresh intent.
//!
//! An app that cannot be read back stops the run (its actions are not retried blind),
//! naming the action; the intent stays open for the next attempt.

use serde_json::json;

use super::{OpError, Workspace};
use crate::audit::{AuditEvent, AuditRecord};
use crate::engine::{ActionOutcome, ActionReport, ActionSpec, Op};
use crate::host::Host;
use crate::model::{Action, GrantOutcome, Observed, RevokeOutcome, SetLevelOutcome};
use crate::plan::Change;
use crate::plan::execute::Settle;
use crate::readback::{Verdict, grant_verdict, revoke_verdict, set_level_verdict};
use crate::sandbox::CallError;
use crate::state::Intent;

/// One action settled by recovery.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub idempotency_key: String,
    pub run_id: String,
    /// True when the app showed it done.
    pub applied: bool,
}

impl Workspace {
    /// Settles every open intent (see the module docs). Call under the run lock.
    pub(crate) async fn recover(&self) -> Result<Vec<Recovered>, OpError> {
        // Actions still in the job queue (a run whose coordinator died) are the pool's: this
        // process works on them with the others until none is left, each taken over read
        // back first, so what follows sees them settled in state.
        if let Some(pool) = &self.pool {
            pool.drain().await.map_err(|e| {
                OpError::Input(format!(
                    "{e}; nothing was planned. Make the database reachable and run again"
                ))
            })?;
        }
        let open = self.store.open_intents()?;
        let mut recovered = Vec::with_capacity(open.len());
        for intent in &open {
            recovered.push(self.recover_one(intent).await?);
            crate::crash::point("recover");
        }
        // Every run still marked running is over: nothing else holds the lock.
        for run in self.store.runs()? {
            if run.finished_at.is_none() {
                let settled: Vec<&Recovered> =
                    recovered.iter().filter(|r| r.run_id == run.id).collect();
                self.store.finish_run(
                    &run.id,
                    chrono::Utc::now(),
                    &json!({
                        "interrupted": true,
                        "recovered_applied": settled.iter().filter(|r| r.applied).count(),
                        "recovered_not_applied": settled.iter().filter(|r| !r.applied).count(),
                    }),
                )?;
            }
        }
        Ok(recovered)
    }

    async fn recover_one(&self, intent: &Intent) -> Result<Recovered, OpError> {
        let key = &intent.idempotency_key;
        let bad = |what: String| {
            OpError::Input(format!(
                "the open intent {key} in state is damaged ({what}); inspect the `intents` table of the state database and remove the row by hand"
            ))
        };
        let spec: ActionSpec =
            serde_json::from_value(intent.spec.clone()).map_err(|e| bad(e.to_string()))?;
        let change: Option<Change> = intent
            .change
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        // An app removed from the config since: nothing can read it back, and no plan
        // will write to it again; the intent is closed with the reason audited.
        if self.host.app(&spec.app).is_none() {
            self.audit_recovery(
                intent,
                &spec.app,
                "app-removed",
                None,
                Some(format!(
                    "app `{}` is no longer configured; what it holds was not read back",
                    spec.app
                )),
            )?;
            self.store.close_intent(key)?;
            return Ok(Recovered {
                idempotency_key: key.clone(),
                run_id: intent.run_id.clone(),
                applied: false,
            });
        }
        let (report, applied) = read_back_in_flight(
            &self.host,
            &spec,
            key,
            intent.index as usize,
            |observed| {
                format!(
                    "interrupted before it took effect (read back: {observed}); the next plan proposes it again"
                )
            },
        )
        .await
        .map_err(|error| {
            OpError::Input(format!(
                "run {} was cut off while action {key} ({:?} {} for {} in {}) was in flight, and reading it back failed: {error}; nothing was run, so it is not written twice. Make {} reachable and run again",
                intent.run_id, spec.op, spec.entitlement, spec.subject.id, spec.app, spec.app
            ))
        })?;
        let observed = report.last_observed.clone().unwrap_or(Observed::Absent);
        let finding = if applied { "applied" } else { "not-applied" };
        self.audit_recovery(intent, &spec.app, finding, Some(observed), None)?;
        match (&change, &intent.person) {
            (Some(change), Some(person)) => {
                let settle = Settle {
                    store: self.store.as_ref(),
                    at: intent.as_of,
                    policy_hash: intent.policy_hash.as_deref().unwrap_or_default(),
                    run_id: &intent.run_id,
                };
                settle
                    .action(intent.index, person, change, &report)
                    .map_err(OpError::StateDuringRun)?;
            }
            _ => self.store.close_intent(key)?,
        }
        tracing::warn!(key = %key, run = %intent.run_id, applied, "recovered an interrupted action");
        Ok(Recovered {
            idempotency_key: key.clone(),
            run_id: intent.run_id.clone(),
            applied,
        })
    }

    /// The `action-recovered` record of one settled intent.
    fn audit_recovery(
        &self,
        intent: &Intent,
        app: &str,
        finding: &str,
        evidence: Option<crate::model::Observed>,
        error: Option<String>,
    ) -> Result<(), OpError> {
        audit_in_flight(
            &self.host,
            &intent.idempotency_key,
            &intent.run_id,
            app,
            finding,
            evidence,
            error,
        )
        .map_err(OpError::Input)
    }
}

/// The `action-recovered` record of an action found in flight and settled by what its
/// app shows (recovery, or a queue worker taking over a dead worker's job).
pub(crate) fn audit_in_flight(
    host: &Host,
    key: &str,
    run: &str,
    app: &str,
    finding: &str,
    evidence: Option<Observed>,
    error: Option<String>,
) -> Result<(), String> {
    let plugin_sha256 = host
        .app(app)
        .map(|a| a.plugin.sha256.clone())
        .unwrap_or_default();
    host.audit_sink()
        .record(&AuditRecord {
            at: chrono::Utc::now(),
            call_id: key.to_owned(),
            app: app.to_owned(),
            plugin_sha256,
            event: AuditEvent::ActionRecovered {
                run: run.to_owned(),
                finding: finding.to_owned(),
                evidence,
                error,
            },
        })
        .map_err(|e| format!("cannot audit the recovery of {key}: {e}"))
}

/// What the app shows of an action a process that is gone may have written (a run cut
/// off, a queue worker that died holding it): its report as if it had just ended, and
/// whether it was applied. Applied means verified, or pending like an invitation; not
/// applied is an alert whose reason `not_applied` words from what was read. Nothing is
/// written: the caller decides whether to write it (a queue takeover) or leave it to the
/// next plan (recovery). An app that cannot be read back is the error.
pub(crate) async fn read_back_in_flight(
    host: &Host,
    spec: &ActionSpec,
    key: &str,
    index: usize,
    not_applied: impl FnOnce(&Observed) -> String,
) -> Result<(ActionReport, bool), CallError> {
    let readback = host
        .verify(&spec.app, &spec.subject, &spec.entitlement)
        .await;
    let observed = readback.result?;
    let action = Action {
        subject: spec.subject.clone(),
        entitlement: spec.entitlement.clone(),
        idempotency_key: key.to_owned(),
        reason: spec.reason.clone(),
    };
    let kind = host
        .connector_info(&spec.app)
        .await
        .ok()
        .and_then(|info| info.kind(&spec.entitlement.kind).cloned());
    let verdict = match spec.op {
        Op::Grant => grant_verdict(
            kind.as_ref(),
            &action,
            &GrantOutcome::Granted,
            observed.clone(),
        ),
        Op::Revoke => revoke_verdict(&RevokeOutcome::Revoked, observed.clone()),
        Op::SetLevel => set_level_verdict(&action, &SetLevelOutcome::Changed, observed.clone()),
    };
    let outcome = match verdict {
        Verdict::Verified { .. } => ActionOutcome::Verified,
        Verdict::Pending { detail, .. } => ActionOutcome::Pending { detail },
        _ => ActionOutcome::Alerted {
            reason: not_applied(&observed),
        },
    };
    let applied = !matches!(outcome, ActionOutcome::Alerted { .. });
    let report = ActionReport {
        index,
        op: spec.op,
        app: spec.app.clone(),
        subject: spec.subject.clone(),
        entitlement: spec.entitlement.clone(),
        idempotency_key: key.to_owned(),
        outcome,
        attempts: 0,
        last_observed: Some(observed),
        last_error: None,
        http: readback.report.http,
        duration_ms: 0.0,
    };
    Ok((report, applied))
}
