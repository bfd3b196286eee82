//! The replay filter (`betanet::replay`): replay detection, the memory
//! budget, persistence across restarts and crashes, damaged, missing and
//! empty journals, file modes, concurrency, the background syncer, journal
//! failures, and a model check against a `HashSet`.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use betanet::replay::{Check, OpenMode, ReplayCache, ReplayError, discard_journal, journal_path};
use betanet::sphinx::{
    DropReason, FinalCommand, NodeId, PathHop, ReplayTag, SphinxProcessor, SphinxSecretKey,
    create_packet_with_seed,
};
use proptest::prelude::*;

const KEY: [u8; 16] = *b"test-key-id-0001";
/// Magic and key id.
const HEADER_LEN: u64 = 24;
/// Count, records before, header check, checksum.
const BLOCK_HEADER_LEN: u64 = 24;
/// Bytes per journal record: the first 8 bytes of the tag.
const RECORD_LEN: u64 = 8;
/// A budget far above what any test here fills.
const ROOMY: usize = 1 << 20;

/// A distinct, uniform-looking tag per `i`, as BLAKE3 outputs are.
fn tag(i: u64) -> ReplayTag {
    ReplayTag(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn open(dir: &Path, budget: usize) -> ReplayCache {
    ReplayCache::open(dir, KEY, budget, OpenMode::Create).unwrap()
}

fn reopen(dir: &Path, budget: usize) -> Result<ReplayCache, ReplayError> {
    ReplayCache::open(dir, KEY, budget, OpenMode::MustExist)
}

fn journal_len(dir: &Path) -> u64 {
    fs::metadata(journal_path(dir, &KEY)).unwrap().len()
}

#[test]
fn second_insert_of_a_tag_is_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
    assert!(cache.is_empty());
    assert_eq!(cache.check(&tag(1)), Check::Fresh);
    assert_eq!(cache.check(&tag(1)), Check::Seen);
    assert!(cache.check_and_insert(&tag(1)));
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.capacity_rejections(), 0);
}

#[test]
fn distinct_tags_are_all_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
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
fn the_first_eight_bytes_are_kept_and_the_rest_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
    assert!(!cache.check_and_insert(&tag(1)));
    let mut same_prefix = tag(1);
    same_prefix.0[8..].fill(0xaa);
    assert!(cache.check_and_insert(&same_prefix), "same first 8 bytes");
    // Bytes 4..8 are the fingerprint and byte 0 picks the bucket: changing
    // any one makes a new tag. (Bytes 1..4 pick buckets only in segments
    // large enough to use them; in a small one, a tag differing only there
    // is a collision, which uniform tags make as rare as any other.)
    for byte in [0, 4, 5, 6, 7] {
        let mut other = tag(1);
        other.0[byte] ^= 0x01;
        assert!(!cache.check_and_insert(&other), "byte {byte} ignored");
    }
    assert_eq!(cache.len(), 6);
}

#[test]
fn journal_blocks_hold_the_first_eight_bytes_of_each_tag() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
    cache.check_and_insert(&tag(1));
    cache.check_and_insert(&tag(2));
    assert_eq!(cache.sync().unwrap(), 2);
    let bytes = fs::read(journal_path(dir.path(), &KEY)).unwrap();
    assert_eq!(&bytes[..8], b"BNRPLY03");
    assert_eq!(&bytes[8..24], &KEY);
    assert_eq!(&bytes[24..28], &2u32.to_le_bytes());
    assert_eq!(&bytes[28..36], &0u64.to_le_bytes());
    assert_eq!(&bytes[48..56], &tag(1).0[..8]);
    assert_eq!(&bytes[56..64], &tag(2).0[..8]);
    assert_eq!(bytes.len(), 64);
}

#[test]
fn version_02_journal_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path(), &KEY);
    let mut old = b"BNRPLY02".to_vec();
    old.extend_from_slice(&KEY[..8]);
    old.extend_from_slice(&tag(1).0[..16]);
    fs::write(&path, &old).unwrap();

    let err = reopen(dir.path(), ROOMY).unwrap_err();
    assert!(
        matches!(&err, ReplayError::UnsupportedVersion { found, .. } if found == "02"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("format version 02"), "{message}");
    assert!(message.contains("only version 03"), "{message}");
    assert!(message.contains("retire the key"), "{message}");
    assert_eq!(fs::read(&path).unwrap(), old, "left alone");
}

#[test]
fn sphinx_processor_drops_a_replayed_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(open(dir.path(), ROOMY));
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
        let cache = open(dir.path(), ROOMY);
        for i in 0..100 {
            cache.check_and_insert(&tag(i));
        }
        // Dropped without an explicit sync: closing syncs.
    }
    assert_eq!(
        journal_len(dir.path()),
        HEADER_LEN + BLOCK_HEADER_LEN + 100 * RECORD_LEN
    );
    let cache = reopen(dir.path(), ROOMY).unwrap();
    assert_eq!(cache.len(), 100);
    assert_eq!(cache.pending(), 0);
    for i in 0..100 {
        assert!(cache.check_and_insert(&tag(i)), "tag {i} forgotten");
    }
    assert!(!cache.check_and_insert(&tag(100)));
    drop(cache);
    let cache = reopen(dir.path(), ROOMY).unwrap();
    assert_eq!(cache.len(), 101);
    assert!(cache.check_and_insert(&tag(100)));
}

#[test]
fn a_torn_last_block_is_cut_away() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = open(dir.path(), ROOMY);
        for i in 0..10 {
            cache.check_and_insert(&tag(i));
        }
    }
    let synced = journal_len(dir.path());
    // A crash in the middle of writing the next block.
    let path = journal_path(dir.path(), &KEY);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[1, 0, 0, 0, 10, 0, 0])
        .unwrap();

    let cache = reopen(dir.path(), ROOMY).unwrap();
    assert_eq!(cache.len(), 10);
    assert_eq!(journal_len(dir.path()), synced);
    assert!((0..10).all(|i| cache.check_and_insert(&tag(i))));
    // New blocks follow the repaired end.
    assert!(!cache.check_and_insert(&tag(10)));
    assert_eq!(cache.sync().unwrap(), 1);
    drop(cache);
    let cache = reopen(dir.path(), ROOMY).unwrap();
    assert_eq!(cache.len(), 11);
    assert!(cache.check_and_insert(&tag(10)));
}

#[test]
fn corruption_is_detected_and_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = open(dir.path(), ROOMY);
        for i in 0..10 {
            cache.check_and_insert(&tag(i));
        }
        cache.sync().unwrap();
        cache.check_and_insert(&tag(10));
    }
    let path = journal_path(dir.path(), &KEY);
    let good = fs::read(&path).unwrap();
    // A flipped bit in a record of the first (not last) block.
    let mut bad = good.clone();
    bad[(HEADER_LEN + BLOCK_HEADER_LEN + 3 * RECORD_LEN) as usize] ^= 0x10;
    fs::write(&path, &bad).unwrap();
    let err = reopen(dir.path(), ROOMY).unwrap_err();
    assert!(
        matches!(err, ReplayError::Corrupt { offset: 24, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("damaged at byte 24"), "{message}");
    assert!(message.contains("fails its checksum"), "{message}");
    assert!(message.contains("sphinx-<epoch>.key"), "{message}");
    assert_eq!(fs::read(&path).unwrap(), bad, "left alone");
}

#[test]
fn a_crash_forgets_only_unsynced_tags() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
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
    let restarted = reopen(after_crash.path(), ROOMY).unwrap();
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
fn a_key_in_use_with_a_missing_or_empty_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path(), &KEY);
    let err = reopen(dir.path(), ROOMY).unwrap_err();
    assert!(matches!(err, ReplayError::Missing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("is missing"), "{message}");
    assert!(message.contains("retire the key"), "{message}");
    assert!(!path.exists(), "no empty journal is made up");

    fs::write(&path, b"").unwrap();
    let err = reopen(dir.path(), ROOMY).unwrap_err();
    assert!(
        matches!(err, ReplayError::TruncatedHeader { len: 0, .. }),
        "{err:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), b"", "left alone");

    // A journal with a header and no block is a key that accepted nothing.
    fs::remove_file(&path).unwrap();
    drop(open(dir.path(), ROOMY));
    assert!(reopen(dir.path(), ROOMY).unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn journal_and_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(open(&data, ROOMY));
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&journal_path(&data, &KEY)), 0o600);
    // Widened by someone: narrowed again on open.
    fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(journal_path(&data, &KEY), fs::Permissions::from_mode(0o666)).unwrap();
    drop(reopen(&data, ROOMY).unwrap());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&journal_path(&data, &KEY)), 0o600);
}

#[test]
fn journal_of_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other: [u8; 16] = *b"other-key-id-002";
    drop(ReplayCache::open(dir.path(), other, ROOMY, OpenMode::Create).unwrap());
    fs::rename(
        journal_path(dir.path(), &other),
        journal_path(dir.path(), &KEY),
    )
    .unwrap();
    let err = reopen(dir.path(), ROOMY).unwrap_err();
    assert!(matches!(err, ReplayError::WrongKey { .. }), "{err:?}");
    assert!(err.to_string().contains(&hex::encode(other)), "{err}");
}

#[test]
fn not_a_journal_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(dir.path(), &KEY);
    fs::write(&path, b"this is not a replay journal at all").unwrap();
    let err = reopen(dir.path(), ROOMY).unwrap_err();
    assert!(matches!(err, ReplayError::BadMagic { .. }), "{err:?}");
    assert_eq!(
        fs::read(&path).unwrap(),
        b"this is not a replay journal at all"
    );
}

#[test]
fn open_journal_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
    let err = reopen(dir.path(), ROOMY).unwrap_err();
    assert!(matches!(err, ReplayError::Locked { .. }), "{err:?}");
    drop(cache);
    reopen(dir.path(), ROOMY).unwrap();
}

#[test]
fn discard_and_retire_delete_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
    cache.check_and_insert(&tag(1));
    cache.sync().unwrap();
    let path = journal_path(dir.path(), &KEY);
    assert!(path.exists());
    cache.discard().unwrap();
    assert!(!path.exists());

    let cache = open(dir.path(), ROOMY);
    assert!(!cache.check_and_insert(&tag(1)), "a new key starts empty");
    cache.retire().unwrap();
    assert!(!path.exists());
    assert!(cache.is_retired());
    assert_eq!(
        cache.check(&tag(99)),
        Check::Seen,
        "a retired key drops all"
    );
    assert_eq!(cache.capacity_bytes(), 0);

    drop(open(dir.path(), ROOMY));
    discard_journal(dir.path(), &KEY).unwrap();
    assert!(!path.exists());
    discard_journal(dir.path(), &KEY).unwrap();
}

#[test]
fn full_filter_fails_closed_counts_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 16 * 1024;
    let cache = open(dir.path(), budget);
    let initial = cache.capacity_bytes();
    assert!(initial <= budget / 4, "memory grows with use: {initial}");
    let mut i = 0;
    while cache.check(&tag(i)) == Check::Fresh {
        i += 1;
    }
    assert!(cache.is_full());
    assert!(cache.capacity_bytes() <= budget);
    assert!(cache.capacity_bytes() > initial);
    assert!(
        i as usize >= cache.max_tags() * 98 / 100,
        "{i} of {}",
        cache.max_tags()
    );
    assert!(cache.fill_ratio() >= 0.98, "{}", cache.fill_ratio());
    assert_eq!(cache.capacity_rejections(), 1);
    for j in i + 1..i + 10 {
        assert_eq!(cache.check(&tag(j)), Check::Full, "new tag {j} let through");
    }
    assert_eq!(cache.capacity_rejections(), 10);
    // Held tags are replays, not capacity rejections.
    assert_eq!(cache.check(&tag(0)), Check::Seen);
    assert_eq!(cache.capacity_rejections(), 10);
    let held = cache.len();
    drop(cache);

    // Refused tags were never journaled; a bigger budget takes new ones.
    let cache = reopen(dir.path(), 4 * budget).unwrap();
    assert_eq!(cache.len(), held);
    assert_eq!(cache.check(&tag(i)), Check::Fresh);
    drop(cache);
    // A smaller budget still loads every tag, and refuses new ones.
    let cache = reopen(dir.path(), budget / 4).unwrap();
    assert_eq!(cache.len(), held + 1);
    assert!((0..=i).all(|j| cache.check(&tag(j)) == Check::Seen));
    assert_eq!(cache.check(&tag(i + 100)), Check::Full);
}

#[test]
fn failed_syncs_are_counted_retried_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
    cache.check_and_insert(&tag(1));
    cache.fail_syncs_for_test(true);
    assert!(cache.sync().is_err());
    assert!(cache.sync().is_err());
    assert_eq!(cache.journal_errors(), 2);
    assert!(cache.journal_failing());
    assert_eq!(cache.pending(), 1, "still queued");
    assert!(cache.check_and_insert(&tag(1)), "still caught in memory");
    cache.fail_syncs_for_test(false);
    assert_eq!(cache.sync().unwrap(), 1);
    assert!(!cache.journal_failing());
    assert_eq!(cache.journal_errors(), 2);
    drop(cache);
    assert_eq!(reopen(dir.path(), ROOMY).unwrap().len(), 1);
}

#[test]
fn concurrent_workers_accept_each_tag_exactly_once() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(open(dir.path(), 4 << 20));
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
    drop(cache);
    // The journal rebuilds the same set.
    let cache = reopen(dir.path(), 4 << 20).unwrap();
    assert_eq!(cache.len() as u64, universe);
    assert!((0..universe).all(|i| cache.check(&tag(i)) == Check::Seen));
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
    let cache = Arc::new(open(dir.path(), ROOMY));
    let syncer = cache.spawn_syncer(Duration::from_millis(20)).unwrap();
    cache.check_and_insert(&tag(1));
    // `pending` drops once fdatasync returned.
    assert!(eventually(|| cache.pending() == 0));
    assert_eq!(
        journal_len(dir.path()),
        HEADER_LEN + BLOCK_HEADER_LEN + RECORD_LEN
    );
    // A failing disk is counted by the syncer too.
    cache.fail_syncs_for_test(true);
    cache.check_and_insert(&tag(2));
    assert!(eventually(|| cache.journal_failing()));
    cache.fail_syncs_for_test(false);
    assert!(eventually(
        || !cache.journal_failing() && cache.pending() == 0
    ));
    assert!(cache.journal_errors() >= 1);
    assert_eq!(syncer.stop().unwrap(), 0);
}

#[test]
fn syncer_syncs_when_dropped_or_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(open(dir.path(), ROOMY));
    let syncer = cache.spawn_syncer(Duration::from_secs(3600)).unwrap();
    cache.check_and_insert(&tag(1));
    drop(syncer);
    assert_eq!(cache.pending(), 0);
    let syncer = cache.spawn_syncer(Duration::from_secs(3600)).unwrap();
    cache.check_and_insert(&tag(2));
    cache.check_and_insert(&tag(3));
    assert_eq!(syncer.stop().unwrap(), 2);
    // The syncer released its reference: the key can be retired.
    Arc::try_unwrap(cache).unwrap().discard().unwrap();
    assert!(!journal_path(dir.path(), &KEY).exists());
}

#[test]
fn debug_output_is_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ROOMY);
    cache.check_and_insert(&tag(1));
    let debug = format!("{cache:?}");
    assert!(debug.contains("len: 1"), "{debug}");
    assert!(debug.len() < 200, "{debug}");
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
        8 => (0..400u64).prop_map(Op::Insert),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The filter answers exactly like a `HashSet` (a false positive among
    /// a few hundred tags has probability ~10^-7), across syncs and
    /// reopens, over segment growth and up to a full budget.
    #[test]
    fn filter_matches_a_hash_set_model(
        ops in prop::collection::vec(op(), 0..600),
        budget_kib in 1usize..8,
    ) {
        let budget = budget_kib * 1024;
        let dir = tempfile::tempdir().unwrap();
        let mut cache = open(dir.path(), budget);
        let mut model = HashSet::new();
        let mut full = false;
        for op in ops {
            match op {
                Op::Insert(i) => {
                    let got = cache.check(&tag(i));
                    if model.contains(&i) {
                        prop_assert_eq!(got, Check::Seen, "tag {}", i);
                    } else if got == Check::Fresh {
                        prop_assert!(!full, "accepted after refusing");
                        model.insert(i);
                    } else {
                        prop_assert_eq!(got, Check::Full, "tag {}", i);
                        full = true;
                    }
                }
                Op::Sync => {
                    cache.sync().unwrap();
                    prop_assert_eq!(cache.pending(), 0);
                }
                Op::Reopen => {
                    drop(cache);
                    cache = reopen(dir.path(), budget).unwrap();
                    prop_assert_eq!(cache.pending(), 0);
                }
            }
            prop_assert_eq!(cache.len(), model.len());
            prop_assert!(cache.capacity_bytes() <= budget.max(1024));
        }
    }

    /// No file content makes `open` panic.
    #[test]
    fn any_journal_content_opens_or_errors(
        mut bytes in prop::collection::vec(any::<u8>(), 0..300),
        valid_header in any::<bool>(),
    ) {
        if valid_header && bytes.len() >= 24 {
            bytes[..8].copy_from_slice(b"BNRPLY03");
            bytes[8..24].copy_from_slice(&KEY);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(journal_path(dir.path(), &KEY), &bytes).unwrap();
        if let Ok(cache) = reopen(dir.path(), ROOMY) {
            // Random bytes never pass a block's checks.
            prop_assert_eq!(cache.len(), 0);
        }
    }
}
