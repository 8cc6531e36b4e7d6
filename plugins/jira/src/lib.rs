//! Jira Cloud connector: project role membership over REST v3
//! (`https://<site>.atlassian.net`), authenticated with Basic `email`:`api-token`.
//!
//! Kind `project-role`, resource `PROJECT/Role name` (`PLAT/Developers`), subject id =
//! Atlassian accountId, no levels.
//!
//! Why the role is part of the resource and not a level: Jira's project roles are
//! independent sets of people. An Administrator is not implicitly a Developer; each
//! role grants whatever the project's permission scheme gives it, and a person can
//! hold several. Levels in Portcullis are ordered ("a higher level implies every lower
//! one"), and list-grants would list one person twice on the same resource. With
//! `PLAT/Developers` as the resource, verify answers exactly for the requested role,
//! each role a person holds is its own grant, and the host never infers one role from
//! another.
//!
//! Only direct user actors count: a role held through a group actor is not reported,
//! because revoking the user from the role cannot remove it (change the group instead).
//!
//! Jira's answers we rely on: `POST .../project/{key}/role/{id}` with `{"user":[id]}`
//! answers 200; repeating it answers 400 "User '…' is already a member of the project
//! role." (English; other locales are handled by reading the role back). `DELETE
//! ...?user=` answers 204; for someone who is not an actor Jira answers an error (404
//! on the sites we know of, 400 on some versions): either way we read the role back
//! and report already-absent when the user is not an actor.
//! Must never: report a grant or revoke from a guess; ambiguous answers are read back.

mod api;
mod list;
mod names;
mod paging;
mod reset;

use portcullis_sdk::http::Method;
use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    Subject,
};
use serde::Deserialize;

use crate::names::Target;

pub(crate) const KIND: &str = "project-role";

struct Jira;

portcullis_sdk::export_connector!(Jira);

impl Connector for Jira {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "jira".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Jira Cloud project role membership.".into(),
            kinds: vec![EntitlementKind {
                name: KIND.into(),
                description: "Direct member of a project role; resource `PROJECT/Role name` (e.g. `PLAT/Developers`), subject id the Atlassian accountId. Roles are independent (Administrators does not imply Developers), so the role is part of the resource, not a level.".into(),
                levels: Vec::new(),
                read_modify_write: false,
            }],
            capabilities: vec![KindCapabilities::of(KIND).list_grants()],
        }
    }

    fn check() -> Result<CheckReport> {
        #[derive(Deserialize)]
        struct Me {
            #[serde(rename = "accountId")]
            account_id: String,
            #[serde(rename = "displayName", default)]
            display_name: String,
            #[serde(rename = "emailAddress")]
            email: Option<String>,
        }
        #[derive(Deserialize)]
        struct Permissions {
            permissions: std::collections::BTreeMap<String, Held>,
        }
        #[derive(Deserialize)]
        struct Held {
            #[serde(rename = "havePermission", default)]
            have: bool,
        }
        let me: Me = api::send(api::request(Method::Get, "/rest/api/3/myself"))?.json()?;
        let held: Permissions = api::send(
            api::request(Method::Get, "/rest/api/3/mypermissions")
                .query("permissions", "ADMINISTER,ADMINISTER_PROJECTS"),
        )?
        .json()?;
        let scopes: Vec<String> = held
            .permissions
            .into_iter()
            .filter(|(_, p)| p.have)
            .map(|(key, _)| key)
            .collect();
        let mut warnings = Vec::new();
        if scopes.is_empty() {
            warnings.push("the account holds neither Administer Jira nor Administer Projects in any project; Jira will refuse every role change".into());
        }
        let email = me.email.map(|e| format!(" <{e}>")).unwrap_or_default();
        Ok(CheckReport {
            principal: format!("{}{email} (accountId {})", me.display_name, me.account_id),
            scopes,
            warnings,
        })
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        let (target, account) = target(&action.subject, &action.entitlement)?;
        let id = api::role_id(&target)?;
        let path = format!("/rest/api/3/project/{}/role/{id}", target.project);
        let response = api::request(Method::Post, &path)
            .json(&serde_json::json!({ "user": [account] }))
            .send()?;
        let Some(error) = api::error(&format!("POST {path}"), &response, api::now_ms()) else {
            return Ok(GrantOutcome::Granted);
        };
        match response.status() {
            // Jira's wording is localised: read back before calling a 400 a failure.
            400 if api::messages(&response).contains("already a member")
                || api::role(&target.project, &id)?.has_user(account) =>
            {
                Ok(GrantOutcome::AlreadyPresent)
            }
            404 => Err(Error::not_found(format!(
                "Jira knows no user {account} (or the role left {}): {}",
                target.project,
                error.message()
            ))),
            _ => Err(error),
        }
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        let (target, account) = target(&action.subject, &action.entitlement)?;
        let id = api::role_id(&target)?;
        let path = format!("/rest/api/3/project/{}/role/{id}", target.project);
        let response = api::request(Method::Delete, &path)
            .query("user", account)
            .send()?;
        let Some(error) = api::error(&format!("DELETE {path}"), &response, api::now_ms()) else {
            return Ok(RevokeOutcome::Revoked);
        };
        // Jira answers a non-actor with an error; the role itself exists (we just
        // resolved it), so read it back to tell "already gone" from a real failure.
        if matches!(response.status(), 400 | 404)
            && !api::role(&target.project, &id)?.has_user(account)
        {
            return Ok(RevokeOutcome::AlreadyAbsent);
        }
        Err(error)
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let (target, account) = target(&subject, &entitlement)?;
        let id = api::role_id(&target)?;
        Ok(if api::role(&target.project, &id)?.has_user(account) {
            Observed::Present(None)
        } else {
            Observed::Absent
        })
    }

    fn list_grants(query: GrantQuery) -> Result<GrantPage> {
        check_kind(&query.kind)?;
        list::page(query)
    }
}

fn check_kind(kind: &str) -> Result<()> {
    if kind == KIND {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "the Jira connector manages kind {KIND:?}, not {kind:?}"
        )))
    }
}

/// The validated role and account id an action is about.
fn target<'a>(subject: &'a Subject, entitlement: &Entitlement) -> Result<(Target, &'a str)> {
    check_kind(&entitlement.kind)?;
    if let Some(level) = &entitlement.level {
        return Err(Error::invalid_request(format!(
            "project roles have no levels (got {level:?}); name the role in the resource, e.g. `PLAT/{level}`"
        )));
    }
    let target = Target::parse(&entitlement.resource)?;
    target.role()?;
    Ok((target, names::account_id(&subject.id)?))
}
