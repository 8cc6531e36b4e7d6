//! Fault injection over real HTTP, against GitHub and Slack: transport faults in each
//! vendor's shape, dropped and lagging writes, `clear()`, the enforced rate.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::time::{Duration, Instant};

use portcullis_simulators::slack::{SLACK_DEMO_CHANNEL, SLACK_DEMO_USERGROUP};
use portcullis_simulators::{
    GITHUB_DEMO_TOKEN, GithubSimulator, SLACK_DEMO_TOKEN, SlackSimulator, github_demo, slack_demo,
};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const REPO: &str = "acme/platform-api";
const ALICE: &str = "U0100ALICE";
const BOB: &str = "U0100BOBBY";

/// Polls `condition` until it holds or `within` has passed; whether it held.
async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn client() -> Client {
    Client::builder()
        .user_agent("portcullis-tests/1")
        .build()
        .unwrap()
}

// --- GitHub -----------------------------------------------------------------------------

async fn gh(client: &Client, sim: &GithubSimulator, method: Method, path: &str) -> Response {
    gh_try(client, sim, method, path, None).await.unwrap()
}

async fn gh_try(
    client: &Client,
    sim: &GithubSimulator,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Result<Response> {
    let mut request = client
        .request(method, format!("{}{path}", sim.base_url()))
        .header("accept", "application/vnd.github+json")
        .bearer_auth(GITHUB_DEMO_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await
}

async fn gh_invite(client: &Client, sim: &GithubSimulator, login: &str) -> Response {
    gh_try(
        client,
        sim,
        Method::PUT,
        &format!("/repos/{REPO}/collaborators/{login}"),
        Some(json!({ "permission": "push" })),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn github_rate_limits_have_both_of_githubs_shapes() {
    let sim = github_demo().await.unwrap();
    let client = client();
    sim.faults()
        .rate_limit_storm(1, Some(Duration::from_millis(1500)));
    let secondary = gh(&client, &sim, Method::GET, "/user").await;
    assert_eq!(secondary.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&secondary, "retry-after"), Some("2"));
    let body: Value = secondary.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit")
    );

    sim.faults().rate_limit_storm(1, None);
    let primary = gh(&client, &sim, Method::GET, "/user").await;
    assert_eq!(primary.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&primary, "retry-after"), None);
    assert_eq!(header(&primary, "x-ratelimit-remaining"), Some("0"));
    let reset: u64 = header(&primary, "x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset >= now && reset <= now + 2, "reset {reset}, now {now}");
    let body: Value = primary.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded")
    );

    // The storm is over: normal answers.
    assert_eq!(
        gh(&client, &sim, Method::GET, "/user").await.status(),
        StatusCode::OK
    );
    assert_eq!(sim.faults().over_limit_responses(), 2);
    assert_eq!(sim.faults().arrivals().len(), 3);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 403, 200]);
}

#[tokio::test]
async fn github_server_errors_are_502_then_503_with_json() {
    let sim = github_demo().await.unwrap();
    let client = client();
    sim.faults().server_errors(2);
    let first = gh(&client, &sim, Method::GET, "/user").await;
    assert_eq!(first.status(), StatusCode::BAD_GATEWAY);
    assert!(header(&first, "x-github-request-id").is_some());
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["message"], "Server Error");
    let second = gh(&client, &sim, Method::GET, "/user").await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = second.json().await.unwrap();
    assert!(body["message"].is_string());
    assert_eq!(
        gh(&client, &sim, Method::GET, "/user").await.status(),
        StatusCode::OK
    );
    assert_eq!(sim.faults().over_limit_responses(), 0);
}

#[tokio::test]
async fn github_reset_connection_is_a_client_error_not_a_status() {
    let sim = github_demo().await.unwrap();
    let client = client();
    sim.faults().reset_connections(2);
    for _ in 0..2 {
        let error = gh_try(&client, &sim, Method::GET, "/user", None)
            .await
            .expect_err("a reset connection must not answer");
        assert!(!error.is_status(), "{error:?}");
        assert!(error.status().is_none(), "{error:?}");
    }
    // A write on a reset connection never reaches the simulator.
    sim.faults().reset_connections(1);
    assert!(
        gh_try(
            &client,
            &sim,
            Method::PUT,
            &format!("/repos/{REPO}/collaborators/octocat"),
            Some(json!({ "permission": "push" })),
        )
        .await
        .is_err()
    );
    assert_eq!(sim.pending_invitation(REPO, "octocat"), None);
    assert_eq!(
        gh(&client, &sim, Method::GET, "/user").await.status(),
        StatusCode::OK
    );
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 0, 0, 200]);
}

#[tokio::test]
async fn github_slow_response_exceeds_a_client_timeout_but_the_write_lands() {
    let sim = github_demo().await.unwrap();
    let client = Client::builder()
        .user_agent("portcullis-tests/1")
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    sim.faults().slow_responses(1, Duration::from_secs(2));
    let error = client
        .put(format!(
            "{}/repos/{REPO}/collaborators/octocat",
            sim.base_url()
        ))
        .bearer_auth(GITHUB_DEMO_TOKEN)
        .json(&json!({ "permission": "push" }))
        .send()
        .await
        .expect_err("slower than the timeout");
    assert!(error.is_timeout(), "{error:?}");
    // The server ran the write before it stalled.
    assert!(
        eventually(Duration::from_secs(5), || sim
            .pending_invitation(REPO, "octocat")
            .is_some())
        .await
    );
    // Only one response was slow.
    let started = Instant::now();
    let fast = gh_try(&client, &sim, Method::GET, "/user", None)
        .await
        .unwrap();
    assert_eq!(fast.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn github_dropped_writes_answer_success_and_change_nothing() {
    let sim = github_demo().await.unwrap();
    let client = client();
    sim.set_collaborator(REPO, "hubot", "read");
    sim.faults().drop_writes(2);

    // A refused write (unknown user) answers its error and uses no drop.
    assert_eq!(
        gh_invite(&client, &sim, "nobody-here").await.status(),
        StatusCode::NOT_FOUND
    );

    let invited = gh_invite(&client, &sim, "octocat").await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let invitation: Value = invited.json().await.unwrap();
    assert_eq!(invitation["invitee"]["login"], "octocat");
    assert_eq!(invitation["permissions"], "write");
    assert_eq!(sim.pending_invitation(REPO, "octocat"), None);

    let removed = gh(
        &client,
        &sim,
        Method::DELETE,
        &format!("/repos/{REPO}/collaborators/hubot"),
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.collaborator_role(REPO, "hubot").as_deref(),
        Some("read")
    );

    // Read-back shows the truth.
    let permission = gh(
        &client,
        &sim,
        Method::GET,
        &format!("/repos/{REPO}/collaborators/hubot/permission"),
    )
    .await;
    let permission: Value = permission.json().await.unwrap();
    assert_eq!(permission["role_name"], "read");

    // Drops used up: writes apply again.
    assert_eq!(
        gh_invite(&client, &sim, "octocat").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        sim.pending_invitation(REPO, "octocat").as_deref(),
        Some("write")
    );
    let id = sim.invitation_id(REPO, "octocat").unwrap();

    // Invitation updates and deletes are writes too.
    sim.faults().drop_writes(2);
    let patched = gh_try(
        &client,
        &sim,
        Method::PATCH,
        &format!("/repos/{REPO}/invitations/{id}"),
        Some(json!({ "permissions": "admin" })),
    )
    .await
    .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["permissions"], "admin");
    assert_eq!(
        sim.pending_invitation(REPO, "octocat").as_deref(),
        Some("write")
    );
    let deleted = gh(
        &client,
        &sim,
        Method::DELETE,
        &format!("/repos/{REPO}/invitations/{id}"),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.invitation_id(REPO, "octocat"), Some(id));
}

#[tokio::test]
async fn github_lagged_writes_appear_after_the_lag() {
    let sim = github_demo().await.unwrap();
    let client = client();
    let lag = Duration::from_millis(300);
    sim.faults().lag_writes(lag);
    let sent = Instant::now();
    let invited = gh_invite(&client, &sim, "octocat").await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    assert!(sent.elapsed() < lag, "answered at once");
    assert_eq!(sim.pending_invitation(REPO, "octocat"), None);
    assert!(
        eventually(Duration::from_secs(5), || sim
            .pending_invitation(REPO, "octocat")
            .is_some())
        .await
    );
    assert!(sent.elapsed() >= lag);

    sim.set_collaborator(REPO, "hubot", "write");
    let sent = Instant::now();
    let removed = gh(
        &client,
        &sim,
        Method::DELETE,
        &format!("/repos/{REPO}/collaborators/hubot"),
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert!(sim.collaborator_role(REPO, "hubot").is_some());
    assert!(
        eventually(Duration::from_secs(5), || sim
            .collaborator_role(REPO, "hubot")
            .is_none())
        .await
    );
    assert!(sent.elapsed() >= lag);

    // clear() stops lagging new writes.
    sim.faults().clear();
    assert_eq!(
        gh_invite(&client, &sim, "monalisa").await.status(),
        StatusCode::CREATED
    );
    assert!(sim.pending_invitation(REPO, "monalisa").is_some());
}

#[tokio::test]
async fn github_clear_restores_normal_answers() {
    let sim = github_demo().await.unwrap();
    let client = client();
    let faults = sim.faults().clone();
    faults.server_errors(5);
    faults.rate_limit_storm(5, None);
    faults.reset_connections(5);
    faults.slow_responses(5, Duration::from_secs(30));
    faults.drop_writes(5);
    faults.lag_writes(Duration::from_secs(30));
    faults.enforce_rate(0);
    faults.clear();
    for _ in 0..3 {
        assert_eq!(
            gh(&client, &sim, Method::GET, "/user").await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        gh_invite(&client, &sim, "octocat").await.status(),
        StatusCode::CREATED
    );
    assert!(sim.pending_invitation(REPO, "octocat").is_some());
    assert_eq!(faults.over_limit_responses(), 0);
}

#[tokio::test]
async fn github_enforced_rate_answers_429_beyond_it_and_counts() {
    let sim = github_demo().await.unwrap();
    let client = client();
    sim.faults().enforce_rate(2);
    let started = Instant::now();
    let mut limited = 0_u64;
    for _ in 0..20 {
        let response = gh(&client, &sim, Method::GET, "/user").await;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let wait: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
                assert_eq!(wait, 1);
            }
            other => panic!("unexpected {other}"),
        }
    }
    let windows = started.elapsed().as_secs() + 1;
    assert!(limited >= 20 - 2 * windows, "{limited} limited");
    assert_eq!(sim.faults().over_limit_responses(), limited);
    assert_eq!(sim.faults().arrivals().len(), 20);
    // Once the window has passed, requests get through again.
    let mut passed = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !passed && Instant::now() < deadline {
        passed = gh(&client, &sim, Method::GET, "/user").await.status() == StatusCode::OK;
        if !passed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(passed);
    sim.faults().clear();
    for _ in 0..5 {
        assert_eq!(
            gh(&client, &sim, Method::GET, "/user").await.status(),
            StatusCode::OK
        );
    }
}

// --- Slack ------------------------------------------------------------------------------

async fn slack_try(
    client: &Client,
    sim: &SlackSimulator,
    method: &str,
    form: &str,
) -> reqwest::Result<Response> {
    client
        .post(format!("{}/{method}", sim.base_url()))
        .bearer_auth(SLACK_DEMO_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
}

async fn slack(client: &Client, sim: &SlackSimulator, method: &str, form: &str) -> Response {
    slack_try(client, sim, method, form).await.unwrap()
}

async fn slack_ok(client: &Client, sim: &SlackSimulator, method: &str, form: &str) -> Value {
    let response = slack(client, sim, method, form).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ok"], true, "{body}");
    body
}

#[tokio::test]
async fn slack_rate_limit_is_429_ratelimited_with_optional_retry_after() {
    let sim = slack_demo().await.unwrap();
    let client = client();
    sim.faults()
        .rate_limit_storm(2, Some(Duration::from_millis(1200)));
    for _ in 0..2 {
        let response = slack(&client, &sim, "auth.test", "").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "retry-after"), Some("2"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"ok": false, "error": "ratelimited"}));
    }
    sim.faults().rate_limit_storm(1, None);
    let response = slack(&client, &sim, "auth.test", "").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), None);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "ratelimited");
    slack_ok(&client, &sim, "auth.test", "").await;
    assert_eq!(sim.faults().over_limit_responses(), 3);
}

#[tokio::test]
async fn slack_server_error_is_a_plain_503() {
    let sim = slack_demo().await.unwrap();
    let client = client();
    sim.faults().server_errors(1);
    let response = slack(&client, &sim, "auth.test", "").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(!response.text().await.unwrap().is_empty());
    slack_ok(&client, &sim, "auth.test", "").await;
}

#[tokio::test]
async fn slack_reset_connection_is_a_client_error() {
    let sim = slack_demo().await.unwrap();
    let client = client();
    sim.faults().reset_connections(1);
    let error = slack_try(
        &client,
        &sim,
        "conversations.invite",
        &format!("channel={SLACK_DEMO_CHANNEL}&users={ALICE}"),
    )
    .await
    .expect_err("a reset connection must not answer");
    assert!(error.status().is_none(), "{error:?}");
    assert!(
        !sim.channel_members(SLACK_DEMO_CHANNEL)
            .contains(&ALICE.to_owned())
    );
    slack_ok(&client, &sim, "auth.test", "").await;
}

#[tokio::test]
async fn slack_slow_response_exceeds_a_client_timeout() {
    let sim = slack_demo().await.unwrap();
    let client = Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    sim.faults().slow_responses(1, Duration::from_secs(2));
    let error = slack_try(&client, &sim, "auth.test", "")
        .await
        .expect_err("slower than the timeout");
    assert!(error.is_timeout(), "{error:?}");
    slack_ok(&client, &sim, "auth.test", "").await;
}

#[tokio::test]
async fn slack_dropped_writes_answer_ok_and_change_nothing() {
    let sim = slack_demo().await.unwrap();
    let client = client();
    sim.add_member(SLACK_DEMO_CHANNEL, BOB);
    sim.faults().drop_writes(3);

    // A refused write answers its error and uses no drop.
    let refused = slack(
        &client,
        &sim,
        "conversations.invite",
        &format!("channel=C0NOSUCH&users={ALICE}"),
    )
    .await;
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "channel_not_found");

    let invited = slack_ok(
        &client,
        &sim,
        "conversations.invite",
        &format!("channel={SLACK_DEMO_CHANNEL}&users={ALICE}"),
    )
    .await;
    assert_eq!(invited["channel"]["id"], SLACK_DEMO_CHANNEL);
    assert!(
        !sim.channel_members(SLACK_DEMO_CHANNEL)
            .contains(&ALICE.to_owned())
    );

    slack_ok(
        &client,
        &sim,
        "conversations.kick",
        &format!("channel={SLACK_DEMO_CHANNEL}&user={BOB}"),
    )
    .await;
    assert!(
        sim.channel_members(SLACK_DEMO_CHANNEL)
            .contains(&BOB.to_owned())
    );

    let updated = slack_ok(
        &client,
        &sim,
        "usergroups.users.update",
        &format!("usergroup={SLACK_DEMO_USERGROUP}&users={ALICE},{BOB}"),
    )
    .await;
    assert_eq!(updated["usergroup"]["users"], json!([ALICE, BOB]));
    assert_eq!(sim.usergroup_members(SLACK_DEMO_USERGROUP), [ALICE]);

    // Read-back shows the truth.
    let members = slack_ok(
        &client,
        &sim,
        "conversations.members",
        &format!("channel={SLACK_DEMO_CHANNEL}"),
    )
    .await;
    assert!(
        !members["members"]
            .as_array()
            .unwrap()
            .contains(&json!(ALICE))
    );

    // Drops used up: writes apply again.
    slack_ok(
        &client,
        &sim,
        "conversations.invite",
        &format!("channel={SLACK_DEMO_CHANNEL}&users={ALICE}"),
    )
    .await;
    assert!(
        sim.channel_members(SLACK_DEMO_CHANNEL)
            .contains(&ALICE.to_owned())
    );
}

#[tokio::test]
async fn slack_lagged_writes_appear_after_the_lag() {
    let sim = slack_demo().await.unwrap();
    let client = client();
    let lag = Duration::from_millis(300);
    sim.faults().lag_writes(lag);
    let sent = Instant::now();
    slack_ok(
        &client,
        &sim,
        "conversations.invite",
        &format!("channel={SLACK_DEMO_CHANNEL}&users={ALICE}"),
    )
    .await;
    slack_ok(
        &client,
        &sim,
        "usergroups.users.update",
        &format!("usergroup={SLACK_DEMO_USERGROUP}&users={BOB}"),
    )
    .await;
    assert!(sent.elapsed() < lag, "answered at once");
    assert!(
        !sim.channel_members(SLACK_DEMO_CHANNEL)
            .contains(&ALICE.to_owned())
    );
    assert_eq!(sim.usergroup_members(SLACK_DEMO_USERGROUP), [ALICE]);
    assert!(
        eventually(Duration::from_secs(5), || {
            sim.channel_members(SLACK_DEMO_CHANNEL)
                .contains(&ALICE.to_owned())
                && sim.usergroup_members(SLACK_DEMO_USERGROUP) == [BOB]
        })
        .await
    );
    assert!(sent.elapsed() >= lag);
}

#[tokio::test]
async fn slack_enforced_rate_counts_and_clear_lifts_it() {
    let sim = slack_demo().await.unwrap();
    let client = client();
    sim.faults().enforce_rate(3);
    let started = Instant::now();
    let mut limited = 0_u64;
    for _ in 0..20 {
        let response = slack(&client, &sim, "auth.test", "").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert_eq!(header(&response, "retry-after"), Some("1"));
        } else {
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    let windows = started.elapsed().as_secs() + 1;
    assert!(limited >= 20 - 3 * windows, "{limited} limited");
    assert_eq!(sim.faults().over_limit_responses(), limited);
    sim.faults().clear();
    for _ in 0..10 {
        slack_ok(&client, &sim, "auth.test", "").await;
    }
    assert_eq!(sim.faults().over_limit_responses(), limited);
    assert_eq!(sim.faults().arrivals().len(), 30);
}
