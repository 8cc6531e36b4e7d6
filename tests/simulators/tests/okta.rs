//! The Okta simulator over real HTTP, the way a connector sees it.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use portcullis_simulators::okta::{
    OKTA_DEMO_AD_ADMINS, OKTA_DEMO_ENGINEERING, OKTA_DEMO_USERS, OktaSimulator,
};
use portcullis_simulators::{OKTA_DEMO_TOKEN, okta_demo};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::Value;

async fn send(sim: &OktaSimulator, method: Method, path: &str) -> Response {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}{path}", sim.base_url())
    };
    Client::new()
        .request(method, url)
        .header("authorization", format!("SSWS {OKTA_DEMO_TOKEN}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn membership_writes_are_idempotent_204s_and_app_groups_are_refused() {
    let sim = okta_demo().await.unwrap();
    let user = OKTA_DEMO_USERS[0];
    let path = format!("/api/v1/groups/{OKTA_DEMO_ENGINEERING}/users/{user}");
    for _ in 0..2 {
        assert_eq!(
            send(&sim, Method::PUT, &path).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(sim.group_members(OKTA_DEMO_ENGINEERING), [user]);
    for _ in 0..2 {
        assert_eq!(
            send(&sim, Method::DELETE, &path).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    assert!(sim.group_members(OKTA_DEMO_ENGINEERING).is_empty());

    let refused = send(
        &sim,
        Method::PUT,
        &format!("/api/v1/groups/{OKTA_DEMO_AD_ADMINS}/users/{user}"),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000006");
    assert!(body["errorId"].as_str().unwrap().starts_with("oae"));
    assert!(sim.group_members(OKTA_DEMO_AD_ADMINS).is_empty());

    let missing = send(&sim, Method::GET, "/api/v1/groups/00gnope").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        body["errorSummary"],
        "Not found: Resource not found: 00gnope (UserGroup)"
    );
}

#[tokio::test]
async fn members_page_with_after_cursors_in_separate_link_headers() {
    let sim = okta_demo().await.unwrap();
    for n in 0..5 {
        let id = format!("00u5member{n:010}");
        sim.add_user(&id, &format!("member{n}@acme.example"));
        sim.set_member(OKTA_DEMO_ENGINEERING, &id);
    }
    let first = send(
        &sim,
        Method::GET,
        &format!("/api/v1/groups/{OKTA_DEMO_ENGINEERING}/users?limit=2"),
    )
    .await;
    let links: Vec<String> = first
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links[0].ends_with("rel=\"self\""));
    let next = links[1]
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        next.contains("after=00u5member0000000001&limit=2"),
        "{next}"
    );
    let users: Vec<Value> = first.json().await.unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["profile"]["login"], "member0@acme.example");
    let last = send(
        &sim,
        Method::GET,
        &format!("/api/v1/groups/{OKTA_DEMO_ENGINEERING}/users?after=00u5member0000000003&limit=2"),
    )
    .await;
    assert_eq!(
        last.headers().get_all("link").iter().count(),
        1,
        "no next on the last page"
    );
    assert_eq!(last.json::<Vec<Value>>().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_tokens_and_spent_budgets_answer_with_okta_error_codes() {
    let sim = okta_demo().await.unwrap();
    let bad = Client::new()
        .get(format!("{}/api/v1/users/me", sim.base_url()))
        .header("authorization", "SSWS nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.json::<Value>().await.unwrap()["errorCode"], "E0000011");

    sim.set_rate_limit(2);
    let last = send(&sim, Method::GET, "/api/v1/users/me").await;
    assert_eq!(last.status(), StatusCode::OK);
    assert_eq!(last.headers()["x-rate-limit-remaining"], "0");
    let limited = send(&sim, Method::GET, "/api/v1/users/me").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = limited.headers();
    assert_eq!(h["x-rate-limit-limit"], "2");
    assert_eq!(h["x-rate-limit-remaining"], "0");
    let reset: u64 = h["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
    assert!(reset > 1_700_000_000);
    assert_eq!(
        limited.json::<Value>().await.unwrap()["errorCode"],
        "E0000047"
    );
}
