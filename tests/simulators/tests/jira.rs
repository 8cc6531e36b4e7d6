//! The Jira simulator over real HTTP, the way a connector sees it.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use portcullis_simulators::jira::{JIRA_DEMO_USERS, JiraSimulator, NextPage};
use portcullis_simulators::{JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN, jira_demo};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

async fn send(sim: &JiraSimulator, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut request = Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .basic_auth(JIRA_DEMO_EMAIL, Some(JIRA_DEMO_TOKEN));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn role_actors_add_repeat_list_and_remove_as_jira_answers() {
    let sim = jira_demo().await.unwrap();
    let user = JIRA_DEMO_USERS[0];
    let roles: Value = send(&sim, Method::GET, "/rest/api/3/project/plat/role", None)
        .await
        .json()
        .await
        .unwrap();
    let url = roles["Developers"].as_str().unwrap().to_owned();
    let id = url.rsplit('/').next().unwrap();
    assert_eq!(
        url,
        format!("{}/rest/api/3/project/plat/role/{id}", sim.base_url())
    );

    let path = format!("/rest/api/3/project/PLAT/role/{id}");
    let added = send(&sim, Method::POST, &path, Some(json!({ "user": [user] }))).await;
    assert_eq!(added.status(), StatusCode::OK);
    let role: Value = added.json().await.unwrap();
    assert_eq!(role["actors"][0]["type"], "atlassian-user-role-actor");
    assert_eq!(role["actors"][0]["actorUser"]["accountId"], user);

    let again = send(&sim, Method::POST, &path, Some(json!({ "user": [user] }))).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body: Value = again.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "errorMessages": ["User 'Mia Krystof' is already a member of the project role."], "errors": {} })
    );

    let removed = send(
        &sim,
        Method::DELETE,
        &format!("{path}?user={}", user.replace(':', "%3A")),
        None,
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let gone = send(&sim, Method::DELETE, &format!("{path}?user={user}"), None).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(sim.role_members("PLAT", "Developers").is_empty());

    let missing = send(&sim, Method::GET, "/rest/api/3/project/NOPE/role", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        body["errorMessages"][0],
        "No project could be found with key 'NOPE'."
    );
}

#[tokio::test]
async fn bad_credentials_are_a_plain_401_and_the_budget_ends_in_a_429() {
    let sim = jira_demo().await.unwrap();
    let anonymous = Client::new()
        .get(format!("{}/rest/api/3/myself", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["x-ratelimit-limit"], "1000");
    assert!(
        anonymous
            .text()
            .await
            .unwrap()
            .contains("must be authenticated")
    );

    sim.set_rate_limit(2);
    let ok = send(&sim, Method::GET, "/rest/api/3/myself", None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-ratelimit-remaining"], "0");
    let limited = send(&sim, Method::GET, "/rest/api/3/myself", None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = limited.headers();
    let reset = h["x-ratelimit-reset"].to_str().unwrap();
    // Atlassian's documented `yyyy-MM-ddTHH:mmZ`.
    assert_eq!(reset.len(), "2026-11-25T21:40Z".len(), "{reset}");
    assert!(
        reset.ends_with('Z') && reset.as_bytes()[10] == b'T',
        "{reset}"
    );
    let wait: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(h["ratelimit-reason"], "jira-burst-based");

    sim.set_retry_after(false);
    let limited = send(&sim, Method::GET, "/rest/api/3/myself", None).await;
    assert!(limited.headers().get("retry-after").is_none());
    assert!(limited.headers().get("x-ratelimit-reset").is_some());
}

#[tokio::test]
async fn next_page_faults_link_to_another_origin_or_back_to_the_page() {
    let sim = jira_demo().await.unwrap();
    let asked = "/rest/api/3/project/search?maxResults=1&orderBy=key";
    let next_page = |sim: JiraSimulator, path: &'static str| async move {
        let page: Value = send(&sim, Method::GET, path, None)
            .await
            .json()
            .await
            .unwrap();
        page["nextPage"].as_str().map(str::to_owned)
    };
    // Two projects in pages of one: the first page links to the second.
    assert_eq!(
        next_page(sim.clone(), asked).await.as_deref(),
        Some(format!(
            "{}/rest/api/3/project/search?maxResults=1&startAt=1",
            sim.base_url()
        ))
        .as_deref()
    );
    sim.set_next_page(NextPage::OtherOrigin("https://evil.example".into()));
    assert_eq!(
        next_page(sim.clone(), asked).await.as_deref(),
        Some("https://evil.example/rest/api/3/project/search?maxResults=1&startAt=1")
    );
    sim.set_next_page(NextPage::Itself);
    assert_eq!(
        next_page(sim.clone(), asked).await,
        Some(format!("{}{asked}", sim.base_url()))
    );
    // The last page has no link, whatever the fault.
    let last = "/rest/api/3/project/search?maxResults=1&startAt=1";
    assert_eq!(next_page(sim.clone(), last).await, None);
}
