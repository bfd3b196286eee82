//! The shared random value, by commit–reveal (after Tor's
//! `srv-spec`, in one round per epoch): each authority draws a secret,
//! puts a commitment to it in its vote, and reveals the secret only once
//! the votes — and so every commitment — are fixed. The value is a hash of
//! every reveal that opens its author's commitment.
//!
//! An authority cannot choose the value: when it commits it does not know
//! the others' secrets, and it cannot change its own afterwards. Its one
//! lever is to withhold its reveal (choosing between two values, one bit),
//! the same residual bias Tor accepts; every withheld reveal is visible in
//! the consensus (`voters` against the reveals counted) and costs the
//! authority its say in the value.

/// The commitment to `value` for `epoch` by `authority`.
pub fn commitment(epoch: u64, authority: &[u8; 32], value: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("betanet shared random commit v1");
    h.update(&epoch.to_le_bytes());
    h.update(authority);
    h.update(value);
    *h.finalize().as_bytes()
}

/// The shared random value of `epoch` from the opened reveals, as
/// `(authority, value)` pairs (order does not matter; duplicates are
/// the caller's to exclude). With no reveal at all it is a hash of the
/// epoch alone: predictable, but still the same for every authority, and
/// the consensus then shows zero reveals.
pub fn shared_random(epoch: u64, reveals: &[([u8; 32], [u8; 32])]) -> [u8; 32] {
    let mut sorted = reveals.to_vec();
    sorted.sort_unstable();
    let mut h = blake3::Hasher::new_derive_key("betanet shared random value v1");
    h.update(&epoch.to_le_bytes());
    h.update(&(sorted.len() as u64).to_le_bytes());
    for (authority, value) in &sorted {
        h.update(authority);
        h.update(value);
    }
    *h.finalize().as_bytes()
}

/// A node's rank in the shared-random order of an epoch: layers are listed
/// and the active set is chosen by this value, which nobody can predict
/// before the reveals.
pub fn rank(shared_random: &[u8; 32], node_id: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("betanet layer order v1");
    h.update(shared_random);
    h.update(node_id);
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_free_and_sensitive_to_every_reveal() {
        let a = ([1; 32], [10; 32]);
        let b = ([2; 32], [20; 32]);
        assert_eq!(shared_random(5, &[a, b]), shared_random(5, &[b, a]));
        assert_ne!(shared_random(5, &[a, b]), shared_random(5, &[a]));
        assert_ne!(shared_random(5, &[a, b]), shared_random(6, &[a, b]));
        assert_ne!(
            shared_random(5, &[a, b]),
            shared_random(5, &[a, ([2; 32], [21; 32])])
        );
    }

    #[test]
    fn commitment_binds_epoch_author_and_value() {
        let c = commitment(1, &[1; 32], &[9; 32]);
        assert_ne!(c, commitment(2, &[1; 32], &[9; 32]));
        assert_ne!(c, commitment(1, &[2; 32], &[9; 32]));
        assert_ne!(c, commitment(1, &[1; 32], &[8; 32]));
    }
}
