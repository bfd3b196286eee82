//! Shutdown signals for programs built on the library (the `betanet`
//! commands and the examples).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Sets the returned flag on the first SIGINT (Ctrl-C) or SIGTERM, watched
/// by a small background thread with its own signal reactor.
pub fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            tracing::error!("cannot watch for signals: Ctrl-C will not stop gracefully");
            return;
        };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                flag.store(true, Ordering::SeqCst);
            }
        });
    });
    stop
}
