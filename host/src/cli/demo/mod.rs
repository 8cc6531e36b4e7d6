//! `portcullis demo`: the main job of the product on an embedded default. It starts the
//! GitHub, Jira, Slack and Google Drive simulators on 127.0.0.1, loads the bundled
//! plugins, keeps state in SQLite in a temporary directory, and takes Josh (the example
//! policy and HR events, embedded in the binary) through his working life: the plan at
//! his hire date, applying it (GitHub invitations pending), re-checking once he accepts
//! them, a grant made by hand found by drift and revoked, and his termination, where the
//! blast-radius guard refuses to revoke everything until an operator overrides it.
//!
//! Every time is pinned (`world::at`), so the plans are the same on every run. Nothing
//! is left behind: the simulators stop and the directory is deleted when the demo ends.
//! It exits 0 only when every step ended as expected, else 1, naming the step.

mod by_hand;
mod joiner;
mod leaver;
pub(super) mod serve;
mod steps;
mod world;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Exit;
use super::apply::print_report;
use super::output::{bad_input, emit, say};
use crate::engine::RunReport;
use crate::plan::Plan;
use crate::plan::render::render;
use steps::{Finding, Step};
use world::World;
pub use world::start_simulators;

/// Why the two AWS apps of the example are not in the demo, in one line.
const AWS_LEFT_OUT: &str = "AWS (aws-dev, aws-staging) is left out: its plugin is tested against a Python moto server, which the demo does not start";

/// Text output, silenced under `--json`.
pub(super) struct Out {
    json: bool,
}

impl Out {
    fn line(&self, text: impl AsRef<str>) {
        if !self.json {
            say!("{}", text.as_ref());
        }
    }

    fn plan(&self, plan: &Plan) {
        if !self.json {
            crate::cli::output::say_lines(&render(plan));
        }
    }

    fn run(&self, run: &RunReport) {
        if !self.json {
            say!();
            print_report(run, false);
        }
    }
}

/// One step as it ended.
struct Ended {
    number: usize,
    step: Step,
    result: Result<Finding, String>,
}

impl Ended {
    fn ok(&self) -> bool {
        self.result.as_ref().is_ok_and(|f| f.ok)
    }

    fn got(&self) -> String {
        match &self.result {
            Ok(finding) => finding.got.clone(),
            Err(error) => format!("could not run: {error}"),
        }
    }

    fn label(&self) -> String {
        format!("step {} ({})", self.number, self.step.name())
    }
}

pub(crate) async fn run(json: bool, dir: Option<&std::path::Path>) -> Exit {
    let out = Out { json };
    let world = match World::start(dir).await {
        Ok(world) => world,
        Err(e) => return bad_input(&format!("the demo cannot start: {e}"), json),
    };
    intro(&world, &out);
    let ended = run_steps(&world, &out).await;
    let failed = ended.iter().find(|e| !e.ok());
    let exit = if failed.is_none() && ended.len() == Step::ALL.len() {
        Exit::Success
    } else {
        Exit::ActionFailed
    };
    let audit_events = world.audit.records().len();
    if json {
        emit(&json!({
            "ok": exit == Exit::Success,
            "exit": exit as u8,
            "simulators": world.base_urls().into_iter().collect::<BTreeMap<_, _>>(),
            "left_out": AWS_LEFT_OUT,
            "failed_step": failed.map(|e| e.step.name()),
            "steps": ended.iter().map(step_json).collect::<Vec<_>>(),
            "audit_events": audit_events,
        }));
    } else {
        summary(&ended, audit_events);
    }
    exit
}

fn intro(world: &World, out: &Out) {
    out.line("Portcullis demo: Josh Park joins Acme as a Platform Engineer, then leaves.");
    for (app, url) in world.base_urls() {
        out.line(format!(
            "  {app:<8} simulator on {url}, bundled {app} plugin"
        ));
    }
    out.line(format!("  {AWS_LEFT_OUT}"));
    if world.kept() {
        let dir = world.state_path();
        let dir = dir.parent().unwrap_or(std::path::Path::new("."));
        out.line(format!(
            "  state: SQLite at {}, audit trail {}/audit.jsonl (kept; check it with `portcullis --config {}/portcullis.toml audit verify`)",
            world.state_path().display(),
            dir.display(),
            dir.display()
        ));
    } else {
        out.line(format!(
            "  state: SQLite at {} (deleted when the demo ends)",
            world.state_path().display()
        ));
    }
    out.line("  policy: host/src/cli/demo/policy.toml (the example without AWS); HR events: examples/josh/hr-events.json");
}

/// Runs the steps in order, stopping at the first that does not end as expected: each
/// builds on the state the one before left.
async fn run_steps(world: &World, out: &Out) -> Vec<Ended> {
    let mut ended = Vec::new();
    for (index, step) in Step::ALL.into_iter().enumerate() {
        let number = index + 1;
        out.line(format!("\n== {number}. {} ==", step.title()));
        let result = step.run(world, out).await;
        let done = Ended {
            number,
            step,
            result,
        };
        if done.ok() {
            out.line(format!("-> as expected: {}", done.got()));
        } else {
            out.line(format!(
                "-> NOT AS EXPECTED: expected {}; got {}",
                step.expected(),
                done.got()
            ));
        }
        let stop = !done.ok();
        ended.push(done);
        if stop {
            break;
        }
    }
    ended
}

fn summary(ended: &[Ended], audit_events: usize) {
    say!("\nsummary");
    for e in ended {
        say!(
            "  {:>2}. {:<19} {}",
            e.number,
            e.step.name(),
            if e.ok() {
                "as expected"
            } else {
                "NOT AS EXPECTED"
            }
        );
    }
    for step in Step::ALL.iter().skip(ended.len()) {
        say!("      {:<19} not run", step.name());
    }
    say!("  {audit_events} audit events recorded (call intents, HTTP requests, outcomes)");
    match ended.iter().find(|e| !e.ok()) {
        None if ended.len() == Step::ALL.len() => {
            say!("\nevery step ended as expected and was read back");
        }
        None => say!("\nthe demo stopped before its last step"),
        Some(e) => say!(
            "\n{} did not end as expected: expected {}; got {}",
            e.label(),
            e.step.expected(),
            e.got()
        ),
    }
}

fn step_json(e: &Ended) -> Value {
    let mut doc = json!({
        "step": e.number,
        "name": e.step.name(),
        "title": e.step.title(),
        "expected": e.step.expected(),
        "ok": e.ok(),
        "got": e.got(),
    });
    if let (Ok(finding), Some(map)) = (&e.result, doc.as_object_mut()) {
        map.insert("result".into(), finding.detail.clone());
    }
    doc
}
