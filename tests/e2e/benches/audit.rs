//! What durable intents cost: the production audit sink writing one action's records
//! (intent, HTTP calls, call ends, outcome: 8 lines, as the engine writes them) from 16
//! concurrent writers, with the intent synced to disk (group commit) and without.
//! Prints µs per action for both and the ratio. Run:
//! `cargo bench -p portcullis-e2e --bench audit`.

use std::sync::Arc;
use std::time::Instant;

use portcullis::audit::{AuditEvent, AuditRecord, AuditSink as _, JsonLinesSink, TrailOptions};
use portcullis::model::{Entitlement, Subject, Trigger};

const WRITERS: usize = 16;
const ACTIONS_PER_WRITER: usize = 250;

fn records(writer: usize, n: usize) -> Vec<AuditRecord> {
    let key = format!("bench-{writer}-{n}");
    let record = |event| AuditRecord {
        at: chrono::Utc::now(),
        call_id: key.clone(),
        app: "slack".into(),
        plugin_sha256: "0".repeat(64),
        event,
    };
    let mut out = vec![record(AuditEvent::ActionStarted {
        run: "bench".into(),
        op: "grant".into(),
        subject: Subject {
            id: format!("U{writer:04}{n:05}"),
            email: None,
        },
        entitlement: Entitlement {
            kind: "channel-membership".into(),
            resource: "C0100PLTFM".into(),
            level: None,
        },
        idempotency_key: key.clone(),
        trigger: Trigger {
            source: "bench".into(),
            ..Trigger::default()
        },
    })];
    for _ in 0..6 {
        out.push(record(AuditEvent::Http {
            method: "POST".into(),
            url: "https://slack.example/api/conversations.invite".into(),
            status: Some(200),
            latency_ms: 1.0,
            refused: None,
        }));
    }
    out.push(record(AuditEvent::SecretRevealed {
        name: "token".into(),
    }));
    out
}

fn round(fsync: bool) -> f64 {
    let dir = tempfile::tempdir().expect("dir");
    let sink = Arc::new(
        JsonLinesSink::with_options(
            &dir.path().join("audit.jsonl"),
            TrailOptions {
                fsync,
                ..TrailOptions::default()
            },
        )
        .expect("sink"),
    );
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let sink = Arc::clone(&sink);
            scope.spawn(move || {
                for n in 0..ACTIONS_PER_WRITER {
                    for record in records(writer, n) {
                        sink.record(&record).expect("record");
                    }
                }
            });
        }
    });
    started.elapsed().as_secs_f64() * 1e6 / (WRITERS * ACTIONS_PER_WRITER) as f64
}

fn main() {
    // Warm-up, then the median of five rounds each.
    let _ = round(false);
    let median = |fsync: bool| {
        let mut runs: Vec<f64> = (0..5).map(|_| round(fsync)).collect();
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let off = median(false);
    let on = median(true);
    println!(
        "audit per action (8 records, {WRITERS} concurrent writers): fsync off {off:.1} µs, fsync on (group commit) {on:.1} µs, ratio {:.2}",
        on / off
    );
}
