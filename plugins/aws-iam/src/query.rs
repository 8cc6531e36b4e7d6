//! The IAM Query API: `POST /` with a form body `Action=..&Version=2010-05-08&..`, signed
//! with SigV4 by the host (secrets `access-key-id` and `secret-access-key`), XML answers,
//! and IAM's error codes mapped to what the host should do next.
//!
//! Must never: put a credential in a request (the host signs), or treat a quota
//! (`LimitExceeded`) as something a retry can fix.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis_sdk::http::{Request, Response};
use portcullis_sdk::{Error, Result, config};

use crate::xml;

const VERSION: &str = "2010-05-08";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Secret names the operator configures for the app instance.
pub const ACCESS_KEY_ID: &str = "access-key-id";
pub const SECRET_ACCESS_KEY: &str = "secret-access-key";

/// RFC 3986 unreserved characters stay; everything else is escaped (as SigV4 expects).
const FORM_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The form body of one Query API call.
pub fn form(action: &str, params: &[(&str, &str)]) -> String {
    let mut body = format!("Action={action}&Version={VERSION}");
    for (key, value) in params {
        body.push('&');
        body.push_str(key);
        body.push('=');
        body.extend(utf8_percent_encode(value, FORM_VALUE));
    }
    body
}

/// Calls `action` and returns the XML body of a successful answer.
pub fn call(action: &str, params: &[(&str, &str)]) -> Result<String> {
    let region = config::setting("region").unwrap_or_else(|| "us-east-1".into());
    let service = config::setting("service").unwrap_or_else(|| "iam".into());
    let response = Request::post(config::url("/"))
        .header("content-type", CONTENT_TYPE)
        .header("accept", "text/xml")
        .body(form(action, params))
        .aws_sigv4(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, &region, &service)
        .send()?;
    if response.is_success() {
        return Ok(response.text().into_owned());
    }
    Err(to_error(action, &response))
}

/// An IAM error code, as the connector reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// The IAM error code of a failed call, when the error is an [`Error::NotFound`] the
/// caller may want to look at more closely (`NoSuchEntity` on detach).
pub fn is_no_such_entity(error: &Error) -> bool {
    matches!(error, Error::NotFound(m) if m.starts_with("NoSuchEntity"))
}

fn to_error(action: &str, response: &Response) -> Error {
    let text = response.text();
    let failure = xml::error(&text).map(|(code, message)| Failure { code, message });
    map_error(action, response.status(), failure, &text)
}

/// Maps an IAM error to the host's vocabulary. Messages start with the IAM code.
pub fn map_error(action: &str, status: u16, failure: Option<Failure>, body: &str) -> Error {
    let Some(Failure { code, message }) = failure else {
        let what = format!("{action} answered HTTP {status}: {}", xml::prefix(body));
        return match status {
            401 | 403 => Error::unauthorized(what),
            429 => Error::rate_limited(None, what),
            s if s >= 500 => Error::transient(what),
            _ => Error::invalid_request(what),
        };
    };
    let text = format!("{code}: {message} ({action}, HTTP {status})");
    match code.as_str() {
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            // AWS sends no Retry-After; the host's backoff decides the wait.
            Error::rate_limited(None, text)
        }
        "LimitExceeded" => Error::invalid_request(format!(
            "{text}; this is an account quota (such as managed policies per user), not a rate limit: retrying cannot help, detach a policy or raise the quota"
        )),
        "NoSuchEntity" => Error::not_found(text),
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "AccessDenied"
        | "AccessDeniedException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "InvalidAccessKeyId" => Error::unauthorized(format!(
            "{text}; check the app's `access-key-id`/`secret-access-key` secrets and that the key may call iam:{action}"
        )),
        "ServiceFailure" | "ServiceUnavailable" | "InternalFailure" => Error::transient(text),
        "InvalidInput"
        | "MalformedPolicyDocument"
        | "ValidationError"
        | "InvalidParameterValue" => Error::invalid_request(text),
        "PolicyNotAttachable" | "UnmodifiableEntity" => Error::unsupported(text),
        _ if status >= 500 => Error::transient(text),
        _ if status == 403 => Error::unauthorized(text),
        _ => Error::invalid_request(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(status: u16, code: &str) -> Error {
        let failure = Failure {
            code: code.into(),
            message: "m".into(),
        };
        map_error("AttachUserPolicy", status, Some(failure), "")
    }

    #[test]
    fn form_bodies_escape_values() {
        assert_eq!(
            form(
                "AttachUserPolicy",
                &[
                    ("UserName", "a+b@c"),
                    ("PolicyArn", "arn:aws:iam::aws:policy/ReadOnlyAccess")
                ]
            ),
            "Action=AttachUserPolicy&Version=2010-05-08&UserName=a%2Bb%40c&PolicyArn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess"
        );
    }

    #[test]
    fn iam_codes_map_to_what_the_host_should_do() {
        assert!(matches!(
            mapped(400, "Throttling"),
            Error::RateLimited {
                retry_after_ms: None,
                ..
            }
        ));
        let quota = mapped(409, "LimitExceeded");
        assert!(
            matches!(&quota, Error::InvalidRequest(m) if m.contains("not a rate limit")),
            "{quota}"
        );
        assert!(is_no_such_entity(&mapped(404, "NoSuchEntity")));
        assert!(!is_no_such_entity(&mapped(400, "InvalidInput")));
        for code in [
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ] {
            assert!(
                matches!(mapped(403, code), Error::Unauthorized(_)),
                "{code}"
            );
        }
        assert!(matches!(mapped(500, "ServiceFailure"), Error::Transient(_)));
        assert!(matches!(
            mapped(400, "InvalidInput"),
            Error::InvalidRequest(_)
        ));
        assert!(matches!(
            mapped(400, "MalformedPolicyDocument"),
            Error::InvalidRequest(_)
        ));
        assert!(matches!(
            map_error("GetUser", 503, None, "<html>"),
            Error::Transient(_)
        ));
        assert!(matches!(
            map_error("GetUser", 403, None, ""),
            Error::Unauthorized(_)
        ));
    }
}
