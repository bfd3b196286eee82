//! `betanet authority`: the I/O around [`AuthorityState`] — an HTTP/1.1
//! endpoint (tokio + hyper, as `src/http`) and a driver task that sleeps
//! until the state's next timeout on the injected [`WallClock`] and carries
//! out its actions (probes, fetches from the other authorities).
//!
//! # Endpoint
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /authority/descriptor` (a signed `node.json`, ≤ 64 KiB) | 200, or 400 with the reason |
//! | `GET /consensus` | the newest valid [`SignedConsensus`](super::SignedConsensus), or 404 before the first |
//! | `GET /authority/vote/{epoch}` | this authority's vote for that epoch, once frozen |
//! | `GET /authority/reveal/{epoch}` | its reveal and the peers' it holds (a JSON array), once the reveal phase began |
//! | `GET /authority/signature/{epoch}` | its signature on its consensus |
//! | `GET /health` | 200 `ok` |
//!
//! Caps: [`MAX_CONNECTIONS`] connections at once (further ones wait in the
//! kernel's backlog), 5 s to send a request head, 30 s per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::document::CONSENSUS_PATH;
use super::state::{Action, AuthorityState};
use super::vote::{MAX_SMALL_BYTES, MAX_VOTE_BYTES, SignedReveal, SignedVote};
use super::{AuthorityInfo, ConsensusSignature};
use crate::clock::WallClock;
use crate::http::client;
use crate::topology::{MAX_DESCRIPTOR_BYTES, NodeDescriptor};

/// Path nodes upload their descriptor to.
pub const UPLOAD_PATH: &str = "/authority/descriptor";
/// Most HTTP connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Time limit of one probe or peer fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest sleep before the clock is read again.
const RECHECK: Duration = Duration::from_millis(500);

type Shared = Arc<Mutex<AuthorityState>>;

fn lock(state: &Shared) -> MutexGuard<'_, AuthorityState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running authority: its endpoint and driver on a runtime of their own.
pub struct AuthorityDaemon {
    addr: SocketAddr,
    state: Shared,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuthorityDaemon {
    /// Starts serving on `listener` and driving `state` by `clock`, on a
    /// thread with its own tokio runtime.
    pub fn spawn(
        state: AuthorityState,
        listener: std::net::TcpListener,
        clock: Arc<dyn WallClock>,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(state));
        let stop = CancellationToken::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("authority")
            .enable_all()
            .build()?;
        let (s, c, t) = (Arc::clone(&state), clock, stop.clone());
        let thread = std::thread::Builder::new()
            .name("authority".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let wake = Arc::new(Notify::new());
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(error) => {
                            tracing::error!(%error, "authority listener unusable");
                            return;
                        }
                    };
                    let server = serve(
                        listener,
                        Arc::clone(&s),
                        Arc::clone(&c),
                        Arc::clone(&wake),
                        t.clone(),
                    );
                    let driver = drive(s, c, wake, t);
                    tokio::join!(server, driver);
                });
            })?;
        Ok(AuthorityDaemon {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Where the endpoint listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `f` on the state (for status lines and tests).
    pub fn with_state<R>(&self, f: impl FnOnce(&AuthorityState) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Stops the endpoint and the driver and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AuthorityDaemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sleeps until the state's next timeout (or an upload, or a clock jump),
/// advances it, and starts its actions.
async fn drive(
    state: Shared,
    clock: Arc<dyn WallClock>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let now = clock.unix_seconds();
        let (next, actions) = {
            let mut s = lock(&state);
            s.handle_timeout(now);
            let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
            (s.poll_timeout(), actions)
        };
        for action in actions {
            tasks.spawn(perform(Arc::clone(&state), action));
        }
        while tasks.try_join_next().is_some() {}
        let sleep = clock.until(next.max(now + 1)).min(RECHECK);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
        }
    }
    tasks.shutdown().await;
}

/// Carries out one action, feeding the results back.
async fn perform(state: Shared, action: Action) {
    match action {
        Action::Probe(nodes) => {
            let probes = nodes.into_iter().map(|(id, addr)| async move {
                let ok = client::get_async(addr, "/health", FETCH_TIMEOUT, 4096)
                    .await
                    .is_ok_and(|r| r.status == 200);
                (id, ok)
            });
            for (id, ok) in futures_join_all(probes).await {
                lock(&state).handle_probe(id, ok);
            }
        }
        Action::FetchVotes(epoch, peers) => {
            for (_, body) in
                fetch_from(peers, format!("/authority/vote/{epoch}"), MAX_VOTE_BYTES).await
            {
                if let Ok(vote) = SignedVote::from_json(&body) {
                    lock(&state).handle_vote(epoch, vote);
                }
            }
        }
        Action::FetchReveals(epoch, peers) => {
            let max = MAX_SMALL_BYTES * super::MAX_AUTHORITIES;
            for (_, body) in fetch_from(peers, format!("/authority/reveal/{epoch}"), max).await {
                // Ours and the ones it relays; at most one per authority.
                if let Ok(reveals) = serde_json::from_slice::<Vec<SignedReveal>>(&body) {
                    let mut s = lock(&state);
                    for reveal in reveals.into_iter().take(super::MAX_AUTHORITIES) {
                        s.handle_reveal(epoch, reveal);
                    }
                }
            }
        }
        Action::FetchSignatures(epoch, peers) => {
            for (_, body) in fetch_from(
                peers,
                format!("/authority/signature/{epoch}"),
                MAX_SMALL_BYTES,
            )
            .await
            {
                if let Ok(sig) = serde_json::from_slice::<ConsensusSignature>(&body) {
                    lock(&state).handle_signature(epoch, sig);
                }
            }
        }
    }
}

/// `GET path` from every peer at once; the 200 bodies.
async fn fetch_from(
    peers: Vec<AuthorityInfo>,
    path: String,
    max: usize,
) -> Vec<(AuthorityInfo, Vec<u8>)> {
    let fetches = peers.into_iter().map(|peer| {
        let path = path.clone();
        async move {
            match client::get_async(peer.addr, &path, FETCH_TIMEOUT, max).await {
                Ok(r) if r.status == 200 => Some((peer, r.body)),
                _ => None,
            }
        }
    });
    futures_join_all(fetches)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Runs futures concurrently (as tasks of a local set) and collects their
/// outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

async fn serve(
    listener: TcpListener,
    state: Shared,
    clock: Arc<dyn WallClock>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5))
        .max_buf_size(16 << 10)
        .keep_alive(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(error) => {
                    tracing::debug!(%error, "authority accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (state, clock, wake, http) = (
            Arc::clone(&state),
            Arc::clone(&clock),
            Arc::clone(&wake),
            http.clone(),
        );
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let (state, clock, wake) = (Arc::clone(&state), Arc::clone(&clock), Arc::clone(&wake));
                async move { Ok::<_, Infallible>(respond(request, &state, clock.as_ref(), &wake).await) }
            });
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
    connections.shutdown().await;
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn json_or_404<T: serde::Serialize>(
    value: Option<&T>,
    missing: &'static str,
) -> Response<Full<Bytes>> {
    match value.map(serde_json::to_vec) {
        Some(Ok(body)) => reply(StatusCode::OK, body),
        Some(Err(_)) => reply(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
        None => reply(StatusCode::NOT_FOUND, missing),
    }
}

async fn respond(
    request: Request<Incoming>,
    state: &Shared,
    clock: &dyn WallClock,
    wake: &Notify,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::POST && path == UPLOAD_PATH {
        let body = match Limited::new(request.into_body(), MAX_DESCRIPTOR_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "descriptor too large or body unreadable\n",
                );
            }
        };
        let descriptor = match NodeDescriptor::from_json(&body) {
            Ok(d) => d,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("not a node descriptor: {e}\n"),
                );
            }
        };
        let result = lock(state).handle_upload(clock.unix_seconds(), descriptor);
        wake.notify_one();
        return match result {
            Ok(()) => reply(StatusCode::OK, "accepted\n"),
            Err(e) => reply(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET, or POST to /authority/descriptor\n",
        );
    }
    let s = lock(state);
    if path == "/health" {
        return reply(StatusCode::OK, "ok\n");
    }
    if path == CONSENSUS_PATH {
        return json_or_404(s.current(), "no consensus yet\n");
    }
    let epoch_of = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|e| e.parse::<u64>().ok())
    };
    if let Some(e) = epoch_of("/authority/vote/") {
        return json_or_404(s.own_vote(e), "no vote for that epoch\n");
    }
    if let Some(e) = epoch_of("/authority/reveal/") {
        let reveals = s.reveals(e);
        return json_or_404(
            (!reveals.is_empty()).then_some(&reveals),
            "no reveal for that epoch\n",
        );
    }
    if let Some(e) = epoch_of("/authority/signature/") {
        return json_or_404(s.own_signature(e), "no signature for that epoch\n");
    }
    reply(StatusCode::NOT_FOUND, "not found\n")
}
