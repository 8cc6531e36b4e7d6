//! Inclusion proofs (`portcullis audit prove SEQ`): one record, the signed checkpoint
//! that covers it and the Merkle audit path between them. An auditor checks a proof with
//! `portcullis audit check-proof` (or any RFC 9162 verifier and ed25519 tool) without the
//! rest of the trail.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::chain::chained;
use super::checkpoint::Checkpoint;
use super::file::{for_each_line, is_checkpoint};
use super::merkle::{Hash, inclusion_proof, leaf_hash, root, verify_inclusion};

/// A record and the proof that a signed checkpoint includes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The record's sequence number; its leaf index is `seq - 1`.
    pub seq: u64,
    /// The record's line, exactly as stored (its leaf is `sha256(0x00 || record)`).
    pub record: String,
    pub checkpoint: Checkpoint,
    /// Hex sibling hashes from the leaf up (RFC 9162 §2.1.3).
    pub path: Vec<String>,
}

/// Builds the proof of record `seq` against the first checkpoint that covers it.
pub fn prove(trail: &Path, seq: u64) -> Result<InclusionProof, String> {
    if seq == 0 {
        return Err("records are numbered from 1".into());
    }
    let mut leaves: Vec<Hash> = Vec::new();
    let mut record: Option<String> = None;
    let mut covering: Option<Checkpoint> = None;
    for_each_line(trail, |_, _, line| {
        if covering.is_some() {
            return Ok(());
        }
        let Some((n, _)) = chained(line) else {
            return Ok(());
        };
        if n == seq {
            record = Some(String::from_utf8_lossy(line).into_owned());
        }
        if is_checkpoint(line) && n > seq {
            let checkpoint: Checkpoint = serde_json::from_slice(line)
                .map_err(|e| format!("checkpoint record seq {n} is malformed: {e}"))?;
            covering = Some(checkpoint);
            return Ok(());
        }
        leaves.push(leaf_hash(line));
        Ok(())
    })?;
    let record = record.ok_or_else(|| format!("the trail has no record seq {seq}"))?;
    let checkpoint = covering.ok_or_else(|| {
        format!(
            "record {seq} comes after the trail's last checkpoint; write one with `portcullis audit checkpoint`, then prove it"
        )
    })?;
    let size = usize::try_from(checkpoint.tree_size).map_err(|e| e.to_string())?;
    if size != leaves.len() || hex::encode(root(&leaves)) != checkpoint.root {
        return Err(format!(
            "the records before checkpoint {} do not hash to its root; run `portcullis audit verify`",
            checkpoint.tree_size + 1
        ));
    }
    let index = usize::try_from(seq - 1).map_err(|e| e.to_string())?;
    let path = inclusion_proof(&leaves, index)
        .ok_or_else(|| format!("record {seq} is not in the checkpoint's tree"))?;
    Ok(InclusionProof {
        seq,
        record,
        checkpoint,
        path: path.iter().map(hex::encode).collect(),
    })
}

/// Checks a proof on its own: the checkpoint's signature (against `key` when given), the
/// record's seq, and the audit path from its leaf to the signed root.
pub fn check_proof(proof: &InclusionProof, key: Option<&VerifyingKey>) -> Result<(), String> {
    proof
        .checkpoint
        .check(key)
        .map_err(|e| format!("the checkpoint does not hold: {e}"))?;
    match chained(proof.record.as_bytes()) {
        Some((seq, _)) if seq == proof.seq => {}
        _ => return Err(format!("the record is not record seq {}", proof.seq)),
    }
    let path: Vec<Hash> = proof
        .path
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("`{h}` in the path is not a sha256"))
        })
        .collect::<Result<_, _>>()?;
    let root: Hash = hex::decode(&proof.checkpoint.root)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the checkpoint's root is not a sha256")?;
    let leaf = leaf_hash(proof.record.as_bytes());
    if verify_inclusion(
        &leaf,
        proof.seq - 1,
        proof.checkpoint.tree_size,
        &path,
        &root,
    ) {
        Ok(())
    } else {
        Err(format!(
            "the record does not hash to the checkpoint's root through this path: record {} was changed, or the proof is not for this checkpoint",
            proof.seq
        ))
    }
}
