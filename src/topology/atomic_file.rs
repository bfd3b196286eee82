//! Replacing a file so readers see the old content or the new, never half.
//!
//! The daemon may reload `topology.json` while an operator rebuilds it, and a
//! crash mid-write must not leave a truncated descriptor behind: write a
//! temporary file in the same directory, sync it, rename it over the target.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writers in one process.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Atomically replaces (or creates) `path` with `content`.
pub(crate) fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path)?;
    let result = write_and_rename(&tmp, path, content);
    if result.is_err() {
        // The temporary file is ours alone; never leave it lying around.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_and_rename(tmp: &Path, path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    // Best effort: makes the rename itself durable; not every filesystem
    // supports syncing a directory.
    if let Ok(dir) = File::open(parent_dir(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// `.NAME.tmp-PID-N` next to `path` (same directory, so rename is atomic).
fn tmp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    Ok(parent_dir(path).join(tmp_name))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1);
    }

    #[test]
    fn fails_cleanly_without_a_file_name() {
        assert!(write_atomically(Path::new("/"), b"x").is_err());
    }
}
