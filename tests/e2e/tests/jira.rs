//! The Jira plugin, as a real wasm component in a fresh sandbox per call, against the
//! stateful Jira Cloud simulator over real HTTP on 127.0.0.1.

use portcullis::model::{
    Action, ConnectorError, Entitlement, GrantOutcome, GrantQuery, Observed, RevokeOutcome, Subject,
};
use portcullis::{CallError, Host};
use portcullis_e2e::{app, host, plugins};
use portcullis_simulators::jira::{JIRA_DEMO_ADMIN, JIRA_DEMO_USERS, NextPage};
use portcullis_simulators::{JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN, JiraSimulator, jira_demo};

const MIA: &str = JIRA_DEMO_USERS[0];
const RAVI: &str = JIRA_DEMO_USERS[1];

fn entitlement(resource: &str) -> Entitlement {
    Entitlement {
        kind: "project-role".into(),
        resource: resource.into(),
        level: None,
    }
}

fn subject(id: &str) -> Subject {
    Subject {
        id: id.into(),
        email: None,
    }
}

fn action(account: &str, resource: &str) -> Action {
    Action {
        subject: subject(account),
        entitlement: entitlement(resource),
        idempotency_key: format!("test-{account}-{resource}"),
        reason: "e2e test".into(),
    }
}

fn jira_host(sim: &JiraSimulator, email: &str, token: &str) -> Host {
    let (host, _audit) = host(vec![(
        "jira",
        app(
            plugins::JIRA,
            &sim.base_url(),
            &[("email", email), ("api-token", token)],
        ),
    )]);
    host
}

fn demo_host(sim: &JiraSimulator) -> Host {
    jira_host(sim, JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN)
}

fn connector_error(err: CallError) -> ConnectorError {
    match err {
        CallError::Connector(e) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

#[tokio::test]
async fn jira_passes_the_conformance_kit() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    let case = portcullis::conformance::ConformanceCase {
        app: "jira".into(),
        subject: subject(MIA),
        entitlement: entitlement("PLAT/Developers"),
    };
    let report = portcullis::conformance::run(&host, &case).await;
    assert!(report.passed(), "{}", report.table());
    assert!(sim.role_members("PLAT", "Developers").is_empty());
}

#[tokio::test]
async fn already_a_member_400_is_already_present() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    sim.set_role_member("PLAT", "Developers", MIA);

    let call = host
        .grant_checked("jira", &action(MIA, "PLAT/Developers"))
        .await;
    assert_eq!(call.write.result, Ok(GrantOutcome::AlreadyPresent));
    assert!(call.verdict.is_verified(), "{:?}", call.verdict);
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].status, 400, "Jira's answer to a repeated add");
    assert_eq!(sim.role_members("PLAT", "Developers"), [MIA]);
}

#[tokio::test]
async fn roles_are_independent_and_group_actors_do_not_count() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    sim.set_role_member("PLAT", "Administrators", MIA);
    sim.add_group_actor("PLAT", "Developers", "jira-developers");

    let dev = entitlement("PLAT/Developers");
    let observed = host.verify("jira", &subject(MIA), &dev).await.result;
    assert_eq!(
        observed,
        Ok(Observed::Absent),
        "Administrators is not Developers"
    );
    let admin = entitlement("PLAT/Administrators");
    let observed = host.verify("jira", &subject(MIA), &admin).await.result;
    assert_eq!(observed, Ok(Observed::Present { level: None }));

    // Granting Developers adds a second, separate role; revoking it leaves the first.
    let granted = host
        .grant_checked("jira", &action(MIA, "PLAT/Developers"))
        .await;
    assert_eq!(granted.write.result, Ok(GrantOutcome::Granted));
    let revoked = host
        .revoke_checked("jira", &action(MIA, "PLAT/Developers"))
        .await;
    assert_eq!(revoked.write.result, Ok(RevokeOutcome::Revoked));
    assert!(revoked.verdict.is_verified(), "{:?}", revoked.verdict);
    assert_eq!(
        sim.role_members("PLAT", "Administrators"),
        [JIRA_DEMO_ADMIN, MIA]
    );

    // The group actor is not listed as anyone's grant.
    let page = host
        .list_grants(
            "jira",
            &GrantQuery {
                kind: "project-role".into(),
                resource: Some("PLAT".into()),
                cursor: None,
            },
        )
        .await
        .result
        .expect("lists");
    let mut listed: Vec<_> = page
        .grants
        .iter()
        .map(|g| (g.entitlement.resource.as_str(), g.subject.id.as_str()))
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            ("PLAT/Administrators", JIRA_DEMO_ADMIN),
            ("PLAT/Administrators", MIA)
        ]
    );
}

#[tokio::test]
async fn rate_limit_with_only_the_iso_reset_gives_a_sensible_wait() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    sim.set_retry_after(false);
    // One request passes (and starts the window); the next is refused.
    sim.set_rate_limit(1);
    let err = host
        .grant("jira", &action(RAVI, "OPS/Viewers"))
        .await
        .result
        .expect_err("the second request is rate limited");
    let ConnectorError::RateLimited {
        retry_after_ms: Some(ms),
        message,
    } = connector_error(err)
    else {
        panic!("expected rate-limited with a wait");
    };
    // The reset is the window's end (60 s after it started) in minute precision; the
    // connector waits for the end of that minute, so between ~1 s and two minutes.
    assert!((1_000..=120_000).contains(&ms), "{ms} ms: {message}");
    assert!(message.contains("429"), "{message}");
    let last = sim.requests().pop().expect("requests were made");
    assert_eq!(last.status, 429);
    assert!(sim.role_members("OPS", "Viewers").is_empty());

    // The host now holds every request to Jira until that reset rather than send one that
    // must fail: a further call on this host fails retryably without reaching Jira.
    let before = sim.requests().len();
    let held = host
        .verify("jira", &subject(RAVI), &entitlement("OPS/Viewers"))
        .await
        .result
        .expect_err("held back");
    assert!(held.to_string().contains("held back by the host"), "{held}");
    assert_eq!(sim.requests().len(), before, "nothing reached Jira");

    // With Retry-After, the connector takes Jira's number of seconds as it is (a fresh
    // host: its limiter has not seen the earlier reset).
    sim.set_retry_after(true);
    let fresh = demo_host(&sim);
    let err = fresh
        .verify("jira", &subject(RAVI), &entitlement("OPS/Viewers"))
        .await
        .result
        .expect_err("still limited");
    assert!(
        matches!(connector_error(err), ConnectorError::RateLimited { retry_after_ms: Some(ms), .. } if ms % 1000 == 0 && ms <= 60_000),
        "Retry-After is whole seconds"
    );
}

#[tokio::test]
async fn check_reports_the_account_and_refusals_are_unauthorized() {
    let sim = jira_demo().await.expect("simulator starts");
    let report = demo_host(&sim)
        .check("jira")
        .await
        .result
        .expect("check passes");
    assert!(report.principal.contains(JIRA_DEMO_ADMIN), "{report:?}");
    assert!(
        report.scopes.iter().any(|s| s == "ADMINISTER"),
        "{report:?}"
    );
    assert!(report.warnings.is_empty(), "{report:?}");

    let bad = jira_host(&sim, JIRA_DEMO_EMAIL, "wrong-token");
    let err = connector_error(bad.check("jira").await.result.expect_err("bad token"));
    assert!(
        matches!(&err, ConnectorError::Unauthorized(m) if m.contains("api-token")),
        "{err:?}"
    );

    // A token without project administration can read but Jira refuses its writes.
    sim.add_token("viewer@acme.example", "viewer-token", RAVI);
    let viewer = jira_host(&sim, "viewer@acme.example", "viewer-token");
    let report = viewer.check("jira").await.result.expect("check passes");
    assert!(!report.warnings.is_empty(), "{report:?}");
    let err = viewer
        .grant("jira", &action(MIA, "PLAT/Developers"))
        .await
        .result
        .expect_err("403");
    assert!(!err.is_retryable());
    assert!(
        matches!(connector_error(err), ConnectorError::Unauthorized(m) if m.contains("Administer Projects"))
    );
}

#[tokio::test]
async fn bad_resources_levels_and_unknown_roles_are_refused_before_writing() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    let mut with_level = action(MIA, "PLAT/Developers");
    with_level.entitlement.level = Some("Administrators".into());
    let err = connector_error(
        host.grant("jira", &with_level)
            .await
            .result
            .expect_err("level"),
    );
    assert!(matches!(err, ConnectorError::InvalidRequest(m) if m.contains("PLAT/Administrators")));

    let err = connector_error(
        host.grant("jira", &action(MIA, "PLAT"))
            .await
            .result
            .expect_err("no role"),
    );
    assert!(matches!(err, ConnectorError::InvalidRequest(_)));

    let err = connector_error(
        host.grant("jira", &action(MIA, "PLAT/Testers"))
            .await
            .result
            .expect_err("unknown role"),
    );
    assert!(
        matches!(&err, ConnectorError::NotFound(m) if m.contains("Developers") && m.contains("Testers")),
        "names the roles that exist: {err:?}"
    );
    let err = connector_error(
        host.grant("jira", &action(MIA, "NOPE/Developers"))
            .await
            .result
            .expect_err("unknown project"),
    );
    assert!(
        matches!(&err, ConnectorError::NotFound(m) if m.contains("NOPE")),
        "{err:?}"
    );

    let err = connector_error(
        host.grant("jira", &action("mia@acme.example", "PLAT/Developers"))
            .await
            .result
            .expect_err("an e-mail is not an account id"),
    );
    assert!(matches!(err, ConnectorError::InvalidRequest(_)));
    assert!(!sim.requests().iter().any(|r| r.method == "POST"));
}

#[tokio::test]
async fn list_grants_without_a_resource_walks_every_project() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    sim.set_role_member("PLAT", "Developers", MIA);
    sim.set_role_member("OPS", "Viewers", RAVI);
    let mut query = GrantQuery {
        kind: "project-role".into(),
        resource: None,
        cursor: None,
    };
    let mut grants = Vec::new();
    for _ in 0..10 {
        let page = host.list_grants("jira", &query).await.result.expect("page");
        grants.extend(page.grants);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let mut listed: Vec<_> = grants
        .iter()
        .map(|g| (g.entitlement.resource.clone(), g.subject.id.clone()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("OPS/Administrators".to_owned(), JIRA_DEMO_ADMIN.to_owned()),
            ("OPS/Viewers".to_owned(), RAVI.to_owned()),
            ("PLAT/Administrators".to_owned(), JIRA_DEMO_ADMIN.to_owned()),
            ("PLAT/Developers".to_owned(), MIA.to_owned()),
        ]
    );
}

/// 51 projects beside PLAT and OPS, so the search takes two pages of 50: OPS and P00-P48
/// on the first, P49, P50 and PLAT on the second (keys in order).
fn add_projects(sim: &JiraSimulator) {
    for n in 0..51 {
        sim.add_project(&format!("P{n:02}"));
    }
}

fn all_projects() -> GrantQuery {
    GrantQuery {
        kind: "project-role".into(),
        resource: None,
        cursor: None,
    }
}

#[tokio::test]
async fn list_grants_follows_next_page_to_the_second_search_page() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    add_projects(&sim);
    sim.set_role_member("PLAT", "Developers", MIA);
    let mut query = all_projects();
    let (mut grants, mut calls) = (Vec::new(), 0);
    loop {
        let page = host.list_grants("jira", &query).await.result.expect("page");
        calls += 1;
        grants.extend(page.grants);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
        assert!(calls < 100, "paging must end");
    }
    assert_eq!(calls, 53, "one project per call");
    let searches: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/rest/api/3/project/search?"))
        .collect();
    assert_eq!(searches.len(), 53, "each call reads its search page");
    let second = searches
        .iter()
        .filter(|r| r.path.contains("startAt=50"))
        .count();
    assert_eq!(second, 3, "P49, P50 and PLAT come from the nextPage link");
    assert!(
        grants
            .iter()
            .any(|g| g.entitlement.resource == "PLAT/Developers" && g.subject.id == MIA),
        "PLAT is on the second page"
    );
}

#[tokio::test]
async fn a_next_page_link_to_another_origin_fails_when_its_page_is_read() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    add_projects(&sim);
    let mut query = all_projects();
    // A faithful first call: OPS, and a cursor for the page's second project.
    let first = host.list_grants("jira", &query).await.result.expect("page");
    query.cursor = first.next_cursor;
    assert!(query.cursor.is_some());

    sim.set_next_page(NextPage::OtherOrigin("https://evil.example".into()));
    sim.clear_requests();
    for cursor in [None, query.cursor.clone()] {
        // From the start or mid-page alike, the call that reads the page refuses its link
        // before listing a project of it, rather than hand out a cursor the next call
        // would refuse.
        query.cursor = cursor;
        let call = host.list_grants("jira", &query).await;
        let err = connector_error(call.result.expect_err("a foreign link"));
        assert!(
            matches!(&err, ConnectorError::InvalidRequest(m)
                if m.contains("it points at https://evil.example") && m.contains("not under the base URL")),
            "{err:?}"
        );
        assert_eq!(call.report.http.len(), 1, "only the search page was read");
    }
    assert_eq!(sim.requests().len(), 2);
}

#[tokio::test]
async fn a_next_page_link_to_the_page_itself_fails_instead_of_looping() {
    let sim = jira_demo().await.expect("simulator starts");
    let host = demo_host(&sim);
    add_projects(&sim);
    sim.set_next_page(NextPage::Itself);
    let call = host.list_grants("jira", &all_projects()).await;
    let err = connector_error(call.result.expect_err("a loop"));
    assert!(
        matches!(&err, ConnectorError::Transient(m)
            if m.contains("names itself as its next page") && m.contains("for ever")),
        "{err:?}"
    );
    assert_eq!(call.report.http.len(), 1, "only the search page was read");
    assert_eq!(sim.requests().len(), 1);
}
