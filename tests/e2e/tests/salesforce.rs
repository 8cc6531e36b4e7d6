//! The Salesforce plugin, as a real wasm component in a fresh sandbox per call, against
//! the stateful Salesforce simulator over real HTTP on 127.0.0.1.

use portcullis::audit::MemorySink;
use portcullis::conformance::{ConformanceCase, run};
use portcullis::model::{
    Action, ConnectorError, Entitlement, GrantOutcome, GrantQuery, Observed, RevokeOutcome, Subject,
};
use portcullis::{CallError, Host};
use portcullis_e2e::{app, host, plugins};
use portcullis_simulators::salesforce::{SALESFORCE_DEMO_SETS, SALESFORCE_DEMO_USERS};
use portcullis_simulators::{SALESFORCE_DEMO_TOKEN, SalesforceSimulator, salesforce_demo};

const SALES_OPS: &str = SALESFORCE_DEMO_SETS[0].1;
const SALES_OPS_ID: &str = SALESFORCE_DEMO_SETS[0].0;
const ADA: &str = SALESFORCE_DEMO_USERS[0];

fn sf_host(sim: &SalesforceSimulator, token: &str) -> (Host, MemorySink) {
    host(vec![(
        "salesforce",
        app(plugins::SALESFORCE, &sim.base_url(), &[("token", token)]),
    )])
}

fn subject(id: &str) -> Subject {
    Subject {
        id: id.to_owned(),
        email: None,
    }
}

fn entitlement(set: &str) -> Entitlement {
    Entitlement {
        kind: "permission-set".to_owned(),
        resource: set.to_owned(),
        level: None,
    }
}

fn action(user: &str, set: &str) -> Action {
    Action {
        subject: subject(user),
        entitlement: entitlement(set),
        idempotency_key: format!("test-{user}-{set}"),
        reason: "e2e test".to_owned(),
    }
}

fn connector_error<T: std::fmt::Debug>(result: Result<T, CallError>) -> ConnectorError {
    match result {
        Err(CallError::Connector(e)) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

#[tokio::test]
async fn salesforce_passes_the_conformance_kit() {
    let sim = salesforce_demo().await.expect("simulator starts");
    let (host, _audit) = sf_host(&sim, SALESFORCE_DEMO_TOKEN);
    for resource in [SALES_OPS, SALES_OPS_ID] {
        let case = ConformanceCase {
            app: "salesforce".into(),
            subject: subject(ADA),
            entitlement: entitlement(resource),
        };
        let report = run(&host, &case).await;
        assert!(report.passed(), "{resource}:\n{}", report.table());
    }
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.had_authorization && r.status < 500),
        "{:?}",
        sim.requests()
    );
}

#[tokio::test]
async fn duplicate_value_is_already_present() {
    let sim = salesforce_demo().await.expect("simulator starts");
    let (host, _audit) = sf_host(&sim, SALESFORCE_DEMO_TOKEN);
    sim.assign(SALES_OPS, ADA);
    let again = host
        .grant_checked("salesforce", &action(ADA, SALES_OPS))
        .await;
    assert_eq!(again.write.result, Ok(GrantOutcome::AlreadyPresent));
    assert!(again.verdict.is_verified(), "{:?}", again.verdict);
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].status, 400, "Salesforce answered DUPLICATE_VALUE");
    assert_eq!(sim.assignments(SALES_OPS), [ADA.to_owned()]);
}

#[tokio::test]
async fn request_limit_exceeded_is_rate_limited() {
    for status in [403, 503] {
        let sim = salesforce_demo().await.expect("simulator starts");
        let (host, _audit) = sf_host(&sim, SALESFORCE_DEMO_TOKEN);
        sim.set_request_budget(1, status); // the SOQL lookup passes, the create does not
        let err = connector_error(
            host.grant("salesforce", &action(ADA, SALES_OPS))
                .await
                .result,
        );
        assert!(
            matches!(&err, ConnectorError::RateLimited { message, .. } if message.contains("REQUEST_LIMIT_EXCEEDED")),
            "{status}: {err:?}"
        );
        assert!(err.is_retryable());
        assert!(sim.assignments(SALES_OPS).is_empty());
    }
}

#[tokio::test]
async fn a_quote_in_the_resource_is_refused_before_any_request() {
    let sim = salesforce_demo().await.expect("simulator starts");
    let (host, _audit) = sf_host(&sim, SALESFORCE_DEMO_TOKEN);
    for resource in [
        "Sales_Ops' OR Name != '",
        "x' OR Id != null OR Name = 'y",
        "Sales Ops",
    ] {
        let err = connector_error(
            host.grant("salesforce", &action(ADA, resource))
                .await
                .result,
        );
        assert!(
            matches!(err, ConnectorError::InvalidRequest(_)),
            "{resource}: {err:?}"
        );
        let err = connector_error(
            host.verify("salesforce", &subject(ADA), &entitlement(resource))
                .await
                .result,
        );
        assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err:?}");
    }
    let err = connector_error(
        host.grant("salesforce", &action("005' OR Id != '", SALES_OPS))
            .await
            .result,
    );
    assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err:?}");
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
}

#[tokio::test]
async fn unknown_sets_and_users_are_not_found() {
    let sim = salesforce_demo().await.expect("simulator starts");
    let (host, _audit) = sf_host(&sim, SALESFORCE_DEMO_TOKEN);
    let err = connector_error(
        host.grant("salesforce", &action(ADA, "No_Such_Set"))
            .await
            .result,
    );
    assert!(
        matches!(&err, ConnectorError::NotFound(m) if m.contains("No_Such_Set")),
        "{err:?}"
    );
    let err = connector_error(
        host.grant("salesforce", &action("0055e000009ZzZzAAA", SALES_OPS))
            .await
            .result,
    );
    assert!(
        matches!(&err, ConnectorError::NotFound(m) if m.contains("INVALID_CROSS_REFERENCE_KEY")),
        "{err:?}"
    );
    let revoked = host
        .revoke("salesforce", &action(ADA, "Marketing_User"))
        .await;
    assert_eq!(revoked.result, Ok(RevokeOutcome::AlreadyAbsent));
}

#[tokio::test]
async fn fifteen_character_ids_and_paged_listing() {
    let sim = salesforce_demo().await.expect("simulator starts");
    let (host, _audit) = sf_host(&sim, SALESFORCE_DEMO_TOKEN);
    sim.set_query_batch_size(2);
    for user in SALESFORCE_DEMO_USERS {
        sim.assign(SALES_OPS, user);
    }
    let short = &ADA[..15];
    let observed = host
        .verify("salesforce", &subject(short), &entitlement(SALES_OPS))
        .await
        .result;
    assert_eq!(observed, Ok(Observed::Present { level: None }));

    let mut query = GrantQuery {
        kind: "permission-set".into(),
        resource: Some(SALES_OPS.into()),
        cursor: None,
    };
    let (mut listed, mut pages) = (Vec::new(), 0);
    loop {
        let page = host
            .list_grants("salesforce", &query)
            .await
            .result
            .expect("page lists");
        pages += 1;
        listed.extend(page.grants.into_iter().map(|g| g.subject.id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(pages, 2);
    listed.sort();
    assert_eq!(listed, SALESFORCE_DEMO_USERS);

    query.cursor = Some("https://evil.example/steal".into());
    let err = connector_error(host.list_grants("salesforce", &query).await.result);
    assert!(matches!(err, ConnectorError::InvalidRequest(_)), "{err:?}");
}

#[tokio::test]
async fn check_and_invalid_session() {
    let sim = salesforce_demo().await.expect("simulator starts");
    let (host, _audit) = sf_host(&sim, SALESFORCE_DEMO_TOKEN);
    let report = host.check("salesforce").await.result.expect("check passes");
    assert!(
        report.principal.contains("0055e000000AdMnAAK"),
        "{report:?}"
    );

    let (bad, _audit) = sf_host(&sim, "00Dexpired");
    let err = connector_error(bad.check("salesforce").await.result);
    assert!(
        matches!(&err, ConnectorError::Unauthorized(m) if m.contains("INVALID_SESSION_ID")),
        "{err:?}"
    );
    let err = connector_error(
        bad.grant("salesforce", &action(ADA, SALES_OPS))
            .await
            .result,
    );
    assert!(matches!(err, ConnectorError::Unauthorized(_)), "{err:?}");
}
