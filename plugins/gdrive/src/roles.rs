//! Drive permission roles, ordered: reader < commenter < writer < fileOrganizer < organizer.
//!
//! `owner` is what Drive reports for the file's owner (My Drive items). It is never
//! requested through this connector: moving ownership changes who controls the file and
//! its quota, which is not access provisioning. Held, it counts as the top level.
//! Must never: accept `owner` as a requested level, or guess a rank for an unknown word.

use portcullis_sdk::{Error, Result};

/// The grantable roles, lowest first; a higher one implies every lower one.
pub const LEVELS: [&str; 5] = [
    "reader",
    "commenter",
    "writer",
    "fileOrganizer",
    "organizer",
];

/// The role Drive reports for the owner of a My Drive item.
pub const OWNER: &str = "owner";

/// Rank of a role Drive reports; the owner outranks every grantable role.
pub fn rank(role: &str) -> Option<usize> {
    if role == OWNER {
        return Some(LEVELS.len());
    }
    LEVELS.iter().position(|l| *l == role)
}

/// The level a held role stands for in our vocabulary: the owner holds the top level.
/// Unknown roles pass through unchanged so the operator sees them.
pub fn as_level(role: &str) -> String {
    if role == OWNER {
        LEVELS[LEVELS.len() - 1].to_owned()
    } else {
        role.to_owned()
    }
}

/// Whether holding `held` satisfies a request for `wanted`.
pub fn holds(held: &str, wanted: &str) -> bool {
    matches!((rank(held), rank(wanted)), (Some(h), Some(w)) if h >= w)
}

/// The role an action asks for (case-insensitive), or an error naming the valid ones.
pub fn requested(level: Option<&str>) -> Result<&'static str> {
    let valid = LEVELS.join(", ");
    let level = level.ok_or_else(|| {
        Error::invalid_request(format!(
            "a Drive file entitlement needs a level; use one of: {valid}"
        ))
    })?;
    if level.eq_ignore_ascii_case(OWNER) {
        return Err(Error::invalid_request(format!(
            "Drive role `owner` is not grantable here: transferring ownership moves control of the file, not access; do it in Drive by hand, or request one of: {valid}"
        )));
    }
    LEVELS
        .iter()
        .copied()
        .find(|l| l.eq_ignore_ascii_case(level))
        .ok_or_else(|| {
            Error::invalid_request(format!("unknown Drive role {level:?}; use one of: {valid}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_owner() {
        assert!(holds("writer", "commenter") && holds("writer", "writer"));
        assert!(!holds("reader", "writer"));
        assert!(holds("owner", "organizer"));
        assert!(!holds("mystery", "reader"));
        assert_eq!(as_level("owner"), "organizer");
        assert_eq!(as_level("writer"), "writer");
    }

    #[test]
    fn requested_roles_are_validated() {
        assert_eq!(requested(Some("FileOrganizer")).ok(), Some("fileOrganizer"));
        assert!(matches!(requested(None), Err(Error::InvalidRequest(_))));
        assert!(
            matches!(requested(Some("owner")), Err(Error::InvalidRequest(m)) if m.contains("ownership"))
        );
        assert!(
            matches!(requested(Some("editor")), Err(Error::InvalidRequest(m)) if m.contains("reader, commenter, writer"))
        );
    }
}
