//! Text that comes from a plugin or a remote API: how it is shown and how much of it is
//! kept.
//!
//! - [`escape`] is the one sanitiser for rendering such text in a terminal or a log line:
//!   C0 and C1 controls, DEL, bidi controls (U+202A–U+202E, U+2066–U+2069, plus the
//!   implicit marks U+200E/U+200F/U+061C) and the line and paragraph separators
//!   (U+2028/U+2029) are shown as `\u{..}` escapes (`\n`, `\r`, `\t` as themselves), so a
//!   plugin can neither repaint the terminal nor forge a line that looks like the host's.
//!   JSON output needs no escaping beyond serde's.
//! - [`bound`] caps a plugin-supplied string where it enters the host, keeping its start,
//!   its full length and its sha256, so a 48 MiB error is one short, still-identifiable
//!   line in the audit trail.
//!
//! Must never: drop a character silently (escaped text stays readable and unambiguous), or
//! cut a string without saying how long it was.

use std::borrow::Cow;
use std::fmt;

use sha2::{Digest, Sha256};

/// Whether `c` must not reach a terminal as itself.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c,
            '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
            | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
            | '\u{200E}' | '\u{200F}' | '\u{061C}' // LRM, RLM, ALM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{FEFF}' // zero-width no-break space / BOM
        )
}

/// `text` with every character that could change how a terminal shows it escaped.
/// Borrowed (no allocation) when there is nothing to escape, which is nearly always.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                use fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Displays a string through [`escape`]: `format!("{}", Shown(&plugin_text))`.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// Caps on what a plugin may hand the host. Long enough for every honest connector (the
/// bundled ones stay far below), short enough that one call cannot bloat the audit trail
/// or the terminal.
pub mod caps {
    /// An error message, a pending detail, a check principal, a warning.
    pub const MESSAGE_BYTES: usize = 4 * 1024;
    /// An identifier: a subject, a resource, a level, a scope, a cursor.
    pub const ID_BYTES: usize = 1024;
    /// Entries of a list of scopes or warnings.
    pub const LIST_ITEMS: usize = 100;
    /// Grants on one `list-grants` page.
    pub const GRANTS_PER_PAGE: usize = 10_000;
    /// A listing cursor: longer ones are refused (a cursor that grows every page is a loop).
    pub const CURSOR_BYTES: usize = 4 * 1024;
}

/// `text` if it is at most `max` bytes; otherwise its first `max` bytes (cut at a
/// character boundary) and a marker with its full length and sha256.
pub fn bound(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    format!(
        "{}…[truncated: {} bytes in all, sha256 {digest}]",
        &text[..cut],
        text.len()
    )
}

/// At most `max` entries of `items`, the last one saying how many were left out.
pub fn bound_list(mut items: Vec<String>, max: usize, item_bytes: usize) -> Vec<String> {
    let total = items.len();
    if total > max {
        items.truncate(max.saturating_sub(1));
    }
    let left_out = total - items.len();
    let mut kept: Vec<String> = items.into_iter().map(|s| bound(s, item_bytes)).collect();
    if left_out > 0 {
        kept.push(format!("…[{left_out} more left out]"));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_separators_are_shown_escaped() {
        let hostile = "ok\x1b]0;pwned\x07\x1b[2J\r\nINFO portcullis::audit {\"outcome\":\"verified\"}\u{202E}gpj.exe\u{2028}\u{2066}\u{9b}\x7f";
        let shown = escape(hostile);
        for c in shown.chars() {
            assert!(!is_unsafe(c), "{c:?} survived in {shown}");
        }
        assert_eq!(
            shown,
            "ok\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\r\\nINFO portcullis::audit {\"outcome\":\"verified\"}\\u{202e}gpj.exe\\u{2028}\\u{2066}\\u{9b}\\u{7f}"
        );
    }

    #[test]
    fn clean_text_is_borrowed_and_unchanged() {
        let text = "josh → maintain on acme/platform-api (日本語 ok)";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        assert_eq!(Shown("a\nb").to_string(), "a\\nb");
    }

    #[test]
    fn escaping_is_idempotent() {
        let once = escape("a\x1b[31mb\u{202e}").into_owned();
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn long_text_keeps_its_start_length_and_digest() {
        let long = "é".repeat(3000); // 6000 bytes, two per character
        let cut = bound(long.clone(), 1001);
        assert!(cut.starts_with(&"é".repeat(500)), "{}", &cut[..20]);
        assert!(cut.contains("6000 bytes in all"), "{cut}");
        let digest = hex::encode(Sha256::digest(long.as_bytes()));
        assert!(cut.contains(&digest), "{cut}");
        assert_eq!(bound("short".into(), 10), "short");
    }

    #[test]
    fn long_lists_say_how_many_were_left_out() {
        let items: Vec<String> = (0..250).map(|n| n.to_string()).collect();
        let kept = bound_list(items, 100, 10);
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[99], "…[151 more left out]");
        assert_eq!(bound_list(vec!["a".into()], 100, 10), vec!["a".to_owned()]);
    }
}
