//! Planner behaviour on synthetic catalogs and state: no connectors run. The end-to-end
//! lifecycle (joiner, mover, drift, leaver against simulators) is
//! `tests/e2e/tests/lifecycle.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::model::EntitlementKind;
use crate::people::{Directory, HrEvents, people_as_of};
use crate::state::{ApprovalStatus, HoldReason, NewApproval, SqliteStore, StateStore};

const POLICY: &str = r##"
[[rule]]
name = "sre"
when = 'person.team == "sre"'

[[rule.grant]]
app = "github"
kind = "repository"
resource = "acme/infra"
level = "write"

[[rule.grant]]
app = "github"
kind = "repository"
resource = "acme/prod-console"
level = "admin"
sensitive = true

[[rule.grant]]
app = "slack"
kind = "channel"
resource = "#oncall"
for = "8h"

[[rule]]
name = "sre-lead"
when = 'has(person.lead) && person.lead'

[[rule.grant]]
app = "github"
kind = "repository"
resource = "acme/infra"
level = "maintain"
"##;

const DIRECTORY: &str = r#"{ "people": [
  { "id": "E1", "name": "Ada", "attributes": { "team": "sre" },
    "accounts": { "github": "ada", "slack": "U1" } },
  { "id": "E2", "name": "Bo", "attributes": { "team": "web" },
    "accounts": { "github": "bo", "slack": "U2" } }
] }"#;

fn at(hour: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 4, 0, 0, 0)
        .single()
        .expect("valid")
        + Duration::hours(hour)
}

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
    ])
}

struct Fixture {
    policy: Policy,
    directory: Directory,
    store: SqliteStore,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            policy: Policy::parse(POLICY, "policy.toml").expect("policy"),
            directory: Directory::parse(DIRECTORY, "people.json").expect("directory"),
            store: SqliteStore::open_in_memory().expect("store"),
        }
    }

    fn plan(&self, at: DateTime<Utc>) -> Plan {
        let people = people_as_of(&self.directory, &HrEvents::default(), at).expect("people");
        let state = StateSnapshot {
            managed: self.store.managed().expect("managed"),
            holds: self.store.holds().expect("holds"),
            approvals: self.store.approvals(None).expect("approvals"),
        };
        plan(&self.policy, &people, &catalog(), &state, at).expect("plan")
    }

    /// What `apply` records when every action verifies.
    fn settle(&self, plan: &Plan) {
        for person in &plan.people {
            for c in &person.changes {
                match &c.op {
                    ChangeOp::Grant { time_bound, .. } | ChangeOp::Raise { time_bound, .. } => {
                        self.store
                            .record_managed(&ManagedGrant {
                                person: person.id.clone(),
                                target: c.target.clone(),
                                subject: c.subject.clone(),
                                level: c.level.clone(),
                                rules: c.rules.clone(),
                                status: ManagedStatus::Active,
                                granted_at: plan.at,
                                expires_at: time_bound.map(|b| b.expires_at(plan.at)),
                                policy_hash: plan.policy_hash.clone(),
                                run_id: "r".into(),
                            })
                            .expect("record");
                    }
                    ChangeOp::Revoke { hold, .. } => {
                        self.store
                            .forget_managed(&person.id, &c.target)
                            .expect("forget");
                        if let Some(hold) = hold {
                            self.store
                                .add_hold(&Hold {
                                    person: person.id.clone(),
                                    target: c.target.clone(),
                                    reason: hold.reason,
                                    since: plan.at,
                                    detail: hold.detail.clone(),
                                })
                                .expect("hold");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn change<'a>(plan: &'a Plan, person: &str, resource: &str) -> &'a Change {
    plan.people
        .iter()
        .find(|p| p.id == person)
        .and_then(|p| p.changes.iter().find(|c| c.target.resource == resource))
        .unwrap_or_else(|| {
            panic!(
                "no change for {person} {resource} in\n{}",
                render::render(plan)
            )
        })
}

#[test]
fn highest_level_wins_and_sensitive_waits_for_approval() {
    let f = Fixture::new();
    let plan = f.plan(at(0));
    let infra = change(&plan, "E1", "acme/infra");
    assert!(matches!(infra.op, ChangeOp::Grant { .. }));
    assert_eq!(infra.level.as_deref(), Some("write"));
    let console = change(&plan, "E1", "acme/prod-console");
    assert_eq!(console.op, ChangeOp::AwaitApproval { approval: None });
    assert!(
        plan.people.iter().all(|p| p.id != "E2"),
        "Bo matches no rule"
    );
    assert_eq!(plan.summary.grant, 2);
    assert_eq!(plan.summary.awaiting_approval, 1);
}

#[test]
fn a_time_bound_grant_expires_is_revoked_and_is_not_granted_again() {
    let f = Fixture::new();
    let first = f.plan(at(0));
    let oncall = change(&first, "E1", "#oncall");
    assert!(matches!(
        oncall.op,
        ChangeOp::Grant {
            time_bound: Some(crate::policy::TimeBound::For(_)),
            ..
        }
    ));
    f.settle(&first);
    let grant = f
        .store
        .managed()
        .expect("managed")
        .into_iter()
        .find(|m| m.target.resource == "#oncall")
        .expect("managed");
    assert_eq!(grant.expires_at, Some(at(8)));

    // Inside the window: kept.
    assert_eq!(change(&f.plan(at(7)), "E1", "#oncall").op, ChangeOp::Keep);
    // At the end: revoked, leaving a hold.
    let expired = f.plan(at(8));
    let revoke = change(&expired, "E1", "#oncall");
    let ChangeOp::Revoke {
        hold: Some(hold), ..
    } = &revoke.op
    else {
        panic!("expected a revoke with a hold: {revoke:?}");
    };
    assert_eq!(hold.reason, HoldReason::Expired);
    assert!(revoke.why.contains("expired"), "{}", revoke.why);
    f.settle(&expired);
    // The rule still matches, but the hold keeps it from coming back.
    let later = f.plan(at(30));
    assert!(matches!(
        change(&later, "E1", "#oncall").op,
        ChangeOp::Held { .. }
    ));
    assert_eq!(later.summary.grant, 0, "{}", render::render(&later));
}

#[test]
fn a_hold_the_policy_no_longer_needs_is_lifted() {
    let f = Fixture::new();
    f.store
        .add_hold(&Hold {
            person: "E2".into(),
            target: Target {
                app: "slack".into(),
                kind: "channel".into(),
                resource: "#oncall".into(),
            },
            reason: HoldReason::Expired,
            since: at(0),
            detail: "expired".into(),
        })
        .expect("hold");
    assert_eq!(
        change(&f.plan(at(1)), "E2", "#oncall").op,
        ChangeOp::LiftHold
    );
}

#[test]
fn approvals_decide_sensitive_grants_and_a_denial_is_not_asked_again() {
    let f = Fixture::new();
    let plan = f.plan(at(0));
    let console = change(&plan, "E1", "acme/prod-console");
    let request = |f: &Fixture| {
        f.store
            .request_approval(&NewApproval {
                person: "E1".into(),
                op: "grant".into(),
                target: console.target.clone(),
                subject: console.subject.clone(),
                level: console.level.clone(),
                rules: console.rules.clone(),
                why: "sensitive".into(),
                requested_at: at(0),
                policy_hash: plan.policy_hash.clone(),
            })
            .expect("request")
    };
    let approval = request(&f);
    assert_eq!(
        change(&f.plan(at(1)), "E1", "acme/prod-console").op,
        ChangeOp::AwaitApproval {
            approval: Some(approval.id)
        }
    );
    f.store
        .decide(approval.id, false, "carol", Some("not on call"), at(1))
        .expect("deny");
    let denied = f.plan(at(2));
    assert!(
        matches!(change(&denied, "E1", "acme/prod-console").op, ChangeOp::Denied { approval: id, .. } if id == approval.id),
        "{}",
        render::render(&denied)
    );

    // A new request (say the rule changed and someone asked again) can be approved; the
    // grant then carries the approval id, so apply marks it done.
    let again = request(&f);
    f.store
        .decide(again.id, true, "carol", Some("incident 42"), at(3))
        .expect("approve");
    let approved = f.plan(at(4));
    assert_eq!(
        change(&approved, "E1", "acme/prod-console").op,
        ChangeOp::Grant {
            approval: Some(again.id),
            time_bound: None,
            sensitive: true
        }
    );
    assert_eq!(
        f.store
            .approval(approval.id)
            .expect("read")
            .map(|a| a.status),
        Some(ApprovalStatus::Denied)
    );
}

#[test]
fn an_approved_dormancy_revoke_revokes_and_holds() {
    let f = Fixture::new();
    let first = f.plan(at(0));
    f.settle(&first);
    let infra = change(&first, "E1", "acme/infra");
    let request = f
        .store
        .request_approval(&NewApproval {
            person: "E1".into(),
            op: "revoke".into(),
            target: infra.target.clone(),
            subject: infra.subject.clone(),
            level: infra.level.clone(),
            rules: Vec::new(),
            why: "unused for 120 days".into(),
            requested_at: at(1),
            policy_hash: first.policy_hash.clone(),
        })
        .expect("request");
    assert_eq!(
        change(&f.plan(at(2)), "E1", "acme/infra").op,
        ChangeOp::Keep
    );
    f.store
        .decide(request.id, true, "carol", Some("confirmed unused"), at(2))
        .expect("approve");
    let plan = f.plan(at(3));
    let revoke = change(&plan, "E1", "acme/infra");
    let ChangeOp::Revoke {
        hold: Some(hold),
        approval: Some(id),
    } = &revoke.op
    else {
        panic!("expected an approved revoke with a hold: {revoke:?}");
    };
    assert_eq!((hold.reason, *id), (HoldReason::Dormant, request.id));
    f.settle(&plan);
    assert!(matches!(
        change(&f.plan(at(4)), "E1", "acme/infra").op,
        ChangeOp::Held { .. }
    ));
}

#[test]
fn a_promotion_raises_the_level_and_a_demotion_lowers_it() {
    let mut f = Fixture::new();
    let first = f.plan(at(0));
    f.settle(&first);
    f.directory = Directory::parse(
        &DIRECTORY.replace(r#""team": "sre" }"#, r#""team": "sre", "lead": true }"#),
        "people.json",
    )
    .expect("directory");
    let promoted = f.plan(at(1));
    assert_eq!(
        change(&promoted, "E1", "acme/infra").op,
        ChangeOp::Raise {
            from: Some("write".into()),
            time_bound: None
        }
    );
    f.settle(&promoted);
    f.directory = Directory::parse(DIRECTORY, "people.json").expect("directory");
    assert_eq!(
        change(&f.plan(at(2)), "E1", "acme/infra").op,
        ChangeOp::Lower {
            from: Some("maintain".into()),
            time_bound: None
        }
    );
}

#[test]
fn someone_who_vanishes_from_the_directory_loses_what_portcullis_granted() {
    let mut f = Fixture::new();
    let first = f.plan(at(0));
    f.settle(&first);
    f.directory = Directory::parse(
        r#"{ "people": [ { "id": "E2", "attributes": { "team": "web" }, "accounts": {} } ] }"#,
        "people.json",
    )
    .expect("directory");
    let plan = f.plan(at(1));
    let ada = plan
        .people
        .iter()
        .find(|p| p.id == "E1")
        .expect("E1 planned");
    assert_eq!(ada.status, "absent");
    assert!(
        ada.changes
            .iter()
            .all(|c| matches!(c.op, ChangeOp::Revoke { .. })),
        "{}",
        render::render(&plan)
    );
    assert_eq!(plan.summary.revoke, 2);
}

#[test]
fn a_person_missing_an_attribute_a_rule_reads_is_a_clear_error() {
    let f = Fixture {
        directory: Directory::parse(
            r#"{ "people": [ { "id": "E9", "name": "Cy", "attributes": {}, "accounts": {} } ] }"#,
            "people.json",
        )
        .expect("directory"),
        ..Fixture::new()
    };
    let people = people_as_of(&f.directory, &HrEvents::default(), at(0)).expect("people");
    let err = plan(
        &f.policy,
        &people,
        &catalog(),
        &StateSnapshot::default(),
        at(0),
    )
    .expect_err("missing attribute");
    let text = err.to_string();
    assert!(
        text.contains("E9 (Cy)") && text.contains("`team`"),
        "{text}"
    );
}

#[test]
fn plans_are_deterministic() {
    let f = Fixture::new();
    let a = render::render(&f.plan(at(0)));
    let b = render::render(&f.plan(at(0)));
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&f.plan(at(0))).expect("json"),
        serde_json::to_string(&f.plan(at(0))).expect("json")
    );
}
