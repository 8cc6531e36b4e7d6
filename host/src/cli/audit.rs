//! `portcullis audit verify`: the trail's hash chain, checked end to end.

use std::path::Path;

use serde_json::json;

use super::Exit;
use super::output::{bad_input, emit, say, tell};
use crate::audit::chain::verify as verify_chain;
use crate::config::Config;

pub(crate) fn verify(config: &Path, file: Option<&Path>, json: bool) -> Exit {
    let path = match file {
        Some(path) => path.to_owned(),
        None => match Config::load(config) {
            Ok(config) => match config.audit.path {
                Some(path) => path,
                None => {
                    return bad_input(
                        "the config has no [audit] path (audit events go to tracing); pass --file TRAIL",
                        json,
                    );
                }
            },
            Err(e) => return bad_input(&e.to_string(), json),
        },
    };
    if !path.is_file() {
        return bad_input(
            &format!("no audit trail at {}; pass --file TRAIL", path.display()),
            json,
        );
    }
    match verify_chain(&path) {
        Ok(verified) => {
            if json {
                emit(&json!({
                    "ok": true, "exit": 0, "file": path.display().to_string(),
                    "records": verified.records, "legacy_lines": verified.legacy_lines,
                    "head": verified.head,
                }));
            } else {
                say!(
                    "{}: {} records, chain intact (seq 1..{}); head {}",
                    path.display(),
                    verified.records,
                    verified.records,
                    verified.head
                );
                if verified.legacy_lines > 0 {
                    say!(
                        "{} lines from before the chain are covered as one block by record 1",
                        verified.legacy_lines
                    );
                }
            }
            Exit::Success
        }
        Err(broken) => {
            if json {
                emit(&json!({
                    "ok": false, "exit": Exit::ActionFailed as u8, "file": broken.path,
                    "line": broken.line, "error": broken.problem,
                }));
            } else {
                tell!("TAMPERED: {broken}");
            }
            Exit::ActionFailed
        }
    }
}
