//! Shutdown, asked for from any thread and seen by every worker of either model.

use mio::Waker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Asks running workers to shut down gracefully.
#[derive(Debug, Default)]
pub struct Control {
    shutdown: AtomicBool,
    wakers: std::sync::Mutex<Vec<Arc<Waker>>>,
}

impl Control {
    /// Registers a worker's waker so [`Control::shutdown`] can reach it.
    pub fn add_waker(&self, waker: Arc<Waker>) {
        if let Ok(mut wakers) = self.wakers.lock() {
            wakers.push(waker);
        }
    }

    /// Starts a graceful shutdown of every worker.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Ok(wakers) = self.wakers.lock() {
            for waker in wakers.iter() {
                let _ = waker.wake();
            }
        }
    }

    /// Whether shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
}
