//! VRF neighbour selection (`sphinx-v1.md`, "VRF neighbour selection").
//!
//! Per epoch `E`: `β_n = VRF_hash(vrf_secret, "betanet neighbors v1" ‖ u64be(E))`
//! and `K_n = BLAKE3.derive_key("betanet vrf neighbor key v1", β_n)`. Each
//! node of the next layer scores `BLAKE3.keyed_hash(K_n, id)`; the node's
//! neighbours are the `k` lowest scores (bytes compared lexicographically).
//! Publishing `π_n` lets anyone recompute the set, so a node cannot steer
//! its traffic through nodes of its choosing.

use zeroize::Zeroizing;

use super::ecvrf::verify;
use super::epoch::Epoch;
use super::types::{VrfError, VrfOutput, VrfProof};
use crate::keys::VrfPublicKey;
use crate::sphinx::NodeId;

/// Prefix of the neighbour VRF input.
const NEIGHBORS_ALPHA_PREFIX: &[u8; 20] = b"betanet neighbors v1";

/// Derivation context of `K_n`.
const NEIGHBOR_KEY_CONTEXT: &str = "betanet vrf neighbor key v1";

/// The VRF input for epoch `E`'s neighbours: `"betanet neighbors v1" ‖ u64be(E)`.
pub fn neighbors_alpha(epoch: Epoch) -> [u8; 28] {
    let mut alpha = [0u8; 28];
    alpha[..20].copy_from_slice(NEIGHBORS_ALPHA_PREFIX);
    alpha[20..].copy_from_slice(&epoch.to_be_bytes());
    alpha
}

/// `K_n = BLAKE3.derive_key("betanet vrf neighbor key v1", β_n)`.
fn neighbor_key(beta: &VrfOutput) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(blake3::derive_key(NEIGHBOR_KEY_CONTEXT, beta.as_bytes()))
}

/// The score of candidate `id` under the neighbour output `β_n`:
/// `BLAKE3.keyed_hash(K_n, id)` over the 16 id bytes. Lower ranks first.
pub fn neighbor_score(beta: &VrfOutput, id: &NodeId) -> [u8; 32] {
    score(&neighbor_key(beta), id)
}

fn score(key: &[u8; 32], id: &NodeId) -> [u8; 32] {
    *blake3::keyed_hash(key, id.as_bytes()).as_bytes()
}

/// The neighbours chosen by the neighbour output `β_n`: the `k` candidates
/// with the lowest scores, lowest first. `k = 0`, or `k` at least the number
/// of candidates, selects the whole layer (still ordered by score).
///
/// Duplicate candidates count once. Ties (distinct ids with equal 32-byte
/// scores, which BLAKE3 makes practically impossible) are broken by id so
/// the result never depends on the input order.
pub fn select_neighbors(output: &VrfOutput, candidates: &[NodeId], k: usize) -> Vec<NodeId> {
    let key = neighbor_key(output);
    let mut scored: Vec<([u8; 32], NodeId)> =
        candidates.iter().map(|id| (score(&key, id), *id)).collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    let k = if k == 0 {
        scored.len()
    } else {
        k.min(scored.len())
    };
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

/// Whether `claimed` is the neighbour set the node with VRF key `public` must
/// use in `epoch` among `candidates`, after verifying its neighbour proof.
///
/// `claimed` is compared as a set: a node may list its neighbours in any
/// order. Fails (rather than answering `false`) if the proof does not verify.
pub fn verify_neighbors(
    public: &VrfPublicKey,
    epoch: Epoch,
    proof: &VrfProof,
    candidates: &[NodeId],
    k: usize,
    claimed: &[NodeId],
) -> Result<bool, VrfError> {
    let beta = verify(public, &neighbors_alpha(epoch), proof)?;
    let mut expected = select_neighbors(&beta, candidates, k);
    let mut claimed = claimed.to_vec();
    expected.sort_unstable();
    claimed.sort_unstable();
    Ok(expected == claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<NodeId> {
        (0..n).map(|i| NodeId::from_bytes([i; 16])).collect()
    }

    #[test]
    fn alpha_layout() {
        let alpha = neighbors_alpha(Epoch(258));
        assert_eq!(&alpha[..20], b"betanet neighbors v1");
        assert_eq!(alpha[20..], [0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn k_zero_and_large_k_select_everyone_in_score_order() {
        let beta = VrfOutput::from_bytes([9; 64]);
        let all = select_neighbors(&beta, &ids(10), 0);
        assert_eq!(all.len(), 10);
        assert_eq!(select_neighbors(&beta, &ids(10), 50), all);
        let scores: Vec<_> = all.iter().map(|id| neighbor_score(&beta, id)).collect();
        assert!(scores.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(select_neighbors(&beta, &ids(10), 3), all[..3]);
    }

    #[test]
    fn input_order_and_duplicates_do_not_matter() {
        let beta = VrfOutput::from_bytes([1; 64]);
        let mut shuffled = ids(8);
        shuffled.reverse();
        shuffled.extend(ids(8));
        assert_eq!(
            select_neighbors(&beta, &shuffled, 4),
            select_neighbors(&beta, &ids(8), 4)
        );
        assert!(select_neighbors(&beta, &[], 3).is_empty());
    }
}
