//! `portcullis audit verify`: a whole trail (every segment) checked end to end: the hash
//! chain, every signed checkpoint against the Merkle root of the records before it, the
//! checkpoints' key (against the auditor's, with `--key`), sealed torn lines, and the
//! copies of the checkpoints kept in a second place, which find a tail cut off after the
//! trail's own last checkpoint.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha256};

use super::chain::{GENESIS, chained};
use super::checkpoint::Checkpoint;
use super::file::{is_checkpoint, segments};
use super::merkle::{Frontier, leaf_hash};
use crate::plugin::sha256_hex;

/// What an auditor checks the trail against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The public key checkpoints must be signed with; without it they must only agree
    /// with each other.
    pub key: Option<VerifyingKey>,
    /// The second location's checkpoints (`[audit] checkpoints`).
    pub witness: Option<PathBuf>,
}

/// A trail that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Chained records, `seq` 1 to this.
    pub records: u64,
    /// Lines before the chain began (written by an older Portcullis).
    pub legacy_lines: u64,
    /// The last record's hash.
    pub head: String,
    /// Files read: sealed segments, then the live file.
    pub segments: usize,
    /// Signed checkpoints found in the trail, all valid.
    pub checkpoints: u64,
    /// The last one: what an inclusion proof verifies against.
    pub last_checkpoint: Option<Checkpoint>,
    /// Records after the last checkpoint: covered by the chain alone until the next one.
    pub after_last_checkpoint: u64,
    /// Torn lines (a writer killed mid-line) that a later writer sealed: file and line.
    pub sealed_torn: Vec<(String, u64)>,
    /// Checkpoints in the second location, each matching the trail.
    pub witnessed: u64,
}

/// Where and why a trail fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: line {line}: {problem}")]
pub struct Broken {
    pub path: String,
    /// 1-based line of the first record that does not hold (0: the file itself).
    pub line: u64,
    pub problem: String,
}

/// A line not in the chain, waiting for the seal record that must follow it.
struct Fragment {
    line: u64,
    bytes: usize,
    sha256: String,
}

struct Walk {
    options: VerifyOptions,
    legacy: Sha256,
    legacy_lines: u64,
    prev: Option<String>,
    records: u64,
    frontier: Frontier,
    trail: Option<String>,
    key: Option<String>,
    checkpoints: u64,
    last_checkpoint: Option<Checkpoint>,
    after_last_checkpoint: u64,
    sealed_torn: Vec<(String, u64)>,
    fragment: Option<Fragment>,
    /// The file being read, for reports.
    current: String,
    /// Second-location checkpoints by tree size, with their line in that file.
    witness: BTreeMap<u64, Vec<(u64, Checkpoint)>>,
    witnessed: u64,
}

/// Checks a whole trail.
pub fn verify(path: &Path, options: &VerifyOptions) -> Result<Verified, Broken> {
    let witness = match &options.witness {
        Some(file) => load_witness(file, options.key.as_ref())?,
        None => BTreeMap::new(),
    };
    let mut walk = Walk {
        options: options.clone(),
        legacy: Sha256::new(),
        legacy_lines: 0,
        prev: None,
        records: 0,
        frontier: Frontier::default(),
        trail: None,
        key: None,
        checkpoints: 0,
        last_checkpoint: None,
        after_last_checkpoint: 0,
        sealed_torn: Vec::new(),
        fragment: None,
        current: String::new(),
        witness,
        witnessed: 0,
    };
    let files = segments(path);
    let last_file = files.len() - 1;
    for (n, file) in files.iter().enumerate() {
        walk.file(file, n == last_file)?;
    }
    walk.finish(path)
}

fn load_witness(
    file: &Path,
    key: Option<&VerifyingKey>,
) -> Result<BTreeMap<u64, Vec<(u64, Checkpoint)>>, Broken> {
    let shown = file.display().to_string();
    let broken = |line: u64, problem: String| Broken {
        path: shown.clone(),
        line,
        problem,
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        broken(
            0,
            format!("cannot read the second location's checkpoints: {e}"),
        )
    })?;
    let mut by_size: BTreeMap<u64, Vec<(u64, Checkpoint)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let number = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let checkpoint: Checkpoint = serde_json::from_str(line)
            .map_err(|e| broken(number, format!("not a checkpoint: {e}")))?;
        checkpoint
            .check(key)
            .map_err(|e| broken(number, format!("checkpoint copy: {e}")))?;
        by_size
            .entry(checkpoint.tree_size)
            .or_default()
            .push((number, checkpoint));
    }
    Ok(by_size)
}

impl Walk {
    fn file(&mut self, path: &Path, last: bool) -> Result<(), Broken> {
        let shown = path.display().to_string();
        self.current = shown.clone();
        let broken = |line: u64, problem: String| Broken {
            path: shown.clone(),
            line,
            problem,
        };
        let file = File::open(path).map_err(|e| broken(0, format!("cannot read: {e}")))?;
        let mut reader = BufReader::new(file);
        let mut number = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| broken(number + 1, format!("cannot read: {e}")))?;
            if read == 0 {
                break;
            }
            number += 1;
            let Some(body) = line.strip_suffix(b"\n") else {
                let whose = if last {
                    "the last line is torn (no newline): a write was cut off and no writer has sealed it since, or the tail was edited"
                } else {
                    "a sealed segment ends in a torn line: the segment was edited"
                };
                return Err(broken(number, whose.into()));
            };
            self.line(body, &line, number)
                .map_err(|(at, problem)| broken(at, problem))?;
        }
        if let Some(fragment) = self.fragment.take() {
            return Err(broken(
                fragment.line,
                "not a chained record, inside the chain: a line was inserted or rewritten".into(),
            ));
        }
        Ok(())
    }

    /// Checks one line; an error names the line it is about (a fragment's, or this one).
    fn line(&mut self, body: &[u8], with_newline: &[u8], number: u64) -> Result<(), (u64, String)> {
        let here = |problem: String| (number, problem);
        let fields = chained(body);
        // A line outside the chain is accepted only when a seal record names it next.
        if let Some(fragment) = self.fragment.take() {
            let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
            let seals = fields.is_some()
                && value.as_ref().is_some_and(|v| {
                    v.get("event").and_then(|e| e.as_str()) == Some("torn-line-sealed")
                        && v.get("sha256").and_then(|s| s.as_str()) == Some(&fragment.sha256)
                        && v.get("bytes").and_then(|b| b.as_u64()) == Some(fragment.bytes as u64)
                });
            if !seals {
                return Err((
                    fragment.line,
                    "not a chained record, inside the chain: a line was inserted or rewritten"
                        .into(),
                ));
            }
            self.sealed_torn.push((self.current.clone(), fragment.line));
        }
        let Some((seq, linked)) = fields else {
            if self.prev.is_none() {
                self.legacy.update(with_newline);
                self.legacy_lines += 1;
            } else {
                self.fragment = Some(Fragment {
                    line: number,
                    bytes: body.len(),
                    sha256: sha256_hex(body),
                });
            }
            return Ok(());
        };
        let expected_prev = match &self.prev {
            Some(hash) => hash.clone(),
            None if self.legacy_lines == 0 => GENESIS.to_owned(),
            None => hex::encode(self.legacy.clone().finalize()),
        };
        let expected_seq = self.records + 1;
        if seq != expected_seq {
            return Err(here(format!(
                "record seq {seq} where seq {expected_seq} belongs: records were deleted, inserted or moved before it"
            )));
        }
        if linked != expected_prev {
            let before = if number > 1 {
                format!("line {}", number - 1)
            } else {
                "the previous segment's last line".to_owned()
            };
            return Err(here(format!(
                "record seq {seq} does not follow {before} (its prev is not that line's sha256): {before} was changed, or records around it were replaced"
            )));
        }
        let hash = sha256_hex(body);
        if seq == 1 {
            self.trail = Some(hash.clone());
        }
        if is_checkpoint(body) {
            self.checkpoint(body, seq).map_err(here)?;
        } else {
            self.after_last_checkpoint += 1;
        }
        self.records = seq;
        self.prev = Some(hash);
        self.frontier.push(leaf_hash(body));
        self.witness_at(seq).map_err(here)?;
        Ok(())
    }

    /// A checkpoint in the trail: signed, by the trail's key, over exactly the records
    /// before it.
    fn checkpoint(&mut self, body: &[u8], seq: u64) -> Result<(), String> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("checkpoint: {e}"))?;
        let checkpoint: Checkpoint = serde_json::from_value(value.clone())
            .map_err(|e| format!("checkpoint record seq {seq} is malformed: {e}"))?;
        checkpoint
            .check(self.options.key.as_ref())
            .map_err(|e| format!("checkpoint record seq {seq}: {e}"))?;
        match &self.key {
            Some(key) if *key != checkpoint.key => {
                return Err(format!(
                    "checkpoint record seq {seq} is signed by key {} but earlier checkpoints by {key}: forged or re-signed",
                    checkpoint.key
                ));
            }
            _ => self.key = Some(checkpoint.key.clone()),
        }
        if checkpoint.tree_size != seq - 1 {
            return Err(format!(
                "checkpoint record seq {seq} claims {} records where {} precede it",
                checkpoint.tree_size,
                seq - 1
            ));
        }
        if Some(&checkpoint.trail) != self.trail.as_ref() {
            return Err(format!(
                "checkpoint record seq {seq} names another trail ({}): copied from elsewhere",
                checkpoint.trail
            ));
        }
        let root = hex::encode(self.frontier.root());
        if checkpoint.root != root {
            return Err(format!(
                "checkpoint record seq {seq} signs root {} but records 1..{} hash to {root}: records before it were changed and re-chained, or the checkpoint was forged",
                checkpoint.root, checkpoint.tree_size
            ));
        }
        let stored: Vec<String> = value
            .get("frontier")
            .and_then(|f| serde_json::from_value(f.clone()).ok())
            .unwrap_or_default();
        let ours: Vec<String> = self.frontier.subtrees().iter().map(hex::encode).collect();
        if stored != ours {
            return Err(format!(
                "checkpoint record seq {seq} carries a frontier that is not the tree's: a writer resuming from it would fork the tree"
            ));
        }
        self.checkpoints += 1;
        self.after_last_checkpoint = 0;
        self.last_checkpoint = Some(checkpoint);
        Ok(())
    }

    /// Second-location checkpoints of `size` records must sign the trail's root there.
    fn witness_at(&mut self, size: u64) -> Result<(), String> {
        let Some(copies) = self.witness.remove(&size) else {
            return Ok(());
        };
        let root = hex::encode(self.frontier.root());
        for (line, copy) in copies {
            if Some(&copy.trail) != self.trail.as_ref() {
                continue; // another trail's checkpoint sharing the file
            }
            if self.key.as_ref().is_some_and(|key| *key != copy.key) {
                return Err(format!(
                    "the checkpoint copy at line {line} of the second location is signed by key {} but the trail's checkpoints by {}: forged",
                    copy.key,
                    self.key.as_deref().unwrap_or_default()
                ));
            }
            if copy.root != root {
                return Err(format!(
                    "records 1..{size} do not hash to the root the checkpoint copy at line {line} of the second location signed at {}: the trail was changed after it was signed",
                    copy.at
                ));
            }
            self.witnessed += 1;
        }
        Ok(())
    }

    fn finish(self, path: &Path) -> Result<Verified, Broken> {
        let trail = self.trail.clone();
        if let Some((&size, copies)) = self
            .witness
            .iter()
            .rev()
            .find(|(_, copies)| copies.iter().any(|(_, c)| Some(&c.trail) == trail.as_ref()))
            && let Some((line, copy)) = copies.first()
        {
            return Err(Broken {
                path: segments(path)
                    .last()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                line: 0,
                problem: format!(
                    "the trail ends at record {} but the checkpoint copy at line {line} of {} (signed {}) covers {size} records: records {}..{size} were cut off",
                    self.records,
                    self.options
                        .witness
                        .as_ref()
                        .map(|w| w.display().to_string())
                        .unwrap_or_default(),
                    copy.at,
                    self.records + 1
                ),
            });
        }
        let files = segments(path);
        Ok(Verified {
            records: self.records,
            legacy_lines: self.legacy_lines,
            head: self.prev.unwrap_or_else(|| GENESIS.to_owned()),
            segments: files.len(),
            checkpoints: self.checkpoints,
            last_checkpoint: self.last_checkpoint,
            after_last_checkpoint: self.after_last_checkpoint,
            sealed_torn: self.sealed_torn,
            witnessed: self.witnessed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::checkpoint::parse_public_key;
    use crate::audit::prove::{check_proof, prove};
    use crate::audit::{AuditEvent, AuditRecord, AuditSink as _, JsonLinesSink, TrailOptions};

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

    struct Trail {
        _dir: tempfile::TempDir,
        path: PathBuf,
        witness: PathBuf,
        options: TrailOptions,
    }

    fn trail(every: u64) -> Trail {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.jsonl");
        let witness = dir.path().join("elsewhere/checkpoints.jsonl");
        let options = TrailOptions {
            witness: Some(witness.clone()),
            checkpoint_every: every,
            checkpoint_interval: Duration::from_secs(3600),
            ..TrailOptions::default()
        };
        Trail {
            _dir: dir,
            path,
            witness,
            options,
        }
    }

    fn write(trail: &Trail, from: u32, to: u32) -> String {
        let sink = JsonLinesSink::with_options(&trail.path, trail.options.clone()).expect("open");
        for n in from..=to {
            sink.record(&record(n)).expect("record");
        }
        sink.public_key()
    }

    fn options(trail: &Trail, key: Option<&str>) -> VerifyOptions {
        VerifyOptions {
            key: key.map(|k| parse_public_key(k).expect("key")),
            witness: Some(trail.witness.clone()),
        }
    }

    #[test]
    fn checkpoints_every_n_and_at_shutdown_verify_against_the_key() {
        let t = trail(4);
        let key = write(&t, 1, 10);
        let verified = verify(&t.path, &options(&t, Some(&key))).expect("intact");
        // 10 records, a checkpoint after every 4, one at shutdown: 13 records.
        assert_eq!(verified.checkpoints, 3);
        assert_eq!(verified.records, 13);
        assert_eq!(verified.after_last_checkpoint, 0);
        assert_eq!(verified.witnessed, 3);
        // Another key is refused, naming both.
        let other = "11".repeat(32);
        let other = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .as_bytes(),
        )
        .replace(&other, "");
        let err = verify(&t.path, &options(&t, Some(&other))).expect_err("wrong key");
        assert!(err.problem.contains("was expected"), "{err}");
    }

    #[test]
    fn a_tail_cut_after_the_last_checkpoint_is_found_by_the_second_copy() {
        let t = trail(3);
        write(&t, 1, 7);
        let text = std::fs::read_to_string(&t.path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        // Cut the last four records, leaving a clean chain ending at a checkpoint.
        let kept = lines[..lines.len() - 4].join("\n") + "\n";
        std::fs::write(&t.path, kept).expect("cut");
        let alone = VerifyOptions::default();
        verify(&t.path, &alone).expect("the chain alone cannot tell");
        let err = verify(&t.path, &options(&t, None)).expect_err("cut found");
        assert!(err.problem.contains("were cut off"), "{err}");
    }

    #[test]
    fn a_forged_or_rewritten_checkpoint_is_named() {
        let t = trail(3);
        write(&t, 1, 5);
        let original = std::fs::read_to_string(&t.path).expect("read");
        // Change a checkpoint's size: its signature no longer matches.
        let forged = original.replacen("\"tree_size\":3", "\"tree_size\":2", 1);
        std::fs::write(&t.path, &forged).expect("forge");
        let err = verify(&t.path, &VerifyOptions::default()).expect_err("forged");
        assert_eq!(err.line, 4, "{err}");
        assert!(err.problem.contains("checkpoint"), "{err}");
        // Rewrite record 2 and re-chain everything after it: the chain holds, the signed
        // root does not.
        let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
        lines[1] = lines[1].replace("token-2", "token-X");
        let mut prev = crate::plugin::sha256_hex(lines[1].as_bytes());
        for line in lines.iter_mut().skip(2) {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("json");
            value["prev"] = serde_json::Value::String(prev.clone());
            let seq = value["seq"].as_u64().expect("seq");
            let mut body = value.clone();
            let object = body.as_object_mut().expect("object");
            object.remove("seq");
            object.remove("prev");
            *line = String::from_utf8(crate::audit::chain::link(
                seq,
                &prev,
                &serde_json::to_vec(&body).expect("body"),
            ))
            .expect("utf8");
            prev = crate::plugin::sha256_hex(line.as_bytes());
        }
        std::fs::write(&t.path, lines.join("\n") + "\n").expect("rewrite");
        let err = verify(&t.path, &VerifyOptions::default()).expect_err("rewritten");
        assert!(err.problem.contains("hash to"), "{err}");
    }

    #[test]
    fn a_torn_last_line_is_sealed_by_the_next_writer_and_reported() {
        let t = trail(100);
        write(&t, 1, 3);
        let mut text = std::fs::read_to_string(&t.path).expect("read");
        text.push_str("{\"seq\":5,\"prev\":\"0a1b");
        std::fs::write(&t.path, &text).expect("tear");
        assert!(
            verify(&t.path, &VerifyOptions::default())
                .expect_err("torn")
                .problem
                .contains("torn")
        );
        write(&t, 4, 5);
        let verified = verify(&t.path, &options(&t, None)).expect("sealed");
        assert_eq!(verified.sealed_torn.len(), 1);
        assert_eq!(verified.sealed_torn[0].1, 5);
        // Nothing was dropped: the fragment is still there.
        assert!(
            std::fs::read_to_string(&t.path)
                .expect("read")
                .contains("\"prev\":\"0a1b\n")
        );
    }

    #[test]
    fn segments_rotate_and_keep_one_chain_and_tree() {
        let mut t = trail(1000);
        t.options.segment_bytes = Some(2_000);
        write(&t, 1, 40);
        let files = segments(&t.path);
        assert!(files.len() > 3, "{files:?}");
        let verified = verify(&t.path, &options(&t, None)).expect("intact");
        assert_eq!(verified.segments, files.len());
        // A whole middle segment removed breaks the chain at the next one.
        std::fs::remove_file(&files[1]).expect("remove");
        let err = verify(&t.path, &VerifyOptions::default()).expect_err("missing segment");
        assert!(err.problem.contains("where seq"), "{err}");
    }

    #[test]
    fn two_writers_rotating_one_trail_keep_one_chain() {
        let mut t = trail(1000);
        t.options.segment_bytes = Some(1_500);
        let a = JsonLinesSink::with_options(&t.path, t.options.clone()).expect("a");
        let b = JsonLinesSink::with_options(&t.path, t.options.clone()).expect("b");
        for n in 0..30 {
            a.record(&record(n)).expect("a");
            b.record(&record(100 + n)).expect("b");
        }
        drop((a, b));
        assert!(segments(&t.path).len() > 3);
        verify(&t.path, &options(&t, None)).expect("one chain across writers and segments");
    }

    #[test]
    fn every_record_proves_against_its_checkpoint_without_the_trail() {
        let t = trail(5);
        let key = write(&t, 1, 12);
        let public = parse_public_key(&key).expect("key");
        let records = verify(&t.path, &VerifyOptions::default())
            .expect("intact")
            .records;
        for seq in 1..records {
            let proof = prove(&t.path, seq).expect("proof");
            check_proof(&proof, Some(&public)).expect("checks");
            let mut changed = proof.clone();
            changed.record = changed.record.replacen("\"at\":\"", "\"at\":\"1", 1);
            assert_ne!(changed.record, proof.record);
            assert!(check_proof(&changed, Some(&public)).is_err());
        }
        // The last record is the shutdown checkpoint: nothing covers it yet.
        assert!(
            prove(&t.path, records)
                .expect_err("uncovered")
                .contains("last checkpoint")
        );
    }
}
