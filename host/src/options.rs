//! Settings of a run that the config, the engine and the operations share. They sit below
//! all three so that `config` does not depend on `engine`.

use serde::{Deserialize, Serialize};

/// How the engine retries and guards. Also the `[engine]` table of the config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineOptions {
    /// Write-and-verify attempts per action before it is alerted.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with jitter, up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Blast-radius guard: most revokes one run may carry.
    pub max_revokes: Option<usize>,
    /// Blast-radius guard: most revokes as a share (0..1) of `managed_grants`.
    pub max_revoke_share: Option<f64>,
    /// The share guard applies only to runs that revoke more than this many grants, so a
    /// small setup is not stopped by one leaver (ten grants, one person holding three).
    pub share_min_revokes: usize,
    /// How many grants Portcullis manages in the run's scope, for `max_revoke_share`.
    /// Supplied by the caller: a policy `apply` passes the state store's count; a run of
    /// an actions file has no state, so only `max_revokes` guards it.
    #[serde(skip)]
    pub managed_grants: Option<usize>,
    /// Run even when the blast-radius guard would stop the run.
    #[serde(skip)]
    pub allow_large_revoke: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_attempts: 3,
            backoff_base_ms: 250,
            backoff_max_ms: 10_000,
            max_revokes: Some(50),
            max_revoke_share: Some(0.2),
            share_min_revokes: 10,
            managed_grants: None,
            allow_large_revoke: false,
        }
    }
}
