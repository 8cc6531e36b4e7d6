//! The plan as people read it, terraform-style: one block per person, one line per
//! target, a marker for what happens (`+` grant, `-` revoke, `~` change, `?` awaiting
//! approval, `!` held or denied, `=` kept), the rules behind it, and a summary line.
//! Deterministic: the plan is sorted, and nothing here reads the clock. Each line is one
//! line: fields that can come from an app (subjects, levels, reasons) are escaped
//! ([`Shown`]), so none of them can break it.

use std::fmt::Write as _;

use super::{Change, ChangeOp, PersonPlan, Plan};
use crate::untrusted::Shown;

/// The whole plan as text.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan at {} from policy {} (sha256 {})",
        plan.at.to_rfc3339(),
        plan.policy_origin,
        short_hash(&plan.policy_hash)
    );
    let _ = writeln!(
        out,
        "  + grant   - revoke   ~ change   ? awaiting approval   ! held or denied   = keep"
    );
    for person in &plan.people {
        out.push('\n');
        render_person(&mut out, person);
    }
    if !plan.scheduled.is_empty() {
        let _ = writeln!(out, "\nScheduled HR events (not yet effective):");
        for event in &plan.scheduled {
            let _ = writeln!(out, "  {event}");
        }
    }
    let s = plan.summary;
    let _ = writeln!(
        out,
        "\nPlan: {} to grant, {} to change, {} to revoke, {} awaiting approval, {} held, {} unchanged.",
        s.grant, s.change, s.revoke, s.awaiting_approval, s.held, s.keep
    );
    out
}

fn render_person(out: &mut String, person: &PersonPlan) {
    let name = person
        .name
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    let rules = if person.rules.is_empty() {
        String::new()
    } else {
        format!("; rules: {}", person.rules.join(", "))
    };
    let _ = writeln!(out, "# {}{name} ({}{rules})", person.id, person.status);
    let mut app = "";
    for change in &person.changes {
        if change.target.app != app {
            app = &change.target.app;
            let _ = writeln!(out, "  {app}");
        }
        render_change(out, change);
    }
}

fn render_change(out: &mut String, change: &Change) {
    let level = change
        .level
        .as_deref()
        .map(|l| format!(" {l}"))
        .unwrap_or_default();
    let what = match &change.op {
        ChangeOp::Raise { from, .. } | ChangeOp::Lower { from, .. } => format!(
            " {} -> {}",
            from.as_deref().unwrap_or("-"),
            change.level.as_deref().unwrap_or("-")
        ),
        _ => level,
    };
    let mut notes = Vec::new();
    // A revoke's `why` already names the rules that once granted it.
    let revoke = matches!(change.op, ChangeOp::Revoke { .. });
    let named_in_why = revoke && change.why.contains("granted by");
    if !change.rules.is_empty() && !named_in_why {
        notes.push(format!("rule {}", change.rules.join(", ")));
    }
    if let ChangeOp::Grant {
        time_bound: Some(bound),
        ..
    }
    | ChangeOp::Raise {
        time_bound: Some(bound),
        ..
    }
    | ChangeOp::Lower {
        time_bound: Some(bound),
        ..
    } = &change.op
    {
        notes.push(bound.to_string());
    }
    if let ChangeOp::Lower { .. } = change.op {
        notes.push("revoke, then grant at the lower level".into());
    }
    if !change.why.is_empty() {
        notes.push(change.why.clone());
    }
    let _ = writeln!(
        out,
        "    {} {} {}{}  [{}] ({})",
        change.op.marker(),
        Shown(&change.target.kind),
        Shown(&change.target.resource),
        Shown(&what),
        Shown(if change.subject.is_empty() {
            "-"
        } else {
            &change.subject
        }),
        Shown(&notes.join("; "))
    );
}

fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
