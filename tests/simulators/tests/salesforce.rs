//! The Salesforce simulator over real HTTP: the shapes and quirks a connector sees.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use portcullis_simulators::salesforce::{SALESFORCE_DEMO_SETS, SALESFORCE_DEMO_USERS};
use portcullis_simulators::{SALESFORCE_DEMO_TOKEN, SalesforceSimulator, salesforce_demo};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const V: &str = "/services/data/v60.0";

async fn call(
    sim: &SalesforceSimulator,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut request = Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .bearer_auth(SALESFORCE_DEMO_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn query(sim: &SalesforceSimulator, soql: &str) -> Response {
    let mut url = reqwest::Url::parse(&format!("{}{V}/query", sim.base_url())).unwrap();
    url.query_pairs_mut().append_pair("q", soql);
    Client::new()
        .get(url)
        .bearer_auth(SALESFORCE_DEMO_TOKEN)
        .send()
        .await
        .unwrap()
}

async fn code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body[0]["errorCode"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn create_duplicate_query_delete() {
    let sim = salesforce_demo().await.unwrap();
    let (set, user) = (SALESFORCE_DEMO_SETS[0].0, SALESFORCE_DEMO_USERS[0]);
    let body = json!({ "AssigneeId": user, "PermissionSetId": set });
    let created = call(
        &sim,
        Method::POST,
        &format!("{V}/sobjects/PermissionSetAssignment"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(
        created
            .headers()
            .get("sforce-limit-info")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("api-usage=1/")
    );
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["success"], true);
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("0Pa") && id.len() == 18);

    let dup = call(
        &sim,
        Method::POST,
        &format!("{V}/sobjects/PermissionSetAssignment"),
        Some(body),
    )
    .await;
    assert_eq!(
        code(dup).await,
        (StatusCode::BAD_REQUEST, "DUPLICATE_VALUE".into())
    );

    let found: Value = query(&sim, &format!("select id, assigneeid from PermissionSetAssignment where PermissionSetId = '{}' and AssigneeId = '{}'", &set[..15], user))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["totalSize"], 1);
    assert_eq!(found["done"], true);
    assert_eq!(found["records"][0]["Id"], id.as_str());
    assert_eq!(
        found["records"][0]["attributes"]["type"],
        "PermissionSetAssignment"
    );

    let path = format!("{V}/sobjects/PermissionSetAssignment/{id}");
    assert_eq!(
        call(&sim, Method::DELETE, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        code(call(&sim, Method::DELETE, &path, None).await).await,
        (StatusCode::NOT_FOUND, "NOT_FOUND".into())
    );
    let missing = call(
        &sim,
        Method::POST,
        &format!("{V}/sobjects/PermissionSetAssignment"),
        Some(json!({ "AssigneeId": user })),
    )
    .await;
    assert_eq!(
        code(missing).await,
        (StatusCode::BAD_REQUEST, "REQUIRED_FIELD_MISSING".into())
    );
}

#[tokio::test]
async fn queries_outside_the_subset_are_refused_like_salesforce() {
    let sim = salesforce_demo().await.unwrap();
    for (soql, expected) in [
        (
            "SELECT Id FROM PermissionSet WHERE Name = 'a' OR Name != 'b'",
            "MALFORMED_QUERY",
        ),
        (
            "SELECT Id FROM PermissionSet WHERE Name = 'Sales_Ops' LIMIT 1",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Account", "INVALID_TYPE"),
        ("SELECT Secret FROM User", "INVALID_FIELD"),
        (
            "SELECT Id FROM User WHERE Id = 'nope'",
            "INVALID_QUERY_FILTER_OPERATOR",
        ),
    ] {
        assert_eq!(
            code(query(&sim, soql).await).await,
            (StatusCode::BAD_REQUEST, expected.into()),
            "{soql}"
        );
    }
    let by_name: Value = query(
        &sim,
        "SELECT Id FROM PermissionSet WHERE Name = 'sales_ops'",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        by_name["records"][0]["Id"], SALESFORCE_DEMO_SETS[0].0,
        "string comparison ignores case"
    );
}

#[tokio::test]
async fn paging_limits_and_sessions() {
    let sim = salesforce_demo().await.unwrap();
    sim.set_query_batch_size(2);
    let first: Value = query(&sim, "SELECT Id FROM User")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (first["totalSize"].as_u64(), first["done"].as_bool()),
        (Some(4), Some(false))
    );
    let next = first["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with("/services/data/v60.0/query/01g"), "{next}");
    let second: Value = call(&sim, Method::GET, next, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["done"], true);
    assert_eq!(second["records"].as_array().unwrap().len(), 2);

    let old = call(&sim, Method::GET, "/services/data/v12.0/limits", None).await;
    assert_eq!(code(old).await, (StatusCode::NOT_FOUND, "NOT_FOUND".into()));

    sim.set_request_budget(0, 403);
    let limited = call(&sim, Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(
        code(limited).await,
        (StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED".into())
    );
    let me: Value = call(&sim, Method::GET, "/services/oauth2/userinfo", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["user_id"], "0055e000000AdMnAAK",
        "userinfo is not an API call"
    );

    let expired = Client::new()
        .get(format!("{}{V}/limits", sim.base_url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(expired).await,
        (StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID".into())
    );
    let bad = Client::new()
        .get(format!("{}/services/oauth2/userinfo", sim.base_url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    assert_eq!(bad.text().await.unwrap(), "Bad_OAuth_Token");
}
