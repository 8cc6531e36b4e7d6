//! GitHub connector: repository collaborator levels over GitHub's REST API
//! (`api.github.com` or GitHub Enterprise Server's `/api/v3`).
//!
//! Kind `repository`, resource `owner/repo`, subject id = login, levels
//! read < triage < write < maintain < admin. Adding an outside collaborator creates an
//! invitation the user must accept, so a grant can be `pending`.
//! Must never: write when a read shows the subject already holds the level (GitHub's PUT
//! can silently *lower* a level and re-sends invitations).

mod api;
mod cursor;
mod levels;
mod list;
mod names;

use portcullis_sdk::http::Method;
use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    SetLevelOutcome, Subject, config,
};
use serde::Deserialize;

use crate::levels::LEVELS;
use crate::names::Repo;

pub(crate) const KIND: &str = "repository";

struct GitHub;

portcullis_sdk::export_connector!(GitHub);

impl Connector for GitHub {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "github".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "GitHub repository collaborators and their permission levels.".into(),
            kinds: vec![EntitlementKind {
                name: KIND.into(),
                description: "Collaborator on a repository; resource `owner/repo`, subject id the GitHub login.".into(),
                levels: LEVELS.iter().map(|l| (*l).to_owned()).collect(),
                read_modify_write: false,
            }],
            capabilities: vec![KindCapabilities::of(KIND).list_grants().set_level()],
        }
    }

    fn check() -> Result<CheckReport> {
        #[derive(Deserialize)]
        struct User {
            login: String,
            id: u64,
        }
        let response = api::get(&config::url("/user")).map_err(|e| match e {
            Error::Unauthorized(m) => {
                Error::unauthorized(format!("GitHub rejected the token: {m}"))
            }
            other => other,
        })?;
        let user: User = response.json()?;
        let mut warnings = Vec::new();
        // Classic tokens list their scopes; fine-grained tokens and apps send no header.
        let scopes: Vec<String> = match response.header("x-oauth-scopes") {
            Some(header) => {
                let scopes: Vec<String> = header
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if !scopes.iter().any(|s| s == "repo") {
                    warnings.push(format!(
                        "the token lacks the `repo` scope (it has: {header:?}); GitHub will refuse collaborator changes on private repositories; regenerate it with `repo`"
                    ));
                }
                scopes
            }
            None => {
                warnings.push("GitHub reports no scopes for this token (fine-grained token or app); make sure it has the repository permission Administration: read and write".into());
                Vec::new()
            }
        };
        Ok(CheckReport {
            principal: format!("{} (user {})", user.login, user.id),
            scopes,
            warnings,
        })
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        let (repo, login) = target(&action.subject, &action.entitlement)?;
        let level = levels::requested(action.entitlement.level.as_deref())?;
        if holds(api::permission(&repo, login)?, level) {
            return Ok(GrantOutcome::AlreadyPresent);
        }
        // A retry while the invitation is open must not write again: GitHub would
        // re-send it to the user.
        if let Some(invitation) = live_invitation(&repo, login)?
            .filter(|i| holds(levels::from_invitation(&i.permissions), level))
        {
            return Ok(awaiting(&invitation, login));
        }
        let url = api::repo_url(&repo, &format!("/collaborators/{login}"));
        let response = api::request(Method::Put, &url)
            .json(&serde_json::json!({ "permission": levels::to_write_api(level) }))
            .send()?
            .error_for_status()
            .map_err(|e| match e {
                Error::NotFound(m) => Error::not_found(format!("GitHub knows no repository {repo} or no user {login} (or the token cannot see them): {m}")),
                Error::InvalidRequest(m) => Error::invalid_request(format!("GitHub refused to add {login} to {repo} at {level}: {m}")),
                other => other,
            })?;
        if response.status() == 201 {
            #[derive(Deserialize)]
            struct Created {
                id: u64,
            }
            // The invitation id is for the operator's benefit; a body we cannot read does
            // not undo the invitation GitHub created.
            let id = response
                .json::<Created>()
                .map(|c| format!(" {}", c.id))
                .unwrap_or_default();
            return Ok(GrantOutcome::Pending(format!(
                "invitation{id} sent to {login} at level {level}; it must be accepted on GitHub"
            )));
        }
        // 204: already a collaborator, and GitHub changed the level without saying so.
        let now = api::permission(&repo, login)?;
        if holds(now, level) {
            return Ok(GrantOutcome::Granted);
        }
        if let Some(invitation) = live_invitation(&repo, login)? {
            return Ok(awaiting(&invitation, login));
        }
        Err(Error::transient(format!(
            "GitHub answered 204 to setting {login} to {level} on {repo}, but reading back shows {}; retrying",
            now.unwrap_or("no access")
        )))
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        let (repo, login) = target(&action.subject, &action.entitlement)?;
        let held = api::permission(&repo, login)?;
        let invitations = api::invitations_for(&repo, login)?;
        if held.is_none() && invitations.is_empty() {
            return Ok(RevokeOutcome::AlreadyAbsent);
        }
        if held.is_some() {
            let url = api::repo_url(&repo, &format!("/collaborators/{login}"));
            api::request(Method::Delete, &url)
                .send()?
                .error_for_status()?;
        }
        for invitation in invitations {
            let url = api::repo_url(&repo, &format!("/invitations/{}", invitation.id));
            let response = api::request(Method::Delete, &url).send()?;
            // 404: accepted or cancelled since we listed it, which is no longer our concern.
            if response.status() != 404 {
                response.error_for_status()?;
            }
        }
        Ok(RevokeOutcome::Revoked)
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let (repo, login) = target(&subject, &entitlement)?;
        if let Some(level) = api::permission(&repo, login)? {
            return Ok(Observed::Present(Some(level.into())));
        }
        Ok(match live_invitation(&repo, login)? {
            Some(i) => Observed::Pending(levels::from_invitation(&i.permissions).map(Into::into)),
            None => Observed::Absent,
        })
    }

    fn list_grants(query: GrantQuery) -> Result<GrantPage> {
        check_kind(&query.kind)?;
        list::page(query)
    }

    /// Raises or lowers a held permission in place: `PUT .../collaborators/{login}` for a
    /// collaborator (GitHub answers 204 and changes the level), `PATCH
    /// .../invitations/{id}` for an open invitation. Never removes and re-invites.
    fn set_level(action: Action) -> Result<SetLevelOutcome> {
        let (repo, login) = target(&action.subject, &action.entitlement)?;
        let level = levels::requested(action.entitlement.level.as_deref())?;
        let held = api::permission(&repo, login)?;
        if held == Some(level) {
            return Ok(SetLevelOutcome::AlreadyAtLevel);
        }
        if held.is_some() {
            let url = api::repo_url(&repo, &format!("/collaborators/{login}"));
            api::request(Method::Put, &url)
                .json(&serde_json::json!({ "permission": levels::to_write_api(level) }))
                .send()?
                .error_for_status()?;
            let now = api::permission(&repo, login)?;
            return if now == Some(level) {
                Ok(SetLevelOutcome::Changed)
            } else {
                Err(Error::transient(format!(
                    "GitHub accepted setting {login} to {level} on {repo}, but reading back shows {}; retrying",
                    now.unwrap_or("no access")
                )))
            };
        }
        let Some(invitation) = live_invitation(&repo, login)? else {
            return Err(Error::not_found(format!(
                "{login} holds no access to {repo} and has no open invitation; set-level changes a held level, grant it instead"
            )));
        };
        if levels::from_invitation(&invitation.permissions) == Some(level) {
            return Ok(awaiting_level(&invitation, login));
        }
        let url = api::repo_url(&repo, &format!("/invitations/{}", invitation.id));
        api::request(Method::Patch, &url)
            .json(&serde_json::json!({ "permissions": level }))
            .send()?
            .error_for_status()?;
        Ok(SetLevelOutcome::Pending(format!(
            "invitation {} to {login} now offers level {level}; it must be accepted on GitHub",
            invitation.id
        )))
    }
}

fn awaiting_level(invitation: &api::Invitation, login: &str) -> SetLevelOutcome {
    SetLevelOutcome::Pending(format!(
        "invitation {} to {login} at level {} is still awaiting acceptance on GitHub",
        invitation.id, invitation.permissions
    ))
}

fn check_kind(kind: &str) -> Result<()> {
    if kind == KIND {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "the GitHub connector manages kind {KIND:?}, not {kind:?}"
        )))
    }
}

/// The validated repository and login an action is about.
fn target<'a>(subject: &'a Subject, entitlement: &Entitlement) -> Result<(Repo, &'a str)> {
    check_kind(&entitlement.kind)?;
    Ok((
        Repo::parse(&entitlement.resource)?,
        names::login(&subject.id)?,
    ))
}

fn holds(held: Option<&str>, wanted: &str) -> bool {
    held.and_then(levels::rank) >= levels::rank(wanted)
}

/// The highest unexpired invitation for `login` (an expired one can never be accepted).
fn live_invitation(repo: &Repo, login: &str) -> Result<Option<api::Invitation>> {
    let invitations = api::invitations_for(repo, login)?;
    Ok(invitations
        .into_iter()
        .filter(|i| !i.expired)
        .max_by_key(|i| levels::from_invitation(&i.permissions).and_then(levels::rank)))
}

fn awaiting(invitation: &api::Invitation, login: &str) -> GrantOutcome {
    GrantOutcome::Pending(format!(
        "invitation {} to {login} at level {} is still awaiting acceptance on GitHub",
        invitation.id, invitation.permissions
    ))
}
