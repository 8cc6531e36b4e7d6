//! The [`StateStore`] contract as tests, written once against `&dyn StateStore`: every
//! backend runs all of them through [`state_store_suite!`] with one line that opens an
//! empty store (SQLite in `sqlite.rs`). What only one backend can show (file handling,
//! SQL plans, the stored format) stays with that backend's own tests. Refusal messages
//! are checked without the backend's name for its database ([`names_the_refusal`]).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;

/// `message` is the refusal of `operation` (`"cannot record people in "`), whatever the
/// backend calls its database, for `problem`.
pub(crate) fn names_the_refusal(message: &str, operation: &str, problem: &str) {
    assert!(
        message.starts_with(operation) && message.ends_with(&format!(": {problem}")),
        "expected {operation}<database>: {problem}\ngot {message}"
    );
}

/// A fixed time: 2027-03-01 plus `hours`.
pub(crate) fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0)
        .single()
        .expect("valid time")
        + chrono::Duration::hours(hours)
}

pub(crate) fn plugin_version(
    sha: &str,
    status: PluginStatus,
    decided: Option<i64>,
) -> PluginVersion {
    PluginVersion {
        app: "wiki".into(),
        sha256: sha.into(),
        profile: json!({ "imports": [sha] }),
        status,
        previous: None,
        widened: vec![format!("new import {sha}")],
        seen_at: at(0),
        decided_at: decided.map(at),
        decided_by: decided.map(|_| "carol".to_owned()),
    }
}

pub(crate) fn target(app: &str, kind: &str, resource: &str) -> Target {
    Target::new(app, kind, resource)
}

pub(crate) fn person(id: &str, department: &str) -> PersonRecord {
    PersonRecord {
        id: id.into(),
        name: Some(format!("Person {id}")),
        attributes: json!({ "department": department, "level": 3, "tags": ["a", "b"] }),
        accounts: BTreeMap::from([("github".to_string(), format!("gh-{id}"))]),
        status: PersonRecord::ACTIVE.into(),
        updated_at: at(0),
    }
}

pub(crate) fn desired(person: &str, target: Target, level: Option<&str>) -> DesiredRow {
    DesiredRow {
        person: person.into(),
        target,
        level: level.map(String::from),
        rules: vec!["platform-engineer".into()],
        sensitive: false,
        policy_hash: "ignored".into(),
        computed_at: at(99),
    }
}

pub(crate) fn managed(person: &str, target: Target, level: Option<&str>) -> ManagedGrant {
    ManagedGrant {
        person: person.into(),
        target,
        subject: format!("gh-{person}"),
        level: level.map(String::from),
        rules: vec!["platform-engineer".into()],
        status: ManagedStatus::Active,
        granted_at: at(1),
        expires_at: None,
        policy_hash: "p1".into(),
        run_id: "run-1".into(),
    }
}

pub(crate) fn hold(person: &str, target: Target, reason: HoldReason) -> Hold {
    Hold {
        person: person.into(),
        target,
        reason,
        since: at(5),
        detail: "expired (for = 8h)".into(),
    }
}

pub(crate) fn observed(target: Target, subject: &str, level: Option<&str>) -> ObservedGrant {
    ObservedGrant {
        target,
        subject: subject.into(),
        level: level.map(String::from),
        pending: false,
        last_used_at: Some(at(-24)),
        observed_at: at(99),
    }
}

pub(crate) fn usage(subject: &str, resource: &str, last_used_at: DateTime<Utc>) -> UsageRecord {
    UsageRecord {
        app: "github".into(),
        subject: subject.into(),
        kind: "repository".into(),
        resource: resource.into(),
        last_used_at,
    }
}

pub(crate) fn run(id: &str, started_at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        id: id.into(),
        started_at,
        finished_at: None,
        as_of: Some(started_at),
        policy_hash: Some("p1".into()),
        summary: serde_json::Value::Null,
    }
}

pub(crate) fn action(run_id: &str, index: u32, outcome: &str) -> ActionRecord {
    ActionRecord {
        run_id: run_id.into(),
        index,
        idempotency_key: format!("{run_id}-{index}-abcdef012345"),
        op: "grant".into(),
        person: Some("E1001".into()),
        target: target("github", "repository", "acme/api"),
        subject: "gh-E1001".into(),
        level: Some("write".into()),
        reason: "policy platform-engineer".into(),
        outcome: outcome.into(),
        attempts: 1,
        detail: json!({ "http": [] }),
        finished_at: at(2),
    }
}

pub(crate) fn new_approval(person: &str, level: Option<&str>) -> NewApproval {
    NewApproval {
        person: person.into(),
        op: "grant".into(),
        target: target(
            "aws-staging",
            "managed-policy",
            "arn:aws:iam::aws:policy/Admin",
        ),
        subject: "josh".into(),
        level: level.map(String::from),
        rules: vec!["platform-oncall".into()],
        why: "sensitive entitlement".into(),
        requested_at: at(3),
        policy_hash: "p1".into(),
    }
}

pub(crate) fn the_accepted_plugin_is_the_one_decided_last_and_pending_ones_never_count(
    s: &dyn StateStore,
) {
    use crate::state::PluginStatus::{Accepted, Pending};
    assert_eq!(s.accepted_plugin("wiki").expect("read"), None);
    s.record_plugin_version(&plugin_version("a", Accepted, Some(1)))
        .expect("a");
    s.record_plugin_version(&plugin_version("b", Pending, None))
        .expect("b");
    assert_eq!(
        s.accepted_plugin("wiki")
            .expect("read")
            .map(|v| v.sha256)
            .as_deref(),
        Some("a")
    );
    // b accepted later: it is the current one; a rolled back to later again: a.
    s.record_plugin_version(&plugin_version("b", Accepted, Some(2)))
        .expect("b accepted");
    assert_eq!(
        s.accepted_plugin("wiki")
            .expect("read")
            .map(|v| v.sha256)
            .as_deref(),
        Some("b")
    );
    s.record_plugin_version(&plugin_version("a", Accepted, Some(3)))
        .expect("a again");
    let current = s.accepted_plugin("wiki").expect("read").expect("one");
    assert_eq!(current.sha256, "a");
    assert_eq!(current.widened, vec!["new import a"]);
    assert_eq!(current.decided_by.as_deref(), Some("carol"));
    assert_eq!(s.plugin_versions().expect("all").len(), 2);
    assert_eq!(
        s.plugin_version("wiki", "b")
            .expect("read")
            .map(|v| v.status),
        Some(Accepted)
    );
    assert_eq!(s.accepted_plugin("other").expect("read"), None);
}

pub(crate) fn people_are_upserted_by_id_and_listed_by_id(store: &dyn StateStore) {
    store
        .upsert_people(&[
            person("E2", "Data"),
            person("E10", "Sales"),
            person("E1", "Platform"),
        ])
        .expect("insert");
    let mut moved = person("E1", "Data");
    moved.status = PersonRecord::TERMINATED.into();
    moved.accounts.clear();
    moved.name = None;
    moved.updated_at = at(48);
    store.upsert_people(&[moved.clone()]).expect("update");

    let people = store.people().expect("people");
    let ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
    // Byte-wise, like Rust's String order.
    assert_eq!(ids, ["E1", "E10", "E2"]);
    assert_eq!(people[0], moved);
    assert_eq!(people[2], person("E2", "Data"));
}

pub(crate) fn a_person_with_an_unknown_status_is_refused_and_nothing_is_written(
    store: &dyn StateStore,
) {
    let mut odd = person("E2", "Data");
    odd.status = "on-leave".into();
    let err = store
        .upsert_people(&[person("E1", "Data"), odd])
        .expect_err("bad status");
    names_the_refusal(
        &err.to_string(),
        "cannot record people in ",
        "person E2 has status `on-leave`: expected `active` or `terminated`",
    );
    assert!(store.people().expect("people").is_empty());
}

pub(crate) fn replace_desired_replaces_the_snapshot_and_stamps_every_row(store: &dyn StateStore) {
    let api = target("github", "repository", "acme/api");
    let web = target("github", "repository", "acme/web");
    let slack = target("slack", "channel", "#platform");
    store
        .replace_desired(
            "old",
            at(0),
            &[
                desired("E1", api.clone(), Some("write")),
                desired("E9", web.clone(), None),
            ],
        )
        .expect("first");
    let mut sensitive = desired("E1", slack.clone(), None);
    sensitive.sensitive = true;
    store
        .replace_desired(
            "new",
            at(1),
            &[
                desired("E2", web.clone(), Some("read")),
                sensitive,
                desired("E1", api.clone(), Some("admin")),
            ],
        )
        .expect("second");

    let rows = store.desired().expect("desired");
    let keys: Vec<(&str, &Target)> = rows
        .iter()
        .map(|r| (r.person.as_str(), &r.target))
        .collect();
    assert_eq!(keys, [("E1", &api), ("E1", &slack), ("E2", &web)]);
    assert!(
        rows.iter()
            .all(|r| r.policy_hash == "new" && r.computed_at == at(1))
    );
    assert_eq!(rows[0].level.as_deref(), Some("admin"));
    assert!(rows[1].sensitive);
    assert_eq!(rows[1].rules, ["platform-engineer"]);
}

pub(crate) fn a_duplicate_desired_row_is_refused_and_the_old_snapshot_kept(store: &dyn StateStore) {
    let api = target("github", "repository", "acme/api");
    store
        .replace_desired("old", at(0), &[desired("E1", api.clone(), Some("write"))])
        .expect("first");
    let err = store
        .replace_desired(
            "new",
            at(1),
            &[
                desired("E1", api.clone(), Some("read")),
                desired("E1", api.clone(), None),
            ],
        )
        .expect_err("duplicate");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("two rows for person E1 on github repository acme/api"),
        "{err}"
    );
    let rows = store.desired().expect("desired");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].policy_hash, "old");
}

pub(crate) fn managed_grants_are_upserted_counted_and_forgotten(store: &dyn StateStore) {
    let api = target("github", "repository", "acme/api");
    let admin = target(
        "aws-staging",
        "managed-policy",
        "arn:aws:iam::aws:policy/Admin",
    );
    let mut pending = managed("E2", api.clone(), Some("read"));
    pending.status = ManagedStatus::Pending;
    store.record_managed(&pending).expect("pending");
    store
        .record_managed(&managed("E1", api.clone(), Some("write")))
        .expect("api");
    let mut timed = managed("E1", admin.clone(), None);
    timed.expires_at = Some(at(9));
    store.record_managed(&timed).expect("admin");
    assert_eq!(store.managed_count().expect("count"), 3);

    // Same (person, target): replaced, not added.
    let mut active = pending.clone();
    active.status = ManagedStatus::Active;
    active.level = Some("write".into());
    active.run_id = "run-2".into();
    store.record_managed(&active).expect("upsert");
    assert_eq!(store.managed_count().expect("count"), 3);

    let grants = store.managed().expect("managed");
    let keys: Vec<(&str, &Target)> = grants
        .iter()
        .map(|g| (g.person.as_str(), &g.target))
        .collect();
    assert_eq!(keys, [("E1", &admin), ("E1", &api), ("E2", &api)]);
    assert_eq!(grants[0], timed);
    assert_eq!(grants[2], active);

    assert!(store.forget_managed("E1", &api).expect("forget"));
    assert!(!store.forget_managed("E1", &api).expect("forget again"));
    assert!(!store.forget_managed("E3", &admin).expect("never managed"));
    assert_eq!(store.managed_count().expect("count"), 2);
    let left: Vec<(String, Target)> = store
        .managed()
        .expect("managed")
        .into_iter()
        .map(|g| (g.person, g.target))
        .collect();
    assert_eq!(left, [("E1".to_string(), admin), ("E2".to_string(), api)]);
}

pub(crate) fn holds_are_added_replaced_and_cleared(store: &dyn StateStore) {
    let api = target("github", "repository", "acme/api");
    let admin = target("aws-staging", "managed-policy", "Admin");
    store
        .add_hold(&hold("E2", api.clone(), HoldReason::Expired))
        .expect("hold");
    store
        .add_hold(&hold("E1", api.clone(), HoldReason::Expired))
        .expect("hold");
    store
        .add_hold(&hold("E1", admin.clone(), HoldReason::Expired))
        .expect("hold");
    let mut dormant = hold("E1", api.clone(), HoldReason::Dormant);
    dormant.since = at(30);
    dormant.detail = "unused for 132 days".into();
    store.add_hold(&dormant).expect("replace");

    let holds = store.holds().expect("holds");
    assert_eq!(holds.len(), 3);
    assert_eq!(holds[0].target, admin);
    assert_eq!(holds[1], dormant);
    assert_eq!(holds[2].person, "E2");

    assert!(store.clear_hold("E1", &api).expect("clear"));
    assert!(!store.clear_hold("E1", &api).expect("clear again"));
    let left: Vec<(String, Target)> = store
        .holds()
        .expect("holds")
        .into_iter()
        .map(|h| (h.person, h.target))
        .collect();
    assert_eq!(left, [("E1".to_string(), admin), ("E2".to_string(), api)]);
}

pub(crate) fn a_partial_listing_merges_without_removing_and_is_recorded_partial(
    store: &dyn StateStore,
) {
    let api = target("github", "repository", "acme/api");
    let web = target("github", "repository", "acme/web");
    store
        .replace_observed(
            "github",
            "repository",
            at(0),
            &[observed(api.clone(), "alice", Some("write"))],
        )
        .expect("complete listing");
    store
        .merge_partial_observed(
            "github",
            "repository",
            at(1),
            &[
                observed(web.clone(), "bob", Some("read")),
                observed(api.clone(), "alice", Some("admin")),
            ],
            "page 3 failed",
        )
        .expect("partial listing");
    let rows = store.observed().expect("observed");
    assert_eq!(rows.len(), 2, "nothing was removed: {rows:?}");
    let alice = rows.iter().find(|r| r.subject == "alice").expect("alice");
    assert_eq!(alice.level.as_deref(), Some("admin"), "updated in place");
    assert_eq!(alice.observed_at, at(1));
    let listings = store.observed_listings().expect("listings");
    assert_eq!(listings.len(), 1);
    assert!(!listings[0].complete);
    assert_eq!(listings[0].reason.as_deref(), Some("page 3 failed"));
    assert_eq!(listings[0].listed_at, at(1));
    // A later complete listing makes it complete again and replaces the rows.
    store
        .replace_observed("github", "repository", at(2), &[])
        .expect("complete listing");
    assert!(store.observed().expect("observed").is_empty());
    let listings = store.observed_listings().expect("listings");
    assert!(listings[0].complete && listings[0].reason.is_none());
    // A stray grant is refused, naming it.
    let err = store
        .merge_partial_observed(
            "github",
            "repository",
            at(3),
            &[observed(target("slack", "channel", "#x"), "a", None)],
            "x",
        )
        .expect_err("stray refused");
    assert!(err.to_string().contains("slack channel #x"), "{err}");
}

pub(crate) fn replace_observed_replaces_only_that_app_and_kind(store: &dyn StateStore) {
    let api = target("github", "repository", "acme/api");
    let web = target("github", "repository", "acme/web");
    let team = target("github", "team", "platform");
    let channel = target("slack", "channel", "#platform");
    store
        .replace_observed(
            "github",
            "repository",
            at(0),
            &[
                observed(web.clone(), "bob", Some("read")),
                observed(api.clone(), "alice", Some("write")),
            ],
        )
        .expect("repos");
    store
        .replace_observed(
            "github",
            "team",
            at(0),
            &[observed(team.clone(), "alice", None)],
        )
        .expect("teams");
    store
        .replace_observed(
            "slack",
            "channel",
            at(0),
            &[observed(channel.clone(), "U1", None)],
        )
        .expect("channels");

    // A new repository listing: bob lost acme/web, carol appeared, alice listed twice.
    let mut invited = observed(api.clone(), "carol", Some("read"));
    invited.pending = true;
    invited.last_used_at = None;
    store
        .replace_observed(
            "github",
            "repository",
            at(6),
            &[
                observed(api.clone(), "alice", Some("read")),
                invited.clone(),
                observed(api.clone(), "alice", Some("admin")),
            ],
        )
        .expect("new repos");

    let rows = store.observed().expect("observed");
    let keys: Vec<(&Target, &str)> = rows
        .iter()
        .map(|r| (&r.target, r.subject.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (&api, "alice"),
            (&api, "carol"),
            (&team, "alice"),
            (&channel, "U1")
        ]
    );
    // The later duplicate wins; the call's observed_at is stored.
    assert_eq!(rows[0].level.as_deref(), Some("admin"));
    assert_eq!(rows[0].observed_at, at(6));
    assert_eq!(
        rows[1],
        ObservedGrant {
            observed_at: at(6),
            ..invited
        }
    );
    // Other kinds and apps untouched.
    assert_eq!(rows[2].observed_at, at(0));
    assert_eq!(rows[3].observed_at, at(0));

    // An empty listing empties that app+kind only.
    store
        .replace_observed("github", "repository", at(7), &[])
        .expect("empty");
    assert_eq!(store.observed().expect("observed").len(), 2);
}

pub(crate) fn an_observed_grant_of_another_app_or_kind_is_refused(store: &dyn StateStore) {
    let api = target("github", "repository", "acme/api");
    store
        .replace_observed(
            "github",
            "repository",
            at(0),
            &[observed(api.clone(), "alice", None)],
        )
        .expect("repos");
    let err = store
        .replace_observed(
            "github",
            "team",
            at(1),
            &[
                observed(target("github", "team", "x"), "a", None),
                observed(api, "bob", None),
            ],
        )
        .expect_err("stray kind");
    names_the_refusal(
        &err.to_string(),
        "cannot replace observed team grants of github in ",
        "grant 1 of the listing is on github repository acme/api, which is not a team of github: each call stores one app's grants of one kind",
    );
    assert_eq!(store.observed().expect("observed").len(), 1);
}

pub(crate) fn a_received_hr_event_is_stored_once_and_read_back_in_arrival_order(
    store: &dyn StateStore,
) {
    let event = |id: &str, minute: i64| ReceivedHrEvent {
        id: id.into(),
        person: "E7".into(),
        received_at: at(minute),
        source: "workday".into(),
        entry: serde_json::json!({ "id": id, "type": "hire", "person": "E7",
                                   "effective": "2027-01-04" }),
    };
    assert_eq!(
        store
            .record_hr_events(&[event("ev-2", 1), event("ev-1", 2)])
            .expect("store"),
        vec![true, true]
    );
    // A replay, even with another body, changes nothing.
    let mut replay = event("ev-2", 3);
    replay.person = "E8".into();
    assert_eq!(
        store
            .record_hr_events(&[replay, event("ev-3", 4)])
            .expect("store"),
        vec![false, true]
    );
    let stored = store.hr_events().expect("read");
    let ids: Vec<&str> = stored.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["ev-2", "ev-1", "ev-3"]);
    assert_eq!(stored[0], event("ev-2", 1));
}

pub(crate) fn import_usage_keeps_the_latest_time_per_key(store: &dyn StateStore) {
    let changed = store
        .import_usage(&[
            usage("bob", "acme/web", at(-10)),
            usage("alice", "acme/api", at(-48)),
            usage("alice", "acme/api", at(-24)),
            usage("alice", "acme/api", at(-72)),
        ])
        .expect("import");
    // bob new, alice new, alice moved forward; the older alice record changes nothing.
    assert_eq!(changed, 3);
    // An older export changes nothing; a newer one moves forward.
    assert_eq!(
        store
            .import_usage(&[
                usage("alice", "acme/api", at(-100)),
                usage("bob", "acme/web", at(-10))
            ])
            .expect("old"),
        0
    );
    assert_eq!(
        store
            .import_usage(&[usage("bob", "acme/web", at(-1))])
            .expect("newer"),
        1
    );
    // Sub-second precision compares correctly (fixed-width text).
    let later = at(-24) + chrono::Duration::microseconds(500);
    assert_eq!(
        store
            .import_usage(&[usage("alice", "acme/api", later)])
            .expect("sub-second"),
        1
    );
    assert_eq!(
        store.usage().expect("usage"),
        [
            usage("alice", "acme/api", later),
            usage("bob", "acme/web", at(-1))
        ]
    );
}

pub(crate) fn runs_and_actions_are_recorded_in_order(store: &dyn StateStore) {
    store.begin_run(&run("run-b", at(5))).expect("b");
    store.begin_run(&run("run-a", at(9))).expect("a");
    store.begin_run(&run("run-c", at(5))).expect("c");
    store
        .record_action(&action("run-b", 2, "alerted"))
        .expect("2");
    store
        .record_action(&action("run-b", 0, "pending"))
        .expect("0");
    store
        .record_action(&action("run-b", 1, "verified"))
        .expect("1");
    // Updating an action replaces its record.
    let mut retried = action("run-b", 0, "verified");
    retried.attempts = 3;
    retried.person = None;
    retried.op = "revoke".into();
    store.record_action(&retried).expect("update 0");
    store
        .finish_run("run-b", at(6), &json!({ "verified": 2, "alerted": 1 }))
        .expect("finish");

    let runs = store.runs().expect("runs");
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["run-b", "run-c", "run-a"]);
    assert_eq!(runs[0].finished_at, Some(at(6)));
    assert_eq!(runs[0].summary, json!({ "verified": 2, "alerted": 1 }));
    assert_eq!(runs[1], run("run-c", at(5)));

    let actions = store.actions("run-b").expect("actions");
    assert_eq!(
        actions,
        [
            retried,
            action("run-b", 1, "verified"),
            action("run-b", 2, "alerted")
        ]
    );
    assert!(store.actions("run-a").expect("none").is_empty());
    assert!(store.actions("no-such-run").expect("unknown").is_empty());
}

pub(crate) fn run_misuse_is_refused(store: &dyn StateStore) {
    store.begin_run(&run("run-1", at(0))).expect("begin");
    let err = store.begin_run(&run("run-1", at(1))).expect_err("twice");
    names_the_refusal(
        &err.to_string(),
        "cannot begin run run-1 in ",
        "run run-1 was already begun at 2027-03-01T00:00:00Z: every run needs a new id",
    );
    store
        .finish_run("run-1", at(1), &json!({}))
        .expect("finish");
    let err = store
        .finish_run("run-1", at(2), &json!({}))
        .expect_err("finish twice");
    assert!(
        err.to_string()
            .ends_with("run run-1 already finished at 2027-03-01T01:00:00Z"),
        "{err}"
    );
    let err = store
        .finish_run("run-9", at(2), &json!({}))
        .expect_err("unknown run");
    assert!(matches!(err, StateError::NotFound { .. }), "{err:?}");
    let err = store
        .record_action(&action("run-9", 0, "verified"))
        .expect_err("action of unknown run");
    names_the_refusal(
        &err.to_string(),
        "cannot record action 0 of run run-9 in ",
        "there is no run run-9 (begin it before recording its actions)",
    );
    let mut bad = action("run-1", 0, "verified");
    bad.op = "delete".into();
    let err = store.record_action(&bad).expect_err("bad op");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    assert!(store.actions("run-1").expect("actions").is_empty());
}

pub(crate) fn request_approval_is_idempotent_while_open(store: &dyn StateStore) {
    let first = store
        .request_approval(&new_approval("E1001", None))
        .expect("first");
    assert_eq!(first.id, 1);
    assert_eq!(first.status, ApprovalStatus::Pending);
    assert_eq!(first.requested_at, at(3));
    assert_eq!(first.decided_by, None);

    // Asked again (a later plan, other wording): the same request comes back unchanged.
    let mut again = new_approval("E1001", None);
    again.requested_at = at(4);
    again.why = "sensitive entitlement (re-planned)".into();
    assert_eq!(store.request_approval(&again).expect("again"), first);

    // A different level, person or op is a different request.
    let level = store
        .request_approval(&new_approval("E1001", Some("read")))
        .expect("level");
    assert_eq!(level.id, 2);
    let other = store
        .request_approval(&new_approval("E2002", None))
        .expect("other person");
    assert_eq!(other.id, 3);
    let mut revoke = new_approval("E1001", None);
    revoke.op = "revoke".into();
    revoke.why = "dormant 132 days".into();
    assert_eq!(store.request_approval(&revoke).expect("revoke").id, 4);

    // Approved still counts as open.
    let approved = store
        .decide(first.id, true, "alice", None, at(5))
        .expect("approve");
    assert_eq!(
        store
            .request_approval(&new_approval("E1001", None))
            .expect("after approve"),
        approved
    );
    // Denied and done do not: asking again creates a new request.
    store
        .decide(level.id, false, "bob", Some("not needed"), at(5))
        .expect("deny");
    assert_eq!(
        store
            .request_approval(&new_approval("E1001", Some("read")))
            .expect("after deny")
            .id,
        5
    );
    store.mark_approval_done(first.id).expect("done");
    let fresh = store
        .request_approval(&new_approval("E1001", None))
        .expect("after done");
    assert_eq!(fresh.id, 6);
    assert_eq!(fresh.status, ApprovalStatus::Pending);

    let mut bad = new_approval("E1001", None);
    bad.op = "escalate".into();
    assert!(matches!(
        store.request_approval(&bad),
        Err(StateError::Invalid { .. })
    ));
}

pub(crate) fn deciding_twice_is_refused_naming_the_first_decision(store: &dyn StateStore) {
    let request = store
        .request_approval(&new_approval("E1001", None))
        .expect("request");
    let approved = store
        .decide(request.id, true, "alice", Some("incident 42"), at(5))
        .expect("approve");
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("alice"));
    assert_eq!(approved.decision_reason.as_deref(), Some("incident 42"));
    assert_eq!(approved.decided_at, Some(at(5)));
    assert_eq!(
        store.approval(request.id).expect("read"),
        Some(approved.clone())
    );

    let err = store
        .decide(request.id, false, "bob", None, at(6))
        .expect_err("twice");
    assert!(
        matches!(
            err,
            StateError::AlreadyDecided {
                id: 1,
                status: ApprovalStatus::Approved,
                ..
            }
        ),
        "{err:?}"
    );
    names_the_refusal(
        &err.to_string(),
        "cannot deny approval 1 in ",
        "approval 1 was already approved by alice at 2027-03-01T05:00:00Z (incident 42)",
    );
    // Unchanged.
    assert_eq!(store.approval(request.id).expect("read"), Some(approved));

    let denied = store
        .request_approval(&new_approval("E2002", None))
        .expect("request");
    store
        .decide(denied.id, false, "bob", None, at(7))
        .expect("deny");
    let err = store
        .decide(denied.id, true, "carol", None, at(8))
        .expect_err("approve a denied request");
    assert!(
        err.to_string()
            .ends_with("approval 2 was already denied by bob at 2027-03-01T07:00:00Z"),
        "{err}"
    );

    let err = store
        .decide(99, true, "alice", None, at(8))
        .expect_err("unknown");
    names_the_refusal(
        &err.to_string(),
        "cannot approve approval 99 in ",
        "there is no approval 99",
    );
    let err = store
        .decide(
            store
                .request_approval(&new_approval("E3003", None))
                .expect("request")
                .id,
            true,
            " ",
            None,
            at(8),
        )
        .expect_err("anonymous");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
}

pub(crate) fn only_approved_requests_are_marked_done(store: &dyn StateStore) {
    let request = store
        .request_approval(&new_approval("E1001", None))
        .expect("request");
    let err = store.mark_approval_done(request.id).expect_err("pending");
    names_the_refusal(
        &err.to_string(),
        "cannot mark approval 1 done in ",
        "approval 1 is pending, not approved: only an approved request is carried out",
    );
    store
        .decide(request.id, true, "alice", None, at(5))
        .expect("approve");
    store.mark_approval_done(request.id).expect("done");
    store
        .mark_approval_done(request.id)
        .expect("done again is a no-op");
    let done = store.approval(request.id).expect("read").expect("exists");
    assert_eq!(done.status, ApprovalStatus::Done);
    assert_eq!(done.decided_by.as_deref(), Some("alice"));
    let err = store
        .decide(request.id, true, "bob", None, at(6))
        .expect_err("decide a done request");
    assert!(
        err.to_string()
            .ends_with("approved by alice at 2027-03-01T05:00:00Z and carried out"),
        "{err}"
    );
    assert!(matches!(
        store.mark_approval_done(42),
        Err(StateError::NotFound { .. })
    ));
}

pub(crate) fn approvals_are_listed_in_order_and_filtered_by_status(store: &dyn StateStore) {
    let mut web = new_approval("E2", None);
    web.target = target("github", "repository", "acme/web");
    let e2 = store.request_approval(&web).expect("e2");
    let mut api = new_approval("E1", None);
    api.target = target("github", "repository", "acme/api");
    let e1_api = store.request_approval(&api).expect("e1 api");
    let e1_admin = store
        .request_approval(&new_approval("E1", None))
        .expect("e1 admin");
    store
        .decide(e1_admin.id, true, "alice", None, at(5))
        .expect("approve");

    let ids = |filter| -> Vec<i64> {
        store
            .approvals(filter)
            .expect("approvals")
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    // E1 on aws-staging, E1 on github, E2 on github.
    assert_eq!(ids(None), [e1_admin.id, e1_api.id, e2.id]);
    assert_eq!(ids(Some(ApprovalStatus::Pending)), [e1_api.id, e2.id]);
    assert_eq!(ids(Some(ApprovalStatus::Approved)), [e1_admin.id]);
    assert!(ids(Some(ApprovalStatus::Done)).is_empty());
    assert_eq!(store.approval(77).expect("read"), None);
}

pub(crate) fn an_in_memory_store_is_locked_within_the_process(store: &dyn StateStore) {
    let held = store.lock_run("run a").expect("lock");
    assert!(matches!(
        store.lock_run("run b"),
        Err(StateError::Locked { .. })
    ));
    drop(held);
    store.lock_run("run b").expect("free again");
}

pub(crate) fn open_intents_are_listed_oldest_first_until_settled(store: &dyn StateStore) {
    store.begin_run(&run("run-1", at(0))).expect("begin");
    let intent = |key: &str, index: u32, started: i64| Intent {
        idempotency_key: key.into(),
        run_id: "run-1".into(),
        index,
        person: Some("E1".into()),
        spec: json!({ "op": "grant", "key": key }),
        change: (index == 0).then(|| json!({ "op": "grant" })),
        policy_hash: Some("p".into()),
        as_of: at(0),
        started_at: at(started),
    };
    store.record_intent(&intent("k2", 1, 2)).expect("k2");
    store.record_intent(&intent("k1", 0, 1)).expect("k1");
    // Recording the same intent again (a retried journal entry) keeps the first.
    let mut again = intent("k1", 0, 9);
    again.person = Some("E9".into());
    store.record_intent(&again).expect("k1 again");
    let open = store.open_intents().expect("open");
    let keys: Vec<&str> = open.iter().map(|i| i.idempotency_key.as_str()).collect();
    assert_eq!(keys, ["k1", "k2"], "oldest first");
    assert_eq!(open[0], intent("k1", 0, 1));
    assert_eq!(open[1].change, None);
    store.close_intent("k1").expect("settle");
    store
        .close_intent("k1")
        .expect("settling twice is not an error");
    let open = store.open_intents().expect("open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].idempotency_key, "k2");
}

/// One `#[test]` per contract test above, each on a store `$open` makes (a fresh, empty
/// one per test). With `skip_unless:`, `$open` is an `Option` and a test whose store is
/// `None` (its backend is not available here, and it said so) passes without running.
macro_rules! state_store_suite {
    (skip_unless: $open:expr) => {
        $crate::state::suite::state_store_suite!(@tests match $open {
            Some(store) => store,
            None => return,
        });
    };
    ($open:expr) => {
        $crate::state::suite::state_store_suite!(@tests $open);
    };
    (@tests $open:expr) => {
        #[test]
        fn the_accepted_plugin_is_the_one_decided_last_and_pending_ones_never_count() {
            let store = $open;
            $crate::state::suite::the_accepted_plugin_is_the_one_decided_last_and_pending_ones_never_count(&store);
        }
        #[test]
        fn people_are_upserted_by_id_and_listed_by_id() {
            let store = $open;
            $crate::state::suite::people_are_upserted_by_id_and_listed_by_id(&store);
        }
        #[test]
        fn a_person_with_an_unknown_status_is_refused_and_nothing_is_written() {
            let store = $open;
            $crate::state::suite::a_person_with_an_unknown_status_is_refused_and_nothing_is_written(&store);
        }
        #[test]
        fn replace_desired_replaces_the_snapshot_and_stamps_every_row() {
            let store = $open;
            $crate::state::suite::replace_desired_replaces_the_snapshot_and_stamps_every_row(&store);
        }
        #[test]
        fn a_duplicate_desired_row_is_refused_and_the_old_snapshot_kept() {
            let store = $open;
            $crate::state::suite::a_duplicate_desired_row_is_refused_and_the_old_snapshot_kept(&store);
        }
        #[test]
        fn managed_grants_are_upserted_counted_and_forgotten() {
            let store = $open;
            $crate::state::suite::managed_grants_are_upserted_counted_and_forgotten(&store);
        }
        #[test]
        fn holds_are_added_replaced_and_cleared() {
            let store = $open;
            $crate::state::suite::holds_are_added_replaced_and_cleared(&store);
        }
        #[test]
        fn a_partial_listing_merges_without_removing_and_is_recorded_partial() {
            let store = $open;
            $crate::state::suite::a_partial_listing_merges_without_removing_and_is_recorded_partial(&store);
        }
        #[test]
        fn replace_observed_replaces_only_that_app_and_kind() {
            let store = $open;
            $crate::state::suite::replace_observed_replaces_only_that_app_and_kind(&store);
        }
        #[test]
        fn an_observed_grant_of_another_app_or_kind_is_refused() {
            let store = $open;
            $crate::state::suite::an_observed_grant_of_another_app_or_kind_is_refused(&store);
        }
        #[test]
        fn a_received_hr_event_is_stored_once_and_read_back_in_arrival_order() {
            let store = $open;
            $crate::state::suite::a_received_hr_event_is_stored_once_and_read_back_in_arrival_order(&store);
        }
        #[test]
        fn import_usage_keeps_the_latest_time_per_key() {
            let store = $open;
            $crate::state::suite::import_usage_keeps_the_latest_time_per_key(&store);
        }
        #[test]
        fn runs_and_actions_are_recorded_in_order() {
            let store = $open;
            $crate::state::suite::runs_and_actions_are_recorded_in_order(&store);
        }
        #[test]
        fn run_misuse_is_refused() {
            let store = $open;
            $crate::state::suite::run_misuse_is_refused(&store);
        }
        #[test]
        fn request_approval_is_idempotent_while_open() {
            let store = $open;
            $crate::state::suite::request_approval_is_idempotent_while_open(&store);
        }
        #[test]
        fn deciding_twice_is_refused_naming_the_first_decision() {
            let store = $open;
            $crate::state::suite::deciding_twice_is_refused_naming_the_first_decision(&store);
        }
        #[test]
        fn only_approved_requests_are_marked_done() {
            let store = $open;
            $crate::state::suite::only_approved_requests_are_marked_done(&store);
        }
        #[test]
        fn approvals_are_listed_in_order_and_filtered_by_status() {
            let store = $open;
            $crate::state::suite::approvals_are_listed_in_order_and_filtered_by_status(&store);
        }
        #[test]
        fn open_intents_are_listed_oldest_first_until_settled() {
            let store = $open;
            $crate::state::suite::open_intents_are_listed_oldest_first_until_settled(&store);
        }
        #[test]
        fn an_in_memory_store_is_locked_within_the_process() {
            let store = $open;
            $crate::state::suite::an_in_memory_store_is_locked_within_the_process(&store);
        }
    };
}
pub(crate) use state_store_suite;
