//! An in-memory connection for the client, so a fuzzer can serve it any
//! bytes as a response without sockets ([`fuzz_response`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use super::{HttpError, Response, block_on, exchange};
use crate::topology::{DESCRIPTOR_PATH, MAX_DESCRIPTOR_BYTES};

/// Time limit of one [`fuzz_response`]: nothing in it waits on a clock,
/// so reaching it means the client hangs.
const FUZZ_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `bytes` as the raw response to a `GET /descriptor` made by the
/// client, with the caps of a descriptor fetch, over an in-memory pipe that
/// the "server" closes after the last byte. Returns what the client made of
/// it. For fuzzing: it must not panic, and it returns quickly, on any input.
#[doc(hidden)]
pub fn fuzz_response(bytes: &[u8]) -> Result<Response, HttpError> {
    let bytes = bytes.to_vec();
    block_on(async move {
        let (client_end, mut server_end) = tokio::io::duplex(64 << 10);
        let server = tokio::spawn(async move {
            // Answer once the request is in, as a server does (bytes before
            // it are a different case: hyper refuses them as unexpected).
            let _ = read_request_head(&mut server_end).await;
            // Errors only mean the client hung up early.
            let _ = server_end.write_all(&bytes).await;
            let _ = server_end.shutdown().await;
            // Keep reading (the request) until the client hangs up, so its
            // writes do not fail before it has read the response.
            let _ = tokio::io::copy(&mut server_end, &mut tokio::io::sink()).await;
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let connector = PipeConnector(Arc::new(Mutex::new(Some(client_end))));
        let result = exchange(
            connector,
            addr,
            DESCRIPTOR_PATH,
            None,
            FUZZ_TIMEOUT,
            MAX_DESCRIPTOR_BYTES,
        )
        .await;
        server.abort();
        result
    })?
}

/// Reads up to the end of a request head (or EOF), at most 64 KiB.
async fn read_request_head(stream: &mut DuplexStream) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// Hands out its one pipe end to the first connection attempt.
#[derive(Clone)]
struct PipeConnector(Arc<Mutex<Option<DuplexStream>>>);

impl tower_service::Service<Uri> for PipeConnector {
    type Response = TokioIo<Pipe>;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<TokioIo<Pipe>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let end = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        std::future::ready(
            end.map(|end| TokioIo::new(Pipe(end)))
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "pipe already used")),
        )
    }
}

/// A pipe end as a client connection.
struct Pipe(DuplexStream);

impl Connection for Pipe {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn well_formed_responses_are_read() {
        let got = fuzz_response(&ok("{\"a\":1}")).unwrap();
        assert_eq!((got.status, got.body.as_slice()), (200, &b"{\"a\":1}"[..]));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        let got = fuzz_response(chunked).unwrap();
        assert_eq!((got.status, got.body.as_slice()), (404, &b"abcde"[..]));
        // No length: the body ends when the server closes.
        let got = fuzz_response(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(got.body, b"all of it");
    }

    #[test]
    fn hostile_responses_are_errors() {
        let malformed = |bytes: &[u8]| {
            let error = fuzz_response(bytes).unwrap_err();
            assert!(matches!(error, HttpError::Malformed(_)), "{error:?}");
        };
        malformed(b"");
        malformed(b"SSH-2.0-OpenSSH\r\n\r\n");
        malformed(b"HTTP/1.1 abc\r\n\r\n");
        // The chunk size that overflowed the hand-written client.
        malformed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx");
        malformed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
        malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        malformed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
        malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
        // Headers without end.
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        while endless.len() < 100_000 {
            endless.extend_from_slice(b"X-A: b\r\n");
        }
        malformed(&endless);

        let too_large = |bytes: &[u8]| {
            let error = fuzz_response(bytes).unwrap_err();
            assert!(matches!(error, HttpError::TooLarge(_)), "{error:?}");
        };
        too_large(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\nabc");
        let mut body = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        body.resize(MAX_DESCRIPTOR_BYTES + 1000, b' ');
        too_large(&body);
    }
}
