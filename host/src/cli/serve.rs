//! `portcullis serve`: opens the workspace, then hands it to [`crate::service::serve`].

use std::path::Path;

use serde_json::json;

use super::Exit;
use super::lifecycle::failed;
use super::output::{bad_input, emit, say};
use crate::ops::Workspace;
use crate::service::{ServeError, ServeOptions, WorkerEvent, serve};

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

/// `portcullis worker`: opens the workspace, then hands it to [`crate::service::work`].
/// One line per event on stdout (JSON with `--json`), so supervisors and tests can follow.
pub(crate) async fn work(config: &Path, json: bool) -> Exit {
    let workspace = match Workspace::open(config) {
        Ok(ws) => ws,
        Err(e) => return failed(&e, json),
    };
    let on_event = Box::new(move |event: WorkerEvent| match event {
        WorkerEvent::Joined { worker, db } => {
            if json {
                emit(&json!({ "event": "joined", "worker": worker, "db": db }));
            } else {
                say!("portcullis worker {worker} joined the pool of {db}");
            }
        }
        WorkerEvent::Scheduler { leading } => {
            if json {
                emit(&json!({ "event": "scheduler", "leading": leading }));
            } else if leading {
                say!("this worker now runs the scheduler");
            } else {
                say!("this worker no longer runs the scheduler");
            }
        }
        WorkerEvent::Stopping { completed } => {
            if json {
                emit(&json!({ "event": "stopped", "completed": completed }));
            } else {
                say!("stopped after carrying out {completed} actions");
            }
        }
    });
    match crate::service::work(workspace, on_event).await {
        Ok(()) => Exit::Success,
        Err(ServeError::Op(e)) => failed(&e, json),
        Err(e) => bad_input(&e.to_string(), json),
    }
}
