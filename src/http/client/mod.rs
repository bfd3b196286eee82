//! The HTTP client that reads other nodes' endpoints (`/descriptor`,
//! `/vrf/…`): hyper-util's client (`hyper_util::client::legacy::Client`
//! with its `HttpConnector`) on the hyper 1 the server already uses, driven
//! by a small current-thread tokio runtime owned by whoever fetches.
//!
//! # Why this crate
//!
//! Every peer is untrusted, so the HTTP/1.1 parsing (status line, headers,
//! chunked coding, content length) must be hardened and fuzzed; hyper's is
//! both, and it is already built for the server. hyper-util's client adds
//! the connector (connect timeout, `TCP_NODELAY`) and lets us plug in an
//! in-memory connection for the fuzzer ([`fuzz_response`]), so the fuzzer
//! runs exactly the production code. Being async, many peers are fetched
//! at once on one thread ([`block_on`] + a `JoinSet`), not a thread each.
//! A blocking client (`ureq`) would be simpler for one request, but would
//! need a thread per concurrent fetch and a second HTTP parser in the build.
//!
//! # Caps
//!
//! The server is not trusted: one request per connection (no pool, no
//! retries), one time limit for the whole exchange (connect, request,
//! head and body), at most [`MAX_HEAD_BYTES`] of status line and headers
//! and [`MAX_HEADERS`] headers, and a body read through
//! [`http_body_util::Limited`] with a hard byte cap ([`MAX_RESPONSE`], or
//! the caller's smaller one). Any response — garbage, a chunk size of
//! `ffffffffffffffff`, endless headers or body, a slow drip, an early
//! close, a wrong `Content-Length` — ends in an [`HttpError`], never a
//! panic, within the time limit.

mod error;
mod pipe;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::{Request, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

pub use error::HttpError;
#[doc(hidden)]
pub use pipe::fuzz_response;

/// Largest response body accepted by [`get`].
pub const MAX_RESPONSE: usize = 1 << 20;

/// Largest status line plus headers accepted (hyper's read buffer; its
/// floor is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 << 10;

/// Most headers accepted in a response.
pub const MAX_HEADERS: usize = 64;

/// Stand-in for "no time limit": a year (tokio's timers and the
/// connector handle anything up to that).
const FOREVER: Duration = Duration::from_secs(365 * 86_400);

/// A response: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// `GET path` from `addr`, all within `timeout`, accepting a body of at
/// most [`MAX_RESPONSE`] bytes.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, HttpError> {
    get_limited(addr, path, timeout, MAX_RESPONSE)
}

/// `GET path` from `addr`, all within `timeout`, failing with
/// [`HttpError::TooLarge`] once the body exceeds `max_bytes`. Blocks on a
/// runtime of its own (see [`block_on`]).
pub fn get_limited(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Response, HttpError> {
    block_on(get_async(addr, path, timeout, max_bytes))?
}

/// [`get_limited`] as a future, for callers already on a tokio runtime
/// with I/O and timers enabled (e.g. one from [`runtime`]).
pub async fn get_async(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Response, HttpError> {
    let timeout = timeout.min(FOREVER);
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(timeout));
    connector.set_nodelay(true);
    exchange(connector, addr, path, None, timeout, max_bytes).await
}

/// `POST path` with `body` (as `application/json`) to `addr`, with the
/// same caps and time limit as [`get_async`]: how nodes upload their
/// descriptors to the directory authorities.
pub async fn post_async(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Response, HttpError> {
    let timeout = timeout.min(FOREVER);
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(timeout));
    connector.set_nodelay(true);
    exchange(connector, addr, path, Some(body), timeout, max_bytes).await
}

/// A current-thread tokio runtime with I/O and timers: all the client
/// needs to run any number of fetches at once on the calling thread.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs `future` to completion on a fresh [`runtime`], for synchronous
/// callers. Called from inside another tokio runtime (where blocking on a
/// second one would panic), it runs on a helper thread instead.
pub fn block_on<F>(future: F) -> std::io::Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let run = move || Ok(runtime()?.block_on(future));
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("http-client".into())
            .spawn_scoped(scope, run)?
            .join()
            // A panic in `future` is re-raised where it would have been.
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// One GET (or, with a body, POST) over whatever `connector` connects to,
/// with the caps in the module docs. `addr` names the server in the
/// request (`Host`).
async fn exchange<C>(
    connector: C,
    addr: SocketAddr,
    path: &str,
    post: Option<Vec<u8>>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Response, HttpError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let uri: Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|_| HttpError::BadRequest(path.to_owned()))?;
    let builder = match &post {
        Some(_) => Request::post(uri).header(header::CONTENT_TYPE, "application/json"),
        None => Request::get(uri),
    };
    let request = builder
        .header(header::ACCEPT, "application/json")
        .header(header::CONNECTION, "close")
        .body(Full::new(Bytes::from(post.unwrap_or_default())))
        .map_err(|_| HttpError::BadRequest(path.to_owned()))?;
    let client = Client::builder(TokioExecutor::new())
        // One request per connection: nothing is kept for a hostile peer
        // to hold, and a failed request is not silently sent again.
        .pool_max_idle_per_host(0)
        .retry_canceled_requests(false)
        .http1_max_buf_size(MAX_HEAD_BYTES)
        .http1_max_headers(MAX_HEADERS)
        .build(connector);
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(HttpError::from_client)?;
        let status = response.status().as_u16();
        let body = response.into_body();
        // A declared length over the cap fails now, not after reading it.
        if body.size_hint().lower() > max_bytes as u64 {
            return Err(HttpError::TooLarge(max_bytes));
        }
        let body = Limited::new(body, max_bytes)
            .collect()
            .await
            .map_err(|e| HttpError::from_body(&*e, max_bytes))?
            .to_bytes()
            .to_vec();
        Ok(Response { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(HttpError::Timeout(timeout)))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn a_real_exchange_over_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
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

    #[test]
    fn refused_connections_are_io_errors() {
        // Bound, then closed: nothing listens there now.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = get(addr, "/", Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(&error, HttpError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn blocking_calls_work_inside_a_runtime() {
        // `block_on` moves to a helper thread instead of panicking.
        assert_eq!(block_on(async { 7 }).unwrap(), 7);
        let response = fuzz_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(response.status, 204);
    }
}
