//! The bundled GitHub plugin, as a real wasm component in a fresh sandbox per call, against
//! the stateful GitHub simulator over real HTTP on 127.0.0.1.

use portcullis::audit::AuditEvent;
use portcullis::model::{
    Action, Entitlement, GrantOutcome, GrantQuery, Observed, RevokeOutcome, Subject,
};
use portcullis::{CallError, Host, Verdict};
use portcullis_e2e::{app, host};
use portcullis_simulators::{GITHUB_DEMO_TOKEN, GithubSimulator, github_demo};

const REPO: &str = "acme/platform-api";

fn action(login: &str, level: &str) -> Action {
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
        idempotency_key: format!("test-{login}-{level}"),
        reason: "e2e test".to_owned(),
    }
}

async fn github_host(sim: &GithubSimulator) -> (Host, portcullis::audit::MemorySink) {
    host(vec![(
        "github",
        app("github", &sim.base_url(), &[("token", GITHUB_DEMO_TOKEN)]),
    )])
}

#[tokio::test]
async fn grant_verify_revoke_verify_grant_again() {
    let sim = github_demo().await.expect("simulator starts");
    let (host, _audit) = github_host(&sim).await;
    let octocat = action("octocat", "write");

    // A new collaborator gets an invitation: pending, never a success.
    let granted = host.grant_checked("github", &octocat).await;
    assert!(
        matches!(granted.write.result, Ok(GrantOutcome::Pending { .. })),
        "{:?}",
        granted.write.result
    );
    assert!(
        matches!(granted.verdict, Verdict::Pending { .. }),
        "{:?}",
        granted.verdict
    );
    assert_eq!(
        sim.pending_invitation(REPO, "octocat").as_deref(),
        Some("write")
    );

    assert!(sim.accept_invitation(REPO, "octocat"));
    let observed = host
        .verify("github", &octocat.subject, &octocat.entitlement)
        .await
        .result
        .expect("verify works");
    assert_eq!(
        observed,
        Observed::Present {
            level: Some("write".into())
        }
    );

    let revoked = host.revoke_checked("github", &octocat).await;
    assert_eq!(revoked.write.result, Ok(RevokeOutcome::Revoked));
    assert!(revoked.verdict.is_verified(), "{:?}", revoked.verdict);
    assert_eq!(sim.collaborator_role(REPO, "octocat"), None);

    let again = host.revoke_checked("github", &octocat).await;
    assert_eq!(again.write.result, Ok(RevokeOutcome::AlreadyAbsent));
    assert!(again.verdict.is_verified());

    // Granting again re-invites; granting while the invitation is open stays pending,
    // and once accepted a repeated grant is a no-op.
    let regrant = host.grant_checked("github", &octocat).await;
    assert!(matches!(regrant.verdict, Verdict::Pending { .. }));
    assert!(sim.accept_invitation(REPO, "octocat"));
    let idempotent = host.grant_checked("github", &octocat).await;
    assert_eq!(idempotent.write.result, Ok(GrantOutcome::AlreadyPresent));
    assert!(idempotent.verdict.is_verified());
    let writes = sim
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/collaborators/octocat"))
        .count();
    assert_eq!(writes, 2, "an already-present grant must not write again");
}

#[tokio::test]
async fn level_change_on_existing_collaborator_answers_204_and_is_confirmed() {
    let sim = github_demo().await.expect("simulator starts");
    let (host, _audit) = github_host(&sim).await;
    sim.set_collaborator(REPO, "hubot", "read");

    let promoted = host
        .grant_checked("github", &action("hubot", "maintain"))
        .await;
    assert_eq!(promoted.write.result, Ok(GrantOutcome::Granted));
    assert!(promoted.verdict.is_verified(), "{:?}", promoted.verdict);
    assert_eq!(
        sim.collaborator_role(REPO, "hubot").as_deref(),
        Some("maintain")
    );

    // Asking for less than is held changes nothing (admin implies write).
    let lower = host
        .grant_checked("github", &action("hubot", "write"))
        .await;
    assert_eq!(lower.write.result, Ok(GrantOutcome::AlreadyPresent));
    assert!(lower.verdict.is_verified());
    assert_eq!(
        sim.collaborator_role(REPO, "hubot").as_deref(),
        Some("maintain")
    );
}

#[tokio::test]
async fn list_grants_pages_through_collaborators_and_invitations() {
    let sim = github_demo().await.expect("simulator starts");
    let (host, _audit) = github_host(&sim).await;
    for n in 0..130 {
        let login = format!("dev{n:03}");
        sim.add_user(&login);
        sim.set_collaborator(REPO, &login, "write");
    }
    sim.add_user("newbie");
    let invited = host.grant("github", &action("newbie", "read")).await;
    assert!(matches!(invited.result, Ok(GrantOutcome::Pending { .. })));

    let mut query = GrantQuery {
        kind: "repository".into(),
        resource: Some(REPO.into()),
        cursor: None,
    };
    let mut grants = Vec::new();
    let mut pages = 0;
    loop {
        let page = host
            .list_grants("github", &query)
            .await
            .result
            .expect("page lists");
        pages += 1;
        grants.extend(page.grants);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
        assert!(pages < 20, "paging must end");
    }
    assert!(
        pages >= 2,
        "130 collaborators need more than one page of 100"
    );
    let devs = grants
        .iter()
        .filter(|g| g.subject.id.starts_with("dev"))
        .count();
    assert_eq!(devs, 130);
    let newbie = grants
        .iter()
        .find(|g| g.subject.id == "newbie")
        .expect("invitation listed");
    assert!(newbie.pending);
    assert_eq!(newbie.entitlement.level.as_deref(), Some("read"));
}

#[tokio::test]
async fn check_proves_the_token_and_a_bad_token_is_unauthorized() {
    let sim = github_demo().await.expect("simulator starts");
    let (host, _audit) = github_host(&sim).await;
    let report = host.check("github").await.result.expect("check passes");
    assert!(report.principal.contains("portcullis-bot"), "{report:?}");
    assert!(report.scopes.iter().any(|s| s == "repo"), "{report:?}");

    let (bad, _audit) = host_with_token(&sim, "ghp_wrong");
    let err = bad.check("github").await.result.expect_err("bad token");
    assert!(
        matches!(
            err,
            CallError::Connector(portcullis::model::ConnectorError::Unauthorized(_))
        ),
        "{err:?}"
    );
    let err = bad
        .grant("github", &action("octocat", "write"))
        .await
        .result
        .expect_err("bad token cannot grant");
    assert!(!err.is_retryable(), "{err:?}");
}

fn host_with_token(sim: &GithubSimulator, token: &str) -> (Host, portcullis::audit::MemorySink) {
    host(vec![(
        "github",
        app("github", &sim.base_url(), &[("token", token)]),
    )])
}

#[tokio::test]
async fn invalid_levels_and_resources_are_refused_before_any_write() {
    let sim = github_demo().await.expect("simulator starts");
    let (host, _audit) = github_host(&sim).await;
    let err = host
        .grant("github", &action("octocat", "owner"))
        .await
        .result
        .expect_err("unknown level");
    assert!(
        err.to_string().contains("maintain"),
        "names valid levels: {err}"
    );
    let mut bad_repo = action("octocat", "write");
    bad_repo.entitlement.resource = "not-a-repo".into();
    let err = host
        .grant("github", &bad_repo)
        .await
        .result
        .expect_err("bad resource");
    assert!(matches!(
        err,
        CallError::Connector(portcullis::model::ConnectorError::InvalidRequest(_))
    ));
    assert!(
        !sim.requests().iter().any(|r| r.method == "PUT"),
        "nothing was written"
    );
}

#[tokio::test]
async fn every_call_and_request_is_audited_without_secrets() {
    let sim = github_demo().await.expect("simulator starts");
    let (host, audit) = github_host(&sim).await;
    let call = host.grant("github", &action("octocat", "write")).await;
    assert!(call.result.is_ok());
    let events = audit.call(&call.report.call_id);
    assert!(matches!(
        events.first(),
        Some(AuditEvent::CallStarted { .. })
    ));
    assert!(matches!(
        events.last(),
        Some(AuditEvent::CallFinished { ok: true, .. })
    ));
    let http: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AuditEvent::Http { method, status, .. } => Some((method.clone(), *status)),
            _ => None,
        })
        .collect();
    assert!(http.contains(&("PUT".to_owned(), Some(201))), "{http:?}");
    assert_eq!(http.len(), call.report.http.len());
    let all = serde_json::to_string(&audit.records()).expect("json");
    assert!(
        !all.contains(GITHUB_DEMO_TOKEN),
        "the token must never be audited"
    );
    assert!(
        sim.requests().iter().all(|r| r.had_authorization),
        "the host injected the token into every request"
    );
}

#[tokio::test]
async fn github_passes_the_conformance_kit() {
    let sim = github_demo().await.expect("simulator starts");
    let (host, _audit) = github_host(&sim).await;
    let case = portcullis::conformance::ConformanceCase {
        app: "github".into(),
        subject: Subject {
            id: "octocat".into(),
            email: None,
        },
        entitlement: Entitlement {
            kind: "repository".into(),
            resource: REPO.into(),
            level: Some("write".into()),
        },
    };
    let report = portcullis::conformance::run(&host, &case).await;
    assert!(report.passed(), "{}", report.table());
    assert_eq!(report.steps.len(), 9);
}
