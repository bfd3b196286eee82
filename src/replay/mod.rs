//! The node's replay filter: remembers the replay tag `τ` of every packet
//! accepted under a Sphinx key, for that key's whole lifetime, across
//! restarts, within a memory budget (`sphinx-v1.md`, "Replay protection
//! and key epochs").
//!
//! # Use
//!
//! One [`ReplayCache`] per Sphinx key, opened with a `key_id` that
//! identifies the key (a hash of its public key), shared by all crypto
//! workers through an `Arc`:
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use betanet::replay::{OpenMode, ReplayCache};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (key_id, frames, processor): ([u8; 16], &mut [Vec<u8>], betanet::SphinxProcessor) = todo!();
//! let cache = Arc::new(ReplayCache::open("/var/lib/betanet", key_id, 512 << 20, OpenMode::Create)?);
//! let syncer = cache.spawn_syncer(Duration::from_millis(100))?;
//! // In each worker (`check` tells a replay from a full filter):
//! let results = processor.unwrap_batch(frames, &mut &*cache);
//! // At shutdown: a final sync, reporting failure.
//! syncer.stop()?;
//! // When the key is retired:
//! Arc::try_unwrap(cache).expect("workers stopped").discard()?;
//! # Ok(()) }
//! ```
//!
//! # The structure, and why
//!
//! A segmented cuckoo filter of 32-bit fingerprints (`segment.rs`, `filter.rs`):
//! buckets of 8 fingerprints (32 bytes, one aligned load), two candidate
//! buckets per tag (partial-key cuckoo hashing: the second bucket is the
//! first XOR a hash of the fingerprint). `τ` is a BLAKE3 output, uniform for
//! honest packets, so nothing is hashed: bytes 0..4 of `τ` pick the bucket,
//! bytes 4..8 are the fingerprint (the journal keeps these 8 bytes).
//!
//! *False positives.* A fresh tag probes 16 slots per segment; each holds
//! its fingerprint with probability ≤ 2^-32, so a segment adds at most
//! 16 / 2^32 = 3.7·10^-9. A filter has at most `MAX_SEGMENTS`
//! (64) segments: **FPR ≤ 64 × 16 / 2^32 = 2.4·10^-7 per packet** for any
//! budget, ≤ 4.8·10^-8 at the default 512 MiB (13 segments, sealed at 95%
//! load). A false positive drops one honest packet, counted as `replay`
//! ("seen, or a false positive"). There are no false negatives: a replay of
//! an accepted packet is always caught. (The spec asks to keep "at least the
//! first 16 bytes" of each tag; a filter keeps 8, which only adds these
//! rare false drops and never lets a replay through.) A sender can grind
//! tags that collide with ones it knows, but only to drop its own packets.
//!
//! *Memory.* Segments are sealed at 95% load: 32 bytes / (8 × 0.95) =
//! **4.2 bytes per tag** in sealed segments. New tags go to the newest
//! segment; when it is sealed, the next is allocated: the first is 1/256 of
//! the budget, each next one twice the last up to 1/8 of the budget, then
//! 1/8 until the budget is spent. So memory grows with use (two keys are
//! alive during a grace window, and the new one starts nearly empty), and
//! the only slack is the open segment: past the doubling phase (the first
//! ~1/8 of the budget) a filter holds ≤ 5 bytes per tag; after a whole
//! default key lifetime at 50,000 packets/s, 4.63 (`examples/replay_soak`).
//! Sealed segments never change, so growing never moves or rehashes them:
//! the worst stall is allocating one segment.
//!
//! *Alternatives.* A Bloom filter at 10^-6 needs 28.8 bits (3.6 bytes) per
//! tag but cannot grow without raising its FPR per added filter and needs
//! ~20 probes; a resizable RSQF (`qfilter`) is as compact when grown but
//! doubles by rehashing everything under the lock (a 1-second stall at
//! 2·10^7 tags) and inserted at half the speed here
//! (`examples/replay_filter_compare`, BENCHMARKS.md).
//!
//! *Concurrency.* One mutex over the filter and its journal queue: a
//! check-and-insert holds it for a few hundred nanoseconds, against ~36 µs
//! of crypto per packet, so at 50,000 packets/s it is held ~1–2% of the
//! time. One lock also gives the journal the exact insert order, which is
//! what rebuilds the same filter.
//!
//! # Full
//!
//! When the budget is spent, [`ReplayCache::check`] answers [`Check::Full`]
//! for new tags: the packet cannot be checked, so it is dropped (fail
//! closed), counted in [`ReplayCache::capacity_rejections`] (the node labels
//! these drops `replay_capacity`) and warned about at most every 10 s. From
//! [`NEARLY_FULL`] (90%) the node reports itself not ready.
//!
//! # Persistence and restarts
//!
//! Each filter appends to `DIR/replay-<hex key_id>.journal` (see
//! [`journal_path`] and the `journal` module for the format): a header,
//! then one checksummed block per sync holding the first 8 bytes of each
//! tag accepted since the last. Inserts only queue the tag in memory;
//! [`ReplayCache::sync`] writes the block and waits for `fdatasync`. Run it
//! every `sync_interval_ms` with [`ReplayCache::spawn_syncer`]; stopping the
//! syncer and dropping the cache both sync. Opening inserts the journal's
//! tags again in order; inserts are deterministic, so it is the same filter.
//! Disk: 8 bytes per tag plus 24 per block.
//!
//! After a restart every synced tag is a replay again. Tags accepted within
//! the last sync interval before a *crash* may be forgotten; a clean
//! shutdown loses nothing. A failed sync keeps the tags queued (and in the
//! filter), is counted ([`ReplayCache::journal_errors`]) and retried.
//!
//! # Damaged, empty and missing journals
//!
//! The rule: **a key that may have accepted packets never starts with an
//! empty filter.**
//!
//! - A torn *last* block (a crash during its sync, which was therefore never
//!   acknowledged) is cut away with a warning.
//! - Any other damage is refused ([`ReplayError::Corrupt`]), naming the byte.
//! - [`OpenMode::MustExist`] (the node uses it for keys loaded from disk
//!   once it has run with them) refuses a missing journal
//!   ([`ReplayError::Missing`]) and one shorter than its header
//!   ([`ReplayError::TruncatedHeader`]). A new key's journal is created
//!   ([`OpenMode::Create`]) before its key file is written, so a key file
//!   without a journal means the journal was lost.
//! - Formats 01 and 02 are refused ([`ReplayError::UnsupportedVersion`]).
//!
//! Every refusal says the two ways out: restore the journal, or retire the
//! key (delete the journal and the key file; a new key starts empty).
//! Journals are created 0600 and the directory is kept at 0700 (narrowed on
//! open if wider; [`ReplayError::Permissions`] if that fails).
//!
//! When a key is retired, [`ReplayCache::discard`] (or
//! [`ReplayCache::retire`]) frees its memory and deletes its journal;
//! [`discard_journal`] deletes the journal of a key that is not loaded.

mod cache;
mod error;
mod filter;
mod fingerprint;
mod journal;
mod segment;
mod syncer;

pub use cache::{NEARLY_FULL, ReplayCache};
pub use error::ReplayError;
pub use filter::Check;
pub use journal::{OpenMode, discard_journal, journal_path};
pub use syncer::SyncerHandle;
