//! Okta connector: group membership over the management API
//! (`https://<org>.okta.com/api/v1`), authenticated with `Authorization: SSWS
//! <api-token>` (injected by the host from the `api-token` secret).
//!
//! Kind `group`, resource the group id (`00g…`), subject id the Okta user id (`00u…`),
//! no levels.
//!
//! Okta's writes say nothing useful: `PUT /groups/{g}/users/{u}` answers 204 whether or
//! not the user was already a member, and `DELETE` answers 204 for a non-member too. So
//! grant and revoke read membership first to tell granted from already-present and
//! revoked from already-absent. Only `OKTA_GROUP` groups can be written: an `APP_GROUP`'s
//! members come from its source application (AD, LDAP, Workday…) and `BUILT_IN` groups
//! (Everyone) are managed by Okta itself; both are refused before any write.
//! Must never: write to a group that is not an `OKTA_GROUP`.

mod api;
mod list;
mod names;
mod usage;

use portcullis_sdk::http::Method;
use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    Subject, UsagePage, UsageQuery, config,
};
use serde::Deserialize;

pub(crate) const KIND: &str = "group";

/// Admin roles that can change memberships of (at least some) Okta groups.
const MEMBERSHIP_ROLES: [&str; 4] = [
    "SUPER_ADMIN",
    "ORG_ADMIN",
    "GROUP_MEMBERSHIP_ADMIN",
    "USER_ADMIN",
];

struct Okta;

portcullis_sdk::export_connector!(Okta);

impl Connector for Okta {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "okta".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Okta group membership.".into(),
            kinds: vec![EntitlementKind {
                name: KIND.into(),
                description: "Member of an Okta group; resource the group id (00g…), subject id the Okta user id (00u…). Only OKTA_GROUP groups can be changed; app and built-in groups are listed but refused for writes.".into(),
                levels: Vec::new(),
                read_modify_write: false,
            }],
            capabilities: vec![KindCapabilities::of(KIND).list_grants().usage()],
        }
    }

    fn check() -> Result<CheckReport> {
        #[derive(Deserialize)]
        struct Me {
            id: String,
            #[serde(default)]
            profile: Profile,
        }
        #[derive(Deserialize, Default)]
        struct Profile {
            #[serde(default)]
            login: String,
        }
        #[derive(Deserialize)]
        struct Role {
            #[serde(rename = "type")]
            kind: String,
        }
        let me: Me =
            api::send(api::request(Method::Get, config::url("/api/v1/users/me")))?.json()?;
        let me_id = names::id(&me.id, "user")?;
        let roles: Vec<Role> = api::send(api::request(
            Method::Get,
            config::url(&format!("/api/v1/users/{me_id}/roles")),
        ))?
        .json()?;
        let scopes: Vec<String> = roles.into_iter().map(|r| r.kind).collect();
        let mut warnings = Vec::new();
        if !scopes
            .iter()
            .any(|s| MEMBERSHIP_ROLES.contains(&s.as_str()))
        {
            warnings.push(format!(
                "the token's admin holds none of {}; Okta will refuse membership changes",
                MEMBERSHIP_ROLES.join(", ")
            ));
        }
        Ok(CheckReport {
            principal: format!("{} (user {})", me.profile.login, me.id),
            scopes,
            warnings,
        })
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        let (group, user) = target(&action.subject, &action.entitlement)?;
        writable(group)?;
        if api::is_member(user, group)? {
            return Ok(GrantOutcome::AlreadyPresent);
        }
        api::send(api::request(Method::Put, membership_url(group, user))).map_err(|e| match e {
            Error::NotFound(m) => {
                Error::not_found(format!("Okta knows no user {user} (or group {group}): {m}"))
            }
            other => other,
        })?;
        Ok(GrantOutcome::Granted)
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        let (group, user) = target(&action.subject, &action.entitlement)?;
        writable(group)?;
        if !api::is_member(user, group)? {
            return Ok(RevokeOutcome::AlreadyAbsent);
        }
        let url = membership_url(group, user);
        let response = api::request(Method::Delete, url.clone()).send()?;
        // 404: the user or group went away since we read it; either way not a member.
        if response.status() == 404 {
            return Ok(RevokeOutcome::AlreadyAbsent);
        }
        if let Some(e) = api::error(&format!("DELETE {url}"), &response, api::now_ms()) {
            return Err(e);
        }
        Ok(RevokeOutcome::Revoked)
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let (group, user) = target(&subject, &entitlement)?;
        Ok(if api::is_member(user, group)? {
            Observed::Present(None)
        } else {
            Observed::Absent
        })
    }

    fn list_grants(query: GrantQuery) -> Result<GrantPage> {
        check_kind(&query.kind)?;
        list::page(query)
    }

    fn usage(query: UsageQuery) -> Result<UsagePage> {
        check_kind(&query.kind)?;
        usage::page(query)
    }
}

fn membership_url(group: &str, user: &str) -> String {
    config::url(&format!("/api/v1/groups/{group}/users/{user}"))
}

/// Refuses groups whose membership Okta does not let an API client change.
fn writable(group: &str) -> Result<()> {
    let found = api::group(group)?;
    match refusal(&found.kind) {
        None => Ok(()),
        Some(why) => Err(Error::unsupported(format!(
            "group {} ({:?}) is an {} group: {why}; Portcullis can only change OKTA_GROUP memberships",
            found.id, found.profile.name, found.kind
        ))),
    }
}

/// Why a group of type `kind` cannot be written, `None` for `OKTA_GROUP`.
fn refusal(kind: &str) -> Option<&'static str> {
    match kind {
        "OKTA_GROUP" => None,
        "APP_GROUP" => Some(
            "its members are imported from the source application (AD, LDAP, an HR app…) and must be changed there",
        ),
        "BUILT_IN" => Some("its membership is managed by Okta itself (Everyone holds every user)"),
        _ => Some("Okta does not document API membership changes for this group type"),
    }
}

fn check_kind(kind: &str) -> Result<()> {
    if kind == KIND {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "the Okta connector manages kind {KIND:?}, not {kind:?}"
        )))
    }
}

/// The validated group and user ids an action is about.
fn target<'a>(subject: &'a Subject, entitlement: &'a Entitlement) -> Result<(&'a str, &'a str)> {
    check_kind(&entitlement.kind)?;
    if let Some(level) = &entitlement.level {
        return Err(Error::invalid_request(format!(
            "Okta group membership has no levels (got {level:?}); leave the level empty"
        )));
    }
    Ok((
        names::id(&entitlement.resource, "group")?,
        names::id(&subject.id, "user")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_okta_groups_are_writable() {
        assert_eq!(refusal("OKTA_GROUP"), None);
        assert!(refusal("APP_GROUP").is_some_and(|w| w.contains("source application")));
        assert!(refusal("BUILT_IN").is_some_and(|w| w.contains("Okta itself")));
        assert!(refusal("SOMETHING_NEW").is_some());
    }
}
