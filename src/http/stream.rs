//! Streamed response bodies: produced over time, from any thread, through a [`BodySender`];
//! sent chunked as they come. The sender waits while the client is behind (a bounded buffer
//! per response), and learns when the client has gone.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How many bytes a stream buffers for a slow client before its sender waits.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// A piece of a streamed body.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes of this piece alone.
    Owned(Vec<u8>),
    /// Bytes shared with other streams (one event sent to many clients).
    Shared(Arc<[u8]>),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Owned(v) => v.len(),
            Piece::Shared(s) => s.len(),
        }
    }
}

impl From<Vec<u8>> for Piece {
    fn from(bytes: Vec<u8>) -> Piece {
        Piece::Owned(bytes)
    }
}

impl From<String> for Piece {
    fn from(text: String) -> Piece {
        Piece::Owned(text.into_bytes())
    }
}

impl From<&str> for Piece {
    fn from(text: &str) -> Piece {
        Piece::Owned(text.as_bytes().to_vec())
    }
}

impl From<Arc<[u8]>> for Piece {
    fn from(bytes: Arc<[u8]>) -> Piece {
        Piece::Shared(bytes)
    }
}

/// The client has gone (or the server is stopping): nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the client of this streamed response has gone")
    }
}

impl std::error::Error for Disconnected {}

/// How the connection is told that a piece (or the end) is ready.
pub(crate) type Wake = Box<dyn Fn() + Send + Sync>;

struct State {
    pieces: VecDeque<Piece>,
    buffered: usize,
    limit: usize,
    /// The sender is done: after the buffered pieces, the body ends.
    finished: bool,
    /// The connection dropped its end: sends fail.
    gone: bool,
    wake: Option<Wake>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when buffer space frees up or the connection goes.
    space: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The producing end of a streamed response body. Send it to any thread; dropping it (or
/// [`BodySender::finish`]) ends the body.
pub struct BodySender {
    shared: Arc<Shared>,
}

/// The connection's end of a streamed body, as a response carries it.
pub struct BodyStream {
    shared: Arc<Shared>,
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyStream")
    }
}

impl fmt::Debug for BodySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodySender")
    }
}

/// A streamed body that buffers at most `limit` bytes for a slow client.
pub(crate) fn channel(limit: usize) -> (BodySender, BodyStream) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            pieces: VecDeque::new(),
            buffered: 0,
            limit: limit.max(1),
            finished: false,
            gone: false,
            wake: None,
        }),
        space: Condvar::new(),
    });
    (
        BodySender {
            shared: shared.clone(),
        },
        BodyStream { shared },
    )
}

impl BodySender {
    /// Sends `piece`, waiting while the buffer is full (the client reads slower than this
    /// produces). Fails once the client has gone.
    pub fn send(&self, piece: impl Into<Piece>) -> Result<(), Disconnected> {
        self.send_within(piece.into(), None).map(|_| ())
    }

    /// Sends `piece` if there is room now; `Ok(false)` (the piece dropped) when the buffer is
    /// full. For a producer that serves many clients and must not wait on any one.
    pub fn try_send(&self, piece: impl Into<Piece>) -> Result<bool, Disconnected> {
        self.send_within(piece.into(), Some(Duration::ZERO))
    }

    /// Sends `piece`, waiting at most `timeout` for room; `Ok(false)` when there was none.
    pub fn send_timeout(
        &self,
        piece: impl Into<Piece>,
        timeout: Duration,
    ) -> Result<bool, Disconnected> {
        self.send_within(piece.into(), Some(timeout))
    }

    /// Whether the client is still there.
    pub fn is_connected(&self) -> bool {
        !self.shared.lock().gone
    }

    /// Ends the body (as dropping the sender does).
    pub fn finish(self) {}

    fn send_within(&self, piece: Piece, timeout: Option<Duration>) -> Result<bool, Disconnected> {
        if piece.len() == 0 {
            return Ok(true);
        }
        let mut state = self.shared.lock();
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        while !state.gone && state.buffered >= state.limit {
            match deadline {
                None => {
                    state = self
                        .shared
                        .space
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    state = self
                        .shared
                        .space
                        .wait_timeout(state, left)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
            }
        }
        if state.gone {
            return Err(Disconnected);
        }
        let was_empty = state.pieces.is_empty();
        state.buffered += piece.len();
        state.pieces.push_back(piece);
        // The connection is told only when it may be waiting: nothing was buffered.
        if was_empty && let Some(wake) = &state.wake {
            wake();
        }
        Ok(true)
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.finished = true;
        if let Some(wake) = &state.wake {
            wake();
        }
    }
}

/// What a connection took from a stream.
pub(crate) struct Taken {
    /// The pieces buffered, in order.
    pub pieces: Vec<Piece>,
    /// Whether the body ends after them.
    pub finished: bool,
}

impl BodyStream {
    /// Sets how the connection is woken when a piece or the end arrives.
    pub(crate) fn set_wake(&self, wake: Wake) {
        self.shared.lock().wake = Some(wake);
    }

    /// Takes every buffered piece, making room for the sender.
    pub(crate) fn take(&self) -> Taken {
        let mut state = self.shared.lock();
        let pieces: Vec<Piece> = state.pieces.drain(..).collect();
        let freed = state.buffered;
        state.buffered = 0;
        let finished = state.finished;
        drop(state);
        if freed > 0 {
            self.shared.space.notify_all();
        }
        Taken { pieces, finished }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.gone = true;
        state.wake = None;
        state.pieces.clear();
        drop(state);
        self.shared.space.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn pieces_arrive_in_order_and_the_end_follows() {
        let (sender, stream) = channel(1024);
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = woken.clone();
        stream.set_wake(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        sender.send("a").unwrap();
        sender.send(b"bc".to_vec()).unwrap();
        assert_eq!(
            woken.load(Ordering::SeqCst),
            1,
            "woken once: it was empty once"
        );
        let taken = stream.take();
        let bytes: Vec<u8> = taken
            .pieces
            .iter()
            .flat_map(|p| match p {
                Piece::Owned(v) => v.clone(),
                Piece::Shared(s) => s.to_vec(),
            })
            .collect();
        assert_eq!((bytes.as_slice(), taken.finished), (&b"abc"[..], false));
        drop(sender);
        assert!(stream.take().finished);
    }

    #[test]
    fn a_full_buffer_makes_the_sender_wait_and_a_gone_client_makes_it_fail() {
        let (sender, stream) = channel(4);
        sender.send("1234").unwrap();
        assert_eq!(sender.try_send("5"), Ok(false), "full");
        let waiting = std::thread::spawn(move || {
            let first = sender.send("5");
            let second = sender.send("678910");
            let third = sender.send("x");
            (first, second, third)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            stream.take().pieces.len(),
            1,
            "the waiting send had no room yet"
        );
        std::thread::sleep(Duration::from_millis(50));
        drop(stream);
        let (first, second, third) = waiting.join().unwrap();
        assert_eq!(first, Ok(()));
        // The second may have fitted before the client went; the third cannot have.
        assert!(second.is_ok() || second == Err(Disconnected));
        assert_eq!(third, Err(Disconnected));
    }
}
