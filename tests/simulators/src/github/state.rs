//! The simulated world: accounts, repositories, collaborators, invitations, tokens and
//! rate-limit budgets. Plain data and the rules GitHub applies to it; no HTTP here.
//!
//! Logins and repository names compare case-insensitively, as on GitHub: maps are keyed
//! by the lower-cased name and keep the spelling given at creation for display.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

/// A collaborator's role on a repository, lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Role {
    /// The `permission` vocabulary of `PUT .../collaborators/{u}`.
    pub fn from_put(s: &str) -> Option<Self> {
        match s {
            "pull" => Some(Self::Read),
            "triage" => Some(Self::Triage),
            "push" => Some(Self::Write),
            "maintain" => Some(Self::Maintain),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Role names (`role_name`, invitation `permissions`): read|triage|write|maintain|admin.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "triage" => Some(Self::Triage),
            "write" => Some(Self::Write),
            "maintain" => Some(Self::Maintain),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The role name, also the invitation vocabulary.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Triage => "triage",
            Self::Write => "write",
            Self::Maintain => "maintain",
            Self::Admin => "admin",
        }
    }

    /// The coarse `permission` of the read-back endpoint: admin|write|read.
    pub fn permission(self) -> &'static str {
        match self {
            Self::Read | Self::Triage => "read",
            Self::Write | Self::Maintain => "write",
            Self::Admin => "admin",
        }
    }

    /// `permissions` flags in GitHub's order: admin, maintain, push, triage, pull.
    pub fn flags(role: Option<Self>) -> [(&'static str, bool); 5] {
        let at_least = |r: Self| role.is_some_and(|held| held >= r);
        [
            ("admin", at_least(Self::Admin)),
            ("maintain", at_least(Self::Maintain)),
            ("push", at_least(Self::Write)),
            ("triage", at_least(Self::Triage)),
            ("pull", at_least(Self::Read)),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    User,
    Organization,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: u64,
    pub login: String,
    pub kind: AccountKind,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct Repo {
    pub id: u64,
    /// Lower-cased owner login (a key of `accounts`).
    pub owner: String,
    pub name: String,
    pub created_at: String,
    /// Lower-cased login -> role.
    pub collaborators: BTreeMap<String, Role>,
}

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: u64,
    pub repo_id: u64,
    /// Lower-cased logins.
    pub invitee: String,
    pub inviter: String,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct Token {
    /// Lower-cased login the token acts as.
    pub login: String,
    /// Classic scopes; `None` for a fine-grained token (no `x-oauth-scopes` header).
    pub scopes: Option<Vec<String>>,
}

/// A rate-limit window: GitHub starts it at the first counted request and resets it an
/// hour later.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub used: u32,
    pub reset: u64,
}

pub const WINDOW_SECS: u64 = 3600;
pub const DEFAULT_RATE_LIMIT: u32 = 5000;
/// GitHub's budget for unauthenticated requests (per IP; here: all of them).
pub const ANONYMOUS_RATE_LIMIT: u32 = 60;

#[derive(Debug, Clone)]
pub struct World {
    pub base_url: String,
    next_account_id: u64,
    next_repo_id: u64,
    next_invitation_id: u64,
    next_request: u64,
    pub accounts: BTreeMap<String, Account>,
    pub repos: BTreeMap<u64, Repo>,
    /// Lower-cased `owner/name` -> repository id.
    pub repo_names: BTreeMap<String, u64>,
    pub invitations: BTreeMap<u64, Invitation>,
    pub tokens: HashMap<String, Token>,
    /// Keyed by lower-cased login, or "" for unauthenticated requests.
    pub budgets: HashMap<String, Budget>,
    pub rate_limit: u32,
    pub remove_cancels_invitations: bool,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl World {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            // Realistic-looking ids, distinct per kind so a mix-up shows in tests.
            next_account_id: 583_231,
            next_repo_id: 1_296_269,
            next_invitation_id: 4_200_001,
            next_request: 1,
            accounts: BTreeMap::new(),
            repos: BTreeMap::new(),
            repo_names: BTreeMap::new(),
            invitations: BTreeMap::new(),
            tokens: HashMap::new(),
            budgets: HashMap::new(),
            rate_limit: DEFAULT_RATE_LIMIT,
            remove_cancels_invitations: false,
        }
    }

    /// A fresh `x-github-request-id` in GitHub's shape (`XXXX:XXXX:XXXXXX:XXXXXX:XXXXXXXX`).
    pub fn request_id(&mut self) -> String {
        let n = self.next_request;
        self.next_request += 1;
        let t = now_secs();
        format!(
            "{:04X}:{:04X}:{:06X}:{:06X}:{:08X}",
            (n * 7919) & 0xFFFF,
            (n * 104_729) & 0xFFFF,
            n & 0xFF_FFFF,
            (n * 31) & 0xFF_FFFF,
            t & 0xFFFF_FFFF
        )
    }

    fn ensure_account(&mut self, login: &str, kind: AccountKind) -> String {
        let key = login.to_ascii_lowercase();
        if !self.accounts.contains_key(&key) {
            let id = self.next_account_id;
            self.next_account_id += 1;
            self.accounts.insert(
                key.clone(),
                Account {
                    id,
                    login: login.to_owned(),
                    kind,
                    created_at: now_rfc3339(),
                },
            );
        }
        key
    }

    pub fn add_user(&mut self, login: &str) -> String {
        self.ensure_account(login, AccountKind::User)
    }

    /// Creates `owner/name` (and the owner as an organization if it does not exist);
    /// `None` if `full_name` is not `owner/name`.
    pub fn add_repo(&mut self, full_name: &str) -> Option<u64> {
        let (owner, name) = full_name.split_once('/')?;
        if owner.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        if let Some(id) = self.repo_names.get(&full_name.to_ascii_lowercase()) {
            return Some(*id);
        }
        let owner = self.ensure_account(owner, AccountKind::Organization);
        let id = self.next_repo_id;
        self.next_repo_id += 1;
        self.repos.insert(
            id,
            Repo {
                id,
                owner,
                name: name.to_owned(),
                created_at: now_rfc3339(),
                collaborators: BTreeMap::new(),
            },
        );
        self.repo_names.insert(full_name.to_ascii_lowercase(), id);
        Some(id)
    }

    pub fn repo_id(&self, full_name: &str) -> Option<u64> {
        self.repo_names
            .get(&full_name.to_ascii_lowercase())
            .copied()
    }

    /// A user account (not an organization) by login, any case.
    pub fn user(&self, login: &str) -> Option<&Account> {
        self.accounts
            .get(&login.to_ascii_lowercase())
            .filter(|a| a.kind == AccountKind::User)
    }

    pub fn account(&self, key: &str) -> Option<&Account> {
        self.accounts.get(key)
    }

    /// The display `owner/name`.
    pub fn full_name(&self, repo: &Repo) -> String {
        let owner = self
            .accounts
            .get(&repo.owner)
            .map_or(repo.owner.as_str(), |a| a.login.as_str());
        format!("{owner}/{}", repo.name)
    }

    /// The role `login_key` holds on `repo`: a direct collaborator's role, or admin for
    /// the owner of a user-owned repository.
    pub fn role(&self, repo: &Repo, login_key: &str) -> Option<Role> {
        if repo.owner == login_key
            && self
                .accounts
                .get(login_key)
                .is_some_and(|a| a.kind == AccountKind::User)
        {
            return Some(Role::Admin);
        }
        repo.collaborators.get(login_key).copied()
    }

    /// Creates or updates `login_key`'s invitation to `repo_id`; returns its id.
    pub fn invite(&mut self, repo_id: u64, invitee: &str, inviter: &str, role: Role) -> u64 {
        if let Some(existing) = self
            .invitations
            .values_mut()
            .find(|i| i.repo_id == repo_id && i.invitee == invitee)
        {
            existing.role = role;
            existing.inviter = inviter.to_owned();
            return existing.id;
        }
        let id = self.next_invitation_id;
        self.next_invitation_id += 1;
        self.invitations.insert(
            id,
            Invitation {
                id,
                repo_id,
                invitee: invitee.to_owned(),
                inviter: inviter.to_owned(),
                role,
                created_at: now_rfc3339(),
            },
        );
        id
    }

    pub fn invitation_for(&self, repo_id: u64, invitee: &str) -> Option<&Invitation> {
        self.invitations
            .values()
            .find(|i| i.repo_id == repo_id && i.invitee == invitee)
    }

    /// The invitee accepts: they become a collaborator at the invitation's role.
    pub fn accept(&mut self, invitation_id: u64) -> bool {
        let Some(invitation) = self.invitations.remove(&invitation_id) else {
            return false;
        };
        if let Some(repo) = self.repos.get_mut(&invitation.repo_id) {
            repo.collaborators
                .insert(invitation.invitee, invitation.role);
        }
        true
    }

    pub fn add_token(&mut self, token: &str, login: &str, scopes: &[&str]) {
        let login = self.add_user(login);
        let scopes = (!scopes.is_empty()).then(|| scopes.iter().map(|s| (*s).to_owned()).collect());
        self.tokens
            .insert(token.to_owned(), Token { login, scopes });
    }

    /// The budget of `bucket` now, starting a new window if the last one ended.
    pub fn budget(&mut self, bucket: &str) -> Budget {
        let now = now_secs();
        let budget = self.budgets.entry(bucket.to_owned()).or_insert(Budget {
            used: 0,
            reset: now + WINDOW_SECS,
        });
        if now >= budget.reset {
            *budget = Budget {
                used: 0,
                reset: now + WINDOW_SECS,
            };
        }
        *budget
    }

    pub fn spend(&mut self, bucket: &str) {
        if let Some(budget) = self.budgets.get_mut(bucket) {
            budget.used += 1;
        }
    }

    pub fn limit_for(&self, bucket: &str) -> u32 {
        if bucket.is_empty() {
            ANONYMOUS_RATE_LIMIT
        } else {
            self.rate_limit
        }
    }
}
