//! Jira Cloud REST v3 requests: Basic auth from the `email` and `api-token` secrets,
//! Jira's error bodies (`errorMessages` + `errors`) turned into [`Error`]s, and the two
//! reads every operation shares (a project's role ids, one role's actors).
//!
//! Must never: treat group actors as the subject holding a role; they are not
//! something a user grant or revoke can change.

use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_sdk::http::{Method, Request, Response};
use portcullis_sdk::{Error, Result, config};
use serde::Deserialize;

use crate::names::{self, Target};
use crate::reset;

/// A request with Jira's JSON accept header, authenticated as `email`:`api-token`.
pub fn request(method: Method, path: &str) -> Request {
    request_at(method, config::url(path))
}

/// Like [`request`], for an absolute URL under the base URL: a `nextPage` link, which
/// [`crate::paging`] checked before it became a cursor and `list::decode` again when the
/// cursor came back.
pub fn request_at(method: Method, url: String) -> Request {
    Request::new(method, url)
        .basic("email", "api-token")
        .header("accept", "application/json")
}

/// Sends `request`; a non-2xx answer becomes the [`Error`] it stands for.
pub fn send(request: Request) -> Result<Response> {
    let what = request.url().to_owned();
    let response = request.send()?;
    match error(&what, &response, now_ms()) {
        Some(e) => Err(e),
        None => Ok(response),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Jira's explanation: `errorMessages[]` and the values of `errors{}`, else a prefix
/// of the body.
pub fn messages(response: &Response) -> String {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Body {
        #[serde(rename = "errorMessages")]
        error_messages: Vec<String>,
        errors: serde_json::Map<String, serde_json::Value>,
    }
    let mut parts = Vec::new();
    if let Ok(body) = response.json::<Body>() {
        parts.extend(body.error_messages);
        for (field, value) in body.errors {
            parts.push(format!("{field}: {}", value.as_str().unwrap_or_default()));
        }
    }
    if parts.is_empty() {
        parts.push(response.text().trim().chars().take(200).collect());
    }
    parts.join("; ")
}

/// The error a response stands for (`None` for 2xx), by Jira's conventions.
pub fn error(what: &str, response: &Response, now_ms: u64) -> Option<Error> {
    let status = response.status();
    if (200..300).contains(&status) {
        return None;
    }
    let text = format!("{what} returned HTTP {status}: {}", messages(response));
    Some(match status {
        401 => Error::unauthorized(format!(
            "{text}; check the `email` and `api-token` secrets (an Atlassian API token, not a password)"
        )),
        403 => Error::unauthorized(format!(
            "{text}; the account needs the Administer Projects permission on the project"
        )),
        404 => Error::not_found(text),
        429 => {
            // Retry-After (seconds) when present, else the ISO-8601 X-RateLimit-Reset.
            let wait = response
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s.saturating_mul(1000))
                .or_else(|| {
                    response
                        .header("x-ratelimit-reset")
                        .and_then(|v| reset::wait_ms(v, now_ms))
                });
            Error::rate_limited(wait, text)
        }
        408 | 500..=599 => Error::transient(text),
        _ => Error::invalid_request(text),
    })
}

/// The id of `role` in `project`, from `GET /project/{key}/role` (name -> URL). Exact
/// name first, then a case-insensitive match.
pub fn role_id(target: &Target) -> Result<String> {
    let role = target.role()?;
    let roles = roles(&target.project)?;
    let url = roles
        .iter()
        .find(|(name, _)| *name == role)
        .or_else(|| roles.iter().find(|(n, _)| n.eq_ignore_ascii_case(role)))
        .map(|(_, url)| url)
        .ok_or_else(|| {
            let known: Vec<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
            Error::not_found(format!(
                "project {} has no role {role:?}; its roles are: {}",
                target.project,
                known.join(", ")
            ))
        })?;
    names::role_id(url).map(str::to_owned).ok_or_else(|| {
        Error::transient(format!(
            "Jira returned a role URL without a numeric id: {url}"
        ))
    })
}

/// Every role of `project`: (name, URL), sorted by name.
pub fn roles(project: &str) -> Result<Vec<(String, String)>> {
    let response = send(request(
        Method::Get,
        &format!("/rest/api/3/project/{project}/role"),
    ))
    .map_err(|e| match e {
        Error::NotFound(m) => Error::not_found(format!(
            "Jira knows no project {project} (or the account cannot browse it): {m}"
        )),
        other => other,
    })?;
    let map: std::collections::BTreeMap<String, String> = response.json()?;
    Ok(map.into_iter().collect())
}

#[derive(Deserialize)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub actors: Vec<Actor>,
}

#[derive(Deserialize)]
pub struct Actor {
    #[serde(rename = "actorUser")]
    pub actor_user: Option<ActorUser>,
}

#[derive(Deserialize)]
pub struct ActorUser {
    #[serde(rename = "accountId")]
    pub account_id: String,
}

impl Role {
    /// Account ids of the direct user actors (group actors are skipped).
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.actors
            .iter()
            .filter_map(|a| a.actor_user.as_ref().map(|u| u.account_id.as_str()))
    }

    pub fn has_user(&self, account_id: &str) -> bool {
        self.users().any(|u| u == account_id)
    }
}

/// `GET /project/{key}/role/{id}`: the role and its actors.
pub fn role(project: &str, id: &str) -> Result<Role> {
    send(request(
        Method::Get,
        &format!("/rest/api/3/project/{project}/role/{id}"),
    ))?
    .json()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Response::from_parts(status, headers, body)
    }

    #[test]
    fn jira_error_bodies_are_quoted() {
        let r = response(
            400,
            &[],
            r#"{"errorMessages":["User 'abc' is already a member of the project role."],"errors":{"user":"bad"}}"#,
        );
        assert_eq!(
            messages(&r),
            "User 'abc' is already a member of the project role.; user: bad"
        );
        assert!(
            matches!(error("POST /x", &r, 0), Some(Error::InvalidRequest(m)) if m.contains("already a member"))
        );
        let r = response(
            401,
            &[],
            "Client must be authenticated to access this resource.",
        );
        assert!(
            matches!(error("GET /x", &r, 0), Some(Error::Unauthorized(m)) if m.contains("Client must be authenticated"))
        );
        assert!(matches!(
            error(
                "GET /x",
                &response(403, &[("x-ratelimit-remaining", "0")], "{}"),
                0
            ),
            Some(Error::Unauthorized(_))
        ));
        assert!(matches!(
            error("GET /x", &response(404, &[], "{}"), 0),
            Some(Error::NotFound(_))
        ));
        assert!(matches!(
            error("GET /x", &response(503, &[("retry-after", "5")], ""), 0),
            Some(Error::Transient(_))
        ));
        assert!(error("GET /x", &response(204, &[], ""), 0).is_none());
    }

    #[test]
    fn rate_limits_prefer_retry_after_then_iso_reset() {
        let reset = "2026-11-25T21:40:00Z";
        let now = (1_795_642_800 - 42) * 1000;
        let r = response(
            429,
            &[("retry-after", "7"), ("x-ratelimit-reset", reset)],
            "",
        );
        assert!(matches!(
            error("GET /x", &r, now),
            Some(Error::RateLimited {
                retry_after_ms: Some(7000),
                ..
            })
        ));
        let r = response(429, &[("x-ratelimit-reset", reset)], "");
        assert!(matches!(
            error("GET /x", &r, now),
            Some(Error::RateLimited {
                retry_after_ms: Some(42_000),
                ..
            })
        ));
        let r = response(429, &[("x-ratelimit-reset", "soon")], "");
        assert!(matches!(
            error("GET /x", &r, now),
            Some(Error::RateLimited {
                retry_after_ms: None,
                ..
            })
        ));
    }

    #[test]
    fn only_user_actors_count() {
        let role: Role = serde_json::from_str(
            r#"{"self":"x","name":"Developers","id":10001,"actors":[
                {"id":1,"displayName":"devs","type":"atlassian-group-role-actor","name":"devs","actorGroup":{"name":"devs","groupId":"g1"}},
                {"id":2,"displayName":"Mia","type":"atlassian-user-role-actor","actorUser":{"accountId":"5b10"}}]}"#,
        )
        .expect("role json");
        assert_eq!(role.users().collect::<Vec<_>>(), ["5b10"]);
        assert!(role.has_user("5b10") && !role.has_user("devs"));
    }
}
