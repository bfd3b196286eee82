//! The append-only journal that makes a replay cache survive restarts.
//!
//! Format of `DIR/replay-<hex key_id>.journal`:
//!
//! ```text
//! offset 0   8 bytes  magic "BNRPLY02" ("BNRPLY" + 2-digit format version)
//! offset 8   8 bytes  the first 8 bytes of the key id (refuses swapped files)
//! offset 16  16 bytes fingerprint: the first 16 bytes of τ, i.e. a
//!                     little-endian u128                 (repeated)
//! ```
//!
//! Version 01 held 8-byte records (the first 8 bytes of `τ`). Those cannot
//! be widened to 16 bytes, and reading them as version 02 would pair up
//! records, so a journal of any other version is refused
//! ([`ReplayError::UnsupportedVersion`]) rather than misread.
//!
//! Records are only appended after the header is durable, and a sync writes
//! whole records, so a crash can leave at most a torn *trailing* record,
//! which loading cuts away. The file is locked while a cache has it open, so
//! two node instances cannot interleave records in one journal.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::error::ReplayError;
use super::fingerprint::{FINGERPRINT_LEN, Fingerprint};

/// First 8 bytes of every journal: [`MAGIC_PREFIX`] and the format version.
pub(super) const MAGIC: [u8; 8] = *b"BNRPLY02";
/// The part of the magic shared by every format version.
const MAGIC_PREFIX: [u8; 6] = *b"BNRPLY";
/// The magic of format version 01 (8-byte records), for recognising the
/// header of a version-01 journal whose creation was interrupted.
const MAGIC_V01: [u8; 8] = *b"BNRPLY01";
/// Magic plus key id prefix.
pub(super) const HEADER_LEN: usize = 16;
/// One fingerprint: the first 16 bytes of `τ` (a little-endian u128).
pub(super) const RECORD_LEN: usize = FINGERPRINT_LEN;
/// Loading reads this many bytes per `read` call (a multiple of
/// `RECORD_LEN`): big enough that 10^7 records take ~160 syscalls.
const READ_CHUNK: usize = 1 << 20;
const _: () = assert!(READ_CHUNK.is_multiple_of(RECORD_LEN));

/// Where the journal of `key_id` lives inside `dir`.
pub fn journal_path(dir: &Path, key_id: &[u8; 16]) -> PathBuf {
    dir.join(format!("replay-{}.journal", hex::encode(key_id)))
}

/// Deletes the journal of a key that is not loaded, e.g. one retired while
/// the node was down. A missing journal is not an error.
///
/// Fails with [`io::ErrorKind::ResourceBusy`] if a cache (in this or another
/// process) has the journal open: retire that cache with
/// [`ReplayCache::discard`](super::ReplayCache::discard) instead.
pub fn discard_journal(dir: impl AsRef<Path>, key_id: &[u8; 16]) -> io::Result<()> {
    let dir = dir.as_ref();
    let path = journal_path(dir, key_id);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "replay journal {} is in use by a running cache; discard that cache instead",
                    path.display()
                ),
            ));
        }
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {}
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // Removed while still locked, so no cache can open it in between.
    fs::remove_file(&path)?;
    drop(file);
    sync_dir(dir)
}

/// An open, locked journal and the records not yet durable in it.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    /// `None` once discarded.
    file: Option<File>,
    /// Bytes of the file known to hold the header and whole, synced records.
    /// Every write starts here, so a write that failed half-way is
    /// overwritten, not followed, by the retry.
    durable_len: u64,
    /// Encoded records handed to the journal but not yet durable. Kept across
    /// a failed sync so the next sync retries them.
    unwritten: Vec<u8>,
}

impl Journal {
    /// Opens (creating if needed) and locks the journal of `key_id` in `dir`,
    /// validates its header and cuts away a torn trailing record.
    ///
    /// Returns the journal, positioned for [`load`](Self::load), and the
    /// number of whole records it holds.
    pub(super) fn open(dir: &Path, key_id: &[u8; 16]) -> Result<(Journal, u64), ReplayError> {
        fs::create_dir_all(dir).map_err(|source| ReplayError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = journal_path(dir, key_id);
        let io_err = |action: &'static str| {
            let path = path.clone();
            move |source| ReplayError::Io {
                path,
                action,
                source,
            }
        };

        let (mut file, created) = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => (file, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // `create_new` so that two instances starting at once cannot
                // both create (and one silently replace) the journal; the
                // loser fails on the lock below or on this call.
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err("create"))?;
                (file, true)
            }
            Err(e) => return Err(io_err("open")(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(ReplayError::Locked { path }),
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                warn!(path = %path.display(), "file locking unsupported here; make sure only one node uses this journal");
            }
            Err(TryLockError::Error(e)) => return Err(io_err("lock")(e)),
        }

        let legacy_header = header(&MAGIC_V01, key_id);
        let header = header(&MAGIC, key_id);
        let len = file.metadata().map_err(io_err("stat"))?.len();
        if len < HEADER_LEN as u64 {
            // Records are appended only after the header is synced, so a file
            // this short that starts like our header never held records: a
            // crash interrupted its creation. The same holds for a version-01
            // header, which is then completed as the current version.
            // Anything else is damage.
            let mut head = Vec::with_capacity(HEADER_LEN);
            (&mut file)
                .take(HEADER_LEN as u64)
                .read_to_end(&mut head)
                .map_err(io_err("read"))?;
            if !header.starts_with(&head) && !legacy_header.starts_with(&head) {
                return Err(ReplayError::TruncatedHeader {
                    path,
                    len,
                    header_len: HEADER_LEN,
                });
            }
            if !created {
                warn!(path = %path.display(), len, "replay journal creation was interrupted; completing it");
            }
            file.set_len(0).map_err(io_err("truncate"))?;
            file.seek(SeekFrom::Start(0)).map_err(io_err("write"))?;
            file.write_all(&header).map_err(io_err("write"))?;
            file.sync_all().map_err(io_err("sync"))?;
            // The directory entry must be durable too, or a crash could lose
            // the whole journal (and with it every remembered tag).
            sync_dir(dir).map_err(io_err("sync the directory holding"))?;
            let journal = Journal::new(path, file, HEADER_LEN as u64);
            return Ok((journal, 0));
        }

        let mut found = [0u8; HEADER_LEN];
        file.read_exact(&mut found).map_err(io_err("read"))?;
        if found[..6] == MAGIC_PREFIX && found[..8] != MAGIC {
            return Err(ReplayError::UnsupportedVersion {
                path,
                found: found[6..8].escape_ascii().to_string(),
                supported: MAGIC[6..].escape_ascii().to_string(),
            });
        }
        if found[..8] != MAGIC {
            return Err(ReplayError::BadMagic {
                path,
                found: hex::encode(&found[..8]),
            });
        }
        if found[8..] != header[8..] {
            return Err(ReplayError::WrongKey {
                path,
                expected: hex::encode(&header[8..]),
                found: hex::encode(&found[8..]),
            });
        }

        let body = len - HEADER_LEN as u64;
        let records = body / RECORD_LEN as u64;
        let torn = body % RECORD_LEN as u64;
        let durable_len = HEADER_LEN as u64 + records * RECORD_LEN as u64;
        if torn != 0 {
            warn!(
                path = %path.display(),
                torn_bytes = torn,
                "replay journal ends in a partial record (a crash during a write); cutting it away"
            );
            file.set_len(durable_len).map_err(io_err("truncate"))?;
            file.sync_all().map_err(io_err("sync"))?;
        }
        Ok((Journal::new(path, file, durable_len), records))
    }

    fn new(path: PathBuf, file: File, durable_len: u64) -> Journal {
        Journal {
            path,
            file: Some(file),
            durable_len,
            unwritten: Vec::new(),
        }
    }

    /// Reads the `records` records that [`open`](Self::open) counted, in big
    /// chunks, handing each fingerprint to `each`.
    pub(super) fn load(
        &mut self,
        records: u64,
        mut each: impl FnMut(Fingerprint),
    ) -> Result<(), ReplayError> {
        let io_err = |source| ReplayError::Io {
            path: self.path.clone(),
            action: "read",
            source,
        };
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(HEADER_LEN as u64))
            .map_err(io_err)?;
        let mut left = records.saturating_mul(RECORD_LEN as u64);
        let mut buf = vec![0u8; READ_CHUNK];
        while left > 0 {
            let n = usize::try_from(left).map_or(READ_CHUNK, |left| left.min(READ_CHUNK));
            let chunk = &mut buf[..n];
            file.read_exact(chunk).map_err(io_err)?;
            for record in chunk.chunks_exact(RECORD_LEN) {
                let mut bytes = [0u8; RECORD_LEN];
                bytes.copy_from_slice(record);
                each(Fingerprint::from_le_bytes(bytes));
            }
            left -= n as u64;
        }
        Ok(())
    }

    /// The path of the journal file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `fingerprints` for the next [`flush`](Self::flush).
    pub(super) fn stage(&mut self, fingerprints: &[Fingerprint]) {
        self.unwritten.reserve(fingerprints.len() * RECORD_LEN);
        for fp in fingerprints {
            self.unwritten.extend_from_slice(&fp.to_le_bytes());
        }
    }

    /// Writes the queued records and waits until they are on disk
    /// (`fdatasync`). Returns how many records became durable.
    ///
    /// On failure the records stay queued and the next call rewrites them
    /// from the last durable offset: after a failed `fsync` the kernel may
    /// have dropped the dirty pages, so retrying only the `fsync` would not
    /// be enough.
    pub(super) fn flush(&mut self) -> io::Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        if self.unwritten.is_empty() {
            shrink_after_burst(&mut self.unwritten, 0);
            return Ok(0);
        }
        file.seek(SeekFrom::Start(self.durable_len))?;
        file.write_all(&self.unwritten)?;
        file.sync_data()?;
        let bytes = self.unwritten.len();
        self.durable_len += bytes as u64;
        self.unwritten.clear();
        shrink_after_burst(&mut self.unwritten, bytes);
        Ok(bytes / RECORD_LEN)
    }

    /// Whether the journal was discarded.
    pub(super) fn is_discarded(&self) -> bool {
        self.file.is_none()
    }

    /// Deletes the journal file and forgets queued records.
    pub(super) fn discard(&mut self) -> io::Result<()> {
        self.unwritten = Vec::new();
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        // Removed while still locked, so no other cache can open it between.
        fs::remove_file(&self.path)?;
        drop(file);
        match self.path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }
}

/// Gives back most of `buf`'s capacity if it is far above what the last
/// batch (`last_len` items) needed, so a one-off burst does not pin memory
/// for the rest of the epoch, while steady traffic keeps reusing the buffer.
pub(super) fn shrink_after_burst<T>(buf: &mut Vec<T>, last_len: usize) {
    let keep = 2 * last_len.max(512);
    if buf.capacity() > 2 * keep {
        buf.shrink_to(keep);
    }
}

/// The header a journal of `key_id` in the format of `magic` starts with.
fn header(magic: &[u8; 8], key_id: &[u8; 16]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(magic);
    header[8..].copy_from_slice(&key_id[..8]);
    header
}

/// Makes creations and deletions in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened as files here; the OS orders metadata itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [7; 16];

    #[test]
    fn new_journal_has_header_only() {
        let dir = tempfile::tempdir().unwrap();
        let (_journal, records) = Journal::open(dir.path(), &KEY).unwrap();
        assert_eq!(records, 0);
        let bytes = fs::read(journal_path(dir.path(), &KEY)).unwrap();
        assert_eq!(bytes, header(&MAGIC, &KEY));
        assert_eq!(&bytes[..8], b"BNRPLY02");
    }

    #[test]
    fn flush_appends_records_and_load_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), &KEY).unwrap();
        let high = 0xfedc_ba98_7654_3210_u128 << 64;
        journal.stage(&[1, high | 2]);
        journal.stage(&[u128::MAX]);
        assert_eq!(journal.flush().unwrap(), 3);
        assert_eq!(journal.flush().unwrap(), 0);
        drop(journal);

        let (mut journal, records) = Journal::open(dir.path(), &KEY).unwrap();
        assert_eq!(records, 3);
        let mut seen = Vec::new();
        journal.load(records, |fp| seen.push(fp)).unwrap();
        assert_eq!(seen, [1, high | 2, u128::MAX]);
    }

    #[test]
    fn records_are_sixteen_bytes_little_endian() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), &KEY).unwrap();
        let first: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
        journal.stage(&[u128::from_le_bytes(first)]);
        assert_eq!(journal.flush().unwrap(), 1);
        let bytes = fs::read(journal_path(dir.path(), &KEY)).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 16);
        assert_eq!(bytes[HEADER_LEN..], first);
    }

    #[test]
    fn version_01_journal_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), &KEY);
        // 0, 2 (which would read as one 16-byte record) and 3 old records.
        for records in [0, 2, 3] {
            let mut old = header(&MAGIC_V01, &KEY).to_vec();
            for i in 0..records {
                old.extend_from_slice(&u64::to_le_bytes(i + 1));
            }
            fs::write(&path, &old).unwrap();
            let err = Journal::open(dir.path(), &KEY).unwrap_err();
            let ReplayError::UnsupportedVersion {
                found, supported, ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!((found.as_str(), supported.as_str()), ("01", "02"));
            let message = err.to_string();
            assert!(message.contains("format version 01"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert_eq!(fs::read(&path).unwrap(), old, "{records} records");
        }
    }

    #[test]
    fn unknown_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), &KEY);
        fs::write(&path, header(b"BNRPLY99", &KEY)).unwrap();
        let err = Journal::open(dir.path(), &KEY).unwrap_err();
        assert!(
            matches!(&err, ReplayError::UnsupportedVersion { found, .. } if found == "99"),
            "{err:?}"
        );
        fs::write(&path, header(b"BNRPLY\xff\x00", &KEY)).unwrap();
        let err = Journal::open(dir.path(), &KEY).unwrap_err();
        assert!(
            matches!(&err, ReplayError::UnsupportedVersion { found, .. } if found == "\\xff\\x00"),
            "{err:?}"
        );
    }

    #[test]
    fn load_spans_several_read_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), &KEY).unwrap();
        let n = (READ_CHUNK / RECORD_LEN) as u64 * 2 + 3;
        // Distinct in both halves, so a misplaced half would show.
        let fps: Vec<u128> = (0..n)
            .map(|i| (u128::from(!i) << 64) | u128::from(i))
            .collect();
        journal.stage(&fps);
        journal.flush().unwrap();
        drop(journal);

        let (mut journal, records) = Journal::open(dir.path(), &KEY).unwrap();
        assert_eq!(records, n);
        let mut next = 0;
        journal
            .load(records, |fp| {
                assert_eq!(fp, fps[next as usize]);
                next += 1;
            })
            .unwrap();
        assert_eq!(next, n);
    }

    #[test]
    fn interrupted_creation_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), &KEY);
        for magic in [&MAGIC, &MAGIC_V01] {
            for prefix in [0, 3, 8, 15] {
                fs::write(&path, &header(magic, &KEY)[..prefix]).unwrap();
                let (_journal, records) = Journal::open(dir.path(), &KEY).unwrap();
                assert_eq!(records, 0);
                // Never held records, so even a version-01 start is
                // completed in the current format.
                assert_eq!(fs::read(&path).unwrap(), header(&MAGIC, &KEY));
            }
        }
    }

    #[test]
    fn buffers_shrink_only_after_a_burst() {
        let mut buf: Vec<u64> = Vec::with_capacity(100_000);
        shrink_after_burst(&mut buf, 90_000);
        assert_eq!(buf.capacity(), 100_000, "steady traffic keeps its buffer");
        shrink_after_burst(&mut buf, 10);
        assert!(buf.capacity() < 4096, "{}", buf.capacity());
    }

    #[test]
    fn second_open_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path(), &KEY).unwrap();
        let err = Journal::open(dir.path(), &KEY).unwrap_err();
        assert!(matches!(err, ReplayError::Locked { .. }), "{err}");
        let err = discard_journal(dir.path(), &KEY).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
        drop(journal);
        Journal::open(dir.path(), &KEY).unwrap();
    }
}
