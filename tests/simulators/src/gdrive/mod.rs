//! A stateful simulator of the Google Drive API v3 (`www.googleapis.com/drive/v3`) for
//! sharing: files and folders with permission lists, `about`, OAuth bearer tokens and
//! Drive's rate-limit answers.
//!
//! Modules: `state` (files, permissions and Drive's rules), `fields` (partial
//! responses), `routes` (the HTTP face).
//!
//! Faithful: paths and methods (`GET|POST /files/{id}/permissions`,
//! `GET|PATCH|DELETE /files/{id}/permissions/{pid}`, `GET /about`), Google's error
//! envelope `{"error":{"code","message","errors":[{"domain","reason","message",
//! "location","locationType"}]}}` with its reasons (`notFound` "File not found: X." also
//! for files the caller cannot see, `insufficientFilePermissions`, `authError` with
//! `WWW-Authenticate`, `invalid`, `required`, `parseError`, `cannotRemoveOwner`),
//! rate limiting as 403 `userRateLimitExceeded`/`rateLimitExceeded` or 429 without
//! `Retry-After`, partial responses (`fields`; `about` refuses to answer without it, and
//! `nextPageToken` disappears unless selected), paging with opaque `pageToken`s and
//! `pageSize` 1-100 (the whole list without it, as for My Drive items), a create for an
//! account that already has a permission replacing its role (even lowering it), one
//! stable permission id per account, `owner` only via `transferOwnership=true`,
//! sharing notification e-mails unless `sendNotificationEmail=false`.
//!
//! Simplified: every file is a My Drive item owned by its creator, with no parents,
//! inheritance, shared drives, domains, `anyone` links or expirations; any address is a
//! Google account; unknown `fields` names select nothing instead of a 400; a budget is a
//! plain request count rather than per-100-seconds quotas.

mod fields;
mod routes;
mod state;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::faults::Faults;
use crate::server::{RecordedRequest, Server};
use routes::{DriveFaults, Shared};
pub use state::Throttle;
use state::{Role, World};

/// The token every [`DriveSimulator`] accepts, acting as [`GDRIVE_ADMIN`].
pub const GDRIVE_DEMO_TOKEN: &str = "ya29.demo-drive-token";
/// The account the demo token acts as; it owns every file added with `add_file`.
pub const GDRIVE_ADMIN: &str = "portcullis@acme.example";
/// The demo's files: (id, name).
pub const GDRIVE_DEMO_FILES: [(&str, &str); 3] = [
    ("1PlatformRoadmapDoc0aBcDeFgHiJkLmN", "Platform roadmap"),
    ("1FinanceFolder00aBcDeFgHiJkLmNoPq", "Finance"),
    ("1OnboardingGuide0aBcDeFgHiJkLmNoP", "Onboarding guide"),
];
/// People in the demo domain.
pub const GDRIVE_DEMO_USERS: [&str; 3] = [
    "ada@acme.example",
    "grace@acme.example",
    "linus@acme.example",
];

/// A running Drive simulator. Clones share the server and its state.
#[derive(Clone)]
pub struct DriveSimulator {
    server: Arc<Server>,
    world: Shared,
    faults: Faults,
}

impl fmt::Debug for DriveSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriveSimulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// The demo files, owned by [`GDRIVE_ADMIN`]; the roadmap is shared with grace as
/// reader.
pub async fn gdrive_demo() -> std::io::Result<DriveSimulator> {
    let sim = DriveSimulator::start().await?;
    for (id, name) in GDRIVE_DEMO_FILES {
        sim.add_file(id, name);
    }
    sim.share(GDRIVE_DEMO_FILES[0].0, GDRIVE_DEMO_USERS[1], "reader");
    Ok(sim)
}

impl DriveSimulator {
    /// A simulator with no files; [`GDRIVE_DEMO_TOKEN`] acts as [`GDRIVE_ADMIN`].
    pub async fn start() -> std::io::Result<Self> {
        let mut world = World::default();
        world.add_account(GDRIVE_ADMIN, "Portcullis Provisioning");
        world
            .tokens
            .insert(GDRIVE_DEMO_TOKEN.into(), GDRIVE_ADMIN.into());
        let faults = Faults::new();
        world.faults = faults.clone();
        let world: Shared = Arc::new(Mutex::new(world));
        let served = Arc::clone(&world);
        let responses = DriveFaults(Arc::clone(&world));
        let server =
            Server::start_with_faults(faults.clone(), responses, move |_| routes::router(served))
                .await?;
        Ok(Self {
            server: Arc::new(server),
            world,
            faults,
        })
    }

    /// The faults injected into this simulator: rate-limit storms (Google's error
    /// envelope in the [`Throttle`] form of [`Self::set_request_budget`], 403
    /// `userRateLimitExceeded` by default; `Retry-After` only when given), 503
    /// `backendError`, and dropped or lagged permission writes (create, update, delete).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The [`Throttle`] form of rate-limit answers (budget and fault storms alike),
    /// without changing the budget.
    pub fn set_throttle(&self, throttle: Throttle) {
        self.world.lock().throttle = throttle;
    }

    /// A paging fault: while `on`, a page asked for with a `pageToken` answers that same
    /// token as its `nextPageToken`, whether or not more permissions follow, so a client
    /// that follows tokens reads that page for ever. The first page (no token) stays
    /// faithful, so the repeat starts with its token.
    pub fn repeat_page_tokens(&self, on: bool) {
        self.world.lock().repeat_page_tokens = on;
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Adds (or replaces) a file or folder owned by [`GDRIVE_ADMIN`].
    pub fn add_file(&self, id: &str, name: &str) {
        self.world.lock().add_file(id, name, GDRIVE_ADMIN);
    }

    /// A token acting as `email` (a Google account named `name`).
    pub fn add_token(&self, token: &str, email: &str, name: &str) {
        let mut world = self.world.lock();
        let email = world.add_account(email, name);
        world.tokens.insert(token.to_owned(), email);
    }

    /// Gives `email` (a user) `role` on `file`, replacing any role it had.
    ///
    /// # Panics
    /// On an unknown file or role: both are mistakes in test setup.
    pub fn share(&self, file: &str, email: &str, role: &str) {
        let Some(role) = Role::from_name(role) else {
            panic!("share: unknown role {role:?}");
        };
        let mut world = self.world.lock();
        let shared = world.create(GDRIVE_ADMIN, file, "user", email, role, role == Role::Owner);
        if let Err(e) = shared {
            panic!("share: {file:?}: {}", e.message);
        }
    }

    /// `file`'s permissions as (e-mail, role), owner first; empty for an unknown file.
    pub fn permissions(&self, file: &str) -> Vec<(String, String)> {
        self.world
            .lock()
            .files
            .get(file)
            .map_or_else(Vec::new, |f| {
                f.permissions
                    .iter()
                    .map(|p| (p.email.clone(), p.role.name().to_owned()))
                    .collect()
            })
    }

    /// The role `email` holds on `file`, if any.
    pub fn role(&self, file: &str, email: &str) -> Option<String> {
        let email = email.to_ascii_lowercase();
        self.permissions(file)
            .into_iter()
            .find(|(e, _)| *e == email)
            .map(|(_, r)| r)
    }

    /// Answers every request after the next `requests` with Drive's rate-limit error in
    /// the `throttle` form; `None` lifts the limit. Counting starts now.
    pub fn set_request_budget(&self, requests: Option<u32>, throttle: Throttle) {
        let mut world = self.world.lock();
        world.budget = requests;
        world.used = 0;
        world.throttle = throttle;
    }

    /// Addresses Drive would have e-mailed a sharing notification to, oldest first.
    pub fn notified(&self) -> Vec<String> {
        self.world.lock().notified.clone()
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
