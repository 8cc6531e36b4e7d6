//! The AWS IAM plugin, as a real wasm component, against a real `moto_server` (PyPI
//! `moto[server]`) with IAM authentication on: every request the host sends is SigV4-signed
//! with the app's secrets and moto checks both the signature and the caller's IAM policy.
//!
//! The bootstrap (an `admin` key allowed `iam:*`, spent unauthenticated budget) is
//! [`portcullis_e2e::moto::Moto::start`].

use portcullis::model::{ConnectorError, Entitlement, GrantOutcome, Observed, Subject};
use portcullis::{CallError, Host};
use portcullis_e2e::moto;
use portcullis_e2e::{app, host, plugins};

const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const USER: &str = "alice";
const GROUP: &str = "developers";

/// A moto server with an `admin` access key allowed `iam:*`, user `alice` and group
/// `developers`.
struct Moto(moto::Moto);

impl Moto {
    async fn start() -> Moto {
        Moto(moto::Moto::start(&[USER], &[GROUP]).await)
    }

    fn host(&self) -> Host {
        self.host_with_secret(&self.0.secret)
    }

    fn host_with_secret(&self, secret: &str) -> Host {
        let config = app(
            plugins::AWS_IAM,
            self.0.peer.base_url(),
            &[
                ("access-key-id", &self.0.key_id),
                ("secret-access-key", secret),
            ],
        );
        host(vec![("aws-dev", config)]).0
    }
}

fn subject(id: &str) -> Subject {
    Subject {
        id: id.into(),
        email: None,
    }
}

fn entitlement(kind: &str, policy: &str) -> Entitlement {
    Entitlement {
        kind: kind.into(),
        resource: policy.into(),
        level: None,
    }
}

fn action(id: &str, kind: &str, policy: &str) -> portcullis::model::Action {
    portcullis::model::Action {
        subject: subject(id),
        entitlement: entitlement(kind, policy),
        idempotency_key: format!("test-{id}-{kind}"),
        reason: "e2e test".into(),
    }
}

async fn conformance(kind: &str, id: &str, policy: &str) {
    let moto = Moto::start().await;
    let host = moto.host();
    let case = portcullis::conformance::ConformanceCase {
        app: "aws-dev".into(),
        subject: subject(id),
        entitlement: entitlement(kind, policy),
    };
    let report = portcullis::conformance::run(&host, &case).await;
    assert!(
        report.passed(),
        "{}\nmoto output:\n{}",
        report.table(),
        moto.0.peer.output()
    );
}

#[tokio::test]
async fn user_policy_passes_the_conformance_kit_against_moto() {
    conformance("user-policy", USER, POWER_USER).await;
}

#[tokio::test]
async fn group_policy_passes_the_conformance_kit_against_moto() {
    conformance("group-policy", GROUP, READ_ONLY).await;
}

#[tokio::test]
async fn signatures_are_checked_a_wrong_secret_key_is_unauthorized() {
    let moto = Moto::start().await;

    let good = moto.host().check("aws-dev").await;
    let report = good.result.expect("the admin key passes check");
    assert!(
        report.principal.starts_with("admin (arn:aws:iam::"),
        "{}",
        report.principal
    );

    let wrong = moto.host_with_secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    for result in [
        wrong.check("aws-dev").await.result.map(drop),
        wrong
            .grant("aws-dev", &action(USER, "user-policy", POWER_USER))
            .await
            .result
            .map(drop),
    ] {
        assert!(
            matches!(
                &result,
                Err(CallError::Connector(ConnectorError::Unauthorized(m))) if m.contains("SignatureDoesNotMatch")
            ),
            "{result:?}"
        );
    }
    // Nothing was attached by the refused grant.
    let observed = moto
        .host()
        .verify(
            "aws-dev",
            &subject(USER),
            &entitlement("user-policy", POWER_USER),
        )
        .await
        .result;
    assert!(matches!(observed, Ok(Observed::Absent)), "{observed:?}");
}

#[tokio::test]
async fn detaching_what_is_not_attached_is_already_absent_but_a_missing_user_is_not_found() {
    let moto = Moto::start().await;
    let host = moto.host();

    let revoked = host
        .revoke("aws-dev", &action(USER, "user-policy", READ_ONLY))
        .await;
    assert!(
        matches!(
            revoked.result,
            Ok(portcullis::model::RevokeOutcome::AlreadyAbsent)
        ),
        "{:?}",
        revoked.result
    );
    // One DetachUserPolicy (404 NoSuchEntity), then GetUser to tell "not attached" from
    // "no such user".
    assert_eq!(revoked.report.http.len(), 2, "{:?}", revoked.report.http);

    let missing = host
        .revoke("aws-dev", &action("nobody", "user-policy", READ_ONLY))
        .await;
    assert!(
        matches!(&missing.result, Err(CallError::Connector(ConnectorError::NotFound(m))) if m.contains("nobody")),
        "{:?}",
        missing.result
    );

    let granted = host
        .grant("aws-dev", &action("nobody", "user-policy", READ_ONLY))
        .await;
    assert!(
        matches!(
            granted.result,
            Err(CallError::Connector(ConnectorError::NotFound(_)))
        ),
        "{:?}",
        granted.result
    );

    // A grant that IAM would accept silently on a repeat is reported as already present.
    let first = host
        .grant("aws-dev", &action(GROUP, "group-policy", POWER_USER))
        .await;
    assert!(
        matches!(first.result, Ok(GrantOutcome::Granted)),
        "{:?}",
        first.result
    );
    let again = host
        .grant("aws-dev", &action(GROUP, "group-policy", POWER_USER))
        .await;
    assert!(
        matches!(again.result, Ok(GrantOutcome::AlreadyPresent)),
        "{:?}",
        again.result
    );
}
