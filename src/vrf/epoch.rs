//! VRF epochs: `E = floor(unix_seconds / epoch_seconds)`, with
//! `epoch_seconds` a network-wide parameter (default 3600).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::WallClock;

/// A VRF epoch number. Serialized as a plain JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch containing `unix_seconds`: `floor(unix_seconds / epoch_seconds)`.
    pub fn at(unix_seconds: u64, epoch_seconds: u64) -> Epoch {
        // Config validation keeps epoch_seconds ≥ 1; treat 0 as 1 rather
        // than panic on a value that came from a file.
        Epoch(unix_seconds / epoch_seconds.max(1))
    }

    /// The epoch containing the time `clock` reads now: the node's
    /// injected clock, the one its key schedule reads too.
    pub fn now(clock: &dyn WallClock, epoch_seconds: u64) -> Epoch {
        Epoch::at(clock.unix_seconds(), epoch_seconds)
    }

    /// The first second of this epoch, `E · epoch_seconds` (saturating).
    pub fn start_unix(self, epoch_seconds: u64) -> u64 {
        self.0.saturating_mul(epoch_seconds)
    }

    /// The epoch after this one (saturating at `u64::MAX`).
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }

    /// The epoch before this one (saturating at 0).
    pub fn prev(self) -> Epoch {
        Epoch(self.0.saturating_sub(1))
    }

    /// `u64be(E)`, the epoch's encoding inside VRF inputs.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_and_neighbours() {
        assert_eq!(Epoch::at(0, 3600), Epoch(0));
        assert_eq!(Epoch::at(3599, 3600), Epoch(0));
        assert_eq!(Epoch::at(3600, 3600), Epoch(1));
        assert_eq!(Epoch::at(7, 1), Epoch(7));
        assert_eq!(Epoch(5).start_unix(3600), 18_000);
        assert_eq!(Epoch(5).next(), Epoch(6));
        assert_eq!(Epoch(5).prev(), Epoch(4));
        assert_eq!(Epoch(0).prev(), Epoch(0));
    }

    #[test]
    fn now_reads_the_given_clock() {
        assert!(Epoch::now(&crate::clock::SystemClock, 1).0 > 1_577_836_800);
        let clock = crate::clock::ManualClock::new(7_199);
        assert_eq!(Epoch::now(&clock, 3600), Epoch(1));
        clock.set(7_200);
        assert_eq!(Epoch::now(&clock, 3600), Epoch(2));
    }

    #[test]
    fn zero_length_epochs_count_as_one_second() {
        assert_eq!(Epoch::at(7, 0), Epoch(7));
    }

    #[test]
    fn serializes_as_a_number() {
        assert_eq!(serde_json::to_string(&Epoch(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<Epoch>("42").unwrap(), Epoch(42));
    }
}
