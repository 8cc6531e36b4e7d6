//! `list-grants`: the direct user actors of a project's roles. With a resource
//! (`PLAT` or `PLAT/Developers`) one page holds that project or role. Without one,
//! each page is one project from `GET /project/search`, and the cursor says where we
//! are: `projects <search-page-url> <index>`. A search page's `nextPage` link is checked
//! ([`crate::paging::next`]) whenever the page is read, before any project of it is
//! listed, so a foreign or looping link fails the listing at once.
//!
//! Must never: follow a cursor URL outside the base URL, or put a `nextPage` link into a
//! cursor unchecked.

use portcullis_sdk::http::Method;
use portcullis_sdk::{Entitlement, Error, Grant, GrantPage, GrantQuery, Result, Subject, config};
use serde::Deserialize;

use crate::KIND;
use crate::api;
use crate::names::{self, Target};
use crate::paging;

pub fn page(query: GrantQuery) -> Result<GrantPage> {
    match (query.resource.as_deref(), query.cursor.as_deref()) {
        (Some(resource), None) => Ok(GrantPage {
            grants: project_grants(&Target::parse(resource)?)?,
            next_cursor: None,
        }),
        (None, cursor) => {
            let (url, index) = match cursor {
                Some(c) => decode(c, &config::base_url())?,
                None => (
                    config::url("/rest/api/3/project/search?maxResults=50&orderBy=key"),
                    0,
                ),
            };
            search_page(url, index)
        }
        (Some(_), Some(_)) => Err(Error::invalid_request(
            "listing one project or role is a single page; restart without a cursor",
        )),
    }
}

/// The grants of `target`: every role of the project, or just the one it names.
fn project_grants(target: &Target) -> Result<Vec<Grant>> {
    let mut grants = Vec::new();
    for (name, url) in api::roles(&target.project)? {
        if target
            .role
            .as_ref()
            .is_some_and(|r| !r.eq_ignore_ascii_case(&name))
        {
            continue;
        }
        let Some(id) = names::role_id(&url) else {
            continue;
        };
        let role = api::role(&target.project, id)?;
        let resource = format!("{}/{}", target.project, role.name);
        grants.extend(role.users().map(|account| Grant {
            subject: Subject {
                id: account.to_owned(),
                email: None,
            },
            entitlement: Entitlement {
                kind: KIND.into(),
                resource: resource.clone(),
                level: None,
            },
            pending: false,
            last_used_at: None,
        }));
    }
    Ok(grants)
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    values: Vec<Project>,
    #[serde(rename = "nextPage")]
    next_page: Option<String>,
    #[serde(rename = "isLast", default)]
    is_last: bool,
    #[serde(rename = "startAt")]
    start_at: Option<u64>,
}

#[derive(Deserialize)]
struct Project {
    key: String,
}

/// The grants of the `index`-th project of the search page at `url`.
fn search_page(url: String, index: usize) -> Result<GrantPage> {
    let search: Search = api::send(api::request_at(Method::Get, url.clone()))?.json()?;
    // Every call that reads this page checks its link, whichever project it lists: a bad
    // link fails now, not a page later, when its cursor would come back from the host.
    let next_page = match search.next_page.as_deref().filter(|_| !search.is_last) {
        Some(link) => Some(paging::next(
            link,
            &url,
            search.start_at,
            &config::base_url(),
        )?),
        None => None,
    };
    let Some(project) = search.values.get(index) else {
        return Ok(GrantPage {
            grants: Vec::new(),
            next_cursor: None,
        });
    };
    let grants = project_grants(&Target::parse(&project.key)?)?;
    let next = if index + 1 < search.values.len() {
        Some(encode(&url, index + 1))
    } else {
        next_page.map(|next| encode(&next, 0))
    };
    Ok(GrantPage {
        grants,
        next_cursor: next,
    })
}

fn encode(url: &str, index: usize) -> String {
    format!("projects {url} {index}")
}

/// A cursor we produced, with its URL checked to lie under `base`.
fn decode(cursor: &str, base: &str) -> Result<(String, usize)> {
    let bad = || {
        Error::invalid_request(format!(
            "cursor {:?} was not produced by this connector for {base}; restart listing without a cursor",
            cursor.chars().take(100).collect::<String>()
        ))
    };
    match cursor.split(' ').collect::<Vec<_>>().as_slice() {
        ["projects", url, index] if paging::outside(url, base).is_none() => {
            Ok(((*url).to_owned(), index.parse().map_err(|_| bad())?))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:9";

    #[test]
    fn cursors_round_trip_and_stay_on_the_base_url() {
        let url = format!("{BASE}/rest/api/3/project/search?startAt=50&maxResults=50");
        assert_eq!(decode(&encode(&url, 3), BASE).ok(), Some((url, 3)));
        for bad in [
            "projects https://evil.example/x 0",
            "projects http://127.0.0.1:9.evil/x 0",
            "projects http://127.0.0.1:9/x nope",
            "projects http://127.0.0.1:9/a/../x 0",
            "roles http://127.0.0.1:9/x 0",
            "",
        ] {
            assert!(
                matches!(decode(bad, BASE), Err(Error::InvalidRequest(_))),
                "{bad}"
            );
        }
    }
}
