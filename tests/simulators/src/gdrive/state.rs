//! The simulated Drive: accounts, files with their permission lists, tokens and the
//! request budget. Plain data and the rules Drive applies to permissions; no HTTP here.
//!
//! E-mail addresses compare case-insensitively and are stored lower-cased, as Drive
//! reports them. A user's permission id is the same on every file (Drive's
//! `permissionId`), a 20-digit number.

use std::collections::{BTreeMap, HashMap};

use crate::faults::Faults;

/// A permission role, lowest to highest; `Owner` only through seeding or
/// `transferOwnership`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Commenter,
    Writer,
    FileOrganizer,
    Organizer,
    Owner,
}

impl Role {
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "reader" => Self::Reader,
            "commenter" => Self::Commenter,
            "writer" => Self::Writer,
            "fileOrganizer" => Self::FileOrganizer,
            "organizer" => Self::Organizer,
            "owner" => Self::Owner,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Commenter => "commenter",
            Self::Writer => "writer",
            Self::FileOrganizer => "fileOrganizer",
            Self::Organizer => "organizer",
            Self::Owner => "owner",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    /// `user` or `group`.
    pub kind: String,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct File {
    pub name: String,
    /// In creation order, the owner first.
    pub permissions: Vec<Permission>,
}

/// A Drive error: HTTP status, `errors[0].reason`/`domain`, message, and where the bad
/// input was (`location`, `locationType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveError {
    pub status: u16,
    pub domain: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub location: Option<(&'static str, &'static str)>,
}

impl DriveError {
    pub fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            domain: "global",
            reason,
            message: message.into(),
            location: None,
        }
    }

    pub fn at(mut self, location: &'static str, kind: &'static str) -> Self {
        self.location = Some((location, kind));
        self
    }

    pub fn file_not_found(id: &str) -> Self {
        Self::new(404, "notFound", format!("File not found: {id}.")).at("fileId", "parameter")
    }
}

/// How an exhausted budget answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Throttle {
    /// 403 `userRateLimitExceeded` (the per-user quota; Drive's most common answer).
    #[default]
    UserRateLimit403,
    /// 403 `rateLimitExceeded` (the project's quota).
    RateLimit403,
    /// 429 `rateLimitExceeded`.
    TooManyRequests429,
}

#[derive(Debug, Default)]
pub struct World {
    pub files: BTreeMap<String, File>,
    /// Token -> lower-cased e-mail of the account it acts as.
    pub tokens: HashMap<String, String>,
    /// Lower-cased e-mail -> display name.
    pub names: HashMap<String, String>,
    permission_ids: HashMap<String, String>,
    /// Requests answered before throttling starts; `None` for no limit.
    pub budget: Option<u32>,
    pub used: u32,
    pub throttle: Throttle,
    /// A page asked for with a `pageToken` answers that same token as its next (a
    /// paging fault; see `DriveSimulator::repeat_page_tokens`).
    pub repeat_page_tokens: bool,
    /// Lower-cased e-mails Drive would have sent a sharing notification to.
    pub notified: Vec<String>,
    /// The simulator's injected faults; writes consult the write faults.
    pub faults: Faults,
    /// Lagged writes the HTTP layer schedules once it lets go of the lock.
    pub later: Vec<Later>,
}

/// A write answered now that applies after its lag (a lagged-write fault).
pub type Later = crate::faults::Later<World>;

impl World {
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

    /// Puts back `file`'s permissions and the notifications sent (undoing a write).
    pub fn restore(&mut self, file: &str, permissions: Vec<Permission>, notified: usize) {
        if let Some(f) = self.files.get_mut(file) {
            f.permissions = permissions;
        }
        self.notified.truncate(notified);
    }

    /// What [`Self::restore`] needs, taken only when a write fault is pending.
    pub fn snapshot(&self, file: &str) -> Option<(Vec<Permission>, usize)> {
        self.faults.write_faults_pending().then(|| {
            let permissions = self
                .files
                .get(file)
                .map(|f| f.permissions.clone())
                .unwrap_or_default();
            (permissions, self.notified.len())
        })
    }

    /// The stable permission id of `email` (lower-cased).
    pub fn permission_id(&mut self, email: &str) -> String {
        let next = 10_000_000_000_000_000_000u128 + self.permission_ids.len() as u128 * 7_919;
        self.permission_ids
            .entry(email.to_owned())
            .or_insert_with(|| next.to_string())
            .clone()
    }

    pub fn add_account(&mut self, email: &str, name: &str) -> String {
        let email = email.to_ascii_lowercase();
        self.names.insert(email.clone(), name.to_owned());
        self.permission_id(&email);
        email
    }

    pub fn add_file(&mut self, id: &str, name: &str, owner: &str) {
        let owner = owner.to_ascii_lowercase();
        let permission = Permission {
            id: self.permission_id(&owner),
            kind: "user".into(),
            email: owner,
            role: Role::Owner,
        };
        self.files.insert(
            id.to_owned(),
            File {
                name: name.to_owned(),
                permissions: vec![permission],
            },
        );
    }

    /// Whether the next request is refused for the budget; counts it otherwise.
    pub fn spend(&mut self) -> bool {
        match self.budget {
            Some(budget) if self.used >= budget => true,
            _ => {
                self.used += 1;
                false
            }
        }
    }

    /// The caller's role on `file_id`; a file the caller has no role on does not exist
    /// for them.
    pub fn role_of(&self, caller: &str, file_id: &str) -> Result<Role, DriveError> {
        self.files
            .get(file_id)
            .and_then(|f| {
                f.permissions
                    .iter()
                    .filter(|p| p.email == caller)
                    .map(|p| p.role)
                    .max()
            })
            .ok_or_else(|| DriveError::file_not_found(file_id))
    }

    /// The caller may change sharing (writers can share, Drive's default).
    fn sharer(&self, caller: &str, file_id: &str) -> Result<(), DriveError> {
        if self.role_of(caller, file_id)? >= Role::Writer {
            Ok(())
        } else {
            Err(DriveError::new(
                403,
                "insufficientFilePermissions",
                "The user does not have sufficient permissions for this file.",
            ))
        }
    }

    fn file_mut(&mut self, file_id: &str) -> Result<&mut File, DriveError> {
        self.files
            .get_mut(file_id)
            .ok_or_else(|| DriveError::file_not_found(file_id))
    }

    /// `permissions.create`. A second create for the same account replaces its role,
    /// lower or higher, as Drive does.
    pub fn create(
        &mut self,
        caller: &str,
        file_id: &str,
        kind: &str,
        email: &str,
        role: Role,
        transfer_ownership: bool,
    ) -> Result<Permission, DriveError> {
        self.sharer(caller, file_id)?;
        if role == Role::Owner && !transfer_ownership {
            return Err(DriveError::new(
                403,
                "forbidden",
                "The transferOwnership parameter must be enabled when the permission role is 'owner'.",
            ));
        }
        if role == Role::Owner && self.role_of(caller, file_id)? != Role::Owner {
            return Err(DriveError::new(
                403,
                "insufficientFilePermissions",
                "The user does not have sufficient permissions for this file.",
            ));
        }
        let email = email.to_ascii_lowercase();
        let id = self.permission_id(&email);
        let file = self.file_mut(file_id)?;
        if role == Role::Owner {
            // The previous owner stays on as a writer.
            for p in file
                .permissions
                .iter_mut()
                .filter(|p| p.role == Role::Owner)
            {
                p.role = Role::Writer;
            }
        }
        if let Some(existing) = file.permissions.iter_mut().find(|p| p.id == id) {
            if existing.role != Role::Owner {
                existing.role = role;
            }
            return Ok(existing.clone());
        }
        let permission = Permission {
            id,
            kind: kind.to_owned(),
            email,
            role,
        };
        file.permissions.push(permission.clone());
        Ok(permission)
    }

    /// `permissions.update` of the role.
    pub fn update(
        &mut self,
        caller: &str,
        file_id: &str,
        permission_id: &str,
        role: Role,
    ) -> Result<Permission, DriveError> {
        self.sharer(caller, file_id)?;
        if role == Role::Owner {
            return Err(DriveError::new(
                403,
                "forbidden",
                "The transferOwnership parameter must be enabled when the permission role is 'owner'.",
            ));
        }
        let file = self.file_mut(file_id)?;
        let permission = file
            .permissions
            .iter_mut()
            .find(|p| p.id == permission_id)
            .ok_or_else(|| permission_not_found(permission_id))?;
        if permission.role == Role::Owner {
            return Err(DriveError::new(
                403,
                "cannotModifyOwner",
                "The owner of a file cannot be downgraded; transfer ownership first.",
            ));
        }
        permission.role = role;
        Ok(permission.clone())
    }

    /// `permissions.delete`.
    pub fn delete(
        &mut self,
        caller: &str,
        file_id: &str,
        permission_id: &str,
    ) -> Result<(), DriveError> {
        self.sharer(caller, file_id)?;
        let file = self.file_mut(file_id)?;
        let index = file
            .permissions
            .iter()
            .position(|p| p.id == permission_id)
            .ok_or_else(|| permission_not_found(permission_id))?;
        if file.permissions[index].role == Role::Owner {
            return Err(DriveError::new(
                403,
                "cannotRemoveOwner",
                "The owner of a file cannot be removed.",
            ));
        }
        file.permissions.remove(index);
        Ok(())
    }
}

fn permission_not_found(id: &str) -> DriveError {
    DriveError::new(404, "notFound", format!("Permission not found: {id}."))
        .at("permissionId", "parameter")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let mut w = World::default();
        w.add_account("admin@acme.example", "Admin");
        w.add_file("f1", "Plan", "admin@acme.example");
        w
    }

    #[test]
    fn create_replaces_the_role_even_downwards() {
        let mut w = world();
        let a = w
            .create(
                "admin@acme.example",
                "f1",
                "user",
                "Ada@Acme.example",
                Role::Writer,
                false,
            )
            .expect("created");
        let b = w
            .create(
                "admin@acme.example",
                "f1",
                "user",
                "ada@acme.example",
                Role::Reader,
                false,
            )
            .expect("replaced");
        assert_eq!((a.id == b.id, b.role), (true, Role::Reader));
        assert_eq!(w.files["f1"].permissions.len(), 2);
    }

    #[test]
    fn owner_rules() {
        let mut w = world();
        let owner_id = w.files["f1"].permissions[0].id.clone();
        let e = w
            .delete("admin@acme.example", "f1", &owner_id)
            .expect_err("owner stays");
        assert_eq!((e.status, e.reason), (403, "cannotRemoveOwner"));
        let e = w
            .create(
                "admin@acme.example",
                "f1",
                "user",
                "b@x.io",
                Role::Owner,
                false,
            )
            .expect_err("needs transferOwnership");
        assert_eq!(e.status, 403);
        let e = w.role_of("nobody@x.io", "f1").expect_err("invisible");
        assert_eq!((e.status, e.message.as_str()), (404, "File not found: f1."));
    }
}
