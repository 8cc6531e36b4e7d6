//! Planning at scale: prints figures, asserts nothing (CI never gates on wall time).
//!
//! Run: `cargo bench -p portcullis --bench plan`
//!
//! 10,000 people against 25 rules (CEL conditions over department, title, level, location
//! and groups; 4-8 grants each, levels merged by kind order). Reported, in one process:
//! - policy evaluation alone (the baseline: CEL for every person and rule, grant merge);
//! - the whole plan against empty state (everyone is a joiner) and against steady state
//!   (every desired grant already managed: all "keep");
//! - rendering the plan as text;
//! - the SQLite side of an apply: writing the desired snapshot and every managed grant,
//!   and reading managed grants back, on a file in a temporary directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use portcullis::model::{ConnectorInfo, EntitlementKind};
use portcullis::people::{Directory, HrEvents, people_as_of};
use portcullis::plan::render::render;
use portcullis::plan::{StateSnapshot, plan};
use portcullis::policy::Policy;
use portcullis::state::{ManagedGrant, ManagedStatus, SqliteStore, StateStore};

const PEOPLE: usize = 10_000;
const RULES: usize = 25;
const DEPARTMENTS: [&str; 5] = ["Platform", "Data", "Security", "Sales", "Support"];
const TITLES: [&str; 4] = ["Engineer", "Senior Engineer", "Manager", "Analyst"];
const LOCATIONS: [&str; 3] = ["Berlin", "Lisbon", "Austin"];

fn catalog() -> BTreeMap<String, ConnectorInfo> {
    let kind = |name: &str, levels: &[&str]| EntitlementKind {
        name: name.into(),
        description: String::new(),
        levels: levels.iter().map(|l| (*l).to_owned()).collect(),
        read_modify_write: false,
    };
    let info = |name: &str, kinds| ConnectorInfo {
        name: name.into(),
        version: "1".into(),
        description: String::new(),
        kinds,
        capabilities: Vec::new(),
    };
    BTreeMap::from([
        (
            "github".to_owned(),
            info(
                "github",
                vec![kind(
                    "repository",
                    &["read", "triage", "write", "maintain", "admin"],
                )],
            ),
        ),
        (
            "slack".to_owned(),
            info("slack", vec![kind("channel", &[])]),
        ),
        (
            "jira".to_owned(),
            info("jira", vec![kind("project-role", &[])]),
        ),
        (
            "gdrive".to_owned(),
            info(
                "gdrive",
                vec![kind("file", &["reader", "commenter", "writer"])],
            ),
        ),
    ])
}

/// 25 rules: one per department, one per (department, title) for the first 4 departments
/// (16), and 4 cross-cutting ones over level, location and groups.
fn policy_text() -> String {
    let mut rules: Vec<(String, String, Vec<String>)> = Vec::new();
    for (d, dept) in DEPARTMENTS.iter().enumerate() {
        rules.push((
            format!("dept-{d}"),
            format!("person.department == \"{dept}\""),
            (0..4)
                .map(|i| grant("slack", "channel", &format!("#{d}-{i}"), None))
                .chain([grant(
                    "gdrive",
                    "file",
                    &format!("F-dept-{d}"),
                    Some("reader"),
                )])
                .collect(),
        ));
    }
    for (d, dept) in DEPARTMENTS.iter().take(4).enumerate() {
        for (t, title) in TITLES.iter().enumerate() {
            rules.push((
                format!("role-{d}-{t}"),
                format!("person.department == \"{dept}\" && person.title == \"{title}\""),
                (0..5)
                    .map(|i| {
                        grant(
                            "github",
                            "repository",
                            &format!("acme/{d}-{i}"),
                            Some(["read", "write", "maintain", "admin"][(t + i) % 4]),
                        )
                    })
                    .chain([grant(
                        "jira",
                        "project-role",
                        &format!("P{d}/Role{t}"),
                        None,
                    )])
                    .collect(),
            ));
        }
    }
    rules.push((
        "seniors".into(),
        "person.level >= 4".into(),
        vec![grant("gdrive", "file", "F-dept-0", Some("writer"))],
    ));
    rules.push((
        "berlin".into(),
        "person.location == \"Berlin\"".into(),
        vec![grant("slack", "channel", "#berlin", None)],
    ));
    rules.push((
        "oncall".into(),
        "\"oncall\" in person.groups".into(),
        vec![
            grant("slack", "channel", "#oncall", None),
            grant("github", "repository", "acme/runbooks", Some("write")),
        ],
    ));
    rules.push((
        "everyone".into(),
        "has(person.department)".into(),
        vec![grant("slack", "channel", "#general", None)],
    ));
    assert_eq!(rules.len(), RULES);
    let mut text = String::new();
    for (name, when, grants) in rules {
        let _ = writeln!(text, "[[rule]]\nname = \"{name}\"\nwhen = '{when}'\n");
        for g in grants {
            text.push_str(&g);
        }
    }
    text
}

fn grant(app: &str, kind: &str, resource: &str, level: Option<&str>) -> String {
    let level = level
        .map(|l| format!("level = \"{l}\"\n"))
        .unwrap_or_default();
    format!(
        "[[rule.grant]]\napp = \"{app}\"\nkind = \"{kind}\"\nresource = \"{resource}\"\n{level}\n"
    )
}

fn directory_text() -> String {
    let people: Vec<serde_json::Value> = (0..PEOPLE)
        .map(|i| {
            let groups: Vec<&str> = if i % 7 == 0 {
                vec!["engineering", "oncall"]
            } else {
                vec!["engineering"]
            };
            serde_json::json!({
                "id": format!("E{i:05}"),
                "name": format!("Person {i}"),
                "attributes": {
                    "department": DEPARTMENTS[i % DEPARTMENTS.len()],
                    "title": TITLES[(i / 5) % TITLES.len()],
                    "location": LOCATIONS[i % LOCATIONS.len()],
                    "level": (i % 6) as i64,
                    "groups": groups,
                },
                "accounts": {
                    "github": format!("user{i}"), "slack": format!("U{i:07}"),
                    "jira": format!("acct-{i}"), "gdrive": format!("p{i}@acme.example"),
                },
            })
        })
        .collect();
    serde_json::json!({ "people": people }).to_string()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let at = Utc
        .with_ymd_and_hms(2027, 1, 4, 9, 0, 0)
        .single()
        .expect("valid time");
    let catalog = catalog();
    let started = Instant::now();
    let policy = Policy::parse(&policy_text(), "bench-policy.toml").expect("policy");
    let parse = started.elapsed();
    let directory = Directory::parse(&directory_text(), "bench-people.json").expect("directory");
    let people = people_as_of(&directory, &HrEvents::default(), at).expect("people");

    // Baseline: evaluation alone.
    let started = Instant::now();
    let mut desired = 0usize;
    for person in people.people.values() {
        desired += policy
            .evaluate(person, &catalog)
            .expect("evaluates")
            .grants
            .len();
    }
    let evaluate = started.elapsed();

    let started = Instant::now();
    let joiners = plan(&policy, &people, &catalog, &StateSnapshot::default(), at).expect("plan");
    let plan_empty = started.elapsed();

    let managed: Vec<ManagedGrant> = joiners
        .desired
        .iter()
        .flatten()
        .map(|d| ManagedGrant {
            person: d.person.clone(),
            target: d.target.clone(),
            subject: String::new(),
            level: d.level.clone(),
            rules: d.rules.clone(),
            status: ManagedStatus::Active,
            granted_at: at,
            expires_at: None,
            policy_hash: d.policy_hash.clone(),
            run_id: "bench".into(),
        })
        .collect();
    let steady_state = StateSnapshot {
        managed: managed.clone(),
        ..StateSnapshot::default()
    };
    let started = Instant::now();
    let steady = plan(&policy, &people, &catalog, &steady_state, at).expect("plan");
    let plan_steady = started.elapsed();

    let started = Instant::now();
    let text = render(&joiners);
    let render_time = started.elapsed();

    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("bench.db")).expect("store");
    let started = Instant::now();
    store
        .replace_desired(
            policy.hash(),
            at,
            joiners.desired.as_deref().unwrap_or_default(),
        )
        .expect("desired");
    let write_desired = started.elapsed();
    let started = Instant::now();
    for m in &managed {
        store.record_managed(m).expect("managed");
    }
    let write_managed = started.elapsed();
    let started = Instant::now();
    let read = store.managed().expect("read");
    let read_managed = started.elapsed();
    assert_eq!(read.len(), managed.len());

    println!(
        "plan: {PEOPLE} people x {RULES} rules -> {desired} desired grants ({:.1} per person)",
        desired as f64 / PEOPLE as f64
    );
    println!(
        "    policy parse + CEL compile:           {:>8.1} ms",
        ms(parse)
    );
    println!(
        "    evaluation alone (baseline):          {:>8.1} ms",
        ms(evaluate)
    );
    println!(
        "    plan, empty state ({} to grant):   {:>8.1} ms  ({:.2}x evaluation)",
        joiners.summary.grant,
        ms(plan_empty),
        ms(plan_empty) / ms(evaluate)
    );
    println!(
        "    plan, steady state ({} kept):       {:>8.1} ms  ({:.2}x evaluation)",
        steady.summary.keep,
        ms(plan_steady),
        ms(plan_steady) / ms(evaluate)
    );
    println!(
        "    render as text ({:.1} MB):              {:>8.1} ms",
        text.len() as f64 / 1e6,
        ms(render_time)
    );
    println!(
        "    SQLite: replace desired snapshot:     {:>8.1} ms ({} rows, one transaction)",
        ms(write_desired),
        desired
    );
    println!(
        "    SQLite: record managed, row by row:   {:>8.1} ms ({:.1} us per grant, one transaction each)",
        ms(write_managed),
        ms(write_managed) * 1e3 / managed.len() as f64
    );
    println!(
        "    SQLite: read managed grants:          {:>8.1} ms",
        ms(read_managed)
    );
}
