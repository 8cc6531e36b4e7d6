//! The JSON API under `/v1`, plus `/healthz` and `/readyz`. Routes are grouped by the
//! role they need; each group's layer authenticates and audits every call.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Service;
use super::auth::{Caller, Denied, authorize};
use super::hr::{Refusal, SIGNATURE_HEADER, check_delivery, verify_signature};
use super::jobs::{Scope, spawn_policy_job};
use crate::audit::AuditEvent;
use crate::config::Role;
use crate::ops::{self, Decision, OpError, Sources};

type Shared = Arc<Service>;

/// An API answer that is not a success: a status and a message saying what to do.
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": crate::redact::scrubbed(self.message) });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<OpError> for ApiError {
    fn from(error: OpError) -> ApiError {
        let status = match &error {
            OpError::Input(_) | OpError::InvalidActions(_) => StatusCode::UNPROCESSABLE_ENTITY,
            OpError::Busy(_) | OpError::Refused(_) => StatusCode::CONFLICT,
            OpError::StateDuringRun(_) | OpError::QueueDuringRun(_) | OpError::Unaudited { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, error.to_string())
    }
}

type ApiResult = Result<axum::Json<Value>, ApiError>;

/// Every route, by the role it needs.
pub(super) fn router(service: Shared) -> Router {
    let group = |role: Role, routes: Router<Shared>| {
        routes.route_layer(middleware::from_fn_with_state(
            (Arc::clone(&service), role),
            authenticate,
        ))
    };
    let reader = Router::new()
        .route("/v1/plan", get(plan))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/people/{id}/grants", get(person_grants))
        .route("/v1/apps", get(apps))
        .route("/v1/apps/{app}/describe", get(describe))
        .route("/v1/apps/{app}/check", post(check))
        .route("/v1/plugins", get(plugins))
        .route("/v1/plugins/{app}", get(plugin))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(job))
        .route("/metrics", get(metrics));
    let approver = Router::new()
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(deny));
    let operator = Router::new()
        .route("/v1/apply", post(apply))
        .route("/v1/plugins/reload", post(reload_plugins));
    let hr = Router::new().route("/v1/hr-events", post(hr_events));
    Router::new()
        .merge(group(Role::Reader, reader))
        .merge(group(Role::Approver, approver))
        .merge(group(Role::Operator, operator))
        .merge(group(Role::HrSource, hr))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(service)
}

/// Authenticates the call for its group's role, runs it, and audits it with the caller's
/// name and the answer's status, refusals included.
async fn authenticate(
    State((service, role)): State<(Shared, Role)>,
    mut request: Request,
    next: Next,
) -> Response {
    let n = service.calls.fetch_add(1, Ordering::Relaxed) + 1;
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (caller, response, refused) = match authorize(&service.tokens, header, role) {
        Ok(caller) => {
            let name = caller.name.clone();
            request.extensions_mut().insert(caller);
            (name, next.run(request).await, None)
        }
        Err(Denied::Unauthenticated(why)) => (
            "anonymous".to_owned(),
            ApiError::new(StatusCode::UNAUTHORIZED, why).into_response(),
            Some(why.to_owned()),
        ),
        Err(Denied::Forbidden { caller, role: held }) => {
            let why = format!("{caller} holds role {held}; this call needs {role}");
            (
                caller,
                ApiError::new(StatusCode::FORBIDDEN, why.clone()).into_response(),
                Some(why),
            )
        }
    };
    let status = response.status().as_u16();
    // A refusal the handler made carries its reason in the body; keep it short here.
    let refused = refused.or_else(|| (status >= 400).then(|| format!("answered {status}")));
    service.audit(
        format!("api-{n}"),
        AuditEvent::ApiCall {
            caller,
            method,
            path,
            status,
            refused,
        },
    );
    response
}

fn caller(request_caller: Option<axum::Extension<Caller>>) -> Caller {
    request_caller.map(|c| c.0).unwrap_or(Caller {
        name: "anonymous".into(),
        role: Role::Reader,
    })
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; GET /v1/openapi.json lists every route",
    )
}

// ---- plan and apply ----

#[derive(Deserialize)]
struct PlanQuery {
    /// One person's plan; default everyone's.
    person: Option<String>,
}

async fn plan(State(service): State<Shared>, Query(query): Query<PlanQuery>) -> ApiResult {
    let ws = &service.workspace;
    let situation = ws.situation(&Sources::default()).await?;
    let mut plan = ws.plan(&situation)?;
    if let Some(person) = &query.person {
        if !situation.people.people.contains_key(person)
            && !plan.people.iter().any(|p| &p.id == person)
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no person {person} in the directory, the HR events or the state"),
            ));
        }
        plan.retain(|p, _| &p.id == person);
    }
    Ok(axum::Json(json!({ "plan": plan })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApplyRequest {
    /// One person; default everyone.
    person: Option<String>,
    #[serde(default)]
    allow_large_revoke: bool,
}

async fn apply(
    State(service): State<Shared>,
    who: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let request: ApplyRequest = if body.is_empty() {
        ApplyRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the body is not an apply request ({e}); send {{\"person\": \"ID\"}} or nothing for everyone"),
            )
        })?
    };
    let scope = match request.person {
        Some(person) => Scope::People(vec![person]),
        None => Scope::All,
    };
    let caller = caller(who);
    let id = spawn_policy_job(
        &service,
        "apply",
        &caller.name,
        scope,
        request.allow_large_revoke,
    );
    Ok(accepted(&service, &id))
}

fn accepted(service: &Service, id: &str) -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::ACCEPTED,
        axum::Json(
            json!({ "job": service.jobs.get(id), "url": format!("{}/v1/jobs/{id}", service.url) }),
        ),
    )
}

// ---- jobs ----

async fn list_jobs(State(service): State<Shared>) -> ApiResult {
    let (jobs, scheduled) = service.jobs.list();
    Ok(axum::Json(json!({ "jobs": jobs, "scheduled": scheduled })))
}

async fn job(State(service): State<Shared>, Path(id): Path<String>) -> ApiResult {
    service
        .jobs
        .get(&id)
        .map(|job| axum::Json(json!({ "job": job })))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no job {id}")))
}

// ---- approvals ----

#[derive(Deserialize)]
struct ApprovalsQuery {
    #[serde(default)]
    all: bool,
}

async fn list_approvals(
    State(service): State<Shared>,
    Query(query): Query<ApprovalsQuery>,
) -> ApiResult {
    let approvals = ops::approvals(service.workspace.store.as_ref(), query.all)?;
    Ok(axum::Json(json!({ "approvals": approvals })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionRequest {
    reason: String,
}

async fn decide(
    service: &Service,
    who: Option<axum::Extension<Caller>>,
    id: i64,
    approve: bool,
    body: &[u8],
) -> ApiResult {
    let request: DecisionRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the body is not a decision ({e}); send {{\"reason\": \"why\"}}"),
        )
    })?;
    let caller = caller(who);
    let decided = ops::decide(
        service.workspace.store.as_ref(),
        service.workspace.host.audit_sink().as_ref(),
        &Decision {
            id,
            approve,
            by: &caller.name,
            reason: &request.reason,
            at: Utc::now(),
        },
    )?;
    Ok(axum::Json(json!({ "approval": decided })))
}

async fn approve(
    State(service): State<Shared>,
    who: Option<axum::Extension<Caller>>,
    Path(id): Path<i64>,
    body: Bytes,
) -> ApiResult {
    decide(&service, who, id, true, &body).await
}

async fn deny(
    State(service): State<Shared>,
    who: Option<axum::Extension<Caller>>,
    Path(id): Path<i64>,
    body: Bytes,
) -> ApiResult {
    decide(&service, who, id, false, &body).await
}

// ---- people ----

/// What a person holds through Portcullis and why (the rules), plus the holds on them.
async fn person_grants(State(service): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let store = service.workspace.store.as_ref();
    let managed: Vec<_> = store
        .managed()
        .map_err(OpError::from)?
        .into_iter()
        .filter(|m| m.person == id)
        .collect();
    let holds: Vec<_> = store
        .holds()
        .map_err(OpError::from)?
        .into_iter()
        .filter(|h| h.person == id)
        .collect();
    let person = store
        .people()
        .map_err(OpError::from)?
        .into_iter()
        .find(|p| p.id == id);
    if person.is_none() && managed.is_empty() && holds.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Portcullis knows no person {id}: nothing is managed or held for them"),
        ));
    }
    Ok(axum::Json(
        json!({ "person": person, "grants": managed, "holds": holds }),
    ))
}

// ---- apps and plugins ----

fn known_app(service: &Service, app: &str) -> Result<(), ApiError> {
    if service.workspace.host.app(app).is_some() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no app named `{app}` is configured (configured: {})",
                service
                    .workspace
                    .config
                    .apps
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

async fn apps(State(service): State<Shared>) -> ApiResult {
    let apps: Vec<_> = service
        .workspace
        .host
        .apps()
        .map(|a| json!({ "name": a.name, "base_url": a.base_url.as_str(), "plugin": a.plugin.origin, "plugin_sha256": a.plugin.sha256 }))
        .collect();
    Ok(axum::Json(json!({ "apps": apps })))
}

async fn describe(State(service): State<Shared>, Path(app): Path<String>) -> ApiResult {
    known_app(&service, &app)?;
    let info = service
        .workspace
        .host
        .connector_info(&app)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(axum::Json(json!({ "app": app, "describe": info })))
}

async fn check(State(service): State<Shared>, Path(app): Path<String>) -> ApiResult {
    known_app(&service, &app)?;
    let call = service.workspace.host.check(&app).await;
    match call.result {
        Ok(report) => Ok(axum::Json(
            json!({ "app": app, "ok": true, "check": report, "http": call.report.http }),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("check of {app} failed: {e}"),
        )),
    }
}

fn plugin_json(service: &Service, app: &str) -> Option<Value> {
    let a = service.workspace.host.app(app)?;
    let grants = crate::app::Grants::from_config(&service.workspace.config, app);
    Some(json!({
        "app": a.name,
        "origin": a.plugin.origin,
        "sha256": a.plugin.sha256,
        "size": a.plugin.size,
        "imports": a.plugin.imports,
        "exports": a.plugin.exports,
        "signer": a.signer,
        "grants": grants,
    }))
}

async fn plugins(State(service): State<Shared>) -> ApiResult {
    let plugins: Vec<_> = service
        .workspace
        .host
        .apps()
        .filter_map(|a| plugin_json(&service, &a.name))
        .collect();
    Ok(axum::Json(json!({ "plugins": plugins })))
}

async fn plugin(State(service): State<Shared>, Path(app): Path<String>) -> ApiResult {
    known_app(&service, &app)?;
    plugin_json(&service, &app)
        .map(axum::Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no app {app}")))
}

/// Checks every plugin file and swaps in those that changed (see [`super::reload`]).
async fn reload_plugins(
    State(service): State<Shared>,
    who: Option<axum::Extension<Caller>>,
) -> ApiResult {
    let outcomes = super::reload::reload(&service, &caller(who).name).await;
    Ok(axum::Json(json!({ "plugins": outcomes })))
}

// ---- HR events ----

async fn hr_events(
    State(service): State<Shared>,
    who: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let source = caller(who).name;
    let Some((secret, tolerance)) = &service.hr_secret else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "HR events are not accepted: configure [server.hr_webhook] secret",
        ));
    };
    let now = Utc::now();
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let refused = |r: Refusal| match r {
        Refusal::Signature(why) => ApiError::new(StatusCode::UNAUTHORIZED, why),
        Refusal::Events(why) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why),
        Refusal::State(why) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, why),
    };
    verify_signature(secret, *tolerance, signature, &body, now).map_err(refused)?;
    let ws = &service.workspace;
    let delivery =
        check_delivery(&ws.config, ws.store.as_ref(), &body, &source, now).map_err(refused)?;
    // Stored before the answer: an acknowledged event is never lost.
    let new = ws
        .store
        .record_hr_events(&delivery.events)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut accepted = Vec::new();
    let mut replayed = Vec::new();
    let mut people = Vec::new();
    for (i, event) in delivery.events.iter().enumerate() {
        service.audit(
            format!("hr-{}", event.id),
            AuditEvent::HrEventReceived {
                event_id: event.id.clone(),
                kind: delivery.kinds[i].to_string(),
                person: event.person.clone(),
                effective: delivery.effective[i],
                source: source.clone(),
                replay: !new[i],
            },
        );
        if new[i] {
            accepted.push(event.id.clone());
            if !people.contains(&event.person) {
                people.push(event.person.clone());
            }
        } else {
            replayed.push(event.id.clone());
        }
    }
    if people.is_empty() {
        return Ok((
            StatusCode::OK,
            axum::Json(json!({ "accepted": accepted, "replayed": replayed, "job": null })),
        ));
    }
    let id = spawn_policy_job(&service, "hr-event", &source, Scope::People(people), false);
    let job = service.jobs.get(&id);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "accepted": accepted,
            "replayed": replayed,
            "job": job,
            "url": format!("{}/v1/jobs/{id}", service.url),
        })),
    ))
}

// ---- metrics ----

/// The Prometheus text format: what was recorded (calls, HTTP, rate-limit waits, verdicts)
/// and gauges of this moment (queue depth, jobs, schedules, loaded plugins).
async fn metrics(State(service): State<Shared>) -> Response {
    let gauges = crate::metrics::Gauges::new();
    let (jobs, scheduled) = service.jobs.list();
    gauges.family(
        "portcullis_jobs_unfinished",
        "Jobs queued or running (the queue depth).",
        &[],
        &[(vec![], service.jobs.unfinished() as i64)],
    );
    let mut by_kind: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for job in &jobs {
        let status = serde_json::to_value(job.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *by_kind.entry((job.kind.clone(), status)).or_default() += 1;
    }
    let samples: Vec<(Vec<&str>, i64)> = by_kind
        .iter()
        .map(|((kind, status), n)| (vec![kind.as_str(), status.as_str()], *n))
        .collect();
    gauges.family(
        "portcullis_jobs",
        "Jobs kept for /v1/jobs, by kind and status.",
        &["kind", "status"],
        &samples,
    );
    let last_runs: Vec<(Vec<&str>, i64)> = scheduled
        .iter()
        .map(|s| {
            (
                vec![s.name.as_str()],
                s.last_run.map_or(0, |t| t.timestamp()),
            )
        })
        .collect();
    gauges.family(
        "portcullis_scheduled_job_last_run_timestamp_seconds",
        "When each scheduled job last ran (0: not yet).",
        &["job"],
        &last_runs,
    );
    let next_runs: Vec<(Vec<&str>, i64)> = scheduled
        .iter()
        .map(|s| {
            (
                vec![s.name.as_str()],
                s.next_run.map_or(0, |t| t.timestamp()),
            )
        })
        .collect();
    gauges.family(
        "portcullis_scheduled_job_next_run_timestamp_seconds",
        "When each scheduled job runs next.",
        &["job"],
        &next_runs,
    );
    let apps: Vec<_> = service.workspace.host.apps().collect();
    let plugins: Vec<(Vec<&str>, i64)> = apps
        .iter()
        .map(|a| (vec![a.name.as_str(), a.plugin.sha256.as_str()], 1))
        .collect();
    gauges.family(
        "portcullis_plugin_info",
        "The plugin version serving each app (1 per app, labelled with its sha256).",
        &["app", "sha256"],
        &plugins,
    );
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&gauges),
    )
        .into_response()
}

// ---- health ----

async fn healthz(State(service): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({ "ok": true, "uptime_s": service.started.elapsed().as_secs() }))
}

/// Ready when the state answers and every app's plugin describes itself.
async fn readyz(State(service): State<Shared>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = service.workspace.store.runs() {
        problems.push(format!("state: {e}"));
    }
    for app in service.workspace.host.apps() {
        if let Err(e) = service.workspace.host.connector_info(&app.name).await {
            problems.push(format!("app {}: {e}", app.name));
        }
    }
    let body = json!({
        "ready": problems.is_empty(),
        "problems": problems.iter().map(|p| crate::redact::scrubbed(p.clone())).collect::<Vec<_>>(),
        "jobs_unfinished": service.jobs.unfinished(),
    });
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

// ---- OpenAPI ----

async fn openapi(State(service): State<Shared>) -> axum::Json<Value> {
    axum::Json(openapi_document(&service.url))
}

/// The OpenAPI 3.1 description of every route [`router`] serves.
pub(super) fn openapi_document(url: &str) -> Value {
    let op = |summary: &str, role: &str| {
        json!({
            "summary": summary,
            "description": format!("Needs a bearer token with role `{role}` (an operator may do what an approver may, an approver what a reader may)."),
            "security": [{ "bearer": [] }],
            "responses": {
                "200": { "description": "OK" },
                "401": { "description": "No token, or not a valid one" },
                "403": { "description": "The token's role does not allow the call" },
            },
        })
    };
    let param = |name: &str| json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }]);
    let with = |mut op: Value, key: &str, value: Value| {
        op[key] = value;
        op
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Portcullis",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Access provisioning: plans, applies, approvals, HR events, apps, plugins and jobs.",
        },
        "servers": [{ "url": url }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
        "paths": {
            "/v1/plan": { "get": with(op("The plan as of now (everyone, or ?person=ID)", "reader"), "parameters",
                json!([{ "name": "person", "in": "query", "required": false, "schema": { "type": "string" } }])) },
            "/v1/apply": { "post": with(op("Apply the plan (everyone, or {\"person\": ID}) as a job; 202 with the job", "operator"),
                "requestBody", json!({ "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "person": { "type": "string" }, "allow_large_revoke": { "type": "boolean" } } } } } })) },
            "/v1/approvals": { "get": with(op("Approval requests (pending, or ?all=true)", "reader"), "parameters",
                json!([{ "name": "all", "in": "query", "required": false, "schema": { "type": "boolean" } }])) },
            "/v1/approvals/{id}/approve": { "post": with(with(op("Approve a request; the caller is recorded as who decided", "approver"), "parameters", param("id")),
                "requestBody", json!({ "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string" } } } } } })) },
            "/v1/approvals/{id}/deny": { "post": with(with(op("Deny a request", "approver"), "parameters", param("id")),
                "requestBody", json!({ "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string" } } } } } })) },
            "/v1/people/{id}/grants": { "get": with(op("What a person holds through Portcullis, the rules behind each grant, and holds", "reader"), "parameters", param("id")) },
            "/v1/apps": { "get": op("Configured apps and their plugins", "reader") },
            "/v1/apps/{app}/describe": { "get": with(op("The connector's entitlement kinds and levels", "reader"), "parameters", param("app")) },
            "/v1/apps/{app}/check": { "post": with(op("Prove the app's credentials work", "reader"), "parameters", param("app")) },
            "/v1/plugins": { "get": op("Loaded plugins: sha256, imports, exports and what each may reach", "reader") },
            "/v1/plugins/reload": { "post": op("Check every plugin file; a changed one is compiled, checked against the contract, the state's grants and the policy, then takes over (calls already running finish on the old version). A refused one leaves the old version serving, with the reason", "operator") },
            "/v1/plugins/{app}": { "get": with(op("One app's plugin", "reader"), "parameters", param("app")) },
            "/v1/jobs": { "get": op("Jobs, newest first, and the scheduled jobs with last and next run", "reader") },
            "/v1/jobs/{id}": { "get": with(op("One job", "reader"), "parameters", param("id")) },
            "/v1/hr-events": { "post": with(op(
                "Deliver HR events ({\"events\": [...]}, the HR events file format), signed in X-Portcullis-Signature: t=UNIX_SECONDS,v1=HEX(HMAC-SHA256(secret, \"t.body\")). Stored before the answer; 202 with the job that applies them, 200 for a replay, 401 for a bad or stale signature, 422 for unknown people or apps.",
                "hr-source"), "parameters", json!([{ "name": "X-Portcullis-Signature", "in": "header", "required": true, "schema": { "type": "string" } }])) },
            "/metrics": { "get": with(op("Prometheus metrics (text format): connector calls by app, export and outcome; call latency; HTTP requests by app and status; rate-limit waits; verdicts; queue depth; jobs; schedules; plugin versions", "reader"),
                "responses", json!({ "200": { "description": "text/plain; version=0.0.4" }, "401": { "description": "No valid token" } })) },
            "/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OK" } } } },
            "/healthz": { "get": { "summary": "The process answers", "responses": { "200": { "description": "OK" } } } },
            "/readyz": { "get": { "summary": "State reachable and every plugin loaded", "responses": {
                "200": { "description": "Ready" }, "503": { "description": "Not ready; `problems` says why" } } } },
        },
    })
}

#[cfg(test)]
mod tests {
    /// Every route the router serves is in the OpenAPI document, and nothing else.
    #[test]
    fn the_openapi_document_lists_exactly_the_served_routes() {
        let source = include_str!("api.rs");
        let served: std::collections::BTreeSet<String> = source
            .split(".route(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect();
        let document = super::openapi_document("http://127.0.0.1:8740");
        let listed: std::collections::BTreeSet<String> = document["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        assert_eq!(served, listed);
        assert!(served.len() > 10, "{served:?}");
    }
}
