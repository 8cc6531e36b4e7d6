//! A grant made by hand in an app, outside Portcullis: discovery sees it, drift judges
//! it against the policy, and the correction (an ordinary plan) revokes it.

use std::collections::BTreeSet;

use serde_json::json;

use super::Out;
use super::steps::{Finding, applied, changes, outcomes};
use super::world::{GITHUB_LOGIN, HAND_GRANTED_REPO, JOSH, World, at, time};
use crate::drift::{DriftItem, drift};

/// (d) A grant made by hand in the app: discovery sees it, drift judges it, and the
/// correction (an ordinary plan) revokes it.
pub(super) async fn drift_by_hand(world: &World, out: &Out) -> Result<Finding, String> {
    let when = time(at::DRIFT);
    world
        .github
        .set_collaborator(HAND_GRANTED_REPO, GITHUB_LOGIN, "admin");
    out.line(format!(
        "someone adds {GITHUB_LOGIN} to {HAND_GRANTED_REPO} as admin, by hand in GitHub (the simulator)\n"
    ));
    let managed_before = world.managed()?;
    let discovery = world.discover(when).await?;
    out.line("discovery (each connector's list-grants):");
    for l in &discovery.listings {
        out.line(format!(
            "  {:<7} {:<13} {:>3} grants, {:>3} HTTP calls{}",
            l.app,
            l.kind,
            l.grants.len(),
            l.http_calls,
            problems(&l.errors, &l.warnings)
        ));
    }
    let listed_everything = discovery.listings.iter().all(|l| l.errors.is_empty());
    let state = world.snapshot()?;
    let observed: Vec<_> = discovery.grants().cloned().collect();
    let (report, correction) = drift(
        &world.policy,
        &world.people(when)?,
        &world.catalog,
        &state.managed,
        &state.holds,
        &observed,
        &discovery.complete(),
        when,
    )
    .map_err(|e| e.to_string())?;
    out.drift("outside policy", &report.outside_policy);
    out.drift("missing", &report.missing);
    out.unmanaged(&report.unmanaged);
    out.line("\nCorrection:");
    out.plan(&correction);
    let run = applied(world, &correction, "drift-1", false).await?;
    out.run(&run);

    let found = match report.outside_policy.as_slice() {
        [item] => {
            item.target.resource == HAND_GRANTED_REPO
                && item.subject == GITHUB_LOGIN
                && item.person.as_deref() == Some(JOSH)
        }
        _ => false,
    };
    let (verified, _, _) = outcomes(&run);
    let still_there = world
        .github
        .collaborator_role(HAND_GRANTED_REPO, GITHUB_LOGIN);
    let managed_after = world.managed()?.len();
    Ok(Finding {
        ok: listed_everything
            && found
            && report.missing.is_empty()
            && correction.summary.revoke == 1
            && changes(&correction).count() == 1
            && verified == 1
            && run.actions.len() == 1
            && still_there.is_none()
            && managed_after == managed_before.len(),
        got: format!(
            "{} outside policy, {} missing; correction revoked {verified}; {GITHUB_LOGIN} on {HAND_GRANTED_REPO} now: {}; managed grants {} -> {managed_after}",
            report.outside_policy.len(),
            report.missing.len(),
            still_there.as_deref().unwrap_or("none"),
            managed_before.len()
        ),
        detail: json!({ "drift": report, "correction": correction, "run": run }),
    })
}

fn problems(errors: &[String], warnings: &[String]) -> String {
    errors
        .iter()
        .map(|e| format!("; NOT listed: {e}"))
        .chain(warnings.iter().map(|w| format!("; warning: {w}")))
        .collect()
}

impl Out {
    /// Grants of subjects no one in the directory has (the apps' own service accounts,
    /// people outside the demo): counted, not listed one by one.
    fn unmanaged(&self, items: &[DriftItem]) {
        let subjects: BTreeSet<&str> = items.iter().map(|i| i.subject.as_str()).collect();
        self.line(format!(
            "unmanaged (left alone): {}, held by subjects no one in the directory has: {}",
            items.len(),
            subjects.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    /// Drift items, as `portcullis drift` prints them.
    fn drift(&self, title: &str, items: &[DriftItem]) {
        self.line(format!("{title}: {}", items.len()));
        for i in items {
            self.line(format!("  {i}"));
        }
    }
}
