//! Operations: what Portcullis does, written once for every front end. The CLI, the service
//! (`portcullis serve`) and its scheduled jobs call these and only render the result; none
//! of them loads a policy, takes the run lock, plans, runs or records on its own.
//!
//! Invariants:
//! - Every operation checks all of its input before the first write to an app; a refusal
//!   is an [`OpError`] that says what is wrong and what to do, and nothing has run.
//! - A run that changes apps holds the state's run lock from reading the state for its
//!   plan to its last record ([`Prepared`] owns the guard).
//! - State follows read-back evidence only (see [`crate::plan::execute`]).

mod actions;
mod approvals;
pub mod plugins;
mod policy;
pub(crate) mod recover;
pub mod upgrades;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use actions::{check_actions, dry_run_actions, run_actions};
pub use approvals::{Decision, DormantSweep, approvals, decide, dormant_sweep};
pub(crate) use policy::received_events;
pub use policy::{Applied, Drifted, Prepared, SavedPlan, Situation};
pub use recover::Recovered;
pub use usage::{UsageCollected, collect_usage};

use crate::config::Config;
use crate::engine::{RunError, SpecError};
use crate::host::Host;
use crate::people::parse_time;
use crate::state::{PgStore, RunLock, SqliteStore, StateError, StateStore};

/// Seals a run's records with a signed checkpoint (its end is one of the checkpoint
/// moments). A failure is logged: the records are written, only their seal is late (the
/// next record, interval or shutdown writes it).
pub(crate) fn seal_run(host: &Host, run_id: &str) {
    if let Err(e) = host.audit_sink().checkpoint("run-end") {
        tracing::error!(run = run_id, error = %e, "could not write the run's audit checkpoint");
    }
}

/// Why an operation did not happen (or, for the last two, did not fully happen).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Bad input: a file, an argument, a configuration, a stale saved plan. Nothing ran.
    #[error("{0}")]
    Input(String),
    /// An actions file with invalid actions, every problem listed. Nothing ran.
    #[error(transparent)]
    InvalidActions(#[from] SpecError),
    /// Another run holds the state's run lock. Nothing ran.
    #[error("{0}")]
    Busy(String),
    /// The blast-radius guard stopped the run before anything executed.
    #[error("{0}")]
    Refused(RunError),
    /// The state store failed during a run, so it may not record everything that ran.
    #[error(
        "the state store failed during the run, so it may not record everything that ran: {0}; the next apply proposes what state missed again, and the apps answer it idempotently (already present / already absent)"
    )]
    StateDuringRun(StateError),
    /// The job queue failed while a run waited for its workers.
    #[error("the job queue failed during the run: {0}")]
    QueueDuringRun(String),
    /// A decision stands in state but its audit record could not be written.
    #[error(
        "approval {approval} is {decision} in state but could not be audited: {error}; fix the audit sink and record the decision by hand"
    )]
    Unaudited {
        approval: i64,
        decision: &'static str,
        error: String,
    },
}

impl OpError {
    fn input(error: impl ToString) -> OpError {
        OpError::Input(error.to_string())
    }
}

impl From<StateError> for OpError {
    fn from(error: StateError) -> OpError {
        match error {
            locked @ StateError::Locked { .. } => OpError::Busy(locked.to_string()),
            other => OpError::Input(other.to_string()),
        }
    }
}

/// Where the policy, the people and the time of a policy operation come from. Unset files
/// default to the config's `[policy]` and `[people]` entries; an unset time is now.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub policy: Option<PathBuf>,
    pub directory: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub at: Option<DateTime<Utc>>,
}

/// `--at`: a date (YYYY-MM-DD) or an RFC 3339 time.
pub fn parse_at(text: &str) -> Result<DateTime<Utc>, OpError> {
    parse_time(text).ok_or_else(|| {
        OpError::Input(format!(
            "--at `{text}` is not a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })
}

/// A fresh run id, ordered by time.
pub fn new_run_id() -> String {
    format!("run-{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Who holds the run lock, as a refused run will show it.
pub fn lock_holder(what: &str) -> String {
    format!(
        "pid {} running {what} since {}",
        std::process::id(),
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// The config and its state store only: operations that record decisions or read state
/// need no plugins, so they do not pay for compiling them.
pub fn open_state(config_path: &Path) -> Result<(Config, Arc<dyn StateStore>), OpError> {
    let config = Config::load(config_path).map_err(OpError::input)?;
    let store = open_store(&config)?;
    Ok((config, store))
}

/// For a one-off change outside a run (`portcullis grant`, `revoke`): the state's run
/// lock while it lasts, if the config's state exists. So a service or a run that holds
/// the state refuses it by name, instead of racing it.
pub fn hold_state_if_present(config: &Config, holder: &str) -> Result<Option<RunLock>, OpError> {
    if !config.state.exists() {
        return Ok(None);
    }
    Ok(Some(open_store(config)?.lock_run(holder)?))
}

/// The config's state store: PostgreSQL when `[state] url` is set (its password read from
/// its source now), else the SQLite file at `[state] path`.
pub fn open_store(config: &Config) -> Result<Arc<dyn StateStore>, OpError> {
    if let Some(url) = &config.state.url {
        let password = config.state.load_password().map_err(OpError::Input)?;
        let store = PgStore::open(url, password.as_ref()).map_err(OpError::input)?;
        return Ok(Arc::new(store));
    }
    let state_path = config
        .state
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("portcullis.db"));
    Ok(Arc::new(
        SqliteStore::open(&state_path).map_err(OpError::input)?,
    ))
}

/// A configuration with its plugins loaded and its state open: what every operation that
/// talks to apps works on. The CLI makes one per command; the service keeps one.
pub struct Workspace {
    pub config: Config,
    pub host: Arc<Host>,
    pub store: Arc<dyn StateStore>,
    /// On a PostgreSQL state: this process as a worker of the pool. Runs then carry out
    /// their actions through the job queue.
    pub pool: Option<Arc<crate::queue::Pool>>,
    runs: Runs,
}

/// How runs of this workspace exclude each other.
enum Runs {
    /// Each run takes the state's run lock (one process per run: the CLI).
    PerRun,
    /// Each run takes the state's run lock, waiting for it while another worker's run
    /// holds it (workers and services of a pool: scheduled runs queue behind each other
    /// across processes).
    Waiting,
    /// The workspace holds the run lock for its whole life (the service), so no other
    /// process changes apps meanwhile; its own runs take turns.
    Owned {
        _lock: RunLock,
        turn: Arc<tokio::sync::Mutex<()>>,
    },
}

/// What keeps a run exclusive until it is dropped.
pub(crate) enum RunHold {
    Lock {
        _held: RunLock,
    },
    Turn {
        _held: tokio::sync::OwnedMutexGuard<()>,
    },
}

impl Workspace {
    /// Loads the config, builds the host (plugins compiled or taken from the compile
    /// cache) and opens the state store.
    pub fn open(config_path: &Path) -> Result<Workspace, OpError> {
        let (mut config, store) = open_state(config_path)?;
        if config.runtime.cache_dir.is_none() {
            config.runtime.cache_dir = crate::cache::CompileCache::default_dir();
        }
        let host = Host::builder(config.clone())
            .build()
            .map_err(OpError::input)?;
        let pool_of = config.state.url.clone();
        let mut workspace = Workspace::new(config, Arc::new(host), store);
        // A PostgreSQL state is shared: this process works its runs through the pool.
        if let Some(url) = pool_of {
            let password = workspace
                .config
                .state
                .load_password()
                .map_err(OpError::Input)?;
            let pg = crate::state::pg_config(&url, password.as_ref()).map_err(OpError::input)?;
            workspace.join_pool(pg, &crate::state::pg::pg_db_label(&url));
        }
        Ok(workspace)
    }

    /// [`Workspace::open`], then the upgrade review of every app's plugin
    /// ([`upgrades::review_host`]): a version that widens what its plugin may do without
    /// an operator's acceptance is refused, naming what it adds.
    pub async fn open_reviewed(config_path: &Path) -> Result<Workspace, OpError> {
        let workspace = Workspace::open(config_path)?;
        upgrades::review_host(&workspace.host, workspace.store.as_ref()).await?;
        Ok(workspace)
    }

    /// A workspace from parts already built (the service, tests).
    pub fn new(config: Config, host: Arc<Host>, store: Arc<dyn StateStore>) -> Workspace {
        Workspace {
            config,
            host,
            store,
            pool: None,
            runs: Runs::PerRun,
        }
    }

    /// Makes this process a worker of the pool of the PostgreSQL database `pg` (named
    /// `db` in messages): its runs go through the job queue, its apps take their rates
    /// from the shared buckets.
    pub fn join_pool(&mut self, pg: tokio_postgres::Config, db: &str) {
        let pool = crate::queue::Pool::new(
            pg,
            db,
            Arc::clone(&self.host),
            Arc::clone(&self.store),
            self.config.engine.clone(),
            self.config.queue.worker_options(),
        );
        self.pool = Some(Arc::new(pool));
    }

    /// For long-running members of a pool (`serve`, `worker`): a run waits for the run
    /// lock instead of being refused while another worker's run holds it.
    pub fn wait_for_runs(&mut self) {
        if matches!(self.runs, Runs::PerRun) {
            self.runs = Runs::Waiting;
        }
    }

    /// Takes the state's run lock for as long as this workspace lives, naming `holder`
    /// (the service and its address): runs that change apps from any other process are
    /// refused with that name until it stops.
    pub fn own_state(&mut self, holder: &str) -> Result<(), OpError> {
        let lock = self.store.lock_run(holder)?;
        self.runs = Runs::Owned {
            _lock: lock,
            turn: Arc::new(tokio::sync::Mutex::new(())),
        };
        Ok(())
    }

    /// Exclusive use of the apps for one run: the run lock, or the owner's next turn
    /// (waited for: scheduled and requested runs queue behind each other).
    /// Whoever holds it first settles what a run that was cut off left in flight
    /// ([`Workspace::recover`]), so every plan starts from what the apps really hold.
    pub(crate) async fn hold_run(&self, holder: &str) -> Result<RunHold, OpError> {
        let hold = match &self.runs {
            Runs::PerRun => RunHold::Lock {
                _held: self.store.lock_run(holder)?,
            },
            Runs::Waiting => loop {
                match self.store.lock_run(holder) {
                    Ok(held) => break RunHold::Lock { _held: held },
                    Err(StateError::Locked { .. }) => {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            },
            Runs::Owned { turn, .. } => RunHold::Turn {
                _held: Arc::clone(turn).lock_owned().await,
            },
        };
        self.recover().await?;
        Ok(hold)
    }

    /// The configured apps, or the named ones if each is configured.
    pub fn select_apps(&self, names: &[String]) -> Result<Vec<String>, OpError> {
        if names.is_empty() {
            return Ok(self.config.apps.keys().cloned().collect());
        }
        for app in names {
            if !self.config.apps.contains_key(app) {
                return Err(OpError::Input(format!(
                    "no app named `{app}` is configured (configured: {})",
                    self.config
                        .apps
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(names.to_vec())
    }
}
