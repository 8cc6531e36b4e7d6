//! A stateful SCIM 2.0 service provider (RFC 7643/7644) for Users, Groups and group
//! membership, for the behaviours the real scim2-server peer does not exhibit.
//!
//! Modules: `state` (the world, PatchOp and filter rules), `routes` (the HTTP face).
//!
//! Faithful: the service root under a path (`/scim/v2`), `application/scim+json`,
//! `/ServiceProviderConfig` without authentication, bearer auth with 401 +
//! `WWW-Authenticate`, SCIM error bodies (`status` as a string, `scimType`, `detail`),
//! 404 for unknown resources, 409 `uniqueness` for a taken `userName`, PatchOp `add` /
//! `remove` / `replace` of `members` applied atomically, `members[value eq "id"]` paths,
//! the two answers services give to removing a non-member (400 `noTarget` or 204,
//! [`ScimSimulator::set_non_member_removal`]), PATCH answering 204 or 200 with the
//! resource, `eq`/`and` filters on `userName`, `id`, `displayName`, `members.value`,
//! `attributes=` projection (`schemas` and `id` always kept), 1-based
//! `startIndex`/`count` paging with `totalResults`/`itemsPerPage`, an empty group
//! having no `members` attribute (as scim2-server does), 429 + `Retry-After` once a
//! request budget is spent, 501 when PATCH or filtering is switched off.
//!
//! Simplified: Users have only `userName`, Groups only `displayName` and User members
//! (no nested groups); filters know `eq` and `and` only; adding a member who is not a
//! User is refused with 400 `invalidValue` (scim2-server accepts dangling ids); no
//! PUT, DELETE, Bulk, sorting, `If-Match` or `/Schemas`; ids are UUID-shaped counters.

mod routes;
mod state;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::faults::Faults;
use crate::server::{RecordedRequest, Server};
use routes::{ScimFaults, Shared};
pub use state::NonMemberRemoval;
use state::World;

/// The path of the service root on the simulator's origin.
pub const BASE_PATH: &str = "/scim/v2";
pub(crate) const MEDIA_TYPE: &str = "application/scim+json";
pub(crate) const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// A running SCIM simulator. Clones share the server and its state; the server stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct ScimSimulator {
    server: Arc<Server>,
    world: Shared,
    faults: Faults,
}

impl fmt::Debug for ScimSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimSimulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl ScimSimulator {
    /// An empty service without authentication, on 127.0.0.1 and an ephemeral port.
    /// Needs a tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let faults = Faults::new();
        let mut world = World::new("");
        world.faults = faults.clone();
        let world: Shared = Arc::new(Mutex::new(world));
        let served = Arc::clone(&world);
        let server = Server::start_with_faults(faults.clone(), ScimFaults, move |origin| {
            served.lock().root = format!("{origin}{BASE_PATH}");
            routes::router(served)
        })
        .await?;
        Ok(Self {
            server: Arc::new(server),
            world,
            faults,
        })
    }

    /// The faults injected into this service: rate-limit storms (429 with a SCIM error
    /// body, `Retry-After` only when given), 503, and dropped or lagged `PATCH
    /// /Groups/{id}` writes.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The SCIM service root, `http://127.0.0.1:PORT/scim/v2` (the connector's base URL).
    pub fn base_url(&self) -> String {
        format!("{}{BASE_PATH}", self.server.base_url())
    }

    /// The underlying server (address, request log).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Creates a User and returns its id.
    ///
    /// # Panics
    /// If the `userName` is empty or taken: a mistake in test setup.
    pub fn add_user(&self, user_name: &str) -> String {
        match self.world.lock().add_user(user_name) {
            Ok(id) => id,
            Err(e) => panic!("add_user({user_name:?}): {}", e.detail),
        }
    }

    /// Creates a Group and returns its id.
    ///
    /// # Panics
    /// If the `displayName` is empty.
    pub fn add_group(&self, display_name: &str) -> String {
        match self.world.lock().add_group(display_name) {
            Ok(id) => id,
            Err(e) => panic!("add_group({display_name:?}): {}", e.detail),
        }
    }

    /// Makes User `user` a member of Group `group` without a request. `false` if either
    /// does not exist.
    pub fn add_member(&self, group: &str, user: &str) -> bool {
        let mut world = self.world.lock();
        if !world.users.contains_key(user) {
            return false;
        }
        match world.groups.get_mut(group) {
            Some(g) => {
                if !g.members.iter().any(|m| m == user) {
                    g.members.push(user.to_owned());
                }
                true
            }
            None => false,
        }
    }

    /// The User ids in `group`, in the order they were added (empty for no such group).
    pub fn members(&self, group: &str) -> Vec<String> {
        self.world
            .lock()
            .groups
            .get(group)
            .map(|g| g.members.clone())
            .unwrap_or_default()
    }

    /// Require `Authorization: Bearer <token>` on every resource endpoint (`None`: accept
    /// anyone, the default).
    pub fn set_token(&self, token: Option<&str>) {
        self.world.lock().token = token.map(str::to_owned);
    }

    /// How removing a non-member answers: 400 `noTarget` (default) or 204.
    pub fn set_non_member_removal(&self, behaviour: NonMemberRemoval) {
        self.world.lock().non_member_removal = behaviour;
    }

    /// Whether a successful PATCH answers 200 with the group (else 204, the default).
    pub fn set_patch_returns_resource(&self, on: bool) {
        self.world.lock().patch_returns_resource = on;
    }

    /// Announce and serve PATCH and filtering, or answer 501 (both on by default).
    pub fn set_features(&self, patch: bool, filter: bool) {
        let mut world = self.world.lock();
        world.patch_supported = patch;
        world.filter_supported = filter;
    }

    /// Answer 429 with `Retry-After: retry_after_secs` once `budget` more requests have
    /// been served; `None` lifts the limit.
    pub fn set_request_budget(&self, budget: Option<u32>, retry_after_secs: u64) {
        let mut world = self.world.lock();
        world.budget = budget;
        world.retry_after_secs = retry_after_secs;
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
