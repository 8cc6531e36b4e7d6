//! The application's non-secret configuration: its base URL and operator settings.
//!
//! Must never: hand out a base URL with a trailing slash; connectors join paths with
//! `format!("{}/path", base_url())` and GitHub-style APIs 404 on `//path`.

use crate::bindings::portcullis::connector::config as host;
use crate::{Error, Result};

/// The application's base URL without a trailing slash, e.g. `https://api.github.com`.
pub fn base_url() -> String {
    trim_base(host::base_url())
}

/// `base_url()` joined with `path`, with exactly one slash between them.
pub fn url(path: &str) -> String {
    join(&base_url(), path)
}

/// An operator setting; an empty or blank value counts as unset.
pub fn setting(key: &str) -> Option<String> {
    host::get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// An operator setting the call cannot do without.
pub fn require_setting(key: &str) -> Result<String> {
    setting(key).ok_or_else(|| {
        Error::invalid_request(format!(
            "the setting {key:?} is not configured; add it to this application's settings"
        ))
    })
}

pub(crate) fn trim_base(mut base: String) -> String {
    while base.ends_with('/') {
        base.pop();
    }
    base
}

pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_path_join_with_one_slash() {
        assert_eq!(
            trim_base("http://127.0.0.1:9/".into()),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            join("https://api.github.com/", "/user"),
            "https://api.github.com/user"
        );
        assert_eq!(
            join("https://api.github.com", "user"),
            "https://api.github.com/user"
        );
    }
}
