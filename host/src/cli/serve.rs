//! `portcullis serve`: opens the workspace, then hands it to [`crate::service::serve`].

use std::path::Path;

use serde_json::json;

use super::Exit;
use super::lifecycle::failed;
use super::output::{bad_input, emit, say};
use crate::ops::Workspace;
use crate::service::{ServeError, ServeOptions, serve};

pub(crate) async fn run(config: &Path, listen: Option<String>, json: bool) -> Exit {
    let workspace = match Workspace::open(config) {
        Ok(ws) => ws,
        Err(e) => return failed(&e, json),
    };
    let options = ServeOptions {
        listen,
        on_listening: Box::new(move |addr| {
            if json {
                emit(&json!({ "listening": format!("http://{addr}") }));
            } else {
                say!(
                    "portcullis serve listening on http://{addr} (API under /v1, description at /v1/openapi.json)"
                );
            }
        }),
    };
    match serve(workspace, options).await {
        Ok(()) => Exit::Success,
        Err(ServeError::Op(e)) => failed(&e, json),
        Err(e) => bad_input(&e.to_string(), json),
    }
}
