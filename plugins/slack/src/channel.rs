//! Kind `channel`: membership of a conversation, through `conversations.invite`,
//! `conversations.kick` and `conversations.members` (cursor-paged).
//!
//! Must never: call a `not_in_channel` from `conversations.kick` "already absent" without
//! reading the members: Slack answers it both when the user is not a member and when
//! the bot itself is not, and only the first means there is nothing to do.

use portcullis_sdk::{Error, Grant, GrantOutcome, GrantPage, Result, RevokeOutcome};
use serde::Deserialize;
use serde_json::json;

use crate::api;
use crate::ids::{self, Metadata};

pub const KIND: &str = "channel";

/// Members per page when listing grants, and when searching for one member (Slack
/// allows up to 1000 and suggests no more than 200 for listings).
const LIST_LIMIT: &str = "200";
const SEARCH_LIMIT: &str = "1000";

pub fn grant(channel: &str, user: &str) -> Result<GrantOutcome> {
    let body = json!({ "channel": channel, "users": user });
    match api::post("conversations.invite", &body)? {
        Ok(_) => Ok(GrantOutcome::Granted),
        Err(r) if r.code == "already_in_channel" => Ok(GrantOutcome::AlreadyPresent),
        Err(r) => Err(r.into()),
    }
}

pub fn revoke(channel: &str, user: &str) -> Result<RevokeOutcome> {
    let body = json!({ "channel": channel, "user": user });
    match api::post("conversations.kick", &body)? {
        Ok(_) => Ok(RevokeOutcome::Revoked),
        Err(r) if r.code == "not_in_channel" => {
            if is_member(channel, user)? {
                Err(Error::invalid_request(format!(
                    "Slack conversations.kick answered `not_in_channel` although {user} is a member of {channel}: the bot is not in the channel; invite it once (`/invite @bot`) so it can remove members"
                )))
            } else {
                Ok(RevokeOutcome::AlreadyAbsent)
            }
        }
        Err(r) => Err(r.into()),
    }
}

#[derive(Deserialize)]
struct Members {
    members: Vec<String>,
    #[serde(default)]
    response_metadata: Option<Metadata>,
}

fn members(channel: &str, limit: &str, cursor: &str) -> Result<(Vec<String>, String)> {
    let mut args = vec![("channel", channel), ("limit", limit)];
    if !cursor.is_empty() {
        args.push(("cursor", cursor));
    }
    let page: Members = api::decode(
        "conversations.members",
        api::get_ok("conversations.members", &args)?,
    )?;
    Ok((page.members, ids::next_cursor(page.response_metadata)))
}

/// Whether `user` is in `channel`, reading every page until found.
pub fn is_member(channel: &str, user: &str) -> Result<bool> {
    let mut cursor = String::new();
    loop {
        let (page, next) = members(channel, SEARCH_LIMIT, &cursor)?;
        if page.iter().any(|m| m == user) {
            return Ok(true);
        }
        if next.is_empty() || next == cursor {
            return Ok(false);
        }
        cursor = next;
    }
}

/// One page of members of the channel `resource` names; the cursor is Slack's own.
pub fn page(resource: &str, cursor: Option<&str>) -> Result<GrantPage> {
    let channel = ids::channel(resource)?;
    let (page, next) = members(&channel, LIST_LIMIT, cursor.unwrap_or_default())?;
    Ok(GrantPage {
        grants: page
            .into_iter()
            .map(|user| crate::grant(KIND, resource, user))
            .collect::<Vec<Grant>>(),
        next_cursor: (!next.is_empty()).then_some(next),
    })
}
