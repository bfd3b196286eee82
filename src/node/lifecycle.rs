//! One lifecycle for the node: one stop signal and one ordered list of
//! tasks.
//!
//! Every builder that starts something registers how to stop it, with the
//! [`Stage`] it stops in. Stopping triggers the signal once (every control
//! loop and the ingress wake and end; see [`Shutdown`]), then runs the
//! steps stage by stage, in registration order within a stage. The stages
//! are the node's drain order: nothing new comes in, what is inside is
//! mixed out within the grace period, then the control loops end, the
//! replay journals are flushed, and HTTP, which answers `/health` while
//! the node drains, goes last.
//!
//! A node that fails half-way through starting stops what it had started
//! the same way: dropping the lifecycle stops it.
//!
//! Two parts keep a signal of their own, stopped by their step: the TCP
//! egress queues (inside the transport, flushed after the drain) and the
//! HTTP listeners (which must outlive the drain). Both are steps here, not
//! extra ways for the node to stop.

use std::thread::{JoinHandle, ThreadId};

use super::status::IoThreads;
use crate::shutdown::Shutdown;

/// When a task stops, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    /// Receivers: the UDP receiver and the TCP listener with its connections.
    Ingress,
    /// Threads that hold an injector into the scheduler (cover traffic):
    /// the scheduler drains only once they are gone.
    #[cfg_attr(not(feature = "cover-traffic"), allow(dead_code))]
    Producers,
    /// The pipeline: ingress is closed, so the workers drain, the scheduler
    /// honours the grace period, then its outputs close. Its threads end by
    /// channel disconnection, in the data path's own order.
    Drain,
    /// The egress thread, which ends once the outputs are closed.
    Egress,
    /// The TCP egress queues the egress thread fed: they get the grace
    /// period to flush.
    EgressQueues,
    /// Control loops (reload, VRF epochs, key rotation, descriptor refresh),
    /// which end at the signal; here they are joined.
    Control,
    /// The replay journals' final sync.
    Journal,
    /// The HTTP listeners, last but the runtime.
    Http,
    /// The I/O runtime.
    Runtime,
}

/// How one task stops, given the core the lifecycle keeps (the pipeline).
type StopFn<T> = Box<dyn FnOnce(&mut T) + Send>;

struct Step<T> {
    stage: Stage,
    name: &'static str,
    stop: StopFn<T>,
}

/// The node's signal, its ordered tasks and the part the node keeps
/// reading while it runs (`core`: the pipeline).
pub(super) struct Lifecycle<T> {
    shutdown: Shutdown,
    steps: Vec<Step<T>>,
    core: T,
}

impl<T> Lifecycle<T> {
    /// A lifecycle around `core`, with no tasks yet.
    pub(super) fn new(core: T) -> Self {
        Lifecycle {
            shutdown: Shutdown::new(),
            steps: Vec::new(),
            core,
        }
    }

    /// The node's one stop signal.
    pub(super) fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The core, for reading.
    pub(super) fn core(&self) -> &T {
        &self.core
    }

    /// Registers how to stop a task.
    pub(super) fn on_stop(
        &mut self,
        stage: Stage,
        name: &'static str,
        stop: impl FnOnce(&mut T) + Send + 'static,
    ) {
        self.steps.push(Step {
            stage,
            name,
            stop: Box::new(stop),
        });
    }

    /// Registers a thread that ends at the signal: stopping it is joining.
    pub(super) fn join_at(&mut self, stage: Stage, name: &'static str, thread: JoinHandle<()>) {
        self.on_stop(stage, name, move |_| join(name, thread));
    }

    /// Registers an I/O thread kept in `threads` (so `/health` watches it):
    /// stopping takes it out and joins it.
    pub(super) fn join_io_at(
        &mut self,
        stage: Stage,
        name: &'static str,
        threads: &IoThreads,
        thread: JoinHandle<()>,
    ) {
        let id: ThreadId = thread.thread().id();
        super::lock(threads).push(thread);
        let threads = std::sync::Arc::clone(threads);
        self.on_stop(stage, name, move |_| {
            let mut held = super::lock(&threads);
            let thread = held
                .iter()
                .position(|t| t.thread().id() == id)
                .map(|i| held.remove(i));
            drop(held);
            if let Some(thread) = thread {
                join(name, thread);
            }
        });
    }

    /// Triggers the signal, then stops every task stage by stage. Runs
    /// once: later calls find nothing left to stop.
    pub(super) fn stop(&mut self) {
        self.shutdown.trigger();
        let mut steps = std::mem::take(&mut self.steps);
        // Stable: registration order within a stage.
        steps.sort_by_key(|s| s.stage);
        for step in steps {
            tracing::debug!(task = step.name, stage = ?step.stage, "stopping");
            (step.stop)(&mut self.core);
        }
    }
}

impl<T> Drop for Lifecycle<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn join(name: &'static str, thread: JoinHandle<()>) {
    if thread.join().is_err() {
        tracing::error!(task = name, "a node thread had panicked");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn the_signal_comes_first_then_the_stages_in_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut life = Lifecycle::new(Vec::<&'static str>::new());
        let shutdown = life.shutdown().clone();
        // Registered in start order; stopped in drain order.
        for (stage, name) in [
            (Stage::Http, "http"),
            (Stage::Control, "keys"),
            (Stage::Drain, "pipeline"),
            (Stage::Ingress, "udp"),
            (Stage::Control, "epochs"),
            (Stage::Runtime, "runtime"),
        ] {
            let order = Arc::clone(&order);
            let shutdown = shutdown.clone();
            life.on_stop(stage, name, move |core| {
                assert!(shutdown.is_triggered(), "{name} stopped before the signal");
                core.push(name);
                order.lock().unwrap().push(name);
            });
        }
        // A thread that ends at the signal is joined at its stage.
        let waiter = shutdown.clone();
        life.join_at(
            Stage::Control,
            "sleeper",
            std::thread::spawn(move || while waiter.sleep(std::time::Duration::from_secs(3600)) {}),
        );
        life.stop();
        let want = ["udp", "pipeline", "keys", "epochs", "http", "runtime"];
        assert_eq!(*order.lock().unwrap(), want);
        assert_eq!(*life.core(), want);
        // Once only.
        life.stop();
        assert_eq!(order.lock().unwrap().len(), want.len());
    }
}
