//! Secrets by name. Most connectors never read a value: they name the secret in
//! [`crate::http::Request::bearer`] and friends, and the host injects it.
//!
//! Must never: log or echo a revealed value.

use crate::bindings::portcullis::connector::secrets::{self as host, SecretError};
use crate::{Error, Result};

/// Whether a secret of this name is configured for the application.
pub fn is_configured(name: &str) -> bool {
    host::is_configured(name)
}

/// The secret's value. Needs an explicit `reveal` grant in the application's
/// configuration, and every call is audited; prefer host-injected auth.
pub fn reveal(name: &str) -> Result<String> {
    host::reveal(name).map_err(|e| match e {
        SecretError::NotConfigured(m) => Error::invalid_request(format!(
            "secret {name:?} is not configured ({m}); add it to the application's secrets"
        )),
        SecretError::Denied(m) => {
            Error::unauthorized(format!("the host refused to reveal secret {name:?}: {m}"))
        }
    })
}
