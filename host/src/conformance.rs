//! The vendor conformance kit: one fixed sequence of calls that every connector must pass
//! against a real or simulated application before it ships.
//!
//! check -> grant -> verify present -> grant again (idempotent, no duplicate) ->
//! list-grants contains it -> revoke -> verify absent -> revoke again (idempotent) ->
//! list-grants lacks it.
//!
//! A grant the application holds as *pending* (an invitation) passes where present would,
//! as long as the connector reports it consistently: grant says pending, verify says
//! pending (or present), list-grants lists it as pending, and revoke removes it.

use serde::Serialize;

use crate::host::Host;
use crate::model::{
    Action, Entitlement, EntitlementKind, GrantOutcome, GrantQuery, Observed, RevokeOutcome,
    Subject,
};
use crate::sandbox::{CallError, CallReport, HttpCall};
use crate::untrusted::Shown;

/// What to exercise: one subject and one entitlement in one configured app.
#[derive(Debug, Clone)]
pub struct ConformanceCase {
    pub app: String,
    pub subject: Subject,
    pub entitlement: Entitlement,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: &'static str,
    pub passed: bool,
    /// What was observed, and on failure what was expected.
    pub detail: String,
    pub http: Vec<HttpCall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    pub app: String,
    pub steps: Vec<StepResult>,
}

impl ConformanceReport {
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.passed)
    }

    /// The pass/fail table with the HTTP calls each step made.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            // Details and URLs come from the plugin: escaped, one line each.
            out.push_str(&format!(
                "{:<4} {:<28} {}\n",
                if step.passed { "PASS" } else { "FAIL" },
                step.step,
                Shown(&step.detail)
            ));
            for call in &step.http {
                let status = match (&call.status, &call.refused) {
                    (Some(status), _) => status.to_string(),
                    (None, Some(reason)) => format!("refused: {reason}"),
                    (None, None) => "-".into(),
                };
                out.push_str(&format!(
                    "{:<33} {} {} -> {}\n",
                    "",
                    call.method,
                    Shown(&call.url),
                    Shown(&status)
                ));
            }
        }
        let passed = self.steps.iter().filter(|s| s.passed).count();
        out.push_str(&format!(
            "{passed}/{} steps passed{}\n",
            self.steps.len(),
            if self.passed() { "" } else { ": FAILED" }
        ));
        out
    }
}

/// Runs the whole sequence. It stops early only when a step leaves the application in a
/// state the later steps cannot build on (a grant that failed outright).
pub async fn run(host: &Host, case: &ConformanceCase) -> ConformanceReport {
    let mut steps = Vec::new();
    let app = case.app.as_str();
    let action = Action {
        subject: case.subject.clone(),
        entitlement: case.entitlement.clone(),
        idempotency_key: format!(
            "conformance-{}-{}",
            case.subject.id, case.entitlement.resource
        ),
        reason: "portcullis conformance kit".into(),
    };
    let kind = host
        .connector_info(app)
        .await
        .ok()
        .and_then(|info| info.kind(&case.entitlement.kind).cloned());

    let check = host.check(app).await;
    steps.push(step(
        "check",
        &check.report,
        match &check.result {
            Ok(report) => Ok(format!("credentials act as {}", report.principal)),
            Err(e) => Err(e.to_string()),
        },
    ));

    let grant = host.grant(app, &action).await;
    let pending = matches!(grant.result, Ok(GrantOutcome::Pending { .. }));
    let granted_ok = grant.result.is_ok();
    steps.push(step("grant", &grant.report, describe_result(&grant.result)));
    if !granted_ok {
        return ConformanceReport {
            app: case.app.clone(),
            steps,
        };
    }

    let verify = host.verify(app, &case.subject, &case.entitlement).await;
    steps.push(step(
        "verify present",
        &verify.report,
        match &verify.result {
            Ok(observed) if holds(kind.as_ref(), &case.entitlement, observed, pending) => {
                Ok(observed.to_string())
            }
            Ok(observed) => Err(format!(
                "expected {} but read back {observed}",
                if pending {
                    "pending or present"
                } else {
                    "present at the requested level"
                }
            )),
            Err(e) => Err(e.to_string()),
        },
    ));

    let again = host.grant(app, &action).await;
    steps.push(step(
        "grant again (idempotent)",
        &again.report,
        match &again.result {
            Ok(GrantOutcome::AlreadyPresent) => Ok("already-present".into()),
            Ok(GrantOutcome::Pending { detail }) if pending => {
                Ok(format!("still pending: {detail}"))
            }
            Ok(other) => Err(format!("expected already-present, got {other:?}")),
            Err(e) => Err(e.to_string()),
        },
    ));

    let (listed, list_report) = list_all(host, app, &case.entitlement).await;
    steps.push(step(
        "list-grants contains it",
        &list_report,
        match &listed {
            Ok(grants) => {
                let matching = grants.iter().filter(|g| same_grant(g, case)).count();
                match matching {
                    1 => Ok(format!("listed once among {} grants", grants.len())),
                    0 => Err(format!("not among the {} grants listed", grants.len())),
                    n => Err(format!(
                        "listed {n} times: the repeated grant duplicated it"
                    )),
                }
            }
            Err(e) => Err(e.clone()),
        },
    ));

    let revoke = host.revoke(app, &action).await;
    steps.push(step(
        "revoke",
        &revoke.report,
        describe_result(&revoke.result),
    ));

    let verify = host.verify(app, &case.subject, &case.entitlement).await;
    steps.push(step(
        "verify absent",
        &verify.report,
        match &verify.result {
            Ok(Observed::Absent) => Ok("absent".into()),
            Ok(observed) => Err(format!("expected absent but read back {observed}")),
            Err(e) => Err(e.to_string()),
        },
    ));

    let again = host.revoke(app, &action).await;
    steps.push(step(
        "revoke again (idempotent)",
        &again.report,
        match &again.result {
            Ok(RevokeOutcome::AlreadyAbsent) => Ok("already-absent".into()),
            Ok(other) => Err(format!("expected already-absent, got {other:?}")),
            Err(e) => Err(e.to_string()),
        },
    ));

    let (listed, list_report) = list_all(host, app, &case.entitlement).await;
    steps.push(step(
        "list-grants lacks it",
        &list_report,
        match &listed {
            Ok(grants) if grants.iter().any(|g| same_grant(g, case)) => {
                Err("still listed after revoke".into())
            }
            Ok(grants) => Ok(format!("absent from the {} grants listed", grants.len())),
            Err(e) => Err(e.clone()),
        },
    ));

    ConformanceReport {
        app: case.app.clone(),
        steps,
    }
}

fn step(name: &'static str, report: &CallReport, result: Result<String, String>) -> StepResult {
    let (passed, detail) = match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    StepResult {
        step: name,
        passed,
        detail,
        http: report.http.clone(),
    }
}

fn describe_result<T: std::fmt::Debug>(result: &Result<T, CallError>) -> Result<String, String> {
    match result {
        Ok(value) => Ok(format!("{value:?}")),
        Err(e) => Err(e.to_string()),
    }
}

fn holds(
    kind: Option<&EntitlementKind>,
    wanted: &Entitlement,
    observed: &Observed,
    pending: bool,
) -> bool {
    let level_ok = |level: &Option<String>| match kind {
        Some(kind) => kind.satisfies(level.as_deref(), wanted.level.as_deref()),
        None => wanted.level.is_none() || level == &wanted.level,
    };
    match observed {
        Observed::Present { level } => level_ok(level),
        Observed::Pending { .. } => pending,
        Observed::Absent => false,
    }
}

fn same_grant(grant: &crate::model::Grant, case: &ConformanceCase) -> bool {
    grant.subject.id.eq_ignore_ascii_case(&case.subject.id)
        && grant.entitlement.kind == case.entitlement.kind
        && grant.entitlement.resource == case.entitlement.resource
}

/// Every page of list-grants for the case's resource; the HTTP calls of all pages.
async fn list_all(
    host: &Host,
    app: &str,
    entitlement: &Entitlement,
) -> (Result<Vec<crate::model::Grant>, String>, CallReport) {
    let query = GrantQuery {
        kind: entitlement.kind.clone(),
        resource: Some(entitlement.resource.clone()),
        cursor: None,
    };
    // Only a complete listing can show a grant present or absent.
    let listing = host.list_all_grants(app, &query).await;
    let result = match listing.stopped {
        None => Ok(listing.grants),
        Some(stop) => Err(stop.to_string()),
    };
    (result, listing.report)
}
