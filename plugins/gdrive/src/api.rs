//! Google Drive v3 requests: validated names, Google's error envelope mapped onto the
//! host's retry vocabulary, and the paged permissions list.
//!
//! Google errors look like `{"error":{"code":403,"message":..,"errors":[{"domain":..,
//! "reason":"userRateLimitExceeded",..}]}}`; the `reason` decides, not the status: a
//! 403 is a rate limit when the reason says so, a missing permission otherwise.
//! Must never: put an unvalidated id into a URL path, or walk pages without
//! [`crate::paging::Walk`] (a server that repeats a token would keep the call paging).

use portcullis_sdk::http::{Method, Request, Response};
use portcullis_sdk::{Error, Result, config};
use serde::Deserialize;

use crate::paging::Walk;

/// The partial-response selection for permission lists. `nextPageToken` must be named:
/// Drive drops every field the selection leaves out, paging token included.
pub const PERMISSION_FIELDS: &str = "nextPageToken,permissions(id,type,role,emailAddress)";

/// Reasons Google uses for "slow down" (per-user, per-project, sharing and daily quotas).
const RATE_REASONS: [&str; 4] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "sharingRateLimitExceeded",
    "dailyLimitExceeded",
];

/// A request carrying the `token` secret as an OAuth bearer token.
pub fn request(method: Method, url: &str) -> Request {
    Request::new(method, url)
        .bearer("token")
        .header("accept", "application/json")
}

/// Sends `request`, turning an error status into the matching [`Error`].
pub fn send(request: Request) -> Result<Response> {
    let what = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let response = request.send()?;
    match error_for(&response, &what) {
        Some(e) => Err(e),
        None => Ok(response),
    }
}

/// A Drive file or folder id, safe in a URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId(String);

impl FileId {
    pub fn parse(id: &str) -> Result<Self> {
        if is_token(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(Error::invalid_request(format!(
                "{id:?} is not a Drive file id (letters, digits, `-` and `_`, as in the file's URL)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `/drive/v3/files/{id}{rest}` under the base URL.
    pub fn url(&self, rest: &str) -> String {
        config::url(&format!("/drive/v3/files/{}{rest}", self.0))
    }
}

/// Drive ids (files, permissions): letters, digits, `-` and `_`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A plausible Drive page token: opaque printable ASCII (it travels percent-encoded in the
/// query, so this only keeps junk from the host's cursor out of requests).
pub fn is_page_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 1024 && s.chars().all(|c| c.is_ascii_graphic())
}

/// A subject's e-mail address (`subject.email`, else `subject.id`), lower-cased as Drive
/// stores it.
pub fn email(id: &str, email: Option<&str>) -> Result<String> {
    let address = email.unwrap_or(id).trim();
    let plausible = address.len() <= 254
        && address.split('@').count() == 2
        && address.split('@').all(|part| !part.is_empty())
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(address.to_ascii_lowercase())
    } else {
        Err(Error::invalid_request(format!(
            "{address:?} is not an e-mail address; Drive subjects are Google accounts named by e-mail (subject.email, or subject.id)"
        )))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Permission {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub role: String,
    #[serde(rename = "emailAddress")]
    pub email: Option<String>,
}

impl Permission {
    /// Whether this is `email`'s own user permission.
    pub fn is_user(&self, email: &str) -> bool {
        self.kind == "user"
            && self
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
    }
}

/// One page of `file`'s permissions and the token of the next.
pub fn permissions_page(
    file: &FileId,
    token: Option<&str>,
) -> Result<(Vec<Permission>, Option<String>)> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        permissions: Vec<Permission>,
        #[serde(rename = "nextPageToken")]
        next: Option<String>,
    }
    let mut request = request(Method::Get, &file.url("/permissions"))
        .query("fields", PERMISSION_FIELDS)
        .query("supportsAllDrives", "true")
        .query("pageSize", "100");
    if let Some(token) = token {
        request = request.query("pageToken", token);
    }
    let page: Page = send(request).map_err(|e| about_file(e, file))?.json()?;
    Ok((page.permissions, page.next.filter(|t| !t.is_empty())))
}

/// `email`'s user permission on `file` (the highest, should Drive list several).
pub fn find_user(file: &FileId, email: &str) -> Result<Option<Permission>> {
    let mut best: Option<Permission> = None;
    let mut token: Option<String> = None;
    // Drive decides when the list ends; the walk refuses a token it has followed and
    // stops at a page cap, so a server that repeats itself cannot keep the call going.
    let mut walk = Walk::new(file);
    loop {
        let (items, next) = permissions_page(file, token.as_deref())?;
        for p in items.into_iter().filter(|p| p.is_user(email)) {
            if best
                .as_ref()
                .is_none_or(|b| crate::roles::rank(&p.role) > crate::roles::rank(&b.role))
            {
                best = Some(p);
            }
        }
        match walk.follow(next)? {
            Some(next) => token = Some(next),
            None => return Ok(best),
        }
    }
}

/// Names the file in a not-found error, which Drive also answers when the credentials
/// cannot see the file.
pub fn about_file(e: Error, file: &FileId) -> Error {
    match e {
        Error::NotFound(m) => Error::not_found(format!(
            "Drive has no file {} that these credentials can see (share it with the connector's account, or check the id): {m}",
            file.as_str()
        )),
        other => other,
    }
}

/// The error an HTTP response stands for, from Google's error envelope; `None` for 2xx.
pub fn error_for(response: &Response, what: &str) -> Option<Error> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Body,
    }
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        message: String,
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        reason: String,
    }
    let status = response.status();
    if status < 300 {
        return None;
    }
    let body = serde_json::from_slice::<Envelope>(response.body())
        .ok()
        .map(|e| e.error);
    let reason = body
        .as_ref()
        .and_then(|b| b.errors.first())
        .map_or("", |i| i.reason.as_str());
    let message = match &body {
        Some(b) => b.message.clone(),
        None => response.text().trim().chars().take(200).collect(),
    };
    let text = if reason.is_empty() {
        format!("{what} returned HTTP {status}: {message}")
    } else {
        format!("{what} returned HTTP {status} ({reason}): {message}")
    };
    Some(if status == 429 || RATE_REASONS.contains(&reason) {
        let wait = response
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        Error::rate_limited(wait, text)
    } else {
        match status {
            401 => Error::unauthorized(format!(
                "{text}; the OAuth access token is missing, expired or revoked: mint a fresh one"
            )),
            403 => Error::unauthorized(format!(
                "{text}; the connector's account lacks the Drive scope or the right to share this file"
            )),
            404 => Error::not_found(text),
            408 | 500..=599 => Error::transient(text),
            _ => Error::invalid_request(text),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google(status: u16, reason: &str, headers: &[(&str, &str)]) -> Option<Error> {
        let body = format!(
            r#"{{"error":{{"code":{status},"message":"msg","errors":[{{"domain":"usageLimits","reason":"{reason}","message":"msg"}}]}}}}"#
        );
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        error_for(&Response::from_parts(status, headers, body), "GET /x")
    }

    #[test]
    fn reasons_decide_rate_limits() {
        for reason in [
            "rateLimitExceeded",
            "userRateLimitExceeded",
            "sharingRateLimitExceeded",
        ] {
            assert!(
                matches!(google(403, reason, &[]), Some(Error::RateLimited { retry_after_ms: None, message }) if message.contains(reason)),
                "{reason}"
            );
        }
        assert!(matches!(
            google(429, "rateLimitExceeded", &[("retry-after", "3")]),
            Some(Error::RateLimited {
                retry_after_ms: Some(3000),
                ..
            })
        ));
        assert!(matches!(
            google(403, "insufficientFilePermissions", &[]),
            Some(Error::Unauthorized(_))
        ));
    }

    #[test]
    fn other_statuses() {
        assert!(matches!(
            google(401, "authError", &[]),
            Some(Error::Unauthorized(_))
        ));
        assert!(matches!(
            google(404, "notFound", &[]),
            Some(Error::NotFound(_))
        ));
        assert!(
            matches!(google(400, "invalid", &[]), Some(Error::InvalidRequest(m)) if m.contains("(invalid): msg"))
        );
        assert!(matches!(
            google(503, "backendError", &[]),
            Some(Error::Transient(_))
        ));
        let html = Response::from_parts(502, Vec::new(), "<html>bad gateway</html>");
        assert!(
            matches!(error_for(&html, "GET /x"), Some(Error::Transient(m)) if m.contains("bad gateway"))
        );
        assert!(error_for(&Response::from_parts(204, Vec::new(), ""), "x").is_none());
    }

    #[test]
    fn names_are_validated() {
        assert!(FileId::parse("1AbC-d_9").is_ok());
        for bad in ["", "a/b", "..", "a?b", "a%2F", "x y"] {
            assert!(FileId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            email("Ada@Acme.Example", None).ok().as_deref(),
            Some("ada@acme.example")
        );
        assert_eq!(email("u1", Some("b@x.io")).ok().as_deref(), Some("b@x.io"));
        for bad in ["ada", "@x", "a@", "a@b@c", "a b@x"] {
            assert!(email(bad, None).is_err(), "{bad}");
        }
    }
}
