//! Plugins built for contract 0.1.0 keep working unchanged: the frozen 0.1.0 builds of
//! every bundled connector (`tests/compat/contract-0.1/`, made before 0.2.0 existed) load
//! in this host beside the 0.2.0 ones, describe themselves (list-grants for every kind,
//! nothing else), answer `unsupported` to what 0.2.0 added, and pass the conformance kit
//! against their simulators. A level decrease for a 0.1.0 plugin still revokes and grants.

use std::path::PathBuf;

use portcullis::conformance::{ConformanceCase, run};
use portcullis::model::{Action, Entitlement, Subject, UsageQuery};
use portcullis::{CallError, Host};
use portcullis_e2e::{app, host};
use portcullis_simulators::gdrive::GDRIVE_DEMO_FILES;
use portcullis_simulators::jira::JIRA_DEMO_USERS;
use portcullis_simulators::okta::{OKTA_DEMO_ENGINEERING, OKTA_DEMO_USERS};
use portcullis_simulators::salesforce::{SALESFORCE_DEMO_SETS, SALESFORCE_DEMO_USERS};
use portcullis_simulators::slack::SLACK_DEMO_CHANNEL;
use portcullis_simulators::{
    GDRIVE_DEMO_TOKEN, GITHUB_DEMO_TOKEN, JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN, OKTA_DEMO_TOKEN,
    SALESFORCE_DEMO_TOKEN, SLACK_DEMO_TOKEN, gdrive_demo, github_demo, jira_demo, okta_demo,
    salesforce_demo, slack_demo,
};

/// The frozen 0.1.0 build of bundled connector `name`.
fn frozen(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../compat/contract-0.1")
        .join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing", path.display());
    path.display().to_string()
}

fn entitlement(kind: &str, resource: &str, level: Option<&str>) -> Entitlement {
    Entitlement {
        kind: kind.into(),
        resource: resource.into(),
        level: level.map(str::to_owned),
    }
}

fn subject(id: &str) -> Subject {
    Subject {
        id: id.into(),
        email: None,
    }
}

/// The kit passes, and the 0.2.0 additions answer `unsupported` without running guest code.
async fn passes(host: &Host, app: &str, subject: Subject, entitlement: Entitlement) {
    let plugin = host.app(app).expect("configured").plugin.clone();
    assert_eq!(
        plugin.contract,
        portcullis::guest::Version::V0_1,
        "{app} loads as a 0.1.0 plugin"
    );
    let info = host.connector_info(app).await.expect("describes itself");
    assert!(
        info.kinds
            .iter()
            .all(|k| info.capabilities_of(&k.name).list_grants
                && !info.capabilities_of(&k.name).set_level
                && !info.capabilities_of(&k.name).usage),
        "{app}: {:?}",
        info.capabilities
    );
    let case = ConformanceCase {
        app: app.into(),
        subject: subject.clone(),
        entitlement: entitlement.clone(),
    };
    let report = run(host, &case).await;
    assert!(report.passed(), "{app} (0.1.0 build):\n{}", report.table());

    let action = Action {
        subject,
        entitlement: entitlement.clone(),
        idempotency_key: "compat".into(),
        reason: "compat".into(),
    };
    let set = host.set_level(app, &action).await.result;
    assert!(
        matches!(&set, Err(CallError::Connector(e)) if e.to_string().contains("0.1.0")),
        "{app}: {set:?}"
    );
    let usage = host
        .usage(
            app,
            &UsageQuery {
                kind: entitlement.kind,
                resource: None,
                cursor: None,
            },
        )
        .await
        .result;
    assert!(
        matches!(usage, Err(CallError::Connector(_))),
        "{app}: {usage:?}"
    );
}

#[tokio::test]
async fn every_bundled_connector_built_for_0_1_0_still_passes_the_conformance_kit() {
    let github = github_demo().await.expect("github simulator");
    let slack = slack_demo().await.expect("slack simulator");
    let jira = jira_demo().await.expect("jira simulator");
    let okta = okta_demo().await.expect("okta simulator");
    let drive = gdrive_demo().await.expect("drive simulator");
    let salesforce = salesforce_demo().await.expect("salesforce simulator");
    let (host, _audit) = host(vec![
        (
            "github",
            app(
                &frozen("github"),
                &github.base_url(),
                &[("token", GITHUB_DEMO_TOKEN)],
            ),
        ),
        (
            "slack",
            app(
                &frozen("slack"),
                &slack.base_url(),
                &[("token", SLACK_DEMO_TOKEN)],
            ),
        ),
        (
            "jira",
            app(
                &frozen("jira"),
                &jira.base_url(),
                &[("email", JIRA_DEMO_EMAIL), ("api-token", JIRA_DEMO_TOKEN)],
            ),
        ),
        (
            "okta",
            app(
                &frozen("okta"),
                &okta.base_url(),
                &[("api-token", OKTA_DEMO_TOKEN)],
            ),
        ),
        (
            "drive",
            app(
                &frozen("gdrive"),
                &drive.base_url(),
                &[("token", GDRIVE_DEMO_TOKEN)],
            ),
        ),
        (
            "salesforce",
            app(
                &frozen("salesforce"),
                &salesforce.base_url(),
                &[("token", SALESFORCE_DEMO_TOKEN)],
            ),
        ),
        // No offline peer started here for these two: they must load and describe.
        (
            "aws",
            app(&frozen("aws-iam"), "https://iam.amazonaws.com", &[]),
        ),
        ("scim", app(&frozen("scim"), "https://scim.example", &[])),
    ]);
    passes(
        &host,
        "github",
        subject("octocat"),
        entitlement("repository", "acme/platform-api", Some("write")),
    )
    .await;
    passes(
        &host,
        "slack",
        subject("U0100BOBBY"),
        entitlement("channel", SLACK_DEMO_CHANNEL, None),
    )
    .await;
    passes(
        &host,
        "jira",
        subject(JIRA_DEMO_USERS[0]),
        entitlement("project-role", "PLAT/Developers", None),
    )
    .await;
    passes(
        &host,
        "okta",
        subject(OKTA_DEMO_USERS[0]),
        entitlement("group", OKTA_DEMO_ENGINEERING, None),
    )
    .await;
    passes(
        &host,
        "drive",
        subject("ada@acme.example"),
        entitlement("file", GDRIVE_DEMO_FILES[0].0, Some("writer")),
    )
    .await;
    passes(
        &host,
        "salesforce",
        subject(SALESFORCE_DEMO_USERS[0]),
        entitlement("permission-set", SALESFORCE_DEMO_SETS[0].1, None),
    )
    .await;
    for app in ["aws", "scim"] {
        let info = host.connector_info(app).await.expect("describes itself");
        assert!(!info.kinds.is_empty(), "{app}");
        assert_eq!(
            host.app(app).expect("app").plugin.contract,
            portcullis::guest::Version::V0_1
        );
    }
    // The bundled builds are 0.2.0.
    let (current, _audit) = portcullis_e2e::host(vec![(
        "github",
        app(
            "github",
            &github.base_url(),
            &[("token", GITHUB_DEMO_TOKEN)],
        ),
    )]);
    assert_eq!(
        current.app("github").expect("app").plugin.contract,
        portcullis::guest::Version::V0_2
    );
    let info = current.connector_info("github").await.expect("describe");
    assert!(info.capabilities_of("repository").set_level);
}
