//! `list-grants`: group members over Okta's `Link: rel="next"` paging (`after` cursors).
//! With a resource, one page of that group's members per call (cursor `members <url>`);
//! without one, every group in turn (cursor `groups <groups-page> <index>` at the start
//! of a group, `groups <groups-page> <index> <gid> <members-url>` within one). Every group type is listed, app and built-in groups included:
//! discovery must show access even where Portcullis cannot change it.
//!
//! Must never: follow a cursor URL outside the base URL.

use portcullis_sdk::{Entitlement, Error, Grant, GrantPage, GrantQuery, Result, Subject, config};
use serde::Deserialize;

use crate::api::{self, PAGE};
use crate::{KIND, names};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    /// The next page of the queried group's members.
    Members(String),
    /// The `index`-th group of the groups page at `page`, from its first member.
    Group { page: String, index: usize },
    /// Within that group, at the members page `members`.
    InGroup {
        page: String,
        index: usize,
        group: String,
        members: String,
    },
}

impl Cursor {
    fn encode(&self) -> String {
        match self {
            Self::Members(url) => format!("members {url}"),
            Self::Group { page, index } => format!("groups {page} {index}"),
            Self::InGroup {
                page,
                index,
                group,
                members,
            } => format!("groups {page} {index} {group} {members}"),
        }
    }

    fn decode(text: &str, base: &str) -> Result<Self> {
        let bad = || {
            Error::invalid_request(format!(
                "cursor {:?} was not produced by this connector for {base}; restart listing without a cursor",
                text.chars().take(100).collect::<String>()
            ))
        };
        let prefix = format!("{}/", base.trim_end_matches('/'));
        let url = |u: &str| u.starts_with(&prefix).then(|| u.to_owned()).ok_or_else(bad);
        match text.split(' ').collect::<Vec<_>>().as_slice() {
            ["members", u] => Ok(Self::Members(url(u)?)),
            ["groups", page, index] => Ok(Self::Group {
                page: url(page)?,
                index: index.parse().map_err(|_| bad())?,
            }),
            ["groups", page, index, group, members] => Ok(Self::InGroup {
                page: url(page)?,
                index: index.parse().map_err(|_| bad())?,
                group: names::id(group, "group").map_err(|_| bad())?.to_owned(),
                members: url(members)?,
            }),
            _ => Err(bad()),
        }
    }
}

pub fn page(query: GrantQuery) -> Result<GrantPage> {
    let base = config::base_url();
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, &base))
        .transpose()?;
    let wrong = || {
        Error::invalid_request("the cursor belongs to a different query; restart without a cursor")
    };
    if let Some(group) = query.resource.as_deref() {
        let group = names::id(group, "group")?;
        let url = match cursor {
            None => members_url(group),
            // A cursor for another group's members would label them with this group.
            Some(Cursor::Members(url))
                if url.starts_with(&config::url(&format!("/api/v1/groups/{group}/users"))) =>
            {
                url
            }
            Some(_) => return Err(wrong()),
        };
        let (grants, next) = members(group, url)?;
        return Ok(GrantPage {
            grants,
            next_cursor: next.map(|u| Cursor::Members(u).encode()),
        });
    }
    let (page, index, group, url) = match cursor {
        None => match find_group(config::url(&format!("/api/v1/groups?limit={PAGE}")), 0)? {
            Some(found) => found,
            None => return Ok(empty()),
        },
        Some(Cursor::Group { page, index }) => match find_group(page, index)? {
            Some(found) => found,
            None => return Ok(empty()),
        },
        Some(Cursor::InGroup {
            page,
            index,
            group,
            members,
        }) => (page, index, group, members),
        Some(Cursor::Members(_)) => return Err(wrong()),
    };
    let (grants, next) = members(&group, url)?;
    let next_cursor = match next {
        Some(members) => Cursor::InGroup {
            page,
            index,
            group,
            members,
        },
        None => Cursor::Group {
            page,
            index: index + 1,
        },
    };
    Ok(GrantPage {
        grants,
        next_cursor: Some(next_cursor.encode()),
    })
}

fn empty() -> GrantPage {
    GrantPage {
        grants: Vec::new(),
        next_cursor: None,
    }
}

fn members_url(group: &str) -> String {
    config::url(&format!("/api/v1/groups/{group}/users?limit={PAGE}"))
}

/// The `index`-th group from the groups page `page` on (following `next` links):
/// (its page, index, id, first members URL).
fn find_group(page: String, index: usize) -> Result<Option<(String, usize, String, String)>> {
    #[derive(Deserialize)]
    struct Listed {
        id: String,
    }
    let (mut page, mut index) = (page, index);
    loop {
        let (groups, next) = api::page::<Listed>(page.clone())?;
        if let Some(group) = groups.get(index) {
            let group = names::id(&group.id, "group")?.to_owned();
            let members = members_url(&group);
            return Ok(Some((page, index, group, members)));
        }
        match next {
            Some(next) => (page, index) = (next, 0),
            None => return Ok(None),
        }
    }
}

/// One page of `group`'s members at `url`, and the next page's URL.
fn members(group: &str, url: String) -> Result<(Vec<Grant>, Option<String>)> {
    #[derive(Deserialize)]
    struct User {
        id: String,
        #[serde(default)]
        profile: Profile,
    }
    #[derive(Deserialize, Default)]
    struct Profile {
        email: Option<String>,
    }
    let (users, next) = api::page::<User>(url)?;
    let grants = users
        .into_iter()
        .map(|u| Grant {
            subject: Subject {
                id: u.id,
                email: u.profile.email,
            },
            entitlement: Entitlement {
                kind: KIND.into(),
                resource: group.to_owned(),
                level: None,
            },
            pending: false,
            last_used_at: None,
        })
        .collect();
    Ok((grants, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:9";

    #[test]
    fn cursors_round_trip() {
        let cursors = [
            Cursor::Members(format!(
                "{BASE}/api/v1/groups/00g1/users?after=00u9&limit=200"
            )),
            Cursor::Group {
                page: format!("{BASE}/api/v1/groups?limit=200"),
                index: 0,
            },
            Cursor::InGroup {
                page: format!("{BASE}/api/v1/groups?after=00g5&limit=200"),
                index: 3,
                group: "00g1".into(),
                members: format!("{BASE}/api/v1/groups/00g1/users?limit=200"),
            },
        ];
        for c in cursors {
            assert_eq!(Cursor::decode(&c.encode(), BASE).ok(), Some(c));
        }
    }

    #[test]
    fn foreign_or_malformed_cursors_are_refused() {
        for text in [
            "members https://evil.example/x",
            "members http://127.0.0.1:9.evil/x",
            "groups http://127.0.0.1:9/g x 00g1 http://127.0.0.1:9/m",
            "groups http://127.0.0.1:9/g 1 ../x http://127.0.0.1:9/m",
            "",
        ] {
            assert!(
                matches!(Cursor::decode(text, BASE), Err(Error::InvalidRequest(_))),
                "{text}"
            );
        }
    }
}
