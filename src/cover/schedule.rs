//! When cover packets leave: a Poisson process, i.e. exponentially
//! distributed gaps drawn from a CSPRNG. Memoryless gaps mean an observer
//! who saw one emission learns nothing about when the next one comes, which
//! is what makes cover indistinguishable from (Poisson-shaped) real traffic.

use std::time::{Duration, Instant};

use rand::Rng;

/// The longest gap ever drawn. Only absurdly low rates reach it; it keeps
/// `Instant` arithmetic far from overflow.
pub const MAX_GAP: Duration = Duration::from_secs(24 * 3600);

/// How far a schedule may fall behind before it re-anchors at "now" rather
/// than catching up. Catching up keeps the long-run rate exact after small
/// wake-up delays; re-anchoring avoids a burst after a long stall (a
/// suspended process, say), which would stand out on the wire.
pub const MAX_LAG: Duration = Duration::from_millis(250);

/// The gap before the next emission of a Poisson process of `rate_pps`
/// events per second, for 64 uniform random bits `v`: `−ln(u) / rate` with
/// `u = ((v >> 11) + 1) / 2^53`, so `0 < u ≤ 1` (the same mapping as
/// [`ExponentialDelay`](crate::mixing::ExponentialDelay)). Capped at
/// [`MAX_GAP`]; `None` when the rate is not a positive finite number.
pub fn exponential_gap(rate_pps: f64, v: u64) -> Option<Duration> {
    if !(rate_pps.is_finite() && rate_pps > 0.0) {
        return None;
    }
    let u = ((v >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let secs = -u.ln() / rate_pps;
    // `secs` is ≥ 0 and finite (u in (0, 1], rate > 0); the cap keeps it
    // representable.
    Some(Duration::from_secs_f64(secs.min(MAX_GAP.as_secs_f64())))
}

/// One stream of emissions (loops or drops) at a fixed rate.
#[derive(Clone, Debug)]
pub struct PoissonSchedule {
    rate_pps: f64,
    next: Option<Instant>,
}

impl PoissonSchedule {
    /// A schedule of `rate_pps` emissions per second; zero, negative or
    /// non-finite rates give a schedule that never fires.
    pub fn new(rate_pps: f64) -> Self {
        PoissonSchedule {
            rate_pps,
            next: None,
        }
    }

    /// True if this schedule ever fires.
    pub fn is_enabled(&self) -> bool {
        self.rate_pps.is_finite() && self.rate_pps > 0.0
    }

    /// The configured rate (emissions per second).
    pub fn rate_pps(&self) -> f64 {
        self.rate_pps
    }

    /// Draws one gap from `rng` (`None` when disabled).
    pub fn gap<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<Duration> {
        exponential_gap(self.rate_pps, rng.next_u64())
    }

    /// Sets the first deadline one random gap after `now`. Until this is
    /// called (or for a disabled schedule) [`next_due`](Self::next_due) is
    /// `None`.
    pub fn start<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        self.next = self.gap(rng).and_then(|gap| now.checked_add(gap));
    }

    /// When the next emission is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    /// If an emission is due at `now`, moves the deadline on by a fresh gap
    /// and returns true. Call it in a loop: after a short delay several
    /// emissions may be due, and sending them all keeps the rate exact.
    pub fn poll<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) -> bool {
        let Some(due) = self.next else {
            return false;
        };
        if due > now {
            return false;
        }
        // Anchor on the missed deadline (exact rate) unless we are so far
        // behind that catching up would be a burst.
        let anchor = if now.duration_since(due) > MAX_LAG {
            now
        } else {
            due
        };
        self.next = self.gap(rng).and_then(|gap| anchor.checked_add(gap));
        true
    }
}
