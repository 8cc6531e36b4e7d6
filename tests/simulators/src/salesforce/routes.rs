//! The HTTP face of the Salesforce simulator: session checks, the daily API budget and
//! `Sforce-Limit-Info`, versioned `/services/data/vXX.X` routing (query, query locators,
//! PermissionSetAssignment create/delete, limits) and `/services/oauth2/userinfo`.
//!
//! Must never: hold the world lock across an `.await`, or echo a token.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::faults::{FaultResponses, retry_after_secs, schedule};
use crate::http;

use super::soql;
use super::state::{SfError, World};

pub type Shared = Arc<Mutex<World>>;

const MAX_BODY: usize = 1 << 20;
/// The API versions the simulated org serves (Spring '14 to Winter '25).
const VERSIONS: std::ops::RangeInclusive<u32> = 30..=62;

pub fn router(world: Shared) -> Router {
    Router::new().fallback(handle).with_state(world)
}

enum Reply {
    Json(StatusCode, Value),
    NoContent,
    Text(StatusCode, &'static str),
}

impl From<SfError> for Reply {
    fn from(e: SfError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        Reply::Json(
            status,
            json!([{ "message": e.message, "errorCode": e.code, "fields": e.fields }]),
        )
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim)
        .map(str::to_owned);
    let path = parts.uri.path().to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut world = shared.lock();
    let caller = token.as_deref().and_then(|t| world.tokens.get(t)).cloned();
    let method = parts.method.as_str();

    if let ["services", "oauth2", "userinfo"] = segments.as_slice() {
        // OAuth endpoints answer in plain text and do not count against the API budget.
        let reply = match (&token, &caller) {
            (None, _) => Reply::Text(StatusCode::FORBIDDEN, "Missing_OAuth_Token"),
            (Some(_), None) => Reply::Text(StatusCode::FORBIDDEN, "Bad_OAuth_Token"),
            (Some(_), Some(user)) => userinfo(&world, user),
        };
        return render(reply, None);
    }
    let ["services", "data", version, rest @ ..] = segments.as_slice() else {
        return render(SfError::not_found().into(), None);
    };
    if caller.is_none() {
        let e = SfError::new(401, "INVALID_SESSION_ID", "Session expired or invalid");
        return render(e.into(), None);
    };
    let reply = match world.spend() {
        Err(e) => e.into(),
        Ok(()) if !supported(version) => SfError::not_found().into(),
        Ok(()) => route(
            &mut world,
            method,
            version,
            rest,
            parts.uri.query(),
            &parts.headers,
            &body,
        )
        .unwrap_or_else(Reply::from),
    };
    let usage = usage(&world);
    let later = std::mem::take(&mut world.later);
    drop(world);
    schedule(&shared, later);
    render(reply, Some(&usage))
}

/// `Sforce-Limit-Info`'s value.
fn usage(world: &World) -> String {
    format!("api-usage={}/{}", world.api_used, world.api_max)
}

/// Salesforce's answers for injected faults (see [`crate::faults`]).
pub struct SalesforceFaults(pub Shared);

impl FaultResponses for SalesforceFaults {
    /// `REQUEST_LIMIT_EXCEEDED` with the org's limit status (403 unless
    /// [`super::SalesforceSimulator::set_request_budget`] chose another); Salesforce sends
    /// no `Retry-After`, so one appears only when given.
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let world = self.0.lock();
        let error = SfError::limit_exceeded(world.limit_status);
        let mut response = render(error.into(), Some(&usage(&world)));
        drop(world);
        if let Some(value) = retry_after
            .map(|wait| retry_after_secs(wait).to_string())
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    /// 503 `SERVER_UNAVAILABLE`.
    fn server_error(&self) -> Response {
        let error = SfError::new(
            503,
            "SERVER_UNAVAILABLE",
            "Server is temporarily unavailable. Please try again later.",
        );
        render(error.into(), None)
    }
}

fn supported(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| VERSIONS.contains(&v))
}

fn route(
    world: &mut World,
    method: &str,
    version: &str,
    rest: &[&str],
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, SfError> {
    match (method, rest) {
        ("GET", ["query"]) => {
            let pairs = http::query_pairs(query);
            let q = http::query_value(&pairs, "q").ok_or_else(|| {
                SfError::new(400, "MALFORMED_QUERY", "A query string has to be specified")
            })?;
            let parsed = soql::parse(q).map_err(|why| {
                SfError::new(
                    400,
                    "MALFORMED_QUERY",
                    format!("\n{q}\n^\nERROR at Row:1:Column:1\n{why}"),
                )
            })?;
            let records = world.select(&parsed, version)?;
            let batch = batch_size(headers)
                .unwrap_or(world.batch_size)
                .min(world.batch_size)
                .max(1);
            let locator = world.new_id("01g");
            world.cursors.insert(locator.clone(), records);
            Ok(page(world, &locator, 0, batch, version))
        }
        ("GET", ["query", locator]) => {
            let (id, offset) = locator
                .rsplit_once('-')
                .and_then(|(id, offset)| Some((id, offset.parse::<usize>().ok()?)))
                .filter(|(id, _)| world.cursors.contains_key(*id))
                .ok_or_else(|| {
                    SfError::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
                })?;
            let batch = batch_size(headers)
                .unwrap_or(world.batch_size)
                .min(world.batch_size)
                .max(1);
            Ok(page(world, id, offset, batch, version))
        }
        ("POST", ["sobjects", "PermissionSetAssignment"]) => {
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
                return Err(SfError::new(
                    400,
                    "JSON_PARSER_ERROR",
                    "Unexpected character: was expecting a JSON object",
                ));
            };
            let pending = world.faults.write_faults_pending();
            let id = world.assign(&fields)?;
            if pending && let Some(record) = world.assignments.get(&id).cloned() {
                let undo_id = id.clone();
                let undo = move |w: &mut World| {
                    w.assignments.remove(&undo_id);
                };
                world.write_faults(Some(undo), move |w| w.restore_assignment(record));
            }
            Ok(Reply::Json(
                StatusCode::CREATED,
                json!({ "id": id, "success": true, "errors": [] }),
            ))
        }
        ("DELETE", ["sobjects", "PermissionSetAssignment", id]) => {
            let record = world
                .assignments
                .values()
                .find(|a| super::state::same_id(&a.id, id))
                .filter(|_| world.faults.write_faults_pending())
                .cloned();
            world.unassign(id)?;
            let later_id = (*id).to_owned();
            world.write_faults(
                record.map(|record| move |w: &mut World| w.restore_assignment(record)),
                move |w| {
                    // Already gone is fine: the deletion's effect is the same.
                    let _ = w.unassign(&later_id);
                },
            );
            Ok(Reply::NoContent)
        }
        ("GET", ["limits"]) => {
            let remaining = world.api_max.saturating_sub(world.api_used);
            Ok(Reply::Json(
                StatusCode::OK,
                json!({
                    "DailyApiRequests": { "Max": world.api_max, "Remaining": remaining },
                    "ConcurrentAsyncGetReportInstances": { "Max": 200, "Remaining": 200 },
                    "DataStorageMB": { "Max": 5, "Remaining": 5 },
                }),
            ))
        }
        ("GET", ["sobjects", "User", id]) => {
            let user = world
                .users
                .values()
                .find(|u| super::state::same_id(&u.id, id))
                .ok_or_else(SfError::not_found)?;
            Ok(Reply::Json(
                StatusCode::OK,
                json!({
                    "attributes": { "type": "User", "url": format!("/services/data/{version}/sobjects/User/{}", user.id) },
                    "Id": user.id, "Username": user.username, "Name": user.name, "IsActive": true,
                }),
            ))
        }
        _ => Err(SfError::not_found()),
    }
}

/// `Sforce-Query-Options: batchSize=N` (Salesforce honours 200 to 2000).
fn batch_size(headers: &HeaderMap) -> Option<usize> {
    let value = headers.get("sforce-query-options")?.to_str().ok()?;
    let n = value
        .split(',')
        .find_map(|p| p.trim().strip_prefix("batchSize="))?
        .trim()
        .parse::<usize>()
        .ok()?;
    Some(n.clamp(200, 2000))
}

fn page(world: &World, locator: &str, offset: usize, batch: usize, version: &str) -> Reply {
    let all = world.cursors.get(locator).map_or(&[][..], Vec::as_slice);
    let end = (offset + batch).min(all.len());
    let records = all.get(offset..end).unwrap_or_default().to_vec();
    let mut body = json!({ "totalSize": all.len(), "done": end >= all.len() });
    if end < all.len()
        && let Some(o) = body.as_object_mut()
    {
        o.insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/{version}/query/{locator}-{end}")),
        );
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("records".into(), Value::Array(records));
    }
    Reply::Json(StatusCode::OK, body)
}

fn userinfo(world: &World, user: &str) -> Reply {
    let Some(u) = world.users.get(user) else {
        return Reply::Text(StatusCode::FORBIDDEN, "Bad_OAuth_Token");
    };
    Reply::Json(
        StatusCode::OK,
        json!({
            "sub": format!("https://login.salesforce.com/id/{}/{}", world.org_id, u.id),
            "user_id": u.id,
            "organization_id": world.org_id,
            "preferred_username": u.username,
            "name": u.name,
            "email": u.username,
            "email_verified": true,
            "active": true,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
        }),
    )
}

fn render(reply: Reply, usage: Option<&str>) -> Response {
    let (status, body, content_type) = match reply {
        Reply::Json(status, value) => (
            status,
            Body::from(serde_json::to_vec(&value).unwrap_or_default()),
            Some("application/json;charset=UTF-8"),
        ),
        Reply::NoContent => (StatusCode::NO_CONTENT, Body::empty(), None),
        Reply::Text(status, text) => (status, Body::from(text), Some("text/plain;charset=UTF-8")),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Some(usage) = usage.and_then(|u| HeaderValue::from_str(u).ok()) {
        headers.insert("sforce-limit-info", usage);
    }
    response
}
