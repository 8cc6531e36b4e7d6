//! Slack connector: channel membership and user groups over the Slack Web API
//! (`https://slack.com/api`) with a bot token (`xoxb-…`, secret `token`).
//!
//! Kind `channel`: resource a channel id (`C…`) or `#name`; presence only. Kind
//! `usergroup`: resource a user group id (`S…`) or `@handle`; presence only; the API
//! replaces whole member lists, so the kind is `read_modify_write`. Subject: a Slack
//! user id (`U…`/`W…`), or an e-mail address looked up with `users.lookupByEmail`.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": "<code>"}` for every refusal
//! (api.rs reads it); only rate limiting is HTTP 429 with `Retry-After`.
//! Must never: grant or revoke on a kind it does not know, or treat `ok: false` as success.

mod api;
mod channel;
mod ids;
mod usergroup;

use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error, Grant,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    Subject,
};
use serde::Deserialize;

struct Slack;

portcullis_sdk::export_connector!(Slack);

/// The kind an entitlement or query names.
enum Kind {
    Channel,
    Usergroup,
}

fn kind(name: &str) -> Result<Kind> {
    match name {
        channel::KIND => Ok(Kind::Channel),
        usergroup::KIND => Ok(Kind::Usergroup),
        other => Err(Error::invalid_request(format!(
            "the Slack connector manages kinds {:?} and {:?}, not {other:?}",
            channel::KIND,
            usergroup::KIND
        ))),
    }
}

/// The kind, the resource's id and the user id an action is about.
fn target(subject: &Subject, entitlement: &Entitlement) -> Result<(Kind, String, String)> {
    let kind = kind(&entitlement.kind)?;
    if let Some(level) = &entitlement.level {
        return Err(Error::invalid_request(format!(
            "Slack {} membership has no levels, but level {level:?} was asked for; leave the level out",
            entitlement.kind
        )));
    }
    let resource = match kind {
        Kind::Channel => ids::channel(&entitlement.resource)?,
        Kind::Usergroup => ids::usergroup(&entitlement.resource)?,
    };
    Ok((kind, resource, ids::user(subject)?))
}

/// A listed grant, with the resource spelled as the query spelled it.
pub(crate) fn grant(kind: &str, resource: &str, user: String) -> Grant {
    Grant {
        subject: Subject {
            id: user,
            email: None,
        },
        entitlement: Entitlement {
            kind: kind.into(),
            resource: resource.into(),
            level: None,
        },
        pending: false,
        last_used_at: None,
    }
}

impl Connector for Slack {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "slack".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Slack channel membership and user groups, through a bot token.".into(),
            kinds: vec![
                EntitlementKind {
                    name: channel::KIND.into(),
                    description: "Member of a channel; resource the channel id (C…) or #name, subject the Slack user id (U…) or an e-mail. The bot must be in the channel.".into(),
                    levels: Vec::new(),
                    read_modify_write: false,
                },
                EntitlementKind {
                    name: usergroup::KIND.into(),
                    description: "Member of a user group; resource the group id (S…) or @handle. Slack replaces the whole member list on every write, and cannot empty a group.".into(),
                    levels: Vec::new(),
                    read_modify_write: true,
                },
            ],
            capabilities: vec![
                KindCapabilities::of(channel::KIND).list_grants(),
                KindCapabilities::of(usergroup::KIND).list_grants(),
            ],
        }
    }

    fn check() -> Result<CheckReport> {
        #[derive(Deserialize)]
        struct Identity {
            user: String,
            user_id: String,
            team: String,
            team_id: String,
            #[serde(default)]
            bot_id: Option<String>,
        }
        let (answer, scopes) = api::post_for_scopes("auth.test")?;
        let me: Identity = api::decode("auth.test", answer?)?;
        let bot = me.bot_id.map(|b| format!(", bot {b}")).unwrap_or_default();
        let (scopes, warnings) = match scopes {
            Some(header) => {
                let scopes: Vec<String> = header
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                let warnings = scope_warnings(&scopes);
                (scopes, warnings)
            }
            None => (Vec::new(), vec!["Slack reported no x-oauth-scopes for this token; the connector cannot tell whether it may manage channels and user groups".into()]),
        };
        Ok(CheckReport {
            principal: format!(
                "{} ({}{bot}) in {} ({})",
                me.user, me.user_id, me.team, me.team_id
            ),
            scopes,
            warnings,
        })
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        match target(&action.subject, &action.entitlement)? {
            (Kind::Channel, channel, user) => channel::grant(&channel, &user),
            (Kind::Usergroup, group, user) => usergroup::grant(&group, &user),
        }
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        match target(&action.subject, &action.entitlement)? {
            (Kind::Channel, channel, user) => channel::revoke(&channel, &user),
            (Kind::Usergroup, group, user) => usergroup::revoke(&group, &user),
        }
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let present = match target(&subject, &entitlement)? {
            (Kind::Channel, channel, user) => channel::is_member(&channel, &user)?,
            (Kind::Usergroup, group, user) => usergroup::members(&group)?.contains(&user),
        };
        Ok(if present {
            Observed::Present(None)
        } else {
            Observed::Absent
        })
    }

    fn list_grants(query: GrantQuery) -> Result<GrantPage> {
        match (kind(&query.kind)?, query.resource.as_deref()) {
            (Kind::Channel, Some(resource)) => channel::page(resource, query.cursor.as_deref()),
            (Kind::Channel, None) => Err(Error::invalid_request(
                "listing channel members needs a resource (a channel id or #name); the connector does not walk every channel",
            )),
            (Kind::Usergroup, Some(resource)) => usergroup::page(resource),
            (Kind::Usergroup, None) => usergroup::all(),
        }
    }
}

/// What the operator should know about the token's scopes, per kind.
fn scope_warnings(scopes: &[String]) -> Vec<String> {
    let has = |s: &str| scopes.iter().any(|held| held == s);
    let needs: [(&[&str], &str); 6] = [
        (
            &["channels:manage", "channels:write"],
            "add or remove members of public channels",
        ),
        (
            &["groups:write"],
            "add or remove members of private channels",
        ),
        (
            &["channels:read"],
            "read public channel members (verify, list-grants, #name)",
        ),
        (&["groups:read"], "read private channel members"),
        (&["usergroups:read"], "read user group members"),
        (&["usergroups:write"], "change user group members"),
    ];
    let mut warnings: Vec<String> = needs
        .iter()
        .filter(|(any_of, _)| !any_of.iter().any(|s| has(s)))
        .map(|(any_of, what)| {
            format!("the token lacks `{}`, so the connector cannot {what}; add it to the Slack app and reinstall", any_of[0])
        })
        .collect();
    if !has("users:read.email") {
        warnings.push("the token lacks `users:read.email`: subjects must be given as Slack user ids, not e-mail addresses".into());
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_warnings_name_each_missing_scope() {
        let all: Vec<String> = [
            "channels:read",
            "channels:manage",
            "groups:read",
            "groups:write",
            "usergroups:read",
            "usergroups:write",
            "users:read.email",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert!(scope_warnings(&all).is_empty());
        let legacy: Vec<String> = all
            .iter()
            .map(|s| s.replace("channels:manage", "channels:write"))
            .collect();
        assert!(scope_warnings(&legacy).is_empty());
        let some: Vec<String> = vec!["channels:read".into(), "usergroups:read".into()];
        let warnings = scope_warnings(&some).join("\n");
        for missing in [
            "channels:manage",
            "groups:write",
            "groups:read",
            "usergroups:write",
            "users:read.email",
        ] {
            assert!(
                warnings.contains(&format!("`{missing}`")),
                "{missing}: {warnings}"
            );
        }
        assert!(!warnings.contains("`channels:read`"));
    }

    #[test]
    fn levels_and_unknown_kinds_are_refused() {
        let subject = Subject {
            id: "U0123ABCD".into(),
            email: None,
        };
        let mut entitlement = Entitlement {
            kind: "channel".into(),
            resource: "C0123ABCD".into(),
            level: Some("admin".into()),
        };
        assert!(
            matches!(target(&subject, &entitlement), Err(Error::InvalidRequest(m)) if m.contains("no levels"))
        );
        entitlement.level = None;
        entitlement.kind = "repository".into();
        assert!(
            matches!(target(&subject, &entitlement), Err(Error::InvalidRequest(m)) if m.contains("usergroup"))
        );
    }
}
