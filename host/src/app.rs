//! A configured application instance: its plugin and everything that plugin may use.
//! Built once from config; shared read-only by every call to that app.

use std::collections::BTreeMap;
use std::sync::Arc;

use url::Url;

use crate::config::{Config, NetworkPolicy};
use crate::egress::Egress;
use crate::limits::SandboxLimits;
use crate::plugin::Plugin;
use crate::ratelimit::AppLimiter;
use crate::secrets::AppSecrets;

pub struct App {
    pub name: String,
    pub base_url: Url,
    pub settings: BTreeMap<String, String>,
    /// Loaded on first use; see [`AppSecrets`].
    pub secrets: Arc<AppSecrets>,
    pub network: NetworkPolicy,
    pub limits: SandboxLimits,
    pub plugin: Arc<Plugin>,
    /// Who vouches for the plugin, as the trust config judged it for this app.
    pub signer: crate::trust::Signer,
    pub(crate) egress: Arc<dyn Egress>,
    /// Rate limits and server-supplied waits for this app, shared by all its calls (the
    /// real egress waits on it before every request).
    pub limiter: Arc<AppLimiter>,
    /// The plugin's `describe`, asked once per app and kept (it cannot change while the
    /// same plugin bytes are loaded).
    pub(crate) info: tokio::sync::OnceCell<crate::model::ConnectorInfo>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("base_url", &self.base_url.as_str())
            .field("plugin", &self.plugin.origin)
            .finish_non_exhaustive()
    }
}

/// What a plugin serving this app may reach and read: `plugin inspect --app` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Grants {
    pub app: String,
    pub origin: String,
    pub network: NetworkPolicy,
    /// Secrets the host injects into requests on the plugin's behalf.
    pub injectable_secrets: Vec<String>,
    /// Secrets the plugin may read in plain text (audited).
    pub revealable_secrets: Vec<String>,
    pub settings: Vec<String>,
    pub limits: SandboxLimits,
}

impl Grants {
    /// Read from the config alone, so a security review needs no secrets or network.
    pub fn from_config(config: &Config, name: &str) -> Option<Grants> {
        let app = config.apps.get(name)?;
        Some(Grants {
            app: name.to_owned(),
            origin: app.base_url.origin().ascii_serialization(),
            network: app.network,
            injectable_secrets: app.secrets.keys().cloned().collect(),
            revealable_secrets: app.reveal.clone(),
            settings: app.settings.keys().cloned().collect(),
            limits: config.limits_for(app),
        })
    }
}
