//! The AWS IAM plugin, as a real wasm component, against a real `moto_server` (PyPI
//! `moto[server]`) with IAM authentication on: every request the host sends is SigV4-signed
//! with the app's secrets and moto checks both the signature and the caller's IAM policy.
//!
//! Bootstrap: moto starts with `INITIAL_NO_AUTH_ACTION_COUNT=0` (nothing unauthenticated).
//! Its control endpoint `POST /moto-api/reset-auth` (body `N`, the mechanism behind moto's
//! own `set_initial_no_auth_action_count`) then lets exactly the next N IAM actions
//! through unchecked. The test spends them on creating the `admin` user, its access key and
//! an inline `iam:*` policy, plus the target user and group, and then proves the budget is
//! spent: a further request with a credential moto does not know is refused. Moto routes an
//! IAM request by the service in the `Authorization` credential scope, so the bootstrap
//! requests carry a SigV4-shaped header with a made-up key that moto does not verify while
//! the budget lasts.

use portcullis::model::{ConnectorError, Entitlement, GrantOutcome, Observed, Subject};
use portcullis::{CallError, Host};
use portcullis_e2e::peers::{self, PeerProcess};
use portcullis_e2e::{app, host, plugins};

const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const USER: &str = "alice";
const GROUP: &str = "developers";

/// The unchecked IAM actions the bootstrap needs (see the module docs).
const BOOTSTRAP_ACTIONS: usize = 5;

/// A moto server with an `admin` access key allowed `iam:*`, user `alice` and group
/// `developers`.
struct Moto {
    peer: PeerProcess,
    key_id: String,
    secret: String,
}

impl Moto {
    async fn start() -> Moto {
        let peer = peers::moto_server();
        let client = reqwest::Client::new();
        let reset = client
            .post(format!("{}/moto-api/reset-auth", peer.base_url()))
            .header("content-type", "text/plain")
            .body(BOOTSTRAP_ACTIONS.to_string())
            .send()
            .await
            .expect("moto answers reset-auth");
        assert!(
            reset.status().is_success(),
            "reset-auth: {}",
            reset.status()
        );

        let admin_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;
        let steps: [&[(&str, &str)]; BOOTSTRAP_ACTIONS] = [
            &[("Action", "CreateUser"), ("UserName", "admin")],
            &[("Action", "CreateAccessKey"), ("UserName", "admin")],
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", "admin"),
                ("PolicyName", "iam-admin"),
                ("PolicyDocument", admin_policy),
            ],
            &[("Action", "CreateUser"), ("UserName", USER)],
            &[("Action", "CreateGroup"), ("GroupName", GROUP)],
        ];
        let mut key = None;
        for params in steps {
            let (status, body) = unverified_call(&client, &peer, params).await;
            assert_eq!(status, 200, "{params:?}: {body}");
            if params[0].1 == "CreateAccessKey" {
                key = Some((
                    element(&body, "AccessKeyId").expect("AccessKeyId"),
                    element(&body, "SecretAccessKey").expect("SecretAccessKey"),
                ));
            }
        }
        // The budget is spent: from here on moto verifies every request.
        let (status, body) = unverified_call(
            &client,
            &peer,
            &[("Action", "CreateUser"), ("UserName", "mallory")],
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("InvalidClientTokenId"), "{body}");

        let (key_id, secret) = key.expect("the bootstrap created an access key");
        Moto {
            peer,
            key_id,
            secret,
        }
    }

    fn host(&self) -> Host {
        self.host_with_secret(&self.secret)
    }

    fn host_with_secret(&self, secret: &str) -> Host {
        let config = app(
            plugins::AWS_IAM,
            self.peer.base_url(),
            &[
                ("access-key-id", &self.key_id),
                ("secret-access-key", secret),
            ],
        );
        host(vec![("aws-dev", config)]).0
    }
}

/// An IAM Query call with a SigV4-shaped `Authorization` header whose key moto does not
/// know and whose signature is not one: it routes the request to IAM and succeeds only
/// while moto's unauthenticated budget lasts.
async fn unverified_call(
    client: &reqwest::Client,
    peer: &PeerProcess,
    params: &[(&str, &str)],
) -> (u16, String) {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2010-05-08")];
    form.extend_from_slice(params);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = client
        .post(format!("{}/", peer.base_url()))
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIABOOTSTRAPUNKNOWN/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body)
        .send()
        .await
        .expect("moto answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("moto body"))
}

/// The text of the first `<name>` element (the test only reads flat, known answers).
fn element(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + body[start..].find(&format!("</{name}>"))?;
    Some(body[start..end].to_owned())
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
        moto.peer.output()
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
