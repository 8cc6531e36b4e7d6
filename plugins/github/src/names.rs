//! Validation of the names that end up in GitHub URL paths: `owner/repo` resources and
//! logins. Must never: let a `/`, `..`, `?` or `%` through into a path.

use std::fmt;

use portcullis_sdk::{Error, Result};

/// A validated `owner/repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl Repo {
    pub fn parse(resource: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid_request(format!(
                "repository {resource:?} is not a valid GitHub `owner/repo`: {why}"
            ))
        };
        let (owner, name) = resource
            .split_once('/')
            .ok_or_else(|| bad("it needs exactly one `/`"))?;
        if name.contains('/') {
            return Err(bad("it needs exactly one `/`"));
        }
        if !is_login(owner) {
            return Err(bad("the owner may hold only letters, digits, `-` and `_`"));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty()
            || name.len() > 100
            || name == "."
            || name == ".."
            || !name.chars().all(legal)
        {
            return Err(bad(
                "the name may hold only letters, digits, `-`, `_` and `.`",
            ));
        }
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// GitHub logins: letters, digits and `-` (`_` for enterprise managed users), 1-39 long.
fn is_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// A subject id checked to be a plausible GitHub login.
pub fn login(id: &str) -> Result<&str> {
    if is_login(id) {
        Ok(id)
    } else {
        Err(Error::invalid_request(format!(
            "{id:?} is not a GitHub login (letters, digits, `-` and `_`, at most 39 characters); subject ids and the `org` setting must be GitHub account names"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        let r = Repo::parse("acme/platform-api.rs").ok();
        assert_eq!(
            r.map(|r| r.to_string()).as_deref(),
            Some("acme/platform-api.rs")
        );
        for bad in [
            "acme",
            "acme/",
            "/api",
            "a/b/c",
            "acme/..",
            "ac me/api",
            "acme/a?b",
            "acme/a%2fb",
            "",
        ] {
            assert!(
                matches!(Repo::parse(bad), Err(Error::InvalidRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn logins() {
        assert!(login("octo-cat").is_ok());
        assert!(login("user_acme").is_ok());
        assert!(login("../admin").is_err());
        assert!(login("").is_err());
        assert!(login(&"a".repeat(40)).is_err());
    }
}
