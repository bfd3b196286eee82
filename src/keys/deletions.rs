//! Retired Sphinx key files whose deletion failed, kept until they are
//! gone: forward secrecy holds only once the file is really deleted, so a
//! failed deletion is retried (with a backoff, each failure reported) for
//! as long as the node runs. A restart finds the file, loads it as a past
//! key and retires it again, so nothing is lost across restarts either.
//!
//! Pure over unix seconds; the node's key rotation passes the clock and the
//! function that deletes.

use std::collections::BTreeMap;

use super::error::KeyError;

/// Longest wait between two attempts, in seconds.
pub const MAX_RETRY_SECONDS: u64 = 60;

/// Key epochs whose files still have to be deleted.
#[derive(Debug, Default)]
pub struct PendingDeletions {
    /// By epoch: when to try next and how long the last wait was.
    pending: BTreeMap<u64, Retry>,
    /// Failed attempts since start.
    failures: u64,
}

#[derive(Clone, Copy, Debug)]
struct Retry {
    at: u64,
    wait: u64,
}

/// One failed attempt, for the caller to log.
#[derive(Debug)]
pub struct DeletionFailure {
    /// The key epoch whose file is still there.
    pub epoch: u64,
    /// Why.
    pub error: KeyError,
    /// Seconds until the next attempt.
    pub retry_in: u64,
}

impl PendingDeletions {
    /// Nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deletes `epoch`'s file with `delete` now; on failure it is kept and
    /// retried by [`retry_due`](Self::retry_due).
    pub fn delete(
        &mut self,
        epoch: u64,
        now: u64,
        delete: impl FnOnce(u64) -> Result<(), KeyError>,
    ) -> Result<(), DeletionFailure> {
        match delete(epoch) {
            Ok(()) => {
                self.pending.remove(&epoch);
                Ok(())
            }
            Err(error) => Err(self.failed(epoch, now, error, 0)),
        }
    }

    /// Retries every pending deletion that is due at `now`; returns the
    /// failures (those stay pending, with a longer wait).
    ///
    /// A deletion is due once its wait is over, or at once when the clock
    /// went back by more than a wait.
    pub fn retry_due(
        &mut self,
        now: u64,
        mut delete: impl FnMut(u64) -> Result<(), KeyError>,
    ) -> Vec<DeletionFailure> {
        let due: Vec<(u64, Retry)> = self
            .pending
            .iter()
            .filter(|(_, r)| now >= r.at || r.at > now.saturating_add(MAX_RETRY_SECONDS))
            .map(|(e, r)| (*e, *r))
            .collect();
        let mut failures = Vec::new();
        for (epoch, retry) in due {
            match delete(epoch) {
                Ok(()) => {
                    self.pending.remove(&epoch);
                }
                Err(error) => failures.push(self.failed(epoch, now, error, retry.wait)),
            }
        }
        failures
    }

    /// Epochs whose files are still to be deleted, ascending.
    pub fn pending(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.keys().copied()
    }

    /// When the next attempt is due, in unix seconds (`None`: nothing
    /// pending), so the caller can sleep until then.
    pub fn next_attempt(&self) -> Option<u64> {
        self.pending.values().map(|r| r.at).min()
    }

    /// Failed deletion attempts so far (`betanet_key_deletion_failures_total`).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    fn failed(&mut self, epoch: u64, now: u64, error: KeyError, last_wait: u64) -> DeletionFailure {
        self.failures = self.failures.saturating_add(1);
        let wait = last_wait.saturating_mul(2).clamp(1, MAX_RETRY_SECONDS);
        self.pending.insert(
            epoch,
            Retry {
                at: now.saturating_add(wait),
                wait,
            },
        );
        DeletionFailure {
            epoch,
            error,
            retry_in: wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(epoch: u64) -> KeyError {
        KeyError::Delete {
            path: format!("epoch-{epoch}.key").into(),
            error: std::io::Error::other("busy"),
        }
    }

    #[test]
    fn a_failed_deletion_is_retried_with_backoff_until_it_succeeds() {
        let mut p = PendingDeletions::new();
        let failure = p.delete(7, 1000, |e| Err(busy(e))).unwrap_err();
        assert_eq!((failure.epoch, failure.retry_in), (7, 1));
        assert_eq!(p.pending().collect::<Vec<_>>(), vec![7]);
        assert_eq!(p.failures(), 1);

        // Not due yet: nothing is tried.
        let mut tried = 0;
        assert!(
            p.retry_due(1000, |_| {
                tried += 1;
                Ok(())
            })
            .is_empty()
        );
        assert_eq!(tried, 0);

        // Due: fails again, waits twice as long; the wait is capped.
        let waits: Vec<u64> = (0..8)
            .scan(1001, |now, _| {
                let failures = p.retry_due(*now, |e| Err(busy(e)));
                let wait = failures[0].retry_in;
                *now += wait;
                Some(wait)
            })
            .collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(p.failures(), 9);

        // Finally succeeds: nothing pending, the count stays.
        assert!(p.retry_due(10_000, |_| Ok(())).is_empty());
        assert_eq!(p.pending().count(), 0);
        assert_eq!(p.failures(), 9);
    }

    #[test]
    fn a_deletion_that_succeeds_leaves_nothing_pending() {
        let mut p = PendingDeletions::new();
        p.delete(3, 0, |_| Ok(())).unwrap();
        assert_eq!(p.pending().count(), 0);
        assert_eq!(p.failures(), 0);
    }

    #[test]
    fn a_clock_that_went_back_does_not_postpone_retries() {
        let mut p = PendingDeletions::new();
        let _ = p.delete(1, 5_000, |e| Err(busy(e)));
        let mut tried = Vec::new();
        let failures = p.retry_due(100, |e| {
            tried.push(e);
            Ok(())
        });
        assert!(failures.is_empty());
        assert_eq!(tried, vec![1]);
    }
}
