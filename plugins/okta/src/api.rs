//! Okta management API requests: `Authorization: SSWS <api-token>` injected by the host,
//! Okta's error bodies (`errorCode`, `errorSummary`, `errorCauses`) turned into
//! [`Error`]s, `Link: rel="next"` paging, and the reads operations share.
//!
//! Must never: follow a `next` link outside the base URL, or build a path from an
//! unvalidated id.

use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_sdk::http::{Method, Request, Response};
use portcullis_sdk::{Error, Result, config, link};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Members per page; Okta allows up to 1000 for group members but 200 keeps each
/// response small and well under the host's size cap.
pub const PAGE: &str = "200";

pub fn request(method: Method, url: String) -> Request {
    Request::new(method, url)
        .header_auth("Authorization", "SSWS ", "api-token")
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

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct OktaError {
    pub error_code: String,
    pub error_summary: String,
    pub error_id: String,
    pub error_causes: Vec<Cause>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Cause {
    pub error_summary: String,
}

/// The error a response stands for (`None` for 2xx), by Okta's conventions.
pub fn error(what: &str, response: &Response, now_ms: u64) -> Option<Error> {
    let status = response.status();
    if (200..300).contains(&status) {
        return None;
    }
    let body: OktaError = response.json().unwrap_or_default();
    let mut detail = if body.error_code.is_empty() {
        response.text().trim().chars().take(200).collect()
    } else {
        format!("{} {}", body.error_code, body.error_summary)
    };
    for cause in &body.error_causes {
        detail.push_str(&format!("; {}", cause.error_summary));
    }
    if !body.error_id.is_empty() {
        detail.push_str(&format!(" (errorId {})", body.error_id));
    }
    let text = format!("{what} returned HTTP {status}: {detail}");
    Some(match (status, body.error_code.as_str()) {
        (429, _) | (_, "E0000047") => Error::rate_limited(wait_ms(response, now_ms), text),
        (401, _) => Error::unauthorized(format!(
            "{text}; check the `api-token` secret (an Okta API token, sent as SSWS)"
        )),
        (403, _) => Error::unauthorized(format!(
            "{text}; the token's admin needs a role that manages these groups (Group Membership Admin or higher)"
        )),
        (404, _) => Error::not_found(text),
        (408 | 500..=599, _) => Error::transient(text),
        _ => Error::invalid_request(text),
    })
}

/// Okta sends `X-Rate-Limit-Reset` (epoch seconds) and, on some limits, `Retry-After`.
fn wait_ms(response: &Response, now_ms: u64) -> Option<u64> {
    if let Some(secs) = response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(secs.saturating_mul(1000));
    }
    let reset = response
        .header("x-rate-limit-reset")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(reset.saturating_mul(1000).saturating_sub(now_ms))
}

/// One page of a list endpoint and its `rel="next"` link, checked to lie under the
/// base URL.
pub fn page<T: DeserializeOwned>(url: String) -> Result<(Vec<T>, Option<String>)> {
    let response = send(request(Method::Get, url))?;
    let next = link::next_link(&response);
    if let Some(next) = &next {
        under_base(next)?;
    }
    Ok((response.json()?, next))
}

/// `url` if it lies under the application's base URL.
pub fn under_base(url: &str) -> Result<&str> {
    let prefix = format!("{}/", config::base_url());
    if url.starts_with(&prefix) {
        Ok(url)
    } else {
        Err(Error::invalid_request(format!(
            "refusing to follow {:?}: it is not under the base URL {prefix}",
            url.chars().take(100).collect::<String>()
        )))
    }
}

#[derive(Deserialize)]
pub struct Group {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub profile: GroupProfile,
}

#[derive(Deserialize, Default)]
pub struct GroupProfile {
    #[serde(default)]
    pub name: String,
}

/// `GET /api/v1/groups/{id}`.
pub fn group(id: &str) -> Result<Group> {
    send(request(
        Method::Get,
        config::url(&format!("/api/v1/groups/{id}")),
    ))
    .map_err(|e| match e {
        Error::NotFound(m) => Error::not_found(format!("Okta knows no group {id}: {m}")),
        other => other,
    })?
    .json()
}

/// Whether `user` is a member of `group`, from the user's group list (a user is in few
/// groups; a group can have hundreds of thousands of members). An unknown user is in
/// no group.
pub fn is_member(user: &str, group: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct Listed {
        id: String,
    }
    let mut next = Some(config::url(&format!(
        "/api/v1/users/{user}/groups?limit={PAGE}"
    )));
    while let Some(url) = next {
        let (groups, after) = match page::<Listed>(url) {
            Err(Error::NotFound(_)) => return Ok(false),
            other => other?,
        };
        if groups.iter().any(|g| g.id == group) {
            return Ok(true);
        }
        next = after;
    }
    Ok(false)
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
    fn okta_error_bodies_are_quoted_and_mapped() {
        let body = r#"{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: 00gx (UserGroup)","errorLink":"E0000007","errorId":"oaeX","errorCauses":[]}"#;
        let e = error("GET /x", &response(404, &[], body), 0);
        assert!(
            matches!(&e, Some(Error::NotFound(m)) if m.contains("E0000007 Not found: Resource not found: 00gx (UserGroup) (errorId oaeX)")),
            "{e:?}"
        );
        let body =
            r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorCauses":[]}"#;
        assert!(matches!(
            error("GET /x", &response(401, &[], body), 0),
            Some(Error::Unauthorized(_))
        ));
        let body = r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: x","errorCauses":[{"errorSummary":"name: too long"}]}"#;
        assert!(
            matches!(error("PUT /x", &response(400, &[], body), 0), Some(Error::InvalidRequest(m)) if m.ends_with("Api validation failed: x; name: too long"))
        );
        assert!(matches!(
            error("GET /x", &response(500, &[], "<html>"), 0),
            Some(Error::Transient(m)) if m.contains("<html>")
        ));
        assert!(error("GET /x", &response(204, &[], ""), 0).is_none());
    }

    #[test]
    fn rate_limits_wait_until_the_reset_epoch() {
        let body = r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#;
        let headers = [
            ("x-rate-limit-limit", "600"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1000060"),
        ];
        let now = 1_000_000 * 1000 + 250;
        assert!(matches!(
            error("GET /x", &response(429, &headers, body), now),
            Some(Error::RateLimited { retry_after_ms: Some(59_750), message }) if message.contains("E0000047")
        ));
        // A reset in the past means now; Retry-After wins when present.
        let late = 2_000_000 * 1000;
        assert!(matches!(
            error("GET /x", &response(429, &headers, body), late),
            Some(Error::RateLimited {
                retry_after_ms: Some(0),
                ..
            })
        ));
        assert!(matches!(
            error("GET /x", &response(429, &[("retry-after", "3")], ""), now),
            Some(Error::RateLimited {
                retry_after_ms: Some(3000),
                ..
            })
        ));
    }
}
