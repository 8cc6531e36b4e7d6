//! `portcullis plugin test`: the conformance kit against a configured app, as a table.

use serde_json::json;

use super::output::emit;
use super::{ActionArgs, Exit};
use crate::conformance::{ConformanceCase, run as run_kit};
use crate::host::Host;
use crate::model::{Entitlement, Subject};

pub(crate) async fn run(host: &Host, args: &ActionArgs, json: bool) -> Exit {
    let case = ConformanceCase {
        app: args.app.clone(),
        subject: Subject {
            id: args.subject.clone(),
            email: args.email.clone(),
        },
        entitlement: Entitlement {
            kind: args.kind.clone(),
            resource: args.resource.clone(),
            level: args.level.clone(),
        },
    };
    let report = run_kit(host, &case).await;
    let exit = if report.passed() {
        Exit::Success
    } else {
        Exit::ActionFailed
    };
    if json {
        emit(&json!({ "ok": report.passed(), "exit": exit as u8, "report": report }));
    } else {
        super::output::say_lines(&report.table());
    }
    exit
}
