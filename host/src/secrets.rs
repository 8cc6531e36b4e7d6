//! Host-side secret storage. Secrets come from the environment or files named in the
//! config, live in `secrecy` types, and are exposed only to the code that injects them
//! into a request or to a `reveal` the app's config explicitly grants.
//!
//! Must never: log, audit, serialise or `Debug`-print a secret value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::{Arc, OnceLock};

use secrecy::{ExposeSecret, SecretString};

use crate::redact::Redactor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a secret's value comes from.
#[derive(Clone)]
pub enum SecretSource {
    /// `env:NAME`: read from an environment variable when the app is loaded.
    Env(String),
    /// `file:PATH`: read from a file (trailing newline trimmed) when the app is loaded.
    File(PathBuf),
    /// A value handed over by code (tests, the demo); never parsed from a config file.
    Value(SecretString),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
            SecretSource::Value(_) => f.write_str("value:[redacted]"),
        }
    }
}

impl SecretSource {
    pub fn parse(text: &str) -> Result<SecretSource, String> {
        if let Some(name) = text.strip_prefix("env:").filter(|n| !n.is_empty()) {
            Ok(SecretSource::Env(name.to_owned()))
        } else if let Some(path) = text.strip_prefix("file:").filter(|p| !p.is_empty()) {
            Ok(SecretSource::File(PathBuf::from(path)))
        } else {
            Err(format!(
                "`{}` is not a secret source; write `env:VARIABLE` or `file:/path/to/secret` (values are never written into the config)",
                redact_hint(text)
            ))
        }
    }

    pub(crate) fn resolve_relative(&mut self, base_dir: &Path) {
        if let SecretSource::File(path) = self
            && path.is_relative()
        {
            *path = base_dir.join(&*path);
        }
    }

    /// Reads the value now.
    pub fn load(&self) -> Result<SecretString, String> {
        match self {
            SecretSource::Env(name) => std::env::var(name).map(SecretString::from).map_err(|_| {
                format!("environment variable {name} is not set; export it or change the source")
            }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|v| SecretString::from(v.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| {
                    format!(
                        "cannot read secret file {}: {e}; create it or change the source",
                        path.display()
                    )
                }),
            SecretSource::Value(value) => Ok(value.clone()),
        }
    }
}

/// Someone may paste a token where a source belongs: show only its start.
fn redact_hint(text: &str) -> String {
    let shown: String = text.chars().take(4).collect();
    if text.chars().count() > 4 {
        format!("{shown}…")
    } else {
        shown
    }
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SecretSource::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecretSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{self:?}"))
    }
}

/// The resolved secrets of one application instance.
#[derive(Default, Clone)]
pub struct SecretStore {
    values: BTreeMap<String, SecretString>,
    revealable: Vec<String>,
    /// The values the plugin may not reveal, in every form they take on the wire: scrubbed
    /// from the responses handed to the plugin, so an origin that reflects request headers
    /// cannot give it the injected credential.
    hidden: Arc<Redactor>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .field("revealable", &self.revealable)
            .finish()
    }
}

/// Why a plugin did not get a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefusal {
    #[error("secret `{0}` is not configured for this application")]
    NotConfigured(String),
    #[error(
        "secret `{0}` may not be read by the plugin: the application's `reveal` list does not include it"
    )]
    NotRevealable(String),
}

impl SecretStore {
    /// Loads every source; the first failure names the secret.
    pub fn load(
        sources: &BTreeMap<String, SecretSource>,
        revealable: &[String],
    ) -> Result<SecretStore, (String, String)> {
        let mut values = BTreeMap::new();
        for (name, source) in sources {
            let value = source.load().map_err(|problem| (name.clone(), problem))?;
            values.insert(name.clone(), value);
        }
        let hidden = Redactor::new(
            values
                .iter()
                .filter(|(name, _)| !revealable.contains(name))
                .map(|(name, value)| (name.as_str(), value.expose_secret())),
            true,
        );
        Ok(SecretStore {
            values,
            revealable: revealable.to_vec(),
            hidden: Arc::new(hidden),
        })
    }

    /// Scrubs the secrets this plugin may not reveal from what it is about to receive.
    pub(crate) fn hidden_from_plugin(&self) -> &Redactor {
        &self.hidden
    }

    pub fn is_configured(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// For the host's own use (auth injection): never hand this to a guest.
    pub(crate) fn expose_for_injection(&self, name: &str) -> Result<&str, SecretRefusal> {
        self.values
            .get(name)
            .map(|v| v.expose_secret())
            .ok_or_else(|| SecretRefusal::NotConfigured(name.to_owned()))
    }

    /// The value for a guest, only where the config granted `reveal`.
    pub(crate) fn reveal(&self, name: &str) -> Result<String, SecretRefusal> {
        let value = self
            .values
            .get(name)
            .ok_or_else(|| SecretRefusal::NotConfigured(name.to_owned()))?;
        if !self.revealable.iter().any(|r| r == name) {
            return Err(SecretRefusal::NotRevealable(name.to_owned()));
        }
        Ok(value.expose_secret().to_owned())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn revealable(&self) -> &[String] {
        &self.revealable
    }
}

/// One app's secrets, loaded when the app is first used rather than when the config
/// loads: an app whose secret is missing fails alone, naming the secret, and every other
/// app keeps working. A failed load is not remembered, so a secret file that appears later
/// (a long-running service) is picked up by the next call.
#[derive(Debug)]
pub struct AppSecrets {
    app: String,
    sources: BTreeMap<String, SecretSource>,
    revealable: Vec<String>,
    loaded: OnceLock<Arc<SecretStore>>,
}

/// Why an app's secrets could not be loaded; names the config field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("apps.{app}.secrets.{secret}: {problem}")]
pub struct SecretProblem {
    pub app: String,
    pub secret: String,
    pub problem: String,
}

impl AppSecrets {
    pub fn new(
        app: &str,
        sources: &BTreeMap<String, SecretSource>,
        revealable: &[String],
    ) -> AppSecrets {
        AppSecrets {
            app: app.to_owned(),
            sources: sources.clone(),
            revealable: revealable.to_vec(),
            loaded: OnceLock::new(),
        }
    }

    /// Whether the config names this secret (no value is read).
    pub fn is_configured(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }

    /// The values, read from their sources on first use and registered with the
    /// process-wide redactor before anything can use them.
    pub fn load(&self) -> Result<&Arc<SecretStore>, SecretProblem> {
        if let Some(store) = self.loaded.get() {
            return Ok(store);
        }
        let store =
            SecretStore::load(&self.sources, &self.revealable).map_err(|(secret, problem)| {
                SecretProblem {
                    app: self.app.clone(),
                    secret,
                    problem,
                }
            })?;
        crate::redact::register(
            &self.app,
            store
                .values
                .iter()
                .map(|(name, value)| (name.as_str(), value.expose_secret())),
        );
        Ok(self.loaded.get_or_init(|| Arc::new(store)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_refused_without_echoing_them() {
        let err = SecretSource::parse("ghp_abcdefghijkl").expect_err("literal must fail");
        assert!(err.contains("env:VARIABLE"), "{err}");
        assert!(!err.contains("abcdefghijkl"), "{err}");
    }

    #[test]
    fn reveal_needs_a_grant() {
        let mut sources = BTreeMap::new();
        sources.insert("token".to_owned(), SecretSource::Value("s3cret".into()));
        sources.insert("api-key".to_owned(), SecretSource::Value("k3y".into()));
        let store = SecretStore::load(&sources, &["api-key".to_owned()]).expect("loads");
        assert_eq!(
            store.reveal("token"),
            Err(SecretRefusal::NotRevealable("token".into()))
        );
        assert_eq!(store.reveal("api-key").as_deref(), Ok("k3y"));
        assert_eq!(
            store.reveal("nope"),
            Err(SecretRefusal::NotConfigured("nope".into()))
        );
        assert!(!format!("{store:?}").contains("s3cret"));
    }

    #[test]
    fn file_secrets_drop_the_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").expect("write");
        let value = SecretSource::File(path).load().expect("loads");
        assert_eq!(value.expose_secret(), "abc");
    }
}
