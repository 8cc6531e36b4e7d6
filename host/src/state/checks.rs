//! The refusals every backend makes, worded once, so that a refusal reads the same whatever
//! the backend (the contract suite checks the texts, `suite.rs`).

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Approval, ApprovalStatus, DesiredRow, ObservedGrant, PersonRecord};

/// A time for people to read in messages.
pub(super) fn show(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(super) fn person_status(person: &PersonRecord) -> Result<(), String> {
    if person.status == PersonRecord::ACTIVE || person.status == PersonRecord::TERMINATED {
        return Ok(());
    }
    Err(format!(
        "person {} has status `{}`: expected `active` or `terminated`",
        person.id, person.status
    ))
}

/// A desired-state snapshot holds one row per (person, target).
pub(super) fn unique_desired(rows: &[DesiredRow]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for row in rows {
        if !seen.insert((row.person.as_str(), &row.target)) {
            return Err(format!(
                "the new desired state has two rows for person {} on {}: \
                 merge them into one (the policy's evaluation does)",
                row.person, row.target
            ));
        }
    }
    Ok(())
}

/// Every grant of one listing must be of `app` and `kind`.
pub(super) fn listing(app: &str, kind: &str, grants: &[ObservedGrant]) -> Result<(), String> {
    match grants
        .iter()
        .enumerate()
        .find(|(_, g)| g.target.app != app || g.target.kind != kind)
    {
        Some((i, stray)) => Err(format!(
            "grant {i} of the listing is on {}, which is not a {kind} of {app}: \
             each call stores one app's grants of one kind",
            stray.target
        )),
        None => Ok(()),
    }
}

/// An action's op: an approval's, or a level changed in place (contract 0.2.0).
pub(super) fn action_op(what: &str, op: &str) -> Result<(), String> {
    match op {
        "set-level" => Ok(()),
        other => approval_op(what, other),
    }
}

/// An approval's op.
pub(super) fn approval_op(what: &str, op: &str) -> Result<(), String> {
    match op {
        "grant" | "revoke" => Ok(()),
        other => Err(format!(
            "{what} has op `{other}`: expected `grant` or `revoke`"
        )),
    }
}

pub(super) fn approver(by: &str) -> Result<(), String> {
    if by.trim().is_empty() {
        return Err("the approver's name is empty: every decision names who made it".into());
    }
    Ok(())
}

pub(super) fn run_begun_twice(id: &str, started_at: &DateTime<Utc>) -> String {
    format!(
        "run {id} was already begun at {}: every run needs a new id",
        show(started_at)
    )
}

/// What is missing when a run that was never begun is finished.
pub(super) fn run_to_finish(id: &str) -> String {
    format!("run {id} (begin it first)")
}

pub(super) fn run_finished_twice(id: &str, finished_at: &DateTime<Utc>) -> String {
    format!("run {id} already finished at {}", show(finished_at))
}

/// What is missing when an action of a run that was never begun is recorded.
pub(super) fn run_of_action(id: &str) -> String {
    format!("run {id} (begin it before recording its actions)")
}

/// Only an approved request is carried out.
pub(super) fn not_approved(id: i64, status: ApprovalStatus) -> String {
    format!("approval {id} is {status}, not approved: only an approved request is carried out")
}

/// "approved by alice at 2027-03-01T09:30:00Z (incident 42)", for refusals.
pub(super) fn decision(approval: &Approval) -> String {
    let verb = match approval.status {
        ApprovalStatus::Pending => return "pending".to_string(),
        ApprovalStatus::Approved | ApprovalStatus::Done => "approved",
        ApprovalStatus::Denied => "denied",
    };
    let mut text = format!(
        "{verb} by {}",
        approval
            .decided_by
            .as_deref()
            .unwrap_or("an unknown approver")
    );
    if let Some(at) = &approval.decided_at {
        text.push_str(&format!(" at {}", show(at)));
    }
    if let Some(reason) = &approval.decision_reason {
        text.push_str(&format!(" ({reason})"));
    }
    if approval.status == ApprovalStatus::Done {
        text.push_str(" and carried out");
    }
    text
}
