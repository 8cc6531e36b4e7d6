//! The demo's world: four in-process simulators seeded for the Josh scenario, a host over
//! the bundled plugins pointed at them, a SQLite state store in a temporary directory,
//! and the embedded policy and HR events. Dropping it stops the simulators and deletes the
//! directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tempfile::TempDir;

use crate::audit::{FanOut, JsonLinesSink, MemorySink};
use crate::config::{AppConfig, Config, NetworkPolicy};
use crate::discover::{Discovery, discover};
use crate::engine::{EngineOptions, NoProgress};
use crate::host::Host;
use crate::model::ConnectorInfo;
use crate::people::{Directory, HrEvents, People, parse_time, people_as_of};
use crate::plan::execute::ApplyError;
use crate::plan::{ApplyOutcome, Plan, StateSnapshot, apply_plan, plan};
use crate::policy::Policy;
use crate::secrets::SecretSource;
use crate::state::{ManagedGrant, SqliteStore, StateStore};
use portcullis_simulators::github::{GITHUB_DEMO_BOT, GITHUB_DEMO_REPOS};
use portcullis_simulators::{
    DriveSimulator, GDRIVE_DEMO_TOKEN, GITHUB_DEMO_TOKEN, GithubSimulator, JIRA_DEMO_EMAIL,
    JIRA_DEMO_TOKEN, JiraSimulator, SLACK_DEMO_TOKEN, SlackSimulator, gdrive_demo, github_demo,
    jira_demo, slack_demo,
};

/// The example policy without its AWS grants (see the file's header).
pub(super) const POLICY: &str = include_str!("policy.toml");
const POLICY_ORIGIN: &str = "host/src/cli/demo/policy.toml";
/// Josh's hire (2026-12-01), transfer (2027-03-01) and termination (2027-06-30).
pub(super) const HR_EVENTS: &str = include_str!("../../../../examples/josh/hr-events.json");
const HR_EVENTS_ORIGIN: &str = "examples/josh/hr-events.json";

/// Josh's employee id and his accounts, as his hire event (HR-4711) names them.
pub(super) const JOSH: &str = "E1001";
pub(super) const GITHUB_LOGIN: &str = "josh-platform";
const JIRA_ACCOUNT: &str = "712020:6f0a3c9e-2b4d-4e8a-9c1f-0a5b7d3e9f21";
const SLACK_USER: &str = "U0200JOSH1";
const EMAIL: &str = "josh@acme.example";

/// The repository someone grants Josh by hand in step (d): the Data rule manages it, so
/// drift judges it.
pub(super) const HAND_GRANTED_REPO: &str = "acme/data-pipelines";

/// What the simulators' demo seeds lack for the policy: (GitHub repositories, Slack
/// channels (id, name), Drive files (id, name), Jira roles of PLAT and OPS). The same as
/// the e2e Josh scenario, plus what the Data rule names, so discovery finds every
/// resource.
const REPOS: [&str; 6] = [
    "acme/platform-terraform",
    "acme/platform-k8s",
    "acme/platform-observability",
    "acme/service-catalog",
    "acme/platform-runbooks",
    HAND_GRANTED_REPO,
];
const CHANNELS: [(&str, &str); 5] = [
    ("C0200ALLHS", "engineering-all-hands"),
    ("C0200ONCAL", "platform-oncall"),
    ("C0200ALRTS", "platform-alerts"),
    ("C0200DPLOY", "deploys"),
    ("C0200DATAE", "data-eng"),
];
const FILES: [(&str, &str); 3] = [
    (
        "1PlatformDesignSystem0aBcDeFgHiJkL",
        "Platform design system",
    ),
    (
        "1PlatformArchDiagrams0aBcDeFgHiJkL",
        "Platform architecture diagrams",
    ),
    ("1IncidentRunbooks000aBcDeFgHiJkLmN", "Incident runbooks"),
];
const JIRA_ROLE: &str = "Reporters";

/// The configured apps, in the order the demo shows them.
pub(super) const APPS: [&str; 4] = ["github", "jira", "slack", "gdrive"];

/// The times the demo plans at, pinned so every run plans the same thing.
pub(super) mod at {
    /// HR-4711 is effective: Josh is hired.
    pub const HIRE: &str = "2026-12-01T09:00:00Z";
    /// The next day: his GitHub invitations are re-checked.
    pub const RECHECK: &str = "2026-12-02T09:00:00Z";
    /// Everything in force: the plan keeps it all.
    pub const SETTLED: &str = "2026-12-03T09:00:00Z";
    /// Someone has granted him a repository by hand.
    pub const DRIFT: &str = "2026-12-04T09:00:00Z";
    /// HR-4901 is effective: Josh leaves.
    pub const LEAVE: &str = "2027-06-30T09:00:00Z";
    /// The day after he left.
    pub const AFTER: &str = "2027-07-01T09:00:00Z";
}

/// The demo's state directory: deleted at the end, or the user's `--dir`.
enum StateDir {
    Temporary(TempDir),
    Kept(std::path::PathBuf),
}

impl StateDir {
    fn path(&self) -> &Path {
        match self {
            StateDir::Temporary(dir) => dir.path(),
            StateDir::Kept(dir) => dir,
        }
    }

    pub fn kept(&self) -> bool {
        matches!(self, StateDir::Kept(_))
    }
}

/// What `demo --dir` leaves besides state and trail: a config naming them, the policy and
/// the HR events, so `portcullis --config DIR/portcullis.toml audit verify` (and `audit
/// query`, `plan`) work on them afterwards.
fn write_workspace(dir: &Path) -> Result<(), String> {
    let config = r#"# Written by `portcullis demo --dir`: the demo's state, audit trail and policy.
# The demo's simulators stopped when it ended, so no [apps] are configured; use this
# config with `portcullis audit verify`, `audit query`, `audit prove`, `approvals`.
[state]
path = "state.db"

[audit]
path = "audit.jsonl"

[policy]
path = "policy.toml"

[people]
directory = "people.json"
events = "hr-events.json"
"#;
    for (name, text) in [
        ("portcullis.toml", config),
        ("policy.toml", POLICY),
        ("hr-events.json", HR_EVENTS),
        // Josh arrives through his hire event.
        ("people.json", r#"{ "people": [] }"#),
    ] {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
    }
    Ok(())
}

/// One of the [`at`] times.
pub(super) fn time(text: &str) -> DateTime<Utc> {
    parse_time(text).expect("the demo's times are RFC 3339")
}

pub(super) struct World {
    pub github: GithubSimulator,
    pub jira: JiraSimulator,
    pub slack: SlackSimulator,
    pub gdrive: DriveSimulator,
    pub host: Arc<Host>,
    pub audit: MemorySink,
    /// Declared before the directory it lives in, so it is closed before that is deleted.
    pub store: SqliteStore,
    /// Where state, audit trail and config live: a temporary directory, or `--dir`.
    state_dir: StateDir,
    pub policy: Policy,
    directory: Directory,
    events: HrEvents,
    pub catalog: BTreeMap<String, ConnectorInfo>,
    pub options: EngineOptions,
}

impl World {
    /// Starts and seeds the simulators, builds the host and opens the state store; in
    /// `dir` (kept, with a config and the audit trail) or a temporary directory.
    pub async fn start(dir: Option<&Path>) -> Result<World, String> {
        let (github, jira, slack, gdrive) = start_simulators()
            .await
            .map_err(|e| format!("cannot start a simulator: {e}"))?;
        let config = demo_config(&github, &jira, &slack, &gdrive)?;
        let state_dir = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                write_workspace(dir)?;
                StateDir::Kept(dir.to_owned())
            }
            None => StateDir::Temporary(
                tempfile::Builder::new()
                    .prefix("portcullis-demo-")
                    .tempdir()
                    .map_err(|e| {
                        format!("cannot create a temporary directory for the state: {e}")
                    })?,
            ),
        };
        let audit = MemorySink::new();
        let sink: Arc<dyn crate::audit::AuditSink> = match dir {
            Some(dir) => Arc::new(FanOut(vec![
                Arc::new(audit.clone()),
                Arc::new(JsonLinesSink::open(&dir.join("audit.jsonl")).map_err(|e| e.to_string())?),
            ])),
            None => Arc::new(audit.clone()),
        };
        let host = Host::builder(config)
            .audit(sink)
            .build()
            .map_err(|e| e.to_string())?;
        let mut catalog = BTreeMap::new();
        for app in APPS {
            let info = host
                .connector_info(app)
                .await
                .map_err(|e| format!("cannot describe app `{app}`: {e}"))?;
            catalog.insert(app.to_owned(), info);
        }
        let store =
            SqliteStore::open(&state_dir.path().join("state.db")).map_err(|e| e.to_string())?;
        Ok(World {
            github,
            jira,
            slack,
            gdrive,
            host: Arc::new(host),
            audit,
            store,
            state_dir,
            policy: Policy::parse(POLICY, POLICY_ORIGIN).map_err(|e| e.to_string())?,
            // The example's directory is empty: Josh arrives through his hire event.
            directory: Directory::default(),
            events: HrEvents::parse(HR_EVENTS, HR_EVENTS_ORIGIN).map_err(|e| e.to_string())?,
            catalog,
            options: EngineOptions::default(),
        })
    }

    pub fn base_urls(&self) -> [(&'static str, String); 4] {
        [
            ("github", self.github.base_url()),
            ("jira", self.jira.base_url()),
            ("slack", self.slack.base_url()),
            ("gdrive", self.gdrive.base_url()),
        ]
    }

    pub fn state_path(&self) -> std::path::PathBuf {
        self.state_dir.path().join("state.db")
    }

    /// True when the state directory outlives the demo (`--dir`).
    pub fn kept(&self) -> bool {
        self.state_dir.kept()
    }

    pub fn people(&self, at: DateTime<Utc>) -> Result<People, String> {
        people_as_of(&self.directory, &self.events, at).map_err(|e| e.to_string())
    }

    pub fn snapshot(&self) -> Result<StateSnapshot, String> {
        let err = |e: crate::state::StateError| e.to_string();
        Ok(StateSnapshot {
            managed: self.store.managed().map_err(err)?,
            holds: self.store.holds().map_err(err)?,
            approvals: self.store.approvals(None).map_err(err)?,
        })
    }

    pub fn managed(&self) -> Result<Vec<ManagedGrant>, String> {
        self.store.managed().map_err(|e| e.to_string())
    }

    /// The policy's plan at `at` against the state as it stands, as `portcullis plan`.
    pub fn plan(&self, at: DateTime<Utc>) -> Result<Plan, String> {
        let state = self.snapshot()?;
        plan(&self.policy, &self.people(at)?, &self.catalog, &state, at).map_err(|e| e.to_string())
    }

    /// Carries `plan` out and records it, as `portcullis apply`.
    pub async fn apply(
        &self,
        plan: &Plan,
        run_id: &str,
        allow_large_revoke: bool,
    ) -> Result<Result<ApplyOutcome, ApplyError>, String> {
        let people = self.people(plan.at)?;
        let mut options = self.options.clone();
        options.allow_large_revoke = allow_large_revoke;
        Ok(apply_plan(
            Arc::clone(&self.host),
            &self.store,
            plan,
            &people,
            run_id,
            &options,
            Arc::new(NoProgress),
            &crate::model::RunOrigin {
                source: "demo".into(),
                ..Default::default()
            },
        )
        .await)
    }

    /// Lists what every app holds, as `portcullis discover`.
    pub async fn discover(&self, at: DateTime<Utc>) -> Result<Discovery, String> {
        let apps: Vec<String> = APPS.iter().map(|a| (*a).to_owned()).collect();
        discover(
            &self.host,
            &self.store,
            &apps,
            Some(&self.policy),
            &self.managed()?,
            at,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Josh accepts every pending repository invitation, as he would on github.com;
    /// returns how many he accepted.
    pub fn accept_invitations(&self) -> usize {
        GITHUB_DEMO_REPOS
            .iter()
            .chain(REPOS.iter())
            .filter(|repo| self.github.accept_invitation(repo, GITHUB_LOGIN))
            .count()
    }
}

/// The demo's four simulators, seeded for Josh (also used by the crash-safety tests).
pub async fn start_simulators() -> std::io::Result<(
    GithubSimulator,
    JiraSimulator,
    SlackSimulator,
    DriveSimulator,
)> {
    let github = github_demo().await?;
    github.add_user(GITHUB_LOGIN);
    for repo in REPOS {
        github.add_repo(repo);
        github.set_collaborator(repo, GITHUB_DEMO_BOT, "admin");
    }

    let jira = jira_demo().await?;
    jira.add_named_user(JIRA_ACCOUNT, "Josh Park", EMAIL);
    for project in ["PLAT", "OPS"] {
        jira.add_role(project, JIRA_ROLE);
    }

    let slack = slack_demo().await?;
    slack.add_user(SLACK_USER, "josh");
    for (id, name) in CHANNELS {
        slack.add_channel(id, name, false);
        slack.add_bot_to_channel(id);
    }

    let gdrive = gdrive_demo().await?;
    for (id, name) in FILES {
        gdrive.add_file(id, name);
    }
    Ok((github, jira, slack, gdrive))
}

/// The demo's four apps: the bundled plugins pointed at the running simulators.
pub(super) fn demo_config(
    github: &GithubSimulator,
    jira: &JiraSimulator,
    slack: &SlackSimulator,
    gdrive: &DriveSimulator,
) -> Result<Config, String> {
    config(&[
        (
            "github",
            "github",
            github.base_url(),
            &[("token", GITHUB_DEMO_TOKEN)],
        ),
        (
            "jira",
            "jira",
            jira.base_url(),
            &[("email", JIRA_DEMO_EMAIL), ("api-token", JIRA_DEMO_TOKEN)],
        ),
        (
            "slack",
            "slack",
            slack.base_url(),
            &[("token", SLACK_DEMO_TOKEN)],
        ),
        (
            "gdrive",
            "gdrive",
            gdrive.base_url(),
            &[("token", GDRIVE_DEMO_TOKEN)],
        ),
    ])
}

/// The bundled plugins pointed at the simulators, with loopback explicitly allowed (it
/// is refused by default). Entries: (app, plugin, base URL, secrets).
type AppEntry<'a> = (&'a str, &'a str, String, &'a [(&'a str, &'a str)]);

fn config(apps: &[AppEntry<'_>]) -> Result<Config, String> {
    let mut config = Config::default();
    for (name, plugin, base_url, secrets) in apps {
        let base_url =
            url::Url::parse(base_url).map_err(|e| format!("simulator URL {base_url}: {e}"))?;
        config.apps.insert(
            (*name).to_owned(),
            AppConfig {
                plugin: (*plugin).to_owned(),
                base_url,
                secrets: secrets
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), SecretSource::Value((*v).into())))
                    .collect(),
                reveal: Vec::new(),
                settings: BTreeMap::new(),
                network: NetworkPolicy {
                    allow_loopback: true,
                    ..NetworkPolicy::default()
                },
                limits: None,
                rate_limit: Default::default(),
                ignore_subjects: Vec::new(),
            },
        );
    }
    Ok(config)
}
