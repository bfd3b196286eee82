//! The replay cache (`betanet::replay`): replay detection, the memory bound,
//! persistence across restarts and crashes, damaged journals, concurrency,
//! the background syncer, and a model check against a `HashSet`.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use betanet::replay::{ReplayCache, ReplayError, discard_journal, journal_path};
use betanet::sphinx::{
    DropReason, FinalCommand, NodeId, PathHop, ReplayTag, SphinxProcessor, SphinxSecretKey,
    create_packet_with_seed,
};
use proptest::prelude::*;

const KEY: [u8; 16] = *b"test-key-id-0001";
const HEADER_LEN: u64 = 16;
/// Bytes per journal record: the first 16 bytes of the tag.
const RECORD_LEN: u64 = 16;

/// A distinct, uniform-looking tag per `i` (its first 16 bytes differ for
/// different `i`, as BLAKE3 outputs do).
fn tag(i: u64) -> ReplayTag {
    ReplayTag(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn journal_len(dir: &Path) -> u64 {
    fs::metadata(journal_path(dir, &KEY)).unwrap().len()
}

#[test]
fn second_insert_of_a_tag_is_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 100).unwrap();
    assert!(cache.is_empty());
    assert!(!cache.check_and_insert(&tag(1)));
    assert!(cache.check_and_insert(&tag(1)));
    assert!(cache.check_and_insert(&tag(1)));
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.full_rejections(), 0);
}

#[test]
fn distinct_tags_are_all_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 100_000).unwrap();
    for i in 0..10_000 {
        assert!(!cache.check_and_insert(&tag(i)), "tag {i}");
    }
    assert_eq!(cache.len(), 10_000);
    assert_eq!(cache.pending(), 10_000);
    for i in 0..10_000 {
        assert!(cache.check_and_insert(&tag(i)), "tag {i}");
    }
}

#[test]
fn the_first_sixteen_bytes_are_kept_and_the_rest_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 100).unwrap();
    assert!(!cache.check_and_insert(&tag(1)));

    // Bytes 16.. are not kept: a tag differing only there is a replay.
    let mut same_prefix = tag(1);
    same_prefix.0[16..].fill(0xaa);
    assert_ne!(same_prefix.0, tag(1).0);
    assert!(cache.check_and_insert(&same_prefix), "same first 16 bytes");

    // Every one of bytes 0..16 is kept, bytes 8..16 included: changing any
    // single one makes a new tag.
    for byte in 0..16 {
        let mut other = tag(1);
        other.0[byte] ^= 0x01;
        assert!(!cache.check_and_insert(&other), "byte {byte} ignored");
    }
    assert_eq!(cache.len(), 17);
}

#[test]
fn journal_records_are_the_first_sixteen_bytes_of_each_tag() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 100).unwrap();
    cache.check_and_insert(&tag(1));
    assert_eq!(cache.sync().unwrap(), 1);
    let bytes = fs::read(journal_path(dir.path(), &KEY)).unwrap();
    assert_eq!(&bytes[..8], b"BNRPLY02");
    assert_eq!(&bytes[8..16], &KEY[..8]);
    assert_eq!(&bytes[16..], &tag(1).0[..16]);
}

#[test]
fn version_01_journal_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path(), &KEY);
    // A journal written by the 8-byte format: two records, which would read
    // as one 16-byte record if the version were not checked.
    let mut old = b"BNRPLY01".to_vec();
    old.extend_from_slice(&KEY[..8]);
    old.extend_from_slice(&tag(1).0[..8]);
    old.extend_from_slice(&tag(2).0[..8]);
    fs::write(&path, &old).unwrap();

    let err = ReplayCache::open(dir.path(), KEY, 100).unwrap_err();
    assert!(
        matches!(&err, ReplayError::UnsupportedVersion { found, .. } if found == "01"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("format version 01"), "{message}");
    assert!(message.contains("only version 02"), "{message}");
    // The file is left alone for the operator.
    assert_eq!(fs::read(&path).unwrap(), old);
}

#[test]
fn sphinx_processor_drops_a_replayed_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ReplayCache::open(dir.path(), KEY, 100).unwrap());
    let node = SphinxProcessor::new(SphinxSecretKey::from_bytes([5; 32]));
    let hop = PathHop {
        id: NodeId::from_bytes([1; 16]),
        public_key: node.public_key(),
    };
    let built = create_packet_with_seed(&[hop], FinalCommand::Drop, b"hi", &[3; 32]).unwrap();
    let mut batch = vec![built.frame.to_vec(), built.frame.to_vec()];

    let results = node.unwrap_batch(&mut batch, &mut &*cache);

    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().unwrap_err(), &DropReason::Replay);
    assert_eq!(cache.len(), 1);
    assert!(cache.check_and_insert(&built.replay_tags[0]));
}

#[test]
fn tags_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = ReplayCache::open(dir.path(), KEY, 1000).unwrap();
        for i in 0..100 {
            cache.check_and_insert(&tag(i));
        }
        // Dropped without an explicit sync: closing syncs.
    }
    assert_eq!(journal_len(dir.path()), HEADER_LEN + 100 * RECORD_LEN);

    let cache = ReplayCache::open(dir.path(), KEY, 1000).unwrap();
    assert_eq!(cache.len(), 100);
    assert_eq!(cache.pending(), 0);
    for i in 0..100 {
        assert!(cache.check_and_insert(&tag(i)), "tag {i} forgotten");
    }
    assert!(!cache.check_and_insert(&tag(100)));
    drop(cache);

    let cache = ReplayCache::open(dir.path(), KEY, 1000).unwrap();
    assert_eq!(cache.len(), 101);
    assert!(cache.check_and_insert(&tag(100)));
}

#[test]
fn torn_trailing_record_is_cut_away() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = ReplayCache::open(dir.path(), KEY, 1000).unwrap();
        for i in 0..10 {
            cache.check_and_insert(&tag(i));
        }
    }
    // A crash in the middle of writing an 11th record.
    let path = journal_path(dir.path(), &KEY);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[1, 2, 3])
        .unwrap();

    let cache = ReplayCache::open(dir.path(), KEY, 1000).unwrap();
    assert_eq!(cache.len(), 10);
    assert_eq!(journal_len(dir.path()), HEADER_LEN + 10 * RECORD_LEN);
    for i in 0..10 {
        assert!(cache.check_and_insert(&tag(i)));
    }
    // New records land on record boundaries after the repair.
    assert!(!cache.check_and_insert(&tag(10)));
    assert_eq!(cache.sync().unwrap(), 1);
    drop(cache);
    let cache = ReplayCache::open(dir.path(), KEY, 1000).unwrap();
    assert_eq!(cache.len(), 11);
    assert!(cache.check_and_insert(&tag(10)));
}

#[test]
fn a_crash_forgets_only_unsynced_tags() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 1000).unwrap();
    for i in 0..5 {
        cache.check_and_insert(&tag(i));
    }
    assert_eq!(cache.pending(), 5);
    assert_eq!(cache.sync().unwrap(), 5);
    assert_eq!(cache.pending(), 0);
    for i in 5..8 {
        cache.check_and_insert(&tag(i));
    }
    assert_eq!(cache.pending(), 3);

    // What a crash now leaves on disk: the journal as it is.
    let after_crash = tempfile::tempdir().unwrap();
    fs::copy(
        journal_path(dir.path(), &KEY),
        journal_path(after_crash.path(), &KEY),
    )
    .unwrap();

    let restarted = ReplayCache::open(after_crash.path(), KEY, 1000).unwrap();
    assert_eq!(restarted.len(), 5);
    for i in 0..5 {
        assert!(
            restarted.check_and_insert(&tag(i)),
            "synced tag {i} forgotten"
        );
    }
    for i in 5..8 {
        assert!(!restarted.check_and_insert(&tag(i)), "unsynced tag {i}");
    }
}

#[test]
fn journal_of_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other: [u8; 16] = *b"other-key-id-002";
    drop(ReplayCache::open(dir.path(), other, 10).unwrap());
    fs::rename(
        journal_path(dir.path(), &other),
        journal_path(dir.path(), &KEY),
    )
    .unwrap();

    let err = ReplayCache::open(dir.path(), KEY, 10).unwrap_err();
    assert!(matches!(err, ReplayError::WrongKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&journal_path(dir.path(), &KEY).display().to_string()),
        "{message}"
    );
    assert!(message.contains(&hex::encode(&other[..8])), "{message}");
}

#[test]
fn damaged_journals_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path(), &KEY);

    fs::write(&path, b"this is not a replay journal at all").unwrap();
    let err = ReplayCache::open(dir.path(), KEY, 10).unwrap_err();
    assert!(matches!(err, ReplayError::BadMagic { .. }), "{err:?}");
    assert!(err.to_string().contains("not a betanet replay journal"));

    fs::write(&path, b"garbage").unwrap();
    let err = ReplayCache::open(dir.path(), KEY, 10).unwrap_err();
    assert!(
        matches!(err, ReplayError::TruncatedHeader { len: 7, .. }),
        "{err:?}"
    );

    // The file is left alone for the operator to inspect.
    assert_eq!(fs::read(&path).unwrap(), b"garbage");
}

#[test]
fn open_journal_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 10).unwrap();
    let err = ReplayCache::open(dir.path(), KEY, 10).unwrap_err();
    assert!(matches!(err, ReplayError::Locked { .. }), "{err:?}");
    drop(cache);
    ReplayCache::open(dir.path(), KEY, 10).unwrap();
}

#[test]
fn discard_deletes_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 10).unwrap();
    cache.check_and_insert(&tag(1));
    cache.sync().unwrap();
    let path = journal_path(dir.path(), &KEY);
    assert!(path.exists());

    cache.discard().unwrap();
    assert!(!path.exists());

    // A new epoch under the same id starts empty.
    let cache = ReplayCache::open(dir.path(), KEY, 10).unwrap();
    assert!(cache.is_empty());
    assert!(!cache.check_and_insert(&tag(1)));
}

#[test]
fn discard_journal_deletes_an_unloaded_journal() {
    let dir = tempfile::tempdir().unwrap();
    drop(ReplayCache::open(dir.path(), KEY, 10).unwrap());
    let path = journal_path(dir.path(), &KEY);
    assert!(path.exists());
    discard_journal(dir.path(), &KEY).unwrap();
    assert!(!path.exists());
    // Idempotent.
    discard_journal(dir.path(), &KEY).unwrap();
}

#[test]
fn full_cache_fails_closed_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 3).unwrap();
    for i in 0..3 {
        assert!(!cache.check_and_insert(&tag(i)));
    }
    for i in 3..10 {
        assert!(cache.check_and_insert(&tag(i)), "new tag {i} let through");
    }
    assert_eq!(cache.full_rejections(), 7);
    // Replays of held tags are replays, not full rejections.
    assert!(cache.check_and_insert(&tag(0)));
    assert_eq!(cache.full_rejections(), 7);
    assert_eq!(cache.len(), 3);
    drop(cache);

    // Rejected tags were never journaled.
    let cache = ReplayCache::open(dir.path(), KEY, 4).unwrap();
    assert_eq!(cache.len(), 3);
    assert!(!cache.check_and_insert(&tag(3)));
}

#[test]
fn journal_larger_than_max_entries_loads_fully() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = ReplayCache::open(dir.path(), KEY, 10).unwrap();
        for i in 0..10 {
            cache.check_and_insert(&tag(i));
        }
    }
    // The operator lowered the bound: remembered tags still count.
    let cache = ReplayCache::open(dir.path(), KEY, 4).unwrap();
    assert_eq!(cache.len(), 10);
    for i in 0..10 {
        assert!(cache.check_and_insert(&tag(i)));
    }
    assert!(cache.check_and_insert(&tag(10)));
    assert_eq!(cache.full_rejections(), 1);
}

#[test]
fn concurrent_workers_accept_each_tag_exactly_once() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ReplayCache::open(dir.path(), KEY, 1_000_000).unwrap());
    let universe = (THREADS + 1) * PER_THREAD / 2;
    let accepted: Arc<Vec<AtomicUsize>> =
        Arc::new((0..universe).map(|_| AtomicUsize::new(0)).collect());

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = Arc::clone(&cache);
            let accepted = Arc::clone(&accepted);
            thread::spawn(move || {
                // Thread t covers [t·P/2, t·P/2 + P): half shared with each
                // neighbour; all threads also race on tags 0..100.
                let own = (t * PER_THREAD / 2)..(t * PER_THREAD / 2 + PER_THREAD);
                for i in (0..100).chain(own) {
                    if !cache.check_and_insert(&tag(i)) {
                        accepted[i as usize].fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Syncing concurrently with the inserts must not lose or duplicate.
    let syncer = cache.spawn_syncer(Duration::from_millis(1)).unwrap();
    for worker in workers {
        worker.join().unwrap();
    }
    syncer.stop().unwrap();

    for (i, count) in accepted.iter().enumerate() {
        assert_eq!(count.load(Ordering::Relaxed), 1, "tag {i}");
    }
    assert_eq!(cache.len() as u64, universe);
    assert_eq!(cache.pending(), 0);
    assert_eq!(journal_len(dir.path()), HEADER_LEN + universe * RECORD_LEN);
}

#[test]
fn bound_is_exact_under_contention() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ReplayCache::open(dir.path(), KEY, 1000).unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    thread::scope(|s| {
        for t in 0..8u64 {
            let cache = &cache;
            let accepted = &accepted;
            s.spawn(move || {
                for i in 0..500 {
                    if !cache.check_and_insert(&tag(t * 1000 + i)) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(accepted.load(Ordering::Relaxed), 1000);
    assert_eq!(cache.len(), 1000);
    assert_eq!(cache.full_rejections(), 3000);
}

/// Polls `done` for up to 10 s.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn syncer_syncs_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ReplayCache::open(dir.path(), KEY, 100).unwrap());
    let syncer = cache.spawn_syncer(Duration::from_millis(20)).unwrap();

    cache.check_and_insert(&tag(1));
    // The file grows at the write; `pending` drops once fdatasync returned.
    assert!(eventually(|| cache.pending() == 0));
    assert_eq!(journal_len(dir.path()), HEADER_LEN + RECORD_LEN);
    cache.check_and_insert(&tag(2));
    cache.check_and_insert(&tag(3));
    assert!(eventually(|| cache.pending() == 0));
    assert_eq!(journal_len(dir.path()), HEADER_LEN + 3 * RECORD_LEN);

    assert_eq!(syncer.stop().unwrap(), 0);
}

#[test]
fn syncer_syncs_when_dropped_or_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ReplayCache::open(dir.path(), KEY, 100).unwrap());

    let syncer = cache.spawn_syncer(Duration::from_secs(3600)).unwrap();
    cache.check_and_insert(&tag(1));
    drop(syncer);
    assert_eq!(journal_len(dir.path()), HEADER_LEN + RECORD_LEN);

    let syncer = cache.spawn_syncer(Duration::from_secs(3600)).unwrap();
    cache.check_and_insert(&tag(2));
    cache.check_and_insert(&tag(3));
    assert_eq!(syncer.stop().unwrap(), 2);
    assert_eq!(journal_len(dir.path()), HEADER_LEN + 3 * RECORD_LEN);

    // The syncer released its reference: the key can be retired.
    Arc::try_unwrap(cache).unwrap().discard().unwrap();
    assert!(!journal_path(dir.path(), &KEY).exists());
}

/// One step of the model check.
#[derive(Debug, Clone)]
enum Op {
    Insert(u64),
    Sync,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..40u64).prop_map(Op::Insert),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The cache answers exactly like a bounded `HashSet`, across syncs and
    /// reopens.
    #[test]
    fn cache_matches_a_hash_set_model(
        ops in prop::collection::vec(op(), 0..120),
        max_entries in 0usize..50,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = ReplayCache::open(dir.path(), KEY, max_entries).unwrap();
        let mut model = HashSet::new();
        let mut full_rejections = 0u64;
        for op in ops {
            match op {
                Op::Insert(i) => {
                    let expected = if model.contains(&i) {
                        true
                    } else if model.len() >= max_entries {
                        full_rejections += 1;
                        true
                    } else {
                        model.insert(i);
                        false
                    };
                    prop_assert_eq!(cache.check_and_insert(&tag(i)), expected, "tag {}", i);
                }
                Op::Sync => {
                    cache.sync().unwrap();
                    prop_assert_eq!(cache.pending(), 0);
                }
                Op::Reopen => {
                    drop(cache);
                    cache = ReplayCache::open(dir.path(), KEY, max_entries).unwrap();
                    full_rejections = 0;
                    prop_assert_eq!(cache.pending(), 0);
                }
            }
            prop_assert_eq!(cache.len(), model.len());
            prop_assert_eq!(cache.full_rejections(), full_rejections);
        }
    }

    /// No file content makes `open` panic, and whatever it accepts holds
    /// exactly the whole records after the header.
    #[test]
    fn any_journal_content_opens_or_errors(
        mut bytes in prop::collection::vec(any::<u8>(), 0..200),
        valid_header in any::<bool>(),
    ) {
        if valid_header && bytes.len() >= 16 {
            bytes[..8].copy_from_slice(b"BNRPLY02");
            bytes[8..16].copy_from_slice(&KEY[..8]);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(journal_path(dir.path(), &KEY), &bytes).unwrap();
        if let Ok(cache) = ReplayCache::open(dir.path(), KEY, 1000) {
            let records: HashSet<&[u8]> = bytes.get(16..).unwrap_or(&[]).chunks_exact(16).collect();
            prop_assert_eq!(cache.len(), records.len());
        }
    }
}

/// Resident memory of this process in bytes (Linux), for the measurement.
fn rss_bytes() -> Option<usize> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Measures load time and memory per entry for 10^7 entries. Slow in debug
/// builds; run with
/// `cargo test --release --test replay_cache -- --ignored --nocapture`.
#[test]
#[ignore = "measurement: writes a 160 MB journal"]
fn measure_load_speed_and_memory_per_entry() {
    const N: u64 = 10_000_000;
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Vec::with_capacity(16 + N as usize * RECORD_LEN as usize);
    journal.extend_from_slice(b"BNRPLY02");
    journal.extend_from_slice(&KEY[..8]);
    for i in 0..N {
        journal.extend_from_slice(&tag(i).0[..RECORD_LEN as usize]);
    }
    fs::write(journal_path(dir.path(), &KEY), &journal).unwrap();
    drop(journal);

    let rss_before = rss_bytes();
    let started = Instant::now();
    let cache = ReplayCache::open(dir.path(), KEY, 2 * N as usize).unwrap();
    let load = started.elapsed();
    let rss_after = rss_bytes();
    assert_eq!(cache.len() as u64, N);
    println!("loaded {N} entries in {load:?}");
    println!(
        "sets: {:.1} bytes/entry (from capacities)",
        cache.approx_memory_bytes() as f64 / N as f64
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "RSS growth: {:.1} bytes/entry",
            after.saturating_sub(before) as f64 / N as f64
        );
    }

    // Incremental inserts (no presizing), as during an epoch.
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 2 * N as usize).unwrap();
    let started = Instant::now();
    for i in 0..N {
        cache.check_and_insert(&tag(i));
    }
    let insert = started.elapsed();
    println!(
        "inserted {N} in {insert:?} ({:.0} ns each, incl. BLAKE3 of the test tag)",
        insert.as_nanos() as f64 / N as f64
    );
    println!(
        "sets after inserts: {:.1} bytes/entry; queue {} bytes/entry until sync",
        cache.approx_memory_bytes() as f64 / N as f64,
        RECORD_LEN
    );
    let started = Instant::now();
    assert_eq!(cache.sync().unwrap() as u64, N);
    println!("synced {N} in {:?}", started.elapsed());
}

#[test]
fn debug_output_is_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ReplayCache::open(dir.path(), KEY, 10).unwrap();
    cache.check_and_insert(&tag(1));
    let debug = format!("{cache:?}");
    assert!(debug.contains("len: 1"), "{debug}");
    assert!(debug.len() < 200, "{debug}");
}
