//! Pauses between reconnect attempts: exponential, capped, with jitter so
//! that next hops restarting together are not reconnected to in lockstep.

use std::time::Duration;

/// Exponential backoff with "equal jitter": each pause is drawn from
/// `[d/2, d]` where `d` doubles per failure up to the ceiling.
#[derive(Clone, Debug)]
pub(super) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial` and never exceeds `max`.
    pub(super) fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The pause before the next attempt; later pauses grow.
    pub(super) fn next_pause(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        // Half fixed, half random: spreads attempts without ever retrying
        // at once.
        let half = ceiling / 2;
        let jitter = rand::random_range(0..=u64::try_from(half.as_micros()).unwrap_or(u64::MAX));
        half + Duration::from_micros(jitter)
    }

    /// Back to the initial pause, after a connection proved healthy.
    pub(super) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_ceiling_with_jitter_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(50), ms(400));
        let ceilings = [50, 100, 200, 400, 400, 400];
        for ceiling in ceilings {
            let pause = backoff.next_pause();
            assert!(
                pause >= ms(ceiling) / 2 && pause <= ms(ceiling),
                "{pause:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_pause() <= ms(50));
    }
}
