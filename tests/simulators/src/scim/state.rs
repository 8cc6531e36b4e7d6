//! The simulated SCIM service provider: Users, Groups and their members, the PATCH and
//! filter rules of RFC 7644, and the switches for behaviours real services differ on.
//! Plain data and rules; no HTTP here.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::faults::Faults;

/// What removing a member who is not in the group answers; services differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonMemberRemoval {
    /// 400 with `scimType` `noTarget`, as RFC 7644 §3.5.2.2 says for a filter that
    /// matches nothing (Azure AD style).
    #[default]
    NoTarget,
    /// 204, nothing changed (scim2-server, Okta style).
    NoContent,
}

/// A SCIM error (RFC 7644 §3.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(404, None, format!("{kind} {id:?} not found"))
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub version: u64,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    /// User ids in the order they were added.
    pub members: Vec<String>,
    pub version: u64,
}

#[derive(Debug)]
pub struct World {
    /// `http://127.0.0.1:PORT/scim/v2`, for `location` and `$ref`.
    pub root: String,
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    next_id: u64,
    version: u64,
    /// The bearer token every resource endpoint requires; `None` accepts anyone.
    pub token: Option<String>,
    pub non_member_removal: NonMemberRemoval,
    /// PATCH answers 200 with the group instead of 204.
    pub patch_returns_resource: bool,
    pub patch_supported: bool,
    pub filter_supported: bool,
    /// Requests left before 429; `None` is unlimited.
    pub budget: Option<u32>,
    pub retry_after_secs: u64,
    /// The simulator's injected faults; writes consult the write faults.
    pub faults: Faults,
    /// Lagged writes the HTTP layer schedules once it lets go of the lock.
    pub later: Vec<Later>,
}

/// A write answered now that applies after its lag (a lagged-write fault).
pub type Later = crate::faults::Later<World>;

/// One `attribute eq "value"` comparison; a filter is a conjunction of them.
pub type Clause = (String, String);

impl World {
    pub fn new(root: &str) -> Self {
        Self {
            root: root.to_owned(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_id: 0,
            version: 0,
            token: None,
            non_member_removal: NonMemberRemoval::default(),
            patch_returns_resource: false,
            patch_supported: true,
            filter_supported: true,
            budget: None,
            retry_after_secs: 30,
            faults: Faults::default(),
            later: Vec::new(),
        }
    }

    /// A fresh id shaped like the UUIDs most services use, never equal to a userName.
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("6f1c0d2e-0000-4000-8000-{:012x}", self.next_id)
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Creates a user; `userName` is unique, case-insensitively (409 `uniqueness`).
    pub fn add_user(&mut self, user_name: &str) -> Result<String, ScimError> {
        if user_name.trim().is_empty() {
            return Err(ScimError::bad("invalidValue", "userName is required"));
        }
        if self.user_by_name(user_name).is_some() {
            return Err(ScimError::new(
                409,
                Some("uniqueness"),
                format!("userName {user_name:?} is already taken"),
            ));
        }
        let id = self.new_id();
        let version = self.bump();
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                user_name: user_name.to_owned(),
                version,
            },
        );
        Ok(id)
    }

    pub fn user_by_name(&self, user_name: &str) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.user_name.eq_ignore_ascii_case(user_name))
    }

    pub fn add_group(&mut self, display_name: &str) -> Result<String, ScimError> {
        if display_name.trim().is_empty() {
            return Err(ScimError::bad("invalidValue", "displayName is required"));
        }
        let id = self.new_id();
        let version = self.bump();
        self.groups.insert(
            id.clone(),
            Group {
                id: id.clone(),
                display_name: display_name.to_owned(),
                members: Vec::new(),
                version,
            },
        );
        Ok(id)
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

    /// Applies a PatchOp body to group `id`, all operations or none (RFC 7644 §3.5.2).
    /// `Ok(true)` when something changed.
    pub fn patch_group(&mut self, id: &str, body: &Value) -> Result<bool, ScimError> {
        let Some(group) = self.groups.get(id) else {
            return Err(ScimError::not_found("Group", id));
        };
        let schemas_ok = body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == super::PATCH_OP));
        let Some(operations) = body["Operations"].as_array().filter(|_| schemas_ok) else {
            return Err(ScimError::bad(
                "invalidSyntax",
                "the body must be a PatchOp with `schemas` and `Operations`",
            ));
        };
        let mut members = group.members.clone();
        for operation in operations {
            self.apply(&mut members, operation)?;
        }
        let changed = self.groups.get(id).is_some_and(|g| g.members != members);
        if changed {
            let version = self.bump();
            if let Some(group) = self.groups.get_mut(id) {
                group.members = members;
                group.version = version;
            }
        }
        Ok(changed)
    }

    fn apply(&self, members: &mut Vec<String>, operation: &Value) -> Result<(), ScimError> {
        let op = operation["op"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = operation["path"].as_str();
        let value = &operation["value"];
        match (op.as_str(), path) {
            ("add", Some(p)) if p.eq_ignore_ascii_case("members") => {
                for id in self.member_values(value)? {
                    if !members.contains(&id) {
                        members.push(id);
                    }
                }
            }
            // No path: the value holds the attributes to add (RFC 7644 §3.5.2.1).
            ("add", None) if value.get("members").is_some() => {
                for id in self.member_values(&value["members"])? {
                    if !members.contains(&id) {
                        members.push(id);
                    }
                }
            }
            ("replace", Some(p)) if p.eq_ignore_ascii_case("members") => {
                *members = self.member_values(value)?;
            }
            ("remove", Some(p)) if p.eq_ignore_ascii_case("members") => members.clear(),
            ("remove", Some(p)) => {
                let target = member_filter(p)?;
                match members.iter().position(|m| *m == target) {
                    Some(i) => {
                        members.remove(i);
                    }
                    None if self.non_member_removal == NonMemberRemoval::NoTarget => {
                        return Err(ScimError::bad(
                            "noTarget",
                            format!("the filter {p:?} matched no member"),
                        ));
                    }
                    None => {}
                }
            }
            ("add" | "replace" | "remove", _) => {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!(
                        "the path {path:?} is not supported; this service edits `members` only"
                    ),
                ));
            }
            _ => {
                return Err(ScimError::bad(
                    "invalidSyntax",
                    format!("unknown op {:?}", operation["op"]),
                ));
            }
        }
        Ok(())
    }

    /// The ids of a `members` value: an array of `{"value": "<User id>"}`, each an
    /// existing User (stricter than scim2-server, which accepts dangling ids).
    fn member_values(&self, value: &Value) -> Result<Vec<String>, ScimError> {
        let Some(items) = value.as_array() else {
            return Err(ScimError::bad("invalidValue", "members must be an array"));
        };
        items
            .iter()
            .map(|item| match item["value"].as_str() {
                Some(id) if self.users.contains_key(id) => Ok(id.to_owned()),
                Some(id) => Err(ScimError::bad(
                    "invalidValue",
                    format!("no User with id {id:?}"),
                )),
                None => Err(ScimError::bad(
                    "invalidValue",
                    "each member needs a `value`",
                )),
            })
            .collect()
    }

    pub fn user_matches(user: &User, filter: &[Clause]) -> Result<bool, ScimError> {
        filter.iter().try_fold(true, |all, (attr, value)| {
            let hit = match attr.to_ascii_lowercase().as_str() {
                "id" => user.id == *value,
                "username" => user.user_name.eq_ignore_ascii_case(value),
                _ => return Err(unfilterable(attr)),
            };
            Ok(all && hit)
        })
    }

    pub fn group_matches(group: &Group, filter: &[Clause]) -> Result<bool, ScimError> {
        filter.iter().try_fold(true, |all, (attr, value)| {
            let hit = match attr.to_ascii_lowercase().as_str() {
                "id" => group.id == *value,
                "displayname" => group.display_name.eq_ignore_ascii_case(value),
                "members.value" | "members" => group.members.contains(value),
                _ => return Err(unfilterable(attr)),
            };
            Ok(all && hit)
        })
    }
}

fn unfilterable(attr: &str) -> ScimError {
    ScimError::bad(
        "invalidFilter",
        format!("filtering on {attr:?} is not supported"),
    )
}

/// The user id in a `members[value eq "<id>"]` path.
fn member_filter(path: &str) -> Result<String, ScimError> {
    let inner = path
        .strip_suffix(']')
        .and_then(|p| p.split_once('['))
        .filter(|(attr, _)| attr.trim().eq_ignore_ascii_case("members"))
        .map(|(_, filter)| filter);
    let clauses = inner.map(parse_filter).transpose()?;
    match clauses.as_deref() {
        Some([(attr, value)]) if attr.eq_ignore_ascii_case("value") => Ok(value.clone()),
        _ => Err(ScimError::bad(
            "invalidPath",
            format!("unsupported path {path:?}; use members[value eq \"<id>\"]"),
        )),
    }
}

/// Parses the filters this simulator understands: `attr eq "value"` joined by `and`
/// (RFC 7644 §3.4.2.2; values are JSON string literals; keywords case-insensitive).
pub fn parse_filter(text: &str) -> Result<Vec<Clause>, ScimError> {
    let invalid = |why: &str| ScimError::bad("invalidFilter", format!("{why} in filter {text:?}"));
    let mut clauses = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let (attr, after) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid("expected `attr eq \"value\"`"))?;
        let after = after.trim_start();
        let (op, after) = after
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid("expected a value"))?;
        if !op.eq_ignore_ascii_case("eq") {
            return Err(invalid("only the `eq` operator is supported"));
        }
        let after = after.trim_start();
        let end = string_end(after).ok_or_else(|| invalid("expected a quoted string"))?;
        let value: String =
            serde_json::from_str(&after[..end]).map_err(|_| invalid("bad string"))?;
        clauses.push((attr.to_owned(), value));
        rest = after[end..].trim_start();
        if rest.is_empty() {
            return Ok(clauses);
        }
        rest = match rest.split_once(char::is_whitespace) {
            Some((and, next)) if and.eq_ignore_ascii_case("and") => next.trim_start(),
            _ => return Err(invalid("only `and` may join comparisons")),
        };
    }
}

/// The byte just past the JSON string literal `s` starts with.
fn string_end(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut escaped = false;
    for (i, c) in chars {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_parse() {
        assert_eq!(
            parse_filter(r#"userName eq "bjensen""#),
            Ok(vec![("userName".into(), "bjensen".into())])
        );
        assert_eq!(
            parse_filter(r#"id eq "g 1" AND members.value eq "a\"b""#),
            Ok(vec![
                ("id".into(), "g 1".into()),
                ("members.value".into(), "a\"b".into())
            ])
        );
        for bad in [
            "",
            "userName",
            r#"userName co "x""#,
            r#"userName eq x"#,
            r#"a eq "x" or b eq "y""#,
            r#"a eq "x"#,
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    fn patch(op: Value) -> Value {
        json!({ "schemas": [super::super::PATCH_OP], "Operations": [op] })
    }

    #[test]
    fn members_are_added_once_and_removed_by_filter() {
        let mut world = World::new("http://x/scim/v2");
        let u = world.add_user("bjensen").expect("user");
        let g = world.add_group("Admins").expect("group");
        let add = patch(json!({"op": "add", "path": "members", "value": [{"value": u}]}));
        assert_eq!(world.patch_group(&g, &add), Ok(true));
        assert_eq!(world.patch_group(&g, &add), Ok(false));
        let remove = patch(json!({"op": "remove", "path": format!("members[value eq \"{u}\"]")}));
        assert_eq!(world.patch_group(&g, &remove), Ok(true));
        assert_eq!(
            world.patch_group(&g, &remove).map_err(|e| e.scim_type),
            Err(Some("noTarget"))
        );
        world.non_member_removal = NonMemberRemoval::NoContent;
        assert_eq!(world.patch_group(&g, &remove), Ok(false));
        let ghost = patch(json!({"op": "add", "path": "members", "value": [{"value": "ghost"}]}));
        assert_eq!(
            world.patch_group(&g, &ghost).map_err(|e| e.scim_type),
            Err(Some("invalidValue"))
        );
        assert_eq!(
            world.patch_group("nope", &add).map_err(|e| e.status),
            Err(404)
        );
        assert_eq!(
            world
                .add_user("BJensen")
                .map_err(|e| (e.status, e.scim_type)),
            Err((409, Some("uniqueness")))
        );
    }
}
