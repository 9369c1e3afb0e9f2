//! The bounded worker pool for handlers that may block, in the shape of Tomcat's NIO connector:
//! the event loop reads a request, hands it to a fixed number of threads through a bounded
//! queue, and goes on serving everyone else; the result comes back to that loop through its
//! mailbox (a channel and the loop's `mio::Waker`).

use super::request::Request;
use super::router::Handler;
use crate::http::coding::{self, AcceptEncoding};
use crate::http::{Response, StatusCode};
use crate::stats::Stats;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Which connection of which loop a result or a wake-up is for: the slot in the loop's slab,
/// and the connection's id (a slot is reused by later connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The slab slot.
    pub key: usize,
    /// The connection's id.
    pub id: u64,
}

/// What reaches an event loop from other threads.
pub enum Wake {
    /// A blocking handler finished.
    Done {
        /// Whose request it was.
        ticket: Ticket,
        /// Which job (a late result of a timed-out job is dropped).
        job: u64,
        /// Its response.
        response: Response,
    },
    /// A streamed body has a piece (or its end) ready.
    Ready(Ticket),
}

/// An event loop's mailbox: post a [`Wake`] and the loop wakes to read it.
pub struct Mailbox {
    sender: mpsc::Sender<Wake>,
    waker: Arc<mio::Waker>,
}

impl Mailbox {
    /// A mailbox whose posts `waker` announces; the loop reads them from the receiver.
    pub fn new(waker: Arc<mio::Waker>) -> (Arc<Mailbox>, Receiver<Wake>) {
        let (sender, receiver) = mpsc::channel();
        (Arc::new(Mailbox { sender, waker }), receiver)
    }

    /// Delivers `wake` and wakes the loop; a loop that has stopped drops it.
    pub fn post(&self, wake: Wake) {
        if self.sender.send(wake).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Every pool thread is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

struct Job {
    request: Request,
    handler: Handler,
    mailbox: Arc<Mailbox>,
    ticket: Ticket,
    id: u64,
}

/// The pool: `threads` threads, at most `queue` requests waiting for one.
pub struct Pool {
    queue: SyncSender<Job>,
    next_job: AtomicU64,
    stats: Arc<Stats>,
}

impl Pool {
    /// Starts the threads.
    pub fn new(threads: usize, queue: usize, stats: Arc<Stats>) -> std::io::Result<Arc<Pool>> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads.max(1) {
            let receiver = receiver.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name(format!("margay-handler-{n}"))
                .spawn(move || work(&receiver, &stats))?;
        }
        Ok(Arc::new(Pool {
            queue: sender,
            next_job: AtomicU64::new(1),
            stats,
        }))
    }

    /// Queues `handler(request)`; its response goes to `mailbox` for `ticket`. Returns the
    /// job's id, or [`QueueFull`] (answer `503`).
    pub fn submit(
        &self,
        request: Request,
        handler: Handler,
        mailbox: Arc<Mailbox>,
        ticket: Ticket,
    ) -> Result<u64, QueueFull> {
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            request,
            handler,
            mailbox,
            ticket,
            id,
        };
        match self.queue.try_send(job) {
            Ok(()) => {
                self.stats.pool_queued();
                Ok(id)
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.pool_rejected();
                Err(QueueFull)
            }
        }
    }
}

/// One pool thread: takes jobs until the pool is gone.
fn work(receiver: &Mutex<Receiver<Job>>, stats: &Stats) {
    loop {
        let job = {
            let receiver = receiver
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            receiver.recv()
        };
        let Ok(job) = job else {
            return;
        };
        stats.pool_started();
        let Job {
            request,
            handler,
            mailbox,
            ticket,
            id,
        } = job;
        let mut response = run(&handler, &request);
        // Off the event loop: a compressible body is compressed here, larger ones too.
        let accept = AcceptEncoding::parse(request.head().header_values("accept-encoding"));
        coding::compress_response(&mut response, &accept, coding::MAX_OFF_LOOP_COMPRESS);
        // Let go of the request (and with it the application state) before the answer leaves:
        // once the client has it, a shutdown may drop the state, and this thread must not be
        // the last holder (a database closes in that drop).
        drop(request);
        drop(handler);
        stats.pool_finished();
        mailbox.post(Wake::Done {
            ticket,
            job: id,
            response,
        });
    }
}

/// Runs a handler, turning an error into its response and a panic into `500`; the thread
/// lives on.
pub(crate) fn run(handler: &Handler, request: &Request) -> Response {
    let context = || format!("handler for {} {}", request.method(), request.path());
    match catch_unwind(AssertUnwindSafe(|| handler(request))) {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(&context()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("{} panicked: {message}", context());
            Response::error(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
