//! A client's encrypted link to entry nodes: one TCP connection and
//! anonymous session (Noise hybridNK against the entry's published link
//! key) per entry, opened on first use and again after a failure.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::link::RECORD_LEN;
use crate::link::blocking::open_session;
use crate::link::session::Sealer;
use crate::topology::NodeDescriptor;

/// Connect and handshake timeout.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Sessions kept open at most; a client talks to a few entries.
const MAX_SESSIONS: usize = 16;

/// Open sessions to entry nodes, by their TCP address.
#[derive(Default)]
pub struct EntryLinks {
    open: HashMap<SocketAddr, (TcpStream, Sealer)>,
    record: Vec<u8>,
}

impl EntryLinks {
    /// Sends `frame` to `entry` over its session, opening one if needed.
    /// On failure the session is dropped, so the next send opens a new one.
    pub fn send(&mut self, entry: &NodeDescriptor, frame: &[u8]) -> io::Result<()> {
        let addr = entry.tcp_addr;
        if !self.open.contains_key(&addr) {
            if self.open.len() >= MAX_SESSIONS {
                self.open.clear();
            }
            let opened = Self::open(entry)?;
            self.open.insert(addr, opened);
        }
        let Some((stream, sealer)) = self.open.get_mut(&addr) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        self.record.clear();
        self.record.reserve(RECORD_LEN);
        let sent = sealer
            .seal(Instant::now(), frame, &mut self.record)
            .map_err(io::Error::other)
            .and_then(|()| stream.write_all(&self.record));
        if sent.is_err() {
            self.open.remove(&addr);
        }
        sent
    }

    fn open(entry: &NodeDescriptor) -> io::Result<(TcpStream, Sealer)> {
        let epoch = entry.key_epoch_at(crate::clock::unix_now());
        let key = entry.link_key_for_epoch(epoch).ok_or_else(|| {
            io::Error::other(
                "the entry node publishes no link key (an older build?); \
                 send plaintext frames with --transport udp or tcp",
            )
        })?;
        let mut stream = TcpStream::connect_timeout(&entry.tcp_addr, OPEN_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(OPEN_TIMEOUT))?;
        stream.set_write_timeout(Some(OPEN_TIMEOUT))?;
        let session = open_session(&mut stream, None, &key.public_key, key.epoch)?;
        Ok((stream, session.sealer))
    }
}
