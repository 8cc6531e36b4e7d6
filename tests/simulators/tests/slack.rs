//! The Slack simulator over real HTTP, the way a connector sees it.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use portcullis_simulators::slack::{SLACK_DEMO_CHANNEL, SLACK_DEMO_USERGROUP};
use portcullis_simulators::{SLACK_DEMO_TOKEN, SlackSimulator, slack_demo};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const BOB: &str = "U0100BOBBY";

fn url(sim: &SlackSimulator, method: &str) -> String {
    format!("{}/{method}", sim.base_url())
}

async fn body(response: Response) -> Value {
    response.json().await.unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn tokens_are_checked_the_slack_way_with_http_200() {
    let sim = slack_demo().await.unwrap();
    let client = Client::new();
    let none = client.post(url(&sim, "auth.test")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::OK);
    assert_eq!(
        body(none).await,
        json!({"ok": false, "error": "not_authed"})
    );
    let wrong = client
        .post(url(&sim, "auth.test"))
        .bearer_auth("xoxb-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(body(wrong).await["error"], "invalid_auth");
    let right = client
        .post(url(&sim, "auth.test"))
        .bearer_auth(SLACK_DEMO_TOKEN)
        .send()
        .await
        .unwrap();
    let scopes = header(&right, "x-oauth-scopes").unwrap().to_owned();
    assert!(scopes.contains("channels:manage,"), "{scopes}");
    assert!(header(&right, "x-slack-req-id").is_some());
    let me = body(right).await;
    assert_eq!(me["ok"], true);
    assert_eq!(me["user_id"], "U0100PBOT1");
    assert_eq!(me["bot_id"], "B0100PBOT1");

    let unknown = client
        .post(url(&sim, "conversations.nope"))
        .bearer_auth(SLACK_DEMO_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(unknown).await["error"], "unknown_method");
}

#[tokio::test]
async fn form_and_json_bodies_both_invite_and_refusals_are_ok_false() {
    let sim = slack_demo().await.unwrap();
    let client = Client::new();
    let form = client
        .post(url(&sim, "conversations.invite"))
        .bearer_auth(SLACK_DEMO_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("channel={SLACK_DEMO_CHANNEL}&users={BOB}"))
        .send()
        .await
        .unwrap();
    let form = body(form).await;
    assert_eq!(form["ok"], true, "{form}");
    assert_eq!(form["channel"]["id"], SLACK_DEMO_CHANNEL);

    // Same again, as JSON without a charset: refused, with Slack's warning.
    let again = client
        .post(url(&sim, "conversations.invite"))
        .bearer_auth(SLACK_DEMO_TOKEN)
        .header("content-type", "application/json")
        .body(json!({"channel": SLACK_DEMO_CHANNEL, "users": [BOB]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again = body(again).await;
    assert_eq!(again["error"], "already_in_channel");
    assert_eq!(
        again["errors"],
        json!([{"user": BOB, "ok": false, "error": "already_in_channel"}])
    );
    assert_eq!(again["warning"], "missing_charset");

    let kick = |user: &'static str| {
        client
            .post(url(&sim, "conversations.kick"))
            .bearer_auth(SLACK_DEMO_TOKEN)
            .header("content-type", "application/json; charset=utf-8")
            .body(json!({"channel": SLACK_DEMO_CHANNEL, "user": user}).to_string())
            .send()
    };
    assert_eq!(body(kick(BOB).await.unwrap()).await, json!({"ok": true}));
    assert_eq!(
        body(kick(BOB).await.unwrap()).await["error"],
        "not_in_channel"
    );
    assert_eq!(
        body(kick("U0100PBOT1").await.unwrap()).await["error"],
        "cant_kick_self"
    );
}

#[tokio::test]
async fn members_page_with_base64_cursors_ending_in_an_empty_one() {
    let sim = slack_demo().await.unwrap();
    for id in ["U0100ALICE", BOB, "U0100CAROL"] {
        sim.add_member(SLACK_DEMO_CHANNEL, id);
    }
    let client = Client::new();
    let mut cursor = String::new();
    let mut members = Vec::new();
    for _ in 0..5 {
        let page = client
            .get(url(&sim, "conversations.members"))
            .bearer_auth(SLACK_DEMO_TOKEN)
            .query(&[
                ("channel", SLACK_DEMO_CHANNEL),
                ("limit", "3"),
                ("cursor", &cursor),
            ])
            .send()
            .await
            .unwrap();
        let page = body(page).await;
        members.extend(page["members"].as_array().unwrap().clone());
        cursor = page["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        if cursor.is_empty() {
            break;
        }
        let decoded = STANDARD.decode(&cursor).unwrap();
        assert!(decoded.starts_with(b"user:U"), "{cursor}");
    }
    assert_eq!(members.len(), 4, "three people and the bot: {members:?}");
    let bad = client
        .get(url(&sim, "conversations.members"))
        .bearer_auth(SLACK_DEMO_TOKEN)
        .query(&[("channel", SLACK_DEMO_CHANNEL), ("cursor", "garbage")])
        .send()
        .await
        .unwrap();
    assert_eq!(body(bad).await["error"], "invalid_cursor");
}

#[tokio::test]
async fn an_exhausted_budget_answers_429_with_retry_after() {
    let sim = slack_demo().await.unwrap();
    sim.set_rate_limit("usergroups.users.list", 2, Duration::from_secs(60));
    let client = Client::new();
    let call = || {
        client
            .get(url(&sim, "usergroups.users.list"))
            .bearer_auth(SLACK_DEMO_TOKEN)
            .query(&[("usergroup", SLACK_DEMO_USERGROUP)])
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            body(call().await.unwrap()).await["users"],
            json!(["U0100ALICE"])
        );
    }
    let limited = call().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(&limited, "retry-after").unwrap().parse().unwrap();
    assert_eq!(Some(wait), sim.last_retry_after("usergroups.users.list"));
    assert!((1..=60).contains(&wait));
    assert_eq!(
        body(limited).await,
        json!({"ok": false, "error": "ratelimited"})
    );
    // Other methods have their own budgets (none here).
    let other = client
        .post(url(&sim, "auth.test"))
        .bearer_auth(SLACK_DEMO_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn usergroup_updates_replace_the_list_and_cannot_empty_it() {
    let sim = slack_demo().await.unwrap();
    let client = Client::new();
    let update = |users: &'static str| {
        client
            .post(url(&sim, "usergroups.users.update"))
            .bearer_auth(SLACK_DEMO_TOKEN)
            .form(&[("usergroup", SLACK_DEMO_USERGROUP), ("users", users)])
            .send()
    };
    let replaced = body(update("U0100BOBBY,U0100CAROL").await.unwrap()).await;
    assert_eq!(replaced["usergroup"]["users"], json!([BOB, "U0100CAROL"]));
    assert_eq!(
        sim.usergroup_members(SLACK_DEMO_USERGROUP),
        [BOB, "U0100CAROL"]
    );
    assert_eq!(
        body(update("").await.unwrap()).await["error"],
        "no_users_provided"
    );
    assert_eq!(
        body(update("U0100PBOT1").await.unwrap()).await["error"],
        "invalid_users"
    );
    assert_eq!(
        sim.usergroup_members(SLACK_DEMO_USERGROUP),
        [BOB, "U0100CAROL"]
    );
}

#[tokio::test]
async fn missing_scopes_are_named() {
    let sim = slack_demo().await.unwrap();
    sim.add_bot("xoxb-reader", "U0100RDONL", "reader", &["channels:read"]);
    sim.add_bot_to_channel(SLACK_DEMO_CHANNEL);
    let refused = Client::new()
        .post(url(&sim, "conversations.invite"))
        .bearer_auth("xoxb-reader")
        .form(&[("channel", SLACK_DEMO_CHANNEL), ("users", BOB)])
        .send()
        .await
        .unwrap();
    assert!(
        header(&refused, "x-accepted-oauth-scopes")
            .unwrap()
            .contains("channels:manage")
    );
    assert_eq!(
        body(refused).await,
        json!({"ok": false, "error": "missing_scope", "needed": "channels:manage", "provided": "channels:read"})
    );
}
