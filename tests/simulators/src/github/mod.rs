//! A stateful simulator of the GitHub REST API (api.github.com, `X-GitHub-Api-Version:
//! 2022-11-28`) for repository collaborators: invitations, levels, read-back, paging,
//! rate limits, authentication.
//!
//! Modules: `state` (the world and its rules), `json` (GitHub's body shapes), `paging`
//! (page numbers and the `Link` header), `routes` (the HTTP face: checks, dispatch,
//! headers).
//!
//! Faithful: paths (including the id-based `/repositories/{id}/...` and
//! `/organizations/{id}/...` that `Link` headers point at), status codes, error bodies,
//! the three permission vocabularies (`pull|push` to write, `read|write` in read-back and
//! invitations, `role_name` for triage/maintain), the invitation flow (201 + invitation
//! for a new collaborator, 204 for a level change, pending invitations grant nothing),
//! the `Link` format, the rate-limit headers and the 403 at exhaustion, the
//! User-Agent requirement, `x-oauth-scopes` only for classic tokens, case-insensitive
//! logins and repository names, private repositories answering 404 to whoever cannot
//! see them.
//!
//! Simplified: every repository is private and organization-owned unless its owner was
//! added as a user; organizations have no members or teams, so every collaborator is a
//! direct outside collaborator; invitations never expire; there is no 50-invitations-a-day
//! cap and no secondary rate limit; the rate-limit budget is per user (as on GitHub)
//! with one window for all unauthenticated callers (60 requests).
//! `DELETE .../collaborators/{u}` does not cancel invitations unless
//! [`GithubSimulator::set_remove_cancels_invitations`] says so (see `routes.rs`).
//!
//! Faults ([`GithubSimulator::faults`]): rate-limit answers are the secondary limit (429,
//! `retry-after` in seconds) when a wait is given, else the primary limit's 403 with
//! `x-ratelimit-remaining: 0` and `x-ratelimit-reset` one second ahead (its message names
//! no real user id); 5xx alternate 502 and 503 with a JSON `message`. Every write
//! (`PUT`/`PATCH`/`DELETE`) that would succeed can be dropped or lagged.

mod json;
mod paging;
mod routes;
mod state;

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::faults::Faults;
use crate::server::{RecordedRequest, Server};
use routes::{GithubFaults, Shared};
use state::{Role, World};

/// The token [`github_demo`] creates, acting as [`GITHUB_DEMO_BOT`].
pub const GITHUB_DEMO_TOKEN: &str = "ghp_demo";
/// The account the demo token acts as: admin on every demo repository.
pub const GITHUB_DEMO_BOT: &str = "portcullis-bot";
/// The demo's repositories (organization `acme`).
pub const GITHUB_DEMO_REPOS: [&str; 3] = [
    "acme/platform-api",
    "acme/platform-infra",
    "acme/platform-docs",
];
/// The demo's users who can be invited.
pub const GITHUB_DEMO_USERS: [&str; 3] = ["octocat", "hubot", "monalisa"];

/// A running GitHub simulator. Clones share the server and its state; the server stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct GithubSimulator {
    server: Arc<Server>,
    world: Shared,
    faults: Faults,
}

impl fmt::Debug for GithubSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubSimulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// Users octocat, hubot and monalisa; private repositories acme/platform-api,
/// acme/platform-infra and acme/platform-docs; token [`GITHUB_DEMO_TOKEN`] acting as
/// [`GITHUB_DEMO_BOT`] (admin on the three repositories) with classic scopes
/// `repo, read:org`.
pub async fn github_demo() -> std::io::Result<GithubSimulator> {
    let sim = GithubSimulator::start().await?;
    for user in GITHUB_DEMO_USERS {
        sim.add_user(user);
    }
    sim.add_token(GITHUB_DEMO_TOKEN, GITHUB_DEMO_BOT, &["repo", "read:org"]);
    for repo in GITHUB_DEMO_REPOS {
        sim.add_repo(repo);
        sim.set_collaborator(repo, GITHUB_DEMO_BOT, "admin");
    }
    Ok(sim)
}

impl GithubSimulator {
    /// An empty simulator on 127.0.0.1 and an ephemeral port. Needs a tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let world: Shared = Arc::new(Mutex::new(World::new("")));
        let faults = Faults::new();
        let served = Arc::clone(&world);
        let served_faults = faults.clone();
        let responses = GithubFaults::new(Arc::clone(&world));
        let server = Server::start_with_faults(faults.clone(), responses, move |base_url| {
            served.lock().base_url = base_url.to_owned();
            routes::router(served, served_faults)
        })
        .await?;
        Ok(Self {
            server: Arc::new(server),
            world,
            faults,
        })
    }

    /// The faults this simulator injects (none until a test turns some on).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The underlying server (address, request log).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Adds a GitHub user account that can be invited (no-op if it exists).
    pub fn add_user(&self, login: &str) {
        self.world.lock().add_user(login);
    }

    /// Adds a private repository `owner/repo`; the owner organization is created if it
    /// does not exist. Ignored unless `full_name` is `owner/repo`.
    pub fn add_repo(&self, full_name: &str) {
        self.world.lock().add_repo(full_name);
    }

    /// A token acting as `login` (created if missing) with classic `scopes`; no scopes
    /// means a fine-grained token (no `x-oauth-scopes` header, access decided by the
    /// user's roles alone).
    pub fn add_token(&self, token: &str, login: &str, scopes: &[&str]) {
        self.world.lock().add_token(token, login, scopes);
    }

    /// The invitee accepts their pending invitation to `repo`, as they would on
    /// github.com. `false` if there was none.
    pub fn accept_invitation(&self, repo: &str, login: &str) -> bool {
        let mut world = self.world.lock();
        let invitation = world
            .repo_id(repo)
            .and_then(|id| world.invitation_for(id, &login.to_ascii_lowercase()))
            .map(|i| i.id);
        invitation.is_some_and(|id| world.accept(id))
    }

    /// The invitee declines their pending invitation to `repo`. `false` if there was none.
    pub fn decline_invitation(&self, repo: &str, login: &str) -> bool {
        let mut world = self.world.lock();
        let invitation = world
            .repo_id(repo)
            .and_then(|id| world.invitation_for(id, &login.to_ascii_lowercase()))
            .map(|i| i.id);
        invitation.is_some_and(|id| world.invitations.remove(&id).is_some())
    }

    /// Seeds `login` as a collaborator on `repo` at `role` (read|triage|write|maintain|admin,
    /// or pull|push), with no invitation. Creates the user and repository if missing.
    ///
    /// # Panics
    /// On a role outside both vocabularies or a repository name that is not
    /// `owner/repo`: both are mistakes in test setup.
    pub fn set_collaborator(&self, repo: &str, login: &str, role: &str) {
        let Some(role) = Role::from_name(role).or_else(|| Role::from_put(role)) else {
            panic!("set_collaborator: unknown role {role:?}; use read|triage|write|maintain|admin");
        };
        let mut world = self.world.lock();
        let login = world.add_user(login);
        let Some(id) = world.add_repo(repo) else {
            panic!("set_collaborator: repository {repo:?} is not owner/repo");
        };
        if let Some(repo) = world.repos.get_mut(&id) {
            repo.collaborators.insert(login, role);
        }
    }

    /// `login`'s role on `repo` (read|triage|write|maintain|admin), `None` if they are not
    /// a collaborator (a pending invitation is not a role).
    pub fn collaborator_role(&self, repo: &str, login: &str) -> Option<String> {
        let world = self.world.lock();
        let repo = world.repos.get(&world.repo_id(repo)?)?;
        world
            .role(repo, &login.to_ascii_lowercase())
            .map(|r| r.name().to_owned())
    }

    /// The role of `login`'s pending invitation to `repo` (read|triage|write|maintain|admin).
    pub fn pending_invitation(&self, repo: &str, login: &str) -> Option<String> {
        let world = self.world.lock();
        world
            .invitation_for(world.repo_id(repo)?, &login.to_ascii_lowercase())
            .map(|i| i.role.name().to_owned())
    }

    /// The id of `login`'s pending invitation to `repo`.
    pub fn invitation_id(&self, repo: &str, login: &str) -> Option<u64> {
        let world = self.world.lock();
        world
            .invitation_for(world.repo_id(repo)?, &login.to_ascii_lowercase())
            .map(|i| i.id)
    }

    /// The numeric id of `repo` (the `{id}` of `/repositories/{id}/...`).
    pub fn repo_id(&self, repo: &str) -> Option<u64> {
        self.world.lock().repo_id(repo)
    }

    /// The numeric id of a user or organization.
    pub fn account_id(&self, login: &str) -> Option<u64> {
        self.world
            .lock()
            .accounts
            .get(&login.to_ascii_lowercase())
            .map(|a| a.id)
    }

    /// Every request so far, oldest first: method, path and query, status, whether an
    /// `Authorization` header was present (never its value), user agent.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.server.clear_requests();
    }

    /// Each user's core budget per one-hour window (default 5000). Applies at once,
    /// to windows already running too.
    pub fn set_rate_limit(&self, limit: u32) {
        self.world.lock().rate_limit = limit;
    }

    /// Whether `DELETE /repos/{o}/{r}/collaborators/{u}` also cancels `u`'s pending
    /// invitations, as GitHub documents. Off by default, so connectors are tested to
    /// cancel invitations themselves (which is right against github.com either way).
    pub fn set_remove_cancels_invitations(&self, cancel: bool) {
        self.world.lock().remove_cancels_invitations = cancel;
    }
}
