//! The Google Drive plugin, as a real wasm component in a fresh sandbox per call, against
//! the stateful Drive simulator over real HTTP on 127.0.0.1.

use portcullis::audit::MemorySink;
use portcullis::conformance::{ConformanceCase, run};
use portcullis::model::{
    Action, ConnectorError, Entitlement, GrantOutcome, GrantQuery, Observed, RevokeOutcome, Subject,
};
use portcullis::{CallError, Host};
use portcullis_e2e::{app, host, plugins};
use portcullis_simulators::gdrive::{GDRIVE_ADMIN, GDRIVE_DEMO_FILES, Throttle};
use portcullis_simulators::{DriveSimulator, GDRIVE_DEMO_TOKEN, gdrive_demo};

const ROADMAP: &str = GDRIVE_DEMO_FILES[0].0;
const ADA: &str = "ada@acme.example";
const GRACE: &str = "grace@acme.example";

fn drive_host(sim: &DriveSimulator, token: &str) -> (Host, MemorySink) {
    host(vec![(
        "drive",
        app(plugins::GDRIVE, &sim.base_url(), &[("token", token)]),
    )])
}

fn subject(email: &str) -> Subject {
    Subject {
        id: email.to_owned(),
        email: None,
    }
}

fn entitlement(file: &str, level: &str) -> Entitlement {
    Entitlement {
        kind: "file".to_owned(),
        resource: file.to_owned(),
        level: Some(level.to_owned()),
    }
}

fn action(email: &str, file: &str, level: &str) -> Action {
    Action {
        subject: subject(email),
        entitlement: entitlement(file, level),
        idempotency_key: format!("test-{email}-{file}-{level}"),
        reason: "e2e test".to_owned(),
    }
}

fn connector_error<T: std::fmt::Debug>(result: Result<T, CallError>) -> ConnectorError {
    match result {
        Err(CallError::Connector(e)) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

fn writes(sim: &DriveSimulator) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn gdrive_passes_the_conformance_kit() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    let case = ConformanceCase {
        app: "drive".into(),
        subject: subject(ADA),
        entitlement: entitlement(ROADMAP, "writer"),
    };
    let report = run(&host, &case).await;
    assert!(report.passed(), "{}", report.table());
    assert!(
        sim.notified().is_empty(),
        "sharing must not e-mail the user"
    );
}

/// Contract 0.2.0 `set-level`: a lower role in place, one PATCH, no notification; the
/// same level again writes nothing; the owner's role is refused.
#[tokio::test]
async fn set_level_lowers_the_role_in_place() {
    use portcullis::model::SetLevelOutcome;
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    sim.share(ROADMAP, ADA, "writer");
    sim.clear_requests();

    let lowered = host
        .set_level("drive", &action(ADA, ROADMAP, "reader"))
        .await;
    assert_eq!(lowered.result, Ok(SetLevelOutcome::Changed));
    assert_eq!(sim.role(ROADMAP, ADA).as_deref(), Some("reader"));
    let w = writes(&sim);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("PATCH "), "{w:?}");
    assert!(sim.notified().is_empty());

    sim.clear_requests();
    let again = host
        .set_level("drive", &action(ADA, ROADMAP, "reader"))
        .await;
    assert_eq!(again.result, Ok(SetLevelOutcome::AlreadyAtLevel));
    assert!(writes(&sim).is_empty());

    let nobody = host
        .set_level("drive", &action("nobody@acme.example", ROADMAP, "reader"))
        .await;
    assert!(
        matches!(connector_error(nobody.result), ConnectorError::NotFound(_)),
        "set-level does not grant"
    );
}

#[tokio::test]
async fn upgrade_patches_the_existing_permission_and_keeps_one() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    sim.share(ROADMAP, ADA, "reader");
    sim.clear_requests();

    let up = host
        .grant_checked("drive", &action(ADA, ROADMAP, "writer"))
        .await;
    assert_eq!(up.write.result, Ok(GrantOutcome::Granted));
    assert!(up.verdict.is_verified(), "{:?}", up.verdict);
    let w = writes(&sim);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!("PATCH /drive/v3/files/{ROADMAP}/permissions/")),
        "{w:?}"
    );
    let ada: Vec<_> = sim
        .permissions(ROADMAP)
        .into_iter()
        .filter(|(e, _)| e == ADA)
        .collect();
    assert_eq!(ada, [(ADA.to_owned(), "writer".to_owned())]);
}

#[tokio::test]
async fn a_lower_request_than_held_is_already_present_without_a_write() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    sim.share(ROADMAP, ADA, "organizer");
    sim.clear_requests();

    let lower = host
        .grant_checked("drive", &action(ADA, ROADMAP, "commenter"))
        .await;
    assert_eq!(lower.write.result, Ok(GrantOutcome::AlreadyPresent));
    assert!(lower.verdict.is_verified(), "{:?}", lower.verdict);
    assert!(writes(&sim).is_empty(), "{:?}", writes(&sim));
    assert_eq!(sim.role(ROADMAP, ADA).as_deref(), Some("organizer"));

    // The owner holds everything; asking for any level changes nothing either.
    let owner = host
        .grant("drive", &action(GDRIVE_ADMIN, ROADMAP, "organizer"))
        .await;
    assert_eq!(owner.result, Ok(GrantOutcome::AlreadyPresent));
    assert!(writes(&sim).is_empty());
}

#[tokio::test]
async fn owner_is_neither_granted_nor_revoked() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    sim.clear_requests();

    let err = connector_error(
        host.grant("drive", &action(ADA, ROADMAP, "owner"))
            .await
            .result,
    );
    assert!(
        matches!(&err, ConnectorError::InvalidRequest(m) if m.contains("ownership")),
        "{err:?}"
    );
    assert!(sim.requests().is_empty(), "refused before any request");

    let err = connector_error(
        host.revoke("drive", &action(GDRIVE_ADMIN, ROADMAP, "reader"))
            .await
            .result,
    );
    assert!(
        matches!(&err, ConnectorError::InvalidRequest(m) if m.contains("owns")),
        "{err:?}"
    );
    assert!(writes(&sim).is_empty());
    assert_eq!(sim.role(ROADMAP, GDRIVE_ADMIN).as_deref(), Some("owner"));
    let observed = host
        .verify(
            "drive",
            &subject(GDRIVE_ADMIN),
            &entitlement(ROADMAP, "reader"),
        )
        .await
        .result;
    assert_eq!(
        observed,
        Ok(Observed::Present {
            level: Some("organizer".into())
        })
    );
}

#[tokio::test]
async fn drive_rate_limits_are_rate_limited_and_retryable() {
    for throttle in [
        Throttle::RateLimit403,
        Throttle::UserRateLimit403,
        Throttle::TooManyRequests429,
    ] {
        let sim = gdrive_demo().await.expect("simulator starts");
        let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
        // The permission list goes through; the create is throttled.
        sim.set_request_budget(Some(1), throttle);
        let call = host.grant("drive", &action(ADA, ROADMAP, "reader")).await;
        let err = connector_error(call.result);
        assert!(
            matches!(&err, ConnectorError::RateLimited { retry_after_ms: None, message } if message.contains("RateLimitExceeded") || message.contains("rateLimitExceeded")),
            "{throttle:?}: {err:?}"
        );
        assert!(err.is_retryable());
        assert_eq!(sim.role(ROADMAP, ADA), None);
    }
}

#[tokio::test]
async fn list_grants_pages_with_page_tokens() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    for n in 0..130 {
        sim.share(ROADMAP, &format!("dev{n:03}@acme.example"), "commenter");
    }
    let mut query = GrantQuery {
        kind: "file".into(),
        resource: Some(ROADMAP.into()),
        cursor: None,
    };
    let (mut grants, mut pages) = (Vec::new(), 0);
    loop {
        let page = host
            .list_grants("drive", &query)
            .await
            .result
            .expect("page lists");
        pages += 1;
        grants.extend(page.grants);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(pages, 2, "132 permissions in pages of 100");
    assert_eq!(grants.len(), 132, "owner + grace + 130 devs");
    let grace = grants
        .iter()
        .find(|g| g.subject.id == GRACE)
        .expect("grace listed");
    assert_eq!(grace.entitlement.level.as_deref(), Some("reader"));
    assert_eq!(grace.subject.email.as_deref(), Some(GRACE));

    query.cursor = Some("not a token".into());
    let err = connector_error(host.list_grants("drive", &query).await.result);
    assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err:?}");
}

#[tokio::test]
async fn subject_email_wins_and_bad_inputs_are_refused() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    let mut by_email = action("employee-4711", ROADMAP, "commenter");
    by_email.subject.email = Some("Ada@Acme.Example".into());
    let granted = host.grant_checked("drive", &by_email).await;
    assert_eq!(granted.write.result, Ok(GrantOutcome::Granted));
    assert!(granted.verdict.is_verified(), "{:?}", granted.verdict);
    assert_eq!(sim.role(ROADMAP, ADA).as_deref(), Some("commenter"));
    let revoked = host.revoke_checked("drive", &by_email).await;
    assert_eq!(revoked.write.result, Ok(RevokeOutcome::Revoked));
    assert!(revoked.verdict.is_verified());

    sim.clear_requests();
    for bad in [
        action("not-an-email", ROADMAP, "reader"),
        action(ADA, "../../about", "reader"),
        action(ADA, ROADMAP, "editor"),
    ] {
        let err = connector_error(host.grant("drive", &bad).await.result);
        assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err:?}");
    }
    assert!(sim.requests().is_empty(), "refused before any request");

    let err = connector_error(
        host.grant("drive", &action(ADA, "1NoSuchFile", "reader"))
            .await
            .result,
    );
    assert!(
        matches!(&err, ConnectorError::NotFound(m) if m.contains("1NoSuchFile")),
        "{err:?}"
    );
}

#[tokio::test]
async fn check_names_the_account_and_a_bad_token_is_unauthorized() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    let report = host.check("drive").await.result.expect("check passes");
    assert!(report.principal.contains(GDRIVE_ADMIN), "{report:?}");

    let (bad, _audit) = drive_host(&sim, "ya29.expired");
    let err = connector_error(bad.check("drive").await.result);
    assert!(
        matches!(&err, ConnectorError::Unauthorized(m) if m.contains("authError")),
        "{err:?}"
    );
    let err = connector_error(
        bad.grant("drive", &action(ADA, ROADMAP, "reader"))
            .await
            .result,
    );
    assert!(!err.is_retryable(), "{err:?}");
}

/// `n` extra users sharing the roadmap, so its permissions take two pages of 100.
fn share_many(sim: &DriveSimulator, n: usize) {
    for i in 0..n {
        sim.share(ROADMAP, &format!("dev{i:03}@acme.example"), "commenter");
    }
}

fn transient(err: ConnectorError) -> String {
    match err {
        ConnectorError::Transient(m) => m,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_repeated_page_token_ends_verify_and_grant_after_two_pages() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    share_many(&sim, 130);
    sim.repeat_page_tokens(true);
    sim.clear_requests();

    // Ada is on no page, so the walk would page on for ever without the check.
    let call = host
        .verify("drive", &subject(ADA), &entitlement(ROADMAP, "reader"))
        .await;
    let message = transient(connector_error(call.result));
    assert!(message.contains("same page token again"), "{message}");
    assert!(message.contains(ROADMAP), "{message}");
    assert_eq!(call.report.http.len(), 2, "the first page and its repeat");
    assert!(
        call.report.host_calls < 20,
        "far below the host-call cap: {}",
        call.report.host_calls
    );

    // A grant reads the same list before it writes, and so writes nothing.
    let call = host.grant("drive", &action(ADA, ROADMAP, "reader")).await;
    let message = transient(connector_error(call.result));
    assert!(message.contains("same page token again"), "{message}");
    assert_eq!(call.report.http.len(), 2);
    assert!(writes(&sim).is_empty(), "{:?}", writes(&sim));
    assert_eq!(sim.requests().len(), 4);

    // With Drive faithful again, the walk follows the second page's fresh token.
    sim.repeat_page_tokens(false);
    let found = host
        .verify(
            "drive",
            &subject("dev129@acme.example"),
            &entitlement(ROADMAP, "reader"),
        )
        .await;
    assert_eq!(
        found.result,
        Ok(Observed::Present {
            level: Some("commenter".into())
        })
    );
    assert_eq!(found.report.http.len(), 2, "dev129 is on the second page");
}

#[tokio::test]
async fn list_grants_refuses_a_next_token_equal_to_its_cursor() {
    let sim = gdrive_demo().await.expect("simulator starts");
    let (host, _audit) = drive_host(&sim, GDRIVE_DEMO_TOKEN);
    share_many(&sim, 130);
    sim.repeat_page_tokens(true);
    let mut query = GrantQuery {
        kind: "file".into(),
        resource: Some(ROADMAP.into()),
        cursor: None,
    };
    let first = host
        .list_grants("drive", &query)
        .await
        .result
        .expect("the first page is faithful");
    assert_eq!(first.grants.len(), 100);
    let cursor = first.next_cursor.expect("a second page");

    // Drive answers the second page with its own token as the next: handing that back
    // would have the host ask for this page for ever, so the call fails instead.
    query.cursor = Some(cursor.clone());
    let call = host.list_grants("drive", &query).await;
    let message = transient(connector_error(call.result));
    assert!(message.contains("same page token again"), "{message}");
    let shown: String = cursor.chars().take(20).collect();
    assert!(message.contains(&shown), "names the token: {message}");
    assert!(
        cursor.len() > 32,
        "the simulator's tokens are long: {cursor}"
    );
    assert!(!message.contains(&cursor), "a long token is cut: {message}");
    assert_eq!(call.report.http.len(), 1);
    assert_eq!(sim.requests().len(), 2, "one request per page");
}
