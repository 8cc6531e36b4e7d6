//! The simulated Jira site: users, API tokens, projects, project roles and their actors,
//! and the rate-limit window. Plain data and Jira's rules; no HTTP here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::faults::Faults;

#[derive(Debug, Clone)]
pub struct User {
    pub display_name: String,
    pub email: String,
}

/// One actor of a project role, as Jira lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User { id: u64, account_id: String },
    Group { id: u64, name: String },
}

#[derive(Debug, Clone)]
pub struct RoleDef {
    pub id: u64,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub key: String,
    pub name: String,
    /// Role id -> actors, in the order they were added.
    pub roles: BTreeMap<u64, Vec<Actor>>,
}

/// Why adding or removing an actor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorError {
    UnknownUser(String),
    AlreadyMember(String),
    NotMember(String),
}

/// The rate-limit window: it starts at the first counted request and lasts
/// [`WINDOW_SECS`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub start: u64,
    pub used: u32,
}

/// What a `GET /project/search` page's `nextPage` link points at: Jira's own next page,
/// or a paging fault ([`crate::jira::JiraSimulator::set_next_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NextPage {
    /// The next page on this site, as Jira links it.
    #[default]
    Faithful,
    /// The next page's path and query on another origin, e.g. `https://evil.example`
    /// (a misconfigured proxy or a hostile server).
    OtherOrigin(String),
    /// The page's own URL, exactly as it was asked for (a loop).
    Itself,
}

pub const WINDOW_SECS: u64 = 60;
pub const DEFAULT_RATE_LIMIT: u32 = 1000;

#[derive(Debug)]
pub struct World {
    pub base_url: String,
    next_project_id: u64,
    next_role_id: u64,
    next_actor_id: u64,
    next_request: u64,
    pub users: BTreeMap<String, User>,
    /// (email, API token) -> account id.
    pub tokens: HashMap<(String, String), String>,
    /// Account ids with Administer Jira (and so Administer Projects everywhere).
    pub admins: BTreeSet<String>,
    pub roles: BTreeMap<u64, RoleDef>,
    /// Upper-cased key -> project.
    pub projects: BTreeMap<String, Project>,
    pub rate_limit: u32,
    pub window: Option<Window>,
    pub send_retry_after: bool,
    pub next_page: NextPage,
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

impl World {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            next_project_id: 10_000,
            next_role_id: 10_002,
            next_actor_id: 10_240,
            next_request: 1,
            users: BTreeMap::new(),
            tokens: HashMap::new(),
            admins: BTreeSet::new(),
            roles: BTreeMap::new(),
            projects: BTreeMap::new(),
            rate_limit: DEFAULT_RATE_LIMIT,
            window: None,
            send_retry_after: true,
            next_page: NextPage::Faithful,
            faults: Faults::default(),
            later: Vec::new(),
        }
    }

    /// An `X-AREQUESTID` in Jira's shape (`<minutes>x<counter>x<n>`).
    pub fn request_id(&mut self) -> String {
        let n = self.next_request;
        self.next_request += 1;
        format!("{}x{n}x1", (now_secs() / 60) % 1440)
    }

    pub fn add_user(&mut self, account_id: &str, display_name: &str, email: &str) {
        self.users.insert(
            account_id.to_owned(),
            User {
                display_name: display_name.to_owned(),
                email: email.to_owned(),
            },
        );
    }

    /// A project by key (any case) or numeric id.
    pub fn project(&self, key_or_id: &str) -> Option<&Project> {
        self.projects
            .get(&key_or_id.to_ascii_uppercase())
            .or_else(|| {
                self.projects
                    .values()
                    .find(|p| p.id.to_string() == key_or_id)
            })
    }

    fn project_mut(&mut self, key_or_id: &str) -> Option<&mut Project> {
        let key = self.project(key_or_id)?.key.to_ascii_uppercase();
        self.projects.get_mut(&key)
    }

    /// Creates project `key` (no-op if it exists); returns its id.
    pub fn add_project(&mut self, key: &str, name: &str) -> u64 {
        if let Some(p) = self.project(key) {
            return p.id;
        }
        let id = self.next_project_id;
        self.next_project_id += 1;
        self.projects.insert(
            key.to_ascii_uppercase(),
            Project {
                id,
                key: key.to_ascii_uppercase(),
                name: name.to_owned(),
                roles: BTreeMap::new(),
            },
        );
        id
    }

    /// Makes role `name` (created site-wide if new, as Jira's roles are) available in
    /// `project`; returns the role id, `None` for an unknown project.
    pub fn add_role(&mut self, project: &str, name: &str) -> Option<u64> {
        let id = match self
            .roles
            .values()
            .find(|r| r.name.eq_ignore_ascii_case(name))
        {
            Some(role) => role.id,
            None => {
                let id = self.next_role_id;
                self.next_role_id += 1;
                self.roles.insert(
                    id,
                    RoleDef {
                        id,
                        name: name.to_owned(),
                        description: format!("A project role that represents {name} in a project"),
                    },
                );
                id
            }
        };
        self.project_mut(project)?.roles.entry(id).or_default();
        Some(id)
    }

    /// The id of role `name` in `project`.
    pub fn role_id(&self, project: &str, name: &str) -> Option<u64> {
        let project = self.project(project)?;
        project
            .roles
            .keys()
            .copied()
            .find(|id| self.roles.get(id).is_some_and(|r| r.name == name))
    }

    pub fn actors(&self, project: &str, role: u64) -> Option<&Vec<Actor>> {
        self.project(project)?.roles.get(&role)
    }

    /// Adds user actors, all or nothing, as Jira does.
    pub fn add_users(
        &mut self,
        project: &str,
        role: u64,
        ids: &[String],
    ) -> Result<(), ActorError> {
        for id in ids {
            let Some(user) = self.users.get(id) else {
                return Err(ActorError::UnknownUser(id.clone()));
            };
            let held = self.actors(project, role).is_some_and(|actors| {
                actors
                    .iter()
                    .any(|a| matches!(a, Actor::User { account_id, .. } if account_id == id))
            });
            if held {
                return Err(ActorError::AlreadyMember(user.display_name.clone()));
            }
        }
        for id in ids {
            let actor_id = self.next_actor_id;
            self.next_actor_id += 1;
            if let Some(actors) = self
                .project_mut(project)
                .and_then(|p| p.roles.get_mut(&role))
            {
                actors.push(Actor::User {
                    id: actor_id,
                    account_id: id.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn add_group(&mut self, project: &str, role: u64, name: &str) {
        let id = self.next_actor_id;
        self.next_actor_id += 1;
        if let Some(actors) = self
            .project_mut(project)
            .and_then(|p| p.roles.get_mut(&role))
            && !actors
                .iter()
                .any(|a| matches!(a, Actor::Group { name: n, .. } if n == name))
        {
            actors.push(Actor::Group {
                id,
                name: name.to_owned(),
            });
        }
    }

    pub fn remove_user(&mut self, project: &str, role: u64, id: &str) -> Result<(), ActorError> {
        let actors = self
            .project_mut(project)
            .and_then(|p| p.roles.get_mut(&role))
            .ok_or_else(|| ActorError::NotMember(id.to_owned()))?;
        let before = actors.len();
        actors.retain(|a| !matches!(a, Actor::User { account_id, .. } if account_id == id));
        if actors.len() == before {
            return Err(ActorError::NotMember(id.to_owned()));
        }
        Ok(())
    }

    /// Replaces the actors of `project`'s `role` (undoing a write).
    pub fn set_actors(&mut self, project: &str, role: u64, actors: Vec<Actor>) {
        if let Some(held) = self
            .project_mut(project)
            .and_then(|p| p.roles.get_mut(&role))
        {
            *held = actors;
        }
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

    /// Counts one request against the window; `Err(reset_epoch_secs)` when the budget
    /// is spent. Returns the window after counting.
    pub fn spend(&mut self, now: u64) -> Result<Window, u64> {
        let window = match self.window {
            Some(w) if now < w.start + WINDOW_SECS => w,
            _ => Window {
                start: now,
                used: 0,
            },
        };
        if window.used >= self.rate_limit {
            self.window = Some(window);
            return Err(window.start + WINDOW_SECS);
        }
        let counted = Window {
            used: window.used + 1,
            ..window
        };
        self.window = Some(counted);
        Ok(counted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> (World, u64) {
        let mut w = World::new("http://x");
        w.add_user("u1", "Mia Krystof", "mia@example.com");
        w.add_project("PLAT", "Platform");
        let role = w.add_role("plat", "Developers");
        (w, role.unwrap_or_default())
    }

    #[test]
    fn actors_are_added_once_and_removed_once() {
        let (mut w, role) = world();
        assert_eq!(w.add_users("PLAT", role, &["u1".into()]), Ok(()));
        assert_eq!(
            w.add_users("PLAT", role, &["u1".into()]),
            Err(ActorError::AlreadyMember("Mia Krystof".into()))
        );
        assert_eq!(
            w.add_users("PLAT", role, &["nobody".into()]),
            Err(ActorError::UnknownUser("nobody".into()))
        );
        assert_eq!(w.remove_user("PLAT", role, "u1"), Ok(()));
        assert_eq!(
            w.remove_user("PLAT", role, "u1"),
            Err(ActorError::NotMember("u1".into()))
        );
    }

    #[test]
    fn roles_are_site_wide_and_projects_match_by_key_or_id() {
        let (mut w, role) = world();
        let id = w.add_project("OPS", "Operations");
        assert_eq!(w.add_role("OPS", "developers"), Some(role));
        assert_eq!(
            w.project(&id.to_string()).map(|p| p.key.as_str()),
            Some("OPS")
        );
        assert_eq!(w.add_role("NOPE", "Developers"), None);
    }

    #[test]
    fn the_window_runs_out_and_resets() {
        let (mut w, _) = world();
        w.rate_limit = 2;
        assert!(w.spend(100).is_ok());
        assert_eq!(w.spend(101).map(|w| w.used), Ok(2));
        assert_eq!(w.spend(102).map(|w| w.used), Err(160));
        assert_eq!(w.spend(160).map(|w| w.used), Ok(1));
    }
}
