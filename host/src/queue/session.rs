//! One reconnecting asynchronous PostgreSQL session (tokio-postgres) for the queue, the
//! shared rate limits and the scheduler election. The state store has its own connection
//! (`state::pg`): its trait is synchronous, these callers are not.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A session that connects on first use and again after its connection broke (a server
/// restart). A statement that failed with the connection is not re-run: its caller
/// decides, knowing what the statement was.
pub(crate) struct Session {
    config: tokio_postgres::Config,
    /// The database as messages name it (no password).
    db: String,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("db", &self.db).finish()
    }
}

impl Session {
    /// `name` is the session's `application_name`, so `pg_stat_activity` shows which
    /// worker and which role (queue, election) a connection is.
    pub(crate) fn new(mut config: tokio_postgres::Config, db: &str, name: &str) -> Session {
        config.application_name(name);
        config.connect_timeout(CONNECT_TIMEOUT);
        Session {
            config,
            db: db.to_owned(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn db(&self) -> &str {
        &self.db
    }

    /// The live client, connecting first if there is none or the last one broke.
    pub(crate) async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.is_closed()
        {
            return Ok(Arc::clone(client));
        }
        *slot = None;
        let (client, connection) = self.config.connect(NoTls).await?;
        let db = self.db.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(db = %db, error = %e, "a queue connection ended");
            }
        });
        let client = Arc::new(client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Drops the client, so the next use connects afresh (its session-level locks end).
    pub(crate) async fn disconnect(&self) {
        self.client.lock().await.take();
    }
}
