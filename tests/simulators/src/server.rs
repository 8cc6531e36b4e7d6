//! The HTTP server every simulator runs on: 127.0.0.1, an ephemeral port, the caller's
//! tokio runtime, a request log, graceful shutdown on drop, and optionally the transport
//! faults of a [`Faults`] (see `faults.rs` for their order).
//!
//! Must never: record a credential (only whether an `Authorization` header was present),
//! or block the runtime.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::faults::{Action, FaultResponses, Faults, Verdict};

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
    /// The status code answered; `0` when an injected fault closed the connection
    /// instead ([`Faults::reset_connections`]).
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
        Self::serve(app, None).await
    }

    /// [`Self::start`] with `faults` applied to every request before the simulator sees
    /// it (a middleware in front of the router; every request is recorded in the log
    /// with the status it was answered, faults included). `responses` phrases the
    /// vendor's 5xx and rate-limit answers.
    pub async fn start_with_faults(
        faults: Faults,
        responses: impl FaultResponses,
        app: impl FnOnce(&str) -> Router,
    ) -> std::io::Result<Self> {
        let injector = Injector {
            faults,
            responses: Arc::new(responses),
        };
        Self::serve(app, Some(injector)).await
    }

    async fn serve(
        app: impl FnOnce(&str) -> Router,
        injector: Option<Injector>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let log = RequestLog::default();
        let mut router = app(&format!("http://{addr}"));
        if let Some(injector) = injector {
            router = router.layer(middleware::from_fn_with_state(injector, inject));
        }
        // Added last, so it runs first: the log sees fault answers too.
        let router = router.layer(middleware::from_fn_with_state(log.clone(), record));
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
    let status = if response.extensions().get::<Aborted>().is_some() {
        0
    } else {
        response.status().as_u16()
    };
    log.push(RecordedRequest {
        method,
        path,
        status,
        had_authorization,
        user_agent,
    });
    response
}

#[derive(Clone)]
struct Injector {
    faults: Faults,
    responses: Arc<dyn FaultResponses>,
}

/// The transport faults, in the order `faults.rs` documents.
async fn inject(State(injector): State<Injector>, request: Request, next: Next) -> Response {
    let (delay, action) = match injector.faults.decide(Instant::now()) {
        Verdict::Reset => {
            let mut response = Response::new(Body::new(Aborted));
            response.extensions_mut().insert(Aborted);
            return response;
        }
        Verdict::Answer { delay, action } => (delay, action),
    };
    let response = match action {
        Action::Pass => next.run(request).await,
        Action::ServerError => injector.responses.server_error(),
        Action::RateLimited(retry_after) => injector.responses.rate_limited(retry_after),
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// A response body that fails at its first poll: hyper then closes the connection
/// without having sent a complete response (the head is still in its buffer), so the
/// client sees a connection error. Also the response extension that tells the log so.
#[derive(Debug, Clone, Copy)]
struct Aborted;

impl HttpBody for Aborted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by fault injection",
        ))))
    }
}
