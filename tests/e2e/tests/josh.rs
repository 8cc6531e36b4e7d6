//! The joiner scenario end to end: `examples/josh/actions.toml` (24 grants across GitHub,
//! Jira, Slack, AWS dev + staging and Google Drive) run by the engine with real wasm
//! connectors against the simulators and a real, signature-checking `moto_server`.
//!
//! First run: GitHub grants to a non-collaborator are invitations, so they end `Pending`
//! and everything else `Verified`. Josh then accepts the invitations in the simulator and a
//! second run of the same file ends with every action `Verified` (grants already in place
//! are re-verified). The applications' own state is checked directly too.

use std::collections::BTreeSet;
use std::sync::Arc;

use portcullis::config::Config;
use portcullis::engine::{
    ActionOutcome, ActionsFile, EngineOptions, NoProgress, Op, RunReport, run,
};
use portcullis::model::{GrantQuery, Observed};
use portcullis_e2e::josh::{
    self, APPS, EMAIL, GITHUB_LOGIN, IAM_USER, JIRA_ACCOUNT, Josh, SLACK_USER,
};
use portcullis_simulators::slack::{SLACK_DEMO_CHANNEL, SLACK_DEMO_PRIVATE_CHANNEL};

const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

fn table(report: &RunReport) -> String {
    report
        .actions
        .iter()
        .map(|a| {
            format!(
                "{:>2} {:<12} {:<14} {:<45} {:?} attempts={} observed={:?} error={:?}\n",
                a.index,
                a.app,
                a.entitlement.kind,
                a.entitlement.resource,
                a.outcome,
                a.attempts,
                a.last_observed,
                a.last_error.as_ref().map(ToString::to_string)
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn josh_joins_first_run_pending_invitations_then_all_verified() {
    let actions = ActionsFile::load(&josh::actions_path())
        .expect("the example actions file loads")
        .into_actions();
    assert!(actions.len() >= 23, "{} actions", actions.len());
    let apps: BTreeSet<&str> = actions.iter().map(|a| a.app.as_str()).collect();
    assert_eq!(
        apps,
        APPS.into_iter().collect(),
        "five applications, six app instances"
    );
    assert!(actions.iter().all(|a| a.op == Op::Grant));
    assert!(
        actions.iter().all(|a| !a.app.contains("prod")),
        "no action may target a production app"
    );

    let josh = Josh::start().await;
    let host = josh.host();
    assert!(
        host.apps().all(|a| !a.name.contains("prod")),
        "no production app is configured at all"
    );
    let options = EngineOptions::default();

    // First run: GitHub invitations pending, everything else verified.
    let first = run(
        Arc::clone(&host),
        "josh-1",
        actions.clone(),
        &options,
        Arc::new(NoProgress),
    )
    .await
    .expect("the run starts");
    assert_eq!(first.actions.len(), actions.len());
    for action in &first.actions {
        let expect_pending = action.app == "github";
        let ok = match &action.outcome {
            ActionOutcome::Pending { .. } => expect_pending,
            ActionOutcome::Verified => !expect_pending,
            ActionOutcome::Alerted { .. } => false,
        };
        assert!(ok, "unexpected outcome:\n{}", table(&first));
    }
    let github_actions = actions.iter().filter(|a| a.app == "github").count();
    for spec in actions.iter().filter(|a| a.app == "github") {
        let repo = &spec.entitlement.resource;
        assert_eq!(
            josh.github.pending_invitation(repo, GITHUB_LOGIN),
            spec.entitlement.level,
            "{repo}"
        );
        assert_eq!(
            josh.github.collaborator_role(repo, GITHUB_LOGIN),
            None,
            "{repo}"
        );
    }

    // Josh accepts the invitations on github.com.
    assert_eq!(josh.accept_invitations(), github_actions);

    // Second run of the same file: every action verified.
    let second = run(
        Arc::clone(&host),
        "josh-2",
        actions.clone(),
        &options,
        Arc::new(NoProgress),
    )
    .await
    .expect("the run starts");
    assert!(
        second
            .actions
            .iter()
            .all(|a| a.outcome == ActionOutcome::Verified),
        "not all verified:\n{}",
        table(&second)
    );
    assert_eq!(
        second.count(|o| *o == ActionOutcome::Verified),
        actions.len()
    );
    assert!(second.actions.len() >= 23);

    // The applications' own state.
    for spec in actions.iter().filter(|a| a.app == "github") {
        let repo = &spec.entitlement.resource;
        assert_eq!(
            josh.github.collaborator_role(repo, GITHUB_LOGIN),
            spec.entitlement.level,
            "{repo}"
        );
    }
    assert_eq!(
        josh.github
            .collaborator_role("acme/platform-api", GITHUB_LOGIN)
            .as_deref(),
        Some("maintain")
    );
    assert!(
        josh.jira
            .role_members("PLAT", "Developers")
            .contains(&JIRA_ACCOUNT.to_owned())
    );
    assert!(
        josh.jira
            .role_members("OPS", "Reporters")
            .contains(&JIRA_ACCOUNT.to_owned())
    );
    assert!(
        !josh
            .jira
            .role_members("PLAT", "Administrators")
            .contains(&JIRA_ACCOUNT.to_owned())
    );
    for channel in [SLACK_DEMO_CHANNEL, SLACK_DEMO_PRIVATE_CHANNEL]
        .into_iter()
        .chain(josh::EXTRA_CHANNELS.iter().map(|(id, _)| *id))
    {
        assert!(
            josh.slack
                .channel_members(channel)
                .contains(&SLACK_USER.to_owned()),
            "{channel}"
        );
    }
    for spec in actions.iter().filter(|a| a.app == "gdrive") {
        assert_eq!(
            josh.gdrive.role(&spec.entitlement.resource, EMAIL),
            spec.entitlement.level,
            "{}",
            spec.entitlement.resource
        );
    }

    // AWS, read from moto by the host: dev has PowerUser only, staging ReadOnly only (one
    // moto serves both apps here, so both policies are on the one user; the per-app
    // actions each attached exactly the one the file names).
    for (app, policy) in [("aws-dev", POWER_USER), ("aws-staging", READ_ONLY)] {
        let spec = actions
            .iter()
            .find(|a| a.app == app)
            .expect("an AWS action");
        assert_eq!(spec.entitlement.resource, policy);
        let observed = host
            .verify(app, &spec.subject, &spec.entitlement)
            .await
            .result
            .expect("moto answers");
        assert!(
            matches!(observed, Observed::Present { .. }),
            "{app}: {observed:?}"
        );
    }
    let listed = host
        .list_grants(
            "aws-dev",
            &GrantQuery {
                kind: "user-policy".into(),
                resource: Some(POWER_USER.into()),
                cursor: None,
            },
        )
        .await
        .result
        .expect("list-grants answers");
    assert!(
        listed.grants.iter().any(|g| g.subject.id == IAM_USER),
        "{listed:?}"
    );
}

/// The operator-facing example config parses against the real schema (strict: unknown
/// keys are errors), names the same apps as the actions file, and has no prod app.
#[test]
fn example_config_parses_and_has_no_prod_app() {
    let path = josh::actions_path().with_file_name("portcullis.toml");
    let text = std::fs::read_to_string(&path).expect("examples/josh/portcullis.toml");
    // Secrets must exist to validate: point every `env:` at PATH and every `file:` at a
    // temporary file, leaving the rest of the text exactly as shipped.
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "placeholder\n").expect("write secret");
    let mut patched = String::new();
    for line in text.lines() {
        let mut line = line.to_owned();
        if !line.trim_start().starts_with('#') {
            for (prefix, replacement) in [
                ("\"env:", "\"env:PATH\"".to_owned()),
                ("\"file:", format!("\"file:{}\"", secret.display())),
            ] {
                let mut from = 0;
                while let Some(found) = line[from..].find(prefix) {
                    let at = from + found;
                    let end = line[at + 1..]
                        .find('"')
                        .map_or(line.len() - 1, |e| at + 1 + e);
                    line.replace_range(at..=end, &replacement);
                    from = at + replacement.len();
                }
            }
        }
        patched.push_str(&line);
        patched.push('\n');
    }
    let config = Config::parse(&patched, &path, dir.path()).expect("the example config is valid");
    let names: BTreeSet<&str> = config.apps.keys().map(String::as_str).collect();
    assert_eq!(names, APPS.into_iter().collect());
    assert!(names.iter().all(|n| !n.contains("prod")));
    for (name, app) in &config.apps {
        assert!(
            app.base_url.scheme() == "https",
            "{name} must point at the real service over https"
        );
    }
}
