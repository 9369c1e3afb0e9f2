//! The event loop: one `mio::Poll`, a `Slab` of client sockets indexed by token, the accept
//! loop, the timers and shutdown, and the loop's upstream sockets (`upstream_sockets`). It
//! knows no HTTP and no files: each socket's connection core decides what is said on it, and
//! the worker behind them keeps the caches.

mod busy_poll;
mod upstream_sockets;

use crate::app::pool::{Mailbox, Ticket, Wake};
use crate::connection::stamp::Stamp;
use crate::connection::{Connection, Link, State, Step};
use crate::control::Control;
use crate::listener::{Listener, ListenerKind};
use crate::proxy::Upstreams;
use crate::transport::{Input, Stream, Transport, expire, pump, pump_upstream};
use crate::worker::{Notifier, Worker};
use busy_poll::BusyPoll;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};
use upstream_sockets::{Holder, UpstreamSockets};

const WAKER: Token = Token(usize::MAX - 1);
/// Readable when something the worker caches has changed.
const CHANGES: Token = Token(usize::MAX - 2);
/// Listener `i` has token `FIRST_LISTENER - i`.
const FIRST_LISTENER: usize = usize::MAX - 3;
/// At most this many listeners per loop: their tokens stay clear of the slab's.
const MAX_LISTENERS: usize = 64;
/// Set in the token of an upstream socket; the rest is its key among the loop's upstream
/// sockets.
const UPSTREAM: usize = 1 << (usize::BITS - 2);
/// Rounds of client and upstream pumping per event, at most, while either makes progress.
const FORWARD_ROUNDS: usize = 8;
/// How long accepting pauses after the process ran out of file descriptors.
const FD_BACKOFF: Duration = Duration::from_millis(100);
/// The most connections one accept round takes before it serves them.
const ACCEPT_ROUND: usize = 64;
/// The loop wakes at least this often to refresh its clocks and check shutdown.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Limits the reactor enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReactorConfig {
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long in-flight responses may run after shutdown starts.
    pub shutdown_timeout: Duration,
    /// The longest the loop polls before it sleeps after a turn that had work (see
    /// `Config::busy_poll`).
    pub busy_poll: Duration,
}

/// A client socket in the slab: its transport and connection core, and the loop's own
/// bookkeeping for it.
struct Client {
    io: Stream<TcpStream>,
    conn: Connection,
    /// The earliest deadline the timer heap holds for it.
    scheduled: Option<Stamp>,
    /// The interest registered with the poller (none before the first wait), so it is
    /// changed only when the connection's differs.
    registered: Option<Interest>,
    /// The key of the upstream socket carrying the request it forwards, if any.
    upstream: Option<usize>,
}

impl Client {
    /// The readiness it waits for: writability while output (its own or the transport's)
    /// waits, readability otherwise.
    fn interest(&self) -> Interest {
        if self.conn.wants_write() || self.io.has_pending() {
            Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }
}

/// Why accepting is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    Yes,
    /// At the connection cap: resume when a slot frees.
    Full,
    /// Out of descriptors: resume at this instant.
    BackOff(Instant),
}

/// A connection just accepted, and by which kind of listener.
type Accepted = (TcpStream, SocketAddr, ListenerKind);

/// One event loop.
pub(crate) struct Reactor {
    poll: Poll,
    /// The listening sockets; emptied when shutdown begins.
    listeners: Vec<(TcpListener, ListenerKind)>,
    accepting: Accepting,
    /// A client accepted at the cap, served first when a slot frees.
    waiting: Option<Accepted>,
    clients: Slab<Client>,
    /// Deadlines: (when, slab key, low half of the connection's id). Sixteen bytes an entry,
    /// with one or two per open connection. A key fits 32 bits (each slot holds a descriptor);
    /// an id matching by its low half alone only makes the timer look at a connection early,
    /// which re-arms it (see `expire`).
    timers: BinaryHeap<Reverse<(Stamp, u32, u32)>>,
    yielded: Vec<usize>,
    /// Connections accepted in the current round, kept to reuse its allocation.
    accepted: Vec<Accepted>,
    next_id: u64,
    worker: Worker,
    /// What other threads sent: blocking handlers' results, streams' wake-ups.
    mailbox: Receiver<Wake>,
    config: ReactorConfig,
    /// How long it polls before it sleeps, learned from its waits.
    busy_poll: BusyPoll,
    control: Arc<Control>,
    drain_deadline: Option<Instant>,
    /// The proxy's upstream servers, if any.
    upstreams: Option<Arc<Upstreams>>,
    /// Upstream sockets, busy and idle, all registered for good.
    upstream_sockets: UpstreamSockets,
    /// When idle upstream sockets are next looked at for their idle timeout.
    next_sweep: Instant,
}

impl Reactor {
    /// A loop serving `listeners` with `worker`.
    pub fn new(
        bound: Vec<Listener>,
        mut worker: Worker,
        config: ReactorConfig,
        control: Arc<Control>,
    ) -> io::Result<Reactor> {
        if bound.len() > MAX_LISTENERS {
            return Err(io::Error::other(format!(
                "at most {MAX_LISTENERS} listening addresses"
            )));
        }
        let poll = Poll::new()?;
        let mut listeners = Vec::with_capacity(bound.len());
        for (i, listener) in bound.into_iter().enumerate() {
            listener.socket.set_nonblocking(true)?;
            let mut socket = TcpListener::from_std(listener.socket);
            poll.registry()
                .register(&mut socket, Token(FIRST_LISTENER - i), Interest::READABLE)?;
            listeners.push((socket, listener.kind));
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        control.add_waker(waker.clone());
        let (mailbox, inbox) = Mailbox::new(waker);
        worker.set_notifier(Notifier::Mailbox(mailbox));
        worker.flush_access_log_per_turn();
        worker.watch_shutdown(control.clone());
        match worker.watch_changes() {
            Ok(fd) => poll
                .registry()
                .register(&mut SourceFd(&fd), CHANGES, Interest::READABLE)?,
            Err(e) => {
                log::warn!("changes cannot be watched ({e}); cached files are checked with stat")
            }
        }
        let upstreams = worker.site().upstreams.clone();
        Ok(Reactor {
            poll,
            listeners,
            accepting: Accepting::Yes,
            waiting: None,
            clients: Slab::with_capacity(1024),
            timers: BinaryHeap::new(),
            yielded: Vec::new(),
            accepted: Vec::new(),
            next_id: 0,
            worker,
            mailbox: inbox,
            busy_poll: BusyPoll::new(config.busy_poll),
            config,
            control,
            drain_deadline: None,
            upstreams,
            upstream_sockets: UpstreamSockets::default(),
            next_sweep: Instant::now() + MAX_SLEEP,
        })
    }

    /// Runs until shutdown has finished.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            // The access-log lines of the last turn, whose responses are sent or queued.
            self.worker.flush_access_log();
            let idle = Instant::now();
            let timeout = self.poll_timeout(idle);
            if let Err(e) = self.wait(&mut events, idle, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.busy_poll
                .waited((!events.is_empty()).then(|| now.duration_since(idle)));
            self.worker.tick(SystemTime::now());
            // Changes first: no request that was waiting when the poll returned is served from
            // a cache the kernel has already reported stale. The accept loop and the yielded
            // connections read past the poll, and refresh again themselves.
            if events.iter().any(|e| e.token() == CHANGES) {
                self.worker.refresh();
            }
            // Idle upstream sockets first, as the poll saw them: none that closed is taken for
            // a request before its event is read.
            if let Some(upstreams) = &self.upstreams {
                for event in events.iter() {
                    if let Some(key) = upstream_key(event.token()) {
                        self.upstream_sockets.polled(key, event, upstreams);
                    }
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.read_mailbox(now),
                    CHANGES => {}
                    Token(t) if t > FIRST_LISTENER - MAX_LISTENERS => {
                        self.accept(FIRST_LISTENER - t, now)
                    }
                    Token(t) if t & UPSTREAM != 0 => self.upstream_ready(t & !UPSTREAM, event, now),
                    Token(key) => {
                        let input = match event.is_read_closed() || event.is_error() {
                            true => Input::Closed,
                            false => Input::Ready,
                        };
                        self.drive(key, now, input)
                    }
                }
            }
            if !self.yielded.is_empty() {
                // They read on past the poll too: the same refresh as for new connections.
                self.worker.refresh();
            }
            for key in std::mem::take(&mut self.yielded) {
                // Their turn ended with bytes perhaps unread: read on.
                self.drive(key, now, Input::Closed);
            }
            self.expire(now);
            self.sweep_upstreams(now);
            self.resume_accepting(now);
            if self.control.is_shutting_down() && self.drain(now) {
                if let Some(upstreams) = &self.upstreams {
                    self.upstream_sockets.close_idle(upstreams);
                }
                self.worker.flush_access_log();
                return Ok(());
            }
        }
    }

    /// Waits up to `timeout` from `idle` (when the turn's work ended) for events. While the busy
    /// poll's window is open (never after a turn without events: such a wait shuts it), it
    /// first polls without sleeping, yielding the core between polls so a process that shares
    /// it (a backend) is not held up, until events come or the window has passed since `idle`:
    /// a core that went to sleep would take several microseconds longer to wake for the next
    /// request.
    fn wait(&mut self, events: &mut Events, idle: Instant, timeout: Duration) -> io::Result<()> {
        let spin = self.busy_poll.window().min(timeout);
        if spin.is_zero() {
            return self.poll.poll(events, Some(timeout));
        }
        loop {
            self.poll.poll(events, Some(Duration::ZERO))?;
            if !events.is_empty() {
                return Ok(());
            }
            if idle.elapsed() >= spin {
                return self.poll.poll(events, Some(timeout - spin));
            }
            std::thread::yield_now();
        }
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        if !self.yielded.is_empty() {
            return Duration::ZERO;
        }
        let mut wake = now + MAX_SLEEP;
        if let Some(Reverse((at, _, _))) = self.timers.peek() {
            wake = wake.min(at.instant());
        }
        if let Accepting::BackOff(at) = self.accepting {
            wake = wake.min(at);
        }
        wake.saturating_duration_since(now)
    }

    /// Accepts until the listener would block, the cap is reached or descriptors run out.
    ///
    /// Connections are taken in rounds: accept up to [`ACCEPT_ROUND`], then refresh the
    /// worker's caches, then serve. A connection that reached the listener during this turn
    /// (after the poll returned) carries a request sent after any change the kernel had
    /// reported by then, so the refresh after the round keeps such a request from getting a
    /// copy that is already known to be stale.
    fn accept(&mut self, listener: usize, now: Instant) {
        if self.accepting != Accepting::Yes {
            return;
        }
        let mut round = std::mem::take(&mut self.accepted);
        loop {
            let room = self
                .config
                .max_connections
                .saturating_sub(self.clients.len())
                .clamp(1, ACCEPT_ROUND);
            let more = self.accept_round(listener, &mut round, room, now);
            if !round.is_empty() {
                self.worker.refresh();
            }
            for accepted in round.drain(..) {
                self.admit(accepted, now);
            }
            if !more || self.accepting != Accepting::Yes {
                break;
            }
        }
        self.accepted = round;
    }

    /// Accepts up to `limit` connections into `round`. Returns whether the listener may hold
    /// more (the limit was reached); false once it would block, or accepting must pause.
    fn accept_round(
        &mut self,
        listener: usize,
        round: &mut Vec<Accepted>,
        limit: usize,
        now: Instant,
    ) -> bool {
        while round.len() < limit {
            let Some((socket, kind)) = self.listeners.get(listener) else {
                return false;
            };
            match socket.accept() {
                Ok((stream, peer)) => round.push((stream, peer, *kind)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    log::warn!(
                        "accept: {e}; closing idle connections and pausing accepts for {FD_BACKOFF:?}"
                    );
                    self.shed_idle(16);
                    self.pause(Accepting::BackOff(now + FD_BACKOFF));
                    return false;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    log::warn!("accept: {e}");
                    return false;
                }
            }
        }
        true
    }

    /// Serves a new client, first closing the longest-idle kept-alive connection if the cap
    /// is reached; with none idle, the client waits (accepting pauses) until a slot frees.
    fn admit(&mut self, accepted: Accepted, now: Instant) {
        if self.clients.len() >= self.config.max_connections && !self.shed_idle(1) {
            log::debug!(
                "{}: at {} connections; waiting for a slot",
                accepted.1,
                self.clients.len()
            );
            self.waiting = Some(accepted);
            self.pause(Accepting::Full);
            return;
        }
        self.open(accepted, now);
    }

    fn open(&mut self, (socket, peer, kind): Accepted, now: Instant) {
        let site = self.worker.site();
        let io = match Stream::accept(socket, kind, site.tls.as_ref(), &site.stats) {
            Ok(io) => io,
            Err(e) => return log::error!("{peer}: cannot set up its connection: {e}"),
        };
        self.next_id += 1;
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        entry.insert(Client {
            io,
            conn: Connection::open(
                peer,
                kind,
                Ticket {
                    key,
                    id: self.next_id,
                },
                now,
                self.worker.stats(),
            ),
            scheduled: None,
            registered: None,
            upstream: None,
        });
        log::trace!("{peer}: accepted as token {key}");
        // The request often arrives with the connection: serve it at once, and register only
        // a connection that has to wait (one that is answered and closed never is).
        self.drive(key, now, Input::Ready);
    }

    /// Hands what other threads sent to the connections it is for, and runs them: a blocking
    /// handler's response, or a streamed body's next piece.
    fn read_mailbox(&mut self, now: Instant) {
        while let Ok(wake) = self.mailbox.try_recv() {
            let ticket = match wake {
                Wake::Done {
                    ticket,
                    job,
                    response,
                } => {
                    let Some(client) = self
                        .clients
                        .get_mut(ticket.key)
                        .filter(|client| client.conn.id() == ticket.id)
                    else {
                        continue;
                    };
                    if !client.conn.deliver(job, response, &mut self.worker) {
                        continue;
                    }
                    ticket
                }
                Wake::Ready(ticket) => ticket,
            };
            if self.live(ticket).is_some() {
                self.drive(ticket.key, now, Input::Ready);
            }
        }
    }

    /// The client a ticket names, if it is still the one the ticket was issued to.
    fn live(&mut self, ticket: Ticket) -> Option<&mut Client> {
        self.clients
            .get_mut(ticket.key)
            .filter(|client| client.conn.id() == ticket.id)
    }

    /// Runs a connection after a readiness event (or its yield), then updates its interest
    /// and timer, or removes it. A connection that forwards a request to an upstream server
    /// runs its upstream socket too, in rounds while either side makes progress.
    fn drive(&mut self, key: usize, now: Instant, input: Input) {
        let mut step = Step::Continue;
        for round in 0..FORWARD_ROUNDS {
            let Some(client) = self.clients.get_mut(key) else {
                return;
            };
            step = pump(
                &mut client.conn,
                &mut client.io,
                &mut self.worker,
                now,
                // Later rounds run for the upstream's sake: the client raised no new event.
                if round == 0 { input } else { Input::Quiet },
            );
            if step == Step::Close || !self.forward(key, now) {
                break;
            }
            if round + 1 == FORWARD_ROUNDS {
                // Still moving: finish after the others, not on an edge that will not come.
                step = Step::Yield;
            }
        }
        match step {
            Step::Close => self.close(key),
            Step::Yield => {
                self.yielded.push(key);
                self.schedule(key);
            }
            Step::Continue => {
                if self.register(key).is_err() {
                    return self.close(key);
                }
                self.schedule(key);
            }
        }
    }

    /// Sets the client's interest with the poller, where it changed. (Upstream sockets stay
    /// registered for reading and writing from their first request to their close.)
    fn register(&mut self, key: usize) -> io::Result<()> {
        let Some(client) = self.clients.get_mut(key) else {
            return Ok(());
        };
        let registry = self.poll.registry();
        let interest = client.interest();
        if client.registered != Some(interest) {
            log::trace!("token {key}: interest {interest:?}");
            let socket = client.io.socket_mut();
            match client.registered {
                None => registry.register(socket, Token(key), interest),
                Some(_) => registry.reregister(socket, Token(key), interest),
            }
            .inspect_err(|e| log::warn!("{}: (re)register: {e}", client.conn.peer()))?;
            client.registered = Some(interest);
        }
        Ok(())
    }

    /// The forwarding side of a client: gives back the upstream connection it is done with,
    /// takes one (kept, or a new connect) for a request that needs one, and moves bytes on
    /// the upstream socket. Returns whether anything happened the client side should see.
    fn forward(&mut self, key: usize, now: Instant) -> bool {
        let Some(upstreams) = self.upstreams.as_deref() else {
            return false;
        };
        let Some(client) = self.clients.get_mut(key) else {
            return false;
        };
        let registry = self.poll.registry();
        let sockets = &mut self.upstream_sockets;
        let mut changed = release_upstream(client, upstreams, sockets, registry, now);
        if client.upstream.is_none()
            && let Some((group, avoid)) = client.conn.upstream_wanted()
        {
            changed = true;
            match upstreams.choose(group, avoid) {
                None => client.conn.upstream_unavailable(&mut self.worker),
                Some(member) => {
                    let holder = Holder::Client {
                        key,
                        id: client.conn.id(),
                    };
                    // A request that could not be sent again gets a kept connection only
                    // after a peek; one that could is sent again if the connection fails
                    // (once a kept one failed it, it is checked too).
                    let check = client.conn.upstream_needs_check();
                    match sockets.take(upstreams, member, holder, check, registry, now) {
                        Ok(up) => {
                            // Kept connections are connected; new ones are still connecting.
                            let kept = sockets.get_mut(up).is_some_and(|s| s.connected);
                            let link = if kept { Link::Kept } else { Link::Connecting };
                            client.upstream = Some(up);
                            client.conn.attach_upstream(member, link, &self.worker, now);
                        }
                        Err(e) => {
                            log::warn!("upstream {}: {e}", upstreams.member(member).addr);
                            client.conn.attach_upstream(
                                member,
                                Link::Connecting,
                                &self.worker,
                                now,
                            );
                            client.conn.upstream_broke(&mut self.worker);
                        }
                    }
                }
            }
        }
        if let Some(up) = client.upstream.and_then(|up| sockets.get_mut(up))
            && up.connected
        {
            let heard = up.heard;
            let splice = client.io.splices();
            changed |= pump_upstream(
                &mut client.conn,
                &mut up.io,
                &mut self.worker,
                now,
                heard,
                splice,
            );
            // A response just through gives its connection back before the client has it, so
            // the client's next request finds it in the pool.
            changed |= release_upstream(client, upstreams, sockets, registry, now);
        }
        changed
    }

    /// An event on an upstream socket: completes a connect, then runs the client it serves.
    fn upstream_ready(&mut self, up: usize, event: &Event, now: Instant) {
        let Some(Holder::Client { key, id }) = self.upstream_sockets.holder(up) else {
            // Idle: the poll's report was read before the turn began.
            return;
        };
        let Some(client) = self
            .clients
            .get_mut(key)
            .filter(|c| c.conn.id() == id && c.upstream == Some(up))
        else {
            return;
        };
        let Some(socket) = self.upstream_sockets.get_mut(up) else {
            return;
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            socket.heard = true;
        }
        if !socket.connected {
            match socket.io.0.take_error() {
                Ok(None) if socket.io.0.peer_addr().is_ok() => {
                    socket.connected = true;
                    client.conn.upstream_connected();
                }
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    log::debug!("{}: upstream connect failed: {e}", client.conn.peer());
                    client.conn.upstream_broke(&mut self.worker);
                }
            }
        }
        self.drive(key, now, Input::Quiet);
    }

    /// Closes upstream sockets idle past their timeout, about once a second.
    fn sweep_upstreams(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + MAX_SLEEP;
        if let Some(upstreams) = &self.upstreams {
            self.upstream_sockets.sweep(upstreams, now);
        }
    }

    /// Makes sure the timer will look at the connection by its deadline.
    fn schedule(&mut self, key: usize) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let deadline = client.conn.deadline_stamp(&self.worker.site().timeouts);
        if client.scheduled.is_none_or(|at| deadline < at) {
            client.scheduled = Some(deadline);
            let id = client.conn.id() as u32;
            self.timers.push(Reverse((deadline, key as u32, id)));
        }
    }

    /// Fires due timers. An entry is live only if it is the one the connection recorded;
    /// deadlines that moved later are re-armed, so activity never touches the heap.
    fn expire(&mut self, now: Instant) {
        let now_stamp = Stamp::of(now);
        while let Some(Reverse((at, key, id))) = self.timers.peek().copied() {
            if at > now_stamp {
                return;
            }
            self.timers.pop();
            let key = key as usize;
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            if client.conn.id() as u32 != id || client.scheduled != Some(at) {
                continue;
            }
            client.scheduled = None;
            let step = expire(&mut client.conn, &mut client.io, &mut self.worker, now);
            let upstream_side = client.upstream.is_some() || client.conn.is_forwarding();
            match step {
                Step::Close => self.close(key),
                // Run it as for an event: a forward given up hands back its upstream
                // connection, and one tried again takes another.
                _ if upstream_side => self.drive(key, now, Input::Quiet),
                _ => self.schedule(key),
            }
        }
    }

    fn close(&mut self, key: usize) {
        if !self.clients.contains(key) {
            return;
        }
        // Closing the descriptor takes it out of the epoll set: no deregister call needed.
        let mut client = self.clients.remove(key);
        if let (Some(up), Some(upstreams)) = (client.upstream.take(), &self.upstreams) {
            let reusable = match client.conn.take_released() {
                // The response was through before the client's connection ended.
                Some(released) => {
                    upstreams.finished(released.member as usize, released.failed);
                    released.reusable
                }
                // The client went, not the upstream: the member is not counted as failing.
                None => {
                    if let Some(socket) = self.upstream_sockets.get_mut(up) {
                        upstreams.finished(socket.member, false);
                    }
                    false
                }
            };
            let registry = self.poll.registry();
            self.upstream_sockets
                .give_back(up, reusable, upstreams, registry, Instant::now());
        }
        log::trace!("{}: token {key} closed", client.conn.peer());
        client.conn.close(&mut self.worker);
    }

    /// Closes up to `n` of the longest-idle kept-alive connections. Returns whether any was.
    /// One pass per connection closed, and no allocation: this runs for every client that
    /// arrives while the server is at its cap.
    fn shed_idle(&mut self, n: usize) -> bool {
        let mut shed = 0;
        while shed < n {
            let oldest = self
                .clients
                .iter()
                .filter(|(_, c)| c.conn.state() == State::Idle)
                .min_by_key(|(_, c)| c.conn.last_activity())
                .map(|(key, _)| key);
            let Some(key) = oldest else { break };
            log::debug!("closing idle token {key} to make room");
            self.worker.stats().connection_shed();
            self.close(key);
            shed += 1;
        }
        shed > 0
    }

    fn pause(&mut self, why: Accepting) {
        self.accepting = why;
        for (listener, _) in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
    }

    /// Accepts again once the back-off has passed or a slot has freed, serving the client
    /// that waited first.
    fn resume_accepting(&mut self, now: Instant) {
        let ready = match self.accepting {
            Accepting::Yes => false,
            Accepting::Full => self.clients.len() < self.config.max_connections,
            Accepting::BackOff(at) => now >= at,
        };
        if !ready || self.listeners.is_empty() {
            return;
        }
        self.accepting = Accepting::Yes;
        if let Some(accepted) = self.waiting.take() {
            self.open(accepted, now);
        }
        for (i, (listener, _)) in self.listeners.iter_mut().enumerate() {
            let token = Token(FIRST_LISTENER - i);
            if let Err(e) = self
                .poll
                .registry()
                .register(listener, token, Interest::READABLE)
            {
                log::error!("cannot resume accepting: {e}");
            }
        }
        // Clients that queued meanwhile raise no new edge: take them up now.
        for i in 0..self.listeners.len() {
            self.accept(i, now);
        }
    }

    /// Graceful shutdown: stop accepting, close idle connections, let the rest finish until
    /// the deadline. Returns true when the loop may exit.
    fn drain(&mut self, now: Instant) -> bool {
        if self.drain_deadline.is_none() {
            self.drain_deadline = Some(now + self.config.shutdown_timeout);
            self.worker.drain();
            // Admin listeners stay open while the rest finishes: a load balancer's probe of
            // /healthz gets its 503 rather than a refused connection.
            for (mut listener, kind) in std::mem::take(&mut self.listeners) {
                let _ = self.poll.registry().deregister(&mut listener);
                if kind == ListenerKind::Admin {
                    self.listeners.push((listener, kind));
                }
            }
            if self.accepting == Accepting::Yes {
                for (i, (listener, _)) in self.listeners.iter_mut().enumerate() {
                    let token = Token(FIRST_LISTENER - i);
                    let _ = self
                        .poll
                        .registry()
                        .register(listener, token, Interest::READABLE);
                }
            }
            self.waiting = None;
            log::info!("shutting down: {} connections open", self.clients.len());
        }
        let idle: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| c.conn.awaits_request())
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close(key);
        }
        if self.clients.is_empty() {
            return true;
        }
        if self.drain_deadline.is_some_and(|at| now >= at) {
            for (_, client) in &self.clients {
                log::warn!(
                    "shutdown cut short a response to {} ({:?})",
                    client.conn.peer(),
                    client.conn.state()
                );
            }
            return true;
        }
        false
    }
}

/// Gives back the upstream connection the client's exchange is done with: to a pool if it
/// can carry another request, else closed. Returns whether there was one.
fn release_upstream(
    client: &mut Client,
    upstreams: &Upstreams,
    sockets: &mut UpstreamSockets,
    registry: &Registry,
    now: Instant,
) -> bool {
    let Some(released) = client.conn.take_released() else {
        return false;
    };
    upstreams.finished(released.member as usize, released.failed);
    if let Some(up) = client.upstream.take() {
        sockets.give_back(up, released.reusable, upstreams, registry, now);
    }
    true
}

/// The key of the upstream socket a token names, if it names one.
fn upstream_key(token: Token) -> Option<usize> {
    let Token(t) = token;
    (t <= FIRST_LISTENER - MAX_LISTENERS && t & UPSTREAM != 0).then_some(t & !UPSTREAM)
}
#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    /// An idle kept-alive connection costs little more than its slot in the slab (the budget
    /// in docs/performance.md is 400 bytes per connection, slot and timer entry included);
    /// a field added to the connection's state shows up here first.
    #[test]
    fn a_clients_slot_stays_within_its_budget() {
        let size = std::mem::size_of::<super::Client>();
        assert!(size <= 264, "a client's slot grew to {size} bytes");
    }
}
