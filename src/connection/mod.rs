//! One connection's protocol life without its socket: the bytes read so far, the requests
//! they hold, the responses queued for them, and the clocks and policies that decide when the
//! connection waits, answers `408`, lingers or closes.
//!
//! A [`Connection`] takes bytes that were read ([`Connection::read_space`] then
//! [`Connection::received`]) and offers bytes or file windows to write
//! ([`Connection::output`]); it never touches a socket. The transport's
//! [`pump`](crate::transport::pump) moves bytes between the two, the same way for the event
//! loop, the thread model and the fuzz target.

pub(crate) mod exchange;
pub(crate) mod outbox;
pub(crate) mod readbuf;

use crate::listener::ListenerKind;
use crate::stats::Stats;
use crate::worker::Worker;
use exchange::Exchange;
use outbox::Outbox;
use readbuf::ReadBuf;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bytes written to one connection per turn before others get theirs.
pub const WRITE_BUDGET: usize = 512 * 1024;
/// Reads per turn before others get theirs.
pub const READ_BUDGET: usize = 16;
/// How long a closing connection waits for the peer to finish sending.
pub const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
pub const LINGER_BYTES: usize = 256 * 1024;
/// Bytes the read buffer may hold beyond the head limit: the start of a body or of the next
/// pipelined request, read along with a head.
const READ_SLACK: usize = 1024;

/// What the shell around a connection should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait until the transport is ready again (or the deadline passes).
    Continue,
    /// Its turn's budget is spent while it could go on: run it again after the others.
    Yield,
    /// Done or broken: close it.
    Close,
}

/// Where a connection is in its life, derived from what it holds, so contradictory states
/// cannot be written down. The status report counts connections by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Kept alive after a response, waiting for the next request to start.
    Idle,
    /// Waiting for (more of) a request.
    Reading,
    /// Writing queued responses.
    Writing,
    /// Responses sent and our side shut: reading what the peer still sends until it closes,
    /// so unread bytes do not make the kernel reset the connection under our last response.
    Closing,
}

/// Timeouts a connection is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole head must arrive within this, from its first byte (or from accept); a body
    /// may pause this long between reads.
    pub header: Duration,
    /// An idle kept-alive connection is closed after this.
    pub keep_alive: Duration,
    /// A response with no write progress for this long is abandoned.
    pub send: Duration,
}

/// One client connection's protocol state.
pub struct Connection {
    exchange: Exchange,
    input: ReadBuf,
    out: Outbox,
    /// Set once our side is shut: the bytes discarded since.
    lingering: Option<usize>,
    /// The state the status report counts this connection under.
    counted: State,
    /// Last byte moved in either direction.
    last_activity: Instant,
    /// When the head now being read began (accept, or its first byte).
    head_started: Option<Instant>,
    /// When the first byte of the request now being read arrived: what request durations
    /// are measured from.
    request_started: Option<Instant>,
    /// Responses the exchange had queued when `head_started` was last set.
    served_seen: u64,
}

impl Connection {
    /// A connection from `peer`, accepted at `now` by a listener of kind `listener`; counted
    /// as open in the status report.
    pub fn open(
        peer: SocketAddr,
        listener: ListenerKind,
        now: Instant,
        stats: &Stats,
    ) -> Connection {
        stats.connection_opened();
        Connection {
            exchange: Exchange::new(peer, listener, now),
            input: ReadBuf::default(),
            out: Outbox::default(),
            lingering: None,
            counted: State::Reading,
            last_activity: now,
            head_started: Some(now),
            request_started: None,
            served_seen: 0,
        }
    }

    /// Ends the connection: counted as closed, its read buffer back in the worker's pool.
    pub fn close(self, worker: &mut Worker) {
        worker.stats().connection_closed(self.counted);
        self.input.recycle(worker.buffers());
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.exchange.peer()
    }

    /// The current state.
    pub fn state(&self) -> State {
        if self.lingering.is_some() {
            State::Closing
        } else if !self.out.is_empty() {
            State::Writing
        } else if self.exchange.served() > 0 && !self.mid_request() {
            State::Idle
        } else {
            State::Reading
        }
    }

    /// Whether it waits for a request that has not started (kept alive, or fresh): nothing
    /// would be lost by closing it now.
    pub fn awaits_request(&self) -> bool {
        matches!(self.state(), State::Idle | State::Reading) && !self.mid_request()
    }

    /// When it last moved a byte.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// When the shell must next look at it if nothing happens: a request that stalls, an idle
    /// connection kept too long, a response that makes no progress, a linger that ran out.
    pub fn deadline(&self, timeouts: &Timeouts) -> Instant {
        match self.state() {
            State::Closing => self.last_activity + LINGER,
            State::Writing => self.last_activity + timeouts.send,
            State::Reading | State::Idle if self.exchange.reading_body() => {
                self.last_activity + timeouts.header
            }
            State::Reading | State::Idle => match self.head_started {
                Some(started) => started + timeouts.header,
                None => self.last_activity + timeouts.keep_alive,
            },
        }
    }

    /// Moves the status report's count to the current state.
    pub fn count_state(&mut self, stats: &Stats) {
        let state = self.state();
        stats.state_changed(self.counted, state);
        self.counted = state;
    }

    // -----------------------------------------------------------------------------------
    // Bytes in.

    /// Where the next read should put its bytes; `None` when the buffer already holds as much
    /// as a head may take without a parse decision (which cannot happen: the parser decides
    /// before that, so the shell treats it as a fault).
    pub fn read_space<'a>(&'a mut self, worker: &mut Worker) -> Option<&'a mut [u8]> {
        let max = worker.site().limits.max_head + READ_SLACK;
        self.input.space(worker.buffers(), max)
    }

    /// Records a read of `n` bytes into the last [`Connection::read_space`]; 0 is the peer's
    /// end of stream.
    pub fn received(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.exchange.peer_closed();
            return;
        }
        self.input.filled(n);
        self.last_activity = now;
        self.head_started.get_or_insert(now);
        self.request_started.get_or_insert(now);
    }

    /// Whether a TLS session has been noted (never, on plain TCP).
    pub fn knows_tls(&self) -> bool {
        self.exchange.tls_session().is_some()
    }

    /// Notes the TLS version and cipher suite the connection negotiated, for the access log.
    pub fn note_tls(&mut self, session: Option<(&'static str, &'static str)>) {
        self.exchange.set_tls_session(session);
    }

    /// Gives the read buffer back to the pool while it holds nothing, so an idle connection
    /// costs no buffer memory.
    pub fn release_input(&mut self, worker: &mut Worker) {
        self.input.release(worker.buffers());
    }

    /// Answers what the buffered bytes hold: parses requests and queues their responses, until
    /// the input runs out or enough output waits.
    pub fn answer(&mut self, worker: &mut Worker) {
        if let Some(started) = self.request_started {
            self.exchange.set_started(started);
        }
        self.exchange
            .process(&mut self.input, &mut self.out, worker);
    }

    /// Called once the queued responses are written: after an answered request, the next
    /// head's clock starts with its first byte.
    pub fn responses_sent(&mut self, now: Instant) {
        if self.exchange.served() != self.served_seen {
            self.served_seen = self.exchange.served();
            self.head_started = (!self.input.is_empty()).then_some(now);
            self.request_started = self.head_started;
        }
    }

    /// Answers a request that did not arrive in time with `408`, if one is under way, and
    /// ends the exchange. Returns whether a response was queued.
    pub fn time_out(&mut self, worker: &mut Worker) -> bool {
        if self.state() != State::Reading || !self.mid_request() {
            return false;
        }
        self.exchange.time_out(&mut self.out, worker);
        true
    }

    fn mid_request(&self) -> bool {
        self.exchange.mid_request(&self.input)
    }

    // -----------------------------------------------------------------------------------
    // Bytes out.

    /// Whether output waits to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The queued output, for the transport to write from.
    pub fn output(&mut self) -> &mut Outbox {
        &mut self.out
    }

    /// Records that `n` bytes of output went out at `now`.
    pub fn wrote(&mut self, n: usize, now: Instant, stats: &Stats) {
        if n > 0 {
            self.last_activity = now;
            stats.bytes_sent(n as u64);
        }
    }

    /// Drops all queued output: the peer is gone.
    pub fn discard_output(&mut self) {
        self.out.clear();
    }

    // -----------------------------------------------------------------------------------
    // The end.

    /// Whether no more requests will be answered: close once the output is written.
    pub fn is_done(&self) -> bool {
        self.exchange.is_done()
    }

    /// Whether the connection can close at once, without lingering: nothing is unread, the
    /// peer is not still sending, and the socket was found empty (`drained`) or at its end.
    /// Then a plain close cannot make the kernel reset the connection under the response.
    pub fn may_close_quietly(&self, drained: bool) -> bool {
        self.input.is_empty()
            && !self.exchange.peer_may_send()
            && (drained || self.exchange.saw_end())
    }

    /// Whether our side is shut and the connection only discards what the peer still sends.
    pub fn is_lingering(&self) -> bool {
        self.lingering.is_some()
    }

    /// Starts lingering at `now`; false if it already was.
    pub fn start_lingering(&mut self, now: Instant) -> bool {
        if self.lingering.is_some() {
            return false;
        }
        self.lingering = Some(0);
        self.last_activity = now;
        true
    }

    /// Counts `n` bytes discarded while lingering; true once more than [`LINGER_BYTES`] were:
    /// a peer that keeps sending is not waited for.
    pub fn discarded(&mut self, n: usize) -> bool {
        let total = self.lingering.get_or_insert(0);
        *total += n;
        *total > LINGER_BYTES
    }
}
