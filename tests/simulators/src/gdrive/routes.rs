//! The HTTP face of the Drive simulator: bearer credentials, the request budget, the
//! `/drive/v3` endpoints for files, permissions and about, Google's error envelope and
//! partial responses (`fields`).
//!
//! Must never: hold the world lock across an `.await`, or echo a token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::faults::{FaultResponses, retry_after_secs, schedule};
use crate::http;

use super::fields::Selector;
use super::state::{DriveError, Permission, Role, Throttle, World};

pub type Shared = Arc<Mutex<World>>;

const MAX_BODY: usize = 1 << 20;
const MAX_PAGE_SIZE: usize = 100;
const AUTH_HELP: &str = "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

pub fn router(world: Shared) -> Router {
    Router::new().fallback(handle).with_state(world)
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return error(&DriveError::new(
            413,
            "uploadTooLarge",
            "Request too large.",
        ));
    };
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // A repeated parameter's last value wins.
    let query: HashMap<String, String> = http::query_pairs(parts.uri.query()).into_iter().collect();
    let segments = http::path_segments(parts.uri.path());
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut world = shared.lock();
    let Some(caller) = token.and_then(|t| world.tokens.get(t)).cloned() else {
        return unauthenticated(token.is_some());
    };
    if world.spend() {
        return throttled(world.throttle);
    }
    let result = route(
        &mut world,
        &caller,
        parts.method.as_str(),
        &segments,
        &query,
        &body,
    );
    let later = std::mem::take(&mut world.later);
    drop(world);
    schedule(&shared, later);
    match result {
        Ok(None) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Ok(Some(value)) => {
            let value = match query.get("fields").map(|f| Selector::parse(f)) {
                Some(Ok(selector)) => selector.apply(&value),
                Some(Err(message)) => {
                    return error(
                        &DriveError::new(400, "invalidParameter", message)
                            .at("fields", "parameter"),
                    );
                }
                None => value,
            };
            json_response(StatusCode::OK, &value)
        }
        Err(e) => error(&e),
    }
}

/// Drive's answers for injected faults (see [`crate::faults`]).
pub struct DriveFaults(pub Shared);

impl FaultResponses for DriveFaults {
    /// The rate-limit error in the simulator's [`Throttle`] form (as an exhausted budget
    /// answers); Drive sends no `Retry-After`, so one appears only when given.
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let throttle = self.0.lock().throttle;
        let mut response = throttled(throttle);
        if let Some(value) = retry_after
            .map(|wait| retry_after_secs(wait).to_string())
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    /// 503 `backendError`.
    fn server_error(&self) -> Response {
        error(&DriveError::new(503, "backendError", "Backend Error"))
    }
}

fn route(
    world: &mut World,
    caller: &str,
    method: &str,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Option<Value>, DriveError> {
    match (method, segments) {
        ("GET", ["drive", "v3", "about"]) => {
            if !query.contains_key("fields") {
                return Err(DriveError::new(
                    400,
                    "required",
                    "The 'fields' parameter is required for this method.",
                )
                .at("fields", "parameter"));
            }
            let user = json!({
                "kind": "drive#user",
                "displayName": world.names.get(caller).cloned().unwrap_or_default(),
                "photoLink": "https://lh3.googleusercontent.com/a/default-user=s64",
                "me": true,
                "permissionId": world.permission_id(caller),
                "emailAddress": caller,
            });
            Ok(Some(json!({ "kind": "drive#about", "user": user })))
        }
        ("GET", ["drive", "v3", "files", id]) => {
            world.role_of(caller, id)?;
            let name = world
                .files
                .get(*id)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            Ok(Some(json!({
                "kind": "drive#file",
                "id": id,
                "name": name,
                "mimeType": "application/vnd.google-apps.document",
            })))
        }
        ("GET", ["drive", "v3", "files", id, "permissions"]) => list(world, caller, id, query),
        ("POST", ["drive", "v3", "files", id, "permissions"]) => {
            let body = parse_body(body)?;
            let kind = body.get("type").and_then(Value::as_str).ok_or_else(|| {
                DriveError::new(400, "required", "The permission type field is required.")
                    .at("permission.type", "other")
            })?;
            if kind != "user" && kind != "group" {
                return Err(DriveError::new(
                    400,
                    "invalid",
                    format!("Invalid permission type: {kind}"),
                )
                .at("permission.type", "other"));
            }
            let email = body
                .get("emailAddress")
                .and_then(Value::as_str)
                .filter(|e| e.contains('@'));
            let email = email.ok_or_else(|| {
                DriveError::new(400, "invalidSharingRequest", format!("Bad Request. User message: \"A valid email address is required for permissions of type {kind}.\""))
            })?;
            let role = role(&body)?;
            let transfer = query.get("transferOwnership").is_some_and(|v| v == "true");
            let notify = query
                .get("sendNotificationEmail")
                .is_none_or(|v| v != "false");
            let snapshot = world.snapshot(id);
            let permission = world.create(caller, id, kind, email, role, transfer)?;
            if notify {
                world.notified.push(permission.email.clone());
            }
            let answer = permission_json(world, &permission);
            let (caller, file, kind, email) = (
                caller.to_owned(),
                (*id).to_owned(),
                kind.to_owned(),
                email.to_owned(),
            );
            world.write_faults(
                snapshot.map(|(p, n)| move |w: &mut World| w.restore(id, p, n)),
                move |w| {
                    // Re-run against the file as it is then; a refusal changes nothing.
                    if let Ok(p) = w.create(&caller, &file, &kind, &email, role, transfer)
                        && notify
                    {
                        w.notified.push(p.email);
                    }
                },
            );
            Ok(Some(answer))
        }
        ("GET", ["drive", "v3", "files", id, "permissions", pid]) => {
            world.role_of(caller, id)?;
            let found = world
                .files
                .get(*id)
                .and_then(|f| f.permissions.iter().find(|p| p.id == *pid));
            match found {
                Some(p) => Ok(Some(permission_json(world, p))),
                None => {
                    Err(
                        DriveError::new(404, "notFound", format!("Permission not found: {pid}."))
                            .at("permissionId", "parameter"),
                    )
                }
            }
        }
        ("PATCH", ["drive", "v3", "files", id, "permissions", pid]) => {
            let role = role(&parse_body(body)?)?;
            let snapshot = world.snapshot(id);
            let permission = world.update(caller, id, pid, role)?;
            let answer = permission_json(world, &permission);
            let (caller, file, pid) = (caller.to_owned(), (*id).to_owned(), (*pid).to_owned());
            world.write_faults(
                snapshot.map(|(p, n)| move |w: &mut World| w.restore(id, p, n)),
                move |w| {
                    let _ = w.update(&caller, &file, &pid, role);
                },
            );
            Ok(Some(answer))
        }
        ("DELETE", ["drive", "v3", "files", id, "permissions", pid]) => {
            let snapshot = world.snapshot(id);
            world.delete(caller, id, pid)?;
            let (caller, file, pid) = (caller.to_owned(), (*id).to_owned(), (*pid).to_owned());
            world.write_faults(
                snapshot.map(|(p, n)| move |w: &mut World| w.restore(id, p, n)),
                move |w| {
                    let _ = w.delete(&caller, &file, &pid);
                },
            );
            Ok(None)
        }
        _ => Err(DriveError::new(404, "notFound", "Not Found")),
    }
}

fn list(
    world: &World,
    caller: &str,
    file_id: &str,
    query: &HashMap<String, String>,
) -> Result<Option<Value>, DriveError> {
    world.role_of(caller, file_id)?;
    let all: &[Permission] = world.files.get(file_id).map_or(&[], |f| &f.permissions);
    // Without pageSize, Drive returns a My Drive item's whole list.
    let size = match query.get("pageSize") {
        None => all.len().max(1),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(DriveError::new(
                    400,
                    "invalid",
                    format!("Invalid value '{raw}'. Values must be within the range: [1, 100]"),
                )
                .at("pageSize", "parameter"));
            }
        },
    };
    let start = match query.get("pageToken") {
        None => 0,
        Some(token) => decode_token(token, file_id).ok_or_else(|| {
            DriveError::new(400, "invalid", "Invalid Value").at("pageToken", "parameter")
        })?,
    };
    let end = (start + size).min(all.len());
    let items: Vec<Value> = all
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|p| permission_json(world, p))
        .collect();
    let mut page = json!({ "kind": "drive#permissionList", "permissions": items });
    let next = match query.get("pageToken") {
        // The fault: the page names itself as the next, whether or not more follow.
        Some(token) if world.repeat_page_tokens => Some(token.clone()),
        _ => (end < all.len()).then(|| encode_token(file_id, end)),
    };
    if let (Some(next), Some(o)) = (next, page.as_object_mut()) {
        o.insert("nextPageToken".into(), json!(next));
    }
    Ok(Some(page))
}

fn encode_token(file_id: &str, offset: usize) -> String {
    format!(
        "~!!~{}",
        URL_SAFE_NO_PAD.encode(format!("{file_id}\n{offset}"))
    )
}

fn decode_token(token: &str, file_id: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token.strip_prefix("~!!~")?).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (file, offset) = text.split_once('\n')?;
    (file == file_id).then(|| offset.parse().ok()).flatten()
}

fn role(body: &Value) -> Result<Role, DriveError> {
    let name = body.get("role").and_then(Value::as_str).ok_or_else(|| {
        DriveError::new(400, "required", "The permission role field is required.")
            .at("permission.role", "other")
    })?;
    Role::from_name(name).ok_or_else(|| {
        DriveError::new(
            400,
            "invalid",
            format!("The provided value for the role field is not valid: {name}"),
        )
        .at("permission.role", "other")
    })
}

fn parse_body(body: &[u8]) -> Result<Value, DriveError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| DriveError::new(400, "parseError", "Invalid JSON payload received."))
}

fn permission_json(world: &World, p: &Permission) -> Value {
    let display = world
        .names
        .get(&p.email)
        .cloned()
        .unwrap_or_else(|| p.email.split('@').next().unwrap_or_default().to_owned());
    json!({
        "kind": "drive#permission",
        "id": p.id,
        "type": p.kind,
        "emailAddress": p.email,
        "role": p.role.name(),
        "displayName": display,
        "deleted": false,
        "pendingOwner": false,
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = Response::new(Body::from(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin, X-Origin"));
    headers.insert(header::SERVER, HeaderValue::from_static("ESF"));
    response
}

/// Google's error envelope.
fn error(e: &DriveError) -> Response {
    let mut item = json!({ "message": e.message, "domain": e.domain, "reason": e.reason });
    if let (Some((location, kind)), Some(o)) = (e.location, item.as_object_mut()) {
        o.insert("location".into(), json!(location));
        o.insert("locationType".into(), json!(kind));
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        &json!({ "error": { "code": e.status, "message": e.message, "errors": [item] } }),
    )
}

fn unauthenticated(had_token: bool) -> Response {
    let (message, reason, item) = if had_token {
        (
            format!("Request had invalid authentication credentials. {AUTH_HELP}"),
            "authError",
            "Invalid Credentials",
        )
    } else {
        (
            format!("Request is missing required authentication credential. {AUTH_HELP}"),
            "required",
            "Login Required.",
        )
    };
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &json!({ "error": {
            "code": 401,
            "message": message,
            "errors": [{ "message": item, "domain": "global", "reason": reason, "location": "Authorization", "locationType": "header" }],
            "status": "UNAUTHENTICATED",
        }}),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        ),
    );
    response
}

fn throttled(throttle: Throttle) -> Response {
    let (status, reason, message) = match throttle {
        Throttle::UserRateLimit403 => (403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
        Throttle::RateLimit403 => (403, "rateLimitExceeded", "Rate Limit Exceeded"),
        Throttle::TooManyRequests429 => (429, "rateLimitExceeded", "Rate Limit Exceeded"),
    };
    let mut e = DriveError::new(status, reason, message);
    e.domain = "usageLimits";
    error(&e)
}
