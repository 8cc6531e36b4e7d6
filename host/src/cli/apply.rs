//! `portcullis apply ACTIONS.toml`: checks every action against its connector (all
//! problems at once, nothing run), then runs them through the engine, with a live per-app
//! display on a terminal, a final table, or `--json`. `--dry-run` stops after the checks
//! and shows what would run.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use serde_json::json;

use super::Exit;
use super::lifecycle::failed;
use super::output::{Table, bad_input, emit, say};
use crate::engine::{
    self, ActionOutcome, ActionsFile, EngineOptions, Op, Progress, ProgressEvent, RunReport,
    SpecError,
};
use crate::host::Host;
use crate::ops::{self, OpError};

pub(crate) struct ApplyArgs<'a> {
    pub file: &'a Path,
    pub run_id: Option<String>,
    pub allow_large_revoke: bool,
    pub options: EngineOptions,
    pub json: bool,
    /// Validate and show what would run; execute nothing.
    pub dry_run: bool,
}

pub(crate) async fn run(host: Host, args: ApplyArgs<'_>) -> Exit {
    // Every action against its connector before the first write, every problem at once.
    let file = match ops::check_actions(&host, args.file).await {
        Ok(file) => file,
        Err(e) => return failed(&e, args.json),
    };
    let mut options = args.options;
    options.allow_large_revoke = args.allow_large_revoke;
    if args.dry_run {
        if let Err(e) = ops::dry_run_actions(&host, &file, &options).await {
            return failed(&e, args.json);
        }
        return dry_run(&file, args.json);
    }
    let run_id = args.run_id.unwrap_or_else(ops::new_run_id);
    let live = !args.json && std::io::stderr().is_terminal();
    let display = Arc::new(LiveDisplay::new(live, file.actions()));
    let result = ops::run_actions(Arc::new(host), file, &run_id, &options, display.clone()).await;
    display.finish();
    match result {
        Err(e) => failed(&e, args.json),
        Ok(report) => print_report(&report, args.json),
    }
}

/// Bad input (exit 2) naming the file, each action and line; in JSON also each invalid
/// action's problem as data.
pub(crate) fn invalid(error: &OpError, json: bool) -> Exit {
    match error {
        OpError::InvalidActions(SpecError::Actions { problems, .. }) if json => {
            emit(&json!({
                "ok": false,
                "exit": Exit::BadInput as u8,
                "error": error.to_string(),
                "problems": problems,
            }));
            Exit::BadInput
        }
        _ => bad_input(&error.to_string(), json),
    }
}

/// `apply --dry-run`, after the checks passed: what would run, in file order.
fn dry_run(file: &ActionsFile, json: bool) -> Exit {
    let actions = file.actions();
    let op = |spec: &engine::ActionSpec| spec.op.as_str().to_owned();
    if json {
        let rows: Vec<_> = actions
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                json!({
                    "index": index,
                    "line": file.line(index),
                    "op": spec.op,
                    "app": spec.app,
                    "subject": spec.subject,
                    "entitlement": spec.entitlement,
                    "reason": spec.reason,
                })
            })
            .collect();
        emit(&json!({
            "ok": true,
            "exit": Exit::Success as u8,
            "dry_run": true,
            "file": file.origin(),
            "actions": rows,
        }));
        return Exit::Success;
    }
    let revokes = actions.iter().filter(|a| a.op == Op::Revoke).count();
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    say!(
        "dry run of {}: {} would run ({}, {}); nothing was executed",
        file.origin(),
        count(actions.len(), "action"),
        count(actions.len() - revokes, "grant"),
        count(revokes, "revoke"),
    );
    let mut table = Table::new(
        &["#", "line", "op", "app", "subject", "entitlement"],
        &[0, 1],
    );
    for (index, spec) in actions.iter().enumerate() {
        table.row(vec![
            (index + 1).to_string(),
            file.line(index).map_or("-".into(), |l| l.to_string()),
            op(spec),
            spec.app.clone(),
            spec.subject.id.clone(),
            spec.entitlement.to_string(),
        ]);
    }
    for line in table.lines() {
        say!("{line}");
    }
    say!(
        "\nWithin each app revokes start before grants; each write is read back. Run it: \
         portcullis apply {}",
        file.origin()
    );
    Exit::Success
}

pub(crate) fn exit_for(report: &RunReport) -> Exit {
    if report.count(|o| matches!(o, ActionOutcome::Alerted { .. })) > 0 {
        Exit::ActionFailed
    } else if report.count(|o| matches!(o, ActionOutcome::Pending { .. })) > 0 {
        Exit::Pending
    } else {
        Exit::Success
    }
}

pub(crate) fn print_report(report: &RunReport, json: bool) -> Exit {
    let exit = exit_for(report);
    if json {
        emit(&json!({ "ok": exit == Exit::Success, "exit": exit as u8, "run": report }));
        return exit;
    }
    let mut table = Table::new(
        &[
            "#",
            "app",
            "op",
            "subject",
            "entitlement",
            "outcome",
            "try",
            "detail",
        ],
        &[6],
    );
    for action in &report.actions {
        let (outcome, detail) = match &action.outcome {
            ActionOutcome::Verified => (
                "verified",
                action
                    .last_observed
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            ActionOutcome::Pending { detail } => ("pending", detail.clone()),
            ActionOutcome::Alerted { reason } => ("ALERT", reason.clone()),
        };
        table.row(vec![
            (action.index + 1).to_string(),
            action.app.clone(),
            action.op.as_str().to_owned(),
            action.subject.id.clone(),
            action.entitlement.to_string(),
            outcome.to_owned(),
            action.attempts.to_string(),
            detail,
        ]);
    }
    for line in table.lines() {
        say!("{line}");
    }
    say!();
    for (app, (verified, pending, alerted)) in engine::summary(report) {
        say!("{app:<14} {verified} verified, {pending} pending, {alerted} alerted");
    }
    let alerts: Vec<_> = report.alerts().collect();
    if !alerts.is_empty() {
        say!(
            "\nALERTS ({}): these did not converge and need a person",
            alerts.len()
        );
        for a in alerts {
            say!(
                "  #{} {} {} for {}: attempts {}, last observed {}, last error {}, {} HTTP calls",
                a.index + 1,
                a.app,
                a.entitlement,
                a.subject.id,
                a.attempts,
                a.last_observed
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                a.last_error
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                a.http.len()
            );
        }
    }
    say!(
        "\nrun {} finished in {:.0} ms: {} actions",
        report.run_id,
        report.duration_ms,
        report.actions.len()
    );
    exit
}

/// One line per app: done, in flight, waiting on a rate limit, failed.
pub(crate) struct LiveDisplay {
    bars: Option<(MultiProgress, BTreeMap<String, ProgressBar>)>,
    counts: Mutex<BTreeMap<String, Counts>>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    total: u64,
    done: u64,
    in_flight: u64,
    waiting: u64,
    failed: u64,
}

impl LiveDisplay {
    fn new(live: bool, actions: &[engine::ActionSpec]) -> LiveDisplay {
        LiveDisplay::for_apps(live, actions.iter().map(|a| a.app.as_str()))
    }

    /// One bar per app, sized by how many of `apps` (one entry per action) name it.
    pub(crate) fn for_apps<'a>(live: bool, apps: impl Iterator<Item = &'a str>) -> LiveDisplay {
        let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
        for app in apps {
            counts.entry(app.to_owned()).or_default().total += 1;
        }
        let bars = live.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix:<14} {bar:20} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bars = counts
                .iter()
                .map(|(app, c)| {
                    let bar = multi.add(ProgressBar::new(c.total));
                    bar.set_style(style.clone());
                    bar.set_prefix(app.clone());
                    (app.clone(), bar)
                })
                .collect();
            (multi, bars)
        });
        LiveDisplay {
            bars,
            counts: Mutex::new(counts),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.values() {
                bar.finish();
            }
        }
    }
}

impl Progress for LiveDisplay {
    fn event(&self, app: &str, event: ProgressEvent) {
        let mut counts = self.counts.lock();
        let c = counts.entry(app.to_owned()).or_default();
        match event {
            ProgressEvent::Queued | ProgressEvent::Retrying { .. } => {}
            ProgressEvent::Started => c.in_flight += 1,
            ProgressEvent::WaitingForRateLimit => c.waiting += 1,
            ProgressEvent::Finished(outcome) => {
                c.in_flight = c.in_flight.saturating_sub(1);
                c.done += 1;
                if matches!(outcome, ActionOutcome::Alerted { .. }) {
                    c.failed += 1;
                }
            }
        }
        let c = *c;
        drop(counts);
        if let Some((_, bars)) = &self.bars
            && let Some(bar) = bars.get(app)
        {
            bar.set_position(c.done);
            bar.set_message(format!(
                "in flight {}, waited on rate limit {}, failed {}",
                c.in_flight, c.waiting, c.failed
            ));
        }
    }
}
