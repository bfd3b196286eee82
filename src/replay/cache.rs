//! The in-memory replay cache: sharded sets of fingerprints, bounded, with
//! new fingerprints queued for the journal.

use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::error::ReplayError;
use super::fingerprint::{Fingerprint, IdentityHasher, SHARDS, fingerprint, shard_of};
use super::journal::{Journal, shrink_after_burst};
use crate::sphinx::{ReplayFilter, ReplayTag};

/// At most one "cache full" warning per this interval: when full, every
/// packet is rejected and a warning each would flood the log.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// `last_full_warning_ms` before the first warning.
const NEVER: u64 = u64::MAX;

type FingerprintSet = HashSet<Fingerprint, BuildHasherDefault<IdentityHasher>>;

/// One shard: the fingerprints it holds and those of them not yet handed to
/// the journal. Both live under one lock so an insert takes exactly one lock.
#[derive(Default)]
struct Shard {
    set: FingerprintSet,
    pending: Vec<Fingerprint>,
}

/// Keeps shards on separate cache lines so workers locking neighbouring
/// shards do not contend on the line (128 bytes covers adjacent-line
/// prefetching on x86 and the line size of recent ARM cores).
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// The replay cache of one Sphinx key epoch, shared by all crypto workers.
///
/// See the [module documentation](super) for sizing, memory, the
/// false-positive rate and what survives a restart.
pub struct ReplayCache {
    key_id: [u8; 16],
    max_entries: usize,
    shards: Box<[Padded<Mutex<Shard>>]>,
    /// Fingerprints held; never above `max_entries` except after loading a
    /// journal that already held more.
    len: AtomicUsize,
    full_rejections: AtomicU64,
    /// Milliseconds after `created` of the last "full" warning, or `NEVER`.
    last_full_warning_ms: AtomicU64,
    created: Instant,
    /// Taken by `sync` for the whole write + fsync, so syncs are serialised;
    /// packet processing never takes it.
    journal: Mutex<Journal>,
    /// Records moved from the shards to the journal but not yet durable.
    staged: AtomicUsize,
    /// Set by [`retire`](Self::retire): the key is gone, every check fails.
    retired: AtomicBool,
}

impl ReplayCache {
    /// Opens the cache of the key `key_id`, keeping its journal in `dir`
    /// (created if needed), and loads every tag the journal remembers.
    ///
    /// A journal cut short by a crash in the middle of a record is repaired
    /// (the partial record is dropped, with a warning). A journal of another
    /// key, a file that is not a journal, or one locked by another running
    /// cache is refused: starting with an empty cache instead would reopen
    /// every replay of this epoch.
    ///
    /// `max_entries` bounds the number of tags held (see the module docs
    /// for sizing); no memory is reserved for it up front.
    pub fn open(
        dir: impl AsRef<Path>,
        key_id: [u8; 16],
        max_entries: usize,
    ) -> Result<ReplayCache, ReplayError> {
        let started = Instant::now();
        let (mut journal, records) = Journal::open(dir.as_ref(), &key_id)?;

        // Size the shards for what the journal holds (never for
        // `max_entries`), so loading does not rehash over and over. Shards
        // receive ~records/SHARDS each, give or take a few standard
        // deviations. Capped by `max_entries` so a huge damaged file cannot
        // make us reserve memory we would not otherwise use.
        let expected = usize::try_from(records)
            .unwrap_or(usize::MAX)
            .min(max_entries)
            / SHARDS;
        let per_shard = expected + 4 * expected.isqrt() + 16;
        let mut shards: Box<[Padded<Mutex<Shard>>]> =
            (0..SHARDS).map(|_| Padded::default()).collect();
        if records > 0 {
            for shard in shards.iter_mut() {
                lock_mut(&mut shard.0).set.reserve(per_shard);
            }
        }
        let mut len = 0usize;
        journal.load(records, |fp| {
            if lock_mut(&mut shards[shard_of(fp)].0).set.insert(fp) {
                len += 1;
            }
        })?;

        if len > 0 || records > 0 {
            info!(
                path = %journal.path().display(),
                entries = len,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "replay journal loaded"
            );
        }
        if len >= max_entries {
            warn!(
                path = %journal.path().display(),
                entries = len,
                max_entries,
                "replay cache is full after loading its journal: every new packet will be \
                 dropped until the key rotates; raise max_entries"
            );
        }

        Ok(ReplayCache {
            key_id,
            max_entries,
            shards,
            len: AtomicUsize::new(len),
            full_rejections: AtomicU64::new(0),
            last_full_warning_ms: AtomicU64::new(NEVER),
            created: Instant::now(),
            journal: Mutex::new(journal),
            staged: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
        })
    }

    /// Records `tag` and reports whether the packet must be dropped: `true`
    /// if the tag (its fingerprint) was seen before, or if the cache is full.
    ///
    /// A full cache fails closed: an unchecked packet could be a replay, so
    /// it is dropped, counted in [`full_rejections`](Self::full_rejections)
    /// and warned about (at most once per 10 s).
    ///
    /// Takes one short shard lock and makes no system call; the tag becomes
    /// durable at the next [`sync`](Self::sync).
    pub fn check_and_insert(&self, tag: &ReplayTag) -> bool {
        if self.retired.load(Relaxed) {
            // A worker still holding the old key ring: the key is retired,
            // so the packet is dropped like any packet under a retired key.
            return true;
        }
        let fp = fingerprint(tag);
        let mut shard = lock(&self.shards[shard_of(fp)].0);
        if shard.set.contains(&fp) {
            return true;
        }
        // Reserve the slot before inserting so the bound holds exactly even
        // with inserts racing in other shards.
        let reserved = self.len.fetch_update(Relaxed, Relaxed, |n| {
            (n < self.max_entries).then_some(n + 1)
        });
        if reserved.is_err() {
            drop(shard);
            self.reject_full();
            return true;
        }
        shard.set.insert(fp);
        shard.pending.push(fp);
        false
    }

    /// Counts a packet rejected because the cache is full and warns, at most
    /// once per [`FULL_WARNING_INTERVAL`].
    #[cold]
    fn reject_full(&self) {
        let total = self.full_rejections.fetch_add(1, Relaxed) + 1;
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let last = self.last_full_warning_ms.load(Relaxed);
        let interval = FULL_WARNING_INTERVAL.as_millis() as u64;
        if last != NEVER && now.saturating_sub(last) < interval {
            return;
        }
        // Only the thread that wins the exchange warns.
        if self
            .last_full_warning_ms
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
        {
            warn!(
                key_id = %hex::encode(self.key_id),
                max_entries = self.max_entries,
                full_rejections = total,
                "replay cache full: dropping new packets until the key rotates; \
                 raise max_entries (packets/s x key epoch seconds)"
            );
        }
    }

    /// Writes every tag accepted since the last sync to the journal and waits
    /// until it is on disk (`fdatasync`). Returns how many became durable.
    ///
    /// Call it periodically ([`spawn_syncer`](Self::spawn_syncer) does) and
    /// at shutdown. Packet processing is only paused for the moment each
    /// shard's queue is copied, not for the disk write. On error the tags
    /// stay queued (and in memory, so replays are still caught while the
    /// node runs) and the next call retries them.
    pub fn sync(&self) -> io::Result<usize> {
        let mut journal = lock(&self.journal);
        for shard in self.shards.iter() {
            let mut shard = lock(&shard.0);
            let queued = shard.pending.len();
            if queued > 0 {
                journal.stage(&shard.pending);
                self.staged.fetch_add(queued, Relaxed);
            }
            // `clear`, not `take`: the buffer's capacity is reused by the
            // next interval's inserts instead of being regrown.
            shard.pending.clear();
            shrink_after_burst(&mut shard.pending, queued);
        }
        let written = journal.flush()?;
        self.staged.fetch_sub(written, Relaxed);
        Ok(written)
    }

    /// The key was retired, but others may still hold the cache (a worker
    /// finishing a batch under the old key ring): from now on every check
    /// reports a replay, the tags are freed, and the journal is deleted
    /// from disk. Stop its syncer first.
    pub fn retire(&self) -> io::Result<()> {
        self.retired.store(true, Relaxed);
        for shard in self.shards.iter() {
            // Replaced, not cleared: clearing keeps the table's memory.
            *lock(&shard.0) = Shard::default();
        }
        self.len.store(0, Relaxed);
        self.staged.store(0, Relaxed);
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

    /// The bound on [`len`](Self::len) given to [`open`](Self::open).
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Number of tag fingerprints held, loaded ones included.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Whether no tag is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packets dropped because the cache was full (not counting replays).
    pub fn full_rejections(&self) -> u64 {
        self.full_rejections.load(Relaxed)
    }

    /// Tags accepted but not yet durable: those a crash now would forget.
    /// Approximate while a [`sync`](Self::sync) runs.
    pub fn pending(&self) -> usize {
        let queued: usize = self.shards.iter().map(|s| lock(&s.0).pending.len()).sum();
        queued + self.staged.load(Relaxed)
    }

    /// Heap bytes used by the fingerprint sets, computed from their
    /// capacities (16 bytes per slot plus 1 control byte; hashbrown keeps
    /// `capacity ≈ 7/8 × slots`). For metrics; takes every shard lock.
    pub fn approx_memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let capacity = lock(&s.0).set.capacity();
                let slots = if capacity == 0 {
                    0
                } else if capacity < 8 {
                    // Small tables are sized exactly to powers of two >= 4.
                    (capacity + 1).next_power_of_two()
                } else {
                    (capacity * 8 / 7).next_power_of_two()
                };
                slots * (size_of::<Fingerprint>() + 1)
            })
            .sum()
    }
}

/// A summary: the sets can hold 10^8 fingerprints, too many to print.
impl fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayCache")
            .field("key_id", &hex::encode(self.key_id))
            .field("len", &self.len())
            .field("max_entries", &self.max_entries)
            .field("full_rejections", &self.full_rejections())
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

/// Locks `mutex`, ignoring poisoning: a panic elsewhere cannot leave a set
/// or a byte queue half-updated in a way that matters here (inserts are
/// whole or absent), and refusing every packet afterwards would turn one
/// bug into an outage.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for exclusive access, without locking.
fn lock_mut<T>(mutex: &mut Mutex<T>) -> &mut T {
    mutex.get_mut().unwrap_or_else(PoisonError::into_inner)
}
