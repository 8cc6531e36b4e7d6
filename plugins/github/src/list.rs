//! `list-grants`: one page of the grants that exist, for one repository (direct
//! collaborators, then pending invitations) or for every repository of the `org`
//! setting. Where to go next lives in the [`Cursor`].
//!
//! Must never: follow a cursor URL outside the base URL (checked by [`Cursor::decode`]).

use portcullis_sdk::{Entitlement, Error, Grant, GrantPage, GrantQuery, Result, Subject, config};
use serde::Deserialize;

use crate::cursor::{Cursor, Phase};
use crate::levels::{self, Flags};
use crate::names::{self, Repo};
use crate::{KIND, api};

/// The page `query` asks for.
pub fn page(query: GrantQuery) -> Result<GrantPage> {
    let base = config::base_url();
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, &base))
        .transpose()?;
    match (query.resource.as_deref(), cursor) {
        (Some(resource), cursor @ (None | Some(Cursor::Repo(_)))) => {
            let repo = Repo::parse(resource)?;
            let phase = match cursor {
                Some(Cursor::Repo(phase)) => phase,
                _ => first_phase(&repo),
            };
            let (grants, next) = repo_page(&repo, phase)?;
            Ok(GrantPage {
                grants,
                next_cursor: next.map(|p| Cursor::Repo(p).encode()),
            })
        }
        (None, cursor @ (None | Some(Cursor::Org { .. }))) => org_page(cursor),
        _ => Err(Error::invalid_request(
            "the cursor belongs to a different query; restart without a cursor",
        )),
    }
}

fn first_phase(repo: &Repo) -> Phase {
    Phase::Collaborators(api::repo_url(
        repo,
        "/collaborators?affiliation=direct&per_page=100",
    ))
}

fn grant(repo: &Repo, login: &str, level: &str, pending: bool) -> Grant {
    Grant {
        subject: Subject {
            id: login.to_owned(),
            email: None,
        },
        entitlement: Entitlement {
            kind: KIND.into(),
            resource: repo.to_string(),
            level: Some(level.into()),
        },
        pending,
        last_used_at: None,
    }
}

/// One page of `repo`'s grants: direct collaborators, then pending invitations.
fn repo_page(repo: &Repo, phase: Phase) -> Result<(Vec<Grant>, Option<Phase>)> {
    #[derive(Deserialize)]
    struct Collaborator {
        login: String,
        role_name: Option<String>,
        #[serde(default)]
        permissions: Flags,
    }
    match phase {
        Phase::Collaborators(url) => {
            let (items, next) = api::page::<Collaborator>(&url)?;
            let grants = items
                .iter()
                .filter_map(|c| {
                    levels::from_collaborator(c.role_name.as_deref(), &c.permissions)
                        .map(|l| grant(repo, &c.login, l, false))
                })
                .collect();
            let next = next.map_or_else(
                || Phase::Invitations(api::repo_url(repo, "/invitations?per_page=100")),
                Phase::Collaborators,
            );
            Ok((grants, Some(next)))
        }
        Phase::Invitations(url) => {
            let (items, next) = api::page::<api::Invitation>(&url)?;
            let grants = items
                .iter()
                .filter(|i| !i.expired)
                .filter_map(|i| {
                    Some(grant(
                        repo,
                        &i.invitee.as_ref()?.login,
                        levels::from_invitation(&i.permissions)?,
                        true,
                    ))
                })
                .collect();
            Ok((grants, next.map(Phase::Invitations)))
        }
    }
}

/// One page of grants across the `org` setting's repositories.
fn org_page(cursor: Option<Cursor>) -> Result<GrantPage> {
    let position = match cursor {
        Some(position) => Some(position),
        None => {
            let org = config::setting("org").ok_or_else(|| {
                Error::invalid_request("listing without a resource needs the `org` setting; set it, or pass a resource `owner/repo`")
            })?;
            next_repo(
                config::url(&format!("/orgs/{}/repos?per_page=100", names::login(&org)?)),
                None,
            )?
        }
    };
    let Some(Cursor::Org {
        repos,
        index,
        repo,
        phase,
    }) = position
    else {
        return Ok(GrantPage {
            grants: Vec::new(),
            next_cursor: None,
        });
    };
    let (grants, next_phase) = repo_page(&repo, phase)?;
    let next = match next_phase {
        Some(phase) => Some(Cursor::Org {
            repos,
            index,
            repo,
            phase,
        }),
        None => next_repo(repos, Some(index))?,
    };
    Ok(GrantPage {
        grants,
        next_cursor: next.map(|c| c.encode()),
    })
}

/// The position of the repository after `after` (or the first) in the organisation's
/// repository listing that starts at page `url`.
fn next_repo(mut url: String, after: Option<usize>) -> Result<Option<Cursor>> {
    #[derive(Deserialize)]
    struct RepoItem {
        full_name: String,
    }
    let mut index = after.map_or(0, |i| i + 1);
    loop {
        let (items, next) = api::page::<RepoItem>(&url)?;
        if let Some(item) = items.get(index) {
            let repo = Repo::parse(&item.full_name)?;
            return Ok(Some(Cursor::Org {
                repos: url,
                index,
                phase: first_phase(&repo),
                repo,
            }));
        }
        match next {
            Some(next) => (url, index) = (next, 0),
            None => return Ok(None),
        }
    }
}
