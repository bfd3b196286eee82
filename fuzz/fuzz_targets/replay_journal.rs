//! `ReplayCache::open` on a journal file holding arbitrary bytes (a damaged
//! disk, a file from another build, a torn write).
//!
//! Opening must refuse or repair, never panic. A journal that opens holds
//! exactly the records of its valid blocks (random bytes never pass a
//! block's checksum, so those come from the well-formed blocks this target
//! builds), every one a replay again; only a torn tail may be cut away on
//! disk; a new tag is accepted while there is room and remembered across a
//! reopen.
//!
//! Input: the first byte picks the budget (1 to 8 KiB) and whether a valid
//! header goes in front; if so, the rest is split into well-formed blocks
//! (whose records come from the input) followed by the raw remainder, so
//! the fuzzer spends its time on blocks as well as on the header.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use betanet::replay::{Check, OpenMode, ReplayCache, journal_path};
use betanet::sphinx::ReplayTag;
use libfuzzer_sys::fuzz_target;

const KEY_ID: [u8; 16] = *b"fuzz journal key";

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let budget = (usize::from(choice >> 5) + 1) * 1024;
    let dir = dir();
    let path = journal_path(dir, &KEY_ID);
    let _ = std::fs::remove_file(&path);
    if choice & 1 == 1 {
        // Let the cache write valid blocks of records from the input, then
        // append the raw tail.
        let cut = rest.len() / 2 / 8 * 8;
        {
            let cache = ReplayCache::open(dir, KEY_ID, 1 << 20, OpenMode::Create)
                .expect("a fresh journal opens");
            for (n, record) in rest[..cut].chunks_exact(8).enumerate() {
                cache.check(&tag(record, 0));
                if n % 7 == 6 {
                    cache.sync().expect("sync");
                }
            }
        }
        let mut file = std::fs::read(&path).expect("the journal");
        file.extend_from_slice(&rest[cut..]);
        std::fs::write(&path, &file).expect("writing the journal");
    } else {
        std::fs::write(&path, rest).expect("writing the journal");
    }
    check(dir, &path, budget);
    let _ = std::fs::remove_file(&path);
});

fn check(dir: &Path, path: &Path, budget: usize) {
    let before = std::fs::read(path).expect("the journal");
    let Ok(cache) = ReplayCache::open(dir, KEY_ID, budget, OpenMode::MustExist) else {
        return;
    };
    let after = std::fs::read(path).expect("the journal is still there");
    assert_eq!(&after[..], &before[..after.len()], "only a tail may go");
    let held = cache.len();

    // A tag not held (the filter may call it seen: a false positive, at
    // most ~10^-7 with these few tags; or full).
    let fresh = tag(&0xa5a5_a5a5_5a5a_5a5a_u64.to_le_bytes(), 1);
    let first = cache.check(&fresh);
    assert_eq!(
        cache.check(&fresh),
        if first == Check::Full {
            Check::Full
        } else {
            Check::Seen
        }
    );
    drop(cache);

    let reopened = ReplayCache::open(dir, KEY_ID, budget, OpenMode::MustExist)
        .expect("our own journal reopens");
    let expected = held + usize::from(first == Check::Fresh);
    assert_eq!(reopened.len(), expected);
    if first == Check::Fresh {
        assert_ne!(
            reopened.check(&fresh),
            Check::Fresh,
            "the new tag was forgotten"
        );
    }
}

/// A tag whose first 8 bytes (all the filter keeps) are `prefix`.
fn tag(prefix: &[u8], tail: u8) -> ReplayTag {
    let mut tag = [tail; 32];
    tag[..8].copy_from_slice(prefix);
    ReplayTag(tag)
}

/// The directory every input's journal is written to (one per process,
/// under `TMPDIR`: the smoke script points it at memory, as the cache
/// syncs its journal and a disk's fsync would dominate each run).
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temp dir"))
        .path()
}
