//! `portcullis audit`: verify the trail, print its key, checkpoint it, prove one record,
//! check a proof, query records. The work is in [`crate::audit`]; this parses and renders.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::output::{bad_input, emit, say, tell};
use super::{AuditCommand, Exit};
use crate::audit::checkpoint::{Signer, default_key_path, parse_public_key};
use crate::audit::prove::{InclusionProof, check_proof, prove};
use crate::audit::query::{Filter, query, to_csv};
use crate::audit::verify::{VerifyOptions, verify as verify_trail};
use crate::audit::{AuditSink as _, JsonLinesSink};
use crate::config::{AuditConfig, Config};

pub(crate) fn run(config: &Path, command: AuditCommand, json: bool) -> Exit {
    match command {
        AuditCommand::Verify {
            file,
            key,
            checkpoints,
        } => verify(config, file, key, checkpoints, json),
        AuditCommand::Key { file } => with_trail(config, file, json, |audit, path| {
            let key_path = audit
                .signing_key
                .clone()
                .unwrap_or_else(|| default_key_path(path));
            let signer = Signer::load_or_create(&key_path).map_err(|e| (Exit::BadInput, e))?;
            if json {
                emit(
                    &json!({ "ok": true, "key": signer.public_hex(), "key_file": key_path.display().to_string() }),
                );
            } else {
                say!("ed25519:{}", signer.public_hex());
            }
            Ok(())
        }),
        AuditCommand::Checkpoint { file } => with_trail(config, file, json, |audit, path| {
            let sink = JsonLinesSink::with_options(path, audit.trail_options())
                .map_err(|e| (Exit::BadInput, e.to_string()))?;
            sink.checkpoint("requested")
                .map_err(|e| (Exit::ActionFailed, e.to_string()))?;
            if json {
                emit(&json!({ "ok": true, "file": path.display().to_string() }));
            } else {
                say!("{}: checkpoint written", path.display());
            }
            Ok(())
        }),
        AuditCommand::Prove { seq, file } => with_trail(config, file, json, |_, path| {
            let proof = prove(path, seq).map_err(|e| (Exit::BadInput, e))?;
            emit(&json!(proof));
            Ok(())
        }),
        AuditCommand::CheckProof { proof, key } => check(&proof, key.as_deref(), json),
        AuditCommand::Query {
            file,
            person,
            app,
            run,
            since,
            until,
            kind,
            csv,
        } => with_trail(config, file, json, |_, path| {
            let time = |given: Option<String>| -> Result<_, (Exit, String)> {
                given
                    .map(|t| {
                        crate::ops::parse_at(&t).map_err(|e| {
                            (
                                Exit::BadInput,
                                e.to_string().replace("--at", "--since/--until"),
                            )
                        })
                    })
                    .transpose()
            };
            let filter = Filter {
                person,
                app,
                run,
                since: time(since)?,
                until: time(until)?,
                kinds: kind,
            };
            let rows = query(path, &filter).map_err(|e| (Exit::BadInput, e))?;
            if csv {
                print!("{}", to_csv(&rows).map_err(|e| (Exit::ActionFailed, e))?);
            } else if json {
                let records: Vec<_> = rows.iter().map(|r| r.record.clone()).collect();
                emit(&json!({ "ok": true, "records": records }));
            } else {
                for row in &rows {
                    say!(
                        "{:>6} {} {:<18} {:<10} {:<24} {:<14} {:<36} {:<9} {}",
                        row.seq,
                        row.at,
                        row.event,
                        row.app,
                        row.run,
                        row.person,
                        row.entitlement,
                        row.outcome,
                        row.trigger
                    );
                }
                say!("{} records", rows.len());
            }
            Ok(())
        }),
    }
}

/// Runs `f` on the trail `--file` names, or the config's `[audit] path`.
fn with_trail(
    config: &Path,
    file: Option<PathBuf>,
    json: bool,
    f: impl FnOnce(&AuditConfig, &Path) -> Result<(), (Exit, String)>,
) -> Exit {
    let loaded = if config.is_file() || file.is_none() {
        match Config::load(config) {
            Ok(config) => Some(config.audit),
            Err(e) if file.is_none() => return bad_input(&e.to_string(), json),
            Err(_) => None,
        }
    } else {
        None
    };
    let audit = loaded.unwrap_or_else(|| AuditConfig {
        path: file.clone(),
        ..AuditConfig::default()
    });
    let Some(path) = file.or(audit.path.clone()) else {
        return bad_input(
            "the config has no [audit] path (audit events go to tracing); pass --file TRAIL",
            json,
        );
    };
    match f(&audit, &path) {
        Ok(()) => Exit::Success,
        Err((Exit::BadInput, message)) => bad_input(&message, json),
        // Already reported in full.
        Err((exit, message)) if message.is_empty() => exit,
        Err((exit, message)) => {
            if json {
                emit(&json!({ "ok": false, "exit": exit as u8, "error": message }));
            } else {
                tell!("{message}");
            }
            exit
        }
    }
}

fn verify(
    config: &Path,
    file: Option<PathBuf>,
    key: Option<String>,
    checkpoints: Option<PathBuf>,
    json: bool,
) -> Exit {
    with_trail(config, file, json, |audit, path| {
        if !path.is_file() {
            return Err((
                Exit::BadInput,
                format!("no audit trail at {}; pass --file TRAIL", path.display()),
            ));
        }
        let key = key
            .as_deref()
            .map(parse_public_key)
            .transpose()
            .map_err(|e| (Exit::BadInput, e))?;
        let options = VerifyOptions {
            key,
            witness: checkpoints.or(audit.checkpoints.clone()),
        };
        let verified = match verify_trail(path, &options) {
            Ok(verified) => verified,
            Err(broken) if json => {
                emit(&json!({
                    "ok": false, "exit": Exit::ActionFailed as u8, "file": broken.path,
                    "line": broken.line, "error": format!("TAMPERED: {}", broken.problem),
                }));
                return Err((Exit::ActionFailed, String::new()));
            }
            Err(broken) => return Err((Exit::ActionFailed, format!("TAMPERED: {broken}"))),
        };
        if json {
            emit(&json!({
                "ok": true, "exit": 0, "file": path.display().to_string(),
                "records": verified.records, "legacy_lines": verified.legacy_lines,
                "head": verified.head, "segments": verified.segments,
                "checkpoints": verified.checkpoints,
                "last_checkpoint": verified.last_checkpoint,
                "after_last_checkpoint": verified.after_last_checkpoint,
                "sealed_torn_lines": verified.sealed_torn.iter().map(|(f, l)| json!({"file": f, "line": l})).collect::<Vec<_>>(),
                "witnessed": verified.witnessed,
                "key_checked": options.key.is_some(),
            }));
            return Ok(());
        }
        say!(
            "{}: {} records in {} file(s), chain intact (seq 1..{}); head {}",
            path.display(),
            verified.records,
            verified.segments,
            verified.records,
            verified.head
        );
        match &verified.last_checkpoint {
            Some(last) => say!(
                "{} signed checkpoints hold{}; the last covers records 1..{} (signed {} by ed25519:{}); {} records after it",
                verified.checkpoints,
                if options.key.is_some() {
                    " against the given key"
                } else {
                    ""
                },
                last.tree_size,
                last.at,
                last.key,
                verified.after_last_checkpoint
            ),
            None => say!("no signed checkpoint yet: the records are covered by the chain only"),
        }
        if options.witness.is_some() {
            say!(
                "{} checkpoint copies in the second location match the trail",
                verified.witnessed
            );
        }
        for (file, line) in &verified.sealed_torn {
            say!(
                "torn line sealed: {file} line {line} (a writer was cut off mid-line; the next writer sealed it)"
            );
        }
        if verified.legacy_lines > 0 {
            say!(
                "{} lines from before the chain are covered as one block by record 1",
                verified.legacy_lines
            );
        }
        Ok(())
    })
}

fn check(proof: &Path, key: Option<&str>, json: bool) -> Exit {
    let text = match std::fs::read_to_string(proof) {
        Ok(text) => text,
        Err(e) => return bad_input(&format!("cannot read {}: {e}", proof.display()), json),
    };
    let parsed: InclusionProof = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            return bad_input(
                &format!(
                    "{} is not a proof from `portcullis audit prove`: {e}",
                    proof.display()
                ),
                json,
            );
        }
    };
    let key = match key.map(parse_public_key).transpose() {
        Ok(key) => key,
        Err(e) => return bad_input(&e, json),
    };
    match check_proof(&parsed, key.as_ref()) {
        Ok(()) => {
            if json {
                emit(
                    &json!({ "ok": true, "seq": parsed.seq, "tree_size": parsed.checkpoint.tree_size }),
                );
            } else {
                say!(
                    "record {} is in the trail: included in the checkpoint of {} records signed {} by ed25519:{}",
                    parsed.seq,
                    parsed.checkpoint.tree_size,
                    parsed.checkpoint.at,
                    parsed.checkpoint.key
                );
            }
            Exit::Success
        }
        Err(e) => {
            if json {
                emit(&json!({ "ok": false, "exit": Exit::ActionFailed as u8, "error": e }));
            } else {
                tell!("PROOF FAILS: {e}");
            }
            Exit::ActionFailed
        }
    }
}
