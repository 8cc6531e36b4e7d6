//! Policy-driven commands: `plan`, `apply` (without an actions file), `approvals`,
//! `approve`, `deny`, `discover`, `drift`, `dormant`.
//!
//! Each loads the same context first (config, policy, directory and HR events as of
//! `--at`, the state store, each app's `describe`) and refuses bad input before anything
//! runs: the error names the file and the fix, and the exit code is 2.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;

use super::Exit;
use super::apply::{LiveDisplay, exit_for, print_report};
use super::output::{bad_input, emit, say, tell};
use crate::audit::{AuditEvent, AuditRecord, configured_sink};
use crate::config::Config;
use crate::discover::{Discovery, discover};
use crate::dormant::{self, dormant};
use crate::drift::{DriftItem, drift};
use crate::engine::{EngineOptions, RunError};
use crate::host::Host;
use crate::model::{ConnectorInfo, Entitlement};
use crate::people::{Directory, HrEvents, People, parse_time, people_as_of};
use crate::plan::execute::ApplyError;
use crate::plan::render::render;
use crate::plan::{ChangeOp, Plan, StateSnapshot, apply_plan, plan};
use crate::policy::Policy;
use crate::state::{ApprovalStatus, NewApproval, SqliteStore, StateStore};

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

/// Everything a policy command needs, loaded and checked.
struct Context {
    host: Arc<Host>,
    engine: EngineOptions,
    store: SqliteStore,
    at: DateTime<Utc>,
}

struct PolicyContext {
    ctx: Context,
    policy: Policy,
    people: People,
    catalog: BTreeMap<String, ConnectorInfo>,
    /// Per app, the subjects `ignore_subjects` names.
    ignored_subjects: BTreeMap<String, Vec<String>>,
}

fn parse_at(at: Option<&str>) -> Result<DateTime<Utc>, String> {
    match at {
        None => Ok(Utc::now()),
        Some(text) => parse_time(text)
            .ok_or_else(|| format!("--at `{text}` is not a date (YYYY-MM-DD) or an RFC 3339 time")),
    }
}

/// State only: the commands that record decisions or read state need no plugins.
fn load_state(config_path: &Path) -> Result<(Config, SqliteStore), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let state_path = config
        .state
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("portcullis.db"));
    let store = SqliteStore::open(&state_path).map_err(|e| e.to_string())?;
    Ok((config, store))
}

fn load_context(config_path: &Path, at: Option<&str>) -> Result<(Context, Config), String> {
    let at = parse_at(at)?;
    let (mut config, store) = load_state(config_path)?;
    if config.runtime.cache_dir.is_none() {
        config.runtime.cache_dir = crate::cache::CompileCache::default_dir();
    }
    let engine = config.engine.clone();
    let host = Host::builder(config.clone())
        .build()
        .map_err(|e| e.to_string())?;
    Ok((
        Context {
            host: Arc::new(host),
            engine,
            store,
            at,
        },
        config,
    ))
}

async fn load_policy_context(
    config_path: &Path,
    args: &PolicyArgs,
) -> Result<PolicyContext, String> {
    let (ctx, config) = load_context(config_path, args.at.as_deref())?;
    let policy_path = args
        .policy
        .clone()
        .or(config.policy.path.clone())
        .ok_or("no policy file: pass --policy FILE or set [policy] path in the config")?;
    let policy = Policy::load(&policy_path).map_err(|e| e.to_string())?;
    let directory_path = args
        .directory
        .clone()
        .or(config.people.directory.clone())
        .ok_or(
            "no directory file: pass --directory FILE or set [people] directory in the config",
        )?;
    let directory = Directory::load(&directory_path).map_err(|e| e.to_string())?;
    let events = match args.events.clone().or(config.people.events.clone()) {
        Some(path) => HrEvents::load(&path).map_err(|e| e.to_string())?,
        None => HrEvents::default(),
    };
    let people = people_as_of(&directory, &events, ctx.at).map_err(|e| e.to_string())?;
    let catalog = catalog(&ctx.host, config.apps.keys()).await?;
    let ignored_subjects = config
        .apps
        .iter()
        .map(|(name, app)| (name.clone(), app.ignore_subjects.clone()))
        .collect();
    Ok(PolicyContext {
        ctx,
        policy,
        people,
        catalog,
        ignored_subjects,
    })
}

/// Each configured app's `describe`: what the policy is validated against.
async fn catalog(
    host: &Host,
    apps: impl Iterator<Item = &String>,
) -> Result<BTreeMap<String, ConnectorInfo>, String> {
    let mut catalog = BTreeMap::new();
    for app in apps {
        let info = host.connector_info(app).await.map_err(|e| {
            format!("cannot describe app `{app}` (needed to check the policy): {e}")
        })?;
        catalog.insert(app.clone(), info);
    }
    Ok(catalog)
}

fn snapshot(store: &dyn StateStore) -> Result<StateSnapshot, String> {
    Ok(StateSnapshot {
        managed: store.managed().map_err(|e| e.to_string())?,
        holds: store.holds().map_err(|e| e.to_string())?,
        approvals: store.approvals(None).map_err(|e| e.to_string())?,
    })
}

fn make_plan(pc: &PolicyContext) -> Result<Plan, String> {
    let state = snapshot(&pc.ctx.store)?;
    plan(&pc.policy, &pc.people, &pc.catalog, &state, pc.ctx.at).map_err(|e| e.to_string())
}

/// `portcullis plan`: prints the plan (and saves it with `--out`); changes nothing.
pub(crate) async fn plan_command(
    config: &Path,
    args: &PolicyArgs,
    out: Option<&Path>,
    json: bool,
) -> Exit {
    let pc = match load_policy_context(config, args).await {
        Ok(pc) => pc,
        Err(message) => return bad_input(&message, json),
    };
    match make_plan(&pc) {
        Ok(plan) => {
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
                super::output::say_lines(&render(&plan));
            }
            Exit::Success
        }
        Err(message) => bad_input(&message, json),
    }
}

/// How `apply` runs a policy plan.
pub(crate) struct RunArgs<'a> {
    /// A plan saved by `plan --out`.
    pub saved: Option<&'a Path>,
    pub run_id: Option<String>,
    pub allow_large_revoke: bool,
}

/// `portcullis apply` without a file: plan, print, run through the engine, record. With
/// `--plan FILE`, the plan is made again as of the saved plan's time and must equal the
/// saved one: what was reviewed is exactly what runs.
pub(crate) async fn apply_policy(
    config: &Path,
    args: &PolicyArgs,
    run: RunArgs<'_>,
    json: bool,
) -> Exit {
    let saved = match run.saved.map(load_saved_plan).transpose() {
        Ok(saved) => saved,
        Err(message) => return bad_input(&message, json),
    };
    let mut args = args.clone();
    if let Some(saved) = &saved {
        let at = saved.at.to_rfc3339();
        if args
            .at
            .as_deref()
            .is_some_and(|given| parse_time(given) != Some(saved.at))
        {
            return bad_input(
                &format!(
                    "--at differs from the saved plan's time ({at}); leave --at out to apply the saved plan"
                ),
                json,
            );
        }
        args.at = Some(at);
    }
    let pc = match load_policy_context(config, &args).await {
        Ok(pc) => pc,
        Err(message) => return bad_input(&message, json),
    };
    // Held from reading the state for the plan until the last record of the run.
    let _run_lock = match pc.ctx.store.lock_run(&lock_holder("apply")) {
        Ok(lock) => lock,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let plan = match make_plan(&pc) {
        Ok(plan) => plan,
        Err(message) => return bad_input(&message, json),
    };
    if let (Some(saved), Some(path)) = (&saved, run.saved)
        && let Some(difference) = stale(saved, &plan)
    {
        return bad_input(
            &format!(
                "the plan in {} is stale: {difference}; nothing was run. Review the new plan (`portcullis plan --out {}`) and apply that",
                path.display(),
                path.display()
            ),
            json,
        );
    }
    if !json {
        super::output::say_lines(&render(&plan));
        say!();
    }
    run_plan(
        &pc.ctx,
        &plan,
        &pc.people,
        run.run_id,
        run.allow_large_revoke,
        json,
    )
    .await
}

/// Who holds the run lock, as a refused run will show it.
fn lock_holder(command: &str) -> String {
    format!(
        "pid {} running `portcullis {command}` since {}",
        std::process::id(),
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

fn load_saved_plan(path: &Path) -> Result<Plan, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the plan {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a plan saved by `portcullis plan --out` ({e})",
            path.display()
        )
    })
}

/// What differs between a saved plan and the plan made now, in words; None if nothing.
fn stale(saved: &Plan, now: &Plan) -> Option<String> {
    if saved.policy_hash != now.policy_hash {
        return Some(format!(
            "the policy changed (sha256 {} then, {} now)",
            &saved.policy_hash[..saved.policy_hash.len().min(12)],
            &now.policy_hash[..now.policy_hash.len().min(12)]
        ));
    }
    // Compared as JSON, the form it was saved in (the desired-state rows are not saved).
    let as_json = |p: &Plan| serde_json::to_value(p).ok();
    if as_json(saved) == as_json(now) {
        return None;
    }
    let people = |p: &Plan| -> BTreeMap<String, serde_json::Value> {
        p.people
            .iter()
            .map(|person| {
                (
                    person.id.clone(),
                    serde_json::to_value(person).unwrap_or_default(),
                )
            })
            .collect()
    };
    let (then, current) = (people(saved), people(now));
    let changed: Vec<&String> = then
        .keys()
        .chain(current.keys())
        .filter(|id| then.get(*id) != current.get(*id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Some(if changed.is_empty() {
        "the plan's HR schedule or summary changed".to_owned()
    } else {
        format!(
            "the changes for {} differ (state, people or approvals moved since it was saved)",
            changed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

async fn run_plan(
    ctx: &Context,
    plan: &Plan,
    people: &People,
    run_id: Option<String>,
    allow_large_revoke: bool,
    json: bool,
) -> Exit {
    let run_id =
        run_id.unwrap_or_else(|| format!("run-{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
    let mut options = ctx.engine.clone();
    options.allow_large_revoke = allow_large_revoke;
    let live = !json && std::io::stderr().is_terminal();
    let apps = plan
        .people
        .iter()
        .flat_map(|p| &p.changes)
        .filter(|c| c.op.is_action())
        .map(|c| c.target.app.as_str());
    let display = Arc::new(LiveDisplay::for_apps(live, apps));
    let result = apply_plan(
        Arc::clone(&ctx.host),
        &ctx.store,
        plan,
        people,
        &run_id,
        &options,
        display.clone(),
    )
    .await;
    display.finish();
    match result {
        Err(ApplyError::Refused(e @ RunError::BlastRadius { .. })) => {
            if json {
                emit(
                    &json!({ "ok": false, "exit": Exit::ActionFailed as u8, "error": e.to_string() }),
                );
            } else {
                tell!("refused: {e}");
            }
            Exit::ActionFailed
        }
        Err(e @ ApplyError::Refused(_)) => bad_input(&e.to_string(), json),
        // Actions may have run: not bad input, and the operator must know state lags.
        Err(ApplyError::State(e)) => {
            let message = format!(
                "the state store failed during the run, so it may not record everything that ran: {e}; the next apply proposes what state missed again, and the apps answer it idempotently (already present / already absent)"
            );
            if json {
                emit(&json!({ "ok": false, "exit": Exit::ActionFailed as u8, "error": message }));
            } else {
                tell!("error: {message}");
            }
            Exit::ActionFailed
        }
        Ok(outcome) => {
            let awaiting = plan
                .people
                .iter()
                .flat_map(|p| &p.changes)
                .filter(|c| matches!(c.op, ChangeOp::AwaitApproval { .. }))
                .count();
            if json {
                let exit = exit_for(&outcome.report);
                let exit = if exit == Exit::Success && awaiting > 0 {
                    Exit::Pending
                } else {
                    exit
                };
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
            let exit = if outcome.report.actions.is_empty() {
                say!("nothing to run");
                Exit::Success
            } else {
                print_report(&outcome.report, false)
            };
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
            if exit == Exit::Success && awaiting > 0 {
                say!("{awaiting} change(s) wait for approval");
                return Exit::Pending;
            }
            exit
        }
    }
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
    let (config, store) = match load_state(config) {
        Ok(loaded) => loaded,
        Err(message) => return bad_input(&message, json),
    };
    let audit = match configured_sink(config.audit.path.as_deref()) {
        Ok(sink) => sink,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let at = Utc::now();
    if args.by.trim().is_empty() || args.reason.trim().is_empty() {
        return bad_input(
            "--by and --reason must not be empty: record who decides and why",
            json,
        );
    }
    let decided = match store.decide(args.id, approve, &args.by, Some(&args.reason), at) {
        Ok(a) => a,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let decision = if approve { "approved" } else { "denied" };
    let audited = audit.record(&AuditRecord {
        at,
        call_id: format!("approval-{}", decided.id),
        app: decided.target.app.clone(),
        plugin_sha256: String::new(),
        event: AuditEvent::ApprovalDecided {
            approval: decided.id,
            decision: decision.to_owned(),
            by: args.by.clone(),
            reason: args.reason.clone(),
            person: decided.person.clone(),
            op: decided.op.clone(),
            entitlement: Entitlement {
                kind: decided.target.kind.clone(),
                resource: decided.target.resource.clone(),
                level: decided.level.clone(),
            },
            policy_hash: decided.policy_hash.clone(),
        },
    });
    if let Err(e) = audited {
        // The decision stands (state has it), but an unaudited decision must be loud.
        tell!(
            "error: approval {} is {decision} in state but could not be audited: {e}; fix the audit sink and record the decision by hand",
            decided.id
        );
        return Exit::ActionFailed;
    }
    if json {
        emit(&json!({ "ok": true, "exit": 0, "approval": decided }));
    } else {
        say!(
            "approval {} {decision} by {}: {} {} {} for {}; {}",
            decided.id,
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
    let (_, store) = match load_state(config) {
        Ok(loaded) => loaded,
        Err(message) => return bad_input(&message, json),
    };
    let filter = (!all).then_some(ApprovalStatus::Pending);
    let approvals = match store.approvals(filter) {
        Ok(a) => a,
        Err(e) => return bad_input(&e.to_string(), json),
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
    let (ctx, config_data) = match load_context(config, args.at.as_deref()) {
        Ok(loaded) => loaded,
        Err(message) => return bad_input(&message, json),
    };
    let policy = match args.policy.clone().or(config_data.policy.path.clone()) {
        Some(path) => match Policy::load(&path) {
            Ok(p) => Some(p),
            Err(e) => return bad_input(&e.to_string(), json),
        },
        None => None,
    };
    let apps = match selected_apps(&config_data, apps) {
        Ok(apps) => apps,
        Err(message) => return bad_input(&message, json),
    };
    let managed = match ctx.store.managed() {
        Ok(m) => m,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let discovery = match discover(
        &ctx.host,
        &ctx.store,
        &apps,
        policy.as_ref(),
        &managed,
        ctx.at,
    )
    .await
    {
        Ok(d) => d,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    print_discovery(&discovery, json)
}

fn selected_apps(config: &Config, apps: &[String]) -> Result<Vec<String>, String> {
    if apps.is_empty() {
        return Ok(config.apps.keys().cloned().collect());
    }
    for app in apps {
        if !config.apps.contains_key(app) {
            return Err(format!(
                "no app named `{app}` is configured (configured: {})",
                config.apps.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(apps.to_vec())
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
    let pc = match load_policy_context(config, args).await {
        Ok(pc) => pc,
        Err(message) => return bad_input(&message, json),
    };
    // Only a drift run that corrects anything needs the apps to itself.
    let _run_lock = if apply {
        match pc.ctx.store.lock_run(&lock_holder("drift --apply")) {
            Ok(lock) => Some(lock),
            Err(e) => return bad_input(&e.to_string(), json),
        }
    } else {
        None
    };
    let state = match snapshot(&pc.ctx.store) {
        Ok(s) => s,
        Err(message) => return bad_input(&message, json),
    };
    let apps: Vec<String> = pc.catalog.keys().cloned().collect();
    let discovery = match discover(
        &pc.ctx.host,
        &pc.ctx.store,
        &apps,
        Some(&pc.policy),
        &state.managed,
        pc.ctx.at,
    )
    .await
    {
        Ok(d) => d,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    // The apps' own automation accounts are not people's access: leave them out.
    let observed: Vec<_> = discovery
        .grants()
        .filter(|g| {
            pc.ignored_subjects
                .get(&g.target.app)
                .is_none_or(|ignored| !ignored.contains(&g.subject))
        })
        .cloned()
        .collect();
    let (report, correction) = match drift(
        &pc.policy,
        &pc.people,
        &pc.catalog,
        &state.managed,
        &state.holds,
        &observed,
        &discovery.complete(),
        pc.ctx.at,
    ) {
        Ok(found) => found,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let incomplete: Vec<&String> = discovery.listings.iter().flat_map(|l| &l.errors).collect();
    if !apply {
        if json {
            emit(
                &json!({ "ok": true, "exit": 0, "drift": report, "correction": correction, "not_listed": incomplete }),
            );
        } else {
            print_drift("outside policy", &report.outside_policy);
            print_drift("missing", &report.missing);
            print_drift("unmanaged (left alone)", &report.unmanaged);
            for e in &incomplete {
                say!("not listed, so not judged: {e}");
            }
            say!("\nCorrection:");
            super::output::say_lines(&render(&correction));
            say!("run `portcullis drift --apply` to carry out the correction");
        }
        return Exit::Success;
    }
    if !json {
        print_drift("outside policy", &report.outside_policy);
        print_drift("missing", &report.missing);
        super::output::say_lines(&render(&correction));
    }
    run_plan(
        &pc.ctx,
        &correction,
        &pc.people,
        None,
        allow_large_revoke,
        json,
    )
    .await
}

fn print_drift(title: &str, items: &[DriftItem]) {
    say!("{title}: {}", items.len());
    for i in items {
        say!("  {i}");
    }
}

/// `portcullis dormant`: import usage, flag unused managed grants, request approvals to
/// revoke them.
pub(crate) fn dormant_command(
    config: &Path,
    days: u32,
    usage: Option<&Path>,
    at: Option<&str>,
    json: bool,
) -> Exit {
    let at = match parse_at(at) {
        Ok(at) => at,
        Err(message) => return bad_input(&message, json),
    };
    let (_, store) = match load_state(config) {
        Ok(loaded) => loaded,
        Err(message) => return bad_input(&message, json),
    };
    if let Some(path) = usage {
        let records = match dormant::load_usage(path) {
            Ok(r) => r,
            Err(e) => return bad_input(&e.to_string(), json),
        };
        if let Err(e) = store.import_usage(&records) {
            return bad_input(&e.to_string(), json);
        }
    }
    let loaded = (|| -> Result<_, crate::state::StateError> {
        Ok((
            store.managed()?,
            store.observed()?,
            store.observed_listings()?,
            store.usage()?,
        ))
    })();
    let (managed, observed, listings, usage_records) = match loaded {
        Ok(l) => l,
        Err(e) => return bad_input(&e.to_string(), json),
    };
    let found = dormant(&managed, &observed, &listings, &usage_records, days, at);
    let mut approvals = Vec::new();
    for d in &found {
        let requested = store.request_approval(&NewApproval {
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
        });
        match requested {
            Ok(a) => approvals.push(a),
            Err(e) => return bad_input(&e.to_string(), json),
        }
    }
    if json {
        emit(
            &json!({ "ok": true, "exit": 0, "days": days, "dormant": found, "approvals": approvals }),
        );
        return Exit::Success;
    }
    say!(
        "{} managed grants unused for {days} days or more",
        found.len()
    );
    for (d, a) in found.iter().zip(&approvals) {
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
