//! One secret key on disk: 32 bytes as 64 lower-case hex digits and a
//! newline, mode 0600.
//!
//! Hex rather than raw bytes so an operator can back a key up by copy-paste
//! and spot a truncated file; the mode is set when the file is created (not
//! with a later chmod) so the key is never readable by others, not even for
//! an instant.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::error::KeyError;

/// Permission bits of a key file.
pub(crate) const KEY_FILE_MODE: u32 = 0o600;

/// Length of a key in hex digits.
const HEX_LEN: usize = 64;

/// Longest file accepted: the key, "\r\n", and slack so that a file that is
/// slightly too long gets a clear "malformed" rather than "too long".
const MAX_FILE_LEN: usize = HEX_LEN + 16;

/// Creates `path` (refusing to replace anything) holding `secret`.
///
/// On failure the half-written file is removed, so a retry sees a clean
/// directory.
pub(crate) fn write_key_file(path: &Path, secret: &[u8; 32]) -> Result<(), KeyError> {
    let mut text = Zeroizing::new([0u8; HEX_LEN + 1]);
    // Cannot fail: the output buffer is exactly twice the input length.
    hex::encode_to_slice(secret, &mut text[..HEX_LEN]).map_err(|_| KeyError::Write {
        path: path.to_owned(),
        error: io::Error::other("hex encoding failed"),
    })?;
    text[HEX_LEN] = b'\n';

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEY_FILE_MODE)
        .open(path)
        .map_err(|error| match error.kind() {
            io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_owned(),
            },
            _ => KeyError::Write {
                path: path.to_owned(),
                error,
            },
        })?;
    // sync_all: the key must be on disk before node.json advertises it.
    let written = file.write_all(&text[..]).and_then(|()| file.sync_all());
    if let Err(error) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(KeyError::Write {
            path: path.to_owned(),
            error,
        });
    }
    Ok(())
}

/// Reads the key in `path`, refusing a file others could read.
pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let read_error = |error| KeyError::Read {
        path: path.to_owned(),
        error,
    };
    let mut file = File::open(path).map_err(read_error)?;
    // Check the opened file itself, not the path, so the file checked is the
    // file read.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }

    // A fixed stack buffer rather than a growing Vec: reallocation would
    // leave unzeroized copies of the key on the heap.
    let mut buf = Zeroizing::new([0u8; MAX_FILE_LEN]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(malformed(path, "the file is too long"));
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(read_error(error)),
        }
    }
    parse_key(&buf[..len]).map_err(|reason| malformed(path, reason))
}

/// Parses the content of a key file.
fn parse_key(content: &[u8]) -> Result<Zeroizing<[u8; 32]>, &'static str> {
    // One final line ending is allowed, LF or CRLF (an editor's save).
    let hex_digits = match content.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => content,
    };
    if hex_digits.len() != HEX_LEN {
        return Err("it does not hold exactly 64 hex digits");
    }
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_digits, &mut key[..]).map_err(|_| "it contains non-hex characters")?;
    // An all-zero key is what a zero-filled (crashed or truncated) disk block
    // looks like; no generated key is ever all zeros.
    if key.iter().all(|&b| b == 0) {
        return Err("the key is all zeros, which means the file was damaged");
    }
    Ok(key)
}

fn malformed(path: &Path, reason: &'static str) -> KeyError {
    KeyError::Malformed {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_what_write_produces() {
        let text = format!("{}\n", "ab".repeat(32));
        assert_eq!(*parse_key(text.as_bytes()).unwrap(), [0xab; 32]);
        let crlf = format!("{}\r\n", "AB".repeat(32));
        assert_eq!(*parse_key(crlf.as_bytes()).unwrap(), [0xab; 32]);
        assert_eq!(*parse_key("ab".repeat(32).as_bytes()).unwrap(), [0xab; 32]);
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            &b""[..],
            b"\n",
            b"abcd\n",
            "ab".repeat(33).as_bytes(),
            format!("{}zz\n", "ab".repeat(31)).as_bytes(),
            format!("{}\n", "00".repeat(32)).as_bytes(),
            format!(" {}\n", "ab".repeat(32)).as_bytes(),
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }
}
