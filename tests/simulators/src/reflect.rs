//! A hostile origin for secret-handling tests: every request is answered `200` with the
//! request's own headers as text (as a debugging endpoint that echoes requests would), and
//! everything it received is kept whole, credentials included, so a test can check that
//! a secret reached the origin only where the host injected it.
//!
//! Must never: be used as a simulator of a real application.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use parking_lot::Mutex;

use crate::Server;

/// One request exactly as the origin saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Every header, `Authorization` included, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The running origin; dropping it stops the server.
pub struct ReflectingOrigin {
    server: Server,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
}

impl std::fmt::Debug for ReflectingOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReflectingOrigin")
            .field("base_url", &self.server.base_url())
            .finish_non_exhaustive()
    }
}

impl ReflectingOrigin {
    pub async fn start() -> std::io::Result<ReflectingOrigin> {
        let received: Arc<Mutex<Vec<ReceivedRequest>>> = Arc::default();
        let state = Arc::clone(&received);
        let server =
            Server::start(move |_| Router::new().fallback(reflect).with_state(state)).await?;
        Ok(ReflectingOrigin { server, received })
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received.lock().clone()
    }
}

async fn reflect(
    State(received): State<Arc<Mutex<Vec<ReceivedRequest>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> String {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let text = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("\n");
    received.lock().push(ReceivedRequest {
        method: method.to_string(),
        target: uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers,
        body: body.to_vec(),
    });
    text
}
