//! What a server can be told: addresses, the document root, the concurrency model, timeouts
//! and limits. Set with chained setters on [`Config::default`], so new settings never break
//! an embedder's code.

use crate::access_log::AccessLogFormat;
use crate::connection::Timeouts;
use crate::forwarded::Cidr;
use crate::http::Limits;
use crate::proxy::{Balance, HostHeader, ProxyRule, ProxySettings};
use crate::rules::SiteRules;
use crate::transport::tls::certs::CertificatePair;
use std::net::SocketAddr;
use std::path::PathBuf;
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
/// `margay::access` target; `Off` skips even formatting them. It calls `log::logger().flush()`
/// at the end of each event-loop turn that logged a line (and after each line in the thread
/// model), so a logger may gather lines and write them together when flushed.
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

/// A server's settings. Start from [`Config::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// let config = margay::Config::default()
///     .root("htdocs")
///     .keep_alive_timeout(Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) tls_listen: Vec<SocketAddr>,
    pub(crate) admin_listen: Vec<SocketAddr>,
    pub(crate) tls_certificates: Vec<CertificatePair>,
    pub(crate) redirect_https: bool,
    pub(crate) root: PathBuf,
    pub(crate) model: Model,
    pub(crate) access_log: AccessLog,
    pub(crate) access_log_format: AccessLogFormat,
    pub(crate) trusted_proxies: Vec<Cidr>,
    pub(crate) timeouts: Timeouts,
    pub(crate) defer_accept: Duration,
    pub(crate) send_buffer: Option<usize>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) busy_poll: Duration,
    pub(crate) max_requests_per_connection: u64,
    pub(crate) max_body_size: u64,
    pub(crate) workers: usize,
    pub(crate) builtin_endpoints: bool,
    pub(crate) log_health_checks: bool,
    pub(crate) handler_threads: usize,
    pub(crate) handler_queue: usize,
    pub(crate) proxy_rules: Vec<ProxyRule>,
    pub(crate) proxy: ProxySettings,
    pub(crate) limits: Limits,
    pub(crate) site_rules: SiteRules,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            tls_listen: Vec::new(),
            admin_listen: Vec::new(),
            tls_certificates: Vec::new(),
            redirect_https: false,
            root: PathBuf::from("htdocs"),
            model: Model::Reactor,
            access_log: AccessLog::Stdout,
            access_log_format: AccessLogFormat::Combined,
            trusted_proxies: Vec::new(),
            timeouts: Timeouts::default(),
            handler_threads: 16,
            handler_queue: 256,
            proxy_rules: Vec::new(),
            proxy: ProxySettings::default(),
            defer_accept: Duration::from_secs(1),
            send_buffer: None,
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            busy_poll: Duration::from_micros(50),
            max_requests_per_connection: 0,
            max_body_size: 1024 * 1024,
            workers: 1,
            builtin_endpoints: false,
            log_health_checks: false,
            limits: Limits::default(),
            site_rules: SiteRules::new(),
        }
    }
}

impl Config {
    /// The one address to serve plain HTTP on (IPv4 or IPv6); port 0 picks a free port.
    /// Default `127.0.0.1:8080`.
    pub fn listen(self, addr: SocketAddr) -> Config {
        self.listen_on([addr])
    }

    /// Every address to serve plain HTTP on; none at all serves HTTPS only.
    pub fn listen_on(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Config {
        self.listen = addrs.into_iter().collect();
        self
    }

    /// Also serves HTTPS on `addr` (more than once for several addresses), with the
    /// certificates given to [`Config::tls_certificate`].
    pub fn tls_listen(mut self, addr: SocketAddr) -> Config {
        self.tls_listen.push(addr);
        self
    }

    /// Also serves the monitoring endpoints (`GET /metrics`, `GET /healthz`,
    /// `GET /api/status`, `GET /api/events`) on `addr`, plain HTTP, and nothing else there; the other listeners
    /// then answer those paths with `404`. Repeat for several addresses. Typically a loopback
    /// or private address, such as `127.0.0.1:9090`.
    pub fn admin_listen(mut self, addr: SocketAddr) -> Config {
        self.admin_listen.push(addr);
        self
    }

    /// Adds a certificate chain and its private key (PEM files; the key in PKCS#8, SEC1 or
    /// PKCS#1). With several pairs, each handshake gets the first whose certificate is valid
    /// for the server name the client asked for (SNI), or else the first pair. The files are
    /// read again when they change; a broken or mismatched new pair is logged and the old one
    /// kept.
    pub fn tls_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Config {
        self.tls_certificates.push(CertificatePair {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Whether plain HTTP requests are answered `308 Permanent Redirect` to the same host and
    /// target over HTTPS (the first TLS listener's port), except ACME HTTP-01 challenges under
    /// `/.well-known/acme-challenge/`, which are still served. Default off.
    pub fn redirect_https(mut self, on: bool) -> Config {
        self.redirect_https = on;
        self
    }

    /// The directory of static files. Default `htdocs`.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Config {
        self.root = dir.into();
        self
    }

    /// The concurrency model. Default [`Model::Reactor`].
    pub fn model(mut self, model: Model) -> Config {
        self.model = model;
        self
    }

    /// Where access-log lines go. Default [`AccessLog::Stdout`].
    pub fn access_log(mut self, log: AccessLog) -> Config {
        self.access_log = log;
        self
    }

    /// How access-log lines are written. Default [`AccessLogFormat::Combined`].
    pub fn access_log_format(mut self, format: AccessLogFormat) -> Config {
        self.access_log_format = format;
        self
    }

    /// Trusts the proxies in `block` (repeat for several): for a request from one of them,
    /// the access log names the client its `X-Forwarded-For` (or else `Forwarded: for=`)
    /// gives, walking from the right past every trusted hop. A client that is not a trusted
    /// proxy is logged as itself, whatever it sends. Default: none.
    pub fn trusted_proxy(mut self, block: Cidr) -> Config {
        self.trusted_proxies.push(block);
        self
    }

    /// A request head must arrive within this, from its first byte (or from accept); a body
    /// may pause this long between reads. Default 10 s.
    pub fn header_timeout(mut self, timeout: Duration) -> Config {
        self.timeouts.header = timeout;
        self
    }

    /// An idle kept-alive connection is closed after this. Default 15 s.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Config {
        self.timeouts.keep_alive = timeout;
        self
    }

    /// A response that makes no progress for this long is abandoned. Default 30 s.
    pub fn send_timeout(mut self, timeout: Duration) -> Config {
        self.timeouts.send = timeout;
        self
    }

    /// A new connection is handed to the server only once its first bytes arrive, or after
    /// about this long if they do not (Linux `TCP_DEFER_ACCEPT`, as h2o and nginx's `deferred`
    /// use it): a client that connects and says nothing costs nothing meanwhile. Zero accepts
    /// every connection at once. Default 1 s.
    pub fn defer_accept(mut self, wait: Duration) -> Config {
        self.defer_accept = wait;
        self
    }

    /// The kernel send buffer of every connection in bytes (`SO_SNDBUF`, set on the listener
    /// and inherited by each accepted socket), bounding what a client that reads slowly can
    /// hold in kernel memory, like nginx's `sndbuf`. `None` (the default) leaves the kernel's
    /// automatic sizing, which favours fast downloads over long paths.
    pub fn send_buffer(mut self, bytes: Option<usize>) -> Config {
        self.send_buffer = bytes;
        self
    }

    /// How long in-flight responses may finish after shutdown starts. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Config {
        self.shutdown_timeout = timeout;
        self
    }

    /// The longest an event loop keeps polling before it sleeps, after a turn that had work
    /// (default 50 µs; zero: it sleeps at once). A core that sleeps is slow to wake (deep idle
    /// states; in a virtual machine, the host's halt), so a server whose events come close
    /// together answers sooner if it polls for the next one. The loop polls only while its
    /// recent waits were that short (two in a row within the limit open the window, one past it
    /// closes it), so an idle or sparsely used server does not poll, and under load the poll
    /// finds events at once. Between polls it yields the core to whatever else is runnable (a
    /// backend on the same core goes first). The thread model is not affected.
    pub fn busy_poll(mut self, time: Duration) -> Config {
        self.busy_poll = time;
        self
    }

    /// Most connections open at once; at the cap the longest-idle kept-alive connection makes
    /// room, or accepting pauses. Default 10,000.
    pub fn max_connections(mut self, n: usize) -> Config {
        self.max_connections = n.max(1);
        self
    }

    /// Requests served on one connection before it closes (0: unlimited, the default).
    pub fn max_requests_per_connection(mut self, n: u64) -> Config {
        self.max_requests_per_connection = n;
        self
    }

    /// Largest request body a handler accepts (413 past it). Default 1 MiB.
    pub fn max_body_size(mut self, bytes: u64) -> Config {
        self.max_body_size = bytes;
        self
    }

    /// Independent event loops sharing the port with `SO_REUSEPORT` (0: one per CPU).
    /// Default 1. The thread model always has one acceptor.
    pub fn workers(mut self, n: usize) -> Config {
        self.workers = n;
        self
    }

    /// Whether to serve the built-in `GET /api/status`, `GET /api/events`, `POST /api/echo`,
    /// `GET /metrics` and `GET /healthz`. Default off in the library (the `margay` binary
    /// turns them on).
    pub fn builtin_endpoints(mut self, on: bool) -> Config {
        self.builtin_endpoints = on;
        self
    }

    /// Whether `GET /healthz` requests are written to the access log. Default off: a load
    /// balancer's probes every few seconds would drown the lines of real requests.
    pub fn log_health_checks(mut self, on: bool) -> Config {
        self.log_health_checks = on;
        self
    }

    /// Threads of the worker pool that runs blocking handlers (event-loop model). Default 16.
    pub fn handler_threads(mut self, n: usize) -> Config {
        self.handler_threads = n.max(1);
        self
    }

    /// Requests that may wait for a pool thread; past it a blocking route answers
    /// `503 Service Unavailable` with `Retry-After` at once. Default 256.
    pub fn handler_queue(mut self, n: usize) -> Config {
        self.handler_queue = n.max(1);
        self
    }

    /// Forwards requests under a path prefix to upstream servers (a reverse proxy); repeat
    /// for several prefixes (the longest matching one wins; handler routes win over both).
    pub fn proxy(mut self, rule: ProxyRule) -> Config {
        self.proxy_rules.push(rule);
        self
    }

    /// Idle keep-alive connections kept per upstream server by each event loop (and as many
    /// again in the pool they share). Default 128.
    pub fn proxy_keepalive(mut self, n: usize) -> Config {
        self.proxy.keepalive = n;
        self
    }

    /// How long an upstream may take to start its response (`504` past it), and may pause
    /// while sending it. Default 30 s.
    pub fn proxy_timeout(mut self, timeout: Duration) -> Config {
        self.proxy.timeout = timeout;
        self.timeouts.upstream = timeout;
        self
    }

    /// How long a connect to an upstream server may take; past it the server counts as down
    /// for the request (`502`, or the request is tried on another). Default 5 s.
    pub fn proxy_connect_timeout(mut self, timeout: Duration) -> Config {
        self.timeouts.upstream_connect = timeout;
        self
    }

    /// How a rule's upstream server is chosen. Default round robin.
    pub fn proxy_balance(mut self, balance: Balance) -> Config {
        self.proxy.balance = balance;
        self
    }

    /// Failures in a row after which an upstream server is skipped for
    /// [`Config::proxy_fail_timeout`]. Default 3.
    pub fn proxy_max_fails(mut self, n: u32) -> Config {
        self.proxy.max_fails = n.max(1);
        self
    }

    /// How long a failing upstream server is skipped before it is tried again. Default 10 s.
    pub fn proxy_fail_timeout(mut self, timeout: Duration) -> Config {
        self.proxy.fail_timeout = timeout;
        self
    }

    /// `GET path` on every upstream server every five seconds; one that does not answer 2xx
    /// or 3xx is skipped until it does. Default: no active checks.
    pub fn proxy_health_check(mut self, path: Option<String>) -> Config {
        self.proxy.health_check = path;
        self
    }

    /// Which `Host` upstream servers get: the client's (default) or their own.
    pub fn proxy_host(mut self, host: HostHeader) -> Config {
        self.proxy.host = host;
        self
    }

    /// Whether a body framed by `Content-Length` goes between a plain-TCP client and the
    /// upstream server with `splice(2)`, socket to socket, instead of being copied through
    /// buffers (TLS clients and chunked bodies are always copied). Default on.
    pub fn proxy_splice(mut self, on: bool) -> Config {
        self.proxy.splice = on;
        self
    }

    /// How long a blocking handler may take before its request is answered
    /// `504 Gateway Timeout` (its late response is dropped). Default 30 s.
    pub fn handler_timeout(mut self, timeout: Duration) -> Config {
        self.timeouts.handler = timeout;
        self
    }

    /// The site's rules: headers, redirects, CORS and basic auth by path, error pages, the
    /// single-page-app fallback, directory listings. Default none. A running server's rules
    /// can be replaced with a [`RulesHandle`](crate::RulesHandle).
    pub fn site_rules(mut self, rules: SiteRules) -> Config {
        self.site_rules = rules;
        self
    }
}
