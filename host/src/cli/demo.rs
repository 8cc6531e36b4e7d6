//! `portcullis demo`: the whole path on an embedded default. It starts the GitHub
//! simulator on 127.0.0.1, loads the bundled GitHub plugin, and runs grant -> verify ->
//! revoke -> verify, printing every step with its read-back verdict. No files, no network.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::Exit;
use super::action::{exit_for, verdict_line};
use super::output::{bad_input, emit, report_lines};
use crate::audit::MemorySink;
use crate::config::{AppConfig, Config, NetworkPolicy};
use crate::host::Host;
use crate::model::{Action, Entitlement, Subject};
use crate::readback::Verdict;
use crate::secrets::SecretSource;

const APP: &str = "github";
const REPO: &str = "acme/platform-api";

/// The demo's configuration: the bundled plugin pointed at the simulator, with loopback
/// explicitly allowed (it is refused by default).
pub fn demo_config(base_url: &str) -> Result<Config, String> {
    let base_url = url::Url::parse(base_url).map_err(|e| format!("simulator URL: {e}"))?;
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "token".to_owned(),
        SecretSource::Value(portcullis_simulators::GITHUB_DEMO_TOKEN.into()),
    );
    let mut config = Config::default();
    config.apps.insert(
        APP.to_owned(),
        AppConfig {
            plugin: "github".to_owned(),
            base_url,
            secrets,
            reveal: Vec::new(),
            settings: BTreeMap::new(),
            network: NetworkPolicy {
                allow_loopback: true,
                ..NetworkPolicy::default()
            },
            limits: None,
            rate_limit: Default::default(),
        },
    );
    Ok(config)
}

struct Step {
    name: String,
    verdict: Verdict,
    expected_pending: bool,
}

pub(crate) async fn run(json: bool) -> Exit {
    let sim = match portcullis_simulators::github_demo().await {
        Ok(sim) => sim,
        Err(e) => return bad_input(&format!("cannot start the GitHub simulator: {e}"), json),
    };
    let config = match demo_config(&sim.base_url()) {
        Ok(config) => config,
        Err(e) => return bad_input(&e, json),
    };
    let audit = MemorySink::new();
    let host = match Host::builder(config).audit(Arc::new(audit.clone())).build() {
        Ok(host) => host,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    say(format!("GitHub simulator listening on {}", sim.base_url()));
    say("plugin: bundled github connector, fresh sandbox per call\n".to_owned());

    let check = host.check(APP).await;
    match &check.result {
        Ok(report) => say(format!(
            "check    token works; acting as {}",
            report.principal
        )),
        Err(e) => say(format!("check    FAILED: {e}")),
    }

    let octocat = action("octocat", "write", "demo: new platform engineer");
    let hubot = action("hubot", "maintain", "demo: promotion to maintainer");
    let mut steps = Vec::new();

    say(format!("\n1. grant octocat write on {REPO}"));
    let granted = host.grant_checked(APP, &octocat).await;
    print_checked(
        &say,
        &granted.write.report,
        granted.readback.as_ref().map(|r| &r.report),
        &granted.verdict,
    );
    steps.push(Step {
        name: "grant octocat write (invitation)".into(),
        verdict: granted.verdict,
        expected_pending: true,
    });

    say("\n   octocat accepts the invitation on github.com (simulated)".to_owned());
    if !sim.accept_invitation(REPO, "octocat") {
        say("   (no invitation was waiting)".to_owned());
    }

    say(format!("\n2. verify octocat on {REPO}"));
    let verified = host
        .verify(APP, &octocat.subject, &octocat.entitlement)
        .await;
    let verdict = match &verified.result {
        Ok(observed) => crate::readback::grant_verdict(
            host.connector_info(APP)
                .await
                .ok()
                .as_ref()
                .and_then(|i| i.kind("repository")),
            &octocat,
            &crate::model::GrantOutcome::Granted,
            observed.clone(),
        ),
        Err(error) => Verdict::Failed {
            error: error.clone(),
        },
    };
    print_checked(&say, &verified.report, None, &verdict);
    steps.push(Step {
        name: "verify octocat write".into(),
        verdict,
        expected_pending: false,
    });

    say(format!(
        "\n3. grant hubot maintain on {REPO} (already a collaborator at read: GitHub answers 204)"
    ));
    sim.set_collaborator(REPO, "hubot", "read");
    let promoted = host.grant_checked(APP, &hubot).await;
    print_checked(
        &say,
        &promoted.write.report,
        promoted.readback.as_ref().map(|r| &r.report),
        &promoted.verdict,
    );
    steps.push(Step {
        name: "grant hubot maintain".into(),
        verdict: promoted.verdict,
        expected_pending: false,
    });

    say(format!("\n4. revoke octocat from {REPO}, then verify"));
    let revoked = host.revoke_checked(APP, &octocat).await;
    print_checked(
        &say,
        &revoked.write.report,
        revoked.readback.as_ref().map(|r| &r.report),
        &revoked.verdict,
    );
    steps.push(Step {
        name: "revoke octocat".into(),
        verdict: revoked.verdict,
        expected_pending: false,
    });

    say("\n5. revoke octocat again (idempotent: nothing to do)".to_owned());
    let again = host.revoke_checked(APP, &octocat).await;
    print_checked(
        &say,
        &again.write.report,
        again.readback.as_ref().map(|r| &r.report),
        &again.verdict,
    );
    steps.push(Step {
        name: "revoke octocat again".into(),
        verdict: again.verdict,
        expected_pending: false,
    });

    let all_as_expected = check.result.is_ok()
        && steps.iter().all(|s| {
            if s.expected_pending {
                matches!(s.verdict, Verdict::Pending { .. })
            } else {
                s.verdict.is_verified()
            }
        });
    let events = audit.records().len();
    if json {
        emit(&json!({
            "ok": all_as_expected,
            "exit": if all_as_expected { 0 } else { 1 },
            "simulator": sim.base_url(),
            "steps": steps.iter().map(|s| json!({ "step": s.name, "verdict": s.verdict })).collect::<Vec<_>>(),
            "audit_events": events,
        }));
    } else {
        println!("\nsummary");
        for step in &steps {
            println!("  {:<36} {}", step.name, verdict_name(&step.verdict));
        }
        println!("  {events} audit events recorded (call intents, HTTP requests, outcomes)");
        println!(
            "\n{}",
            if all_as_expected {
                "every step ended as expected and was read back"
            } else {
                "SOME STEPS DID NOT END AS EXPECTED"
            }
        );
    }
    if all_as_expected {
        Exit::Success
    } else {
        steps
            .iter()
            .map(|s| exit_for(&s.verdict))
            .find(|e| *e == Exit::ActionFailed)
            .unwrap_or(Exit::ActionFailed)
    }
}

fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Verified { .. } => "verified",
        Verdict::Pending { .. } => "pending (as GitHub requires)",
        Verdict::NotApplied { .. } => "NOT APPLIED",
        Verdict::Failed { .. } => "FAILED",
    }
}

fn print_checked(
    say: &dyn Fn(String),
    write: &crate::sandbox::CallReport,
    readback: Option<&crate::sandbox::CallReport>,
    verdict: &Verdict,
) {
    for line in report_lines(write) {
        say(format!("   {line}"));
    }
    if let Some(readback) = readback {
        for line in report_lines(readback) {
            say(format!("   read-back: {line}"));
        }
    }
    say(format!("   => {}", verdict_line(verdict)));
}

fn action(login: &str, level: &str, reason: &str) -> Action {
    Action {
        subject: Subject {
            id: login.to_owned(),
            email: None,
        },
        entitlement: Entitlement {
            kind: "repository".to_owned(),
            resource: REPO.to_owned(),
            level: Some(level.to_owned()),
        },
        idempotency_key: format!("demo-{login}-{level}"),
        reason: reason.to_owned(),
    }
}
