//! Limits of the HTTP endpoint.

use std::time::Duration;

use super::exposure::Exposure;

/// Timeouts and limits; the defaults suit a Prometheus scraper and a load
/// balancer's health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// A request's headers must arrive within this (slowloris defence).
    /// hyper starts this clock whenever it waits for a request head, so it
    /// also bounds how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is
    /// closed (e.g. a client that stops reading its response).
    pub idle_timeout: Duration,
    /// Connections served at once. When all are taken, the connection that
    /// has moved no byte for longest is closed to make room for a new one.
    pub max_connections: usize,
    /// Connections served at once from one source (an IPv4 address or an
    /// IPv6 /64); further ones are closed on accept, so one host cannot
    /// take every slot.
    pub max_connections_per_source: usize,
    /// The routes this listener answers.
    pub exposure: Exposure,
    /// On stop, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
    /// Largest request head accepted, in bytes (hyper answers 431 above).
    pub max_header_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_source: 16,
            exposure: Exposure::All,
            shutdown_grace: Duration::from_secs(2),
            max_header_bytes: 16 * 1024,
        }
    }
}
