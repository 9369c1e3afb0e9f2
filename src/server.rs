//! The server as an embedder starts it: bind the listening sockets, add routes, then run the
//! workers of the chosen model on background threads until shutdown.

use crate::app::{Request, Router};
use crate::builtin;
use crate::config::{AccessLog, Config, Model};
use crate::control::Control;
use crate::files::StaticFiles;
use crate::http::{Method, Response};
use crate::reactor::{Reactor, ReactorConfig};
use crate::rules::{RulesHandle, RulesSlot};
use crate::stats::{Stats, StatusReport};
use crate::threaded;
use crate::worker::{Site, Worker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A server whose listening sockets are bound; add routes, then [`Server::run`] or
/// [`Server::spawn`] it.
pub struct Server {
    config: Config,
    listeners: Vec<std::net::TcpListener>,
    router: Router,
    stats: Arc<Stats>,
    rules: Arc<RulesSlot>,
}

impl Server {
    /// Binds the listening socket(s) now, so a port in use is an error here.
    pub fn new(config: Config) -> io::Result<Server> {
        let workers = match (config.model, config.workers) {
            (Model::Threads, _) => 1,
            (_, 0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            (_, n) => n,
        };
        let first = bind(config.listen, workers > 1, &config)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(bind(addr, true, &config)?);
        }
        let rules = Arc::new(RulesSlot::new(config.site_rules.clone()));
        Ok(Server {
            config,
            listeners,
            router: Router::default(),
            stats: Arc::new(Stats::new(workers)),
            rules,
        })
    }

    /// Binds `addr` with the default configuration.
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        Server::new(Config::default().listen(addr))
    }

    /// Answers `method` on exactly `path` with `handler`. Routes are looked up before static
    /// files; a `GET` route also answers `HEAD`. Handlers run on the event-loop thread: they
    /// must not block. A handler that panics answers `500`; the server carries on.
    pub fn route<F>(mut self, method: Method, path: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        self.router.exact(method, path, Arc::new(handler));
        self
    }

    /// Answers `method` on every path starting with `prefix` (the longest prefix wins; an
    /// exact route wins over any prefix).
    pub fn route_prefix<F>(mut self, method: Method, prefix: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        self.router.prefix(method, prefix, Arc::new(handler));
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].local_addr()
    }

    /// A handle that replaces the site rules once the server runs (the `margay` binary uses
    /// it to reload its configuration file on SIGHUP).
    pub fn rules_handle(&self) -> RulesHandle {
        RulesHandle(self.rules.clone())
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully (a second signal exits at
    /// once).
    pub fn run(self) -> io::Result<()> {
        let running = self.spawn()?;
        let handle = running.handle();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        std::thread::Builder::new()
            .name("margay-signals".into())
            .spawn(move || {
                let mut seen = 0;
                for signal in signals.forever() {
                    seen += 1;
                    if seen == 1 {
                        log::info!(
                            "signal {signal}: shutting down gracefully (again to exit at once)"
                        );
                        handle.shutdown();
                    } else {
                        log::warn!("second signal: exiting now");
                        std::process::exit(1);
                    }
                }
            })?;
        running.wait()
    }

    /// Starts serving on background threads and returns at once.
    pub fn spawn(mut self) -> io::Result<RunningServer> {
        let mut files = StaticFiles::new(&self.config.root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("document root {}: {e}", self.config.root.display()),
            )
        })?;
        files.set_rules(self.rules.current().1);
        files.check_rules();
        if self.config.builtin_endpoints {
            builtin::add_endpoints(&mut self.router, &self.stats);
        }
        let addr = self.local_addr()?;
        let config = self.config;
        let site = Arc::new(Site {
            router: self.router,
            limits: config.limits,
            max_body_size: config.max_body_size,
            max_requests_per_connection: config.max_requests_per_connection,
            access_log: config.access_log != AccessLog::Off,
            timeouts: config.timeouts,
            stats: self.stats.clone(),
        });
        let control = Arc::new(Control::default());
        let mut threads = Vec::new();
        let worker_count = self.listeners.len();
        for (n, listener) in self.listeners.into_iter().enumerate() {
            let worker = Worker::new(site.clone(), n, files.clone()).with_rules(self.rules.clone());
            let control = control.clone();
            let thread = std::thread::Builder::new().name(format!("margay-worker-{n}"));
            let thread = match config.model {
                Model::Reactor => {
                    let reactor_config = ReactorConfig {
                        max_connections: config.max_connections.div_ceil(worker_count),
                        shutdown_timeout: config.shutdown_timeout,
                    };
                    let reactor = Reactor::new(listener, worker, reactor_config, control)?;
                    thread.spawn(move || reactor.run())?
                }
                Model::Threads => {
                    let thread_config = threaded::ThreadConfig {
                        max_connections: config.max_connections,
                        shutdown_timeout: config.shutdown_timeout,
                    };
                    thread.spawn(move || threaded::run(listener, worker, thread_config, control))?
                }
            };
            threads.push(thread);
        }
        log::info!(
            "margay listening on http://{addr} ({:?}, {worker_count} worker(s)), serving {}",
            config.model,
            config.root.display()
        );
        Ok(RunningServer {
            addr,
            control,
            threads,
            stats: self.stats,
            rules: self.rules,
        })
    }
}

/// Binds a listening TCP socket with a deep backlog and the options every accepted
/// connection inherits.
fn bind(addr: SocketAddr, reuse_port: bool, config: &Config) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Accepted sockets inherit it: responses leave at once, with no syscall per connection.
    socket.set_tcp_nodelay(true)?;
    set_defer_accept(&socket, config.defer_accept)?;
    if let Some(bytes) = config.send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    // As deep as the system allows: the kernel caps it at `net.core.somaxconn` (4096 by
    // default), so raising that is all a site expecting large bursts of clients needs.
    socket.listen(i32::MAX)?;
    Ok(socket.into())
}

/// Sets `TCP_DEFER_ACCEPT` (whole seconds, rounded up); socket2 has no call for it.
#[cfg(target_os = "linux")]
fn set_defer_accept(socket: &socket2::Socket, wait: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let secs = libc::c_int::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        .unwrap_or(libc::c_int::MAX);
    // SAFETY: the descriptor is open for the duration of the call, and the option value is a
    // c_int passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Other systems accept at once.
#[cfg(not(target_os = "linux"))]
fn set_defer_accept(_socket: &socket2::Socket, _wait: Duration) -> io::Result<()> {
    Ok(())
}

/// A server running on background threads. Dropping it shuts it down gracefully.
pub struct RunningServer {
    addr: SocketAddr,
    control: Arc<Control>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    stats: Arc<Stats>,
    rules: Arc<RulesSlot>,
}

/// Starts a graceful shutdown from any thread.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Control>);

impl ShutdownHandle {
    /// Stops accepting, lets in-flight responses finish, then the workers exit.
    pub fn shutdown(&self) {
        self.0.shutdown();
    }
}

impl RunningServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters now, as `GET /api/status` reports them.
    pub fn status(&self) -> StatusReport {
        self.stats.report()
    }

    /// A handle that can start the shutdown from elsewhere (a signal thread, say).
    pub fn handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.control.clone())
    }

    /// A handle that replaces the site rules while the server runs.
    pub fn rules_handle(&self) -> RulesHandle {
        RulesHandle(self.rules.clone())
    }

    /// Shuts down gracefully and waits for the workers.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.control.shutdown();
        self.join()
    }

    /// Waits until the workers have exited (after a shutdown started elsewhere).
    pub fn wait(mut self) -> io::Result<()> {
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a worker thread panicked")),
            }
        }
        result
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.control.shutdown();
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let config = Config::default()
            .defer_accept(Duration::ZERO)
            .send_buffer(Some(50_000));
        let listener = bind("127.0.0.1:0".parse().unwrap(), false, &config).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        let send_buffer = socket2::SockRef::from(&accepted)
            .send_buffer_size()
            .unwrap();
        // Linux reports twice the size asked for (it counts its bookkeeping too).
        assert!(
            (50_000..=100_000).contains(&send_buffer),
            "accepted socket's send buffer: {send_buffer}"
        );
    }
}
