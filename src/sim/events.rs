//! The event queue: virtual time in nanoseconds, ties broken by insertion
//! order, so a run is a deterministic function of its seed.

use std::collections::BinaryHeap;

use crate::mixing::delay_queue::Timed;

/// Events by virtual time (earliest first, FIFO among equal times).
pub struct EventQueue<E> {
    heap: BinaryHeap<Timed<u64, E>>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `at` nanoseconds of virtual time.
    pub fn push(&mut self, at: u64, event: E) {
        self.seq += 1;
        self.heap.push(Timed {
            at,
            seq: self.seq,
            item: event,
        });
    }

    /// The earliest event, with its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|s| (s.at, s.item))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_fifo() {
        let mut q = EventQueue::default();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(20, "b");
        q.push(10, "a2");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [(10, "a1"), (10, "a2"), (20, "b"), (30, "c")]);
        assert!(q.is_empty());
    }
}
