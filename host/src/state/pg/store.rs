//! The [`StateStore`] methods on PostgreSQL: each one job on the store's connection, one
//! transaction (`conn.rs`). Inputs are copied into the job, which runs on the connection's
//! thread.
//!
//! Where SQLite gets isolation from its single writer (`BEGIN IMMEDIATE`), PostgreSQL's
//! READ COMMITTED needs it said: the snapshot replacements (desired, observed) lock their
//! tables against other writers (`EXCLUSIVE`, readers go on), read-modify-write methods
//! lock their row (`FOR UPDATE`), and inserts that must happen once use `ON CONFLICT` (an
//! approval request names the partial unique index of open requests, so two planners
//! racing get one request).

use std::str::FromStr;

use chrono::{DateTime, Timelike, Utc};
use postgres::Row;
use postgres::types::{FromSql, Json};

use super::conn::Tx;
use super::{Fail, PgStore, lock};
use crate::state::{
    ActionRecord, Approval, ApprovalStatus, DesiredRow, Hold, Intent, ManagedGrant, NewApproval,
    ObservedGrant, ObservedListing, PersonRecord, PluginVersion, ReceivedHrEvent, RunLock,
    RunRecord, StateError, StateStore, Target, UsageRecord, checks,
};

// ---- values in and out of columns ----

/// A time as stored: to the microsecond (finer digits dropped, as the SQLite store does).
fn us(t: &DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(*t)
}

fn opt_us(t: &Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.as_ref().map(us)
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, Fail> {
    row.try_get(idx).map_err(Fail::Sql)
}

/// A stored value the code cannot read back, naming the column.
fn unreadable(row: &Row, idx: usize, problem: impl std::fmt::Display) -> Fail {
    let column = row.columns().get(idx).map_or("?", |c| c.name());
    Fail::Unreadable(format!(
        "column `{column}` holds an unreadable value: {problem}"
    ))
}

fn parsed<T: FromStr<Err = String>>(row: &Row, idx: usize) -> Result<T, Fail> {
    let text: String = get(row, idx)?;
    text.parse().map_err(|e: String| unreadable(row, idx, e))
}

/// An index or count stored as bigint, read back as the u32 it was.
fn get_u32(row: &Row, idx: usize) -> Result<u32, Fail> {
    let value: i64 = get(row, idx)?;
    u32::try_from(value).map_err(|e| unreadable(row, idx, format_args!("{value}: {e}")))
}

fn get_target(row: &Row, first: usize) -> Result<Target, Fail> {
    Ok(Target {
        app: get(row, first)?,
        kind: get(row, first + 1)?,
        resource: get(row, first + 2)?,
    })
}

fn list<T>(
    tx: &mut Tx<'_>,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    f: fn(&Row) -> Result<T, Fail>,
) -> Result<Vec<T>, Fail> {
    tx.query(sql, params)?.iter().map(f).collect()
}

// ---- rows ----

const PERSON_COLUMNS: &str = "id, name, attributes, accounts, status, updated_at";

fn person_row(row: &Row) -> Result<PersonRecord, Fail> {
    Ok(PersonRecord {
        id: get(row, 0)?,
        name: get(row, 1)?,
        attributes: get(row, 2)?,
        accounts: get::<Json<_>>(row, 3)?.0,
        status: get(row, 4)?,
        updated_at: get(row, 5)?,
    })
}

const DESIRED_COLUMNS: &str =
    "person, app, kind, resource, level, rules, sensitive, policy_hash, computed_at";

fn desired_row(row: &Row) -> Result<DesiredRow, Fail> {
    Ok(DesiredRow {
        person: get(row, 0)?,
        target: get_target(row, 1)?,
        level: get(row, 4)?,
        rules: get(row, 5)?,
        sensitive: get(row, 6)?,
        policy_hash: get(row, 7)?,
        computed_at: get(row, 8)?,
    })
}

const MANAGED_COLUMNS: &str = "person, app, kind, resource, subject, level, rules, status, \
     granted_at, expires_at, policy_hash, run_id";

fn managed_row(row: &Row) -> Result<ManagedGrant, Fail> {
    Ok(ManagedGrant {
        person: get(row, 0)?,
        target: get_target(row, 1)?,
        subject: get(row, 4)?,
        level: get(row, 5)?,
        rules: get(row, 6)?,
        status: parsed(row, 7)?,
        granted_at: get(row, 8)?,
        expires_at: get(row, 9)?,
        policy_hash: get(row, 10)?,
        run_id: get(row, 11)?,
    })
}

const HOLD_COLUMNS: &str = "person, app, kind, resource, reason, since, detail";

fn hold_row(row: &Row) -> Result<Hold, Fail> {
    Ok(Hold {
        person: get(row, 0)?,
        target: get_target(row, 1)?,
        reason: parsed(row, 4)?,
        since: get(row, 5)?,
        detail: get(row, 6)?,
    })
}

const OBSERVED_COLUMNS: &str =
    "app, kind, resource, subject, level, pending, last_used_at, observed_at";

fn observed_row(row: &Row) -> Result<ObservedGrant, Fail> {
    Ok(ObservedGrant {
        target: get_target(row, 0)?,
        subject: get(row, 3)?,
        level: get(row, 4)?,
        pending: get(row, 5)?,
        last_used_at: get(row, 6)?,
        observed_at: get(row, 7)?,
    })
}

const USAGE_COLUMNS: &str = "app, kind, resource, subject, last_used_at";

fn usage_row(row: &Row) -> Result<UsageRecord, Fail> {
    Ok(UsageRecord {
        app: get(row, 0)?,
        kind: get(row, 1)?,
        resource: get(row, 2)?,
        subject: get(row, 3)?,
        last_used_at: get(row, 4)?,
    })
}

const RUN_COLUMNS: &str = "id, started_at, finished_at, policy_hash, summary, as_of";

fn run_row(row: &Row) -> Result<RunRecord, Fail> {
    Ok(RunRecord {
        id: get(row, 0)?,
        started_at: get(row, 1)?,
        finished_at: get(row, 2)?,
        policy_hash: get(row, 3)?,
        summary: get(row, 4)?,
        as_of: get(row, 5)?,
    })
}

const ACTION_COLUMNS: &str = "run_id, idx, idempotency_key, op, person, app, kind, resource, \
     subject, level, reason, outcome, attempts, detail, finished_at";

fn action_row(row: &Row) -> Result<ActionRecord, Fail> {
    Ok(ActionRecord {
        run_id: get(row, 0)?,
        index: get_u32(row, 1)?,
        idempotency_key: get(row, 2)?,
        op: get(row, 3)?,
        person: get(row, 4)?,
        target: get_target(row, 5)?,
        subject: get(row, 8)?,
        level: get(row, 9)?,
        reason: get(row, 10)?,
        outcome: get(row, 11)?,
        attempts: get_u32(row, 12)?,
        detail: get(row, 13)?,
        finished_at: get(row, 14)?,
    })
}

const INTENT_COLUMNS: &str =
    "idempotency_key, run_id, idx, person, spec, change, policy_hash, as_of, started_at";

fn intent_row(row: &Row) -> Result<Intent, Fail> {
    Ok(Intent {
        idempotency_key: get(row, 0)?,
        run_id: get(row, 1)?,
        index: get_u32(row, 2)?,
        person: get(row, 3)?,
        spec: get(row, 4)?,
        change: get(row, 5)?,
        policy_hash: get(row, 6)?,
        as_of: get(row, 7)?,
        started_at: get(row, 8)?,
    })
}

const PLUGIN_VERSION_COLUMNS: &str =
    "app, sha256, profile, status, previous, widened, seen_at, decided_at, decided_by";

fn plugin_version_row(row: &Row) -> Result<PluginVersion, Fail> {
    Ok(PluginVersion {
        app: get(row, 0)?,
        sha256: get(row, 1)?,
        profile: get(row, 2)?,
        status: parsed(row, 3)?,
        previous: get(row, 4)?,
        widened: get(row, 5)?,
        seen_at: get(row, 6)?,
        decided_at: get(row, 7)?,
        decided_by: get(row, 8)?,
    })
}

const APPROVAL_COLUMNS: &str = "id, person, op, app, kind, resource, subject, level, rules, \
     why, status, requested_at, decided_by, decision_reason, decided_at, policy_hash";

fn approval_row(row: &Row) -> Result<Approval, Fail> {
    Ok(Approval {
        id: get(row, 0)?,
        person: get(row, 1)?,
        op: get(row, 2)?,
        target: get_target(row, 3)?,
        subject: get(row, 6)?,
        level: get(row, 7)?,
        rules: get(row, 8)?,
        why: get(row, 9)?,
        status: parsed(row, 10)?,
        requested_at: get(row, 11)?,
        decided_by: get(row, 12)?,
        decision_reason: get(row, 13)?,
        decided_at: get(row, 14)?,
        policy_hash: get(row, 15)?,
    })
}

/// One approval, its row locked until the transaction ends when `for_update`.
fn approval_by_id(tx: &mut Tx<'_>, id: i64, for_update: bool) -> Result<Option<Approval>, Fail> {
    let sql = if for_update {
        format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1 FOR UPDATE")
    } else {
        format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1")
    };
    tx.query_opt(&sql, &[&id])?
        .as_ref()
        .map(approval_row)
        .transpose()
}

/// The open (pending or approved) request for the same change, if any: the terms of the
/// partial unique index `approvals_one_open`.
fn open_approval(tx: &mut Tx<'_>, new: &NewApproval) -> Result<Option<Approval>, Fail> {
    let sql = format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals
         WHERE person = $1 AND op = $2 AND app = $3 AND kind = $4 AND resource = $5
           AND COALESCE(level, '') = COALESCE($6, '') AND status IN ('pending', 'approved')"
    );
    tx.query_opt(
        &sql,
        &[
            &new.person,
            &new.op,
            &new.target.app,
            &new.target.kind,
            &new.target.resource,
            &new.level,
        ],
    )?
    .as_ref()
    .map(approval_row)
    .transpose()
}

/// Adds or updates each grant of a listing, stamped `observed_at`; the later of two rows
/// for the same (resource, subject) wins.
fn upsert_observed(
    tx: &mut Tx<'_>,
    app: &str,
    kind: &str,
    observed_at: &DateTime<Utc>,
    grants: &[ObservedGrant],
) -> Result<(), Fail> {
    for grant in grants {
        tx.execute(
            "INSERT INTO observed (app, kind, resource, subject, level, pending,
                                   last_used_at, observed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (app, kind, resource, subject) DO UPDATE SET
                 level = EXCLUDED.level, pending = EXCLUDED.pending,
                 last_used_at = EXCLUDED.last_used_at, observed_at = EXCLUDED.observed_at",
            &[
                &app,
                &kind,
                &grant.target.resource,
                &grant.subject,
                &grant.level,
                &grant.pending,
                &opt_us(&grant.last_used_at),
                observed_at,
            ],
        )?;
    }
    Ok(())
}

/// Records how (app, kind) was last listed: complete when `partial_reason` is `None`.
fn record_listing(
    tx: &mut Tx<'_>,
    app: &str,
    kind: &str,
    listed_at: &DateTime<Utc>,
    partial_reason: Option<&str>,
) -> Result<(), Fail> {
    tx.execute(
        "INSERT INTO observed_listings (app, kind, listed_at, complete, reason)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (app, kind) DO UPDATE SET listed_at = EXCLUDED.listed_at,
             complete = EXCLUDED.complete, reason = EXCLUDED.reason",
        &[
            &app,
            &kind,
            listed_at,
            &partial_reason.is_none(),
            &partial_reason,
        ],
    )?;
    Ok(())
}

/// Serialises the writers of a snapshot table (and its companions), letting readers on.
fn lock_for_replacement(tx: &mut Tx<'_>, tables: &str) -> Result<(), Fail> {
    tx.batch(&format!("LOCK TABLE {tables} IN EXCLUSIVE MODE"))
}

impl StateStore for PgStore {
    fn upsert_people(&self, people: &[PersonRecord]) -> Result<(), StateError> {
        let people = people.to_vec();
        self.run("record people", move |tx| {
            for person in &people {
                checks::person_status(person).map_err(Fail::Invalid)?;
                tx.execute(
                    "INSERT INTO people (id, name, attributes, accounts, status, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) DO UPDATE SET
                         name = EXCLUDED.name, attributes = EXCLUDED.attributes,
                         accounts = EXCLUDED.accounts, status = EXCLUDED.status,
                         updated_at = EXCLUDED.updated_at",
                    &[
                        &person.id,
                        &person.name,
                        &person.attributes,
                        &Json(&person.accounts),
                        &person.status,
                        &us(&person.updated_at),
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn people(&self) -> Result<Vec<PersonRecord>, StateError> {
        self.run("read people", |tx| {
            list(
                tx,
                &format!("SELECT {PERSON_COLUMNS} FROM people ORDER BY id"),
                &[],
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
        let (policy_hash, computed_at, rows) =
            (policy_hash.to_owned(), us(&computed_at), rows.to_vec());
        self.run("replace the desired state", move |tx| {
            checks::unique_desired(&rows).map_err(Fail::Invalid)?;
            lock_for_replacement(tx, "desired")?;
            tx.execute("DELETE FROM desired", &[])?;
            for row in &rows {
                tx.execute(
                    "INSERT INTO desired (person, app, kind, resource, level, rules, sensitive,
                                          policy_hash, computed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &row.person,
                        &row.target.app,
                        &row.target.kind,
                        &row.target.resource,
                        &row.level,
                        &row.rules,
                        &row.sensitive,
                        &policy_hash,
                        &computed_at,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn desired(&self) -> Result<Vec<DesiredRow>, StateError> {
        self.run("read the desired state", |tx| {
            list(
                tx,
                &format!(
                    "SELECT {DESIRED_COLUMNS} FROM desired ORDER BY person, app, kind, resource"
                ),
                &[],
                desired_row,
            )
        })
    }

    fn managed(&self) -> Result<Vec<ManagedGrant>, StateError> {
        self.run("read managed grants", |tx| {
            list(
                tx,
                &format!(
                    "SELECT {MANAGED_COLUMNS} FROM managed ORDER BY person, app, kind, resource"
                ),
                &[],
                managed_row,
            )
        })
    }

    fn managed_count(&self) -> Result<usize, StateError> {
        self.run("count managed grants", |tx| {
            let count: i64 = get(&tx.query_one("SELECT COUNT(*) FROM managed", &[])?, 0)?;
            usize::try_from(count).map_err(|e| Fail::Invalid(format!("count {count}: {e}")))
        })
    }

    fn record_managed(&self, grant: &ManagedGrant) -> Result<(), StateError> {
        let op = format!(
            "record managed grant of {} for {}",
            grant.target, grant.person
        );
        let grant = grant.clone();
        self.run(op, move |tx| {
            tx.execute(
                "INSERT INTO managed (person, app, kind, resource, subject, level, rules, status,
                                      granted_at, expires_at, policy_hash, run_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (person, app, kind, resource) DO UPDATE SET
                     subject = EXCLUDED.subject, level = EXCLUDED.level,
                     rules = EXCLUDED.rules, status = EXCLUDED.status,
                     granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at,
                     policy_hash = EXCLUDED.policy_hash, run_id = EXCLUDED.run_id",
                &[
                    &grant.person,
                    &grant.target.app,
                    &grant.target.kind,
                    &grant.target.resource,
                    &grant.subject,
                    &grant.level,
                    &grant.rules,
                    &grant.status.as_str(),
                    &us(&grant.granted_at),
                    &opt_us(&grant.expires_at),
                    &grant.policy_hash,
                    &grant.run_id,
                ],
            )?;
            Ok(())
        })
    }

    fn forget_managed(&self, person: &str, target: &Target) -> Result<bool, StateError> {
        let op = format!("forget managed grant of {target} for {person}");
        let (person, target) = (person.to_owned(), target.clone());
        self.run(op, move |tx| {
            let removed = tx.execute(
                "DELETE FROM managed
                 WHERE person = $1 AND app = $2 AND kind = $3 AND resource = $4",
                &[&person, &target.app, &target.kind, &target.resource],
            )?;
            Ok(removed > 0)
        })
    }

    fn holds(&self) -> Result<Vec<Hold>, StateError> {
        self.run("read holds", |tx| {
            list(
                tx,
                &format!("SELECT {HOLD_COLUMNS} FROM holds ORDER BY person, app, kind, resource"),
                &[],
                hold_row,
            )
        })
    }

    fn add_hold(&self, hold: &Hold) -> Result<(), StateError> {
        let op = format!("hold {} for {}", hold.target, hold.person);
        let hold = hold.clone();
        self.run(op, move |tx| {
            tx.execute(
                "INSERT INTO holds (person, app, kind, resource, reason, since, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (person, app, kind, resource) DO UPDATE SET
                     reason = EXCLUDED.reason, since = EXCLUDED.since,
                     detail = EXCLUDED.detail",
                &[
                    &hold.person,
                    &hold.target.app,
                    &hold.target.kind,
                    &hold.target.resource,
                    &hold.reason.as_str(),
                    &us(&hold.since),
                    &hold.detail,
                ],
            )?;
            Ok(())
        })
    }

    fn clear_hold(&self, person: &str, target: &Target) -> Result<bool, StateError> {
        let op = format!("clear the hold on {target} for {person}");
        let (person, target) = (person.to_owned(), target.clone());
        self.run(op, move |tx| {
            let removed = tx.execute(
                "DELETE FROM holds
                 WHERE person = $1 AND app = $2 AND kind = $3 AND resource = $4",
                &[&person, &target.app, &target.kind, &target.resource],
            )?;
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
        let (app, kind, observed_at, grants) = (
            app.to_owned(),
            kind.to_owned(),
            us(&observed_at),
            grants.to_vec(),
        );
        self.run(op, move |tx| {
            checks::listing(&app, &kind, &grants).map_err(Fail::Invalid)?;
            lock_for_replacement(tx, "observed, observed_listings")?;
            tx.execute(
                "DELETE FROM observed WHERE app = $1 AND kind = $2",
                &[&app, &kind],
            )?;
            upsert_observed(tx, &app, &kind, &observed_at, &grants)?;
            record_listing(tx, &app, &kind, &observed_at, None)
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
        let (app, kind, observed_at, grants, reason) = (
            app.to_owned(),
            kind.to_owned(),
            us(&observed_at),
            grants.to_vec(),
            reason.to_owned(),
        );
        self.run(op, move |tx| {
            checks::listing(&app, &kind, &grants).map_err(Fail::Invalid)?;
            // Nothing is deleted: a grant missing from a partial listing may simply be on a
            // page that was never read. The lock keeps a concurrent replacement of the same
            // listing from interleaving with the merge.
            lock_for_replacement(tx, "observed, observed_listings")?;
            upsert_observed(tx, &app, &kind, &observed_at, &grants)?;
            record_listing(tx, &app, &kind, &observed_at, Some(&reason))
        })
    }

    fn observed(&self) -> Result<Vec<ObservedGrant>, StateError> {
        self.run("read observed grants", |tx| {
            list(
                tx,
                &format!(
                    "SELECT {OBSERVED_COLUMNS} FROM observed ORDER BY app, kind, resource, subject"
                ),
                &[],
                observed_row,
            )
        })
    }

    fn observed_listings(&self) -> Result<Vec<ObservedListing>, StateError> {
        self.run("read observed listings", |tx| {
            list(
                tx,
                "SELECT app, kind, listed_at, complete, reason FROM observed_listings
                 ORDER BY app, kind",
                &[],
                |row| {
                    Ok(ObservedListing {
                        app: get(row, 0)?,
                        kind: get(row, 1)?,
                        listed_at: get(row, 2)?,
                        complete: get(row, 3)?,
                        reason: get(row, 4)?,
                    })
                },
            )
        })
    }

    fn record_hr_events(&self, events: &[ReceivedHrEvent]) -> Result<Vec<bool>, StateError> {
        let op = format!("store {} HR events", events.len());
        let events = events.to_vec();
        self.run(op, move |tx| {
            let mut new = Vec::with_capacity(events.len());
            for event in &events {
                let inserted = tx.execute(
                    "INSERT INTO hr_events (id, person, received_at, source, entry)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    &[
                        &event.id,
                        &event.person,
                        &us(&event.received_at),
                        &event.source,
                        &event.entry,
                    ],
                )?;
                new.push(inserted == 1);
            }
            Ok(new)
        })
    }

    fn hr_events(&self) -> Result<Vec<ReceivedHrEvent>, StateError> {
        self.run("read received HR events", |tx| {
            list(
                tx,
                "SELECT id, person, received_at, source, entry FROM hr_events
                 ORDER BY received_at, id",
                &[],
                |row| {
                    Ok(ReceivedHrEvent {
                        id: get(row, 0)?,
                        person: get(row, 1)?,
                        received_at: get(row, 2)?,
                        source: get(row, 3)?,
                        entry: get(row, 4)?,
                    })
                },
            )
        })
    }

    fn import_usage(&self, records: &[UsageRecord]) -> Result<usize, StateError> {
        let records = records.to_vec();
        self.run("import usage", move |tx| {
            let mut changed = 0;
            for record in &records {
                // A conflicting row whose time is not later is left alone and not counted.
                changed += tx.execute(
                    "INSERT INTO usage (app, kind, resource, subject, last_used_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (app, kind, resource, subject) DO UPDATE SET
                         last_used_at = EXCLUDED.last_used_at
                     WHERE EXCLUDED.last_used_at > usage.last_used_at",
                    &[
                        &record.app,
                        &record.kind,
                        &record.resource,
                        &record.subject,
                        &us(&record.last_used_at),
                    ],
                )?;
            }
            usize::try_from(changed).map_err(|e| Fail::Invalid(format!("count {changed}: {e}")))
        })
    }

    fn usage(&self) -> Result<Vec<UsageRecord>, StateError> {
        self.run("read usage", |tx| {
            list(
                tx,
                &format!("SELECT {USAGE_COLUMNS} FROM usage ORDER BY app, kind, resource, subject"),
                &[],
                usage_row,
            )
        })
    }

    fn lock_run(&self, holder: &str) -> Result<RunLock, StateError> {
        lock::take(&self.db, &self.config, holder)
    }

    fn begin_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let op = format!("begin run {}", run.id);
        let run = run.clone();
        self.run(op, move |tx| {
            let inserted = tx.execute(
                "INSERT INTO runs (id, started_at, finished_at, policy_hash, summary, as_of)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &run.id,
                    &us(&run.started_at),
                    &opt_us(&run.finished_at),
                    &run.policy_hash,
                    &run.summary,
                    &opt_us(&run.as_of),
                ],
            )?;
            if inserted == 0 {
                let existing =
                    tx.query_one("SELECT started_at FROM runs WHERE id = $1", &[&run.id])?;
                let started_at: DateTime<Utc> = get(&existing, 0)?;
                return Err(Fail::Invalid(checks::run_begun_twice(&run.id, &started_at)));
            }
            Ok(())
        })
    }

    fn finish_run(
        &self,
        id: &str,
        finished_at: DateTime<Utc>,
        summary: &serde_json::Value,
    ) -> Result<(), StateError> {
        let op = format!("finish run {id}");
        let (id, finished_at, summary) = (id.to_owned(), us(&finished_at), summary.clone());
        self.run(op, move |tx| {
            let existing = tx.query_opt(
                "SELECT finished_at FROM runs WHERE id = $1 FOR UPDATE",
                &[&id],
            )?;
            let Some(existing) = existing else {
                return Err(Fail::NotFound(checks::run_to_finish(&id)));
            };
            if let Some(at) = get::<Option<DateTime<Utc>>>(&existing, 0)? {
                return Err(Fail::Invalid(checks::run_finished_twice(&id, &at)));
            }
            tx.execute(
                "UPDATE runs SET finished_at = $2, summary = $3 WHERE id = $1",
                &[&id, &finished_at, &summary],
            )?;
            Ok(())
        })
    }

    fn record_action(&self, action: &ActionRecord) -> Result<(), StateError> {
        let op = format!("record action {} of run {}", action.index, action.run_id);
        let action = action.clone();
        self.run(op, move |tx| {
            checks::action_op(&format!("action {}", action.index), &action.op)
                .map_err(Fail::Invalid)?;
            let begun = tx
                .query_opt("SELECT 1 FROM runs WHERE id = $1", &[&action.run_id])?
                .is_some();
            if !begun {
                return Err(Fail::NotFound(checks::run_of_action(&action.run_id)));
            }
            tx.execute(
                "INSERT INTO actions (run_id, idx, idempotency_key, op, person, app, kind,
                                      resource, subject, level, reason, outcome, attempts,
                                      detail, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (run_id, idx) DO UPDATE SET
                     idempotency_key = EXCLUDED.idempotency_key, op = EXCLUDED.op,
                     person = EXCLUDED.person, app = EXCLUDED.app, kind = EXCLUDED.kind,
                     resource = EXCLUDED.resource, subject = EXCLUDED.subject,
                     level = EXCLUDED.level, reason = EXCLUDED.reason,
                     outcome = EXCLUDED.outcome, attempts = EXCLUDED.attempts,
                     detail = EXCLUDED.detail, finished_at = EXCLUDED.finished_at",
                &[
                    &action.run_id,
                    &i64::from(action.index),
                    &action.idempotency_key,
                    &action.op,
                    &action.person,
                    &action.target.app,
                    &action.target.kind,
                    &action.target.resource,
                    &action.subject,
                    &action.level,
                    &action.reason,
                    &action.outcome,
                    &i64::from(action.attempts),
                    &action.detail,
                    &us(&action.finished_at),
                ],
            )?;
            Ok(())
        })
    }

    fn record_intent(&self, intent: &Intent) -> Result<(), StateError> {
        let op = format!("record the intent of action {}", intent.idempotency_key);
        let intent = intent.clone();
        self.run(op, move |tx| {
            tx.execute(
                "INSERT INTO intents (idempotency_key, run_id, idx, person, spec, change,
                                      policy_hash, as_of, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                &[
                    &intent.idempotency_key,
                    &intent.run_id,
                    &i64::from(intent.index),
                    &intent.person,
                    &intent.spec,
                    &intent.change,
                    &intent.policy_hash,
                    &us(&intent.as_of),
                    &us(&intent.started_at),
                ],
            )?;
            Ok(())
        })
    }

    fn open_intents(&self) -> Result<Vec<Intent>, StateError> {
        self.run("read open intents", |tx| {
            list(
                tx,
                &format!("SELECT {INTENT_COLUMNS} FROM intents ORDER BY started_at, run_id, idx"),
                &[],
                intent_row,
            )
        })
    }

    fn close_intent(&self, idempotency_key: &str) -> Result<(), StateError> {
        let op = format!("settle the intent of action {idempotency_key}");
        let key = idempotency_key.to_owned();
        self.run(op, move |tx| {
            tx.execute("DELETE FROM intents WHERE idempotency_key = $1", &[&key])?;
            Ok(())
        })
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StateError> {
        self.run("read runs", |tx| {
            list(
                tx,
                &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at, id"),
                &[],
                run_row,
            )
        })
    }

    fn actions(&self, run_id: &str) -> Result<Vec<ActionRecord>, StateError> {
        let op = format!("read the actions of run {run_id}");
        let run_id = run_id.to_owned();
        self.run(op, move |tx| {
            list(
                tx,
                &format!("SELECT {ACTION_COLUMNS} FROM actions WHERE run_id = $1 ORDER BY idx"),
                &[&run_id],
                action_row,
            )
        })
    }

    fn record_plugin_version(&self, v: &PluginVersion) -> Result<(), StateError> {
        let op = format!("record plugin version {} of app {}", v.sha256, v.app);
        let v = v.clone();
        self.run(op, move |tx| {
            tx.execute(
                "INSERT INTO plugin_versions (app, sha256, profile, status, previous, widened,
                                              seen_at, decided_at, decided_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (app, sha256) DO UPDATE SET
                    profile = EXCLUDED.profile, status = EXCLUDED.status,
                    previous = EXCLUDED.previous, widened = EXCLUDED.widened,
                    seen_at = EXCLUDED.seen_at, decided_at = EXCLUDED.decided_at,
                    decided_by = EXCLUDED.decided_by",
                &[
                    &v.app,
                    &v.sha256,
                    &v.profile,
                    &v.status.as_str(),
                    &v.previous,
                    &v.widened,
                    &us(&v.seen_at),
                    &opt_us(&v.decided_at),
                    &v.decided_by,
                ],
            )?;
            Ok(())
        })
    }

    fn accepted_plugin(&self, app: &str) -> Result<Option<PluginVersion>, StateError> {
        let op = format!("read the accepted plugin of app {app}");
        let app = app.to_owned();
        self.run(op, move |tx| {
            // NULLS LAST: PostgreSQL puts NULLs first in descending order, SQLite last.
            Ok(list(
                tx,
                &format!(
                    "SELECT {PLUGIN_VERSION_COLUMNS} FROM plugin_versions
                     WHERE app = $1 AND status = 'accepted'
                     ORDER BY decided_at DESC NULLS LAST, seen_at DESC LIMIT 1"
                ),
                &[&app],
                plugin_version_row,
            )?
            .pop())
        })
    }

    fn plugin_version(&self, app: &str, sha256: &str) -> Result<Option<PluginVersion>, StateError> {
        let op = format!("read plugin version {sha256} of app {app}");
        let (app, sha256) = (app.to_owned(), sha256.to_owned());
        self.run(op, move |tx| {
            Ok(list(
                tx,
                &format!(
                    "SELECT {PLUGIN_VERSION_COLUMNS} FROM plugin_versions
                     WHERE app = $1 AND sha256 = $2"
                ),
                &[&app, &sha256],
                plugin_version_row,
            )?
            .pop())
        })
    }

    fn plugin_versions(&self) -> Result<Vec<PluginVersion>, StateError> {
        self.run("read plugin versions", |tx| {
            list(
                tx,
                &format!(
                    "SELECT {PLUGIN_VERSION_COLUMNS} FROM plugin_versions
                     ORDER BY app, seen_at, sha256"
                ),
                &[],
                plugin_version_row,
            )
        })
    }

    fn request_approval(&self, new: &NewApproval) -> Result<Approval, StateError> {
        let op = format!(
            "request approval to {} {} for {}",
            new.op, new.target, new.person
        );
        let new = new.clone();
        self.run(op, move |tx| {
            checks::approval_op("the request", &new.op).map_err(Fail::Invalid)?;
            if let Some(open) = open_approval(tx, &new)? {
                return Ok(open);
            }
            // Another planner may insert the same request between the look-up and this
            // insert: the partial unique index turns that into no row here, and the
            // look-up again finds theirs.
            let inserted = tx.query_opt(
                &format!(
                    "INSERT INTO approvals (person, op, app, kind, resource, subject, level,
                                            rules, why, status, requested_at, policy_hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)
                     ON CONFLICT (person, op, app, kind, resource, (COALESCE(level, '')))
                         WHERE status IN ('pending', 'approved') DO NOTHING
                     RETURNING {APPROVAL_COLUMNS}"
                ),
                &[
                    &new.person,
                    &new.op,
                    &new.target.app,
                    &new.target.kind,
                    &new.target.resource,
                    &new.subject,
                    &new.level,
                    &new.rules,
                    &new.why,
                    &us(&new.requested_at),
                    &new.policy_hash,
                ],
            )?;
            match inserted {
                Some(row) => approval_row(&row),
                None => open_approval(tx, &new)?.ok_or_else(|| {
                    Fail::NotFound("open approval request that a concurrent request made".into())
                }),
            }
        })
    }

    fn approvals(&self, filter: Option<ApprovalStatus>) -> Result<Vec<Approval>, StateError> {
        self.run("read approvals", move |tx| {
            let order = "ORDER BY person, app, kind, resource, op, id";
            match filter {
                None => list(
                    tx,
                    &format!("SELECT {APPROVAL_COLUMNS} FROM approvals {order}"),
                    &[],
                    approval_row,
                ),
                Some(status) => list(
                    tx,
                    &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status = $1 {order}"),
                    &[&status.as_str()],
                    approval_row,
                ),
            }
        })
    }

    fn approval(&self, id: i64) -> Result<Option<Approval>, StateError> {
        self.run(format!("read approval {id}"), move |tx| {
            approval_by_id(tx, id, false)
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
        let (by, reason, at) = (by.to_owned(), reason.map(str::to_owned), us(&at));
        self.run(format!("{verb} approval {id}"), move |tx| {
            checks::approver(&by).map_err(Fail::Invalid)?;
            let current = approval_by_id(tx, id, true)?
                .ok_or_else(|| Fail::NotFound(format!("approval {id}")))?;
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
            let row = tx.query_one(
                &format!(
                    "UPDATE approvals
                     SET status = $2, decided_by = $3, decision_reason = $4, decided_at = $5
                     WHERE id = $1
                     RETURNING {APPROVAL_COLUMNS}"
                ),
                &[&id, &status.as_str(), &by, &reason, &at],
            )?;
            approval_row(&row)
        })
    }

    fn mark_approval_done(&self, id: i64) -> Result<(), StateError> {
        self.run(format!("mark approval {id} done"), move |tx| {
            let current = approval_by_id(tx, id, true)?
                .ok_or_else(|| Fail::NotFound(format!("approval {id}")))?;
            match current.status {
                ApprovalStatus::Done => Ok(()),
                ApprovalStatus::Approved => {
                    tx.execute(
                        "UPDATE approvals SET status = $2 WHERE id = $1",
                        &[&id, &ApprovalStatus::Done.as_str()],
                    )?;
                    Ok(())
                }
                ApprovalStatus::Pending | ApprovalStatus::Denied => {
                    Err(Fail::Invalid(checks::not_approved(id, current.status)))
                }
            }
        })
    }
}
