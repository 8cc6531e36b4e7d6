//! Salesforce connector: permission set assignments over the REST API
//! (`https://<domain>.my.salesforce.com`, version from the `api_version` setting,
//! default v60.0).
//!
//! Kind `permission-set` (present or absent), resource = the permission set's API name
//! (`Sales_Ops`) or Id (`0PS...`), subject id = the User Id (`005...`). Ids are found with
//! SOQL; assignments are `PermissionSetAssignment` records created and deleted through
//! the sObject API. The `token` secret is a session or OAuth access token, injected as a
//! bearer token by the host.
//! Must never: build SOQL from unvalidated input (see `soql.rs`).

mod api;
mod soql;

use portcullis_sdk::http::Method;
use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error, Grant,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    Subject, config,
};
use serde::Deserialize;

use crate::soql::SetRef;

const KIND: &str = "permission-set";
const ASSIGNMENTS: &str = "/sobjects/PermissionSetAssignment";

struct Salesforce;

portcullis_sdk::export_connector!(Salesforce);

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize)]
struct Assignment {
    #[serde(rename = "AssigneeId")]
    assignee: String,
}

impl Connector for Salesforce {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "salesforce".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Salesforce permission set assignments.".into(),
            kinds: vec![EntitlementKind {
                name: KIND.into(),
                description: "Assignment of a permission set; resource its API name (Sales_Ops) or Id (0PS...), subject id the User Id (005...).".into(),
                levels: Vec::new(),
                read_modify_write: false,
            }],
            capabilities: vec![KindCapabilities::of(KIND).list_grants()],
        }
    }

    fn check() -> Result<CheckReport> {
        #[derive(Deserialize)]
        struct Limit {
            #[serde(rename = "Max")]
            max: u64,
            #[serde(rename = "Remaining")]
            remaining: u64,
        }
        #[derive(Deserialize)]
        struct Limits {
            #[serde(rename = "DailyApiRequests")]
            daily: Option<Limit>,
        }
        #[derive(Deserialize)]
        struct UserInfo {
            user_id: String,
            organization_id: String,
            #[serde(default)]
            preferred_username: String,
        }
        let limits: Limits = api::send(api::request(Method::Get, &api::data_url("/limits")?))
            .map_err(|e| match e {
                Error::NotFound(m) => Error::invalid_request(format!(
                    "this org does not serve the REST API version in the `api_version` setting: {m}"
                )),
                other => other,
            })?
            .json()?;
        let me: UserInfo = api::send(api::request(
            Method::Get,
            &config::url("/services/oauth2/userinfo"),
        ))?
        .json()?;
        let mut warnings = vec![
            "the connector's user needs the Assign Permission Sets and View Setup and Configuration permissions".to_owned(),
        ];
        if let Some(daily) = limits
            .daily
            .filter(|d| d.remaining.saturating_mul(10) < d.max)
        {
            warnings.push(format!(
                "only {} of the org's {} daily API requests remain",
                daily.remaining, daily.max
            ));
        }
        Ok(CheckReport {
            principal: format!(
                "{} (user {}, org {})",
                me.preferred_username, me.user_id, me.organization_id
            ),
            scopes: vec!["api".into()],
            warnings,
        })
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        let (set, user) = target(&action.subject, &action.entitlement)?;
        let set_id = resolve(&set, &action.entitlement.resource)?;
        let request = api::request(Method::Post, &api::data_url(ASSIGNMENTS)?)
            .json(&serde_json::json!({ "AssigneeId": user, "PermissionSetId": set_id }));
        let response = request.send()?;
        if response.status() == 400
            && api::errors(&response)
                .iter()
                .any(|e| e.code == "DUPLICATE_VALUE")
        {
            return Ok(GrantOutcome::AlreadyPresent);
        }
        match api::error_for(&response, "POST PermissionSetAssignment") {
            None => Ok(GrantOutcome::Granted),
            Some(Error::NotFound(m)) => Err(Error::not_found(format!(
                "Salesforce knows no active user {user} for permission set {}: {m}",
                action.entitlement.resource
            ))),
            Some(Error::InvalidRequest(m)) => Err(Error::invalid_request(format!(
                "Salesforce refused to assign {} to {user}: {m}",
                action.entitlement.resource
            ))),
            Some(e) => Err(e),
        }
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        let (set, user) = target(&action.subject, &action.entitlement)?;
        let set_id = resolve(&set, &action.entitlement.resource)?;
        let found = api::query_all::<Record>(&soql::assignments(&set_id, Some(user)))?;
        let mut revoked = false;
        for record in found {
            if !soql::is_id(&record.id, "0Pa") {
                return Err(Error::transient(format!(
                    "Salesforce returned a malformed assignment id {:?}",
                    record.id.chars().take(40).collect::<String>()
                )));
            }
            let url = api::data_url(&format!("{ASSIGNMENTS}/{}", record.id))?;
            match api::send(api::request(Method::Delete, &url)) {
                Ok(_) => revoked = true,
                // Deleted by someone else since we looked.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(if revoked {
            RevokeOutcome::Revoked
        } else {
            RevokeOutcome::AlreadyAbsent
        })
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let (set, user) = target(&subject, &entitlement)?;
        let set_id = resolve(&set, &entitlement.resource)?;
        let (found, _) = api::query::<Record>(&soql::assignments(&set_id, Some(user)))?;
        Ok(if found.is_empty() {
            Observed::Absent
        } else {
            Observed::Present(None)
        })
    }

    fn list_grants(query: GrantQuery) -> Result<GrantPage> {
        check_kind(&query.kind)?;
        let resource = query.resource.ok_or_else(|| {
            Error::invalid_request(
                "the Salesforce connector lists the assignments of one permission set: pass its API name or Id as the resource",
            )
        })?;
        let (records, next) = match &query.cursor {
            Some(cursor) => api::more::<Assignment>(cursor)?,
            None => {
                let set_id = resolve(&soql::permission_set(&resource)?, &resource)?;
                api::query::<Assignment>(&soql::assignments(&set_id, None))?
            }
        };
        let grants = records
            .into_iter()
            .map(|a| Grant {
                subject: Subject {
                    id: a.assignee,
                    email: None,
                },
                entitlement: Entitlement {
                    kind: KIND.into(),
                    resource: resource.clone(),
                    level: None,
                },
                pending: false,
                last_used_at: None,
            })
            .collect();
        Ok(GrantPage {
            grants,
            next_cursor: next,
        })
    }
}

fn check_kind(kind: &str) -> Result<()> {
    if kind == KIND {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "the Salesforce connector manages kind {KIND:?}, not {kind:?}"
        )))
    }
}

/// The validated permission set and User Id an action is about.
fn target<'a>(subject: &'a Subject, entitlement: &Entitlement) -> Result<(SetRef, &'a str)> {
    check_kind(&entitlement.kind)?;
    if entitlement.level.is_some() {
        return Err(Error::invalid_request(
            "permission sets are assigned or not: leave the level empty",
        ));
    }
    Ok((
        soql::permission_set(&entitlement.resource)?,
        soql::user_id(&subject.id)?,
    ))
}

/// The 18-character Id of the permission set, or not-found naming it.
fn resolve(set: &SetRef, resource: &str) -> Result<String> {
    let (records, _) = api::query::<Record>(&soql::find_set(set))?;
    match records.into_iter().next() {
        Some(r) if soql::is_id(&r.id, soql::PERMISSION_SET_PREFIX) => Ok(r.id),
        Some(r) => Err(Error::transient(format!(
            "Salesforce returned a malformed PermissionSet Id {:?}",
            r.id.chars().take(40).collect::<String>()
        ))),
        None => Err(Error::not_found(format!(
            "Salesforce has no permission set {resource:?} (match the API name, not the label, or use its 0PS Id)"
        ))),
    }
}
