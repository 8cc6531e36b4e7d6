//! The HTTP face of the Okta simulator: `SSWS` token authentication, the rate-limit
//! window and its headers, dispatch over path segments, Okta's JSON, error bodies and
//! `after`-cursor paging with `Link` headers.
//!
//! Must never: echo or store a token, or hold the world lock across an `.await`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::faults::{FaultResponses, retry_after_secs, schedule};
use crate::http::{self, query_value};

use super::state::{Group, GroupType, User, World, WriteError, now_secs};

pub type Shared = Arc<Mutex<World>>;

pub fn router(world: Shared) -> Router {
    Router::new().fallback(handle).with_state(world)
}

struct Reply {
    status: StatusCode,
    body: Option<Value>,
    links: Vec<String>,
}

impl Reply {
    fn ok(value: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(value),
            links: Vec::new(),
        }
    }

    fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            links: Vec::new(),
        }
    }
}

/// Okta's error body.
fn error(world: &mut World, status: StatusCode, code: &str, summary: &str) -> Reply {
    Reply {
        status,
        body: Some(json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": world.error_id(),
            "errorCauses": [],
        })),
        links: Vec::new(),
    }
}

fn not_found(world: &mut World, id: &str, what: &str) -> Reply {
    error(
        world,
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} ({what})"),
    )
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let mut world = shared.lock();
    let response = respond(&mut world, &request);
    let later = std::mem::take(&mut world.later);
    drop(world);
    schedule(&shared, later);
    response
}

/// Okta's answers for injected faults (see [`crate::faults`]).
pub struct OktaFaults(pub Shared);

impl FaultResponses for OktaFaults {
    /// 429 E0000047 with `X-Rate-Limit-Remaining: 0` and `X-Rate-Limit-Reset` (epoch
    /// seconds) at the end of the wait (a minute when none is given); `Retry-After`
    /// only when given, as Okta itself documents only the reset header.
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let mut world = self.0.lock();
        let reply = rate_limited(&mut world);
        let mut response = render(reply);
        let reset = epoch_after(retry_after.unwrap_or(Duration::from_secs(60)));
        set(
            &mut response,
            "x-rate-limit-limit",
            &world.rate_limit.to_string(),
        );
        set(&mut response, "x-rate-limit-remaining", "0");
        set(&mut response, "x-rate-limit-reset", &reset.to_string());
        if let Some(wait) = retry_after {
            set(
                &mut response,
                "retry-after",
                &retry_after_secs(wait).to_string(),
            );
        }
        response
    }

    fn server_error(&self) -> Response {
        let mut world = self.0.lock();
        render(error(
            &mut world,
            StatusCode::INTERNAL_SERVER_ERROR,
            "E0000009",
            "Internal Server Error",
        ))
    }
}

/// The epoch second at or after `wait` from now.
fn epoch_after(wait: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    retry_after_secs(now + wait)
}

/// Okta's 429 body (E0000047); the caller adds the rate-limit headers.
fn rate_limited(world: &mut World) -> Reply {
    error(
        world,
        StatusCode::TOO_MANY_REQUESTS,
        "E0000047",
        "API call exceeded rate limit due to too many requests.",
    )
}

/// The body, status and `Link` headers of a reply.
fn render(reply: Reply) -> Response {
    let mut response = match reply.body {
        Some(value) => {
            let mut r = Response::new(Body::from(serde_json::to_vec(&value).unwrap_or_default()));
            set(&mut r, "content-type", "application/json");
            r
        }
        None => Response::new(Body::empty()),
    };
    *response.status_mut() = reply.status;
    for link in reply.links {
        // Okta sends one `Link` header per relation.
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().append("link", value);
        }
    }
    response
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The admin behind `Authorization: SSWS <token>`.
fn caller(world: &World, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if scheme != "SSWS" {
        return None;
    }
    world.tokens.get(token.trim()).cloned()
}

fn respond(world: &mut World, request: &Request) -> Response {
    let now = now_secs();
    let limit = world.rate_limit;
    let (reply, window) = match world.spend(now) {
        Err(window) => (rate_limited(world), window),
        Ok(window) => {
            let reply = match caller(world, request.headers()) {
                None => error(
                    world,
                    StatusCode::UNAUTHORIZED,
                    "E0000011",
                    "Invalid token provided",
                ),
                Some(admin) => {
                    let segments = http::path_segments(request.uri().path());
                    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                    let query = http::query_pairs(request.uri().query());
                    route(world, &admin, request.method().as_str(), &segments, &query)
                }
            };
            (reply, window)
        }
    };
    let mut response = render(reply);
    set(&mut response, "x-rate-limit-limit", &limit.to_string());
    set(
        &mut response,
        "x-rate-limit-remaining",
        &limit.saturating_sub(window.used).to_string(),
    );
    set(
        &mut response,
        "x-rate-limit-reset",
        &(window.start + super::state::WINDOW_SECS).to_string(),
    );
    response
}

fn route(
    world: &mut World,
    admin: &str,
    method: &str,
    segments: &[&str],
    query: &[(String, String)],
) -> Reply {
    match (method, segments) {
        ("GET", ["api", "v1", "users", "me"]) => match world.users.get(admin) {
            Some(user) => Reply::ok(user_json(world, user)),
            None => not_found(world, admin, "User"),
        },
        ("GET", ["api", "v1", "users", id, "roles"]) => match world.users.get(*id) {
            Some(_) => {
                let roles = world.roles.get(*id).cloned().unwrap_or_default();
                Reply::ok(Value::Array(
                    roles
                        .iter()
                        .enumerate()
                        .map(|(n, kind)| {
                            json!({
                                "id": format!("ra1{n:0>17}"),
                                "label": kind,
                                "type": kind,
                                "status": "ACTIVE",
                                "assignmentType": "USER",
                            })
                        })
                        .collect(),
                ))
            }
            None => not_found(world, id, "User"),
        },
        ("GET", ["api", "v1", "users", id, "groups"]) => {
            if !world.users.contains_key(*id) {
                return not_found(world, id, "User");
            }
            let groups: Vec<Value> = world
                .groups
                .values()
                .filter(|g| g.members.contains(*id))
                .map(|g| group_json(world, g))
                .collect();
            Reply::ok(Value::Array(groups))
        }
        ("GET", ["api", "v1", "groups"]) => {
            let groups: Vec<&Group> = world.groups.values().collect();
            let url = format!("{}/api/v1/groups", world.base_url);
            page(world, groups, query, &url, 10_000, group_json)
        }
        ("GET", ["api", "v1", "groups", id]) => match world.groups.get(*id) {
            Some(group) => Reply::ok(group_json(world, group)),
            None => not_found(world, id, "UserGroup"),
        },
        ("GET", ["api", "v1", "groups", id, "users"]) => {
            let Some(group) = world.groups.get(*id) else {
                return not_found(world, id, "UserGroup");
            };
            let members: Vec<&User> = group
                .members
                .iter()
                .filter_map(|m| world.users.get(m))
                .collect();
            let url = format!("{}/api/v1/groups/{id}/users", world.base_url);
            page(world, members, query, &url, 1000, user_json)
        }
        ("PUT" | "DELETE", ["api", "v1", "groups", group, "users", user]) => {
            let add = method == "PUT";
            let before = world
                .faults
                .write_faults_pending()
                .then(|| world.groups.get(*group).cloned());
            match world.write(group, user, add) {
                Ok(()) => {
                    let (group, user) = ((*group).to_owned(), (*user).to_owned());
                    world.write_faults(
                        before.map(|before| {
                            move |w: &mut World| {
                                if let Some(before) = before {
                                    w.groups.insert(before.id.clone(), before);
                                }
                            }
                        }),
                        move |w| {
                            // Both writes are idempotent; a group deleted meanwhile stays gone.
                            let _ = w.write(&group, &user, add);
                        },
                    );
                    Reply::no_content()
                }
                Err(WriteError::NoGroup) => not_found(world, group, "UserGroup"),
                Err(WriteError::NoUser) => not_found(world, user, "User"),
                // Okta refuses writes to app and built-in groups as a permission error.
                Err(WriteError::ReadOnly(kind)) => error(
                    world,
                    StatusCode::FORBIDDEN,
                    "E0000006",
                    &format!(
                        "You do not have permission to perform the requested action (group {group} is an {} group)",
                        kind.name()
                    ),
                ),
            }
        }
        _ => error(
            world,
            StatusCode::NOT_FOUND,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
        ),
    }
}

/// One page in id order after the `after` cursor, with `self` and `next` links.
fn page<T: HasId>(
    world: &World,
    items: Vec<&T>,
    query: &[(String, String)],
    url: &str,
    max: usize,
    render: impl Fn(&World, &T) -> Value,
) -> Reply {
    let limit = query_value(query, "limit")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(max)
        .min(max);
    let after = query_value(query, "after");
    let rest: Vec<&T> = items
        .into_iter()
        .filter(|i| after.is_none_or(|a| i.id() > a))
        .collect();
    let shown: Vec<&T> = rest.iter().take(limit).copied().collect();
    let mut links = vec![format!("<{url}?limit={limit}>; rel=\"self\"")];
    if let Some(last) = shown.last().filter(|_| rest.len() > limit) {
        links.push(format!(
            "<{url}?after={}&limit={limit}>; rel=\"next\"",
            last.id()
        ));
    }
    Reply {
        links,
        ..Reply::ok(Value::Array(
            shown.into_iter().map(|i| render(world, i)).collect(),
        ))
    }
}

trait HasId {
    fn id(&self) -> &str;
}

impl HasId for User {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for Group {
    fn id(&self) -> &str {
        &self.id
    }
}

fn user_json(world: &World, user: &User) -> Value {
    json!({
        "id": user.id,
        "status": "ACTIVE",
        "created": user.created,
        "activated": user.created,
        "statusChanged": user.created,
        "lastLogin": user.last_login,
        "lastUpdated": user.created,
        "passwordChanged": user.created,
        "type": { "id": "oty1simulatedusertype" },
        "profile": {
            "firstName": user.first_name,
            "lastName": user.last_name,
            "mobilePhone": null,
            "secondEmail": null,
            "login": user.login,
            "email": user.login,
        },
        "credentials": { "provider": { "type": "OKTA", "name": "OKTA" } },
        "_links": { "self": { "href": format!("{}/api/v1/users/{}", world.base_url, user.id) } },
    })
}

fn group_json(world: &World, group: &Group) -> Value {
    let href = format!("{}/api/v1/groups/{}", world.base_url, group.id);
    let object_class = match group.kind {
        GroupType::App => "okta:windows_security_principal",
        GroupType::Okta | GroupType::BuiltIn => "okta:user_group",
    };
    json!({
        "id": group.id,
        "created": group.created,
        "lastUpdated": group.created,
        "lastMembershipUpdated": group.last_membership_updated,
        "objectClass": [object_class],
        "type": group.kind.name(),
        "profile": { "name": group.name, "description": null },
        "_links": {
            "users": { "href": format!("{href}/users") },
            "apps": { "href": format!("{href}/apps") },
        },
    })
}
