//! Validation of what ends up in Jira URLs: `PROJECT/Role name` resources and Atlassian
//! account ids. Must never: let `/`, `?`, `%` or `..` into a path segment.

use std::fmt;

use portcullis_sdk::{Error, Result};

/// A project key (or numeric id) and, optionally, a role name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub project: String,
    pub role: Option<String>,
}

impl Target {
    /// `PLAT/Developers` (a role) or `PLAT` (a whole project, for listing). Project keys
    /// hold letters, digits and `_`, so the first `/` ends the key; role names may hold
    /// anything printable, `/` included.
    pub fn parse(resource: &str) -> Result<Self> {
        let (project, role) = match resource.split_once('/') {
            Some((p, r)) => (p, Some(r.trim())),
            None => (resource, None),
        };
        let bad = |why: &str| {
            Error::invalid_request(format!(
                "project role {resource:?} is not `PROJECT/Role name` (e.g. `PLAT/Developers`): {why}"
            ))
        };
        if project.is_empty()
            || project.len() > 255
            || !project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad("the project key may hold only letters, digits and `_`"));
        }
        if role.is_some_and(|r| r.is_empty() || r.chars().any(char::is_control)) {
            return Err(bad("the role name is empty or holds control characters"));
        }
        Ok(Self {
            project: project.to_owned(),
            role: role.map(str::to_owned),
        })
    }

    /// The role name, required for grant, revoke and verify.
    pub fn role(&self) -> Result<&str> {
        self.role.as_deref().ok_or_else(|| {
            Error::invalid_request(format!(
                "{:?} names a project but no role; use `{}/<Role name>` (e.g. `{}/Developers`)",
                self.project, self.project, self.project
            ))
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.role {
            Some(role) => write!(f, "{}/{role}", self.project),
            None => f.write_str(&self.project),
        }
    }
}

/// An Atlassian account id: `5b10a2844c20165700ede21g` or `557058:f58131cb-...`.
pub fn account_id(id: &str) -> Result<&str> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_');
    if !id.is_empty() && id.len() <= 128 && id.chars().all(legal) {
        Ok(id)
    } else {
        Err(Error::invalid_request(format!(
            "{id:?} is not an Atlassian account id (letters, digits, `:`, `-`, `_`); subject ids must be Jira accountIds, not e-mail addresses or names"
        )))
    }
}

/// The numeric role id at the end of a role URL from `GET .../project/{key}/role`.
pub fn role_id(url: &str) -> Option<&str> {
    let id = url.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("PLAT/Developers").ok();
        assert_eq!(
            t.as_ref().map(ToString::to_string).as_deref(),
            Some("PLAT/Developers")
        );
        let t = Target::parse("PLAT/Service Desk/Team").ok();
        assert_eq!(t.and_then(|t| t.role).as_deref(), Some("Service Desk/Team"));
        let project = Target::parse("PLAT").ok();
        assert_eq!(project.as_ref().and_then(|t| t.role.clone()), None);
        assert!(
            matches!(project.map(|p| p.role().map(str::to_owned)), Some(Err(Error::InvalidRequest(m))) if m.contains("PLAT/Developers"))
        );
        for bad in [
            "",
            "/Developers",
            "PL AT/Dev",
            "../x/Dev",
            "PLAT%2F/Dev",
            "PLAT/",
            "PLAT/a\nb",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(Error::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn account_ids() {
        assert!(account_id("5b10a2844c20165700ede21g").is_ok());
        assert!(account_id("557058:f58131cb-b67d-43c7-b30d-6b58d40bd077").is_ok());
        for bad in ["", "a@b.com", "../x", "a b", "x?y=1"] {
            assert!(account_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_ids_come_from_urls() {
        assert_eq!(
            role_id("https://x.atlassian.net/rest/api/3/project/MKY/role/10360"),
            Some("10360")
        );
        assert_eq!(role_id("https://x/role/abc"), None);
        assert_eq!(role_id(""), None);
    }
}
