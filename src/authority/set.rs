//! The pinned set of directory authorities a network names: their Ed25519
//! identity keys and HTTP addresses, in every node's and client's
//! configuration. A consensus is valid with signatures from a majority of
//! them ([`AuthoritySet::threshold`]).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::error::AuthorityError;
use crate::topology::hex_serde;

/// Most authorities a set may name (a bound on every per-authority table).
pub const MAX_AUTHORITIES: usize = 31;

/// One directory authority as the network pins it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityInfo {
    /// The authority's Ed25519 identity public key (64 hex digits).
    #[serde(with = "hex_serde::array")]
    pub identity_key: [u8; 32],
    /// Where its HTTP endpoint listens (uploads, votes, `/consensus`).
    pub addr: SocketAddr,
}

/// A verified, deduplicated set of authorities, sorted by identity key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthoritySet {
    authorities: Vec<AuthorityInfo>,
}

impl AuthoritySet {
    /// Checks and sorts `authorities`: at least one, at most
    /// [`MAX_AUTHORITIES`], every key a valid Ed25519 point, no key twice.
    pub fn new(mut authorities: Vec<AuthorityInfo>) -> Result<Self, AuthorityError> {
        if authorities.is_empty() {
            return Err(AuthorityError::NoAuthorities);
        }
        if authorities.len() > MAX_AUTHORITIES {
            return Err(AuthorityError::TooManyAuthorities(authorities.len()));
        }
        for a in &authorities {
            if !crate::keys::is_valid_edwards_public_key(&a.identity_key) {
                return Err(AuthorityError::InvalidAuthorityKey(hex::encode(
                    a.identity_key,
                )));
            }
        }
        authorities.sort_by_key(|a| a.identity_key);
        if let Some(pair) = authorities
            .windows(2)
            .find(|w| w[0].identity_key == w[1].identity_key)
        {
            return Err(AuthorityError::DuplicateAuthority(hex::encode(
                pair[0].identity_key,
            )));
        }
        Ok(AuthoritySet { authorities })
    }

    /// Signatures (and votes) needed: a strict majority, `n / 2 + 1`.
    pub fn threshold(&self) -> usize {
        self.authorities.len() / 2 + 1
    }

    /// Number of authorities.
    pub fn len(&self) -> usize {
        self.authorities.len()
    }

    /// Always false: a set has at least one authority.
    pub fn is_empty(&self) -> bool {
        self.authorities.is_empty()
    }

    /// The authorities, sorted by identity key.
    pub fn iter(&self) -> impl Iterator<Item = &AuthorityInfo> {
        self.authorities.iter()
    }

    /// The authority with this identity key.
    pub fn get(&self, identity_key: &[u8; 32]) -> Option<&AuthorityInfo> {
        self.authorities
            .binary_search_by_key(identity_key, |a| a.identity_key)
            .ok()
            .map(|i| &self.authorities[i])
    }

    /// Whether `identity_key` is one of the set's.
    pub fn contains(&self, identity_key: &[u8; 32]) -> bool {
        self.get(identity_key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn info(seed: u8) -> AuthorityInfo {
        AuthorityInfo {
            identity_key: SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
            addr: "127.0.0.1:7000".parse().unwrap(),
        }
    }

    #[test]
    fn threshold_is_a_strict_majority() {
        for (n, t) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)] {
            let set = AuthoritySet::new((0..n).map(|i| info(i as u8 + 1)).collect()).unwrap();
            assert_eq!(set.threshold(), t, "n = {n}");
        }
    }

    #[test]
    fn refuses_empty_duplicate_and_invalid_sets() {
        assert!(matches!(
            AuthoritySet::new(vec![]),
            Err(AuthorityError::NoAuthorities)
        ));
        assert!(matches!(
            AuthoritySet::new(vec![info(1), info(1)]),
            Err(AuthorityError::DuplicateAuthority(_))
        ));
        let mut bad = info(1);
        bad.identity_key = [0xff; 32];
        assert!(AuthoritySet::new(vec![bad]).is_err());
        let set = AuthoritySet::new(vec![info(2), info(1)]).unwrap();
        assert!(set.contains(&info(1).identity_key));
        assert!(!set.contains(&info(3).identity_key));
    }
}
