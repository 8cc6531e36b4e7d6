//! The production audit sink: one JSON object per line, appended to a file, each record
//! hash-chained to the one before it ([`super::chain`]), all of them leaves of a Merkle
//! tree ([`super::merkle`]) whose signed checkpoints ([`super::checkpoint`]) the sink
//! writes every N records, every T seconds, at run end, at shutdown and when it rotates
//! to a new segment.
//!
//! Invariants:
//! - An action's intent is on disk (fdatasync) before [`AuditSink::record`] returns for
//!   it. Concurrent intents share one sync (group commit): the first waiter syncs for all
//!   lines written so far, the rest wait for it.
//! - Processes sharing the file (a CLI approval while the service runs) take an OS lock
//!   per record and first read what the others appended, so the trail stays one chain.
//! - A torn last line (a writer killed mid-line) is never written after silently: the next
//!   writer ends it and appends a `torn-line-sealed` record naming its length and sha256,
//!   so `audit verify` reports it and the chain continues.
//! - Rotation renames the full file to `NAME.N` after a checkpoint; the next record
//!   continues the same chain (seq and prev) in a fresh `NAME`.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::checkpoint::{Checkpoint, Signer, default_key_path};
use super::merkle::{Frontier, Hash, leaf_hash};
use super::{AuditError, AuditEvent, AuditRecord, AuditSink, chain};
use crate::plugin::sha256_hex;

/// How a trail is written: checkpoints, second location, rotation, durability.
#[derive(Debug, Clone)]
pub struct TrailOptions {
    /// The ed25519 seed file; None: `NAME.key` beside the trail. Created when missing.
    pub signing_key: Option<PathBuf>,
    /// A second place every checkpoint is appended to (another disk, a mounted share), so
    /// a trail cut after its last checkpoint is still found out.
    pub witness: Option<PathBuf>,
    /// A checkpoint after this many records.
    pub checkpoint_every: u64,
    /// A checkpoint when this long has passed since the last one and records came since.
    pub checkpoint_interval: Duration,
    /// Rotate to a new segment once the file is this large; None: never.
    pub segment_bytes: Option<u64>,
    /// Sync intents to disk before their action's first write (off only for benchmarks
    /// and throwaway demos).
    pub fsync: bool,
}

impl Default for TrailOptions {
    fn default() -> TrailOptions {
        TrailOptions {
            signing_key: None,
            witness: None,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            segment_bytes: None,
            fsync: true,
        }
    }
}

/// Appends chained, checkpointed JSON lines to a file.
#[derive(Debug)]
pub struct JsonLinesSink {
    path: PathBuf,
    options: TrailOptions,
    signer: Signer,
    writer: Mutex<Writer>,
    durable: Mutex<Durable>,
    synced: Condvar,
}

/// Where the trail stands, as this process last read or wrote it.
#[derive(Debug)]
struct Writer {
    file: Arc<File>,
    /// Identity of the open file, to notice another process's rotation.
    inode: u64,
    /// Bytes of the file read or written so far.
    end: u64,
    seq: u64,
    /// The sha256 of the last chained line (or of the legacy lines, or GENESIS).
    prev: String,
    /// Legacy lines before the chain began, while no chained record was seen.
    legacy: Option<Sha256>,
    frontier: Frontier,
    /// The sha256 of record 1: names the trail in checkpoints.
    trail: Option<String>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Lines this process wrote; a line's number is its ticket for the group commit.
    written: u64,
}

#[derive(Debug, Default)]
struct Durable {
    synced: u64,
    syncing: bool,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |e| AuditError(format!("audit trail {}: {e}", path.display()))
}

fn inode_of(metadata: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        metadata.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        0
    }
}

fn inode(file: &File) -> std::io::Result<u64> {
    Ok(inode_of(&file.metadata()?))
}

/// The sealed segments of `path` (`NAME.1`, `NAME.2`, ...) in order, then `path`.
pub fn segments(path: &Path) -> Vec<PathBuf> {
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (
        path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        }),
        path.file_name().and_then(|n| n.to_str()),
    ) && let Ok(entries) = std::fs::read_dir(dir)
    {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(n) = file_name
                .to_str()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort();
    let mut all: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    all.push(path.to_owned());
    all
}

impl JsonLinesSink {
    /// Opens (or creates) a trail with the default options.
    pub fn open(path: &Path) -> Result<JsonLinesSink, AuditError> {
        JsonLinesSink::with_options(path, TrailOptions::default())
    }

    pub fn with_options(path: &Path, options: TrailOptions) -> Result<JsonLinesSink, AuditError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| AuditError(format!("cannot create {}: {e}", parent.display())))?;
        }
        let key_path = options
            .signing_key
            .clone()
            .unwrap_or_else(|| default_key_path(path));
        let signer = Signer::load_or_create(&key_path).map_err(AuditError)?;
        let writer = Writer::open(path).map_err(io_error(path))?;
        let sink = JsonLinesSink {
            path: path.to_owned(),
            options,
            signer,
            writer: Mutex::new(writer),
            durable: Mutex::new(Durable::default()),
            synced: Condvar::new(),
        };
        // Whatever the last writer left (a torn line included) is read and sealed now.
        sink.locked(|_| Ok(()))?;
        Ok(sink)
    }

    /// The hex public key that signs this trail's checkpoints.
    pub fn public_key(&self) -> String {
        self.signer.public_hex()
    }

    /// Runs `f` on the writer with the file locked against other processes and caught up
    /// with what they appended (reopened if one rotated it).
    fn locked<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> std::io::Result<T>,
    ) -> Result<T, AuditError> {
        let failed = io_error(&self.path);
        let mut writer = self.writer.lock();
        loop {
            writer.file.lock().map_err(&failed)?;
            // Rotated by another process while we waited: follow it to the new file.
            let current = std::fs::metadata(&self.path).ok().map(|m| inode_of(&m));
            if current == Some(writer.inode) {
                break;
            }
            // The rotating process finished the old file (its last record is the segment's
            // checkpoint) before it let go of it: read it to the end, then follow.
            let finished = writer.catch_up();
            let _ = writer.file.unlock();
            finished.map_err(&failed)?;
            writer.reopen(&self.path).map_err(&failed)?;
        }
        let result = (|| {
            writer.catch_up()?;
            f(&mut writer)
        })();
        let unlocked = writer.file.unlock();
        let value = result.map_err(&failed)?;
        unlocked.map_err(&failed)?;
        Ok(value)
    }

    /// Writes a signed checkpoint of every record so far (none when the last record is
    /// one already).
    fn checkpoint_now(&self, reason: &str) -> Result<(), AuditError> {
        let written = self.locked(|writer| writer.checkpoint(&self.signer, reason))?;
        if let Some(checkpoint) = written {
            self.witness(&checkpoint)?;
        }
        Ok(())
    }

    /// Appends a checkpoint to the second location, synced.
    fn witness(&self, checkpoint: &Checkpoint) -> Result<(), AuditError> {
        let Some(path) = &self.options.witness else {
            return Ok(());
        };
        let failed = |e: std::io::Error| {
            AuditError(format!(
                "cannot append the checkpoint to {} ([audit] checkpoints): {e}",
                path.display()
            ))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(failed)?;
        let mut line = serde_json::to_vec(checkpoint).map_err(|e| AuditError(e.to_string()))?;
        line.push(b'\n');
        file.write_all(&line).map_err(failed)?;
        file.sync_data().map_err(failed)
    }

    /// Waits until line `ticket` of this process is on disk, syncing for every waiter when
    /// nobody else is.
    fn sync_through(&self, ticket: u64) -> Result<(), AuditError> {
        let mut durable = self.durable.lock();
        loop {
            if durable.synced >= ticket {
                return Ok(());
            }
            if durable.syncing {
                self.synced.wait(&mut durable);
                continue;
            }
            durable.syncing = true;
            drop(durable);
            let (file, target) = {
                let writer = self.writer.lock();
                (Arc::clone(&writer.file), writer.written)
            };
            let result = file.sync_data();
            durable = self.durable.lock();
            durable.syncing = false;
            if result.is_ok() {
                durable.synced = durable.synced.max(target);
            }
            self.synced.notify_all();
            result.map_err(io_error(&self.path))?;
        }
    }
}

impl AuditSink for JsonLinesSink {
    fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let line = serde_json::to_vec(record).map_err(|e| AuditError(e.to_string()))?;
        // Last line of defence: a secret that reached a record any way at all (its
        // JSON-escaped form included) is scrubbed before the line is written.
        let body = crate::redact::global().scrub_bytes(&line).into_owned();
        let options = &self.options;
        let (ticket, due) = self.locked(|writer| {
            let ticket = writer.append(&body, Line::Event)?;
            let due = if writer.since_checkpoint >= options.checkpoint_every {
                Some("every-n")
            } else if writer.last_checkpoint.elapsed() >= options.checkpoint_interval {
                Some("interval")
            } else if options.segment_bytes.is_some_and(|max| writer.end >= max) {
                Some("segment")
            } else {
                None
            };
            Ok((ticket, due))
        })?;
        if self.options.fsync && matches!(record.event, AuditEvent::ActionStarted { .. }) {
            self.sync_through(ticket)?;
        }
        if let Some(reason) = due {
            // The record is written; a failed checkpoint is reported, and retried by the
            // next record or the run's end, but does not undo it.
            let result = if reason == "segment" {
                self.rotate()
            } else {
                self.checkpoint_now(reason)
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "could not write an audit checkpoint");
            }
        }
        Ok(())
    }

    fn checkpoint(&self, reason: &str) -> Result<(), AuditError> {
        self.checkpoint_now(reason)
    }

    fn tick(&self) -> Result<(), AuditError> {
        let due = {
            let writer = self.writer.lock();
            writer.since_checkpoint > 0
                && writer.last_checkpoint.elapsed() >= self.options.checkpoint_interval
        };
        if due {
            self.checkpoint_now("interval")?;
        }
        Ok(())
    }
}

impl JsonLinesSink {
    /// Seals the current file with a checkpoint and renames it to the next `NAME.N`.
    fn rotate(&self) -> Result<(), AuditError> {
        let path = self.path.clone();
        let max = self.options.segment_bytes;
        let written = self.locked(|writer| {
            // Another process may have rotated it already.
            if max.is_none_or(|max| writer.end < max) {
                return Ok(None);
            }
            let checkpoint = writer.checkpoint(&self.signer, "segment")?;
            writer.file.sync_data()?;
            let next = segments(&path)
                .iter()
                .rev()
                .nth(1)
                .and_then(|p| p.extension())
                .and_then(|e| e.to_str())
                .and_then(|n| n.parse::<u64>().ok())
                .map_or(1, |n| n + 1);
            let mut name = path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            name.push(format!(".{next}"));
            std::fs::rename(&path, path.with_file_name(name))?;
            // The chain goes on in a fresh file: same seq, prev and tree.
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?;
            // Our lock stays on the renamed file until `locked` unlocks it; the new file
            // is empty, so nobody can append out of order meanwhile.
            let old = std::mem::replace(&mut writer.file, Arc::new(file));
            let _ = old.unlock();
            writer.inode = inode(&writer.file)?;
            writer.end = 0;
            writer.file.lock()?;
            Ok(checkpoint)
        })?;
        if let Some(checkpoint) = written {
            self.witness(&checkpoint)?;
        }
        Ok(())
    }
}

impl Drop for JsonLinesSink {
    fn drop(&mut self) {
        if let Err(e) = self.checkpoint_now("shutdown") {
            tracing::error!(error = %e, "could not write the shutdown audit checkpoint");
        }
    }
}

impl Writer {
    fn open(path: &Path) -> std::io::Result<Writer> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut writer = Writer {
            inode: inode(&file)?,
            file: Arc::new(file),
            end: 0,
            seq: 0,
            prev: chain::GENESIS.to_owned(),
            legacy: Some(Sha256::new()),
            frontier: Frontier::default(),
            trail: None,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            written: 0,
        };
        writer.resume(path)?;
        Ok(writer)
    }

    /// Follows the trail to a file another process rotated to.
    fn reopen(&mut self, path: &Path) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        self.inode = inode(&file)?;
        self.file = Arc::new(file);
        self.end = 0;
        Ok(())
    }

    /// Starts from the last checkpoint of the current file, or of the previous segment
    /// when this file has none (then reads this file whole), or from scratch.
    fn resume(&mut self, path: &Path) -> std::io::Result<()> {
        let mut file = &*self.file;
        if let Some((offset, line)) = last_checkpoint_line(&mut file)?
            && self.start_at_checkpoint(&line)
        {
            self.end = offset + line.len() as u64 + 1;
            return Ok(());
        }
        let all = segments(path);
        if let Some(previous) = all.iter().rev().nth(1) {
            let segment = File::open(previous)?;
            if let Some((_, line)) = last_checkpoint_line(&mut &segment)?
                && self.start_at_checkpoint(&line)
            {
                self.end = 0;
                return Ok(());
            }
            return Err(std::io::Error::other(format!(
                "the segment {} does not end with a checkpoint; run `portcullis audit verify`",
                previous.display()
            )));
        }
        Ok(())
    }

    /// Takes the chain's state from a checkpoint line; false if the line is not one.
    fn start_at_checkpoint(&mut self, line: &[u8]) -> bool {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
            return false;
        };
        let (Some(seq), Some(trail), Some(frontier)) = (
            value.get("seq").and_then(|v| v.as_u64()),
            value.get("trail").and_then(|v| v.as_str()),
            value.get("frontier").and_then(|v| v.as_array()),
        ) else {
            return false;
        };
        let subtrees: Option<Vec<Hash>> = frontier
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| b.try_into().ok())
            })
            .collect();
        let Some(mut tree) = subtrees.and_then(|s| Frontier::from_parts(seq - 1, s)) else {
            return false;
        };
        tree.push(leaf_hash(line));
        self.frontier = tree;
        self.seq = seq;
        self.prev = sha256_hex(line);
        self.legacy = None;
        self.trail = Some(trail.to_owned());
        self.since_checkpoint = 0;
        true
    }

    /// Reads what was appended after `end` (by another process, or before this one
    /// opened the file): chained records extend the tree, a torn last line is sealed.
    fn catch_up(&mut self) -> std::io::Result<()> {
        let mut file = &*self.file;
        let len = file.metadata()?.len();
        if len == self.end {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.end))?;
        let mut appended = Vec::with_capacity((len - self.end) as usize);
        file.take(len - self.end).read_to_end(&mut appended)?;
        let mut rest = &appended[..];
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let line = &rest[..i];
            self.take_line(line, &rest[..=i]);
            self.end += i as u64 + 1;
            rest = &rest[i + 1..];
        }
        if rest.is_empty() {
            return Ok(());
        }
        let fragment = rest.to_vec();
        // A whole record whose newline was not written yet: finish it.
        if chain::chained(&fragment)
            .is_some_and(|(seq, prev)| seq == self.seq + 1 && prev == self.prev)
        {
            self.file_write(b"\n")?;
            self.take_line(&fragment, &fragment);
            self.end += fragment.len() as u64 + 1;
            return Ok(());
        }
        // A torn line: end it, then say so in a chained record.
        let offset = self.end;
        self.file_write(b"\n")?;
        self.end += fragment.len() as u64 + 1;
        let body = serde_json::to_vec(&json!({
            "at": chrono::Utc::now().to_rfc3339(),
            "event": "torn-line-sealed",
            "offset": offset,
            "bytes": fragment.len(),
            "sha256": sha256_hex(&fragment),
            "detail": "a writer stopped mid-line (crash or kill); the fragment is kept and excluded from the chain",
        }))
        .map_err(std::io::Error::other)?;
        tracing::warn!(offset, bytes = fragment.len(), "sealed a torn audit line");
        self.append(&body, Line::Seal)?;
        Ok(())
    }

    /// Accounts for one complete line read from the file.
    fn take_line(&mut self, line: &[u8], with_newline: &[u8]) {
        match chain::chained(line) {
            Some((seq, _)) => {
                self.seq = seq;
                self.prev = sha256_hex(line);
                self.legacy = None;
                self.frontier.push(leaf_hash(line));
                if seq == 1 {
                    self.trail = Some(self.prev.clone());
                }
                if is_checkpoint(line) {
                    self.since_checkpoint = 0;
                } else {
                    self.since_checkpoint += 1;
                }
            }
            None => {
                if let Some(legacy) = self.legacy.as_mut() {
                    legacy.update(with_newline);
                    self.prev = hex::encode(legacy.clone().finalize());
                }
                // A non-chained line inside the chain (a sealed fragment, or tampering)
                // is not a leaf; `audit verify` judges it.
            }
        }
    }

    fn file_write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        (&*self.file).write_all(bytes)
    }

    /// Appends one record after the chain's tail; returns its ticket.
    /// `kind` says what the sink is writing: an event (with the crash point of the
    /// crash tests between its halves), a seal or a checkpoint.
    fn append(&mut self, body: &[u8], kind: Line) -> std::io::Result<u64> {
        let seq = self.seq + 1;
        let mut line = chain::link(seq, &self.prev, body);
        let hash = sha256_hex(&line);
        let leaf = leaf_hash(&line);
        let checkpoint = kind == Line::Checkpoint;
        let crash_point = kind == Line::Event;
        line.push(b'\n');
        if crash_point {
            // Half a line on disk, then (under the crash tests) a SIGKILL.
            let half = line.len() / 2;
            self.file_write(&line[..half])?;
            crate::crash::point("audit-line");
            self.file_write(&line[half..])?;
        } else {
            self.file_write(&line)?;
        }
        self.end += line.len() as u64;
        self.seq = seq;
        if seq == 1 {
            self.trail = Some(hash.clone());
        }
        self.prev = hash;
        self.legacy = None;
        self.frontier.push(leaf);
        if checkpoint {
            self.since_checkpoint = 0;
            self.last_checkpoint = Instant::now();
        } else {
            self.since_checkpoint += 1;
        }
        self.written += 1;
        Ok(self.written)
    }

    /// Signs the tree as it stands and appends the checkpoint; None when nothing came
    /// since the last one.
    fn checkpoint(&mut self, signer: &Signer, reason: &str) -> std::io::Result<Option<Checkpoint>> {
        let Some(trail) = self.trail.clone() else {
            return Ok(None);
        };
        if self.since_checkpoint == 0 {
            return Ok(None);
        }
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let root = hex::encode(self.frontier.root());
        let checkpoint = signer.sign(&trail, self.frontier.size(), &root, &at, reason);
        let body = serde_json::to_vec(&json!({
            "at": at,
            "event": "checkpoint",
            "trail": checkpoint.trail,
            "tree_size": checkpoint.tree_size,
            "root": checkpoint.root,
            "key": checkpoint.key,
            "signature": checkpoint.signature,
            "reason": reason,
            "frontier": self.frontier.subtrees().iter().map(hex::encode).collect::<Vec<_>>(),
        }))
        .map_err(std::io::Error::other)?;
        self.append(&body, Line::Checkpoint)?;
        Ok(Some(checkpoint))
    }
}

/// What kind of line the sink appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Event,
    Seal,
    Checkpoint,
}

/// True for a checkpoint record's line.
pub(crate) fn is_checkpoint(line: &[u8]) -> bool {
    // Cheap test first: the sink writes the event name in this exact form.
    memchr_contains(line, b"\"event\":\"checkpoint\"")
        && serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| v.get("event").and_then(|e| e.as_str()) == Some("checkpoint"))
}

fn memchr_contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The last checkpoint line of `file` and its offset, read backwards in doubling windows
/// (a checkpoint is at most `checkpoint_every` records from the end).
fn last_checkpoint_line(file: &mut &File) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut start = len;
    let mut window: u64 = 64 * 1024;
    let mut buf: Vec<u8> = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(window);
        file.seek(SeekFrom::Start(from))?;
        let mut chunk = Vec::with_capacity((start - from) as usize);
        file.take(start - from).read_to_end(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        window = window.saturating_mul(2);
        // Complete lines only: the first may be cut by the window, the last may be torn.
        let skip = if start > 0 {
            match buf.iter().position(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        } else {
            0
        };
        let mut lines = Vec::new();
        let mut pos = skip;
        for (i, b) in buf.iter().enumerate().skip(skip) {
            if *b == b'\n' {
                lines.push((pos, i));
                pos = i + 1;
            }
        }
        for (from_byte, to_byte) in lines.into_iter().rev() {
            if is_checkpoint(&buf[from_byte..to_byte]) {
                return Ok(Some((
                    start + from_byte as u64,
                    buf[from_byte..to_byte].to_vec(),
                )));
            }
        }
    }
    Ok(None)
}

/// Calls `f` with every complete line of the trail (all segments, in order): the file,
/// its 1-based line number and the line without its newline.
pub(crate) fn for_each_line(
    path: &Path,
    mut f: impl FnMut(&Path, u64, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    use std::io::BufRead as _;
    for file in segments(path) {
        let opened =
            File::open(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let mut reader = std::io::BufReader::new(opened);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if read == 0 {
                break;
            }
            number += 1;
            if let Some(body) = line.strip_suffix(b"\n") {
                f(&file, number, body)?;
            }
        }
    }
    Ok(())
}
