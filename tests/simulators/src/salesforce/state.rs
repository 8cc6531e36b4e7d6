//! The simulated org: users, permission sets, assignments, sessions, the daily API
//! budget and open query cursors. Plain data and Salesforce's rules; no HTTP here.
//!
//! Ids are 18 characters (15 plus the case-checksum suffix) and compare on their first
//! 15 characters, case-sensitively, so a 15-character id finds its record as it does in
//! Salesforce.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::soql::Query;
use crate::faults::Faults;

/// A Salesforce error item: `{"message","errorCode","fields"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl SfError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    /// The org's API limit, answered with `status` (403 on most endpoints).
    pub fn limit_exceeded(status: u16) -> Self {
        Self::new(
            status,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }
}

/// The 18-character form of a 15- or 18-character id; `None` if it is not an id.
pub fn id18(id: &str) -> Option<String> {
    const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    if !(id.len() == 15 || id.len() == 18) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if id.len() == 18 {
        return Some(id.to_owned());
    }
    let mut out = id.to_owned();
    for chunk in id.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        out.push(char::from(SUFFIX[bits]));
    }
    Some(out)
}

/// Whether `given` (15 or 18 characters) names the record whose id is `stored`.
pub fn same_id(stored: &str, given: &str) -> bool {
    id18(given).is_some() && stored.get(..15) == given.get(..15)
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct PermissionSet {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub assignee: String,
    pub set: String,
}

/// Which fields each object answers to, canonical spelling, and which hold ids.
fn schema(object: &str) -> Option<(&'static str, &'static [&'static str])> {
    let (name, fields): (&str, &[&str]) = match object.to_ascii_lowercase().as_str() {
        "user" => ("User", &["Id", "Username", "Name", "IsActive"]),
        "permissionset" => (
            "PermissionSet",
            &["Id", "Name", "Label", "IsOwnedByProfile"],
        ),
        "permissionsetassignment" => (
            "PermissionSetAssignment",
            &["Id", "AssigneeId", "PermissionSetId", "IsActive"],
        ),
        _ => return None,
    };
    Some((name, fields))
}

fn is_id_field(field: &str) -> bool {
    matches!(field, "Id" | "AssigneeId" | "PermissionSetId")
}

#[derive(Debug)]
pub struct World {
    pub org_id: String,
    pub users: BTreeMap<String, User>,
    pub sets: BTreeMap<String, PermissionSet>,
    pub assignments: BTreeMap<String, Assignment>,
    /// Session token -> User Id.
    pub tokens: HashMap<String, String>,
    pub api_max: u64,
    pub api_used: u64,
    /// The status `REQUEST_LIMIT_EXCEEDED` comes with (403 on most endpoints).
    pub limit_status: u16,
    /// Records per query page unless the client asks for fewer; Salesforce's default.
    pub batch_size: usize,
    /// Query locator -> every record of that query.
    pub cursors: HashMap<String, Vec<Value>>,
    next_id: u64,
    /// The simulator's injected faults; writes consult the write faults.
    pub faults: Faults,
    /// Lagged writes the HTTP layer schedules once it lets go of the lock.
    pub later: Vec<Later>,
}

/// A write answered now that applies after its lag (a lagged-write fault).
pub type Later = crate::faults::Later<World>;

impl Default for World {
    fn default() -> Self {
        Self {
            org_id: "00D5e000000AcMeEAK".into(),
            users: BTreeMap::new(),
            sets: BTreeMap::new(),
            assignments: BTreeMap::new(),
            tokens: HashMap::new(),
            api_max: 15_000,
            api_used: 0,
            limit_status: 403,
            batch_size: 2000,
            cursors: HashMap::new(),
            next_id: 1,
            faults: Faults::default(),
            later: Vec::new(),
        }
    }
}

impl World {
    /// A fresh id with `prefix` (`0Pa` assignments, `01g` query locators).
    pub fn new_id(&mut self, prefix: &str) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut n = self.next_id * 7_919 + 104_729;
        self.next_id += 1;
        let mut unique = String::new();
        for _ in 0..7 {
            unique.insert(0, char::from(DIGITS[(n % 62) as usize]));
            n /= 62;
        }
        id18(&format!("{prefix}5e000{unique}")).unwrap_or_default()
    }

    /// Counts one REST API request; `Err` once the daily budget is spent.
    pub fn spend(&mut self) -> Result<(), SfError> {
        if self.api_used >= self.api_max {
            return Err(SfError::limit_exceeded(self.limit_status));
        }
        self.api_used += 1;
        Ok(())
    }

    fn user(&self, given: &str) -> Option<&User> {
        self.users.values().find(|u| same_id(&u.id, given))
    }

    fn set(&self, given: &str) -> Option<&PermissionSet> {
        self.sets.values().find(|s| same_id(&s.id, given))
    }

    /// The records a query selects, in id order, with Salesforce's `attributes`.
    pub fn select(&self, query: &Query, version: &str) -> Result<Vec<Value>, SfError> {
        let (object, known) = schema(&query.object).ok_or_else(|| {
            SfError::new(
                400,
                "INVALID_TYPE",
                format!(
                    "\n{}\n^\nERROR at Row:1:Column:1\nsObject type '{}' is not supported.",
                    query.object, query.object
                ),
            )
        })?;
        let canonical = |field: &str| -> Result<&'static str, SfError> {
            known
                .iter()
                .copied()
                .find(|k| k.eq_ignore_ascii_case(field))
                .ok_or_else(|| {
                    SfError::new(
                        400,
                        "INVALID_FIELD",
                        format!("No such column '{field}' on entity '{object}'."),
                    )
                })
        };
        let fields = query
            .fields
            .iter()
            .map(|f| canonical(f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conditions = Vec::new();
        for (field, value) in &query.conditions {
            let field = canonical(field)?;
            if is_id_field(field) && id18(value).is_none() {
                return Err(SfError::new(
                    400,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("invalid ID field: {value}"),
                ));
            }
            conditions.push((field, value.as_str()));
        }
        let rows: Vec<Map<String, Value>> = match object {
            "User" => self
                .users
                .values()
                .map(|u| {
                    row(&[
                        ("Id", json!(u.id)),
                        ("Username", json!(u.username)),
                        ("Name", json!(u.name)),
                        ("IsActive", json!(true)),
                    ])
                })
                .collect(),
            "PermissionSet" => self
                .sets
                .values()
                .map(|s| {
                    row(&[
                        ("Id", json!(s.id)),
                        ("Name", json!(s.name)),
                        ("Label", json!(s.name.replace('_', " "))),
                        ("IsOwnedByProfile", json!(false)),
                    ])
                })
                .collect(),
            _ => self
                .assignments
                .values()
                .map(|a| {
                    row(&[
                        ("Id", json!(a.id)),
                        ("AssigneeId", json!(a.assignee)),
                        ("PermissionSetId", json!(a.set)),
                        ("IsActive", json!(true)),
                    ])
                })
                .collect(),
        };
        let matches = |r: &Map<String, Value>| {
            conditions.iter().all(|(field, value)| {
                let held = r.get(*field).and_then(Value::as_str).unwrap_or_default();
                if is_id_field(field) {
                    same_id(held, value)
                } else {
                    held.eq_ignore_ascii_case(value)
                }
            })
        };
        Ok(rows
            .into_iter()
            .filter(|r| matches(r))
            .map(|r| {
                let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
                let mut out = Map::new();
                out.insert(
                    "attributes".into(),
                    json!({ "type": object, "url": format!("/services/data/{version}/sobjects/{object}/{id}") }),
                );
                for field in &fields {
                    out.insert((*field).to_owned(), r.get(*field).cloned().unwrap_or(Value::Null));
                }
                Value::Object(out)
            })
            .collect())
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

    /// Puts an assignment record (with its id) back, unless its user already holds the
    /// set by another record (a lagged create landing, or a deletion undone).
    pub fn restore_assignment(&mut self, record: Assignment) {
        let held = self
            .assignments
            .values()
            .any(|a| a.assignee == record.assignee && a.set == record.set);
        if !held {
            self.assignments.insert(record.id.clone(), record);
        }
    }

    /// Creates a PermissionSetAssignment from its JSON fields.
    pub fn assign(&mut self, body: &Map<String, Value>) -> Result<String, SfError> {
        if let Some(unknown) = body
            .keys()
            .find(|k| !["AssigneeId", "PermissionSetId"].contains(&k.as_str()))
        {
            return Err(SfError::new(
                400,
                "INVALID_FIELD",
                format!("No such column '{unknown}' on sobject of type PermissionSetAssignment"),
            ));
        }
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let missing: Vec<String> = ["AssigneeId", "PermissionSetId"]
            .iter()
            .filter(|f| field(f).is_none())
            .map(|f| (*f).to_owned())
            .collect();
        if !missing.is_empty() {
            let mut e = SfError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            );
            e.fields = missing;
            return Err(e);
        }
        let (assignee, set) = (
            field("AssigneeId").unwrap_or_default(),
            field("PermissionSetId").unwrap_or_default(),
        );
        for (name, label, value) in [
            ("AssigneeId", "Assignee ID", assignee),
            ("PermissionSetId", "Permission Set ID", set),
        ] {
            if id18(value).is_none() {
                let mut e = SfError::new(
                    400,
                    "MALFORMED_ID",
                    format!("{label}: id value of incorrect type: {value}"),
                );
                e.fields = vec![name.to_owned()];
                return Err(e);
            }
        }
        let (Some(user), Some(set)) = (self.user(assignee), self.set(set)) else {
            return Err(SfError::new(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            ));
        };
        let (user, set) = (user.id.clone(), set.id.clone());
        if self
            .assignments
            .values()
            .any(|a| a.assignee == user && a.set == set)
        {
            return Err(SfError::new(
                400,
                "DUPLICATE_VALUE",
                format!(
                    "Duplicate PermissionSetAssignment. Assignee: {user}; Permission Set: {set}"
                ),
            ));
        }
        let id = self.new_id("0Pa");
        self.assignments.insert(
            id.clone(),
            Assignment {
                id: id.clone(),
                assignee: user,
                set,
            },
        );
        Ok(id)
    }

    /// Deletes a PermissionSetAssignment by id.
    pub fn unassign(&mut self, given: &str) -> Result<(), SfError> {
        let id = self
            .assignments
            .keys()
            .find(|id| same_id(id, given))
            .cloned()
            .ok_or_else(SfError::not_found)?;
        self.assignments.remove(&id);
        Ok(())
    }
}

fn row(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_case_checksum() {
        assert_eq!(
            id18("0055e000001AdAx").as_deref(),
            Some("0055e000001AdAxAAK")
        );
        assert_eq!(
            id18("00D5e000000AcMe").as_deref(),
            Some("00D5e000000AcMeEAK")
        );
        assert!(same_id("0055e000001AdAxAAK", "0055e000001AdAx"));
        assert!(!same_id("0055e000001AdAxAAK", "0055e000001adax"));
        assert_eq!(id18("005'x"), None);
        let mut w = World::default();
        let a = w.new_id("0Pa");
        assert!(a.starts_with("0Pa") && a.len() == 18 && a != w.new_id("0Pa"));
    }
}
