//! The append-only journal that makes a replay filter survive restarts.
//!
//! Format of `DIR/replay-<hex key_id>.journal` (version 03):
//!
//! ```text
//! offset 0   8 bytes   magic "BNRPLY03" ("BNRPLY" + 2-digit format version)
//! offset 8   16 bytes  the key id (refuses swapped files)
//! then blocks, one per sync:
//!   +0   4 bytes   record count n (≥ 1), little-endian
//!   +4   8 bytes   number of records before this block, little-endian
//!   +12  4 bytes   header check: BLAKE3 (derive-key mode, context
//!                  "betanet replay journal block v03") of the key id and
//!                  bytes +0..+12, first 4 bytes
//!   +16  8 bytes   checksum: the same hash over the key id, bytes +0..+12
//!                  and the records, first 8 bytes
//!   +24  n × 8 bytes  records: the first 8 bytes of each accepted τ
//! ```
//!
//! Records are the tags the filter accepted, in the order it accepted them,
//! so inserting them again rebuilds the same filter.
//!
//! # Damage
//!
//! Every block is checked when loading: its header check, its position (the
//! records-before field must match), its checksum. A sync writes one block
//! and waits for `fdatasync` before the tags count as accepted, so a crash
//! can only damage the *last* block, which was never acknowledged: a last
//! block whose (valid) header promises more bytes than the file has, whose
//! records fail their checksum, or which is all zeros to the end of the
//! file, is cut away with a warning. Any other damage refuses the journal
//! ([`ReplayError::Corrupt`]): loading around it would forget tags that were
//! accepted, and reopen their replays.
//!
//! Versions 01 and 02 (unchecksummed 8- and 16-byte records for the old
//! exact cache) are refused ([`ReplayError::UnsupportedVersion`]).
//!
//! The file is created with mode 0600 (an existing one is set to 0600) and
//! locked while a cache has it open, so two node instances cannot
//! interleave blocks in one journal.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::error::ReplayError;
use super::fingerprint::{KEY_LEN, TagKey};

/// First 8 bytes of every journal: [`MAGIC_PREFIX`] and the format version.
pub(super) const MAGIC: [u8; 8] = *b"BNRPLY03";
/// The part of the magic shared by every format version.
const MAGIC_PREFIX: [u8; 6] = *b"BNRPLY";
/// Magic plus key id.
pub(super) const HEADER_LEN: usize = 24;
/// Count, records before, header check, checksum.
pub(super) const BLOCK_HEADER_LEN: usize = 24;
/// One record: the first 8 bytes of `τ`.
pub(super) const RECORD_LEN: usize = KEY_LEN;
/// BLAKE3 derive-key context of block checksums.
const CHECKSUM_CONTEXT: &str = "betanet replay journal block v03";
/// Mode of journal files: the tags say which packets this node handled.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;
/// Mode the data directory is kept at.
#[cfg(unix)]
pub(super) const DIR_MODE: u32 = 0o700;
/// Loading reads through a buffer this large.
const READ_BUFFER: usize = 1 << 20;

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

/// Whether a journal must already exist (its key was in use) or may be
/// created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// A new key: the journal is created (an existing one is loaded).
    Create,
    /// A key that may have accepted packets: a missing, empty or headless
    /// journal is refused, since starting empty would reopen its replays.
    MustExist,
}

/// An open, locked journal and the records not yet durable in it.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    key_id: [u8; 16],
    /// `None` once discarded.
    file: Option<File>,
    /// Bytes of the file known to hold the header and whole, synced blocks.
    /// Every write starts here, so a write that failed half-way is
    /// overwritten, not followed, by the retry.
    durable_len: u64,
    /// Records in the durable blocks.
    durable_records: u64,
    /// Encoded records handed to the journal but not yet durable. Kept across
    /// a failed sync so the next sync retries them.
    unwritten: Vec<u8>,
}

impl Journal {
    /// Opens (creating if `mode` allows) and locks the journal of `key_id`
    /// in `dir`, and checks its header. `dir` is created with mode 0700, or
    /// set to it.
    pub(super) fn open(
        dir: &Path,
        key_id: &[u8; 16],
        mode: OpenMode,
    ) -> Result<Journal, ReplayError> {
        prepare_dir(dir)?;
        let path = journal_path(dir, key_id);
        let io_err = |action: &'static str| io_error(&path, action);

        let (mut file, created) = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => (file, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound && mode == OpenMode::MustExist => {
                return Err(ReplayError::Missing { path });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // `create_new` so that two instances starting at once cannot
                // both create (and one silently replace) the journal.
                let mut options = OpenOptions::new();
                options.read(true).write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
                (options.open(&path).map_err(io_err("create"))?, true)
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
        restrict_file(&file, &path)?;

        let header = header(key_id);
        let len = file.metadata().map_err(io_err("stat"))?.len();
        if len < HEADER_LEN as u64 {
            // Blocks are appended only after the header is synced, so a
            // short file that starts like our header never held records: a
            // crash interrupted its creation. For a key that may have been
            // in use that cannot be told from a truncated journal, so only a
            // new key's journal is completed.
            let mut head = Vec::with_capacity(HEADER_LEN);
            (&mut file)
                .take(HEADER_LEN as u64)
                .read_to_end(&mut head)
                .map_err(io_err("read"))?;
            if mode == OpenMode::MustExist || !header.starts_with(&head) {
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
            return Ok(Journal::new(path, *key_id, file, HEADER_LEN as u64));
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
        Ok(Journal::new(path, *key_id, file, HEADER_LEN as u64))
    }

    fn new(path: PathBuf, key_id: [u8; 16], file: File, durable_len: u64) -> Journal {
        Journal {
            path,
            key_id,
            file: Some(file),
            durable_len,
            durable_records: 0,
            unwritten: Vec::new(),
        }
    }

    /// Reads every block after the header, checking each, and hands each
    /// record to `each`, in order. Cuts away a torn last block. Returns the
    /// number of records.
    pub(super) fn load(&mut self, mut each: impl FnMut(TagKey)) -> Result<u64, ReplayError> {
        let path = self.path.clone();
        let io_err = |action: &'static str| io_error(&path, action);
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let len = file.metadata().map_err(io_err("stat"))?.len();
        file.seek(SeekFrom::Start(HEADER_LEN as u64))
            .map_err(io_err("read"))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, &*file);
        let mut at = HEADER_LEN as u64;
        let mut records = 0u64;
        let mut payload = Vec::new();
        let torn = loop {
            let left = len - at;
            if left == 0 {
                break None;
            }
            let corrupt = |reason: String| ReplayError::Corrupt {
                path: path.clone(),
                offset: at,
                reason,
            };
            if left < BLOCK_HEADER_LEN as u64 {
                break Some("an incomplete block header");
            }
            let mut head = [0u8; BLOCK_HEADER_LEN];
            reader.read_exact(&mut head).map_err(io_err("read"))?;
            let count = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
            let before = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
            let body = u64::from(count) * RECORD_LEN as u64;
            let is_last = left <= BLOCK_HEADER_LEN as u64 + body;
            if head.iter().all(|&b| b == 0) && rest_is_zero(&mut reader)? {
                break Some("zeros where a block should start");
            }
            if checksum(&self.key_id, &head[..12], &[])[..4] != head[12..16] {
                return Err(corrupt("a block header fails its check".to_owned()));
            }
            if count == 0 || before != records {
                return Err(corrupt(format!(
                    "a block header says {count} records after {before}, but {records} records \
                     precede it"
                )));
            }
            if left < BLOCK_HEADER_LEN as u64 + body {
                break Some("an incomplete block");
            }
            payload.resize(body as usize, 0);
            reader.read_exact(&mut payload).map_err(io_err("read"))?;
            if checksum(&self.key_id, &head[..12], &payload) != head[16..24] {
                if is_last {
                    break Some("a last block that fails its checksum");
                }
                return Err(corrupt("a block fails its checksum".to_owned()));
            }
            for record in payload.chunks_exact(RECORD_LEN) {
                each(TagKey(u64::from_le_bytes(
                    record.try_into().expect("8 bytes"),
                )));
            }
            records += u64::from(count);
            at += BLOCK_HEADER_LEN as u64 + body;
        };
        drop(reader);
        if let Some(what) = torn {
            warn!(
                path = %self.path.display(),
                offset = at,
                cut_bytes = len - at,
                "replay journal ends in {what} (a crash during a sync, before it was \
                 acknowledged); cutting it away"
            );
            file.set_len(at).map_err(io_err("truncate"))?;
            file.sync_all().map_err(io_err("sync"))?;
        }
        self.durable_len = at;
        self.durable_records = records;
        Ok(records)
    }

    /// The path of the journal file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `keys` for the next [`flush`](Self::flush).
    pub(super) fn stage(&mut self, keys: &[TagKey]) {
        if keys.is_empty() {
            return;
        }
        // Keys may arrive in several calls before one flush; the block
        // header is written by `flush`.
        self.unwritten.reserve(keys.len() * RECORD_LEN);
        for key in keys {
            self.unwritten.extend_from_slice(&key.0.to_le_bytes());
        }
    }

    /// Records waiting for the next [`flush`](Self::flush).
    pub(super) fn unwritten(&self) -> usize {
        self.unwritten.len() / RECORD_LEN
    }

    /// Writes the queued records as one block and waits until it is on
    /// disk (`fdatasync`). Returns how many records became durable.
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
        let records = self.unwritten.len() / RECORD_LEN;
        // A block holds at most u32::MAX records; a backlog that large
        // (hours of failed syncs at line rate) is written as several.
        let mut written = 0;
        let mut block = Vec::new();
        for chunk in self.unwritten.chunks(u32::MAX as usize * RECORD_LEN) {
            let count = (chunk.len() / RECORD_LEN) as u32;
            let mut head = [0u8; BLOCK_HEADER_LEN];
            head[..4].copy_from_slice(&count.to_le_bytes());
            head[4..12].copy_from_slice(&(self.durable_records + written).to_le_bytes());
            let check = checksum(&self.key_id, &head[..12], &[]);
            head[12..16].copy_from_slice(&check[..4]);
            let sum = checksum(&self.key_id, &head[..12], chunk);
            head[16..].copy_from_slice(&sum);
            block.extend_from_slice(&head);
            block.extend_from_slice(chunk);
            written += u64::from(count);
        }
        file.seek(SeekFrom::Start(self.durable_len))?;
        file.write_all(&block)?;
        file.sync_data()?;
        self.durable_len += block.len() as u64;
        self.durable_records += written;
        let bytes = self.unwritten.len();
        self.unwritten.clear();
        shrink_after_burst(&mut self.unwritten, bytes);
        Ok(records)
    }

    /// Records in the journal's durable blocks.
    #[cfg(test)]
    pub(super) fn durable_records(&self) -> u64 {
        self.durable_records
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

/// Whether everything `reader` has left is zero bytes (a crash that
/// extended the file but did not write the data).
fn rest_is_zero(reader: &mut impl Read) -> Result<bool, ReplayError> {
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) if buf[..n].iter().any(|&b| b != 0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Unreadable: not provably zero, so reported as damage.
            Err(_) => return Ok(false),
        }
    }
}

/// The checksum of a block's header fields and `records` (none for the
/// header check), bound to the key.
fn checksum(key_id: &[u8; 16], head: &[u8], records: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    hasher.update(key_id);
    hasher.update(head);
    hasher.update(records);
    let mut out = [0u8; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

/// Creates `dir` (mode 0700) or restricts it to 0700.
fn prepare_dir(dir: &Path) -> Result<(), ReplayError> {
    let create_err = |source| ReplayError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir).map_err(create_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir).map_err(create_err)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(|source| {
                ReplayError::Permissions {
                    path: dir.to_path_buf(),
                    mode: mode & 0o7777,
                    wanted: DIR_MODE,
                    source,
                }
            })?;
            warn!(dir = %dir.display(), old_mode = format!("{:o}", mode & 0o7777), "replay data directory was readable by others; set to 0700");
        }
    }
    Ok(())
}

/// Maps an I/O error of `action` on the journal at `path` to a
/// [`ReplayError::Io`] naming both.
fn io_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> ReplayError + 'a {
    move |source| ReplayError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Sets an open journal to mode 0600 if others could read it.
fn restrict_file(file: &File, path: &Path) -> Result<(), ReplayError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(io_error(path, "stat"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
                .map_err(|source| ReplayError::Permissions {
                    path: path.to_path_buf(),
                    mode: mode & 0o7777,
                    wanted: FILE_MODE,
                    source,
                })?;
            warn!(path = %path.display(), old_mode = format!("{:o}", mode & 0o7777), "replay journal was readable by others; set to 0600");
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
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

/// The header a journal of `key_id` starts with.
fn header(key_id: &[u8; 16]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..].copy_from_slice(key_id);
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

    fn open(dir: &Path, mode: OpenMode) -> Result<(Journal, Vec<u64>), ReplayError> {
        let mut journal = Journal::open(dir, &KEY, mode)?;
        let mut seen = Vec::new();
        journal.load(|k| seen.push(k.0))?;
        Ok((journal, seen))
    }

    #[test]
    fn new_journal_has_header_only_and_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (_journal, records) = open(&data, OpenMode::Create).unwrap();
        assert!(records.is_empty());
        let bytes = fs::read(journal_path(&data, &KEY)).unwrap();
        assert_eq!(bytes, header(&KEY));
        assert_eq!(&bytes[..8], b"BNRPLY03");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data), 0o700);
            assert_eq!(mode(&journal_path(&data, &KEY)), 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn open_permissions_are_narrowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), OpenMode::Create).unwrap());
        let path = journal_path(dir.path(), &KEY);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        drop(open(dir.path(), OpenMode::MustExist).unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn flush_appends_checked_blocks_and_load_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = open(dir.path(), OpenMode::Create).unwrap();
        journal.stage(&[TagKey(1), TagKey(u64::MAX)]);
        journal.stage(&[TagKey(3)]);
        assert_eq!(journal.flush().unwrap(), 3);
        assert_eq!(journal.flush().unwrap(), 0);
        journal.stage(&[TagKey(4)]);
        assert_eq!(journal.flush().unwrap(), 1);
        drop(journal);
        let len = fs::metadata(journal_path(dir.path(), &KEY)).unwrap().len();
        assert_eq!(
            len,
            (HEADER_LEN + 2 * BLOCK_HEADER_LEN + 4 * RECORD_LEN) as u64
        );

        let (journal, seen) = open(dir.path(), OpenMode::MustExist).unwrap();
        assert_eq!(seen, [1, u64::MAX, 3, 4]);
        assert_eq!(journal.durable_records(), 4);
    }

    /// A journal with two blocks: records 1..=3, then 4.
    fn two_blocks(dir: &Path) -> Vec<u8> {
        let (mut journal, _) = open(dir, OpenMode::Create).unwrap();
        journal.stage(&[TagKey(1), TagKey(2), TagKey(3)]);
        journal.flush().unwrap();
        journal.stage(&[TagKey(4)]);
        journal.flush().unwrap();
        drop(journal);
        fs::read(journal_path(dir, &KEY)).unwrap()
    }

    #[test]
    fn a_torn_last_block_is_cut_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), &KEY);
        let good = two_blocks(dir.path());
        let first_end = HEADER_LEN + BLOCK_HEADER_LEN + 3 * RECORD_LEN;
        // Cut anywhere inside the last block; or its bytes flipped; or
        // zeros after the good blocks.
        let mut damaged: Vec<Vec<u8>> = (first_end + 1..good.len())
            .map(|end| good[..end].to_vec())
            .collect();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        damaged.push(flipped);
        let mut zeros = good[..first_end].to_vec();
        zeros.extend_from_slice(&[0; 100]);
        damaged.push(zeros);
        for bytes in damaged {
            fs::write(&path, &bytes).unwrap();
            let (_journal, seen) = open(dir.path(), OpenMode::MustExist).unwrap();
            assert_eq!(seen, [1, 2, 3], "{} bytes", bytes.len());
            assert_eq!(fs::read(&path).unwrap(), good[..first_end]);
        }
    }

    #[test]
    fn damage_before_the_last_block_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), &KEY);
        let good = two_blocks(dir.path());
        // Any byte of the first block (header or records) flipped.
        for at in HEADER_LEN..HEADER_LEN + BLOCK_HEADER_LEN + 3 * RECORD_LEN {
            let mut bytes = good.clone();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            let err = open(dir.path(), OpenMode::MustExist).unwrap_err();
            assert!(
                matches!(err, ReplayError::Corrupt { offset, .. } if offset == HEADER_LEN as u64),
                "byte {at}: {err:?}"
            );
            assert!(err.to_string().contains("damaged"), "{err}");
            assert_eq!(fs::read(&path).unwrap(), bytes, "left alone");
        }
    }

    #[test]
    fn a_key_in_use_needs_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), &KEY);
        let err = open(dir.path(), OpenMode::MustExist).unwrap_err();
        assert!(matches!(err, ReplayError::Missing { .. }), "{err:?}");
        assert!(!path.exists(), "not created");
        for len in [0, 5, HEADER_LEN - 1] {
            fs::write(&path, &header(&KEY)[..len]).unwrap();
            let err = open(dir.path(), OpenMode::MustExist).unwrap_err();
            assert!(
                matches!(err, ReplayError::TruncatedHeader { .. }),
                "{err:?}"
            );
            // A new key's interrupted creation is completed.
            let (_j, seen) = open(dir.path(), OpenMode::Create).unwrap();
            assert!(seen.is_empty());
            assert_eq!(fs::read(&path).unwrap(), header(&KEY));
        }
    }

    #[test]
    fn old_and_unknown_versions_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), &KEY);
        for (magic, found) in [
            (b"BNRPLY01", "01"),
            (b"BNRPLY02", "02"),
            (b"BNRPLY99", "99"),
        ] {
            let mut old = magic.to_vec();
            old.extend_from_slice(&[0x11; 40]);
            fs::write(&path, &old).unwrap();
            for mode in [OpenMode::Create, OpenMode::MustExist] {
                let err = Journal::open(dir.path(), &KEY, mode).unwrap_err();
                let ReplayError::UnsupportedVersion {
                    found: f,
                    supported,
                    ..
                } = &err
                else {
                    panic!("{err:?}");
                };
                assert_eq!((f.as_str(), supported.as_str()), (found, "03"));
                assert!(err.to_string().contains(&path.display().to_string()));
                assert_eq!(fs::read(&path).unwrap(), old);
            }
        }
    }

    #[test]
    fn another_keys_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), OpenMode::Create).unwrap());
        let other = journal_path(dir.path(), &[8; 16]);
        fs::rename(journal_path(dir.path(), &KEY), &other).unwrap();
        let err = Journal::open(dir.path(), &[8; 16], OpenMode::MustExist).unwrap_err();
        assert!(matches!(err, ReplayError::WrongKey { .. }), "{err:?}");
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
        let journal = Journal::open(dir.path(), &KEY, OpenMode::Create).unwrap();
        let err = Journal::open(dir.path(), &KEY, OpenMode::Create).unwrap_err();
        assert!(matches!(err, ReplayError::Locked { .. }), "{err}");
        let err = discard_journal(dir.path(), &KEY).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
        drop(journal);
        Journal::open(dir.path(), &KEY, OpenMode::MustExist).unwrap();
    }
}
