//! The server as an embedder starts it: bind the listening sockets, add routes, then run the
//! workers of the chosen model on background threads until shutdown.

use crate::app::pool::Pool;
use crate::app::{Execution, Handler, IntoResponse, Request, Router, StateMap};
use crate::builtin;
use crate::config::{AccessLog, Config, Model};
use crate::control::Control;
use crate::files::StaticFiles;
use crate::forwarded::TrustedProxies;
use crate::http::Method;
use crate::listener::{Listener, ListenerKind, bind};
use crate::proxy::Upstreams;
use crate::proxy::health::{ProbeTimeouts, check_health};
use crate::reactor::{Reactor, ReactorConfig};
use crate::rules::{RulesHandle, RulesSlot};
use crate::stats::{Stats, StatusReport};
use crate::threaded;
use crate::transport::tls::settings::TlsSettings;
use crate::worker::{Site, Worker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A server whose listening sockets are bound; add routes, then [`Server::run`] or
/// [`Server::spawn`] it.
pub struct Server {
    config: Config,
    /// Each worker's listening sockets (every worker binds every address).
    listeners: Vec<Vec<Listener>>,
    /// The bound addresses, plain ones first.
    addrs: Vec<(SocketAddr, ListenerKind)>,
    tls: Option<TlsSettings>,
    router: Router,
    state: StateMap,
    stats: Arc<Stats>,
    rules: Arc<RulesSlot>,
}

impl Server {
    /// Loads the TLS certificates (if any TLS listener is configured) and binds every
    /// listening socket now, so a missing certificate or a port in use is an error here.
    pub fn new(config: Config) -> io::Result<Server> {
        let workers = match (config.model, config.workers) {
            (Model::Threads, _) => 1,
            (_, 0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            (_, n) => n,
        };
        let tls = if config.tls_listen.is_empty() {
            None
        } else {
            let pairs = config.tls_certificates.clone();
            // A pair that cannot be used is a mistake in the configuration, like a bad option.
            let settings = TlsSettings::new(pairs)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Some(settings)
        };
        let wanted = config
            .listen
            .iter()
            .map(|addr| (*addr, ListenerKind::Plain))
            .chain(
                config
                    .tls_listen
                    .iter()
                    .map(|addr| (*addr, ListenerKind::Tls)),
            )
            .chain(
                config
                    .admin_listen
                    .iter()
                    .map(|addr| (*addr, ListenerKind::Admin)),
            );
        let mut first = Vec::new();
        let mut addrs = Vec::new();
        for (addr, kind) in wanted {
            let socket = bind(addr, workers > 1, &config)?;
            addrs.push((socket.local_addr()?, kind));
            first.push(Listener { socket, kind });
        }
        if first.iter().all(|l| l.kind == ListenerKind::Admin) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nothing to listen on: give at least one plain or TLS address",
            ));
        }
        let mut listeners = vec![first];
        for _ in 1..workers {
            let mut own = Vec::new();
            for &(addr, kind) in &addrs {
                own.push(Listener {
                    socket: bind(addr, true, &config)?,
                    kind,
                });
            }
            listeners.push(own);
        }
        let rules = Arc::new(RulesSlot::new(config.site_rules.clone()));
        Ok(Server {
            config,
            listeners,
            addrs,
            tls,
            router: Router::default(),
            state: StateMap::default(),
            stats: Arc::new(Stats::new(workers)),
            rules,
        })
    }

    /// Binds `addr` with the default configuration.
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        Server::new(Config::default().listen(addr))
    }

    /// Answers `method` on `path` with `handler`, on the event-loop thread: it must not block
    /// (no sleeping, no database or network calls; use [`Server::blocking`] for those).
    ///
    /// `path` is exact (`/api/todos`) or has `{name}` segments (`/api/todos/{id}`), read with
    /// [`Request::param`]. Routes are looked up before static files; the most specific wins;
    /// a `GET` route also answers `HEAD`; a path routed only for other methods gets `405`
    /// with `Allow`. A handler returns a [`Response`](crate::Response) or a
    /// [`crate::Result`] (so `?` works); an error or a panic answers with its status (`500`
    /// for a panic, logged) and the server carries on.
    pub fn route<F, R>(self, method: Method, path: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.add(method, path, handler, Execution::OnLoop)
    }

    /// Answers `method` on `path` with a `handler` that may block (a database query, a file,
    /// another service): it runs on the bounded worker pool (`--handler-threads`), and the
    /// event loop serves everyone else meanwhile. A full queue (`--handler-queue`) answers
    /// `503` with `Retry-After`; a handler slower than `--handler-timeout` answers `504`.
    /// Pipelined requests behind it keep their order. In the thread model it simply runs on
    /// its connection's thread.
    pub fn blocking<F, R>(self, method: Method, path: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.add(method, path, handler, Execution::Blocking)
    }

    /// [`Server::route`] for `GET` (and `HEAD`).
    pub fn get<F, R>(self, path: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Get, path, handler)
    }

    /// [`Server::route`] for `POST`.
    pub fn post<F, R>(self, path: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Post, path, handler)
    }

    /// [`Server::route`] for `PUT`.
    pub fn put<F, R>(self, path: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Put, path, handler)
    }

    /// [`Server::route`] for `DELETE`.
    pub fn delete<F, R>(self, path: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        self.route(Method::Delete, path, handler)
    }

    /// Answers `method` on every path starting with `prefix`, on the event-loop thread (the
    /// longest prefix wins; exact paths and templates win over any prefix).
    pub fn route_prefix<F, R>(mut self, method: Method, prefix: &str, handler: F) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        let handler: Handler = Arc::new(move |request| handler(request).into_result());
        self.router
            .prefix(method, prefix, handler, Execution::OnLoop);
        self
    }

    /// Shares `value` with every handler, found by its type with [`Request::state`]: one
    /// database handle or store for all routes, without a clone per closure.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Server {
        self.state.insert(value);
        self
    }

    fn add<F, R>(mut self, method: Method, path: &str, handler: F, execution: Execution) -> Server
    where
        F: Fn(&Request) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        let handler: Handler = Arc::new(move |request| handler(request).into_result());
        self.router.add(method, path, handler, execution);
        self
    }

    /// The first bound address, plain HTTP before HTTPS (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addrs[0].0)
    }

    /// A handle that replaces the site rules once the server runs (the `margay` binary uses
    /// it to reload its configuration file on SIGHUP).
    pub fn rules_handle(&self) -> RulesHandle {
        RulesHandle(self.rules.clone())
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully (a second signal exits at
    /// once).
    pub fn run(self) -> io::Result<()> {
        // The signal pipe comes first: once the workers accept, clients may take every
        // descriptor the process is allowed.
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        let running = self.spawn()?;
        let handle = running.handle();
        // SIGHUP reads the certificates again (the TLS watcher looks at the flag).
        signal_hook::flag::register(signal_hook::consts::SIGHUP, running.reload.clone())?;
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
                        // A logger that gathers lines writes those it holds.
                        log::logger().flush();
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
        let control = Arc::new(Control::default());
        let upstreams = (!self.config.proxy_rules.is_empty()).then(|| {
            Arc::new(Upstreams::new(
                &self.config.proxy_rules,
                self.config.proxy.clone(),
            ))
        });
        if let (Some(upstreams), Some(path)) = (&upstreams, &self.config.proxy.health_check) {
            let control = control.clone();
            let timeouts = ProbeTimeouts {
                connect: self.config.timeouts.upstream_connect,
                answer: self.config.timeouts.upstream,
            };
            check_health(
                upstreams.clone(),
                path.clone(),
                self.config.proxy.health_interval,
                timeouts,
                move || control.is_shutting_down(),
            );
        }
        if self.config.builtin_endpoints {
            builtin::add_endpoints(&mut self.router, &self.stats, &control, upstreams.clone());
            let log_health = self.config.log_health_checks;
            let (stats, proxied) = (&self.stats, upstreams.clone());
            builtin::add_monitoring(&mut self.router, stats, &control, proxied, log_health);
        }
        let files = files.with_counters(self.stats.file_cache.clone());
        let config = self.config;
        let https_port = self
            .addrs
            .iter()
            .find(|(_, kind)| *kind == ListenerKind::Tls)
            .map(|(addr, _)| addr.port());
        let site = Arc::new(Site {
            router: self.router,
            limits: config.limits,
            max_body_size: config.max_body_size,
            max_requests_per_connection: config.max_requests_per_connection,
            access_log: config.access_log != AccessLog::Off,
            timeouts: config.timeouts,
            stats: self.stats.clone(),
            tls: self.tls.clone(),
            redirect_https: https_port.filter(|_| config.redirect_https),
            admin_listener: !config.admin_listen.is_empty(),
            access_log_format: config.access_log_format,
            trusted_proxies: TrustedProxies(config.trusted_proxies.clone()),
            state: Arc::new(self.state),
            upstreams: upstreams.clone(),
            pool: match config.model {
                Model::Reactor => Some(Pool::new(
                    config.handler_threads,
                    config.handler_queue,
                    self.stats.clone(),
                )?),
                Model::Threads => None,
            },
        });
        let reload = Arc::new(AtomicBool::new(false));
        if let Some(tls) = &self.tls {
            tls.watch(reload.clone(), control.clone());
        }
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
                        busy_poll: config.busy_poll,
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
        let urls: Vec<String> = self
            .addrs
            .iter()
            .map(|(addr, kind)| match kind {
                ListenerKind::Plain => format!("http://{addr}"),
                ListenerKind::Tls => format!("https://{addr}"),
                ListenerKind::Admin => format!("http://{addr} (admin)"),
            })
            .collect();
        log::info!(
            "margay listening on {} ({:?}, {worker_count} worker(s)), serving {}",
            urls.join(", "),
            config.model,
            config.root.display()
        );
        Ok(RunningServer {
            addrs: self.addrs,
            control,
            threads,
            stats: self.stats,
            rules: self.rules,
            reload,
        })
    }
}

/// A server running on background threads. Dropping it shuts it down gracefully.
pub struct RunningServer {
    addrs: Vec<(SocketAddr, ListenerKind)>,
    control: Arc<Control>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    stats: Arc<Stats>,
    rules: Arc<RulesSlot>,
    /// Set to have the certificates read again.
    reload: Arc<AtomicBool>,
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
    /// The first address the server listens on, plain HTTP before HTTPS.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0].0
    }

    /// The first admin listener's address, if any ([`Config::admin_listen`]).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(_, kind)| *kind == ListenerKind::Admin)
            .map(|(addr, _)| *addr)
    }

    /// The first address the server serves HTTPS on, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(_, kind)| *kind == ListenerKind::Tls)
            .map(|(addr, _)| *addr)
    }

    /// Reads the TLS certificates again (as SIGHUP does for [`Server::run`]); new handshakes
    /// use them within a fraction of a second. A broken or mismatched pair is logged and the
    /// pairs in use are kept.
    pub fn reload_certificates(&self) {
        self.reload.store(true, Ordering::SeqCst);
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
