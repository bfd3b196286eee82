//! Accept loop, per-connection limits and graceful stop.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::HttpConfig;
use super::exposure::Exposure;
use super::idle::{Activity, Tracked};
use super::status::NodeStatus;
use crate::shutdown::Shutdown;
use crate::transport::SourceClass;
use crate::transport::slots::{SlotPolicy, Slots};

/// Pause after a failed accept (say, out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How much longer than the grace period [`HttpServer::stop`] waits for the
/// server task before giving up on it.
const STOP_MARGIN: Duration = Duration::from_secs(1);

/// The HTTP endpoint running on a tokio runtime, started and stopped from
/// ordinary (non-async) code.
///
/// Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Shutdown,
    done: mpsc::Receiver<()>,
    wait_limit: Duration,
}

impl HttpServer {
    /// Serves `status` on `listener` (already bound, e.g. to the metrics
    /// port) as a task on `runtime`.
    pub fn spawn(
        listener: std::net::TcpListener,
        status: Arc<dyn NodeStatus>,
        config: HttpConfig,
        runtime: &Handle,
    ) -> io::Result<HttpServer> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let listener = {
            // Registering with the reactor needs the runtime's context.
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let stop = Shutdown::new();
        let stopped = stop.token();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let wait_limit = config.shutdown_grace + STOP_MARGIN;
        runtime.spawn(async move {
            // Dropped when the task ends, or when the runtime drops the task:
            // either way `stop` stops waiting.
            let _done = done_tx;
            serve(listener, status, config, stopped.cancelled_owned()).await;
        });
        Ok(HttpServer {
            local_addr,
            stop,
            done: done_rx,
            wait_limit,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, gives requests in flight the configured grace
    /// period, and returns once the server is gone (or, should the runtime
    /// be stuck, after the grace period plus a second). Blocks: call it
    /// from outside the runtime's worker threads.
    pub fn stop(self) {
        self.stop.trigger();
        let _ = self.done.recv_timeout(self.wait_limit);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// Serves `status` on `listener` until `shutdown` completes, then stops
/// accepting, lets connections finish within `config.shutdown_grace` and
/// drops whatever is left.
pub async fn serve(
    listener: TcpListener,
    status: Arc<dyn NodeStatus>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .keep_alive(true);
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    // Every client is a stranger here: no share is reserved, and when the
    // table is full the idlest connection makes way at once.
    let slots = Slots::new(SlotPolicy {
        per_source: config.max_connections_per_source,
        total: config.max_connections,
        reserved_for_members: 0,
        stranger_evictable_after: Duration::ZERO,
    });
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Reap finished connections so the set stays small.
                    while connections.try_join_next().is_some() {}
                    let now = std::time::Instant::now();
                    let admission = match slots.try_acquire(peer.ip(), SourceClass::Stranger, now) {
                        Ok(admission) => admission,
                        Err(refusal) => {
                            tracing::debug!(%peer, ?refusal, "no HTTP connection slot; closing");
                            continue;
                        }
                    };
                    if admission.evicted_another {
                        tracing::debug!(%peer, "HTTP connections full; closed the idlest");
                    }
                    connections.spawn(connection(
                        stream,
                        Activity::holding(Some(admission.permit)),
                        http.clone(),
                        Arc::clone(&status),
                        (config.idle_timeout, config.exposure),
                        stopping_rx.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }

    drop(listener);
    let _ = stopping_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::debug!(
            left = connections.len(),
            "HTTP connections still open after the grace period; closing them"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection until the client closes it, it idles out, it is
/// evicted to make room, or the server stops (after the response in
/// flight, if any).
async fn connection(
    stream: TcpStream,
    activity: Arc<Activity>,
    http: http1::Builder,
    status: Arc<dyn NodeStatus>,
    (idle_timeout, exposure): (Duration, Exposure),
    mut stopping: watch::Receiver<bool>,
) {
    // Responses are written whole; do not let Nagle hold back their tail.
    let _ = stream.set_nodelay(true);
    let evicted = activity.evicted();
    let io = TokioIo::new(Tracked::new(stream, Arc::clone(&activity)));
    let service = service_fn(move |request: Request<Incoming>| {
        let response = exposure.respond(request.method(), request.uri().path(), status.as_ref());
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let mut graceful = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    // Timeouts, resets and malformed requests: the client's
                    // problem, not an operator's.
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            // Err means the server is gone: stop just the same.
            _ = stopping.changed(), if !graceful => {
                // Closes an idle connection now, a busy one after its
                // current response.
                conn.as_mut().graceful_shutdown();
                graceful = true;
            }
            () = activity.idle_for(idle_timeout) => {
                tracing::debug!("HTTP connection idle; closing");
                return;
            }
            () = evicted.cancelled() => {
                tracing::debug!("HTTP connection evicted to make room; closing");
                return;
            }
        }
    }
}
