//! A stateful simulator of the Slack Web API (`https://slack.com/api/<method>`) for
//! channel membership and user groups, as a bot token (`xoxb-…`) sees them.
//!
//! Modules: `state` (the workspace and its rules), `routes` (the HTTP face: arguments,
//! token, rate limit, scopes, Slack's `ok` envelope and headers).
//!
//! Faithful: method paths under `/api/`; arguments from the query string, a
//! `application/x-www-form-urlencoded` body or a JSON body (JSON without `charset`
//! answers with Slack's `missing_charset` warning); every answer is HTTP 200 with
//! `"ok": true|false` and an `error` code, except rate limiting (HTTP 429, `Retry-After`
//! in seconds, `{"ok":false,"error":"ratelimited"}`) and unknown methods (404
//! `unknown_method`); `not_authed` without a token, `invalid_auth` for an unknown one;
//! `missing_scope` with `needed`/`provided`; `x-oauth-scopes` (comma list, no spaces)
//! and `x-accepted-oauth-scopes` headers; private channels invisible to a bot that is
//! not a member (`channel_not_found`); inviting needs the bot in the channel
//! (`not_in_channel`); `already_in_channel` with the per-user `errors` array;
//! `cant_invite_self`, `cant_kick_self`, `cant_kick_from_general`, `is_archived`,
//! `user_not_found`; `conversations.kick` answering `not_in_channel` whether the user
//! or the bot is the non-member; base64 `next_cursor`s (`user:<id>` / `team:<id>`),
//! `""` on the last page, `limit` defaulting to 100 and capped at 1000;
//! `usergroups.users.update` replacing the whole list, refusing an empty list
//! (`no_users_provided`: Slack says to use `usergroups.disable`) and bots or unknown
//! users (`invalid_users`); `no_such_subteam` for an unknown group.
//!
//! Simplified: one workspace, no Enterprise Grid; no DMs or group DMs; no guests,
//! restricted users or workspace permission settings (`restricted_action`,
//! `permission_denied` never happen); disabled user groups do not exist; rate limits
//! exist only for methods given a budget with [`SlackSimulator::set_rate_limit`]
//! (Slack's tiers are per method, per workspace, per app: here per method), and the
//! window starts at the budget's first call; the bot's kick from an archived channel
//! answers `is_archived` (Slack's documents do not say).
//!
//! Faults ([`SlackSimulator::faults`]): rate-limit answers are HTTP 429 with
//! `{"ok":false,"error":"ratelimited"}` and `Retry-After` (whole seconds, rounded up) when a
//! wait is given; 5xx is a plain-text 503. The writes `conversations.invite`,
//! `conversations.kick` and `usergroups.users.update` can be dropped or lagged when they
//! would answer `ok: true`.

mod routes;
mod state;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::faults::Faults;
use crate::server::{RecordedRequest, Server};
use routes::{Shared, SlackFaults};
use state::{Budget, Token, Workspace};

/// The bot token [`slack_demo`] creates.
pub const SLACK_DEMO_TOKEN: &str = "xoxb-demo-0000000000-portcullis";
/// The demo bot's user id.
pub const SLACK_DEMO_BOT: &str = "U0100PBOT1";
/// The demo's people: (user id, name); their e-mail is `<name>@acme.example`.
pub const SLACK_DEMO_USERS: [(&str, &str); 3] = [
    ("U0100ALICE", "alice"),
    ("U0100BOBBY", "bob"),
    ("U0100CAROL", "carol"),
];
/// Public `#platform-team`, the bot a member.
pub const SLACK_DEMO_CHANNEL: &str = "C0100PLATF";
/// Private `#incident-response`, the bot a member.
pub const SLACK_DEMO_PRIVATE_CHANNEL: &str = "C0100INCDT";
/// User group `@platform-oncall`, alice its only member.
pub const SLACK_DEMO_USERGROUP: &str = "S0100ONCAL";
/// Every scope the connector can use.
pub const SLACK_DEMO_SCOPES: [&str; 8] = [
    "channels:read",
    "channels:manage",
    "groups:read",
    "groups:write",
    "usergroups:read",
    "usergroups:write",
    "users:read",
    "users:read.email",
];

/// A running Slack simulator. Clones share the server and its state; the server stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct SlackSimulator {
    server: Arc<Server>,
    workspace: Shared,
    faults: Faults,
}

impl fmt::Debug for SlackSimulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSimulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

/// Workspace "Acme": alice, bob, carol; bot [`SLACK_DEMO_BOT`] with token
/// [`SLACK_DEMO_TOKEN`] and [`SLACK_DEMO_SCOPES`]; `#general` (everyone),
/// `#platform-team` ([`SLACK_DEMO_CHANNEL`], bot only), private `#incident-response`
/// ([`SLACK_DEMO_PRIVATE_CHANNEL`], bot only), archived `#old-project` (bot only);
/// user group `@platform-oncall` ([`SLACK_DEMO_USERGROUP`], alice).
pub async fn slack_demo() -> std::io::Result<SlackSimulator> {
    let sim = SlackSimulator::start().await?;
    sim.add_bot(
        SLACK_DEMO_TOKEN,
        SLACK_DEMO_BOT,
        "portcullis",
        &SLACK_DEMO_SCOPES,
    );
    for (id, name) in SLACK_DEMO_USERS {
        sim.add_user(id, name);
    }
    sim.add_channel("C0100GENRL", "general", false);
    for (id, _) in SLACK_DEMO_USERS {
        sim.add_member("C0100GENRL", id);
    }
    sim.add_channel(SLACK_DEMO_CHANNEL, "platform-team", false);
    sim.add_channel(SLACK_DEMO_PRIVATE_CHANNEL, "incident-response", true);
    sim.add_channel("C0100OLDPR", "old-project", false);
    for channel in [
        "C0100GENRL",
        SLACK_DEMO_CHANNEL,
        SLACK_DEMO_PRIVATE_CHANNEL,
        "C0100OLDPR",
    ] {
        sim.add_bot_to_channel(channel);
    }
    sim.archive_channel("C0100OLDPR");
    sim.add_usergroup(SLACK_DEMO_USERGROUP, "platform-oncall", &["U0100ALICE"]);
    Ok(sim)
}

impl SlackSimulator {
    /// An empty workspace on 127.0.0.1 and an ephemeral port. Needs a tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let workspace: Shared = Arc::new(Mutex::new(Workspace::new()));
        let faults = Faults::new();
        let served = Arc::clone(&workspace);
        let served_faults = faults.clone();
        let responses = SlackFaults::new(Arc::clone(&workspace));
        let server = Server::start_with_faults(faults.clone(), responses, move |_| {
            routes::router(served, served_faults)
        })
        .await?;
        Ok(Self {
            server: Arc::new(server),
            workspace,
            faults,
        })
    }

    /// The faults this simulator injects (none until a test turns some on).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The Web API base to configure, like `https://slack.com/api`:
    /// `http://127.0.0.1:PORT/api`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("{}/api", self.server.base_url())
    }

    /// The underlying server (address, request log).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Adds a person (no-op if the id exists); their e-mail is `<name>@acme.example`.
    pub fn add_user(&self, id: &str, name: &str) {
        self.workspace.lock().add_user(id, name, false);
    }

    /// Deactivates a user: they can no longer be invited or put in a user group.
    pub fn deactivate_user(&self, id: &str) {
        if let Some(user) = self.workspace.lock().users.get_mut(id) {
            user.deleted = true;
        }
    }

    /// A bot user `user_id` (created if missing) and its token with `scopes`. The bot is
    /// not in any channel until [`Self::add_bot_to_channel`].
    pub fn add_bot(&self, token: &str, user_id: &str, name: &str, scopes: &[&str]) {
        let mut ws = self.workspace.lock();
        ws.add_user(user_id, name, true);
        let bot_id = format!("B{}", user_id.trim_start_matches('U'));
        ws.tokens.insert(
            token.to_owned(),
            Token {
                user_id: user_id.to_owned(),
                bot_id,
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
        );
    }

    /// Adds a channel (no-op if the id exists).
    pub fn add_channel(&self, id: &str, name: &str, private: bool) {
        self.workspace.lock().add_channel(id, name, private);
    }

    pub fn archive_channel(&self, id: &str) {
        if let Some(channel) = self.workspace.lock().channels.get_mut(id) {
            channel.archived = true;
        }
    }

    /// Puts `user` in `channel` directly (as if they had joined).
    pub fn add_member(&self, channel: &str, user: &str) {
        if let Some(c) = self.workspace.lock().channels.get_mut(channel) {
            c.members.insert(user.to_owned());
        }
    }

    /// Puts every bot user of the workspace in `channel` (as `/invite @bot` does).
    pub fn add_bot_to_channel(&self, channel: &str) {
        let mut ws = self.workspace.lock();
        let bots: Vec<String> = ws.tokens.values().map(|t| t.user_id.clone()).collect();
        if let Some(c) = ws.channels.get_mut(channel) {
            c.members.extend(bots);
        }
    }

    /// Removes every bot user from `channel`.
    pub fn remove_bot_from_channel(&self, channel: &str) {
        let mut ws = self.workspace.lock();
        let bots: Vec<String> = ws.tokens.values().map(|t| t.user_id.clone()).collect();
        if let Some(c) = ws.channels.get_mut(channel) {
            c.members.retain(|m| !bots.contains(m));
        }
    }

    /// Creates (or replaces) user group `id` with handle `@handle` and `users`.
    pub fn add_usergroup(&self, id: &str, handle: &str, users: &[&str]) {
        self.workspace.lock().add_usergroup(id, handle, users);
    }

    /// `channel`'s members in id order (bots included); empty for an unknown channel.
    pub fn channel_members(&self, channel: &str) -> Vec<String> {
        self.workspace
            .lock()
            .channels
            .get(channel)
            .map(|c| c.members.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// User group `id`'s members in stored order; empty for an unknown group.
    pub fn usergroup_members(&self, id: &str) -> Vec<String> {
        self.workspace
            .lock()
            .usergroups
            .get(id)
            .map(|g| g.users.clone())
            .unwrap_or_default()
    }

    /// Every request so far, oldest first: HTTP method, path and query (arguments in a
    /// POST body are not shown), status, whether an `Authorization` header was present.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.server.clear_requests();
    }

    /// Allows `limit` calls of `method` (e.g. `conversations.invite`) per `window`; the
    /// next one gets HTTP 429 with `Retry-After` = whole seconds left in the window.
    pub fn set_rate_limit(&self, method: &str, limit: u32, window: Duration) {
        self.workspace.lock().budgets.insert(
            method.to_owned(),
            Budget {
                limit,
                window,
                used: 0,
                started: None,
            },
        );
    }

    /// Removes every rate-limit budget: all methods unlimited again.
    pub fn clear_rate_limits(&self) {
        self.workspace.lock().budgets.clear();
    }

    /// The `Retry-After` (seconds) of the last 429 `method` answered.
    pub fn last_retry_after(&self, method: &str) -> Option<u64> {
        self.workspace.lock().last_retry_after.get(method).copied()
    }
}
