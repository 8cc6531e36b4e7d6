//! The simulated Okta org: users, groups (with their type), memberships, API tokens,
//! admin roles and the rate-limit window. Plain data and Okta's rules; no HTTP here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::faults::Faults;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    /// Managed in Okta: the only type whose members the API may change.
    Okta,
    /// Imported from an application (AD, LDAP, Workday): read-only in Okta.
    App,
    /// Okta's own groups (Everyone).
    BuiltIn,
}

impl GroupType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Okta => "OKTA_GROUP",
            Self::App => "APP_GROUP",
            Self::BuiltIn => "BUILT_IN",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OKTA_GROUP" => Some(Self::Okta),
            "APP_GROUP" => Some(Self::App),
            "BUILT_IN" => Some(Self::BuiltIn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    pub created: String,
    /// When the user last signed in (`lastLogin`, ISO 8601 with milliseconds); none if
    /// never.
    pub last_login: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub kind: GroupType,
    pub created: String,
    pub last_membership_updated: String,
    /// Member user ids, kept sorted (Okta pages members in id order with `after`).
    pub members: BTreeSet<String>,
}

/// Why a membership write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    NoGroup,
    NoUser,
    /// The group is not an `OKTA_GROUP`.
    ReadOnly(GroupType),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub start: u64,
    pub used: u32,
}

pub const WINDOW_SECS: u64 = 60;
pub const DEFAULT_RATE_LIMIT: u32 = 600;

#[derive(Debug)]
pub struct World {
    pub base_url: String,
    next_error: u64,
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    /// API token -> the admin user it acts as.
    pub tokens: HashMap<String, String>,
    /// User id -> admin role types (SUPER_ADMIN, GROUP_MEMBERSHIP_ADMIN, ...).
    pub roles: HashMap<String, Vec<String>>,
    pub rate_limit: u32,
    pub window: Option<Window>,
    /// The simulator's injected faults; writes consult the write faults.
    pub faults: Faults,
    /// Lagged writes the HTTP layer schedules once it lets go of the lock.
    pub later: Vec<Later>,
}

/// A write answered now that applies after its lag (a lagged-write fault).
pub type Later = crate::faults::Later<World>;

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl World {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            next_error: 1,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            tokens: HashMap::new(),
            roles: HashMap::new(),
            rate_limit: DEFAULT_RATE_LIMIT,
            window: None,
            faults: Faults::default(),
            later: Vec::new(),
        }
    }

    /// A fresh `errorId` in Okta's shape (`oae` + 22 characters).
    pub fn error_id(&mut self) -> String {
        let n = self.next_error;
        self.next_error += 1;
        format!("oae{:0>22}", format!("{n:x}Sim{:x}", now_secs() & 0xFFFF))
    }

    pub fn add_user(&mut self, id: &str, login: &str) {
        let (first, last) = login
            .split('@')
            .next()
            .unwrap_or(login)
            .split_once('.')
            .unwrap_or((login, "User"));
        self.users.entry(id.to_owned()).or_insert_with(|| User {
            id: id.to_owned(),
            login: login.to_owned(),
            first_name: capitalise(first),
            last_name: capitalise(last),
            created: now_iso(),
            last_login: None,
        });
    }

    pub fn add_group(&mut self, id: &str, name: &str, kind: GroupType) {
        let now = now_iso();
        self.groups.entry(id.to_owned()).or_insert_with(|| Group {
            id: id.to_owned(),
            name: name.to_owned(),
            kind,
            created: now.clone(),
            last_membership_updated: now,
            members: BTreeSet::new(),
        });
    }

    /// Okta's rules for `PUT` (`add`) and `DELETE` of a membership: both idempotent,
    /// both refused for groups that are not `OKTA_GROUP`.
    pub fn write(&mut self, group: &str, user: &str, add: bool) -> Result<(), WriteError> {
        if !self.users.contains_key(user) {
            return Err(WriteError::NoUser);
        }
        let group = self.groups.get_mut(group).ok_or(WriteError::NoGroup)?;
        if group.kind != GroupType::Okta {
            return Err(WriteError::ReadOnly(group.kind));
        }
        let changed = if add {
            group.members.insert(user.to_owned())
        } else {
            group.members.remove(user)
        };
        if changed {
            group.last_membership_updated = now_iso();
        }
        Ok(())
    }

    /// Passes a write that has just succeeded (and whose answer is already built)
    /// through the write faults. Dropped: `undo` runs now, so the answer says success
    /// and nothing changed. Lagged: `undo` runs now and `redo` after the lag. Otherwise
    /// the write stands. `undo` is `None` when no write fault was pending as the write
    /// began (see [`Faults::write_faults_pending`]); the write then stands too.
    pub fn write_faults(
        &mut self,
        undo: Option<impl FnOnce(&mut Self)>,
        redo: impl FnOnce(&mut Self) + Send + 'static,
    ) {
        let Some(undo) = undo else {
            return;
        };
        let fate = self.faults.decide_write();
        let later = Later::after_write(self, fate, undo, redo);
        self.later.extend(later);
    }

    /// Counts one request; `Err(reset_epoch_secs)` when the window's budget is spent.
    pub fn spend(&mut self, now: u64) -> Result<Window, Window> {
        let window = match self.window {
            Some(w) if now < w.start + WINDOW_SECS => w,
            _ => Window {
                start: now,
                used: 0,
            },
        };
        if window.used >= self.rate_limit {
            self.window = Some(window);
            return Err(window);
        }
        let counted = Window {
            used: window.used + 1,
            ..window
        };
        self.window = Some(counted);
        Ok(counted)
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_idempotent_and_only_for_okta_groups() {
        let mut w = World::new("http://x");
        w.add_user("00u1", "mia.krystof@acme.example");
        w.add_group("00g1", "Engineering", GroupType::Okta);
        w.add_group("00g2", "AD Admins", GroupType::App);
        assert_eq!(w.write("00g1", "00u1", true), Ok(()));
        assert_eq!(w.write("00g1", "00u1", true), Ok(()));
        assert_eq!(w.groups["00g1"].members.len(), 1);
        assert_eq!(w.write("00g1", "00u1", false), Ok(()));
        assert_eq!(w.write("00g1", "00u1", false), Ok(()));
        assert_eq!(
            w.write("00g2", "00u1", true),
            Err(WriteError::ReadOnly(GroupType::App))
        );
        assert_eq!(w.write("00g9", "00u1", true), Err(WriteError::NoGroup));
        assert_eq!(w.write("00g1", "00u9", true), Err(WriteError::NoUser));
        assert_eq!(w.users["00u1"].first_name, "Mia");
    }
}
