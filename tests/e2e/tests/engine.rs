//! The execution engine against simulators with injected faults: every write that did not
//! apply ends retried-then-verified or alerted (never verified), server-supplied waits are
//! never violated, runs complete once faults stop, slow apps do not hold back others,
//! revokes go first, read-modify-write resources are serialised, and invalid actions and
//! the blast-radius guard stop a run before anything executes.

use std::sync::Arc;
use std::time::Duration;

use portcullis::Host;
use portcullis::audit::{AuditEvent, MemorySink};
use portcullis::engine::{
    self, ActionOutcome, ActionSpec, EngineOptions, NoProgress, Op, RunError,
};
use portcullis::model::{Entitlement, Subject};
use portcullis_e2e::{app, host};
use portcullis_simulators::{
    GITHUB_DEMO_TOKEN, GithubSimulator, SLACK_DEMO_TOKEN, SlackSimulator, github_demo,
    slack::{SLACK_DEMO_CHANNEL, SLACK_DEMO_USERGROUP},
    slack_demo,
};

const REPO: &str = "acme/platform-api";

fn grant(app: &str, subject: &str, kind: &str, resource: &str, level: Option<&str>) -> ActionSpec {
    ActionSpec {
        op: Op::Grant,
        app: app.into(),
        subject: Subject {
            id: subject.into(),
            email: None,
        },
        entitlement: Entitlement {
            kind: kind.into(),
            resource: resource.into(),
            level: level.map(str::to_owned),
        },
        reason: "engine test".into(),
        trigger: Default::default(),
    }
}

fn revoke(app: &str, subject: &str, kind: &str, resource: &str) -> ActionSpec {
    ActionSpec {
        op: Op::Revoke,
        ..grant(app, subject, kind, resource, None)
    }
}

fn repo_grant(login: &str, level: &str) -> ActionSpec {
    grant("github", login, "repository", REPO, Some(level))
}

/// Fast backoff so fault tests stay quick; the production defaults are slower.
fn options(max_attempts: u32) -> EngineOptions {
    EngineOptions {
        max_attempts,
        backoff_base_ms: 40,
        backoff_max_ms: 400,
        ..EngineOptions::default()
    }
}

fn github_host(sim: &GithubSimulator) -> (Arc<Host>, MemorySink) {
    let (host, audit) = host(vec![(
        "github",
        app("github", &sim.base_url(), &[("token", GITHUB_DEMO_TOKEN)]),
    )]);
    (Arc::new(host), audit)
}

fn both_host(github: &GithubSimulator, slack: &SlackSimulator) -> (Arc<Host>, MemorySink) {
    let (host, audit) = host(vec![
        (
            "github",
            app(
                "github",
                &github.base_url(),
                &[("token", GITHUB_DEMO_TOKEN)],
            ),
        ),
        (
            "slack",
            app("slack", &slack.base_url(), &[("token", SLACK_DEMO_TOKEN)]),
        ),
    ]);
    (Arc::new(host), audit)
}

async fn run(
    host: &Arc<Host>,
    actions: Vec<ActionSpec>,
    options: &EngineOptions,
) -> engine::RunReport {
    engine::run(
        Arc::clone(host),
        "test-run",
        actions,
        options,
        Arc::new(NoProgress),
    )
    .await
    .expect("the run starts")
}

#[tokio::test]
async fn a_write_that_did_not_apply_is_retried_then_verified() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    let (host, _audit) = github_host(&sim);
    sim.faults().drop_writes(1);

    let report = run(&host, vec![repo_grant("hubot", "maintain")], &options(3)).await;
    let action = &report.actions[0];
    assert_eq!(action.outcome, ActionOutcome::Verified, "{action:?}");
    assert_eq!(action.attempts, 2, "the first, dropped write was retried");
    assert_eq!(
        sim.collaborator_role(REPO, "hubot").as_deref(),
        Some("maintain")
    );
}

#[tokio::test]
async fn a_write_that_never_applies_is_alerted_never_verified() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    let (host, _audit) = github_host(&sim);
    sim.faults().drop_writes(1_000);

    let report = run(&host, vec![repo_grant("hubot", "maintain")], &options(3)).await;
    let action = &report.actions[0];
    match &action.outcome {
        // The GitHub connector reads back after a 204 itself and reports "still at read"
        // as a transient failure; either way the engine retried, then alerted.
        ActionOutcome::Alerted { reason } => {
            assert!(reason.contains("gave up after 3 attempts"), "{reason}");
            assert!(reason.contains("shows read"), "{reason}");
        }
        other => panic!("must be alerted, got {other:?}"),
    }
    assert_eq!(action.attempts, 3);
    assert!(
        action.last_observed.is_some() || action.last_error.is_some(),
        "the alert carries the evidence"
    );
    assert!(
        action.http.iter().filter(|c| c.method == "PUT").count() >= 3,
        "the alert carries every HTTP call: {:?}",
        action.http
    );
}

#[tokio::test]
async fn a_lagging_read_back_is_retried_until_it_shows_the_write() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    let (host, _audit) = github_host(&sim);
    sim.faults().lag_writes(Duration::from_millis(150));

    let report = run(&host, vec![repo_grant("hubot", "write")], &options(6)).await;
    let action = &report.actions[0];
    assert_eq!(action.outcome, ActionOutcome::Verified, "{action:?}");
    assert!(
        action.attempts >= 2,
        "the first read-back lagged: {action:?}"
    );
}

#[tokio::test]
async fn no_request_goes_out_before_a_server_supplied_wait_ends() {
    let slack = slack_demo().await.expect("simulator");
    let github = github_demo().await.expect("simulator");
    let (host, _audit) = both_host(&github, &slack);
    let wait = Duration::from_millis(1_200);
    slack.faults().rate_limit_storm(1, Some(wait));

    let report = run(
        &host,
        vec![grant(
            "slack",
            "U0100BOBBY",
            "channel",
            SLACK_DEMO_CHANNEL,
            None,
        )],
        &options(3),
    )
    .await;
    assert_eq!(
        report.actions[0].outcome,
        ActionOutcome::Verified,
        "{report:?}"
    );
    let arrivals = slack.faults().arrivals();
    assert!(arrivals.len() >= 2, "{arrivals:?}");
    let gap = arrivals[1].duration_since(arrivals[0]);
    assert!(
        gap >= wait,
        "the second request came {gap:?} after a 429 that said wait {wait:?}"
    );
}

#[tokio::test]
async fn storms_and_server_errors_end_once_faults_stop() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    let (host, _audit) = github_host(&sim);
    sim.faults().rate_limit_storm(2, None);
    sim.faults().server_errors(2);

    let report = run(&host, vec![repo_grant("hubot", "write")], &options(8)).await;
    assert_eq!(
        report.actions[0].outcome,
        ActionOutcome::Verified,
        "{report:?}"
    );
    assert!(report.actions[0].attempts >= 2);
}

#[tokio::test]
async fn connection_resets_are_transient() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    let (host, _audit) = github_host(&sim);
    sim.faults().reset_connections(1);

    let report = run(&host, vec![repo_grant("hubot", "write")], &options(3)).await;
    let action = &report.actions[0];
    assert_eq!(action.outcome, ActionOutcome::Verified, "{action:?}");
    assert_eq!(action.attempts, 2);
}

#[tokio::test]
async fn non_retryable_errors_are_alerted_at_once() {
    let sim = github_demo().await.expect("simulator");
    let (host, _audit) = github_host(&sim);
    let report = run(&host, vec![repo_grant("ghost-404", "write")], &options(3)).await;
    let action = &report.actions[0];
    assert!(
        matches!(action.outcome, ActionOutcome::Alerted { .. }),
        "{action:?}"
    );
    assert_eq!(action.attempts, 1, "not-found is never retried");
}

#[tokio::test]
async fn invitations_are_pending_not_verified() {
    let sim = github_demo().await.expect("simulator");
    let (host, _audit) = github_host(&sim);
    let report = run(&host, vec![repo_grant("octocat", "write")], &options(3)).await;
    assert!(
        matches!(report.actions[0].outcome, ActionOutcome::Pending { .. }),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_slow_app_does_not_hold_back_the_others() {
    let slack = slack_demo().await.expect("simulator");
    let github = github_demo().await.expect("simulator");
    github.set_collaborator(REPO, "hubot", "read");
    let (host, _audit) = both_host(&github, &slack);
    github
        .faults()
        .slow_responses(1_000, Duration::from_millis(300));

    let report = run(
        &host,
        vec![
            repo_grant("hubot", "write"),
            grant("slack", "U0100BOBBY", "channel", SLACK_DEMO_CHANNEL, None),
            grant("slack", "U0100CAROL", "channel", SLACK_DEMO_CHANNEL, None),
        ],
        &options(3),
    )
    .await;
    assert!(
        report
            .actions
            .iter()
            .all(|a| a.outcome == ActionOutcome::Verified),
        "{report:?}"
    );
    let github_ms = report.actions[0].duration_ms;
    let slowest_slack = report.actions[1..]
        .iter()
        .map(|a| a.duration_ms)
        .fold(0.0, f64::max);
    assert!(
        slowest_slack < github_ms,
        "slack actions ({slowest_slack} ms) waited for slow github ({github_ms} ms)"
    );
}

#[tokio::test]
async fn revokes_start_before_grants() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    sim.set_collaborator(REPO, "monalisa", "read");
    let mut github = app("github", &sim.base_url(), &[("token", GITHUB_DEMO_TOKEN)]);
    github.rate_limit.concurrency = Some(1);
    let (host, _audit) = host(vec![("github", github)]);
    let host = Arc::new(host);
    sim.clear_requests();

    let report = run(
        &host,
        vec![
            repo_grant("hubot", "write"),
            revoke("github", "monalisa", "repository", REPO),
        ],
        &options(3),
    )
    .await;
    assert!(
        report
            .actions
            .iter()
            .all(|a| a.outcome == ActionOutcome::Verified),
        "{report:?}"
    );
    let writes: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" || r.method == "DELETE")
        .map(|r| r.method)
        .collect();
    assert_eq!(
        writes.first().map(String::as_str),
        Some("DELETE"),
        "{writes:?}"
    );
}

#[tokio::test]
async fn read_modify_write_resources_are_serialised() {
    let slack = slack_demo().await.expect("simulator");
    let github = github_demo().await.expect("simulator");
    let (host, _audit) = both_host(&github, &slack);
    // A slow write widens the window in which two unserialised read-modify-writes of one
    // user group would both read the old list and the second would erase the first.
    slack.faults().lag_writes(Duration::from_millis(100));
    let group = SLACK_DEMO_USERGROUP;
    let before = slack.usergroup_members(group);
    let report = run(
        &host,
        vec![
            grant("slack", "U0100BOBBY", "usergroup", group, None),
            grant("slack", "U0100CAROL", "usergroup", group, None),
        ],
        &options(6),
    )
    .await;
    assert!(
        report
            .actions
            .iter()
            .all(|a| a.outcome == ActionOutcome::Verified),
        "{report:?}"
    );
    let after = slack.usergroup_members(group);
    for member in before
        .iter()
        .map(String::as_str)
        .chain(["U0100BOBBY", "U0100CAROL"])
    {
        assert!(
            after.iter().any(|m| m == member),
            "{member} lost: {after:?}"
        );
    }
}

#[tokio::test]
async fn the_blast_radius_guard_stops_the_run_before_anything_executes() {
    let sim = github_demo().await.expect("simulator");
    let (host, _audit) = github_host(&sim);
    sim.clear_requests();
    let revokes: Vec<ActionSpec> = (0..5)
        .map(|n| revoke("github", &format!("user{n}"), "repository", REPO))
        .collect();
    let guarded = EngineOptions {
        max_revokes: Some(3),
        ..options(3)
    };
    let err = engine::run(
        Arc::clone(&host),
        "big",
        revokes.clone(),
        &guarded,
        Arc::new(NoProgress),
    )
    .await
    .expect_err("guarded");
    assert!(
        matches!(err, RunError::BlastRadius { revokes: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-large-revoke"), "{err}");
    assert!(sim.requests().is_empty(), "nothing was executed");

    let overridden = EngineOptions {
        allow_large_revoke: true,
        ..guarded
    };
    let report = run(&host, revokes, &overridden).await;
    assert_eq!(report.actions.len(), 5);
}

#[tokio::test]
async fn invalid_actions_stop_the_run_before_anything_executes_each_one_named() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    let (host, _audit) = github_host(&sim);
    sim.clear_requests();
    // A valid grant first: it must not run either.
    let actions = vec![
        repo_grant("hubot", "write"),
        repo_grant("hubot", "owner"),
        grant("gitlab", "hubot", "repository", REPO, Some("write")),
    ];
    let err = engine::run(
        Arc::clone(&host),
        "invalid",
        actions,
        &options(3),
        Arc::new(NoProgress),
    )
    .await
    .expect_err("refused");
    let RunError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    let numbers: Vec<usize> = problems.iter().map(|p| p.action).collect();
    assert_eq!(numbers, [2, 3], "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("2 invalid actions; nothing was executed:")
            && text.contains("unknown level `owner`")
            && text.contains("read, triage, write, maintain, admin")
            && text.contains("unknown app `gitlab` (configured: github)"),
        "{text}"
    );
    assert!(sim.requests().is_empty(), "nothing was executed");
    assert_eq!(
        sim.collaborator_role(REPO, "hubot").as_deref(),
        Some("read")
    );
}

#[tokio::test]
async fn every_action_is_audited_before_and_after() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator(REPO, "hubot", "read");
    let (host, audit) = github_host(&sim);
    let report = run(&host, vec![repo_grant("hubot", "write")], &options(3)).await;
    let key = &report.actions[0].idempotency_key;
    let events = audit.call(key);
    assert!(
        matches!(events.first(), Some(AuditEvent::ActionStarted { idempotency_key, .. }) if idempotency_key == key),
        "{events:?}"
    );
    match events.last() {
        Some(AuditEvent::ActionFinished {
            outcome,
            attempts,
            evidence,
            http,
            ..
        }) => {
            assert_eq!(*outcome, ActionOutcome::Verified);
            assert_eq!(*attempts, 1);
            assert!(evidence.is_some());
            assert!(!http.is_empty());
        }
        other => panic!("expected action-finished, got {other:?}"),
    }
    let records = audit.records();
    let started = records
        .iter()
        .find(|r| r.call_id == *key)
        .expect("intent recorded");
    assert_eq!(started.plugin_sha256.len(), 64);
    assert!(
        !serde_json::to_string(&records)
            .expect("json")
            .contains(GITHUB_DEMO_TOKEN)
    );
}
