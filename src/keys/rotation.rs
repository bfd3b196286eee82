//! When Sphinx keys are created, accepted, published and destroyed: a pure
//! state machine over wall-clock seconds, so every rule is unit-tested
//! without clocks or files (the node's driver applies its plans).
//!
//! Key epoch `E = floor(unix_seconds / key_epoch_seconds)`. At any time the
//! node holds the keys of `E` (current) and `E + 1` (next) and publishes
//! both, so senders always find the key they need before they need it. After
//! a rotation the previous key is still accepted for `key_grace_seconds`
//! (senders with a slow clock or an older descriptor), then destroyed with
//! its replay cache: forward secrecy, and a replay cache bounded by one
//! epoch. The next key is accepted from `key_grace_seconds` before its epoch
//! starts (senders with a fast clock). Outside those windows exactly one key
//! is tried per packet, so junk costs one Diffie–Hellman, not three.

use std::collections::{BTreeMap, BTreeSet};

/// The network's key schedule (`sphinx.key_epoch_seconds`,
/// `sphinx.key_grace_seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySchedule {
    epoch_seconds: u64,
    grace_seconds: u64,
}

impl KeySchedule {
    /// A schedule; `epoch_seconds` is at least 1 and the grace is kept
    /// shorter than an epoch (the config validator already insists on both).
    pub fn new(epoch_seconds: u64, grace_seconds: u64) -> Self {
        let epoch_seconds = epoch_seconds.max(1);
        KeySchedule {
            epoch_seconds,
            grace_seconds: grace_seconds.min(epoch_seconds - 1),
        }
    }

    /// Seconds per key epoch.
    pub fn epoch_seconds(&self) -> u64 {
        self.epoch_seconds
    }

    /// The key epoch at `unix_seconds`.
    pub fn epoch_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds / self.epoch_seconds
    }

    /// The first second of key epoch `epoch`.
    pub fn start_of(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.epoch_seconds)
    }
}

/// What the driver must do now, and when to look again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPlan {
    /// The current key epoch.
    pub current: u64,
    /// Epochs whose keys must be generated (not held yet).
    pub create: Vec<u64>,
    /// Epochs whose keys (and replay caches) must be destroyed.
    pub retire: Vec<u64>,
    /// Epochs whose keys unwrap packets now, in the order to try them.
    pub accept: Vec<u64>,
    /// Epochs to publish in the descriptor, ascending.
    pub publish: Vec<u64>,
    /// Unix second at which the plan changes next.
    pub next_change: u64,
}

/// The rotation state: which superseded key retires when.
#[derive(Clone, Debug)]
pub struct KeyRotation {
    schedule: KeySchedule,
    /// Superseded keys still in their grace window, by epoch: the unix
    /// second at which each is destroyed.
    retire_at: BTreeMap<u64, u64>,
}

impl KeyRotation {
    /// A rotation with nothing superseded yet.
    pub fn new(schedule: KeySchedule) -> Self {
        KeyRotation {
            schedule,
            retire_at: BTreeMap::new(),
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> KeySchedule {
        self.schedule
    }

    /// Plans for `now` (unix seconds) given the epochs whose keys are held.
    ///
    /// Only the newest key older than the current epoch gets a grace window;
    /// anything older is destroyed at once. Its window ends `grace` after the
    /// current key took over — or after `now` if the current key did not
    /// exist before this call (a node started after a long pause: senders
    /// could not have known the new key, so the old one must stay a while).
    pub fn plan(&mut self, now: u64, held: &BTreeSet<u64>) -> KeyPlan {
        let s = self.schedule;
        let current = s.epoch_at(now);
        let next = current.saturating_add(1);
        let create: Vec<u64> = [current, next]
            .into_iter()
            .filter(|e| !held.contains(e))
            .collect();

        let previous = held.range(..current).next_back().copied();
        let mut retire: Vec<u64> = held
            .range(..current)
            .copied()
            .filter(|&e| Some(e) != previous)
            .collect();
        self.retire_at.retain(|e, _| Some(*e) == previous);
        let mut accept = vec![current];
        if let Some(previous) = previous {
            let grace_from = if held.contains(&current) {
                s.start_of(current)
            } else {
                now
            };
            let until = *self
                .retire_at
                .entry(previous)
                .or_insert(grace_from.saturating_add(s.grace_seconds));
            if now >= until {
                retire.push(previous);
                self.retire_at.remove(&previous);
            } else {
                accept.push(previous);
            }
        }
        let next_start = s.start_of(next);
        let early_from = next_start.saturating_sub(s.grace_seconds);
        if now >= early_from {
            accept.push(next);
        }

        let mut publish: BTreeSet<u64> = held.range(current..).copied().collect();
        publish.extend([current, next]);
        let next_change = [Some(next_start), Some(early_from)]
            .into_iter()
            .chain(self.retire_at.values().map(|&t| Some(t)))
            .flatten()
            .filter(|&t| t > now)
            .min()
            .unwrap_or(next_start);
        retire.sort_unstable();
        KeyPlan {
            current,
            create,
            retire,
            accept,
            publish: publish.into_iter().collect(),
            next_change,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const HOUR: u64 = 3_600;

    fn held(epochs: &[u64]) -> BTreeSet<u64> {
        epochs.iter().copied().collect()
    }

    fn rotation() -> KeyRotation {
        KeyRotation::new(KeySchedule::new(DAY, HOUR))
    }

    #[test]
    fn a_fresh_node_creates_current_and_next() {
        let plan = rotation().plan(10 * DAY + 5, &held(&[]));
        assert_eq!(plan.current, 10);
        assert_eq!(plan.create, vec![10, 11]);
        assert_eq!(plan.accept, vec![10]);
        assert_eq!(plan.publish, vec![10, 11]);
        assert!(plan.retire.is_empty());
        assert_eq!(plan.next_change, 11 * DAY - HOUR);
    }

    #[test]
    fn previous_key_is_accepted_for_the_grace_window_then_retired() {
        let mut r = rotation();
        // Just after the boundary into epoch 11, both 10 and 11 held.
        let plan = r.plan(11 * DAY + 1, &held(&[10, 11]));
        assert_eq!(plan.create, vec![12]);
        assert_eq!(plan.accept, vec![11, 10]);
        assert_eq!(plan.publish, vec![11, 12]);
        assert_eq!(plan.next_change, 11 * DAY + HOUR);
        // Last second of grace: still accepted.
        let plan = r.plan(11 * DAY + HOUR - 1, &held(&[10, 11, 12]));
        assert_eq!(plan.accept, vec![11, 10]);
        assert!(plan.retire.is_empty());
        // Grace over: retired, never accepted again.
        let plan = r.plan(11 * DAY + HOUR, &held(&[10, 11, 12]));
        assert_eq!(plan.retire, vec![10]);
        assert_eq!(plan.accept, vec![11]);
    }

    #[test]
    fn next_key_is_accepted_shortly_before_its_epoch() {
        let mut r = rotation();
        let plan = r.plan(12 * DAY - HOUR - 1, &held(&[11, 12]));
        assert_eq!(plan.accept, vec![11]);
        assert_eq!(plan.next_change, 12 * DAY - HOUR);
        let plan = r.plan(12 * DAY - HOUR, &held(&[11, 12]));
        assert_eq!(plan.accept, vec![11, 12]);
        assert_eq!(plan.next_change, 12 * DAY);
    }

    #[test]
    fn keys_older_than_the_previous_are_retired_at_once() {
        let plan = rotation().plan(20 * DAY + 10, &held(&[3, 7, 19, 20, 21]));
        assert_eq!(plan.retire, vec![3, 7]);
        assert_eq!(plan.accept, vec![20, 19]);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn after_a_long_pause_the_old_key_gets_a_full_grace_from_now() {
        // Restarted mid-epoch 30 holding only epoch 5's key: senders with the
        // old descriptor keep working for a grace window from now.
        let mut r = rotation();
        let now = 30 * DAY + 7 * HOUR;
        let plan = r.plan(now, &held(&[5]));
        assert_eq!(plan.create, vec![30, 31]);
        assert_eq!(plan.accept, vec![30, 5]);
        assert_eq!(plan.next_change, now + HOUR);
        // The window does not slide on later calls.
        let plan = r.plan(now + HOUR, &held(&[5, 30, 31]));
        assert_eq!(plan.retire, vec![5]);
    }

    #[test]
    fn future_keys_stay_published() {
        // The clock went back: the key of epoch 12 is kept for later.
        let plan = rotation().plan(10 * DAY, &held(&[10, 11, 12]));
        assert_eq!(plan.publish, vec![10, 11, 12]);
        assert!(plan.retire.is_empty());
    }

    #[test]
    fn grace_is_kept_shorter_than_an_epoch() {
        let s = KeySchedule::new(60, 600);
        let mut r = KeyRotation::new(s);
        let plan = r.plan(120, &held(&[1, 2]));
        // Grace clamped to 59 s: the next key is accepted from 180 − 59.
        assert_eq!(plan.accept, vec![2, 1]);
        assert_eq!(plan.next_change, 121);
    }
}
