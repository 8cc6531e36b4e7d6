//! Salesforce REST requests: the versioned `/services/data/vXX.X` paths, SOQL queries
//! with `nextRecordsUrl` paging, and Salesforce's error bodies mapped onto the host's
//! retry vocabulary.
//!
//! Errors are `[{"message":..,"errorCode":"REQUEST_LIMIT_EXCEEDED",..}]`; the
//! `errorCode` decides, not the status (the org's API limit arrives as a 403).
//! Must never: follow a `nextRecordsUrl` (or a cursor claiming to be one) that is not a
//! query locator path.

use portcullis_sdk::http::{Method, Request, Response};
use portcullis_sdk::{Error, Result, config, log};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub const DEFAULT_VERSION: &str = "v60.0";

/// The `api_version` setting (`v60.0`, or `60.0`), checked.
pub fn version() -> Result<String> {
    let raw = config::setting("api_version").unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    let v = if raw.starts_with('v') {
        raw.clone()
    } else {
        format!("v{raw}")
    };
    let ok = v[1..]
        .split_once('.')
        .is_some_and(|(major, minor)| is_digits(major) && is_digits(minor));
    if ok {
        Ok(v)
    } else {
        Err(Error::invalid_request(format!(
            "the setting api_version {raw:?} is not a Salesforce API version such as {DEFAULT_VERSION}"
        )))
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit())
}

/// `{base}/services/data/{version}{rest}`.
pub fn data_url(rest: &str) -> Result<String> {
    Ok(config::url(&format!("/services/data/{}{rest}", version()?)))
}

/// A request carrying the `token` secret as the bearer session or access token.
pub fn request(method: Method, url: &str) -> Request {
    Request::new(method, url)
        .bearer("token")
        .header("accept", "application/json")
}

/// Sends `request`; an error status becomes the matching [`Error`]. Warns when the
/// org's daily API budget (`Sforce-Limit-Info`) is nine-tenths spent.
pub fn send(request: Request) -> Result<Response> {
    let what = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let response = request.send()?;
    if let Some((used, max)) = response.header("sforce-limit-info").and_then(api_usage)
        && used.saturating_mul(10) >= max.saturating_mul(9)
    {
        let usage = format!("{used}/{max}");
        log::warn(
            "the Salesforce org has used most of its daily API requests",
            &[("api_usage", usage.as_str())],
        );
    }
    match error_for(&response, &what) {
        Some(e) => Err(e),
        None => Ok(response),
    }
}

/// `api-usage=25/15000` from `Sforce-Limit-Info`.
pub fn api_usage(header: &str) -> Option<(u64, u64)> {
    let usage = header
        .split(',')
        .find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

#[derive(Debug, Deserialize)]
pub struct ApiError {
    #[serde(rename = "errorCode", default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The error items of a Salesforce error body (an array; a lone object is accepted too).
pub fn errors(response: &Response) -> Vec<ApiError> {
    serde_json::from_slice::<Vec<ApiError>>(response.body())
        .or_else(|_| serde_json::from_slice::<ApiError>(response.body()).map(|e| vec![e]))
        .unwrap_or_default()
}

/// The error an HTTP response stands for; `None` for 2xx.
pub fn error_for(response: &Response, what: &str) -> Option<Error> {
    let status = response.status();
    if status < 300 {
        return None;
    }
    let items = errors(response);
    let code = items.first().map_or("", |e| e.code.as_str());
    let message = match items.first() {
        Some(e) => e.message.clone(),
        None => response.text().trim().chars().take(200).collect(),
    };
    let text = if code.is_empty() {
        format!("{what} returned HTTP {status}: {message}")
    } else {
        format!("{what} returned HTTP {status} ({code}): {message}")
    };
    Some(match code {
        "REQUEST_LIMIT_EXCEEDED" => Error::rate_limited(None, text),
        "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" => Error::transient(text),
        "INVALID_SESSION_ID" => Error::unauthorized(format!(
            "{text}; the session or access token expired or was revoked: configure a fresh one"
        )),
        "INSUFFICIENT_ACCESS_OR_READONLY"
        | "INSUFFICIENT_ACCESS"
        | "API_DISABLED_FOR_ORG"
        | "API_CURRENTLY_DISABLED" => Error::unauthorized(format!(
            "{text}; the connector's user needs API access and the Assign Permission Sets permission"
        )),
        "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND" | "ENTITY_IS_DELETED" => Error::not_found(text),
        _ => match status {
            401 | 403 => Error::unauthorized(text),
            404 => Error::not_found(text),
            429 => Error::rate_limited(None, text),
            408 | 500..=599 => Error::transient(text),
            _ => Error::invalid_request(text),
        },
    })
}

#[derive(Deserialize)]
struct QueryPage<T> {
    #[serde(default = "Vec::new")]
    records: Vec<T>,
    #[serde(rename = "nextRecordsUrl")]
    next: Option<String>,
}

/// The first page of a SOQL query and the `nextRecordsUrl` of the next.
pub fn query<T: DeserializeOwned>(soql: &str) -> Result<(Vec<T>, Option<String>)> {
    page(request(Method::Get, &data_url("/query")?).query("q", soql))
}

/// The page at a `nextRecordsUrl`.
pub fn more<T: DeserializeOwned>(next: &str) -> Result<(Vec<T>, Option<String>)> {
    if !is_locator(next) {
        return Err(Error::invalid_request(format!(
            "{:?} is not a Salesforce query locator (/services/data/vXX.X/query/...); restart listing without a cursor",
            next.chars().take(100).collect::<String>()
        )));
    }
    page(request(Method::Get, &config::url(next)))
}

fn page<T: DeserializeOwned>(request: Request) -> Result<(Vec<T>, Option<String>)> {
    let page: QueryPage<T> = send(request)?.json()?;
    Ok((page.records, page.next.filter(|n| !n.is_empty())))
}

/// Every record of a query, across pages.
pub fn query_all<T: DeserializeOwned>(soql: &str) -> Result<Vec<T>> {
    let (mut all, mut next) = query::<T>(soql)?;
    while let Some(url) = next {
        let (records, after) = more::<T>(&url)?;
        all.extend(records);
        next = after;
    }
    Ok(all)
}

/// `/services/data/vNN.N/query/<locator>` with a locator of letters, digits and `-`.
pub fn is_locator(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/services/data/v") else {
        return false;
    };
    let Some((version, locator)) = rest.split_once("/query/") else {
        return false;
    };
    version
        .split_once('.')
        .is_some_and(|(a, b)| is_digits(a) && is_digits(b))
        && !locator.is_empty()
        && locator.len() <= 64
        && locator
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sf(status: u16, code: &str) -> Option<Error> {
        let body = format!(r#"[{{"message":"msg","errorCode":"{code}","fields":[]}}]"#);
        error_for(&Response::from_parts(status, Vec::new(), body), "GET /x")
    }

    #[test]
    fn error_codes_decide() {
        assert!(
            matches!(sf(403, "REQUEST_LIMIT_EXCEEDED"), Some(Error::RateLimited { retry_after_ms: None, message }) if message.contains("REQUEST_LIMIT_EXCEEDED"))
        );
        assert!(matches!(
            sf(503, "REQUEST_LIMIT_EXCEEDED"),
            Some(Error::RateLimited { .. })
        ));
        assert!(matches!(
            sf(400, "UNABLE_TO_LOCK_ROW"),
            Some(Error::Transient(_))
        ));
        assert!(matches!(
            sf(401, "INVALID_SESSION_ID"),
            Some(Error::Unauthorized(_))
        ));
        assert!(matches!(
            sf(400, "INSUFFICIENT_ACCESS_OR_READONLY"),
            Some(Error::Unauthorized(_))
        ));
        assert!(matches!(
            sf(400, "INVALID_CROSS_REFERENCE_KEY"),
            Some(Error::NotFound(_))
        ));
        assert!(matches!(sf(404, "NOT_FOUND"), Some(Error::NotFound(_))));
        assert!(
            matches!(sf(400, "MALFORMED_QUERY"), Some(Error::InvalidRequest(m)) if m.contains("(MALFORMED_QUERY): msg"))
        );
        assert!(matches!(
            sf(500, "UNKNOWN_EXCEPTION"),
            Some(Error::Transient(_))
        ));
        let oauth = Response::from_parts(403, Vec::new(), "Bad_OAuth_Token");
        assert!(
            matches!(error_for(&oauth, "GET /x"), Some(Error::Unauthorized(m)) if m.contains("Bad_OAuth_Token"))
        );
        assert!(error_for(&Response::from_parts(201, Vec::new(), "{}"), "x").is_none());
    }

    #[test]
    fn limit_info_and_locators() {
        assert_eq!(api_usage("api-usage=25/15000"), Some((25, 15000)));
        assert_eq!(
            api_usage("per-app-api-usage=1/2(appName=x), api-usage=3/4"),
            Some((3, 4))
        );
        assert_eq!(api_usage("nonsense"), None);
        assert!(is_locator(
            "/services/data/v60.0/query/01gD0000002HU6KIAW-2000"
        ));
        for bad in [
            "https://evil.example/services/data/v60.0/query/x",
            "/services/data/v60.0/sobjects/PermissionSetAssignment/0Pa1",
            "/services/data/v60.0/query/../../x",
            "/services/data/v60.0/query/",
        ] {
            assert!(!is_locator(bad), "{bad}");
        }
    }
}
