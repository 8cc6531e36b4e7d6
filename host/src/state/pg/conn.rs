//! One PostgreSQL connection owned by one thread (an actor), and the transactions run on it.
//!
//! Why a thread: [`crate::state::StateStore`] is synchronous and is called from inside
//! tokio tasks (the multi-thread runtime and `#[tokio::test]`'s current-thread one). The
//! synchronous `postgres::Client` drives its connection with its own runtime's `block_on`,
//! which panics when called from a thread that is inside a runtime. So the client lives on
//! a plain std thread, created there (connecting is a `block_on` too), and every call sends
//! it a job over a channel and blocks on a std channel for the answer: the same blocking
//! the SQLite store does on its mutex and file.
//!
//! Every job is one transaction: `BEGIN`, the job's statements, `COMMIT` when it succeeds,
//! `ROLLBACK` when it fails. Reconnecting: when the connection is gone (closed, or the
//! server restarted), the actor reconnects before the job runs, retrying with backoff for
//! up to [`RECONNECT_WINDOW`]. Only `BEGIN` is ever sent twice, and only after the session
//! it was sent on died (so nothing of the job ran): a job's own statements are never
//! repeated. A job whose connection breaks mid-flight returns its error (its transaction
//! was rolled back by the server); one whose `COMMIT` got no answer returns
//! [`Fail::Uncertain`], since whether it committed is unknown.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use tokio_postgres::error::SqlState;

use super::Fail;

/// How long the actor keeps trying to reconnect to a server that went away (a restart, a
/// failover) before the job fails: long enough for a PostgreSQL restart, short enough that
/// a run does not hang on a server that is gone for good.
pub(super) const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// The first wait between reconnect attempts; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long opening waits for the actor's first connection (the config's connect timeout
/// bounds each attempt too).
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The handle to one connection's thread. Dropping it ends the thread, which closes the
/// connection.
pub(super) struct Actor {
    jobs: mpsc::Sender<Job>,
}

impl Actor {
    /// Starts a thread named `name`, connects on it (one attempt) and keeps the connection.
    /// With `reconnect`, a connection that is gone is made again before the next job;
    /// without (the run lock, whose lock is its session), the job fails.
    pub(super) fn spawn(
        name: &str,
        config: tokio_postgres::Config,
        reconnect: bool,
    ) -> Result<Actor, Fail> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::sync_channel::<Result<(), Fail>>(1);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut session = Session {
                    config: client_config(config),
                    client: None,
                    statements: HashMap::new(),
                    reconnect,
                };
                match session.config.connect(NoTls) {
                    Ok(client) => {
                        session.client = Some(client);
                        if ready.send(Ok(())).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = ready.send(Err(Fail::Connect(e)));
                        return;
                    }
                }
                for job in queue {
                    // A panicking job (a bug) must not take the connection's thread with
                    // it; its transaction's state is unknown, so the connection goes.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut session))).is_err() {
                        session.forget_client();
                    }
                }
            })
            .map_err(|e| Fail::Gone(format!("cannot start a connection thread: {e}")))?;
        match connected.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => Ok(Actor { jobs }),
            Ok(Err(fail)) => Err(fail),
            Err(_) => Err(Fail::Gone(format!("no connection within {OPEN_TIMEOUT:?}"))),
        }
    }

    /// Runs `job` as one transaction on the actor's connection and waits for its answer.
    pub(super) fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Tx<'_>) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, Fail> {
        let (answer, answered) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |session: &mut Session| {
            let _ = answer.send(session.transaction(job));
        });
        self.jobs
            .send(job)
            .map_err(|_| Fail::Gone("the connection's thread has stopped".into()))?;
        answered
            .recv()
            .map_err(|_| Fail::Gone("the connection's thread stopped during the call".into()))?
    }
}

/// The client's settings: the config as given, notices to tracing instead of the `log`
/// crate.
fn client_config(config: tokio_postgres::Config) -> postgres::Config {
    let mut config = postgres::Config::from(config);
    config.notice_callback(|notice| {
        tracing::debug!(
            severity = notice.severity(),
            message = notice.message(),
            "PostgreSQL notice"
        );
    });
    config
}

/// The actor thread's state.
struct Session {
    config: postgres::Config,
    /// None after the connection was found gone, until it is made again.
    client: Option<Client>,
    /// Prepared statements of this connection, by SQL text.
    statements: HashMap<String, Statement>,
    reconnect: bool,
}

impl Session {
    fn forget_client(&mut self) {
        self.client = None;
        self.statements.clear();
    }

    /// `f` in one transaction.
    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        self.begin()?;
        let Some(client) = self.client.as_mut() else {
            return Err(Fail::Gone("the connection is gone".into()));
        };
        let mut tx = Tx {
            client,
            statements: &mut self.statements,
        };
        match f(&mut tx) {
            Ok(value) => match client_mut(&mut self.client)?.batch_execute("COMMIT") {
                Ok(()) => Ok(value),
                Err(e) if is_connection_lost(&e) => {
                    self.forget_client();
                    Err(Fail::Uncertain(e))
                }
                // The server answered: it did not commit.
                Err(e) => {
                    self.rollback();
                    Err(Fail::Sql(e))
                }
            },
            Err(fail) => {
                if fail.connection_lost() {
                    self.forget_client();
                } else {
                    self.rollback();
                }
                Err(fail)
            }
        }
    }

    /// Ends a failed transaction; a connection that cannot even do that is dropped.
    fn rollback(&mut self) {
        let ok = self
            .client
            .as_mut()
            .is_some_and(|client| client.batch_execute("ROLLBACK").is_ok());
        if !ok {
            self.forget_client();
        }
    }

    /// Sends `BEGIN`, first reconnecting if the connection is gone. A `BEGIN` that fails
    /// because the session died is safe to send again on a new connection: nothing ran.
    fn begin(&mut self) -> Result<(), Fail> {
        let deadline = Instant::now() + RECONNECT_WINDOW;
        loop {
            if self.client.as_ref().is_none_or(Client::is_closed) {
                self.forget_client();
                if !self.reconnect {
                    return Err(Fail::Gone(
                        "its connection was lost (the server restarted or the network failed)"
                            .into(),
                    ));
                }
                self.client = Some(self.connect_until(deadline)?);
            }
            match client_mut(&mut self.client)?.batch_execute("BEGIN") {
                Ok(()) => return Ok(()),
                Err(e) if is_connection_lost(&e) && self.reconnect && Instant::now() < deadline => {
                    tracing::info!(error = %super::show(&e), "PostgreSQL connection lost; reconnecting");
                    self.forget_client();
                }
                Err(e) => {
                    if is_connection_lost(&e) {
                        self.forget_client();
                    }
                    return Err(Fail::Sql(e));
                }
            }
        }
    }

    /// Connects, retrying errors that may pass (refused, reset, starting up) with backoff
    /// until `deadline`; others (a wrong password, no such database) fail at once.
    fn connect_until(&self, deadline: Instant) -> Result<Client, Fail> {
        let started = Instant::now();
        let mut backoff = BACKOFF_FIRST;
        loop {
            match self.config.connect(NoTls) {
                Ok(client) => return Ok(client),
                Err(e) if may_pass(&e) && Instant::now() + backoff < deadline => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => {
                    return Err(Fail::Reconnect {
                        waited: started.elapsed(),
                        source: e,
                    });
                }
            }
        }
    }
}

fn client_mut(client: &mut Option<Client>) -> Result<&mut Client, Fail> {
    client
        .as_mut()
        .ok_or_else(|| Fail::Gone("the connection is gone".into()))
}

/// The error says the session is gone (as opposed to the statement being refused).
pub(super) fn is_connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code);
    }
    // Not from the server: I/O on the socket (reset, broken pipe, end of file).
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A connect error worth retrying: the server is unreachable or not ready, rather than
/// refusing us.
fn may_pass(e: &postgres::Error) -> bool {
    match e.code() {
        Some(code) => [
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code),
        None => is_connection_lost(e) || e.to_string().contains("timeout"),
    }
}

/// The open transaction a job works in, with the connection's prepared statements.
pub(super) struct Tx<'a> {
    client: &'a mut Client,
    statements: &'a mut HashMap<String, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl Tx<'_> {
    /// The prepared statement for `sql`, prepared once per connection.
    fn statement(&mut self, sql: &str) -> Result<Statement, Fail> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(Fail::Sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Fail> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params).map_err(Fail::Sql)
    }

    pub(super) fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Fail> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params).map_err(Fail::Sql)
    }

    pub(super) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, Fail> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params).map_err(Fail::Sql)
    }

    /// Runs one statement; returns the rows it changed.
    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Fail> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params).map_err(Fail::Sql)
    }

    /// Runs SQL text without parameters (several statements allowed): migrations, locks.
    pub(super) fn batch(&mut self, sql: &str) -> Result<(), Fail> {
        self.client.batch_execute(sql).map_err(Fail::Sql)
    }
}
