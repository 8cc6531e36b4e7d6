//! Policy operations: the situation (policy, people as of a time, each app's description),
//! plan, apply (prepare under the run lock, then run), discover and drift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{OpError, RunHold, Sources, Workspace};
use crate::discover::{Discovery, discover};
use crate::drift::{DriftReport, drift};
use crate::engine::{Progress, RunError};
use crate::model::ConnectorInfo;
use crate::people::{Directory, HrEvent, HrEvents, People, people_as_of};
use crate::plan::execute::{ApplyError, ApplyOutcome};
use crate::plan::execute::{Execution, apply_plan_via};
use crate::plan::{ChangeOp, Plan, StateSnapshot, plan};
use crate::policy::Policy;
use crate::state::StateStore;

/// Everything a policy decision is made from, loaded and checked.
pub struct Situation {
    pub policy: Policy,
    pub people: People,
    /// Each configured app's `describe`: what the policy was validated against.
    pub catalog: BTreeMap<String, ConnectorInfo>,
    /// Per app, the subjects `ignore_subjects` names (the apps' own automation accounts).
    pub ignored_subjects: BTreeMap<String, Vec<String>>,
    pub at: DateTime<Utc>,
}

/// A plan saved for review (`portcullis plan --out`), and where it came from for messages.
pub struct SavedPlan {
    pub plan: Plan,
    pub origin: String,
}

/// A plan ready to run, made while holding the run lock, which it keeps until dropped.
pub struct Prepared {
    pub plan: Plan,
    pub situation: Situation,
    _hold: RunHold,
}

/// What a run of a plan did.
pub struct Applied {
    pub outcome: ApplyOutcome,
    /// Changes of the plan that wait for an approval (not run).
    pub awaiting: usize,
}

/// Drift found by listing every app and comparing it with the policy.
pub struct Drifted {
    pub report: DriftReport,
    /// The plan that would correct it.
    pub correction: Plan,
    /// Listings that failed: their grants were not judged.
    pub not_listed: Vec<String>,
    pub situation: Situation,
    hold: Option<RunHold>,
}

impl Drifted {
    /// The correction, ready to run, when the drift was found under the run lock.
    pub fn into_correction(self) -> Option<Prepared> {
        let hold = self.hold?;
        Some(Prepared {
            plan: self.correction,
            situation: self.situation,
            _hold: hold,
        })
    }
}

/// HR events the service received (stored in state), minus any the events file also has.
pub(crate) fn received_events(
    store: &dyn StateStore,
    file: &HrEvents,
) -> Result<Vec<HrEvent>, OpError> {
    let known: BTreeSet<&str> = file.events.iter().map(|e| e.id.as_str()).collect();
    let received = store.hr_events()?;
    let entries: Vec<&serde_json::Value> = received
        .iter()
        .filter(|e| !known.contains(e.id.as_str()))
        .map(|e| &e.entry)
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let text = serde_json::json!({ "events": entries }).to_string();
    HrEvents::parse(&text, "the HR events received by the service (state)")
        .map(|parsed| parsed.events)
        .map_err(OpError::input)
}

fn snapshot(store: &dyn StateStore) -> Result<StateSnapshot, OpError> {
    Ok(StateSnapshot {
        managed: store.managed()?,
        holds: store.holds()?,
        approvals: store.approvals(None)?,
    })
}

impl Workspace {
    /// Loads the policy, the directory and HR events as of `sources.at`, and each app's
    /// description, and checks them against each other.
    pub async fn situation(&self, sources: &Sources) -> Result<Situation, OpError> {
        let at = sources.at.unwrap_or_else(Utc::now);
        let config = &self.config;
        let policy_path = sources
            .policy
            .clone()
            .or(config.policy.path.clone())
            .ok_or_else(|| {
                OpError::input(
                    "no policy file: pass --policy FILE or set [policy] path in the config",
                )
            })?;
        let policy = Policy::load(&policy_path).map_err(OpError::input)?;
        let directory_path = sources
            .directory
            .clone()
            .or(config.people.directory.clone())
            .ok_or_else(|| {
                OpError::input(
                    "no directory file: pass --directory FILE or set [people] directory in the config",
                )
            })?;
        let directory = Directory::load(&directory_path).map_err(OpError::input)?;
        let mut events = match sources.events.clone().or(config.people.events.clone()) {
            Some(path) => HrEvents::load(&path).map_err(OpError::input)?,
            None => HrEvents::default(),
        };
        events
            .events
            .extend(received_events(self.store.as_ref(), &events)?);
        let people = people_as_of(&directory, &events, at).map_err(OpError::input)?;
        let mut catalog = BTreeMap::new();
        for app in config.apps.keys() {
            let info = self.host.connector_info(app).await.map_err(|e| {
                OpError::Input(format!(
                    "cannot describe app `{app}` (needed to check the policy): {e}"
                ))
            })?;
            catalog.insert(app.clone(), info);
        }
        let ignored_subjects = config
            .apps
            .iter()
            .map(|(name, app)| (name.clone(), app.ignore_subjects.clone()))
            .collect();
        Ok(Situation {
            policy,
            people,
            catalog,
            ignored_subjects,
            at,
        })
    }

    /// The plan for `situation` against the current state. Changes nothing.
    pub fn plan(&self, situation: &Situation) -> Result<Plan, OpError> {
        let state = snapshot(self.store.as_ref())?;
        plan(
            &situation.policy,
            &situation.people,
            &situation.catalog,
            &state,
            situation.at,
        )
        .map_err(OpError::input)
    }

    /// Takes the run lock and makes the plan to run. With a saved plan, the plan is made
    /// again as of the saved plan's time and must equal it: what was reviewed is exactly
    /// what runs.
    pub async fn prepare_apply(
        &self,
        sources: &Sources,
        saved: Option<&SavedPlan>,
        holder: &str,
    ) -> Result<Prepared, OpError> {
        let mut sources = sources.clone();
        if let Some(saved) = saved {
            if sources.at.is_some_and(|given| given != saved.plan.at) {
                return Err(OpError::Input(format!(
                    "--at differs from the saved plan's time ({}); leave --at out to apply the saved plan",
                    saved.plan.at.to_rfc3339()
                )));
            }
            sources.at = Some(saved.plan.at);
        }
        let situation = self.situation(&sources).await?;
        // Held from reading the state for the plan until the last record of the run.
        let hold = self.hold_run(holder).await?;
        let plan = self.plan(&situation)?;
        if let Some(saved) = saved
            && let Some(difference) = stale(&saved.plan, &plan)
        {
            return Err(OpError::Input(format!(
                "the plan in {origin} is stale: {difference}; nothing was run. Review the new plan (`portcullis plan --out {origin}`) and apply that",
                origin = saved.origin
            )));
        }
        Ok(Prepared {
            plan,
            situation,
            _hold: hold,
        })
    }

    /// Runs a prepared plan through the engine and records what read-back proved.
    pub async fn run(
        &self,
        prepared: &Prepared,
        run_id: &str,
        allow_large_revoke: bool,
        progress: Arc<dyn Progress>,
        origin: &crate::model::RunOrigin,
    ) -> Result<Applied, OpError> {
        let mut options = self.config.engine.clone();
        options.allow_large_revoke = allow_large_revoke;
        let execution = match &self.pool {
            Some(pool) => Execution::Queue(pool),
            None => Execution::InProcess,
        };
        let outcome = apply_plan_via(
            execution,
            Arc::clone(&self.host),
            self.store.as_ref(),
            &prepared.plan,
            &prepared.situation.people,
            run_id,
            &options,
            progress,
            origin,
        )
        .await;
        super::seal_run(&self.host, run_id);
        let outcome = outcome.map_err(|e| match e {
            ApplyError::Refused(refused @ RunError::BlastRadius { .. }) => {
                OpError::Refused(refused)
            }
            ApplyError::Refused(invalid) => OpError::Input(invalid.to_string()),
            ApplyError::State(state) => OpError::StateDuringRun(state),
            ApplyError::Queue(queue) => OpError::QueueDuringRun(queue),
        })?;
        let awaiting = prepared
            .plan
            .people
            .iter()
            .flat_map(|p| &p.changes)
            .filter(|c| matches!(c.op, ChangeOp::AwaitApproval { .. }))
            .count();
        Ok(Applied { outcome, awaiting })
    }

    /// Lists every kind of `apps` and stores what was read as observed grants. With a
    /// policy, resources the policy names are in scope for connectors that list per
    /// resource.
    pub async fn discover(&self, apps: &[String], sources: &Sources) -> Result<Discovery, OpError> {
        let policy = match sources.policy.clone().or(self.config.policy.path.clone()) {
            Some(path) => Some(Policy::load(&path).map_err(OpError::input)?),
            None => None,
        };
        let managed = self.store.managed()?;
        let at = sources.at.unwrap_or_else(Utc::now);
        Ok(discover(
            &self.host,
            self.store.as_ref(),
            apps,
            policy.as_ref(),
            &managed,
            at,
        )
        .await?)
    }

    /// Lists every app, compares with the policy and makes the correcting plan. With
    /// `correcting`, the run lock is taken first (under that holder name) so the
    /// correction can run ([`Drifted::into_correction`]).
    pub async fn drift(
        &self,
        sources: &Sources,
        correcting: Option<&str>,
    ) -> Result<Drifted, OpError> {
        let situation = self.situation(sources).await?;
        // Only a drift run that corrects anything needs the apps to itself.
        let hold = match correcting {
            Some(holder) => Some(self.hold_run(holder).await?),
            None => None,
        };
        let state = snapshot(self.store.as_ref())?;
        let apps: Vec<String> = situation.catalog.keys().cloned().collect();
        let discovery = discover(
            &self.host,
            self.store.as_ref(),
            &apps,
            Some(&situation.policy),
            &state.managed,
            situation.at,
        )
        .await?;
        // The apps' own automation accounts are not people's access: leave them out.
        let observed: Vec<_> = discovery
            .grants()
            .filter(|g| {
                situation
                    .ignored_subjects
                    .get(&g.target.app)
                    .is_none_or(|ignored| !ignored.contains(&g.subject))
            })
            .cloned()
            .collect();
        let (report, correction) = drift(
            &situation.policy,
            &situation.people,
            &situation.catalog,
            &state.managed,
            &state.holds,
            &observed,
            &discovery.complete(),
            situation.at,
        )
        .map_err(OpError::input)?;
        let not_listed = discovery
            .listings
            .iter()
            .flat_map(|l| l.errors.iter().cloned())
            .collect();
        Ok(Drifted {
            report,
            correction,
            not_listed,
            situation,
            hold,
        })
    }
}

/// What differs between a saved plan and the plan made now, in words; None if nothing.
fn stale(saved: &Plan, now: &Plan) -> Option<String> {
    if saved.policy_hash != now.policy_hash {
        return Some(format!(
            "the policy changed (sha256 {} then, {} now)",
            &saved.policy_hash[..saved.policy_hash.len().min(12)],
            &now.policy_hash[..now.policy_hash.len().min(12)]
        ));
    }
    // Compared as JSON, the form it was saved in (the desired-state rows are not saved).
    let as_json = |p: &Plan| serde_json::to_value(p).ok();
    if as_json(saved) == as_json(now) {
        return None;
    }
    let people = |p: &Plan| -> BTreeMap<String, serde_json::Value> {
        p.people
            .iter()
            .map(|person| {
                (
                    person.id.clone(),
                    serde_json::to_value(person).unwrap_or_default(),
                )
            })
            .collect()
    };
    let (then, current) = (people(saved), people(now));
    let changed: Vec<&String> = then
        .keys()
        .chain(current.keys())
        .filter(|id| then.get(*id) != current.get(*id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Some(if changed.is_empty() {
        "the plan's HR schedule or summary changed".to_owned()
    } else {
        format!(
            "the changes for {} differ (state, people or approvals moved since it was saved)",
            changed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}
