//! Secret values never leave through the host.
//!
//! Every secret value this process loads is registered here, in the forms it can take on
//! the way out: as itself, percent-encoded (path and query style), JSON-escaped, base64
//! (standard and URL-safe), and base64 of every `user:password` pair of one app's secrets
//! (HTTP basic auth). [`scrub`] replaces any of them with `[redacted:NAME]`. The host runs
//! it over everything it writes: audit lines, log lines (see [`ScrubbingStderr`]), text and
//! JSON output, and every string a plugin hands back, before it reaches state.
//!
//! The registry is process-wide on purpose: whichever host, app or call loaded a secret,
//! this process must not write it anywhere, and output paths (the log writer, `println!`)
//! have no host to ask.
//!
//! [`Redactor`] is also used per app, with only the secrets a plugin may not reveal, to
//! scrub the responses handed to that plugin (an origin that reflects request headers must
//! not give the injected token back).
//!
//! Must never: keep a value shorter than [`MIN_SECRET_BYTES`] (it would match ordinary
//! text and the redaction itself would reveal it), or log what it matched.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

/// Shorter values are not redacted: a 3-letter "secret" would turn every occurrence of
/// those letters into a marker, and no credential worth injecting is that short.
pub const MIN_SECRET_BYTES: usize = 6;

/// A set of secret values in all their outgoing forms, and what each is replaced by.
#[derive(Default)]
pub struct Redactor {
    matcher: Option<AhoCorasick>,
    replacements: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.replacements.len())
            .finish_non_exhaustive()
    }
}

/// The query-component set of the WHATWG URL standard plus the path's `/`, `?` and `#`:
/// what `url` and most HTTP clients percent-encode in a value.
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'&')
    .add(b'=')
    .add(b'+');

/// Every form `value` can take on the way out of the host.
fn forms(value: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64_url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut forms = vec![
        value.to_owned(),
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(value, COMPONENT).to_string(),
        form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        b64.encode(value),
        b64_url.encode(value),
    ];
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json.trim_matches('"').to_owned());
    }
    forms
}

impl Redactor {
    /// A redactor for `secrets` (name, value). With `pairs`, also base64 of every `a:b`
    /// pair of them, the form HTTP basic auth sends.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>, pairs: bool) -> Redactor {
        let secrets: Vec<(&str, &str)> = secrets.into_iter().collect();
        let mut entries: Vec<(String, String)> = secrets
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        if pairs {
            entries.extend(basic_pairs(&secrets));
        }
        Redactor::from_entries(&entries)
    }

    fn from_entries(entries: &[(String, String)]) -> Redactor {
        // Pattern => replacement; a form shared by two secrets keeps the first name.
        let mut patterns: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in entries {
            if value.len() < MIN_SECRET_BYTES {
                continue;
            }
            for form in forms(value) {
                patterns
                    .entry(form)
                    .or_insert_with(|| format!("[redacted:{name}]"));
            }
        }
        patterns.retain(|form, _| form.len() >= MIN_SECRET_BYTES);
        if patterns.is_empty() {
            return Redactor::default();
        }
        let (forms, replacements): (Vec<String>, Vec<String>) = patterns.into_iter().unzip();
        // Leftmost-longest: where forms overlap (a value and its base64), the longest wins.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
            .ok();
        Redactor {
            matcher,
            replacements,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret form replaced; borrowed when there is none (nearly always).
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.matcher {
            Some(matcher) if matcher.is_match(text) => {
                Cow::Owned(matcher.replace_all(text, &self.replacements))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// Like [`Redactor::scrub`], for bytes (response bodies, serialised lines).
    pub fn scrub_bytes<'t>(&self, bytes: &'t [u8]) -> Cow<'t, [u8]> {
        match &self.matcher {
            Some(matcher) if matcher.is_match(bytes) => {
                Cow::Owned(matcher.replace_all_bytes(bytes, &self.replacements))
            }
            _ => Cow::Borrowed(bytes),
        }
    }

    /// Scrubs `text` in place; true if anything was replaced.
    pub fn scrub_in_place(&self, text: &mut String) -> bool {
        if let Cow::Owned(clean) = self.scrub(text) {
            *text = clean;
            return true;
        }
        false
    }
}

/// Every secret this process has loaded, by (app, secret name).
struct Registry {
    values: Mutex<BTreeMap<(String, String), String>>,
    redactor: RwLock<Arc<Redactor>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    values: Mutex::new(BTreeMap::new()),
    redactor: RwLock::new(Arc::new(Redactor::default())),
});

/// `user:password` for every ordered pair of `secrets`, named `user:password`: what basic
/// auth sends (base64-encoded, which [`forms`] covers).
fn basic_pairs(secrets: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (user_name, user) in secrets {
        for (password_name, password) in secrets {
            pairs.push((
                format!("{user_name}:{password_name}"),
                format!("{user}:{password}"),
            ));
        }
    }
    pairs
}

/// Adds one app's loaded secrets to the process-wide set. Called once per app, when its
/// secrets are first loaded.
pub fn register<'a>(app: &str, secrets: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut values = REGISTRY.values.lock();
    let mut changed = false;
    for (name, value) in secrets {
        let old = values.insert((app.to_owned(), name.to_owned()), value.to_owned());
        changed |= old.as_deref() != Some(value);
    }
    if !changed {
        return;
    }
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut by_app: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for ((app, name), value) in values.iter() {
        entries.push((name.clone(), value.clone()));
        by_app.entry(app).or_default().push((name, value));
    }
    // Basic-auth pairs within one app: a plugin can only pair its own app's secrets.
    for secrets in by_app.values() {
        entries.extend(basic_pairs(secrets));
    }
    *REGISTRY.redactor.write() = Arc::new(Redactor::from_entries(&entries));
}

/// The process-wide redactor, for paths that write many lines.
pub fn global() -> Arc<Redactor> {
    Arc::clone(&REGISTRY.redactor.read())
}

/// `text` with every loaded secret, in any of its forms, replaced by `[redacted:NAME]`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let redactor = REGISTRY.redactor.read();
    match redactor.scrub(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(clean) => Cow::Owned(clean),
    }
}

/// Owned-string convenience over [`scrub`].
pub fn scrubbed(text: String) -> String {
    match scrub(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clean) => clean,
    }
}

/// Standard error for the tracing subscriber: every event is scrubbed of loaded secrets,
/// and written as one line. tracing escapes ESC and C1 in field values itself, but not line
/// breaks, bidi controls or separators, so the writer shows those escaped
/// ([`crate::untrusted::escape`]) everywhere but the event's final newline. With colours
/// on, raw ESC can only be the formatter's own (plugin ESCs arrive already escaped) and is
/// kept; without colours it is escaped too.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubbingStderr {
    pub colours: bool,
}

impl ScrubbingStderr {
    /// One event as it may reach the terminal.
    pub fn clean(&self, event: &[u8]) -> Vec<u8> {
        let scrubbed = global().scrub_bytes(event).into_owned();
        let text = String::from_utf8_lossy(&scrubbed);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let mut out = String::with_capacity(text.len());
        for piece in body.split_inclusive('\x1b') {
            match piece.strip_suffix('\x1b') {
                Some(before) if self.colours => {
                    out.push_str(&crate::untrusted::escape(before));
                    out.push('\x1b');
                }
                _ => out.push_str(&crate::untrusted::escape(piece)),
            }
        }
        if body.len() < text.len() {
            out.push('\n');
        }
        out.into_bytes()
    }
}

impl Write for ScrubbingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(&self.clean(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbingStderr {
    type Writer = ScrubbingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-S3CRET/+=\"value";

    #[test]
    fn every_outgoing_form_is_replaced_by_the_name() {
        let redactor = Redactor::new([("token", CANARY)], true);
        let b64 = base64::engine::general_purpose::STANDARD;
        for form in [
            CANARY.to_owned(),
            utf8_percent_encode(CANARY, NON_ALPHANUMERIC).to_string(),
            form_urlencoded::byte_serialize(CANARY.as_bytes()).collect::<String>(),
            serde_json::to_string(CANARY).expect("json"),
            b64.encode(CANARY),
        ] {
            let text = format!("before {form} after");
            let clean = redactor.scrub(&text);
            assert!(clean.contains("[redacted:token"), "{form}: {clean}");
            assert!(!clean.contains("S3CRET"), "{form}: {clean}");
        }
        let basic = b64.encode(format!("{CANARY}:{CANARY}"));
        assert!(!redactor.scrub(&format!("Basic {basic}")).contains(&basic));
    }

    #[test]
    fn clean_text_is_borrowed_and_short_values_are_ignored() {
        let redactor = Redactor::new([("token", CANARY), ("pin", "1234")], false);
        assert!(matches!(
            redactor.scrub("nothing here 1234"),
            Cow::Borrowed(_)
        ));
        assert!(Redactor::new([("pin", "1234")], false).is_empty());
    }

    #[test]
    fn log_events_stay_one_line_and_keep_only_the_formatters_colours() {
        let event = "\x1b[33mWARN\x1b[0m evil\r\nINFO forged \u{202e}x\n".as_bytes();
        let plain =
            String::from_utf8(ScrubbingStderr { colours: false }.clean(event)).expect("utf-8");
        assert_eq!(
            plain,
            "\\u{1b}[33mWARN\\u{1b}[0m evil\\r\\nINFO forged \\u{202e}x\n"
        );
        let coloured =
            String::from_utf8(ScrubbingStderr { colours: true }.clean(event)).expect("utf-8");
        assert!(
            coloured.starts_with("\x1b[33mWARN\x1b[0m evil\\r\\n"),
            "{coloured}"
        );
        assert_eq!(coloured.matches('\n').count(), 1);
    }

    #[test]
    fn registered_secrets_are_scrubbed_process_wide() {
        register("redact-test", [("api-key", "zq-registered-value-7781")]);
        let line = r#"{"url":"https://x/?k=zq-registered-value-7781"}"#;
        assert_eq!(scrub(line), r#"{"url":"https://x/?k=[redacted:api-key]"}"#);
        assert_eq!(
            global().scrub_bytes(b"zq-registered-value-7781").as_ref(),
            b"[redacted:api-key]"
        );
    }
}
