//! Plugins as operators, vendors and security reviewers handle them: what a file, a
//! bundled plugin or a configured app's plugin is and may reach (`inspect`), who signed it
//! and whether that counts (`verify`), and making keys and signatures (`keygen`, `sign`).
//!
//! Inspection runs the plugin's `describe` in a fresh sandbox with no secrets and no
//! network (its origin is an address nothing may reach), and only when the trust config
//! would load the file: a file it refuses is reported, never run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use super::OpError;
use crate::app::Grants;
use crate::config::{AppConfig, Config};
use crate::host::Host;
use crate::keys::key_id;
use crate::limits::SandboxLimits;
use crate::model::ConnectorInfo;
use crate::plugin::{self, Inspection};
use crate::signing::Checked;
use crate::trust::{PluginsConfig, Refusal, Signer, Trust};

/// What `plugin inspect` and `plugin verify` are pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `.wasm` file.
    File(PathBuf),
    /// A plugin compiled into this binary (`github`).
    Bundled(String),
    /// A configured app: the plugin its config names, with what the config grants it.
    App(String),
}

impl Target {
    /// A path that exists is a file; otherwise a configured app's name, then a bundled
    /// plugin's name.
    pub fn resolve(config: Option<&Config>, given: &str) -> Result<Target, OpError> {
        if Path::new(given).is_file() {
            return Ok(Target::File(given.into()));
        }
        if config.is_some_and(|c| c.apps.contains_key(given)) {
            return Ok(Target::App(given.to_owned()));
        }
        if crate::bundled::get(given).is_some() {
            return Ok(Target::Bundled(given.to_owned()));
        }
        let apps = config
            .map(|c| c.apps.keys().cloned().collect::<Vec<_>>().join(", "))
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "none: no config was read".into());
        Err(OpError::Input(format!(
            "`{given}` is not a file, a configured app (configured: {apps}) or a bundled plugin ({})",
            crate::bundled::names().join(", ")
        )))
    }
}

/// One signature of a plugin, checked, with what the trust config says of its key.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    /// `embedded` (a section of the component) or `detached` (`FILE.sig`).
    pub place: &'static str,
    pub key: Option<String>,
    pub valid: bool,
    /// Why it does not hold.
    pub problem: Option<String>,
    /// Publisher entries of `[plugins.trust]` listing the key.
    pub publishers: Vec<String>,
    pub revoked: bool,
    pub expired: Option<String>,
}

/// The trust config's verdict for one app.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub app: String,
    pub require_signed: bool,
    /// Who vouches, when the file would load.
    pub signer: Option<Signer>,
    /// Why it would not load.
    pub refused: Option<String>,
}

/// Everything `plugin inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub target: String,
    pub plugin: Inspection,
    pub signatures: Vec<SignatureReport>,
    /// For the app it serves (or was asked about); none for a bare file.
    pub verdict: Option<Verdict>,
    /// What `describe` declares: kinds, their levels.
    pub connector: Option<ConnectorInfo>,
    /// Why `describe` was not run or failed.
    pub connector_problem: Option<String>,
    /// What the app's config grants it (origin, secrets, settings, limits).
    pub grants: Option<Grants>,
    /// The sandbox limits it runs under (the app's, or the config's defaults).
    pub limits: SandboxLimits,
}

/// The bytes, origin and detached signature a target names.
struct Loaded {
    origin: String,
    bytes: Vec<u8>,
    detached: Option<String>,
    /// What an app's config would say `plugin = ...` for it.
    reference: String,
}

fn load(config: Option<&Config>, target: &Target) -> Result<Loaded, OpError> {
    let reference = match target {
        Target::File(path) => path.display().to_string(),
        Target::Bundled(name) => name.clone(),
        Target::App(app) => config
            .and_then(|c| c.apps.get(app))
            .map(|a| a.plugin.clone())
            .ok_or_else(|| OpError::Input(format!("no app named `{app}` is configured")))?,
    };
    if let Some(bytes) = crate::bundled::get(&reference) {
        return Ok(Loaded {
            origin: format!("bundled:{reference}"),
            bytes: bytes.to_vec(),
            detached: None,
            reference,
        });
    }
    let path = Path::new(&reference);
    let bytes = std::fs::read(path).map_err(|e| {
        OpError::Input(format!(
            "plugin file {reference} cannot be read: {e}; check the path"
        ))
    })?;
    let detached = plugin::read_detached(path).map_err(OpError::input)?;
    Ok(Loaded {
        origin: reference.clone(),
        bytes,
        detached,
        reference,
    })
}

fn trust_of(config: Option<&Config>) -> Result<Trust, OpError> {
    let default = PluginsConfig::default();
    let plugins = config.map_or(&default, |c| &c.plugins);
    let no_apps = std::collections::BTreeMap::<String, AppConfig>::new();
    let apps = config.map_or(&no_apps, |c| &c.apps);
    plugins
        .trust(apps.keys())
        .map_err(|(field, problem)| OpError::Input(format!("{field} {problem}")))
}

fn signature_reports(trust: &Trust, signatures: &[Checked]) -> Vec<SignatureReport> {
    let now = Utc::now();
    signatures
        .iter()
        .map(|checked| {
            let status = checked.key.as_ref().map(|k| trust.key_status(k, now));
            SignatureReport {
                place: checked.place.as_str(),
                key: checked.key.as_ref().map(key_id),
                valid: checked.problem.is_none(),
                problem: checked.problem.clone(),
                publishers: status
                    .as_ref()
                    .map(|s| s.publishers.clone())
                    .unwrap_or_default(),
                revoked: status.as_ref().is_some_and(|s| s.revoked),
                expired: status.and_then(|s| s.expired),
            }
        })
        .collect()
}

fn verdict(trust: &Trust, app: &str, origin: &str, signatures: &[Checked]) -> Verdict {
    let judged = trust.judge(app, origin, signatures, Utc::now());
    Verdict {
        app: app.to_owned(),
        require_signed: trust.require_signed(),
        signer: judged.as_ref().ok().cloned(),
        refused: judged.err().map(|r: Refusal| r.reason),
    }
}

/// `plugin inspect TARGET [--app APP]`: `app` (or the target itself, when it is an app)
/// adds what that app's config grants and the trust verdict for it.
pub async fn inspect(
    config: Option<&Config>,
    target: &Target,
    app: Option<&str>,
) -> Result<PluginReport, OpError> {
    let app = match (target, app) {
        (Target::App(name), _) => Some(name.as_str()),
        (_, Some(name)) => {
            if !config.is_some_and(|c| c.apps.contains_key(name)) {
                return Err(OpError::Input(format!(
                    "no app named `{name}` is configured (configured: {})",
                    config
                        .map(|c| c.apps.keys().cloned().collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                )));
            }
            Some(name)
        }
        _ => None,
    };
    let loaded = load(config, target)?;
    let trust = trust_of(config)?;
    let cache = config
        .and_then(|c| c.runtime.cache_dir.clone())
        .or_else(crate::cache::CompileCache::default_dir);
    let runtime = crate::runtime::Runtime::new()
        .map_err(|e| OpError::Input(format!("cannot start the runtime: {e:#}")))?;
    let compile_cache = cache
        .as_deref()
        .and_then(|dir| crate::cache::CompileCache::new(dir).ok());
    let inspection = plugin::inspect_bytes(
        &runtime,
        compile_cache.as_ref(),
        &loaded.origin,
        &loaded.bytes,
        loaded.detached.as_deref(),
    )
    .map_err(OpError::input)?;
    let verdict = app.map(|app| verdict(&trust, app, &loaded.origin, &inspection.signatures));
    let signatures = signature_reports(&trust, &inspection.signatures);
    // A broken or revoked signature, or a refusal for the app: reported, never run.
    let refused = verdict
        .as_ref()
        .and_then(|v| v.refused.clone())
        .or_else(|| {
            signatures
                .iter()
                .find_map(|s| match (&s.problem, s.revoked) {
                    (Some(problem), _) => Some(problem.clone()),
                    (None, true) => Some(format!(
                        "signed by {}, which [plugins.trust] revoked",
                        s.key.as_deref().unwrap_or("")
                    )),
                    (None, false) => None,
                })
        });
    let limits = match (config, app) {
        (Some(c), Some(app)) => c.limits_for(&c.apps[app]),
        (Some(c), None) => c.limits.clone(),
        (None, _) => SandboxLimits::default(),
    };
    let (connector, connector_problem) = match (&inspection.incompatibility, refused) {
        (Some(reason), _) => (None, Some(format!("not run: it would not load ({reason})"))),
        (None, Some(reason)) => (None, Some(format!("not run: it is refused ({reason})"))),
        (None, None) => match describe(runtime, cache, &loaded.reference, &limits).await {
            Ok(info) => (Some(info), None),
            Err(problem) => (None, Some(problem)),
        },
    };
    Ok(PluginReport {
        target: match target {
            Target::File(p) => p.display().to_string(),
            Target::Bundled(n) | Target::App(n) => n.clone(),
        },
        signatures,
        plugin: inspection,
        verdict,
        connector,
        connector_problem,
        grants: match (config, app) {
            (Some(c), Some(app)) => Grants::from_config(c, app),
            _ => None,
        },
        limits,
    })
}

/// The plugin's `describe`, run alone: no secrets, no settings, and an origin on a
/// loopback port its network policy does not allow, so it can reach nothing.
async fn describe(
    runtime: crate::runtime::Runtime,
    cache: Option<PathBuf>,
    reference: &str,
    limits: &SandboxLimits,
) -> Result<ConnectorInfo, String> {
    const NAME: &str = "inspected";
    let app: AppConfig = toml::from_str(&format!(
        "plugin = {}\nbase_url = \"http://127.0.0.1:9\"\n",
        toml::Value::String(reference.to_owned())
    ))
    .map_err(|e| format!("cannot describe it: {e}"))?;
    let mut config = Config {
        limits: limits.clone(),
        ..Config::default()
    };
    config.runtime.cache_dir = cache;
    config.apps.insert(NAME.to_owned(), app);
    let host = Host::builder(config)
        .runtime(runtime)
        .audit(Arc::new(crate::audit::MemorySink::default()))
        .build()
        .map_err(|e| e.to_string())?;
    let info = host.connector_info(NAME).await.map_err(|e| e.to_string())?;
    Ok(info)
}

/// `plugin verify`: every signature checked, and the verdict for `app` if given.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub file: String,
    pub sha256: String,
    pub signatures: Vec<SignatureReport>,
    pub verdict: Option<Verdict>,
    /// Whether it passes: at least one valid signature (by `key` if one was asked for),
    /// none broken or revoked, and the app's verdict (if any) loads it.
    pub ok: bool,
    /// Why not, when not.
    pub problem: Option<String>,
}

pub fn verify(
    config: Option<&Config>,
    target: &Target,
    app: Option<&str>,
    key: Option<&str>,
) -> Result<VerifyReport, OpError> {
    let loaded = load(config, target)?;
    let trust = trust_of(config)?;
    let wanted = key
        .map(crate::keys::parse_public_key)
        .transpose()
        .map_err(OpError::Input)?;
    let (_, signatures) = crate::signing::check(&loaded.bytes, loaded.detached.as_deref())
        .map_err(|e| OpError::Input(format!("{}: {e}", loaded.origin)))?;
    let app = match target {
        Target::App(name) => Some(name.as_str()),
        _ => app,
    };
    let verdict = app.map(|app| verdict(&trust, app, &loaded.origin, &signatures));
    let reports = signature_reports(&trust, &signatures);
    let problem = if signatures.is_empty() {
        Some("it is not signed".to_owned())
    } else if let Some(bad) = reports.iter().find(|r| !r.valid) {
        Some(format!(
            "the signature by {} does not hold: {}",
            bad.key.as_deref().unwrap_or("an unknown key"),
            bad.problem.as_deref().unwrap_or("")
        ))
    } else if let Some(revoked) = reports.iter().find(|r| r.revoked) {
        Some(format!(
            "it is signed by {}, which [plugins.trust] revoked",
            revoked.key.as_deref().unwrap_or("")
        ))
    } else if let Some(wanted) = &wanted
        && !signatures.iter().any(|s| s.key.as_ref() == Some(wanted))
    {
        Some(format!("it is not signed by {}", key_id(wanted)))
    } else {
        verdict.as_ref().and_then(|v| v.refused.clone())
    };
    Ok(VerifyReport {
        file: loaded.origin,
        sha256: plugin::sha256_hex(&loaded.bytes),
        signatures: reports,
        verdict,
        ok: problem.is_none(),
        problem,
    })
}

/// What `plugin keygen` made.
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    pub secret: String,
    pub public: String,
    pub key: String,
}

/// `plugin keygen --out FILE`: a new secret key (owner-only; an existing file is never
/// overwritten) and `FILE.pub` with its public half.
pub fn keygen(out: &Path) -> Result<NewKey, OpError> {
    let key = crate::keys::create_secret(out, "the signing key").map_err(|e| match e {
        crate::keys::Created::Exists => OpError::Input(format!(
            "{} exists; keygen never overwrites a key: choose another --out, or remove it if it is no longer used",
            out.display()
        )),
        crate::keys::Created::Failed(e) => OpError::Input(e),
    })?;
    let public = key_id(&key.verifying_key());
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| OpError::Input(format!("cannot write {}: {e}", pub_path.display())))?;
    Ok(NewKey {
        secret: out.display().to_string(),
        public: pub_path.display().to_string(),
        key: public,
    })
}

/// What `plugin sign` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    pub file: String,
    pub key: String,
    /// What the signature covers: the file's sha256 without signature sections.
    pub content_sha256: String,
    /// The file's sha256 after signing (embedded) or unchanged (detached).
    pub sha256: String,
    /// Where the signature went: the file itself, or `FILE.sig`.
    pub written: String,
}

/// `plugin sign FILE --key K [--detached]`. The file must be a component (a core module
/// or a damaged file is refused before anything is written); the signed file replaces
/// the old one atomically (written beside it, synced, renamed), so a reader sees the old
/// file or the new one, never half of either.
pub fn sign(file: &Path, key_file: &Path, detached: bool) -> Result<Signed, OpError> {
    let key = crate::keys::load_secret(key_file, "the signing key").map_err(OpError::Input)?;
    let bytes = std::fs::read(file)
        .map_err(|e| OpError::Input(format!("cannot read {}: {e}", file.display())))?;
    plugin::check_component_header(&file.display().to_string(), &bytes).map_err(OpError::input)?;
    let shown = file.display().to_string();
    let bad = |e: String| OpError::Input(format!("{shown}: {e}"));
    let layout = crate::signing::layout(&bytes).map_err(bad)?;
    let (target, contents) = if detached {
        let text = crate::signing::sign_detached(&bytes, &key).map_err(bad)?;
        (plugin::detached_signature_path(file), text.into_bytes())
    } else {
        let signed = crate::signing::sign(&bytes, &key).map_err(bad)?;
        (file.to_owned(), signed)
    };
    crate::atomic::write(&target, &contents)
        .map_err(|e| OpError::Input(format!("cannot write {}: {e}", target.display())))?;
    let sha256 = if detached {
        plugin::sha256_hex(&bytes)
    } else {
        plugin::sha256_hex(&contents)
    };
    Ok(Signed {
        file: shown,
        key: key_id(&key.verifying_key()),
        content_sha256: hex::encode(layout.content),
        sha256,
        written: target.display().to_string(),
    })
}

/// `plugin pull REF`: fetched, verified and written to `out` (or `dir/NAME.wasm`); the
/// config's trust settings judge it (for `app` when given), `require_signed` on top.
pub async fn pull(
    config: Option<&Config>,
    registry: &crate::registry::Registry,
    reference: &str,
    dir: &Path,
    out: Option<&Path>,
    app: Option<&str>,
    require_signed: bool,
) -> Result<crate::registry::Pulled, OpError> {
    let mut trust = trust_of(config)?;
    if require_signed {
        trust = trust.requiring_signatures();
    }
    if let Some(app) = app
        && !config.is_some_and(|c| c.apps.contains_key(app))
    {
        return Err(OpError::Input(format!(
            "no app named `{app}` is configured; its trust settings decide whether the plugin is taken"
        )));
    }
    let destination = match out {
        Some(out) => out.to_owned(),
        None => crate::registry::default_destination(reference, dir).map_err(OpError::Input)?,
    };
    crate::registry::pull(registry, reference, &destination, &trust, app)
        .await
        .map_err(OpError::Input)
}

/// `plugin push FILE REF`.
pub async fn push(
    registry: &crate::registry::Registry,
    file: &Path,
    reference: &str,
) -> Result<crate::registry::Pushed, OpError> {
    let bytes = std::fs::read(file)
        .map_err(|e| OpError::Input(format!("cannot read {}: {e}", file.display())))?;
    crate::registry::push(registry, reference, bytes)
        .await
        .map_err(OpError::Input)
}
