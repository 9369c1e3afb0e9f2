//! The classic model beside the event loop: a thread accepts, and each client gets a thread
//! of its own with blocking `std::net` I/O. It drives the same [`Session`] as the reactor, so
//! every protocol decision is the same code.

use crate::connection::Timeouts;
use crate::outbox::{Flush, Outbox};
use crate::reactor::Control;
use crate::readbuf::{Filled, ReadBuf};
use crate::session::Session;
use crate::site::Site;
use crate::stats::{Phase, Stats};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Longest a blocked read waits before looking at the shutdown flag again.
const POLL_SLICE: Duration = Duration::from_millis(250);

/// Settings for the thread model.
#[derive(Debug, Clone, Copy)]
pub struct ThreadConfig {
    /// Per-connection timeouts.
    pub timeouts: Timeouts,
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
    /// Sites (with their warm file caches) left by finished connections, for the next ones.
    spare_sites: Mutex<Vec<Site>>,
}

/// Most sites kept for reuse; each holds a file cache.
const SPARE_SITES: usize = 64;

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

    /// A site for a new connection: a spare one whose file cache is warm, or a fresh one.
    fn take_site(&self, template: &Site) -> Site {
        let spare = self
            .spare_sites
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        spare.unwrap_or_else(|| Site::new(template.app.clone(), template.files.clone()))
    }

    /// Keeps a finished connection's site for a later one.
    fn give_site(&self, site: Site) {
        let mut spare = self
            .spare_sites
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if spare.len() < SPARE_SITES {
            spare.push(site);
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

/// Accepts on `listener` and serves each client on its own thread until shutdown.
pub fn run(
    listener: TcpListener,
    site: Site,
    config: ThreadConfig,
    control: Arc<Control>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = mio::net::TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)?;
    control.add_waker(Arc::new(Waker::new(poll.registry(), Token(1))?));
    let registry = Arc::new(Registry::default());
    let mut waiting: Option<(TcpStream, SocketAddr)> = None;
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
        if let Some((socket, peer)) = waiting.take() {
            if registry.len() < config.max_connections {
                start(socket, peer, &site, &config, &control, &registry);
            } else {
                waiting = Some((socket, peer));
                continue;
            }
        }
        waiting = accept_all(&listener, &site, &config, &control, &registry);
    }
    drop(listener);
    let deadline = Instant::now() + config.shutdown_timeout;
    while registry.len() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
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
    site: &Site,
    config: &ThreadConfig,
    control: &Arc<Control>,
    registry: &Arc<Registry>,
) -> Option<(TcpStream, SocketAddr)> {
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
        if registry.len() >= config.max_connections && !registry.shed_oldest_idle() {
            log::debug!("{peer}: at the connection cap; waiting for a slot");
            return Some((socket, peer));
        }
        start(socket, peer, site, config, control, registry);
    }
}

/// Starts the thread that serves one client.
fn start(
    socket: TcpStream,
    peer: SocketAddr,
    site: &Site,
    config: &ThreadConfig,
    control: &Arc<Control>,
    registry: &Arc<Registry>,
) {
    // Reusing a finished connection's site saves resolving and reading every file anew.
    let mut worker_site = registry.take_site(site);
    let (config, control, registry) = (*config, control.clone(), registry.clone());
    let socket = Arc::new(socket);
    let id = registry.add(&socket);
    let thread_registry = registry.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("margay-conn-{peer}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let idle = |idle: bool| thread_registry.set_idle(id, idle);
            serve(socket, peer, &mut worker_site, &config, &control, &idle);
            thread_registry.remove(id);
            thread_registry.give_site(worker_site);
        });
    if let Err(e) = spawned {
        log::warn!("{peer}: cannot start a thread: {e}");
        registry.remove(id);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serves one client with blocking reads and writes until the session ends.
fn serve(
    socket: Arc<TcpStream>,
    peer: SocketAddr,
    site: &mut Site,
    config: &ThreadConfig,
    control: &Control,
    idle: &dyn Fn(bool),
) {
    let stats = site.app.stats.clone();
    stats.connection_opened();
    let mut phase = Phase::Reading;
    let mut session = Session::new(peer);
    let mut input = ReadBuf::default();
    let mut out = Outbox::default();
    let mut socket: &TcpStream = &socket;
    if let Err(e) = socket.set_nonblocking(false) {
        log::warn!("{peer}: cannot make the socket blocking: {e}");
        return stats.connection_closed(phase);
    }
    let mut head_started = Some(Instant::now());
    let mut served_seen = 0;
    let mut last_activity = Instant::now();
    loop {
        site.tick(SystemTime::now());
        if control.is_shutting_down() {
            site.draining = true;
        }
        if !out.is_empty() {
            set_phase(&stats, &mut phase, Phase::Writing, idle);
            if let Err(e) = flush(&mut socket, &mut out, session.is_done(), site, config) {
                log::debug!("{peer}: write failed: {e}");
                break;
            }
            last_activity = Instant::now();
        }
        if session.is_done() {
            linger(&mut socket);
            break;
        }
        session.process(&mut input, &mut out, site);
        if !out.is_empty() || session.is_done() {
            continue;
        }
        let mid_request = session.mid_request(&input);
        if session.served() != served_seen {
            // A request was answered: the next head's clock starts with its first byte.
            served_seen = session.served();
            head_started = mid_request.then(Instant::now);
        }
        if !mid_request && site.draining {
            break;
        }
        let waiting = if session.served() > 0 && !mid_request {
            Phase::Idle
        } else {
            Phase::Reading
        };
        set_phase(&stats, &mut phase, waiting, idle);
        let deadline = match head_started {
            _ if session.reading_body() => last_activity + config.timeouts.header,
            Some(started) => started + config.timeouts.header,
            None => last_activity + config.timeouts.keep_alive,
        };
        let now = Instant::now();
        if now >= deadline {
            if mid_request {
                session.time_out(&mut out, site);
                continue;
            }
            break;
        }
        let _ = socket.set_read_timeout(Some((deadline - now).min(POLL_SLICE)));
        let max = site.app.limits.max_head + 1024;
        match input.read_from(&mut socket, &mut site.buffers, max) {
            Ok(Filled::Eof) => session.peer_closed(),
            Ok(Filled::Full) => break,
            Ok(Filled::Bytes { .. }) => {
                last_activity = Instant::now();
                head_started.get_or_insert(last_activity);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                log::debug!("{peer}: read failed: {e}");
                break;
            }
        }
    }
    input.recycle(&mut site.buffers);
    stats.connection_closed(phase);
}

fn set_phase(stats: &Stats, phase: &mut Phase, to: Phase, idle: &dyn Fn(bool)) {
    if *phase != to {
        stats.phase_changed(*phase, to);
        idle(to == Phase::Idle);
        *phase = to;
    }
}

/// Writes everything queued (`then_close`: the connection closes right after); a send
/// timeout with no progress ends the connection.
fn flush(
    socket: &mut &TcpStream,
    out: &mut Outbox,
    then_close: bool,
    site: &Site,
    config: &ThreadConfig,
) -> io::Result<()> {
    socket.set_write_timeout(Some(config.timeouts.send))?;
    loop {
        let (flush, written) = out.write_to(socket, usize::MAX, then_close)?;
        site.app.stats.bytes_sent(written as u64);
        match flush {
            Flush::Done => return Ok(()),
            Flush::Yielded => {}
            Flush::Blocked if written > 0 => {}
            Flush::Blocked => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Shuts our side and reads until the peer closes (bounded), so our last response is not
/// destroyed by a reset.
fn linger(socket: &mut &TcpStream) {
    if socket.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let _ = socket.set_read_timeout(Some(Duration::from_secs(2)));
    let mut scratch = [0u8; 4096];
    let mut total = 0;
    while let Ok(n) = socket.read(&mut scratch) {
        total += n;
        if n == 0 || total > 256 * 1024 {
            break;
        }
    }
}
