//! Josh joins: the credentials are checked, the plan at his hire date is made and applied,
//! and once he accepts his GitHub invitations the next apply re-checks them.

use std::collections::BTreeMap;

use serde_json::json;

use super::Out;
use super::steps::{Finding, applied, changes, outcomes, summary_line};
use super::world::{APPS, JOSH, World, at, time};
use crate::engine::ActionOutcome;
use crate::plan::ChangeOp;
use crate::state::ManagedStatus;

/// Each app's `check`: the credentials work, and as whom.
pub(super) async fn check(world: &World, out: &Out) -> Result<Finding, String> {
    let mut principals = BTreeMap::new();
    let mut failed = 0;
    for app in APPS {
        let checked = world.host.check(app).await;
        match &checked.result {
            Ok(report) => {
                out.line(format!("{app:<8} works; acting as {}", report.principal));
                principals.insert(app, json!(report.principal));
            }
            Err(e) => {
                out.line(format!("{app:<8} FAILED: {e}"));
                principals.insert(app, json!({ "error": e.to_string() }));
                failed += 1;
            }
        }
    }
    Ok(Finding {
        ok: failed == 0,
        got: format!("{} of {} apps answer", APPS.len() - failed, APPS.len()),
        detail: json!({ "principals": principals }),
    })
}

/// (a) The plan at the hire date: Josh's grants, from the policy.
pub(super) fn plan_hire(world: &World, out: &Out) -> Result<Finding, String> {
    let plan = world.plan(time(at::HIRE))?;
    out.plan(&plan);
    let only_josh = plan.people.iter().all(|p| p.id == JOSH);
    let all_grants = changes(&plan).all(|c| matches!(c.op, ChangeOp::Grant { .. }));
    let wanted = plan.desired.as_ref().map_or(0, Vec::len);
    Ok(Finding {
        ok: only_josh && all_grants && wanted > 0 && plan.summary.grant == wanted,
        got: format!(
            "{} to grant of the {wanted} the policy wants; {} other changes",
            plan.summary.grant,
            changes(&plan).count() - plan.summary.grant
        ),
        detail: json!({ "plan": plan }),
    })
}

/// (b) Apply it: GitHub invites (pending), the others are granted and read back.
pub(super) async fn apply_hire(world: &World, out: &Out) -> Result<Finding, String> {
    let plan = world.plan(time(at::HIRE))?;
    let run = applied(world, &plan, "hire-1", false).await?;
    out.run(&run);
    let (verified, pending, alerted) = outcomes(&run);
    let github = run.actions.iter().filter(|a| a.app == "github").count();
    let github_pending = run
        .actions
        .iter()
        .filter(|a| a.app == "github" && matches!(a.outcome, ActionOutcome::Pending { .. }))
        .count();
    let managed = world.managed()?;
    Ok(Finding {
        ok: alerted == 0
            && github > 0
            && github_pending == github
            && pending == github
            && verified + pending == plan.summary.grant
            && managed.len() == plan.summary.grant,
        got: format!(
            "{verified} verified, {pending} pending ({github_pending} GitHub invitations), {alerted} alerted; {} grants now managed",
            managed.len()
        ),
        detail: json!({ "run": run }),
    })
}

/// (c) Josh accepts the invitations; the next apply re-checks and verifies them.
pub(super) async fn recheck(world: &World, out: &Out) -> Result<Finding, String> {
    let pending = world
        .managed()?
        .iter()
        .filter(|m| m.status == ManagedStatus::Pending)
        .count();
    let accepted = world.accept_invitations();
    out.line(format!(
        "Josh accepts {accepted} invitations on github.com (in the simulator)\n"
    ));
    let plan = world.plan(time(at::RECHECK))?;
    out.plan(&plan);
    let rechecks = changes(&plan)
        .filter(|c| matches!(c.op, ChangeOp::Recheck { .. }))
        .count();
    let run = applied(world, &plan, "hire-2", false).await?;
    out.run(&run);
    let (verified, _, _) = outcomes(&run);

    let settled = world.plan(time(at::SETTLED))?;
    out.line(format!(
        "\nthe plan the day after ({}): {}",
        at::SETTLED,
        summary_line(&settled)
    ));
    let managed = world.managed()?;
    let all_kept = changes(&settled).all(|c| c.op == ChangeOp::Keep);
    Ok(Finding {
        ok: pending > 0
            && accepted == pending
            && rechecks == pending
            && verified == pending
            && run.actions.len() == pending
            && all_kept
            && settled.summary.keep == managed.len()
            && managed.iter().all(|m| m.status == ManagedStatus::Active),
        got: format!(
            "{accepted} of {pending} pending accepted, {rechecks} re-checked, {verified} verified; the next plan keeps {} of {}",
            settled.summary.keep,
            managed.len()
        ),
        detail: json!({ "accepted": accepted, "plan": plan, "run": run, "next_plan": settled }),
    })
}
