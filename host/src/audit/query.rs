//! `portcullis audit query`: the trail's records filtered by person, app, run, time and
//! kind, as rows (table, CSV) or whole records (JSON). An action's later records (its
//! finish, its HTTP calls) carry only its call id, so the query joins them to the
//! person, subject and entitlement its `action-started` record named.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::file::for_each_line;

/// Which records to keep; every given filter must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The person's id in the directory, or their account (subject id or email) in an app.
    pub person: Option<String>,
    pub app: Option<String>,
    /// A run id (its phase-2 run `ID.2` included).
    pub run: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Event kinds (`action-started`, `approval-decided`, ...); empty keeps all.
    pub kinds: Vec<String>,
}

/// One record as a row: the fields a reader filters and sorts by.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub seq: u64,
    pub at: String,
    pub event: String,
    pub app: String,
    pub run: String,
    pub person: String,
    pub subject: String,
    pub entitlement: String,
    /// The outcome of an action, the decision of an approval, the status of an API call.
    pub outcome: String,
    /// What set an action off (rule, HR event, approval, operator, schedule).
    pub trigger: String,
    /// The whole record, for `--json`.
    #[serde(skip)]
    pub record: Value,
}

/// What an `action-started` record said, for the records of the same call that follow.
#[derive(Debug, Clone, Default)]
struct CallContext {
    run: String,
    person: String,
    subject: String,
    email: String,
    entitlement: String,
    trigger: String,
}

fn text(value: &Value, path: &[&str]) -> String {
    let mut at = value;
    for key in path {
        match at.get(key) {
            Some(next) => at = next,
            None => return String::new(),
        }
    }
    match at {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn entitlement(value: &Value) -> String {
    let Some(e) = value.get("entitlement") else {
        return String::new();
    };
    let (kind, resource) = (text(e, &["kind"]), text(e, &["resource"]));
    match text(e, &["level"]) {
        level if level.is_empty() => format!("{kind}:{resource}"),
        level => format!("{kind}:{resource}@{level}"),
    }
}

/// A short description of a trigger record (see `model::Trigger`).
pub fn describe_trigger(trigger: &Value) -> String {
    if trigger.is_null() {
        return String::new();
    }
    let mut parts = vec![text(trigger, &["source"])];
    for (key, label) in [
        ("rules", "rule"),
        ("hr_event", "hr-event"),
        ("approval", "approval"),
        ("approver", "approver"),
        ("operator", "operator"),
        ("token", "token"),
        ("schedule", "schedule"),
    ] {
        match trigger.get(key) {
            Some(Value::Array(items)) if !items.is_empty() => parts.push(format!(
                "{label} {}",
                items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            Some(Value::Null) | Some(Value::Array(_)) | None => {}
            Some(v) => parts.push(format!(
                "{label} {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            )),
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join("; ")
}

/// The records of the trail at `path` that pass `filter`, in trail order.
pub fn query(path: &Path, filter: &Filter) -> Result<Vec<Row>, String> {
    let mut calls: HashMap<String, CallContext> = HashMap::new();
    let mut rows = Vec::new();
    for_each_line(path, |_, _, line| {
        let Ok(record) = serde_json::from_slice::<Value>(line) else {
            return Ok(()); // a sealed torn fragment; `audit verify` reports it
        };
        let Some(seq) = record.get("seq").and_then(Value::as_u64) else {
            return Ok(()); // a legacy line from before the chain
        };
        let event = text(&record, &["event"]);
        let call_id = text(&record, &["call_id"]);
        if event == "action-started" {
            calls.insert(
                call_id.clone(),
                CallContext {
                    run: text(&record, &["run"]),
                    person: text(&record, &["trigger", "person"]),
                    subject: text(&record, &["subject", "id"]),
                    email: text(&record, &["subject", "email"]),
                    entitlement: entitlement(&record),
                    trigger: describe_trigger(record.get("trigger").unwrap_or(&Value::Null)),
                },
            );
        }
        let context = calls.get(&call_id).cloned().unwrap_or_default();
        let pick = |own: String, joined: &str| {
            if own.is_empty() {
                joined.to_owned()
            } else {
                own
            }
        };
        let row = Row {
            seq,
            at: text(&record, &["at"]),
            app: text(&record, &["app"]),
            run: pick(text(&record, &["run"]), &context.run),
            person: pick(text(&record, &["person"]), &context.person),
            subject: pick(text(&record, &["subject", "id"]), &context.subject),
            entitlement: pick(entitlement(&record), &context.entitlement),
            outcome: match event.as_str() {
                "action-finished" => text(&record, &["outcome", "outcome"]),
                "approval-decided" => text(&record, &["decision"]),
                "api-call" => text(&record, &["status"]),
                "call-finished" => text(&record, &["ok"]),
                _ => String::new(),
            },
            trigger: pick(
                describe_trigger(record.get("trigger").unwrap_or(&Value::Null)),
                &context.trigger,
            ),
            event,
            record,
        };
        if keep(&row, &context, filter)? {
            rows.push(row);
        }
        Ok(())
    })?;
    Ok(rows)
}

fn keep(row: &Row, context: &CallContext, filter: &Filter) -> Result<bool, String> {
    if let Some(person) = &filter.person {
        let named = [&row.person, &row.subject, &context.email]
            .iter()
            .any(|v| v.as_str() == person)
            || text(&row.record, &["subject", "email"]) == *person;
        if !named {
            return Ok(false);
        }
    }
    if filter.app.as_ref().is_some_and(|app| *app != row.app) {
        return Ok(false);
    }
    if let Some(run) = &filter.run
        && row.run != *run
        && row.run != format!("{run}.2")
    {
        return Ok(false);
    }
    if filter.since.is_some() || filter.until.is_some() {
        let Ok(at) = DateTime::parse_from_rfc3339(&row.at) else {
            return Ok(false);
        };
        let at = at.with_timezone(&Utc);
        if filter.since.is_some_and(|since| at < since)
            || filter.until.is_some_and(|until| at > until)
        {
            return Ok(false);
        }
    }
    if !filter.kinds.is_empty() && !filter.kinds.contains(&row.event) {
        return Ok(false);
    }
    Ok(true)
}

/// The rows as CSV with a header line.
pub fn to_csv(rows: &[Row]) -> Result<String, String> {
    // The header is written even for no rows, so a script always gets the columns.
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    out.write_record([
        "seq",
        "at",
        "event",
        "app",
        "run",
        "person",
        "subject",
        "entitlement",
        "outcome",
        "trigger",
    ])
    .map_err(|e| e.to_string())?;
    for row in rows {
        out.serialize(row).map_err(|e| e.to_string())?;
    }
    let bytes = out.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}
