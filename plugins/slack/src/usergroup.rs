//! Kind `usergroup`: membership of a user group. `usergroups.users.update` replaces the
//! whole member list, so every change is read (`usergroups.users.list`), modified and
//! written back; `describe` says `read_modify_write` so the host serialises writes to
//! one group.
//!
//! Must never: write a list that would empty the group (Slack refuses; the group must
//! be disabled instead), or write when the read shows nothing to change.

use portcullis_sdk::{Error, GrantOutcome, GrantPage, Result, RevokeOutcome};
use serde::Deserialize;
use serde_json::json;

use crate::api;

pub const KIND: &str = "usergroup";

/// The current members of user group `id`.
pub fn members(id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Users {
        users: Vec<String>,
    }
    let users: Users = api::decode(
        "usergroups.users.list",
        api::get_ok("usergroups.users.list", &[("usergroup", id)])?,
    )?;
    Ok(users.users)
}

/// The list after adding `user`, `None` if already there.
pub fn with(members: &[String], user: &str) -> Option<Vec<String>> {
    if members.iter().any(|m| m == user) {
        return None;
    }
    let mut list = members.to_vec();
    list.push(user.to_owned());
    Some(list)
}

/// The list after removing `user`, `None` if not there.
pub fn without(members: &[String], user: &str) -> Option<Vec<String>> {
    members
        .iter()
        .any(|m| m == user)
        .then(|| members.iter().filter(|m| *m != user).cloned().collect())
}

fn write(id: &str, list: &[String]) -> Result<()> {
    let body = json!({ "usergroup": id, "users": list.join(",") });
    api::post("usergroups.users.update", &body)??;
    Ok(())
}

pub fn grant(id: &str, user: &str) -> Result<GrantOutcome> {
    match with(&members(id)?, user) {
        None => Ok(GrantOutcome::AlreadyPresent),
        Some(list) => write(id, &list).map(|()| GrantOutcome::Granted),
    }
}

pub fn revoke(id: &str, user: &str) -> Result<RevokeOutcome> {
    match without(&members(id)?, user) {
        None => Ok(RevokeOutcome::AlreadyAbsent),
        Some(list) if list.is_empty() => Err(Error::invalid_request(format!(
            "{user} is the last member of user group {id}, and Slack cannot empty a user group (usergroups.users.update refuses an empty list); disable the group with usergroups.disable, or add another member first"
        ))),
        Some(list) => write(id, &list).map(|()| RevokeOutcome::Revoked),
    }
}

/// Every member of the group `resource` names: Slack returns them in one page.
pub fn page(resource: &str) -> Result<GrantPage> {
    let id = crate::ids::usergroup(resource)?;
    Ok(GrantPage {
        grants: members(&id)?
            .into_iter()
            .map(|user| crate::grant(KIND, resource, user))
            .collect(),
        next_cursor: None,
    })
}

/// Every member of every enabled group, from one `usergroups.list?include_users=true`.
pub fn all() -> Result<GrantPage> {
    #[derive(Deserialize)]
    struct List {
        usergroups: Vec<Group>,
    }
    #[derive(Deserialize)]
    struct Group {
        id: String,
        #[serde(default)]
        users: Vec<String>,
    }
    let list: List = api::decode(
        "usergroups.list",
        api::get_ok("usergroups.list", &[("include_users", "true")])?,
    )?;
    Ok(GrantPage {
        grants: list
            .usergroups
            .into_iter()
            .flat_map(|g| {
                let id = g.id;
                g.users
                    .into_iter()
                    .map(move |user| crate::grant(KIND, &id, user))
            })
            .collect(),
        next_cursor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn adding_keeps_everyone_and_appends_once() {
        assert_eq!(
            with(&list(&["U1", "U2"]), "U3"),
            Some(list(&["U1", "U2", "U3"]))
        );
        assert_eq!(with(&list(&["U1", "U2"]), "U2"), None);
        assert_eq!(with(&[], "U1"), Some(list(&["U1"])));
    }

    #[test]
    fn removing_keeps_everyone_else_and_can_reach_empty() {
        assert_eq!(
            without(&list(&["U1", "U2", "U3"]), "U2"),
            Some(list(&["U1", "U3"]))
        );
        assert_eq!(without(&list(&["U1"]), "U2"), None);
        assert_eq!(without(&list(&["U1"]), "U1"), Some(Vec::new()));
    }
}
