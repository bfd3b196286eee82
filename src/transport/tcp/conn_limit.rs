//! Caps on simultaneous inbound connections, per source IP and in total.
//! A connection holds a [`ConnectionPermit`]; dropping it frees the slot, so
//! every way a connection task can end (including a panic) releases it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections by source IP.
pub(super) struct ConnectionLimiter {
    per_source: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
}

impl ConnectionLimiter {
    /// At most `per_source` connections per IP and `total` overall.
    pub(super) fn new(per_source: usize, total: usize) -> Arc<Self> {
        Arc::new(ConnectionLimiter {
            per_source,
            total,
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` at a cap.
    pub(super) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionPermit> {
        // IPv4-mapped IPv6 is the same host as plain IPv4: count them as one.
        let ip = ip.to_canonical();
        let mut open = self.lock();
        if open.total >= self.total {
            return None;
        }
        let count = open.by_ip.entry(ip).or_insert(0);
        if *count >= self.per_source {
            return None;
        }
        *count += 1;
        open.total += 1;
        Some(ConnectionPermit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The counts stay consistent under every critical section, so a
        // poisoned lock (a panic elsewhere) leaves them usable.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One open connection's slot; released on drop.
pub(super) struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                // Forget idle sources so the map only holds live ones.
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn caps_per_source_and_frees_on_drop() {
        let limiter = ConnectionLimiter::new(2, 100);
        let first = limiter.try_acquire(ip("10.0.0.1")).unwrap();
        let _second = limiter.try_acquire(ip("10.0.0.1")).unwrap();
        assert!(limiter.try_acquire(ip("10.0.0.1")).is_none());
        assert!(limiter.try_acquire(ip("10.0.0.2")).is_some());
        drop(first);
        assert!(limiter.try_acquire(ip("10.0.0.1")).is_some());
    }

    #[test]
    fn mapped_ipv6_counts_as_its_ipv4() {
        let limiter = ConnectionLimiter::new(1, 100);
        let _mapped = limiter.try_acquire(ip("::ffff:10.0.0.2")).unwrap();
        assert!(limiter.try_acquire(ip("10.0.0.2")).is_none());
    }

    #[test]
    fn caps_the_total() {
        let limiter = ConnectionLimiter::new(10, 2);
        let _a = limiter.try_acquire(ip("10.0.0.1")).unwrap();
        let _b = limiter.try_acquire(ip("10.0.0.2")).unwrap();
        assert!(limiter.try_acquire(ip("10.0.0.3")).is_none());
    }
}
