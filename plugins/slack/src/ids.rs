//! Slack ids and the names that resolve to them: users (`U…`/`W…`, or an e-mail address
//! via `users.lookupByEmail`), channels (`C…`/`G…`, or `#name` via `conversations.list`)
//! and user groups (`S…`, or `@handle` via `usergroups.list`).
//!
//! Must never: send an id that is not Slack-shaped (upper-case letters and digits
//! behind the right prefix); a wrong kind of id would otherwise reach Slack as a
//! confusing `*_not_found`.

use portcullis_sdk::{Error, Result, Subject};
use serde::Deserialize;

use crate::api;

/// Channels fetched per `conversations.list` page, and the most pages read to resolve
/// one `#name` (200 000 channels).
const LIST_LIMIT: &str = "1000";
const MAX_NAME_PAGES: usize = 200;

/// Whether `s` is `prefix` + 2..=20 upper-case letters or digits.
pub fn is_id(s: &str, prefixes: &[char]) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| prefixes.contains(&c))
        && (3..=21).contains(&s.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The Slack user id of `subject`: its id when it is one, else the e-mail (the subject's
/// `email`, or an id that is an address) looked up with `users.lookupByEmail`.
pub fn user(subject: &Subject) -> Result<String> {
    let id = subject.id.trim();
    if is_id(id, &['U', 'W']) {
        return Ok(id.to_owned());
    }
    let email = subject
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| e.contains('@'))
        .or_else(|| id.contains('@').then_some(id));
    let Some(email) = email else {
        return Err(Error::invalid_request(format!(
            "subject {id:?} is not a Slack user id (U… or W…) and has no e-mail address to look up; give the member id from the user's Slack profile"
        )));
    };
    #[derive(Deserialize)]
    struct Found {
        user: User,
    }
    #[derive(Deserialize)]
    struct User {
        id: String,
    }
    let found: Found = api::decode(
        "users.lookupByEmail",
        api::get_ok("users.lookupByEmail", &[("email", email)])?,
    )?;
    Ok(found.user.id)
}

/// The channel id a resource names: `C…`/`G…` as is, `#name` looked up.
pub fn channel(resource: &str) -> Result<String> {
    let resource = resource.trim();
    if let Some(name) = resource.strip_prefix('#') {
        return channel_named(name);
    }
    if is_id(resource, &['C', 'G']) {
        return Ok(resource.to_owned());
    }
    Err(Error::invalid_request(format!(
        "channel {resource:?} is neither a Slack channel id (C…) nor `#name`"
    )))
}

/// Pages through `conversations.list` (public, and private ones the bot is in) for a
/// channel called `name`. Costs one call per 1000 channels: prefer ids.
fn channel_named(name: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct Page {
        channels: Vec<Channel>,
        #[serde(default)]
        response_metadata: Option<Metadata>,
    }
    #[derive(Deserialize)]
    struct Channel {
        id: String,
        name: String,
    }
    let wanted = name.to_lowercase();
    let mut cursor = String::new();
    for _ in 0..MAX_NAME_PAGES {
        let mut args = vec![
            ("types", "public_channel,private_channel"),
            ("limit", LIST_LIMIT),
        ];
        if !cursor.is_empty() {
            args.push(("cursor", cursor.as_str()));
        }
        let page: Page = api::decode(
            "conversations.list",
            api::get_ok("conversations.list", &args)?,
        )?;
        if let Some(c) = page.channels.into_iter().find(|c| c.name == wanted) {
            return Ok(c.id);
        }
        cursor = next_cursor(page.response_metadata);
        if cursor.is_empty() {
            break;
        }
    }
    Err(Error::not_found(format!(
        "no channel #{name} is visible to the bot (a private channel is visible only once the bot is in it); use the channel id"
    )))
}

/// The user group id a resource names: `S…` as is, `@handle` looked up.
pub fn usergroup(resource: &str) -> Result<String> {
    let resource = resource.trim();
    if let Some(handle) = resource.strip_prefix('@') {
        #[derive(Deserialize)]
        struct List {
            usergroups: Vec<Group>,
        }
        #[derive(Deserialize)]
        struct Group {
            id: String,
            handle: String,
        }
        let list: List = api::decode("usergroups.list", api::get_ok("usergroups.list", &[])?)?;
        return list
            .usergroups
            .into_iter()
            .find(|g| g.handle.eq_ignore_ascii_case(handle))
            .map(|g| g.id)
            .ok_or_else(|| Error::not_found(format!("no user group has the handle @{handle}")));
    }
    if is_id(resource, &['S']) {
        return Ok(resource.to_owned());
    }
    Err(Error::invalid_request(format!(
        "user group {resource:?} is neither a Slack user group id (S…) nor `@handle`"
    )))
}

/// `response_metadata.next_cursor`, "" on the last page.
#[derive(Deserialize, Default)]
pub struct Metadata {
    #[serde(default)]
    next_cursor: String,
}

pub fn next_cursor(metadata: Option<Metadata>) -> String {
    metadata.unwrap_or_default().next_cursor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_slack_shaped() {
        assert!(is_id("U0123ABCD", &['U', 'W']));
        assert!(is_id("W0123ABCD", &['U', 'W']));
        assert!(is_id("C0123ABCD", &['C', 'G']));
        assert!(is_id("S0604QSJC", &['S']));
        for bad in [
            "",
            "U",
            "u0123abcd",
            "C0123ABCD",
            "U01/../X",
            "U01 23",
            "U0123ABCD?x=1",
        ] {
            assert!(!is_id(bad, &['U', 'W']), "{bad}");
        }
    }

    #[test]
    fn malformed_resources_are_refused_before_any_call() {
        assert!(matches!(channel("general"), Err(Error::InvalidRequest(_))));
        assert!(matches!(
            channel("c0123abcd"),
            Err(Error::InvalidRequest(_))
        ));
        assert_eq!(channel(" C0123ABCD ").ok().as_deref(), Some("C0123ABCD"));
        assert!(matches!(
            usergroup("C0123ABCD"),
            Err(Error::InvalidRequest(_))
        ));
        let nobody = Subject {
            id: "alice".into(),
            email: None,
        };
        assert!(matches!(user(&nobody), Err(Error::InvalidRequest(m)) if m.contains("U…")));
    }
}
