//! A real `moto_server` with IAM signature checking on, bootstrapped with an `admin` access
//! key allowed `iam:*` and the users and groups a test needs.
//!
//! Bootstrap: moto starts with `INITIAL_NO_AUTH_ACTION_COUNT=0` (nothing unauthenticated).
//! Its control endpoint `POST /moto-api/reset-auth` (body `N`, the mechanism behind moto's
//! own `set_initial_no_auth_action_count`) then lets exactly the next N IAM actions
//! through unchecked. [`Moto::start`] spends them on creating the `admin` user, its access
//! key and an inline `iam:*` policy, plus the requested users and groups, and then proves
//! the budget is spent: a further request with a credential moto does not know is refused.
//! Moto routes an IAM request by the service in the `Authorization` credential scope, so
//! the bootstrap requests carry a SigV4-shaped header with a made-up key that moto does not
//! verify while the budget lasts.

use crate::peers::{self, PeerProcess};

/// The unchecked IAM actions the bootstrap needs besides one per user and group.
const ADMIN_ACTIONS: usize = 3;

/// A moto server with an `admin` access key allowed `iam:*`.
#[derive(Debug)]
pub struct Moto {
    pub peer: PeerProcess,
    /// The admin's access key id and secret access key (the app's secrets).
    pub key_id: String,
    pub secret: String,
}

impl Moto {
    /// Starts moto and creates the admin key, then IAM users `users` and groups `groups`.
    ///
    /// # Panics
    /// When moto cannot be started or refuses a bootstrap step (test setup).
    pub async fn start(users: &[&str], groups: &[&str]) -> Moto {
        let peer = peers::moto_server();
        let client = reqwest::Client::new();
        let budget = ADMIN_ACTIONS + users.len() + groups.len();
        let reset = client
            .post(format!("{}/moto-api/reset-auth", peer.base_url()))
            .header("content-type", "text/plain")
            .body(budget.to_string())
            .send()
            .await
            .expect("moto answers reset-auth");
        assert!(
            reset.status().is_success(),
            "reset-auth: {}",
            reset.status()
        );

        let admin_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;
        let mut steps: Vec<Vec<(&str, &str)>> = vec![
            vec![("Action", "CreateUser"), ("UserName", "admin")],
            vec![("Action", "CreateAccessKey"), ("UserName", "admin")],
            vec![
                ("Action", "PutUserPolicy"),
                ("UserName", "admin"),
                ("PolicyName", "iam-admin"),
                ("PolicyDocument", admin_policy),
            ],
        ];
        steps.extend(
            users
                .iter()
                .map(|u| vec![("Action", "CreateUser"), ("UserName", *u)]),
        );
        steps.extend(
            groups
                .iter()
                .map(|g| vec![("Action", "CreateGroup"), ("GroupName", *g)]),
        );
        let mut key = None;
        for params in &steps {
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

    /// The app's secrets: `access-key-id` and `secret-access-key`.
    pub fn secrets(&self) -> [(&'static str, &str); 2] {
        [
            ("access-key-id", self.key_id.as_str()),
            ("secret-access-key", self.secret.as_str()),
        ]
    }
}

/// An IAM Query call with a SigV4-shaped `Authorization` header whose key moto does not
/// know and whose signature is not one: it routes the request to IAM and succeeds only
/// while moto's unauthenticated budget lasts.
pub async fn unverified_call(
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

/// The text of the first `<name>` element (only flat, known answers are read).
pub fn element(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + body[start..].find(&format!("</{name}>"))?;
    Some(body[start..end].to_owned())
}
