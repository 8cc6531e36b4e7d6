//! The Okta plugin, as a real wasm component in a fresh sandbox per call, against the
//! stateful Okta simulator over real HTTP on 127.0.0.1.

use portcullis::model::{
    Action, ConnectorError, Entitlement, GrantOutcome, GrantQuery, Observed, RevokeOutcome, Subject,
};
use portcullis::{CallError, Host};
use portcullis_e2e::{app, host, plugins};
use portcullis_simulators::okta::{
    GroupType, OKTA_DEMO_AD_ADMINS, OKTA_DEMO_ENGINEERING, OKTA_DEMO_EVERYONE, OKTA_DEMO_USERS,
};
use portcullis_simulators::{OKTA_DEMO_TOKEN, OktaSimulator, okta_demo};

const MIA: &str = OKTA_DEMO_USERS[0];

fn subject(id: &str) -> Subject {
    Subject {
        id: id.into(),
        email: None,
    }
}

fn group(id: &str) -> Entitlement {
    Entitlement {
        kind: "group".into(),
        resource: id.into(),
        level: None,
    }
}

fn action(user: &str, group_id: &str) -> Action {
    Action {
        subject: subject(user),
        entitlement: group(group_id),
        idempotency_key: format!("test-{user}-{group_id}"),
        reason: "e2e test".into(),
    }
}

fn okta_host(sim: &OktaSimulator, token: &str) -> Host {
    let (host, _audit) = host(vec![(
        "okta",
        app(plugins::OKTA, &sim.base_url(), &[("api-token", token)]),
    )]);
    host
}

fn connector_error(err: CallError) -> ConnectorError {
    match err {
        CallError::Connector(e) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

#[tokio::test]
async fn okta_passes_the_conformance_kit() {
    let sim = okta_demo().await.expect("simulator starts");
    let host = okta_host(&sim, OKTA_DEMO_TOKEN);
    let case = portcullis::conformance::ConformanceCase {
        app: "okta".into(),
        subject: subject(MIA),
        entitlement: group(OKTA_DEMO_ENGINEERING),
    };
    let report = portcullis::conformance::run(&host, &case).await;
    assert!(report.passed(), "{}", report.table());
    // Okta's writes are idempotent 204s: the repeated grant and revoke must not write.
    let writes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" || r.method == "DELETE")
        .map(|r| r.method)
        .collect();
    assert_eq!(writes, ["PUT", "DELETE"]);
}

#[tokio::test]
async fn app_and_built_in_groups_are_refused_and_nothing_is_written() {
    let sim = okta_demo().await.expect("simulator starts");
    let host = okta_host(&sim, OKTA_DEMO_TOKEN);
    let err = connector_error(
        host.grant("okta", &action(MIA, OKTA_DEMO_AD_ADMINS))
            .await
            .result
            .expect_err("app group"),
    );
    assert!(
        matches!(&err, ConnectorError::Unsupported(m)
            if m.contains("APP_GROUP") && m.contains("AD Admins") && m.contains("source application")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let err = connector_error(
        host.revoke("okta", &action(MIA, OKTA_DEMO_EVERYONE))
            .await
            .result
            .expect_err("built-in group"),
    );
    assert!(
        matches!(&err, ConnectorError::Unsupported(m) if m.contains("BUILT_IN") && m.contains("Okta itself")),
        "{err:?}"
    );
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.method == "PUT" || r.method == "DELETE"),
        "nothing was written"
    );
    assert!(sim.group_members(OKTA_DEMO_AD_ADMINS).is_empty());
    assert_eq!(sim.group_members(OKTA_DEMO_EVERYONE).len(), 3);

    // Reading still works: verify reports app-group membership truthfully.
    sim.set_member(OKTA_DEMO_AD_ADMINS, MIA);
    let observed = host
        .verify("okta", &subject(MIA), &group(OKTA_DEMO_AD_ADMINS))
        .await
        .result;
    assert_eq!(observed, Ok(Observed::Present { level: None }));
}

#[tokio::test]
async fn list_grants_pages_through_large_groups() {
    let sim = okta_demo().await.expect("simulator starts");
    let host = okta_host(&sim, OKTA_DEMO_TOKEN);
    for n in 0..450 {
        let id = format!("00u9bulk{n:012}");
        sim.add_user(&id, &format!("bulk.user{n}@acme.example"));
        sim.set_member(OKTA_DEMO_ENGINEERING, &id);
    }
    let mut query = GrantQuery {
        kind: "group".into(),
        resource: Some(OKTA_DEMO_ENGINEERING.into()),
        cursor: None,
    };
    let mut grants = Vec::new();
    let mut pages = 0;
    loop {
        let page = host.list_grants("okta", &query).await.result.expect("page");
        pages += 1;
        grants.extend(page.grants);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
        assert!(pages < 20, "paging must end");
    }
    assert_eq!(pages, 3, "450 members at 200 a page");
    let mut ids: Vec<_> = grants.iter().map(|g| g.subject.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 450);
    assert_eq!(grants.len(), 450, "nobody listed twice");
    assert!(grants.iter().all(|g| g.subject.email.is_some()));
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.path.contains("after=00u9bulk")),
        "followed Okta's after cursor"
    );

    // Without a resource: every group, app and built-in ones included.
    let mut query = GrantQuery {
        kind: "group".into(),
        resource: None,
        cursor: None,
    };
    let mut all = Vec::new();
    for _ in 0..50 {
        let page = host.list_grants("okta", &query).await.result.expect("page");
        all.extend(page.grants);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let count = |g: &str| all.iter().filter(|x| x.entitlement.resource == g).count();
    assert_eq!(count(OKTA_DEMO_ENGINEERING), 450);
    assert_eq!(count(OKTA_DEMO_EVERYONE), 3);
}

#[tokio::test]
async fn rate_limit_429_waits_until_the_reset() {
    let sim = okta_demo().await.expect("simulator starts");
    let host = okta_host(&sim, OKTA_DEMO_TOKEN);
    sim.set_rate_limit(1);
    // The first request spends the budget and reports `X-Rate-Limit-Remaining: 0`: the
    // host's limiter holds every further request to Okta until the reset, rather than
    // sending one that must fail; the call fails retryably with no write sent.
    let err = host
        .grant("okta", &action(MIA, OKTA_DEMO_ENGINEERING))
        .await
        .result
        .expect_err("the second request is held back");
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("held back by the host"), "{err}");
    let until = host
        .app("okta")
        .and_then(|app| app.limiter.blocked_until())
        .expect("the limiter knows the reset");
    assert!(until > std::time::Instant::now());
    assert!(sim.group_members(OKTA_DEMO_ENGINEERING).is_empty());
    assert!(!sim.requests().iter().any(|r| r.method == "PUT"));
    assert_eq!(
        sim.requests().len(),
        1,
        "only the request that spent the budget went out"
    );
}

#[tokio::test]
async fn a_429_is_rate_limited_with_the_wait_from_the_reset() {
    let sim = okta_demo().await.expect("simulator starts");
    let host = okta_host(&sim, OKTA_DEMO_TOKEN);
    sim.faults().rate_limit_storm(1, None);
    let err = host
        .grant("okta", &action(MIA, OKTA_DEMO_ENGINEERING))
        .await
        .result
        .expect_err("limited");
    let ConnectorError::RateLimited {
        retry_after_ms: Some(ms),
        message,
    } = connector_error(err)
    else {
        panic!("expected rate-limited with a wait");
    };
    assert!(ms <= 61_000, "{ms} ms");
    assert!(message.contains("E0000047"), "{message}");
}

#[tokio::test]
async fn check_names_the_admin_and_bad_tokens_are_unauthorized() {
    let sim = okta_demo().await.expect("simulator starts");
    let report = okta_host(&sim, OKTA_DEMO_TOKEN)
        .check("okta")
        .await
        .result
        .expect("check passes");
    assert!(
        report.scopes.iter().any(|s| s == "SUPER_ADMIN"),
        "{report:?}"
    );
    assert!(report.warnings.is_empty(), "{report:?}");

    sim.add_token(
        "read-only-token",
        "00u0readonly0000001",
        &["READ_ONLY_ADMIN"],
    );
    let report = okta_host(&sim, "read-only-token")
        .check("okta")
        .await
        .result
        .expect("check passes");
    assert!(!report.warnings.is_empty(), "{report:?}");

    let err = connector_error(
        okta_host(&sim, "wrong")
            .check("okta")
            .await
            .result
            .expect_err("bad token"),
    );
    assert!(
        matches!(&err, ConnectorError::Unauthorized(m) if m.contains("E0000011")),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_users_and_groups_are_not_found_and_bad_ids_invalid() {
    let sim = okta_demo().await.expect("simulator starts");
    sim.add_group("00g3contractors00003", "Contractors", GroupType::Okta);
    let host = okta_host(&sim, OKTA_DEMO_TOKEN);
    let err = connector_error(
        host.grant(
            "okta",
            &action("00u9nobody0000000000", "00g3contractors00003"),
        )
        .await
        .result
        .expect_err("unknown user"),
    );
    assert!(
        matches!(&err, ConnectorError::NotFound(m) if m.contains("E0000007")),
        "{err:?}"
    );
    let err = connector_error(
        host.grant("okta", &action(MIA, "00g9missing000000000"))
            .await
            .result
            .expect_err("unknown group"),
    );
    assert!(
        matches!(&err, ConnectorError::NotFound(m) if m.contains("00g9missing")),
        "{err:?}"
    );
    let err = connector_error(
        host.grant(
            "okta",
            &action("mia.krystof@acme.example", OKTA_DEMO_ENGINEERING),
        )
        .await
        .result
        .expect_err("a login is not an id"),
    );
    assert!(matches!(err, ConnectorError::InvalidRequest(_)));

    // A grant then revoke on a fresh group reads back.
    let granted = host
        .grant_checked("okta", &action(MIA, "00g3contractors00003"))
        .await;
    assert_eq!(granted.write.result, Ok(GrantOutcome::Granted));
    assert!(granted.verdict.is_verified(), "{:?}", granted.verdict);
    let revoked = host
        .revoke_checked("okta", &action(MIA, "00g3contractors00003"))
        .await;
    assert_eq!(revoked.write.result, Ok(RevokeOutcome::Revoked));
    assert!(revoked.verdict.is_verified(), "{:?}", revoked.verdict);
}

/// Contract 0.2.0 `usage`: the connector reports each group member's last Okta sign-in;
/// the dormant sweep reads it straight from the app and asks to revoke only the grant
/// nobody used for 90 days.
#[tokio::test]
async fn usage_from_okta_makes_a_long_unused_group_dormant_and_a_recent_one_not() {
    use chrono::TimeZone as _;
    use portcullis::model::Target;
    use portcullis::state::{ManagedGrant, ManagedStatus, SqliteStore, StateStore};

    let sim = okta_demo().await.expect("simulator starts");
    let host = okta_host(&sim, OKTA_DEMO_TOKEN);
    let info = host.connector_info("okta").await.expect("describe");
    assert!(
        info.capabilities_of("group").usage,
        "{:?}",
        info.capabilities
    );
    let (stale, recent) = (OKTA_DEMO_USERS[0], OKTA_DEMO_USERS[1]);
    for user in [stale, recent] {
        sim.set_member(OKTA_DEMO_ENGINEERING, user);
    }
    sim.set_last_login(stale, "2026-08-01T09:00:00.000Z");
    sim.set_last_login(recent, "2027-01-10T09:00:00.000Z");

    let store = SqliteStore::open_in_memory().expect("store");
    let granted = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    for (person, user) in [("E1", stale), ("E2", recent)] {
        store
            .record_managed(&ManagedGrant {
                person: person.into(),
                target: Target::new("okta", "group", OKTA_DEMO_ENGINEERING),
                subject: user.into(),
                level: None,
                rules: vec!["engineering".into()],
                status: ManagedStatus::Active,
                granted_at: granted,
                expires_at: None,
                policy_hash: "p".into(),
                run_id: "r".into(),
            })
            .expect("managed");
    }
    let collected = portcullis::ops::collect_usage(&host, &store)
        .await
        .expect("collects");
    assert_eq!(collected.len(), 1, "{collected:?}");
    assert_eq!(collected[0].records, 2, "{collected:?}");
    assert_eq!(collected[0].problem, None);

    let at = chrono::Utc.with_ymd_and_hms(2027, 1, 15, 0, 0, 0).unwrap();
    let sweep = portcullis::ops::dormant_sweep(&store, 90, None, at).expect("sweep");
    let dormant: Vec<&str> = sweep.found.iter().map(|d| d.person.as_str()).collect();
    assert_eq!(dormant, vec!["E1"], "{:?}", sweep.found);
    assert!(
        sweep.found[0].why.contains("2026-08-01"),
        "{}",
        sweep.found[0].why
    );
    assert_eq!(sweep.approvals.len(), 1);
}
