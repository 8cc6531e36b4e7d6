//! A stateful simulator of Okta's management API (`/api/v1`) for group membership.
//!
//! Modules: `state` (users, groups and their types, memberships, tokens, admin roles,
//! the rate-limit window; no HTTP) and `routes` (the HTTP face).
//!
//! Faithful: `Authorization: SSWS <token>` and 401 E0000011 "Invalid token provided";
//! `GET /api/v1/users/me`, `GET /api/v1/users/{id}/roles`, `GET /api/v1/users/{id}/groups`,
//! `GET /api/v1/groups` and `GET /api/v1/groups/{id}/users` (in id order, `limit` and
//! `after` paging, one `Link` header per relation: `rel="self"` and `rel="next"`),
//! `GET /api/v1/groups/{id}` (`type` OKTA_GROUP | APP_GROUP | BUILT_IN, `profile.name`),
//! `PUT`/`DELETE /api/v1/groups/{g}/users/{u}` answering 204 whether or not anything
//! changed; errors as `{errorCode, errorSummary, errorLink, errorId, errorCauses}` (404
//! E0000007 "Not found: Resource not found: {id} (UserGroup|User)"); `X-Rate-Limit-Limit`,
//! `-Remaining` and `-Reset` (epoch seconds) on every response and 429 E0000047 when the
//! budget is spent.
//!
//! Simplified: one rate-limit bucket for the whole org (60 s window,
//! [`OktaSimulator::set_rate_limit`] requests) where Okta keeps one per endpoint family;
//! writes to APP_GROUP and BUILT_IN groups answer 403 E0000006 (Okta's permission
//! error; the exact code for this case is not documented); every token acts as an admin
//! whose roles are only reported by `/users/{id}/roles`, never enforced; `users/{id}/groups`
//! is not paged; no group rules, no user lifecycle, no `q`/`filter`/`search`.

mod routes;
mod state;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::faults::Faults;
use crate::server::{RecordedRequest, Server};
use routes::{OktaFaults, Shared};
pub use state::GroupType;
use state::World;

/// The demo's API token and the admin it acts as (SUPER_ADMIN).
pub const OKTA_DEMO_TOKEN: &str = "00demoSSWStokenPortcullis";
pub const OKTA_DEMO_ADMIN: &str = "00u0portcullisbot01";
/// The demo's people (user ids).
pub const OKTA_DEMO_USERS: [&str; 3] = [
    "00u1ero7vZFVEIYLWPBN",
    "00u2ravi8mEnOnXYZ123",
    "00u3adaOkAfOr4567890",
];
/// The demo's groups: an Okta group, an AD-imported app group and Everyone.
pub const OKTA_DEMO_ENGINEERING: &str = "00g1engineering00001";
pub const OKTA_DEMO_AD_ADMINS: &str = "00g2adadmins00000002";
pub const OKTA_DEMO_EVERYONE: &str = "00g0everyone00000000";

/// A running Okta simulator. Clones share the server and its state.
#[derive(Clone)]
pub struct OktaSimulator {
    server: Arc<Server>,
    world: Shared,
    faults: Faults,
}

impl fmt::Debug for OktaSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaSimulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// Users [`OKTA_DEMO_USERS`]; groups Engineering (OKTA_GROUP), AD Admins (APP_GROUP)
/// and Everyone (BUILT_IN, holding every demo user); token [`OKTA_DEMO_TOKEN`] acting as
/// [`OKTA_DEMO_ADMIN`] with SUPER_ADMIN.
pub async fn okta_demo() -> std::io::Result<OktaSimulator> {
    let sim = OktaSimulator::start().await?;
    let logins = ["mia.krystof", "ravi.menon", "ada.okafor"];
    sim.add_group(OKTA_DEMO_EVERYONE, "Everyone", GroupType::BuiltIn);
    sim.add_group(OKTA_DEMO_ENGINEERING, "Engineering", GroupType::Okta);
    sim.add_group(OKTA_DEMO_AD_ADMINS, "AD Admins", GroupType::App);
    sim.add_token(OKTA_DEMO_TOKEN, OKTA_DEMO_ADMIN, &["SUPER_ADMIN"]);
    for (id, login) in OKTA_DEMO_USERS.iter().zip(logins) {
        sim.add_user(id, &format!("{login}@acme.example"));
        sim.set_member(OKTA_DEMO_EVERYONE, id);
    }
    Ok(sim)
}

impl OktaSimulator {
    /// An empty org on 127.0.0.1 and an ephemeral port. Needs a tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let faults = Faults::new();
        let mut world = World::new("");
        world.faults = faults.clone();
        let world: Shared = Arc::new(Mutex::new(world));
        let served = Arc::clone(&world);
        let responses = OktaFaults(Arc::clone(&world));
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

    /// The faults injected into this simulator: rate-limit storms (429 E0000047 with
    /// `X-Rate-Limit-Remaining: 0`, an epoch `X-Rate-Limit-Reset`, and `Retry-After`
    /// only when given), 500 E0000009, and dropped or lagged membership writes (`PUT`
    /// and `DELETE /api/v1/groups/{g}/users/{u}`).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Adds an active user `id` with `login` (also the e-mail); no-op if it exists.
    pub fn add_user(&self, id: &str, login: &str) {
        self.world.lock().add_user(id, login);
    }

    /// Records that user `id` last signed in at `at` (RFC 3339), as Okta reports it in
    /// `lastLogin`.
    ///
    /// # Panics
    /// On an unknown user: a mistake in test setup.
    pub fn set_last_login(&self, id: &str, at: &str) {
        let mut world = self.world.lock();
        let user = world
            .users
            .get_mut(id)
            .unwrap_or_else(|| panic!("set_last_login: no user {id:?}"));
        user.last_login = Some(at.to_owned());
    }

    /// Adds a group of `kind`; no-op if `id` exists.
    pub fn add_group(&self, id: &str, name: &str, kind: GroupType) {
        self.world.lock().add_group(id, name, kind);
    }

    /// An API token acting as `admin` (created if missing) holding admin `roles`.
    pub fn add_token(&self, token: &str, admin: &str, roles: &[&str]) {
        let mut world = self.world.lock();
        world.add_user(admin, &format!("{admin}@admins.example"));
        world.tokens.insert(token.to_owned(), admin.to_owned());
        world.roles.insert(
            admin.to_owned(),
            roles.iter().map(|r| (*r).to_owned()).collect(),
        );
    }

    /// Seeds a membership in a group of any type (as an import or Okta itself would).
    ///
    /// # Panics
    /// On an unknown group or user: a mistake in test setup.
    pub fn set_member(&self, group: &str, user: &str) {
        let mut world = self.world.lock();
        assert!(
            world.users.contains_key(user),
            "set_member: no user {user:?}"
        );
        match world.groups.get_mut(group) {
            Some(g) => {
                g.members.insert(user.to_owned());
            }
            None => panic!("set_member: no group {group:?}"),
        }
    }

    /// The member ids of `group`, in id order (empty for an unknown group).
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.world
            .lock()
            .groups
            .get(group)
            .map(|g| g.members.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    pub fn clear_requests(&self) {
        self.server.clear_requests();
    }

    /// Requests allowed per 60-second window (default 600); the next one is a 429
    /// E0000047. Applies at once, to the running window too.
    pub fn set_rate_limit(&self, limit: u32) {
        self.world.lock().rate_limit = limit;
    }
}
