//! The one stop signal of a node (or of any part run on its own): threads
//! sleep on it until their next planned change, async tasks `select!` on
//! it, and a blocking data-path loop reads its flag.
//!
//! A signal can have children: triggering a signal triggers its children
//! (not the other way round), so a part that must also stop alone (the
//! cover thread, behind its handle) takes a child of the node's signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender};
use tokio_util::sync::CancellationToken;

/// A stop signal, cheap to clone (clones are the same signal).
#[derive(Clone)]
pub(crate) struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    /// For async tasks.
    token: CancellationToken,
    /// For blocking receive loops that check a flag between reads.
    flag: Arc<AtomicBool>,
    /// Never sent on: its sender is dropped at the trigger, which wakes
    /// every thread blocked in [`Shutdown::wait`] at once.
    closed: Receiver<()>,
    state: Mutex<State>,
}

struct State {
    sender: Option<Sender<()>>,
    children: Vec<Weak<Inner>>,
}

/// Why [`Shutdown::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The signal was triggered: stop.
    Stop,
    /// The deadline passed.
    Due,
    /// One of the watched channels (say, a moved clock or a new topology)
    /// said something changed.
    Changed,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub(crate) fn new() -> Self {
        Self::with_token(CancellationToken::new())
    }

    fn with_token(token: CancellationToken) -> Self {
        let (sender, closed) = crossbeam_channel::bounded(0);
        Shutdown {
            inner: Arc::new(Inner {
                token,
                flag: Arc::new(AtomicBool::new(false)),
                closed,
                state: Mutex::new(State {
                    sender: Some(sender),
                    children: Vec::new(),
                }),
            }),
        }
    }

    /// A signal triggered with this one, or on its own.
    #[cfg_attr(not(feature = "cover-traffic"), allow(dead_code))]
    pub(crate) fn child(&self) -> Self {
        let child = Self::with_token(self.inner.token.child_token());
        let mut state = self.inner.lock();
        if state.sender.is_none() {
            drop(state);
            child.trigger();
        } else {
            // Dead children are pruned here, so the list stays as long as
            // the number of live ones.
            state.children.retain(|c| c.strong_count() > 0);
            state.children.push(Arc::downgrade(&child.inner));
        }
        child
    }

    /// Triggers the signal and its children (again: nothing happens).
    pub(crate) fn trigger(&self) {
        self.inner.trigger();
    }

    /// True once triggered.
    pub(crate) fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// The signal as a token, for async tasks (`token.cancelled()`).
    pub(crate) fn token(&self) -> CancellationToken {
        self.inner.token.clone()
    }

    /// The signal as a flag, for blocking loops that can only check it
    /// between reads (the UDP receiver's socket timeout).
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.inner.flag)
    }

    /// Blocks until the signal, `deadline` (`None`: none), or a message on
    /// one of `changes`, whichever comes first. A channel whose senders are
    /// all gone never wakes the wait (it is left out).
    pub(crate) fn wait(&self, deadline: Option<Instant>, changes: &[&Receiver<()>]) -> Wake {
        let mut watched: Vec<&Receiver<()>> = changes.to_vec();
        loop {
            let mut select = Select::new();
            let stop = select.recv(&self.inner.closed);
            for r in &watched {
                select.recv(r);
            }
            let op = match deadline {
                Some(at) => match select.select_deadline(at) {
                    Ok(op) => op,
                    Err(_) => return Wake::Due,
                },
                None => select.select(),
            };
            let index = op.index();
            if index == stop {
                let _ = op.recv(&self.inner.closed);
                return Wake::Stop;
            }
            let channel = watched[index - 1];
            if op.recv(channel).is_ok() {
                return Wake::Changed;
            }
            watched.remove(index - 1);
        }
    }

    /// Sleeps for `duration` or until the signal; true if the whole
    /// duration passed.
    pub(crate) fn sleep(&self, duration: Duration) -> bool {
        self.wait(Instant::now().checked_add(duration), &[]) == Wake::Due
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is changed in single steps: never half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let (sender, children) = {
            let mut state = self.lock();
            (state.sender.take(), std::mem::take(&mut state.children))
        };
        drop(sender);
        self.token.cancel();
        for child in children.iter().filter_map(Weak::upgrade) {
            child.trigger();
        }
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough never to pass in a test: a wait that returns `Due` with
    /// it means the wait is broken.
    const NEVER: Duration = Duration::from_secs(3600);

    #[test]
    fn a_trigger_wakes_a_sleeping_thread_at_once() {
        let shutdown = Shutdown::new();
        let sleeper = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || shutdown.sleep(NEVER))
        };
        shutdown.trigger();
        assert!(!sleeper.join().unwrap(), "the sleep ran to its end");
        assert!(shutdown.is_triggered());
        assert!(shutdown.token().is_cancelled());
        assert!(shutdown.flag().load(Ordering::SeqCst));
        // Waits after the trigger return at once.
        assert_eq!(shutdown.wait(None, &[]), Wake::Stop);
    }

    #[test]
    fn changes_and_deadlines_wake_the_wait() {
        let shutdown = Shutdown::new();
        let (tx, rx) = crossbeam_channel::bounded(1);
        tx.send(()).unwrap();
        let far = Instant::now().checked_add(NEVER);
        assert_eq!(shutdown.wait(far, &[&rx]), Wake::Changed);
        assert_eq!(shutdown.wait(Some(Instant::now()), &[&rx]), Wake::Due);
        // A channel with no sender left is ignored, not a busy loop.
        drop(tx);
        assert_eq!(shutdown.wait(Some(Instant::now()), &[&rx]), Wake::Due);
    }

    #[test]
    fn children_stop_with_the_parent_but_not_the_reverse() {
        let parent = Shutdown::new();
        let alone = parent.child();
        alone.trigger();
        assert!(!parent.is_triggered());
        let child = parent.child();
        parent.trigger();
        assert!(child.is_triggered() && child.token().is_cancelled());
        assert_eq!(child.wait(None, &[]), Wake::Stop);
        // A child of a triggered signal is born triggered.
        assert!(parent.child().is_triggered());
    }
}
