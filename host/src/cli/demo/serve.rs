//! `portcullis demo --serve`: the simulators and `portcullis serve` on loopback, with a
//! demo token and HR webhook secret made for this run, Josh's hire event ready to send,
//! and the URLs and a curl example printed. State, audit trail and files live in a
//! temporary directory that is deleted when the service stops (Ctrl-C).

use std::sync::Arc;

use serde_json::{Value, json};

use super::world::{self, HR_EVENTS, POLICY};
use crate::cli::Exit;
use crate::cli::output::{bad_input, emit, say};
use crate::config::{HrWebhookConfig, Role, TokenConfig};
use crate::host::Host;
use crate::ops::Workspace;
use crate::secrets::SecretSource;
use crate::service::{ServeOptions, serve};
use crate::state::SqliteStore;

/// A random hex string of `bytes` bytes: good enough for a demo's throwaway secrets.
fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

/// Josh's hire event with the accounts of the apps the demo runs.
fn josh_hire() -> Result<String, String> {
    let events: Value = serde_json::from_str(HR_EVENTS).map_err(|e| e.to_string())?;
    let mut hire = events["events"][0].clone();
    if let Some(accounts) = hire["accounts"].as_object_mut() {
        accounts.retain(|app, _| world::APPS.contains(&app.as_str()));
    }
    Ok(json!({ "events": [hire] }).to_string())
}

pub(crate) async fn run(listen: Option<String>, json: bool) -> Exit {
    match start(listen, json).await {
        Ok(()) => Exit::Success,
        Err(message) => bad_input(&message, json),
    }
}

async fn start(listen: Option<String>, json: bool) -> Result<(), String> {
    let (github, jira, slack, gdrive) = world::start_simulators()
        .await
        .map_err(|e| format!("cannot start a simulator: {e}"))?;
    let mut config = world::demo_config(&github, &jira, &slack, &gdrive)?;
    let dir = tempfile::Builder::new()
        .prefix("portcullis-demo-serve-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let path = |name: &str| dir.path().join(name);
    let hire = josh_hire()?;
    for (name, text) in [
        ("policy.toml", POLICY),
        ("people.json", r#"{ "people": [] }"#),
        ("josh-hire.json", hire.as_str()),
    ] {
        std::fs::write(path(name), text).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    // Made for this run and kept in files: the host scrubs loaded secrets from everything
    // it prints, so the curl examples read them from the files.
    let (token, hr_token, hr_secret) = (random_hex(24), random_hex(24), random_hex(24));
    for (name, value) in [
        ("demo.token", &token),
        ("hr.token", &hr_token),
        ("hr.secret", &hr_secret),
    ] {
        std::fs::write(path(name), value).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    config.policy.path = Some(path("policy.toml"));
    config.people.directory = Some(path("people.json"));
    config.state.path = Some(path("state.db"));
    config.audit.path = Some(path("audit.jsonl"));
    config.runtime.cache_dir = crate::cache::CompileCache::default_dir();
    config.server.tokens = vec![
        TokenConfig {
            name: "demo".into(),
            role: Role::Operator,
            secret: SecretSource::Value(token.into()),
        },
        TokenConfig {
            name: "demo-hr".into(),
            role: Role::HrSource,
            secret: SecretSource::Value(hr_token.into()),
        },
    ];
    config.server.hr_webhook = Some(HrWebhookConfig {
        secret: SecretSource::Value(hr_secret.into()),
        tolerance_s: 300,
    });
    let host = Host::builder(config.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let store = SqliteStore::open(&path("state.db")).map_err(|e| e.to_string())?;
    let workspace = Workspace::new(config, Arc::new(host), Arc::new(store));
    let dir_text = dir.path().display().to_string();
    let options = ServeOptions {
        listen: Some(listen.unwrap_or_else(|| "127.0.0.1:8740".into())),
        on_listening: Box::new(move |addr| {
            let url = format!("http://{addr}");
            if json {
                emit(&json!({ "listening": url, "dir": dir_text }));
                return;
            }
            say!(
                "portcullis serve is listening on {url} with the GitHub, Jira, Slack and Google Drive simulators"
            );
            say!("  API:     {url}/v1   (description: {url}/v1/openapi.json)");
            say!("  health:  {url}/healthz, {url}/readyz");
            say!("  files:   {dir_text}");
            say!(
                "           demo.token (operator), hr.token (hr-source), hr.secret (webhook signing),"
            );
            say!("           josh-hire.json, state.db, audit.jsonl");
            say!();
            say!("Read the plan:");
            say!("  cd {dir_text}");
            say!("  curl -s -H \"Authorization: Bearer $(cat demo.token)\" {url}/v1/plan");
            say!("Send Josh's hire as the HR system would (signed), then watch the job:");
            say!("  ts=$(date +%s)");
            say!(
                "  sig=$(printf '%s.' \"$ts\" | cat - josh-hire.json | openssl dgst -sha256 -hmac \"$(cat hr.secret)\" -hex | sed 's/^.* //')"
            );
            say!(
                "  curl -s -H \"Authorization: Bearer $(cat hr.token)\" -H \"X-Portcullis-Signature: t=$ts,v1=$sig\" --data-binary @josh-hire.json {url}/v1/hr-events"
            );
            say!("  curl -s -H \"Authorization: Bearer $(cat demo.token)\" {url}/v1/jobs");
            say!();
            say!("Ctrl-C stops the service and the simulators and deletes the directory.");
        }),
    };
    let served = serve(workspace, options).await.map_err(|e| e.to_string());
    // The simulators and the directory live until the service has stopped.
    drop((github, jira, slack, gdrive, dir));
    served
}
