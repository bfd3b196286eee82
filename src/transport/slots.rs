//! Connection slots for a listener facing untrusted peers: caps per source
//! (IPv4 address or IPv6 /64) and in total, a share of the total that only
//! topology members may use, and, when full, eviction of the stranger
//! connection that has been idle longest.
//!
//! A connection holds a [`SlotPermit`]; dropping it frees the slot, so
//! every way a connection task can end (including a panic) releases it.
//! An evicted connection's slot is freed at once, and its task is told to
//! stop through [`SlotPermit::evicted`]. Pure: callers pass the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::source::{SourceClass, source_key};

/// Stranger connections compared when one must make way. A bounded sample
/// (taken round-robin) keeps an accept O(1) however many are open; the
/// idlest of 32 is, with high probability, among the idlest few percent.
const EVICTION_SAMPLE: usize = 32;

/// The limits of a [`Slots`] table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotPolicy {
    /// Connections open at once from one source.
    pub per_source: usize,
    /// Connections open at once in total.
    pub total: usize,
    /// Of `total`, slots strangers may never take.
    pub reserved_for_members: usize,
    /// A stranger arriving when the strangers' slots are full replaces the
    /// idlest stranger connection if that one has moved no byte for this
    /// long (a member arriving at a full table replaces it regardless).
    pub stranger_evictable_after: Duration,
}

/// Why a connection was refused a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its source has `per_source` connections open.
    SourceCap,
    /// No slot is free and no connection could be evicted for it.
    Full,
}

/// A granted slot.
pub(crate) struct Admission {
    /// Held for as long as the connection lives.
    pub permit: SlotPermit,
    /// Whether an idle connection was evicted to make room.
    pub evicted_another: bool,
}

/// Open connections by source, and the strangers among them.
pub(crate) struct Slots {
    policy: SlotPolicy,
    /// Activity times are milliseconds since this instant.
    origin: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_source: HashMap<IpAddr, usize>,
    open: usize,
    /// Open stranger connections, in no particular order; each knows its
    /// index here.
    strangers: Vec<Arc<Held>>,
    /// Where the next eviction sample starts.
    hand: usize,
}

/// One connection's entry. Its `index` and `released` are only read and
/// written under the table's lock.
struct Held {
    source: IpAddr,
    class: SourceClass,
    last_active_ms: AtomicU64,
    index: AtomicU64,
    released: AtomicBool,
    evicted: CancellationToken,
}

impl Slots {
    /// An empty table. Caps of 0 are raised to 1, and the members' share
    /// is at most the total.
    pub(crate) fn new(mut policy: SlotPolicy) -> Arc<Self> {
        policy.per_source = policy.per_source.max(1);
        policy.total = policy.total.max(1);
        policy.reserved_for_members = policy.reserved_for_members.min(policy.total);
        Arc::new(Slots {
            policy,
            origin: Instant::now(),
            state: Mutex::new(State::default()),
        })
    }

    /// A slot for a connection from `ip` of `class`, evicting an idle
    /// stranger if that is what it takes (see [`SlotPolicy`]).
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        class: SourceClass,
        now: Instant,
    ) -> Result<Admission, Refusal> {
        let source = source_key(ip);
        let now_ms = self.millis(now);
        let mut state = self.lock();
        if state.by_source.get(&source).copied().unwrap_or(0) >= self.policy.per_source {
            return Err(Refusal::SourceCap);
        }
        let stranger_cap = self.policy.total - self.policy.reserved_for_members;
        let room = match class {
            SourceClass::Member => state.open < self.policy.total,
            SourceClass::Stranger => {
                state.open < self.policy.total && state.strangers.len() < stranger_cap
            }
        };
        let mut evicted_another = false;
        if !room {
            let min_idle = match class {
                SourceClass::Member => 0,
                // No stranger slot at all: nothing to swap.
                SourceClass::Stranger if stranger_cap == 0 => return Err(Refusal::Full),
                SourceClass::Stranger => duration_ms(self.policy.stranger_evictable_after),
            };
            if !evict_idlest_stranger(&mut state, now_ms, min_idle) {
                return Err(Refusal::Full);
            }
            evicted_another = true;
        }
        let held = Arc::new(Held {
            source,
            class,
            last_active_ms: AtomicU64::new(now_ms),
            index: AtomicU64::new(0),
            released: AtomicBool::new(false),
            evicted: CancellationToken::new(),
        });
        *state.by_source.entry(source).or_insert(0) += 1;
        state.open += 1;
        if class == SourceClass::Stranger {
            held.index
                .store(state.strangers.len() as u64, Ordering::Relaxed);
            state.strangers.push(Arc::clone(&held));
        }
        Ok(Admission {
            permit: SlotPermit {
                slots: Arc::clone(self),
                held,
            },
            evicted_another,
        })
    }

    /// Connections holding a slot now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().open
    }

    fn millis(&self, now: Instant) -> u64 {
        duration_ms(now.saturating_duration_since(self.origin))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the counts consistent, so a
        // poisoned lock (a panic elsewhere) leaves them usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Evicts the idlest of a round-robin sample of stranger connections, if it
/// has been idle at least `min_idle_ms`. O(sample), not O(connections).
fn evict_idlest_stranger(state: &mut State, now_ms: u64, min_idle_ms: u64) -> bool {
    let n = state.strangers.len();
    if n == 0 {
        return false;
    }
    let start = state.hand % n;
    let sample = EVICTION_SAMPLE.min(n);
    state.hand = start + sample;
    let idle =
        |i: usize| now_ms.saturating_sub(state.strangers[i].last_active_ms.load(Ordering::Relaxed));
    let (victim, idle_ms) = (0..sample)
        .map(|j| (start + j) % n)
        .map(|i| (i, idle(i)))
        .max_by_key(|&(_, idle)| idle)
        .unwrap_or((start, 0));
    if idle_ms < min_idle_ms {
        return false;
    }
    let victim = Arc::clone(&state.strangers[victim]);
    release(state, &victim);
    victim.evicted.cancel();
    true
}

/// Frees `held`'s slot, once.
fn release(state: &mut State, held: &Held) {
    if held.released.swap(true, Ordering::Relaxed) {
        return;
    }
    state.open = state.open.saturating_sub(1);
    if let Some(count) = state.by_source.get_mut(&held.source) {
        *count -= 1;
        if *count == 0 {
            // Forget idle sources so the map only holds live ones.
            state.by_source.remove(&held.source);
        }
    }
    if held.class == SourceClass::Stranger {
        let i = held.index.load(Ordering::Relaxed) as usize;
        state.strangers.swap_remove(i);
        if let Some(moved) = state.strangers.get(i) {
            moved.index.store(i as u64, Ordering::Relaxed);
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One open connection's slot; released on drop.
pub(crate) struct SlotPermit {
    slots: Arc<Slots>,
    held: Arc<Held>,
}

impl SlotPermit {
    /// Notes that the connection moved bytes at `now` (it is not idle).
    pub(crate) fn touch(&self, now: Instant) {
        self.held
            .last_active_ms
            .store(self.slots.millis(now), Ordering::Relaxed);
    }

    /// Cancelled when the connection is evicted to make room for another:
    /// its task should stop.
    pub(crate) fn evicted(&self) -> &CancellationToken {
        &self.held.evicted
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        release(&mut state, &self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use SourceClass::{Member, Stranger};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn policy(per_source: usize, total: usize, reserved: usize) -> SlotPolicy {
        SlotPolicy {
            per_source,
            total,
            reserved_for_members: reserved,
            stranger_evictable_after: Duration::from_secs(1),
        }
    }

    #[test]
    fn caps_per_source_and_frees_on_drop() {
        let slots = Slots::new(policy(2, 100, 0));
        let t = Instant::now();
        let first = slots.try_acquire(ip("10.0.0.1"), Stranger, t).unwrap();
        let _second = slots.try_acquire(ip("10.0.0.1"), Stranger, t).unwrap();
        assert_eq!(
            slots.try_acquire(ip("10.0.0.1"), Stranger, t).err(),
            Some(Refusal::SourceCap)
        );
        assert!(slots.try_acquire(ip("10.0.0.2"), Stranger, t).is_ok());
        drop(first);
        assert!(slots.try_acquire(ip("10.0.0.1"), Stranger, t).is_ok());
    }

    #[test]
    fn mapped_ipv6_counts_as_its_ipv4_and_ipv6_by_64() {
        let slots = Slots::new(policy(1, 100, 0));
        let t = Instant::now();
        let _mapped = slots
            .try_acquire(ip("::ffff:10.0.0.2"), Stranger, t)
            .unwrap();
        assert!(slots.try_acquire(ip("10.0.0.2"), Stranger, t).is_err());
        let _v6 = slots.try_acquire(ip("2001:db8::1"), Stranger, t).unwrap();
        assert!(slots.try_acquire(ip("2001:db8::2"), Stranger, t).is_err());
        assert!(
            slots
                .try_acquire(ip("2001:db8:0:1::2"), Stranger, t)
                .is_ok()
        );
    }

    #[test]
    fn strangers_never_take_the_members_share() {
        let slots = Slots::new(policy(10, 4, 2));
        let t = Instant::now();
        let _a = slots.try_acquire(ip("192.0.2.1"), Stranger, t).unwrap();
        let _b = slots.try_acquire(ip("192.0.2.2"), Stranger, t).unwrap();
        // Both stranger slots are taken by connections active just now.
        assert_eq!(
            slots.try_acquire(ip("192.0.2.3"), Stranger, t).err(),
            Some(Refusal::Full)
        );
        let _m1 = slots.try_acquire(ip("10.0.0.1"), Member, t).unwrap();
        let m2 = slots.try_acquire(ip("10.0.0.2"), Member, t).unwrap();
        assert!(!m2.evicted_another);
        assert_eq!(slots.open(), 4);
    }

    #[test]
    fn a_member_at_a_full_table_evicts_the_idlest_stranger() {
        let slots = Slots::new(policy(10, 2, 0));
        let t0 = Instant::now();
        let old = slots.try_acquire(ip("192.0.2.1"), Stranger, t0).unwrap();
        let busy = slots.try_acquire(ip("192.0.2.2"), Stranger, t0).unwrap();
        busy.permit.touch(t0 + Duration::from_millis(5));
        let t1 = t0 + Duration::from_millis(10);
        let member = slots.try_acquire(ip("10.0.0.1"), Member, t1).unwrap();
        assert!(member.evicted_another);
        assert!(old.permit.evicted().is_cancelled());
        assert!(!busy.permit.evicted().is_cancelled());
        assert_eq!(slots.open(), 2);
        // The evicted connection's own drop frees nothing twice.
        drop(old);
        assert_eq!(slots.open(), 2);
        // Members are never evicted: a full table of members is full.
        let _m2 = slots.try_acquire(ip("10.0.0.2"), Member, t1).unwrap();
        assert_eq!(
            slots.try_acquire(ip("10.0.0.3"), Member, t1).err(),
            Some(Refusal::Full)
        );
    }

    #[test]
    fn a_stranger_evicts_only_a_stranger_idle_long_enough() {
        let slots = Slots::new(policy(10, 1, 0));
        let t0 = Instant::now();
        let first = slots.try_acquire(ip("192.0.2.1"), Stranger, t0).unwrap();
        let soon = t0 + Duration::from_millis(500);
        assert!(slots.try_acquire(ip("192.0.2.2"), Stranger, soon).is_err());
        let later = t0 + Duration::from_secs(1);
        let second = slots.try_acquire(ip("192.0.2.2"), Stranger, later).unwrap();
        assert!(second.evicted_another);
        assert!(first.permit.evicted().is_cancelled());
    }

    #[test]
    fn eviction_is_bounded_work_with_many_connections() {
        // 50,000 strangers, then 50,000 more arrivals each evicting one:
        // every accept looks at no more than the sample.
        let slots = Slots::new(SlotPolicy {
            stranger_evictable_after: Duration::ZERO,
            ..policy(1, 50_000, 0)
        });
        let t = Instant::now();
        let addr = |n: u32| IpAddr::from((0x0a00_0000 | n).to_be_bytes());
        let mut held: Vec<_> = (0..50_000)
            .map(|n| slots.try_acquire(addr(n), Stranger, t).unwrap())
            .collect();
        for n in 50_000..100_000 {
            let admission = slots.try_acquire(addr(n), Stranger, t).unwrap();
            assert!(admission.evicted_another);
            held.push(admission);
        }
        assert_eq!(slots.open(), 50_000);
        let evicted = held
            .iter()
            .filter(|a| a.permit.evicted().is_cancelled())
            .count();
        assert_eq!(evicted, 50_000);
        drop(held);
        assert_eq!(slots.open(), 0);
        assert!(slots.lock().by_source.is_empty());
    }
}
