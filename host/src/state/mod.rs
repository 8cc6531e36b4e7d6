//! Portcullis's memory between runs: who the people are, what the policy wants, which
//! grants Portcullis itself made (and so may revoke), what the apps report, when grants
//! were last used, what each run did, and which changes wait for a human decision.
//!
//! [`StateStore`] is the interface the planner and the CLI use; [`SqliteStore`] implements
//! it on a local SQLite file, [`PgStore`] on PostgreSQL for deployments with several hosts
//! (`[state] url`). The trait has no backend-specific types, and both backends pass the
//! same contract suite (`suite.rs`).
//!
//! Time: nothing here reads the clock. Every timestamp comes from the caller, so tests and
//! `--at` runs are reproducible. Backends keep timestamps to the microsecond (PostgreSQL's
//! precision); finer digits are dropped when stored.

mod checks;
mod lockfile;
pub mod pg;
mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::model::Target;
pub use pg::{PgStore, pg_config};
pub use sqlite::SqliteStore;

/// Proof that this process holds the state's run lock ([`StateStore::lock_run`]); dropping
/// it releases the lock. What it holds is the backend's business (an OS file lock, a
/// PostgreSQL advisory lock's connection).
pub struct RunLock {
    _held: Box<dyn Send + Sync>,
}

impl RunLock {
    /// Wraps whatever keeps the backend's lock held until it is dropped.
    pub fn new(held: impl Send + Sync + 'static) -> RunLock {
        RunLock {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for RunLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLock").finish_non_exhaustive()
    }
}

/// The error a backend wraps as the cause of a failure (a SQLite or PostgreSQL error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The store of Portcullis state. Every method is atomic: it either happens completely or
/// not at all, so a crash between two calls leaves the store consistent.
///
/// Every list method returns rows in a deterministic order, by person, then target (app,
/// kind, resource), byte-wise, so plans and reports built from them are stable across runs.
///
/// Object safe and `Send + Sync` so the CLI can hold a `Box<dyn StateStore>` chosen at run
/// time and share it across the engine's tasks.
pub trait StateStore: Send + Sync {
    // ---- people ----

    /// Insert or replace people by id. People not in `people` are left as they are:
    /// someone leaving the directory is a `terminated` record, never a deletion.
    fn upsert_people(&self, people: &[PersonRecord]) -> Result<(), StateError>;
    /// Every person, by id.
    fn people(&self) -> Result<Vec<PersonRecord>, StateError>;

    // ---- desired state ----

    /// Replace the whole desired-state snapshot with `rows`, in one transaction. The
    /// snapshot is one evaluation of one policy: `policy_hash` and `computed_at` are stored
    /// on every row, overriding the rows' own fields. Two rows for the same (person,
    /// target) are refused.
    fn replace_desired(
        &self,
        policy_hash: &str,
        computed_at: DateTime<Utc>,
        rows: &[DesiredRow],
    ) -> Result<(), StateError>;
    /// The current desired-state snapshot, by person and target.
    fn desired(&self) -> Result<Vec<DesiredRow>, StateError>;

    // ---- managed grants ----

    /// Every grant Portcullis made, by person and target.
    fn managed(&self) -> Result<Vec<ManagedGrant>, StateError>;
    /// How many grants Portcullis manages: the denominator of the engine's blast-radius
    /// guard (`engine.max_revoke_share`).
    fn managed_count(&self) -> Result<usize, StateError>;
    /// Record a grant Portcullis made, replacing any earlier record for the same (person,
    /// target): a level change or a pending invitation turning active is the same grant.
    fn record_managed(&self, grant: &ManagedGrant) -> Result<(), StateError>;
    /// Forget a managed grant after it was revoked. Returns whether there was one;
    /// forgetting a grant that is not recorded is not an error (a retried revoke).
    fn forget_managed(&self, person: &str, target: &Target) -> Result<bool, StateError>;

    // ---- holds ----

    /// Every hold, by person and target.
    fn holds(&self) -> Result<Vec<Hold>, StateError>;
    /// Put a hold on (person, target), replacing any hold already there.
    fn add_hold(&self, hold: &Hold) -> Result<(), StateError>;
    /// Lift the hold on (person, target). Returns whether there was one.
    fn clear_hold(&self, person: &str, target: &Target) -> Result<bool, StateError>;

    // ---- observed state ----

    /// Replace everything observed for one app and kind with `grants`, atomically: a grant
    /// missing from the new listing is gone from the app. Every grant must be of `app` and
    /// `kind` (anything else is refused); `observed_at` is stored on every row, overriding
    /// the grants' own field. If the listing holds the same (resource, subject) twice, the
    /// later one wins.
    fn replace_observed(
        &self,
        app: &str,
        kind: &str,
        observed_at: DateTime<Utc>,
        grants: &[ObservedGrant],
    ) -> Result<(), StateError>;
    /// Merge a partial listing (one the host stopped part-way) into what is observed for
    /// `app` and `kind`: its grants are added or updated, nothing is removed, and the
    /// listing is recorded as partial with `reason`, so no decision rests on absence.
    fn merge_partial_observed(
        &self,
        app: &str,
        kind: &str,
        observed_at: DateTime<Utc>,
        grants: &[ObservedGrant],
        reason: &str,
    ) -> Result<(), StateError>;
    /// Every observed grant, by target, then subject.
    fn observed(&self) -> Result<Vec<ObservedGrant>, StateError>;
    /// How each (app, kind) was last listed, by app and kind.
    fn observed_listings(&self) -> Result<Vec<ObservedListing>, StateError>;

    // ---- HR events received by the service ----

    /// Store HR events delivered to the service, all or none, before the delivery is
    /// answered. An id already stored is left as it was (a replay); the result says, per
    /// event in order, whether it was new.
    fn record_hr_events(&self, events: &[ReceivedHrEvent]) -> Result<Vec<bool>, StateError>;
    /// Every received HR event, in arrival order.
    fn hr_events(&self) -> Result<Vec<ReceivedHrEvent>, StateError>;

    // ---- usage ----

    /// Merge usage records: for each (app, kind, resource, subject) keep the latest
    /// `last_used_at`, so importing an old export never makes a grant look dormant.
    /// Returns how many records changed the store (new keys plus keys moved forward).
    fn import_usage(&self, records: &[UsageRecord]) -> Result<usize, StateError>;
    /// Every usage record, by app, kind, resource, then subject.
    fn usage(&self) -> Result<Vec<UsageRecord>, StateError>;

    // ---- runs and actions ----

    /// Take the run lock: at most one run that changes apps (`apply`, `drift --apply`)
    /// works on this state at a time, from reading the state for its plan to its last
    /// record, so two overlapping scheduled applies never both execute the same plan.
    /// `holder` says who is asking (process, command, start time); a refusal is
    /// [`StateError::Locked`] naming the current holder. The lock is released when the
    /// returned guard drops or the process ends, so a crashed run never leaves it stale.
    fn lock_run(&self, holder: &str) -> Result<RunLock, StateError>;

    /// Record the start of a run. Run ids are unique: beginning the same id twice is
    /// refused.
    fn begin_run(&self, run: &RunRecord) -> Result<(), StateError>;
    /// Record the end of a run begun with [`StateStore::begin_run`]. A run finishes once.
    fn finish_run(
        &self,
        id: &str,
        finished_at: DateTime<Utc>,
        summary: &serde_json::Value,
    ) -> Result<(), StateError>;
    /// Record (or update) action `index` of a begun run.
    fn record_action(&self, action: &ActionRecord) -> Result<(), StateError>;
    /// Records that an action is about to make its first write call; durable when this
    /// returns.
    fn record_intent(&self, intent: &Intent) -> Result<(), StateError>;
    /// Intents whose action was never settled (a run cut off), oldest first.
    fn open_intents(&self) -> Result<Vec<Intent>, StateError>;
    /// Settles an intent: its outcome is in state.
    fn close_intent(&self, idempotency_key: &str) -> Result<(), StateError>;
    /// Every run, by start time, then id.
    fn runs(&self) -> Result<Vec<RunRecord>, StateError>;
    /// The actions of one run, by index. Empty for an unknown run.
    fn actions(&self, run_id: &str) -> Result<Vec<ActionRecord>, StateError>;

    // ---- plugin versions (upgrade review) ----

    /// Records a plugin version, replacing the row for the same (app, sha256).
    fn record_plugin_version(&self, version: &PluginVersion) -> Result<(), StateError>;
    /// The version of `app` accepted last, if any.
    fn accepted_plugin(&self, app: &str) -> Result<Option<PluginVersion>, StateError>;
    /// One version of `app`.
    fn plugin_version(&self, app: &str, sha256: &str) -> Result<Option<PluginVersion>, StateError>;
    /// Every recorded version, by app, then when it was seen.
    fn plugin_versions(&self) -> Result<Vec<PluginVersion>, StateError>;

    // ---- approvals ----

    /// Ask for a decision. Idempotent: while a pending or approved request exists for the
    /// same (person, op, target, level), that request is returned unchanged instead of a
    /// new one, so planning twice never asks an approver twice. A denied or done request
    /// does not count: asking again after those creates a new request.
    fn request_approval(&self, new: &NewApproval) -> Result<Approval, StateError>;
    /// Approval requests, all or those with one status, by person, target, op, then id.
    fn approvals(&self, filter: Option<ApprovalStatus>) -> Result<Vec<Approval>, StateError>;
    /// One approval request by id.
    fn approval(&self, id: i64) -> Result<Option<Approval>, StateError>;
    /// Approve or deny a pending request, recording who, why and when. A request is decided
    /// once: deciding a request that is not pending is refused, naming the earlier decision.
    fn decide(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Approval, StateError>;
    /// Mark an approved request as carried out, so it no longer counts as open and a later
    /// need for the same change asks again. Marking a done request again is a no-op; a
    /// pending or denied request cannot be marked done (that would bypass the decision).
    fn mark_approval_done(&self, id: i64) -> Result<(), StateError>;
}

/// A person as the last plan saw them (directory plus applied HR events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRecord {
    pub id: String,
    pub name: Option<String>,
    /// The directory attributes (a JSON object), as the policy saw them.
    pub attributes: serde_json::Value,
    /// App instance name -> that app's subject id for the person.
    pub accounts: BTreeMap<String, String>,
    /// `active` or `terminated` (see [`PersonRecord::ACTIVE`]).
    pub status: String,
    pub updated_at: DateTime<Utc>,
}

impl PersonRecord {
    pub const ACTIVE: &'static str = "active";
    pub const TERMINATED: &'static str = "terminated";
}

/// A grant Portcullis made and verified (or left pending, like an invitation). These are
/// the only grants Portcullis may ever revoke: a grant it finds in an app without a record
/// here was made by someone else and is reported as drift, never removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagedGrant {
    pub person: String,
    pub target: Target,
    /// The app's id for the person, as used when granting (needed to revoke even after
    /// the person's account mapping changes).
    pub subject: String,
    pub level: Option<String>,
    /// The rules that wanted the grant when it was made.
    pub rules: Vec<String>,
    pub status: ManagedStatus,
    pub granted_at: DateTime<Utc>,
    /// When a time-bound grant must be revoked.
    pub expires_at: Option<DateTime<Utc>>,
    pub policy_hash: String,
    pub run_id: String,
}

/// Whether a managed grant is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagedStatus {
    /// Verified by reading it back.
    Active,
    /// Accepted by the app but not in force yet (an invitation): re-checked later.
    Pending,
}

/// A grant the policy still wants but that must not be (re)granted: a time-bound grant
/// that expired, or a grant revoked because it went unused. Without holds, the next plan
/// would re-grant exactly what was just taken away. A hold is lifted with
/// [`StateStore::clear_hold`] (the policy stops wanting the grant, or an operator decides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub person: String,
    pub target: Target,
    pub reason: HoldReason,
    pub since: DateTime<Utc>,
    /// For people: "expired 2027-01-31T00:00:00Z (for = 8h)", "unused for 132 days".
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldReason {
    /// A time-bound grant reached its end.
    Expired,
    /// Revoked for not being used.
    Dormant,
}

/// One grant the policy wants, from the last evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredRow {
    pub person: String,
    pub target: Target,
    pub level: Option<String>,
    /// Every rule that grants it, sorted.
    pub rules: Vec<String>,
    /// Needs approval before it is granted.
    pub sensitive: bool,
    pub policy_hash: String,
    pub computed_at: DateTime<Utc>,
}

/// One grant an app reported when listed. Not tied to a person: mapping subjects to people
/// is the planner's job, and the app may hold grants for subjects no one in the directory
/// has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedGrant {
    pub target: Target,
    pub subject: String,
    pub level: Option<String>,
    /// An invitation not yet accepted.
    pub pending: bool,
    /// As reported by the app, when it reports it.
    pub last_used_at: Option<DateTime<Utc>>,
    pub observed_at: DateTime<Utc>,
}

/// How one (app, kind) was last listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedListing {
    pub app: String,
    pub kind: String,
    pub listed_at: DateTime<Utc>,
    /// Every page was read: a grant missing from it is absent from the app.
    pub complete: bool,
    /// Why a partial listing stopped.
    pub reason: Option<String>,
}

/// When a subject last used a grant, from an app's activity export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub app: String,
    pub subject: String,
    pub kind: String,
    pub resource: String,
    pub last_used_at: DateTime<Utc>,
}

/// An HR event as the service received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedHrEvent {
    pub id: String,
    pub person: String,
    pub received_at: DateTime<Utc>,
    /// The API token that delivered it.
    pub source: String,
    /// The event in the HR events file format (one element of its `events` list).
    pub entry: serde_json::Value,
}

/// An action that set out (its intent is recorded before its first write) and is not
/// settled yet. Left behind only by a run that was cut off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub idempotency_key: String,
    pub run_id: String,
    /// Its index among the run's recorded actions.
    pub index: u32,
    pub person: Option<String>,
    /// The engine action: op, app, subject, entitlement, trigger.
    pub spec: serde_json::Value,
    /// The plan change it carries out; None for a hand-written actions file.
    pub change: Option<serde_json::Value>,
    pub policy_hash: Option<String>,
    /// The time the run's plan was made for.
    pub as_of: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

/// Whether a plugin version may serve its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginStatus {
    /// Accepted: by an operator, on first use, or because it only narrowed.
    Accepted,
    /// It widened what the plugin may do; waits for `portcullis plugin accept`.
    Pending,
}

impl PluginStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginStatus::Accepted => "accepted",
            PluginStatus::Pending => "pending",
        }
    }
}

impl FromStr for PluginStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "accepted" => Ok(PluginStatus::Accepted),
            "pending" => Ok(PluginStatus::Pending),
            other => Err(format!("unknown plugin status `{other}`")),
        }
    }
}

/// One plugin version an app was given (upgrade review, [`crate::upgrade`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginVersion {
    pub app: String,
    pub sha256: String,
    /// Its [`crate::upgrade::Profile`].
    pub profile: serde_json::Value,
    pub status: PluginStatus,
    /// The accepted version it was compared with.
    pub previous: Option<String>,
    /// What it adds over `previous`.
    pub widened: Vec<String>,
    pub seen_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Who accepted it: an operator, or `first-use` / `narrows-or-keeps`.
    pub decided_by: Option<String>,
}

/// One `portcullis apply` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// When the run began, by the wall clock.
    pub started_at: DateTime<Utc>,
    /// When it ended, by the wall clock; None while running, or if it was interrupted.
    pub finished_at: Option<DateTime<Utc>>,
    /// The time its plan was made for (`--at`, default the start); None for runs of a
    /// hand-written actions file.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
    /// The policy the run's plan came from; None for runs of a hand-written actions file.
    pub policy_hash: Option<String>,
    /// Counts and totals, free-form JSON (`null` until the run finishes, unless set).
    pub summary: serde_json::Value,
}

/// One action of a run and how it ended: the durable record of what Portcullis did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub run_id: String,
    pub index: u32,
    pub idempotency_key: String,
    /// `grant` or `revoke`.
    pub op: String,
    /// The person it was for, when it came from the policy.
    pub person: Option<String>,
    pub target: Target,
    pub subject: String,
    pub level: Option<String>,
    pub reason: String,
    /// `verified`, `pending`, `alerted`, ...
    pub outcome: String,
    pub attempts: u32,
    /// Evidence and alert context, free-form JSON.
    pub detail: serde_json::Value,
    pub finished_at: DateTime<Utc>,
}

/// What [`StateStore::request_approval`] needs; the store assigns the id and the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewApproval {
    pub person: String,
    /// `grant` or `revoke`.
    pub op: String,
    pub target: Target,
    pub subject: String,
    pub level: Option<String>,
    pub rules: Vec<String>,
    /// Shown to the approver: "sensitive entitlement", "dormant 132 days".
    pub why: String,
    pub requested_at: DateTime<Utc>,
    pub policy_hash: String,
}

/// A change that waits for (or got) a human decision: sensitive grants and dormancy
/// revokes are never carried out on the policy's word alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Never reused, so an id in an audit trail always means the same request.
    pub id: i64,
    pub person: String,
    /// `grant` or `revoke`.
    pub op: String,
    pub target: Target,
    pub subject: String,
    pub level: Option<String>,
    pub rules: Vec<String>,
    pub why: String,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The policy that asked for it.
    pub policy_hash: String,
}

/// Where an approval request is in its life: pending -> approved -> done, or pending ->
/// denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Approved and carried out.
    Done,
}

/// The lowercase names the enums are stored and serialised as.
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)*
                    other => Err(format!(
                        "unknown {} `{other}` (expected one of: {})",
                        stringify!($ty),
                        [$($name),*].join(", ")
                    )),
                }
            }
        }
    };
}

names!(ManagedStatus { Active => "active", Pending => "pending" });
names!(HoldReason { Expired => "expired", Dormant => "dormant" });
names!(ApprovalStatus {
    Pending => "pending",
    Approved => "approved",
    Denied => "denied",
    Done => "done",
});

/// Why a state operation failed. Every variant names the database (a file path for
/// SQLite) and, for operations, what was being done, so the message alone says where to
/// look: "cannot record managed grant E1001 github repository acme/api in
/// /var/lib/portcullis/state.db: database is locked".
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot create directory {dir} for state database {db}: {source}; create it, or choose another state path"
    )]
    CreateDir {
        db: String,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open state database {db}: {source}")]
    Open { db: String, source: BoxError },
    #[error("{db} is not a Portcullis state database ({problem}): {fix}")]
    NotADatabase {
        db: String,
        problem: String,
        /// What to do, in the backend's terms (a file to move aside, a database to create).
        fix: String,
    },
    #[error(
        "state database {db} is at schema version {found}; this portcullis knows up to {known}: upgrade portcullis"
    )]
    TooNew {
        db: String,
        found: i64,
        known: usize,
    },
    #[error("cannot migrate state database {db} from schema version {from} to {to}: {source}")]
    Migrate {
        db: String,
        from: i64,
        to: usize,
        source: BoxError,
    },
    /// Another run holds the run lock ([`StateStore::lock_run`]).
    #[error(
        "another run is using {db} ({holder}); nothing was run. Wait for it to finish and run again: its lock ends with that process, even if it crashed"
    )]
    Locked { db: String, holder: String },
    /// The backend failed (I/O, locking, a constraint, a row it cannot read back).
    #[error("cannot {op} in {db}: {source}")]
    Backend {
        db: String,
        op: String,
        source: BoxError,
    },
    /// The input was refused before anything was written.
    #[error("cannot {op} in {db}: {problem}")]
    Invalid {
        db: String,
        op: String,
        problem: String,
    },
    #[error("cannot {op} in {db}: there is no {what}")]
    NotFound {
        db: String,
        op: String,
        what: String,
    },
    /// A decision on an approval that was already decided.
    #[error("cannot {op} in {db}: approval {id} was already {decision}")]
    AlreadyDecided {
        db: String,
        op: String,
        id: i64,
        status: ApprovalStatus,
        /// "approved by alice at 2027-03-01T09:30:00Z".
        decision: String,
    },
}
