//! The hash chain of the JSON-lines audit trail. Every record carries its sequence number
//! and the sha256 of the line before it (`{"seq":N,"prev":"HEX",...}`), so changing,
//! deleting, inserting or reordering any record breaks the chain at that point, and
//! `portcullis audit verify` names it.
//!
//! The canonical encoding is the line as written: the verifier hashes the stored bytes
//! (without the newline) and never re-encodes them. Lines written before the chain existed
//! (an older Portcullis) are legacy: the first chained record's `prev` is the sha256 of all
//! of them, so they cannot change unnoticed either, though not one by one.
//!
//! A changed last record, and a tail cut off, leave no successor to notice: the signed
//! checkpoints ([`super::checkpoint`]) and their second copy cover those.

/// The `prev` of the first record of a trail with no legacy lines.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The line for record `seq` after `prev`: `body` (a JSON object, already scrubbed) with
/// `seq` and `prev` first. Built as text, after scrubbing, so nothing can alter the hash.
pub(crate) fn link(seq: u64, prev: &str, body: &[u8]) -> Vec<u8> {
    let mut line = format!("{{\"seq\":{seq},\"prev\":\"{prev}\"").into_bytes();
    match body {
        [b'{', b'}'] => line.push(b'}'),
        [b'{', rest @ ..] => {
            line.push(b',');
            line.extend_from_slice(rest);
        }
        // Not an object: kept whole under a key, so the line stays one JSON object.
        other => {
            line.extend_from_slice(b",\"record\":");
            line.extend_from_slice(other);
            line.push(b'}');
        }
    }
    line
}

/// The chain fields of a line, if it is a chained record.
pub(crate) fn chained(line: &[u8]) -> Option<(u64, String)> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let seq = value.get("seq")?.as_u64()?;
    let prev = value.get("prev")?.as_str()?.to_owned();
    Some((seq, prev))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::audit::verify::{Broken, Verified, VerifyOptions};
    use crate::audit::{AuditEvent, AuditRecord, AuditSink as _, JsonLinesSink};

    fn verify(path: &Path) -> Result<Verified, Broken> {
        crate::audit::verify::verify(path, &VerifyOptions::default())
    }

    fn record(n: u32) -> AuditRecord {
        AuditRecord {
            at: chrono::DateTime::from_timestamp(1_800_000_000 + i64::from(n), 0).expect("time"),
            call_id: format!("call-{n}"),
            app: "github".into(),
            plugin_sha256: "abc".into(),
            event: AuditEvent::SecretRevealed {
                name: format!("token-{n}"),
            },
        }
    }

    fn trail(n: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.jsonl");
        let sink = JsonLinesSink::open(&path).expect("open");
        for i in 1..=n {
            sink.record(&record(i)).expect("record");
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
    }

    #[test]
    fn an_untouched_trail_verifies_and_a_reopened_sink_continues_its_chain() {
        let (_dir, path) = trail(3);
        let sink = JsonLinesSink::open(&path).expect("reopen");
        sink.record(&record(4)).expect("record");
        let verified = verify(&path).expect("intact");
        // 3 records, the first sink's shutdown checkpoint, then record 4.
        assert_eq!(verified.records, 5);
        assert_eq!(verified.checkpoints, 1);
        assert_eq!(verified.legacy_lines, 0);
        assert!(lines(&path)[0].starts_with(&format!("{{\"seq\":1,\"prev\":\"{GENESIS}\",")));
    }

    #[test]
    fn two_sinks_on_one_file_keep_one_chain() {
        let (_dir, path) = trail(1);
        let (a, b) = (
            JsonLinesSink::open(&path).expect("a"),
            JsonLinesSink::open(&path).expect("b"),
        );
        for i in 0..5 {
            a.record(&record(10 + i)).expect("a");
            b.record(&record(20 + i)).expect("b");
        }
        // 11 records and the first sink's shutdown checkpoint.
        assert_eq!(verify(&path).expect("intact").records, 12);
    }

    #[test]
    fn every_kind_of_tampering_is_named_at_its_line() {
        let (_dir, path) = trail(6);
        let original = lines(&path);
        let broken = |edit: &dyn Fn(&mut Vec<String>)| {
            let mut changed = original.clone();
            edit(&mut changed);
            write(&path, &changed);
            verify(&path).expect_err("tampering is found")
        };
        // One byte of record 3 changed: record 4 no longer follows it.
        let err = broken(&|l| l[2] = l[2].replace("token-3", "token-9"));
        assert_eq!(err.line, 4, "{err}");
        assert!(err.problem.contains("line 3 was changed"), "{err}");
        // Record 3 deleted.
        let err = broken(&|l| {
            l.remove(2);
        });
        assert_eq!(err.line, 3, "{err}");
        assert!(err.problem.contains("seq 4 where seq 3 belongs"), "{err}");
        // A copy of record 2 inserted after record 4.
        let err = broken(&|l| {
            let copy = l[1].clone();
            l.insert(4, copy);
        });
        assert_eq!(err.line, 5, "{err}");
        // Records 2 and 3 swapped.
        let err = broken(&|l| l.swap(1, 2));
        assert_eq!(err.line, 2, "{err}");
        // A line without a chain inserted.
        let err = broken(&|l| l.insert(3, r#"{"event":"call-finished"}"#.into()));
        assert_eq!(err.line, 4, "{err}");
        assert!(err.problem.contains("inserted or rewritten"), "{err}");
        // A torn last line.
        let mut torn = original.join("\n");
        torn.push_str("\n{\"seq\":8,\"prev\":\"ab");
        std::fs::write(&path, torn).expect("write");
        let err = verify(&path).expect_err("torn");
        assert_eq!(err.line, 8);
        assert!(err.problem.contains("torn"), "{err}");
        // Put back, it verifies again.
        write(&path, &original);
        // Six records and the shutdown checkpoint.
        assert_eq!(verify(&path).expect("intact").records, 7);
    }

    #[test]
    fn lines_from_before_the_chain_are_anchored_by_its_first_record() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.jsonl");
        let legacy =
            "{\"event\":\"call-started\",\"app\":\"old\"}\n{\"event\":\"call-finished\"}\n";
        std::fs::write(&path, legacy).expect("legacy");
        let sink = JsonLinesSink::open(&path).expect("open");
        sink.record(&record(1)).expect("record");
        sink.record(&record(2)).expect("record");
        let verified = verify(&path).expect("intact");
        assert_eq!((verified.legacy_lines, verified.records), (2, 2));
        // A legacy line changed: the chain's first record no longer follows.
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("\"old\"", "\"new\"")).expect("write");
        let err = verify(&path).expect_err("legacy change");
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn scrubbing_never_touches_the_chain_fields() {
        assert_eq!(
            link(7, GENESIS, b"{\"a\":1}"),
            format!("{{\"seq\":7,\"prev\":\"{GENESIS}\",\"a\":1}}").into_bytes()
        );
        assert_eq!(
            link(1, "ff", b"{}"),
            b"{\"seq\":1,\"prev\":\"ff\"}".to_vec()
        );
    }
}
