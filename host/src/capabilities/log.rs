//! `portcullis:connector/log`: plugin log lines into `tracing`, tagged with app, plugin and
//! call, with secrets scrubbed, terminal escapes, controls, bidi overrides and line
//! separators shown escaped (a plugin must not forge log lines or repaint the operator's
//! terminal), and capped in lines and bytes per call.

use crate::bindings::v0_1::log::{Host, Level};
use crate::sandbox::CallState;

/// Longest message or field value kept, in bytes; the rest is cut with a marker.
const MAX_FIELD_BYTES: usize = 2048;

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

/// One plugin log value as the host writes it: loaded secrets scrubbed, then capped, then
/// every control, bidi and separator character shown escaped (see [`crate::untrusted`]),
/// so one plugin line stays one honest line.
pub(crate) fn sanitize(text: &str) -> String {
    let scrubbed = crate::redact::scrub(text);
    let mut end = scrubbed.len().min(MAX_FIELD_BYTES);
    while !scrubbed.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = crate::untrusted::escape(&scrubbed[..end]).into_owned();
    if end < scrubbed.len() {
        out.push_str("…[truncated]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn escapes_and_line_breaks_are_neutralised() {
        let hostile = "\x1b[31mred\x1b[0m\r\n2026-01-01 INFO forged line\x07 \u{202e}evil\u{2028}";
        let clean = sanitize(hostile);
        for c in ['\x1b', '\n', '\r', '\x07', '\u{202e}', '\u{2028}'] {
            assert!(!clean.contains(c), "{c:?} in {clean}");
        }
        assert!(clean.starts_with("\\u{1b}[31mred"), "{clean}");
        assert!(
            clean.contains("\\r\\n2026-01-01 INFO forged line"),
            "{clean}"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let clean = sanitize(&"a".repeat(10_000));
        assert!(clean.len() < 2100);
        assert!(clean.ends_with("[truncated]"));
    }
}
