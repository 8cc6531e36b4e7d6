//! Printing results for people (aligned text) and machines (`--json`, one document on
//! stdout). Errors go to stderr in text mode and into the document in JSON mode.

use serde_json::{Value, json};

use super::Exit;
use crate::sandbox::CallReport;

pub(crate) fn bad_input(message: &str, json: bool) -> Exit {
    if json {
        emit(&json!({ "ok": false, "exit": Exit::BadInput as u8, "error": message }));
    } else {
        eprintln!("error: {message}");
    }
    Exit::BadInput
}

pub(crate) fn emit(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

/// "2 HTTP calls, 3.1 ms" and, under it, one line per request.
pub(crate) fn report_lines(report: &CallReport) -> Vec<String> {
    let mut lines = vec![format!(
        "{} HTTP call{}, {:.1} ms",
        report.http.len(),
        if report.http.len() == 1 { "" } else { "s" },
        report.duration_ms
    )];
    for call in &report.http {
        let status = match (&call.status, &call.refused) {
            (Some(status), _) => status.to_string(),
            (None, Some(reason)) => format!("refused: {reason}"),
            (None, None) => "-".to_owned(),
        };
        lines.push(format!(
            "    {:<6} {} -> {} ({:.1} ms)",
            call.method, call.url, status, call.latency_ms
        ));
    }
    lines
}
