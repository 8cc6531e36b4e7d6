//! The joiner scenario of `examples/josh/actions.toml`, shared by `tests/josh.rs` and
//! `benches/engine.rs`: Josh, Platform Engineer, gets 24 permissions across five
//! applications (GitHub, Jira, Slack, AWS dev + staging, Google Drive in place of Figma).
//!
//! [`Josh::start`] starts the GitHub, Jira, Slack and Drive simulators (their demo seeds
//! plus what the scenario adds) and a real `moto_server` with signature checking, with Josh
//! seeded in each under that application's own id for him. AWS requests go through
//! [`DelayProxy`], an in-process HTTP proxy in front of moto that adds a settable latency
//! (zero unless [`Josh::set_latency`] says otherwise), so the latency benchmark delays moto
//! the same way the simulators' `slow_responses` fault delays them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use portcullis::Host;
use portcullis::config::AppConfig;
use portcullis_simulators::github::GITHUB_DEMO_BOT;
use portcullis_simulators::{
    DriveSimulator, GDRIVE_DEMO_TOKEN, GITHUB_DEMO_TOKEN, GithubSimulator, JIRA_DEMO_EMAIL,
    JIRA_DEMO_TOKEN, JiraSimulator, SLACK_DEMO_TOKEN, SlackSimulator, gdrive_demo, github_demo,
    jira_demo, slack_demo,
};

use crate::moto::Moto;
use crate::{app, host, plugins};

/// Josh's GitHub login.
pub const GITHUB_LOGIN: &str = "josh-platform";
/// Josh's Atlassian accountId.
pub const JIRA_ACCOUNT: &str = "712020:6f0a3c9e-2b4d-4e8a-9c1f-0a5b7d3e9f21";
/// Josh's Slack user id (e-mail `josh@acme.example`).
pub const SLACK_USER: &str = "U0200JOSH1";
/// Josh's IAM user name (the same account in dev and staging: both apps use one moto).
pub const IAM_USER: &str = "josh";
/// Josh's Google account.
pub const EMAIL: &str = "josh@acme.example";

/// Repositories the scenario adds to the demo's three.
pub const EXTRA_REPOS: [&str; 5] = [
    "acme/platform-terraform",
    "acme/platform-k8s",
    "acme/platform-observability",
    "acme/service-catalog",
    "acme/platform-runbooks",
];
/// Slack channels the scenario adds to the demo's `#platform-team` and
/// `#incident-response`: (id, name).
pub const EXTRA_CHANNELS: [(&str, &str); 4] = [
    ("C0200ALLHS", "engineering-all-hands"),
    ("C0200ONCAL", "platform-oncall"),
    ("C0200ALRTS", "platform-alerts"),
    ("C0200DPLOY", "deploys"),
];
/// Drive files the scenario adds (design work that would live in Figma): (id, name).
pub const EXTRA_FILES: [(&str, &str); 3] = [
    (
        "1PlatformDesignSystem0aBcDeFgHiJkL",
        "Platform design system",
    ),
    (
        "1PlatformArchDiagrams0aBcDeFgHiJkL",
        "Platform architecture diagrams",
    ),
    ("1IncidentRunbooks000aBcDeFgHiJkLmN", "Incident runbooks"),
];
/// Jira roles the scenario adds to both demo projects (PLAT "Platform Team", OPS
/// "Engineering Ops"; the demo has Administrators, Developers, Viewers).
pub const EXTRA_ROLES: [&str; 1] = ["Reporters"];

/// The apps `examples/josh/actions.toml` names. There is deliberately no production AWS
/// app: Josh gets no prod access, and nothing can be granted to an app that is not
/// configured.
pub const APPS: [&str; 6] = [
    "github",
    "jira",
    "slack",
    "gdrive",
    "aws-dev",
    "aws-staging",
];

/// `examples/josh/actions.toml`.
pub fn actions_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/josh/actions.toml")
}

/// Every service of the scenario, seeded, with Josh in each.
#[derive(Debug)]
pub struct Josh {
    pub github: GithubSimulator,
    pub jira: JiraSimulator,
    pub slack: SlackSimulator,
    pub gdrive: DriveSimulator,
    pub moto: Moto,
    /// In front of moto; the AWS apps point here.
    pub moto_proxy: DelayProxy,
}

impl Josh {
    /// Starts and seeds everything. Needs a tokio runtime.
    ///
    /// # Panics
    /// When a simulator or moto cannot start (test setup).
    pub async fn start() -> Josh {
        let github = github_demo().await.expect("GitHub simulator starts");
        github.add_user(GITHUB_LOGIN);
        for repo in EXTRA_REPOS {
            github.add_repo(repo);
            github.set_collaborator(repo, GITHUB_DEMO_BOT, "admin");
        }

        let jira = jira_demo().await.expect("Jira simulator starts");
        jira.add_named_user(JIRA_ACCOUNT, "Josh Park", EMAIL);
        for project in ["PLAT", "OPS"] {
            for role in EXTRA_ROLES {
                jira.add_role(project, role);
            }
        }

        let slack = slack_demo().await.expect("Slack simulator starts");
        slack.add_user(SLACK_USER, "josh");
        for (id, name) in EXTRA_CHANNELS {
            slack.add_channel(id, name, false);
            slack.add_bot_to_channel(id);
        }

        let gdrive = gdrive_demo().await.expect("Drive simulator starts");
        for (id, name) in EXTRA_FILES {
            gdrive.add_file(id, name);
        }

        let moto = Moto::start(&[IAM_USER], &[]).await;
        let moto_proxy = DelayProxy::start(moto.peer.base_url())
            .await
            .expect("the moto proxy starts");
        Josh {
            github,
            jira,
            slack,
            gdrive,
            moto,
            moto_proxy,
        }
    }

    /// The six apps, pointed at the simulators and (through the proxy) moto.
    pub fn apps(&self) -> Vec<(&'static str, AppConfig)> {
        let aws = |name| {
            (
                name,
                app(
                    plugins::AWS_IAM,
                    &self.moto_proxy.base_url(),
                    &self.moto.secrets(),
                ),
            )
        };
        vec![
            (
                "github",
                app(
                    plugins::GITHUB,
                    &self.github.base_url(),
                    &[("token", GITHUB_DEMO_TOKEN)],
                ),
            ),
            (
                "jira",
                app(
                    plugins::JIRA,
                    &self.jira.base_url(),
                    &[("email", JIRA_DEMO_EMAIL), ("api-token", JIRA_DEMO_TOKEN)],
                ),
            ),
            (
                "slack",
                app(
                    plugins::SLACK,
                    &self.slack.base_url(),
                    &[("token", SLACK_DEMO_TOKEN)],
                ),
            ),
            (
                "gdrive",
                app(
                    plugins::GDRIVE,
                    &self.gdrive.base_url(),
                    &[("token", GDRIVE_DEMO_TOKEN)],
                ),
            ),
            aws("aws-dev"),
            aws("aws-staging"),
        ]
    }

    /// A host over [`Self::apps`].
    pub fn host(&self) -> Arc<Host> {
        Arc::new(host(self.apps()).0)
    }

    /// Josh accepts every pending repository invitation, as he would on github.com;
    /// returns how many he accepted.
    pub fn accept_invitations(&self) -> usize {
        portcullis_simulators::github::GITHUB_DEMO_REPOS
            .iter()
            .chain(EXTRA_REPOS.iter())
            .filter(|repo| self.github.accept_invitation(repo, GITHUB_LOGIN))
            .count()
    }
}

/// An HTTP proxy on 127.0.0.1 that waits `delay` before forwarding each request to its
/// upstream, unchanged (method, path, query, headers including `Host`, body), and
/// returns the upstream's answer. Keeping `Host` keeps SigV4 signatures valid: the host
/// signs for the proxy's address and moto checks against the `Host` it receives.
#[derive(Debug)]
pub struct DelayProxy {
    base_url: String,
    delay_us: Arc<AtomicU64>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct ProxyState {
    client: reqwest::Client,
    upstream: String,
    delay_us: Arc<AtomicU64>,
}

/// The largest body the proxy forwards either way.
const PROXY_MAX_BODY: usize = 16 * 1024 * 1024;

impl DelayProxy {
    pub async fn start(upstream: &str) -> std::io::Result<DelayProxy> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let delay_us = Arc::new(AtomicU64::new(0));
        let state = ProxyState {
            client: reqwest::Client::new(),
            upstream: upstream.trim_end_matches('/').to_owned(),
            delay_us: Arc::clone(&delay_us),
        };
        let router = axum::Router::new().fallback(forward).with_state(state);
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stop.await;
            });
            if let Err(e) = serve.await {
                eprintln!("delay proxy stopped: {e}");
            }
        });
        Ok(DelayProxy {
            base_url: format!("http://{addr}"),
            delay_us,
            _shutdown: shutdown,
        })
    }

    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_us.store(
            u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let delay = Duration::from_micros(state.delay_us.load(Ordering::Relaxed));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let bad_gateway = |message: String| {
        let mut response = Response::new(Body::from(message));
        *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
        response
    };
    let body = match to_bytes(body, PROXY_MAX_BODY).await {
        Ok(body) => body,
        Err(e) => return bad_gateway(format!("request body: {e}")),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut upstream = state
        .client
        .request(parts.method, format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) => return bad_gateway(format!("upstream: {e}")),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return bad_gateway(format!("upstream body: {e}")),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// Headers that describe one connection or the framing, which each side sets itself.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "te" | "upgrade"
    )
}

impl Josh {
    /// Every API call of the scenario answers `latency` later (each simulator's
    /// `slow_responses` fault; the moto proxy's delay). Zero turns it off.
    pub fn set_latency(&self, latency: Duration) {
        self.moto_proxy.set_delay(latency);
        let n = if latency.is_zero() { 0 } else { u32::MAX };
        self.github.faults().slow_responses(n, latency);
        self.jira.faults().slow_responses(n, latency);
        self.slack.faults().slow_responses(n, latency);
        self.gdrive.faults().slow_responses(n, latency);
    }
}
