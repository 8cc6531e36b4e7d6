//! `grant`, `revoke`, `verify`, `check`, `describe`, `list-grants`: one operation against
//! one configured app, printed for people or as JSON.

use serde_json::json;

use super::output::{emit, report_lines, say};
use super::{ActionArgs, Exit, ListArgs};
use crate::host::Host;
use crate::model::{Action, Entitlement, GrantQuery, Subject};
use crate::readback::{Checked, Verdict};
use crate::sandbox::CallError;

fn action_of(args: &ActionArgs, operation: &str) -> Action {
    let subject = Subject {
        id: args.subject.clone(),
        email: args.email.clone(),
    };
    let entitlement = Entitlement {
        kind: args.kind.clone(),
        resource: args.resource.clone(),
        level: args.level.clone(),
    };
    // One CLI invocation is one action: the key is unique per invocation, stable across
    // the connector's internal retries.
    let idempotency_key = format!(
        "cli-{operation}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    Action {
        subject,
        entitlement,
        idempotency_key,
        reason: args.reason.clone(),
    }
}

/// Exit code for a checked action.
pub(crate) fn exit_for(verdict: &Verdict) -> Exit {
    match verdict {
        Verdict::Verified { .. } => Exit::Success,
        Verdict::Pending { .. } => Exit::Pending,
        Verdict::NotApplied { .. } | Verdict::Failed { .. } => Exit::ActionFailed,
    }
}

/// One line saying what the verdict means.
pub(crate) fn verdict_line(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Verified { observed } => format!("verified: read-back shows {observed}"),
        Verdict::Pending { observed, detail } => {
            format!("pending: read-back shows {observed}; {detail}")
        }
        Verdict::NotApplied { observed } => {
            format!("NOT APPLIED: the connector reported success but read-back shows {observed}")
        }
        Verdict::Failed { error } => format!("FAILED: {error}"),
    }
}

fn print_checked<T: serde::Serialize + std::fmt::Debug>(
    operation: &str,
    app: &str,
    action: &Action,
    checked: &Checked<T>,
    json: bool,
) -> Exit {
    let exit = exit_for(&checked.verdict);
    if json {
        emit(&json!({
            "ok": exit == Exit::Success,
            "exit": exit as u8,
            "operation": operation,
            "app": app,
            "action": action,
            "write": { "result": result_json(&checked.write.result), "report": checked.write.report },
            "readback": checked.readback.as_ref().map(|r| json!({ "result": result_json(&r.result), "report": r.report })),
            "verdict": checked.verdict,
        }));
        return exit;
    }
    say!(
        "{operation} {} for {} on {app}",
        action.entitlement,
        action.subject.id
    );
    match &checked.write.result {
        Ok(outcome) => say!("  {operation:<8} {}", describe_outcome(outcome)),
        Err(error) => say!("  {operation:<8} error: {error}"),
    }
    for line in report_lines(&checked.write.report) {
        say!("           {line}");
    }
    if let Some(readback) = &checked.readback {
        match &readback.result {
            Ok(observed) => say!("  verify   {observed}"),
            Err(error) => say!("  verify   error: {error}"),
        }
        for line in report_lines(&readback.report) {
            say!("           {line}");
        }
    }
    say!("  => {}", verdict_line(&checked.verdict));
    exit
}

fn describe_outcome<T: serde::Serialize + std::fmt::Debug>(outcome: &T) -> String {
    match serde_json::to_value(outcome) {
        Ok(serde_json::Value::Object(map)) => {
            let name = map
                .get("outcome")
                .and_then(|v| v.as_str())
                .unwrap_or("done");
            match map.get("detail").and_then(|v| v.as_str()) {
                Some(detail) => format!("{name}: {detail}"),
                None => name.to_owned(),
            }
        }
        _ => format!("{outcome:?}"),
    }
}

fn result_json<T: serde::Serialize>(result: &Result<T, CallError>) -> serde_json::Value {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(error) => json!({ "error": error, "message": error.to_string() }),
    }
}

pub(crate) async fn grant(host: &Host, args: &ActionArgs, json: bool) -> Exit {
    let action = action_of(args, "grant");
    let checked = host.grant_checked(&args.app, &action).await;
    print_checked("grant", &args.app, &action, &checked, json)
}

pub(crate) async fn revoke(host: &Host, args: &ActionArgs, json: bool) -> Exit {
    let action = action_of(args, "revoke");
    let checked = host.revoke_checked(&args.app, &action).await;
    print_checked("revoke", &args.app, &action, &checked, json)
}

pub(crate) async fn verify(host: &Host, args: &ActionArgs, json: bool) -> Exit {
    let action = action_of(args, "verify");
    let call = host
        .verify(&args.app, &action.subject, &action.entitlement)
        .await;
    let exit = if call.result.is_ok() {
        Exit::Success
    } else {
        Exit::ActionFailed
    };
    if json {
        emit(&json!({
            "ok": call.result.is_ok(),
            "exit": exit as u8,
            "app": args.app,
            "subject": action.subject,
            "entitlement": action.entitlement,
            "result": result_json(&call.result),
            "report": call.report,
        }));
    } else {
        match &call.result {
            Ok(observed) => say!(
                "{} holds {}: {observed}",
                action.subject.id,
                action.entitlement
            ),
            Err(error) => say!("verify failed: {error}"),
        }
        for line in report_lines(&call.report) {
            say!("  {line}");
        }
    }
    exit
}

pub(crate) async fn check(host: &Host, app: &str, json: bool) -> Exit {
    let call = host.check(app).await;
    let exit = if call.result.is_ok() {
        Exit::Success
    } else {
        Exit::ActionFailed
    };
    if json {
        emit(
            &json!({ "ok": call.result.is_ok(), "exit": exit as u8, "app": app, "result": result_json(&call.result), "report": call.report }),
        );
        return exit;
    }
    match &call.result {
        Ok(report) => {
            say!("{app}: credentials work; acting as {}", report.principal);
            if !report.scopes.is_empty() {
                say!("  scopes: {}", report.scopes.join(", "));
            }
            for warning in &report.warnings {
                say!("  warning: {warning}");
            }
        }
        Err(error) => say!("{app}: check failed: {error}"),
    }
    exit
}

pub(crate) async fn describe(host: &Host, app: &str, json: bool) -> Exit {
    match host.connector_info(app).await {
        Ok(info) => {
            if json {
                emit(&json!({ "ok": true, "exit": 0, "app": app, "connector": info }));
            } else {
                say!("{} {} - {}", info.name, info.version, info.description);
                for kind in &info.kinds {
                    let levels = if kind.levels.is_empty() {
                        "present/absent".to_owned()
                    } else {
                        kind.levels.join(" < ")
                    };
                    let rmw = if kind.read_modify_write {
                        " (read-modify-write)"
                    } else {
                        ""
                    };
                    say!("  {}: {levels}{rmw} - {}", kind.name, kind.description);
                }
            }
            Exit::Success
        }
        Err(error) => {
            if json {
                emit(
                    &json!({ "ok": false, "exit": 1, "app": app, "error": error, "message": error.to_string() }),
                );
            } else {
                say!("{app}: describe failed: {error}");
            }
            Exit::ActionFailed
        }
    }
}

pub(crate) async fn list_grants(host: &Host, args: &ListArgs, json: bool) -> Exit {
    let query = GrantQuery {
        kind: args.kind.clone(),
        resource: args.resource.clone(),
        cursor: None,
    };
    // One page, or every page within the host's bounds; a stopped listing still shows
    // what it read, marked partial.
    let (grants, next_cursor, stopped) = if args.all {
        let listing = host.list_all_grants(&args.app, &query).await;
        (listing.grants, None, listing.stopped)
    } else {
        let call = host.list_grants(&args.app, &query).await;
        match call.result {
            Ok(page) => (page.grants, page.next_cursor, None),
            Err(error) => (
                Vec::new(),
                None,
                Some(crate::host::ListingStop::Failed { page: 1, error }),
            ),
        }
    };
    let exit = if stopped.is_some() {
        Exit::ActionFailed
    } else {
        Exit::Success
    };
    if json {
        let message = stopped.as_ref().map(ToString::to_string);
        emit(&json!({
            "ok": stopped.is_none(),
            "exit": exit as u8,
            "app": args.app,
            "grants": grants,
            "complete": stopped.is_none() && next_cursor.is_none(),
            "next_cursor": next_cursor,
            "stopped": stopped,
            "message": message,
        }));
        return exit;
    }
    for grant in &grants {
        let pending = if grant.pending { " (pending)" } else { "" };
        say!("{:<24} {}{pending}", grant.subject.id, grant.entitlement);
    }
    if let Some(cursor) = &next_cursor {
        say!("(more: pass --all to follow every page; next cursor {cursor})");
    }
    if let Some(stop) = &stopped {
        if grants.is_empty() {
            say!("list-grants failed: {stop}");
        } else {
            say!(
                "list-grants stopped after {} grants (PARTIAL: more may exist): {stop}",
                grants.len()
            );
        }
    }
    exit
}
