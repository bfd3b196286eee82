//! [`HttpError`]: why a GET failed, sorted out of hyper's error chains.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use http_body_util::LengthLimitError;

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, writing or reading failed (refused, reset, unreachable,
    /// connect timeout, ...).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// No complete response within the time limit.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// The response is not HTTP/1.x as we read it (bad status line or
    /// headers, bad chunked coding, too many or too long headers, closed
    /// before its end).
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    /// The response body exceeds the size limit.
    #[error("HTTP response larger than {0} bytes")]
    TooLarge(usize),
    /// The request could not be formed (a path that is not a URI path).
    #[error("cannot request {0:?}: not a valid path")]
    BadRequest(String),
}

impl HttpError {
    /// Sorts out an error from sending the request or reading the head.
    pub(super) fn from_client(error: hyper_util::client::legacy::Error) -> Self {
        // The outer error only says which step failed; its causes say why.
        match error.source() {
            Some(cause) => classify(cause),
            None => HttpError::Io(io::Error::other(error.to_string())),
        }
    }

    /// Sorts out an error from reading a body capped at `max_bytes`.
    pub(super) fn from_body(error: &(dyn StdError + 'static), max_bytes: usize) -> Self {
        if error.is::<LengthLimitError>() {
            return HttpError::TooLarge(max_bytes);
        }
        classify(error)
    }
}

/// Malformed if hyper or the body decoder says the bytes are wrong, else an
/// I/O error of the innermost kind, with the whole chain as its message.
fn classify(error: &(dyn StdError + 'static)) -> HttpError {
    let mut hyper_error = None;
    let mut io_kind = None;
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            hyper_error.get_or_insert(h);
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            io_kind = Some(io.kind());
        }
        let part = e.to_string();
        // Wrappers often repeat their cause's text.
        if !text.ends_with(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = e.source();
    }
    let malformed = hyper_error.is_some_and(|h| {
        h.is_parse() || h.is_parse_status() || h.is_parse_too_large() || h.is_incomplete_message()
    }) || matches!(
        io_kind,
        Some(io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof)
    );
    if malformed {
        HttpError::Malformed(text)
    } else {
        HttpError::Io(io::Error::new(
            io_kind.unwrap_or(io::ErrorKind::Other),
            text,
        ))
    }
}
