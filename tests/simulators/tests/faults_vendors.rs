//! Fault injection in the Jira, Okta, SCIM, Drive and Salesforce simulators, over real
//! HTTP: dropped writes answer success and change nothing, lagged writes land after their
//! lag, rate-limit storms and 5xx answer in each vendor's format, `clear()` restores
//! normal answers.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_simulators::gdrive::{GDRIVE_DEMO_FILES, GDRIVE_DEMO_USERS, Throttle};
use portcullis_simulators::jira::JIRA_DEMO_USERS;
use portcullis_simulators::okta::{OKTA_DEMO_ENGINEERING, OKTA_DEMO_USERS};
use portcullis_simulators::salesforce::{SALESFORCE_DEMO_SETS, SALESFORCE_DEMO_USERS};
use portcullis_simulators::{
    GDRIVE_DEMO_TOKEN, JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN, OKTA_DEMO_TOKEN, SALESFORCE_DEMO_TOKEN,
    ScimSimulator, gdrive_demo, jira_demo, okta_demo, salesforce_demo,
};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

const LAG: Duration = Duration::from_millis(800);
/// How long a lagged write may take to appear before the test fails (generous: the
/// machine is shared).
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `done` until it holds; fails after [`DEADLINE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < end, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------- Jira

fn jira(base: &str, method: Method, path: &str) -> RequestBuilder {
    Client::new()
        .request(method, format!("{base}{path}"))
        .basic_auth(JIRA_DEMO_EMAIL, Some(JIRA_DEMO_TOKEN))
}

#[tokio::test]
async fn jira_dropped_writes_answer_success_and_change_nothing() {
    let sim = jira_demo().await.unwrap();
    let base = sim.base_url();
    let id = sim.role_id("PLAT", "Developers").unwrap();
    let path = format!("/rest/api/3/project/PLAT/role/{id}");
    let user = JIRA_DEMO_USERS[0];

    sim.faults().drop_writes(1);
    let added = jira(&base, Method::POST, &path)
        .json(&json!({ "user": [user] }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    let role: Value = added.json().await.unwrap();
    assert_eq!(role["actors"][0]["actorUser"]["accountId"], user);
    assert!(sim.role_members("PLAT", "Developers").is_empty());

    // The count is used up: the same write now applies.
    let added = jira(&base, Method::POST, &path)
        .json(&json!({ "user": [user] }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    assert_eq!(sim.role_members("PLAT", "Developers"), [user]);

    // A refused write answers its error and does not use up a dropped write.
    sim.faults().drop_writes(1);
    let again = jira(&base, Method::POST, &path)
        .json(&json!({ "user": [user] }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let removed = jira(&base, Method::DELETE, &format!("{path}?user={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.role_members("PLAT", "Developers"), [user]);
}

#[tokio::test]
async fn jira_lagged_writes_land_after_the_lag() {
    let sim = jira_demo().await.unwrap();
    let base = sim.base_url();
    let id = sim.role_id("PLAT", "Viewers").unwrap();
    let path = format!("/rest/api/3/project/PLAT/role/{id}");
    let user = JIRA_DEMO_USERS[1];

    sim.faults().lag_writes(LAG);
    let started = Instant::now();
    let added = jira(&base, Method::POST, &path)
        .json(&json!({ "user": [user] }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    assert!(sim.role_members("PLAT", "Viewers").is_empty());
    eventually("lagged role add", || {
        sim.role_members("PLAT", "Viewers") == [user]
    })
    .await;
    assert!(started.elapsed() >= LAG);

    let started = Instant::now();
    let removed = jira(&base, Method::DELETE, &format!("{path}?user={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.role_members("PLAT", "Viewers"), [user]);
    eventually("lagged role removal", || {
        sim.role_members("PLAT", "Viewers").is_empty()
    })
    .await;
    assert!(started.elapsed() >= LAG);
}

#[tokio::test]
async fn jira_rate_limit_storm_server_errors_and_clear() {
    let sim = jira_demo().await.unwrap();
    let base = sim.base_url();
    let myself = || jira(&base, Method::GET, "/rest/api/3/myself").send();

    sim.faults()
        .rate_limit_storm(1, Some(Duration::from_millis(1500)));
    let limited = myself().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), Some("2"));
    assert_eq!(header(&limited, "x-ratelimit-remaining"), Some("0"));
    let reset = header(&limited, "x-ratelimit-reset").unwrap().to_owned();
    let reset = chrono::NaiveDateTime::parse_from_str(&reset, "%Y-%m-%dT%H:%MZ").unwrap();
    let reset = u64::try_from(reset.and_utc().timestamp()).unwrap();
    assert!(reset > epoch_now(), "reset {reset} is before the wait ends");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "errorMessages": ["Rate limit exceeded."], "errors": {} })
    );

    sim.faults().rate_limit_storm(1, None);
    let limited = myself().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), None);
    let reset = header(&limited, "x-ratelimit-reset").unwrap().to_owned();
    let reset = chrono::NaiveDateTime::parse_from_str(&reset, "%Y-%m-%dT%H:%MZ").unwrap();
    assert!(u64::try_from(reset.and_utc().timestamp()).unwrap() >= epoch_now() + 59);

    sim.faults().server_errors(1);
    let failed = myself().await.unwrap();
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = failed.json().await.unwrap();
    assert!(body["errorMessages"][0].is_string());

    sim.faults().rate_limit_storm(10, None);
    sim.faults().server_errors(10);
    sim.faults().clear();
    assert_eq!(myself().await.unwrap().status(), StatusCode::OK);
    assert_eq!(sim.faults().over_limit_responses(), 2);
}

// ---------------------------------------------------------------------------- Okta

fn okta(base: &str, method: Method, path: &str) -> RequestBuilder {
    Client::new()
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("SSWS {OKTA_DEMO_TOKEN}"))
}

#[tokio::test]
async fn okta_dropped_and_lagged_membership_writes() {
    let sim = okta_demo().await.unwrap();
    let base = sim.base_url();
    let user = OKTA_DEMO_USERS[0];
    let path = format!("/api/v1/groups/{OKTA_DEMO_ENGINEERING}/users/{user}");

    sim.faults().drop_writes(1);
    let put = okta(&base, Method::PUT, &path).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    assert!(sim.group_members(OKTA_DEMO_ENGINEERING).is_empty());

    sim.faults().lag_writes(LAG);
    let started = Instant::now();
    let put = okta(&base, Method::PUT, &path).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    assert!(sim.group_members(OKTA_DEMO_ENGINEERING).is_empty());
    eventually("lagged membership add", || {
        sim.group_members(OKTA_DEMO_ENGINEERING) == [user]
    })
    .await;
    assert!(started.elapsed() >= LAG);

    sim.faults().clear();
    sim.faults().drop_writes(1);
    let delete = okta(&base, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.group_members(OKTA_DEMO_ENGINEERING), [user]);
    let delete = okta(&base, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert!(sim.group_members(OKTA_DEMO_ENGINEERING).is_empty());
}

#[tokio::test]
async fn okta_rate_limit_storm_server_errors_and_clear() {
    let sim = okta_demo().await.unwrap();
    let base = sim.base_url();
    let me = || okta(&base, Method::GET, "/api/v1/users/me").send();

    sim.faults()
        .rate_limit_storm(1, Some(Duration::from_secs(3)));
    let limited = me().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), Some("3"));
    assert_eq!(header(&limited, "x-rate-limit-remaining"), Some("0"));
    assert!(header(&limited, "x-rate-limit-limit").is_some());
    let reset: u64 = header(&limited, "x-rate-limit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= epoch_now() + 2 && reset <= epoch_now() + 4);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000047");
    assert_eq!(
        body["errorSummary"],
        "API call exceeded rate limit due to too many requests."
    );
    assert!(body["errorId"].is_string() && body["errorCauses"].is_array());

    sim.faults().rate_limit_storm(1, None);
    let limited = me().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), None);
    let reset: u64 = header(&limited, "x-rate-limit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= epoch_now() + 59);

    sim.faults().server_errors(1);
    let failed = me().await.unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000009");

    sim.faults().rate_limit_storm(10, None);
    sim.faults().clear();
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------- SCIM

fn add_member(user: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "members", "value": [{ "value": user }] }],
    })
}

fn remove_member(user: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "remove", "path": format!("members[value eq \"{user}\"]") }],
    })
}

#[tokio::test]
async fn scim_dropped_and_lagged_patches() {
    let sim = ScimSimulator::start().await.unwrap();
    let user = sim.add_user("ada@acme.example");
    let group = sim.add_group("Engineering");
    let url = format!("{}/Groups/{group}", sim.base_url());
    let patch = |body: Value| Client::new().patch(&url).json(&body).send();

    sim.set_patch_returns_resource(true);
    sim.faults().drop_writes(1);
    let patched = patch(add_member(&user)).await.unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let body: Value = patched.json().await.unwrap();
    assert_eq!(body["members"][0]["value"], json!(user));
    assert!(sim.members(&group).is_empty());

    sim.faults().lag_writes(LAG);
    let started = Instant::now();
    let patched = patch(add_member(&user)).await.unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    assert!(sim.members(&group).is_empty());
    eventually("lagged member add", || {
        sim.members(&group) == [user.as_str()]
    })
    .await;
    assert!(started.elapsed() >= LAG);

    let started = Instant::now();
    sim.set_patch_returns_resource(false);
    let patched = patch(remove_member(&user)).await.unwrap();
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.members(&group), [user.as_str()]);
    eventually("lagged member removal", || sim.members(&group).is_empty()).await;
    assert!(started.elapsed() >= LAG);
}

#[tokio::test]
async fn scim_rate_limit_storm_server_errors_and_clear() {
    let sim = ScimSimulator::start().await.unwrap();
    let url = format!("{}/Users", sim.base_url());
    let list = || Client::new().get(&url).send();

    sim.faults()
        .rate_limit_storm(1, Some(Duration::from_secs(7)));
    let limited = list().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), Some("7"));
    assert_eq!(
        header(&limited, "content-type"),
        Some("application/scim+json")
    );
    let body: Value = limited.json().await.unwrap();
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(body["status"], "429");

    sim.faults().rate_limit_storm(1, None);
    let limited = list().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), None);

    sim.faults().server_errors(1);
    let failed = list().await.unwrap();
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["status"], "503");

    sim.faults().server_errors(10);
    sim.faults().clear();
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------- Drive

fn drive(base: &str, method: Method, path: &str) -> RequestBuilder {
    Client::new()
        .request(method, format!("{base}/drive/v3{path}"))
        .bearer_auth(GDRIVE_DEMO_TOKEN)
}

#[tokio::test]
async fn drive_dropped_and_lagged_permission_writes() {
    let sim = gdrive_demo().await.unwrap();
    let base = sim.base_url();
    let file = GDRIVE_DEMO_FILES[1].0;
    let email = GDRIVE_DEMO_USERS[0];
    let create = || {
        drive(&base, Method::POST, &format!("/files/{file}/permissions"))
            .json(&json!({ "type": "user", "role": "writer", "emailAddress": email }))
            .send()
    };

    sim.faults().drop_writes(1);
    let created = create().await.unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let permission: Value = created.json().await.unwrap();
    assert_eq!(permission["role"], "writer");
    let pid = permission["id"].as_str().unwrap().to_owned();
    assert_eq!(sim.role(file, email), None);
    assert!(sim.notified().is_empty(), "a dropped share sends no e-mail");

    sim.faults().lag_writes(LAG);
    let started = Instant::now();
    assert_eq!(create().await.unwrap().status(), StatusCode::OK);
    assert_eq!(sim.role(file, email), None);
    eventually("lagged share", || {
        sim.role(file, email).as_deref() == Some("writer")
    })
    .await;
    assert!(started.elapsed() >= LAG);
    assert_eq!(sim.notified(), [email]);

    sim.faults().clear();
    sim.faults().drop_writes(2);
    let patched = drive(
        &base,
        Method::PATCH,
        &format!("/files/{file}/permissions/{pid}"),
    )
    .json(&json!({ "role": "reader" }))
    .send()
    .await
    .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let body: Value = patched.json().await.unwrap();
    assert_eq!(body["role"], "reader");
    let deleted = drive(
        &base,
        Method::DELETE,
        &format!("/files/{file}/permissions/{pid}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.role(file, email).as_deref(), Some("writer"));
}

#[tokio::test]
async fn drive_rate_limit_storm_server_errors_and_clear() {
    let sim = gdrive_demo().await.unwrap();
    let base = sim.base_url();
    let file = GDRIVE_DEMO_FILES[0].0;
    let list = || drive(&base, Method::GET, &format!("/files/{file}/permissions")).send();

    sim.set_throttle(Throttle::TooManyRequests429);
    sim.faults().rate_limit_storm(1, None);
    let limited = list().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after"), None);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");
    assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");

    sim.set_throttle(Throttle::RateLimit403);
    sim.faults()
        .rate_limit_storm(1, Some(Duration::from_secs(4)));
    let limited = list().await.unwrap();
    assert_eq!(limited.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&limited, "retry-after"), Some("4"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");

    sim.faults().server_errors(1);
    let failed = list().await.unwrap();
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "backendError");

    sim.faults().rate_limit_storm(10, None);
    sim.faults().clear();
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------- Salesforce

const SF_DATA: &str = "/services/data/v60.0";

fn salesforce(base: &str, method: Method, path: &str) -> RequestBuilder {
    Client::new()
        .request(method, format!("{base}{SF_DATA}{path}"))
        .bearer_auth(SALESFORCE_DEMO_TOKEN)
}

#[tokio::test]
async fn salesforce_dropped_and_lagged_assignments() {
    let sim = salesforce_demo().await.unwrap();
    let base = sim.base_url();
    let (set, set_name) = SALESFORCE_DEMO_SETS[0];
    let user = SALESFORCE_DEMO_USERS[0];
    let create = || {
        salesforce(&base, Method::POST, "/sobjects/PermissionSetAssignment")
            .json(&json!({ "AssigneeId": user, "PermissionSetId": set }))
            .send()
    };

    sim.faults().drop_writes(1);
    let created = create().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert!(body["id"].as_str().unwrap().starts_with("0Pa"));
    assert!(sim.assignments(set_name).is_empty());

    sim.faults().lag_writes(LAG);
    let started = Instant::now();
    let created = create().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(sim.assignments(set_name).is_empty());
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("lagged assignment", || sim.assignments(set_name) == [user]).await;
    assert!(started.elapsed() >= LAG);

    // The record that landed carries the id that was answered.
    sim.faults().clear();
    sim.faults().drop_writes(1);
    let path = format!("/sobjects/PermissionSetAssignment/{id}");
    let deleted = salesforce(&base, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.assignments(set_name), [user]);
    let deleted = salesforce(&base, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(sim.assignments(set_name).is_empty());
}

#[tokio::test]
async fn salesforce_rate_limit_storm_server_errors_and_clear() {
    let sim = salesforce_demo().await.unwrap();
    let base = sim.base_url();
    let limits = || salesforce(&base, Method::GET, "/limits").send();

    sim.faults().rate_limit_storm(1, None);
    let limited = limits().await.unwrap();
    assert_eq!(limited.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&limited, "retry-after"), None);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(body[0]["message"], "TotalRequests Limit exceeded.");

    sim.faults()
        .rate_limit_storm(1, Some(Duration::from_millis(100)));
    let limited = limits().await.unwrap();
    assert_eq!(limited.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&limited, "retry-after"), Some("1"));

    sim.faults().server_errors(1);
    let failed = limits().await.unwrap();
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "SERVER_UNAVAILABLE");

    sim.faults().rate_limit_storm(10, None);
    sim.faults().clear();
    assert_eq!(limits().await.unwrap().status(), StatusCode::OK);
}
