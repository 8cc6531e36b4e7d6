//! `usage`: when each member of a group last signed in to Okta (`lastLogin` of the
//! group's users, `GET /api/v1/groups/{id}/users`, paged by `Link: rel="next"`). Okta
//! records activity per user, not per group: a member's last sign-in is the last time
//! anything they reach through Okta groups could have been used, which is what the
//! dormant sweep asks. A user who never signed in has no time (`lastLogin: null`).
//!
//! Must never: follow a cursor outside the group's members listing.

use portcullis_sdk::{
    Entitlement, Error, Result, Subject, UsagePage, UsageQuery, UsageRecord, config,
};
use serde::Deserialize;

use crate::api::{self, PAGE};
use crate::{KIND, names};

pub fn page(query: UsageQuery) -> Result<UsagePage> {
    let Some(group) = query.resource.as_deref() else {
        return Err(Error::invalid_request(
            "Okta reports usage per group: give the group id as the resource",
        ));
    };
    let group = names::id(group, "group")?;
    let members = config::url(&format!("/api/v1/groups/{group}/users"));
    let url = match query.cursor {
        None => format!("{members}?limit={PAGE}"),
        Some(cursor) if cursor.starts_with(&members) => api::under_base(&cursor)?.to_owned(),
        Some(_) => {
            return Err(Error::invalid_request(
                "the cursor belongs to another group's listing; restart without a cursor",
            ));
        }
    };
    #[derive(Deserialize)]
    struct User {
        id: String,
        #[serde(rename = "lastLogin", default)]
        last_login: Option<String>,
    }
    let (users, next) = api::page::<User>(url)?;
    let records = users
        .into_iter()
        .map(|u| UsageRecord {
            subject: Subject {
                id: u.id,
                email: None,
            },
            entitlement: Entitlement {
                kind: KIND.into(),
                resource: group.to_owned(),
                level: None,
            },
            last_active_at: u.last_login.as_deref().and_then(epoch_seconds),
        })
        .collect();
    Ok(UsagePage {
        records,
        next_cursor: next,
    })
}

/// Okta's timestamps (`2026-07-16T09:12:00.000Z`) as seconds since the epoch.
fn epoch_seconds(text: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|at| u64::try_from(at.timestamp()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_timestamps_become_epoch_seconds() {
        assert_eq!(
            epoch_seconds("2026-07-16T09:12:00.000Z"),
            Some(1_784_193_120)
        );
        assert_eq!(epoch_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_seconds("yesterday"), None);
        assert_eq!(epoch_seconds("1969-12-31T23:59:59Z"), None);
    }
}
