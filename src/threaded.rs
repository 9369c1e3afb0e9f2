//! The classic model beside the event loop: a thread accepts, and each client gets a thread
//! of its own with blocking `std::net` I/O. Each thread pumps the same
//! [`Connection`](crate::connection::Connection) core as the event loop, through the same
//! transport, so every protocol decision (and every timeout and linger rule) is the same code;
//! only the waiting differs: a blocked read or write instead of a readiness event.

use crate::app::pool::Ticket;
use crate::connection::{Connection, Link, State, Step};
use crate::control::Control;
use crate::listener::{Listener, ListenerKind};
use crate::proxy::Upstreams;
use crate::transport::{Input, Plain, Stream, Transport, expire, pump, pump_upstream};
use crate::worker::{Doorbell, Notifier, Worker};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A connection just accepted, and by which kind of listener.
type Accepted = (TcpStream, SocketAddr, ListenerKind);

/// How long a read looks for a departed client while a stream waits for its producer.
const STALLED_READ: Duration = Duration::from_millis(1);

/// Longest a blocked read waits before looking at the shutdown flag again.
const POLL_SLICE: Duration = Duration::from_millis(250);

/// Settings for the thread model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadConfig {
    /// Most connection threads at once.
    pub max_connections: usize,
    /// How long in-flight responses may run after shutdown starts.
    pub shutdown_timeout: Duration,
}

/// The open connections: counted against the cap, and each one's idle state known so the
/// acceptor can close the longest-idle one when a new client needs its slot.
#[derive(Default)]
struct Registry {
    open: Mutex<HashMap<u64, Tracked>>,
    next_id: AtomicU64,
    /// Workers (with their warm file caches) left by finished connections, for the next ones.
    spare_workers: Mutex<Vec<Worker>>,
}

/// Most workers kept for reuse; each holds a file cache.
const SPARE_WORKERS: usize = 64;

struct Tracked {
    /// The connection's socket, shared with its thread (one descriptor), to shut it down
    /// from the acceptor.
    socket: Arc<TcpStream>,
    idle_since: Option<Instant>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Tracked>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn add(&self, socket: &Arc<TcpStream>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tracked = Tracked {
            socket: socket.clone(),
            idle_since: None,
        };
        self.lock().insert(id, tracked);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(tracked) = self.lock().get_mut(&id) {
            tracked.idle_since = idle.then(Instant::now);
        }
    }

    /// A worker for a new connection: a spare one whose file cache is warm, or a fresh one.
    fn take_worker(&self, template: &Worker) -> Worker {
        let spare = self
            .spare_workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        spare.unwrap_or_else(|| template.sibling())
    }

    /// Keeps a finished connection's worker for a later one.
    fn give_worker(&self, worker: Worker) {
        let mut spare = self
            .spare_workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if spare.len() < SPARE_WORKERS {
            spare.push(worker);
        }
    }

    /// Shuts down the longest-idle kept-alive connection (its thread then sees end of stream
    /// and exits). Returns whether there was one.
    fn shed_oldest_idle(&self) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter_mut()
            .filter(|(_, t)| t.idle_since.is_some())
            .min_by_key(|(_, t)| t.idle_since);
        let Some((_, tracked)) = oldest else {
            return false;
        };
        tracked.idle_since = None;
        let _ = tracked.socket.shutdown(Shutdown::Both);
        true
    }
}

/// Accepts on the listeners and serves each client on its own thread until shutdown.
pub(crate) fn run(
    bound: Vec<Listener>,
    worker: Worker,
    config: ThreadConfig,
    control: Arc<Control>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listeners = Vec::with_capacity(bound.len());
    for (i, listener) in bound.into_iter().enumerate() {
        listener.socket.set_nonblocking(true)?;
        let mut socket = mio::net::TcpListener::from_std(listener.socket);
        poll.registry()
            .register(&mut socket, Token(i + 1), Interest::READABLE)?;
        listeners.push((socket, listener.kind));
    }
    control.add_waker(Arc::new(Waker::new(poll.registry(), Token(0))?));
    let registry = Arc::new(Registry::default());
    let mut waiting: Option<Accepted> = None;
    let mut events = Events::with_capacity(64);
    while !control.is_shutting_down() {
        // A client waiting for a slot is looked at often; otherwise sleep until an event.
        let slice = if waiting.is_some() {
            Duration::from_millis(10)
        } else {
            POLL_SLICE
        };
        if let Err(e) = poll.poll(&mut events, Some(slice))
            && e.kind() != io::ErrorKind::Interrupted
        {
            return Err(e);
        }
        if let Some(accepted) = waiting.take() {
            if registry.len() < config.max_connections {
                start(accepted, &worker, &control, &registry);
            } else {
                waiting = Some(accepted);
                continue;
            }
        }
        for (listener, kind) in &listeners {
            waiting = accept_all(listener, *kind, &worker, &config, &control, &registry);
            if waiting.is_some() {
                break;
            }
        }
    }
    // Admin listeners stay open while the rest finishes: a load balancer's probe of /healthz
    // gets its 503 rather than a refused connection.
    listeners.retain(|(_, kind)| *kind == ListenerKind::Admin);
    let deadline = Instant::now() + config.shutdown_timeout;
    while registry.len() > 0 && Instant::now() < deadline {
        if listeners.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
        for (listener, kind) in &listeners {
            // At the cap a newcomer is not kept waiting now: it is closed.
            let _ = accept_all(listener, *kind, &worker, &config, &control, &registry);
        }
    }
    let left = registry.len();
    if left > 0 {
        log::warn!("shutdown cut short {left} connections");
    }
    Ok(())
}

/// Accepts until the listener would block. At the cap the longest-idle connection is closed
/// for the newcomer; with none idle, the newcomer is returned to wait for a slot.
fn accept_all(
    listener: &mio::net::TcpListener,
    kind: ListenerKind,
    worker: &Worker,
    config: &ThreadConfig,
    control: &Arc<Control>,
    registry: &Arc<Registry>,
) -> Option<Accepted> {
    loop {
        let (socket, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                return None;
            }
        };
        // mio's stream and std's share the descriptor; take it back as a std socket.
        let socket = TcpStream::from(std::os::fd::OwnedFd::from(socket));
        if registry.len() >= config.max_connections {
            if !registry.shed_oldest_idle() {
                log::debug!("{peer}: at the connection cap; waiting for a slot");
                return Some((socket, peer, kind));
            }
            worker.stats().connection_shed();
        }
        start((socket, peer, kind), worker, control, registry);
    }
}

/// Starts the thread that serves one client.
fn start(
    (socket, peer, kind): Accepted,
    worker: &Worker,
    control: &Arc<Control>,
    registry: &Arc<Registry>,
) {
    // Reusing a finished connection's worker saves resolving and reading every file anew.
    let mut own = registry.take_worker(worker);
    let (control, registry) = (control.clone(), registry.clone());
    let socket = Arc::new(socket);
    let id = registry.add(&socket);
    let thread_registry = registry.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("margay-conn-{peer}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let idle = |idle: bool| thread_registry.set_idle(id, idle);
            serve(&socket, peer, kind, &mut own, &control, &idle);
            thread_registry.remove(id);
            thread_registry.give_worker(own);
        });
    if let Err(e) = spawned {
        log::warn!("{peer}: cannot start a thread: {e}");
        registry.remove(id);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serves one client with blocking reads and writes until its connection ends: pumps the
/// connection core, and where the event loop would wait for readiness, blocks in the socket
/// instead (for at most [`POLL_SLICE`], so shutdown and deadlines are seen).
fn serve(
    socket: &TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    worker: &mut Worker,
    control: &Arc<Control>,
    idle: &dyn Fn(bool),
) {
    let now = Instant::now();
    let doorbell = Arc::new(Doorbell::default());
    worker.set_notifier(Notifier::Doorbell(doorbell.clone()));
    worker.watch_shutdown(control.clone());
    let ticket = Ticket { key: 0, id: 0 };
    let mut conn = Connection::open(peer, kind, ticket, now, worker.stats());
    let site = worker.site();
    let mut io = match Stream::accept(socket, kind, site.tls.as_ref(), &site.stats) {
        Ok(io) => io,
        Err(e) => {
            log::error!("{peer}: cannot set up its connection: {e}");
            return conn.close(worker);
        }
    };
    if let Err(e) = socket.set_nonblocking(false) {
        log::warn!("{peer}: cannot make the socket blocking: {e}");
        return conn.close(worker);
    }
    let mut was_idle = false;
    let mut upstream: Option<Upstream> = None;
    // Whether the client socket is non-blocking now (it was just made blocking).
    let mut nonblocking = false;
    // A connection accepted during shutdown (on an admin listener) gets its first request read.
    let mut fresh = true;
    loop {
        let now = Instant::now();
        worker.tick(SystemTime::now());
        if control.is_shutting_down() {
            worker.drain();
            if conn.awaits_request() && !fresh {
                break;
            }
        }
        fresh = false;
        if conn.state() == State::Idle {
            // A thread serves one connection: pipes kept for its next body would hold two
            // descriptors each through every idle keep-alive.
            crate::transport::pipe::close_spares();
        }
        // Each blocking call waits no longer than the deadline (or a slice of it).
        let deadline = conn.deadline(&worker.site().timeouts);
        if now >= deadline {
            if expire(&mut conn, &mut io, worker, now) == Step::Close {
                break;
            }
            continue;
        }
        let wait = (deadline - now).min(POLL_SLICE);
        // While a request is forwarded, the thread watches two sockets: both go non-blocking
        // and it waits in poll(2) instead of in a read.
        let forwarding = conn.is_forwarding() || upstream.is_some();
        if forwarding != nonblocking {
            if socket.set_nonblocking(forwarding).is_err() {
                break;
            }
            nonblocking = forwarding;
        }
        // Waiting for a stream's producer, a read only looks for a client that left; the
        // doorbell below is where the thread waits.
        let read_wait = if conn.is_stalled() {
            STALLED_READ
        } else {
            wait
        };
        let _ = socket.set_read_timeout(Some(read_wait));
        let _ = socket.set_write_timeout(Some(wait));
        let step = pump(&mut conn, &mut io, worker, now, Input::Ready);
        if step == Step::Close {
            break;
        }
        if conn.is_forwarding() || upstream.is_some() {
            if forward(&mut conn, &mut upstream, worker, io.splices()) {
                continue;
            }
            if step == Step::Continue {
                let client = if conn.wants_write() || io.has_pending() {
                    libc::POLLOUT
                } else if conn.reads_nothing_now(worker) {
                    // A hang-up or an error still wakes the thread.
                    0
                } else {
                    libc::POLLIN
                };
                if wait_for_either(socket, client, upstream.as_ref(), &conn, wait) {
                    // Reset, or shut both ways: no answer can reach it, and poll(2) would
                    // report the hang-up at once, again and again.
                    log::debug!("{}: client went away mid-exchange", conn.peer());
                    break;
                }
            }
            continue;
        }
        if step == Step::Continue && conn.is_stalled() {
            doorbell.wait(wait);
        }
        let is_idle = conn.state() == State::Idle;
        if is_idle != was_idle {
            idle(is_idle);
            was_idle = is_idle;
        }
    }
    if let (Some(up), Some(upstreams)) = (upstream, &worker.site().upstreams) {
        match conn.take_released() {
            // The response was through before the client's connection ended.
            Some(released) => {
                upstreams.finished(released.member as usize, released.failed);
                if released.reusable {
                    upstreams.give_idle(up.member, up.io.0);
                }
            }
            // The client went, not the upstream: the member is not counted as failing.
            None => upstreams.finished(up.member, false),
        }
    }
    conn.close(worker);
}

/// A connection to an upstream server, in the thread of the client whose request it carries.
struct Upstream {
    io: Plain<TcpStream>,
    member: usize,
}

/// The forwarding side of a connection thread, as the event loop has it: gives back the
/// upstream connection it is done with, connects (blocking, bounded by the connect timeout) or
/// takes a kept connection for a request that needs one, and moves bytes on it (`splice`: the
/// client's transport can send from a pipe). Returns whether anything happened.
fn forward(
    conn: &mut Connection,
    upstream: &mut Option<Upstream>,
    worker: &mut Worker,
    splice: bool,
) -> bool {
    let Some(upstreams) = worker.site().upstreams.clone() else {
        return false;
    };
    let mut changed = release_upstream(conn, upstream, &upstreams);
    if upstream.is_none()
        && let Some((group, avoid)) = conn.upstream_wanted()
    {
        changed = true;
        match upstreams.choose(group, avoid) {
            None => conn.upstream_unavailable(worker),
            Some(member) => {
                let timeouts = &worker.site().timeouts;
                let timeout = timeouts.upstream_connect.min(timeouts.upstream);
                // A kept connection is set up already (non-blocking, no delay).
                let kept = upstreams.take_idle(member);
                // The connect below blocks until it is made (or fails).
                let link = if kept.is_some() {
                    Link::Kept
                } else {
                    Link::New
                };
                let socket = kept.map(Ok).unwrap_or_else(|| {
                    let addr = upstreams.member(member).addr;
                    TcpStream::connect_timeout(&addr, timeout).and_then(|s| {
                        s.set_nonblocking(true)?;
                        let _ = s.set_nodelay(true);
                        Ok(s)
                    })
                });
                // Timed from now: the connect may have blocked for a while.
                conn.attach_upstream(member, link, worker, Instant::now());
                match socket {
                    Ok(socket) => {
                        *upstream = Some(Upstream {
                            io: Plain(socket),
                            member,
                        });
                    }
                    Err(e) => {
                        log::warn!("upstream {}: {e}", upstreams.member(member).addr);
                        conn.upstream_broke(worker);
                    }
                }
            }
        }
    }
    if let Some(up) = upstream.as_mut() {
        changed |= pump_upstream(conn, &mut up.io, worker, Instant::now(), true, splice);
        // A response just through gives its connection back before the client has it, so
        // the client's next request (on another thread) finds it in the pool.
        changed |= release_upstream(conn, upstream, &upstreams);
    }
    changed
}

/// Gives back the upstream connection the exchange is done with: to the pool if it can carry
/// another request, else closed. Returns whether there was one.
fn release_upstream(
    conn: &mut Connection,
    upstream: &mut Option<Upstream>,
    upstreams: &Upstreams,
) -> bool {
    let Some(released) = conn.take_released() else {
        return false;
    };
    upstreams.finished(released.member as usize, released.failed);
    if let Some(up) = upstream.take()
        && released.reusable
    {
        upstreams.give_idle(up.member, up.io.0);
    }
    true
}

/// Waits up to `wait` until the client socket is ready for `client` (POLLIN or POLLOUT) or
/// the upstream socket for what the forwarded request needs; true if the client's socket
/// hung up (reset, or shut both ways).
fn wait_for_either(
    socket: &TcpStream,
    client: libc::c_short,
    upstream: Option<&Upstream>,
    conn: &Connection,
    wait: Duration,
) -> bool {
    use std::os::fd::AsRawFd;
    let mut fds = [
        libc::pollfd {
            fd: socket.as_raw_fd(),
            events: client,
            revents: 0,
        },
        libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        },
    ];
    if let Some(up) = upstream {
        fds[1].fd = up.io.0.as_raw_fd();
        // Read readiness only while the client takes more of the response: a slow client's
        // thread waits for it, not in a loop of wake-ups for bytes it may not read yet.
        // (Errors and hang-ups wake it anyway.)
        if conn.takes_upstream_bytes() {
            fds[1].events |= libc::POLLIN;
        }
        if !conn.upstream_output().is_empty() || conn.upstream_piped() > 0 {
            fds[1].events |= libc::POLLOUT;
        }
    }
    let millis = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: two valid pollfd entries (a negative fd is ignored by poll) for the duration of
    // the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) };
    n > 0 && fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0
}
