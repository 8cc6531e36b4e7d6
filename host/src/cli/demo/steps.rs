//! The demo's steps, in the order they run, and what they share. Each step is one
//! function (in `joiner.rs`, `by_hand.rs`, `leaver.rs`): it prints what it does (plans,
//! run tables) and returns a [`Finding`]: whether it ended as expected, in one line, with
//! the data behind it for `--json`. An `Err` is a step that could not run at all.

use serde_json::Value;

use super::world::World;
use super::{Out, by_hand, joiner, leaver};
use crate::engine::{ActionOutcome, RunReport};
use crate::plan::{Change, Plan};

/// How a step ended.
pub(super) struct Finding {
    pub ok: bool,
    /// What happened, in one line.
    pub got: String,
    pub detail: Value,
}

/// The steps, in the order they run. Each builds on the state the one before left.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    Check,
    PlanHire,
    ApplyHire,
    Recheck,
    Drift,
    PlanLeave,
    Guard,
    Override,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Check,
        Step::PlanHire,
        Step::ApplyHire,
        Step::Recheck,
        Step::Drift,
        Step::PlanLeave,
        Step::Guard,
        Step::Override,
    ];

    /// Short name, for the summary and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Check => "check",
            Step::PlanHire => "plan-hire",
            Step::ApplyHire => "apply-hire",
            Step::Recheck => "recheck",
            Step::Drift => "drift",
            Step::PlanLeave => "plan-leave",
            Step::Guard => "blast-radius-guard",
            Step::Override => "apply-leave",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Step::Check => "check: every app accepts the demo credentials",
            Step::PlanHire => "2026-12-01, Josh is hired (HR-4711): plan",
            Step::ApplyHire => "2026-12-01: apply the plan",
            Step::Recheck => "2026-12-02: Josh accepts his GitHub invitations; apply again",
            Step::Drift => "2026-12-04: someone grants Josh a repository by hand; drift",
            Step::PlanLeave => "2027-06-30, Josh leaves (HR-4901): plan",
            Step::Guard => "2027-06-30: apply the leaver plan",
            Step::Override => "2027-06-30: apply with --allow-large-revoke",
        }
    }

    pub fn expected(self) -> &'static str {
        match self {
            Step::Check => "every app answers check",
            Step::PlanHire => "every grant the policy wants for Josh, and nothing else",
            Step::ApplyHire => {
                "GitHub grants pending (invitations), every other grant verified, none alerted"
            }
            Step::Recheck => {
                "the pending grants are re-checked and verified; the next plan keeps everything"
            }
            Step::Drift => {
                "drift finds the hand-made grant outside policy and the correction revokes it"
            }
            Step::PlanLeave => "every managed grant revoked, in every app",
            Step::Guard => "the blast-radius guard refuses the run; nothing changes",
            Step::Override => "every grant revoked and verified; the apps hold nothing for Josh",
        }
    }

    pub async fn run(self, world: &World, out: &Out) -> Result<Finding, String> {
        match self {
            Step::Check => joiner::check(world, out).await,
            Step::PlanHire => joiner::plan_hire(world, out),
            Step::ApplyHire => joiner::apply_hire(world, out).await,
            Step::Recheck => joiner::recheck(world, out).await,
            Step::Drift => by_hand::drift_by_hand(world, out).await,
            Step::PlanLeave => leaver::plan_leave(world, out),
            Step::Guard => leaver::guard(world, out).await,
            Step::Override => leaver::override_guard(world, out).await,
        }
    }
}

/// Applies `plan`; a refused run or a state error is a step that could not run.
pub(super) async fn applied(
    world: &World,
    plan: &Plan,
    run_id: &str,
    allow_large_revoke: bool,
) -> Result<RunReport, String> {
    match world.apply(plan, run_id, allow_large_revoke).await? {
        Ok(outcome) => Ok(outcome.report),
        Err(e) => Err(format!("apply {run_id}: {e}")),
    }
}

pub(super) fn changes(plan: &Plan) -> impl Iterator<Item = &Change> {
    plan.people.iter().flat_map(|p| &p.changes)
}

/// (verified, pending, alerted)
pub(super) fn outcomes(run: &RunReport) -> (usize, usize, usize) {
    (
        run.count(|o| *o == ActionOutcome::Verified),
        run.count(|o| matches!(o, ActionOutcome::Pending { .. })),
        run.count(|o| matches!(o, ActionOutcome::Alerted { .. })),
    )
}

/// The plan's last line: "Plan: 0 to grant, ...".
pub(super) fn summary_line(plan: &Plan) -> String {
    crate::plan::render::render(plan)
        .lines()
        .last()
        .unwrap_or_default()
        .trim_start_matches("Plan: ")
        .to_owned()
}
