//! `portcullis plugin inspect FILE [--app NAME]`: what a component is and, for a security
//! review, exactly what a configured app would let it reach.

use std::path::Path;

use serde_json::json;

use super::Exit;
use super::output::{bad_input, emit, say};
use crate::app::Grants;
use crate::config::Config;
use crate::plugin;
use crate::runtime::Runtime;

pub(crate) fn run(config_path: &Path, file: &Path, app: Option<&str>, json: bool) -> Exit {
    let runtime = match Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return bad_input(&format!("cannot start the runtime: {e:#}"), json),
    };
    let inspection = match plugin::inspect(&runtime, None, file) {
        Ok(inspection) => inspection,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let grants = match app {
        None => None,
        Some(name) => {
            let config = match Config::load(config_path) {
                Ok(config) => config,
                Err(e) => return bad_input(&e.to_string(), json),
            };
            match Grants::from_config(&config, name) {
                Some(grants) => Some(grants),
                None => {
                    return bad_input(
                        &format!(
                            "{}: no app named `{name}` (configured: {})",
                            config_path.display(),
                            config.apps.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                        json,
                    );
                }
            }
        }
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "plugin": inspection, "grants": grants }));
        return Exit::Success;
    }
    say!("plugin    {}", inspection.origin);
    say!("size      {} bytes", inspection.size);
    say!("sha256    {}", inspection.sha256);
    say!(
        "contract  {}",
        inspection
            .contract
            .as_deref()
            .unwrap_or("none (not a Portcullis connector)")
    );
    match &inspection.incompatibility {
        None => say!("loads     yes, on this host"),
        Some(reason) => say!("loads     NO: {reason}"),
    }
    say!("exports");
    for export in &inspection.exports {
        say!("  {export}");
    }
    say!("imports (what it asks the host for)");
    for import in &inspection.imports {
        let note = if import.starts_with("wasi:") {
            "  [WASI: empty context, nothing reachable]"
        } else {
            ""
        };
        say!("  {import}{note}");
    }
    if let Some(grants) = grants {
        say!("granted by app `{}`", grants.app);
        say!("  network origin       {}", grants.origin);
        say!(
            "  private addresses    loopback={} private={} link-local={}",
            grants.network.allow_loopback,
            grants.network.allow_private,
            grants.network.allow_link_local
        );
        say!(
            "  secrets (injected)   {}",
            list(&grants.injectable_secrets)
        );
        say!(
            "  secrets (readable)   {}",
            list(&grants.revealable_secrets)
        );
        say!("  settings             {}", list(&grants.settings));
        let l = &grants.limits;
        say!(
            "  limits               memory {} MiB, cpu {} ms, wall {} ms, {} host calls, {} log lines",
            l.memory_mib,
            l.cpu_ms,
            l.wall_ms,
            l.host_calls,
            l.log_lines
        );
    }
    Exit::Success
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}
