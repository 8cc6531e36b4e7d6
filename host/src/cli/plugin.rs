//! `portcullis plugin inspect|verify|sign|keygen`: what a plugin is and may reach, who
//! signed it and whether that counts, and the vendor's signing tools. The work is in
//! [`crate::ops::plugins`]; this renders it.

use std::path::Path;

use serde_json::json;

use super::Exit;
use super::lifecycle::failed;
use super::output::{emit, say};
use crate::config::Config;
use crate::ops::OpError;
use crate::ops::plugins::{self, PluginReport, SignatureReport, Target, Verdict};

/// The config, if there is one at `path`; a config that exists but does not load is an
/// error (its trust settings would otherwise be silently ignored).
fn optional_config(path: &Path) -> Result<Option<Config>, OpError> {
    if !path.exists() {
        return Ok(None);
    }
    Config::load(path)
        .map(Some)
        .map_err(|e| OpError::Input(e.to_string()))
}

pub(crate) async fn inspect(
    config_path: &Path,
    target: &str,
    app: Option<&str>,
    json: bool,
) -> Exit {
    let report = async {
        let config = optional_config(config_path)?;
        let target = Target::resolve(config.as_ref(), target)?;
        plugins::inspect(config.as_ref(), &target, app).await
    }
    .await;
    let report = match report {
        Ok(report) => report,
        Err(e) => return failed(&e, json),
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "plugin": report }));
        return Exit::Success;
    }
    render_inspection(&report);
    Exit::Success
}

fn render_inspection(report: &PluginReport) {
    let p = &report.plugin;
    say!("plugin    {}", p.origin);
    say!("size      {} bytes", p.size);
    say!("sha256    {}", p.sha256);
    say!(
        "contract  {}",
        p.contract
            .as_deref()
            .unwrap_or("none (not a Portcullis connector)")
    );
    match &p.incompatibility {
        None => say!("loads     yes, on this host"),
        Some(reason) => say!("loads     NO: {reason}"),
    }
    render_signatures(&report.signatures, report.verdict.as_ref());
    match (&report.connector, &report.connector_problem) {
        (Some(info), _) => {
            say!(
                "declares  {} {} ({} kinds)",
                info.name,
                info.version,
                info.kinds.len()
            );
            for kind in &info.kinds {
                let levels = match kind.levels.is_empty() {
                    true => "none (present or absent)".to_owned(),
                    false => kind.levels.join(", "),
                };
                let caps = info.capabilities_of(&kind.name);
                let optional: Vec<&str> = [
                    (caps.list_grants, "list-grants"),
                    (caps.set_level, "set-level"),
                    (caps.usage, "usage"),
                ]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
                let optional = match optional.is_empty() {
                    true => "none".to_owned(),
                    false => optional.join(", "),
                };
                say!("  {:<24} levels {levels}; supports {optional}", kind.name);
            }
        }
        (None, Some(problem)) => say!("declares  {problem}"),
        (None, None) => {}
    }
    say!("exports");
    for export in &p.exports {
        say!("  {export}");
    }
    say!("imports (what it asks the host for)");
    for import in &p.imports {
        let note = if import.starts_with("wasi:") {
            "  [WASI: empty context, nothing reachable]"
        } else {
            ""
        };
        say!("  {import}{note}");
    }
    match &report.grants {
        Some(grants) => {
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
        }
        None => say!("granted   nothing yet: no app is configured with it (name one with --app)"),
    }
    let l = &report.limits;
    say!(
        "limits    memory {} MiB, cpu {} ms, wall {} ms, {} host calls, {} log lines",
        l.memory_mib,
        l.cpu_ms,
        l.wall_ms,
        l.host_calls,
        l.log_lines
    );
}

fn render_signatures(signatures: &[SignatureReport], verdict: Option<&Verdict>) {
    if signatures.is_empty() {
        say!("signer    unsigned");
    }
    for s in signatures {
        let key = s.key.as_deref().unwrap_or("(unreadable)");
        let status = match (&s.problem, s.revoked, &s.expired) {
            (Some(problem), _, _) => format!("INVALID: {problem}"),
            (None, true, _) => "REVOKED in [plugins.trust]".to_owned(),
            (None, false, Some(at)) => format!("valid; the key expired on {at}"),
            (None, false, None) if s.publishers.is_empty() => {
                "valid; the key is not in [plugins.trust]".to_owned()
            }
            (None, false, None) => format!("valid; {}", s.publishers.join(", ")),
        };
        say!("signed    {key} ({}) {status}", s.place);
    }
    if let Some(v) = verdict {
        let required = if v.require_signed {
            "required"
        } else {
            "optional"
        };
        match (&v.signer, &v.refused) {
            (Some(signer), _) => {
                say!(
                    "trust     app `{}` loads it; signer {signer} (signatures {required})",
                    v.app
                )
            }
            (None, Some(reason)) => say!("trust     app `{}` REFUSES it: {reason}", v.app),
            (None, None) => {}
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

pub(crate) fn verify(
    config_path: &Path,
    target: &str,
    app: Option<&str>,
    key: Option<&str>,
    json: bool,
) -> Exit {
    let report = optional_config(config_path).and_then(|config| {
        let target = Target::resolve(config.as_ref(), target)?;
        plugins::verify(config.as_ref(), &target, app, key)
    });
    let report = match report {
        Ok(report) => report,
        Err(e) => return failed(&e, json),
    };
    let exit = if report.ok {
        Exit::Success
    } else {
        Exit::ActionFailed
    };
    if json {
        emit(&json!({ "ok": report.ok, "exit": exit as u8, "verify": report }));
        return exit;
    }
    say!("plugin    {}", report.file);
    say!("sha256    {}", report.sha256);
    render_signatures(&report.signatures, report.verdict.as_ref());
    match &report.problem {
        None => say!("verified: every signature holds"),
        Some(problem) => say!("NOT VERIFIED: {problem}"),
    }
    exit
}

pub(crate) fn sign(file: &Path, key: &Path, detached: bool, json: bool) -> Exit {
    let signed = match plugins::sign(file, key, detached) {
        Ok(signed) => signed,
        Err(e) => return failed(&e, json),
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "signed": signed }));
        return Exit::Success;
    }
    say!("signed {} with {}", signed.file, signed.key);
    say!(
        "  covers sha256 {} (the file without signatures)",
        signed.content_sha256
    );
    say!(
        "  written to {} (file sha256 now {})",
        signed.written,
        signed.sha256
    );
    Exit::Success
}

pub(crate) fn keygen(out: &Path, json: bool) -> Exit {
    let key = match plugins::keygen(out) {
        Ok(key) => key,
        Err(e) => return failed(&e, json),
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "key": key }));
        return Exit::Success;
    }
    say!(
        "secret key  {} (owner-only; keep it out of the repository)",
        key.secret
    );
    say!("public key  {} ({})", key.key, key.public);
    say!("Operators trust it with:");
    say!("  [[plugins.trust.publisher]]");
    say!("  name = \"YOUR NAME\"");
    say!("  key = \"{}\"", key.key);
    Exit::Success
}

pub(crate) async fn accept(config_path: &Path, app: &str, by: Option<String>, json: bool) -> Exit {
    let accepted = async {
        let (host, _) = super::load_host(config_path).map_err(OpError::Input)?;
        let (_, store) = crate::ops::open_state(config_path)?;
        let by = by.unwrap_or_else(|| {
            crate::model::RunOrigin::cli()
                .operator
                .unwrap_or_else(|| "unknown".into())
        });
        crate::ops::upgrades::accept(&host, store.as_ref(), app, &by).await
    }
    .await;
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(e) => return failed(&e, json),
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "accepted": accepted }));
        return Exit::Success;
    }
    say!(
        "accepted the plugin of {} ({}) by {}",
        accepted.app,
        accepted.to_sha256,
        accepted.by
    );
    if let Some(from) = &accepted.from_sha256 {
        say!("  replaces {from}");
    }
    for line in &accepted.widened {
        say!("  widens: {line}");
    }
    for line in &accepted.narrowed {
        say!("  narrows: {line}");
    }
    say!("A running service takes it at its next reload (SIGHUP or POST /v1/plugins/reload).");
    Exit::Success
}

/// Registry credentials from the environment: `PORTCULLIS_REGISTRY_USER` and
/// `PORTCULLIS_REGISTRY_PASSWORD` (never arguments, which other users can read).
fn registry(plain_http: bool) -> crate::registry::Registry {
    let basic_auth = match (
        std::env::var("PORTCULLIS_REGISTRY_USER"),
        std::env::var("PORTCULLIS_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => Some((user, password)),
        _ => None,
    };
    crate::registry::Registry {
        plain_http,
        basic_auth,
    }
}

pub(crate) struct PullArgs<'a> {
    pub reference: &'a str,
    pub dir: &'a Path,
    pub out: Option<&'a Path>,
    pub app: Option<&'a str>,
    pub require_signed: bool,
    pub plain_http: bool,
}

pub(crate) async fn pull(config_path: &Path, args: &PullArgs<'_>, json: bool) -> Exit {
    let pulled = async {
        let config = optional_config(config_path)?;
        plugins::pull(
            config.as_ref(),
            &registry(args.plain_http),
            args.reference,
            args.dir,
            args.out,
            args.app,
            args.require_signed,
        )
        .await
    }
    .await;
    let pulled = match pulled {
        Ok(pulled) => pulled,
        Err(e) => return failed(&e, json),
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "pulled": pulled }));
        return Exit::Success;
    }
    say!(
        "pulled {} -> {}",
        pulled.reference,
        pulled.written.display()
    );
    say!(
        "  manifest {}",
        pulled
            .manifest_digest
            .as_deref()
            .unwrap_or("(not reported)")
    );
    say!(
        "  sha256   {} ({} bytes, digest checked)",
        pulled.sha256,
        pulled.size
    );
    say!("  signer   {}", pulled.signer);
    Exit::Success
}

pub(crate) async fn push(file: &Path, reference: &str, plain_http: bool, json: bool) -> Exit {
    let pushed = match plugins::push(&registry(plain_http), file, reference).await {
        Ok(pushed) => pushed,
        Err(e) => return failed(&e, json),
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "pushed": pushed }));
        return Exit::Success;
    }
    say!("pushed {} to {}", file.display(), pushed.reference);
    say!("  layer {}", pushed.layer_digest);
    say!("  manifest {}", pushed.manifest_url);
    Exit::Success
}
