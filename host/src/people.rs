//! Who the people are, as of a time: a directory file (an HRIS export) plus HR events.
//!
//! Directory file (JSON):
//!
//! ```json
//! { "people": [
//!   { "id": "E1001", "name": "Josh Park",
//!     "attributes": { "department": "Platform", "title": "Platform Engineer", "level": 3,
//!                     "groups": ["oncall"] },
//!     "accounts": { "github": "josh-platform", "aws-dev": "josh" } } ] }
//! ```
//!
//! - `id` (required, unique, non-empty) and `name` (optional).
//! - `attributes`: any JSON values; policy rules see them as `person.<key>`, next to
//!   `person.id` and `person.name` (so `id` and `name` are reserved attribute keys). A
//!   `null` value means the attribute is absent.
//! - `accounts`: app instance name (as in `[apps.NAME]` of the config) -> that app's own
//!   id for the person. A policy rule that grants in an app the person has no account in
//!   is an error at plan time.
//!
//! HR events file (JSON):
//!
//! ```json
//! { "events": [
//!   { "id": "HR-4711", "type": "hire", "person": "E1001", "effective": "2026-12-01",
//!     "name": "Josh Park", "attributes": { "department": "Platform" },
//!     "accounts": { "github": "josh-platform" } },
//!   { "id": "HR-4790", "type": "transfer", "person": "E1001", "effective": "2027-03-01",
//!     "attributes": { "department": "Data", "team": null }, "accounts": { "aws-dev": null } },
//!   { "id": "HR-4901", "type": "terminate", "person": "E1001",
//!     "effective": "2027-06-30T17:00:00+02:00" } ] }
//! ```
//!
//! - `effective`: a date (`YYYY-MM-DD`, 00:00 UTC that day) or an RFC 3339 time.
//! - `hire` (needs `attributes` and `accounts`, `name` optional) adds a person, or rehires a
//!   terminated one with exactly the attributes and accounts of the event.
//! - `transfer` merges `attributes` and `accounts` (and replaces `name` if given) into an
//!   active person; a key set to `null` removes it.
//! - `terminate` (no other fields) marks the person terminated; they are kept so their
//!   grants can be revoked. Only a `hire` may follow.
//!
//! Events apply in `effective` order, ties in file order. Events after `now` are not
//! applied but returned as scheduled; they are still checked (a scheduled transfer of an
//! unknown person is an error today, not on the day it takes effect).
//!
//! Both files are strict: unknown keys, duplicate ids and empty ids are errors naming the
//! file, the person or event and the fix.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Attribute keys policy rules see as `person.id` and `person.name`; a directory attribute
/// of the same name would be ambiguous.
pub const RESERVED_ATTRIBUTES: [&str; 2] = ["id", "name"];

/// One person as of a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub name: Option<String>,
    /// Never holds `null`: a null attribute is an absent one.
    pub attributes: BTreeMap<String, Value>,
    /// App instance name -> the app's own subject id for this person.
    pub accounts: BTreeMap<String, String>,
    pub status: PersonStatus,
}

impl Person {
    pub fn is_active(&self) -> bool {
        self.status == PersonStatus::Active
    }

    /// `E1001 (Josh Park)`, or `E1001` without a name: how errors name a person.
    pub fn label(&self) -> String {
        person_label(&self.id, self.name.as_deref())
    }
}

pub(crate) fn person_label(id: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{id} ({name})"),
        None => id.to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PersonStatus {
    Active,
    /// Kept so the planner can revoke what they hold.
    Terminated {
        effective: DateTime<Utc>,
        /// The id of the terminate event.
        event: String,
    },
}

/// The directory file: everyone in the HRIS export, all active.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Directory {
    /// Where it was read from, for errors.
    pub origin: String,
    /// By id, sorted, so everything derived from it comes out in the same order.
    pub people: BTreeMap<String, Person>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    people: Vec<DirectoryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryEntry {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
    #[serde(default)]
    accounts: BTreeMap<String, String>,
}

/// What an HR event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HrEventKind {
    Hire,
    Transfer,
    Terminate,
}

impl std::fmt::Display for HrEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HrEventKind::Hire => "hire",
            HrEventKind::Transfer => "transfer",
            HrEventKind::Terminate => "terminate",
        })
    }
}

/// One change to a person, effective at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HrEvent {
    pub id: String,
    pub kind: HrEventKind,
    pub person: String,
    pub effective: DateTime<Utc>,
    pub name: Option<String>,
    /// For a transfer, `null` removes the attribute; a hire drops nulls.
    pub attributes: BTreeMap<String, Value>,
    /// `None` removes the account (transfer); a hire drops them.
    pub accounts: BTreeMap<String, Option<String>>,
}

/// The HR events file, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HrEvents {
    /// Where it was read from, for errors.
    pub origin: String,
    pub events: Vec<HrEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsFile {
    events: Vec<EventEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventEntry {
    id: String,
    #[serde(rename = "type")]
    kind: HrEventKind,
    person: String,
    effective: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    accounts: Option<BTreeMap<String, Option<String>>>,
}

/// The people as of `now`, and which events made them so.
#[derive(Debug, Clone, PartialEq)]
pub struct People {
    /// Active and terminated, by id.
    pub people: BTreeMap<String, Person>,
    /// Events applied, in the order they were applied.
    pub applied: Vec<HrEvent>,
    /// Events effective after `now`, in the order they will apply.
    pub scheduled: Vec<HrEvent>,
}

impl People {
    pub fn active(&self) -> impl Iterator<Item = &Person> {
        self.people.values().filter(|p| p.is_active())
    }
}

/// A problem with the directory or the HR events, naming the file, the person or event,
/// and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("cannot read {path}: {source}; check the path")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not JSON, or not the expected shape (serde's message has the line and column).
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Every problem found in one file, each naming the person or event and the fix.
    #[error("{}", render_problems(.path, .problems))]
    Invalid { path: String, problems: Vec<String> },
    /// An event that cannot apply to the person as they are at its effective time.
    #[error("{path}: {event}: {message}")]
    Event {
        path: String,
        event: String,
        person: String,
        message: String,
    },
}

fn render_problems(path: &str, problems: &[String]) -> String {
    match problems {
        [one] => format!("{path}: {one}"),
        many => {
            let mut text = format!("{path}: {} problems:", many.len());
            for p in many {
                text.push_str("\n  - ");
                text.push_str(p);
            }
            text
        }
    }
}

fn parse_error(path: &str, e: serde_json::Error) -> PeopleError {
    let mut message = e.to_string();
    if message.contains("unknown field") {
        message.push_str(" (remove the key or fix its spelling)");
    }
    PeopleError::Parse {
        path: path.to_owned(),
        message,
    }
}

/// A date (`YYYY-MM-DD`, meaning 00:00 UTC that day) or an RFC 3339 time.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Problems with attribute keys and account entries, shared by the directory and events.
fn check_keys(
    what: &str,
    attributes: &BTreeMap<String, Value>,
    accounts: impl Iterator<Item = (String, Option<String>)>,
    problems: &mut Vec<String>,
) {
    for reserved in RESERVED_ATTRIBUTES {
        if attributes.contains_key(reserved) {
            problems.push(format!(
                "{what}: attribute `{reserved}` is reserved (rules see the person's {reserved} \
                 as person.{reserved}): rename the attribute"
            ));
        }
    }
    if attributes.contains_key("") {
        problems.push(format!(
            "{what}: an attribute has an empty key: remove it or name it"
        ));
    }
    for (app, subject) in accounts {
        if app.is_empty() {
            problems.push(format!(
                "{what}: an account has an empty app name: use the app instance name from the config"
            ));
        }
        if subject.as_deref() == Some("") {
            problems.push(format!(
                "{what}: account `{app}` is empty: give the app's id for the person, or null to remove it"
            ));
        }
    }
}

impl Directory {
    pub fn load(path: &Path) -> Result<Directory, PeopleError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PeopleError::Read {
            path: origin.clone(),
            source,
        })?;
        Directory::parse(&text, &origin)
    }

    /// Parses directory text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Directory, PeopleError> {
        let file: DirectoryFile = serde_json::from_str(text).map_err(|e| parse_error(origin, e))?;
        let mut problems = Vec::new();
        let mut people = BTreeMap::new();
        let mut first_index: HashMap<String, usize> = HashMap::new();
        for (index, entry) in file.people.into_iter().enumerate() {
            let what = if entry.id.is_empty() {
                format!("people[{index}]")
            } else {
                format!("people[{index}] ({})", entry.id)
            };
            if entry.id.trim().is_empty() {
                problems.push(format!("{what}: empty id: give every person their HRIS id"));
                continue;
            }
            check_keys(
                &what,
                &entry.attributes,
                entry
                    .accounts
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone()))),
                &mut problems,
            );
            if let Some(first) = first_index.get(&entry.id) {
                problems.push(format!(
                    "{what}: duplicate id, also people[{first}]: merge the two entries"
                ));
                continue;
            }
            first_index.insert(entry.id.clone(), index);
            let mut attributes = entry.attributes;
            // A null attribute is an absent one, as in a transfer event.
            attributes.retain(|_, v| !v.is_null());
            people.insert(
                entry.id.clone(),
                Person {
                    id: entry.id,
                    name: entry.name,
                    attributes,
                    accounts: entry.accounts,
                    status: PersonStatus::Active,
                },
            );
        }
        if !problems.is_empty() {
            return Err(PeopleError::Invalid {
                path: origin.to_owned(),
                problems,
            });
        }
        Ok(Directory {
            origin: origin.to_owned(),
            people,
        })
    }
}

impl HrEvents {
    pub fn load(path: &Path) -> Result<HrEvents, PeopleError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PeopleError::Read {
            path: origin.clone(),
            source,
        })?;
        HrEvents::parse(&text, &origin)
    }

    /// Parses HR events text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<HrEvents, PeopleError> {
        let file: EventsFile = serde_json::from_str(text).map_err(|e| parse_error(origin, e))?;
        let mut problems = Vec::new();
        let mut events = Vec::new();
        let mut first_index: HashMap<String, usize> = HashMap::new();
        for (index, entry) in file.events.into_iter().enumerate() {
            let what = if entry.id.is_empty() {
                format!("events[{index}]")
            } else {
                format!("events[{index}] ({})", entry.id)
            };
            let before = problems.len();
            if entry.id.trim().is_empty() {
                problems.push(format!(
                    "{what}: empty id: give every event its HR system id"
                ));
            } else if let Some(first) = first_index.get(&entry.id) {
                problems.push(format!(
                    "{what}: duplicate event id, also events[{first}]: give each event its own id"
                ));
            } else {
                first_index.insert(entry.id.clone(), index);
            }
            if entry.person.trim().is_empty() {
                problems.push(format!(
                    "{what}: empty person: give the id of the person the event is about"
                ));
            }
            let effective = parse_time(&entry.effective);
            if effective.is_none() {
                problems.push(format!(
                    "{what}: effective `{}` is neither a date (2026-12-01) nor an RFC 3339 time \
                     (2026-12-01T09:00:00Z): fix the date",
                    entry.effective
                ));
            }
            match entry.kind {
                HrEventKind::Hire => {
                    if entry.attributes.is_none() {
                        problems.push(format!(
                            "{what}: a hire needs `attributes` (the person's department, title, ...): add them"
                        ));
                    }
                    if entry.accounts.is_none() {
                        problems.push(format!(
                            "{what}: a hire needs `accounts` (app name -> the app's id for the person): \
                             add them, or {{}} if there are none yet"
                        ));
                    }
                }
                HrEventKind::Transfer => {
                    if entry.attributes.is_none()
                        && entry.accounts.is_none()
                        && entry.name.is_none()
                    {
                        problems.push(format!(
                            "{what}: a transfer changes nothing: give `attributes`, `accounts` or `name`"
                        ));
                    }
                }
                HrEventKind::Terminate => {
                    if entry.attributes.is_some()
                        || entry.accounts.is_some()
                        || entry.name.is_some()
                    {
                        problems.push(format!(
                            "{what}: a terminate takes no `name`, `attributes` or `accounts`: remove them"
                        ));
                    }
                }
            }
            let attributes = entry.attributes.unwrap_or_default();
            let accounts = entry.accounts.unwrap_or_default();
            check_keys(
                &what,
                &attributes,
                accounts.iter().map(|(k, v)| (k.clone(), v.clone())),
                &mut problems,
            );
            if problems.len() > before {
                continue;
            }
            if let Some(effective) = effective {
                events.push(HrEvent {
                    id: entry.id,
                    kind: entry.kind,
                    person: entry.person,
                    effective,
                    name: entry.name,
                    attributes,
                    accounts,
                });
            }
        }
        if !problems.is_empty() {
            return Err(PeopleError::Invalid {
                path: origin.to_owned(),
                problems,
            });
        }
        Ok(HrEvents {
            origin: origin.to_owned(),
            events,
        })
    }
}

/// The people as of `now`: the directory with every event effective at or before `now`
/// applied in effective order (ties in file order). Later events are returned as
/// scheduled, after checking they would apply.
pub fn people_as_of(
    dir: &Directory,
    events: &HrEvents,
    now: DateTime<Utc>,
) -> Result<People, PeopleError> {
    let mut ordered: Vec<&HrEvent> = events.events.iter().collect();
    // Stable: events with the same effective time keep their file order.
    ordered.sort_by_key(|e| e.effective);

    let mut people = dir.people.clone();
    let mut applied = Vec::new();
    let mut scheduled = Vec::new();
    let mut as_of_now: Option<BTreeMap<String, Person>> = None;
    // Who last hired each person, so an error can say where they came from.
    let mut hired_by: HashMap<&str, &str> = HashMap::new();
    for event in ordered {
        if event.effective > now && as_of_now.is_none() {
            as_of_now = Some(people.clone());
        }
        apply(&mut people, event, &events.origin, &mut hired_by)?;
        if event.effective > now {
            scheduled.push(event.clone());
        } else {
            applied.push(event.clone());
        }
    }
    Ok(People {
        people: as_of_now.unwrap_or(people),
        applied,
        scheduled,
    })
}

fn apply<'e>(
    people: &mut BTreeMap<String, Person>,
    event: &'e HrEvent,
    origin: &str,
    hired_by: &mut HashMap<&'e str, &'e str>,
) -> Result<(), PeopleError> {
    let fail = |message: String| PeopleError::Event {
        path: origin.to_owned(),
        event: event.id.clone(),
        person: event.person.clone(),
        message,
    };
    let who = &event.person;
    let day = event.effective.to_rfc3339();
    match event.kind {
        HrEventKind::Hire => {
            if let Some(existing) = people.get(who)
                && existing.is_active()
            {
                let from = match hired_by.get(who.as_str()) {
                    Some(hire) => format!("hired by {hire}"),
                    None => "in the directory".to_owned(),
                };
                return Err(fail(format!(
                    "hire of {} on {day}, who is already active ({from}): use a transfer \
                     to change their attributes, or terminate them first",
                    existing.label()
                )));
            }
            let mut attributes = event.attributes.clone();
            attributes.retain(|_, v| !v.is_null());
            let accounts = event
                .accounts
                .iter()
                .filter_map(|(app, id)| id.clone().map(|id| (app.clone(), id)))
                .collect();
            // A rehire starts afresh: nothing of the previous employment carries over.
            people.insert(
                who.clone(),
                Person {
                    id: who.clone(),
                    name: event.name.clone(),
                    attributes,
                    accounts,
                    status: PersonStatus::Active,
                },
            );
            hired_by.insert(&event.person, &event.id);
        }
        HrEventKind::Transfer | HrEventKind::Terminate => {
            let Some(person) = people.get_mut(who) else {
                return Err(fail(format!(
                    "{} for {who} on {day}, who is not in the directory or any earlier hire \
                     event: add a hire event first (or fix the person id)",
                    event.kind
                )));
            };
            if let PersonStatus::Terminated {
                event: terminated_by,
                effective,
            } = &person.status
            {
                return Err(fail(format!(
                    "{} for {} on {day}, who was terminated by {terminated_by} on {}: only a \
                     hire (rehire) may follow a termination; fix the dates or add a hire",
                    event.kind,
                    person.label(),
                    effective.to_rfc3339()
                )));
            }
            if event.kind == HrEventKind::Terminate {
                person.status = PersonStatus::Terminated {
                    effective: event.effective,
                    event: event.id.clone(),
                };
                return Ok(());
            }
            if let Some(name) = &event.name {
                person.name = Some(name.clone());
            }
            for (key, value) in &event.attributes {
                if value.is_null() {
                    person.attributes.remove(key);
                } else {
                    person.attributes.insert(key.clone(), value.clone());
                }
            }
            for (app, id) in &event.accounts {
                match id {
                    Some(id) => {
                        person.accounts.insert(app.clone(), id.clone());
                    }
                    None => {
                        person.accounts.remove(app);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).expect("test time")
    }

    fn directory() -> Directory {
        Directory::parse(
            r#"{ "people": [
              { "id": "E1001", "name": "Josh Park",
                "attributes": { "department": "Platform", "title": "Platform Engineer",
                                "level": 3, "groups": ["oncall"], "team": null },
                "accounts": { "github": "josh-platform", "aws-dev": "josh" } },
              { "id": "E1000", "attributes": {}, "accounts": {} } ] }"#,
            "people.json",
        )
        .expect("directory parses")
    }

    fn events(text: &str) -> HrEvents {
        HrEvents::parse(text, "hr.json").expect("events parse")
    }

    fn problems(err: PeopleError) -> Vec<String> {
        match err {
            PeopleError::Invalid { problems, .. } => problems,
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn directory_parses_sorted_and_drops_null_attributes() {
        let dir = directory();
        let ids: Vec<_> = dir.people.keys().cloned().collect();
        assert_eq!(ids, ["E1000", "E1001"]);
        let josh = &dir.people["E1001"];
        assert_eq!(josh.label(), "E1001 (Josh Park)");
        assert_eq!(josh.attributes["level"], json!(3));
        assert!(!josh.attributes.contains_key("team"));
        assert_eq!(josh.accounts["github"], "josh-platform");
        assert!(josh.is_active());
        assert_eq!(dir.people["E1000"].label(), "E1000");
    }

    #[test]
    fn directory_rejects_unknown_keys_with_line() {
        let err = Directory::parse(
            "{ \"people\": [\n { \"id\": \"E1\", \"acounts\": {} } ] }",
            "people.json",
        )
        .expect_err("unknown key");
        let text = err.to_string();
        assert!(text.starts_with("people.json: "), "{text}");
        assert!(text.contains("acounts"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("remove the key"), "{text}");
    }

    #[test]
    fn directory_rejects_duplicate_and_empty_ids_and_reserved_keys_all_at_once() {
        let err = Directory::parse(
            r#"{ "people": [
              { "id": "E1" }, { "id": "" }, { "id": "E1" },
              { "id": "E2", "attributes": { "name": "x" }, "accounts": { "github": "" } } ] }"#,
            "people.json",
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("people.json: 4 problems:"), "{text}");
        let problems = problems(err);
        assert!(problems[0].contains("people[1]: empty id"), "{problems:?}");
        assert!(
            problems[1].contains("people[2] (E1): duplicate id, also people[0]"),
            "{problems:?}"
        );
        assert!(
            problems[2].contains("attribute `name` is reserved"),
            "{problems:?}"
        );
        assert!(
            problems[3].contains("account `github` is empty"),
            "{problems:?}"
        );
    }

    #[test]
    fn directory_requires_people_key() {
        let err = Directory::parse("{}", "people.json").expect_err("missing people");
        assert!(err.to_string().contains("missing field `people`"), "{err}");
    }

    #[test]
    fn effective_accepts_dates_and_rfc3339() {
        assert_eq!(at("2026-12-01"), at("2026-12-01T00:00:00Z"));
        assert_eq!(at("2026-12-01T02:00:00+02:00"), at("2026-12-01T00:00:00Z"));
        assert!(parse_time("2026-13-01").is_none());
        assert!(parse_time("tomorrow").is_none());
    }

    #[test]
    fn hire_transfer_terminate_in_effective_order() {
        // File order differs from effective order on purpose.
        let hr = events(
            r#"{ "events": [
              { "id": "HR-3", "type": "terminate", "person": "E2001", "effective": "2027-06-30" },
              { "id": "HR-1", "type": "hire", "person": "E2001", "effective": "2026-12-01",
                "name": "Ana Lima", "attributes": { "department": "Platform", "team": "core",
                "level": 2 }, "accounts": { "github": "ana" } },
              { "id": "HR-2", "type": "transfer", "person": "E2001", "effective": "2027-03-01",
                "name": "Ana Lima-Park",
                "attributes": { "department": "Data", "team": null, "level": 3 },
                "accounts": { "github": null, "aws-dev": "ana" } } ] }"#,
        );
        let dir = directory();

        let before = people_as_of(&dir, &hr, at("2026-11-30")).expect("as of");
        assert!(!before.people.contains_key("E2001"));
        assert!(before.applied.is_empty());
        let scheduled: Vec<_> = before.scheduled.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(scheduled, ["HR-1", "HR-2", "HR-3"]);

        // Effective exactly now is applied.
        let hired = people_as_of(&dir, &hr, at("2026-12-01")).expect("as of");
        let ana = &hired.people["E2001"];
        assert_eq!(ana.attributes["department"], json!("Platform"));
        assert_eq!(ana.attributes["team"], json!("core"));
        assert_eq!(ana.accounts["github"], "ana");
        assert_eq!(hired.applied.len(), 1);
        assert_eq!(hired.scheduled.len(), 2);

        let moved = people_as_of(&dir, &hr, at("2027-04-01")).expect("as of");
        let ana = &moved.people["E2001"];
        assert_eq!(ana.name.as_deref(), Some("Ana Lima-Park"));
        assert_eq!(ana.attributes["department"], json!("Data"));
        assert_eq!(ana.attributes["level"], json!(3));
        assert!(!ana.attributes.contains_key("team"), "null removes");
        assert!(!ana.accounts.contains_key("github"), "null removes");
        assert_eq!(ana.accounts["aws-dev"], "ana");
        assert!(ana.is_active());

        let gone = people_as_of(&dir, &hr, at("2027-07-01")).expect("as of");
        let ana = &gone.people["E2001"];
        assert_eq!(
            ana.status,
            PersonStatus::Terminated {
                effective: at("2027-06-30"),
                event: "HR-3".into()
            }
        );
        // Kept with their accounts so their grants can be revoked.
        assert_eq!(ana.accounts["aws-dev"], "ana");
        let applied: Vec<_> = gone.applied.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(applied, ["HR-1", "HR-2", "HR-3"]);
        assert!(gone.scheduled.is_empty());
        assert_eq!(gone.active().count(), 2);
        // The directory people are untouched.
        assert_eq!(gone.people["E1001"], dir.people["E1001"]);
    }

    #[test]
    fn ties_apply_in_file_order() {
        let hr = events(
            r#"{ "events": [
              { "id": "A", "type": "transfer", "person": "E1001", "effective": "2027-01-01",
                "attributes": { "title": "first" } },
              { "id": "B", "type": "transfer", "person": "E1001", "effective": "2027-01-01",
                "attributes": { "title": "second" } } ] }"#,
        );
        let people = people_as_of(&directory(), &hr, at("2027-01-02")).expect("as of");
        assert_eq!(people.people["E1001"].attributes["title"], json!("second"));
        let applied: Vec<_> = people.applied.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(applied, ["A", "B"]);
    }

    #[test]
    fn rehire_starts_afresh() {
        let hr = events(
            r#"{ "events": [
              { "id": "T", "type": "terminate", "person": "E1001", "effective": "2027-01-01" },
              { "id": "H", "type": "hire", "person": "E1001", "effective": "2027-02-01",
                "name": "Josh Park", "attributes": { "department": "Data" },
                "accounts": { "slack": "U1" } } ] }"#,
        );
        let between = people_as_of(&directory(), &hr, at("2027-01-15")).expect("as of");
        assert!(!between.people["E1001"].is_active());
        let back = people_as_of(&directory(), &hr, at("2027-02-01")).expect("as of");
        let josh = &back.people["E1001"];
        assert!(josh.is_active());
        assert_eq!(josh.attributes.len(), 1);
        assert_eq!(josh.attributes["department"], json!("Data"));
        assert_eq!(josh.accounts.len(), 1);
        assert_eq!(josh.accounts["slack"], "U1");
    }

    fn sequence_error(text: &str) -> (String, String) {
        let err = people_as_of(&directory(), &events(text), at("2026-01-01"))
            .expect_err("sequence error");
        let text = err.to_string();
        match err {
            PeopleError::Event { event, .. } => (event, text),
            other => panic!("expected Event, got {other}"),
        }
    }

    #[test]
    fn transfer_of_unknown_person_is_an_error_even_when_scheduled() {
        let (event, text) = sequence_error(
            r#"{ "events": [ { "id": "HR-4790", "type": "transfer", "person": "E9999",
                "effective": "2027-03-01", "attributes": { "title": "x" } } ] }"#,
        );
        assert_eq!(event, "HR-4790");
        assert!(
            text.starts_with("hr.json: HR-4790: transfer for E9999"),
            "{text}"
        );
        assert!(
            text.contains("not in the directory or any earlier hire event"),
            "{text}"
        );
        assert!(text.contains("add a hire event first"), "{text}");
    }

    #[test]
    fn terminate_of_unknown_person_is_an_error() {
        let (event, text) = sequence_error(
            r#"{ "events": [ { "id": "X", "type": "terminate", "person": "E9999",
                "effective": "2025-03-01" } ] }"#,
        );
        assert_eq!(event, "X");
        assert!(text.contains("terminate for E9999"), "{text}");
    }

    #[test]
    fn hire_of_active_person_is_an_error() {
        let (event, text) = sequence_error(
            r#"{ "events": [ { "id": "H", "type": "hire", "person": "E1001",
                "effective": "2025-03-01", "attributes": {}, "accounts": {} } ] }"#,
        );
        assert_eq!(event, "H");
        assert!(text.contains("E1001 (Josh Park)"), "{text}");
        assert!(text.contains("already active (in the directory)"), "{text}");
        assert!(text.contains("use a transfer"), "{text}");

        let (event, text) = sequence_error(
            r#"{ "events": [
              { "id": "H1", "type": "hire", "person": "E5", "effective": "2025-03-01",
                "attributes": {}, "accounts": {} },
              { "id": "H2", "type": "hire", "person": "E5", "effective": "2025-04-01",
                "attributes": {}, "accounts": {} } ] }"#,
        );
        assert_eq!(event, "H2");
        assert!(text.contains("already active (hired by H1)"), "{text}");
    }

    #[test]
    fn events_after_termination_are_errors() {
        let (event, text) = sequence_error(
            r#"{ "events": [
              { "id": "T", "type": "terminate", "person": "E1001", "effective": "2025-03-01" },
              { "id": "X", "type": "transfer", "person": "E1001", "effective": "2025-04-01",
                "attributes": { "title": "x" } } ] }"#,
        );
        assert_eq!(event, "X");
        assert!(text.contains("terminated by T"), "{text}");
        assert!(text.contains("only a hire (rehire) may follow"), "{text}");

        let (event, _) = sequence_error(
            r#"{ "events": [
              { "id": "T1", "type": "terminate", "person": "E1001", "effective": "2025-03-01" },
              { "id": "T2", "type": "terminate", "person": "E1001", "effective": "2025-04-01" } ] }"#,
        );
        assert_eq!(event, "T2");
    }

    #[test]
    fn event_file_problems_are_collected() {
        let err = HrEvents::parse(
            r#"{ "events": [
              { "id": "A", "type": "hire", "person": "E1", "effective": "2026-02-30" },
              { "id": "A", "type": "terminate", "person": "", "effective": "2026-01-01",
                "attributes": {} },
              { "id": "", "type": "transfer", "person": "E1", "effective": "2026-01-01" },
              { "id": "B", "type": "transfer", "person": "E1", "effective": "2026-01-01",
                "attributes": { "id": "x" }, "accounts": { "": "y" } } ] }"#,
            "hr.json",
        )
        .expect_err("invalid");
        let problems = problems(err);
        let expected = [
            "events[0] (A): effective `2026-02-30` is neither a date",
            "events[0] (A): a hire needs `attributes`",
            "events[0] (A): a hire needs `accounts`",
            "events[1] (A): duplicate event id, also events[0]",
            "events[1] (A): empty person",
            "events[1] (A): a terminate takes no",
            "events[2]: empty id",
            "events[2]: a transfer changes nothing",
            "events[3] (B): attribute `id` is reserved",
            "events[3] (B): an account has an empty app name",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, want) in problems.iter().zip(expected) {
            assert!(problem.starts_with(want), "{problem:?} vs {want:?}");
        }
    }

    #[test]
    fn event_file_rejects_unknown_type_and_keys() {
        let err = HrEvents::parse(
            r#"{ "events": [ { "id": "A", "type": "promote", "person": "E1", "effective": "2026-01-01" } ] }"#,
            "hr.json",
        )
        .expect_err("unknown type");
        let text = err.to_string();
        assert!(text.contains("promote"), "{text}");
        assert!(text.contains("hire"), "{text}");
        let err = HrEvents::parse(
            r#"{ "events": [ { "id": "A", "type": "terminate", "person": "E1", "effective": "2026-01-01", "reason": "x" } ] }"#,
            "hr.json",
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `reason`"), "{err}");
    }

    #[test]
    fn load_names_the_missing_file() {
        let err = Directory::load(Path::new("/nonexistent/people.json")).expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/people.json:"),
            "{err}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hr.json");
        std::fs::write(&path, r#"{ "events": [] }"#).expect("write");
        let hr = HrEvents::load(&path).expect("loads");
        assert!(hr.events.is_empty());
        assert_eq!(hr.origin, path.display().to_string());
    }
}
