//! The durable job queue of a PostgreSQL state: several Portcullis processes (workers)
//! share one state and carry out the actions of every run between them.
//!
//! A run's coordinator (the `apply` or scheduled job that made the plan, under the run
//! lock) checks each phase as a whole ([`crate::engine::preflight`]: validation, the
//! blast-radius guard) and enqueues its actions as rows of `queue_jobs`; every worker of
//! the pool, the coordinator among them, claims rows, carries each action out exactly as
//! the in-process engine would (same idempotency key, intent, audit, attempts, read-back;
//! [`crate::plan::execute`] settles state) and completes the row with the action's
//! report. The coordinator reads the phase's reports back, plans phase 2 from them, and
//! finishes the run.
//!
//! What was taken from existing queues:
//! - claims are one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)` (River,
//!   Oban, graphile-worker): concurrent claimers never wait for each other's rows and
//!   never get the same row;
//! - a claim is a lease (`lease_until`), extended by a heartbeat; a row whose lease ran
//!   out is claimable again by the same query (graphile-worker's stale `locked_at`,
//!   without River's separate rescuer process), and its attempt counter says it was
//!   taken over;
//! - completing is conditional on still holding the lease (worker and attempt), so a
//!   worker that lost its job cannot overwrite the report of the one that took it over;
//! - a job that cannot go on now is made available again later (`run_after`, Oban's
//!   `scheduled_at`), not failed.
//!
//! What is Portcullis's own: a job taken over (attempt > 1) is never retried blind. The
//! worker first reads the action back through its connector; when the app shows it done,
//! it is settled as done without a second write; only when it is absent is it written.
//! Read-modify-write kinds are serialised per resource across workers by a session
//! advisory lock, as the engine serialises them in one process.
//!
//! Invariants:
//! - Every action of a queued run is one row, inserted once (`UNIQUE (run_id, idx)`).
//! - A row is completed at most once, by the holder of its current lease.
//! - A worker holds no lock across an action's HTTP calls except the per-resource lock
//!   of read-modify-write kinds.

mod election;
pub mod limits;
mod session;
mod worker;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{ActionReport, ActionSpec};
use crate::model::{ActionOutcome, Observed, Op};
use crate::plan::Change;

pub use election::Leadership;
pub(crate) use session::Session;
pub use worker::{Pool, WorkerOptions};

/// How long a claim lasts without a heartbeat, unless `[queue] lease_s` says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Why the queue could not do something.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the job queue in {db} could not {op}: {source}")]
    Db {
        db: String,
        op: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "job {id} of run {run} in the job queue of {db} cannot be read ({problem}); it was written by another Portcullis version or by hand: inspect the `queue_jobs` row"
    )]
    Damaged {
        db: String,
        id: i64,
        run: String,
        problem: String,
    },
}

impl QueueError {
    /// Whether the connection (not the statement) failed: the server restarted or the
    /// network went away. The caller waits and tries again.
    pub fn is_connection(&self) -> bool {
        match self {
            QueueError::Db { source, .. } => source.is_closed() || source.code().is_none(),
            QueueError::Damaged { .. } => false,
        }
    }
}

/// One action as a queue row carries it: everything a worker needs to carry it out and
/// settle it, whichever worker it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPayload {
    /// The engine run it belongs to (`RUN` for phase 1, `RUN.2` for phase 2): with
    /// `index`, it makes the action's idempotency key.
    pub engine_run: String,
    /// Its index among the engine run's actions.
    pub index: usize,
    /// Its index among the run's recorded actions (phase 2 follows phase 1).
    pub state_index: u32,
    pub spec: ActionSpec,
    pub person: String,
    pub change: Change,
    pub policy_hash: String,
    /// The time the run's plan was made for.
    pub as_of: DateTime<Utc>,
    /// Set for read-modify-write kinds: actions with the same key run one at a time
    /// across the pool.
    pub serial: Option<String>,
}

/// What a completed row holds: the action's report, as the coordinator needs it for
/// phase 2, the summary and the CLI's rendering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub op: Op,
    pub outcome: ActionOutcome,
    pub attempts: u32,
    pub last_observed: Option<Observed>,
    /// The last connector error, as text.
    pub last_error: Option<String>,
    pub http_calls: usize,
    pub duration_ms: f64,
    /// The worker that completed it, and whether it took the job over from another.
    pub worker: String,
    pub taken_over: bool,
}

impl JobResult {
    pub fn of(report: &ActionReport, worker: &str, taken_over: bool) -> JobResult {
        JobResult {
            op: report.op,
            outcome: report.outcome.clone(),
            attempts: report.attempts,
            last_observed: report.last_observed.clone(),
            last_error: report.last_error.as_ref().map(ToString::to_string),
            http_calls: report.http.len(),
            duration_ms: report.duration_ms,
            worker: worker.to_owned(),
            taken_over,
        }
    }

    /// The engine's report of the action, rebuilt from its row. The connector error is
    /// kept as text in the outcome's reason; the HTTP calls are in the audit trail.
    pub fn report(&self, payload: &JobPayload, key: String) -> ActionReport {
        ActionReport {
            index: payload.index,
            op: self.op,
            app: payload.spec.app.clone(),
            subject: payload.spec.subject.clone(),
            entitlement: payload.spec.entitlement.clone(),
            idempotency_key: key,
            outcome: self.outcome.clone(),
            attempts: self.attempts,
            last_observed: self.last_observed.clone(),
            last_error: None,
            http: Vec::new(),
            duration_ms: self.duration_ms,
        }
    }
}

/// A row this worker holds under a lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub run_id: String,
    /// 1 on the first claim; more means an earlier holder lost its lease (it died, or
    /// could not reach the database in time).
    pub attempt: i32,
    /// Who held it before, when it was taken over.
    pub taken_from: Option<String>,
    pub payload: JobPayload,
}

/// Where a phase of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseProgress {
    pub total: usize,
    pub completed: usize,
}

/// The queue's statements, on one reconnecting session.
#[derive(Debug)]
pub struct Queue {
    session: Session,
    /// This process's name in the pool (in `queue_jobs.worker`).
    worker: String,
    lease: Duration,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Queue {
    pub(crate) fn new(session: Session, worker: String, lease: Duration) -> Queue {
        Queue {
            session,
            worker,
            lease,
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn fail(&self, op: &str) -> impl FnOnce(tokio_postgres::Error) -> QueueError + '_ {
        let op = op.to_owned();
        move |source| QueueError::Db {
            db: self.session.db().to_owned(),
            op,
            source,
        }
    }

    /// Adds the actions of one phase of `run_id`, all or none. A row already there (the
    /// same run and index) is left as it is.
    pub async fn enqueue(
        &self,
        run_id: &str,
        phase: i32,
        jobs: &[JobPayload],
    ) -> Result<(), QueueError> {
        let op = format!("enqueue {} actions of run {run_id}", jobs.len());
        let client = self.session.client().await.map_err(self.fail(&op))?;
        let indexes: Vec<i32> = jobs
            .iter()
            .map(|j| i32::try_from(j.state_index).unwrap_or(i32::MAX))
            .collect();
        let serials: Vec<Option<String>> = jobs.iter().map(|j| j.serial.clone()).collect();
        let apps: Vec<String> = jobs.iter().map(|j| j.spec.app.clone()).collect();
        let payloads: Vec<Value> = jobs
            .iter()
            .map(|j| serde_json::to_value(j).unwrap_or(Value::Null))
            .collect();
        client
            .execute(
                "INSERT INTO queue_jobs (run_id, phase, idx, app, serial_key, payload)
                 SELECT $1, $2, idx, app, serial_key, payload
                 FROM unnest($3::int[], $4::text[], $5::text[], $6::jsonb[])
                      AS t (idx, app, serial_key, payload)
                 ON CONFLICT (run_id, idx) DO NOTHING",
                &[&run_id, &phase, &indexes, &apps, &serials, &payloads],
            )
            .await
            .map_err(self.fail(&op))?;
        Ok(())
    }

    /// Claims up to `limit` rows: available ones whose time has come, and running ones
    /// whose lease ran out (taken over). `run` limits the claim to one run's rows (a
    /// coordinator works on its own run).
    pub async fn claim(&self, limit: usize, run: Option<&str>) -> Result<Vec<Claimed>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let op = "claim jobs";
        let client = self.session.client().await.map_err(self.fail(op))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "UPDATE queue_jobs j
                    SET state = 'running',
                        attempt = j.attempt + 1,
                        taken_from = CASE WHEN j.state = 'running' THEN j.worker END,
                        worker = $1,
                        lease_until = clock_timestamp() + $2::bigint * interval '1 millisecond',
                        claimed_at = clock_timestamp()
                  WHERE j.id IN (
                        SELECT id FROM queue_jobs
                         WHERE ((state = 'available' AND run_after <= clock_timestamp())
                                OR (state = 'running' AND lease_until < clock_timestamp()))
                           AND ($4::text IS NULL OR run_id = $4)
                         ORDER BY id
                         LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                 RETURNING j.id, j.run_id, j.attempt, j.taken_from, j.payload",
                &[&self.worker, &millis(self.lease), &limit, &run],
            )
            .await
            .map_err(self.fail(op))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            let run_id: String = row.get(1);
            let payload: Value = row.get(4);
            let payload = serde_json::from_value(payload).map_err(|e| QueueError::Damaged {
                db: self.session.db().to_owned(),
                id,
                run: run_id.clone(),
                problem: e.to_string(),
            })?;
            claimed.push(Claimed {
                id,
                run_id,
                attempt: row.get(2),
                taken_from: row.get(3),
                payload,
            });
        }
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Extends the leases of `ids`; returns the ids this worker no longer holds (another
    /// worker took them over after the lease ran out).
    pub async fn heartbeat(&self, ids: &[i64]) -> Result<Vec<i64>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let op = "extend job leases";
        let client = self.session.client().await.map_err(self.fail(op))?;
        let rows = client
            .query(
                "UPDATE queue_jobs
                    SET lease_until = clock_timestamp() + $2::bigint * interval '1 millisecond'
                  WHERE id = ANY($3) AND worker = $1 AND state = 'running'
                 RETURNING id",
                &[&self.worker, &millis(self.lease), &ids],
            )
            .await
            .map_err(self.fail(op))?;
        let held: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        Ok(ids
            .iter()
            .copied()
            .filter(|id| !held.contains(id))
            .collect())
    }

    /// Completes a held row with its action's result. False when the lease was lost
    /// meanwhile: the row belongs to whoever took it over, and this result is dropped
    /// (that worker reads the action back before doing anything).
    pub async fn complete(&self, job: &Claimed, result: &JobResult) -> Result<bool, QueueError> {
        let op = format!("complete job {} of run {}", job.id, job.run_id);
        let client = self.session.client().await.map_err(self.fail(&op))?;
        let result = serde_json::to_value(result).unwrap_or(Value::Null);
        let updated = client
            .execute(
                "UPDATE queue_jobs
                    SET state = 'completed', result = $4, completed_at = clock_timestamp(),
                        lease_until = NULL
                  WHERE id = $1 AND worker = $2 AND attempt = $3 AND state = 'running'",
                &[&job.id, &self.worker, &job.attempt, &result],
            )
            .await
            .map_err(self.fail(&op))?;
        Ok(updated == 1)
    }

    /// Gives a held row back, to be claimed again after `delay` (its action could not be
    /// read back, so it must not be written blind now).
    pub async fn release(
        &self,
        job: &Claimed,
        delay: Duration,
        error: &str,
    ) -> Result<(), QueueError> {
        let op = format!("release job {} of run {}", job.id, job.run_id);
        let client = self.session.client().await.map_err(self.fail(&op))?;
        client
            .execute(
                "UPDATE queue_jobs
                    SET state = 'available', worker = NULL, lease_until = NULL,
                        run_after = clock_timestamp() + $4::bigint * interval '1 millisecond',
                        last_error = $5
                  WHERE id = $1 AND worker = $2 AND attempt = $3 AND state = 'running'",
                &[&job.id, &self.worker, &job.attempt, &millis(delay), &error],
            )
            .await
            .map_err(self.fail(&op))?;
        Ok(())
    }

    /// How far phase `phase` of `run_id` is.
    pub async fn progress(&self, run_id: &str, phase: i32) -> Result<PhaseProgress, QueueError> {
        let op = format!("read the progress of run {run_id}");
        let client = self.session.client().await.map_err(self.fail(&op))?;
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE state = 'completed')
                   FROM queue_jobs WHERE run_id = $1 AND phase = $2",
                &[&run_id, &phase],
            )
            .await
            .map_err(self.fail(&op))?;
        let count = |i: usize| usize::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(PhaseProgress {
            total: count(0),
            completed: count(1),
        })
    }

    /// The completed rows of one phase, by index: each action's payload and result.
    pub async fn results(
        &self,
        run_id: &str,
        phase: i32,
    ) -> Result<Vec<(JobPayload, JobResult)>, QueueError> {
        let op = format!("read the results of run {run_id}");
        let client = self.session.client().await.map_err(self.fail(&op))?;
        let rows = client
            .query(
                "SELECT id, payload, result FROM queue_jobs
                  WHERE run_id = $1 AND phase = $2 AND state = 'completed' ORDER BY idx",
                &[&run_id, &phase],
            )
            .await
            .map_err(self.fail(&op))?;
        let mut results = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            let damaged = |problem: String| QueueError::Damaged {
                db: self.session.db().to_owned(),
                id,
                run: run_id.to_owned(),
                problem,
            };
            let payload: JobPayload =
                serde_json::from_value(row.get(1)).map_err(|e| damaged(e.to_string()))?;
            let result: Option<Value> = row.get(2);
            let result: JobResult = serde_json::from_value(result.unwrap_or(Value::Null))
                .map_err(|e| damaged(e.to_string()))?;
            results.push((payload, result));
        }
        Ok(results)
    }

    /// Runs with rows not completed yet: their intents are the queue's to settle (a
    /// worker holds them, or will take them over), not recovery's.
    pub async fn busy_runs(&self) -> Result<std::collections::BTreeSet<String>, QueueError> {
        let op = "list runs with open jobs";
        let client = self.session.client().await.map_err(self.fail(op))?;
        let rows = client
            .query(
                "SELECT DISTINCT run_id FROM queue_jobs WHERE state <> 'completed'",
                &[],
            )
            .await
            .map_err(self.fail(op))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Takes the per-resource lock of a read-modify-write action if no other worker
    /// holds it (a session advisory lock, released by [`Queue::unlock_serial`] or when
    /// this process's connection ends).
    pub(crate) async fn try_lock_serial(&self, key: &str) -> Result<bool, QueueError> {
        let op = "lock a resource";
        let client = self.session.client().await.map_err(self.fail(op))?;
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(self.fail(op))?;
        Ok(row.get(0))
    }

    pub(crate) async fn unlock_serial(&self, key: &str) -> Result<(), QueueError> {
        let op = "unlock a resource";
        let client = self.session.client().await.map_err(self.fail(op))?;
        client
            .query_one(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(self.fail(op))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// For `benches/workers.rs` (and the tests): the queue's own cost per action, without a
/// connector.
#[doc(hidden)]
pub mod bench {
    use std::time::{Duration, Instant};

    use super::{JobPayload, JobResult, Queue, Session};
    use crate::engine::ActionSpec;
    use crate::model::{ActionOutcome, Entitlement, Op, Subject, Target};
    use crate::plan::{Change, ChangeOp};

    /// Action `i` of run `run`: a grant of one repository to `user{i}`.
    pub fn sample_job(run: &str, i: usize) -> JobPayload {
        JobPayload {
            engine_run: run.to_owned(),
            index: i,
            state_index: u32::try_from(i).unwrap_or(u32::MAX),
            spec: ActionSpec {
                op: Op::Grant,
                app: "bench".into(),
                subject: Subject {
                    id: format!("user{i}"),
                    email: None,
                },
                entitlement: Entitlement {
                    kind: "repository".into(),
                    resource: "acme/bench".into(),
                    level: Some("write".into()),
                },
                reason: String::new(),
                trigger: Default::default(),
            },
            person: format!("E{i}"),
            change: Change {
                target: Target::new("bench", "repository", "acme/bench"),
                subject: format!("user{i}"),
                op: ChangeOp::Grant {
                    approval: None,
                    time_bound: None,
                    sensitive: false,
                },
                level: Some("write".into()),
                rules: Vec::new(),
                why: String::new(),
            },
            policy_hash: String::new(),
            as_of: chrono::Utc::now(),
            serial: None,
        }
    }

    /// Enqueues `n` rows, claims them 32 at a time and completes each, on the migrated
    /// database at `url`; the time per action.
    pub async fn claim_and_complete(url: &str, n: usize) -> Result<Duration, String> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        let queue = Queue::new(
            Session::new(config, url, "portcullis bench"),
            "bench".into(),
            Duration::from_secs(30),
        );
        let run = format!("bench-{}", chrono::Utc::now().timestamp_micros());
        let jobs: Vec<JobPayload> = (0..n).map(|i| sample_job(&run, i)).collect();
        let result = JobResult {
            op: Op::Grant,
            outcome: ActionOutcome::Verified,
            attempts: 1,
            last_observed: None,
            last_error: None,
            http_calls: 0,
            duration_ms: 0.0,
            worker: "bench".into(),
            taken_over: false,
        };
        let started = Instant::now();
        queue
            .enqueue(&run, 1, &jobs)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let claimed = queue
                .claim(32, Some(&run))
                .await
                .map_err(|e| e.to_string())?;
            if claimed.is_empty() {
                break;
            }
            for job in &claimed {
                queue
                    .complete(job, &result)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(started.elapsed() / u32::try_from(n.max(1)).unwrap_or(u32::MAX))
    }
}
