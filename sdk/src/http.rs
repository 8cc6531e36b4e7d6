//! Outbound HTTP through the host: a builder over the WIT `request` record and a
//! [`Response`] with JSON decoding and REST status mapping.
//!
//! The host reaches only the application's origin, never follows redirects and injects
//! credentials named by the `auth` methods ([`Request::bearer`] and friends); a guest
//! that sets `Authorization` itself is refused.
//! Must never: panic on a response, or quote more than a short prefix of a body in an
//! error (bodies can be huge and can hold personal data).

use std::borrow::Cow;
use std::time::SystemTime;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::portcullis::connector::http::{
    self as host, Auth, BasicAuth, HeaderAuth, Sigv4Auth,
};
use crate::status::{self, BODY_PREFIX_CHARS};
use crate::{Error, Result};

pub use host::Method;

/// RFC 3986 unreserved characters stay as they are; everything else is escaped, so a
/// value can never inject `&`, `=` or `#`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An outgoing request under construction.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    auth: Option<Auth>,
    /// A builder step that failed (e.g. JSON serialisation), reported by `send` so the
    /// chain stays fluent.
    deferred: Option<Error>,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            auth: None,
            deferred: None,
        }
    }
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }
    pub fn head(url: impl Into<String>) -> Self {
        Self::new(Method::Head, url)
    }
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Adds a header (repeatable).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends `key=value` to the URL's query, percent-encoding both.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.url = append_query(&self.url, key, value);
        self
    }

    /// Serialises `value` as the JSON body and sets `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                self.headers
                    .push(("content-type".into(), "application/json".into()));
                self.body = Some(bytes);
            }
            Err(e) => {
                self.deferred = Some(Error::invalid_request(format!(
                    "could not encode the request body as JSON: {e}"
                )));
            }
        }
        self
    }

    /// Sets a raw body; set `Content-Type` with [`Request::header`].
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    /// `Authorization: Bearer <value of secret>`, injected by the host.
    pub fn bearer(mut self, secret: &str) -> Self {
        self.auth = Some(Auth::Bearer(secret.to_owned()));
        self
    }

    /// HTTP Basic from two secrets, injected by the host.
    pub fn basic(mut self, username_secret: &str, password_secret: &str) -> Self {
        self.auth = Some(Auth::Basic(BasicAuth {
            username_secret: username_secret.to_owned(),
            password_secret: password_secret.to_owned(),
        }));
        self
    }

    /// `<name>: <prefix><value of secret>`, e.g. `("Authorization", "SSWS ", "token")`.
    pub fn header_auth(mut self, name: &str, prefix: &str, secret: &str) -> Self {
        self.auth = Some(Auth::Header(HeaderAuth {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            secret: secret.to_owned(),
        }));
        self
    }

    /// AWS Signature Version 4 over the whole request, computed by the host.
    pub fn aws_sigv4(
        mut self,
        access_key_id_secret: &str,
        secret_access_key_secret: &str,
        session_token_secret: Option<&str>,
        region: &str,
        service: &str,
    ) -> Self {
        self.auth = Some(Auth::AwsSigv4(Sigv4Auth {
            access_key_id_secret: access_key_id_secret.to_owned(),
            secret_access_key_secret: secret_access_key_secret.to_owned(),
            session_token_secret: session_token_secret.map(str::to_owned),
            region: region.to_owned(),
            service: service.to_owned(),
        }));
        self
    }

    /// The URL as built so far.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends the request through the host and returns whatever status came back; use
    /// [`Response::error_for_status`] to turn error statuses into [`Error`]s.
    pub fn send(self) -> Result<Response> {
        if let Some(e) = self.deferred {
            return Err(e);
        }
        let request = host::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            auth: self.auth,
        };
        let response = host::send(&request)?;
        Ok(Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
            what: format!("{} {}", method_name(request.method), request.url),
        })
    }
}

/// A whole, buffered response.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// `METHOD url`, for error messages.
    what: String,
}

impl Response {
    /// Builds a response by hand, for unit tests of response handling.
    pub fn from_parts(
        status: u16,
        headers: Vec<(String, String)>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
            what: "the request".into(),
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        status::find_header(&self.headers, name)
    }

    /// Every value of a header, by case-insensitive name.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as text; invalid UTF-8 becomes U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Decodes the body as JSON. A body that does not decode is treated as a passing
    /// fault (a proxy's HTML error page, a truncated answer), so the host retries.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::transient(format!(
                "{} returned HTTP {} with a body that is not the expected JSON ({e}): {}",
                self.what,
                self.status,
                status::truncate(self.text().trim(), BODY_PREFIX_CHARS)
            ))
        })
    }

    /// Turns 3xx/4xx/5xx into the matching [`Error`] by common REST conventions: 401 is
    /// unauthorized; 403/429 with `Retry-After` or an exhausted `X-RateLimit-Remaining`
    /// is rate-limited (wait from `Retry-After` or `X-RateLimit-Reset`); other 403 is
    /// unauthorized; 404 not found; 408 and 5xx transient; other 4xx invalid request.
    /// The body's JSON `message` is quoted in the error.
    pub fn error_for_status(self) -> Result<Self> {
        match status::error_for(
            &self.what,
            self.status,
            &self.headers,
            &self.body,
            SystemTime::now(),
        ) {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

/// `url` with `key=value` added to its query, before any fragment.
pub(crate) fn append_query(url: &str, key: &str, value: &str) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let sep = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    format!(
        "{base}{sep}{}={}{fragment}",
        utf8_percent_encode(key, QUERY_VALUE),
        utf8_percent_encode(value, QUERY_VALUE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_and_encoded() {
        assert_eq!(
            append_query("https://x/a", "q", "a b&c=d#e"),
            "https://x/a?q=a%20b%26c%3Dd%23e"
        );
        assert_eq!(
            append_query("https://x/a?x=1", "per_page", "100"),
            "https://x/a?x=1&per_page=100"
        );
        assert_eq!(
            append_query("https://x/a?", "k", "ü~"),
            "https://x/a?k=%C3%BC~"
        );
        assert_eq!(
            append_query("https://x/a#frag", "k", "v"),
            "https://x/a?k=v#frag"
        );
    }

    #[test]
    fn json_sets_content_type_once() {
        let r = Request::post("https://x/a")
            .header("Content-Type", "text/plain")
            .json(&serde_json::json!({"permission": "push"}));
        assert_eq!(
            r.headers,
            vec![("content-type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(
            r.body.as_deref(),
            Some(br#"{"permission":"push"}"#.as_slice())
        );
    }

    #[test]
    fn response_helpers() {
        let r = Response::from_parts(
            200,
            vec![("x-oauth-scopes".into(), "repo".into())],
            "<html>oops</html>",
        );
        assert_eq!(r.header("X-OAuth-Scopes"), Some("repo"));
        assert!(
            matches!(r.json::<serde_json::Value>(), Err(Error::Transient(m)) if m.contains("<html>oops</html>"))
        );
        assert!(r.error_for_status().is_ok());
    }
}
