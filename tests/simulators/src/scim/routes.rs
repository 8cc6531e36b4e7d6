//! The HTTP face of the SCIM simulator: rate limit, bearer check, dispatch over the
//! path segments under `/scim/v2`, SCIM's media type, `Location`/`ETag` headers and
//! error bodies (`schemas`, `status` as a string, `scimType`, `detail`).
//!
//! Must never: hold the world lock across an `.await`, or record a token.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::faults::{FaultResponses, retry_after_secs, schedule};
use crate::http;

use super::state::{Group, ScimError, User, World, parse_filter};
use super::{BASE_PATH, GROUP_SCHEMA, USER_SCHEMA};

pub type Shared = Arc<Mutex<World>>;

const MAX_BODY: usize = 1 << 20;
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// Most resources a list returns (`filter.maxResults`).
const MAX_RESULTS: usize = 1000;
const DEFAULT_COUNT: usize = 100;

pub fn router(world: Shared) -> Router {
    Router::new().fallback(handle).with_state(world)
}

/// An answer before the common headers: status, body, headers.
struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn error(e: &ScimError) -> Self {
        let mut body = json!({ "schemas": [ERROR_SCHEMA], "status": e.status.to_string(), "detail": e.detail });
        if let Some(scim_type) = e.scim_type {
            body["scimType"] = scim_type.into();
        }
        Self::json(e.status, body)
    }

    /// A resource with its `Location` and weak `ETag`.
    fn resource(status: u16, body: Value, location: String, version: u64) -> Self {
        Self::json(status, body)
            .with("location", location)
            .with("etag", format!("W/\"{version}\""))
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let reply = match to_bytes(body, MAX_BODY).await {
        Ok(body) => {
            let mut world = shared.lock();
            let reply = respond(&mut world, &parts, &body);
            let later = std::mem::take(&mut world.later);
            drop(world);
            schedule(&shared, later);
            reply
        }
        Err(_) => Reply::error(&ScimError::new(413, None, "request body too large")),
    };
    render(reply)
}

/// SCIM's answers for injected faults (see [`crate::faults`]): 429 with `Retry-After`
/// when given, 503; both with SCIM error bodies.
#[derive(Debug, Clone, Copy)]
pub struct ScimFaults;

impl FaultResponses for ScimFaults {
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        render(too_many(retry_after.map(retry_after_secs)))
    }

    fn server_error(&self) -> Response {
        render(Reply::error(&ScimError::new(
            503,
            None,
            "The service is temporarily unavailable",
        )))
    }
}

/// 429 with a SCIM error body, and `Retry-After` (seconds) when given.
fn too_many(retry_after_secs: Option<u64>) -> Reply {
    let reply = Reply::error(&ScimError::new(429, None, "Too many requests"));
    match retry_after_secs {
        Some(secs) => reply.with("retry-after", secs.to_string()),
        None => reply,
    }
}

/// A reply with SCIM's media type when it has a body.
fn render(reply: Reply) -> Response {
    let mut response = Response::new(match &reply.body {
        Some(body) => Body::from(body.to_string()),
        None => Body::empty(),
    });
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let content_type = reply.body.as_ref().map(|_| super::MEDIA_TYPE);
    for (name, value) in content_type
        .map(|t| ("content-type", t.to_owned()))
        .into_iter()
        .chain(reply.headers)
    {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn respond(world: &mut World, parts: &axum::http::request::Parts, body: &Bytes) -> Reply {
    if let Some(left) = world.budget.as_mut() {
        if *left == 0 {
            return too_many(Some(world.retry_after_secs));
        }
        *left -= 1;
    }
    let path = parts.uri.path();
    let Some(rest) = path.strip_prefix(BASE_PATH) else {
        return Reply::error(&ScimError::new(
            404,
            None,
            format!("no SCIM endpoint at {path}"),
        ));
    };
    // Unlike the other simulators, SCIM ignores empty segments (`/Users/` is `/Users`).
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(http::path_segment)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = parts.method.as_str();
    // Discovery endpoints answer without authentication (RFC 7644 §4).
    if method == "GET" && segments == ["ServiceProviderConfig"] {
        return service_provider_config(world);
    }
    if let Some(token) = &world.token
        && !bearer_is(&parts.headers, token)
    {
        return Reply::error(&ScimError::new(
            401,
            None,
            "Authorization failure. The authorization header is invalid or missing",
        ))
        .with("www-authenticate", "Bearer realm=\"SCIM\"".into());
    }
    let query = Query::parse(parts.uri.query());
    let result = match (method, segments.as_slice()) {
        ("GET", ["Users"]) => list(world, &query, "Users"),
        ("GET", ["Groups"]) => list(world, &query, "Groups"),
        ("GET", ["Users", id]) => match world.users.get(*id) {
            Some(u) => Ok(user_reply(world, u, 200, &query)),
            None => Err(ScimError::not_found("User", id)),
        },
        ("GET", ["Groups", id]) => match world.groups.get(*id) {
            Some(g) => Ok(group_reply(world, g, 200, &query)),
            None => Err(ScimError::not_found("Group", id)),
        },
        ("POST", ["Users"]) => json_body(body)
            .and_then(|b| {
                let id = world.add_user(b["userName"].as_str().unwrap_or_default())?;
                Ok(world
                    .users
                    .get(&id)
                    .map(|u| user_reply(world, u, 201, &Query::default())))
            })
            .and_then(created),
        ("POST", ["Groups"]) => json_body(body)
            .and_then(|b| {
                let id = world.add_group(b["displayName"].as_str().unwrap_or_default())?;
                Ok(world
                    .groups
                    .get(&id)
                    .map(|g| group_reply(world, g, 201, &Query::default())))
            })
            .and_then(created),
        ("PATCH", ["Groups", id]) => patch(world, id, body),
        (_, ["Users" | "Groups"] | ["Users" | "Groups", _]) => Err(ScimError::new(
            405,
            None,
            format!("{method} is not supported on {path}"),
        )),
        _ => Err(ScimError::new(
            404,
            None,
            format!("no SCIM endpoint at {path}"),
        )),
    };
    result.unwrap_or_else(|e| Reply::error(&e))
}

fn created(reply: Option<Reply>) -> Result<Reply, ScimError> {
    reply.ok_or_else(|| ScimError::new(500, None, "the new resource vanished"))
}

fn bearer_is(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t.trim() == token)
}

fn json_body(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| ScimError::new(400, Some("invalidSyntax"), "the body is not a JSON object"))
}

fn patch(world: &mut World, id: &str, body: &Bytes) -> Result<Reply, ScimError> {
    if !world.patch_supported {
        return Err(ScimError::new(501, None, "PATCH is not supported"));
    }
    let operations = json_body(body)?;
    let before = world
        .faults
        .write_faults_pending()
        .then(|| world.groups.get(id).cloned());
    world.patch_group(id, &operations)?;
    let group = world
        .groups
        .get(id)
        .ok_or_else(|| ScimError::not_found("Group", id))?;
    let location = format!("{}/Groups/{id}", world.root);
    let reply = if world.patch_returns_resource {
        group_reply(world, group, 200, &Query::default())
    } else {
        Reply::no_content()
            .with("location", location)
            .with("etag", format!("W/\"{}\"", group.version))
    };
    let later_id = id.to_owned();
    world.write_faults(
        before.map(|before| {
            move |w: &mut World| {
                if let Some(before) = before {
                    w.groups.insert(before.id.clone(), before);
                }
            }
        }),
        move |w| {
            // Re-run against the group as it is then; a refusal changes nothing.
            let _ = w.patch_group(&later_id, &operations);
        },
    );
    Ok(reply)
}

fn service_provider_config(world: &World) -> Reply {
    let supported = |on: bool| json!({ "supported": on });
    let mut body = json!({
        "schemas": [SPC_SCHEMA],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", world.root) },
        "patch": supported(world.patch_supported),
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": world.filter_supported, "maxResults": MAX_RESULTS },
        "changePassword": supported(false),
        "sort": supported(false),
        "etag": supported(true),
    });
    if world.token.is_some() {
        body["authenticationSchemes"] = json!([{
            "type": "oauthbearertoken", "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token", "primary": true,
        }]);
    }
    Reply::json(200, body)
}

fn user_json(world: &World, user: &User) -> Value {
    let location = format!("{}/Users/{}", world.root, user.id);
    json!({
        "schemas": [USER_SCHEMA],
        "id": user.id,
        "userName": user.user_name,
        "meta": { "resourceType": "User", "location": location, "version": format!("W/\"{}\"", user.version) },
    })
}

fn group_json(world: &World, group: &Group) -> Value {
    let location = format!("{}/Groups/{}", world.root, group.id);
    let mut body = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "displayName": group.display_name,
        "meta": { "resourceType": "Group", "location": location, "version": format!("W/\"{}\"", group.version) },
    });
    // Like scim2-server, an empty group has no `members` attribute at all.
    if !group.members.is_empty() {
        let members: Vec<Value> = group
            .members
            .iter()
            .map(|id| {
                json!({
                    "value": id,
                    "$ref": format!("{}/Users/{id}", world.root),
                    "display": world.users.get(id).map(|u| u.user_name.as_str()),
                    "type": "User",
                })
            })
            .collect();
        body["members"] = members.into();
    }
    body
}

fn user_reply(world: &World, user: &User, status: u16, query: &Query) -> Reply {
    let location = format!("{}/Users/{}", world.root, user.id);
    Reply::resource(
        status,
        project(user_json(world, user), query),
        location,
        user.version,
    )
}

fn group_reply(world: &World, group: &Group, status: u16, query: &Query) -> Reply {
    let location = format!("{}/Groups/{}", world.root, group.id);
    Reply::resource(
        status,
        project(group_json(world, group), query),
        location,
        group.version,
    )
}

/// `attributes=a,b`: only `schemas`, `id` and the named attributes (RFC 7644 §3.9).
fn project(resource: Value, query: &Query) -> Value {
    let Some(wanted) = query.get("attributes") else {
        return resource;
    };
    let wanted: Vec<String> = wanted
        .split(',')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    match resource {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| {
                    k == "schemas" || k == "id" || wanted.contains(&k.to_ascii_lowercase())
                })
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// `GET /Users` or `/Groups`: filter, then 1-based `startIndex` and `count` paging.
fn list(world: &World, query: &Query, collection: &str) -> Result<Reply, ScimError> {
    let filter = match query.get("filter") {
        Some(_) if !world.filter_supported => {
            return Err(ScimError::new(501, None, "filtering is not supported"));
        }
        Some(text) => parse_filter(&text)?,
        None => Vec::new(),
    };
    let mut matched = Vec::new();
    if collection == "Users" {
        for user in world.users.values() {
            if World::user_matches(user, &filter)? {
                matched.push(user_json(world, user));
            }
        }
    } else {
        for group in world.groups.values() {
            if World::group_matches(group, &filter)? {
                matched.push(group_json(world, group));
            }
        }
    }
    // RFC 7644 §3.4.2.4: startIndex < 1 means 1; a negative count means 0.
    let start = query.number("startIndex").map_or(1, |n| n.max(1));
    let count = query
        .number("count")
        .map_or(DEFAULT_COUNT, |n| usize::try_from(n.max(0)).unwrap_or(0))
        .min(MAX_RESULTS);
    let total = matched.len();
    let page: Vec<Value> = matched
        .into_iter()
        .skip(usize::try_from(start - 1).unwrap_or(usize::MAX))
        .take(count)
        .map(|r| project(r, query))
        .collect();
    Ok(Reply::json(
        200,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// A decoded query string.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        Self(http::query_pairs(raw))
    }

    /// The first value of `key` (SCIM parameter names are case-insensitive).
    fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    }

    fn number(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }
}
