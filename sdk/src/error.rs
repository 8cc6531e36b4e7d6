//! The connector error type and its conversions at the two edges: from the host's HTTP
//! errors (what went wrong on the way out) and into the WIT `connector-error` (what the
//! host should do next).
//!
//! Must never: drop the host's own explanation of a refusal; operators debug policy
//! denials from that text.

use crate::bindings::portcullis::connector::http::HttpError;
use crate::bindings::portcullis::connector::types::{ConnectorError, RateLimit};

/// `Result` with the SDK's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Why a connector call failed, in the host's retry vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request can never succeed as made (bad level, malformed id). Not retried.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The subject or resource does not exist. Not retried.
    #[error("not found: {0}")]
    NotFound(String),
    /// Credentials are missing, wrong or lack a scope. Not retried; the operator is told.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The application asked us to slow down; retried after `retry_after_ms` if given.
    #[error("rate limited: {message}")]
    RateLimited {
        retry_after_ms: Option<u64>,
        message: String,
    },
    /// A passing failure (5xx, timeout, reset). Retried with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The connector or application cannot do this at all. Not retried.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Error {
    pub fn invalid_request(msg: impl Into<String>) -> Self {
        Self::InvalidRequest(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::Unauthorized(msg.into())
    }
    pub fn rate_limited(retry_after_ms: Option<u64>, msg: impl Into<String>) -> Self {
        Self::RateLimited {
            retry_after_ms,
            message: msg.into(),
        }
    }
    pub fn transient(msg: impl Into<String>) -> Self {
        Self::Transient(msg.into())
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Self::Unsupported(msg.into())
    }

    /// The explanation without the category prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidRequest(m)
            | Self::NotFound(m)
            | Self::Unauthorized(m)
            | Self::Transient(m)
            | Self::Unsupported(m) => m,
            Self::RateLimited { message, .. } => message,
        }
    }
}

impl From<Error> for ConnectorError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidRequest(m) => Self::InvalidRequest(m),
            Error::NotFound(m) => Self::NotFound(m),
            Error::Unauthorized(m) => Self::Unauthorized(m),
            Error::RateLimited {
                retry_after_ms,
                message,
            } => Self::RateLimited(RateLimit {
                retry_after_ms,
                message,
            }),
            Error::Transient(m) => Self::Transient(m),
            Error::Unsupported(m) => Self::Unsupported(m),
        }
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Timeout(m) => Self::transient(format!(
                "the application did not answer in time ({m}); the host will retry"
            )),
            HttpError::Connection(m) => Self::transient(format!(
                "could not reach the application ({m}); the host will retry"
            )),
            // The host's reason names the policy rule; keep it whole so the operator can
            // find the setting to change.
            HttpError::Denied(m) => {
                Self::unauthorized(format!("the host refused the request: {m}"))
            }
            HttpError::TooLarge(m) => Self::invalid_request(format!(
                "the response exceeded the host's size limit ({m}); request smaller pages or raise the limit"
            )),
            HttpError::InvalidRequest(m) => Self::invalid_request(format!(
                "the host could not send the request ({m}); this is a connector bug or a bad setting"
            )),
            HttpError::MissingSecret(m) => Self::invalid_request(format!(
                "a secret the connector needs is not configured ({m}); add it to the application's secrets"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_keeps_host_reason_verbatim() {
        let e = Error::from(HttpError::Denied("host evil.example is not allowed".into()));
        assert!(
            matches!(&e, Error::Unauthorized(m) if m.contains("host evil.example is not allowed"))
        );
    }

    #[test]
    fn network_failures_are_transient() {
        assert!(matches!(
            Error::from(HttpError::Timeout("30s".into())),
            Error::Transient(_)
        ));
        assert!(matches!(
            Error::from(HttpError::Connection("reset".into())),
            Error::Transient(_)
        ));
    }

    #[test]
    fn rate_limit_carries_wait_into_wit() {
        let e = ConnectorError::from(Error::rate_limited(Some(1500), "slow down"));
        assert_eq!(
            e,
            ConnectorError::RateLimited(RateLimit {
                retry_after_ms: Some(1500),
                message: "slow down".into()
            })
        );
    }
}
