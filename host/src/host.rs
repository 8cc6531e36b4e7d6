//! The library's front door: a [`Host`] built from a [`Config`] holds the configured
//! applications with their loaded plugins, and runs connector operations against them,
//! each in a fresh sandbox.
//!
//! Building a host loads every plugin and checks it against the contract before any call
//! can run. Two checks wait for an app's first use, so one broken app cannot stop the
//! others: its secrets are read then (a missing one refuses that app's calls, naming it),
//! and its `describe` is validated against the contract's rules (see [`crate::contract`])
//! before any other export of it runs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::app::App;
use crate::audit::AuditSink;
use crate::cache::CompileCache;
use crate::config::{AppConfig, Config};
use crate::egress::{Egress, HttpEgress};
use crate::guest::Guest;
use crate::model::{
    Action, CheckReport, ConnectorInfo, Entitlement, Grant, GrantOutcome, GrantPage, GrantQuery,
    Observed, RevokeOutcome, SetLevelOutcome, Subject, UsagePage, UsageQuery,
};
use crate::plugin::{Plugin, PluginError, Unverified};
use crate::readback::{Checked, Verdict, grant_verdict, revoke_verdict};
use crate::runtime::Runtime;
use crate::sandbox::{self, Call, CallError, CallReport, CallState, GuestFuture, Operation};
use crate::secrets::AppSecrets;
use crate::trust::{Signer, Trust};
use wasmtime::Store;

/// Why a host could not be built. Each names the app and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("app `{app}`: {source}")]
    Plugin { app: String, source: PluginError },
    #[error("app `{app}`: cannot build its HTTP client: {message}")]
    Http { app: String, message: String },
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
    #[error("[plugins.trust]: {0}")]
    Trust(String),
    #[error("app `{app}`: {refusal}{}", unaudited.as_ref().map(|e| format!(" (and the refusal could not be audited: {e})")).unwrap_or_default())]
    Untrusted {
        app: String,
        refusal: crate::trust::Refusal,
        unaudited: Option<String>,
    },
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

/// A new plugin version for an app, compiled and described, not yet serving.
pub struct Candidate {
    app: Arc<App>,
    /// Its `describe`, checked against the contract.
    pub info: ConnectorInfo,
    replaces: Arc<App>,
}

impl Candidate {
    pub fn plugin(&self) -> &Plugin {
        &self.app.plugin
    }

    /// The app as it would serve with the new version.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The version it replaces.
    pub fn current(&self) -> &App {
        &self.replaces
    }
}

pub struct Host {
    runtime: Runtime,
    audit: Arc<dyn AuditSink>,
    cache: Option<CompileCache>,
    /// Whose signatures count, for plugins loaded at start and swapped in later.
    trust: Trust,
    /// Each app's current version. A call takes the `Arc` once and finishes on that
    /// version even if a new plugin takes over meanwhile ([`Host::install`]).
    apps: BTreeMap<String, RwLock<Arc<App>>>,
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
            None => crate::audit::configured_sink(&self.config.audit)?,
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

        let trust = self
            .config
            .plugins
            .trust(self.config.apps.keys())
            .map_err(|(field, problem)| HostError::Trust(format!("{field} {problem}")))?;
        // Apps that use the same plugin share one compiled, pre-linked copy.
        let mut plugins: HashMap<String, Arc<Plugin>> = HashMap::new();
        let mut apps = BTreeMap::new();
        for (name, app_config) in &self.config.apps {
            let plugin_error = |source| HostError::Plugin {
                app: name.clone(),
                source,
            };
            // Judged before compiling: bytes the trust config refuses never reach the
            // compiler.
            let unverified = read_plugin(app_config).map_err(plugin_error)?;
            let signer = judge(&trust, audit.as_ref(), name, &unverified)?;
            let plugin = match plugins.get(&app_config.plugin) {
                Some(plugin) => Arc::clone(plugin),
                None => {
                    let plugin = Arc::new(
                        unverified
                            .compile(&runtime, cache.as_ref())
                            .map_err(plugin_error)?,
                    );
                    plugins.insert(app_config.plugin.clone(), Arc::clone(&plugin));
                    plugin
                }
            };
            let app = build_app(
                &self.config,
                name,
                app_config,
                plugin,
                signer,
                self.egress.get(name),
            )?;
            apps.insert(name.clone(), RwLock::new(Arc::new(app)));
        }
        Ok(Host {
            runtime,
            audit,
            cache,
            trust,
            apps,
        })
    }
}

/// The trust config's verdict on a plugin file serving `app`; a refusal is audited (and
/// still stands if it cannot be).
fn judge(
    trust: &Trust,
    audit: &dyn AuditSink,
    app: &str,
    plugin: &Unverified,
) -> Result<Signer, HostError> {
    trust
        .judge(app, &plugin.origin, &plugin.signatures, chrono::Utc::now())
        .map_err(|refusal| {
            let record = crate::audit::AuditRecord {
                at: chrono::Utc::now(),
                call_id: format!("refused-{app}"),
                app: app.to_owned(),
                plugin_sha256: plugin.sha256.clone(),
                event: crate::audit::AuditEvent::PluginRefused {
                    origin: plugin.origin.clone(),
                    reason: refusal.reason.clone(),
                },
            };
            let audited = audit.record(&record).err();
            HostError::Untrusted {
                app: app.to_owned(),
                refusal,
                unaudited: audited.map(|e| e.to_string()),
            }
        })
}

/// An app's plugin, bundled or a file, read and its signatures checked.
fn read_plugin(app: &AppConfig) -> Result<Unverified, PluginError> {
    match crate::bundled::get(&app.plugin) {
        Some(bytes) => Unverified::new(&format!("bundled:{}", app.plugin), bytes.into(), None),
        None => Unverified::read(Path::new(&app.plugin)),
    }
}

fn build_app(
    config: &Config,
    name: &str,
    app: &AppConfig,
    plugin: Arc<Plugin>,
    signer: Signer,
    egress_override: Option<&Arc<dyn Egress>>,
) -> Result<App, HostError> {
    // Read when the app is first used: a missing secret fails this app alone.
    let secrets = Arc::new(AppSecrets::new(name, &app.secrets, &app.reveal));
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
        signer,
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

    /// The app's current version.
    pub fn app(&self, name: &str) -> Option<Arc<App>> {
        self.apps.get(name).map(|slot| Arc::clone(&slot.read()))
    }

    /// Every app's current version, by name.
    pub fn apps(&self) -> impl Iterator<Item = Arc<App>> + '_ {
        self.apps.values().map(|slot| Arc::clone(&slot.read()))
    }

    /// Shares every app's rate limit with the other processes working on the same state
    /// (several workers on PostgreSQL). A hot-loaded version keeps its app's limiter, so
    /// the sharing outlives upgrades.
    pub fn share_rate_limits(&self, shared: &Arc<dyn crate::ratelimit::SharedRate>) {
        for app in self.apps() {
            app.limiter.share(Arc::clone(shared));
        }
    }

    /// Loads `app`'s secrets now (they are otherwise read at its first call), so a
    /// command on one app can report a missing one as bad input before anything runs.
    /// An unknown app is not this check's business: its call is refused, naming it.
    pub fn secrets_ready(&self, app: &str) -> Result<(), crate::secrets::SecretProblem> {
        match self.app(app) {
            Some(app) => app.secrets.load().map(drop),
            None => Ok(()),
        }
    }

    fn unknown_app(&self, name: &str) -> CallError {
        CallError::Refused(format!(
            "no app named `{name}` is configured (configured: {}); add [apps.{name}] to the config",
            self.apps.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    }

    fn app_or_refuse<T>(&self, name: &str) -> Result<Arc<App>, Call<T>> {
        self.app(name).ok_or_else(|| Call {
            result: Err(self.unknown_app(name)),
            report: CallReport::default(),
        })
    }

    /// Looks `app` up and runs one export of its plugin in a fresh sandbox, once the
    /// plugin's `describe` has passed the contract's rules.
    async fn call_export<T, F>(&self, app: &str, operation: Operation, call: F) -> Call<T>
    where
        T: Send,
        F: for<'a> FnOnce(Guest<'a>, &'a mut Store<CallState>) -> GuestFuture<'a, T>,
    {
        // One version for the whole call: the check and the export run on the same one.
        let app = match self.app_or_refuse(app) {
            Ok(app) => app,
            Err(refused) => return refused,
        };
        if let Err(error) = self.info_of(&app).await {
            return Call {
                result: Err(error),
                report: CallReport::default(),
            };
        }
        self.run_on(&app, operation, call).await
    }

    /// Runs one export of `app`'s version without the contract check: `describe` itself,
    /// which the check needs.
    async fn run_on<T, F>(&self, app: &Arc<App>, operation: Operation, call: F) -> Call<T>
    where
        T: Send,
        F: for<'a> FnOnce(Guest<'a>, &'a mut Store<CallState>) -> GuestFuture<'a, T>,
    {
        sandbox::run(
            &self.runtime,
            &self.audit,
            app,
            operation,
            |instance, store| call(instance.guest(), store),
        )
        .await
    }

    pub async fn describe(&self, app: &str) -> Call<ConnectorInfo> {
        match self.app_or_refuse(app) {
            Ok(app) => self.describe_on(&app).await,
            Err(refused) => refused,
        }
    }

    async fn describe_on(&self, app: &Arc<App>) -> Call<ConnectorInfo> {
        self.run_on(app, Operation::simple("describe"), |guest, store| {
            Box::pin(async move { Ok(Ok(guest.describe(store).await?)) })
        })
        .await
    }

    pub async fn check(&self, app: &str) -> Call<CheckReport> {
        self.call_export(app, Operation::simple("check"), |guest, store| {
            Box::pin(guest.check(store))
        })
        .await
    }

    pub async fn grant(&self, app: &str, action: &Action) -> Call<GrantOutcome> {
        let owned = action.clone();
        self.call_export(app, action_operation("grant", action), |guest, store| {
            Box::pin(async move { guest.grant(store, &owned).await })
        })
        .await
    }

    pub async fn revoke(&self, app: &str, action: &Action) -> Call<RevokeOutcome> {
        let owned = action.clone();
        self.call_export(app, action_operation("revoke", action), |guest, store| {
            Box::pin(async move { guest.revoke(store, &owned).await })
        })
        .await
    }

    /// Changes the level the subject holds in place (contract 0.2.0, kinds whose
    /// capabilities say `set-level`); `unsupported` otherwise.
    pub async fn set_level(&self, app: &str, action: &Action) -> Call<SetLevelOutcome> {
        let owned = action.clone();
        self.call_export(
            app,
            action_operation("set-level", action),
            |guest, store| Box::pin(async move { guest.set_level(store, &owned).await }),
        )
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
        let (subject, entitlement) = (subject.clone(), entitlement.clone());
        self.call_export(app, operation, |guest, store| {
            Box::pin(async move { guest.verify(store, &subject, &entitlement).await })
        })
        .await
    }

    /// One page of when subjects last used a kind's grants (contract 0.2.0, kinds whose
    /// capabilities say `usage`); `unsupported` otherwise.
    pub async fn usage(&self, app: &str, query: &UsageQuery) -> Call<UsagePage> {
        let call = self
            .call_export(app, Operation::simple("usage"), |guest, store| {
                let query = query.clone();
                Box::pin(async move { guest.usage(store, &query).await })
            })
            .await;
        refused_page(call)
    }

    pub async fn list_grants(&self, app: &str, query: &GrantQuery) -> Call<GrantPage> {
        let call = self
            .call_export(app, Operation::simple("list-grants"), |guest, store| {
                let query = query.clone();
                Box::pin(async move { guest.list_grants(store, &query).await })
            })
            .await;
        refused_page(call)
    }
}

/// A page over the host's caps is the host's refusal, not the connector's error
/// (discovery reads a connector's invalid-request as "needs a resource").
fn refused_page<T>(call: Call<Result<T, String>>) -> Call<T> {
    Call {
        result: call
            .result
            .and_then(|page| page.map_err(CallError::Refused)),
        report: call.report,
    }
}

/// Why a listing stopped before its last page. The grants read until then are kept
/// (and shown, and stored as observed) but the listing is partial: nothing may be
/// concluded from a grant's absence in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "stopped", rename_all = "kebab-case")]
pub enum ListingStop {
    /// A page failed.
    #[error("page {page} failed: {error}")]
    Failed { page: u32, error: CallError },
    #[error(
        "the connector returned cursor {} again on page {page}; a listing that repeats a cursor never ends, so the host stopped it (a connector or server bug: report it to the plugin's vendor)",
        crate::untrusted::Shown(&preview(cursor))
    )]
    RepeatedCursor { page: u32, cursor: String },
    #[error(
        "the listing reached its cap of {max} pages and was stopped (limits.list_max_pages; raise it if the app really holds that much)"
    )]
    PageCap { max: u32 },
    #[error(
        "the listing did not finish within its {limit_ms} ms budget and was stopped after {pages} pages (limits.list_wall_ms)"
    )]
    Deadline { limit_ms: u64, pages: u32 },
    #[error(
        "the listing reached the host's cap of {max} grants and was stopped (no honest listing of one kind is that long)"
    )]
    GrantCap { max: usize },
}

/// Most grants one listing keeps, whatever its page count: bounds the host's memory.
pub const MAX_LISTED_GRANTS: usize = 1_000_000;

fn preview(cursor: &str) -> String {
    let cut: String = cursor.chars().take(60).collect();
    if cut.len() < cursor.len() {
        format!("`{cut}…` ({} bytes)", cursor.len())
    } else {
        format!("`{cut}`")
    }
}

/// Every page of one `list-grants` query, or as many as the host's bounds allowed.
#[derive(Debug, Clone, Default)]
pub struct GrantListing {
    pub grants: Vec<Grant>,
    pub pages: u32,
    /// `None` when the connector reported its last page: only then is the listing complete.
    pub stopped: Option<ListingStop>,
    /// The HTTP calls of every page.
    pub report: CallReport,
}

impl GrantListing {
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none()
    }

    /// The first page's own error, when the listing failed before reading anything (a
    /// connector that needs a resource says so on page 1).
    pub fn first_page_error(&self) -> Option<&CallError> {
        match &self.stopped {
            Some(ListingStop::Failed { page: 1, error }) if self.grants.is_empty() => Some(error),
            _ => None,
        }
    }
}

impl Host {
    /// Every page of `list-grants` for `query` (its cursor is ignored), each page in its
    /// own fresh sandbox. The host stops the listing, keeping what it read, on a repeated
    /// cursor, past `limits.list_max_pages` pages, past `limits.list_wall_ms` (checked
    /// between pages; a page in flight ends within its own `limits.wall_ms`), past
    /// [`MAX_LISTED_GRANTS`], or when a page fails.
    pub async fn list_all_grants(&self, app: &str, query: &GrantQuery) -> GrantListing {
        let mut listing = GrantListing::default();
        let Some(app_ref) = self.app(app) else {
            listing.stopped = Some(ListingStop::Failed {
                page: 1,
                error: self.unknown_app(app),
            });
            return listing;
        };
        let (max_pages, wall_ms) = (app_ref.limits.list_max_pages, app_ref.limits.list_wall_ms);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(wall_ms);
        let mut query = GrantQuery {
            cursor: None,
            ..query.clone()
        };
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            if listing.pages >= max_pages {
                listing.stopped = Some(ListingStop::PageCap { max: max_pages });
                return listing;
            }
            if std::time::Instant::now() >= deadline {
                listing.stopped = Some(ListingStop::Deadline {
                    limit_ms: wall_ms,
                    pages: listing.pages,
                });
                return listing;
            }
            let call = self.list_grants(app, &query).await;
            listing.pages += 1;
            listing.report.http.extend(call.report.http);
            listing.report.duration_ms += call.report.duration_ms;
            listing.report.host_calls += call.report.host_calls;
            let page = match call.result {
                Ok(page) => page,
                Err(error) => {
                    listing.stopped = Some(ListingStop::Failed {
                        page: listing.pages,
                        error,
                    });
                    return listing;
                }
            };
            let room = MAX_LISTED_GRANTS.saturating_sub(listing.grants.len());
            if page.grants.len() > room {
                listing.grants.extend(page.grants.into_iter().take(room));
                listing.stopped = Some(ListingStop::GrantCap {
                    max: MAX_LISTED_GRANTS,
                });
                return listing;
            }
            listing.grants.extend(page.grants);
            let Some(cursor) = page.next_cursor else {
                return listing;
            };
            // The first cursor is "none"; any cursor seen before means a loop.
            if !seen.insert(cursor.clone()) {
                listing.stopped = Some(ListingStop::RepeatedCursor {
                    page: listing.pages,
                    cursor,
                });
                return listing;
            }
            query.cursor = Some(cursor);
        }
    }

    /// The connector's `describe`, checked against the contract's rules
    /// ([`crate::contract`]) and cached per app after the first success. Every other export
    /// waits for it, so a plugin whose description breaks a rule never runs anything else.
    pub async fn connector_info(&self, app: &str) -> Result<ConnectorInfo, CallError> {
        let Some(app_ref) = self.app(app) else {
            return Err(self.unknown_app(app));
        };
        self.info_of(&app_ref).await
    }

    /// [`Host::connector_info`] of one version of an app.
    async fn info_of(&self, app_ref: &Arc<App>) -> Result<ConnectorInfo, CallError> {
        let app = app_ref.name.as_str();
        app_ref
            .info
            .get_or_try_init(|| async {
                let info = self.describe_on(app_ref).await.result?;
                if let Err(violation) = crate::contract::validate(&app_ref.plugin.origin, &info) {
                    let reason = violation.to_string();
                    let refused = crate::audit::AuditRecord {
                        at: chrono::Utc::now(),
                        call_id: format!("refused-{app}"),
                        app: app.to_owned(),
                        plugin_sha256: app_ref.plugin.sha256.clone(),
                        event: crate::audit::AuditEvent::PluginRefused {
                            origin: app_ref.plugin.origin.clone(),
                            reason: reason.clone(),
                        },
                    };
                    // The refusal stands even if it cannot be audited; the error says why.
                    if let Err(e) = self.audit.record(&refused) {
                        return Err(CallError::Refused(format!("{reason} (and {e})")));
                    }
                    return Err(CallError::Refused(reason));
                }
                Ok(info)
            })
            .await
            .cloned()
    }

    /// Reads a new plugin file for `app`, judges it with this host's trust config (a
    /// refusal is audited; refused bytes are never compiled), then compiles it with this
    /// host's runtime and compile cache off the async threads (compiling takes seconds;
    /// calls in flight keep running meanwhile).
    pub async fn compile_plugin_file(&self, app: &str, path: &Path) -> Result<Plugin, String> {
        let unverified = Unverified::read(path).map_err(|e| e.to_string())?;
        judge(&self.trust, self.audit.as_ref(), app, &unverified).map_err(|e| e.to_string())?;
        let (runtime, cache) = (self.runtime.clone(), self.cache.clone());
        tokio::task::spawn_blocking(move || unverified.compile(&runtime, cache.as_ref()))
            .await
            .unwrap_or_else(|join| {
                Err(PluginError::Invalid {
                    origin: "plugin compilation".into(),
                    message: format!("the compiling task failed: {join}"),
                })
            })
            .map_err(|e| e.to_string())
    }

    /// Makes `plugin` a candidate for `app`: the same secrets, egress, limits and rate
    /// limiter as the serving version, and its `describe` checked against the contract.
    /// Nothing changes for callers until [`Host::install`].
    pub async fn prepare_swap(&self, app: &str, plugin: Plugin) -> Result<Candidate, CallError> {
        let Some(current) = self.app(app) else {
            return Err(self.unknown_app(app));
        };
        // The same trust as at start (judged before compiling too; this names the signer
        // of the new version).
        let signer = self
            .trust
            .judge(app, &plugin.origin, &plugin.signatures, chrono::Utc::now())
            .map_err(|e| CallError::Refused(e.to_string()))?;
        let next = Arc::new(App {
            name: current.name.clone(),
            base_url: current.base_url.clone(),
            settings: current.settings.clone(),
            secrets: Arc::clone(&current.secrets),
            network: current.network,
            limits: current.limits.clone(),
            plugin: Arc::new(plugin),
            signer,
            egress: Arc::clone(&current.egress),
            limiter: Arc::clone(&current.limiter),
            info: tokio::sync::OnceCell::new(),
        });
        let info = self.info_of(&next).await?;
        Ok(Candidate {
            app: next,
            info,
            replaces: current,
        })
    }

    /// Makes a candidate the version new calls get; calls already running finish on the
    /// version they started with. Refused (returning the candidate's reason) when another
    /// swap of the same app happened since [`Host::prepare_swap`].
    pub fn install(&self, candidate: Candidate) -> Result<Arc<App>, String> {
        let Some(slot) = self.apps.get(&candidate.app.name) else {
            return Err(format!("app {} is not configured", candidate.app.name));
        };
        let mut current = slot.write();
        if !Arc::ptr_eq(&current, &candidate.replaces) {
            return Err(format!(
                "app {} changed version while the new plugin was checked; reload again",
                candidate.app.name
            ));
        }
        Ok(std::mem::replace(&mut *current, candidate.app))
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
        let Some(app) = self.app(app) else {
            return Err(self.unknown_app(app));
        };
        sandbox::time_reused_instance(&self.runtime, &self.audit, &app, action, iterations).await
    }

    /// For the benchmark only: creates one fresh sandbox for `app` exactly as every call
    /// does and drops it unused. The floor under any call, which a fresh sandbox per call
    /// adds to every write and read-back.
    #[doc(hidden)]
    pub async fn bench_empty_sandbox(&self, app: &str) -> Result<(), CallError> {
        let Some(app) = self.app(app) else {
            return Err(self.unknown_app(app));
        };
        sandbox::instantiate_and_drop(&self.runtime, &self.audit, &app).await
    }
}

fn action_operation(name: &'static str, action: &Action) -> Operation {
    Operation {
        name,
        subject: Some(action.subject.clone()),
        entitlement: Some(action.entitlement.clone()),
        idempotency_key: Some(action.idempotency_key.clone()),
    }
}
