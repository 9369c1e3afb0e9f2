//! The event loop: one `mio::Poll`, a `Slab` of client sockets indexed by token, the accept
//! loop, the timers and shutdown. It knows no HTTP and no files: each socket's connection core
//! decides what is said on it, and the worker behind them keeps the caches.

use crate::connection::{Connection, State, Step};
use crate::control::Control;
use crate::listener::{Listener, ListenerKind};
use crate::transport::{Stream, Transport, expire, pump};
use crate::worker::Worker;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const WAKER: Token = Token(usize::MAX - 1);
/// Readable when something the worker caches has changed.
const CHANGES: Token = Token(usize::MAX - 2);
/// Listener `i` has token `FIRST_LISTENER - i`.
const FIRST_LISTENER: usize = usize::MAX - 3;
/// At most this many listeners per loop: their tokens stay clear of the slab's.
const MAX_LISTENERS: usize = 64;
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
}

/// A client socket in the slab: its transport and connection core, and the loop's own
/// bookkeeping for it.
struct Client {
    io: Stream<TcpStream>,
    conn: Connection,
    /// The earliest deadline the timer heap holds for it.
    scheduled: Option<Instant>,
    /// Distinguishes it from later clients that reuse its slab slot.
    id: u64,
    /// The interest registered with the poller (none before the first wait), so it is
    /// changed only when the connection's differs.
    registered: Option<Interest>,
}

impl Client {
    /// The readiness it waits for: writability while output (its own or the transport's)
    /// waits, readability otherwise.
    fn interest(&self) -> Interest {
        if self.conn.has_output() || self.io.has_pending() {
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
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    yielded: Vec<usize>,
    /// Connections accepted in the current round, kept to reuse its allocation.
    accepted: Vec<Accepted>,
    next_id: u64,
    worker: Worker,
    config: ReactorConfig,
    control: Arc<Control>,
    drain_deadline: Option<Instant>,
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
        control.add_waker(Arc::new(Waker::new(poll.registry(), WAKER)?));
        match worker.watch_changes() {
            Ok(fd) => poll
                .registry()
                .register(&mut SourceFd(&fd), CHANGES, Interest::READABLE)?,
            Err(e) => {
                log::warn!("changes cannot be watched ({e}); cached files are checked with stat")
            }
        }
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
            config,
            control,
            drain_deadline: None,
        })
    }

    /// Runs until shutdown has finished.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.worker.tick(SystemTime::now());
            // Changes first: no request that was waiting when the poll returned is served from
            // a cache the kernel has already reported stale. The accept loop and the yielded
            // connections read past the poll, and refresh again themselves.
            if events.iter().any(|e| e.token() == CHANGES) {
                self.worker.refresh();
            }
            for event in events.iter() {
                match event.token() {
                    WAKER | CHANGES => {}
                    Token(t) if t > FIRST_LISTENER - MAX_LISTENERS => {
                        self.accept(FIRST_LISTENER - t, now)
                    }
                    Token(key) => self.drive(key, now, event.is_read_closed() || event.is_error()),
                }
            }
            if !self.yielded.is_empty() {
                // They read on past the poll too: the same refresh as for new connections.
                self.worker.refresh();
            }
            for key in std::mem::take(&mut self.yielded) {
                self.drive(key, now, true);
            }
            self.expire(now);
            self.resume_accepting(now);
            if self.control.is_shutting_down() && self.drain(now) {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        if !self.yielded.is_empty() {
            return Duration::ZERO;
        }
        let mut wake = now + MAX_SLEEP;
        if let Some(Reverse((at, _, _))) = self.timers.peek() {
            wake = wake.min(*at);
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
            conn: Connection::open(peer, kind, now, self.worker.stats()),
            scheduled: None,
            id: self.next_id,
            registered: None,
        });
        log::trace!("{peer}: accepted as token {key}");
        // The request often arrives with the connection: serve it at once, and register only
        // a connection that has to wait (one that is answered and closed never is).
        self.drive(key, now, false);
    }

    /// Runs a connection after a readiness event (or its yield), then updates its interest
    /// and timer, or removes it.
    fn drive(&mut self, key: usize, now: Instant, read_closed: bool) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        match pump(
            &mut client.conn,
            &mut client.io,
            &mut self.worker,
            now,
            read_closed,
        ) {
            Step::Close => self.close(key),
            Step::Yield => {
                self.yielded.push(key);
                self.schedule(key);
            }
            Step::Continue => {
                let interest = client.interest();
                if client.registered != Some(interest) {
                    log::trace!("token {key}: interest {interest:?}");
                    let registry = self.poll.registry();
                    let socket = client.io.socket_mut();
                    let done = match client.registered {
                        None => registry.register(socket, Token(key), interest),
                        Some(_) => registry.reregister(socket, Token(key), interest),
                    };
                    if let Err(e) = done {
                        log::warn!("{}: (re)register: {e}", client.conn.peer());
                        return self.close(key);
                    }
                    client.registered = Some(interest);
                }
                self.schedule(key);
            }
        }
    }

    /// Makes sure the timer will look at the connection by its deadline.
    fn schedule(&mut self, key: usize) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let deadline = client.conn.deadline(&self.worker.site().timeouts);
        if client.scheduled.is_none_or(|at| deadline < at) {
            client.scheduled = Some(deadline);
            self.timers.push(Reverse((deadline, key, client.id)));
        }
    }

    /// Fires due timers. An entry is live only if it is the one the connection recorded;
    /// deadlines that moved later are re-armed, so activity never touches the heap.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, key, id))) = self.timers.peek().copied() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            if client.id != id || client.scheduled != Some(at) {
                continue;
            }
            client.scheduled = None;
            match expire(&mut client.conn, &mut client.io, &mut self.worker, now) {
                Step::Close => self.close(key),
                _ => self.schedule(key),
            }
        }
    }

    fn close(&mut self, key: usize) {
        if !self.clients.contains(key) {
            return;
        }
        // Closing the descriptor takes it out of the epoll set: no deregister call needed.
        let client = self.clients.remove(key);
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
            for (mut listener, _) in self.listeners.drain(..) {
                let _ = self.poll.registry().deregister(&mut listener);
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
