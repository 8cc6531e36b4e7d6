//! The GitHub simulator over real HTTP, the way a connector sees it.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use portcullis_simulators::{GITHUB_DEMO_TOKEN, GithubSimulator, github_demo};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const REPO: &str = "acme/platform-api";

/// A client as a connector would be: user agent, GitHub's accept and version headers,
/// a bearer token.
struct Api {
    client: Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(sim: &GithubSimulator, token: Option<&str>) -> Self {
        Self {
            client: Client::builder()
                .user_agent("portcullis-tests/1")
                .build()
                .unwrap(),
            base: sim.base_url(),
            token: token.map(str::to_owned),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self
            .client
            .request(method, url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> Response {
        self.send(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, None).await
    }

    async fn permission(&self, login: &str) -> Value {
        let response = self
            .get(&format!("/repos/{REPO}/collaborators/{login}/permission"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn next_link(response: &Response) -> Option<String> {
    let link = header(response, "link")?;
    link.split(", ").find_map(|part| {
        let (url, rel) = part.split_once("; ")?;
        (rel == "rel=\"next\"").then(|| url.trim_matches(['<', '>']).to_owned())
    })
}

async fn demo() -> (GithubSimulator, Api) {
    let sim = github_demo().await.unwrap();
    let api = Api::new(&sim, Some(GITHUB_DEMO_TOKEN));
    (sim, api)
}

#[tokio::test]
async fn new_collaborator_gets_an_invitation_that_grants_nothing_until_accepted() {
    let (sim, api) = demo().await;
    let response = api
        .put(
            &format!("/repos/{REPO}/collaborators/octocat"),
            json!({"permission": "push"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(&response, "content-type"),
        Some("application/json; charset=utf-8")
    );
    let invitation: Value = response.json().await.unwrap();
    let id = invitation["id"].as_u64().unwrap();
    assert_eq!(
        invitation["permissions"], "write",
        "invitation vocabulary: push => write"
    );
    assert_eq!(invitation["invitee"]["login"], "octocat");
    assert_eq!(invitation["inviter"]["login"], "portcullis-bot");
    assert_eq!(invitation["repository"]["full_name"], REPO);
    assert_eq!(invitation["repository"]["private"], true);
    assert_eq!(invitation["expired"], false);
    assert_eq!(
        invitation["url"],
        format!("{}/user/repository_invitations/{id}", sim.base_url())
    );
    assert_eq!(
        invitation["html_url"],
        format!("https://github.com/{REPO}/invitations")
    );
    assert!(invitation["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        sim.pending_invitation(REPO, "octocat").as_deref(),
        Some("write")
    );

    // Pending: no permission, not a collaborator.
    let read = api.permission("octocat").await;
    assert_eq!(
        (&read["permission"], &read["role_name"]),
        (&json!("none"), &json!("none"))
    );
    assert_eq!(read["user"]["login"], "octocat");
    let check = api
        .get(&format!("/repos/{REPO}/collaborators/octocat"))
        .await;
    assert_eq!(check.status(), StatusCode::NOT_FOUND);

    // Asking again updates the same invitation.
    let again = api
        .put(
            &format!("/repos/{REPO}/collaborators/octocat"),
            json!({"permission": "pull"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["id"].as_u64(), &again["permissions"]),
        (Some(id), &json!("read"))
    );

    // The invitee accepts with their own token.
    sim.add_token("ghp_octocat", "octocat", &["repo"]);
    let octocat = Api::new(&sim, Some("ghp_octocat"));
    let mine: Value = octocat
        .get("/user/repository_invitations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine[0]["id"].as_u64(), Some(id));
    let accepted = octocat
        .send(
            Method::PATCH,
            &format!("/user/repository_invitations/{id}"),
            None,
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.collaborator_role(REPO, "octocat").as_deref(),
        Some("read")
    );
    assert_eq!(sim.pending_invitation(REPO, "octocat"), None);
    let read = api.permission("octocat").await;
    assert_eq!(
        (&read["permission"], &read["role_name"]),
        (&json!("read"), &json!("read"))
    );
    assert_eq!(read["user"]["permissions"]["pull"], true);
    assert_eq!(read["user"]["permissions"]["push"], false);
    let check = api
        .get(&format!("/repos/{REPO}/collaborators/octocat"))
        .await;
    assert_eq!(check.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn accept_invitation_helper_and_the_three_vocabularies() {
    let (sim, api) = demo().await;
    for (login, put, invitation, permission, role_name) in [
        ("octocat", "push", "write", "write", "write"),
        ("hubot", "maintain", "maintain", "write", "maintain"),
        ("monalisa", "triage", "triage", "read", "triage"),
    ] {
        let response = api
            .put(
                &format!("/repos/{REPO}/collaborators/{login}"),
                json!({"permission": put}),
            )
            .await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["permissions"], invitation);
        assert!(sim.accept_invitation(REPO, login));
        assert!(!sim.accept_invitation(REPO, login), "only once");
        let read = api.permission(login).await;
        assert_eq!(read["permission"], permission, "{login}");
        assert_eq!(read["role_name"], role_name, "{login}");
        assert_eq!(read["user"]["role_name"], role_name, "{login}");
    }
    let admin = api.permission("portcullis-bot").await;
    assert_eq!(
        (&admin["permission"], &admin["role_name"]),
        (&json!("admin"), &json!("admin"))
    );
    // Logins compare case-insensitively; the body keeps GitHub's spelling.
    let read = api.permission("OctoCat").await;
    assert_eq!(
        (&read["permission"], &read["user"]["login"]),
        (&json!("write"), &json!("octocat"))
    );
}

#[tokio::test]
async fn level_change_on_an_existing_collaborator_answers_204_and_takes_effect() {
    let (sim, api) = demo().await;
    sim.set_collaborator(REPO, "hubot", "read");
    let response = api
        .put(
            &format!("/repos/{REPO}/collaborators/hubot"),
            json!({"permission": "maintain"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&response, "content-type"), None);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(
        sim.collaborator_role(REPO, "hubot").as_deref(),
        Some("maintain")
    );
    assert_eq!(sim.pending_invitation(REPO, "hubot"), None, "no invitation");
    let read = api.permission("hubot").await;
    assert_eq!(
        (&read["permission"], &read["role_name"]),
        (&json!("write"), &json!("maintain"))
    );

    // Silently lowered, too; a missing permission means push.
    let response = api
        .send(
            Method::PUT,
            &format!("/repos/{REPO}/collaborators/hubot"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.collaborator_role(REPO, "hubot").as_deref(),
        Some("write")
    );
}

#[tokio::test]
async fn invalid_writes_are_refused_with_githubs_bodies() {
    let (sim, api) = demo().await;
    let response = api
        .put(
            &format!("/repos/{REPO}/collaborators/octocat"),
            json!({"permission": "write"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Validation Failed");
    assert_eq!(
        body["errors"],
        json!([{"resource": "Repository", "code": "invalid", "field": "permission"}])
    );
    assert_eq!(body["status"], "422");
    assert!(
        body["documentation_url"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/")
    );
    assert_eq!(sim.pending_invitation(REPO, "octocat"), None);

    let unknown = api
        .put(
            &format!("/repos/{REPO}/collaborators/ghost-404"),
            json!({"permission": "push"}),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(
        (&body["message"], &body["status"]),
        (&json!("Not Found"), &json!("404"))
    );
    let unknown = api
        .get(&format!("/repos/{REPO}/collaborators/ghost-404/permission"))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let no_repo = api
        .get("/repos/acme/nope/collaborators/octocat/permission")
        .await;
    assert_eq!(no_repo.status(), StatusCode::NOT_FOUND);

    let garbage = api
        .client
        .put(format!("{}/repos/{REPO}/collaborators/octocat", api.base))
        .bearer_auth(GITHUB_DEMO_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let body: Value = garbage.json().await.unwrap();
    assert_eq!(body["message"], "Problems parsing JSON");
}

#[tokio::test]
async fn credentials_are_checked_like_github() {
    let (sim, api) = demo().await;
    let bad = Api::new(&sim, Some("ghp_wrong"));
    let response = bad.get("/user").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&response, "x-ratelimit-limit"), Some("60"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
    );
    let response = bad
        .put(
            &format!("/repos/{REPO}/collaborators/octocat"),
            json!({"permission": "push"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let anonymous = Api::new(&sim, None);
    let response = anonymous.get("/user").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Requires authentication");
    let response = anonymous
        .put(&format!("/repos/{REPO}/collaborators/octocat"), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A private repository is simply not there for anonymous readers.
    let response = anonymous.get(&format!("/repos/{REPO}/collaborators")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        anonymous.get("/users/octocat").await.status(),
        StatusCode::OK
    );

    // `token <t>` works as well as `Bearer <t>`.
    let response = api
        .client
        .get(format!("{}/user", api.base))
        .header("authorization", format!("token {GITHUB_DEMO_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-oauth-scopes"), Some("repo, read:org"));
    assert_eq!(header(&response, "x-accepted-oauth-scopes"), Some(""));
    let user: Value = response.json().await.unwrap();
    assert_eq!(
        (&user["login"], &user["type"]),
        (&json!("portcullis-bot"), &json!("User"))
    );
    assert!(user["id"].is_u64() && user["node_id"].is_string());

    // Fine-grained tokens carry no scopes header.
    sim.add_token("github_pat_fine", "portcullis-bot", &[]);
    let fine = Api::new(&sim, Some("github_pat_fine")).get("/user").await;
    assert_eq!(fine.status(), StatusCode::OK);
    assert_eq!(header(&fine, "x-oauth-scopes"), None);

    // Nothing recorded ever contains a token.
    let log = format!("{:?}", sim.requests());
    assert!(!log.contains(GITHUB_DEMO_TOKEN) && !log.contains("ghp_wrong"));
    assert!(sim.requests().iter().any(|r| r.had_authorization));
    assert!(sim.requests().iter().any(|r| !r.had_authorization));
}

#[tokio::test]
async fn access_rules_admin_push_visibility_and_scopes() {
    let (sim, _api) = demo().await;
    sim.set_collaborator(REPO, "hubot", "write");
    sim.add_token("ghp_hubot", "hubot", &["repo"]);
    let hubot = Api::new(&sim, Some("ghp_hubot"));
    let response = hubot
        .put(
            &format!("/repos/{REPO}/collaborators/octocat"),
            json!({"permission": "push"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Must have admin rights to Repository.");
    assert_eq!(
        hubot
            .get(&format!("/repos/{REPO}/collaborators"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        hubot
            .get(&format!("/repos/{REPO}/invitations"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Anyone may remove themselves.
    let response = hubot
        .delete(&format!("/repos/{REPO}/collaborators/hubot"))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.collaborator_role(REPO, "hubot"), None);

    // No role: the private repository does not exist for them.
    sim.add_token("ghp_monalisa", "monalisa", &["repo"]);
    let monalisa = Api::new(&sim, Some("ghp_monalisa"));
    let response = monalisa
        .put(
            &format!("/repos/{REPO}/collaborators/octocat"),
            json!({"permission": "push"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A classic token without `repo` cannot see private repositories either.
    sim.add_token("ghp_noscope", "portcullis-bot", &["read:org"]);
    let response = Api::new(&sim, Some("ghp_noscope"))
        .get(&format!("/repos/{REPO}"))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn requests_without_user_agent_are_refused_in_plain_text() {
    let (sim, _api) = demo().await;
    let response = Client::new()
        .get(format!("{}/user", sim.base_url()))
        .bearer_auth(GITHUB_DEMO_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header(&response, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(header(&response, "x-github-request-id").is_some());
    assert_eq!(
        response.text().await.unwrap(),
        "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes."
    );
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].status, recorded[0].user_agent.as_deref()),
        (403, None)
    );
}

#[tokio::test]
async fn collaborator_pages_follow_link_headers_to_the_end() {
    let (sim, api) = demo().await;
    for n in 0..5 {
        sim.set_collaborator(REPO, &format!("dev{n}"), "write");
    }
    let repo_id = sim.repo_id(REPO).unwrap();
    let first = api
        .get(&format!(
            "/repos/{REPO}/collaborators?affiliation=direct&per_page=2"
        ))
        .await;
    let base = sim.base_url();
    assert_eq!(
        header(&first, "link"),
        Some(
            format!(
                "<{base}/repositories/{repo_id}/collaborators?affiliation=direct&per_page=2&page=2>; rel=\"next\", \
                 <{base}/repositories/{repo_id}/collaborators?affiliation=direct&per_page=2&page=3>; rel=\"last\""
            )
            .as_str()
        )
    );
    let mut logins = Vec::new();
    let mut pages = 0;
    let mut response = first;
    loop {
        pages += 1;
        let next = next_link(&response);
        let link = header(&response, "link").unwrap_or_default().to_owned();
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(
            page.iter()
                .all(|c| c["permissions"]["pull"] == true && c["type"] == "User")
        );
        logins.extend(page.iter().map(|c| c["login"].as_str().unwrap().to_owned()));
        match next {
            Some(url) => {
                assert!(url.contains(&format!("/repositories/{repo_id}/")), "{url}");
                response = api.get(&url).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
            None => {
                assert!(
                    link.contains("rel=\"prev\"") && link.contains("rel=\"first\""),
                    "{link}"
                );
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        logins,
        ["dev0", "dev1", "dev2", "dev3", "dev4", "portcullis-bot"]
    );

    // Filters, and one page without a Link header.
    let admins = api
        .get(&format!("/repos/{REPO}/collaborators?permission=admin"))
        .await;
    assert_eq!(header(&admins, "link"), None);
    let admins: Vec<Value> = admins.json().await.unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(
        (&admins[0]["role_name"], &admins[0]["permissions"]["admin"]),
        (&json!("admin"), &json!(true))
    );
}

#[tokio::test]
async fn invitation_and_org_repository_lists_page_too() {
    let (sim, api) = demo().await;
    for n in 0..3 {
        sim.add_user(&format!("new{n}"));
        let response = api
            .put(
                &format!("/repos/{REPO}/collaborators/new{n}"),
                json!({"permission": "pull"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let mut url = Some(format!("/repos/{REPO}/invitations?per_page=2"));
    let mut invitees = Vec::new();
    while let Some(u) = url {
        let response = api.get(&u).await;
        assert_eq!(response.status(), StatusCode::OK);
        url = next_link(&response);
        let page: Vec<Value> = response.json().await.unwrap();
        invitees.extend(
            page.iter()
                .map(|i| i["invitee"]["login"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(invitees, ["new0", "new1", "new2"]);

    let mut url = Some("/orgs/acme/repos?per_page=1".to_owned());
    let mut repos = Vec::new();
    while let Some(u) = url {
        let response = api.get(&u).await;
        assert_eq!(response.status(), StatusCode::OK);
        url = next_link(&response);
        if let Some(next) = &url {
            assert!(next.contains("/organizations/"), "{next}");
        }
        let page: Vec<Value> = response.json().await.unwrap();
        assert_eq!(page[0]["private"], true);
        repos.extend(
            page.iter()
                .map(|r| r["full_name"].as_str().unwrap().to_owned()),
        );
    }
    // GitHub's default order: newest first.
    assert_eq!(
        repos,
        [
            "acme/platform-docs",
            "acme/platform-infra",
            "acme/platform-api"
        ]
    );
    assert_eq!(
        api.get("/orgs/nope/repos").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn rate_limit_headers_count_down_and_exhaustion_is_403() {
    let (sim, api) = demo().await;
    sim.set_rate_limit(3);
    let mut resets = Vec::new();
    for expected_remaining in ["2", "1", "0"] {
        let response = api.get("/user").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining"),
            Some(expected_remaining)
        );
        assert_eq!(header(&response, "x-ratelimit-resource"), Some("core"));
        resets.push(
            header(&response, "x-ratelimit-reset")
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    let used = api.get("/rate_limit").await;
    assert_eq!(used.status(), StatusCode::OK, "/rate_limit is free");
    assert_eq!(header(&used, "x-ratelimit-used"), Some("3"));
    let status: Value = used.json().await.unwrap();
    assert_eq!(status["resources"]["core"]["remaining"], 0);
    assert_eq!(status["rate"]["limit"], 3);

    let refused = api.get("/user").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"));
    let reset: u64 = header(&refused, "x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        resets.iter().all(|r| *r == reset),
        "one window: {resets:?} vs {reset}"
    );
    assert!(
        reset > now && reset <= now + 3600,
        "a real reset time within the hour"
    );
    let body: Value = refused.json().await.unwrap();
    let bot_id = sim.account_id("portcullis-bot").unwrap();
    assert_eq!(
        body["message"],
        format!("API rate limit exceeded for user ID {bot_id}.")
    );
    assert_eq!(
        body["documentation_url"],
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
    );

    // Another user has their own budget; raising the limit applies at once.
    sim.add_token("ghp_hubot", "hubot", &["repo"]);
    assert_eq!(
        Api::new(&sim, Some("ghp_hubot"))
            .get("/user")
            .await
            .status(),
        StatusCode::OK
    );
    sim.set_rate_limit(5000);
    let response = api.get("/user").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-ratelimit-remaining"), Some("4996"));
}

#[tokio::test]
async fn invitations_can_be_updated_and_cancelled_and_removal_leaves_them_alone() {
    let (sim, api) = demo().await;
    api.put(
        &format!("/repos/{REPO}/collaborators/octocat"),
        json!({"permission": "push"}),
    )
    .await;
    let id = sim.invitation_id(REPO, "octocat").unwrap();

    let updated = api
        .send(
            Method::PATCH,
            &format!("/repos/{REPO}/invitations/{id}"),
            Some(json!({"permissions": "maintain"})),
        )
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["permissions"], "maintain");
    let invalid = api
        .send(
            Method::PATCH,
            &format!("/repos/{REPO}/invitations/{id}"),
            Some(json!({"permissions": "push"})),
        )
        .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Removing a non-collaborator answers 204 and leaves the invitation: connectors cancel it.
    let removed = api
        .delete(&format!("/repos/{REPO}/collaborators/octocat"))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.pending_invitation(REPO, "octocat").as_deref(),
        Some("maintain")
    );

    let cancelled = api.delete(&format!("/repos/{REPO}/invitations/{id}")).await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.pending_invitation(REPO, "octocat"), None);
    assert!(!sim.accept_invitation(REPO, "octocat"));
    let again = api.delete(&format!("/repos/{REPO}/invitations/{id}")).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let listed: Vec<Value> = api
        .get(&format!("/repos/{REPO}/invitations"))
        .await
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty());

    // The documented side effect, when asked for.
    sim.set_remove_cancels_invitations(true);
    api.put(&format!("/repos/{REPO}/collaborators/hubot"), json!({}))
        .await;
    assert_eq!(
        sim.pending_invitation(REPO, "hubot").as_deref(),
        Some("write")
    );
    api.delete(&format!("/repos/{REPO}/collaborators/hubot"))
        .await;
    assert_eq!(sim.pending_invitation(REPO, "hubot"), None);

    // The invitee can decline.
    api.put(&format!("/repos/{REPO}/collaborators/monalisa"), json!({}))
        .await;
    let id = sim.invitation_id(REPO, "monalisa").unwrap();
    sim.add_token("ghp_monalisa", "monalisa", &["repo:invite"]);
    let monalisa = Api::new(&sim, Some("ghp_monalisa"));
    let declined = monalisa
        .delete(&format!("/user/repository_invitations/{id}"))
        .await;
    assert_eq!(declined.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.pending_invitation(REPO, "monalisa"), None);
    assert_eq!(sim.collaborator_role(REPO, "monalisa"), None);
}

#[tokio::test]
async fn every_response_has_githubs_headers_and_unknown_routes_are_404_json() {
    let (sim, api) = demo().await;
    let repo_id = sim.repo_id(REPO).unwrap();
    for (method, path, status) in [
        (Method::GET, "/nope".to_owned(), 404),
        (Method::POST, "/user".to_owned(), 404),
        (
            Method::POST,
            format!("/repos/{REPO}/collaborators/octocat"),
            404,
        ),
        (Method::GET, format!("/repositories/{repo_id}"), 200),
        (
            Method::GET,
            format!("/repositories/{repo_id}/collaborators/portcullis-bot/permission"),
            200,
        ),
        (Method::GET, "/users/nobody-here".to_owned(), 404),
    ] {
        let response = api.send(method.clone(), &path, None).await;
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        for name in [
            "x-github-request-id",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-used",
            "x-ratelimit-reset",
            "x-ratelimit-resource",
        ] {
            assert!(
                header(&response, name).is_some(),
                "{name} on {method} {path}"
            );
        }
        assert_eq!(
            header(&response, "content-type"),
            Some("application/json; charset=utf-8")
        );
        let body: Value = response.json().await.unwrap();
        if status == 404 {
            assert_eq!(body["message"], "Not Found");
        }
    }
    let ids: std::collections::HashSet<_> = sim.requests().iter().map(|r| r.path.clone()).collect();
    assert!(ids.contains("/nope"));
    let recorded = sim.requests();
    assert_eq!(recorded[0].method, "GET");
    assert_eq!(
        recorded[0].user_agent.as_deref(),
        Some("portcullis-tests/1")
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let sim = GithubSimulator::start().await.unwrap();
    let clone = sim.clone();
    let addr = sim.server().addr();
    drop(sim);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_ok(),
        "a clone keeps it up"
    );
    drop(clone);
    let mut stopped = false;
    for _ in 0..10_000 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            stopped = true;
            break;
        }
    }
    assert!(
        stopped,
        "the listener closes after the last handle is dropped"
    );
}
