//! `list-grants`. For one policy: `ListEntitiesForPolicy` filtered to users or groups.
//! For every policy: one page of `ListUsers`/`ListGroups` and, for each principal on it,
//! every page of `ListAttached*Policies`. The cursor is IAM's `Marker`, tagged with the
//! mode it belongs to.
//!
//! Must never: accept a cursor from the other mode (IAM would reject or misread it).

use portcullis_sdk::{Entitlement, Error, Grant, GrantPage, GrantQuery, Result, Subject};

use crate::names::{self, Kind};
use crate::query;
use crate::xml::Xml;

const BY_POLICY: &str = "policy:";
const BY_PRINCIPAL: &str = "principal:";

pub fn page(query: GrantQuery) -> Result<GrantPage> {
    let kind = Kind::parse(&query.kind)?;
    let (mode, policy) = match query.resource.as_deref() {
        Some(resource) => (BY_POLICY, Some(names::policy_arn(resource)?)),
        None => (BY_PRINCIPAL, None),
    };
    let marker = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.strip_prefix(mode).ok_or_else(|| {
            Error::invalid_request(
                "the cursor belongs to a different list-grants query; restart without a cursor",
            )
        })?),
    };
    let (grants, next) = match &policy {
        Some(policy) => by_policy(kind, policy, marker)?,
        None => by_principal(kind, marker)?,
    };
    Ok(GrantPage {
        grants,
        next_cursor: next.map(|m| format!("{mode}{m}")),
    })
}

fn grant(kind: Kind, principal: &str, policy: &str) -> Grant {
    Grant {
        subject: Subject {
            id: principal.to_owned(),
            email: None,
        },
        entitlement: Entitlement {
            kind: kind.name().into(),
            resource: policy.to_owned(),
            level: None,
        },
        pending: false,
        last_used_at: None,
    }
}

fn by_policy(
    kind: Kind,
    policy: &str,
    marker: Option<&str>,
) -> Result<(Vec<Grant>, Option<String>)> {
    let mut params = vec![("PolicyArn", policy), ("EntityFilter", kind.noun())];
    if let Some(m) = marker {
        params.push(("Marker", m));
    }
    let body = query::call("ListEntitiesForPolicy", &params)?;
    let xml = Xml::parse(&body)?;
    let root = xml.root();
    let grants = root
        .members(kind.entities_list())
        .iter()
        .filter_map(|m| m.text(kind.name_param()))
        .map(|name| grant(kind, name, policy))
        .collect();
    Ok((grants, root.next_marker()))
}

fn by_principal(kind: Kind, marker: Option<&str>) -> Result<(Vec<Grant>, Option<String>)> {
    let mut params = Vec::new();
    if let Some(m) = marker {
        params.push(("Marker", m));
    }
    let action = format!("List{}s", kind.noun());
    let body = query::call(&action, &params)?;
    let xml = Xml::parse(&body)?;
    let root = xml.root();
    let mut grants = Vec::new();
    for member in root.members(&format!("{}s", kind.noun())) {
        let Some(name) = member.text(kind.name_param()) else {
            continue;
        };
        for policy in attached_policies(kind, name)? {
            grants.push(grant(kind, name, &policy));
        }
    }
    Ok((grants, root.next_marker()))
}

/// Every policy ARN attached to one principal, across all pages.
pub fn attached_policies(kind: Kind, name: &str) -> Result<Vec<String>> {
    let action = format!("ListAttached{}Policies", kind.noun());
    let mut arns = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut params = vec![(kind.name_param(), name)];
        if let Some(m) = &marker {
            params.push(("Marker", m));
        }
        let body = query::call(&action, &params)?;
        let xml = Xml::parse(&body)?;
        let root = xml.root();
        arns.extend(
            root.members("AttachedPolicies")
                .iter()
                .filter_map(|m| m.text("PolicyArn"))
                .map(str::to_owned),
        );
        match root.next_marker() {
            Some(next) if marker.as_deref() != Some(next.as_str()) => marker = Some(next),
            Some(_) => {
                return Err(Error::transient(format!(
                    "{action} returned the same Marker twice; stopping to avoid a loop"
                )));
            }
            None => return Ok(arns),
        }
    }
}
