//! The SCIM plugin, as a real wasm component, against the real `scim2-server` (PyPI) and
//! against the in-repo SCIM simulator for what scim2-server does not do: answer 400
//! `noTarget` to removing a non-member, rate-limit, require a token, lack PATCH.

use portcullis::conformance::{self, ConformanceCase};
use portcullis::model::{
    Action, ConnectorError, Entitlement, GrantOutcome, GrantQuery, Observed, RevokeOutcome, Subject,
};
use portcullis::{CallError, Host};
use portcullis_e2e::{app, host, peers, plugins};
use portcullis_simulators::{NonMemberRemoval, ScimSimulator};

fn subject(id: &str) -> Subject {
    Subject {
        id: id.to_owned(),
        email: None,
    }
}

fn membership(group: &str) -> Entitlement {
    Entitlement {
        kind: "group".to_owned(),
        resource: group.to_owned(),
        level: None,
    }
}

fn action(user: &str, group: &str) -> Action {
    Action {
        subject: subject(user),
        entitlement: membership(group),
        idempotency_key: format!("test-{user}-{group}"),
        reason: "e2e test".to_owned(),
    }
}

fn scim_host(base_url: &str, secrets: &[(&str, &str)]) -> Host {
    host(vec![("scim", app(plugins::SCIM, base_url, secrets))]).0
}

/// Creates a SCIM resource on a real server the way an identity provider would, and
/// returns its id.
async fn create(base: &str, collection: &str, body: serde_json::Value) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/{collection}"))
        .header("content-type", "application/scim+json")
        .header("accept", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .expect("scim2-server answers");
    assert_eq!(response.status(), 201, "POST /{collection}");
    let text = response.text().await.expect("body");
    let created: serde_json::Value = serde_json::from_str(&text).expect("JSON body");
    created["id"].as_str().expect("an id").to_owned()
}

async fn create_user(base: &str, user_name: &str) -> String {
    let schema = "urn:ietf:params:scim:schemas:core:2.0:User";
    create(
        base,
        "Users",
        serde_json::json!({ "schemas": [schema], "userName": user_name }),
    )
    .await
}

async fn create_group(base: &str, display_name: &str) -> String {
    let schema = "urn:ietf:params:scim:schemas:core:2.0:Group";
    create(
        base,
        "Groups",
        serde_json::json!({ "schemas": [schema], "displayName": display_name }),
    )
    .await
}

fn connector_error<T: std::fmt::Debug>(result: Result<T, CallError>) -> ConnectorError {
    match result {
        Err(CallError::Connector(e)) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

#[tokio::test]
async fn scim_passes_the_conformance_kit_against_scim2_server() {
    let peer = peers::scim_server();
    // scim2-server serves its service root at /v2 (and at /); use the documented one.
    let base = format!("{}/v2", peer.base_url());
    let user = create_user(&base, "bjensen").await;
    let group = create_group(&base, "Admins").await;
    let host = scim_host(&base, &[]);

    let check = host.check("scim").await.result.expect("check passes");
    assert!(check.scopes.iter().any(|s| s == "patch"), "{check:?}");
    assert!(check.principal.contains("no authentication"), "{check:?}");

    let case = ConformanceCase {
        app: "scim".into(),
        subject: subject(&user),
        entitlement: membership(&group),
    };
    let report = conformance::run(&host, &case).await;
    assert!(report.passed(), "{}\n{}", report.table(), peer.output());
}

#[tokio::test]
async fn user_names_resolve_and_unknown_users_are_refused_on_scim2_server() {
    let peer = peers::scim_server();
    let base = format!("{}/v2", peer.base_url());
    let user = create_user(&base, "bjensen").await;
    let group = create_group(&base, "Admins").await;
    let host = scim_host(&base, &[]);

    // A userName (case-insensitive in SCIM) is looked up and the User id is written.
    let granted = host.grant_checked("scim", &action("BJensen", &group)).await;
    assert!(
        matches!(granted.write.result, Ok(GrantOutcome::Granted)),
        "{:?}",
        granted.write.result
    );
    let page = host
        .list_grants(
            "scim",
            &GrantQuery {
                kind: "group".into(),
                resource: Some(group.clone()),
                cursor: None,
            },
        )
        .await
        .result
        .expect("list-grants");
    let members: Vec<&str> = page.grants.iter().map(|g| g.subject.id.as_str()).collect();
    assert_eq!(members, [user.as_str()]);
    assert_eq!(page.next_cursor, None);
    assert_eq!(
        host.verify("scim", &subject("bjensen"), &membership(&group))
            .await
            .result
            .expect("verify"),
        Observed::Present { level: None }
    );

    // scim2-server would store a dangling member id; the connector refuses first.
    let err = connector_error(host.grant("scim", &action("nobody", &group)).await.result);
    assert!(matches!(err, ConnectorError::NotFound(m) if m.contains("nobody")));
    let err = connector_error(
        host.grant("scim", &action(&user, "no-such-group"))
            .await
            .result,
    );
    assert!(matches!(err, ConnectorError::NotFound(_)), "{err:?}");
    assert_eq!(
        host.revoke("scim", &action("nobody", &group))
            .await
            .result
            .expect("revoke"),
        RevokeOutcome::AlreadyAbsent
    );
    assert_eq!(
        host.revoke("scim", &action("bjensen", &group))
            .await
            .result
            .expect("revoke"),
        RevokeOutcome::Revoked
    );
}

#[tokio::test]
async fn conformance_and_non_member_removal_in_both_simulator_modes() {
    for (mode, patch_returns_resource) in [
        (NonMemberRemoval::NoTarget, false),
        (NonMemberRemoval::NoContent, true),
    ] {
        let sim = ScimSimulator::start().await.expect("simulator starts");
        sim.set_non_member_removal(mode);
        sim.set_patch_returns_resource(patch_returns_resource);
        sim.set_token(Some("scim-token"));
        let user = sim.add_user("bjensen");
        let group = sim.add_group("Admins");
        let host = scim_host(&sim.base_url(), &[("token", "scim-token")]);

        let report = conformance::run(
            &host,
            &ConformanceCase {
                app: "scim".into(),
                subject: subject(&user),
                entitlement: membership(&group),
            },
        )
        .await;
        assert!(report.passed(), "{mode:?}\n{}", report.table());

        // A non-member: verify-first answers without writing...
        sim.clear_requests();
        let revoked = host.revoke("scim", &action(&user, &group)).await.result;
        assert_eq!(revoked.ok(), Some(RevokeOutcome::AlreadyAbsent), "{mode:?}");
        assert!(
            sim.requests()
                .iter()
                .all(|r| r.method == "GET" && r.had_authorization),
            "{mode:?}: {:?}",
            sim.requests()
        );
        // ... and the membership really is absent.
        assert!(sim.members(&group).is_empty());
    }
}

#[tokio::test]
async fn rate_limits_are_reported_with_the_wait() {
    let sim = ScimSimulator::start().await.expect("simulator starts");
    let user = sim.add_user("bjensen");
    let group = sim.add_group("Admins");
    let host = scim_host(&sim.base_url(), &[]);
    sim.set_request_budget(Some(0), 17);
    let err = connector_error(host.grant("scim", &action(&user, &group)).await.result);
    assert!(
        matches!(
            err,
            ConnectorError::RateLimited {
                retry_after_ms: Some(17_000),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(sim.members(&group).is_empty());
    // This host now holds requests to the server until the wait ends (it never sends one
    // the server said not to); a host that has not seen the wait goes through once the
    // budget allows.
    let held = host.grant("scim", &action(&user, &group)).await.result;
    assert!(
        held.as_ref()
            .is_err_and(|e| e.to_string().contains("held back by the host")),
        "{held:?}"
    );
    sim.set_request_budget(None, 0);
    let fresh = scim_host(&sim.base_url(), &[]);
    assert_eq!(
        fresh
            .grant("scim", &action(&user, &group))
            .await
            .result
            .expect("grant"),
        GrantOutcome::Granted
    );
}

#[tokio::test]
async fn check_warns_and_writes_fail_cleanly_without_patch_or_credentials() {
    let sim = ScimSimulator::start().await.expect("simulator starts");
    let user = sim.add_user("bjensen");
    let group = sim.add_group("Admins");

    sim.set_features(false, false);
    let host = scim_host(&sim.base_url(), &[]);
    let check = host.check("scim").await.result.expect("check");
    assert!(check.scopes.is_empty(), "{check:?}");
    assert!(
        check
            .warnings
            .iter()
            .any(|w| w.contains("PATCH") && w.contains("grant and revoke cannot work")),
        "{check:?}"
    );
    let err = connector_error(host.grant("scim", &action(&user, &group)).await.result);
    assert!(matches!(err, ConnectorError::Unsupported(_)), "{err:?}");
    sim.set_features(true, true);

    // The service wants a token and none is configured: discovery works, the rest is 401.
    sim.set_token(Some("scim-token"));
    let check = host.check("scim").await.result;
    assert!(matches!(
        connector_error(check),
        ConnectorError::Unauthorized(_)
    ));
    let host = scim_host(&sim.base_url(), &[("token", "wrong")]);
    let err = connector_error(
        host.verify("scim", &subject(&user), &membership(&group))
            .await
            .result,
    );
    assert!(matches!(err, ConnectorError::Unauthorized(_)), "{err:?}");
    let host = scim_host(&sim.base_url(), &[("token", "scim-token")]);
    let check = host
        .check("scim")
        .await
        .result
        .expect("check with the token");
    assert!(
        check.principal.contains("bearer token") && check.principal.contains("1 groups"),
        "{check:?}"
    );
}

#[tokio::test]
async fn list_grants_pages_through_every_group() {
    let sim = ScimSimulator::start().await.expect("simulator starts");
    let users: Vec<String> = ["bjensen", "jsmith"]
        .iter()
        .map(|u| sim.add_user(u))
        .collect();
    let mut expected = Vec::new();
    for i in 0..120 {
        let group = sim.add_group(&format!("team-{i}"));
        if i % 7 == 0 {
            let user = &users[i % 2];
            assert!(sim.add_member(&group, user));
            expected.push((user.clone(), group));
        }
    }
    let host = scim_host(&sim.base_url(), &[]);
    let mut query = GrantQuery {
        kind: "group".into(),
        resource: None,
        cursor: None,
    };
    let (mut found, mut pages) = (Vec::new(), 0);
    loop {
        let page = host
            .list_grants("scim", &query)
            .await
            .result
            .expect("a page");
        pages += 1;
        found.extend(
            page.grants
                .into_iter()
                .map(|g| (g.subject.id, g.entitlement.resource)),
        );
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(pages, 3, "120 groups at 50 a page");
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
}
