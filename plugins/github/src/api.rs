//! GitHub REST requests: the headers GitHub requires, paging over `Link: rel="next"`,
//! and the few reads the connector shares between operations.
//!
//! Must never: send a request without a `User-Agent` (GitHub answers 403), or build a
//! URL from an unvalidated name.

use portcullis_sdk::http::{Method, Request, Response};
use portcullis_sdk::{Error, Result, config, link};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::levels;
use crate::names::Repo;

const USER_AGENT: &str = concat!("portcullis-github/", env!("CARGO_PKG_VERSION"));

/// A request with GitHub's headers and the `token` secret as bearer.
pub fn request(method: Method, url: &str) -> Request {
    Request::new(method, url)
        .bearer("token")
        .header("user-agent", USER_AGENT)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
}

/// `GET`s `url`, maps error statuses, returns the response.
pub fn get(url: &str) -> Result<Response> {
    request(Method::Get, url).send()?.error_for_status()
}

/// One page of a list endpoint and the URL of the next page.
pub fn page<T: DeserializeOwned>(url: &str) -> Result<(Vec<T>, Option<String>)> {
    let response = get(url)?;
    Ok((response.json()?, link::next_link(&response)))
}

pub fn repo_url(repo: &Repo, rest: &str) -> String {
    config::url(&format!("/repos/{}/{}{rest}", repo.owner, repo.name))
}

#[derive(Deserialize)]
struct Readback {
    permission: String,
    role_name: Option<String>,
}

/// The effective level `login` holds on `repo` (org base permission and teams
/// included), `None` for no access or an unknown user.
pub fn permission(repo: &Repo, login: &str) -> Result<Option<&'static str>> {
    let url = repo_url(repo, &format!("/collaborators/{login}/permission"));
    let response = request(Method::Get, &url).send()?;
    if response.status() == 404 {
        return Ok(None);
    }
    let r: Readback = response.error_for_status()?.json()?;
    Ok(levels::from_readback(&r.permission, r.role_name.as_deref()))
}

#[derive(Deserialize)]
pub struct Login {
    pub login: String,
}

#[derive(Deserialize)]
pub struct Invitation {
    pub id: u64,
    pub invitee: Option<Login>,
    #[serde(default)]
    pub permissions: String,
    #[serde(default)]
    pub expired: bool,
}

/// Every invitation on `repo`, across all pages.
pub fn invitations(repo: &Repo) -> Result<Vec<Invitation>> {
    let mut all = Vec::new();
    let mut next = Some(repo_url(repo, "/invitations?per_page=100"));
    while let Some(url) = next {
        let (items, after) = page::<Invitation>(&url).map_err(|e| match e {
            Error::NotFound(m) => Error::not_found(format!(
                "GitHub knows no repository {repo} (or the token cannot see it): {m}"
            )),
            other => other,
        })?;
        all.extend(items);
        next = after;
    }
    Ok(all)
}

/// The invitations addressed to `login` (GitHub logins compare case-insensitively).
pub fn invitations_for(repo: &Repo, login: &str) -> Result<Vec<Invitation>> {
    let mut found = invitations(repo)?;
    found.retain(|i| {
        i.invitee
            .as_ref()
            .is_some_and(|u| u.login.eq_ignore_ascii_case(login))
    });
    Ok(found)
}
