//! The event loop: one `mio::Poll`, a `Slab` of connections indexed by token, the accept loop,
//! the timers and shutdown. It knows no HTTP: connections do that.

use crate::connection::{Connection, Step, Timeouts};
use crate::site::Site;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const FILE_CHANGES: Token = Token(usize::MAX - 3);
/// How long accepting pauses after the process ran out of file descriptors.
const FD_BACKOFF: Duration = Duration::from_millis(100);
/// The most connections one accept round takes before it serves them.
const ACCEPT_ROUND: usize = 64;
/// The loop wakes at least this often to refresh its clocks and check shutdown.
const MAX_SLEEP: Duration = Duration::from_secs(1);

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

/// Limits the reactor enforces.
#[derive(Debug, Clone, Copy)]
pub struct ReactorConfig {
    /// Per-connection timeouts.
    pub timeouts: Timeouts,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long in-flight responses may run after shutdown starts.
    pub shutdown_timeout: Duration,
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

/// One event loop.
pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    accepting: Accepting,
    /// A client accepted at the cap, served first when a slot frees.
    waiting: Option<(TcpStream, SocketAddr)>,
    connections: Slab<Connection>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    yielded: Vec<usize>,
    /// Connections accepted in the current round, kept to reuse its allocation.
    accepted: Vec<(TcpStream, SocketAddr)>,
    next_id: u64,
    site: Site,
    config: ReactorConfig,
    control: Arc<Control>,
    drain_deadline: Option<Instant>,
}

impl Reactor {
    /// A loop serving `listener` with `site`.
    pub fn new(
        listener: std::net::TcpListener,
        site: Site,
        config: ReactorConfig,
        control: Arc<Control>,
    ) -> io::Result<Reactor> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        control.add_waker(Arc::new(Waker::new(poll.registry(), WAKER)?));
        let mut site = site;
        match site.files.watch_changes() {
            Ok(fd) => {
                poll.registry()
                    .register(&mut SourceFd(&fd), FILE_CHANGES, Interest::READABLE)?
            }
            Err(e) => log::warn!(
                "file changes cannot be watched ({e}); cached files are checked with stat"
            ),
        }
        Ok(Reactor {
            poll,
            listener: Some(listener),
            accepting: Accepting::Yes,
            waiting: None,
            connections: Slab::with_capacity(1024),
            timers: BinaryHeap::new(),
            yielded: Vec::new(),
            accepted: Vec::new(),
            next_id: 0,
            site,
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
            self.site.tick(SystemTime::now());
            // Changed files first: no request that was waiting when the poll returned is served
            // a copy the kernel has already reported stale. The accept loop and the yielded
            // connections read past the poll, and check again themselves.
            if events.iter().any(|e| e.token() == FILE_CHANGES) {
                self.site.files.apply_changes();
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER | FILE_CHANGES => {}
                    Token(key) => self.drive(key, now, event.is_read_closed() || event.is_error()),
                }
            }
            if !self.yielded.is_empty() {
                // They read on past the poll too: the same check as for new connections.
                self.site.files.apply_changes();
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
    /// Connections are taken in rounds: accept up to [`ACCEPT_ROUND`], then read the file
    /// change notifications, then serve. A connection that reached the listener during this
    /// turn (after the poll returned) carries a request sent after any change the kernel had
    /// reported by then, so the check after the round keeps such a request from getting a
    /// copy that is already known to be stale.
    fn accept(&mut self, now: Instant) {
        if self.accepting != Accepting::Yes {
            return;
        }
        let mut round = std::mem::take(&mut self.accepted);
        loop {
            let room = self
                .config
                .max_connections
                .saturating_sub(self.connections.len())
                .clamp(1, ACCEPT_ROUND);
            let more = self.accept_round(&mut round, room, now);
            if !round.is_empty() {
                self.site.files.apply_changes();
            }
            for (socket, peer) in round.drain(..) {
                self.admit(socket, peer, now);
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
        round: &mut Vec<(TcpStream, SocketAddr)>,
        limit: usize,
        now: Instant,
    ) -> bool {
        while round.len() < limit {
            let Some(listener) = &self.listener else {
                return false;
            };
            match listener.accept() {
                Ok(pair) => round.push(pair),
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
    fn admit(&mut self, socket: TcpStream, peer: SocketAddr, now: Instant) {
        if self.connections.len() >= self.config.max_connections && !self.shed_idle(1) {
            log::debug!(
                "{peer}: at {} connections; waiting for a slot",
                self.connections.len()
            );
            self.waiting = Some((socket, peer));
            self.pause(Accepting::Full);
            return;
        }
        self.open(socket, peer, now);
    }

    fn open(&mut self, socket: TcpStream, peer: SocketAddr, now: Instant) {
        self.next_id += 1;
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        entry.insert(Connection::new(socket, peer, self.next_id, now));
        self.site.app.stats.connection_opened();
        log::trace!("{peer}: accepted as token {key}");
        // The request often arrives with the connection: serve it at once, and register only
        // a connection that has to wait (one that is answered and closed never is).
        self.drive(key, now, false);
    }

    /// Runs a connection after a readiness event (or its yield), then updates its interest
    /// and timer, or removes it.
    fn drive(&mut self, key: usize, now: Instant, read_closed: bool) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        match connection.drive(&mut self.site, now, read_closed) {
            Step::Close => self.close(key),
            Step::Yield => {
                self.yielded.push(key);
                self.schedule(key);
            }
            Step::Continue => {
                let interest = connection.interest();
                if connection.registered != Some(interest) {
                    log::trace!("token {key}: interest {interest:?}");
                    let registry = self.poll.registry();
                    let registered = connection.registered;
                    let socket = connection.socket();
                    let done = match registered {
                        None => registry.register(socket, Token(key), interest),
                        Some(_) => registry.reregister(socket, Token(key), interest),
                    };
                    if let Err(e) = done {
                        log::warn!("{}: (re)register: {e}", connection.peer());
                        return self.close(key);
                    }
                    connection.registered = Some(interest);
                }
                self.schedule(key);
            }
        }
    }

    /// Makes sure the timer will look at the connection by its deadline.
    fn schedule(&mut self, key: usize) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        let deadline = connection.deadline(&self.config.timeouts);
        if connection.scheduled.is_none_or(|at| deadline < at) {
            connection.scheduled = Some(deadline);
            self.timers.push(Reverse((deadline, key, connection.id)));
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
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            if connection.id != id || connection.scheduled != Some(at) {
                continue;
            }
            connection.scheduled = None;
            match connection.on_deadline(&mut self.site, &self.config.timeouts, now) {
                Step::Close => self.close(key),
                _ => self.schedule(key),
            }
        }
    }

    fn close(&mut self, key: usize) {
        if !self.connections.contains(key) {
            return;
        }
        // Closing the descriptor takes it out of the epoll set: no deregister call needed.
        let connection = self.connections.remove(key);
        self.site.app.stats.connection_closed(connection.phase());
        log::trace!("{}: token {key} closed", connection.peer());
        connection.retire(&mut self.site);
    }

    /// Closes up to `n` of the longest-idle kept-alive connections. Returns whether any was.
    /// One pass per connection closed, and no allocation: this runs for every client that
    /// arrives while the server is at its cap.
    fn shed_idle(&mut self, n: usize) -> bool {
        let mut shed = 0;
        while shed < n {
            let oldest = self
                .connections
                .iter()
                .filter(|(_, c)| c.is_kept_alive_idle())
                .min_by_key(|(_, c)| c.last_activity())
                .map(|(key, _)| key);
            let Some(key) = oldest else { break };
            log::debug!("closing idle token {key} to make room");
            self.close(key);
            shed += 1;
        }
        shed > 0
    }

    fn pause(&mut self, why: Accepting) {
        self.accepting = why;
        if let Some(listener) = &mut self.listener {
            let _ = self.poll.registry().deregister(listener);
        }
    }

    /// Accepts again once the back-off has passed or a slot has freed, serving the client
    /// that waited first.
    fn resume_accepting(&mut self, now: Instant) {
        let ready = match self.accepting {
            Accepting::Yes => false,
            Accepting::Full => self.connections.len() < self.config.max_connections,
            Accepting::BackOff(at) => now >= at,
        };
        if !ready || self.listener.is_none() {
            return;
        }
        self.accepting = Accepting::Yes;
        if let Some((socket, peer)) = self.waiting.take() {
            self.open(socket, peer, now);
        }
        self.register_listener();
        self.accept(now);
    }

    fn register_listener(&mut self) {
        if let Some(listener) = &mut self.listener
            && let Err(e) = self
                .poll
                .registry()
                .register(listener, LISTENER, Interest::READABLE)
        {
            log::error!("cannot resume accepting: {e}");
        }
    }

    /// Graceful shutdown: stop accepting, close idle connections, let the rest finish until
    /// the deadline. Returns true when the loop may exit.
    fn drain(&mut self, now: Instant) -> bool {
        if self.drain_deadline.is_none() {
            self.drain_deadline = Some(now + self.config.shutdown_timeout);
            self.site.draining = true;
            if let Some(mut listener) = self.listener.take() {
                let _ = self.poll.registry().deregister(&mut listener);
            }
            self.waiting = None;
            log::info!("shutting down: {} connections open", self.connections.len());
        }
        let idle: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| c.is_idle())
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close(key);
        }
        if self.connections.is_empty() {
            return true;
        }
        if self.drain_deadline.is_some_and(|at| now >= at) {
            for (_, connection) in &self.connections {
                log::warn!(
                    "shutdown cut short a response to {} ({:?})",
                    connection.peer(),
                    connection.state()
                );
            }
            return true;
        }
        false
    }
}
