//! Operator configuration: which application instances exist, which plugin serves each,
//! where its secrets come from, what its plugin may reach, and the sandbox limits.
//!
//! Parsing is strict (unknown keys are errors) and complete before anything runs: a
//! config that loads has every plugin path present. Secret values are read per app when
//! that app is first used (`secrets::AppSecrets`), so one app's missing secret does not
//! stop the others. Errors name the file, the field and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::limits::SandboxLimits;
use crate::ratelimit::RateLimitConfig;
use crate::secrets::SecretSource;

mod server;
pub use server::{
    AlertFormat, AlertSinkConfig, HrWebhookConfig, Role, ScheduleConfig, ServerConfig, TokenConfig,
};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Default sandbox limits for every application; each app may override fields.
    #[serde(default)]
    pub limits: SandboxLimits,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Retries, backoff and the blast-radius guard of `portcullis apply`.
    #[serde(default)]
    pub engine: crate::options::EngineOptions,
    /// Where Portcullis keeps state between runs (`plan`, `apply` from policy, approvals).
    #[serde(default)]
    pub state: StateConfig,
    /// The policy file `plan` and `apply` evaluate.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Who the people are: a directory export and HR events.
    #[serde(default)]
    pub people: PeopleConfig,
    /// `portcullis serve`: listen address, API tokens, HR webhook signing, schedules.
    #[serde(default)]
    pub server: ServerConfig,
    /// Which plugin signatures are required and whose keys count.
    #[serde(default)]
    pub plugins: crate::trust::PluginsConfig,
    /// The workers of a PostgreSQL state (`portcullis worker`).
    #[serde(default)]
    pub queue: QueueConfig,
    /// Application instances by name (`github-acme`).
    #[serde(default)]
    pub apps: BTreeMap<String, AppConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// SQLite database file, created on first use. Default: `portcullis.db` beside the
    /// config file (when `url` is not set).
    pub path: Option<PathBuf>,
    /// PostgreSQL instead of SQLite, for several hosts on one state:
    /// `postgres://user@host:port/db`, without a password (that is `password`). Plain TCP
    /// only: loopback or a trusted network.
    pub url: Option<String>,
    /// Where the PostgreSQL password comes from: `env:NAME` or `file:/path`.
    pub password: Option<SecretSource>,
}

impl StateConfig {
    /// Whether the state is there already: a PostgreSQL database always is (its operator
    /// made it), a SQLite file once a command created it.
    pub fn exists(&self) -> bool {
        self.url.is_some() || self.path.as_deref().is_some_and(Path::exists)
    }

    /// Reads the PostgreSQL password from its source, when one is configured.
    pub fn load_password(&self) -> Result<Option<secrecy::SecretString>, String> {
        self.password
            .as_ref()
            .map(|source| {
                source
                    .load()
                    .map_err(|e| format!("[state] password ({source:?}): {e}"))
            })
            .transpose()
    }
}

/// `[queue]`: how each worker of a PostgreSQL state works (see `crate::queue`). Ranges
/// are in `crate::ranges`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Actions one worker carries out at once.
    pub concurrency: u32,
    /// Seconds a claimed action stays a worker's without a heartbeat: a worker that dies
    /// loses its actions, and the scheduler if it ran it, within this.
    pub lease_s: u64,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            concurrency: 32,
            lease_s: 30,
        }
    }
}

impl QueueConfig {
    pub fn worker_options(&self) -> crate::queue::WorkerOptions {
        crate::queue::WorkerOptions {
            concurrency: self.concurrency.max(1) as usize,
            lease: std::time::Duration::from_secs(self.lease_s.max(2)),
            ..crate::queue::WorkerOptions::default()
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy file (TOML). `--policy` overrides it.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleConfig {
    /// Directory export (JSON). `--directory` overrides it.
    pub directory: Option<PathBuf>,
    /// HR events (JSON): hires, transfers, terminations with effective dates. Optional.
    pub events: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Where compiled plugins are cached between runs; none disables the cache.
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines audit file, appended to. None keeps audit events in tracing only.
    pub path: Option<PathBuf>,
    /// The ed25519 seed that signs checkpoints (created, owner-only, when missing).
    /// Default: `PATH.key` beside the trail.
    pub signing_key: Option<PathBuf>,
    /// A second place each signed checkpoint is appended to (another disk or host), so a
    /// trail cut short after its last checkpoint is still detected.
    pub checkpoints: Option<PathBuf>,
    /// A checkpoint after this many records.
    #[serde(default = "AuditConfig::default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// A checkpoint when records came and this many seconds passed since the last one.
    #[serde(default = "AuditConfig::default_checkpoint_interval_s")]
    pub checkpoint_interval_s: u64,
    /// Rotate to a new segment (`PATH.1`, `PATH.2`, ...) at this size; 0 never rotates.
    #[serde(default)]
    pub segment_mib: u64,
    /// Sync each action's intent to disk before its first write (group commit).
    #[serde(default = "AuditConfig::default_fsync")]
    pub fsync: bool,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            path: None,
            signing_key: None,
            checkpoints: None,
            checkpoint_every: AuditConfig::default_checkpoint_every(),
            checkpoint_interval_s: AuditConfig::default_checkpoint_interval_s(),
            segment_mib: 0,
            fsync: AuditConfig::default_fsync(),
        }
    }
}

impl AuditConfig {
    fn default_checkpoint_every() -> u64 {
        1000
    }

    fn default_checkpoint_interval_s() -> u64 {
        60
    }

    fn default_fsync() -> bool {
        true
    }

    /// How the file sink writes this trail.
    pub fn trail_options(&self) -> crate::audit::TrailOptions {
        crate::audit::TrailOptions {
            signing_key: self.signing_key.clone(),
            witness: self.checkpoints.clone(),
            checkpoint_every: self.checkpoint_every,
            checkpoint_interval: std::time::Duration::from_secs(self.checkpoint_interval_s),
            segment_bytes: (self.segment_mib > 0).then(|| self.segment_mib * 1024 * 1024),
            fsync: self.fsync,
        }
    }
}

/// One application instance: a plugin plus everything it is allowed to use.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// A bundled plugin name (`github`) or a path to a `.wasm` component.
    pub plugin: String,
    /// The only origin (scheme, host, port) the plugin may send requests to.
    pub base_url: Url,
    /// Secret name => source (`env:NAME` or `file:PATH`).
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Secret names whose raw value the plugin may read through `secrets.reveal`. Empty by
    /// default: secrets are injected into requests by the host and never enter the guest.
    #[serde(default)]
    pub reveal: Vec<String>,
    /// Non-secret settings handed to the plugin through `config.get`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub network: NetworkPolicy,
    /// Per-application overrides of the default limits.
    #[serde(default)]
    pub limits: Option<SandboxLimitsOverride>,
    /// Request rates and concurrency for this app; none configured means no rate limit
    /// (servers' Retry-After and reset headers are honoured regardless).
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Subjects that are the app's own automation (the bot or service account the
    /// credentials act as): `drift` does not list their grants as unmanaged.
    #[serde(default)]
    pub ignore_subjects: Vec<String>,
}

/// Which address ranges the host may connect to for this application. Public addresses
/// are always allowed (the origin check already restricts the host name); everything else
/// is refused unless the operator opts in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// 127.0.0.0/8 and ::1: simulators and tests.
    #[serde(default)]
    pub allow_loopback: bool,
    /// RFC 1918, unique-local, CGNAT: self-hosted applications on a private network.
    #[serde(default)]
    pub allow_private: bool,
    /// 169.254/16 and fe80::/10, home of cloud metadata services. Almost never wanted.
    #[serde(default)]
    pub allow_link_local: bool,
}

/// Same fields as [`SandboxLimits`], all optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxLimitsOverride {
    pub memory_mib: Option<u32>,
    pub cpu_ms: Option<u64>,
    pub wall_ms: Option<u64>,
    pub host_calls: Option<u32>,
    pub log_lines: Option<u32>,
    pub log_bytes: Option<u32>,
    pub http_connect_timeout_ms: Option<u64>,
    pub http_timeout_ms: Option<u64>,
    pub http_max_response_bytes: Option<u64>,
    pub list_max_pages: Option<u32>,
    pub list_wall_ms: Option<u64>,
}

impl SandboxLimitsOverride {
    pub fn apply(&self, base: &SandboxLimits) -> SandboxLimits {
        SandboxLimits {
            memory_mib: self.memory_mib.unwrap_or(base.memory_mib),
            cpu_ms: self.cpu_ms.unwrap_or(base.cpu_ms),
            wall_ms: self.wall_ms.unwrap_or(base.wall_ms),
            host_calls: self.host_calls.unwrap_or(base.host_calls),
            log_lines: self.log_lines.unwrap_or(base.log_lines),
            log_bytes: self.log_bytes.unwrap_or(base.log_bytes),
            http_connect_timeout_ms: self
                .http_connect_timeout_ms
                .unwrap_or(base.http_connect_timeout_ms),
            http_timeout_ms: self.http_timeout_ms.unwrap_or(base.http_timeout_ms),
            http_max_response_bytes: self
                .http_max_response_bytes
                .unwrap_or(base.http_max_response_bytes),
            list_max_pages: self.list_max_pages.unwrap_or(base.list_max_pages),
            list_wall_ms: self.list_wall_ms.unwrap_or(base.list_wall_ms),
        }
    }
}

/// A configuration problem, always naming where it is and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the path passed with --config")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
    /// Numeric settings outside their range (`crate::ranges`), every one at once.
    #[error("{}", crate::ranges::render(.path, .problems))]
    OutOfRange {
        path: PathBuf,
        problems: Vec<crate::ranges::RangeProblem>,
    },
}

impl Config {
    /// Reads and validates a config file. Relative paths inside it (plugins, secret files,
    /// cache and audit paths) are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base_dir)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: describe_toml_error(&e),
        })?;
        config.resolve_relative_paths(base_dir);
        config.validate(origin)?;
        Ok(config)
    }

    fn resolve_relative_paths(&mut self, base_dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        };
        if let Some(dir) = self.runtime.cache_dir.as_mut() {
            resolve(dir);
        }
        for file in [
            self.audit.path.as_mut(),
            self.audit.signing_key.as_mut(),
            self.audit.checkpoints.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            resolve(file);
        }
        if self.state.url.is_none() {
            let state = self
                .state
                .path
                .get_or_insert_with(|| "portcullis.db".into());
            resolve(state);
        } else if let Some(state) = self.state.path.as_mut() {
            resolve(state);
        }
        if let Some(source) = self.state.password.as_mut() {
            source.resolve_relative(base_dir);
        }
        for file in [
            self.policy.path.as_mut(),
            self.people.directory.as_mut(),
            self.people.events.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            resolve(file);
        }
        self.server.resolve_relative(base_dir);
        self.plugins.resolve_relative(base_dir);
        for app in self.apps.values_mut() {
            if looks_like_path(&app.plugin) && Path::new(&app.plugin).is_relative() {
                app.plugin = base_dir.join(&app.plugin).display().to_string();
            }
            for source in app.secrets.values_mut() {
                source.resolve_relative(base_dir);
            }
        }
    }

    /// Checks everything that can be checked without running a plugin.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, problem: String| ConfigError::Invalid {
            path: origin.to_owned(),
            field,
            problem,
        };
        let problems = crate::ranges::check(self);
        if !problems.is_empty() {
            return Err(ConfigError::OutOfRange {
                path: origin.to_owned(),
                problems,
            });
        }
        if let Some(url) = &self.state.url {
            if self.state.path.is_some() {
                return Err(invalid(
                    "state".into(),
                    "state.path (a SQLite file) and state.url (PostgreSQL) are both set: keep one"
                        .into(),
                ));
            }
            crate::state::pg::check_url(url)
                .map_err(|problem| invalid("state.url".into(), problem))?;
        } else if self.state.password.is_some() {
            return Err(invalid(
                "state.password".into(),
                "is the PostgreSQL password, used only with state.url: set url or remove it".into(),
            ));
        }
        if let Some((field, problem)) = self.server.problems().into_iter().next() {
            return Err(invalid(field, problem));
        }
        if let Some((field, problem)) = self.plugins.problems(self.apps.keys()) {
            return Err(invalid(field, problem));
        }
        for (name, app) in &self.apps {
            let field = |f: &str| format!("apps.{name}.{f}");
            if !matches!(app.base_url.scheme(), "https" | "http") {
                return Err(invalid(
                    field("base_url"),
                    format!(
                        "scheme `{}` is not supported; use an https:// URL",
                        app.base_url.scheme()
                    ),
                ));
            }
            if app.base_url.host_str().is_none() {
                return Err(invalid(
                    field("base_url"),
                    "has no host; write it like https://api.github.com".into(),
                ));
            }
            if !app.base_url.username().is_empty() || app.base_url.password().is_some() {
                return Err(invalid(
                    field("base_url"),
                    "must not carry credentials; put them in `secrets`".into(),
                ));
            }
            if looks_like_path(&app.plugin) && !Path::new(&app.plugin).is_file() {
                return Err(invalid(
                    field("plugin"),
                    format!(
                        "plugin file {} does not exist; build the plugin or fix the path (bundled plugins: {})",
                        app.plugin,
                        crate::bundled::names().join(", ")
                    ),
                ));
            }
            if !looks_like_path(&app.plugin) && crate::bundled::get(&app.plugin).is_none() {
                return Err(invalid(
                    field("plugin"),
                    format!(
                        "`{}` is neither a bundled plugin ({}) nor a path to a .wasm file",
                        app.plugin,
                        crate::bundled::names().join(", ")
                    ),
                ));
            }
            for secret in &app.reveal {
                if !app.secrets.contains_key(secret) {
                    return Err(invalid(
                        field("reveal"),
                        format!(
                            "names secret `{secret}`, which is not in apps.{name}.secrets; add it there or remove it from reveal"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The effective limits for one app.
    pub fn limits_for(&self, app: &AppConfig) -> SandboxLimits {
        match &app.limits {
            Some(over) => over.apply(&self.limits),
            None => self.limits.clone(),
        }
    }
}

/// A plugin reference is a path when it names a file rather than a bundled plugin.
fn looks_like_path(plugin: &str) -> bool {
    plugin.ends_with(".wasm") || plugin.contains('/') || plugin.contains('\\')
}

/// toml's messages already carry line, column and the offending key; keep them whole and
/// add the list of accepted keys where serde gave one.
fn describe_toml_error(e: &toml::de::Error) -> String {
    let mut message = e.to_string().trim_end().to_owned();
    if message.contains("unknown field") {
        message.push_str("\n(remove the key or fix its spelling; see README.md for the schema)");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("portcullis.toml"), Path::new("/tmp"))
    }

    // ---- [state] ----

    #[test]
    fn state_is_sqlite_beside_the_config_unless_a_url_is_set() {
        let config = parse("").expect("empty config");
        assert_eq!(
            config.state.path.as_deref(),
            Some(Path::new("/tmp/portcullis.db"))
        );
        assert_eq!(config.state.url, None);
        let config = parse(
            "[state]\nurl = \"postgres://portcullis@db.internal:5432/portcullis\"\npassword = \"file:pg-password\"\n",
        )
        .expect("PostgreSQL state");
        assert_eq!(config.state.path, None, "no SQLite default beside a url");
        assert!(config.state.exists(), "a database is always there");
        assert_eq!(
            format!("{:?}", config.state.password),
            "Some(file:/tmp/pg-password)",
            "resolved beside the config"
        );
    }

    #[test]
    fn state_path_and_url_together_are_refused_naming_both() {
        let err =
            parse("[state]\npath = \"state.db\"\nurl = \"postgres://p@h/db\"\n").expect_err("both");
        let text = err.to_string();
        assert!(
            text.contains("state.path") && text.contains("state.url"),
            "{text}"
        );
    }

    #[test]
    fn a_password_in_the_state_url_is_refused_without_repeating_it() {
        for url in [
            "postgres://portcullis:hunter2@db.internal/portcullis",
            "postgres://portcullis@db.internal/portcullis?password=hunter2",
        ] {
            let err = parse(&format!("[state]\nurl = \"{url}\"\n")).expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains("state.url") && text.contains("password = \"env:NAME\""),
                "{text}"
            );
            assert!(!text.contains("hunter2"), "{text}");
        }
        let err = parse("[state]\nurl = \"db.internal:5432\"\n").expect_err("not a URL");
        assert!(
            err.to_string().contains("is not a postgres:// URL"),
            "{err}"
        );
        let err = parse("[state]\npassword = \"env:PGPASSWORD\"\n").expect_err("no url");
        assert!(err.to_string().contains("state.password"), "{err}");
        let err = parse("[state]\nurl = \"postgres://p@h/db\"\npassword = \"hunter2\"\n")
            .expect_err("a value, not a source");
        assert!(err.to_string().contains("env:VARIABLE"), "{err}");
    }

    // ---- end [state] ----

    #[test]
    fn unknown_key_is_rejected_with_its_name_and_place() {
        let err = parse(
            "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\ntokn = 1\n",
        )
        .expect_err("unknown key must fail");
        let text = err.to_string();
        assert!(text.contains("portcullis.toml"), "{text}");
        assert!(text.contains("tokn"), "{text}");
        assert!(text.contains("line 4"), "{text}");
    }

    #[test]
    fn a_missing_secret_does_not_stop_the_config_from_loading() {
        // Secrets are read when their app is used; `Host` tests cover the refusal.
        let config = parse(
            "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\nsecrets = { token = \"env:PORTCULLIS_TEST_SURELY_UNSET\" }\n",
        )
        .expect("loads without reading the secret");
        assert!(config.apps["gh"].secrets.contains_key("token"));
    }

    #[test]
    fn missing_plugin_file_is_rejected() {
        let err = parse(
            "[apps.gh]\nplugin = \"plugins/nope.wasm\"\nbase_url = \"https://api.github.com\"\n",
        )
        .expect_err("missing plugin must fail");
        let text = err.to_string();
        assert!(text.contains("apps.gh.plugin"), "{text}");
        assert!(text.contains("/tmp/plugins/nope.wasm"), "{text}");
    }

    #[test]
    fn reveal_must_name_a_configured_secret() {
        let err = parse(
            "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\nreveal = [\"token\"]\n",
        )
        .expect_err("reveal of unknown secret must fail");
        assert!(err.to_string().contains("apps.gh.reveal"), "{err}");
    }

    #[test]
    fn per_app_limits_override_defaults() {
        let config = parse(
            "[limits]\ncpu_ms = 50\n[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\nlimits = { memory_mib = 8 }\n",
        )
        .expect("valid config");
        let limits = config.limits_for(&config.apps["gh"]);
        assert_eq!(limits.cpu_ms, 50);
        assert_eq!(limits.memory_mib, 8);
    }

    #[test]
    fn rate_limit_parses_and_rejects_unknown_keys_and_zeros() {
        let config = parse(
            "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\nrate_limit = { per_hour = 5000, burst = 100, concurrency = 10 }\n",
        )
        .expect("valid config");
        assert_eq!(
            config.apps["gh"].rate_limit,
            RateLimitConfig {
                per_hour: Some(5000),
                burst: Some(100),
                concurrency: Some(10),
                ..RateLimitConfig::default()
            }
        );
        let config = parse(
            "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\n[apps.gh.rate_limit]\nper_second = 2\nper_minute = 60\n",
        )
        .expect("valid config");
        assert_eq!(config.apps["gh"].rate_limit.per_second, Some(2));
        assert_eq!(config.apps["gh"].rate_limit.per_minute, Some(60));
        let config =
            parse("[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\n")
                .expect("valid config");
        assert_eq!(config.apps["gh"].rate_limit, RateLimitConfig::default());

        let err = parse(
            "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\nrate_limit = { per_hour = 5000, per_day = 1 }\n",
        )
        .expect_err("unknown key must fail");
        assert!(err.to_string().contains("per_day"), "{err}");
        let err = parse(
            "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\nrate_limit = { per_minute = 0 }\n",
        )
        .expect_err("zero must fail");
        assert!(
            err.to_string().contains("apps.gh.rate_limit.per_minute"),
            "{err}"
        );
    }

    #[test]
    fn non_http_base_url_is_rejected() {
        let err = parse("[apps.gh]\nplugin = \"github\"\nbase_url = \"ftp://example.com\"\n")
            .expect_err("ftp must fail");
        assert!(err.to_string().contains("apps.gh.base_url"), "{err}");
    }
}
