//! The replay filter of one key as the node uses it: shared by the crypto
//! workers, journaled, with its fill and failures readable without locks.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::error::ReplayError;
use super::filter::{Check, Filter, Plan};
use super::fingerprint::TagKey;
use super::journal::{Journal, OpenMode, shrink_after_burst};
use crate::sphinx::{ReplayFilter, ReplayTag};

/// At most one "filter full" or "filter nearly full" warning per this
/// interval: when full, every packet is refused and a warning each would
/// flood the log.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// Fill ratio from which the node is not ready and warns.
pub const NEARLY_FULL: f64 = 0.9;
/// `last_warning_ms` before the first warning.
const NEVER: u64 = u64::MAX;

/// The filter and the accepted tags not yet handed to the journal, under
/// one lock so an insert takes exactly one lock and the journal gets the
/// tags in the order the filter accepted them (which is what rebuilds it).
struct State {
    filter: Filter,
    pending: Vec<TagKey>,
}

/// The replay filter of one Sphinx key, shared by all crypto workers.
///
/// See the [module documentation](super) for the structure, its
/// false-positive rate and memory, and what survives a restart.
pub struct ReplayCache {
    key_id: [u8; 16],
    state: Mutex<State>,
    plan: Plan,
    max_tags: usize,
    /// Copies of the filter's size, for readers that must not lock.
    len: AtomicUsize,
    allocated: AtomicUsize,
    capacity_rejections: AtomicU64,
    /// Milliseconds after `created` of the last warning, or `NEVER`.
    last_warning_ms: AtomicU64,
    created: Instant,
    /// Taken by `sync` for the whole write + fsync, so syncs are serialised;
    /// packet processing never takes it.
    journal: Mutex<Journal>,
    /// Records moved from `pending` to the journal but not yet durable.
    staged: AtomicUsize,
    /// Set by [`retire`](Self::retire): the key is gone, every check fails.
    retired: AtomicBool,
    journal_errors: AtomicU64,
    /// The last sync failed (cleared by the next one that succeeds).
    journal_failing: AtomicBool,
    /// Test hook: syncs fail as if the disk did.
    fail_syncs: AtomicBool,
}

impl ReplayCache {
    /// Opens the filter of the key `key_id`, keeping its journal in `dir`
    /// (created with mode 0700 if needed), and loads every tag the journal
    /// remembers.
    ///
    /// `budget_bytes` bounds the filter's memory (see the module docs);
    /// memory grows with use, and little is allocated up front. With
    /// [`OpenMode::MustExist`] (a key that may have accepted packets) a
    /// missing or headless journal is refused; with [`OpenMode::Create`]
    /// (a new key) it is created. Damage other than a torn last block is
    /// refused ([`ReplayError::Corrupt`]): starting without those tags would
    /// reopen their replays.
    pub fn open(
        dir: impl AsRef<Path>,
        key_id: [u8; 16],
        budget_bytes: usize,
        mode: OpenMode,
    ) -> Result<ReplayCache, ReplayError> {
        let started = Instant::now();
        let mut journal = Journal::open(dir.as_ref(), &key_id, mode)?;
        let plan = Plan::new(budget_bytes);
        let mut filter = Filter::new(plan);
        let records = journal.load(|key| filter.insert_loaded(key))?;
        if records > 0 {
            info!(
                path = %journal.path().display(),
                tags = records,
                filter_bytes = filter.allocated_bytes(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "replay journal loaded"
            );
        }
        if filter.is_full() {
            warn!(
                path = %journal.path().display(),
                tags = filter.len(),
                budget_bytes = plan.budget(),
                "replay filter is at its memory budget after loading its journal: every new \
                 packet under this key will be dropped (replay_capacity) until the key is \
                 retired; raise replay.memory_budget_mb"
            );
        }
        Ok(ReplayCache {
            key_id,
            len: AtomicUsize::new(filter.len()),
            allocated: AtomicUsize::new(filter.allocated_bytes()),
            max_tags: plan.max_tags(),
            plan,
            state: Mutex::new(State {
                filter,
                pending: Vec::new(),
            }),
            capacity_rejections: AtomicU64::new(0),
            last_warning_ms: AtomicU64::new(NEVER),
            created: Instant::now(),
            journal: Mutex::new(journal),
            staged: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            journal_errors: AtomicU64::new(0),
            journal_failing: AtomicBool::new(false),
            fail_syncs: AtomicBool::new(false),
        })
    }

    /// Looks `tag` up and records it if it is new.
    ///
    /// [`Check::Full`] fails closed: an unchecked packet could be a replay,
    /// so it must be dropped; it is counted in
    /// [`capacity_rejections`](Self::capacity_rejections) and warned about
    /// (at most once per 10 s). Takes one short lock and makes no system
    /// call; the tag becomes durable at the next [`sync`](Self::sync).
    pub fn check(&self, tag: &ReplayTag) -> Check {
        if self.retired.load(Relaxed) {
            // A worker still holding the old key ring: the key is retired,
            // so the packet is dropped like any packet under a retired key.
            return Check::Seen;
        }
        let key = TagKey::of(tag);
        let mut state = lock(&self.state);
        let found = state.filter.check_and_insert(key);
        match found {
            Check::Fresh => {
                state.pending.push(key);
                let (len, allocated) = (state.filter.len(), state.filter.allocated_bytes());
                // Published under the lock: stored after it, a thread
                // could overwrite a newer count with its older one.
                self.len.store(len, Relaxed);
                self.allocated.store(allocated, Relaxed);
                drop(state);
                if len as f64 >= NEARLY_FULL * self.max_tags as f64 {
                    self.warn("nearly full");
                }
            }
            Check::Full => {
                drop(state);
                self.capacity_rejections.fetch_add(1, Relaxed);
                self.warn("full");
            }
            Check::Seen => {}
        }
        found
    }

    /// [`check`](Self::check) as the Sphinx engine wants it: `true` (drop)
    /// for a tag seen before *or* refused because the filter is full.
    pub fn check_and_insert(&self, tag: &ReplayTag) -> bool {
        self.check(tag) != Check::Fresh
    }

    /// Warns that the filter is `what`, at most once per
    /// [`WARNING_INTERVAL`], naming the setting to change.
    #[cold]
    fn warn(&self, what: &str) {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let last = self.last_warning_ms.load(Relaxed);
        let interval = WARNING_INTERVAL.as_millis() as u64;
        if last != NEVER && now.saturating_sub(last) < interval {
            return;
        }
        // Only the thread that wins the exchange warns.
        if self
            .last_warning_ms
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
        {
            warn!(
                key_id = %hex::encode(self.key_id),
                tags = self.len(),
                fill_ratio = format!("{:.3}", self.fill_ratio()),
                budget_bytes = self.plan.budget(),
                capacity_rejections = self.capacity_rejections(),
                "replay filter {what}: when full, every new packet under this key is dropped \
                 (replay_capacity) until the key is retired; raise replay.memory_budget_mb \
                 (about 4.4 bytes x packets/s x (sphinx.key_epoch_seconds + 2 x \
                 sphinx.key_grace_seconds)) or shorten sphinx.key_epoch_seconds"
            );
        }
    }

    /// Writes every tag accepted since the last sync to the journal and waits
    /// until it is on disk (`fdatasync`). Returns how many became durable.
    ///
    /// Call it periodically ([`spawn_syncer`](Self::spawn_syncer) does) and
    /// at shutdown. Packet processing is only paused while the queue is
    /// swapped out, not for the disk write. On error the tags stay queued
    /// (and in the filter, so replays are still caught while the node runs),
    /// the error is counted ([`journal_errors`](Self::journal_errors)) and
    /// the next call retries them.
    pub fn sync(&self) -> io::Result<usize> {
        let mut journal = lock(&self.journal);
        {
            let mut state = lock(&self.state);
            let queued = state.pending.len();
            if queued > 0 {
                journal.stage(&state.pending);
                self.staged.fetch_add(queued, Relaxed);
            }
            // `clear`, not `take`: the buffer's capacity is reused by the
            // next interval's inserts instead of being regrown.
            state.pending.clear();
            shrink_after_burst(&mut state.pending, queued);
        }
        let result = if self.fail_syncs.load(Relaxed) && journal.unwritten() > 0 {
            Err(io::Error::other("injected journal failure (test hook)"))
        } else {
            journal.flush()
        };
        match result {
            Ok(written) => {
                self.staged.fetch_sub(written, Relaxed);
                self.journal_failing.store(false, Relaxed);
                Ok(written)
            }
            Err(e) => {
                self.journal_errors.fetch_add(1, Relaxed);
                self.journal_failing.store(true, Relaxed);
                Err(e)
            }
        }
    }

    /// The key was retired, but others may still hold the cache (a worker
    /// finishing a batch under the old key ring): from now on every check
    /// reports a replay, the filter is freed, and the journal is deleted
    /// from disk. Stop its syncer first.
    pub fn retire(&self) -> io::Result<()> {
        self.retired.store(true, Relaxed);
        {
            let mut state = lock(&self.state);
            state.filter = Filter::new(Plan::new(0));
            state.pending = Vec::new();
        }
        self.len.store(0, Relaxed);
        self.allocated.store(0, Relaxed);
        self.staged.store(0, Relaxed);
        self.journal_failing.store(false, Relaxed);
        lock(&self.journal).discard()
    }

    /// Whether [`retire`](Self::retire) was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Relaxed)
    }

    /// The key was retired: frees the memory and deletes the journal.
    ///
    /// Needs the cache by value: stop its syncer first and take it out of
    /// its `Arc` (`Arc::try_unwrap`).
    pub fn discard(self) -> io::Result<()> {
        // Marks the journal discarded, so `Drop` does not sync it again.
        lock(&self.journal).discard()
    }

    /// The key id this cache (and its journal) belongs to.
    pub fn key_id(&self) -> [u8; 16] {
        self.key_id
    }

    /// Tags held (loaded ones included).
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Whether no tag is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory budget in bytes (`replay.memory_budget_mb`).
    pub fn budget_bytes(&self) -> usize {
        self.plan.budget()
    }

    /// Bytes of memory the filter's segments take now (grows with use, up
    /// to [`budget_bytes`](Self::budget_bytes)).
    pub fn capacity_bytes(&self) -> usize {
        self.allocated.load(Relaxed)
    }

    /// Tags the budget holds in all.
    pub fn max_tags(&self) -> usize {
        self.max_tags
    }

    /// [`len`](Self::len) / [`max_tags`](Self::max_tags): at 1.0 new tags
    /// are refused; from [`NEARLY_FULL`] the node is not ready.
    pub fn fill_ratio(&self) -> f64 {
        if self.is_retired() {
            return 0.0;
        }
        self.len() as f64 / self.max_tags.max(1) as f64
    }

    /// Whether new tags are refused now (the budget is spent).
    pub fn is_full(&self) -> bool {
        lock(&self.state).filter.is_full()
    }

    /// Packets dropped because the filter was full (not counting replays).
    pub fn capacity_rejections(&self) -> u64 {
        self.capacity_rejections.load(Relaxed)
    }

    /// Failed journal syncs since open.
    pub fn journal_errors(&self) -> u64 {
        self.journal_errors.load(Relaxed)
    }

    /// Whether the last journal sync failed: accepted tags are not
    /// durable, and a crash now would forget them.
    pub fn journal_failing(&self) -> bool {
        self.journal_failing.load(Relaxed)
    }

    /// Tags accepted but not yet durable: those a crash now would forget.
    /// Approximate while a [`sync`](Self::sync) runs.
    pub fn pending(&self) -> usize {
        lock(&self.state).pending.len() + self.staged.load(Relaxed)
    }

    /// Test hook: makes every sync with something to write fail (as a full
    /// or broken disk would) until called with `false`.
    #[doc(hidden)]
    pub fn fail_syncs_for_test(&self, fail: bool) {
        self.fail_syncs.store(fail, Relaxed);
    }
}

/// A summary: the filter can hold 10^8 tags, too many to print.
impl fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayCache")
            .field("key_id", &hex::encode(self.key_id))
            .field("len", &self.len())
            .field("capacity_bytes", &self.capacity_bytes())
            .field("budget_bytes", &self.budget_bytes())
            .field("capacity_rejections", &self.capacity_rejections())
            .finish_non_exhaustive()
    }
}

impl Drop for ReplayCache {
    /// Syncs, so that closing a cache (dropping it) never loses tags.
    fn drop(&mut self) {
        let discarded = lock_mut(&mut self.journal).is_discarded();
        if !discarded && let Err(e) = self.sync() {
            error!(
                key_id = %hex::encode(self.key_id),
                error = %e,
                "replay journal: final sync failed; tags accepted since the last sync \
                 may be replayable after restart"
            );
        }
    }
}

/// Lets a crypto worker pass the shared cache to
/// [`SphinxProcessor::unwrap_batch`](crate::SphinxProcessor::unwrap_batch)
/// as `&mut &*cache`.
impl ReplayFilter for &ReplayCache {
    fn check_and_insert(&mut self, tag: &ReplayTag) -> bool {
        ReplayCache::check_and_insert(self, tag)
    }
}

/// Locks `mutex`, ignoring poisoning: a panic elsewhere cannot leave the
/// filter half-updated in a way that matters here (an insert either placed
/// the tag or undid its moves), and refusing every packet afterwards would
/// turn one bug into an outage.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for exclusive access, without locking.
fn lock_mut<T>(mutex: &mut Mutex<T>) -> &mut T {
    mutex.get_mut().unwrap_or_else(PoisonError::into_inner)
}
