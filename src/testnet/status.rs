//! The one-line live status `betanet testnet` prints.

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::pipeline::{DropCause, HistogramSnapshot};

/// The request/response demo's state: requests made and answered, and the
/// last reply's round-trip time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyDemo {
    /// Requests made.
    pub requests: u64,
    /// Requests whose reply came back.
    pub answered: u64,
    /// Round trip of the last reply (request sent → whole reply in).
    pub last_round_trip: Option<Duration>,
}

/// Totals over a whole local mixnet, turned into a status line.
pub struct StatusLine {
    last: Option<(Instant, u64)>,
}

impl Default for StatusLine {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusLine {
    /// A fresh status line (rates start at the second call).
    pub fn new() -> Self {
        StatusLine { last: None }
    }

    /// Formats the network's state now. `demo` is (sent, received).
    pub fn render<'a>(
        &mut self,
        nodes: impl Iterator<Item = &'a crate::node::Mixnode>,
        demo: (u64, u64),
    ) -> String {
        self.render_with_replies(nodes, demo, None)
    }

    /// [`render`](Self::render), with the request/response demo's
    /// answered/made requests and last reply round trip.
    pub fn render_with_replies<'a>(
        &mut self,
        nodes: impl Iterator<Item = &'a crate::node::Mixnode>,
        demo: (u64, u64),
        replies: Option<ReplyDemo>,
    ) -> String {
        let now = Instant::now();
        let mut processed = 0;
        let mut delivered = 0;
        let mut drops = [0u64; DropCause::COUNT];
        let mut delay = HistogramSnapshot::default();
        let (mut loops_sent, mut loops_lost) = (0u64, 0u64);
        for node in nodes {
            let totals = node.pipeline().counters().totals();
            processed += totals.processed;
            delivered += totals.delivered;
            for (d, t) in drops.iter_mut().zip(totals.drops.iter()) {
                *d += t;
            }
            delay.merge(&totals.mixing_delay);
            let snapshot = node.metrics_snapshot();
            loops_sent += snapshot.cover_loops_sent;
            loops_lost += snapshot.cover_loops_lost;
        }
        let pps = match self.last {
            Some((at, before)) => {
                let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                (processed.saturating_sub(before)) as f64 / secs
            }
            None => 0.0,
        };
        self.last = Some((now, processed));
        let mut line = format!(
            "{pps:>7.0} pkt/s | delivered {delivered} | demo {}/{} | delay p50 {} p99 {}",
            demo.1,
            demo.0,
            ms(delay.quantile(0.5)),
            ms(delay.quantile(0.99)),
        );
        if let Some(replies) = replies {
            let _ = write!(line, " | replies {}/{}", replies.answered, replies.requests);
            if let Some(rtt) = replies.last_round_trip {
                let _ = write!(line, " rtt {}", ms(rtt));
            }
        }
        if loops_sent > 0 {
            let loss = 100.0 * loops_lost as f64 / loops_sent as f64;
            let _ = write!(line, " | loops {loops_sent} lost {loss:.1}%");
        }
        let dropped: Vec<String> = DropCause::ALL
            .iter()
            .filter(|c| drops[c.index()] > 0)
            .map(|c| format!("{}={}", c.as_str(), drops[c.index()]))
            .collect();
        if !dropped.is_empty() {
            let _ = write!(line, " | dropped {}", dropped.join(" "));
        }
        line
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1e3)
}
