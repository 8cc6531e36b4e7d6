//! The SCIM simulator over real HTTP, the way a SCIM client sees it.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use portcullis_simulators::{NonMemberRemoval, ScimSimulator};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn send(sim: &ScimSimulator, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut request = Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .header("accept", "application/scim+json");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    request.send().await.unwrap()
}

async fn json_of(response: Response) -> Value {
    response.json().await.unwrap()
}

fn add(user: &str) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": user }] }] })
}

fn remove(user: &str) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "remove", "path": format!("members[value eq \"{user}\"]") }] })
}

#[tokio::test]
async fn users_and_groups_are_created_and_members_patched() {
    let sim = ScimSimulator::start().await.unwrap();
    let created = send(&sim, Method::POST, "/Users", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen"}))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["content-type"], "application/scim+json");
    let user = json_of(created).await["id"].as_str().unwrap().to_owned();
    let dup = send(
        &sim,
        Method::POST,
        "/Users",
        Some(json!({"userName": "BJENSEN"})),
    )
    .await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    assert_eq!(json_of(dup).await["scimType"], "uniqueness");
    let group = sim.add_group("Admins");

    let empty = json_of(
        send(
            &sim,
            Method::GET,
            &format!("/Groups/{group}?attributes=members"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        empty,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": group})
    );

    let patched = send(
        &sim,
        Method::PATCH,
        &format!("/Groups/{group}"),
        Some(add(&user)),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.members(&group), vec![user.clone()]);
    let read = json_of(
        send(
            &sim,
            Method::GET,
            &format!("/Groups/{group}?attributes=members"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(read["members"][0]["value"], user.as_str());
    assert_eq!(read["members"][0]["display"], "bjensen");
    assert!(read.get("displayName").is_none(), "projected away");

    sim.set_patch_returns_resource(true);
    let again = send(
        &sim,
        Method::PATCH,
        &format!("/Groups/{group}"),
        Some(add(&user)),
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        json_of(again).await["members"].as_array().unwrap().len(),
        1,
        "added once"
    );

    let ghost = send(
        &sim,
        Method::PATCH,
        &format!("/Groups/{group}"),
        Some(add("ghost")),
    )
    .await;
    assert_eq!(ghost.status(), StatusCode::BAD_REQUEST);
    let removed = send(
        &sim,
        Method::PATCH,
        &format!("/Groups/{group}"),
        Some(remove(&user)),
    )
    .await;
    assert_eq!(removed.status(), StatusCode::OK);
    assert!(sim.members(&group).is_empty());
}

#[tokio::test]
async fn removing_a_non_member_answers_per_the_switch() {
    let sim = ScimSimulator::start().await.unwrap();
    let user = sim.add_user("bjensen");
    let group = sim.add_group("Admins");
    let path = format!("/Groups/{group}");
    let first = send(&sim, Method::PATCH, &path, Some(remove(&user))).await;
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let body = json_of(first).await;
    assert_eq!(body["scimType"], "noTarget");
    assert_eq!(body["status"], "400");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    sim.set_non_member_removal(NonMemberRemoval::NoContent);
    let second = send(&sim, Method::PATCH, &path, Some(remove(&user))).await;
    assert_eq!(second.status(), StatusCode::NO_CONTENT);
    let missing = send(&sim, Method::PATCH, "/Groups/nope", Some(remove(&user))).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn filters_and_paging() {
    let sim = ScimSimulator::start().await.unwrap();
    let user = sim.add_user("bjensen");
    let groups: Vec<String> = (0..5).map(|i| sim.add_group(&format!("G{i}"))).collect();
    assert!(sim.add_member(&groups[3], &user));

    let found = json_of(
        send(
            &sim,
            Method::GET,
            "/Users?filter=userName%20eq%20%22BJensen%22&attributes=id",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(
        found["Resources"][0],
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": user})
    );
    let member_of = format!(
        "/Groups?filter=members.value%20eq%20%22{user}%22%20and%20id%20eq%20%22{}%22",
        groups[3]
    );
    assert_eq!(
        json_of(send(&sim, Method::GET, &member_of, None).await).await["totalResults"],
        1
    );
    let bad = send(
        &sim,
        Method::GET,
        "/Users?filter=userName%20co%20%22b%22",
        None,
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(bad).await["scimType"], "invalidFilter");

    let page = json_of(send(&sim, Method::GET, "/Groups?startIndex=3&count=2", None).await).await;
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 3);
    assert_eq!(page["itemsPerPage"], 2);
    let past = json_of(send(&sim, Method::GET, "/Groups?startIndex=9&count=2", None).await).await;
    assert_eq!(past["itemsPerPage"], 0);
    assert_eq!(past["Resources"], json!([]));
}

#[tokio::test]
async fn auth_rate_limits_and_feature_switches() {
    let sim = ScimSimulator::start().await.unwrap();
    sim.set_token(Some("s3cret"));
    let spc = send(&sim, Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(
        spc.status(),
        StatusCode::OK,
        "discovery needs no credentials"
    );
    assert_eq!(
        json_of(spc).await["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    let denied = send(&sim, Method::GET, "/Groups", None).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert!(denied.headers().contains_key("www-authenticate"));
    let ok = Client::new()
        .get(format!("{}/Groups", sim.base_url()))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    sim.set_token(None);

    sim.set_request_budget(Some(1), 12);
    assert_eq!(
        send(&sim, Method::GET, "/Groups", None).await.status(),
        StatusCode::OK
    );
    let limited = send(&sim, Method::GET, "/Groups", None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "12");
    assert_eq!(json_of(limited).await["status"], "429");
    sim.set_request_budget(None, 0);

    sim.set_features(false, false);
    let spc = json_of(send(&sim, Method::GET, "/ServiceProviderConfig", None).await).await;
    assert_eq!(spc["patch"]["supported"], false);
    let group = sim.add_group("Admins");
    let user = sim.add_user("bjensen");
    let patch = send(
        &sim,
        Method::PATCH,
        &format!("/Groups/{group}"),
        Some(add(&user)),
    )
    .await;
    assert_eq!(patch.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(sim.requests().iter().all(|r| !r.path.is_empty()));
}
