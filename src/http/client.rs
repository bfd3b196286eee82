//! A minimal blocking HTTP/1.1 GET over a `TcpStream`, enough to read a
//! node's `/descriptor` or `/vrf/…` JSON: the auditor, clients and the
//! descriptor refresher are synchronous, and a few small requests do not
//! justify an HTTP client dependency.
//!
//! One request per connection (`Connection: close`); the body ends at
//! `Content-Length`, at the end of a chunked body, or when the server closes.
//! Everything is bounded: one deadline for the whole exchange and at most
//! [`MAX_RESPONSE`] bytes (or the caller's smaller limit), since the server
//! is not trusted.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Largest response accepted (headers and body).
pub const MAX_RESPONSE: usize = 1 << 20;

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, writing or reading failed (including the timeout).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The response is not HTTP/1.x as we read it.
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// The response exceeds the size limit.
    #[error("HTTP response larger than {0} bytes")]
    TooLarge(usize),
}

/// A response: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// `GET path` from `addr`, all within `timeout`, accepting at most
/// [`MAX_RESPONSE`] bytes.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, HttpError> {
    get_limited(addr, path, timeout, MAX_RESPONSE)
}

/// `GET path` from `addr`, all within `timeout`, failing with
/// [`HttpError::TooLarge`] once more than `max_bytes` (headers and body)
/// have arrived.
pub fn get_limited(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Response, HttpError> {
    // A timeout too long to represent is as good as none: a year.
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_write_timeout(Some(left(deadline)?))?;
    // One write: `write!` on a raw stream would send each format piece as
    // its own segment.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(response) = parse(&data, false)? {
            return Ok(response);
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            // Closed: whatever arrived is the whole response.
            return parse(&data, true)?.ok_or(HttpError::Malformed("truncated response"));
        }
        data.extend_from_slice(&buf[..n]);
        if data.len() > max_bytes {
            return Err(HttpError::TooLarge(max_bytes));
        }
    }
}

fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "HTTP request timed out",
        ));
    }
    Ok(left)
}

/// Parses `data`; `closed` says no more bytes will come. `Ok(None)`: more
/// bytes are needed.
fn parse(data: &[u8], closed: bool) -> Result<Option<Response>, HttpError> {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&data[..end]).map_err(|_| HttpError::Malformed("head"))?;
    let body = &data[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().unwrap_or_default().starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("status line"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::Malformed("status code"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| HttpError::Malformed("content-length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        match dechunk(body)? {
            Some(body) => body,
            None if closed => return Err(HttpError::Malformed("truncated chunked body")),
            None => return Ok(None),
        }
    } else if let Some(length) = length {
        if body.len() < length {
            return if closed {
                Err(HttpError::Malformed("body shorter than content-length"))
            } else {
                Ok(None)
            };
        }
        body[..length].to_vec()
    } else if closed {
        body.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response { status, body }))
}

/// A chunked body's data, or `None` if the last chunk has not arrived.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
            .ok_or(HttpError::Malformed("chunk size"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_bodies() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx: y\r\n\r\nhello";
        let want = Response {
            status: 200,
            body: b"hello".to_vec(),
        };
        assert_eq!(parse(r, false).unwrap(), Some(want));
        assert_eq!(parse(&r[..r.len() - 1], false).unwrap(), None);
        assert!(parse(&r[..r.len() - 1], true).is_err());
    }

    #[test]
    fn chunked_and_close_delimited_bodies() {
        let r = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        let got = parse(r, false).unwrap().unwrap();
        assert_eq!((got.status, got.body.as_slice()), (404, &b"abcde"[..]));
        assert_eq!(parse(&r[..40], false).unwrap(), None);
        let r = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(parse(r, false).unwrap(), None);
        assert_eq!(parse(r, true).unwrap().unwrap().body, b"all of it");
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(parse(b"SSH-2.0\r\n\r\n", true).is_err());
        assert!(parse(b"HTTP/1.1 abc\r\n\r\n", true).is_err());
    }

    #[test]
    fn a_real_exchange_over_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // TCP may split the request: read up to the end of the head.
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert_ne!(n, 0, "client closed before the end of its request");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(req.starts_with(b"GET /vrf/current HTTP/1.1\r\n"));
            // Keeps the connection open: the client must stop at the length.
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        let got = get(addr, "/vrf/current", Duration::from_secs(5)).unwrap();
        assert_eq!((got.status, got.body.as_slice()), (200, &b"{}"[..]));
        server.join().unwrap();
    }
}
