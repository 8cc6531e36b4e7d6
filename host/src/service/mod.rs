//! `portcullis serve`: the long-running host. One [`Workspace`] (config, plugins, state)
//! serves the JSON API under `/v1`, receives HR events, and runs the scheduled jobs; every
//! change goes through the same operations as the CLI ([`crate::ops`]).
//!
//! Invariants:
//! - On SQLite the service holds the state's run lock from start to stop, naming itself
//!   and its address: a CLI run that would change apps meanwhile is refused with that
//!   name. On PostgreSQL it is one worker of a pool ([`crate::queue`]): each run takes the
//!   run lock, waiting its turn; the scheduler runs only while this worker is elected.
//! - Every API call is authenticated (bearer token, constant-time comparison) and audited
//!   with the caller's name, the route and the status, refusals included.
//! - An HR event is stored before its delivery is answered; a refused delivery stores
//!   nothing.
//! - On SIGTERM or Ctrl-C the listener stops accepting, the scheduler stops starting
//!   jobs, and jobs already running finish: an action in flight ends verified, pending or
//!   alerted and is recorded. A run cut off harder than that stays in state without
//!   `finished_at` (interrupted), and the next plan, made from state, proposes what it
//!   did not prove; connectors answer repeats idempotently.

mod alerts;
mod api;
mod auth;
pub mod hr;
mod jobs;
mod reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use secrecy::SecretString;
use tokio::task::JoinSet;

pub use auth::Caller;
pub use jobs::{Job, JobStatus, Scheduled};
pub use reload::Reloaded;

use crate::audit::{AuditEvent, AuditRecord};
use crate::ops::Workspace;

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Op(#[from] crate::ops::OpError),
    #[error(
        "cannot listen on {addr}: {source}; choose another address with --listen or [server] listen"
    )]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// A running service's shared parts.
pub struct Service {
    workspace: Workspace,
    tokens: Vec<auth::ApiToken>,
    hr_secret: Option<(SecretString, u64)>,
    jobs: jobs::Jobs,
    tasks: Mutex<JoinSet<()>>,
    /// The base URL it answers on.
    url: String,
    started: std::time::Instant,
    calls: std::sync::atomic::AtomicU64,
    /// Reloads take turns (see [`reload`]).
    reloading: tokio::sync::Mutex<()>,
    alert_sinks: Vec<alerts::AlertSink>,
    /// For alert webhooks only (connector traffic goes through each app's egress).
    http: reqwest::Client,
    /// On a PostgreSQL state: this process's part in the scheduler election. Without
    /// one (SQLite), this process is the only one and always runs the scheduler.
    leadership: Option<crate::queue::Leadership>,
}

impl Service {
    /// Whether this process runs the scheduled jobs now.
    fn runs_scheduler(&self) -> bool {
        self.leadership
            .as_ref()
            .is_none_or(crate::queue::Leadership::is_leading)
    }

    fn audit(&self, call_id: String, event: AuditEvent) {
        let record = AuditRecord {
            at: Utc::now(),
            call_id,
            app: String::new(),
            plugin_sha256: String::new(),
            event,
        };
        if let Err(e) = self.workspace.host.audit_sink().record(&record) {
            tracing::error!("cannot audit a service event: {e}");
        }
    }

    /// A job that needs a person: written to the audit trail and the log.
    async fn alert(&self, job: &Job) {
        let summary = format!(
            "{} job {} {}: {}",
            job.kind,
            job.id,
            match job.status {
                JobStatus::Failed => "failed",
                _ => "needs attention",
            },
            job.detail
                .get("error")
                .and_then(|e| e.as_str())
                .or_else(|| job.detail.get("outcome").and_then(|e| e.as_str()))
                .unwrap_or("see its detail")
        );
        tracing::warn!("{}", crate::untrusted::escape(&summary));
        self.audit(
            job.id.clone(),
            AuditEvent::Alert {
                job: job.id.clone(),
                kind: job.kind.clone(),
                summary: summary.clone(),
                detail: job.detail.clone(),
            },
        );
        let job_json = serde_json::to_value(job).unwrap_or_default();
        let job_json: serde_json::Value =
            serde_json::from_str(&crate::redact::scrubbed(job_json.to_string()))
                .unwrap_or_default();
        for sink in &self.alert_sinks {
            let (attempts, error) = alerts::deliver(&self.http, sink, &summary, &job_json).await;
            if let Some(error) = &error {
                tracing::error!(
                    "alert for {} not delivered to {} after {attempts} attempts: {error}",
                    job.id,
                    sink.name
                );
            }
            self.audit(
                job.id.clone(),
                AuditEvent::AlertDelivery {
                    sink: sink.name.clone(),
                    delivered: error.is_none(),
                    attempts,
                    error,
                },
            );
        }
    }
}

/// What `serve` and `worker` both do before they start: the upgrade review (a plugin
/// version that widens what it may do since it was accepted does not serve), the alert
/// sinks, and the client alerts go out through.
async fn reviewed_with_alerts(
    workspace: &Workspace,
) -> Result<(Vec<alerts::AlertSink>, reqwest::Client), ServeError> {
    let alert_sinks =
        alerts::load_sinks(&workspace.config.server.alerts).map_err(ServeError::Config)?;
    crate::ops::upgrades::review_host(&workspace.host, workspace.store.as_ref()).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ServeError::Config(format!("cannot build the alert client: {e}")))?;
    Ok((alert_sinks, http))
}

/// Where the service listens, and whom it tells the address it bound.
pub struct ServeOptions {
    /// Overrides `[server] listen`.
    pub listen: Option<String>,
    /// Called with the bound address once listening (the CLI prints it).
    pub on_listening: Box<dyn FnOnce(SocketAddr) + Send>,
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn serve(mut workspace: Workspace, options: ServeOptions) -> Result<(), ServeError> {
    let server = workspace.config.server.clone();
    let tokens = auth::load_tokens(&server.tokens).map_err(ServeError::Config)?;
    if tokens.is_empty() {
        return Err(ServeError::Config(
            "[server] has no tokens: every API call needs one. Add [[server.tokens]] with name, role (reader, approver, operator, hr-source) and secret = \"env:NAME\"".into(),
        ));
    }
    let hr_secret = match &server.hr_webhook {
        Some(hook) => {
            let secret = hook
                .secret
                .load()
                .map_err(|e| ServeError::Config(format!("server.hr_webhook.secret: {e}")))?;
            crate::redact::register(
                "server",
                [("hr-webhook", secrecy::ExposeSecret::expose_secret(&secret))],
            );
            Some((secret, hook.tolerance_s))
        }
        None => None,
    };
    let (alert_sinks, http) = reviewed_with_alerts(&workspace).await?;
    let addr = options.listen.unwrap_or(server.listen.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: addr.clone(),
        source,
    })?;
    let url = format!("http://{bound}");
    // Alone on a SQLite state, the service keeps it to itself. On PostgreSQL it is one
    // worker of the pool: runs take the run lock one at a time, and the scheduler runs
    // where the election says.
    let leadership = match workspace.pool.clone() {
        Some(pool) => {
            workspace.wait_for_runs();
            Some(pool.elect())
        }
        None => {
            workspace.own_state(&jobs::service_holder(&url))?;
            None
        }
    };
    let service = Arc::new(Service {
        workspace,
        tokens,
        hr_secret,
        jobs: jobs::Jobs::default(),
        tasks: Mutex::new(JoinSet::new()),
        url,
        started: std::time::Instant::now(),
        calls: std::sync::atomic::AtomicU64::new(0),
        reloading: tokio::sync::Mutex::new(()),
        alert_sinks,
        http,
        leadership,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(jobs::scheduler(Arc::clone(&service), stop_rx.clone()));
    let worker = service.workspace.pool.clone().map(|pool| {
        let stop = stop_tx.subscribe();
        tokio::spawn(async move { pool.work(stop).await })
    });
    let watcher = tokio::spawn(reload::watch(Arc::clone(&service), stop_rx));
    (options.on_listening)(bound);
    let app = api::router(Arc::clone(&service));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("stopping: no new calls or jobs; running jobs finish");
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = scheduler.await;
    let _ = watcher.await;
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    // Jobs already running finish; their actions end recorded.
    let mut tasks = std::mem::take(&mut *service.tasks.lock());
    while tasks.join_next().await.is_some() {}
    // Give stragglers of the HTTP layer a moment, then stop.
    tokio::time::sleep(Duration::from_millis(10)).await;
    served.map_err(|source| ServeError::Listen { addr, source })
}

/// What a worker tells its operator.
pub enum WorkerEvent {
    /// Joined the pool under this name.
    Joined { worker: String, db: String },
    /// Started or stopped running the scheduler.
    Scheduler { leading: bool },
    /// Stopping: `completed` actions carried out.
    Stopping { completed: u64 },
}

/// `portcullis worker`: a member of a PostgreSQL state's pool without the API. Carries
/// out queued actions, campaigns for the scheduler and runs its jobs while elected,
/// hot-loads plugins, until SIGTERM or Ctrl-C (actions in flight finish).
pub async fn work(
    mut workspace: Workspace,
    on_event: Box<dyn Fn(WorkerEvent) + Send + Sync>,
) -> Result<(), ServeError> {
    let Some(pool) = workspace.pool.clone() else {
        return Err(ServeError::Config(
            "portcullis worker needs a PostgreSQL state shared with the other workers: set [state] url = \"postgres://USER@HOST:PORT/DB\" (and password = \"env:NAME\")".into(),
        ));
    };
    workspace.wait_for_runs();
    let (alert_sinks, http) = reviewed_with_alerts(&workspace).await?;
    let leadership = pool.elect();
    let mut leading = leadership.watch();
    let service = Arc::new(Service {
        workspace,
        tokens: Vec::new(),
        hr_secret: None,
        jobs: jobs::Jobs::default(),
        tasks: Mutex::new(JoinSet::new()),
        url: format!("worker {}", pool.worker()),
        started: std::time::Instant::now(),
        calls: std::sync::atomic::AtomicU64::new(0),
        reloading: tokio::sync::Mutex::new(()),
        alert_sinks,
        http,
        leadership: Some(leadership),
    });
    on_event(WorkerEvent::Joined {
        worker: pool.worker().to_owned(),
        db: pool.db().to_owned(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(jobs::scheduler(Arc::clone(&service), stop_rx.clone()));
    let watcher = tokio::spawn(reload::watch(Arc::clone(&service), stop_rx.clone()));
    let working = {
        let pool = Arc::clone(&pool);
        let stop = stop_rx.clone();
        tokio::spawn(async move { pool.work(stop).await })
    };
    let on_event = Arc::new(on_event);
    let reporter = {
        let on_event = Arc::clone(&on_event);
        let mut stop = stop_rx;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = leading.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = *leading.borrow_and_update();
                        on_event(WorkerEvent::Scheduler { leading: now });
                    }
                    _ = stop.changed() => return,
                }
            }
        })
    };
    shutdown_signal().await;
    tracing::info!("stopping: no new jobs or actions; running ones finish");
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    let _ = watcher.await;
    let _ = working.await;
    let _ = reporter.await;
    let mut tasks = std::mem::take(&mut *service.tasks.lock());
    while tasks.join_next().await.is_some() {}
    on_event(WorkerEvent::Stopping {
        completed: pool.completed(),
    });
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
