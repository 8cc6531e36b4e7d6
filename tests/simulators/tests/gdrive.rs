//! The Drive simulator over real HTTP: the quirks a connector must cope with.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use portcullis_simulators::gdrive::{GDRIVE_DEMO_FILES, Throttle};
use portcullis_simulators::{DriveSimulator, GDRIVE_DEMO_TOKEN, gdrive_demo};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const FILE: &str = GDRIVE_DEMO_FILES[0].0;

async fn call(sim: &DriveSimulator, method: Method, path: &str, body: Option<Value>) -> Response {
    let mut request = Client::new()
        .request(method, format!("{}{path}", sim.base_url()))
        .bearer_auth(GDRIVE_DEMO_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn reason(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], status.as_u16());
    (
        status,
        body["error"]["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test]
async fn create_replaces_an_existing_role_and_keeps_one_permission_id() {
    let sim = gdrive_demo().await.unwrap();
    let path = format!("/drive/v3/files/{FILE}/permissions?sendNotificationEmail=false");
    let first: Value = call(
        &sim,
        Method::POST,
        &path,
        Some(json!({"type":"user","role":"writer","emailAddress":"Ada@acme.example"})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first["kind"], "drive#permission");
    assert_eq!(first["emailAddress"], "ada@acme.example");
    let second: Value = call(
        &sim,
        Method::POST,
        &path,
        Some(json!({"type":"user","role":"reader","emailAddress":"ada@acme.example"})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        sim.role(FILE, "ada@acme.example").as_deref(),
        Some("reader")
    );
    assert!(sim.notified().is_empty());

    let notify = format!("/drive/v3/files/{FILE}/permissions");
    call(
        &sim,
        Method::POST,
        &notify,
        Some(json!({"type":"user","role":"reader","emailAddress":"bob@acme.example"})),
    )
    .await;
    assert_eq!(sim.notified(), ["bob@acme.example"]);
}

#[tokio::test]
async fn fields_select_and_page_tokens_must_be_asked_for() {
    let sim = gdrive_demo().await.unwrap();
    for n in 0..3 {
        sim.share(FILE, &format!("u{n}@acme.example"), "reader");
    }
    let base = format!("/drive/v3/files/{FILE}/permissions?pageSize=2");
    let narrow: Value = call(
        &sim,
        Method::GET,
        &format!("{base}&fields=permissions(id,role)"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(narrow.get("nextPageToken").is_none(), "{narrow}");
    assert_eq!(narrow["permissions"][0].as_object().unwrap().len(), 2);

    let mut token: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut path = format!("{base}&fields=nextPageToken,permissions(emailAddress)");
        if let Some(t) = &token {
            path.push_str(&format!("&pageToken={t}"));
        }
        let page: Value = call(&sim, Method::GET, &path, None)
            .await
            .json()
            .await
            .unwrap();
        seen += page["permissions"].as_array().unwrap().len();
        match page["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 5, "owner + grace + 3");

    let bad = call(&sim, Method::GET, &format!("{base}&pageToken=forged"), None).await;
    assert_eq!(
        reason(bad).await,
        (StatusCode::BAD_REQUEST, "invalid".into())
    );
    let about = call(&sim, Method::GET, "/drive/v3/about", None).await;
    assert_eq!(
        reason(about).await,
        (StatusCode::BAD_REQUEST, "required".into())
    );
}

#[tokio::test]
async fn repeated_page_tokens_fault_makes_a_page_name_itself_as_the_next() {
    let sim = gdrive_demo().await.unwrap();
    for n in 0..3 {
        sim.share(FILE, &format!("u{n}@acme.example"), "reader");
    }
    let base = format!(
        "/drive/v3/files/{FILE}/permissions?pageSize=2&fields=nextPageToken,permissions(id)"
    );
    let page = |path: String| {
        let sim = sim.clone();
        async move {
            let page: Value = call(&sim, Method::GET, &path, None)
                .await
                .json()
                .await
                .unwrap();
            page["nextPageToken"].as_str().map(str::to_owned)
        }
    };
    sim.repeat_page_tokens(true);
    // The first page is faithful; the page its token names answers that token again,
    // and so does the last page, which would otherwise have none.
    let first = page(base.clone())
        .await
        .expect("5 permissions in pages of 2");
    let again = page(format!("{base}&pageToken={first}")).await;
    assert_eq!(again.as_deref(), Some(first.as_str()));

    sim.repeat_page_tokens(false);
    let second = page(format!("{base}&pageToken={first}"))
        .await
        .expect("a third page");
    assert_ne!(second, first);
    assert_eq!(page(format!("{base}&pageToken={second}")).await, None);
    sim.repeat_page_tokens(true);
    assert_eq!(
        page(format!("{base}&pageToken={second}")).await.as_deref(),
        Some(second.as_str()),
        "the last page names itself too"
    );
}

#[tokio::test]
async fn errors_use_googles_envelope_and_reasons() {
    let sim = gdrive_demo().await.unwrap();
    let missing = call(&sim, Method::GET, "/drive/v3/files/nope/permissions", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["message"], "File not found: nope.");

    let owner = sim.permissions(FILE)[0].clone();
    assert_eq!(owner.1, "owner");
    let list: Value = call(
        &sim,
        Method::GET,
        &format!("/drive/v3/files/{FILE}/permissions"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let owner_id = list["permissions"][0]["id"].as_str().unwrap().to_owned();
    let delete = call(
        &sim,
        Method::DELETE,
        &format!("/drive/v3/files/{FILE}/permissions/{owner_id}"),
        None,
    )
    .await;
    assert_eq!(
        reason(delete).await,
        (StatusCode::FORBIDDEN, "cannotRemoveOwner".into())
    );
    let bad_role = call(
        &sim,
        Method::POST,
        &format!("/drive/v3/files/{FILE}/permissions"),
        Some(json!({"type":"user","role":"editor","emailAddress":"a@b.c"})),
    )
    .await;
    assert_eq!(
        reason(bad_role).await,
        (StatusCode::BAD_REQUEST, "invalid".into())
    );

    let anonymous = Client::new()
        .get(format!("{}/drive/v3/about?fields=user", sim.base_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(
        reason(anonymous).await,
        (StatusCode::UNAUTHORIZED, "authError".into())
    );

    for (throttle, status, expected) in [
        (
            Throttle::UserRateLimit403,
            StatusCode::FORBIDDEN,
            "userRateLimitExceeded",
        ),
        (
            Throttle::TooManyRequests429,
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
        ),
    ] {
        sim.set_request_budget(Some(0), throttle);
        let limited = call(&sim, Method::GET, "/drive/v3/about?fields=user", None).await;
        assert!(limited.headers().get("retry-after").is_none());
        assert_eq!(reason(limited).await, (status, expected.into()));
    }
    sim.set_request_budget(None, Throttle::default());
    let about: Value = call(
        &sim,
        Method::GET,
        "/drive/v3/about?fields=user(emailAddress)",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        about,
        json!({"user": {"emailAddress": "portcullis@acme.example"}})
    );
}
