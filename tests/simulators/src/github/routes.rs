//! The HTTP face of the GitHub simulator: one handler that checks what api.github.com
//! checks, in its order (User-Agent, credentials, rate limit, route, visibility,
//! permission), dispatches to the endpoint, and adds GitHub's headers.
//!
//! Routing is a `match` over path segments rather than an axum route table, so that
//! `/repos/{owner}/{repo}/...` and the id-based `/repositories/{id}/...` paths used in
//! `Link` headers share one implementation, and so that a wrong method on a known path
//! answers GitHub's 404 JSON instead of axum's 405.
//!
//! Must never: echo or store a token, or hold the world lock across an `.await`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::faults::{self, FaultResponses, Faults, Later, WriteFate, retry_after_secs};
use crate::http;

use super::json;
use super::paging::{Query, paginate};
use super::state::{AccountKind, Role, World};

pub type Shared = Arc<Mutex<World>>;

/// Largest request body read; GitHub's endpoints here take tiny JSON objects.
const MAX_BODY: usize = 1 << 20;

const USER_AGENT_REQUIRED: &str = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.";

/// `documentation_url`s GitHub puts in error bodies.
mod docs {
    pub const REST: &str = "https://docs.github.com/rest";
    pub const RATE_LIMITS: &str =
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
    pub const PRIMARY_RATE_LIMITS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits";
    pub const SECONDARY_RATE_LIMITS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";
    pub const AUTHENTICATED_USER: &str =
        "https://docs.github.com/rest/users/users#get-the-authenticated-user";
    pub const GET_USER: &str = "https://docs.github.com/rest/users/users#get-a-user";
    pub const GET_REPO: &str = "https://docs.github.com/rest/repos/repos#get-a-repository";
    pub const ORG_REPOS: &str =
        "https://docs.github.com/rest/repos/repos#list-organization-repositories";
    pub const LIST_COLLABORATORS: &str =
        "https://docs.github.com/rest/collaborators/collaborators#list-repository-collaborators";
    pub const CHECK_COLLABORATOR: &str = "https://docs.github.com/rest/collaborators/collaborators#check-if-a-user-is-a-repository-collaborator";
    pub const ADD_COLLABORATOR: &str =
        "https://docs.github.com/rest/collaborators/collaborators#add-a-repository-collaborator";
    pub const REMOVE_COLLABORATOR: &str =
        "https://docs.github.com/rest/collaborators/collaborators#remove-a-repository-collaborator";
    pub const PERMISSION: &str = "https://docs.github.com/rest/collaborators/collaborators#get-repository-permissions-for-a-user";
    pub const LIST_INVITATIONS: &str =
        "https://docs.github.com/rest/collaborators/invitations#list-repository-invitations";
    pub const UPDATE_INVITATION: &str =
        "https://docs.github.com/rest/collaborators/invitations#update-a-repository-invitation";
    pub const DELETE_INVITATION: &str =
        "https://docs.github.com/rest/collaborators/invitations#delete-a-repository-invitation";
    pub const MY_INVITATIONS: &str = "https://docs.github.com/rest/collaborators/invitations#list-repository-invitations-for-the-authenticated-user";
    pub const ACCEPT_INVITATION: &str =
        "https://docs.github.com/rest/collaborators/invitations#accept-a-repository-invitation";
    pub const DECLINE_INVITATION: &str =
        "https://docs.github.com/rest/collaborators/invitations#decline-a-repository-invitation";
}

pub fn router(world: Shared, faults: Faults) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Ctx { world, faults })
}

/// The router's state.
#[derive(Clone)]
struct Ctx {
    world: Shared,
    faults: Faults,
}

/// GitHub's rate-limit and 5xx answers, for fault injection.
pub struct GithubFaults {
    world: Shared,
    /// Server errors so far: they alternate 502 and 503.
    errors: std::sync::atomic::AtomicU64,
}

impl GithubFaults {
    pub fn new(world: Shared) -> Self {
        Self {
            world,
            errors: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn answer(&self, status: StatusCode, value: Value) -> Response {
        let request_id = self.world.lock().request_id();
        let mut response = plain(status, Payload::Json(value));
        set(&mut response, "x-github-request-id", &request_id);
        response
    }
}

impl FaultResponses for GithubFaults {
    /// With a wait: the secondary rate limit (429 + `retry-after`). Without: the primary
    /// limit's 403 with the budget exhausted and its reset one second ahead.
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        match retry_after {
            Some(wait) => {
                let request_id = self.world.lock().request_id();
                let message = format!(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {request_id}."
                );
                let mut response = plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    Payload::Json(json!({
                        "message": message,
                        "documentation_url": docs::SECONDARY_RATE_LIMITS,
                        "status": "429",
                    })),
                );
                set(&mut response, "x-github-request-id", &request_id);
                set(
                    &mut response,
                    "retry-after",
                    &retry_after_secs(wait).to_string(),
                );
                response
            }
            None => {
                let (limit, reset) = {
                    let world = self.world.lock();
                    (world.rate_limit, super::state::now_secs() + 1)
                };
                let mut response = self.answer(
                    StatusCode::FORBIDDEN,
                    json!({
                        "message": "API rate limit exceeded for user ID 1.",
                        "documentation_url": docs::PRIMARY_RATE_LIMITS,
                        "status": "403",
                    }),
                );
                set(&mut response, "x-ratelimit-limit", &limit.to_string());
                set(&mut response, "x-ratelimit-remaining", "0");
                set(&mut response, "x-ratelimit-used", &limit.to_string());
                set(&mut response, "x-ratelimit-reset", &reset.to_string());
                set(&mut response, "x-ratelimit-resource", "core");
                response
            }
        }
    }

    fn server_error(&self) -> Response {
        let n = self
            .errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (status, message) = if n.is_multiple_of(2) {
            (StatusCode::BAD_GATEWAY, "Server Error")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        };
        self.answer(
            status,
            json!({ "message": message, "documentation_url": docs::REST, "status": status.as_str() }),
        )
    }
}

enum Payload {
    Empty,
    Json(Value),
    Text(&'static str),
}

/// An endpoint's answer before GitHub's common headers are added.
struct Reply {
    status: StatusCode,
    payload: Payload,
    link: Option<String>,
}

impl Reply {
    fn json(status: StatusCode, value: Value) -> Self {
        Self {
            status,
            payload: Payload::Json(value),
            link: None,
        }
    }

    fn ok(value: Value) -> Self {
        Self::json(StatusCode::OK, value)
    }

    fn page(value: Value, link: Option<String>) -> Self {
        Self {
            link,
            ..Self::ok(value)
        }
    }

    fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            payload: Payload::Empty,
            link: None,
        }
    }

    /// GitHub's error body: message, documentation_url, status (a string).
    fn error(status: StatusCode, message: &str, doc: &str) -> Self {
        Self::json(
            status,
            json!({ "message": message, "documentation_url": doc, "status": status.as_str() }),
        )
    }

    fn not_found(doc: &str) -> Self {
        Self::error(StatusCode::NOT_FOUND, "Not Found", doc)
    }

    fn forbidden(message: &str, doc: &str) -> Self {
        Self::error(StatusCode::FORBIDDEN, message, doc)
    }

    fn requires_authentication(doc: &str) -> Self {
        Self::error(StatusCode::UNAUTHORIZED, "Requires authentication", doc)
    }

    fn validation(resource: &str, field: &str, doc: &str) -> Self {
        Self::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "message": "Validation Failed",
                "errors": [{ "resource": resource, "code": "invalid", "field": field }],
                "documentation_url": doc,
                "status": "422",
            }),
        )
    }

    fn problems_parsing_json(doc: &str) -> Self {
        Self::error(StatusCode::BAD_REQUEST, "Problems parsing JSON", doc)
    }
}

/// Who is calling.
#[derive(Clone)]
enum Caller {
    Anonymous,
    User {
        /// Lower-cased login.
        login: String,
        /// Classic scopes; `None` for a fine-grained token.
        scopes: Option<Vec<String>>,
    },
}

impl Caller {
    fn login(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::User { login, .. } => Some(login),
        }
    }

    /// Whether the credentials carry one of `scopes` (fine-grained tokens: decided by
    /// the user's own access, as with a token granted every permission).
    fn has_scope(&self, any_of: &[&str]) -> bool {
        match self {
            Self::Anonymous => false,
            Self::User { scopes: None, .. } => true,
            Self::User {
                scopes: Some(held), ..
            } => held.iter().any(|s| any_of.contains(&s.as_str())),
        }
    }
}

/// The token of an `Authorization: Bearer <t>` / `token <t>` header; `Err` for any other
/// form, which GitHub answers with "Bad credentials".
fn bearer(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(())?;
    let token = token.trim();
    if (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        && !token.is_empty()
    {
        Ok(Some(token.to_owned()))
    } else {
        Err(())
    }
}

async fn handle(State(ctx): State<Ctx>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY).await;
    let mut world = ctx.world.lock();
    let request_id = world.request_id();
    let mut response = match body {
        Ok(body) => respond(&mut world, &ctx, &parts, &body),
        Err(_) => plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            Payload::Text("Request body too large"),
        ),
    };
    drop(world);
    set(&mut response, "x-github-request-id", &request_id);
    response
}

fn plain(status: StatusCode, payload: Payload) -> Response {
    let (body, content_type) = match payload {
        Payload::Empty => (Body::empty(), None),
        Payload::Text(text) => (Body::from(text), Some("text/plain; charset=utf-8")),
        Payload::Json(value) => (
            Body::from(serde_json::to_vec(&value).unwrap_or_default()),
            Some("application/json; charset=utf-8"),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        set(&mut response, "content-type", content_type);
    }
    response
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn respond(
    world: &mut World,
    ctx: &Ctx,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Response {
    // The edge refuses requests without a User-Agent before the API sees them: plain
    // text, no rate-limit headers, nothing counted.
    if !parts.headers.contains_key(header::USER_AGENT) {
        return plain(StatusCode::FORBIDDEN, Payload::Text(USER_AGENT_REQUIRED));
    }

    let (caller, bad_credentials) = match bearer(&parts.headers) {
        Ok(None) => (Caller::Anonymous, false),
        Ok(Some(token)) => match world.tokens.get(&token) {
            Some(t) => (
                Caller::User {
                    login: t.login.clone(),
                    scopes: t.scopes.clone(),
                },
                false,
            ),
            None => (Caller::Anonymous, true),
        },
        Err(()) => (Caller::Anonymous, true),
    };
    let bucket = caller.login().unwrap_or_default().to_owned();
    let limit = world.limit_for(&bucket);
    let segments = http::path_segments(parts.uri.path());
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = parts.method.as_str();
    // `GET /rate_limit` is free, as on GitHub.
    let counted = !(method == "GET" && segments == ["rate_limit"]);

    let budget = world.budget(&bucket);
    let reply = if counted && budget.used >= limit {
        let message = match world.accounts.get(&bucket) {
            Some(account) => format!("API rate limit exceeded for user ID {}.", account.id),
            None => "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)".to_owned(),
        };
        Reply::forbidden(&message, docs::RATE_LIMITS)
    } else {
        if counted {
            world.spend(&bucket);
        }
        if bad_credentials {
            Reply::error(StatusCode::UNAUTHORIZED, "Bad credentials", docs::REST)
        } else if method == "GET" && segments == ["rate_limit"] {
            rate_limit(world, &bucket)
        } else {
            let query = Query::parse(parts.uri.query());
            if method != "GET" && ctx.faults.write_faults_pending() {
                let write = Write {
                    caller: caller.clone(),
                    method: method.to_owned(),
                    segments: segments.iter().map(|s| (*s).to_owned()).collect(),
                    query: parts.uri.query().map(str::to_owned),
                    body: body.clone(),
                };
                write_with_faults(world, ctx, write)
            } else {
                route(world, &caller, method, &segments, &query, body)
            }
        }
    };

    let budget = world.budget(&bucket);
    let mut response = plain(reply.status, reply.payload);
    if let Some(link) = &reply.link {
        set(&mut response, "link", link);
    }
    set(&mut response, "x-github-api-version-selected", "2022-11-28");
    set(
        &mut response,
        "x-github-media-type",
        "github.v3; format=json",
    );
    set(&mut response, "x-ratelimit-limit", &limit.to_string());
    set(
        &mut response,
        "x-ratelimit-remaining",
        &limit.saturating_sub(budget.used).to_string(),
    );
    set(&mut response, "x-ratelimit-used", &budget.used.to_string());
    set(
        &mut response,
        "x-ratelimit-reset",
        &budget.reset.to_string(),
    );
    set(&mut response, "x-ratelimit-resource", "core");
    if let Caller::User {
        scopes: Some(scopes),
        ..
    } = &caller
    {
        set(&mut response, "x-oauth-scopes", &scopes.join(", "));
        set(
            &mut response,
            "x-accepted-oauth-scopes",
            accepted_scopes(&segments),
        );
    }
    response
}

/// A write request, owned so that a lagging write can be applied later.
struct Write {
    caller: Caller,
    method: String,
    segments: Vec<String>,
    query: Option<String>,
    body: Bytes,
}

impl Write {
    fn apply(&self, world: &mut World) -> Reply {
        let segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        let query = Query::parse(self.query.as_deref());
        route(
            world,
            &self.caller,
            &self.method,
            &segments,
            &query,
            &self.body,
        )
    }
}

/// A write (every non-`GET` route) while write faults are pending: it is answered as it
/// would be, from a copy of the world; if it succeeds it is then dropped (the copy is
/// discarded), lagged (re-run on the world `lag` later, against the state as it is then),
/// or applied (the copy becomes the world). A refused write is answered by the world
/// itself and uses no fault up.
fn write_with_faults(world: &mut World, ctx: &Ctx, write: Write) -> Reply {
    let mut copy = world.clone();
    let reply = write.apply(&mut copy);
    if !reply.status.is_success() {
        return write.apply(world);
    }
    match ctx.faults.decide_write() {
        WriteFate::Stand => *world = copy,
        WriteFate::Drop => {}
        WriteFate::Lag(lag) => faults::schedule(
            &ctx.world,
            vec![Later {
                lag,
                apply: Box::new(move |world: &mut World| {
                    let _late = write.apply(world);
                }),
            }],
        ),
    }
    reply
}

/// `x-accepted-oauth-scopes`: the scopes that would have let the request through.
fn accepted_scopes(segments: &[&str]) -> &'static str {
    match segments {
        ["repos" | "repositories", ..] => "repo",
        ["user", "repository_invitations", ..] => "repo, repo:invite",
        _ => "",
    }
}

fn rate_limit(world: &mut World, bucket: &str) -> Reply {
    let limit = world.limit_for(bucket);
    let budget = world.budget(bucket);
    let core = json!({
        "limit": limit,
        "used": budget.used,
        "remaining": limit.saturating_sub(budget.used),
        "reset": budget.reset,
    });
    let now = super::state::now_secs();
    let fresh = |limit: u32, reset: u64| json!({ "limit": limit, "used": 0, "remaining": limit, "reset": reset });
    Reply::ok(json!({
        "resources": {
            "core": core,
            "search": fresh(30, now + 60),
            "graphql": fresh(5000, now + 3600),
            "integration_manifest": fresh(5000, now + 3600),
        },
        "rate": core,
    }))
}

fn route(
    world: &mut World,
    caller: &Caller,
    method: &str,
    segments: &[&str],
    query: &Query,
    body: &[u8],
) -> Reply {
    match (method, segments) {
        ("GET", ["user"]) => match caller.login().and_then(|l| world.account(l)) {
            Some(account) => Reply::ok(json::full_user(world, account)),
            None => Reply::requires_authentication(docs::AUTHENTICATED_USER),
        },
        ("GET", ["users", login]) => match world.accounts.get(&login.to_ascii_lowercase()) {
            Some(account) => Reply::ok(json::full_user(world, account)),
            None => Reply::not_found(docs::GET_USER),
        },
        ("GET", ["user", "repository_invitations"]) => my_invitations(world, caller, query),
        ("PATCH" | "DELETE", ["user", "repository_invitations", id]) => {
            answer_invitation(world, caller, method == "PATCH", id)
        }
        ("GET", ["orgs", org, "repos"]) => {
            let key = org.to_ascii_lowercase();
            org_repos(world, caller, &key, query)
        }
        ("GET", ["organizations", id, "repos"]) => {
            let key = world
                .accounts
                .iter()
                .find(|(_, a)| id.parse() == Ok(a.id))
                .map(|(k, _)| k.clone());
            match key {
                Some(key) => org_repos(world, caller, &key, query),
                None => Reply::not_found(docs::ORG_REPOS),
            }
        }
        (_, ["repos", owner, name, rest @ ..]) => {
            let id = world.repo_id(&format!("{owner}/{name}"));
            repository(world, caller, method, id, rest, query, body)
        }
        (_, ["repositories", id, rest @ ..]) => {
            let id = id.parse().ok().filter(|id| world.repos.contains_key(id));
            repository(world, caller, method, id, rest, query, body)
        }
        _ => Reply::not_found(docs::REST),
    }
}

/// The `documentation_url` of a repository endpoint, also used for its 404s.
fn repo_doc(method: &str, rest: &[&str]) -> &'static str {
    match (method, rest) {
        ("GET", []) => docs::GET_REPO,
        ("GET", ["collaborators"]) => docs::LIST_COLLABORATORS,
        ("GET", ["collaborators", _]) => docs::CHECK_COLLABORATOR,
        ("PUT", ["collaborators", _]) => docs::ADD_COLLABORATOR,
        ("DELETE", ["collaborators", _]) => docs::REMOVE_COLLABORATOR,
        ("GET", ["collaborators", _, "permission"]) => docs::PERMISSION,
        ("GET", ["invitations"]) => docs::LIST_INVITATIONS,
        ("PATCH", ["invitations", _]) => docs::UPDATE_INVITATION,
        ("DELETE", ["invitations", _]) => docs::DELETE_INVITATION,
        _ => docs::REST,
    }
}

const ADMIN_REQUIRED: &str = "Must have admin rights to Repository.";
const PUSH_REQUIRED: &str = "Must have push access to view repository collaborators.";

fn repository(
    world: &mut World,
    caller: &Caller,
    method: &str,
    repo_id: Option<u64>,
    rest: &[&str],
    query: &Query,
    body: &[u8],
) -> Reply {
    let doc = repo_doc(method, rest);
    if doc == docs::REST {
        return Reply::not_found(doc);
    }
    if method != "GET" && caller.login().is_none() {
        return Reply::requires_authentication(doc);
    }
    // Repositories are private: invisible (404) without a role, or with a classic token
    // that lacks the `repo` scope.
    let Some(repo) = repo_id.and_then(|id| world.repos.get(&id)) else {
        return Reply::not_found(doc);
    };
    let role = match caller.login() {
        Some(login) if caller.has_scope(&["repo"]) => world.role(repo, login),
        _ => None,
    };
    let Some(role) = role else {
        return Reply::not_found(doc);
    };
    let repo_id = repo.id;
    let need = |min: Role, message: &str| (role < min).then(|| Reply::forbidden(message, doc));
    match (method, rest) {
        ("GET", []) => Reply::ok(json::repository_for(world, repo, Some(role))),
        ("GET", ["collaborators"]) => need(Role::Write, PUSH_REQUIRED)
            .unwrap_or_else(|| list_collaborators(world, repo_id, query, doc)),
        ("GET", ["collaborators", login]) => {
            need(Role::Write, PUSH_REQUIRED).unwrap_or_else(|| {
                match world
                    .user(login)
                    .and_then(|u| world.role(repo, &u.login.to_ascii_lowercase()))
                {
                    Some(_) => Reply::no_content(),
                    None => Reply::not_found(doc),
                }
            })
        }
        ("GET", ["collaborators", login, "permission"]) => permission(world, repo_id, login, doc),
        ("PUT", ["collaborators", login]) => need(Role::Admin, ADMIN_REQUIRED)
            .unwrap_or_else(|| add_collaborator(world, caller, repo_id, login, body, doc)),
        ("DELETE", ["collaborators", login]) => {
            let target = login.to_ascii_lowercase();
            if caller.login() != Some(target.as_str()) && role < Role::Admin {
                return Reply::forbidden(ADMIN_REQUIRED, doc);
            }
            remove_collaborator(world, repo_id, &target, doc)
        }
        ("GET", ["invitations"]) => need(Role::Admin, ADMIN_REQUIRED).unwrap_or_else(|| {
            let mut items: Vec<_> = world
                .invitations
                .values()
                .filter(|i| i.repo_id == repo_id)
                .collect();
            items.sort_by_key(|i| i.id);
            let link_url = format!("{}/repositories/{repo_id}/invitations", world.base_url);
            let (items, link) = paginate(items, query, &link_url);
            let items = items
                .into_iter()
                .map(|i| json::invitation(world, i))
                .collect();
            Reply::page(Value::Array(items), link)
        }),
        ("PATCH", ["invitations", id]) => need(Role::Admin, ADMIN_REQUIRED)
            .unwrap_or_else(|| update_invitation(world, repo_id, id, body, doc)),
        ("DELETE", ["invitations", id]) => need(Role::Admin, ADMIN_REQUIRED).unwrap_or_else(|| {
            let id = id.parse::<u64>().ok();
            match id.filter(|id| {
                world
                    .invitations
                    .get(id)
                    .is_some_and(|i| i.repo_id == repo_id)
            }) {
                Some(id) => {
                    world.invitations.remove(&id);
                    Reply::no_content()
                }
                None => Reply::not_found(doc),
            }
        }),
        _ => Reply::not_found(doc),
    }
}

fn list_collaborators(world: &World, repo_id: u64, query: &Query, doc: &str) -> Reply {
    let Some(repo) = world.repos.get(&repo_id) else {
        return Reply::not_found(doc);
    };
    // Organizations here have no members, so every collaborator is both a direct and
    // an outside collaborator; the owner of a user-owned repository is direct only.
    let affiliation = query.get("affiliation").unwrap_or_else(|| "all".to_owned());
    if !matches!(affiliation.as_str(), "all" | "direct" | "outside") {
        return Reply::validation("Repository", "affiliation", doc);
    }
    let minimum = match query.get("permission") {
        None => None,
        Some(p) => match Role::from_put(&p) {
            Some(role) => Some(role),
            None => return Reply::validation("Repository", "permission", doc),
        },
    };
    let mut logins: Vec<&String> = repo.collaborators.keys().collect();
    let owner_is_user = world
        .account(&repo.owner)
        .is_some_and(|a| a.kind == AccountKind::User);
    if owner_is_user && affiliation != "outside" && !repo.collaborators.contains_key(&repo.owner) {
        logins.push(&repo.owner);
    }
    logins.sort();
    let items: Vec<Value> = logins
        .into_iter()
        .filter_map(|login| {
            let role = world.role(repo, login)?;
            if minimum.is_some_and(|min| role < min) {
                return None;
            }
            let account = world.account(login)?;
            Some(json::collaborator(world, account, Some(role)))
        })
        .collect();
    let link_url = format!("{}/repositories/{repo_id}/collaborators", world.base_url);
    let (items, link) = paginate(items, query, &link_url);
    Reply::page(Value::Array(items), link)
}

fn permission(world: &World, repo_id: u64, login: &str, doc: &str) -> Reply {
    let (Some(repo), Some(user)) = (world.repos.get(&repo_id), world.user(login)) else {
        return Reply::not_found(doc);
    };
    // The effective role; a pending invitation grants nothing.
    let role = world.role(repo, &user.login.to_ascii_lowercase());
    Reply::ok(json!({
        "permission": role.map_or("none", Role::permission),
        "role_name": role.map_or("none", Role::name),
        "user": json::collaborator(world, user, role),
    }))
}

/// The body of a write, as a JSON object; `Err` is GitHub's 400 for unparsable JSON.
/// An empty body is an empty object.
fn object(body: &[u8], doc: &str) -> Result<serde_json::Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Reply::problems_parsing_json(doc)),
    }
}

fn add_collaborator(
    world: &mut World,
    caller: &Caller,
    repo_id: u64,
    login: &str,
    body: &[u8],
    doc: &str,
) -> Reply {
    let fields = match object(body, doc) {
        Ok(fields) => fields,
        Err(reply) => return reply,
    };
    let Some(target) = world.user(login).map(|u| u.login.to_ascii_lowercase()) else {
        return Reply::not_found(doc);
    };
    let role = match fields.get("permission") {
        None | Some(Value::Null) => Role::Write, // GitHub's default: push
        Some(Value::String(p)) => match Role::from_put(p) {
            Some(role) => role,
            None => return Reply::validation("Repository", "permission", doc),
        },
        Some(_) => return Reply::validation("Repository", "permission", doc),
    };
    let Some(repo) = world.repos.get_mut(&repo_id) else {
        return Reply::not_found(doc);
    };
    if let Some(held) = repo.collaborators.get_mut(&target) {
        // Already a collaborator: the level changes silently (it may go down).
        *held = role;
        return Reply::no_content();
    }
    if world
        .repos
        .get(&repo_id)
        .is_some_and(|r| world.role(r, &target).is_some())
    {
        // The owner of a user-owned repository: nothing to change.
        return Reply::no_content();
    }
    let inviter = caller.login().unwrap_or_default().to_owned();
    let id = world.invite(repo_id, &target, &inviter, role);
    match world.invitations.get(&id) {
        Some(invitation) => Reply::json(StatusCode::CREATED, json::invitation(world, invitation)),
        None => Reply::not_found(doc),
    }
}

fn remove_collaborator(world: &mut World, repo_id: u64, target: &str, doc: &str) -> Reply {
    if world.user(target).is_none() {
        return Reply::not_found(doc);
    }
    if let Some(repo) = world.repos.get_mut(&repo_id) {
        repo.collaborators.remove(target);
    }
    // GitHub's docs say this endpoint also cancels outstanding invitations. By default the
    // simulator does NOT: connectors must cancel invitations themselves through
    // `DELETE /repos/{o}/{r}/invitations/{id}`, which is correct against github.com either
    // way, and a connector that relied on the side effect would be caught here.
    // `GithubSimulator::set_remove_cancels_invitations(true)` turns the documented
    // behaviour on.
    if world.remove_cancels_invitations {
        world
            .invitations
            .retain(|_, i| !(i.repo_id == repo_id && i.invitee == target));
    }
    Reply::no_content()
}

fn update_invitation(world: &mut World, repo_id: u64, id: &str, body: &[u8], doc: &str) -> Reply {
    let Some(id) = id.parse::<u64>().ok().filter(|id| {
        world
            .invitations
            .get(id)
            .is_some_and(|i| i.repo_id == repo_id)
    }) else {
        return Reply::not_found(doc);
    };
    let fields = match object(body, doc) {
        Ok(fields) => fields,
        Err(reply) => return reply,
    };
    let role = match fields.get("permissions") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => match Role::from_name(p) {
            Some(role) => Some(role),
            None => return Reply::validation("RepositoryInvitation", "permissions", doc),
        },
        Some(_) => return Reply::validation("RepositoryInvitation", "permissions", doc),
    };
    if let (Some(role), Some(invitation)) = (role, world.invitations.get_mut(&id)) {
        invitation.role = role;
    }
    match world.invitations.get(&id) {
        Some(invitation) => Reply::ok(json::invitation(world, invitation)),
        None => Reply::not_found(doc),
    }
}

fn my_invitations(world: &World, caller: &Caller, query: &Query) -> Reply {
    let Some(login) = caller.login() else {
        return Reply::requires_authentication(docs::MY_INVITATIONS);
    };
    let mine: Vec<_> = world
        .invitations
        .values()
        .filter(|i| i.invitee == login)
        .collect();
    let link_url = format!("{}/user/repository_invitations", world.base_url);
    let (items, link) = paginate(mine, query, &link_url);
    let items = items
        .into_iter()
        .map(|i| json::invitation(world, i))
        .collect();
    Reply::page(Value::Array(items), link)
}

/// The invitee accepts (`PATCH`) or declines (`DELETE`) an invitation addressed to them.
fn answer_invitation(world: &mut World, caller: &Caller, accept: bool, id: &str) -> Reply {
    let doc = if accept {
        docs::ACCEPT_INVITATION
    } else {
        docs::DECLINE_INVITATION
    };
    let Some(login) = caller.login() else {
        return Reply::requires_authentication(doc);
    };
    let id = id.parse::<u64>().ok().filter(|id| {
        caller.has_scope(&["repo", "repo:invite"])
            && world
                .invitations
                .get(id)
                .is_some_and(|i| i.invitee == login)
    });
    let Some(id) = id else {
        return Reply::not_found(doc);
    };
    if accept {
        world.accept(id);
    } else {
        world.invitations.remove(&id);
    }
    Reply::no_content()
}

fn org_repos(world: &World, caller: &Caller, org_key: &str, query: &Query) -> Reply {
    let Some(org) = world
        .account(org_key)
        .filter(|a| a.kind == AccountKind::Organization)
    else {
        return Reply::not_found(docs::ORG_REPOS);
    };
    let kind = query.get("type").unwrap_or_else(|| "all".to_owned());
    let sort = query.get("sort").unwrap_or_else(|| "created".to_owned());
    let ascending = match query.get("direction").as_deref() {
        Some("asc") => true,
        Some("desc") => false,
        _ => sort == "full_name",
    };
    let mut visible: Vec<_> = world
        .repos
        .values()
        .filter(|r| r.owner == org_key && kind != "public" && kind != "forks")
        .filter_map(|r| {
            let role = match caller.login() {
                Some(login) if caller.has_scope(&["repo"]) => world.role(r, login),
                _ => None,
            }?;
            Some((r, role))
        })
        .collect();
    if sort == "full_name" {
        visible.sort_by_key(|(r, _)| r.name.to_ascii_lowercase());
    } else {
        visible.sort_by_key(|(r, _)| r.id); // ids grow with creation time
    }
    if !ascending {
        visible.reverse();
    }
    let items: Vec<Value> = visible
        .into_iter()
        .map(|(r, role)| json::repository_for(world, r, Some(role)))
        .collect();
    let link_url = format!("{}/organizations/{}/repos", world.base_url, org.id);
    let (items, link) = paginate(items, query, &link_url);
    Reply::page(Value::Array(items), link)
}
