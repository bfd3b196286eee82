//! The node's listening sockets, bound before the node starts so tests (and
//! operators using port 0) learn the real addresses first.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use super::error::NodeError;

/// Bound UDP and TCP listeners.
#[derive(Debug)]
pub struct Sockets {
    /// The UDP socket (also used to send).
    pub udp: Option<UdpSocket>,
    /// The TCP listener.
    pub tcp: Option<TcpListener>,
    /// The HTTP listener (`/metrics`, `/health`, …), if the node serves one.
    pub http: Option<TcpListener>,
}

impl Sockets {
    /// Binds UDP and/or TCP on `addr` (port 0 picks one; UDP and TCP then
    /// get the same port when it is free for both).
    pub fn bind(addr: SocketAddr, udp: bool, tcp: bool) -> Result<Self, NodeError> {
        let udp_socket = if udp {
            Some(UdpSocket::bind(addr).map_err(|source| NodeError::Bind {
                what: "UDP",
                addr,
                source,
            })?)
        } else {
            None
        };
        let tcp_addr = match (&udp_socket, addr.port()) {
            // Prefer the same port number for TCP as UDP got.
            (Some(s), 0) => s.local_addr().unwrap_or(addr),
            _ => addr,
        };
        let tcp_listener = if tcp {
            let bound = TcpListener::bind(tcp_addr).or_else(|_| TcpListener::bind(addr));
            Some(bound.map_err(|source| NodeError::Bind {
                what: "TCP",
                addr: tcp_addr,
                source,
            })?)
        } else {
            None
        };
        Ok(Sockets {
            udp: udp_socket,
            tcp: tcp_listener,
            http: None,
        })
    }

    /// Binds the HTTP listener on `addr`.
    pub fn bind_http(&mut self, addr: SocketAddr) -> Result<(), NodeError> {
        let listener = TcpListener::bind(addr).map_err(|source| NodeError::Bind {
            what: "HTTP",
            addr,
            source,
        })?;
        self.http = Some(listener);
        Ok(())
    }

    /// The UDP address, if bound.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The TCP address, if bound.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The HTTP address, if bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|s| s.local_addr().ok())
    }
}
