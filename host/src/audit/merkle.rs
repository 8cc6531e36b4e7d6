//! The audit trail as a Merkle tree, hashed as RFC 9162 (Certificate Transparency 2.0)
//! defines it: a leaf is `sha256(0x00 || line)`, an inner node `sha256(0x01 || left ||
//! right)`, and a tree of `n` leaves splits at the largest power of two below `n`.
//!
//! The writer keeps only the [`Frontier`] (the roots of the perfect subtrees the leaves so
//! far fill, at most 64 hashes), so appending and computing the root cost O(log n) and the
//! trail never has to be held in memory. Proofs ([`inclusion_proof`]) need every leaf hash
//! and are made by `portcullis audit prove`, once, from the file. Hand-written because the
//! Merkle crates (ct-merkle, rs_merkle) keep the whole tree in memory and have no frontier;
//! the tests check both against the RFC's recursive definition.

use sha2::{Digest as _, Sha256};

pub type Hash = [u8; 32];

/// The hash of one leaf: the record's line, without its newline.
pub fn leaf_hash(line: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(line);
    hasher.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Enough of a tree to append to and to compute its root: the roots of its perfect
/// subtrees, largest first (their sizes are the set bits of the leaf count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// Rebuilds a frontier from what a checkpoint stored: a leaf count and its subtree
    /// roots. None when they cannot belong together.
    pub fn from_parts(size: u64, subtrees: Vec<Hash>) -> Option<Frontier> {
        (size.count_ones() as usize == subtrees.len()).then_some(Frontier { size, subtrees })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn subtrees(&self) -> &[Hash] {
        &self.subtrees
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        // Every trailing set bit is a subtree of the same size as the one being carried.
        while size & 1 == 1 {
            let left = self.subtrees.pop().unwrap_or_default();
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.subtrees.push(hash);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.subtrees.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The root of `leaves` by the RFC's recursive definition.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1), nearest
/// sibling first. None when the index is outside the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    fn walk(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
        if leaves.len() <= 1 {
            return;
        }
        let k = split(leaves.len());
        if index < k {
            walk(&leaves[..k], index, path);
            path.push(root(&leaves[k..]));
        } else {
            walk(&leaves[k..], index - k, path);
            path.push(root(&leaves[..k]));
        }
    }
    walk(leaves, index, &mut path);
    Some(path)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut hash = *leaf;
    for sibling in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            hash = node_hash(sibling, &hash);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && hash == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("record {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn the_frontier_root_is_the_rfc_root_at_every_size() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        for (n, leaf) in all.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.root(), root(&all[..=n]), "size {}", n + 1);
            assert_eq!(frontier.size(), n as u64 + 1);
            let rebuilt = Frontier::from_parts(frontier.size(), frontier.subtrees().to_vec());
            assert_eq!(rebuilt.as_ref(), Some(&frontier));
        }
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_none());
    }

    #[test]
    fn known_answer_for_two_leaves() {
        // sha256(0x01 || sha256(0x00||"a") || sha256(0x00||"b")), computed independently.
        let root = root(&[leaf_hash(b"a"), leaf_hash(b"b")]);
        let mut hasher = Sha256::new();
        hasher.update([1u8]);
        hasher.update(Sha256::digest([&[0u8][..], b"a"].concat()));
        hasher.update(Sha256::digest([&[0u8][..], b"b"].concat()));
        assert_eq!(root, <Hash>::from(hasher.finalize()));
    }

    #[test]
    fn every_leaf_proves_at_every_size_and_nothing_else_does() {
        for size in 1..=33 {
            let all = leaves(size);
            let top = root(&all);
            for index in 0..size {
                let path = inclusion_proof(&all, index).expect("in the tree");
                assert!(
                    verify_inclusion(&all[index], index as u64, size as u64, &path, &top),
                    "leaf {index} of {size}"
                );
                // Another leaf, another index, another size or a changed path all fail.
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(
                    &other,
                    index as u64,
                    size as u64,
                    &path,
                    &top
                ));
                if size > 1 {
                    let wrong = (index + 1) % size;
                    assert!(!verify_inclusion(
                        &all[index],
                        wrong as u64,
                        size as u64,
                        &path,
                        &top
                    ));
                    let mut bent = path.clone();
                    bent[0][0] ^= 1;
                    assert!(!verify_inclusion(
                        &all[index],
                        index as u64,
                        size as u64,
                        &bent,
                        &top
                    ));
                }
                // (The path alone does not bind the size; the checkpoint signs size and
                // root together.)
            }
            assert!(inclusion_proof(&all, size).is_none());
        }
    }
}
