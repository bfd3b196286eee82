//! The node's HTTP listeners: the public one on `node.http_addr` and, when
//! `node.metrics_addr` is set, a private one for `/metrics`, `/health`,
//! `/ready` and `/loops` (the public one then serves only `/descriptor` and
//! `/vrf/…`).
//!
//! They run on a runtime of their own: a crowd of HTTP clients never
//! competes with inbound TCP frames and egress queues for the I/O
//! runtime's single worker, and a slow scrape cannot delay a frame.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use super::error::NodeError;
use crate::http::{Exposure, HttpConfig, HttpServer, NodeStatus};

/// The running HTTP listeners and their runtime.
pub(super) struct HttpEndpoints {
    servers: Vec<HttpServer>,
    private_addr: Option<SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpEndpoints {
    /// Serves `status` on `public` (if bound) and on a private listener
    /// bound to `private` (if set).
    pub(super) fn start(
        public: Option<TcpListener>,
        private: Option<SocketAddr>,
        status: Arc<dyn NodeStatus>,
    ) -> Result<Self, NodeError> {
        let spawn_err = |source| NodeError::Spawn {
            what: "the HTTP server",
            source,
        };
        let private = match private {
            Some(addr) => Some(TcpListener::bind(addr).map_err(|source| NodeError::Bind {
                what: "HTTP (node.metrics_addr)",
                addr,
                source,
            })?),
            None => None,
        };
        let private_addr = private.as_ref().and_then(|l| l.local_addr().ok());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("betanet-http")
            .enable_all()
            .build()
            .map_err(spawn_err)?;
        let public_exposure = match private {
            Some(_) => Exposure::Public,
            None => Exposure::All,
        };
        let listeners = [(public, public_exposure), (private, Exposure::Private)];
        let mut servers = Vec::new();
        for (listener, exposure) in listeners {
            let Some(listener) = listener else { continue };
            let config = HttpConfig {
                exposure,
                ..HttpConfig::default()
            };
            let server = HttpServer::spawn(listener, Arc::clone(&status), config, runtime.handle())
                .map_err(spawn_err)?;
            servers.push(server);
        }
        Ok(HttpEndpoints {
            servers,
            private_addr,
            runtime: Some(runtime),
        })
    }

    /// The private listener's address (`node.metrics_addr` as bound).
    pub(super) fn private_addr(&self) -> Option<SocketAddr> {
        self.private_addr
    }

    /// Stops every listener (requests in flight get their grace period),
    /// then the runtime.
    pub(super) fn stop(&mut self) {
        for server in self.servers.drain(..) {
            server.stop();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for HttpEndpoints {
    fn drop(&mut self) {
        self.stop();
    }
}
