//! Decisions people make: the approvals list, approve and deny (recorded and audited), and
//! the dormant sweep that turns unused grants into revoke requests.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::OpError;
use crate::audit::{AuditEvent, AuditRecord, AuditSink};
use crate::dormant::{self, DormantGrant, dormant};
use crate::model::Entitlement;
use crate::state::{Approval, ApprovalStatus, NewApproval, StateStore};

/// Open requests, or every request with `all`.
pub fn approvals(store: &dyn StateStore, all: bool) -> Result<Vec<Approval>, OpError> {
    let filter = (!all).then_some(ApprovalStatus::Pending);
    Ok(store.approvals(filter)?)
}

/// One person's decision on one approval request.
pub struct Decision<'a> {
    pub id: i64,
    pub approve: bool,
    /// Who decides (recorded and audited).
    pub by: &'a str,
    /// Why (recorded and audited).
    pub reason: &'a str,
    pub at: DateTime<Utc>,
}

/// Records a decision in state, then audits it. A decision state holds but the audit trail
/// does not is [`OpError::Unaudited`]: it stands, and the caller must make it loud.
pub fn decide(
    store: &dyn StateStore,
    audit: &dyn AuditSink,
    decision: &Decision<'_>,
) -> Result<Approval, OpError> {
    if decision.by.trim().is_empty() || decision.reason.trim().is_empty() {
        return Err(OpError::Input(
            "--by and --reason must not be empty: record who decides and why".into(),
        ));
    }
    let decided = store.decide(
        decision.id,
        decision.approve,
        decision.by,
        Some(decision.reason),
        decision.at,
    )?;
    let word = if decision.approve {
        "approved"
    } else {
        "denied"
    };
    audit
        .record(&AuditRecord {
            at: decision.at,
            call_id: format!("approval-{}", decided.id),
            app: decided.target.app.clone(),
            plugin_sha256: String::new(),
            event: AuditEvent::ApprovalDecided {
                approval: decided.id,
                decision: word.to_owned(),
                by: decision.by.to_owned(),
                reason: decision.reason.to_owned(),
                person: decided.person.clone(),
                op: decided.op.clone(),
                entitlement: Entitlement {
                    kind: decided.target.kind.clone(),
                    resource: decided.target.resource.clone(),
                    level: decided.level.clone(),
                },
                policy_hash: decided.policy_hash.clone(),
            },
        })
        .map_err(|e| OpError::Unaudited {
            approval: decided.id,
            decision: word,
            error: e.to_string(),
        })?;
    Ok(decided)
}

/// What a dormant sweep found and asked for.
pub struct DormantSweep {
    pub found: Vec<DormantGrant>,
    /// One revoke request per dormant grant, in the order of `found`.
    pub approvals: Vec<Approval>,
}

/// Imports `usage` (if given), finds managed grants unused for `days` or more as of `at`
/// and requests an approval to revoke each (idempotent: an open request is reused).
pub fn dormant_sweep(
    store: &dyn StateStore,
    days: u32,
    usage: Option<&Path>,
    at: DateTime<Utc>,
) -> Result<DormantSweep, OpError> {
    if let Some(path) = usage {
        let records = dormant::load_usage(path).map_err(OpError::input)?;
        store.import_usage(&records)?;
    }
    let managed = store.managed()?;
    let found = dormant(
        &managed,
        &store.observed()?,
        &store.observed_listings()?,
        &store.usage()?,
        days,
        at,
    );
    let mut approvals = Vec::with_capacity(found.len());
    for d in &found {
        approvals.push(
            store.request_approval(&NewApproval {
                person: d.person.clone(),
                op: "revoke".into(),
                target: d.target.clone(),
                subject: d.subject.clone(),
                level: d.level.clone(),
                rules: Vec::new(),
                why: d.why.clone(),
                requested_at: at,
                policy_hash: managed
                    .iter()
                    .find(|m| m.person == d.person && m.target == d.target)
                    .map(|m| m.policy_hash.clone())
                    .unwrap_or_default(),
            })?,
        );
    }
    Ok(DormantSweep { found, approvals })
}
