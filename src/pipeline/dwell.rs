//! How long a packet may wait for a crypto worker, and how many packets the
//! ingress queue may therefore hold.
//!
//! The queue is sized in time, not packets (Katzenpost's `UnwrapDelay`,
//! with the shedding moved to the door): the workers report how long they
//! spend per packet, and the ingress admits a packet only while the queue
//! ahead of it drains in half the dwell bound. Under overload the excess is
//! refused before it is copied into a pool buffer (`overload`), and the
//! queue stays a few milliseconds of work deep, so admitted packets do not
//! wait a quarter of a second. A packet that still waited longer than the
//! bound (the estimate lagged a slowdown) is dropped before any
//! cryptography (`dwell`): the bound holds whatever the estimate says.
//!
//! [`DwellBudget`] is the decision, fed measurements and instants, with no
//! clock of its own; [`SharedDwell`] shares it between the workers (who
//! feed it once per batch) and the ingress (which reads one atomic).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Packets over which the per-packet cost is averaged: a few full batches,
/// so one slow batch (a page fault, a preemption) moves the estimate by
/// only a fraction, while a lasting slowdown shows within milliseconds.
const SMOOTHING_PACKETS: f64 = 1024.0;

/// The dwell bound and the estimate of how fast the workers drain the
/// ingress queue.
#[derive(Clone, Debug, PartialEq)]
pub struct DwellBudget {
    max_dwell: Duration,
    workers: usize,
    /// Never fewer: every worker can take a full batch.
    floor: usize,
    /// Never more: the memory bound (`max_queue_depth`).
    ceiling: usize,
    /// Wall-clock time a worker spends per packet (moving average, ns);
    /// `None` until the first batch is measured.
    per_packet_ns: Option<f64>,
}

impl DwellBudget {
    /// A budget for `workers` workers taking up to `batch_size` packets at
    /// a time from a queue of at most `max_queue_depth`. Until a batch is
    /// measured the queue may fill to `max_queue_depth`; the dwell bound
    /// holds regardless.
    pub fn new(
        max_dwell: Duration,
        workers: usize,
        batch_size: usize,
        max_queue_depth: usize,
    ) -> Self {
        let workers = workers.max(1);
        let ceiling = max_queue_depth.max(1);
        DwellBudget {
            max_dwell,
            workers,
            floor: batch_size.max(1).saturating_mul(workers).min(ceiling),
            ceiling,
            per_packet_ns: None,
        }
    }

    /// The longest a packet may wait between arrival and unwrap.
    pub fn max_dwell(&self) -> Duration {
        self.max_dwell
    }

    /// Whether a packet that arrived at `received_at` may still be
    /// unwrapped at `now` (else it is dropped as `dwell`).
    pub fn is_fresh(&self, received_at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(received_at) <= self.max_dwell
    }

    /// A worker spent `busy` (wall clock, preemption included: that is
    /// the share of the CPU it really gets) on a batch of `packets`.
    pub fn record_batch(&mut self, packets: usize, busy: Duration) {
        if packets == 0 {
            return;
        }
        let sample = busy.as_nanos() as f64 / packets as f64;
        let weight = (packets as f64 / SMOOTHING_PACKETS).min(1.0);
        self.per_packet_ns = Some(match self.per_packet_ns {
            None => sample,
            Some(mean) => mean + (sample - mean) * weight,
        });
    }

    /// The packets the workers are estimated to drain per second.
    pub fn drain_rate(&self) -> Option<f64> {
        self.per_packet_ns
            .filter(|ns| *ns > 0.0)
            .map(|ns| self.workers as f64 * 1e9 / ns)
    }

    /// Most packets the ingress queue should hold: what the workers drain
    /// in half the dwell bound (the other half absorbs estimation error
    /// and the batch a packet waits for), between a full batch per worker
    /// and `max_queue_depth`.
    pub fn queue_limit(&self) -> usize {
        let Some(rate) = self.drain_rate() else {
            return self.ceiling;
        };
        let packets = rate * self.max_dwell.as_secs_f64() / 2.0;
        // `as` saturates; NaN cannot occur (rate > 0, dwell finite).
        (packets as usize).clamp(self.floor, self.ceiling)
    }
}

/// A [`DwellBudget`] shared by the workers and the ingress.
#[derive(Debug)]
pub struct SharedDwell {
    budget: Mutex<DwellBudget>,
    max_dwell: Duration,
    /// [`DwellBudget::queue_limit`], published for the ingress to read
    /// without a lock on every packet.
    limit: AtomicUsize,
}

impl SharedDwell {
    /// Shares `budget`.
    pub fn new(budget: DwellBudget) -> Self {
        SharedDwell {
            max_dwell: budget.max_dwell(),
            limit: AtomicUsize::new(budget.queue_limit()),
            budget: Mutex::new(budget),
        }
    }

    /// See [`DwellBudget::is_fresh`].
    pub fn is_fresh(&self, received_at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(received_at) <= self.max_dwell
    }

    /// See [`DwellBudget::record_batch`]; one lock per batch.
    pub fn record_batch(&self, packets: usize, busy: Duration) {
        // A poisoned lock only means a worker panicked mid-update; the
        // numbers are still numbers.
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        budget.record_batch(packets, busy);
        self.limit.store(budget.queue_limit(), Ordering::Relaxed);
    }

    /// See [`DwellBudget::queue_limit`].
    pub fn queue_limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn budget() -> DwellBudget {
        // 2 workers, batches of 128, at most 10,000 queued, 50 ms bound.
        DwellBudget::new(50 * MS, 2, 128, 10_000)
    }

    #[test]
    fn unmeasured_the_queue_may_fill_to_its_depth() {
        assert_eq!(budget().queue_limit(), 10_000);
        assert_eq!(budget().drain_rate(), None);
    }

    #[test]
    fn the_queue_holds_half_the_dwell_of_work() {
        let mut b = budget();
        // 36 µs a packet on each of 2 workers: 55,555 packets/s.
        b.record_batch(128, Duration::from_micros(36 * 128));
        let rate = b.drain_rate().unwrap();
        assert!((rate - 55_555.6).abs() < 1.0, "{rate}");
        // 25 ms of that.
        assert_eq!(b.queue_limit(), 1388);
    }

    #[test]
    fn a_slowdown_shrinks_the_queue_within_a_few_batches() {
        let mut b = budget();
        b.record_batch(128, Duration::from_micros(36 * 128));
        let before = b.queue_limit();
        // The workers now get a third of the CPU (other load): one slow
        // batch moves the estimate a little, a dozen most of the way.
        b.record_batch(128, Duration::from_micros(108 * 128));
        let one = b.queue_limit();
        assert!(one < before && one > before / 2, "{before} -> {one}");
        for _ in 0..12 {
            b.record_batch(128, Duration::from_micros(108 * 128));
        }
        let settled = b.queue_limit();
        assert!(settled < before * 4 / 10, "{before} -> {settled}");
    }

    #[test]
    fn the_limit_stays_between_a_batch_per_worker_and_the_depth() {
        let mut slow = budget();
        slow.record_batch(1, Duration::from_secs(1));
        assert_eq!(slow.queue_limit(), 256, "every worker keeps a full batch");
        let mut fast = budget();
        fast.record_batch(1000, Duration::from_nanos(1000));
        assert_eq!(fast.queue_limit(), 10_000, "never past max_queue_depth");
        let mut tiny = DwellBudget::new(50 * MS, 4, 128, 100);
        tiny.record_batch(1, Duration::from_secs(1));
        assert_eq!(tiny.queue_limit(), 100, "the floor never exceeds the depth");
        let mut free = budget();
        free.record_batch(10, Duration::ZERO);
        assert_eq!(free.queue_limit(), 10_000, "a zero-cost batch is no rate");
    }

    #[test]
    fn packets_past_the_bound_are_stale() {
        let b = budget();
        let t0 = Instant::now();
        assert!(b.is_fresh(t0, t0));
        assert!(b.is_fresh(t0, t0 + 50 * MS));
        assert!(!b.is_fresh(t0, t0 + 50 * MS + Duration::from_nanos(1)));
        // A clock that seems to run backwards is no reason to drop.
        assert!(b.is_fresh(t0 + MS, t0));
    }

    #[test]
    fn shared_publishes_the_limit() {
        let shared = SharedDwell::new(budget());
        assert_eq!(shared.queue_limit(), 10_000);
        shared.record_batch(128, Duration::from_micros(36 * 128));
        assert_eq!(shared.queue_limit(), 1388);
        let t0 = Instant::now();
        assert!(!shared.is_fresh(t0, t0 + 51 * MS));
        shared.record_batch(0, Duration::from_secs(5));
        assert_eq!(shared.queue_limit(), 1388, "an empty batch says nothing");
    }
}
