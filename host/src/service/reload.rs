//! Hot-loading plugins: on `POST /v1/plugins/reload`, SIGHUP, or a change to a configured
//! plugin file (polled every second), each app whose file changed gets its new version
//! compiled, described and checked before it takes over:
//!
//! 1. The component compiles and targets this host's contract (as at start).
//! 2. Its `describe` keeps the contract's rules ([`crate::contract`]).
//! 3. It still offers every kind and level that the state's managed grants of that app
//!    hold, and the policy still validates against it: a version that would strand
//!    access Portcullis manages is refused.
//! 4. Upgrade review ([`crate::ops::upgrades`]): a version that widens what the plugin
//!    may do (new import, kind, level, signer) waits for `portcullis plugin accept`.
//!
//! A new detached signature (`FILE.sig`) beside unchanged bytes reloads too: who vouches
//! for the plugin changed.
//!
//! Then it is installed: calls that started on the old version finish on it. Every swap
//! and every refusal is audited with both sha256s; a swap also with the imports and the
//! kinds that changed. Bundled plugins change only with the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Service;
use crate::audit::AuditEvent;
use crate::plugin::sha256_hex;

/// What a reload did for one app.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Reloaded {
    /// The file has the bytes already serving.
    Unchanged { app: String, sha256: String },
    /// The new version serves new calls.
    Swapped {
        app: String,
        from_sha256: String,
        to_sha256: String,
        kinds_added: Vec<String>,
        kinds_removed: Vec<String>,
        swap_ms: f64,
    },
    /// The old version keeps serving; `reason` says why.
    Refused {
        app: String,
        sha256: String,
        reason: String,
    },
    /// The new version widens what the plugin may do (recorded and audited as held);
    /// the old version keeps serving until `portcullis plugin accept APP` and a reload.
    AwaitingAcceptance {
        app: String,
        sha256: String,
        widened: Vec<String>,
        reason: String,
    },
    /// A bundled plugin: it changes with the binary.
    Bundled { app: String },
}

/// Checks every configured plugin file and swaps in those that changed.
pub(super) async fn reload(service: &Service, requested_by: &str) -> Vec<Reloaded> {
    // One reload at a time: two would race to install over the same version.
    let _turn = service.reloading.lock().await;
    let mut outcomes = Vec::new();
    for (name, app) in &service.workspace.config.apps {
        if crate::bundled::get(&app.plugin).is_some() {
            outcomes.push(Reloaded::Bundled { app: name.clone() });
            continue;
        }
        outcomes.push(reload_app(service, name, Path::new(&app.plugin), requested_by).await);
    }
    outcomes
}

async fn reload_app(service: &Service, name: &str, path: &Path, requested_by: &str) -> Reloaded {
    let started = std::time::Instant::now();
    let host = &service.workspace.host;
    let refuse = |from: &str, to: &str, reason: String| {
        refused(service, name, path, from, to, reason, requested_by)
    };
    let Some(current) = host.app(name) else {
        return refuse("", "", "the app is not configured".into());
    };
    let from = current.plugin.sha256.clone();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return refuse(&from, "", format!("cannot read {}: {e}", path.display())),
    };
    let sha = sha256_hex(&bytes);
    let detached = std::fs::read(crate::plugin::detached_signature_path(path))
        .ok()
        .map(|text| sha256_hex(&text));
    if sha == from && detached == current.plugin.detached_sha256 {
        return Reloaded::Unchanged {
            app: name.to_owned(),
            sha256: sha,
        };
    }
    let plugin = match host.compile_plugin_file(name, path).await {
        Ok(plugin) => plugin,
        Err(e) => return refuse(&from, &sha, e),
    };
    let candidate = match host.prepare_swap(name, plugin).await {
        Ok(candidate) => candidate,
        Err(e) => return refuse(&from, &sha, e.to_string()),
    };
    if let Err(reason) = keeps_what_state_holds(service, name, &candidate.info).await {
        return refuse(&from, &sha, reason);
    }
    // Upgrade review: a version that widens what the plugin may do waits for an operator.
    let profile = crate::upgrade::Profile::of(candidate.app(), &candidate.info);
    let review = crate::ops::upgrades::review(
        service.workspace.store.as_ref(),
        host.audit_sink().as_ref(),
        candidate.app(),
        &profile,
    );
    match review {
        Err(e) => return refuse(&from, &sha, e.to_string()),
        Ok(crate::ops::upgrades::Review::Held {
            from: accepted,
            widened,
        }) => {
            let reason = crate::ops::upgrades::held_message(name, &sha, &accepted, &widened);
            tracing::warn!("{}", crate::untrusted::escape(&reason));
            return Reloaded::AwaitingAcceptance {
                app: name.to_owned(),
                sha256: sha,
                widened,
                reason,
            };
        }
        Ok(_) => {}
    }
    let old_info = host.connector_info(name).await.ok();
    let kinds = |info: Option<&crate::model::ConnectorInfo>| -> BTreeSet<String> {
        info.map(|i| i.kinds.iter().map(|k| k.name.clone()).collect())
            .unwrap_or_default()
    };
    let (before, after) = (kinds(old_info.as_ref()), kinds(Some(&candidate.info)));
    let imports = |list: &[String]| list.iter().cloned().collect::<BTreeSet<_>>();
    let (imports_before, imports_after) = (
        imports(&candidate.current().plugin.imports),
        imports(&candidate.plugin().imports),
    );
    let to = candidate.plugin().sha256.clone();
    if let Err(reason) = host.install(candidate) {
        return refuse(&from, &to, reason);
    }
    let difference =
        |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect::<Vec<_>>();
    let (kinds_added, kinds_removed) = (difference(&after, &before), difference(&before, &after));
    service.audit(
        format!("reload-{name}"),
        AuditEvent::PluginSwapped {
            origin: path.display().to_string(),
            from_sha256: from.clone(),
            to_sha256: to.clone(),
            imports_added: difference(&imports_after, &imports_before),
            imports_removed: difference(&imports_before, &imports_after),
            kinds_added: kinds_added.clone(),
            kinds_removed: kinds_removed.clone(),
            requested_by: requested_by.to_owned(),
        },
    );
    tracing::info!("plugin of {name} swapped: {from} -> {to}");
    Reloaded::Swapped {
        app: name.to_owned(),
        from_sha256: from,
        to_sha256: to,
        kinds_added,
        kinds_removed,
        swap_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

/// The new version must offer every kind and level the state's managed grants of this
/// app hold, and keep the policy valid.
async fn keeps_what_state_holds(
    service: &Service,
    app: &str,
    info: &crate::model::ConnectorInfo,
) -> Result<(), String> {
    let managed = service
        .workspace
        .store
        .managed()
        .map_err(|e| format!("cannot read the managed grants to check the new version: {e}"))?;
    let mut stranded: BTreeMap<String, usize> = BTreeMap::new();
    for grant in managed.iter().filter(|g| g.target.app == app) {
        let kind = info.kind(&grant.target.kind);
        let missing = match (kind, &grant.level) {
            (None, _) => Some(format!("kind `{}`", grant.target.kind)),
            (Some(kind), Some(level)) if !kind.levels.iter().any(|l| l == level) => {
                Some(format!("level `{level}` of kind `{}`", grant.target.kind))
            }
            _ => None,
        };
        if let Some(what) = missing {
            *stranded.entry(what).or_default() += 1;
        }
    }
    if !stranded.is_empty() {
        let list: Vec<String> = stranded
            .iter()
            .map(|(what, n)| format!("{what} ({n} managed grants)"))
            .collect();
        return Err(format!(
            "the new version no longer offers {}; revoke those grants first or keep them in the plugin",
            list.join(", ")
        ));
    }
    if let Some(path) = &service.workspace.config.policy.path {
        let policy = crate::policy::Policy::load(path).map_err(|e| e.to_string())?;
        let mut catalog = BTreeMap::new();
        for other in service.workspace.host.apps() {
            if other.name == app {
                catalog.insert(other.name.clone(), info.clone());
            } else if let Ok(info) = service.workspace.host.connector_info(&other.name).await {
                catalog.insert(other.name.clone(), info);
            }
        }
        policy
            .validate(&catalog)
            .map_err(|e| format!("the policy does not validate against the new version: {e}"))?;
    }
    Ok(())
}

fn refused(
    service: &Service,
    name: &str,
    path: &Path,
    from: &str,
    to: &str,
    reason: String,
    requested_by: &str,
) -> Reloaded {
    tracing::warn!(
        "new plugin for {name} refused, the old version keeps serving: {}",
        crate::untrusted::escape(&reason)
    );
    service.audit(
        format!("reload-{name}"),
        AuditEvent::PluginSwapRefused {
            origin: path.display().to_string(),
            from_sha256: from.to_owned(),
            to_sha256: to.to_owned(),
            reason: reason.clone(),
            requested_by: requested_by.to_owned(),
        },
    );
    Reloaded::Refused {
        app: name.to_owned(),
        sha256: to.to_owned(),
        reason,
    }
}

/// The configured plugin files, by app.
fn plugin_files(service: &Service) -> Vec<PathBuf> {
    service
        .workspace
        .config
        .apps
        .values()
        .filter(|app| crate::bundled::get(&app.plugin).is_none())
        .map(|app| PathBuf::from(&app.plugin))
        .collect()
}

/// A plugin file's stamp, with its detached signature's: a new `.sig` beside unchanged
/// bytes changes who vouches for them, so it reloads too.
fn stamps(path: &Path) -> [Option<(SystemTime, u64)>; 2] {
    [
        stamp(path),
        stamp(&crate::plugin::detached_signature_path(path)),
    ]
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches the plugin files (modification time and size, each second) and reloads when
/// one changed; SIGHUP reloads too. Ends with the service.
pub(super) async fn watch(service: Arc<Service>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let files = plugin_files(&service);
    let mut seen: Vec<_> = files.iter().map(|f| stamps(f)).collect();
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        let reason = tokio::select! {
            _ = stop.changed() => return,
            _ = hup => "SIGHUP",
            _ = tick.tick() => {
                let now: Vec<_> = files.iter().map(|f| stamps(f)).collect();
                if now == seen {
                    continue;
                }
                seen = now;
                "plugin file changed"
            }
        };
        let outcomes = reload(&service, reason).await;
        tracing::info!(
            "reload ({reason}): {}",
            serde_json::to_string(&outcomes).unwrap_or_default()
        );
    }
}
