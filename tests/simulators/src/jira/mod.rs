//! A stateful simulator of Jira Cloud's REST API v3 for project role membership.
//!
//! Modules: `state` (users, tokens, projects, roles, actors, the rate-limit window; no
//! HTTP) and `routes` (the HTTP face).
//!
//! Faithful: Basic `email:api-token` authentication and the plain-text 401; the paths
//! `GET /rest/api/3/myself`, `GET /rest/api/3/mypermissions?permissions=…`,
//! `GET /rest/api/3/project/search` (`startAt`/`maxResults`, `isLast`, `nextPage`),
//! `GET /rest/api/3/project/{keyOrId}/role` (role name -> URL ending in the role id),
//! `GET|POST|DELETE /rest/api/3/project/{keyOrId}/role/{id}` (`{"user":[accountId]}`,
//! `?user=accountId`); role JSON with `atlassian-user-role-actor` and
//! `atlassian-group-role-actor` actors; errors as `{"errorMessages":[…],"errors":{}}`;
//! adding an existing member is 400 "User '…' is already a member of the project
//! role."; roles are site-wide definitions with per-project actors; project keys match
//! case-insensitively or by numeric id; `X-RateLimit-Limit`/`-Remaining` (and
//! `X-RateLimit-NearLimit`) on every response, and at exhaustion a 429 with
//! `Retry-After` (seconds), `X-RateLimit-Reset` in Atlassian's documented
//! `yyyy-MM-ddTHH:mmZ` (minute precision, truncated) and `RateLimit-Reason`.
//!
//! Simplified: one rate-limit window for the whole site (60 s, [`JiraSimulator::set_rate_limit`]
//! requests) instead of Jira's cost-based and per-endpoint burst limits; permissions are
//! global (an admin account administers every project, others only browse); removing a
//! non-member answers 404 with an `errorMessages` body and an unknown account id on add
//! answers 404 (Atlassian does not document either wording; connectors should read back
//! rather than rely on them); no team-managed projects, default actors, group
//! expansion, or `groupId` writes.

mod routes;
mod state;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::faults::Faults;
use crate::server::{RecordedRequest, Server};
use routes::{JiraFaults, Shared};
pub use state::NextPage;
use state::{Actor, World};

/// The demo's API caller: e-mail and API token, acting as [`JIRA_DEMO_ADMIN`].
pub const JIRA_DEMO_EMAIL: &str = "portcullis-bot@acme.example";
pub const JIRA_DEMO_TOKEN: &str = "ATATT3xFfGF0demo";
/// The account id the demo token acts as (Administer Jira).
pub const JIRA_DEMO_ADMIN: &str = "557058:0d9a1c4e-6e2b-4c1f-9a7e-portcullisbot";
/// The demo's users who can be given roles (account ids).
pub const JIRA_DEMO_USERS: [&str; 3] = [
    "5b10a2844c20165700ede21g",
    "5b10ac8d82e05b22cc7d4ef5",
    "712020:2f7e4d8a-93c1-4b7e-a0f5-3c9d1e8b6a42",
];
/// The demo's projects; each has the roles in [`JIRA_DEMO_ROLES`].
pub const JIRA_DEMO_PROJECTS: [&str; 2] = ["PLAT", "OPS"];
pub const JIRA_DEMO_ROLES: [&str; 3] = ["Administrators", "Developers", "Viewers"];

/// A running Jira simulator. Clones share the server and its state.
#[derive(Clone)]
pub struct JiraSimulator {
    server: Arc<Server>,
    world: Shared,
    faults: Faults,
}

impl fmt::Debug for JiraSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraSimulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// Users [`JIRA_DEMO_USERS`]; projects PLAT and OPS with roles Administrators,
/// Developers and Viewers; [`JIRA_DEMO_EMAIL`] + [`JIRA_DEMO_TOKEN`] acting as
/// [`JIRA_DEMO_ADMIN`] (Administer Jira, and an actor in both projects' Administrators).
pub async fn jira_demo() -> std::io::Result<JiraSimulator> {
    let sim = JiraSimulator::start().await?;
    let names = ["Mia Krystof", "Ravi Menon", "Ada Okafor"];
    for (id, name) in JIRA_DEMO_USERS.iter().zip(names) {
        sim.add_named_user(
            id,
            name,
            &format!("{}@acme.example", name.replace(' ', ".").to_lowercase()),
        );
    }
    sim.add_admin(JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN, JIRA_DEMO_ADMIN);
    for project in JIRA_DEMO_PROJECTS {
        sim.add_project(project);
        for role in JIRA_DEMO_ROLES {
            sim.add_role(project, role);
        }
        sim.set_role_member(project, "Administrators", JIRA_DEMO_ADMIN);
    }
    Ok(sim)
}

impl JiraSimulator {
    /// An empty site on 127.0.0.1 and an ephemeral port. Needs a tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let faults = Faults::new();
        let mut world = World::new("");
        world.faults = faults.clone();
        let world: Shared = Arc::new(Mutex::new(world));
        let served = Arc::clone(&world);
        let responses = JiraFaults(Arc::clone(&world));
        let server = Server::start_with_faults(faults.clone(), responses, move |base_url| {
            served.lock().base_url = base_url.to_owned();
            routes::router(served)
        })
        .await?;
        Ok(Self {
            server: Arc::new(server),
            world,
            faults,
        })
    }

    /// The faults injected into this simulator: rate-limit storms (429 with
    /// `Retry-After` when given, `X-RateLimit-Remaining: 0` and an `X-RateLimit-Reset`
    /// rounded up to the minute), 503s, and dropped or lagged role-actor writes (`POST`
    /// and `DELETE .../role/{id}`).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Adds a user with a generated display name and e-mail.
    pub fn add_user(&self, account_id: &str) {
        self.add_named_user(
            account_id,
            account_id,
            &format!("{account_id}@users.example"),
        );
    }

    pub fn add_named_user(&self, account_id: &str, display_name: &str, email: &str) {
        self.world.lock().add_user(account_id, display_name, email);
    }

    /// An API token for `email`, acting as `account_id` (created if missing) with no
    /// administrative permission: it can read roles but Jira refuses its changes (403).
    pub fn add_token(&self, email: &str, token: &str, account_id: &str) {
        let mut world = self.world.lock();
        if !world.users.contains_key(account_id) {
            world.add_user(account_id, email, email);
        }
        world
            .tokens
            .insert((email.to_owned(), token.to_owned()), account_id.to_owned());
    }

    /// Like [`Self::add_token`], for an account with Administer Jira.
    pub fn add_admin(&self, email: &str, token: &str, account_id: &str) {
        self.add_token(email, token, account_id);
        self.world.lock().admins.insert(account_id.to_owned());
    }

    /// Adds project `key` (named after it); no-op if it exists.
    pub fn add_project(&self, key: &str) {
        self.world
            .lock()
            .add_project(key, &format!("{key} project"));
    }

    /// Makes role `name` available in `project`; returns its id (`None`: no project).
    pub fn add_role(&self, project: &str, name: &str) -> Option<u64> {
        self.world.lock().add_role(project, name)
    }

    pub fn role_id(&self, project: &str, role: &str) -> Option<u64> {
        self.world.lock().role_id(project, role)
    }

    /// Seeds `account_id` as a user actor of `project`'s `role` (creating the user).
    ///
    /// # Panics
    /// On an unknown project or role: a mistake in test setup.
    pub fn set_role_member(&self, project: &str, role: &str, account_id: &str) {
        let mut world = self.world.lock();
        let Some(id) = world.role_id(project, role) else {
            panic!("set_role_member: no role {role:?} in project {project:?}");
        };
        if !world.users.contains_key(account_id) {
            world.add_user(
                account_id,
                account_id,
                &format!("{account_id}@users.example"),
            );
        }
        // Already a member is fine for seeding.
        let _ = world.add_users(project, id, &[account_id.to_owned()]);
    }

    /// Seeds group `name` as an actor of `project`'s `role`.
    pub fn add_group_actor(&self, project: &str, role: &str, name: &str) {
        let mut world = self.world.lock();
        if let Some(id) = world.role_id(project, role) {
            world.add_group(project, id, name);
        }
    }

    /// The account ids of `project`'s `role`'s user actors, in the order added (empty
    /// for an unknown project or role).
    pub fn role_members(&self, project: &str, role: &str) -> Vec<String> {
        let world = self.world.lock();
        world
            .role_id(project, role)
            .and_then(|id| world.actors(project, id))
            .map(|actors| {
                actors
                    .iter()
                    .filter_map(|a| match a {
                        Actor::User { account_id, .. } => Some(account_id.clone()),
                        Actor::Group { .. } => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    pub fn clear_requests(&self) {
        self.server.clear_requests();
    }

    /// Requests allowed per 60-second window (default 1000); the next one is a 429.
    /// Applies at once, to the running window too.
    pub fn set_rate_limit(&self, limit: u32) {
        self.world.lock().rate_limit = limit;
    }

    /// What the `nextPage` link of a `GET /project/search` page that is not the last
    /// points at (default [`NextPage::Faithful`]); the other forms are paging faults: a
    /// link to another origin, or back to the page itself.
    pub fn set_next_page(&self, next: NextPage) {
        self.world.lock().next_page = next;
    }

    /// Whether a 429 carries `Retry-After` (default true). Jira documents that it "may"
    /// be absent; clients must then fall back to the ISO-8601 `X-RateLimit-Reset`.
    pub fn set_retry_after(&self, send: bool) {
        self.world.lock().send_retry_after = send;
    }
}
