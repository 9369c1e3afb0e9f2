//! margay: an HTTP/1.1 server that serves many clients from one thread.
//!
//! One `mio` event loop keeps a slab of small per-connection state machines and serves them
//! all: static files from a document root (the web-server role) and handlers registered by
//! the application that embeds it (the application-server role). A thread-per-connection
//! model ([`Model::Threads`]) runs the same protocol code for comparison.
//!
//! ```no_run
//! use margay::{Config, Method, Response, Server};
//!
//! fn main() -> std::io::Result<()> {
//!     let config = Config { root: "htdocs".into(), ..Config::default() };
//!     Server::new(config)?
//!         .route(Method::Get, "/api/hello", |request| {
//!             let name = request.query("name").unwrap_or("world");
//!             Response::json(&serde_json::json!({ "hello": name }))
//!         })
//!         .run()
//! }
//! ```
//!
//! Handlers run on the event-loop thread: they must not block (no sleeping, no slow disk or
//! network calls), or every other client waits. A handler that panics answers its request
//! with `500 Internal Server Error`; the panic is logged and the server carries on.

pub mod app;
pub mod connection;
pub mod files;
pub mod http;
pub mod outbox;
pub mod reactor;
pub mod readbuf;
pub mod session;
pub mod site;
pub mod stats;
pub mod threaded;

pub use app::{Handler, Request};
pub use http::{Body, Method, Response};
pub use stats::StatusReport;

use connection::Timeouts;
use files::StaticFiles;
use reactor::{Control, Reactor, ReactorConfig};
use site::{App, Site};
use stats::Stats;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Which concurrency model serves the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// One event loop per worker thread serves every connection (the default).
    #[default]
    Reactor,
    /// One blocking thread per connection.
    Threads,
}

/// Where access-log lines go. The library writes them through `log` under the
/// `margay::access` target; `Off` skips even formatting them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLog {
    /// No access log.
    Off,
    /// Standard output.
    #[default]
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// Everything a server can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (IPv4 or IPv6); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory of static files.
    pub root: PathBuf,
    /// Concurrency model.
    pub model: Model,
    /// Access log destination.
    pub access_log: AccessLog,
    /// A request head must arrive within this, from its first byte (or from accept).
    pub header_timeout: Duration,
    /// A new connection is handed to the server only once its first bytes arrive, or after
    /// about this long if they do not (Linux `TCP_DEFER_ACCEPT`, as h2o and nginx's
    /// `deferred` use it). A client that connects and says nothing costs the server nothing
    /// meanwhile, and the one that speaks at once is read without a wasted wake-up. Zero
    /// accepts every connection at once.
    pub defer_accept: Duration,
    /// The kernel send buffer of every connection, in bytes (`SO_SNDBUF`, set once on the
    /// listener and inherited by each accepted socket; Linux doubles it for bookkeeping).
    /// `None` leaves the kernel's automatic sizing, which lets a socket hold up to
    /// `net.ipv4.tcp_wmem`'s maximum (4 MiB by default) of unsent response, and on loopback
    /// starts it above 1 MiB. A cap bounds what clients that read slowly (or not at all) can
    /// pin in kernel memory, like nginx's `sndbuf`, at the cost of throughput for a fast
    /// download over a long, fast path.
    pub send_buffer: Option<usize>,
    /// An idle kept-alive connection is closed after this.
    pub keep_alive_timeout: Duration,
    /// A response that makes no progress for this long is abandoned.
    pub send_timeout: Duration,
    /// How long in-flight responses may finish after shutdown starts.
    pub shutdown_timeout: Duration,
    /// Most connections open at once; accepting pauses at the cap.
    pub max_connections: usize,
    /// Requests served on one connection before it closes (0: unlimited).
    pub max_requests_per_connection: u64,
    /// Largest request body a handler accepts (413 past it).
    pub max_body_size: u64,
    /// Independent event loops sharing the port with `SO_REUSEPORT` (0: one per CPU).
    pub workers: usize,
    /// Serve `GET /api/status` and `POST /api/echo`.
    pub builtin_endpoints: bool,
    /// Request head limits.
    pub limits: http::Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            root: PathBuf::from("htdocs"),
            model: Model::Reactor,
            access_log: AccessLog::Stdout,
            header_timeout: Duration::from_secs(10),
            defer_accept: Duration::from_secs(1),
            send_buffer: None,
            keep_alive_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_requests_per_connection: 0,
            max_body_size: 1024 * 1024,
            workers: 1,
            builtin_endpoints: true,
            limits: http::Limits::default(),
        }
    }
}

/// A server whose listening sockets are bound; add routes, then [`Server::run`] or
/// [`Server::spawn`] it.
pub struct Server {
    config: Config,
    listeners: Vec<std::net::TcpListener>,
    router: app::Router,
    stats: Arc<Stats>,
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
        Ok(Server {
            config,
            listeners,
            router: app::Router::default(),
            stats: Arc::new(Stats::new()),
        })
    }

    /// Binds `addr` with the default configuration.
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        Server::new(Config {
            listen: addr,
            ..Config::default()
        })
    }

    /// Serves static files from `dir`.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Server {
        self.config.root = dir.into();
        self
    }

    /// Answers `method` on exactly `path` with `handler`. Routes are looked up before static
    /// files; a `GET` route also answers `HEAD`.
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

    /// The server's counters, as `/api/status` reports them.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
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
        let files = StaticFiles::new(&self.config.root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("document root {}: {e}", self.config.root.display()),
            )
        })?;
        if self.config.builtin_endpoints {
            add_builtin_endpoints(&mut self.router, &self.stats);
        }
        let addr = self.local_addr()?;
        let config = self.config;
        let app = Arc::new(App {
            router: self.router,
            limits: config.limits,
            max_body_size: config.max_body_size,
            max_requests_per_connection: config.max_requests_per_connection,
            access_log: config.access_log != AccessLog::Off,
            stats: self.stats,
        });
        let timeouts = Timeouts {
            header: config.header_timeout,
            keep_alive: config.keep_alive_timeout,
            send: config.send_timeout,
        };
        let control = Arc::new(Control::default());
        let mut threads = Vec::new();
        let worker_count = self.listeners.len();
        for (n, listener) in self.listeners.into_iter().enumerate() {
            let site = Site::new(app.clone(), files.clone());
            let control = control.clone();
            let thread = std::thread::Builder::new().name(format!("margay-worker-{n}"));
            let thread = match config.model {
                Model::Reactor => {
                    let reactor_config = ReactorConfig {
                        timeouts,
                        max_connections: config.max_connections.div_ceil(worker_count),
                        shutdown_timeout: config.shutdown_timeout,
                    };
                    let reactor = Reactor::new(listener, site, reactor_config, control)?;
                    thread.spawn(move || reactor.run())?
                }
                Model::Threads => {
                    let thread_config = threaded::ThreadConfig {
                        timeouts,
                        max_connections: config.max_connections,
                        shutdown_timeout: config.shutdown_timeout,
                    };
                    thread.spawn(move || threaded::run(listener, site, thread_config, control))?
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

/// `GET /api/status` (counters as JSON) and `POST /api/echo` (the request as JSON).
fn add_builtin_endpoints(router: &mut app::Router, stats: &Arc<Stats>) {
    let stats = stats.clone();
    router.exact(
        Method::Get,
        "/api/status",
        Arc::new(move |_| Response::json(&stats.report()).header("Cache-Control", "no-store")),
    );
    router.exact(
        Method::Post,
        "/api/echo",
        Arc::new(|request: &Request| {
            let headers: Vec<(String, String)> = request
                .headers()
                .map(|(n, v)| (n.to_string(), v.into_owned()))
                .collect();
            Response::json(&serde_json::json!({
                "method": request.method().as_str(),
                "path": request.path(),
                "query": request.query_pairs(),
                "headers": headers,
                "body": String::from_utf8_lossy(request.body()),
                "remote_addr": request.remote_addr().to_string(),
            }))
        }),
    );
}

/// A server running on background threads. Dropping it shuts it down gracefully.
pub struct RunningServer {
    addr: SocketAddr,
    control: Arc<Control>,
    threads: Vec<JoinHandle<io::Result<()>>>,
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

    /// A handle that can start the shutdown from elsewhere (a signal thread, say).
    pub fn handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.control.clone())
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
        let config = Config {
            defer_accept: Duration::ZERO,
            send_buffer: Some(50_000),
            ..Config::default()
        };
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
