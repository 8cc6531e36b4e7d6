//! Identity lifecycle end to end, through the library API the CLI uses: the example
//! policy (`examples/josh/policy.toml`) and HR events (`examples/josh/hr-events.json`)
//! planned and applied against the simulators and a real `moto_server`, with state in
//! SQLite.
//!
//! Josh is hired as a Platform Engineer (HR-4711, effective 2026-12-01): the plan is his
//! 24 grants (snapshot), applying it verifies 16 and leaves 8 GitHub invitations pending;
//! after he accepts them the next apply re-checks and verifies them, and the plan after
//! that keeps everything. Someone then adds him by hand to a repository the policy
//! manages: drift finds it and its correction revokes it. On 2027-03-01 he moves to Data
//! (HR-4790): the plan revokes what only Platform granted, keeps what engineering grants
//! everyone, lowers two levels in place (set-level: no revoke, no re-invitation) and
//! grants Data's; applying it
//! verifies all of that in the apps. On 2027-06-30 he leaves (HR-4901): every managed
//! grant in every app is revoked, after the blast-radius guard, which knows from state
//! how many grants Portcullis manages, stops the first attempt.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use portcullis::Host;
use portcullis::discover::discover;
use portcullis::drift::drift;
use portcullis::engine::{ActionOutcome, EngineOptions, NoProgress, RunError};
use portcullis::model::ConnectorInfo;
use portcullis::people::{Directory, HrEvents, People, people_as_of};
use portcullis::plan::execute::ApplyError;
use portcullis::plan::render::render;
use portcullis::plan::{ChangeOp, Plan, StateSnapshot, apply_plan, plan};
use portcullis::policy::Policy;
use portcullis::state::{ManagedStatus, SqliteStore, StateStore};
use portcullis_e2e::josh::{APPS, GITHUB_LOGIN, Josh};

fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/josh")
        .join(file)
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 0, 0)
        .single()
        .expect("valid date")
}

struct World {
    josh: Josh,
    host: Arc<Host>,
    store: SqliteStore,
    policy: Policy,
    directory: Directory,
    events: HrEvents,
    catalog: BTreeMap<String, ConnectorInfo>,
}

impl World {
    async fn start() -> World {
        let josh = Josh::start().await;
        let host = josh.host();
        let mut catalog = BTreeMap::new();
        for app in APPS {
            let info = host.connector_info(app).await.expect("describe");
            catalog.insert(app.to_owned(), info);
        }
        World {
            josh,
            host,
            store: SqliteStore::open_in_memory().expect("state store"),
            // Parsed under its repository path, so the plan text does not depend on where
            // the checkout lives.
            policy: Policy::parse(
                &std::fs::read_to_string(example("policy.toml")).expect("example policy"),
                "examples/josh/policy.toml",
            )
            .expect("example policy loads"),
            directory: Directory::load(&example("people.json")).expect("directory loads"),
            events: HrEvents::load(&example("hr-events.json")).expect("HR events load"),
            catalog,
        }
    }

    fn people(&self, at: DateTime<Utc>) -> People {
        people_as_of(&self.directory, &self.events, at).expect("people as of")
    }

    fn plan(&self, at: DateTime<Utc>) -> Plan {
        let state = StateSnapshot {
            managed: self.store.managed().expect("managed"),
            holds: self.store.holds().expect("holds"),
            approvals: self.store.approvals(None).expect("approvals"),
        };
        plan(&self.policy, &self.people(at), &self.catalog, &state, at).expect("plan")
    }

    async fn apply(
        &self,
        plan: &Plan,
        run: &str,
        options: &EngineOptions,
    ) -> Result<portcullis::plan::ApplyOutcome, ApplyError> {
        apply_plan(
            Arc::clone(&self.host),
            &self.store,
            plan,
            &self.people(plan.at),
            run,
            options,
            Arc::new(NoProgress),
            &portcullis::model::RunOrigin::default(),
        )
        .await
    }
}

fn ops(plan: &Plan) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for change in plan.people.iter().flat_map(|p| &p.changes) {
        let name = match change.op {
            ChangeOp::Grant { .. } => "grant",
            ChangeOp::Raise { .. } => "raise",
            ChangeOp::Lower { .. } => "lower",
            ChangeOp::Recheck { .. } => "recheck",
            ChangeOp::Revoke { .. } => "revoke",
            ChangeOp::Keep => "keep",
            _ => "other",
        };
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    counts
}

fn outcomes(outcome: &portcullis::plan::ApplyOutcome) -> (usize, usize, usize) {
    let r = &outcome.report;
    (
        r.count(|o| *o == ActionOutcome::Verified),
        r.count(|o| matches!(o, ActionOutcome::Pending { .. })),
        r.count(|o| matches!(o, ActionOutcome::Alerted { .. })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn josh_joins_moves_and_leaves_through_plans() {
    let world = World::start().await;
    let options = EngineOptions::default();

    // Before the hire is effective: nothing to do.
    let before = world.plan(day(2026, 11, 30));
    assert!(before.people.is_empty(), "{}", render(&before));
    assert_eq!(before.scheduled.len(), 3);

    // Joiner: his exact plan.
    let joiner = world.plan(day(2026, 12, 1));
    insta::assert_snapshot!("josh_joiner_plan", render(&joiner));
    assert_eq!(joiner.summary.grant, 24, "{}", render(&joiner));
    assert!(
        joiner
            .people
            .iter()
            .flat_map(|p| &p.changes)
            .all(|c| !c.target.app.contains("prod")),
        "no standing prod access"
    );
    // Plans are deterministic.
    assert_eq!(render(&joiner), render(&world.plan(day(2026, 12, 1))));

    let first = world
        .apply(&joiner, "hire-1", &options)
        .await
        .expect("apply runs");
    assert_eq!(outcomes(&first), (16, 8, 0), "{:#?}", first.report);
    // The run carries the wall-clock time it ran, and apart from it the plan's time.
    let runs = world.store.runs().expect("runs");
    let run = runs
        .iter()
        .find(|r| r.id == "hire-1")
        .expect("run recorded");
    assert_eq!(run.as_of, Some(day(2026, 12, 1)));
    let finished = run.finished_at.expect("finished");
    assert!(
        run.started_at > day(2026, 12, 5) && finished >= run.started_at,
        "{run:?}"
    );
    let managed = world.store.managed().expect("managed");
    assert_eq!(managed.len(), 24);
    assert_eq!(
        managed
            .iter()
            .filter(|m| m.status == ManagedStatus::Pending)
            .count(),
        8,
        "GitHub invitations are managed but pending"
    );
    assert!(managed.iter().all(|m| m.policy_hash == world.policy.hash()));

    // Pending is re-checked, never taken for success.
    let recheck = world.plan(day(2026, 12, 2));
    assert_eq!(
        ops(&recheck).get("recheck"),
        Some(&8),
        "{}",
        render(&recheck)
    );
    assert_eq!(world.josh.accept_invitations(), 8);
    let second = world
        .apply(&recheck, "hire-2", &options)
        .await
        .expect("apply runs");
    assert_eq!(outcomes(&second), (8, 0, 0), "{:#?}", second.report);
    let settled = world.plan(day(2026, 12, 3));
    assert_eq!(
        ops(&settled),
        BTreeMap::from([("keep".to_owned(), 24)]),
        "{}",
        render(&settled)
    );

    // Drift: someone adds Josh by hand to a repository the policy manages (the Data rule
    // grants it) but does not grant him.
    world.josh.github.add_repo("acme/data-pipelines");
    world.josh.github.set_collaborator(
        "acme/data-pipelines",
        portcullis_simulators::github::GITHUB_DEMO_BOT,
        "admin",
    );
    world
        .josh
        .github
        .set_collaborator("acme/data-pipelines", GITHUB_LOGIN, "admin");
    let managed = world.store.managed().expect("managed");
    let apps: Vec<String> = APPS.iter().map(|a| (*a).to_owned()).collect();
    let discovery = discover(
        &world.host,
        &world.store,
        &apps,
        Some(&world.policy),
        &managed,
        day(2026, 12, 4),
    )
    .await
    .expect("discover");
    let errors: Vec<&String> = discovery.listings.iter().flat_map(|l| &l.errors).collect();
    assert!(errors.is_empty(), "every app lists completely: {errors:#?}");
    let observed: Vec<_> = discovery.grants().cloned().collect();
    let people = world.people(day(2026, 12, 4));
    let (report, correction) = drift(
        &world.policy,
        &people,
        &world.catalog,
        &managed,
        &[],
        &observed,
        &discovery.complete(),
        day(2026, 12, 4),
    )
    .expect("drift");
    assert_eq!(report.outside_policy.len(), 1, "{report:#?}");
    assert_eq!(
        report.outside_policy[0].target.resource,
        "acme/data-pipelines"
    );
    assert!(report.missing.is_empty(), "{report:#?}");
    assert_eq!(correction.summary.revoke, 1);
    let fixed = world
        .apply(&correction, "drift-1", &options)
        .await
        .expect("apply runs");
    assert_eq!(outcomes(&fixed), (1, 0, 0), "{:#?}", fixed.report);
    assert_eq!(
        world
            .josh
            .github
            .collaborator_role("acme/data-pipelines", GITHUB_LOGIN),
        None
    );
    assert_eq!(
        world.store.managed().expect("managed").len(),
        24,
        "drift touched nothing managed"
    );

    // Mover: Platform -> Data.
    let mover = world.plan(day(2027, 3, 1));
    insta::assert_snapshot!("josh_mover_plan", render(&mover));
    let counts = ops(&mover);
    // Engineering's seven stay (one Drive file falls from writer to reader); Platform's
    // other grants go; Data's four arrive (platform-docs drops from write to read).
    assert_eq!(counts.get("keep"), Some(&6), "{}", render(&mover));
    assert_eq!(counts.get("lower"), Some(&2), "{}", render(&mover));
    assert_eq!(counts.get("revoke"), Some(&16), "{}", render(&mover));
    assert_eq!(counts.get("grant"), Some(&3), "{}", render(&mover));

    // Apply the move (16 revokes of 24 managed grants: the guard needs the override).
    world
        .josh
        .slack
        .add_channel("C0200DATAE", "data-eng", false);
    world.josh.slack.add_bot_to_channel("C0200DATAE");
    let mut allow = options.clone();
    allow.allow_large_revoke = true;
    let moved = world
        .apply(&mover, "move-1", &allow)
        .await
        .expect("apply runs");
    let (verified, pending, alerted) = outcomes(&moved);
    assert_eq!(alerted, 0, "{:#?}", moved.report);
    // One phase: 16 revokes, the two decreases as set-levels (contract 0.2.0: GitHub and
    // Drive change the permission in place, no revoke, no second invitation or share
    // notice), 3 grants. GitHub answers the new collaborator on data-pipelines with an
    // invitation: pending, re-checked later.
    assert_eq!((verified, pending), (20, 1), "{:#?}", moved.report);
    assert_eq!(moved.report.actions.len(), 21);
    let ops_run: Vec<_> = moved.report.actions.iter().map(|a| a.op).collect();
    assert_eq!(
        ops_run
            .iter()
            .filter(|op| **op == portcullis::model::Op::SetLevel)
            .count(),
        2,
        "{ops_run:?}"
    );
    assert_eq!(
        world
            .josh
            .github
            .collaborator_role("acme/platform-api", GITHUB_LOGIN),
        None,
        "what only Platform granted is gone"
    );
    assert_eq!(
        world
            .josh
            .github
            .collaborator_role("acme/platform-docs", GITHUB_LOGIN)
            .as_deref(),
        Some("read"),
        "the decrease changed the permission in place"
    );
    assert!(
        world
            .josh
            .github
            .pending_invitation("acme/platform-docs", GITHUB_LOGIN)
            .is_none(),
        "no second invitation: Josh was never removed"
    );
    let managed = world.store.managed().expect("managed");
    assert_eq!(managed.len(), 11, "6 kept + 2 lowered + 3 new");
    let runbooks = managed
        .iter()
        .find(|m| m.target.resource == "1IncidentRunbooks000aBcDeFgHiJkLmN")
        .expect("still managed");
    assert_eq!(runbooks.level.as_deref(), Some("reader"));

    // Leaver: every managed grant goes, in every app.
    let leaver = world.plan(day(2027, 6, 30));
    assert_eq!(
        ops(&leaver),
        BTreeMap::from([("revoke".to_owned(), 11)]),
        "{}",
        render(&leaver)
    );
    let refused = world.apply(&leaver, "leave-1", &options).await;
    assert!(
        matches!(
            refused,
            Err(ApplyError::Refused(RunError::BlastRadius { .. }))
        ),
        "11 of 11 managed grants is over the 20% share: {refused:?}"
    );
    assert_eq!(
        world.store.managed().expect("managed").len(),
        11,
        "nothing ran"
    );
    let gone = world
        .apply(&leaver, "leave-2", &allow)
        .await
        .expect("apply runs");
    assert_eq!(outcomes(&gone), (11, 0, 0), "{:#?}", gone.report);
    assert!(world.store.managed().expect("managed").is_empty());
    for repo in [
        "acme/platform-docs",
        "acme/data-pipelines",
        "acme/service-catalog",
    ] {
        assert_eq!(
            world.josh.github.collaborator_role(repo, GITHUB_LOGIN),
            None,
            "{repo}"
        );
        assert_eq!(
            world.josh.github.pending_invitation(repo, GITHUB_LOGIN),
            None,
            "a leaver's open invitations are cancelled too: {repo}"
        );
    }
    let after = world.plan(day(2027, 7, 1));
    assert!(after.people.is_empty(), "{}", render(&after));
}
