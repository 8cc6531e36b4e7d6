//! The HTTP face of the Slack simulator: `/api/<method>` in Slack's order of checks
//! (known method, arguments from the query and a form or JSON body, token, rate limit,
//! scope, the method's own rules) and Slack's envelope: HTTP 200 with `"ok": true|false`
//! for everything except rate limiting (HTTP 429 + `Retry-After`) and unknown methods
//! (HTTP 404).
//!
//! Must never: echo or store a token, or hold the workspace lock across an `.await`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::faults::{self, FaultResponses, Faults, Later, WriteFate, retry_after_secs};
use crate::http;

use super::state::{Channel, Fail, Token, User, Usergroup, Workspace, cursor};

pub type Shared = Arc<Mutex<Workspace>>;

/// Largest request body read; these methods take a few short arguments.
const MAX_BODY: usize = 1 << 20;
/// `limit` when none is given, and the most one page returns (Slack's numbers).
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn router(workspace: Shared, faults: Faults) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Ctx { workspace, faults })
}

/// The router's state.
#[derive(Clone)]
struct Ctx {
    workspace: Shared,
    faults: Faults,
}

/// Slack's rate-limit and 5xx answers, for fault injection.
pub struct SlackFaults {
    workspace: Shared,
}

impl SlackFaults {
    pub fn new(workspace: Shared) -> Self {
        Self { workspace }
    }
}

impl FaultResponses for SlackFaults {
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response {
        let request_id = self.workspace.lock().request_id();
        let mut response = envelope(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"ok": false, "error": "ratelimited"}),
        );
        if let Some(wait) = retry_after {
            set(
                &mut response,
                "retry-after",
                &retry_after_secs(wait).to_string(),
            );
        }
        set(&mut response, "x-slack-req-id", &request_id);
        response
    }

    fn server_error(&self) -> Response {
        let mut response = Response::new(Body::from("Service Unavailable"));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        set(&mut response, "content-type", "text/plain; charset=utf-8");
        response
    }
}

/// The methods that change the workspace.
const WRITES: [&str; 3] = [
    "conversations.invite",
    "conversations.kick",
    "usergroups.users.update",
];

/// The scopes that let a token call a method: for a public channel, a private one, or
/// (for methods not about a channel) both the same.
struct Scopes {
    public: &'static [&'static str],
    private: &'static [&'static str],
    /// `x-accepted-oauth-scopes`.
    header: &'static str,
}

const fn same(scopes: &'static [&'static str], header: &'static str) -> Scopes {
    Scopes {
        public: scopes,
        private: scopes,
        header,
    }
}

fn scopes_of(method: &str) -> Option<Scopes> {
    const WRITE: &str = "channels:manage,groups:write,im:write,mpim:write,channels:write";
    const READ: &str = "channels:read,groups:read,im:read,mpim:read";
    Some(match method {
        "auth.test" => same(&[], ""),
        "conversations.invite" | "conversations.kick" => Scopes {
            public: &["channels:manage", "channels:write"],
            private: &["groups:write"],
            header: WRITE,
        },
        "conversations.members" => Scopes {
            public: &["channels:read"],
            private: &["groups:read"],
            header: READ,
        },
        "conversations.list" => Scopes {
            public: &["channels:read"],
            private: &["groups:read"],
            header: READ,
        },
        "usergroups.list" | "usergroups.users.list" => {
            same(&["usergroups:read"], "usergroups:read")
        }
        "usergroups.users.update" => same(&["usergroups:write"], "usergroups:write"),
        "users.lookupByEmail" => same(&["users:read.email"], "users:read.email"),
        _ => return None,
    })
}

/// A method's arguments: query string first, then the body's.
#[derive(Debug, Default, Clone)]
struct Args(Vec<(String, String)>);

impl Args {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true"))
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn limit(&self) -> usize {
        match self
            .get("limit")
            .and_then(|l| l.trim().parse::<usize>().ok())
        {
            None | Some(0) => DEFAULT_LIMIT,
            Some(n) => n.min(MAX_LIMIT),
        }
    }

    /// Adds `application/x-www-form-urlencoded` pairs (a query string or a form body).
    fn form(&mut self, raw: &str) {
        self.0.extend(http::form_pairs(raw.as_bytes()));
    }

    /// A JSON object's fields as arguments; arrays become comma lists, as Slack reads them.
    fn json(&mut self, body: &[u8]) -> Result<(), ()> {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return Err(());
        };
        for (k, v) in fields {
            let text = match v {
                Value::String(s) => s,
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Null => continue,
                other => other.to_string(),
            };
            self.0.push((k, text));
        }
        Ok(())
    }
}

/// Why a method answered `ok: false`.
enum Refusal {
    Fail(Fail),
    MissingScope(&'static str),
}

impl From<Fail> for Refusal {
    fn from(f: Fail) -> Self {
        Self::Fail(f)
    }
}

type Answer = Result<Map<String, Value>, Refusal>;

fn fail(code: &'static str) -> Refusal {
    Refusal::Fail(Fail::new(code))
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

async fn handle(State(ctx): State<Ctx>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY).await;
    let mut workspace = ctx.workspace.lock();
    let request_id = workspace.request_id();
    let mut response = match body {
        Ok(body) => respond(&mut workspace, &ctx, &parts, &body),
        Err(_) => envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"ok": false, "error": "request_too_large"}),
        ),
    };
    drop(workspace);
    set(&mut response, "x-slack-req-id", &request_id);
    response
}

fn envelope(status: StatusCode, value: Value) -> Response {
    let mut response = Response::new(Body::from(serde_json::to_vec(&value).unwrap_or_default()));
    *response.status_mut() = status;
    set(
        &mut response,
        "content-type",
        "application/json; charset=utf-8",
    );
    response
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

fn respond(
    ws: &mut Workspace,
    ctx: &Ctx,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Response {
    let path = parts.uri.path();
    let method = path
        .strip_prefix("/api/")
        .unwrap_or(path)
        .trim_end_matches('/');
    let Some(scopes) = scopes_of(method) else {
        return envelope(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error": "unknown_method", "req_method": method}),
        );
    };

    let mut args = Args::default();
    args.form(parts.uri.query().unwrap_or_default());
    let mut warnings: Vec<&str> = Vec::new();
    if parts.method == Method::POST && !body.is_empty() {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/x-www-form-urlencoded")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            if !content_type.contains("charset") {
                warnings.push("missing_charset");
            }
            if args.json(body).is_err() {
                return envelope(
                    StatusCode::OK,
                    json!({"ok": false, "error": "invalid_json"}),
                );
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            args.form(&String::from_utf8_lossy(body));
        }
    }

    // The header wins; a `token` argument is the older way and still accepted.
    let token = bearer(&parts.headers).or_else(|| args.get("token").map(str::to_owned));
    let caller = match token {
        None => return envelope(StatusCode::OK, json!({"ok": false, "error": "not_authed"})),
        Some(token) => match ws.tokens.get(&token) {
            Some(caller) => caller.clone(),
            None => {
                return envelope(
                    StatusCode::OK,
                    json!({"ok": false, "error": "invalid_auth"}),
                );
            }
        },
    };

    if let Err(secs) = ws.spend(method, Instant::now()) {
        let mut response = envelope(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"ok": false, "error": "ratelimited"}),
        );
        set(&mut response, "retry-after", &secs.to_string());
        return response;
    }

    let answer = if WRITES.contains(&method) && ctx.faults.write_faults_pending() {
        write_with_faults(ws, ctx, &caller, method, &scopes, args.clone())
    } else {
        dispatch(ws, &caller, method, &scopes, &args)
    };
    let mut value = Map::new();
    match answer {
        Ok(fields) => {
            value.insert("ok".into(), true.into());
            value.extend(fields);
        }
        Err(Refusal::Fail(f)) => {
            value.insert("ok".into(), false.into());
            value.insert("error".into(), f.code.into());
            if !f.per_user.is_empty() {
                let errors: Vec<Value> = f
                    .per_user
                    .iter()
                    .map(|(user, code)| json!({"user": user, "ok": false, "error": code}))
                    .collect();
                value.insert("errors".into(), errors.into());
            }
        }
        Err(Refusal::MissingScope(needed)) => {
            value.insert("ok".into(), false.into());
            value.insert("error".into(), "missing_scope".into());
            value.insert("needed".into(), needed.into());
            value.insert("provided".into(), caller.scopes.join(",").into());
        }
    }
    if !warnings.is_empty() {
        value.insert("warning".into(), warnings.join(",").into());
        let metadata = value
            .entry("response_metadata")
            .or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("warnings".into(), json!(warnings));
        }
    }
    let mut response = envelope(StatusCode::OK, Value::Object(value));
    set(&mut response, "x-oauth-scopes", &caller.scopes.join(","));
    set(&mut response, "x-accepted-oauth-scopes", scopes.header);
    response
}

/// A write while write faults are pending: answered as it would be, from a copy of the
/// workspace; if it answers `ok: true` it is then dropped (the copy is discarded), lagged
/// (re-run on the workspace `lag` later, against the state as it is then), or applied (the
/// copy becomes the workspace). A refused write is answered by the workspace itself and
/// uses no fault up.
fn write_with_faults(
    ws: &mut Workspace,
    ctx: &Ctx,
    caller: &Token,
    method: &str,
    scopes: &Scopes,
    args: Args,
) -> Answer {
    let mut copy = ws.clone();
    let answer = dispatch(&mut copy, caller, method, scopes, &args);
    if answer.is_err() {
        return dispatch(ws, caller, method, scopes, &args);
    }
    match ctx.faults.decide_write() {
        WriteFate::Stand => *ws = copy,
        WriteFate::Drop => {}
        WriteFate::Lag(lag) => {
            let caller = caller.clone();
            let method = method.to_owned();
            faults::schedule(
                &ctx.workspace,
                vec![Later {
                    lag,
                    apply: Box::new(move |ws: &mut Workspace| {
                        if let Some(scopes) = scopes_of(&method) {
                            let _late = dispatch(ws, &caller, &method, &scopes, &args);
                        }
                    }),
                }],
            );
        }
    }
    answer
}

/// `missing_scope` unless the token holds one of `accepted` (none needed when empty).
fn need(caller: &Token, accepted: &'static [&'static str]) -> Result<(), Refusal> {
    match accepted.first() {
        Some(needed)
            if !accepted
                .iter()
                .any(|a| caller.scopes.iter().any(|s| s == a)) =>
        {
            Err(Refusal::MissingScope(needed))
        }
        _ => Ok(()),
    }
}

/// The scope check for a method about `channel`: private channels need the private
/// scope (checked only once the channel is known to exist).
fn need_for_channel(
    ws: &Workspace,
    caller: &Token,
    scopes: &Scopes,
    channel: &str,
) -> Result<(), Refusal> {
    let private = ws.channels.get(channel).is_some_and(|c| c.private);
    need(
        caller,
        if private {
            scopes.private
        } else {
            scopes.public
        },
    )
}

fn dispatch(
    ws: &mut Workspace,
    caller: &Token,
    method: &str,
    scopes: &Scopes,
    args: &Args,
) -> Answer {
    let me = caller.user_id.as_str();
    match method {
        "auth.test" => {
            let name = ws.users.get(me).map_or(me, |u| u.name.as_str());
            Ok(fields(json!({
                "url": format!("https://{}.slack.com/", ws.domain),
                "team": ws.team,
                "user": name,
                "team_id": ws.team_id,
                "user_id": me,
                "bot_id": caller.bot_id,
                "is_enterprise_install": false,
            })))
        }
        "conversations.invite" => {
            let channel = args.get("channel").unwrap_or_default();
            need_for_channel(ws, caller, scopes, channel)?;
            let channel = ws.invite(me, channel, &args.list("users"))?;
            Ok(fields(json!({ "channel": channel_json(channel, me) })))
        }
        "conversations.kick" => {
            let channel = args.get("channel").unwrap_or_default();
            need_for_channel(ws, caller, scopes, channel)?;
            ws.kick(me, channel, args.get("user").unwrap_or_default())?;
            Ok(Map::new())
        }
        "conversations.members" => {
            let channel = args.get("channel").unwrap_or_default();
            need_for_channel(ws, caller, scopes, channel)?;
            let c = ws.visible_channel(me, channel)?;
            let (members, next) =
                cursor::page("user", c.members.iter(), args.get("cursor"), args.limit())
                    .map_err(|()| fail("invalid_cursor"))?;
            Ok(fields(json!({
                "members": members,
                "response_metadata": { "next_cursor": next },
            })))
        }
        "conversations.list" => conversations_list(ws, caller, scopes, args),
        "usergroups.list" => {
            need(caller, scopes.public)?;
            let include_users = args.flag("include_users");
            let groups: Vec<Value> = ws
                .usergroups
                .values()
                .map(|g| usergroup_json(ws, g, include_users))
                .collect();
            Ok(fields(json!({ "usergroups": groups })))
        }
        "usergroups.users.list" => {
            need(caller, scopes.public)?;
            let id = args
                .get("usergroup")
                .ok_or_else(|| fail("missing_argument"))?;
            Ok(fields(json!({ "users": ws.usergroup(id)?.users })))
        }
        "usergroups.users.update" => {
            need(caller, scopes.public)?;
            let id = args
                .get("usergroup")
                .ok_or_else(|| fail("missing_argument"))?;
            let users = args.list("users");
            let group = ws.replace_usergroup_users(id, &users)?.clone();
            Ok(fields(
                json!({ "usergroup": usergroup_json(ws, &group, true) }),
            ))
        }
        "users.lookupByEmail" => {
            need(caller, scopes.public)?;
            let email = args.get("email").ok_or_else(|| fail("invalid_arguments"))?;
            Ok(fields(
                json!({ "user": user_json(ws, ws.user_by_email(email)?) }),
            ))
        }
        _ => Err(fail("unknown_method")),
    }
}

fn conversations_list(ws: &Workspace, caller: &Token, scopes: &Scopes, args: &Args) -> Answer {
    let me = caller.user_id.as_str();
    let types = match args.list("types") {
        types if types.is_empty() => vec!["public_channel".to_owned()],
        types => types,
    };
    let public = types.iter().any(|t| t == "public_channel");
    let private = types.iter().any(|t| t == "private_channel");
    if public {
        need(caller, scopes.public)?;
    }
    if private {
        need(caller, scopes.private)?;
    }
    let exclude_archived = args.flag("exclude_archived");
    let ids: Vec<&String> = ws
        .channels
        .values()
        .filter(|c| {
            if c.private {
                private && c.members.contains(me)
            } else {
                public
            }
        })
        .filter(|c| !(exclude_archived && c.archived))
        .map(|c| &c.id)
        .collect();
    let (page, next) = cursor::page("team", ids.into_iter(), args.get("cursor"), args.limit())
        .map_err(|()| fail("invalid_cursor"))?;
    let channels: Vec<Value> = page
        .iter()
        .filter_map(|id| ws.channels.get(id))
        .map(|c| channel_json(c, me))
        .collect();
    Ok(fields(json!({
        "channels": channels,
        "response_metadata": { "next_cursor": next },
    })))
}

fn channel_json(c: &Channel, me: &str) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "name_normalized": c.name,
        "is_channel": true,
        "is_group": false,
        "is_im": false,
        "is_mpim": false,
        "is_private": c.private,
        "is_archived": c.archived,
        "is_general": c.name == "general",
        "is_shared": false,
        "is_ext_shared": false,
        "is_org_shared": false,
        "is_member": c.members.contains(me),
        "created": c.created,
        "creator": "",
        "num_members": c.members.len(),
        "topic": { "value": "", "creator": "", "last_set": 0 },
        "purpose": { "value": "", "creator": "", "last_set": 0 },
    })
}

fn usergroup_json(ws: &Workspace, g: &Usergroup, include_users: bool) -> Value {
    let mut value = json!({
        "id": g.id,
        "team_id": ws.team_id,
        "is_usergroup": true,
        "is_subteam": true,
        "name": g.name,
        "description": "",
        "handle": g.handle,
        "is_external": false,
        "date_create": g.date_create,
        "date_update": g.date_update,
        "date_delete": 0,
        "auto_type": null,
        "created_by": "",
        "updated_by": "",
        "deleted_by": null,
        "prefs": { "channels": [], "groups": [] },
        "user_count": g.users.len(),
    });
    if include_users && let Some(map) = value.as_object_mut() {
        map.insert("users".into(), json!(g.users));
    }
    value
}

fn user_json(ws: &Workspace, u: &User) -> Value {
    json!({
        "id": u.id,
        "team_id": ws.team_id,
        "name": u.name,
        "deleted": u.deleted,
        "real_name": u.name,
        "is_bot": u.is_bot,
        "is_admin": false,
        "is_restricted": false,
        "is_ultra_restricted": false,
        "profile": { "email": u.email, "real_name": u.name, "display_name": u.name },
    })
}
