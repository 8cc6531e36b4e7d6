//! GitHub's three permission vocabularies, mapped onto our five ordered levels.
//!
//! We speak GitHub's UI names (read < triage < write < maintain < admin). The write API
//! wants `pull`/`push` instead of read/write; the permission read-back reports
//! `permission` in read/write/admin (plus `role_name` with the precise role); invitations
//! use the UI names. Must never: guess a level from an unknown word.

use portcullis_sdk::{Error, Result};

/// Our levels, lowest first; a higher one implies every lower one.
pub const LEVELS: [&str; 5] = ["read", "triage", "write", "maintain", "admin"];

/// Position of a level in [`LEVELS`].
pub fn rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| *l == level)
}

/// The canonical `&'static str` for one of our level names, case-insensitively.
fn ours(word: &str) -> Option<&'static str> {
    LEVELS
        .iter()
        .copied()
        .find(|l| l.eq_ignore_ascii_case(word))
}

/// The level an action asks for, or an error naming the valid ones.
pub fn requested(level: Option<&str>) -> Result<&'static str> {
    let valid = LEVELS.join(", ");
    let level = level.ok_or_else(|| {
        Error::invalid_request(format!(
            "a repository entitlement needs a level; use one of: {valid}"
        ))
    })?;
    ours(level).ok_or_else(|| {
        Error::invalid_request(format!(
            "unknown repository level {level:?}; use one of: {valid}"
        ))
    })
}

/// The `permission` value `PUT /repos/{o}/{r}/collaborators/{u}` expects.
pub fn to_write_api(level: &'static str) -> &'static str {
    match level {
        "read" => "pull",
        "write" => "push",
        other => other,
    }
}

/// Level from `GET .../collaborators/{u}/permission`: `role_name` when it is one of
/// ours (it distinguishes triage and maintain), else the coarse `permission`, which
/// also covers custom roles. `None` means no access.
pub fn from_readback(permission: &str, role_name: Option<&str>) -> Option<&'static str> {
    let coarse = match permission {
        "admin" => Some("admin"),
        "maintain" => Some("maintain"),
        "write" | "push" => Some("write"),
        "triage" => Some("triage"),
        "read" | "pull" => Some("read"),
        _ => None,
    };
    role_name.and_then(ours).or(coarse)
}

/// Level from an invitation's `permissions` (UI names; older payloads used pull/push).
pub fn from_invitation(permissions: &str) -> Option<&'static str> {
    from_readback(permissions, None)
}

/// The `permissions` flags of a collaborator list item.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Flags {
    pub admin: bool,
    pub maintain: bool,
    pub push: bool,
    pub triage: bool,
    pub pull: bool,
}

/// Level of a collaborator list item: `role_name` when ours, else the highest flag.
pub fn from_collaborator(role_name: Option<&str>, flags: &Flags) -> Option<&'static str> {
    let by_flag = [
        (flags.admin, "admin"),
        (flags.maintain, "maintain"),
        (flags.push, "write"),
        (flags.triage, "triage"),
        (flags.pull, "read"),
    ];
    role_name
        .and_then(ours)
        .or_else(|| by_flag.iter().find(|(on, _)| *on).map(|(_, l)| *l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_write_vocabulary() {
        assert!(rank("admin") > rank("maintain") && rank("maintain") > rank("write"));
        assert!(rank("write") > rank("triage") && rank("triage") > rank("read"));
        let api: Vec<_> = LEVELS.iter().map(|l| to_write_api(l)).collect();
        assert_eq!(api, ["pull", "triage", "push", "maintain", "admin"]);
    }

    #[test]
    fn requested_level_is_validated() {
        assert_eq!(requested(Some("Maintain")).ok(), Some("maintain"));
        assert!(
            matches!(requested(None), Err(Error::InvalidRequest(m)) if m.contains("read, triage, write, maintain, admin"))
        );
        assert!(
            matches!(requested(Some("push")), Err(Error::InvalidRequest(m)) if m.contains("\"push\""))
        );
    }

    #[test]
    fn readback_prefers_role_name() {
        assert_eq!(from_readback("write", Some("maintain")), Some("maintain"));
        assert_eq!(from_readback("read", Some("triage")), Some("triage"));
        assert_eq!(
            from_readback("write", Some("security-reviewer")),
            Some("write")
        );
        assert_eq!(from_readback("admin", None), Some("admin"));
        assert_eq!(from_readback("none", Some("none")), None);
        assert_eq!(from_readback("none", None), None);
    }

    #[test]
    fn invitation_and_collaborator_vocabularies() {
        assert_eq!(from_invitation("write"), Some("write"));
        assert_eq!(from_invitation("triage"), Some("triage"));
        assert_eq!(from_invitation("pull"), Some("read"));
        assert_eq!(from_invitation("owner"), None);
        let flags = Flags {
            push: true,
            triage: true,
            pull: true,
            ..Flags::default()
        };
        assert_eq!(from_collaborator(None, &flags), Some("write"));
        assert_eq!(from_collaborator(Some("custom"), &flags), Some("write"));
        assert_eq!(
            from_collaborator(Some("maintain"), &flags),
            Some("maintain")
        );
        assert_eq!(from_collaborator(None, &Flags::default()), None);
    }
}
