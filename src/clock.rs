//! Wall-clock time as the key schedule and the VRF epochs see it: unix
//! seconds behind a small trait, so tests can move time across epochs
//! without waiting an hour or a day.
//!
//! Threads that act at a wall-clock time sleep until it
//! ([`WallClock::until`]); a clock that can be moved by hand also says
//! when it was ([`WallClock::jumps`]), so they re-plan at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

/// Longest a thread sleeps towards a time on a [`WallClock`] before it
/// reads the clock again: sleeps run on the monotonic clock, and the system
/// clock can be stepped (NTP) under them.
pub(crate) const RECHECK: Duration = Duration::from_secs(30);

/// A source of unix time in seconds.
pub trait WallClock: Send + Sync {
    /// Seconds since 1970-01-01 UTC.
    fn unix_seconds(&self) -> u64;

    /// How long from now until this clock reads `unix_seconds` (zero if it
    /// already does).
    fn until(&self, unix_seconds: u64) -> Duration {
        Duration::from_secs(unix_seconds.saturating_sub(self.unix_seconds()))
    }

    /// A channel told every time the clock is moved by hand, for threads
    /// asleep until a time on it; `None` for a clock that only moves with
    /// time.
    fn jumps(&self) -> Option<Receiver<()>> {
        None
    }
}

/// The system clock (a clock before 1970 reads as 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn unix_seconds(&self) -> u64 {
        unix_now()
    }

    /// To the nanosecond, so a thread wakes at the second it planned for,
    /// not up to a second late.
    fn until(&self, unix_seconds: u64) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_secs(unix_seconds).saturating_sub(now)
    }
}

/// Now, in unix seconds, from the system clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A clock that moves only when told to (tests).
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug, Default)]
struct Manual {
    now: AtomicU64,
    /// One bounded(1) channel per [`WallClock::jumps`] caller.
    watchers: Mutex<Vec<Sender<()>>>,
}

impl ManualClock {
    /// A clock reading `unix_seconds`.
    pub fn new(unix_seconds: u64) -> Self {
        ManualClock(Arc::new(Manual {
            now: AtomicU64::new(unix_seconds),
            watchers: Mutex::default(),
        }))
    }

    /// Sets the time (every clone sees it) and wakes the threads asleep
    /// until a time on this clock.
    pub fn set(&self, unix_seconds: u64) {
        self.0.now.store(unix_seconds, Ordering::SeqCst);
        let mut watchers = self.0.watchers.lock().unwrap_or_else(|e| e.into_inner());
        // A full channel already has a wake-up pending; a closed one has
        // no reader left.
        watchers.retain(|w| {
            !matches!(
                w.try_send(()),
                Err(crossbeam_channel::TrySendError::Disconnected(_))
            )
        });
    }
}

impl WallClock for ManualClock {
    fn unix_seconds(&self) -> u64 {
        self.0.now.load(Ordering::SeqCst)
    }

    fn jumps(&self) -> Option<Receiver<()>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.0
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_tells_its_watchers_when_moved() {
        let clock = ManualClock::new(100);
        let jumps = clock.jumps().unwrap();
        assert_eq!(clock.until(160), Duration::from_secs(60));
        assert!(jumps.try_recv().is_err());
        clock.set(150);
        clock.set(170);
        // Two moves, one wake-up: the reader re-reads the clock anyway.
        assert!(jumps.try_recv().is_ok());
        assert!(jumps.try_recv().is_err());
        assert_eq!(clock.until(160), Duration::ZERO);
    }

    #[test]
    fn the_system_clock_counts_down_to_the_nanosecond() {
        let next = unix_now() + 2;
        let left = SystemClock.until(next);
        assert!(
            left > Duration::from_secs(1) && left <= Duration::from_secs(2),
            "{left:?}"
        );
        assert_eq!(SystemClock.until(0), Duration::ZERO);
        assert!(SystemClock.jumps().is_none());
    }
}
