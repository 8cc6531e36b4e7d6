//! The SOQL this connector issues, built only from validated values: permission set API
//! names (`^[A-Za-z][A-Za-z0-9_]*$`) and record ids (15 or 18 letters and digits with the
//! object's key prefix). Literals are quoted and escaped all the same.
//!
//! Must never: put operator or host input into a query without validating it first; a
//! quote in a resource would otherwise rewrite the `WHERE` clause (SOQL injection).

use portcullis_sdk::{Error, Result};

/// Key prefix of PermissionSet ids.
pub const PERMISSION_SET_PREFIX: &str = "0PS";
/// Key prefix of User ids.
pub const USER_PREFIX: &str = "005";

/// How an entitlement names its permission set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRef {
    Id(String),
    Name(String),
}

/// A record id: the key prefix, then 12 or 15 more letters and digits.
pub fn is_id(s: &str, prefix: &str) -> bool {
    (s.len() == 15 || s.len() == 18)
        && s.starts_with(prefix)
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_api_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 80
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The permission set a resource names: its Id (`0PS...`) or its API name (`Sales_Ops`).
pub fn permission_set(resource: &str) -> Result<SetRef> {
    if is_id(resource, PERMISSION_SET_PREFIX) {
        Ok(SetRef::Id(resource.to_owned()))
    } else if is_api_name(resource) {
        Ok(SetRef::Name(resource.to_owned()))
    } else {
        Err(Error::invalid_request(format!(
            "{:?} is neither a permission set API name (a letter, then letters, digits and `_`) nor a PermissionSet Id (0PS...)",
            resource.chars().take(100).collect::<String>()
        )))
    }
}

/// A subject id checked to be a User Id (`005...`, 15 or 18 characters).
pub fn user_id(id: &str) -> Result<&str> {
    if is_id(id, USER_PREFIX) {
        Ok(id)
    } else {
        Err(Error::invalid_request(format!(
            "{:?} is not a Salesforce User Id (005 followed by 12 or 15 letters and digits)",
            id.chars().take(100).collect::<String>()
        )))
    }
}

/// A SOQL string literal: quoted, with `\` and `'` escaped.
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Finds the permission set's Id.
pub fn find_set(set: &SetRef) -> String {
    match set {
        SetRef::Id(id) => format!("SELECT Id FROM PermissionSet WHERE Id = {}", literal(id)),
        SetRef::Name(name) => format!(
            "SELECT Id FROM PermissionSet WHERE Name = {}",
            literal(name)
        ),
    }
}

/// Assignments of the set, to one user or to everyone.
pub fn assignments(set_id: &str, user: Option<&str>) -> String {
    let mut q = format!(
        "SELECT Id, AssigneeId FROM PermissionSetAssignment WHERE PermissionSetId = {}",
        literal(set_id)
    );
    if let Some(user) = user {
        q.push_str(&format!(" AND AssigneeId = {}", literal(user)));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_names_or_ids() {
        assert_eq!(
            permission_set("Sales_Ops").ok(),
            Some(SetRef::Name("Sales_Ops".into()))
        );
        assert_eq!(
            permission_set("0PS5e000000AbCdGAK").ok(),
            Some(SetRef::Id("0PS5e000000AbCdGAK".into()))
        );
        for bad in [
            "Sales_Ops' OR Name != '",
            "1Sales",
            "_x",
            "a b",
            "Sales\\",
            "",
        ] {
            assert!(
                matches!(permission_set(bad), Err(Error::InvalidRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn user_ids() {
        assert!(user_id("0055e000001AbCdAAK").is_ok());
        assert!(user_id("0055e000001AbCd").is_ok());
        assert!(user_id("00G5e000001AbCdAAK").is_err());
        assert!(user_id("005' OR Id != '").is_err());
    }

    #[test]
    fn queries_quote_and_escape() {
        assert_eq!(literal(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(
            find_set(&SetRef::Name("Sales_Ops".into())),
            "SELECT Id FROM PermissionSet WHERE Name = 'Sales_Ops'"
        );
        assert_eq!(
            assignments("0PS1", Some("0051")),
            "SELECT Id, AssigneeId FROM PermissionSetAssignment WHERE PermissionSetId = '0PS1' AND AssigneeId = '0051'"
        );
    }
}
