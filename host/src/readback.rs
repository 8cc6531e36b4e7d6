//! Verify-after-write: an action counts only when reading it back shows it took effect.
//! ("A 200 OK means I received your request.") The scheduler's retries build on
//! [`Verdict`]; the CLI and the demo print it.

use serde::Serialize;

use crate::model::{
    Action, EntitlementKind, GrantOutcome, Observed, RevokeOutcome, SetLevelOutcome,
};
use crate::sandbox::{Call, CallError};

/// What an action amounted to after read-back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Read-back confirms the requested state.
    Verified { observed: Observed },
    /// Accepted but not in force yet; check again later. Never a success.
    Pending { observed: Observed, detail: String },
    /// The connector reported success but read-back disagrees.
    NotApplied { observed: Observed },
    /// The action or its read-back failed.
    Failed { error: CallError },
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }
}

/// The write, its read-back and the verdict, for one action.
#[derive(Debug, Clone)]
pub struct Checked<T> {
    pub write: Call<T>,
    pub readback: Option<Call<Observed>>,
    pub verdict: Verdict,
}

/// Whether `observed` satisfies a grant of `action` (a higher level implies a lower one).
pub fn grant_verdict(
    kind: Option<&EntitlementKind>,
    action: &Action,
    outcome: &GrantOutcome,
    observed: Observed,
) -> Verdict {
    let wanted = action.entitlement.level.as_deref();
    let satisfied = |held: Option<&str>| match kind {
        Some(kind) => kind.satisfies(held, wanted),
        None => wanted.is_none() || held == wanted,
    };
    match (&observed, outcome) {
        (Observed::Present { level }, _) if satisfied(level.as_deref()) => {
            Verdict::Verified { observed }
        }
        (Observed::Pending { .. }, GrantOutcome::Pending { detail }) => Verdict::Pending {
            detail: detail.clone(),
            observed,
        },
        (Observed::Pending { .. }, _) => Verdict::Pending {
            detail: "the application shows the grant as pending".into(),
            observed,
        },
        _ => Verdict::NotApplied { observed },
    }
}

/// Whether `observed` confirms a set-level: exactly the requested level (a higher one is
/// not a lowered one), or pending at it.
pub fn set_level_verdict(
    action: &Action,
    outcome: &SetLevelOutcome,
    observed: Observed,
) -> Verdict {
    let wanted = action.entitlement.level.as_deref();
    match (&observed, outcome) {
        (Observed::Present { level }, _) if level.as_deref() == wanted => {
            Verdict::Verified { observed }
        }
        (Observed::Pending { level }, SetLevelOutcome::Pending { detail })
            if level.as_deref() == wanted =>
        {
            Verdict::Pending {
                detail: detail.clone(),
                observed,
            }
        }
        (Observed::Pending { level }, _) if level.as_deref() == wanted => Verdict::Pending {
            detail: "the application shows the grant as pending at the new level".into(),
            observed,
        },
        _ => Verdict::NotApplied { observed },
    }
}

/// Whether `observed` confirms a revoke.
pub fn revoke_verdict(_outcome: &RevokeOutcome, observed: Observed) -> Verdict {
    match observed {
        Observed::Absent => Verdict::Verified { observed },
        other => Verdict::NotApplied { observed: other },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Entitlement, Subject};

    fn action(level: &str) -> Action {
        Action {
            subject: Subject {
                id: "octocat".into(),
                email: None,
            },
            entitlement: Entitlement {
                kind: "repository".into(),
                resource: "acme/api".into(),
                level: Some(level.into()),
            },
            idempotency_key: "k".into(),
            reason: "r".into(),
        }
    }

    fn kind() -> EntitlementKind {
        EntitlementKind {
            name: "repository".into(),
            description: String::new(),
            levels: ["read", "write", "admin"].map(String::from).to_vec(),
            read_modify_write: false,
        }
    }

    #[test]
    fn a_reported_grant_that_reads_back_lower_is_not_applied() {
        let verdict = grant_verdict(
            Some(&kind()),
            &action("write"),
            &GrantOutcome::Granted,
            Observed::Present {
                level: Some("read".into()),
            },
        );
        assert!(matches!(verdict, Verdict::NotApplied { .. }));
    }

    #[test]
    fn a_higher_level_verifies_a_lower_request() {
        let verdict = grant_verdict(
            Some(&kind()),
            &action("write"),
            &GrantOutcome::AlreadyPresent,
            Observed::Present {
                level: Some("admin".into()),
            },
        );
        assert!(verdict.is_verified());
    }

    #[test]
    fn pending_is_never_verified() {
        let verdict = grant_verdict(
            Some(&kind()),
            &action("write"),
            &GrantOutcome::Pending {
                detail: "invitation 7".into(),
            },
            Observed::Pending {
                level: Some("write".into()),
            },
        );
        assert_eq!(
            verdict,
            Verdict::Pending {
                observed: Observed::Pending {
                    level: Some("write".into())
                },
                detail: "invitation 7".into()
            }
        );
    }

    #[test]
    fn revoke_needs_absence() {
        assert!(revoke_verdict(&RevokeOutcome::Revoked, Observed::Absent).is_verified());
        assert!(
            !revoke_verdict(&RevokeOutcome::Revoked, Observed::Present { level: None })
                .is_verified()
        );
    }
}
