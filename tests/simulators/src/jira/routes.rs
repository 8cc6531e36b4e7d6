//! The HTTP face of the Jira simulator: Basic authentication, the rate-limit window,
//! dispatch over path segments, Jira's JSON and error bodies, and its headers.
//!
//! Must never: echo or store a credential, or hold the world lock across an `.await`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::faults::{FaultResponses, retry_after_secs, schedule};
use crate::http::{self, query_value};

use super::state::{Actor, ActorError, NextPage, World, now_secs};

pub type Shared = Arc<Mutex<World>>;

const MAX_BODY: usize = 1 << 20;

pub fn router(world: Shared) -> Router {
    Router::new().fallback(handle).with_state(world)
}

struct Reply {
    status: StatusCode,
    body: Option<Value>,
}

impl Reply {
    fn ok(value: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(value),
        }
    }

    fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }

    /// Jira's error body: `errorMessages` and a (here always empty) `errors` map.
    fn error(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            body: Some(json!({ "errorMessages": [message], "errors": {} })),
        }
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let mut world = shared.lock();
    let request_id = world.request_id();
    let mut response = respond(&mut world, &parts, &body);
    let later = std::mem::take(&mut world.later);
    drop(world);
    schedule(&shared, later);
    set(&mut response, "x-arequestid", &request_id);
    response
}

/// Jira's answers for injected faults (see [`crate::faults`]).
pub struct JiraFaults(pub Shared);

impl FaultResponses for JiraFaults {
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let mut world = self.0.lock();
        let reset = epoch_after(retry_after.unwrap_or(Duration::from_secs(60)));
        // The reset has minute precision; round up so it never comes before the wait ends.
        let reset = reset.div_ceil(60) * 60;
        let mut response = rate_limited(world.rate_limit, reset, retry_after.map(retry_after_secs));
        set(&mut response, "x-arequestid", &world.request_id());
        response
    }

    fn server_error(&self) -> Response {
        let mut response = build(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable. Please try again later.",
        ));
        set(&mut response, "x-arequestid", &self.0.lock().request_id());
        response
    }
}

/// The epoch second at or after `wait` from now.
fn epoch_after(wait: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    retry_after_secs(now + wait)
}

/// Jira's 429: `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` at `reset` (epoch
/// seconds, shown to the minute), `RateLimit-Reason`, and `Retry-After` (seconds) when
/// given.
fn rate_limited(limit: u32, reset: u64, retry_after: Option<u64>) -> Response {
    let mut response = build(Reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "Rate limit exceeded.",
    ));
    set(&mut response, "x-ratelimit-limit", &limit.to_string());
    set(&mut response, "x-ratelimit-remaining", "0");
    set(&mut response, "x-ratelimit-reset", &iso_minutes(reset));
    set(&mut response, "ratelimit-reason", "jira-burst-based");
    if let Some(secs) = retry_after {
        set(&mut response, "retry-after", &secs.to_string());
    }
    response
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn build(reply: Reply) -> Response {
    let mut response = match reply.body {
        Some(value) => {
            let mut r = Response::new(Body::from(serde_json::to_vec(&value).unwrap_or_default()));
            set(&mut r, "content-type", "application/json;charset=UTF-8");
            r
        }
        None => Response::new(Body::empty()),
    };
    *response.status_mut() = reply.status;
    response
}

/// The account id behind `Authorization: Basic base64(email:token)`.
fn caller(world: &World, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (email, token) = decoded.split_once(':')?;
    world
        .tokens
        .get(&(email.to_owned(), token.to_owned()))
        .cloned()
}

/// `yyyy-MM-ddTHH:mmZ`, the format Atlassian documents for `X-RateLimit-Reset`.
fn iso_minutes(epoch_secs: u64) -> String {
    i64::try_from(epoch_secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_default()
}

fn respond(world: &mut World, parts: &axum::http::request::Parts, body: &Bytes) -> Response {
    let now = now_secs();
    let limit = world.rate_limit;
    let window = match world.spend(now) {
        Ok(window) => window,
        Err(reset) => {
            let retry_after = world
                .send_retry_after
                .then(|| reset.saturating_sub(now).max(1));
            return rate_limited(limit, reset, retry_after);
        }
    };
    let reply = match caller(world, &parts.headers) {
        // Jira Cloud's answer to missing or wrong credentials is plain text.
        None => {
            let mut r = Response::new(Body::from(
                "Client must be authenticated to access this resource.",
            ));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            set(&mut r, "content-type", "text/plain;charset=UTF-8");
            r
        }
        Some(account) => {
            let segments = http::path_segments(parts.uri.path());
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            let query = http::query_pairs(parts.uri.query());
            let asked = parts
                .uri
                .path_and_query()
                .map_or(parts.uri.path(), |p| p.as_str());
            build(route(
                world,
                &account,
                parts.method.as_str(),
                &segments,
                asked,
                &query,
                body,
            ))
        }
    };
    let mut response = reply;
    let remaining = limit.saturating_sub(window.used);
    set(&mut response, "x-ratelimit-limit", &limit.to_string());
    set(
        &mut response,
        "x-ratelimit-remaining",
        &remaining.to_string(),
    );
    if remaining * 5 < limit {
        set(&mut response, "x-ratelimit-nearlimit", "true");
    }
    response
}

fn route(
    world: &mut World,
    account: &str,
    method: &str,
    segments: &[&str],
    asked: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Reply {
    let admin = world.admins.contains(account);
    match (method, segments) {
        ("GET", ["rest", "api", "3", "myself"]) => match world.users.get(account) {
            Some(user) => Reply::ok(user_json(world, account, &user.display_name, &user.email)),
            None => Reply::error(StatusCode::NOT_FOUND, "User does not exist."),
        },
        ("GET", ["rest", "api", "3", "mypermissions"]) => my_permissions(admin, query),
        ("GET", ["rest", "api", "3", "project", "search"]) => project_search(world, query, asked),
        (_, ["rest", "api", "3", "project", key, "role", rest @ ..]) => {
            let Some(project) = world.project(key) else {
                return Reply::error(
                    StatusCode::NOT_FOUND,
                    &format!("No project could be found with key '{key}'."),
                );
            };
            let project_key = project.key.clone();
            match (method, rest) {
                ("GET", []) => {
                    let map: serde_json::Map<String, Value> = project
                        .roles
                        .keys()
                        .filter_map(|id| world.roles.get(id))
                        .map(|r| (r.name.clone(), json!(role_url(world, key, r.id))))
                        .collect();
                    Reply::ok(Value::Object(map))
                }
                (_, [id]) => {
                    let Some(id) = id
                        .parse::<u64>()
                        .ok()
                        .filter(|id| project.roles.contains_key(id))
                    else {
                        return Reply::error(
                            StatusCode::NOT_FOUND,
                            &format!(
                                "Can not retrieve a role actor for a null project role. Role id {id} is not valid for project {project_key}."
                            ),
                        );
                    };
                    role_endpoint(world, admin, method, key, &project_key, id, query, body)
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn not_found() -> Reply {
    Reply::error(StatusCode::NOT_FOUND, "null for uri")
}

fn role_url(world: &World, key: &str, id: u64) -> String {
    format!("{}/rest/api/3/project/{key}/role/{id}", world.base_url)
}

#[allow(clippy::too_many_arguments, reason = "one endpoint's whole request")]
fn role_endpoint(
    world: &mut World,
    admin: bool,
    method: &str,
    given_key: &str,
    key: &str,
    id: u64,
    query: &[(String, String)],
    body: &[u8],
) -> Reply {
    if method != "GET" && !admin {
        return Reply::error(
            StatusCode::FORBIDDEN,
            "You cannot edit the configuration of this project.",
        );
    }
    match method {
        "GET" => Reply::ok(role_json(world, given_key, key, id)),
        "POST" => {
            let users = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map.get("user").cloned(),
                _ => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        "Unexpected character: was expecting a JSON object.",
                    );
                }
            };
            let ids: Vec<String> = match users {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            if ids.is_empty() {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "You must specify at least one user or group to add to the project role.",
                );
            }
            let before = world
                .faults
                .write_faults_pending()
                .then(|| world.actors(key, id).cloned().unwrap_or_default());
            match world.add_users(key, id, &ids) {
                Ok(()) => {
                    let reply = Reply::ok(role_json(world, given_key, key, id));
                    let later_key = key.to_owned();
                    world.write_faults(
                        before.map(|before| move |w: &mut World| w.set_actors(key, id, before)),
                        move |w| {
                            let key = later_key;
                            // Whoever was added meanwhile stays; the rest are added.
                            for user in &ids {
                                let _ = w.add_users(&key, id, std::slice::from_ref(user));
                            }
                        },
                    );
                    reply
                }
                Err(ActorError::AlreadyMember(name)) => Reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("User '{name}' is already a member of the project role."),
                ),
                Err(ActorError::UnknownUser(user)) | Err(ActorError::NotMember(user)) => {
                    Reply::error(
                        StatusCode::NOT_FOUND,
                        &format!("Jira could not find user with account ID '{user}'."),
                    )
                }
            }
        }
        "DELETE" => {
            let Some(user) = query_value(query, "user") else {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "You must specify a user or a group to remove from the project role.",
                );
            };
            let before = world
                .faults
                .write_faults_pending()
                .then(|| world.actors(key, id).cloned().unwrap_or_default());
            match world.remove_user(key, id, user) {
                Ok(()) => {
                    let (later_key, user) = (key.to_owned(), user.to_owned());
                    world.write_faults(
                        before.map(|before| move |w: &mut World| w.set_actors(key, id, before)),
                        move |w| {
                            let key = later_key;
                            // Already gone is fine: the removal's effect is the same.
                            let _ = w.remove_user(&key, id, &user);
                        },
                    );
                    Reply::no_content()
                }
                Err(_) => Reply::error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "The user with account ID '{user}' is not a member of the project role."
                    ),
                ),
            }
        }
        _ => not_found(),
    }
}

fn role_json(world: &World, given_key: &str, key: &str, id: u64) -> Value {
    let def = world.roles.get(&id);
    let actors: Vec<Value> = world
        .actors(key, id)
        .map(|actors| {
            actors
                .iter()
                .map(|a| match a {
                    Actor::User { id, account_id } => json!({
                        "id": id,
                        "displayName": world.users.get(account_id).map_or("", |u| u.display_name.as_str()),
                        "type": "atlassian-user-role-actor",
                        "actorUser": { "accountId": account_id },
                    }),
                    Actor::Group { id, name } => json!({
                        "id": id,
                        "displayName": name,
                        "type": "atlassian-group-role-actor",
                        "name": name,
                        "actorGroup": { "name": name, "displayName": name, "groupId": format!("{id:08x}-0000-4000-8000-000000000000") },
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "self": role_url(world, given_key, id),
        "name": def.map_or("", |d| d.name.as_str()),
        "id": id,
        "description": def.map_or("", |d| d.description.as_str()),
        "actors": actors,
    })
}

fn user_json(world: &World, account: &str, name: &str, email: &str) -> Value {
    json!({
        "self": format!("{}/rest/api/3/user?accountId={account}", world.base_url),
        "accountId": account,
        "accountType": "atlassian",
        "emailAddress": email,
        "displayName": name,
        "active": true,
        "timeZone": "Etc/UTC",
        "locale": "en_US",
    })
}

fn my_permissions(admin: bool, query: &[(String, String)]) -> Reply {
    let Some(wanted) = query_value(query, "permissions").filter(|p| !p.is_empty()) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "The 'permissions' query parameter is required.",
        );
    };
    let mut permissions = serde_json::Map::new();
    for key in wanted.split(',').map(str::trim) {
        let (id, name, kind) = match key {
            "ADMINISTER" => ("0", "Administer Jira", "GLOBAL"),
            "ADMINISTER_PROJECTS" => ("23", "Administer Projects", "PROJECT"),
            "BROWSE_PROJECTS" => ("10", "Browse Projects", "PROJECT"),
            other => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid permission key: {other}"),
                );
            }
        };
        let have = admin || key == "BROWSE_PROJECTS";
        permissions.insert(
            key.to_owned(),
            json!({ "id": id, "key": key, "name": name, "type": kind, "description": name, "havePermission": have }),
        );
    }
    Reply::ok(json!({ "permissions": permissions }))
}

/// One page of projects; `asked` is the path and query it was asked for, which the
/// [`NextPage::Itself`] fault links back to.
fn project_search(world: &World, query: &[(String, String)], asked: &str) -> Reply {
    let start: usize = query_value(query, "startAt")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max: usize = query_value(query, "maxResults")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    let all: Vec<_> = world.projects.values().collect();
    let values: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|p| {
            json!({
                "self": format!("{}/rest/api/3/project/{}", world.base_url, p.id),
                "id": p.id.to_string(),
                "key": p.key,
                "name": p.name,
                "projectTypeKey": "software",
                "simplified": false,
                "style": "classic",
            })
        })
        .collect();
    let is_last = start + values.len() >= all.len();
    let url_at = |origin: &str, at: usize| {
        format!("{origin}/rest/api/3/project/search?maxResults={max}&startAt={at}")
    };
    let url = |at: usize| url_at(&world.base_url, at);
    let mut page = json!({
        "self": url(start),
        "maxResults": max,
        "startAt": start,
        "total": all.len(),
        "isLast": is_last,
        "values": values,
    });
    if !is_last {
        page["nextPage"] = json!(match &world.next_page {
            NextPage::Faithful => url(start + max),
            NextPage::OtherOrigin(origin) => url_at(origin, start + max),
            NextPage::Itself => format!("{}{asked}", world.base_url),
        });
    }
    Reply::ok(page)
}
