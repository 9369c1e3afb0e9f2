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
pub(crate) mod peer;
pub(crate) mod readbuf;
pub(crate) mod stamp;

use crate::app::pool::Ticket;
use crate::http::Response;
use crate::listener::ListenerKind;
use crate::stats::Stats;
use crate::transport::pipe::Pipe;
use crate::worker::Worker;
use exchange::Exchange;
pub use exchange::Link;
use exchange::Released;
use outbox::Outbox;
use readbuf::ReadBuf;
use stamp::Stamp;
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
/// Response bytes from an upstream that may wait for the client before the upstream is read
/// no further.
const UPSTREAM_HIGH_WATER: usize = 64 * 1024;
/// How long a streamed body may go without a piece before the connection is dropped: the
/// producer decides the pace (an event stream may be quiet for long), this only bounds a
/// producer that forgot its stream.
const STREAM_IDLE: Duration = Duration::from_secs(3600);
/// Bytes the read buffer may hold beyond the head limit: the start of a body or of the next
/// pipelined request, read along with a head.
const READ_SLACK: usize = 1024;

/// The most unparsed bytes a connection holds: a head at its limit, and some slack.
fn input_limit(worker: &Worker) -> usize {
    worker.site().limits.max_head + READ_SLACK
}

/// What [`Connection::splice_body`] did.
#[derive(Debug)]
pub enum Splice {
    /// The body is not spliced: read as usual.
    No,
    /// The pipe still holds bytes for the upstream: nothing is read until it is emptied.
    Full,
    /// The splice's result (0: the client closed).
    Moved(std::io::Result<usize>),
}

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
    /// Waiting for a blocking handler's response.
    Waiting,
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
    /// A blocking handler gets this long before the request is answered `504`.
    pub handler: Duration,
    /// An upstream server gets this long to start its response (`504`) and to go on with it.
    pub upstream: Duration,
    /// A connect to an upstream server gets this long (at most `upstream`); past it the
    /// server counts as down for the request, as if it had refused.
    pub upstream_connect: Duration,
}

/// Whose clock a connection's deadline is on: what its running out means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The client's (a head, a body read here, a send, keep-alive, a linger): `408` at most,
    /// then the connection closes; nobody else is blamed.
    Client,
    /// A blocking handler's.
    Handler,
    /// A connect to an upstream server.
    UpstreamConnect,
    /// A forwarded body the proxy has room for and the client does not send.
    ClientBody,
    /// An upstream server's answer.
    Upstream,
}

/// The server's defaults, which `--help` and the configuration file state.
impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            keep_alive: Duration::from_secs(15),
            send: Duration::from_secs(30),
            handler: Duration::from_secs(30),
            upstream: Duration::from_secs(30),
            upstream_connect: Duration::from_secs(5),
        }
    }
}

/// One client connection's protocol state.
pub struct Connection {
    exchange: Exchange,
    input: ReadBuf,
    out: Outbox,
    /// Our side is shut: only discarding what the peer still sends.
    lingering: bool,
    /// Bytes discarded while lingering (two fields rather than an `Option<u32>`, so that they
    /// pack with the flags below: an idle connection is mostly this struct).
    discarded: u32,
    /// The state the status report counts this connection under.
    counted: State,
    /// Last byte moved in either direction.
    last_activity: Stamp,
    /// When the head now being read began (accept, or its first byte).
    head_started: Option<Stamp>,
    /// The output waits for a streamed body's producer, not for the socket.
    stalled: bool,
    /// The last byte moved to or from the upstream server of a forwarded request (or when
    /// its connection was attached).
    upstream_activity: Stamp,
    /// A read found the socket empty since its last readiness event (the pump's to keep).
    input_empty: bool,
}

impl Connection {
    /// A connection from `peer`, accepted at `now` by a listener of kind `listener`; counted
    /// as open in the status report.
    pub fn open(
        peer: SocketAddr,
        listener: ListenerKind,
        ticket: Ticket,
        now: Instant,
        stats: &Stats,
    ) -> Connection {
        stats.connection_opened();
        Connection {
            exchange: Exchange::new(peer, listener, ticket),
            input: ReadBuf::default(),
            out: Outbox::default(),
            lingering: false,
            discarded: 0,
            counted: State::Reading,
            last_activity: Stamp::of(now),
            head_started: Some(Stamp::of(now)),
            stalled: false,
            upstream_activity: Stamp::of(now),
            input_empty: false,
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
        if self.lingering {
            State::Closing
        } else if !self.out.is_empty() {
            State::Writing
        } else if self.exchange.is_waiting() || self.exchange.awaits_upstream_head() {
            State::Waiting
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
        self.last_activity.instant()
    }

    /// Distinguishes it from later connections that reuse its slot in the shell's table.
    pub fn id(&self) -> u64 {
        self.exchange.ticket().id
    }

    /// When the shell must next look at it if nothing happens: a request that stalls, an idle
    /// connection kept too long, a response that makes no progress, a linger that ran out.
    pub fn deadline(&self, timeouts: &Timeouts) -> Instant {
        self.deadline_stamp(timeouts).instant()
    }

    /// [`Connection::deadline`] as a [`Stamp`], without converting the connection's clocks.
    pub(crate) fn deadline_stamp(&self, timeouts: &Timeouts) -> Stamp {
        self.clock(timeouts).1
    }

    /// Whose clock the deadline is on (what its running out means), and the deadline.
    pub(crate) fn clock(&self, timeouts: &Timeouts) -> (Clock, Stamp) {
        let client = |at: Stamp| (Clock::Client, at);
        match self.state() {
            State::Closing => client(self.last_activity.after(LINGER)),
            // A streamed body's producer sets the pace; the client leaving is seen at once.
            State::Writing if self.stalled => client(self.last_activity.after(STREAM_IDLE)),
            State::Writing => client(self.last_activity.after(timeouts.send)),
            _ if self.exchange.upstream_connecting() => (
                Clock::UpstreamConnect,
                self.upstream_activity
                    .after(timeouts.upstream_connect.min(timeouts.upstream)),
            ),
            // A body that waits on the client is the client's to send in time, as when it
            // is read here.
            _ if self.forward_waits_for_client() => {
                (Clock::ClientBody, self.last_activity.after(timeouts.header))
            }
            _ if self.exchange.is_forwarding() => (
                Clock::Upstream,
                self.upstream_activity.after(timeouts.upstream),
            ),
            State::Waiting => (
                Clock::Handler,
                self.exchange
                    .waiting_since()
                    .unwrap_or(self.last_activity)
                    .after(timeouts.handler),
            ),
            State::Reading | State::Idle if self.exchange.reading_body() => {
                client(self.last_activity.after(timeouts.header))
            }
            State::Reading | State::Idle => client(match self.head_started {
                Some(started) => started.after(timeouts.header),
                None => self.last_activity.after(timeouts.keep_alive),
            }),
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
        let max = input_limit(worker);
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
        let now = Stamp::of(now);
        self.last_activity = now;
        self.head_started.get_or_insert(now);
        self.exchange.bytes_arrived(now);
    }

    /// Moves request body bytes from the client's socket straight into the forwarded
    /// request's pipe with `recv` (given the pipe and how many bytes it may take), when the
    /// body allows it (`Content-Length`, more than a read buffer's worth left, none of it
    /// buffered). [`Splice::Full`]: the pipe must go upstream first; [`Splice::No`]: read the
    /// socket with [`Connection::read_space`] as usual.
    pub fn splice_body(
        &mut self,
        recv: impl FnOnce(&mut Pipe, usize) -> std::io::Result<usize>,
        now: Instant,
    ) -> Splice {
        if self.exchange.upstream_piped() > 0 {
            return Splice::Full;
        }
        match self.exchange.fill_body_pipe(&self.input, recv) {
            None => Splice::No,
            Some(Ok(0)) => {
                self.exchange.peer_closed();
                Splice::Moved(Ok(0))
            }
            Some(Ok(n)) => {
                let now = Stamp::of(now);
                self.last_activity = now;
                self.exchange.bytes_arrived(now);
                Splice::Moved(Ok(n))
            }
            Some(Err(e)) => Splice::Moved(Err(e)),
        }
    }

    /// Whether a TLS session has been noted (never, on plain TCP).
    pub fn knows_tls(&self) -> bool {
        self.exchange.tls_session().is_some()
    }

    /// Notes the TLS version and cipher suite the connection negotiated, for the access log.
    pub fn note_tls(&mut self, session: Option<(&'static str, &'static str)>) {
        self.exchange.set_tls_session(session);
    }

    /// Whether a read found the socket empty since its last readiness event.
    pub fn input_empty(&self) -> bool {
        self.input_empty
    }

    /// Records whether the last read found the socket empty (false: it may hold more, or a
    /// readiness event was reported since).
    pub fn set_input_empty(&mut self, empty: bool) {
        self.input_empty = empty;
    }

    /// Gives the read buffer back to the pool while it holds nothing, so an idle connection
    /// costs no buffer memory.
    pub fn release_input(&mut self, worker: &mut Worker) {
        self.input.release(worker.buffers());
    }

    /// Answers what the buffered bytes hold: parses requests and queues their responses, until
    /// the input runs out, enough output waits, or a blocking handler has the request.
    pub fn answer(&mut self, worker: &mut Worker, now: Instant) {
        self.exchange
            .process(&mut self.input, &mut self.out, worker);
        if self.exchange.is_waiting() {
            self.exchange.note_waiting(Stamp::of(now));
        }
    }

    /// Delivers a blocking handler's response for `job`; false if it came too late.
    pub fn deliver(&mut self, job: u64, response: Response, worker: &mut Worker) -> bool {
        self.exchange.deliver(job, response, &mut self.out, worker)
    }

    /// Whether the output waits for a streamed body's producer rather than the socket.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Records whether the output waits for a producer.
    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
    }

    /// Whether there is output the socket should take now.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty() && !self.stalled
    }

    /// Called once the queued responses are written: after an answered request, the next
    /// head's clock starts with its first byte.
    pub fn responses_sent(&mut self, now: Instant) {
        if self.exchange.take_answered() {
            self.head_started = (!self.input.is_empty()).then(|| Stamp::of(now));
            self.exchange.restart_clock(self.head_started);
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

    // -----------------------------------------------------------------------------------
    // A request forwarded upstream. The shell owns the upstream socket; the core writes and
    // reads through these.

    /// Whether no further request is parsed now (see [`Exchange::parsing_paused`]).
    pub fn parsing_paused(&self) -> bool {
        self.exchange.parsing_paused(&self.out)
    }

    /// Whether a request is being forwarded upstream.
    pub fn is_forwarding(&self) -> bool {
        self.exchange.is_forwarding()
    }

    /// The group (and a member to avoid) a forwarded request needs a connection for.
    pub fn upstream_wanted(&self) -> Option<(usize, Option<usize>)> {
        self.exchange.upstream_wanted()
    }

    /// Whether a kept upstream connection must pass a peek before it carries the forwarded
    /// request (see [`Exchange::upstream_needs_check`]).
    pub fn upstream_needs_check(&self) -> bool {
        self.exchange.upstream_needs_check()
    }

    /// The shell has a connection to `member` for the forwarded request, in the state `link`
    /// says (connecting, made, or kept from an earlier request).
    pub fn attach_upstream(&mut self, member: usize, link: Link, worker: &Worker, now: Instant) {
        self.exchange.attach_upstream(member, link, worker);
        self.upstream_activity = Stamp::of(now);
    }

    /// The connect to the upstream attached completed.
    pub fn upstream_connected(&mut self) {
        self.exchange.upstream_connected();
    }

    /// No upstream server can take the forwarded request: `502`.
    pub fn upstream_unavailable(&mut self, worker: &mut Worker) {
        self.exchange.upstream_unavailable(&mut self.out, worker);
    }

    /// The upstream connection failed: the request is tried elsewhere, answered `502`, or
    /// (mid-body) the client's connection is ended.
    pub fn upstream_broke(&mut self, worker: &mut Worker) {
        self.exchange.upstream_broke(&mut self.out, worker);
    }

    /// Request bytes to send upstream.
    pub fn upstream_output(&self) -> &[u8] {
        self.exchange.upstream_output()
    }

    /// Whether a forwarded request's body is not all taken from the client, and the client
    /// has closed its side: the body can never be whole, so there is nothing to answer and
    /// the upstream connection cannot be kept; the shell closes the connection.
    pub fn forwarded_body_cut_short(&self) -> bool {
        self.exchange.saw_end() && self.exchange.forwarded_body_unread()
    }

    /// Whether the forwarded request's body waits for the upstream to take what came before
    /// it: reading the client now would find no room (a shell that polls for input should
    /// not, until the upstream side moves).
    pub fn body_waits_for_upstream(&self) -> bool {
        self.exchange.upstream_piped() > 0
            || self.exchange.upstream_output().len() >= crate::proxy::forward::UPSTREAM_BUFFER
    }

    /// Whether a read of the client now could find only its end or no room: the end was
    /// read, a forwarded body waits for the upstream, or the read buffer is full while no
    /// request is parsed. A shell that polls should not ask for its input then: the poll
    /// would report it at once, again and again.
    pub fn reads_nothing_now(&self, worker: &Worker) -> bool {
        self.saw_end()
            || self.body_waits_for_upstream()
            || (self.parsing_paused() && self.input.is_full(input_limit(worker)))
    }

    /// Request body bytes waiting in a pipe, to go upstream after
    /// [`Connection::upstream_output`]'s.
    pub fn upstream_piped(&self) -> usize {
        self.exchange.upstream_piped()
    }

    /// Sends piped request body bytes upstream with `send`, at `now`.
    pub fn upstream_send_piped(
        &mut self,
        send: impl FnOnce(&mut Pipe) -> std::io::Result<usize>,
        now: Instant,
    ) -> std::io::Result<usize> {
        let n = self.exchange.upstream_send_piped(send)?;
        if n > 0 {
            self.upstream_activity = Stamp::of(now);
        }
        Ok(n)
    }

    /// Records that `n` request bytes went upstream at `now`.
    pub fn upstream_sent(&mut self, n: usize, now: Instant) {
        self.exchange.upstream_sent(n);
        if n > 0 {
            self.upstream_activity = Stamp::of(now);
        }
    }

    /// Whether response bytes may be read from upstream now: a forwarded request is attached
    /// and the client has taken enough of what came before (backpressure on the upstream).
    pub fn takes_upstream_bytes(&self) -> bool {
        self.exchange.upstream_wanted().is_none()
            && self.exchange.is_forwarding()
            && self.out.queued() < UPSTREAM_HIGH_WATER
            // One pipe in flight per response: the next is filled once the client has taken
            // the last, so a connection holds one pipe's descriptors and pages, not several.
            && !self.out.holds_pipe()
    }

    /// Reads upstream bytes with `read`, and passes on what they complete (0: the upstream
    /// closed).
    pub fn upstream_read(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
        worker: &mut Worker,
        now: Instant,
    ) -> std::io::Result<usize> {
        let n = self.exchange.upstream_fill(read)?;
        self.upstream_activity = Stamp::of(now);
        self.exchange
            .upstream_progress(n == 0, &mut self.out, worker);
        Ok(n)
    }

    /// Moves response body bytes from upstream straight to the client through a pipe, with
    /// `recv` (given the pipe and how many bytes it may take), when the body allows it (see
    /// [`Forward::splice_room`](crate::proxy::forward::Forward::splice_room)). `None`: it
    /// does not, or no pipe could be had; read with [`Connection::upstream_read`] instead.
    pub fn upstream_splice(
        &mut self,
        recv: impl FnOnce(&mut Pipe, usize) -> std::io::Result<usize>,
        worker: &mut Worker,
        now: Instant,
    ) -> Option<std::io::Result<usize>> {
        let room = self.exchange.upstream_splice_room()?;
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        let n = match self.out.fill_pipe(room, recv)? {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        self.upstream_activity = Stamp::of(now);
        self.exchange.upstream_spliced(n, &mut self.out, worker);
        Some(Ok(n))
    }

    /// Whether the response just through left its upstream connection fit for reuse.
    pub fn releases_upstream_for_reuse(&self) -> bool {
        self.exchange.releases_for_reuse()
    }

    /// The upstream connection just released holds bytes nobody asked for (or was closed):
    /// it is closed rather than kept, so they never answer another request.
    pub fn upstream_has_leftovers(&mut self) {
        self.exchange.spoil_release();
    }

    /// The upstream connection the exchange is done with: give it back to the pool or drop it.
    pub fn take_released(&mut self) -> Option<Released> {
        self.exchange.take_released()
    }

    /// Acts on `clock` having run out, where someone other than the client answers for it:
    /// a blocking handler (`504`, and the connection goes on; the late response is dropped),
    /// an upstream connect (as if refused: `502`, or a retry), a forwarded body the client
    /// stopped sending (`408`), an upstream too slow (`504`); past a forwarded response's
    /// head, the end of the connection. False for the client's own clocks.
    pub fn give_up(&mut self, clock: Clock, worker: &mut Worker) -> bool {
        match clock {
            Clock::Client => return false,
            Clock::Handler => self.exchange.give_up_waiting(&mut self.out, worker),
            Clock::UpstreamConnect => {
                log::debug!("{}: upstream connect timed out", self.peer());
                self.upstream_broke(worker);
            }
            Clock::ClientBody => {
                log::debug!("{}: client sent no more of its body in time", self.peer());
                self.exchange.client_body_timed_out(&mut self.out, worker);
            }
            Clock::Upstream => self.exchange.upstream_timed_out(&mut self.out, worker),
        }
        true
    }

    /// Whether a forwarded request waits on its client: the body is not all taken, nothing of
    /// it waits here unread, and there is room for more.
    fn forward_waits_for_client(&self) -> bool {
        self.exchange.forwarded_body_unread()
            && self.input.is_empty()
            && !self.body_waits_for_upstream()
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
            self.last_activity = Stamp::of(now);
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

    /// Whether a proxied response broke off: the connection ends without completing it.
    pub fn is_aborted(&self) -> bool {
        self.exchange.is_aborted()
    }

    /// Whether the connection can close at once, without lingering: nothing is unread, the
    /// peer is not still sending, and the socket was found empty (`drained`) or at its end.
    /// Then a plain close cannot make the kernel reset the connection under the response.
    pub fn may_close_quietly(&self, drained: bool) -> bool {
        self.input.is_empty()
            && !self.exchange.peer_may_send()
            && (drained || self.exchange.saw_end())
    }

    /// Whether the peer's end of stream has been read.
    pub fn saw_end(&self) -> bool {
        self.exchange.saw_end()
    }

    /// Whether our side is shut and the connection only discards what the peer still sends.
    pub fn is_lingering(&self) -> bool {
        self.lingering
    }

    /// Starts lingering at `now`; false if it already was.
    pub fn start_lingering(&mut self, now: Instant) -> bool {
        if self.lingering {
            return false;
        }
        self.lingering = true;
        self.last_activity = Stamp::of(now);
        true
    }

    /// Counts `n` bytes discarded while lingering; true once more than [`LINGER_BYTES`] were:
    /// a peer that keeps sending is not waited for.
    pub fn discarded(&mut self, n: usize) -> bool {
        self.lingering = true;
        // Saturates well past LINGER_BYTES, so a u32 is enough.
        self.discarded = self
            .discarded
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        self.discarded as usize > LINGER_BYTES
    }
}
