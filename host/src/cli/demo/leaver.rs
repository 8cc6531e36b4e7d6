//! Josh leaves: the plan revokes everything he holds, the blast-radius guard refuses to
//! run it, and an operator overrides the guard.

use std::collections::BTreeSet;

use serde_json::json;

use super::Out;
use super::steps::{Finding, applied, changes, outcomes, summary_line};
use super::world::{APPS, JOSH, World, at, time};
use crate::engine::RunError;
use crate::plan::ChangeOp;
use crate::plan::execute::ApplyError;

/// (e) The plan at the termination date: every managed grant goes.
pub(super) fn plan_leave(world: &World, out: &Out) -> Result<Finding, String> {
    let plan = world.plan(time(at::LEAVE))?;
    out.plan(&plan);
    let managed = world.managed()?;
    let revokes = changes(&plan)
        .filter(|c| matches!(c.op, ChangeOp::Revoke { .. }))
        .count();
    let apps: BTreeSet<&str> = changes(&plan).map(|c| c.target.app.as_str()).collect();
    let terminated = plan
        .people
        .iter()
        .all(|p| p.id == JOSH && p.status == "terminated");
    Ok(Finding {
        ok: terminated
            && revokes > 0
            && revokes == changes(&plan).count()
            && revokes == managed.len()
            && apps.len() == APPS.len(),
        got: format!(
            "{revokes} to revoke of {} managed, in {} apps; {} other changes",
            managed.len(),
            apps.len(),
            changes(&plan).count() - revokes
        ),
        detail: json!({ "plan": plan }),
    })
}

/// (e) Applying it is refused: it would revoke everything Portcullis manages.
pub(super) async fn guard(world: &World, out: &Out) -> Result<Finding, String> {
    let plan = world.plan(time(at::LEAVE))?;
    let before = world.managed()?.len();
    let result = world.apply(&plan, "leave-1", false).await?;
    let after = world.managed()?.len();
    let (ok, got) = match &result {
        Err(ApplyError::Refused(e @ RunError::BlastRadius { .. })) => {
            out.line(format!("refused: {e}"));
            (
                before == after,
                format!("refused; managed grants {before} -> {after}"),
            )
        }
        Err(e) => return Err(e.to_string()),
        Ok(outcome) => {
            out.run(&outcome.report);
            (
                false,
                format!("NOT refused: {} actions ran", outcome.report.actions.len()),
            )
        }
    };
    Ok(Finding {
        ok,
        got,
        detail: json!({
            "refused": result.as_ref().err().map(ToString::to_string),
            "managed_before": before,
            "managed_after": after,
        }),
    })
}

/// (e) An operator reviews the plan and overrides the guard: everything is revoked, and
/// discovery proves the apps hold nothing for Josh any more.
pub(super) async fn override_guard(world: &World, out: &Out) -> Result<Finding, String> {
    let plan = world.plan(time(at::LEAVE))?;
    let run = applied(world, &plan, "leave-2", true).await?;
    out.run(&run);
    let (verified, _, _) = outcomes(&run);
    let managed = world.managed()?;

    let after = time(at::AFTER);
    let accounts = world
        .people(time(at::HIRE))?
        .people
        .get(JOSH)
        .map(|p| p.accounts.clone())
        .unwrap_or_default();
    let discovery = world.discover(after).await?;
    let listed_everything = discovery.listings.iter().all(|l| l.errors.is_empty());
    let held: Vec<_> = discovery
        .grants()
        .filter(|g| accounts.get(&g.target.app) == Some(&g.subject))
        .collect();
    out.line(format!(
        "\ndiscovery on {}: Josh holds {} grants in {} ({} grants of other people untouched)",
        at::AFTER,
        held.len(),
        APPS.join(", "),
        discovery.grants().count() - held.len()
    ));
    let next = world.plan(after)?;
    out.line(format!("the plan that day: {}", summary_line(&next)));
    Ok(Finding {
        ok: !plan.people.is_empty()
            && verified == run.actions.len()
            && verified == plan.summary.revoke
            && managed.is_empty()
            && listed_everything
            && held.is_empty()
            && next.people.is_empty(),
        got: format!(
            "{verified} of {} revoked and verified; {} managed grants left; Josh holds {} grants in the apps",
            plan.summary.revoke,
            managed.len(),
            held.len()
        ),
        detail: json!({ "run": run, "still_held": held }),
    })
}
