//! Printing results for people (aligned text) and machines (`--json`, one document on
//! stdout). Errors go to stderr in text mode and into the document in JSON mode.

//!
//! Every line of text goes through [`say_line`] or [`tell_line`]: loaded secrets are
//! scrubbed ([`crate::redact`]) and every control, bidi and separator character is shown
//! escaped ([`crate::untrusted::escape`]), so a plugin's string can neither repaint the
//! terminal nor start a line of its own. A line break inside a line is shown as `\n`;
//! leading line breaks (the host's own blank lines, `say!("\nsummary")`) are kept. Host
//! renderers that build several lines (the plan, the conformance table) go through
//! [`say_lines`] and escape the plugin-supplied fields they interpolate themselves.
//!
//! Must never: print with `println!`/`eprintln!` directly.

use std::io::Write as _;

use serde_json::{Value, json};

use super::Exit;
use crate::sandbox::CallReport;
use crate::untrusted::escape;

/// Prints one line of text output on stdout (see the module docs).
macro_rules! say {
    () => {
        $crate::cli::output::say_line("")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::say_line(&format!($($arg)*))
    };
}

/// Prints one line of text on stderr (see the module docs).
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::cli::output::tell_line(&format!($($arg)*))
    };
}

pub(crate) use {say, tell};

/// `line` as it may reach a terminal: secrets scrubbed, then unsafe characters escaped;
/// leading and trailing line breaks (the host's own blank lines) are kept.
pub(crate) fn safe_line(line: &str) -> String {
    let body = line.trim_start_matches('\n');
    let before = line.len() - body.len();
    let trimmed = body.trim_end_matches('\n');
    let after = body.len() - trimmed.len();
    let scrubbed = crate::redact::scrub(trimmed);
    format!(
        "{}{}{}",
        "\n".repeat(before),
        escape(&scrubbed),
        "\n".repeat(after)
    )
}

pub(crate) fn say_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", safe_line(line));
}

pub(crate) fn tell_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", safe_line(line));
}

/// Text a host renderer built line by line: each line printed through [`say_line`].
pub(crate) fn say_lines(text: &str) {
    for line in text.lines() {
        say_line(line);
    }
}

pub(crate) fn bad_input(message: &str, json: bool) -> Exit {
    if json {
        emit(&json!({ "ok": false, "exit": Exit::BadInput as u8, "error": message }));
    } else {
        // Bad-input messages are the host's own and may span lines (a TOML error with its
        // caret, every invalid action of a file); each line is still escaped.
        for (n, line) in message.lines().enumerate() {
            if n == 0 {
                tell!("error: {line}");
            } else {
                tell!("{line}");
            }
        }
    }
    Exit::BadInput
}

/// The one JSON document on stdout. serde escapes every control character; secrets are
/// scrubbed from the encoded text, so their JSON-escaped forms are caught too.
pub(crate) fn emit(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            let clean = crate::redact::scrub(&text);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{clean}");
        }
        Err(e) => tell!("error: cannot encode output: {e}"),
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

/// Aligned text columns: each column as wide as its widest cell, so long ids (Jira
/// accountIds, email subjects) widen their column instead of shifting the ones after it.
/// The last column is never padded; columns listed in `right` are right-aligned.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    pub(crate) fn new(header: &[&str], right: &[usize]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
            right: right.to_vec(),
        }
    }

    /// Cells are escaped here, so column widths count what the terminal will show.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| escape(&c).into_owned()).collect());
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        self.rows
            .iter()
            .map(|row| {
                let mut line = String::new();
                for (c, cell) in row.iter().enumerate() {
                    if c > 0 {
                        line.push_str(if c + 1 == row.len() { "  " } else { " " });
                    }
                    let pad = widths[c].saturating_sub(cell.chars().count());
                    if self.right.contains(&c) {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    } else {
                        line.push_str(cell);
                        if c + 1 < row.len() {
                            line.extend(std::iter::repeat_n(' ', pad));
                        }
                    }
                }
                line
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Table, safe_line};

    #[test]
    fn a_line_cannot_forge_another_or_repaint_the_terminal() {
        let forged = "principal: evil\r\n2026-12-07T00:00:00Z  INFO portcullis::audit {\"outcome\":\"verified\"}\x1b]0;owned\x07\x1b[2J\u{202e}";
        let line = safe_line(forged);
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\x1b'));
        assert!(!line.contains('\u{202e}'), "{line}");
        assert!(line.contains("\\r\\n2026-12-07"), "{line}");
        // The host's own leading blank line is kept.
        assert_eq!(safe_line("\nsummary\n"), "\nsummary\n");
    }

    #[test]
    fn long_cells_widen_their_column_and_keep_the_rest_aligned() {
        let mut table = Table::new(&["#", "subject", "outcome", "try", "detail"], &[3]);
        table.row(vec![
            "1".into(),
            "josh".into(),
            "verified".into(),
            "1".into(),
            "present".into(),
        ]);
        table.row(vec![
            "2".into(),
            "712020:0b4c5a36-9e0f-4c7e-9c55-1d2f3e4a5b6c".into(),
            "ALERT".into(),
            "3".into(),
            "gave up".into(),
        ]);
        let lines = table.lines();
        let outcome_at: Vec<usize> = lines
            .iter()
            .map(|l| {
                l.find("outcome")
                    .or_else(|| l.find("verified"))
                    .or_else(|| l.find("ALERT"))
                    .expect("every line has an outcome")
            })
            .collect();
        assert!(
            outcome_at.iter().all(|&at| at == outcome_at[0]),
            "{lines:#?}"
        );
        assert!(
            outcome_at[0] > "712020:0b4c5a36-9e0f-4c7e-9c55-1d2f3e4a5b6c".len(),
            "{lines:#?}"
        );
        // Right-aligned numbers end in the same column; the last column is not padded.
        let try_end: Vec<usize> = lines
            .iter()
            .map(|l| l.rfind("  ").expect("a gap before the last column"))
            .collect();
        assert!(try_end.iter().all(|&e| e == try_end[0]), "{lines:#?}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{lines:#?}");
    }
}
