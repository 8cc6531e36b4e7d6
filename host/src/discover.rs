//! Discovery: what the apps actually hold, read through each connector's `list-grants`
//! (every page, each in a fresh sandbox) and stored as observed state.
//!
//! Some connectors cannot list a whole kind without a resource (Drive files, Salesforce
//! permission sets, Slack channels: the APIs have no "everything" listing). For those,
//! discovery lists each resource the policy or the managed grants mention, which is
//! exactly the scope Portcullis manages.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use futures_util::future::join_all;

use crate::host::Host;
use crate::model::{ConnectorError, GrantQuery, Target};
use crate::policy::Policy;
use crate::sandbox::CallError;
use crate::state::{ManagedGrant, ObservedGrant, StateError, StateStore};

/// One (app, kind) listing.
#[derive(Debug, Clone)]
pub struct Listing {
    pub app: String,
    pub kind: String,
    /// Whole kind (`None`) or these resources, one listing each.
    pub resources: Option<Vec<String>>,
    pub grants: Vec<ObservedGrant>,
    /// Why some or all of it could not be listed. Such a listing is partial: its grants
    /// are shown and merged into observed state, but it never proves a grant absent.
    pub errors: Vec<String>,
    /// Resources in scope that the app does not know: nothing can be held on them, so
    /// the listing is still complete, but the policy or state names something missing.
    pub warnings: Vec<String>,
    pub http_calls: usize,
}

/// What one discovery saw.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub at: DateTime<Utc>,
    pub listings: Vec<Listing>,
}

impl Discovery {
    /// The (app, kind) pairs listed completely: only these can prove a grant missing.
    pub fn complete(&self) -> BTreeSet<(String, String)> {
        self.listings
            .iter()
            .filter(|l| l.errors.is_empty())
            .map(|l| (l.app.clone(), l.kind.clone()))
            .collect()
    }

    pub fn grants(&self) -> impl Iterator<Item = &ObservedGrant> {
        self.listings.iter().flat_map(|l| &l.grants)
    }
}

/// Lists every kind of every app in `apps` and stores each listing: a complete one
/// replaces the app+kind's observed grants; one the host stopped part-way (a failed page,
/// a repeated cursor, the page cap or the deadline) is merged in without removing anything
/// and recorded as partial (a half listing would otherwise look like revoked access).
pub async fn discover(
    host: &Host,
    store: &dyn StateStore,
    apps: &[String],
    policy: Option<&Policy>,
    managed: &[ManagedGrant],
    at: DateTime<Utc>,
) -> Result<Discovery, StateError> {
    // Resources in scope per (app, kind), for connectors that need one.
    let mut scoped: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let granted = policy
        .into_iter()
        .flat_map(|p| p.rules())
        .flat_map(|r| &r.grants)
        .map(|g| &g.target);
    for target in granted.chain(managed.iter().map(|m| &m.target)) {
        scoped
            .entry((target.app.clone(), target.kind.clone()))
            .or_default()
            .insert(target.resource.clone());
    }

    // Apps are listed at the same time: each has its own rate limit and concurrency, so
    // discovery takes as long as the slowest app, not the sum. Results keep `apps` order.
    let per_app = join_all(apps.iter().map(|app| list_app(host, app, &scoped, at))).await;
    let mut discovery = Discovery {
        at,
        listings: Vec::new(),
    };
    for listing in per_app.into_iter().flatten() {
        if listing.kind.is_empty() {
            // `describe` failed: nothing was listed.
        } else if listing.errors.is_empty() {
            store.replace_observed(&listing.app, &listing.kind, at, &listing.grants)?;
        } else {
            // Stopped part-way: what was read is kept, nothing is removed, and the listing
            // is recorded as partial so no decision rests on a grant's absence from it.
            store.merge_partial_observed(
                &listing.app,
                &listing.kind,
                at,
                &listing.grants,
                &listing.errors.join("; "),
            )?;
        }
        discovery.listings.push(listing);
    }
    Ok(discovery)
}

/// Every kind of one app, one after the other.
async fn list_app(
    host: &Host,
    app: &str,
    scoped: &BTreeMap<(String, String), BTreeSet<String>>,
    at: DateTime<Utc>,
) -> Vec<Listing> {
    let info = match host.connector_info(app).await {
        Ok(info) => info,
        Err(e) => {
            return vec![Listing {
                app: app.to_owned(),
                kind: String::new(),
                resources: None,
                grants: Vec::new(),
                errors: vec![format!("describe failed: {e}")],
                warnings: Vec::new(),
                http_calls: 0,
            }];
        }
    };
    let mut listings = Vec::new();
    for kind in &info.kinds {
        let scope = scoped.get(&(app.to_owned(), kind.name.clone()));
        listings.push(list_kind(host, app, &kind.name, scope, at).await);
    }
    listings
}

async fn list_kind(
    host: &Host,
    app: &str,
    kind: &str,
    scoped: Option<&BTreeSet<String>>,
    at: DateTime<Utc>,
) -> Listing {
    let mut listing = Listing {
        app: app.to_owned(),
        kind: kind.to_owned(),
        resources: None,
        grants: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        http_calls: 0,
    };
    let whole = GrantQuery {
        kind: kind.to_owned(),
        resource: None,
        cursor: None,
    };
    let whole_listing = host.list_all_grants(app, &whole).await;
    listing.http_calls += whole_listing.report.http.len();
    match (&whole_listing.stopped, whole_listing.first_page_error()) {
        (None, _) => {
            listing.grants = observed(app, kind, whole_listing.grants, at);
            return listing;
        }
        // The connector needs a resource: list those in scope, one by one.
        (
            _,
            Some(CallError::Connector(
                ConnectorError::InvalidRequest(_) | ConnectorError::Unsupported(_),
            )),
        ) => {}
        // Stopped part-way: keep what was read, marked partial by the error.
        (Some(stop), _) => {
            listing.errors.push(format!("{app} {kind}: {stop}"));
            listing.grants = observed(app, kind, whole_listing.grants, at);
            return listing;
        }
    }
    let resources: Vec<String> = scoped
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    for resource in &resources {
        let query = GrantQuery {
            kind: kind.to_owned(),
            resource: Some(resource.clone()),
            cursor: None,
        };
        let one = host.list_all_grants(app, &query).await;
        listing.http_calls += one.report.http.len();
        match (&one.stopped, one.first_page_error()) {
            (None, _) => {}
            (_, Some(CallError::Connector(ConnectorError::NotFound(why)))) => listing
                .warnings
                .push(format!("{app} {kind} {resource} does not exist: {why}")),
            (Some(stop), _) => listing
                .errors
                .push(format!("{app} {kind} {resource}: {stop}")),
        }
        listing.grants.extend(observed(app, kind, one.grants, at));
    }
    listing.resources = Some(resources);
    listing
}

fn observed(
    app: &str,
    kind: &str,
    grants: Vec<crate::model::Grant>,
    at: DateTime<Utc>,
) -> Vec<ObservedGrant> {
    grants
        .into_iter()
        .filter(|g| g.entitlement.kind == kind)
        .map(|g| ObservedGrant {
            target: Target {
                app: app.to_owned(),
                kind: kind.to_owned(),
                resource: g.entitlement.resource,
            },
            subject: g.subject.id,
            level: g.entitlement.level,
            pending: g.pending,
            last_used_at: g
                .last_used_at
                .and_then(|s| i64::try_from(s).ok())
                .and_then(|s| Utc.timestamp_opt(s, 0).single()),
            observed_at: at,
        })
        .collect()
}
