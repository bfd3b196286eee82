//! `ReplayCache::open` on a journal file holding arbitrary bytes (a damaged
//! disk, a file from another build, a torn write).
//!
//! Opening must refuse or repair, never panic. A journal that opens must
//! hold exactly the whole records after its header, every one of them a
//! replay again, with a torn tail cut away on disk; new tags are accepted
//! while there is room and remembered across a reopen.
//!
//! Input: the first byte picks the cache's `max_entries` (0 to 255); the
//! rest is the file. Half the inputs get a valid header in front, so the
//! fuzzer spends its time on the records as well as on the header.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use betanet::replay::{ReplayCache, journal_path};
use betanet::sphinx::ReplayTag;
use libfuzzer_sys::fuzz_target;

const KEY_ID: [u8; 16] = *b"fuzz journal key";
const HEADER_LEN: usize = 16;
const RECORD_LEN: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let max_entries = usize::from(choice >> 1);
    let mut file = Vec::with_capacity(HEADER_LEN + rest.len());
    if choice & 1 == 1 {
        file.extend_from_slice(b"BNRPLY02");
        file.extend_from_slice(&KEY_ID[..8]);
    }
    file.extend_from_slice(rest);

    let dir = dir();
    let path = journal_path(dir, &KEY_ID);
    std::fs::write(&path, &file).expect("writing the journal");
    check(dir, &path, &file, max_entries);
    let _ = std::fs::remove_file(&path);
});

fn check(dir: &Path, path: &Path, file: &[u8], max_entries: usize) {
    let Ok(cache) = ReplayCache::open(dir, KEY_ID, max_entries) else {
        return;
    };
    let on_disk = std::fs::read(path).expect("the journal is still there");
    let records: Vec<&[u8]> = if file.len() < HEADER_LEN {
        // A header cut short by a crash is completed, with no records.
        assert_eq!(on_disk.len(), HEADER_LEN);
        Vec::new()
    } else {
        assert_eq!(
            &on_disk[..],
            &file[..on_disk.len()],
            "only a torn tail may go"
        );
        assert_eq!((on_disk.len() - HEADER_LEN) % RECORD_LEN, 0);
        assert!(file.len() - on_disk.len() < RECORD_LEN);
        on_disk[HEADER_LEN..].chunks_exact(RECORD_LEN).collect()
    };
    let mut distinct: Vec<&[u8]> = records.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(cache.len(), distinct.len());

    for record in &records {
        assert!(
            cache.check_and_insert(&tag(record, 0)),
            "a journaled tag was accepted"
        );
    }
    // A tag not in the journal: new, if there is room (bytes 16.. of a tag
    // are not kept, so only the first 16 bytes make it new).
    let fresh = (0..=u16::MAX)
        .map(|i| {
            let mut candidate = [0xa5; 16];
            candidate[..2].copy_from_slice(&i.to_le_bytes());
            candidate
        })
        .find(|candidate| !distinct.contains(&&candidate[..]))
        .expect("fewer than 65,536 records fit an input");
    let room = cache.len() < max_entries;
    assert_eq!(cache.check_and_insert(&tag(&fresh, 1)), !room);
    drop(cache);

    let reopened = ReplayCache::open(dir, KEY_ID, max_entries).expect("our own journal reopens");
    if room {
        assert!(
            reopened.check_and_insert(&tag(&fresh, 2)),
            "the new tag was forgotten"
        );
    }
}

/// A tag whose first 16 bytes (all the cache keeps) are `prefix`.
fn tag(prefix: &[u8], tail: u8) -> ReplayTag {
    let mut tag = [tail; 32];
    tag[..16].copy_from_slice(prefix);
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
