//! This process as a member of the pool: claims rows, carries each action out, keeps its
//! leases alive, completes rows. `portcullis worker` and `serve` on a PostgreSQL state do
//! this until they stop; a run's coordinator does it for its own run while it waits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::limits::PgRateLimits;
use super::{Claimed, JobResult, Leadership, Queue, QueueError, Session};
use crate::engine::{self, ActionOutcome, ActionReport, EngineOptions};
use crate::host::Host;
use crate::ops::recover::{audit_in_flight, read_back_in_flight};
use crate::plan::execute::{Settle, execute_one};
use crate::ratelimit::SharedRate;
use crate::state::StateStore;

/// A job taken over this many times without its action being read back is completed as
/// an alert (the run can finish; its intent stays open for recovery) rather than retried
/// for ever.
const MAX_TAKEOVERS: i32 = 10;

/// How a worker works, from `[queue]`.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Actions this process carries out at once (across apps; each app's own
    /// `concurrency` still applies within it).
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat; heartbeats go every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        WorkerOptions {
            concurrency: 32,
            lease: super::DEFAULT_LEASE,
            poll: Duration::from_millis(100),
        }
    }
}

/// This process's membership of the pool.
pub struct Pool {
    pub queue: Arc<Queue>,
    host: Arc<Host>,
    store: Arc<dyn StateStore>,
    engine: EngineOptions,
    options: WorkerOptions,
    pg: tokio_postgres::Config,
    db: String,
    /// Read-modify-write resources this process is working on (the database's advisory
    /// lock is per session, and every task of this process shares one).
    serials: Mutex<HashSet<String>>,
    /// Each app's `concurrency`, per worker, as the in-process engine keeps it per run.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    done: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("worker", &self.queue.worker())
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// A name for this process in the pool: host, pid and a random tag (a restarted
/// container may reuse its pid).
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}:{:04x}", std::process::id(), fastrand::u16(..))
}

/// What [`Pool::work_until`] works until.
enum Until<'a> {
    Stopped(watch::Receiver<bool>),
    /// Every row of one phase of one run is completed (the coordinator).
    PhaseDone {
        run: &'a str,
        phase: i32,
    },
    /// No row of any run is left (a new run's coordinator, before it plans).
    Drained,
}

impl Pool {
    /// Joins the pool of the database `pg` (named `db` in messages): every app of `host`
    /// takes its rate from the shared buckets from now on.
    pub fn new(
        pg: tokio_postgres::Config,
        db: &str,
        host: Arc<Host>,
        store: Arc<dyn StateStore>,
        engine: EngineOptions,
        options: WorkerOptions,
    ) -> Pool {
        let worker = worker_name();
        let queue = Queue::new(
            Session::new(pg.clone(), db, &format!("portcullis queue {worker}")),
            worker.clone(),
            options.lease,
        );
        let limits: Arc<dyn SharedRate> = Arc::new(PgRateLimits::new(Session::new(
            pg.clone(),
            db,
            &format!("portcullis limits {worker}"),
        )));
        host.share_rate_limits(&limits);
        Pool {
            queue: Arc::new(queue),
            host,
            store,
            engine,
            options,
            pg,
            db: db.to_owned(),
            serials: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(HashMap::new()),
            done: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn worker(&self) -> &str {
        self.queue.worker()
    }

    /// The database, as messages name it.
    pub fn db(&self) -> &str {
        &self.db
    }

    /// Actions this process completed.
    pub fn completed(&self) -> u64 {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Campaigns for the scheduler on a session of its own.
    pub fn elect(&self) -> Leadership {
        let session = Session::new(
            self.pg.clone(),
            &self.db,
            &format!("portcullis scheduler {}", self.worker()),
        );
        Leadership::start(session, self.options.lease / 3)
    }

    /// Works the queue until `stop` turns true; actions in flight then finish.
    pub async fn work(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        let _ = self.work_until(None, Until::Stopped(stop)).await;
    }

    /// A coordinator's wait: works on `run`'s rows until every row of `phase` is
    /// completed, whoever completes them.
    pub(crate) async fn work_phase(
        self: &Arc<Self>,
        run: &str,
        phase: i32,
    ) -> Result<(), QueueError> {
        self.work_until(Some(run), Until::PhaseDone { run, phase })
            .await
    }

    /// Before a run plans: works on every run's rows until none is left, so the plan
    /// sees in state what the queue still had in flight (a run whose coordinator died
    /// leaves its rows to the pool) and never enqueues an action twice.
    pub(crate) async fn drain(self: &Arc<Self>) -> Result<(), QueueError> {
        self.work_until(None, Until::Drained).await
    }

    async fn work_until(
        self: &Arc<Self>,
        run: Option<&str>,
        until: Until<'_>,
    ) -> Result<(), QueueError> {
        let mut tasks: JoinSet<i64> = JoinSet::new();
        // The rows this process holds, by the task carrying each out: a task that ends,
        // even by panicking, stops its row's heartbeat, so its lease lapses and another
        // worker takes it over (reading it back) instead of it staying held for ever.
        let mut held: HashMap<tokio::task::Id, i64> = HashMap::new();
        let mut last_beat = Instant::now();
        let mut stopping = false;
        loop {
            match &until {
                Until::Stopped(stop) => stopping = stopping || *stop.borrow(),
                Until::PhaseDone { run, phase } => {
                    if tasks.is_empty() {
                        match self.queue.progress(run, *phase).await {
                            Ok(p) if p.completed == p.total => return Ok(()),
                            Ok(_) => {}
                            Err(e) if e.is_connection() => {
                                tracing::warn!(error = %e, "the job queue is unreachable; waiting for it");
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Until::Drained => {
                    if tasks.is_empty() {
                        match self.queue.busy_runs().await {
                            Ok(busy) if busy.is_empty() => return Ok(()),
                            Ok(_) => {}
                            Err(e) if e.is_connection() => {
                                tracing::warn!(error = %e, "the job queue is unreachable; waiting for it");
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            if stopping && tasks.is_empty() {
                return Ok(());
            }
            let free = self.options.concurrency.saturating_sub(tasks.len());
            let mut claimed_any = false;
            if !stopping && free > 0 {
                match self.queue.claim(free, run).await {
                    Ok(jobs) => {
                        claimed_any = !jobs.is_empty();
                        for job in jobs {
                            let id = job.id;
                            let task = tasks.spawn(Arc::clone(self).run_job(job));
                            held.insert(task.id(), id);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim jobs; trying again");
                        tokio::time::sleep(self.options.poll * 5).await;
                    }
                }
            }
            if last_beat.elapsed() >= self.options.lease / 3 {
                last_beat = Instant::now();
                let ids: Vec<i64> = held.values().copied().collect();
                match self.queue.heartbeat(&ids).await {
                    Ok(lost) => {
                        for id in lost {
                            tracing::warn!(
                                job = id,
                                "lost the lease of a job (another worker took it over); its result will be dropped"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not extend job leases"),
                }
            }
            if claimed_any && tasks.len() < self.options.concurrency {
                continue;
            }
            tokio::select! {
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    forget(&mut held, joined);
                    // Collect every task already done, without waiting.
                    while let Some(joined) = tasks.try_join_next_with_id() {
                        forget(&mut held, joined);
                    }
                }
                _ = tokio::time::sleep(self.options.poll) => {}
            }
        }
    }

    /// Carries out one claimed action and completes its row. Returns the row's id.
    async fn run_job(self: Arc<Self>, job: Claimed) -> i64 {
        let app = &job.payload.spec.app;
        let semaphore = {
            let mut in_flight = self.in_flight.lock();
            let limit = self
                .host
                .app(app)
                .map_or(1, |a| a.limiter.concurrency().max(1));
            Arc::clone(
                in_flight
                    .entry(app.clone())
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit))),
            )
        };
        // The semaphore is never closed, so acquiring only waits.
        let _permit = semaphore.acquire_owned().await.ok();
        let serial = job.payload.serial.clone();
        if let Some(key) = &serial {
            self.lock_serial(key).await;
        }
        self.carry_out(&job).await;
        if let Some(key) = &serial {
            self.unlock_serial(key).await;
        }
        job.id
    }

    async fn carry_out(&self, job: &Claimed) {
        let p = &job.payload;
        let key = engine::idempotency_key(&p.engine_run, p.index, &p.spec);
        let settle = Settle {
            store: self.store.as_ref(),
            at: p.as_of,
            policy_hash: &p.policy_hash,
            run_id: &job.run_id,
        };
        let taken_over = job.attempt > 1;
        let mut report: Option<ActionReport> = None;
        if taken_over {
            tracing::info!(job = job.id, key = %key, from = job.taken_from.as_deref().unwrap_or("?"), attempt = job.attempt, "taking over a job: reading its action back first");
            match read_back_in_flight(&self.host, &p.spec, &key, p.index, |_| String::new()).await {
                Ok((found, applied)) => {
                    let finding = if applied { "applied" } else { "not-applied" };
                    if let Err(e) = audit_in_flight(
                        &self.host,
                        &key,
                        &job.run_id,
                        &p.spec.app,
                        finding,
                        found.last_observed.clone(),
                        None,
                    ) {
                        tracing::error!(error = %e, "could not audit a job taken over");
                    }
                    if applied {
                        if let Err(e) = settle.action(p.state_index, &p.person, &p.change, &found) {
                            self.give_back(job, &format!("its outcome could not be recorded: {e}"))
                                .await;
                            return;
                        }
                        report = Some(found);
                    }
                }
                Err(error) if job.attempt >= MAX_TAKEOVERS => {
                    report = Some(ActionReport {
                        outcome: ActionOutcome::Alerted {
                            reason: format!(
                                "taken over {} times and never read back ({error}); not written again. Its intent stays open: the next run reads it back",
                                job.attempt
                            ),
                        },
                        ..unread_report(p, &key)
                    });
                }
                Err(error) => {
                    self.give_back(job, &format!("its action could not be read back: {error}"))
                        .await;
                    return;
                }
            }
        }
        let report = match report {
            Some(report) => report,
            None => match execute_one(
                &self.host,
                &settle,
                &p.engine_run,
                p.index,
                p.state_index,
                p.spec.clone(),
                &p.person,
                &p.change,
                &self.engine,
            )
            .await
            {
                Ok(report) => report,
                Err(e) => {
                    // Taken over later, read back, and settled then.
                    self.give_back(job, &format!("its outcome could not be recorded: {e}"))
                        .await;
                    return;
                }
            },
        };
        let result = JobResult::of(&report, self.worker(), taken_over);
        match self.queue.complete(job, &result).await {
            Ok(true) => {
                self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(false) => {
                tracing::warn!(job = job.id, key = %key, "the job was taken over before it completed; the new holder reads it back");
            }
            Err(e) => {
                tracing::warn!(job = job.id, error = %e, "could not complete a job; when its lease ends another worker reads it back and completes it");
            }
        }
    }

    /// Hands a job back for a later attempt (a takeover, which reads back first).
    async fn give_back(&self, job: &Claimed, why: &str) {
        tracing::warn!(job = job.id, run = %job.run_id, "giving a job back: {why}");
        if let Err(e) = self.queue.release(job, self.options.lease / 3, why).await {
            tracing::warn!(job = job.id, error = %e, "could not give a job back; it is taken over when its lease ends");
        }
    }

    async fn lock_serial(&self, key: &str) {
        loop {
            if self.serials.lock().insert(key.to_owned()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        loop {
            match self.queue.try_lock_serial(key).await {
                Ok(true) => return,
                Ok(false) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take a resource's lock; trying again");
                    tokio::time::sleep(self.options.poll * 5).await;
                }
            }
        }
    }

    async fn unlock_serial(&self, key: &str) {
        if let Err(e) = self.queue.unlock_serial(key).await {
            // The lock ends with the session; a broken session has already lost it.
            tracing::debug!(error = %e, "could not release a resource's lock");
        }
        self.serials.lock().remove(key);
    }
}

/// Stops heartbeating the row of a task that ended.
fn forget(
    held: &mut HashMap<tokio::task::Id, i64>,
    joined: Result<(tokio::task::Id, i64), tokio::task::JoinError>,
) {
    let task = match joined {
        Ok((task, _)) => task,
        Err(e) => {
            tracing::error!(error = %e, "an action's task failed; its row is taken over when its lease lapses");
            e.id()
        }
    };
    held.remove(&task);
}

/// The report of an action nothing could be learned of.
fn unread_report(p: &super::JobPayload, key: &str) -> ActionReport {
    ActionReport {
        index: p.index,
        op: p.spec.op,
        app: p.spec.app.clone(),
        subject: p.spec.subject.clone(),
        entitlement: p.spec.entitlement.clone(),
        idempotency_key: key.to_owned(),
        outcome: ActionOutcome::Alerted {
            reason: String::new(),
        },
        attempts: 0,
        last_observed: None,
        last_error: None,
        http: Vec::new(),
        duration_ms: 0.0,
    }
}
