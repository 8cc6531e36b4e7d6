//! Upgrade review where plugin versions start serving: every command that loads the apps
//! (when state exists), `portcullis serve` at start, and each hot-load swap. Each app's
//! version is compared with the one state says was accepted ([`crate::upgrade`]):
//! - none accepted yet: accepted on first use;
//! - the same sha256: nothing to do;
//! - it narrows or keeps: accepted, audited with both sha256s and what it dropped;
//! - it widens: recorded as pending, audited once, and refused until an operator runs
//!   `portcullis plugin accept APP` (recorded in state and audit with both sha256s).

use chrono::Utc;
use serde::Serialize;

use super::OpError;
use crate::app::App;
use crate::audit::{AuditEvent, AuditRecord, AuditSink};
use crate::host::Host;
use crate::state::{PluginStatus, PluginVersion, StateError, StateStore};
use crate::upgrade::{Difference, Profile, compare};

/// What review decided for one app's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "review", rename_all = "kebab-case")]
pub enum Review {
    /// The accepted version itself.
    Same,
    /// No version was accepted before: this one is, on first use.
    FirstUse,
    /// Accepted: it only narrowed or kept what the accepted version could do.
    Narrowed { from: String, narrowed: Vec<String> },
    /// Not taken: it widens; waits for `portcullis plugin accept`.
    Held { from: String, widened: Vec<String> },
}

fn audit(sink: &dyn AuditSink, app: &App, event: AuditEvent) -> Result<(), OpError> {
    sink.record(&AuditRecord {
        at: Utc::now(),
        call_id: format!("review-{}", app.name),
        app: app.name.clone(),
        plugin_sha256: app.plugin.sha256.clone(),
        event,
    })
    .map_err(|e| {
        OpError::Input(format!(
            "the plugin review of {} cannot be audited: {e}",
            app.name
        ))
    })
}

fn state(e: StateError) -> OpError {
    OpError::Input(format!("plugin review: {e}"))
}

fn profile_json(profile: &Profile) -> serde_json::Value {
    serde_json::to_value(profile).expect("a profile is plain data")
}

/// Reviews `app`'s version, whose `describe` gave `profile`, against state; records and
/// audits what it decided.
pub fn review(
    store: &dyn StateStore,
    sink: &dyn AuditSink,
    app: &App,
    profile: &Profile,
) -> Result<Review, OpError> {
    let sha = &app.plugin.sha256;
    let now = Utc::now();
    let accepted = store.accepted_plugin(&app.name).map_err(state)?;
    let version =
        |status, previous: Option<&str>, widened: &[String], by: Option<&str>| PluginVersion {
            app: app.name.clone(),
            sha256: sha.clone(),
            profile: profile_json(profile),
            status,
            previous: previous.map(str::to_owned),
            widened: widened.to_vec(),
            seen_at: now,
            decided_at: by.map(|_| now),
            decided_by: by.map(str::to_owned),
        };
    let Some(accepted) = accepted else {
        store
            .record_plugin_version(&version(
                PluginStatus::Accepted,
                None,
                &[],
                Some("first-use"),
            ))
            .map_err(state)?;
        audit(
            sink,
            app,
            AuditEvent::PluginAccepted {
                origin: app.plugin.origin.clone(),
                from_sha256: None,
                to_sha256: sha.clone(),
                by: "first-use".into(),
                widened: Vec::new(),
                narrowed: Vec::new(),
            },
        )?;
        return Ok(Review::FirstUse);
    };
    if &accepted.sha256 == sha {
        return Ok(Review::Same);
    }
    let before: Profile = serde_json::from_value(accepted.profile.clone()).map_err(|e| {
        OpError::Input(format!(
            "the accepted plugin of app {} in state is unreadable ({e}); accept the current one with `portcullis plugin accept {}`",
            app.name, app.name
        ))
    })?;
    let Difference { widened, narrowed } = compare(&before, profile);
    if widened.is_empty() {
        store
            .record_plugin_version(&version(
                PluginStatus::Accepted,
                Some(&accepted.sha256),
                &[],
                Some("narrows-or-keeps"),
            ))
            .map_err(state)?;
        audit(
            sink,
            app,
            AuditEvent::PluginAccepted {
                origin: app.plugin.origin.clone(),
                from_sha256: Some(accepted.sha256.clone()),
                to_sha256: sha.clone(),
                by: "narrows-or-keeps".into(),
                widened: Vec::new(),
                narrowed: narrowed.clone(),
            },
        )?;
        return Ok(Review::Narrowed {
            from: accepted.sha256,
            narrowed,
        });
    }
    // Held: recorded and audited once per (version, accepted version), however often it
    // is offered again.
    let known = store.plugin_version(&app.name, sha).map_err(state)?;
    let already_held = known.is_some_and(|k| {
        k.status == PluginStatus::Pending && k.previous.as_deref() == Some(&accepted.sha256)
    });
    if !already_held {
        store
            .record_plugin_version(&version(
                PluginStatus::Pending,
                Some(&accepted.sha256),
                &widened,
                None,
            ))
            .map_err(state)?;
        audit(
            sink,
            app,
            AuditEvent::PluginUpgradeHeld {
                origin: app.plugin.origin.clone(),
                from_sha256: accepted.sha256.clone(),
                to_sha256: sha.clone(),
                widened: widened.clone(),
            },
        )?;
    }
    Ok(Review::Held {
        from: accepted.sha256,
        widened,
    })
}

/// Why a held version does not serve, and what to do.
pub fn held_message(app: &str, sha256: &str, from: &str, widened: &[String]) -> String {
    format!(
        "app `{app}`: its plugin changed ({} → {}) and widens what it may do: {}; review it (`portcullis plugin inspect {app}`) and run `portcullis plugin accept {app}`, or restore the accepted file",
        short(from),
        short(sha256),
        widened.join("; ")
    )
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The profile of `app`'s current version; `None` when its `describe` fails (then the
/// app runs nothing, so there is nothing to review).
async fn current_profile(host: &Host, app: &App) -> Option<Profile> {
    let info = host.connector_info(&app.name).await.ok()?;
    Some(Profile::of(app, &info))
}

/// Reviews every app of `host`; refuses (naming each held app and what it adds) when any
/// version widens without acceptance.
pub async fn review_host(host: &Host, store: &dyn StateStore) -> Result<(), OpError> {
    let mut held = Vec::new();
    for app in host.apps() {
        let Some(profile) = current_profile(host, &app).await else {
            continue;
        };
        if let Review::Held { from, widened } =
            review(store, host.audit_sink().as_ref(), &app, &profile)?
        {
            held.push(held_message(&app.name, &app.plugin.sha256, &from, &widened));
        }
    }
    if held.is_empty() {
        Ok(())
    } else {
        Err(OpError::Input(held.join("\n")))
    }
}

/// What `plugin accept` recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub app: String,
    pub from_sha256: Option<String>,
    pub to_sha256: String,
    pub by: String,
    pub widened: Vec<String>,
    pub narrowed: Vec<String>,
}

/// `portcullis plugin accept APP`: the app's current plugin version becomes the accepted
/// one, recorded in state and audit with both sha256s and what it widened.
pub async fn accept(
    host: &Host,
    store: &dyn StateStore,
    app_name: &str,
    by: &str,
) -> Result<Accepted, OpError> {
    let app = host.app(app_name).ok_or_else(|| {
        OpError::Input(format!(
            "no app named `{app_name}` is configured (configured: {})",
            host.apps()
                .map(|a| a.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let info = host
        .connector_info(app_name)
        .await
        .map_err(|e| OpError::Input(format!("cannot describe the plugin of {app_name}: {e}")))?;
    let profile = Profile::of(&app, &info);
    let accepted = store.accepted_plugin(app_name).map_err(state)?;
    if accepted
        .as_ref()
        .is_some_and(|a| a.sha256 == app.plugin.sha256)
    {
        return Err(OpError::Input(format!(
            "the plugin of {app_name} ({}) is already the accepted version",
            short(&app.plugin.sha256)
        )));
    }
    let before = accepted
        .as_ref()
        .and_then(|a| serde_json::from_value::<Profile>(a.profile.clone()).ok());
    let Difference { widened, narrowed } = before
        .as_ref()
        .map(|b| compare(b, &profile))
        .unwrap_or_default();
    let now = Utc::now();
    store
        .record_plugin_version(&PluginVersion {
            app: app_name.to_owned(),
            sha256: app.plugin.sha256.clone(),
            profile: profile_json(&profile),
            status: PluginStatus::Accepted,
            previous: accepted.as_ref().map(|a| a.sha256.clone()),
            widened: widened.clone(),
            seen_at: now,
            decided_at: Some(now),
            decided_by: Some(by.to_owned()),
        })
        .map_err(state)?;
    audit(
        host.audit_sink().as_ref(),
        &app,
        AuditEvent::PluginAccepted {
            origin: app.plugin.origin.clone(),
            from_sha256: accepted.as_ref().map(|a| a.sha256.clone()),
            to_sha256: app.plugin.sha256.clone(),
            by: by.to_owned(),
            widened: widened.clone(),
            narrowed: narrowed.clone(),
        },
    )?;
    Ok(Accepted {
        app: app_name.to_owned(),
        from_sha256: accepted.map(|a| a.sha256),
        to_sha256: app.plugin.sha256.clone(),
        by: by.to_owned(),
        widened,
        narrowed,
    })
}
