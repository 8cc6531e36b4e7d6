//! Pure mapping from an HTTP error response to an [`Error`], following common REST
//! conventions (GitHub, Okta, Jira, most SaaS APIs). Kept free of host calls so it is
//! tested natively; the clock is a parameter.
//!
//! Must never: call a rate limit "unauthorized". A 403 carrying rate-limit headers is
//! a rate limit (GitHub's secondary limits look exactly like that).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;

/// How much of a body an error message quotes.
pub(crate) const BODY_PREFIX_CHARS: usize = 200;

/// The error a response stands for, or `None` for 1xx/2xx/304.
pub(crate) fn error_for(
    what: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    now: SystemTime,
) -> Option<Error> {
    if status < 300 || status == 304 {
        return None;
    }
    let detail = detail(body);
    let text = format!("{what} returned HTTP {status}{detail}");
    let header = |name: &str| find_header(headers, name);
    Some(match status {
        300..=399 => Error::invalid_request(format!(
            "{text}; the host does not follow redirects, so point the base URL or resource at {}",
            header("location").unwrap_or("the new location")
        )),
        401 => Error::unauthorized(format!("{text}; check the configured credentials")),
        403 | 429 => {
            let exhausted = ["x-ratelimit-remaining", "x-rate-limit-remaining"]
                .iter()
                .any(|h| header(h).is_some_and(|v| v.trim() == "0"));
            let retry_after = header("retry-after");
            if status == 429 || exhausted || retry_after.is_some() {
                let wait = retry_after
                    .and_then(|v| parse_retry_after(v, now))
                    .or_else(|| {
                        ["x-ratelimit-reset", "x-rate-limit-reset"]
                            .iter()
                            .find_map(|h| header(h).and_then(|v| parse_reset_epoch(v, now)))
                    });
                Error::rate_limited(wait.map(millis), text)
            } else {
                Error::unauthorized(format!(
                    "{text}; the credentials lack a permission or scope this needs"
                ))
            }
        }
        404 => Error::not_found(text),
        408 | 500..=599 => Error::transient(text),
        _ => Error::invalid_request(text),
    })
}

/// A header value by case-insensitive name.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `X-RateLimit-Reset`: the epoch second at which the window resets.
pub(crate) fn parse_reset_epoch(value: &str, now: SystemTime) -> Option<Duration> {
    let secs = value.trim().parse::<u64>().ok()?;
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `: <message>` from a JSON body's `message` (plus GitHub-style `errors[]`), else a
/// prefix of the raw body, else nothing.
fn detail(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = json.get("message").and_then(|m| m.as_str()) {
            parts.push(m.to_owned());
        }
        if let Some(errors) = json.get("errors").and_then(|e| e.as_array()) {
            for e in errors {
                if let Some(m) = e
                    .as_str()
                    .or_else(|| e.get("message").and_then(|m| m.as_str()))
                {
                    parts.push(m.to_owned());
                } else if let Some(code) = e.get("code").and_then(|c| c.as_str()) {
                    let field = e.get("field").and_then(|f| f.as_str()).unwrap_or("?");
                    parts.push(format!("{field}: {code}"));
                }
            }
        }
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", truncate(text, BODY_PREFIX_CHARS))
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn err(status: u16, headers: &[(&str, &str)], body: &str) -> Option<Error> {
        error_for(
            "GET /x",
            status,
            &h(headers),
            body.as_bytes(),
            at(1_000_000),
        )
    }

    #[test]
    fn success_is_not_an_error() {
        assert_eq!(err(200, &[], ""), None);
        assert_eq!(err(204, &[], ""), None);
    }

    #[test]
    fn plain_statuses_map_to_categories() {
        assert!(matches!(err(401, &[], ""), Some(Error::Unauthorized(_))));
        assert!(matches!(err(403, &[], ""), Some(Error::Unauthorized(_))));
        assert!(matches!(err(404, &[], ""), Some(Error::NotFound(_))));
        for s in [400, 409, 422] {
            assert!(
                matches!(err(s, &[], ""), Some(Error::InvalidRequest(_))),
                "{s}"
            );
        }
        for s in [408, 500, 502, 503] {
            assert!(matches!(err(s, &[], ""), Some(Error::Transient(_))), "{s}");
        }
        assert!(
            matches!(err(301, &[("location", "https://x/y")], ""), Some(Error::InvalidRequest(m)) if m.contains("https://x/y"))
        );
    }

    #[test]
    fn message_field_is_quoted() {
        let e = err(
            422,
            &[],
            r#"{"message":"Validation Failed","errors":[{"resource":"Repository","code":"invalid","field":"permission"}]}"#,
        );
        assert!(
            matches!(e, Some(Error::InvalidRequest(m)) if m.contains("Validation Failed") && m.contains("permission: invalid"))
        );
        let e = err(
            404,
            &[],
            r#"{"message":"Not Found","documentation_url":"https://docs"}"#,
        );
        assert_eq!(
            e.map(|e| e.message().to_owned()).as_deref(),
            Some("GET /x returned HTTP 404: Not Found")
        );
    }

    #[test]
    fn non_json_body_is_truncated() {
        let long = "x".repeat(1000);
        let e = err(500, &[], &long);
        assert!(matches!(e, Some(Error::Transient(m)) if m.len() < 300 && m.ends_with('…')));
    }

    #[test]
    fn rate_limits_with_retry_after_seconds_and_date() {
        assert_eq!(
            err(429, &[("retry-after", "30")], ""),
            Some(Error::rate_limited(
                Some(30_000),
                "GET /x returned HTTP 429"
            ))
        );
        let date = httpdate::fmt_http_date(at(1_000_090));
        assert!(matches!(
            err(403, &[("Retry-After", &date)], ""),
            Some(Error::RateLimited {
                retry_after_ms: Some(90_000),
                ..
            })
        ));
        assert!(matches!(
            err(429, &[], ""),
            Some(Error::RateLimited {
                retry_after_ms: None,
                ..
            })
        ));
    }

    #[test]
    fn exhausted_budget_uses_reset_header() {
        let e = err(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1000060"),
            ],
            r#"{"message":"API rate limit exceeded"}"#,
        );
        assert!(
            matches!(e, Some(Error::RateLimited { retry_after_ms: Some(60_000), message }) if message.contains("API rate limit exceeded"))
        );
        let e = err(
            429,
            &[
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", "999999"),
            ],
            "",
        );
        assert!(matches!(
            e,
            Some(Error::RateLimited {
                retry_after_ms: Some(0),
                ..
            })
        ));
        // Budget left: a plain permission problem.
        assert!(matches!(
            err(403, &[("x-ratelimit-remaining", "42")], ""),
            Some(Error::Unauthorized(_))
        ));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(
            parse_retry_after(" 5 ", at(0)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", at(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", at(40)),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", at(0)), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
