//! `list-grants`: the User members of one group (SCIM has no paging of members within a
//! resource, so that is one page), or of every group, paging through `GET /Groups` with
//! SCIM's 1-based `startIndex`/`count`; the cursor is the next `startIndex`.
//!
//! Nested groups (members of `type` `Group`) are not users and are left out.
//! Must never: loop forever on a service that reports more results than it returns.

use portcullis_sdk::http::Method;
use portcullis_sdk::{Entitlement, Error, Grant, GrantPage, GrantQuery, Result, Subject, config};

use crate::{KIND, api};

/// Groups asked for per page when listing every group.
const GROUPS_PER_PAGE: u64 = 50;

pub fn page(query: GrantQuery) -> Result<GrantPage> {
    match (query.resource.as_deref(), query.cursor.as_deref()) {
        (Some(group), None) => Ok(GrantPage {
            grants: grants(&api::group(group)?),
            next_cursor: None,
        }),
        (Some(_), Some(_)) => Err(Error::invalid_request(
            "a single group's members come in one page; restart without a cursor",
        )),
        (None, cursor) => {
            let start = cursor.map_or(Ok(1), decode)?;
            let request = api::request(Method::Get, &config::url("/Groups"))
                .query("startIndex", &start.to_string())
                .query("count", &GROUPS_PER_PAGE.to_string())
                .query("attributes", "members");
            let list: api::ListResponse<api::Group> =
                api::get(request, &format!("listing SCIM groups from index {start}"))?;
            let returned = u64::try_from(list.resources.len()).unwrap_or(u64::MAX);
            Ok(GrantPage {
                grants: list.resources.iter().flat_map(grants).collect(),
                next_cursor: next_start(start, returned, list.total_results).map(|n| n.to_string()),
            })
        }
    }
}

fn grants(group: &api::Group) -> Vec<Grant> {
    group
        .members
        .iter()
        .flatten()
        .filter(|m| m.is_user())
        .map(|m| Grant {
            subject: Subject {
                id: m.value.clone(),
                email: None,
            },
            entitlement: Entitlement {
                kind: KIND.into(),
                resource: group.id.clone(),
                level: None,
            },
            pending: false,
            last_used_at: None,
        })
        .collect()
}

fn decode(cursor: &str) -> Result<u64> {
    cursor
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            Error::invalid_request(format!(
                "cursor {:?} was not produced by this connector; restart listing without a cursor",
                cursor.chars().take(40).collect::<String>()
            ))
        })
}

/// The `startIndex` after a page that began at `start` and held `returned` groups, or
/// `None` when that was the last page (an empty page always is).
fn next_start(start: u64, returned: u64, total: u64) -> Option<u64> {
    let next = start.checked_add(returned)?;
    (returned > 0 && next <= total).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_follows_start_index_and_stops() {
        assert_eq!(next_start(1, 50, 120), Some(51));
        assert_eq!(next_start(51, 50, 120), Some(101));
        assert_eq!(next_start(101, 20, 120), None);
        assert_eq!(
            next_start(1, 0, 120),
            None,
            "an empty page ends the listing"
        );
        assert_eq!(next_start(1, 3, 3), None);
        assert_eq!(next_start(u64::MAX, 1, u64::MAX), None);
    }

    #[test]
    fn cursors_are_start_indexes() {
        assert_eq!(decode("51").ok(), Some(51));
        for bad in ["0", "-1", "x", "", "https://evil.example/"] {
            assert!(
                matches!(decode(bad), Err(Error::InvalidRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn nested_groups_are_not_grants() {
        let group: api::Group = serde_json::from_str(
            r#"{"id":"g1","members":[{"value":"u1","type":"User"},{"value":"g2","type":"Group"},{"value":"u2"}]}"#,
        )
        .expect("group");
        let ids: Vec<String> = grants(&group).into_iter().map(|g| g.subject.id).collect();
        assert_eq!(ids, ["u1", "u2"]);
    }
}
