//! `portcullis:connector/log`: plugin log lines into `tracing`, tagged with app, plugin and
//! call, with terminal escapes and control characters removed (a plugin must not forge log
//! lines or repaint the operator's terminal) and capped in lines and bytes per call.

use crate::bindings::log::{Host, Level};
use crate::sandbox::CallState;

/// Longest message or field value kept; the rest is cut with a marker.
const MAX_FIELD_CHARS: usize = 2048;

impl Host for CallState {
    fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.enter_host_call()?;
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let limits = &self.app.limits;
        let meter = &mut self.meter;
        if meter.log_lines >= limits.log_lines
            || meter.log_bytes as usize + size > limits.log_bytes as usize
        {
            if meter.log_lines_dropped == 0 {
                tracing::warn!(
                    app = %self.app.name,
                    call = %self.call_id,
                    "plugin log limit reached ({} lines / {} bytes per call); further lines are dropped",
                    limits.log_lines,
                    limits.log_bytes
                );
            }
            meter.log_lines_dropped += 1;
            return Ok(());
        }
        meter.log_lines += 1;
        meter.log_bytes += size as u32;

        let message = sanitize(&message);
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{}={}", sanitize(k), sanitize(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let app = self.app.name.as_str();
        let call = self.call_id.as_str();
        match level {
            Level::Trace => {
                tracing::trace!(target: "portcullis::plugin", app, call, fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "portcullis::plugin", app, call, fields, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "portcullis::plugin", app, call, fields, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "portcullis::plugin", app, call, fields, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "portcullis::plugin", app, call, fields, "{message}")
            }
        }
        Ok(())
    }
}

/// Removes ANSI escape sequences, turns other control characters into spaces and caps the
/// length, so one plugin line stays one honest line.
pub(crate) fn sanitize(text: &str) -> String {
    let stripped = strip_ansi_escapes::strip_str(text);
    let mut out: String = stripped
        .chars()
        .take(MAX_FIELD_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if stripped.chars().count() > MAX_FIELD_CHARS {
        out.push_str("…[truncated]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn escapes_and_line_breaks_are_neutralised() {
        let hostile = "\x1b[31mred\x1b[0m\r\n2026-01-01 INFO forged line\x07";
        let clean = sanitize(hostile);
        assert!(!clean.contains('\x1b') && !clean.contains('\n') && !clean.contains('\r'));
        assert!(clean.starts_with("red"), "{clean}");
        assert!(clean.contains("forged line"));
    }

    #[test]
    fn long_values_are_cut() {
        let clean = sanitize(&"a".repeat(10_000));
        assert!(clean.len() < 2100);
        assert!(clean.ends_with("[truncated]"));
    }
}
