//! Crash safety: `portcullis apply` is killed with SIGKILL at each of 26 points of Josh's
//! hire and leave runs (before an intent, after it, after the write, after the read-back,
//! between state records, mid audit line; early and late in the run; and again while
//! recovering from a kill) and started again.
//! After each restart the apps, the state and the writes the simulators saw are compared
//! with an uninterrupted run of the same two applies: every grant ends as planned, no
//! write was sent more often (no second invitation), the plan made afterwards is the same
//! (state matches the apps), and `audit verify` passes, a torn line reported as sealed.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Output;

use portcullis_simulators::{
    DriveSimulator, GDRIVE_DEMO_TOKEN, GITHUB_DEMO_TOKEN, GithubSimulator, JIRA_DEMO_EMAIL,
    JIRA_DEMO_TOKEN, JiraSimulator, SLACK_DEMO_TOKEN, SlackSimulator,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const POLICY: &str = include_str!("../src/cli/demo/policy.toml");
const HR_EVENTS: &str = include_str!("../../examples/josh/hr-events.json");
const HIRE_AT: &str = "2026-12-01T09:00:00Z";
const LEAVE_AT: &str = "2027-07-01T09:00:00Z";
const GITHUB_LOGIN: &str = "josh-platform";
const SLACK_USER: &str = "U0200JOSH1";
const JIRA_ACCOUNT: &str = "712020:6f0a3c9e-2b4d-4e8a-9c1f-0a5b7d3e9f21";
const EMAIL: &str = "josh@acme.example";

struct Sims {
    github: GithubSimulator,
    jira: JiraSimulator,
    slack: SlackSimulator,
    gdrive: DriveSimulator,
}

async fn sims() -> Sims {
    let (github, jira, slack, gdrive) = portcullis::cli::start_demo_simulators()
        .await
        .expect("simulators start");
    Sims {
        github,
        jira,
        slack,
        gdrive,
    }
}

impl Sims {
    /// Josh's access in every app, as the apps show it.
    fn josh(&self) -> Vec<String> {
        let mut held = Vec::new();
        for repo in [
            "acme/platform-api",
            "acme/platform-infra",
            "acme/platform-docs",
            "acme/platform-terraform",
            "acme/platform-k8s",
            "acme/platform-observability",
            "acme/service-catalog",
            "acme/platform-runbooks",
            "acme/data-pipelines",
        ] {
            if let Some(role) = self.github.collaborator_role(repo, GITHUB_LOGIN) {
                held.push(format!("github {repo} {role}"));
            }
            if let Some(role) = self.github.pending_invitation(repo, GITHUB_LOGIN) {
                held.push(format!("github {repo} invited {role}"));
            }
        }
        for project in ["PLAT", "OPS"] {
            for role in ["Administrators", "Developers", "Viewers", "Reporters"] {
                if self
                    .jira
                    .role_members(project, role)
                    .iter()
                    .any(|m| m == JIRA_ACCOUNT)
                {
                    held.push(format!("jira {project} {role}"));
                }
            }
        }
        for channel in [
            "C0100PLTFM",
            "C0100INCDT",
            "C0200ALLHS",
            "C0200ONCAL",
            "C0200ALRTS",
            "C0200DPLOY",
        ] {
            if self
                .slack
                .channel_members(channel)
                .iter()
                .any(|m| m == SLACK_USER)
            {
                held.push(format!("slack {channel}"));
            }
        }
        for file in [
            "1PlatformDesignSystem0aBcDeFgHiJkL",
            "1PlatformArchDiagrams0aBcDeFgHiJkL",
            "1IncidentRunbooks000aBcDeFgHiJkLmN",
        ] {
            for (who, role) in self.gdrive.permissions(file) {
                if who == EMAIL {
                    held.push(format!("gdrive {file} {role}"));
                }
            }
        }
        held.sort();
        held
    }

    /// Every write request (not GET) each simulator answered, by method and path.
    fn writes(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (app, requests) in [
            ("github", self.github.requests()),
            ("jira", self.jira.requests()),
            ("slack", self.slack.requests()),
            ("gdrive", self.gdrive.requests()),
        ] {
            for request in requests {
                if request.method == "GET" || request.status >= 400 {
                    continue;
                }
                // Ids the apps assign (invitation numbers) depend on the order of concurrent
                // writes, so they are compared as `{id}`.
                let path = request
                    .path
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .split('/')
                    .map(|s| {
                        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                            "{id}"
                        } else {
                            s
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                *counts
                    .entry(format!("{app} {} {path}", request.method))
                    .or_default() += 1;
            }
        }
        counts
    }
}

fn write_config(dir: &Path, sims: &Sims) {
    for (file, value) in [
        ("github.token", GITHUB_DEMO_TOKEN),
        ("jira.email", JIRA_DEMO_EMAIL),
        ("jira.token", JIRA_DEMO_TOKEN),
        ("slack.token", SLACK_DEMO_TOKEN),
        ("gdrive.token", GDRIVE_DEMO_TOKEN),
    ] {
        std::fs::write(dir.join(file), value).expect("secret file");
    }
    std::fs::write(dir.join("policy.toml"), POLICY).expect("policy");
    std::fs::write(dir.join("hr-events.json"), HR_EVENTS).expect("events");
    // Josh arrives through his hire event.
    std::fs::write(dir.join("people.json"), r#"{ "people": [] }"#).expect("directory");
    std::fs::write(
        dir.join("portcullis.toml"),
        format!(
            r#"
[audit]
path = "audit.jsonl"
[state]
path = "portcullis.db"
[policy]
path = "policy.toml"
[people]
directory = "people.json"
events = "hr-events.json"

[apps.github]
plugin = "github"
base_url = "{github}"
secrets = {{ token = "file:github.token" }}
network = {{ allow_loopback = true }}

[apps.jira]
plugin = "jira"
base_url = "{jira}"
secrets = {{ email = "file:jira.email", api-token = "file:jira.token" }}
network = {{ allow_loopback = true }}

[apps.slack]
plugin = "slack"
base_url = "{slack}"
secrets = {{ token = "file:slack.token" }}
network = {{ allow_loopback = true }}

[apps.gdrive]
plugin = "gdrive"
base_url = "{gdrive}"
secrets = {{ token = "file:gdrive.token" }}
network = {{ allow_loopback = true }}
"#,
            github = sims.github.base_url(),
            jira = sims.jira.base_url(),
            slack = sims.slack.base_url(),
            gdrive = sims.gdrive.base_url(),
        ),
    )
    .expect("config");
}

async fn portcullis(dir: &Path, cache: &Path, args: &[&str], crash: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("PORTCULLIS_CRASH_AT");
    if let Some(point) = crash {
        command.env("PORTCULLIS_CRASH_AT", point);
    }
    tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("the binary finishes in time")
        .expect("the binary runs")
}

fn apply_args(at: &str) -> Vec<&str> {
    let mut args = vec!["--json", "apply", "--at", at];
    if at == LEAVE_AT {
        // The leaver loses every grant: over the blast-radius share, on purpose.
        args.push("--allow-large-revoke");
    }
    args
}

/// An apply that must finish (converged, or waiting for invitations).
async fn apply(dir: &Path, cache: &Path, at: &str) {
    let output = portcullis(dir, cache, &apply_args(at), None).await;
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "apply at {at}: {:?}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The plan's counts at `at`: what state and policy still disagree on.
async fn plan_summary(dir: &Path, cache: &Path, at: &str) -> Value {
    let output = portcullis(dir, cache, &["--json", "plan", "--at", at], None).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).expect("plan JSON");
    doc.get("summary").cloned().unwrap_or(doc)
}

struct Outcome {
    josh: Vec<String>,
    writes: BTreeMap<String, usize>,
    plan: Value,
}

/// Josh's hire, then (for a leave case) his leave, the phase under test applied once per
/// crash point, each killed there (none, for the baseline), and once more to finish.
async fn scenario(cache: &Path, leave: bool, crashes: &[&str]) -> Outcome {
    let sims = sims().await;
    let dir = tempfile::tempdir().expect("dir");
    write_config(dir.path(), &sims);
    let at = if leave {
        apply(dir.path(), cache, HIRE_AT).await;
        LEAVE_AT
    } else {
        HIRE_AT
    };
    if crashes.is_empty() {
        apply(dir.path(), cache, at).await;
    }
    for point in crashes {
        let output = portcullis(dir.path(), cache, &apply_args(at), Some(point)).await;
        assert_eq!(
            output.status.signal(),
            Some(9),
            "{point}: the run was not killed there: {:?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    apply(dir.path(), cache, at).await;

    let verify = portcullis(dir.path(), cache, &["audit", "verify"], None).await;
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{crashes:?}: {text}\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Every run ends sealed by a signed checkpoint.
    assert!(text.contains("; 0 records after it"), "{crashes:?}: {text}");
    if crashes.iter().any(|p| p.starts_with("audit-line")) {
        assert!(text.contains("torn line sealed"), "{crashes:?}: {text}");
    }
    Outcome {
        josh: sims.josh(),
        writes: sims.writes(),
        plan: plan_summary(dir.path(), cache, at).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_at_any_point_recovers_without_duplicate_writes() {
    let cache = tempfile::tempdir().expect("cache");
    for leave in [false, true] {
        let baseline = scenario(cache.path(), leave, &[]).await;
        if leave {
            assert!(
                baseline.josh.is_empty(),
                "the leaver keeps {:?}",
                baseline.josh
            );
        } else {
            assert!(baseline.josh.len() >= 15, "{:?}", baseline.josh);
        }
        for crashes in [
            &["before-intent:1"][..],
            &["before-intent:9"],
            &["after-intent:1"],
            &["after-intent:9"],
            &["after-write:1"],
            &["after-write:9"],
            &["after-readback:1"],
            &["after-readback:9"],
            &["state-record:1"],
            &["state-record:9"],
            &["audit-line:3"],
            &["audit-line:60"],
            // Killed again while recovering the first crash's open intents.
            &["after-write:9", "recover:1"],
        ] {
            let crashed = scenario(cache.path(), leave, crashes).await;
            let point = crashes.join(" then ");
            let phase = if leave { "leave" } else { "hire" };
            assert_eq!(
                crashed.josh, baseline.josh,
                "{phase} {point}: the apps differ"
            );
            assert_eq!(
                crashed.plan, baseline.plan,
                "{phase} {point}: state differs"
            );
            for (write, count) in &crashed.writes {
                let expected = baseline.writes.get(write).copied().unwrap_or(0);
                assert!(
                    *count <= expected,
                    "{phase} {point}: {write} sent {count} times, {expected} without the crash"
                );
            }
        }
    }
}
