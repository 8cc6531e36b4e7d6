//! [`StateStore`](super::StateStore) on PostgreSQL, for deployments where several hosts (or
//! workers) share one state. Same contract as the SQLite store, checked by the same suite
//! (`state/suite.rs`): the same refusals with the same problem texts, the same byte-wise
//! orders, the same upserts, one transaction per method.
//!
//! - `conn.rs`: the connection, owned by a thread of its own (the trait is synchronous and
//!   is called inside tokio, where the synchronous client cannot run); every method is one
//!   job, one transaction. Reconnects after a server restart; never repeats a statement.
//! - `store.rs`: the trait's methods, row by row.
//! - `lock.rs`: the run lock, a session advisory lock on a connection of its own that lives
//!   in the [`RunLock`](super::RunLock) guard.
//! - `migrations/`: numbered SQL files, applied on open in one transaction under an
//!   advisory lock so that workers starting together do not race; the version is recorded
//!   in `portcullis_schema`.
//!
//! Connections are plain TCP (`NoTls`): the database must be on loopback or a trusted
//! network. TLS is future work. The password comes from a secret source (`[state]
//! password = "env:NAME"`), never from the URL, and is in no message: databases are named
//! by their URL without it.

mod conn;
mod lock;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::{Host, SslMode};

use super::{ApprovalStatus, StateError};

/// Every schema version, in order: file `NNNN_*.sql` is version NNNN. Append only: a
/// released migration never changes, and each runs in the transaction that records it.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_queue.sql"),
];

/// The schema version this binary creates and understands.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The advisory lock (`pg_advisory_xact_lock`) migrations run under: "PCUL" and 1. Advisory
/// locks are per database, so one key serves every Portcullis database on a server.
const MIGRATION_LOCK_KEY: i64 = 0x5043_554C_0000_0001;

/// The advisory lock (`pg_try_advisory_lock`, held for the session) that is the run lock.
const RUN_LOCK_KEY: i64 = 0x5043_554C_0000_0002;

/// How long connecting may take before it counts as failed, unless the URL says
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long sent data may stay unacknowledged before the connection counts as dead, unless
/// the URL says (`tcp_user_timeout`): a statement on a vanished server fails instead of
/// hanging for the kernel's retransmission limit (about 15 minutes).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a refused database should do, for [`StateError::NotADatabase`].
const FOREIGN_FIX: &str = "check [state] url; to start afresh, point it at an empty database (CREATE DATABASE portcullis OWNER portcullis) and portcullis will create its tables there";

/// The state store on a PostgreSQL database.
pub struct PgStore {
    /// The URL without the password, for messages.
    db: String,
    /// For the run lock's own connections.
    config: tokio_postgres::Config,
    actor: conn::Actor,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// The schema version this binary creates and understands.
    pub const SCHEMA_VERSION: usize = SCHEMA_VERSION;

    /// Opens the database at `url` (`postgres://user@host:port/db`, no password in it),
    /// logging in with `password` when given, and brings its schema up to date. Refuses a
    /// database that holds tables of its own but no Portcullis schema, and one written by
    /// a newer Portcullis.
    pub fn open(url: &str, password: Option<&SecretString>) -> Result<PgStore, StateError> {
        let config = pg_config(url, password)?;
        PgStore::open_config(pg_db_label(url), config)
    }

    /// [`PgStore::open`] with a connection config already made ([`pg_config`]); `db` names
    /// the database in messages and must not hold the password.
    pub fn open_config(db: String, config: tokio_postgres::Config) -> Result<PgStore, StateError> {
        let actor =
            conn::Actor::spawn("portcullis-state-pg", config.clone(), true).map_err(|fail| {
                StateError::Open {
                    db: db.clone(),
                    source: fail.into_source(),
                }
            })?;
        actor.call(migrate).map_err(|fail| match fail {
            Fail::Foreign(problem) => StateError::NotADatabase {
                db: db.clone(),
                problem,
                fix: FOREIGN_FIX.to_owned(),
            },
            Fail::TooNew(found) => StateError::TooNew {
                db: db.clone(),
                found,
                known: SCHEMA_VERSION,
            },
            Fail::Migrate { from, source } => StateError::Migrate {
                db: db.clone(),
                from,
                to: SCHEMA_VERSION,
                source: Box::new(PgError(source)),
            },
            other => StateError::Open {
                db: db.clone(),
                source: other.into_source(),
            },
        })?;
        Ok(PgStore { db, config, actor })
    }

    /// The database as named in messages: its URL without the password.
    pub fn db(&self) -> &str {
        &self.db
    }

    /// Runs `job` as one transaction; a failure is named with `op`.
    fn run<T: Send + 'static>(
        &self,
        op: impl Into<String>,
        job: impl FnOnce(&mut conn::Tx<'_>) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StateError> {
        self.actor
            .call(job)
            .map_err(|fail| fail.into_state_error(&self.db, op.into()))
    }
}

/// Brings the schema up to date, or refuses the database: the job [`PgStore::open`] runs.
fn migrate(tx: &mut conn::Tx<'_>) -> Result<(), Fail> {
    // Workers opening at once wait here for the first to finish migrating; the lock ends
    // with this transaction.
    tx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
    let has_schema: bool = tx
        .query_one("SELECT to_regclass('portcullis_schema') IS NOT NULL", &[])?
        .try_get(0)
        .map_err(Fail::Sql)?;
    let found: i64 = if has_schema {
        tx.query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM portcullis_schema",
            &[],
        )?
        .try_get(0)
        .map_err(Fail::Sql)?
    } else {
        // Never touch a database that is someone else's.
        let row = tx.query_one(
            "SELECT current_schema()::text, count(c.oid)
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[],
        )?;
        let schema: Option<String> = row.try_get(0).map_err(Fail::Sql)?;
        let tables: i64 = row.try_get(1).map_err(Fail::Sql)?;
        if tables > 0 {
            return Err(Fail::Foreign(format!(
                "it is a PostgreSQL database with {tables} tables of its own in schema {} and no Portcullis schema",
                schema.as_deref().unwrap_or("?")
            )));
        }
        0
    };
    if found > SCHEMA_VERSION as i64 {
        return Err(Fail::TooNew(found));
    }
    if found < 0 {
        return Err(Fail::Foreign(format!("its schema version is {found}")));
    }
    let migration_failed = |source| Fail::Migrate {
        from: found,
        source,
    };
    let sql_failed = |fail: Fail| match fail {
        Fail::Sql(source) => migration_failed(source),
        other => other,
    };
    if !has_schema {
        tx.batch(
            "CREATE TABLE portcullis_schema (
                 version     integer PRIMARY KEY,
                 applied_at  timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(sql_failed)?;
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.batch(sql).map_err(sql_failed)?;
        tx.execute(
            "INSERT INTO portcullis_schema (version) VALUES ($1)",
            &[&version],
        )
        .map_err(sql_failed)?;
        tracing::info!(version, "PostgreSQL state schema migrated");
    }
    Ok(())
}

/// The connection settings for the PostgreSQL database at `url` (checked as
/// [`check_url`] does), logging in with `password`: what [`PgStore::open`] connects with,
/// and what other users of the same database (the job queue's async connections) should
/// connect with. Always plain TCP ([`tokio_postgres::NoTls`]).
pub fn pg_config(
    url: &str,
    password: Option<&SecretString>,
) -> Result<tokio_postgres::Config, StateError> {
    let mut config = parse_url(url).map_err(|problem| StateError::Open {
        db: pg_db_label(url),
        source: format!("[state] url {problem}").into(),
    })?;
    if let Some(password) = password {
        config.password(password.expose_secret());
    }
    Ok(config)
}

/// Checks a `[state] url` without connecting: a `postgres://` URL with a host, no password
/// in it, no TLS asked for. The problem, when there is one, never repeats the URL.
pub fn check_url(url: &str) -> Result<(), String> {
    parse_url(url).map(|_| ())
}

/// `url` without its password and options: `postgres://user@host:port/db`, how messages
/// name the database.
pub fn pg_db_label(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(config) => label(&config),
        Err(_) => "the PostgreSQL database of [state] url".to_owned(),
    }
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    const EXAMPLE: &str = "write it like postgres://portcullis@db.internal:5432/portcullis";
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!("is not a postgres:// URL; {EXAMPLE}"));
    }
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("is not a valid PostgreSQL URL ({}); {EXAMPLE}", PgError(e)))?;
    if config.get_password().is_some() {
        return Err(
            "carries a password; remove it from the URL and set `password = \"env:NAME\"` (or `\"file:/path\"`) in [state]"
                .to_owned(),
        );
    }
    if config.get_hosts().is_empty() {
        return Err(format!("names no host; {EXAMPLE}"));
    }
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => {}
        _ => {
            return Err(
                "asks for TLS (sslmode), which Portcullis does not support yet: connect over loopback or a trusted network and remove sslmode"
                    .to_owned(),
            );
        }
    }
    config.ssl_mode(SslMode::Disable);
    if config.get_application_name().is_none() {
        config.application_name("portcullis");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    Ok(config)
}

/// `postgres://user@host:port/db` from a config (never its password).
fn label(config: &tokio_postgres::Config) -> String {
    let user = config.get_user();
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports
                .get(i)
                .or_else(|| (ports.len() == 1).then(|| &ports[0]))
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "postgres://{}{}/{}",
        user.map(|u| format!("{u}@")).unwrap_or_default(),
        hosts.join(","),
        config.get_dbname().or(user).unwrap_or("")
    )
}

/// A PostgreSQL error shown whole: `postgres::Error`'s own text is only its kind ("db
/// error"); the server's message (and detail, hint) is its cause.
#[derive(Debug)]
pub struct PgError(pub postgres::Error);

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", show(&self.0))
    }
}

// The causes are in the text already; an error reporter walking `source` would repeat them.
impl std::error::Error for PgError {}

/// An error and its causes on one line (the server's DETAIL and HINT on their own).
pub(crate) fn show(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a job failed, before the database and operation names are added.
enum Fail {
    /// A statement failed (refused by the server, or its connection broke mid-flight: then
    /// the transaction was rolled back).
    Sql(postgres::Error),
    /// The connection broke while committing: whether the transaction committed is
    /// unknown.
    Uncertain(postgres::Error),
    /// The first connection failed.
    Connect(postgres::Error),
    /// The connection was lost and could not be made again within the reconnect window.
    Reconnect {
        waited: Duration,
        source: postgres::Error,
    },
    /// The connection's thread is gone, or the connection (of the run lock) was lost.
    Gone(String),
    /// A stored value the code cannot read back.
    Unreadable(String),
    Invalid(String),
    NotFound(String),
    AlreadyDecided {
        id: i64,
        status: ApprovalStatus,
        decision: String,
    },
    /// Opening only: the database is not ours.
    Foreign(String),
    /// Opening only: the schema is newer than this binary knows.
    TooNew(i64),
    /// Opening only: a migration failed (and was rolled back).
    Migrate {
        from: i64,
        source: postgres::Error,
    },
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Fail {
        Fail::Sql(e)
    }
}

impl Fail {
    /// The failure says the session is gone, so its connection must not be used again.
    fn connection_lost(&self) -> bool {
        match self {
            Fail::Sql(e) | Fail::Uncertain(e) => conn::is_connection_lost(e),
            _ => false,
        }
    }

    /// The failure as the cause of a [`StateError`].
    fn into_source(self) -> super::BoxError {
        match self {
            Fail::Sql(e) | Fail::Connect(e) => Box::new(PgError(e)),
            Fail::Migrate { source, .. } => Box::new(PgError(source)),
            Fail::Uncertain(e) => format!(
                "the connection was lost while committing, so whether the change was made is unknown (read the state back before repeating it): {}",
                show(&e)
            )
            .into(),
            Fail::Reconnect { waited, source } => format!(
                "the connection to PostgreSQL was lost and could not be made again (tried for {:.1} s): {}",
                waited.as_secs_f64(),
                show(&source)
            )
            .into(),
            Fail::Gone(why) => why.into(),
            Fail::Unreadable(problem) | Fail::Invalid(problem) | Fail::NotFound(problem) => {
                problem.into()
            }
            Fail::Foreign(problem) => format!("not a Portcullis database: {problem}").into(),
            Fail::TooNew(found) => format!(
                "schema version {found} is newer than this portcullis knows ({SCHEMA_VERSION})"
            )
            .into(),
            Fail::AlreadyDecided { id, decision, .. } => {
                format!("approval {id} was already {decision}").into()
            }
        }
    }

    fn into_state_error(self, db: &str, op: String) -> StateError {
        let db = db.to_owned();
        match self {
            Fail::Invalid(problem) => StateError::Invalid { db, op, problem },
            Fail::NotFound(what) => StateError::NotFound { db, op, what },
            Fail::AlreadyDecided {
                id,
                status,
                decision,
            } => StateError::AlreadyDecided {
                db,
                op,
                id,
                status,
                decision,
            },
            other => StateError::Backend {
                db,
                op,
                source: other.into_source(),
            },
        }
    }
}
