//! SCIM 2.0 connector (RFC 7643/7644): group membership on any SCIM service provider.
//!
//! Base URL = the SCIM service root (`https://example.com/scim/v2`). Kind `group`,
//! resource = the Group's SCIM `id`, subject id = the User's SCIM `id` or its `userName`
//! (looked up with a filter). Writes are `PATCH /Groups/{id}` add/remove of `members`.
//! Bearer auth from the `token` secret when configured; none otherwise.
//! Must never: write when a read shows the change is already in force (servers differ on
//! repeated adds and on removing a non-member: 204 or 400 `noTarget`), or add a member
//! that is not a User of the service (some servers accept dangling ids silently).

mod api;
mod list;

use portcullis_sdk::http::{Method, Response};
use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    Subject, config, secrets,
};
use serde::Deserialize;
use serde_json::json;

pub(crate) const KIND: &str = "group";

struct Scim;

portcullis_sdk::export_connector!(Scim);

impl Connector for Scim {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "scim".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Group membership on a SCIM 2.0 service provider (RFC 7644).".into(),
            kinds: vec![EntitlementKind {
                name: KIND.into(),
                description: "Member of a SCIM Group; resource the Group id, subject the User id or userName.".into(),
                levels: Vec::new(),
                // PATCH add/remove changes one member; the list is never replaced whole.
                read_modify_write: false,
            }],
            capabilities: vec![KindCapabilities::of(KIND).list_grants()],
        }
    }

    fn check() -> Result<CheckReport> {
        #[derive(Deserialize, Default)]
        struct Feature {
            #[serde(default)]
            supported: bool,
            #[serde(rename = "maxResults")]
            max_results: Option<u64>,
        }
        #[derive(Deserialize)]
        struct ServiceProviderConfig {
            #[serde(default)]
            patch: Feature,
            #[serde(default)]
            filter: Feature,
            #[serde(rename = "authenticationSchemes", default)]
            authentication_schemes: Vec<serde_json::Value>,
        }
        let spc: ServiceProviderConfig = api::get(
            api::request(Method::Get, &config::url("/ServiceProviderConfig")),
            "reading /ServiceProviderConfig (is the base URL the SCIM service root, such as https://example.com/scim/v2?)",
        )?;
        let (mut scopes, mut warnings) = (Vec::new(), Vec::new());
        if spc.patch.supported {
            scopes.push("patch".to_owned());
        } else {
            warnings.push("the service does not support PATCH (patch.supported is false): grant and revoke cannot work; only verify and list-grants will".to_owned());
        }
        if spc.filter.supported {
            scopes.push(match spc.filter.max_results {
                Some(max) => format!("filter (maxResults {max})"),
                None => "filter".to_owned(),
            });
        } else {
            warnings.push("the service does not support filters: subjects must be SCIM User ids, userName look-ups will fail".to_owned());
        }
        let auth = if secrets::is_configured("token") {
            "bearer token"
        } else {
            if !spc.authentication_schemes.is_empty() {
                warnings.push("the service announces authentication schemes but no `token` secret is configured: requests are sent without credentials".to_owned());
            }
            "no authentication"
        };
        // /ServiceProviderConfig is often served without authentication; listing groups
        // proves the credentials.
        let groups: api::ListResponse<serde_json::Value> = api::get(
            api::request(Method::Get, &config::url("/Groups"))
                .query("count", "1")
                .query("attributes", "id"),
            "listing SCIM groups",
        )?;
        Ok(CheckReport {
            principal: format!(
                "SCIM service at {} ({auth}; {} groups visible)",
                config::base_url(),
                groups.total_results
            ),
            scopes,
            warnings,
        })
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        let (group_id, who) = target(&action.subject, &action.entitlement)?;
        let group = api::group(group_id)?;
        if group.has_member(who) {
            return Ok(GrantOutcome::AlreadyPresent);
        }
        let user = api::user_id(who)?.ok_or_else(|| {
            Error::not_found(format!(
                "the SCIM service has no User with id or userName {who:?}"
            ))
        })?;
        if group.has_member(&user) {
            return Ok(GrantOutcome::AlreadyPresent);
        }
        let response = api::patch(
            group_id,
            json!({ "op": "add", "path": "members", "value": [{ "value": user }] }),
        )?;
        if response.is_success() {
            return Ok(GrantOutcome::Granted);
        }
        // Some services refuse a repeated add (400/409); if a parallel grant won the race,
        // the member is there and that is success.
        let error = api::failure(
            &response,
            &format!("adding {user} to SCIM group {group_id}"),
        );
        if matches!(response.status(), 400 | 409) && api::group(group_id)?.has_member(&user) {
            return Ok(GrantOutcome::AlreadyPresent);
        }
        Err(error)
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        let (group_id, who) = target(&action.subject, &action.entitlement)?;
        let Some(user) = member_id(&api::group(group_id)?, who)? else {
            return Ok(RevokeOutcome::AlreadyAbsent);
        };
        let path = format!("members[value eq {}]", api::literal(&user));
        let response = api::patch(group_id, json!({ "op": "remove", "path": path }))?;
        removal_outcome(
            &response,
            &format!("removing {user} from SCIM group {group_id}"),
        )
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let (group_id, who) = target(&subject, &entitlement)?;
        Ok(match member_id(&api::group(group_id)?, who)? {
            Some(_) => Observed::Present(None),
            None => Observed::Absent,
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
            "the SCIM connector manages kind {KIND:?}, not {kind:?}"
        )))
    }
}

/// The group id and subject an action is about, checked to be usable ids.
fn target<'a>(subject: &'a Subject, entitlement: &'a Entitlement) -> Result<(&'a str, &'a str)> {
    check_kind(&entitlement.kind)?;
    if entitlement.level.is_some() {
        return Err(Error::invalid_request(
            "SCIM group membership has no levels; leave the level empty",
        ));
    }
    Ok((
        id("group id (the resource)", &entitlement.resource)?,
        id("subject id", &subject.id)?,
    ))
}

fn id<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(Error::invalid_request(format!(
            "the {what} {value:?} is empty or holds control characters"
        )));
    }
    Ok(value)
}

/// What the answer to a `remove` PATCH means: 2xx revoked; 400 `noTarget` (the member
/// was removed by someone else between our read and this write) already absent. Services
/// that answer 204 to removing a non-member land in the first case.
fn removal_outcome(response: &Response, doing: &str) -> Result<RevokeOutcome> {
    if response.is_success() {
        return Ok(RevokeOutcome::Revoked);
    }
    if response.status() == 400
        && api::ScimError::of(response).scim_type.as_deref() == Some("noTarget")
    {
        return Ok(RevokeOutcome::AlreadyAbsent);
    }
    Err(api::failure(response, doing))
}

/// The member id under which `who` (a User id or userName) belongs to `group`, if any.
/// A subject the service does not know is not a member.
fn member_id(group: &api::Group, who: &str) -> Result<Option<String>> {
    if group.has_member(who) {
        return Ok(Some(who.to_owned()));
    }
    Ok(api::user_id(who)?.filter(|user| group.has_member(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entitlement(resource: &str, level: Option<&str>) -> Entitlement {
        Entitlement {
            kind: KIND.into(),
            resource: resource.into(),
            level: level.map(Into::into),
        }
    }

    fn subject(id: &str) -> Subject {
        Subject {
            id: id.into(),
            email: None,
        }
    }

    #[test]
    fn removal_answers_map_to_outcomes() {
        let answer = |status, body: &str| Response::from_parts(status, Vec::new(), body);
        let no_target = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"noTarget","status":"400","detail":"no member"}"#;
        let invalid = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"invalidPath","status":"400"}"#;
        assert_eq!(
            removal_outcome(&answer(204, ""), "x"),
            Ok(RevokeOutcome::Revoked)
        );
        assert_eq!(
            removal_outcome(&answer(200, "{}"), "x"),
            Ok(RevokeOutcome::Revoked)
        );
        assert_eq!(
            removal_outcome(&answer(400, no_target), "x"),
            Ok(RevokeOutcome::AlreadyAbsent)
        );
        assert!(matches!(
            removal_outcome(&answer(400, invalid), "x"),
            Err(Error::InvalidRequest(m)) if m.contains("invalidPath")
        ));
        assert!(matches!(
            removal_outcome(&answer(404, ""), "x"),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn targets_are_validated_before_any_request() {
        assert_eq!(
            target(&subject("u1"), &entitlement("g1", None)).ok(),
            Some(("g1", "u1"))
        );
        for (s, e) in [
            (subject("u1"), entitlement("g1", Some("admin"))),
            (subject(""), entitlement("g1", None)),
            (subject("u1"), entitlement(" ", None)),
            (subject("u\n1"), entitlement("g1", None)),
        ] {
            assert!(matches!(target(&s, &e), Err(Error::InvalidRequest(_))));
        }
        let mut other = entitlement("g1", None);
        other.kind = "repository".into();
        assert!(
            matches!(target(&subject("u1"), &other), Err(Error::InvalidRequest(m)) if m.contains("\"group\""))
        );
    }
}
