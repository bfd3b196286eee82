//! A bounded pool of frame buffers, so the steady state allocates nothing
//! per packet. Buffers return to the pool when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::sphinx::FRAME_LEN;

type Frame = Box<[u8; FRAME_LEN]>;

/// Recycles frame-sized buffers. Lock-free; shared by every stage.
pub struct BufferPool {
    free: ArrayQueue<Frame>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BufferPool {
    /// A pool that keeps up to `capacity` idle buffers, all allocated now.
    pub fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            // Cannot fail: the queue has exactly `capacity` slots.
            let _ = free.push(Box::new([0u8; FRAME_LEN]));
        }
        Arc::new(BufferPool {
            free,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// A buffer from the pool, or a new one when the pool is empty (a miss).
    pub fn get(self: &Arc<Self>) -> PacketBuf {
        let frame = match self.free.pop() {
            Some(frame) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                frame
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Box::new([0u8; FRAME_LEN])
            }
        };
        PacketBuf {
            frame: Some(frame),
            len: 0,
            pool: Arc::clone(self),
        }
    }

    /// Fraction of [`get`](Self::get) calls served from the pool (1.0 before any).
    pub fn hit_rate(&self) -> f64 {
        let hits = self.hits.load(Ordering::Relaxed) as f64;
        let misses = self.misses.load(Ordering::Relaxed) as f64;
        if hits + misses == 0.0 {
            1.0
        } else {
            hits / (hits + misses)
        }
    }

    /// Idle buffers now in the pool.
    pub fn idle(&self) -> usize {
        self.free.len()
    }

    /// The most idle buffers the pool keeps.
    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("idle", &self.idle())
            .field("capacity", &self.capacity())
            .field("hit_rate", &self.hit_rate())
            .finish()
    }
}

/// One frame-sized buffer holding `len` meaningful bytes. Goes back to its
/// pool on drop (or is freed if the pool is full).
pub struct PacketBuf {
    frame: Option<Frame>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl PacketBuf {
    /// Copies `data` in (at most `FRAME_LEN` bytes; longer input is cut and
    /// the length recorded as `FRAME_LEN + 1` so it still fails the frame
    /// length check).
    pub fn fill_from(&mut self, data: &[u8]) {
        let n = data.len().min(FRAME_LEN);
        self.full_mut()[..n].copy_from_slice(&data[..n]);
        self.len = if data.len() > FRAME_LEN {
            FRAME_LEN + 1
        } else {
            n
        };
    }

    /// Sets how many bytes are meaningful (clamped to the buffer size, except
    /// the "too long" marker `FRAME_LEN + 1`).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(FRAME_LEN + 1);
    }

    /// The meaningful length (may be `FRAME_LEN + 1` for oversized input).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no bytes are meaningful.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole underlying buffer, for receiving into.
    pub fn full_mut(&mut self) -> &mut [u8; FRAME_LEN] {
        // The frame is only taken in `drop`.
        self.frame.get_or_insert_with(|| Box::new([0u8; FRAME_LEN]))
    }

    fn bytes(&self) -> &[u8] {
        match &self.frame {
            Some(frame) => &frame[..self.len.min(FRAME_LEN)],
            None => &[],
        }
    }
}

/// What the Sphinx engine sees: exactly the received bytes, or for an
/// oversized datagram a slice of the wrong length so it is `malformed`.
impl AsMut<[u8]> for PacketBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        let frame = self.full_mut();
        if len > FRAME_LEN {
            // Too long: hand over a wrong-length view. The engine drops it.
            &mut frame[..0]
        } else {
            &mut frame[..len]
        }
    }
}

impl Deref for PacketBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl DerefMut for PacketBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut()
    }
}

impl Drop for PacketBuf {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            // A full pool means the buffer was a miss: free it.
            let _ = self.pool.free.push(frame);
        }
    }
}

impl fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketBuf(len={})", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_and_hits_are_counted() {
        let pool = BufferPool::new(2);
        let a = pool.get();
        let b = pool.get();
        let c = pool.get(); // miss
        assert_eq!(pool.idle(), 0);
        drop((a, b, c));
        assert_eq!(pool.idle(), 2, "the pool never grows past capacity");
        assert!((pool.hit_rate() - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn oversized_input_stays_wrong_length() {
        let pool = BufferPool::new(1);
        let mut buf = pool.get();
        buf.fill_from(&vec![1u8; FRAME_LEN + 10]);
        assert_ne!(buf.as_mut().len(), FRAME_LEN);
        buf.fill_from(&[1, 2, 3]);
        assert_eq!(&buf[..], &[1, 2, 3]);
    }
}
