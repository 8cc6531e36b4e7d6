//! Who may vouch for a plugin: the `[plugins]` trust config and the verdict on one plugin
//! file for one app.
//!
//! Rules, in order (deny by default once `require_signed` is on):
//! 1. A signature that does not hold for the file (a changed byte, forged, unreadable)
//!    refuses the file, signing required or not: it is what tampering looks like.
//! 2. A signature by a revoked key refuses the file.
//! 3. A valid signature by a key trusted for the app (a publisher listing the app or no
//!    apps, not expired; the project key for any app unless turned off) makes the signer
//!    trusted.
//! 4. Otherwise, with `require_signed` the file is refused, naming why none counted
//!    (unsigned, unknown key, expired, not trusted for this app); without it the file
//!    loads and its signer is shown as it is (unsigned, or signed by a key not trusted).

use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::keys::{key_id, parse_public_key};
use crate::signing::Checked;

/// The key the bundled plugins are signed with at build time (`host/build.rs`); release
/// builds set `PORTCULLIS_BUNDLE_SIGNING_KEY` to the project's key file.
pub const PROJECT_KEY: &str = env!("PORTCULLIS_PROJECT_KEY");
/// How the project key is named in verdicts.
pub const PROJECT_PUBLISHER: &str = "Portcullis project (bundled plugins)";

/// `[plugins]`: whether signatures are required, and whose count.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Refuse every plugin without a valid signature by a key trusted for its app.
    #[serde(default)]
    pub require_signed: bool,
    #[serde(default)]
    pub trust: TrustConfig,
}

/// `[plugins.trust]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// `[[plugins.trust.publisher]]`: keys that may sign plugins.
    #[serde(default, rename = "publisher")]
    pub publishers: Vec<PublisherConfig>,
    /// Keys whose signatures refuse a file, whoever listed them.
    #[serde(default)]
    pub revoked: Vec<String>,
    /// Trust the project key the bundled plugins are signed with.
    #[serde(default = "yes")]
    pub project_key: bool,
}

fn yes() -> bool {
    true
}

impl Default for TrustConfig {
    fn default() -> TrustConfig {
        TrustConfig {
            publishers: Vec::new(),
            revoked: Vec::new(),
            project_key: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherConfig {
    /// Who holds the key ("Acme Corp plugins team").
    pub name: String,
    /// `ed25519:<hex>`, or a file holding it.
    pub key: String,
    /// Apps whose plugins this key may sign; empty: any app.
    #[serde(default)]
    pub apps: Vec<String>,
    /// After this date (`2027-06-30` or an RFC 3339 time) the key vouches for nothing.
    #[serde(default)]
    pub expires: Option<String>,
}

/// A trusted key, parsed.
#[derive(Debug, Clone)]
struct Publisher {
    name: String,
    key: VerifyingKey,
    apps: Vec<String>,
    expires: Option<DateTime<Utc>>,
}

/// The trust config, parsed and checked.
#[derive(Debug, Clone)]
pub struct Trust {
    require_signed: bool,
    publishers: Vec<Publisher>,
    revoked: Vec<VerifyingKey>,
}

/// Who vouches for a plugin an app loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Signer {
    Unsigned,
    /// Signed by a key the trust config lists for this app.
    Trusted {
        publisher: String,
        key: String,
    },
    /// Signed validly, by a key the trust config does not list for this app (only when
    /// signatures are not required).
    NotTrusted {
        key: String,
    },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Unsigned => f.write_str("unsigned"),
            Signer::Trusted { publisher, key } => write!(f, "{publisher} ({key})"),
            Signer::NotTrusted { key } => {
                write!(
                    f,
                    "{key} (a valid signature; the key is not in [plugins.trust])"
                )
            }
        }
    }
}

/// Why a plugin file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} is refused: {reason}")]
pub struct Refusal {
    pub origin: String,
    /// The key the refusal is about, if one.
    pub key: Option<String>,
    pub reason: String,
}

/// Parses an expiry: a date (the key stops at its start, UTC) or an RFC 3339 time.
fn parse_expiry(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| format!("`{text}` is not a date (2027-06-30) nor an RFC 3339 time"))
}

/// Whether a configured key is a file to read rather than the key itself.
fn is_key_file(given: &str) -> bool {
    let inline = given.strip_prefix("ed25519:").unwrap_or(given);
    !(inline.len() == 64 && inline.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl PluginsConfig {
    /// Key files named relative to the config are read from beside it.
    pub fn resolve_relative(&mut self, base_dir: &std::path::Path) {
        let keys = self
            .trust
            .publishers
            .iter_mut()
            .map(|p| &mut p.key)
            .chain(self.trust.revoked.iter_mut());
        for key in keys {
            if is_key_file(key) && std::path::Path::new(key.as_str()).is_relative() {
                *key = base_dir.join(key.as_str()).display().to_string();
            }
        }
    }

    /// The first problem with the trust config, as (field, problem); `apps` are the
    /// configured app names.
    pub fn problems<'a>(
        &self,
        apps: impl Iterator<Item = &'a String> + Clone,
    ) -> Option<(String, String)> {
        self.trust(apps).err()
    }

    /// The trust config, parsed; errors as (field, problem).
    pub fn trust<'a>(
        &self,
        apps: impl Iterator<Item = &'a String> + Clone,
    ) -> Result<Trust, (String, String)> {
        let mut publishers = Vec::new();
        if self.trust.project_key {
            publishers.push(Publisher {
                name: PROJECT_PUBLISHER.to_owned(),
                key: parse_public_key(PROJECT_KEY).expect("build.rs embeds a valid project key"),
                apps: Vec::new(),
                expires: None,
            });
        }
        for (i, publisher) in self.trust.publishers.iter().enumerate() {
            let field = |f: &str| format!("plugins.trust.publisher[{i}].{f}");
            if publisher.name.trim().is_empty() {
                return Err((field("name"), "is empty; name who holds the key".into()));
            }
            let key = parse_public_key(&publisher.key).map_err(|e| (field("key"), e))?;
            let expires = publisher
                .expires
                .as_deref()
                .map(parse_expiry)
                .transpose()
                .map_err(|e| (field("expires"), e))?;
            for app in &publisher.apps {
                if !apps.clone().any(|a| a == app) {
                    return Err((
                        field("apps"),
                        format!(
                            "names app `{app}`, which is not configured (configured: {})",
                            apps.clone().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            publishers.push(Publisher {
                name: publisher.name.clone(),
                key,
                apps: publisher.apps.clone(),
                expires,
            });
        }
        let revoked = self
            .trust
            .revoked
            .iter()
            .enumerate()
            .map(|(i, k)| {
                parse_public_key(k).map_err(|e| (format!("plugins.trust.revoked[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust {
            require_signed: self.require_signed,
            publishers,
            revoked,
        })
    }
}

/// What the trust config says about one key, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// The publisher entries that list it (name, and the apps it is limited to).
    pub publishers: Vec<String>,
    pub revoked: bool,
    /// When the first listing of it expired, if it has.
    pub expired: Option<String>,
}

impl Trust {
    /// Who the trust config says holds `key`.
    pub fn key_status(&self, key: &VerifyingKey, now: DateTime<Utc>) -> KeyStatus {
        let listed: Vec<&Publisher> = self.publishers.iter().filter(|p| &p.key == key).collect();
        KeyStatus {
            publishers: listed
                .iter()
                .map(|p| match p.apps.is_empty() {
                    true => p.name.clone(),
                    false => format!("{} (for {})", p.name, p.apps.join(", ")),
                })
                .collect(),
            revoked: self.revoked.contains(key),
            expired: listed
                .iter()
                .filter_map(|p| p.expires.filter(|at| now >= *at))
                .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
                .next(),
        }
    }

    /// This trust, with signatures required whatever the config says (`--require-signed`).
    pub fn requiring_signatures(mut self) -> Trust {
        self.require_signed = true;
        self
    }

    /// Whether every plugin must carry a trusted signature.
    pub fn require_signed(&self) -> bool {
        self.require_signed
    }

    /// The verdict on a plugin file (`origin`, its checked signatures) for `app` at `now`.
    pub fn judge(
        &self,
        app: &str,
        origin: &str,
        signatures: &[Checked],
        now: DateTime<Utc>,
    ) -> Result<Signer, Refusal> {
        self.verdict(Some(app), origin, signatures, now)
    }

    /// [`Trust::judge`] for a file not bound to an app yet (`plugin pull` without
    /// `--app`): a publisher counts whatever apps it is listed for.
    pub fn judge_for_any_app(
        &self,
        origin: &str,
        signatures: &[Checked],
        now: DateTime<Utc>,
    ) -> Result<Signer, Refusal> {
        self.verdict(None, origin, signatures, now)
    }

    fn verdict(
        &self,
        app: Option<&str>,
        origin: &str,
        signatures: &[Checked],
        now: DateTime<Utc>,
    ) -> Result<Signer, Refusal> {
        let refuse = |key: Option<&VerifyingKey>, reason: String| Refusal {
            origin: origin.to_owned(),
            key: key.map(key_id),
            reason,
        };
        for checked in signatures {
            let named = checked.key.as_ref().map_or_else(
                || "an unreadable signature".to_owned(),
                |k| format!("the signature by {}", key_id(k)),
            );
            if let Some(problem) = &checked.problem {
                return Err(refuse(
                    checked.key.as_ref(),
                    format!(
                        "{named} does not hold: {problem}; get the file again from its publisher"
                    ),
                ));
            }
            if let Some(key) = &checked.key
                && self.revoked.contains(key)
            {
                return Err(refuse(
                    Some(key),
                    format!(
                        "it is signed by {}, which [plugins.trust] revoked; ask the publisher for a build signed with their current key",
                        key_id(key)
                    ),
                ));
            }
        }
        let keys: Vec<&VerifyingKey> = signatures.iter().filter_map(|c| c.key.as_ref()).collect();
        let mut why_not = Vec::new();
        for key in &keys {
            for publisher in self.publishers.iter().filter(|p| &&p.key == key) {
                if let Some(app) = app
                    && !publisher.apps.is_empty()
                    && !publisher.apps.iter().any(|a| a == app)
                {
                    why_not.push(format!(
                        "{} ({}) is trusted only for {}",
                        key_id(key),
                        publisher.name,
                        publisher.apps.join(", ")
                    ));
                    continue;
                }
                if let Some(expires) = publisher.expires
                    && now >= expires
                {
                    why_not.push(format!(
                        "{} ({}) expired on {}",
                        key_id(key),
                        publisher.name,
                        expires.format("%Y-%m-%d %H:%M UTC")
                    ));
                    continue;
                }
                return Ok(Signer::Trusted {
                    publisher: publisher.name.clone(),
                    key: key_id(key),
                });
            }
        }
        if !self.require_signed {
            return Ok(match keys.first() {
                None => Signer::Unsigned,
                Some(key) => Signer::NotTrusted { key: key_id(key) },
            });
        }
        let first_key = keys.first().copied();
        let for_app = app.map(|a| format!(" for app `{a}`")).unwrap_or_default();
        let reason = match (keys.is_empty(), why_not.is_empty()) {
            (true, _) => format!(
                "it is not signed, and [plugins] require_signed is on; use a signed build from its publisher, or review it and sign it (`portcullis plugin sign FILE --key KEY`) with a key listed in [[plugins.trust.publisher]]{for_app}"
            ),
            (false, false) => format!("no signature counts{for_app}: {}", why_not.join("; ")),
            (false, true) => format!(
                "it is signed by {}, which [plugins.trust] does not list; if you trust that publisher, add the key under [[plugins.trust.publisher]]",
                keys.iter()
                    .map(|k| key_id(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Err(refuse(first_key, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Place;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> VerifyingKey {
        SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    fn valid(seed: u8) -> Checked {
        Checked {
            place: Place::Embedded,
            key: Some(key(seed)),
            problem: None,
        }
    }

    fn config(text: &str) -> PluginsConfig {
        toml::from_str(text).expect("config")
    }

    fn apps() -> Vec<String> {
        vec!["wiki".to_owned(), "github".to_owned()]
    }

    fn trust(text: &str) -> Trust {
        config(text).trust(apps().iter()).expect("trust")
    }

    fn now() -> DateTime<Utc> {
        "2027-01-15T00:00:00Z".parse().expect("time")
    }

    fn publisher(seed: u8, extra: &str) -> String {
        format!(
            "[[trust.publisher]]\nname = \"Acme\"\nkey = \"{}\"\n{extra}\n",
            key_id(&key(seed))
        )
    }

    #[test]
    fn with_signatures_required_only_a_listed_current_key_for_the_app_counts() {
        let required = format!(
            "require_signed = true\n{}",
            publisher(1, "apps = [\"wiki\"]")
        );
        let t = trust(&required);
        assert_eq!(
            t.judge("wiki", "w.wasm", &[valid(1)], now()),
            Ok(Signer::Trusted {
                publisher: "Acme".into(),
                key: key_id(&key(1))
            })
        );
        let unsigned = t.judge("wiki", "w.wasm", &[], now()).expect_err("unsigned");
        assert!(
            unsigned
                .to_string()
                .starts_with("w.wasm is refused: it is not signed"),
            "{unsigned}"
        );
        let unknown = t
            .judge("wiki", "w.wasm", &[valid(2)], now())
            .expect_err("unknown");
        assert!(unknown.reason.contains("does not list"), "{unknown}");
        assert_eq!(unknown.key, Some(key_id(&key(2))));
        let other_app = t
            .judge("github", "w.wasm", &[valid(1)], now())
            .expect_err("other app");
        assert!(
            other_app.reason.contains("trusted only for wiki"),
            "{other_app}"
        );

        let expiring = format!(
            "require_signed = true\n{}",
            publisher(1, "expires = \"2027-01-01\"")
        );
        let expired = trust(&expiring)
            .judge("wiki", "w.wasm", &[valid(1)], now())
            .expect_err("expired");
        assert!(
            expired.reason.contains("expired on 2027-01-01"),
            "{expired}"
        );
    }

    #[test]
    fn a_broken_or_revoked_signature_refuses_even_when_signatures_are_optional() {
        let revoking = format!(
            "{}\n[trust]\nrevoked = [\"{}\"]\n",
            publisher(1, ""),
            key_id(&key(3))
        );
        let t = trust(&revoking);
        let broken = Checked {
            problem: Some("the file changed since it was signed".into()),
            ..valid(1)
        };
        let refused = t
            .judge("wiki", "w.wasm", &[broken], now())
            .expect_err("broken");
        assert!(
            refused.reason.contains("changed since it was signed"),
            "{refused}"
        );
        let revoked = t
            .judge("wiki", "w.wasm", &[valid(1), valid(3)], now())
            .expect_err("revoked");
        assert!(revoked.reason.contains("revoked"), "{revoked}");
        assert_eq!(t.judge("wiki", "w.wasm", &[], now()), Ok(Signer::Unsigned));
        assert_eq!(
            t.judge("wiki", "w.wasm", &[valid(2)], now()),
            Ok(Signer::NotTrusted {
                key: key_id(&key(2))
            })
        );
    }

    #[test]
    fn the_project_key_vouches_unless_turned_off() {
        let project = crate::keys::parse_public_key(PROJECT_KEY).expect("project key");
        let signed = Checked {
            key: Some(project),
            ..valid(0)
        };
        let t = trust("require_signed = true");
        assert!(matches!(
            t.judge(
                "github",
                "bundled:github",
                std::slice::from_ref(&signed),
                now()
            ),
            Ok(Signer::Trusted { .. })
        ));
        let t = trust("require_signed = true\n[trust]\nproject_key = false");
        assert!(
            t.judge("github", "bundled:github", &[signed], now())
                .is_err()
        );
    }

    #[test]
    fn bad_trust_config_names_the_field() {
        let bad_key = config("[[trust.publisher]]\nname = \"x\"\nkey = \"ed25519:00\"");
        let (field, problem) = bad_key.problems(apps().iter()).expect("bad key");
        assert_eq!(field, "plugins.trust.publisher[0].key");
        assert!(problem.contains("64 hex digits"), "{problem}");
        let unknown_app = config(&publisher(1, "apps = [\"gitlab\"]"));
        let (field, problem) = unknown_app.problems(apps().iter()).expect("bad app");
        assert_eq!(field, "plugins.trust.publisher[0].apps");
        assert!(
            problem.contains("gitlab") && problem.contains("wiki"),
            "{problem}"
        );
        let bad_date = config(&publisher(1, "expires = \"soon\""));
        let (field, _) = bad_date.problems(apps().iter()).expect("bad date");
        assert_eq!(field, "plugins.trust.publisher[0].expires");
        let bad_revoked = config("[trust]\nrevoked = [\"nope\"]");
        let (field, _) = bad_revoked.problems(apps().iter()).expect("bad revoked");
        assert_eq!(field, "plugins.trust.revoked[0]");
    }
}
