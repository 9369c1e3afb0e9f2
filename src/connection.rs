//! One client connection on the event loop: the only code that touches its socket. It moves
//! bytes between the socket and its [`Session`], and says what it waits for next.

use crate::outbox::{Flush, Outbox};
use crate::readbuf::{Filled, ReadBuf};
use crate::session::Session;
use crate::site::Site;
use crate::stats::Phase;
use mio::Interest;
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// Bytes written to one connection per turn before others get theirs.
const WRITE_BUDGET: usize = 512 * 1024;
/// Reads per turn before others get theirs.
const READ_BUDGET: usize = 16;
/// How long a closing connection waits for the peer to finish sending.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 256 * 1024;

/// What the reactor should do with a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait for the next readiness event (interest follows [`Connection::state`]).
    Continue,
    /// Its turn's budget is spent while it could go on: run it again after the others.
    Yield,
    /// Done or broken: deregister and drop it.
    Close,
}

/// Where a connection is in its life; derived from its session and outbox, so contradictory
/// states cannot be written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for (more of) a request.
    Reading,
    /// Flushing queued responses.
    Writing,
    /// Responses sent and our side shut: reading what the peer still sends until it closes,
    /// so unread bytes do not make the kernel reset the connection under our last response.
    Closing,
}

/// Timeouts a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The whole head must arrive within this, from its first byte (or from accept).
    pub header: Duration,
    /// An idle kept-alive connection is closed after this.
    pub keep_alive: Duration,
    /// A response with no write progress for this long is abandoned.
    pub send: Duration,
}

/// One accepted client.
pub struct Connection {
    socket: TcpStream,
    session: Session,
    input: ReadBuf,
    out: Outbox,
    closing: bool,
    phase: Phase,
    /// Last byte moved in either direction.
    last_activity: Instant,
    /// When the head now being read began (accept, or its first byte).
    head_started: Option<Instant>,
    /// Responses the session had queued when `head_started` was last set.
    served_seen: u64,
    /// The earliest deadline the reactor's timer holds for this connection.
    pub scheduled: Option<Instant>,
    /// Distinguishes this connection from later ones that reuse its slab slot.
    pub id: u64,
    /// The interest registered with the poller (none before the first wait), so it is
    /// changed only when the state's differs.
    pub registered: Option<Interest>,
}

impl Connection {
    /// A connection just accepted at `now`.
    pub fn new(socket: TcpStream, peer: SocketAddr, id: u64, now: Instant) -> Connection {
        Connection {
            socket,
            session: Session::new(peer),
            input: ReadBuf::default(),
            out: Outbox::default(),
            closing: false,
            phase: Phase::Reading,
            last_activity: now,
            head_started: Some(now),
            served_seen: 0,
            scheduled: None,
            id,
            registered: None,
        }
    }

    /// The socket, for (de)registration.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Ends the connection: its read buffer goes back to the site's pool, then the socket
    /// closes.
    pub fn retire(self, site: &mut Site) {
        self.input.recycle(&mut site.buffers);
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.session.peer()
    }

    /// The current state.
    pub fn state(&self) -> State {
        if self.closing {
            State::Closing
        } else if !self.out.is_empty() {
            State::Writing
        } else {
            State::Reading
        }
    }

    /// The readiness this connection waits for in its state.
    pub fn interest(&self) -> Interest {
        match self.state() {
            State::Writing => Interest::WRITABLE,
            State::Reading | State::Closing => Interest::READABLE,
        }
    }

    /// The gauge this connection counts under.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether it waits, kept alive, for a request that has not started.
    pub fn is_idle(&self) -> bool {
        self.state() == State::Reading && !self.session.mid_request(&self.input)
    }

    /// Whether it is idle after serving at least one request: the first to close when
    /// new clients need room.
    pub fn is_kept_alive_idle(&self) -> bool {
        self.is_idle() && self.session.served() > 0
    }

    /// When it last moved a byte.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// Runs the connection as far as it can go without blocking. `read_closed` says the
    /// event reported the peer's end of stream, which must then be read to be seen.
    pub fn drive(&mut self, site: &mut Site, now: Instant, read_closed: bool) -> Step {
        let step = self.run(site, now, read_closed);
        self.update_phase(site);
        step
    }

    fn run(&mut self, site: &mut Site, now: Instant, read_closed: bool) -> Step {
        let mut reads = 0;
        // A short read empties the socket; a later arrival raises a new edge, so reading again
        // only to meet `WouldBlock` is a wasted syscall per request.
        let mut drained = false;
        loop {
            if !self.out.is_empty() {
                match self.flush(site, now) {
                    Ok(Flush::Done) => {}
                    Ok(Flush::Blocked) => return Step::Continue,
                    Ok(Flush::Yielded) => return Step::Yield,
                    Err(e) => return self.broken(e),
                }
            }
            if self.session.is_done() {
                // Nothing unread and the socket was found empty: a plain close cannot reset
                // the connection under the response, so skip the staged close.
                let quiet = self.input.is_empty()
                    && !self.session.peer_may_send()
                    && (drained || self.session.saw_end());
                if self.closing || !quiet {
                    return self.linger(now);
                }
                return Step::Close;
            }
            self.session.process(&mut self.input, &mut self.out, site);
            if !self.out.is_empty() || self.session.is_done() {
                continue;
            }
            if self.session.served() != self.served_seen {
                // A request was answered: the next head's clock starts with its first byte.
                self.served_seen = self.session.served();
                self.head_started = (!self.input.is_empty()).then_some(now);
            }
            if drained && !read_closed {
                self.input.release(&mut site.buffers);
                return Step::Continue;
            }
            if reads == READ_BUDGET {
                return Step::Yield;
            }
            reads += 1;
            let max = site.app.limits.max_head + 1024;
            match self
                .input
                .read_from(&mut self.socket, &mut site.buffers, max)
            {
                Ok(Filled::Eof) => self.session.peer_closed(),
                Ok(Filled::Full) => {
                    log::warn!("{}: read buffer full without a parse decision", self.peer());
                    return Step::Close;
                }
                Ok(Filled::Bytes { drained: short, .. }) => {
                    drained = short;
                    self.last_activity = now;
                    self.head_started.get_or_insert(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.input.release(&mut site.buffers);
                    return Step::Continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.broken(e),
            }
        }
    }

    fn flush(&mut self, site: &mut Site, now: Instant) -> io::Result<Flush> {
        let (flush, written) =
            self.out
                .write_to(&mut self.socket, WRITE_BUDGET, self.session.is_done())?;
        if written > 0 {
            self.last_activity = now;
            site.app.stats.bytes_sent(written as u64);
        }
        Ok(flush)
    }

    /// Shuts our side once, then discards what the peer still sends until it closes.
    fn linger(&mut self, now: Instant) -> Step {
        if !self.closing {
            self.closing = true;
            self.last_activity = now;
            if self.socket.shutdown(Shutdown::Write).is_err() {
                return Step::Close;
            }
        }
        let mut scratch = [0u8; 4096];
        let mut discarded = 0;
        loop {
            match self.socket.read(&mut scratch) {
                Ok(0) => return Step::Close,
                Ok(n) => {
                    discarded += n;
                    if discarded > LINGER_BYTES {
                        return Step::Close;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Close,
            }
        }
    }

    /// Logs an I/O failure at the level it deserves and closes.
    fn broken(&mut self, e: io::Error) -> Step {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => {
                log::debug!("{}: peer went away: {e}", self.peer());
            }
            _ => log::warn!("{}: connection failed: {e}", self.peer()),
        }
        self.out.clear();
        Step::Close
    }

    fn update_phase(&mut self, site: &Site) {
        let phase = match self.state() {
            State::Writing => Phase::Writing,
            State::Reading if self.is_idle() && self.session.served() > 0 => Phase::Idle,
            State::Reading | State::Closing => Phase::Reading,
        };
        site.app.stats.phase_changed(self.phase, phase);
        self.phase = phase;
    }

    /// When this connection must next be looked at by the timer.
    pub fn deadline(&self, timeouts: &Timeouts) -> Instant {
        match self.state() {
            State::Closing => self.last_activity + LINGER,
            State::Writing => self.last_activity + timeouts.send,
            State::Reading if self.session.reading_body() => self.last_activity + timeouts.header,
            State::Reading => match self.head_started {
                Some(started) => started + timeouts.header,
                None => self.last_activity + timeouts.keep_alive,
            },
        }
    }

    /// Called when the timer fires: if the deadline really passed, answers a half-read
    /// request with 408 (if the socket takes it) and closes.
    pub fn on_deadline(&mut self, site: &mut Site, timeouts: &Timeouts, now: Instant) -> Step {
        if now < self.deadline(timeouts) {
            return Step::Continue;
        }
        if self.state() == State::Reading && self.session.mid_request(&self.input) {
            log::debug!("{}: request timed out", self.peer());
            self.session.time_out(&mut self.out, site);
            let _ = self.flush(site, now);
        } else {
            log::debug!(
                "{}: closed after {:?} in state {:?}",
                self.peer(),
                timeouts,
                self.state()
            );
        }
        Step::Close
    }
}
