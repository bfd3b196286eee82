//! A background thread that makes accepted tags durable every interval.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tracing::{error, info};

use super::cache::ReplayCache;

/// While syncs keep failing, log at most one error per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest accepted interval, so that a zero interval does not spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The running syncer of a [`ReplayCache`]. Dropping it (or calling
/// [`stop`](Self::stop)) stops the thread after one final sync.
#[derive(Debug)]
#[must_use = "dropping the handle stops the syncer at once"]
pub struct SyncerHandle {
    /// Dropping the sender wakes the thread and tells it to stop.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<io::Result<usize>>>,
}

impl ReplayCache {
    /// Starts a thread that calls [`sync`](Self::sync) every `interval` (at
    /// least 1 ms) until the returned handle is stopped or dropped, then
    /// syncs a last time.
    ///
    /// The interval is the crash window: tags accepted within it before a
    /// crash may be forgotten. Fails only if the OS cannot start a thread.
    pub fn spawn_syncer(self: &Arc<Self>, interval: Duration) -> io::Result<SyncerHandle> {
        let interval = interval.max(MIN_INTERVAL);
        let cache = Arc::clone(self);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("replay-sync".into())
            .spawn(move || run(&cache, interval, &stopped))?;
        Ok(SyncerHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl SyncerHandle {
    /// Stops the thread and returns the result of its final sync (how many
    /// tags it made durable), for a clean shutdown to report.
    pub fn stop(mut self) -> io::Result<usize> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<usize> {
        drop(self.stop.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("replay syncer thread panicked"))),
            None => Ok(0),
        }
    }
}

impl Drop for SyncerHandle {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            error!(error = %e, "replay journal: final sync failed; tags accepted since the last sync may be replayable after restart");
        }
    }
}

/// The thread body: sync on every timeout, stop when the handle goes away.
fn run(cache: &ReplayCache, interval: Duration, stopped: &mpsc::Receiver<()>) -> io::Result<usize> {
    let mut last_error_log: Option<Instant> = None;
    let mut failing = false;
    loop {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => match cache.sync() {
                Ok(_) => {
                    if failing {
                        info!(key_id = %hex::encode(cache.key_id()), "replay journal sync recovered");
                        failing = false;
                    }
                }
                Err(e) => {
                    failing = true;
                    if last_error_log.is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL) {
                        last_error_log = Some(Instant::now());
                        error!(
                            key_id = %hex::encode(cache.key_id()),
                            pending = cache.pending(),
                            error = %e,
                            "replay journal sync failed; retrying (tags stay in memory, but a \
                             crash now would forget them)"
                        );
                    }
                }
            },
            // The handle was dropped or stopped (nothing else is ever sent).
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return cache.sync(),
        }
    }
}
