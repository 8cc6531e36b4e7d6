//! The library's front door: a [`Host`] built from a [`Config`] holds the configured
//! applications with their loaded plugins, and runs connector operations against them,
//! each in a fresh sandbox.
//!
//! Building a host does all the checking (secrets resolved, plugins loaded and checked
//! against the contract) before any call can run: a host that builds is ready.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::app::App;
use crate::audit::AuditSink;
use crate::bindings::guest;
use crate::cache::CompileCache;
use crate::config::{AppConfig, Config};
use crate::egress::{Egress, HttpEgress};
use crate::model::{
    Action, CheckReport, ConnectorInfo, Entitlement, Grant, GrantOutcome, GrantPage, GrantQuery,
    Observed, RevokeOutcome, Subject,
};
use crate::plugin::{Plugin, PluginError};
use crate::readback::{Checked, Verdict, grant_verdict, revoke_verdict};
use crate::runtime::Runtime;
use crate::sandbox::{self, Call, CallError, CallReport, CallState, GuestFuture, Operation};
use crate::secrets::SecretStore;
use wasmtime::Store;

/// Why a host could not be built. Each names the app and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("app `{app}`: {source}")]
    Plugin { app: String, source: PluginError },
    #[error("apps.{app}.secrets.{secret}: {problem}")]
    Secret {
        app: String,
        secret: String,
        problem: String,
    },
    #[error("app `{app}`: cannot build its HTTP client: {message}")]
    Http { app: String, message: String },
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error(
        "cannot use compile cache {path}: {source}; fix its permissions or set runtime.cache_dir"
    )]
    Cache {
        path: String,
        source: std::io::Error,
    },
}

pub struct Host {
    runtime: Runtime,
    audit: Arc<dyn AuditSink>,
    apps: BTreeMap<String, Arc<App>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Options for building a [`Host`] beyond what the config file says.
pub struct HostBuilder {
    config: Config,
    runtime: Option<Runtime>,
    audit: Option<Arc<dyn AuditSink>>,
    egress: HashMap<String, Arc<dyn Egress>>,
    cache: CacheChoice,
}

enum CacheChoice {
    FromConfig,
    Dir(std::path::PathBuf),
    Off,
}

impl HostBuilder {
    /// Shares one runtime (engine, epoch ticker, allocator pool) between hosts.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Sends audit events here instead of the sink the config names.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Replaces the outbound HTTP policy of one app (tests, embedders with their own
    /// network layer).
    pub fn egress(mut self, app: &str, egress: Arc<dyn Egress>) -> Self {
        self.egress.insert(app.to_owned(), egress);
        self
    }

    /// Caches compiled plugins in `dir`, whatever the config says.
    pub fn cache_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.cache = CacheChoice::Dir(dir.into());
        self
    }

    /// Compiles plugins in memory only.
    pub fn no_cache(mut self) -> Self {
        self.cache = CacheChoice::Off;
        self
    }

    pub fn build(self) -> Result<Host, HostError> {
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => Runtime::new().map_err(|e| HostError::Runtime(format!("{e:#}")))?,
        };
        let audit = match self.audit {
            Some(sink) => sink,
            None => crate::audit::configured_sink(self.config.audit.path.as_deref())?,
        };
        let cache_dir = match self.cache {
            CacheChoice::Off => None,
            CacheChoice::Dir(dir) => Some(dir),
            CacheChoice::FromConfig => self.config.runtime.cache_dir.clone(),
        };
        let cache = cache_dir
            .map(|dir| {
                CompileCache::new(&dir).map_err(|source| HostError::Cache {
                    path: dir.display().to_string(),
                    source,
                })
            })
            .transpose()?;

        // Apps that use the same plugin share one compiled, pre-linked copy.
        let mut plugins: HashMap<String, Arc<Plugin>> = HashMap::new();
        let mut apps = BTreeMap::new();
        for (name, app_config) in &self.config.apps {
            let plugin = match plugins.get(&app_config.plugin) {
                Some(plugin) => Arc::clone(plugin),
                None => {
                    let plugin =
                        Arc::new(load_plugin(&runtime, cache.as_ref(), app_config).map_err(
                            |source| HostError::Plugin {
                                app: name.clone(),
                                source,
                            },
                        )?);
                    plugins.insert(app_config.plugin.clone(), Arc::clone(&plugin));
                    plugin
                }
            };
            let app = build_app(
                &self.config,
                name,
                app_config,
                plugin,
                self.egress.get(name),
            )?;
            apps.insert(name.clone(), Arc::new(app));
        }
        Ok(Host {
            runtime,
            audit,
            apps,
        })
    }
}

fn load_plugin(
    runtime: &Runtime,
    cache: Option<&CompileCache>,
    app: &AppConfig,
) -> Result<Plugin, PluginError> {
    match crate::bundled::get(&app.plugin) {
        Some(bytes) => {
            Plugin::from_bytes(runtime, cache, &format!("bundled:{}", app.plugin), bytes)
        }
        None => Plugin::from_file(runtime, cache, Path::new(&app.plugin)),
    }
}

fn build_app(
    config: &Config,
    name: &str,
    app: &AppConfig,
    plugin: Arc<Plugin>,
    egress_override: Option<&Arc<dyn Egress>>,
) -> Result<App, HostError> {
    let secrets = Arc::new(SecretStore::load(&app.secrets, &app.reveal).map_err(
        |(secret, problem)| HostError::Secret {
            app: name.to_owned(),
            secret,
            problem,
        },
    )?);
    let limits = config.limits_for(app);
    let limiter = Arc::new(crate::ratelimit::AppLimiter::new(name, &app.rate_limit));
    let egress: Arc<dyn Egress> = match egress_override {
        Some(egress) => Arc::clone(egress),
        None => Arc::new(
            HttpEgress::new(
                name,
                app.base_url.clone(),
                app.network,
                Arc::clone(&secrets),
                &limits,
                Arc::clone(&limiter),
            )
            .map_err(|e| HostError::Http {
                app: name.to_owned(),
                message: e.to_string(),
            })?,
        ),
    };
    Ok(App {
        name: name.to_owned(),
        base_url: app.base_url.clone(),
        settings: app.settings.clone(),
        secrets,
        network: app.network,
        limits,
        plugin,
        egress,
        limiter,
        info: tokio::sync::OnceCell::new(),
    })
}

impl Host {
    pub fn builder(config: Config) -> HostBuilder {
        HostBuilder {
            config,
            runtime: None,
            audit: None,
            egress: HashMap::new(),
            cache: CacheChoice::FromConfig,
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Where this host's audit events go.
    pub fn audit_sink(&self) -> &Arc<dyn AuditSink> {
        &self.audit
    }

    pub fn app(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.get(name)
    }

    pub fn apps(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.values()
    }

    fn unknown_app(&self, name: &str) -> CallError {
        CallError::Refused(format!(
            "no app named `{name}` is configured (configured: {}); add [apps.{name}] to the config",
            self.apps.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    }

    fn app_or_refuse<T>(&self, name: &str) -> Result<&Arc<App>, Call<T>> {
        self.apps.get(name).ok_or_else(|| Call {
            result: Err(self.unknown_app(name)),
            report: CallReport::default(),
        })
    }

    /// Looks `app` up and runs one export of its plugin in a fresh sandbox.
    async fn call_export<T, F>(&self, app: &str, operation: Operation, call: F) -> Call<T>
    where
        T: Send,
        F: for<'a> FnOnce(&'a guest::Guest, &'a mut Store<CallState>) -> GuestFuture<'a, T>,
    {
        let app = match self.app_or_refuse(app) {
            Ok(app) => app,
            Err(refused) => return refused,
        };
        sandbox::run(
            &self.runtime,
            &self.audit,
            app,
            operation,
            |instance, store| call(guest_of(instance), store),
        )
        .await
    }

    pub async fn describe(&self, app: &str) -> Call<ConnectorInfo> {
        self.call_export(app, Operation::simple("describe"), |guest, store| {
            Box::pin(async move { Ok(Ok(guest.call_describe(store).await?.into())) })
        })
        .await
    }

    pub async fn check(&self, app: &str) -> Call<CheckReport> {
        self.call_export(app, Operation::simple("check"), |guest, store| {
            Box::pin(async move {
                let result = guest.call_check(store).await?;
                Ok(result.map(Into::into).map_err(Into::into))
            })
        })
        .await
    }

    pub async fn grant(&self, app: &str, action: &Action) -> Call<GrantOutcome> {
        let wit_action = action.into();
        self.call_export(app, action_operation("grant", action), |guest, store| {
            Box::pin(async move {
                let result = guest.call_grant(store, &wit_action).await?;
                Ok(result.map(Into::into).map_err(Into::into))
            })
        })
        .await
    }

    pub async fn revoke(&self, app: &str, action: &Action) -> Call<RevokeOutcome> {
        let wit_action = action.into();
        self.call_export(app, action_operation("revoke", action), |guest, store| {
            Box::pin(async move {
                let result = guest.call_revoke(store, &wit_action).await?;
                Ok(result.map(Into::into).map_err(Into::into))
            })
        })
        .await
    }

    pub async fn verify(
        &self,
        app: &str,
        subject: &Subject,
        entitlement: &Entitlement,
    ) -> Call<Observed> {
        let operation = Operation {
            name: "verify",
            subject: Some(subject.clone()),
            entitlement: Some(entitlement.clone()),
            idempotency_key: None,
        };
        let (wit_subject, wit_entitlement) = (subject.into(), entitlement.into());
        self.call_export(app, operation, |guest, store| {
            Box::pin(async move {
                let result = guest
                    .call_verify(store, &wit_subject, &wit_entitlement)
                    .await?;
                Ok(result.map(Into::into).map_err(Into::into))
            })
        })
        .await
    }

    pub async fn list_grants(&self, app: &str, query: &GrantQuery) -> Call<GrantPage> {
        let wit_query = query.into();
        self.call_export(app, Operation::simple("list-grants"), |guest, store| {
            Box::pin(async move {
                let result = guest.call_list_grants(store, &wit_query).await?;
                Ok(result.map(Into::into).map_err(Into::into))
            })
        })
        .await
    }
}

/// Most pages one listing may take: 1,000 pages of 100 is more than any app's
/// collaborators on one resource, and a connector looping forever must stop.
pub const MAX_PAGES: usize = 1_000;

impl Host {
    /// Every page of `list-grants` for `query` (its cursor is ignored), each page in its
    /// own fresh sandbox, with the HTTP calls of all pages. A connector that never stops
    /// paging fails after [`MAX_PAGES`].
    pub async fn list_all_grants(
        &self,
        app: &str,
        query: &GrantQuery,
    ) -> (Result<Vec<Grant>, CallError>, CallReport) {
        let mut query = GrantQuery {
            cursor: None,
            ..query.clone()
        };
        let mut grants = Vec::new();
        let mut report = CallReport::default();
        for _ in 0..MAX_PAGES {
            let call = self.list_grants(app, &query).await;
            report.http.extend(call.report.http);
            report.duration_ms += call.report.duration_ms;
            match call.result {
                Ok(page) => {
                    grants.extend(page.grants);
                    match page.next_cursor {
                        Some(cursor) => query.cursor = Some(cursor),
                        None => return (Ok(grants), report),
                    }
                }
                Err(e) => return (Err(e), report),
            }
        }
        let error = CallError::Refused(format!(
            "list-grants of {app} did not finish within {MAX_PAGES} pages; the connector keeps returning a next cursor"
        ));
        (Err(error), report)
    }

    /// The connector's `describe`, cached per app after the first successful call.
    pub async fn connector_info(&self, app: &str) -> Result<ConnectorInfo, CallError> {
        let Some(app_ref) = self.apps.get(app) else {
            return Err(self.unknown_app(app));
        };
        app_ref
            .info
            .get_or_try_init(|| async { self.describe(app).await.result })
            .await
            .cloned()
    }

    /// Grants, then reads back, and judges the result (see [`crate::readback`]).
    pub async fn grant_checked(&self, app: &str, action: &Action) -> Checked<GrantOutcome> {
        let write = self.grant(app, action).await;
        let info = match write.result {
            Ok(_) => self.connector_info(app).await.ok(),
            Err(_) => None,
        };
        let kind = info
            .as_ref()
            .and_then(|info| info.kind(&action.entitlement.kind));
        self.read_back(app, action, write, |outcome, observed| {
            grant_verdict(kind, action, outcome, observed)
        })
        .await
    }

    /// Revokes, then reads back, and judges the result.
    pub async fn revoke_checked(&self, app: &str, action: &Action) -> Checked<RevokeOutcome> {
        let write = self.revoke(app, action).await;
        self.read_back(app, action, write, revoke_verdict).await
    }

    /// The shared half of the `*_checked` calls: after a successful write, verify and let
    /// `judge` compare the write's outcome with what the application shows.
    async fn read_back<T>(
        &self,
        app: &str,
        action: &Action,
        write: Call<T>,
        judge: impl FnOnce(&T, Observed) -> Verdict,
    ) -> Checked<T> {
        let outcome = match &write.result {
            Ok(outcome) => outcome,
            Err(error) => {
                let verdict = Verdict::Failed {
                    error: error.clone(),
                };
                return Checked {
                    write,
                    readback: None,
                    verdict,
                };
            }
        };
        let readback = self.verify(app, &action.subject, &action.entitlement).await;
        let verdict = match &readback.result {
            Ok(observed) => judge(outcome, observed.clone()),
            Err(error) => Verdict::Failed {
                error: error.clone(),
            },
        };
        Checked {
            write,
            readback: Some(readback),
            verdict,
        }
    }
}

impl Host {
    /// For the benchmark only: times `iterations` grants on ONE reused instance, the
    /// baseline a fresh sandbox per call is compared against. Production code never reuses
    /// an instance (state could leak between calls).
    #[doc(hidden)]
    pub async fn bench_reused_instance_grants(
        &self,
        app: &str,
        action: &Action,
        iterations: usize,
    ) -> Result<Vec<std::time::Duration>, CallError> {
        let Some(app) = self.apps.get(app) else {
            return Err(self.unknown_app(app));
        };
        sandbox::time_reused_instance(&self.runtime, &self.audit, app, action, iterations).await
    }

    /// For the benchmark only: creates one fresh sandbox for `app` exactly as every call
    /// does and drops it unused. The floor under any call, which a fresh sandbox per call
    /// adds to every write and read-back.
    #[doc(hidden)]
    pub async fn bench_empty_sandbox(&self, app: &str) -> Result<(), CallError> {
        let Some(app) = self.apps.get(app) else {
            return Err(self.unknown_app(app));
        };
        sandbox::instantiate_and_drop(&self.runtime, &self.audit, app).await
    }
}

fn guest_of(instance: &crate::bindings::Plugin) -> &guest::Guest {
    instance.portcullis_connector_connector()
}

fn action_operation(name: &'static str, action: &Action) -> Operation {
    Operation {
        name,
        subject: Some(action.subject.clone()),
        entitlement: Some(action.entitlement.clone()),
        idempotency_key: Some(action.idempotency_key.clone()),
    }
}
