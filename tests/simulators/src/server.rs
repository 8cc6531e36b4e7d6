//! The HTTP server every simulator runs on: 127.0.0.1, an ephemeral port, the caller's
//! tokio runtime, a request log, graceful shutdown on drop.
//!
//! Must never: record a credential (only whether an `Authorization` header was present),
//! or block the runtime.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The most requests a log keeps; older ones are dropped first, so a long benchmark
/// against a simulator does not grow without bound.
const LOG_CAPACITY: usize = 100_000;

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path with the query string, e.g. `/repos/acme/api/collaborators?per_page=100`.
    pub path: String,
    /// The status code answered.
    pub status: u16,
    /// Whether an `Authorization` header was present (its value is never kept).
    pub had_authorization: bool,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
}

#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<VecDeque<RecordedRequest>>>);

impl RequestLog {
    fn push(&self, request: RecordedRequest) {
        let mut log = self.0.lock();
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }
}

/// A running simulator server. Dropping it stops accepting connections and lets
/// in-flight requests finish.
pub struct Server {
    addr: SocketAddr,
    log: RequestLog,
    shutdown: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds 127.0.0.1 on an ephemeral port and serves the router that `app` builds for
    /// this server's base URL (simulators put absolute URLs in bodies and `Link`
    /// headers). Must be called within a tokio runtime; the server runs as a task on it.
    pub async fn start(app: impl FnOnce(&str) -> Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let log = RequestLog::default();
        let router = app(&format!("http://{addr}"))
            .layer(middleware::from_fn_with_state(log.clone(), record));
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                // Either a send or the sender's drop means stop.
                let _ = stop.await;
            });
            // Accept errors are retried inside axum; an error here only ends the server.
            let _ = serve.await;
        });
        Ok(Self {
            addr,
            log,
            shutdown: Some(shutdown),
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, oldest first (the newest 100 000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.0.lock().iter().cloned().collect()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.log.0.lock().clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server task may already be gone with its runtime; nothing to do then.
            let _ = shutdown.send(());
        }
    }
}

async fn record(State(log): State<RequestLog>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let had_authorization = request.headers().contains_key(header::AUTHORIZATION);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let response = next.run(request).await;
    log.push(RecordedRequest {
        method,
        path,
        status: response.status().as_u16(),
        had_authorization,
        user_agent,
    });
    response
}
