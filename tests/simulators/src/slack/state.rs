//! The simulated Slack workspace: users, channels and their members, user groups, bot
//! tokens and per-method rate-limit budgets. Plain data and the rules Slack applies to
//! it; no HTTP here (routes.rs turns a [`Fail`] into `{"ok":false,"error":...}`).
//!
//! Ids are Slack's: `U…` users, `C…` channels, `S…` user groups, `T…` the team, `B…`
//! bots. They compare exactly (Slack ids are upper case and case-sensitive).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub is_bot: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub private: bool,
    pub archived: bool,
    pub created: u64,
    /// User ids, sorted: the order `conversations.members` pages in.
    pub members: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Usergroup {
    pub id: String,
    pub handle: String,
    pub name: String,
    /// In the order last written, as `usergroups.users.update` received them.
    pub users: Vec<String>,
    pub date_create: u64,
    pub date_update: u64,
}

#[derive(Debug, Clone)]
pub struct Token {
    /// The bot user the token acts as.
    pub user_id: String,
    pub bot_id: String,
    pub scopes: Vec<String>,
}

/// A tier-style budget: `limit` calls per `window`, the window starting at its first call.
#[derive(Debug, Clone)]
pub struct Budget {
    pub limit: u32,
    pub window: Duration,
    pub used: u32,
    pub started: Option<Instant>,
}

/// An `ok:false` answer: Slack's error code and the fields some errors carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub code: &'static str,
    /// Per-user errors of `conversations.invite` (`errors: [{user, ok, error}]`).
    pub per_user: Vec<(String, &'static str)>,
}

impl Fail {
    pub fn new(code: &'static str) -> Self {
        Self {
            code,
            per_user: Vec::new(),
        }
    }

    fn for_user(code: &'static str, user: &str) -> Self {
        Self {
            code,
            per_user: vec![(user.to_owned(), code)],
        }
    }
}

pub type Outcome<T> = Result<T, Fail>;

#[derive(Debug, Clone)]
pub struct Workspace {
    pub team_id: String,
    pub team: String,
    pub domain: String,
    pub users: BTreeMap<String, User>,
    pub channels: BTreeMap<String, Channel>,
    pub usergroups: BTreeMap<String, Usergroup>,
    pub tokens: HashMap<String, Token>,
    /// Method name -> budget; methods without one are unlimited.
    pub budgets: HashMap<String, Budget>,
    /// Method name -> the last `Retry-After` (seconds) a 429 carried.
    pub last_retry_after: HashMap<String, u64>,
    next_request: u64,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            team_id: "T0100ACME1".into(),
            team: "Acme".into(),
            domain: "acme".into(),
            users: BTreeMap::new(),
            channels: BTreeMap::new(),
            usergroups: BTreeMap::new(),
            tokens: HashMap::new(),
            budgets: HashMap::new(),
            last_retry_after: HashMap::new(),
            next_request: 1,
        }
    }

    /// A fresh `x-slack-req-id`.
    pub fn request_id(&mut self) -> String {
        let n = self.next_request;
        self.next_request += 1;
        format!("{:032x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn add_user(&mut self, id: &str, name: &str, is_bot: bool) {
        self.users.entry(id.to_owned()).or_insert_with(|| User {
            id: id.to_owned(),
            name: name.to_owned(),
            email: (!is_bot).then(|| format!("{name}@acme.example")),
            is_bot,
            deleted: false,
        });
    }

    pub fn add_channel(&mut self, id: &str, name: &str, private: bool) {
        self.channels
            .entry(id.to_owned())
            .or_insert_with(|| Channel {
                id: id.to_owned(),
                name: name.to_owned(),
                private,
                archived: false,
                created: now_secs(),
                members: BTreeSet::new(),
            });
    }

    pub fn add_usergroup(&mut self, id: &str, handle: &str, users: &[&str]) {
        let now = now_secs();
        self.usergroups.insert(
            id.to_owned(),
            Usergroup {
                id: id.to_owned(),
                handle: handle.to_owned(),
                name: handle.to_owned(),
                users: users.iter().map(|u| (*u).to_owned()).collect(),
                date_create: now,
                date_update: now,
            },
        );
    }

    /// The channel `caller` may see: every public one, private ones it is a member of.
    /// Anything else is `channel_not_found`, as Slack hides private channels.
    pub fn visible_channel(&self, caller: &str, id: &str) -> Outcome<&Channel> {
        self.channels
            .get(id)
            .filter(|c| !c.private || c.members.contains(caller))
            .ok_or_else(|| Fail::new("channel_not_found"))
    }

    fn live_user(&self, id: &str) -> Option<&User> {
        self.users.get(id).filter(|u| !u.deleted)
    }

    /// `conversations.invite`: `caller` (who must be in the channel) adds `users`.
    pub fn invite(&mut self, caller: &str, channel: &str, users: &[String]) -> Outcome<&Channel> {
        let c = self.visible_channel(caller, channel)?;
        if users.is_empty() {
            return Err(Fail::new("no_user"));
        }
        if users.len() > 1000 {
            return Err(Fail::new("too_many_users"));
        }
        if c.archived {
            return Err(Fail::new("is_archived"));
        }
        if !c.members.contains(caller) {
            return Err(Fail::new("not_in_channel"));
        }
        // Slack checks every user before adding any; the first failure is the answer.
        for user in users {
            if user == caller {
                return Err(Fail::for_user("cant_invite_self", user));
            }
            if self.live_user(user).is_none() {
                return Err(Fail::for_user("user_not_found", user));
            }
            if c.members.contains(user) {
                return Err(Fail::for_user("already_in_channel", user));
            }
        }
        let c = self
            .channels
            .get_mut(channel)
            .ok_or_else(|| Fail::new("channel_not_found"))?;
        c.members.extend(users.iter().cloned());
        Ok(c)
    }

    /// `conversations.kick`. `not_in_channel` answers both "the user is not a member"
    /// and "the caller is not a member": Slack's one code for both.
    pub fn kick(&mut self, caller: &str, channel: &str, user: &str) -> Outcome<()> {
        let c = self.visible_channel(caller, channel)?;
        if user.is_empty() {
            return Err(Fail::new("user_not_found"));
        }
        if user == caller {
            return Err(Fail::new("cant_kick_self"));
        }
        if c.name == "general" {
            return Err(Fail::new("cant_kick_from_general"));
        }
        if !self.users.contains_key(user) {
            return Err(Fail::new("user_not_found"));
        }
        if c.archived {
            return Err(Fail::new("is_archived"));
        }
        if !c.members.contains(caller) || !c.members.contains(user) {
            return Err(Fail::new("not_in_channel"));
        }
        if let Some(c) = self.channels.get_mut(channel) {
            c.members.remove(user);
        }
        Ok(())
    }

    pub fn usergroup(&self, id: &str) -> Outcome<&Usergroup> {
        self.usergroups
            .get(id)
            .ok_or_else(|| Fail::new("no_such_subteam"))
    }

    /// `usergroups.users.update`: replaces the whole list. An empty list is refused:
    /// Slack says to disable the group instead.
    pub fn replace_usergroup_users(&mut self, id: &str, users: &[String]) -> Outcome<&Usergroup> {
        self.usergroup(id)?;
        if users.is_empty() {
            return Err(Fail::new("no_users_provided"));
        }
        for user in users {
            match self.live_user(user) {
                // Bots and unknown or deactivated users cannot be members.
                Some(u) if !u.is_bot => {}
                _ => return Err(Fail::new("invalid_users")),
            }
        }
        let mut deduped: Vec<String> = Vec::new();
        for user in users {
            if !deduped.contains(user) {
                deduped.push(user.clone());
            }
        }
        let group = self
            .usergroups
            .get_mut(id)
            .ok_or_else(|| Fail::new("no_such_subteam"))?;
        group.users = deduped;
        group.date_update = now_secs();
        Ok(group)
    }

    pub fn user_by_email(&self, email: &str) -> Outcome<&User> {
        self.users
            .values()
            .find(|u| {
                !u.deleted
                    && u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .ok_or_else(|| Fail::new("users_not_found"))
    }

    /// Spends one call of `method`'s budget at `now`; `Err(seconds)` to wait when it is
    /// exhausted.
    pub fn spend(&mut self, method: &str, now: Instant) -> Result<(), u64> {
        let Some(budget) = self.budgets.get_mut(method) else {
            return Ok(());
        };
        let started = match budget.started {
            Some(started) if now.duration_since(started) < budget.window => started,
            _ => {
                budget.used = 0;
                budget.started = Some(now);
                now
            }
        };
        if budget.used < budget.limit {
            budget.used += 1;
            return Ok(());
        }
        let left = budget.window.saturating_sub(now.duration_since(started));
        // Whole seconds, rounded up, and never 0: "retry now" would spin.
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let secs = secs.max(1);
        self.last_retry_after.insert(method.to_owned(), secs);
        Err(secs)
    }
}

/// Slack's opaque cursors: base64 of `<prefix>:<first id of the next page>`.
pub mod cursor {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn encode(prefix: &str, next_id: &str) -> String {
        STANDARD.encode(format!("{prefix}:{next_id}"))
    }

    /// The id a cursor points at; `None` for a cursor this workspace did not make.
    pub fn decode(prefix: &str, cursor: &str) -> Option<String> {
        let bytes = STANDARD.decode(cursor.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        text.strip_prefix(prefix)?
            .strip_prefix(':')
            .map(str::to_owned)
    }

    /// The page of `ids` (sorted) starting at `cursor`, and the next cursor ("" at the end).
    pub fn page<'a>(
        prefix: &str,
        ids: impl Iterator<Item = &'a String>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, String), ()> {
        let start = match cursor.filter(|c| !c.is_empty()) {
            Some(c) => Some(decode(prefix, c).ok_or(())?),
            None => None,
        };
        let mut rest = ids.filter(|id| start.as_ref().is_none_or(|s| id.as_str() >= s.as_str()));
        let page: Vec<String> = rest.by_ref().take(limit).cloned().collect();
        let next = rest.next().map(|id| encode(prefix, id)).unwrap_or_default();
        Ok((page, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> Workspace {
        let mut w = Workspace::new();
        w.add_user("UBOT", "bot", true);
        w.add_user("U1", "alice", false);
        w.add_user("U2", "bob", false);
        w.add_channel("C1", "platform", false);
        w.add_channel("C2", "secret", true);
        w
    }

    #[test]
    fn invite_needs_the_caller_inside_and_reports_already_in_channel() {
        let mut w = world();
        let users = vec!["U1".to_owned()];
        assert_eq!(
            w.invite("UBOT", "C1", &users).err().map(|f| f.code),
            Some("not_in_channel")
        );
        // Private and not a member: invisible.
        assert_eq!(
            w.invite("UBOT", "C2", &users).err().map(|f| f.code),
            Some("channel_not_found")
        );
        w.channels
            .get_mut("C1")
            .map(|c| c.members.insert("UBOT".into()));
        assert!(w.invite("UBOT", "C1", &users).is_ok());
        let again = w.invite("UBOT", "C1", &users).err();
        assert_eq!(again.as_ref().map(|f| f.code), Some("already_in_channel"));
        assert_eq!(
            again.map(|f| f.per_user),
            Some(vec![("U1".to_owned(), "already_in_channel")])
        );
        assert_eq!(
            w.invite("UBOT", "C1", &["UBOT".to_owned()])
                .err()
                .map(|f| f.code),
            Some("cant_invite_self")
        );
    }

    #[test]
    fn kick_answers_not_in_channel_for_non_members() {
        let mut w = world();
        w.channels
            .get_mut("C1")
            .map(|c| c.members.insert("UBOT".into()));
        assert_eq!(
            w.kick("UBOT", "C1", "U2").err().map(|f| f.code),
            Some("not_in_channel")
        );
        assert_eq!(
            w.kick("UBOT", "C1", "UBOT").err().map(|f| f.code),
            Some("cant_kick_self")
        );
    }

    #[test]
    fn a_user_group_cannot_be_emptied_or_hold_bots() {
        let mut w = world();
        w.add_usergroup("S1", "oncall", &["U1"]);
        assert_eq!(
            w.replace_usergroup_users("S1", &[]).err().map(|f| f.code),
            Some("no_users_provided")
        );
        assert_eq!(
            w.replace_usergroup_users("S1", &["UBOT".into()])
                .err()
                .map(|f| f.code),
            Some("invalid_users")
        );
        let group = w.replace_usergroup_users("S1", &["U2".into(), "U1".into(), "U2".into()]);
        assert_eq!(
            group.map(|g| g.users.clone()),
            Ok(vec!["U2".to_owned(), "U1".to_owned()])
        );
    }

    #[test]
    fn budgets_refuse_with_whole_seconds_until_the_window_ends() {
        let mut w = world();
        w.budgets.insert(
            "conversations.invite".into(),
            Budget {
                limit: 1,
                window: Duration::from_secs(60),
                used: 0,
                started: None,
            },
        );
        let t0 = Instant::now();
        assert_eq!(w.spend("conversations.invite", t0), Ok(()));
        assert_eq!(
            w.spend("conversations.invite", t0 + Duration::from_millis(500)),
            Err(60)
        );
        assert_eq!(
            w.spend("conversations.invite", t0 + Duration::from_secs(60)),
            Ok(())
        );
        assert_eq!(w.spend("auth.test", t0), Ok(()));
    }

    #[test]
    fn cursors_page_through_sorted_ids() {
        let ids: Vec<String> = ["U1", "U2", "U3"].iter().map(|s| (*s).to_owned()).collect();
        let (first, next) = cursor::page("user", ids.iter(), None, 2).unwrap_or_default();
        assert_eq!(first, ["U1", "U2"]);
        assert_eq!(cursor::decode("user", &next).as_deref(), Some("U3"));
        let (second, end) = cursor::page("user", ids.iter(), Some(&next), 2).unwrap_or_default();
        assert_eq!(second, ["U3"]);
        assert_eq!(end, "");
        assert!(cursor::page("user", ids.iter(), Some("bm9wZQ=="), 2).is_err());
    }
}
