//! The two entitlement kinds and validation of IAM names and policy ARNs, so a malformed
//! value fails as `invalid-request` before any request is signed and sent.

use portcullis_sdk::{Error, Result};

/// Who a managed policy is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

pub const USER_POLICY: &str = "user-policy";
pub const GROUP_POLICY: &str = "group-policy";

impl Kind {
    pub fn parse(kind: &str) -> Result<Kind> {
        match kind {
            USER_POLICY => Ok(Kind::User),
            GROUP_POLICY => Ok(Kind::Group),
            other => Err(Error::invalid_request(format!(
                "the AWS IAM connector manages kinds {USER_POLICY:?} and {GROUP_POLICY:?}, not {other:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::User => USER_POLICY,
            Kind::Group => GROUP_POLICY,
        }
    }

    /// "User" or "Group": the Query API's word in action and parameter names
    /// (`AttachUserPolicy`, `UserName`, `EntityFilter=User`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    /// `UserName` / `GroupName`.
    pub fn name_param(self) -> &'static str {
        match self {
            Kind::User => "UserName",
            Kind::Group => "GroupName",
        }
    }

    /// `PolicyUsers` / `PolicyGroups` in `ListEntitiesForPolicy`.
    pub fn entities_list(self) -> &'static str {
        match self {
            Kind::User => "PolicyUsers",
            Kind::Group => "PolicyGroups",
        }
    }

    fn max_len(self) -> usize {
        match self {
            Kind::User => 64,
            Kind::Group => 128,
        }
    }

    /// A user or group name: IAM allows `[A-Za-z0-9+=,.@_-]`, 1 to 64 (user) or 128
    /// (group) characters.
    pub fn principal(self, name: &str) -> Result<String> {
        let valid = !name.is_empty()
            && name.len() <= self.max_len()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if valid {
            Ok(name.to_owned())
        } else {
            Err(Error::invalid_request(format!(
                "{name:?} is not a valid IAM {} name (letters, digits and +=,.@_- only, at most {} characters)",
                self.noun().to_lowercase(),
                self.max_len()
            )))
        }
    }
}

/// A managed policy ARN: `arn:<partition>:iam::<aws|account id>:policy/<path/name>`.
pub fn policy_arn(arn: &str) -> Result<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && (*account == "aws" || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())))
                && resource.strip_prefix("policy/").is_some_and(|p| !p.is_empty() && !p.ends_with('/'))
    ) && arn.len() <= 2048
        && !arn.chars().any(char::is_control);
    if valid {
        Ok(arn.to_owned())
    } else {
        Err(Error::invalid_request(format!(
            "{arn:?} is not a managed policy ARN; use arn:aws:iam::aws:policy/PowerUserAccess or arn:aws:iam::<account>:policy/<name>"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_principals() {
        assert_eq!(Kind::parse("user-policy").ok(), Some(Kind::User));
        assert_eq!(Kind::parse("group-policy").ok(), Some(Kind::Group));
        assert!(Kind::parse("role-policy").is_err());
        assert!(Kind::User.principal("jane.doe+ops@example.com").is_ok());
        assert!(Kind::User.principal("").is_err());
        assert!(Kind::User.principal("a/b").is_err());
        assert!(Kind::User.principal(&"a".repeat(65)).is_err());
        assert!(Kind::Group.principal(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn policy_arns() {
        for ok in [
            "arn:aws:iam::aws:policy/PowerUserAccess",
            "arn:aws:iam::123456789012:policy/team/Deploy",
            "arn:aws-us-gov:iam::aws:policy/ReadOnlyAccess",
        ] {
            assert!(policy_arn(ok).is_ok(), "{ok}");
        }
        for bad in [
            "PowerUserAccess",
            "arn:aws:iam::aws:role/Admin",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::12345:policy/X",
            "arn:aws:iam::aws:policy/",
        ] {
            assert!(policy_arn(bad).is_err(), "{bad}");
        }
    }
}
