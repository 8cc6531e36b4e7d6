//! Policy-driven commands: `plan`, `apply` (without an actions file), `approvals`,
//! `approve`, `deny`, `discover`, `drift`, `dormant`. Each calls one operation of
//! [`crate::ops`] and renders its result; an [`OpError`] becomes the exit code and message.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use clap::Args;
use serde_json::json;

use super::Exit;
use super::apply::{LiveDisplay, exit_for, print_report};
use super::output::{bad_input, emit, say, say_lines, tell};
use crate::audit::configured_sink;
use crate::discover::Discovery;
use crate::drift::DriftItem;
use crate::ops::{
    self, Decision, OpError, Prepared, SavedPlan, Sources, Workspace, lock_holder, new_run_id,
    open_state, parse_at,
};
use crate::plan::Plan;
use crate::plan::render::render;

/// Where the policy, the people and the time come from.
#[derive(Debug, Args, Clone, Default)]
pub struct PolicyArgs {
    /// Policy file; default `[policy] path` of the config.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Directory export (JSON); default `[people] directory` of the config.
    #[arg(long)]
    pub directory: Option<PathBuf>,
    /// HR events (JSON); default `[people] events` of the config.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Plan as of this time (RFC 3339 or YYYY-MM-DD): HR events effective by then apply,
    /// time-bound grants ending by then expire. Default: now.
    #[arg(long)]
    pub at: Option<String>,
}

impl PolicyArgs {
    fn sources(&self) -> Result<Sources, OpError> {
        Ok(Sources {
            policy: self.policy.clone(),
            directory: self.directory.clone(),
            events: self.events.clone(),
            at: self.at.as_deref().map(parse_at).transpose()?,
        })
    }
}

/// How an [`OpError`] ends a command: bad input is exit 2 with its fix; a refused run, a
/// state failure mid-run and an unaudited decision are exit 1.
pub(crate) fn failed(error: &OpError, json: bool) -> Exit {
    match error {
        OpError::Input(_) | OpError::Busy(_) | OpError::InvalidActions(_) => {
            super::apply::invalid(error, json)
        }
        OpError::Refused(_)
        | OpError::StateDuringRun(_)
        | OpError::QueueDuringRun(_)
        | OpError::Unaudited { .. } => {
            let label = if matches!(error, OpError::Refused(_)) {
                "refused"
            } else {
                "error"
            };
            if json {
                emit(
                    &json!({ "ok": false, "exit": Exit::ActionFailed as u8, "error": error.to_string() }),
                );
            } else {
                tell!("{label}: {error}");
            }
            Exit::ActionFailed
        }
    }
}

async fn open(config: &Path) -> Result<Workspace, OpError> {
    Workspace::open_reviewed(config).await
}

/// `portcullis plan`: prints the plan (and saves it with `--out`); changes nothing.
pub(crate) async fn plan_command(
    config: &Path,
    args: &PolicyArgs,
    out: Option<&Path>,
    json: bool,
) -> Exit {
    let made = async {
        let ws = open(config).await?;
        let situation = ws.situation(&args.sources()?).await?;
        ws.plan(&situation)
    };
    let plan = match made.await {
        Ok(plan) => plan,
        Err(e) => return failed(&e, json),
    };
    if let Some(out) = out {
        let written = serde_json::to_vec_pretty(&plan)
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(out, bytes).map_err(|e| e.to_string()));
        if let Err(e) = written {
            return bad_input(
                &format!("cannot write the plan to {}: {e}", out.display()),
                json,
            );
        }
    }
    if json {
        emit(&json!({ "ok": true, "exit": 0, "plan": plan }));
    } else {
        say_lines(&render(&plan));
    }
    Exit::Success
}

/// How `apply` runs a policy plan.
pub(crate) struct RunArgs<'a> {
    /// A plan saved by `plan --out`.
    pub saved: Option<&'a Path>,
    pub run_id: Option<String>,
    pub allow_large_revoke: bool,
}

/// `portcullis apply` without a file: plan, print, run through the engine, record. With
/// `--plan FILE`, what was reviewed is exactly what runs (see [`Workspace::prepare_apply`]).
pub(crate) async fn apply_policy(
    config: &Path,
    args: &PolicyArgs,
    run: RunArgs<'_>,
    json: bool,
) -> Exit {
    let prepared = async {
        let saved = run.saved.map(load_saved_plan).transpose()?;
        let ws = open(config).await?;
        let prepared = ws
            .prepare_apply(
                &args.sources()?,
                saved.as_ref(),
                &lock_holder("`portcullis apply`"),
            )
            .await?;
        Ok::<_, OpError>((ws, prepared))
    };
    let (ws, prepared) = match prepared.await {
        Ok(ready) => ready,
        Err(e) => return failed(&e, json),
    };
    if !json {
        say_lines(&render(&prepared.plan));
        say!();
    }
    run_plan(&ws, &prepared, run.run_id, run.allow_large_revoke, json).await
}

fn load_saved_plan(path: &Path) -> Result<SavedPlan, OpError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OpError::Input(format!("cannot read the plan {}: {e}", path.display())))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        OpError::Input(format!(
            "{} is not a plan saved by `portcullis plan --out` ({e})",
            path.display()
        ))
    })?;
    Ok(SavedPlan {
        plan,
        origin: path.display().to_string(),
    })
}

async fn run_plan(
    ws: &Workspace,
    prepared: &Prepared,
    run_id: Option<String>,
    allow_large_revoke: bool,
    json: bool,
) -> Exit {
    let run_id = run_id.unwrap_or_else(new_run_id);
    let plan = &prepared.plan;
    let live = !json && std::io::stderr().is_terminal();
    let apps = plan
        .people
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| c.op.is_action())
        .map(|c| c.target.app.as_str());
    let display = Arc::new(LiveDisplay::for_apps(live, apps));
    let result = ws
        .run(
            prepared,
            &run_id,
            allow_large_revoke,
            display.clone(),
            &crate::model::RunOrigin::cli(),
        )
        .await;
    display.finish();
    let applied = match result {
        Ok(applied) => applied,
        Err(e) => return failed(&e, json),
    };
    let outcome = &applied.outcome;
    let exit = match exit_for(&outcome.report) {
        Exit::Success if applied.awaiting > 0 => Exit::Pending,
        exit => exit,
    };
    if json {
        emit(&json!({
            "ok": exit == Exit::Success,
            "exit": exit as u8,
            "plan": plan,
            "run": outcome.report,
            "approvals_requested": outcome.requested_approvals,
            "holds_lifted": outcome.lifted_holds,
        }));
        return exit;
    }
    if outcome.report.actions.is_empty() {
        say!("nothing to run");
    } else {
        print_report(&outcome.report, false);
    }
    for a in &outcome.requested_approvals {
        say!(
            "approval {} requested: {} {} {} for {} ({}); decide with `portcullis approve {}` or `portcullis deny {}`",
            a.id,
            a.op,
            a.target,
            a.level.as_deref().unwrap_or(""),
            a.person,
            a.why,
            a.id,
            a.id
        );
    }
    if exit == Exit::Pending && applied.awaiting > 0 {
        say!("{} change(s) wait for approval", applied.awaiting);
    }
    exit
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The approval id (from `portcullis approvals` or the apply output).
    pub id: i64,
    /// Who decides (recorded and audited).
    #[arg(long)]
    pub by: String,
    /// Why (recorded and audited).
    #[arg(long)]
    pub reason: String,
}

/// `portcullis approve ID` / `portcullis deny ID`.
pub(crate) fn decide(config: &Path, args: &DecideArgs, approve: bool, json: bool) -> Exit {
    let decided = (|| {
        let (config, store) = open_state(config)?;
        let audit = configured_sink(&config.audit).map_err(|e| OpError::Input(e.to_string()))?;
        ops::decide(
            store.as_ref(),
            audit.as_ref(),
            &Decision {
                id: args.id,
                approve,
                by: &args.by,
                reason: &args.reason,
                at: Utc::now(),
            },
        )
    })();
    let decided = match decided {
        Ok(decided) => decided,
        Err(e) => return failed(&e, json),
    };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "approval": decided }));
    } else {
        say!(
            "approval {} {} by {}: {} {} {} for {}; {}",
            decided.id,
            if approve { "approved" } else { "denied" },
            args.by,
            decided.op,
            decided.target,
            decided.level.as_deref().unwrap_or(""),
            decided.person,
            if approve {
                "the next `portcullis apply` carries it out"
            } else {
                "it will not be carried out"
            }
        );
    }
    Exit::Success
}

/// `portcullis approvals`: open requests (or all with --all).
pub(crate) fn list_approvals(config: &Path, all: bool, json: bool) -> Exit {
    let approvals =
        match open_state(config).and_then(|(_, store)| ops::approvals(store.as_ref(), all)) {
            Ok(a) => a,
            Err(e) => return failed(&e, json),
        };
    if json {
        emit(&json!({ "ok": true, "exit": 0, "approvals": approvals }));
        return Exit::Success;
    }
    if approvals.is_empty() {
        say!("no {}approvals", if all { "" } else { "pending " });
    }
    for a in &approvals {
        let decided = match (&a.decided_by, &a.decision_reason) {
            (Some(by), Some(reason)) => format!(" by {by}: {reason}"),
            (Some(by), None) => format!(" by {by}"),
            _ => String::new(),
        };
        say!(
            "{:>4}  {:<8} {:<6} {} {} for {} [{}] ({}){decided}",
            a.id,
            a.status.to_string(),
            a.op,
            a.target,
            a.level.as_deref().unwrap_or(""),
            a.person,
            a.subject,
            a.why
        );
    }
    Exit::Success
}

/// `portcullis discover`: list every kind of every app (or `--app`) and store it.
pub(crate) async fn discover_command(
    config: &Path,
    apps: &[String],
    args: &PolicyArgs,
    json: bool,
) -> Exit {
    let found = async {
        let ws = open(config).await?;
        let apps = ws.select_apps(apps)?;
        ws.discover(&apps, &args.sources()?).await
    };
    match found.await {
        Ok(discovery) => print_discovery(&discovery, json),
        Err(e) => failed(&e, json),
    }
}

fn print_discovery(discovery: &Discovery, json: bool) -> Exit {
    let failed = discovery.listings.iter().any(|l| !l.errors.is_empty());
    let exit = if failed {
        Exit::ActionFailed
    } else {
        Exit::Success
    };
    if json {
        let listings: Vec<_> = discovery
            .listings
            .iter()
            .map(|l| {
                json!({
                    "app": l.app, "kind": l.kind, "resources": l.resources,
                    "grants": l.grants, "errors": l.errors, "warnings": l.warnings,
                    "http_calls": l.http_calls,
                })
            })
            .collect();
        emit(
            &json!({ "ok": !failed, "exit": exit as u8, "at": discovery.at, "listings": listings }),
        );
        return exit;
    }
    for l in &discovery.listings {
        let scope = match &l.resources {
            None => "whole kind".to_owned(),
            Some(r) => format!("{} resources in scope", r.len()),
        };
        for w in &l.warnings {
            say!("warning: {w}");
        }
        say!(
            "{:<14} {:<16} {:>5} grants ({scope}, {} HTTP calls){}",
            l.app,
            l.kind,
            l.grants.len(),
            l.http_calls,
            if l.errors.is_empty() {
                String::new()
            } else {
                format!("; NOT stored: {}", l.errors.join("; "))
            }
        );
    }
    exit
}

/// `portcullis drift`: discover, compare with the policy, print; `--apply` corrects.
pub(crate) async fn drift_command(
    config: &Path,
    args: &PolicyArgs,
    apply: bool,
    allow_large_revoke: bool,
    json: bool,
) -> Exit {
    let found = async {
        let ws = open(config).await?;
        let holder = lock_holder("`portcullis drift --apply`");
        let drifted = ws
            .drift(&args.sources()?, apply.then_some(holder.as_str()))
            .await?;
        Ok::<_, OpError>((ws, drifted))
    };
    let (ws, drifted) = match found.await {
        Ok(found) => found,
        Err(e) => return failed(&e, json),
    };
    let report = &drifted.report;
    if !apply {
        if json {
            emit(
                &json!({ "ok": true, "exit": 0, "drift": report, "correction": drifted.correction, "not_listed": drifted.not_listed }),
            );
        } else {
            print_drift("outside policy", &report.outside_policy);
            print_drift("missing", &report.missing);
            print_drift("unmanaged (left alone)", &report.unmanaged);
            for e in &drifted.not_listed {
                say!("not listed, so not judged: {e}");
            }
            say!("\nCorrection:");
            say_lines(&render(&drifted.correction));
            say!("run `portcullis drift --apply` to carry out the correction");
        }
        return Exit::Success;
    }
    if !json {
        print_drift("outside policy", &report.outside_policy);
        print_drift("missing", &report.missing);
        say_lines(&render(&drifted.correction));
    }
    let Some(correction) = drifted.into_correction() else {
        return failed(
            &OpError::Input("drift --apply found no run lock".into()),
            json,
        );
    };
    run_plan(&ws, &correction, None, allow_large_revoke, json).await
}

fn print_drift(title: &str, items: &[DriftItem]) {
    say!("{title}: {}", items.len());
    for i in items {
        say!("  {i}");
    }
}

/// `portcullis dormant`: import usage, flag unused managed grants, request approvals to
/// revoke them.
pub(crate) async fn dormant_command(
    config: &Path,
    days: u32,
    usage: Option<&Path>,
    at: Option<&str>,
    json: bool,
) -> Exit {
    let swept = async {
        let at = at.map(parse_at).transpose()?.unwrap_or_else(Utc::now);
        // Usage straight from the connectors that report it (contract 0.2.0), then the
        // sweep over everything state knows.
        let ws = open(config).await?;
        let collected = ops::collect_usage(&ws.host, ws.store.as_ref()).await?;
        ops::dormant_sweep(ws.store.as_ref(), days, usage, at).map(|sweep| (collected, sweep))
    }
    .await;
    let (collected, sweep) = match swept {
        Ok(swept) => swept,
        Err(e) => return failed(&e, json),
    };
    let (found, approvals) = (&sweep.found, &sweep.approvals);
    if json {
        emit(
            &json!({ "ok": true, "exit": 0, "days": days, "usage_collected": collected, "dormant": found, "approvals": approvals }),
        );
        return Exit::Success;
    }
    for c in &collected {
        match &c.problem {
            None => say!(
                "usage from {} {} {}: {} subjects",
                c.app,
                c.kind,
                c.resource,
                c.records
            ),
            Some(problem) => say!(
                "usage from {} {} {}: {} subjects, then: {problem}",
                c.app,
                c.kind,
                c.resource,
                c.records
            ),
        }
    }
    say!(
        "{} managed grants unused for {days} days or more",
        found.len()
    );
    for (d, a) in found.iter().zip(approvals) {
        say!(
            "  approval {:>4} ({}): revoke {} {} for {}: {}",
            a.id,
            a.status,
            d.target,
            d.level.as_deref().unwrap_or(""),
            d.person,
            d.why
        );
    }
    if !found.is_empty() {
        say!(
            "approve with `portcullis approve ID --by NAME --reason WHY`; the next `portcullis apply` revokes approved ones"
        );
    }
    Exit::Success
}
