//! [`StateStore`] on a local SQLite file (rusqlite, SQLite bundled into the binary).
//!
//! One connection behind a mutex: Portcullis is one process doing a few hundred writes per
//! run, so a pool would add nothing but lock contention inside SQLite. Another process
//! (a second `portcullis` command) may use the same file: WAL lets it read while we write,
//! writes take the lock up front (`BEGIN IMMEDIATE`) and wait up to [`BUSY_TIMEOUT`] for it.
//!
//! Schema changes are numbered migrations in `migrations/` (rusqlite_migration, which
//! records the version in `PRAGMA user_version`). Migrations are only ever appended.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use rusqlite::types::Type;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Params, Row, Statement, Transaction,
    TransactionBehavior, params,
};
use rusqlite_migration::{M, Migrations};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    ActionRecord, Approval, ApprovalStatus, DesiredRow, Hold, Intent, ManagedGrant, NewApproval,
    ObservedGrant, ObservedListing, PersonRecord, PluginVersion, ReceivedHrEvent, RunLock,
    RunRecord, StateError, StateStore, Target, UsageRecord, checks, lockfile,
};

/// Every schema version, in order. Append only: a released migration never changes.
const MIGRATION_LIST: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_initial.sql")),
    M::up(include_str!("migrations/0002_observed_listings.sql")),
    M::up(include_str!("migrations/0003_run_as_of.sql")),
    M::up(include_str!("migrations/0004_hr_events.sql")),
    M::up(include_str!("migrations/0005_intents.sql")),
    M::up(include_str!("migrations/0006_plugin_versions.sql")),
    M::up(include_str!("migrations/0007_set_level_actions.sql")),
];
const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// `PRAGMA application_id` of a Portcullis state file ("PCUL"), so that a SQLite file of
/// another program is recognised and left alone rather than migrated.
const APPLICATION_ID: i32 = 0x5043_554C;

/// What a refused file should do, for [`StateError::NotADatabase`].
const FOREIGN_FIX: &str = "check the state path; to start afresh, move the file aside and portcullis will create a new database there";

/// How long a write waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The state store on a SQLite database file (or in memory, for tests).
#[derive(Debug)]
pub struct SqliteStore {
    /// The path as given, for messages.
    db: String,
    /// The database file (None in memory): its run lock lives beside it.
    path: Option<PathBuf>,
    /// The run lock of an in-memory store.
    memory_lock: Arc<AtomicBool>,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// The schema version this binary creates and understands.
    pub const SCHEMA_VERSION: usize = MIGRATION_LIST.len();

    /// Open the state database at `path`, creating it (and its directory) on first use and
    /// bringing its schema up to date. Refuses a file that is not a Portcullis state
    /// database and one written by a newer Portcullis.
    pub fn open(path: &Path) -> Result<SqliteStore, StateError> {
        let db = path.display().to_string();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
                db: db.clone(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| open_error(&db, e))?;
        SqliteStore::init(db, Some(path.to_path_buf()), conn)
    }

    /// A fresh database in memory, gone when the store is dropped.
    pub fn open_in_memory() -> Result<SqliteStore, StateError> {
        let db = ":memory:".to_string();
        let conn = Connection::open_in_memory().map_err(|e| open_error(&db, e))?;
        SqliteStore::init(db, None, conn)
    }

    /// The database as named in messages (the path given to [`SqliteStore::open`]).
    pub fn db(&self) -> &str {
        &self.db
    }

    fn init(
        db: String,
        path: Option<PathBuf>,
        mut conn: Connection,
    ) -> Result<SqliteStore, StateError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(&db, e))?;
        // Per connection, off by default in SQLite: actions must belong to a run.
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|e| open_error(&db, e))?;
        // WAL without an fsync per commit: a crash cannot corrupt the file, and a power
        // loss can only drop the last commits, which the next plan heals (a grant made but
        // not recorded is found present and recorded; a revoke is found absent). Measured
        // 150 us per recorded grant with FULL, which dominates large applies
        // (`cargo bench -p portcullis --bench plan`).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_error(&db, e))?;

        // The first statement that reads the file: a file that is not SQLite fails here.
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| open_error(&db, e))?;
        let application_id: i32 = conn
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(|e| open_error(&db, e))?;
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| open_error(&db, e))?;

        if application_id != 0 && application_id != APPLICATION_ID {
            return Err(StateError::NotADatabase {
                fix: FOREIGN_FIX.to_owned(),
                db,
                problem: format!(
                    "it is the SQLite database of another program (application_id {application_id:#x})"
                ),
            });
        }
        if found == 0 && tables > 0 {
            return Err(StateError::NotADatabase {
                fix: FOREIGN_FIX.to_owned(),
                db,
                problem: format!(
                    "it is a SQLite database with {tables} tables of its own and no Portcullis schema"
                ),
            });
        }
        if found < 0 {
            return Err(StateError::NotADatabase {
                fix: FOREIGN_FIX.to_owned(),
                db,
                problem: format!("its schema version is {found}"),
            });
        }
        // Checked before migrating: rusqlite_migration would refuse too, but with a message
        // that does not say what to do.
        if found > SqliteStore::SCHEMA_VERSION as i64 {
            return Err(StateError::TooNew {
                db,
                found,
                known: SqliteStore::SCHEMA_VERSION,
            });
        }
        // Only now that the file is known to be ours (or empty): WAL is a persistent
        // property of the file, so a foreign database is refused before it is changed. In
        // memory the answer is "memory", which is fine.
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| open_error(&db, e))?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|e| StateError::Migrate {
                db: db.clone(),
                from: found,
                to: SqliteStore::SCHEMA_VERSION,
                source: Box::new(e),
            })?;
        if application_id == 0 {
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|e| StateError::Migrate {
                    db: db.clone(),
                    from: found,
                    to: SqliteStore::SCHEMA_VERSION,
                    source: Box::new(e),
                })?;
        }
        Ok(SqliteStore {
            db,
            path,
            memory_lock: Arc::new(AtomicBool::new(false)),
            conn: Mutex::new(conn),
        })
    }

    /// Run `f` on the connection; a single statement is atomic by itself.
    fn read<T>(
        &self,
        op: impl Into<String>,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, StateError> {
        let conn = self.conn.lock();
        f(&conn).map_err(|e| self.error(op.into(), e))
    }

    /// Run `f` in one write transaction, committed only if `f` succeeds. IMMEDIATE takes
    /// the write lock up front: a deferred transaction upgrading to a writer while another
    /// process writes fails at once with SQLITE_BUSY instead of waiting.
    fn write<T>(
        &self,
        op: impl Into<String>,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, Fail>,
    ) -> Result<T, StateError> {
        let mut conn = self.conn.lock();
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|e| self.error(op.into(), e))
    }

    fn error(&self, op: String, fail: Fail) -> StateError {
        let db = self.db.clone();
        match fail {
            Fail::Sql(e) => StateError::Backend {
                db,
                op,
                source: Box::new(e),
            },
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
        }
    }
}

/// Why an operation failed, before the database and operation names are added.
enum Fail {
    Sql(rusqlite::Error),
    Invalid(String),
    NotFound(String),
    AlreadyDecided {
        id: i64,
        status: ApprovalStatus,
        decision: String,
    },
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Sql(e)
    }
}

fn open_error(db: &str, e: rusqlite::Error) -> StateError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StateError::NotADatabase {
            fix: FOREIGN_FIX.to_owned(),
            db: db.to_string(),
            problem: format!("SQLite says: {e}"),
        },
        Some(ErrorCode::DatabaseCorrupt) => StateError::NotADatabase {
            fix: FOREIGN_FIX.to_owned(),
            db: db.to_string(),
            problem: format!("SQLite says it is damaged: {e}"),
        },
        _ => StateError::Open {
            db: db.to_string(),
            source: Box::new(e),
        },
    }
}

// ---- values in and out of columns ----

/// The stored form of a time: RFC 3339, UTC, fixed width (microseconds, always shown), so
/// that text order is time order.
fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn opt_ts(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(ts)
}

fn to_json(value: &impl Serialize) -> Result<String, Fail> {
    serde_json::to_string(value).map_err(|e| Fail::Invalid(format!("cannot encode JSON: {e}")))
}

/// A stored value the code cannot read back, naming the column.
fn bad_column(row: &Row<'_>, idx: usize, problem: impl Display) -> rusqlite::Error {
    let stmt: &Statement<'_> = row.as_ref();
    let column = stmt.column_name(idx).unwrap_or("?").to_string();
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        format!("column `{column}` holds an unreadable value: {problem}").into(),
    )
}

fn get_time(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(idx)?;
    parse_time(row, idx, &text)
}

fn get_opt_time(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|text| parse_time(row, idx, &text)).transpose()
}

fn parse_time(row: &Row<'_>, idx: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            bad_column(
                row,
                idx,
                format_args!("`{text}` is not an RFC 3339 time: {e}"),
            )
        })
}

fn get_json<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| bad_column(row, idx, e))
}

fn get_parsed<T: FromStr<Err = String>>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    text.parse().map_err(|e: String| bad_column(row, idx, e))
}

fn get_target(row: &Row<'_>, first: usize) -> rusqlite::Result<Target> {
    Ok(Target {
        app: row.get(first)?,
        kind: row.get(first + 1)?,
        resource: row.get(first + 2)?,
    })
}

fn list<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    f: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, Fail> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, f)?;
    Ok(rows.collect::<Result<Vec<T>, _>>()?)
}

// ---- rows ----

const PLUGIN_VERSION_COLUMNS: &str =
    "app, sha256, profile, status, previous, widened, seen_at, decided_at, decided_by";

fn plugin_version_row(row: &Row<'_>) -> rusqlite::Result<PluginVersion> {
    Ok(PluginVersion {
        app: row.get(0)?,
        sha256: row.get(1)?,
        profile: get_json(row, 2)?,
        status: get_parsed(row, 3)?,
        previous: row.get(4)?,
        widened: get_json(row, 5)?,
        seen_at: get_time(row, 6)?,
        decided_at: get_opt_time(row, 7)?,
        decided_by: row.get(8)?,
    })
}

const PERSON_COLUMNS: &str = "id, name, attributes, accounts, status, updated_at";

fn person_row(row: &Row<'_>) -> rusqlite::Result<PersonRecord> {
    Ok(PersonRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        attributes: get_json(row, 2)?,
        accounts: get_json(row, 3)?,
        status: row.get(4)?,
        updated_at: get_time(row, 5)?,
    })
}

const DESIRED_COLUMNS: &str =
    "person, app, kind, resource, level, rules, sensitive, policy_hash, computed_at";

fn desired_row(row: &Row<'_>) -> rusqlite::Result<DesiredRow> {
    Ok(DesiredRow {
        person: row.get(0)?,
        target: get_target(row, 1)?,
        level: row.get(4)?,
        rules: get_json(row, 5)?,
        sensitive: row.get(6)?,
        policy_hash: row.get(7)?,
        computed_at: get_time(row, 8)?,
    })
}

const MANAGED_COLUMNS: &str = "person, app, kind, resource, subject, level, rules, status, \
     granted_at, expires_at, policy_hash, run_id";

fn managed_row(row: &Row<'_>) -> rusqlite::Result<ManagedGrant> {
    Ok(ManagedGrant {
        person: row.get(0)?,
        target: get_target(row, 1)?,
        subject: row.get(4)?,
        level: row.get(5)?,
        rules: get_json(row, 6)?,
        status: get_parsed(row, 7)?,
        granted_at: get_time(row, 8)?,
        expires_at: get_opt_time(row, 9)?,
        policy_hash: row.get(10)?,
        run_id: row.get(11)?,
    })
}

const HOLD_COLUMNS: &str = "person, app, kind, resource, reason, since, detail";

fn hold_row(row: &Row<'_>) -> rusqlite::Result<Hold> {
    Ok(Hold {
        person: row.get(0)?,
        target: get_target(row, 1)?,
        reason: get_parsed(row, 4)?,
        since: get_time(row, 5)?,
        detail: row.get(6)?,
    })
}

/// Adds or updates each grant of a listing, stamped `observed_at`; the later of two rows
/// for the same (resource, subject) wins.
fn upsert_observed(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    kind: &str,
    observed_at: &str,
    grants: &[ObservedGrant],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO observed (app, kind, resource, subject, level, pending,
                               last_used_at, observed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (app, kind, resource, subject) DO UPDATE SET
             level = excluded.level, pending = excluded.pending,
             last_used_at = excluded.last_used_at, observed_at = excluded.observed_at",
    )?;
    for grant in grants {
        stmt.execute(params![
            app,
            kind,
            grant.target.resource,
            grant.subject,
            grant.level,
            grant.pending,
            opt_ts(&grant.last_used_at),
            observed_at,
        ])?;
    }
    Ok(())
}

/// Records how (app, kind) was last listed: complete when `partial_reason` is `None`.
fn record_listing(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    kind: &str,
    listed_at: &str,
    partial_reason: Option<&str>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO observed_listings (app, kind, listed_at, complete, reason)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (app, kind) DO UPDATE SET listed_at = excluded.listed_at,
             complete = excluded.complete, reason = excluded.reason",
    )?
    .execute(params![
        app,
        kind,
        listed_at,
        partial_reason.is_none(),
        partial_reason
    ])?;
    Ok(())
}

const OBSERVED_COLUMNS: &str =
    "app, kind, resource, subject, level, pending, last_used_at, observed_at";

fn observed_row(row: &Row<'_>) -> rusqlite::Result<ObservedGrant> {
    Ok(ObservedGrant {
        target: get_target(row, 0)?,
        subject: row.get(3)?,
        level: row.get(4)?,
        pending: row.get(5)?,
        last_used_at: get_opt_time(row, 6)?,
        observed_at: get_time(row, 7)?,
    })
}

const USAGE_COLUMNS: &str = "app, kind, resource, subject, last_used_at";

fn usage_row(row: &Row<'_>) -> rusqlite::Result<UsageRecord> {
    Ok(UsageRecord {
        app: row.get(0)?,
        kind: row.get(1)?,
        resource: row.get(2)?,
        subject: row.get(3)?,
        last_used_at: get_time(row, 4)?,
    })
}

const RUN_COLUMNS: &str = "id, started_at, finished_at, policy_hash, summary, as_of";

fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: row.get(0)?,
        started_at: get_time(row, 1)?,
        finished_at: get_opt_time(row, 2)?,
        policy_hash: row.get(3)?,
        summary: get_json(row, 4)?,
        as_of: get_opt_time(row, 5)?,
    })
}

const ACTION_COLUMNS: &str = "run_id, idx, idempotency_key, op, person, app, kind, resource, \
     subject, level, reason, outcome, attempts, detail, finished_at";

fn action_row(row: &Row<'_>) -> rusqlite::Result<ActionRecord> {
    Ok(ActionRecord {
        run_id: row.get(0)?,
        index: row.get(1)?,
        idempotency_key: row.get(2)?,
        op: row.get(3)?,
        person: row.get(4)?,
        target: get_target(row, 5)?,
        subject: row.get(8)?,
        level: row.get(9)?,
        reason: row.get(10)?,
        outcome: row.get(11)?,
        attempts: row.get(12)?,
        detail: get_json(row, 13)?,
        finished_at: get_time(row, 14)?,
    })
}

const APPROVAL_COLUMNS: &str = "id, person, op, app, kind, resource, subject, level, rules, \
     why, status, requested_at, decided_by, decision_reason, decided_at, policy_hash";

fn approval_row(row: &Row<'_>) -> rusqlite::Result<Approval> {
    Ok(Approval {
        id: row.get(0)?,
        person: row.get(1)?,
        op: row.get(2)?,
        target: get_target(row, 3)?,
        subject: row.get(6)?,
        level: row.get(7)?,
        rules: get_json(row, 8)?,
        why: row.get(9)?,
        status: get_parsed(row, 10)?,
        requested_at: get_time(row, 11)?,
        decided_by: row.get(12)?,
        decision_reason: row.get(13)?,
        decided_at: get_opt_time(row, 14)?,
        policy_hash: row.get(15)?,
    })
}

fn approval_by_id(conn: &Connection, id: i64) -> Result<Option<Approval>, Fail> {
    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], approval_row)
        .optional()?)
}

impl StateStore for SqliteStore {
    fn upsert_people(&self, people: &[PersonRecord]) -> Result<(), StateError> {
        self.write("record people", |tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO people (id, name, attributes, accounts, status, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET
                     name = excluded.name, attributes = excluded.attributes,
                     accounts = excluded.accounts, status = excluded.status,
                     updated_at = excluded.updated_at",
            )?;
            for person in people {
                checks::person_status(person).map_err(Fail::Invalid)?;
                stmt.execute(params![
                    person.id,
                    person.name,
                    to_json(&person.attributes)?,
                    to_json(&person.accounts)?,
                    person.status,
                    ts(&person.updated_at),
                ])?;
            }
            Ok(())
        })
    }

    fn people(&self) -> Result<Vec<PersonRecord>, StateError> {
        self.read("read people", |conn| {
            list(
                conn,
                &format!("SELECT {PERSON_COLUMNS} FROM people ORDER BY id"),
                [],
                person_row,
            )
        })
    }

    fn replace_desired(
        &self,
        policy_hash: &str,
        computed_at: DateTime<Utc>,
        rows: &[DesiredRow],
    ) -> Result<(), StateError> {
        self.write("replace the desired state", |tx| {
            checks::unique_desired(rows).map_err(Fail::Invalid)?;
            tx.execute("DELETE FROM desired", [])?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO desired (person, app, kind, resource, level, rules, sensitive,
                                      policy_hash, computed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let computed_at = ts(&computed_at);
            for row in rows {
                stmt.execute(params![
                    row.person,
                    row.target.app,
                    row.target.kind,
                    row.target.resource,
                    row.level,
                    to_json(&row.rules)?,
                    row.sensitive,
                    policy_hash,
                    computed_at,
                ])?;
            }
            Ok(())
        })
    }

    fn desired(&self) -> Result<Vec<DesiredRow>, StateError> {
        self.read("read the desired state", |conn| {
            list(
                conn,
                &format!(
                    "SELECT {DESIRED_COLUMNS} FROM desired ORDER BY person, app, kind, resource"
                ),
                [],
                desired_row,
            )
        })
    }

    fn managed(&self) -> Result<Vec<ManagedGrant>, StateError> {
        self.read("read managed grants", |conn| {
            list(
                conn,
                &format!(
                    "SELECT {MANAGED_COLUMNS} FROM managed ORDER BY person, app, kind, resource"
                ),
                [],
                managed_row,
            )
        })
    }

    fn managed_count(&self) -> Result<usize, StateError> {
        self.read("count managed grants", |conn| {
            let count: i64 =
                conn.query_row("SELECT COUNT(*) FROM managed", [], |row| row.get(0))?;
            usize::try_from(count).map_err(|e| Fail::Invalid(format!("count {count}: {e}")))
        })
    }

    fn record_managed(&self, grant: &ManagedGrant) -> Result<(), StateError> {
        let op = format!(
            "record managed grant of {} for {}",
            grant.target, grant.person
        );
        self.write(op, |tx| {
            tx.prepare_cached(
                "INSERT INTO managed (person, app, kind, resource, subject, level, rules, status,
                                      granted_at, expires_at, policy_hash, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (person, app, kind, resource) DO UPDATE SET
                     subject = excluded.subject, level = excluded.level,
                     rules = excluded.rules, status = excluded.status,
                     granted_at = excluded.granted_at, expires_at = excluded.expires_at,
                     policy_hash = excluded.policy_hash, run_id = excluded.run_id",
            )?
            .execute(params![
                grant.person,
                grant.target.app,
                grant.target.kind,
                grant.target.resource,
                grant.subject,
                grant.level,
                to_json(&grant.rules)?,
                grant.status.as_str(),
                ts(&grant.granted_at),
                opt_ts(&grant.expires_at),
                grant.policy_hash,
                grant.run_id,
            ])?;
            Ok(())
        })
    }

    fn forget_managed(&self, person: &str, target: &Target) -> Result<bool, StateError> {
        let op = format!("forget managed grant of {target} for {person}");
        self.write(op, |tx| {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM managed
                     WHERE person = ?1 AND app = ?2 AND kind = ?3 AND resource = ?4",
                )?
                .execute(params![person, target.app, target.kind, target.resource])?;
            Ok(removed > 0)
        })
    }

    fn holds(&self) -> Result<Vec<Hold>, StateError> {
        self.read("read holds", |conn| {
            list(
                conn,
                &format!("SELECT {HOLD_COLUMNS} FROM holds ORDER BY person, app, kind, resource"),
                [],
                hold_row,
            )
        })
    }

    fn add_hold(&self, hold: &Hold) -> Result<(), StateError> {
        let op = format!("hold {} for {}", hold.target, hold.person);
        self.write(op, |tx| {
            tx.prepare_cached(
                "INSERT INTO holds (person, app, kind, resource, reason, since, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (person, app, kind, resource) DO UPDATE SET
                     reason = excluded.reason, since = excluded.since,
                     detail = excluded.detail",
            )?
            .execute(params![
                hold.person,
                hold.target.app,
                hold.target.kind,
                hold.target.resource,
                hold.reason.as_str(),
                ts(&hold.since),
                hold.detail,
            ])?;
            Ok(())
        })
    }

    fn clear_hold(&self, person: &str, target: &Target) -> Result<bool, StateError> {
        let op = format!("clear the hold on {target} for {person}");
        self.write(op, |tx| {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM holds
                     WHERE person = ?1 AND app = ?2 AND kind = ?3 AND resource = ?4",
                )?
                .execute(params![person, target.app, target.kind, target.resource])?;
            Ok(removed > 0)
        })
    }

    fn replace_observed(
        &self,
        app: &str,
        kind: &str,
        observed_at: DateTime<Utc>,
        grants: &[ObservedGrant],
    ) -> Result<(), StateError> {
        let op = format!("replace observed {kind} grants of {app}");
        self.write(op, |tx| {
            checks::listing(app, kind, grants).map_err(Fail::Invalid)?;
            tx.prepare_cached("DELETE FROM observed WHERE app = ?1 AND kind = ?2")?
                .execute(params![app, kind])?;
            let observed_at = ts(&observed_at);
            upsert_observed(tx, app, kind, &observed_at, grants)?;
            record_listing(tx, app, kind, &observed_at, None)?;
            Ok(())
        })
    }

    fn merge_partial_observed(
        &self,
        app: &str,
        kind: &str,
        observed_at: DateTime<Utc>,
        grants: &[ObservedGrant],
        reason: &str,
    ) -> Result<(), StateError> {
        let op = format!("merge a partial listing of {kind} grants of {app}");
        self.write(op, |tx| {
            checks::listing(app, kind, grants).map_err(Fail::Invalid)?;
            // Nothing is deleted: a grant missing from a partial listing may simply be on a
            // page that was never read.
            let observed_at = ts(&observed_at);
            upsert_observed(tx, app, kind, &observed_at, grants)?;
            record_listing(tx, app, kind, &observed_at, Some(reason))?;
            Ok(())
        })
    }

    fn record_hr_events(&self, events: &[ReceivedHrEvent]) -> Result<Vec<bool>, StateError> {
        self.write(format!("store {} HR events", events.len()), |tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO hr_events (id, person, received_at, source, entry)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
            )?;
            let mut new = Vec::with_capacity(events.len());
            for event in events {
                let inserted = insert.execute(params![
                    event.id,
                    event.person,
                    ts(&event.received_at),
                    event.source,
                    to_json(&event.entry)?,
                ])?;
                new.push(inserted == 1);
            }
            Ok(new)
        })
    }

    fn hr_events(&self) -> Result<Vec<ReceivedHrEvent>, StateError> {
        self.read("read received HR events", |conn| {
            list(
                conn,
                "SELECT id, person, received_at, source, entry FROM hr_events
                 ORDER BY received_at, id",
                [],
                |row| {
                    Ok(ReceivedHrEvent {
                        id: row.get(0)?,
                        person: row.get(1)?,
                        received_at: get_time(row, 2)?,
                        source: row.get(3)?,
                        entry: get_json(row, 4)?,
                    })
                },
            )
        })
    }

    fn observed_listings(&self) -> Result<Vec<ObservedListing>, StateError> {
        self.read("read observed listings", |conn| {
            list(
                conn,
                "SELECT app, kind, listed_at, complete, reason FROM observed_listings
                 ORDER BY app, kind",
                [],
                |row| {
                    Ok(ObservedListing {
                        app: row.get(0)?,
                        kind: row.get(1)?,
                        listed_at: get_time(row, 2)?,
                        complete: row.get(3)?,
                        reason: row.get(4)?,
                    })
                },
            )
        })
    }

    fn observed(&self) -> Result<Vec<ObservedGrant>, StateError> {
        self.read("read observed grants", |conn| {
            list(
                conn,
                &format!(
                    "SELECT {OBSERVED_COLUMNS} FROM observed ORDER BY app, kind, resource, subject"
                ),
                [],
                observed_row,
            )
        })
    }

    fn import_usage(&self, records: &[UsageRecord]) -> Result<usize, StateError> {
        self.write("import usage", |tx| {
            // Times are stored fixed-width, so comparing the text compares the times.
            let mut stmt = tx.prepare_cached(
                "INSERT INTO usage (app, kind, resource, subject, last_used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (app, kind, resource, subject) DO UPDATE SET
                     last_used_at = excluded.last_used_at
                 WHERE excluded.last_used_at > usage.last_used_at",
            )?;
            let mut changed = 0;
            for record in records {
                changed += stmt.execute(params![
                    record.app,
                    record.kind,
                    record.resource,
                    record.subject,
                    ts(&record.last_used_at),
                ])?;
            }
            Ok(changed)
        })
    }

    fn usage(&self) -> Result<Vec<UsageRecord>, StateError> {
        self.read("read usage", |conn| {
            list(
                conn,
                &format!("SELECT {USAGE_COLUMNS} FROM usage ORDER BY app, kind, resource, subject"),
                [],
                usage_row,
            )
        })
    }

    fn lock_run(&self, holder: &str) -> Result<RunLock, StateError> {
        match &self.path {
            Some(path) => lockfile::lock_beside(path, &self.db, holder),
            None => lockfile::lock_in_process(&self.memory_lock, &self.db, holder),
        }
    }

    fn begin_run(&self, run: &RunRecord) -> Result<(), StateError> {
        self.write(format!("begin run {}", run.id), |tx| {
            let existing = tx
                .prepare_cached("SELECT started_at FROM runs WHERE id = ?1")?
                .query_row([&run.id], |row| get_time(row, 0))
                .optional()?;
            if let Some(started_at) = existing {
                return Err(Fail::Invalid(checks::run_begun_twice(&run.id, &started_at)));
            }
            tx.prepare_cached(
                "INSERT INTO runs (id, started_at, finished_at, policy_hash, summary, as_of)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                run.id,
                ts(&run.started_at),
                opt_ts(&run.finished_at),
                run.policy_hash,
                to_json(&run.summary)?,
                opt_ts(&run.as_of),
            ])?;
            Ok(())
        })
    }

    fn finish_run(
        &self,
        id: &str,
        finished_at: DateTime<Utc>,
        summary: &serde_json::Value,
    ) -> Result<(), StateError> {
        self.write(format!("finish run {id}"), |tx| {
            let existing: Option<Option<DateTime<Utc>>> = tx
                .prepare_cached("SELECT finished_at FROM runs WHERE id = ?1")?
                .query_row([id], |row| get_opt_time(row, 0))
                .optional()?;
            match existing {
                None => return Err(Fail::NotFound(checks::run_to_finish(id))),
                Some(Some(at)) => {
                    return Err(Fail::Invalid(checks::run_finished_twice(id, &at)));
                }
                Some(None) => {}
            }
            tx.prepare_cached("UPDATE runs SET finished_at = ?2, summary = ?3 WHERE id = ?1")?
                .execute(params![id, ts(&finished_at), to_json(summary)?])?;
            Ok(())
        })
    }

    fn record_action(&self, action: &ActionRecord) -> Result<(), StateError> {
        let op = format!("record action {} of run {}", action.index, action.run_id);
        self.write(op, |tx| {
            checks::action_op(&format!("action {}", action.index), &action.op)
                .map_err(Fail::Invalid)?;
            let begun = tx
                .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
                .exists([&action.run_id])?;
            if !begun {
                return Err(Fail::NotFound(checks::run_of_action(&action.run_id)));
            }
            tx.prepare_cached(
                "INSERT INTO actions (run_id, idx, idempotency_key, op, person, app, kind,
                                      resource, subject, level, reason, outcome, attempts,
                                      detail, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (run_id, idx) DO UPDATE SET
                     idempotency_key = excluded.idempotency_key, op = excluded.op,
                     person = excluded.person, app = excluded.app, kind = excluded.kind,
                     resource = excluded.resource, subject = excluded.subject,
                     level = excluded.level, reason = excluded.reason,
                     outcome = excluded.outcome, attempts = excluded.attempts,
                     detail = excluded.detail, finished_at = excluded.finished_at",
            )?
            .execute(params![
                action.run_id,
                action.index,
                action.idempotency_key,
                action.op,
                action.person,
                action.target.app,
                action.target.kind,
                action.target.resource,
                action.subject,
                action.level,
                action.reason,
                action.outcome,
                action.attempts,
                to_json(&action.detail)?,
                ts(&action.finished_at),
            ])?;
            Ok(())
        })
    }

    fn record_intent(&self, intent: &Intent) -> Result<(), StateError> {
        let op = format!("record the intent of action {}", intent.idempotency_key);
        self.write(op, |tx| {
            tx.prepare_cached(
                "INSERT INTO intents (idempotency_key, run_id, idx, person, spec, change,
                                      policy_hash, as_of, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )?
            .execute(params![
                intent.idempotency_key,
                intent.run_id,
                intent.index,
                intent.person,
                to_json(&intent.spec)?,
                intent.change.as_ref().map(to_json).transpose()?,
                intent.policy_hash,
                ts(&intent.as_of),
                ts(&intent.started_at),
            ])?;
            Ok(())
        })
    }

    fn open_intents(&self) -> Result<Vec<Intent>, StateError> {
        self.read("read open intents", |conn| {
            list(
                conn,
                "SELECT idempotency_key, run_id, idx, person, spec, change, policy_hash, as_of,
                        started_at
                 FROM intents ORDER BY started_at, run_id, idx",
                [],
                |row| {
                    Ok(Intent {
                        idempotency_key: row.get(0)?,
                        run_id: row.get(1)?,
                        index: row.get(2)?,
                        person: row.get(3)?,
                        spec: get_json(row, 4)?,
                        change: match row.get::<_, Option<String>>(5)? {
                            None => None,
                            Some(_) => Some(get_json(row, 5)?),
                        },
                        policy_hash: row.get(6)?,
                        as_of: get_time(row, 7)?,
                        started_at: get_time(row, 8)?,
                    })
                },
            )
        })
    }

    fn close_intent(&self, idempotency_key: &str) -> Result<(), StateError> {
        let op = format!("settle the intent of action {idempotency_key}");
        self.write(op, |tx| {
            tx.prepare_cached("DELETE FROM intents WHERE idempotency_key = ?1")?
                .execute([idempotency_key])?;
            Ok(())
        })
    }

    fn record_plugin_version(&self, v: &PluginVersion) -> Result<(), StateError> {
        let op = format!("record plugin version {} of app {}", v.sha256, v.app);
        self.write(op, |tx| {
            tx.prepare_cached(
                "INSERT INTO plugin_versions (app, sha256, profile, status, previous, widened,
                                              seen_at, decided_at, decided_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (app, sha256) DO UPDATE SET
                    profile = excluded.profile, status = excluded.status,
                    previous = excluded.previous, widened = excluded.widened,
                    seen_at = excluded.seen_at, decided_at = excluded.decided_at,
                    decided_by = excluded.decided_by",
            )?
            .execute(params![
                v.app,
                v.sha256,
                to_json(&v.profile)?,
                v.status.as_str(),
                v.previous,
                to_json(&v.widened)?,
                ts(&v.seen_at),
                opt_ts(&v.decided_at),
                v.decided_by,
            ])?;
            Ok(())
        })
    }

    fn accepted_plugin(&self, app: &str) -> Result<Option<PluginVersion>, StateError> {
        self.read(format!("read the accepted plugin of app {app}"), |conn| {
            Ok(list(
                conn,
                &format!(
                    "SELECT {PLUGIN_VERSION_COLUMNS} FROM plugin_versions
                     WHERE app = ?1 AND status = 'accepted'
                     ORDER BY decided_at DESC, seen_at DESC LIMIT 1"
                ),
                [app],
                plugin_version_row,
            )?
            .pop())
        })
    }

    fn plugin_version(&self, app: &str, sha256: &str) -> Result<Option<PluginVersion>, StateError> {
        self.read(
            format!("read plugin version {sha256} of app {app}"),
            |conn| {
                Ok(list(
                    conn,
                    &format!(
                        "SELECT {PLUGIN_VERSION_COLUMNS} FROM plugin_versions
                     WHERE app = ?1 AND sha256 = ?2"
                    ),
                    [app, sha256],
                    plugin_version_row,
                )?
                .pop())
            },
        )
    }

    fn plugin_versions(&self) -> Result<Vec<PluginVersion>, StateError> {
        self.read("read plugin versions", |conn| {
            list(
                conn,
                &format!(
                    "SELECT {PLUGIN_VERSION_COLUMNS} FROM plugin_versions ORDER BY app, seen_at"
                ),
                [],
                plugin_version_row,
            )
        })
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StateError> {
        self.read("read runs", |conn| {
            list(
                conn,
                &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at, id"),
                [],
                run_row,
            )
        })
    }

    fn actions(&self, run_id: &str) -> Result<Vec<ActionRecord>, StateError> {
        self.read(format!("read the actions of run {run_id}"), |conn| {
            list(
                conn,
                &format!("SELECT {ACTION_COLUMNS} FROM actions WHERE run_id = ?1 ORDER BY idx"),
                [run_id],
                action_row,
            )
        })
    }

    fn request_approval(&self, new: &NewApproval) -> Result<Approval, StateError> {
        let op = format!(
            "request approval to {} {} for {}",
            new.op, new.target, new.person
        );
        self.write(op, |tx| {
            checks::approval_op("the request", &new.op).map_err(Fail::Invalid)?;
            // The same terms as the partial unique index approvals_one_open, so SQLite
            // answers from it.
            let open = tx
                .prepare_cached(&format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals
                     WHERE person = ?1 AND op = ?2 AND app = ?3 AND kind = ?4
                       AND resource = ?5 AND COALESCE(level, '') = COALESCE(?6, '')
                       AND status IN ('pending', 'approved')"
                ))?
                .query_row(
                    params![
                        new.person,
                        new.op,
                        new.target.app,
                        new.target.kind,
                        new.target.resource,
                        new.level,
                    ],
                    approval_row,
                )
                .optional()?;
            if let Some(open) = open {
                return Ok(open);
            }
            tx.prepare_cached(
                "INSERT INTO approvals (person, op, app, kind, resource, subject, level, rules,
                                        why, status, requested_at, policy_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                new.person,
                new.op,
                new.target.app,
                new.target.kind,
                new.target.resource,
                new.subject,
                new.level,
                to_json(&new.rules)?,
                new.why,
                ApprovalStatus::Pending.as_str(),
                ts(&new.requested_at),
                new.policy_hash,
            ])?;
            let id = tx.last_insert_rowid();
            approval_by_id(tx, id)?
                .ok_or_else(|| Fail::NotFound(format!("approval {id} right after inserting it")))
        })
    }

    fn approvals(&self, filter: Option<ApprovalStatus>) -> Result<Vec<Approval>, StateError> {
        self.read("read approvals", |conn| {
            let order = "ORDER BY person, app, kind, resource, op, id";
            match filter {
                None => list(
                    conn,
                    &format!("SELECT {APPROVAL_COLUMNS} FROM approvals {order}"),
                    [],
                    approval_row,
                ),
                Some(status) => list(
                    conn,
                    &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status = ?1 {order}"),
                    [status.as_str()],
                    approval_row,
                ),
            }
        })
    }

    fn approval(&self, id: i64) -> Result<Option<Approval>, StateError> {
        self.read(format!("read approval {id}"), |conn| {
            approval_by_id(conn, id)
        })
    }

    fn decide(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Approval, StateError> {
        let verb = if approve { "approve" } else { "deny" };
        self.write(format!("{verb} approval {id}"), |tx| {
            checks::approver(by).map_err(Fail::Invalid)?;
            let current =
                approval_by_id(tx, id)?.ok_or_else(|| Fail::NotFound(format!("approval {id}")))?;
            if current.status != ApprovalStatus::Pending {
                return Err(Fail::AlreadyDecided {
                    id,
                    status: current.status,
                    decision: checks::decision(&current),
                });
            }
            let status = if approve {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Denied
            };
            tx.prepare_cached(
                "UPDATE approvals
                 SET status = ?2, decided_by = ?3, decision_reason = ?4, decided_at = ?5
                 WHERE id = ?1",
            )?
            .execute(params![id, status.as_str(), by, reason, ts(&at)])?;
            approval_by_id(tx, id)?.ok_or_else(|| Fail::NotFound(format!("approval {id}")))
        })
    }

    fn mark_approval_done(&self, id: i64) -> Result<(), StateError> {
        self.write(format!("mark approval {id} done"), |tx| {
            let current =
                approval_by_id(tx, id)?.ok_or_else(|| Fail::NotFound(format!("approval {id}")))?;
            match current.status {
                ApprovalStatus::Done => Ok(()),
                ApprovalStatus::Approved => {
                    tx.prepare_cached("UPDATE approvals SET status = ?2 WHERE id = ?1")?
                        .execute(params![id, ApprovalStatus::Done.as_str()])?;
                    Ok(())
                }
                ApprovalStatus::Pending | ApprovalStatus::Denied => {
                    Err(Fail::Invalid(checks::not_approved(id, current.status)))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::HoldReason;
    use crate::state::suite::*;

    fn store() -> SqliteStore {
        SqliteStore::open_in_memory().expect("in-memory store")
    }

    // Every backend's contract, on an in-memory SQLite store.
    crate::state::suite::state_store_suite!(store());

    fn raw(store: &SqliteStore, sql: &str) -> String {
        store
            .conn
            .lock()
            .query_row(sql, [], |row| row.get(0))
            .expect("raw query")
    }

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS
            .validate()
            .expect("migrations apply to an empty database");
    }

    #[test]
    fn open_creates_the_directory_and_migrates_from_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/deeper/state.db");
        let store = SqliteStore::open(&path).expect("open");
        assert!(path.exists());
        assert_eq!(store.db(), path.display().to_string());
        let conn = store.conn.lock();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, SqliteStore::SCHEMA_VERSION as i64);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .expect("foreign_keys");
        assert_eq!(fk, 1);
        let app_id: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .expect("application_id");
        assert_eq!(app_id, APPLICATION_ID);
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let store = SqliteStore::open(&path).expect("open");
        let repo = target("github", "repository", "acme/api");
        store
            .upsert_people(&[person("E1001", "Platform")])
            .expect("people");
        store
            .replace_desired(
                "p1",
                at(1),
                &[desired("E1001", repo.clone(), Some("write"))],
            )
            .expect("desired");
        let mut grant = managed("E1001", repo.clone(), Some("write"));
        grant.expires_at = Some(at(9));
        store.record_managed(&grant).expect("managed");
        store
            .add_hold(&hold("E1001", repo.clone(), HoldReason::Dormant))
            .expect("hold");
        store
            .replace_observed(
                "github",
                "repository",
                at(1),
                &[observed(repo, "gh-E1001", None)],
            )
            .expect("observed");
        store
            .import_usage(&[usage("gh-E1001", "acme/api", at(-5))])
            .expect("usage");
        store.begin_run(&run("run-1", at(1))).expect("run");
        store
            .record_action(&action("run-1", 0, "verified"))
            .expect("action");
        store
            .finish_run("run-1", at(2), &json!({ "verified": 1 }))
            .expect("finish");
        let approval = store
            .request_approval(&new_approval("E1001", None))
            .expect("approval");

        let before = (
            store.people().expect("people"),
            store.desired().expect("desired"),
            store.managed().expect("managed"),
            store.holds().expect("holds"),
            store.observed().expect("observed"),
            store.usage().expect("usage"),
            store.runs().expect("runs"),
            store.actions("run-1").expect("actions"),
            store.approvals(None).expect("approvals"),
        );
        drop(store);

        let store = SqliteStore::open(&path).expect("reopen");
        let after = (
            store.people().expect("people"),
            store.desired().expect("desired"),
            store.managed().expect("managed"),
            store.holds().expect("holds"),
            store.observed().expect("observed"),
            store.usage().expect("usage"),
            store.runs().expect("runs"),
            store.actions("run-1").expect("actions"),
            store.approvals(None).expect("approvals"),
        );
        assert_eq!(before, after);
        assert_eq!(after.0, vec![person("E1001", "Platform")]);
        assert_eq!(after.2, vec![grant]);
        assert_eq!(after.8, vec![approval]);
        assert_eq!(store.managed_count().expect("count"), 1);
    }

    #[test]
    fn refuses_a_database_from_a_newer_portcullis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let newer = SqliteStore::SCHEMA_VERSION as i64 + 6;
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .conn
                .lock()
                .pragma_update(None, "user_version", newer)
                .expect("bump version");
        }
        let err = SqliteStore::open(&path).expect_err("newer schema refused");
        assert!(
            matches!(err, StateError::TooNew { found, known, .. } if found == newer && known == SqliteStore::SCHEMA_VERSION),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "state database {} is at schema version {newer}; this portcullis knows up to {}: upgrade portcullis",
                path.display(),
                SqliteStore::SCHEMA_VERSION
            )
        );
        // Untouched: still at the newer version.
        let conn = Connection::open(&path).expect("raw open");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, newer);
    }

    #[test]
    fn refuses_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        std::fs::write(&path, "people:\n  - E1001\n".repeat(100)).expect("write");
        let err = SqliteStore::open(&path).expect_err("not a database");
        assert!(matches!(err, StateError::NotADatabase { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "{} is not a Portcullis state database (SQLite says: file is not a database)",
                path.display()
            )),
            "{message}"
        );
        assert!(message.contains("move the file aside"), "{message}");
        // The file is left as it was.
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .starts_with("people:")
        );
    }

    #[test]
    fn refuses_another_programs_sqlite_database() {
        let dir = tempfile::tempdir().expect("tempdir");

        let tables = dir.path().join("other.db");
        Connection::open(&tables)
            .expect("raw open")
            .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
            .expect("create");
        let before = std::fs::read(&tables).expect("read");
        let err = SqliteStore::open(&tables).expect_err("foreign tables");
        assert_eq!(
            std::fs::read(&tables).expect("read"),
            before,
            "refused without a byte changed (no WAL switch, no migration)"
        );
        assert!(
            err.to_string()
                .contains("a SQLite database with 1 tables of its own and no Portcullis schema"),
            "{err}"
        );

        let tagged = dir.path().join("tagged.db");
        Connection::open(&tagged)
            .expect("raw open")
            .pragma_update(None, "application_id", 0x1234)
            .expect("tag");
        let err = SqliteStore::open(&tagged).expect_err("foreign application id");
        assert!(
            err.to_string()
                .contains("the SQLite database of another program (application_id 0x1234)"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_parent_that_cannot_be_created_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let path = file.join("sub/state.db");
        let err = SqliteStore::open(&path).expect_err("parent is a file");
        assert!(matches!(err, StateError::CreateDir { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn two_stores_share_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let a = SqliteStore::open(&path).expect("open a");
        let b = SqliteStore::open(&path).expect("open b");
        a.upsert_people(&[person("E1", "Data")]).expect("write a");
        b.upsert_people(&[person("E2", "Data")]).expect("write b");
        let ids: Vec<String> = a
            .people()
            .expect("read")
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["E1", "E2"]);
    }

    #[test]
    fn the_store_is_a_shareable_trait_object() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SqliteStore>();
        let store: Box<dyn StateStore> = Box::new(store());
        assert_eq!(store.managed_count().expect("count"), 0);
    }

    #[test]
    fn times_are_stored_as_fixed_width_rfc3339_utc() {
        let store = store();
        let precise = at(1) + chrono::Duration::nanoseconds(123_456_789);
        let mut record = person("E1", "Data");
        record.updated_at = precise;
        store.upsert_people(&[record]).expect("people");
        assert_eq!(
            raw(&store, "SELECT updated_at FROM people"),
            "2027-03-01T01:00:00.123456Z"
        );
        // Read back to the microsecond.
        assert_eq!(
            store.people().expect("people")[0].updated_at,
            at(1) + chrono::Duration::microseconds(123_456)
        );
        store.begin_run(&run("r", at(0))).expect("run");
        assert_eq!(
            raw(&store, "SELECT started_at FROM runs"),
            "2027-03-01T00:00:00.000000Z"
        );
        assert_eq!(raw(&store, "SELECT summary FROM runs"), "null");
    }

    #[test]
    fn lookups_use_their_indexes() {
        let store = store();
        let conn = store.conn.lock();
        let plan = |sql: &str| -> String {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            let details: Vec<String> = stmt
                .query_map([], |row| row.get::<_, String>(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            details.join("; ")
        };
        let open = plan(
            "SELECT id FROM approvals WHERE person = 'a' AND op = 'grant' AND app = 'b' \
             AND kind = 'c' AND resource = 'd' AND COALESCE(level, '') = COALESCE(NULL, '') \
             AND status IN ('pending', 'approved')",
        );
        assert!(open.contains("approvals_one_open"), "{open}");
        let by_status = plan(
            "SELECT id FROM approvals WHERE status = 'pending' \
             ORDER BY person, app, kind, resource, op, id",
        );
        assert!(by_status.contains("approvals_by_status"), "{by_status}");
        assert!(!by_status.contains("TEMP B-TREE"), "{by_status}");
        let managed = plan("SELECT * FROM managed ORDER BY person, app, kind, resource");
        assert!(!managed.contains("TEMP B-TREE"), "{managed}");
        let observed = plan("DELETE FROM observed WHERE app = 'a' AND kind = 'b'");
        assert!(observed.contains("USING INDEX"), "{observed}");
        let actions = plan("SELECT * FROM actions WHERE run_id = 'r' ORDER BY idx");
        assert!(!actions.contains("TEMP B-TREE"), "{actions}");
        let runs = plan("SELECT * FROM runs ORDER BY started_at, id");
        assert!(runs.contains("runs_by_start"), "{runs}");
    }

    #[test]
    fn an_unreadable_stored_value_names_the_column() {
        let store = store();
        store
            .upsert_people(&[person("E1", "Data")])
            .expect("people");
        store
            .conn
            .lock()
            .execute("UPDATE people SET updated_at = 'yesterday'", [])
            .expect("corrupt");
        let err = store.people().expect_err("unreadable");
        let message = err.to_string();
        assert!(
            message.starts_with("cannot read people in :memory:: "),
            "{message}"
        );
        assert!(
            message.contains(
                "column `updated_at` holds an unreadable value: `yesterday` is not an RFC 3339 time"
            ),
            "{message}"
        );
    }

    #[test]
    fn one_run_at_a_time_per_state_file_and_a_refusal_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let first = SqliteStore::open(&path).expect("open");
        let second = SqliteStore::open(&path).expect("open again");

        let held = first
            .lock_run("pid 1 running `portcullis apply` since 2027-03-01T00:00:00Z")
            .expect("first run takes the lock");
        let refused = second.lock_run("pid 2").expect_err("second run refused");
        let message = refused.to_string();
        assert!(
            matches!(&refused, StateError::Locked { holder, .. }
                if holder == "pid 1 running `portcullis apply` since 2027-03-01T00:00:00Z"),
            "{message}"
        );
        assert!(message.contains("nothing was run"), "{message}");
        // Reading and writing state is not what the lock guards.
        second.upsert_people(&[person("p1", "eng")]).expect("write");
        assert!(lockfile::lock_path(&path).is_file());

        drop(held);
        let _again = second
            .lock_run("pid 2")
            .expect("free once the first run ends");
        assert!(matches!(
            first.lock_run("pid 3"),
            Err(StateError::Locked { holder, .. }) if holder == "pid 2"
        ));
    }
}
