//! The mixing-delay queue: packets ordered by release time. Pure: the caller
//! supplies the clock, so the mixing logic is tested without sleeping.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

/// An item due at `at`, ordered for a min-heap: earliest first, and by
/// insertion order (`seq`) among equal times, so ties leave FIFO and a run
/// is a deterministic function of its inputs. The simulator's event queue
/// orders its events the same way.
pub(crate) struct Timed<K, T> {
    pub(crate) at: K,
    pub(crate) seq: u64,
    pub(crate) item: T,
}

impl<K: Ord, T> PartialEq for Timed<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord, T> Eq for Timed<K, T> {}
impl<K: Ord, T> PartialOrd for Timed<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> Ord for Timed<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap; reverse for earliest-first.
        (&other.at, other.seq).cmp(&(&self.at, self.seq))
    }
}

/// A bounded priority queue of items by release time.
pub struct DelayQueue<T> {
    heap: BinaryHeap<Timed<Instant, T>>,
    capacity: usize,
    next_seq: u64,
}

impl<T> DelayQueue<T> {
    /// An empty queue holding at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        DelayQueue {
            heap: BinaryHeap::new(),
            capacity,
            next_seq: 0,
        }
    }

    /// Schedules `item` for `release_at`; gives it back if the queue is full.
    pub fn push(&mut self, release_at: Instant, item: T) -> Result<(), T> {
        if self.heap.len() >= self.capacity {
            return Err(item);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Timed {
            at: release_at,
            seq,
            item,
        });
        Ok(())
    }

    /// When the earliest item is due.
    pub fn next_release(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes and returns the earliest item if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.at <= now {
            self.heap.pop().map(|e| e.item)
        } else {
            None
        }
    }

    /// Removes everything, earliest first, with its release time.
    pub fn drain(&mut self) -> impl Iterator<Item = (Instant, T)> + '_ {
        std::iter::from_fn(move || self.heap.pop().map(|e| (e.at, e.item)))
    }

    /// Most items held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items waiting.
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
    use std::time::Duration;

    #[test]
    fn releases_in_deadline_order_then_fifo() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = DelayQueue::new(10);
        q.push(t0 + ms(30), "c").unwrap();
        q.push(t0 + ms(10), "a").unwrap();
        q.push(t0 + ms(20), "b1").unwrap();
        q.push(t0 + ms(20), "b2").unwrap();
        assert_eq!(q.pop_due(t0 + ms(5)), None);
        assert_eq!(q.next_release(), Some(t0 + ms(10)));
        let due: Vec<_> = std::iter::from_fn(|| q.pop_due(t0 + ms(25))).collect();
        assert_eq!(due, ["a", "b1", "b2"]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn full_queue_refuses() {
        let now = Instant::now();
        let mut q = DelayQueue::new(1);
        q.push(now, 1).unwrap();
        assert_eq!(q.push(now, 2), Err(2));
    }
}
