//! SCIM 2.0 protocol (RFC 7644) as the connector speaks it: requests with the SCIM media
//! type and optional bearer auth, safe URLs and filters, the shapes of groups and list
//! responses, and SCIM error bodies mapped onto the host's error vocabulary.
//!
//! Must never: put an id into a URL path or a filter without encoding it, or call a
//! rate limit anything but `rate_limited`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis_sdk::http::{Method, Request, Response};
use portcullis_sdk::{Error, Result, config, secrets};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const MEDIA_TYPE: &str = "application/scim+json";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// RFC 3986 unreserved characters stay; everything else (`/`, `?`, `#`, `%`, spaces) is
/// escaped, so an id is always exactly one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request with SCIM's media type; bearer auth from the `token` secret when one is
/// configured (some SCIM services, such as scim2-server by default, take none).
pub fn request(method: Method, url: &str) -> Request {
    let request = Request::new(method, url).header("accept", MEDIA_TYPE);
    if secrets::is_configured("token") {
        request.bearer("token")
    } else {
        request
    }
}

/// `{base}/{collection}/{id}` with `id` encoded as one path segment.
pub fn resource_url(collection: &str, id: &str) -> String {
    config::url(&format!(
        "/{collection}/{}",
        utf8_percent_encode(id, SEGMENT)
    ))
}

/// A SCIM filter comparison value: a JSON string literal (RFC 7644 §3.4.2.2), so quotes
/// and backslashes in `value` cannot end the literal early.
pub fn literal(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
}

/// `GET`s `request` and decodes a 2xx body, mapping errors with `doing` as context.
pub fn get<T: DeserializeOwned>(request: Request, doing: &str) -> Result<T> {
    ok(request.send()?, doing)?.json()
}

/// A `PATCH` of `/Groups/{group}` with one operation, as `application/scim+json`.
pub fn patch(group: &str, operation: Value) -> Result<Response> {
    let body = serde_json::json!({ "schemas": [PATCH_OP], "Operations": [operation] });
    request(Method::Patch, &resource_url("Groups", group))
        .header("content-type", MEDIA_TYPE)
        .body(body.to_string())
        .send()
}

/// One `members` entry of a Group (RFC 7643 §4.2).
#[derive(Debug, Deserialize)]
pub struct Member {
    pub value: String,
    /// `User` or `Group` (nested groups); often absent, meaning a user.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl Member {
    pub fn is_user(&self) -> bool {
        !self
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("group"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Group {
    pub id: String,
    /// Absent (or null) when the group has no members.
    pub members: Option<Vec<Member>>,
}

impl Group {
    pub fn has_member(&self, id: &str) -> bool {
        self.members.iter().flatten().any(|m| m.value == id)
    }
}

/// A SCIM `ListResponse` (RFC 7644 §3.4.2); only `totalResults` is required.
#[derive(Debug, Deserialize)]
pub struct ListResponse<T> {
    #[serde(rename = "totalResults")]
    pub total_results: u64,
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

/// Group `id` with its members (`attributes=members`; `id` always comes back).
pub fn group(id: &str) -> Result<Group> {
    let request = request(Method::Get, &resource_url("Groups", id)).query("attributes", "members");
    get(
        request,
        &format!("reading the members of SCIM group {id:?}"),
    )
    .map_err(|e| match e {
        Error::NotFound(m) => Error::not_found(format!(
            "{m}; the resource must be the group's SCIM `id` (not its displayName)"
        )),
        other => other,
    })
}

/// The SCIM User id a subject names: `who` itself when `/Users/{who}` exists, else the id
/// of the user whose `userName` is `who` (`userName` compares case-insensitively in
/// SCIM). `None` when neither exists.
pub fn user_id(who: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let response = request(Method::Get, &resource_url("Users", who))
        .query("attributes", "id")
        .send()?;
    // 400: some services refuse ids that are not in their format (a UUID) outright.
    if !matches!(response.status(), 400 | 404) {
        let user: Id = ok(response, &format!("reading SCIM user {who:?}"))?.json()?;
        return Ok(Some(user.id));
    }
    let request = request(Method::Get, &config::url("/Users"))
        .query("filter", &format!("userName eq {}", literal(who)))
        .query("attributes", "id");
    let found: ListResponse<Id> = get(request, &format!("looking up SCIM userName {who:?}"))?;
    match found.resources.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.id.clone())),
        _ => Err(Error::invalid_request(format!(
            "{} SCIM users have userName {who:?}; name the subject by its SCIM id",
            found.resources.len()
        ))),
    }
}

/// The body of a SCIM error response (RFC 7644 §3.12), as far as it was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScimError {
    pub scim_type: Option<String>,
    pub detail: Option<String>,
}

impl ScimError {
    pub fn of(response: &Response) -> Self {
        let json: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            scim_type: text("scimType"),
            detail: text("detail"),
        }
    }
}

/// The response if it is a 2xx, else the [`Error`] it stands for, with `doing` and the
/// SCIM `scimType`/`detail` in the message.
pub fn ok(response: Response, doing: &str) -> Result<Response> {
    if response.is_success() {
        Ok(response)
    } else {
        Err(failure(&response, doing))
    }
}

/// Maps an error response: 401/403 unauthorized, 404 not found, 409 (uniqueness) and
/// other 4xx invalid request, 429 or `Retry-After` rate limited, 501 unsupported, other
/// 5xx transient.
pub fn failure(response: &Response, doing: &str) -> Error {
    let status = response.status();
    let scim = ScimError::of(response);
    let mut message = format!("{doing}: the SCIM service answered HTTP {status}");
    if let Some(scim_type) = &scim.scim_type {
        message.push_str(&format!(" ({scim_type})"));
    }
    match &scim.detail {
        Some(detail) => message.push_str(&format!(": {}", cut(detail))),
        None => {
            let text = response.text();
            if !text.trim().is_empty() {
                message.push_str(&format!(": {}", cut(text.trim())));
            }
        }
    }
    // The SDK knows Retry-After and the rate-limit headers; keep its category and wait.
    match response.clone().error_for_status() {
        Err(Error::RateLimited { retry_after_ms, .. }) => {
            Error::rate_limited(retry_after_ms, message)
        }
        Err(Error::Unauthorized(_)) => Error::unauthorized(format!(
            "{message}; check the `token` secret and the SCIM client's permissions"
        )),
        Err(Error::NotFound(_)) => Error::not_found(message),
        // RFC 7644 §3.12: the service does not implement this operation (PATCH, filters).
        Err(Error::Transient(_)) if status == 501 => Error::unsupported(message),
        Err(Error::Transient(_)) => Error::transient(message),
        Err(Error::Unsupported(_)) => Error::unsupported(message),
        Err(Error::InvalidRequest(_)) if status == 409 => Error::invalid_request(format!(
            "{message}; the service reports a uniqueness conflict"
        )),
        // 1xx/3xx also land here: the host follows no redirects.
        Err(Error::InvalidRequest(_)) | Ok(_) => Error::invalid_request(message),
    }
}

/// At most 300 characters of a server's text.
fn cut(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Response::from_parts(status, headers, body)
    }

    fn error(status: u16, scim_type: Option<&str>, detail: &str) -> String {
        let mut body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": status.to_string(),
            "detail": detail,
        });
        if let Some(t) = scim_type {
            body["scimType"] = t.into();
        }
        body.to_string()
    }

    #[test]
    fn scim_errors_map_to_what_the_host_should_do() {
        let e = failure(&response(401, &[], &error(401, None, "bad token")), "x");
        assert!(matches!(e, Error::Unauthorized(m) if m.contains("bad token")));
        let e = failure(&response(403, &[], &error(403, None, "no")), "x");
        assert!(matches!(e, Error::Unauthorized(_)));
        let e = failure(
            &response(404, &[], &error(404, None, "Group 'g' not found")),
            "x",
        );
        assert!(matches!(e, Error::NotFound(m) if m.contains("Group 'g' not found")));
        let e = failure(
            &response(409, &[], &error(409, Some("uniqueness"), "taken")),
            "x",
        );
        assert!(
            matches!(e, Error::InvalidRequest(m) if m.contains("(uniqueness): taken") && m.contains("uniqueness conflict"))
        );
        let e = failure(
            &response(400, &[], &error(400, Some("invalidFilter"), "bad")),
            "x",
        );
        assert!(matches!(e, Error::InvalidRequest(m) if m.contains("(invalidFilter)")));
        let e = failure(&response(501, &[], &error(501, None, "PATCH")), "x");
        assert!(matches!(e, Error::Unsupported(_)));
        for status in [500, 502, 503] {
            let e = failure(&response(status, &[], "<html>down</html>"), "x");
            assert!(matches!(e, Error::Transient(m) if m.contains("<html>down</html>")));
        }
    }

    #[test]
    fn rate_limits_keep_the_wait() {
        let e = failure(
            &response(429, &[("retry-after", "7")], &error(429, None, "slow down")),
            "adding",
        );
        assert_eq!(
            e,
            Error::rate_limited(
                Some(7000),
                "adding: the SCIM service answered HTTP 429: slow down"
            )
        );
        let e = failure(&response(429, &[], ""), "x");
        assert!(matches!(
            e,
            Error::RateLimited {
                retry_after_ms: None,
                ..
            }
        ));
    }

    #[test]
    fn scim_error_body_is_read_leniently() {
        let r = response(400, &[], &error(400, Some("noTarget"), "not a member"));
        assert_eq!(
            ScimError::of(&r),
            ScimError {
                scim_type: Some("noTarget".into()),
                detail: Some("not a member".into())
            }
        );
        assert_eq!(
            ScimError::of(&response(400, &[], "oops")),
            ScimError::default()
        );
    }

    #[test]
    fn filter_literals_and_segments_cannot_break_out() {
        assert_eq!(literal("bjensen"), r#""bjensen""#);
        assert_eq!(literal(r#"a" or "1" eq "1"#), r#""a\" or \"1\" eq \"1""#);
        assert_eq!(literal(r"back\slash"), r#""back\\slash""#);
        let encoded = utf8_percent_encode("../a/b?c#d e", SEGMENT).to_string();
        assert_eq!(encoded, "..%2Fa%2Fb%3Fc%23d%20e");
    }

    #[test]
    fn groups_and_list_responses_decode() {
        let g: Group = serde_json::from_str(
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"g1",
                "members":[{"value":"u1"},{"value":"g2","type":"Group"}]}"#,
        )
        .expect("group");
        assert!(g.has_member("u1") && !g.has_member("U1"));
        let users: Vec<bool> = g.members.iter().flatten().map(Member::is_user).collect();
        assert_eq!(users, [true, false]);
        let empty: Group = serde_json::from_str(r#"{"id":"g1","members":null}"#).expect("null");
        assert!(!empty.has_member("u1"));
        let list: ListResponse<Group> =
            serde_json::from_str(r#"{"totalResults":0,"startIndex":1}"#).expect("list");
        assert!(list.resources.is_empty());
    }
}
