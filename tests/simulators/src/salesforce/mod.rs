//! A stateful simulator of the Salesforce REST API for permission set assignments:
//! SOQL queries with query-locator paging, `PermissionSetAssignment` create and delete,
//! limits, userinfo, sessions and the org's daily API budget.
//!
//! Modules: `state` (records, ids and Salesforce's rules), `soql` (the query subset),
//! `routes` (the HTTP face).
//!
//! Faithful: versioned paths `/services/data/vXX.X/...` (unknown versions 404), error
//! bodies as arrays `[{"message","errorCode","fields"}]`, 401 `INVALID_SESSION_ID`,
//! `REQUEST_LIMIT_EXCEEDED` ("TotalRequests Limit exceeded.", 403 by default, other
//! statuses configurable) once the daily budget is spent, `Sforce-Limit-Info:
//! api-usage=N/M` on every data API answer, 201 `{"id","success","errors"}` on create,
//! 400 `DUPLICATE_VALUE` for an existing assignment, `REQUIRED_FIELD_MISSING`,
//! `MALFORMED_ID`, `INVALID_CROSS_REFERENCE_KEY`, `INVALID_FIELD`, `JSON_PARSER_ERROR`,
//! 204 on delete and 404 `NOT_FOUND` for an unknown record, SOQL answers
//! `{"totalSize","done","nextRecordsUrl","records":[{"attributes":{..},..}]}` with
//! relative `nextRecordsUrl`s, `Sforce-Query-Options: batchSize` (200-2000),
//! `MALFORMED_QUERY`/`INVALID_TYPE`/`INVALID_QUERY_FILTER_OPERATOR` for queries, 18-character
//! ids with the case checksum that 15-character ids also find, case-insensitive string
//! comparison in SOQL, plain-text `Bad_OAuth_Token` from userinfo (which does not count
//! against the budget).
//!
//! Simplified: SOQL is only `SELECT f, .. FROM User|PermissionSet|PermissionSetAssignment
//! WHERE a = 'x' [AND b = 'y' ..]`; every session belongs to an administrator; users
//! are all active; there are no profiles, permission set groups, licences or managed
//! packages; query cursors never expire; the budget is a count with no 24-hour window.

mod routes;
mod soql;
mod state;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::faults::Faults;
use crate::server::{RecordedRequest, Server};
use routes::{SalesforceFaults, Shared};
use state::{PermissionSet, User, World, id18, same_id};

/// The session [`salesforce_demo`] creates, acting as [`SALESFORCE_DEMO_ADMIN`].
pub const SALESFORCE_DEMO_TOKEN: &str = "00D5e000000AcMe!AQ4AQDemoSessionForPortcullis";
/// The demo's administrator (the integration user).
pub const SALESFORCE_DEMO_ADMIN: &str = "0055e000000AdMnAAK";
/// Demo users who can be assigned permission sets.
pub const SALESFORCE_DEMO_USERS: [&str; 3] = [
    "0055e000001AdAxAAK",
    "0055e000001GrAcAAK",
    "0055e000001LiNuAAK",
];
/// Demo permission sets: (Id, API name).
pub const SALESFORCE_DEMO_SETS: [(&str, &str); 3] = [
    ("0PS5e000000SaLsGAK", "Sales_Ops"),
    ("0PS5e000000MkTgGAK", "Marketing_User"),
    ("0PS5e000000SuPtGAK", "Support_Agent"),
];

/// A running Salesforce simulator. Clones share the server and its state.
#[derive(Clone)]
pub struct SalesforceSimulator {
    server: Arc<Server>,
    world: Shared,
    faults: Faults,
}

impl fmt::Debug for SalesforceSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceSimulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// The demo org: the admin with [`SALESFORCE_DEMO_TOKEN`], three users, three
/// permission sets; the second user already holds Support_Agent.
pub async fn salesforce_demo() -> std::io::Result<SalesforceSimulator> {
    let sim = SalesforceSimulator::start().await?;
    sim.add_token(SALESFORCE_DEMO_TOKEN, SALESFORCE_DEMO_ADMIN);
    for user in SALESFORCE_DEMO_USERS {
        sim.add_user(user);
    }
    for (id, name) in SALESFORCE_DEMO_SETS {
        sim.add_permission_set(id, name);
    }
    sim.assign(SALESFORCE_DEMO_SETS[2].1, SALESFORCE_DEMO_USERS[1]);
    Ok(sim)
}

impl SalesforceSimulator {
    /// An empty org on 127.0.0.1 and an ephemeral port. Needs a tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let faults = Faults::new();
        let mut world = World::default();
        world.faults = faults.clone();
        let world: Shared = Arc::new(Mutex::new(world));
        let served = Arc::clone(&world);
        let responses = SalesforceFaults(Arc::clone(&world));
        let server =
            Server::start_with_faults(faults.clone(), responses, move |_| routes::router(served))
                .await?;
        Ok(Self {
            server: Arc::new(server),
            world,
            faults,
        })
    }

    /// The faults injected into this org: rate-limit storms (`REQUEST_LIMIT_EXCEEDED`
    /// with the limit status, 403 by default; `Retry-After` only when given), 503
    /// `SERVER_UNAVAILABLE`, and dropped or lagged `PermissionSetAssignment` creates and
    /// deletes.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// `http://127.0.0.1:PORT`, no trailing slash (an org's My Domain URL).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Adds a user by Id (`005...`, 15 or 18 characters).
    ///
    /// # Panics
    /// If `id` is not a record id: a mistake in test setup.
    pub fn add_user(&self, id: &str) {
        let Some(id) = id18(id) else {
            panic!("add_user: {id:?} is not a Salesforce id");
        };
        let username = format!("user.{}@acme.example", id.to_ascii_lowercase());
        let user = User {
            name: format!("User {id}"),
            id: id.clone(),
            username,
        };
        self.world.lock().users.insert(id, user);
    }

    /// A session token acting as the user `id` (added if missing).
    pub fn add_token(&self, token: &str, id: &str) {
        self.add_user(id);
        let id = id18(id).unwrap_or_default();
        self.world.lock().tokens.insert(token.to_owned(), id);
    }

    /// Adds a permission set with its Id (`0PS...`) and API name.
    ///
    /// # Panics
    /// If `id` is not a record id: a mistake in test setup.
    pub fn add_permission_set(&self, id: &str, name: &str) {
        let Some(id) = id18(id) else {
            panic!("add_permission_set: {id:?} is not a Salesforce id");
        };
        let set = PermissionSet {
            id: id.clone(),
            name: name.to_owned(),
        };
        self.world.lock().sets.insert(id, set);
    }

    fn set_id(world: &World, set: &str) -> Option<String> {
        world
            .sets
            .values()
            .find(|s| same_id(&s.id, set) || s.name.eq_ignore_ascii_case(set))
            .map(|s| s.id.clone())
    }

    /// Assigns the set (Id or API name) to the user, as an admin would in Setup.
    ///
    /// # Panics
    /// On an unknown set or user: mistakes in test setup.
    pub fn assign(&self, set: &str, user: &str) {
        let mut world = self.world.lock();
        let Some(set_id) = Self::set_id(&world, set) else {
            panic!("assign: no permission set {set:?}");
        };
        let fields = serde_json::json!({ "AssigneeId": user, "PermissionSetId": set_id });
        if let Some(fields) = fields.as_object()
            && let Err(e) = world.assign(fields)
            && e.code != "DUPLICATE_VALUE"
        {
            panic!("assign: {}", e.message);
        }
    }

    /// The User Ids assigned the set (Id or API name), in assignment-id order.
    pub fn assignments(&self, set: &str) -> Vec<String> {
        let world = self.world.lock();
        let Some(set_id) = Self::set_id(&world, set) else {
            return Vec::new();
        };
        world
            .assignments
            .values()
            .filter(|a| a.set == set_id)
            .map(|a| a.assignee.clone())
            .collect()
    }

    /// Allows `requests` more data API calls before `REQUEST_LIMIT_EXCEEDED` with HTTP
    /// `status` (Salesforce uses 403); the org's daily maximum becomes used + requests.
    pub fn set_request_budget(&self, requests: u64, status: u16) {
        let mut world = self.world.lock();
        world.api_max = world.api_used + requests;
        world.limit_status = status;
    }

    /// Records per query page (Salesforce's default and maximum is 2000).
    pub fn set_query_batch_size(&self, size: usize) {
        self.world.lock().batch_size = size.max(1);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.server.clear_requests();
    }
}
