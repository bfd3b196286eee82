//! The node's replay cache: remembers the replay tag `τ` of every packet
//! accepted under the current Sphinx key, across restarts, within a memory
//! bound (`sphinx-v1.md`, "Replay protection and key epochs").
//!
//! # Use
//!
//! One [`ReplayCache`] per Sphinx key epoch, opened with a `key_id` that
//! identifies the key (e.g. a hash of its public key), shared by all crypto
//! workers through an `Arc`:
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use betanet::replay::ReplayCache;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (key_id, frames, processor): ([u8; 16], &mut [Vec<u8>], betanet::SphinxProcessor) = todo!();
//! let cache = Arc::new(ReplayCache::open("/var/lib/betanet", key_id, 50_000_000)?);
//! let syncer = cache.spawn_syncer(Duration::from_millis(200))?;
//! // In each worker:
//! let results = processor.unwrap_batch(frames, &mut &*cache);
//! // At shutdown: a final sync, reporting failure.
//! syncer.stop()?;
//! // When the key is retired:
//! Arc::try_unwrap(cache).expect("workers stopped").discard()?;
//! # Ok(()) }
//! ```
//!
//! # What is kept
//!
//! A 128-bit fingerprint per accepted packet: the first 16 bytes of `τ`
//! (little-endian), as `sphinx-v1.md` requires ("at least their first 16
//! bytes"); bytes 16.. are ignored. `τ` is a BLAKE3 output, uniform for
//! honest packets, so an honest packet is wrongly dropped as a replay with
//! probability ≈ n / 2^128 per lookup with n entries held: ~3·10^-31 at
//! 10^8 entries, i.e. never in practice. Truncation can only cause such
//! false drops; it can never let a replay through. A sender can grind its
//! own packets' tags, but that only lets it collide with tags it already
//! knows, i.e. drop its own packets.
//!
//! # Sizing and memory
//!
//! `max_entries` should cover one key epoch at peak load:
//! `entries = packets/s × key_epoch_seconds` (e.g. 1 000 packets/s over a
//! 24 h epoch is 8.64·10^7). When full the cache fails closed: every new
//! packet is dropped (a packet that cannot be checked could be a replay),
//! counted in [`ReplayCache::full_rejections`] and warned about once per
//! 10 s.
//!
//! Memory grows with use; nothing is reserved for `max_entries`. The
//! fingerprints live in 64 shards of std `HashSet<u128>` (hashbrown): 16
//! bytes plus 1 control byte per slot, at most 7/8 of slots full, and tables
//! double when they fill. So an entry costs between 19.4 bytes (just before
//! a doubling) and 38.9 bytes (just after), ~28 on average; measured: 28.5
//! bytes/entry at 10^7 entries (RSS growth agrees). Budget ~3 GB of RAM per
//! 10^8 entries (the exact table sizes give 2.3 GB at 10^8 entries and
//! 0.57 GB at 2·10^7), i.e. 30 bytes × `max_entries`, or 40 bytes ×
//! `max_entries` for the worst case just after a doubling. A doubling
//! briefly holds old and new tables, but only for one shard (1/64 of the
//! data) at a time. New entries also wait in a queue of 16 bytes each until
//! the next sync, and the journal takes 16 bytes of disk per entry (1.6 GB
//! at 10^8 entries).
//!
//! Loading a journal of 10^7 entries takes ~0.6–0.8 s (release build,
//! journal in the page cache); the sets are presized from the journal's
//! length, so loading never rehashes.
//!
//! # Persistence and restarts
//!
//! Each cache appends to `DIR/replay-<hex key_id>.journal` (see
//! [`journal_path`]): a 16-byte header (magic `BNRPLY02` and the first 8
//! bytes of the key id), then 16-byte fingerprints. Inserts only queue the
//! fingerprint in memory; [`ReplayCache::sync`] writes the queue and waits
//! for `fdatasync`. Run it every `sync_interval_ms` with
//! [`ReplayCache::spawn_syncer`]; stopping the syncer and dropping the
//! cache both sync.
//!
//! A journal of format version 01 (magic `BNRPLY01`, 8-byte records) is
//! refused with [`ReplayError::UnsupportedVersion`]: its records hold too
//! few bytes of each tag to be converted, and misreading them would lose
//! every remembered tag. Keep the old release running until that key is
//! retired, or rotate the key and delete the old journal.
//!
//! After a restart every tag that was synced is a replay again. Tags
//! accepted within the last sync interval before a *crash* (power loss,
//! `SIGKILL`, a panic that aborts) may be forgotten, so those packets could
//! be replayed once more; a clean shutdown loses nothing. A crash in the
//! middle of a write leaves a partial last record, which the next
//! [`ReplayCache::open`] cuts away with a warning.
//!
//! When a key is retired, [`ReplayCache::discard`] frees its memory and
//! deletes its journal; [`discard_journal`] deletes the journal of a key
//! that is not loaded.

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
