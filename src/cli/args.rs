//! Every option of the `margay` binary, declared once: clap builds `--help` and the command
//! line from it, and the configuration file's keys are the same names with `_` for `-`.

use clap::Parser;
use margay::{AccessLogFormat, Cidr, Model};
use std::net::SocketAddr;
use std::path::PathBuf;

/// An HTTP/1.1 server that serves many clients from one thread.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    /// Read options from this TOML file (keys are the long option names with `_` for `-`);
    /// the command line overrides it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration, print the effective settings and exit (0 when valid, 2 when
    /// not), without binding or serving.
    #[arg(long)]
    pub check_config: bool,
    /// Address to serve plain HTTP on, IPv4 or IPv6 (e.g. 127.0.0.1:8080 or [::1]:8080);
    /// repeat for several. Not listened on by default when --tls-listen is given.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Address to serve HTTPS on; repeat for several. Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Vec<SocketAddr>,
    /// Address to serve only /metrics, /healthz, /api/status and /api/events on (plain
    /// HTTP, e.g. 127.0.0.1:9090); the other listeners then answer them 404. Repeat for
    /// several.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Vec<SocketAddr>,
    /// PEM certificate chain for HTTPS, the server's certificate first; repeat (each with its
    /// --tls-key) for several names, chosen by the name a client asks for (SNI), the first as
    /// the default. Read again when the file changes, and on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Vec<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) of the --tls-cert in the same position.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Vec<PathBuf>,
    /// Answer plain HTTP with 308 to the same host and path over HTTPS, except
    /// /.well-known/acme-challenge/ (so certbot's webroot mode still works).
    #[arg(long)]
    pub redirect_https: bool,
    /// Directory whose files are served.
    #[arg(long, default_value = "htdocs", value_name = "DIR", value_parser = existing_dir)]
    pub root: PathBuf,
    /// Access log: off, stdout, or a file path to append to (reopened on SIGUSR1, for log
    /// rotation).
    #[arg(long, default_value = "stdout", value_name = "off|stdout|PATH")]
    pub access_log: String,
    /// Access-log line format: combined (Combined Log Format), combined_time (the same
    /// followed by the request time in seconds, as nginx's $request_time) or json (one
    /// object per line).
    #[arg(long, default_value = "combined", value_parser = parse_format, value_name = "combined|combined_time|json")]
    pub access_log_format: AccessLogFormat,
    /// Proxy address or CIDR block whose X-Forwarded-For (or Forwarded) names the client in
    /// the access log; repeat for several. Others are logged as themselves.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub trusted_proxy: Vec<Cidr>,
    /// Level of the server's own log: error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub log_level: log::LevelFilter,
    /// Concurrency model: one event loop (reactor) or a thread per connection (threads).
    #[arg(long, default_value = "reactor", value_parser = parse_model, value_name = "reactor|threads")]
    pub model: Model,
    /// Event loops sharing the port with SO_REUSEPORT: a number, or auto (one per CPU).
    #[arg(long, default_value = "1", value_parser = parse_workers, value_name = "N|auto")]
    pub workers: usize,
    /// Seconds a request head may take to arrive, from its first byte.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub header_timeout: u64,
    /// Seconds a new connection may wait in the kernel for its first bytes before the server
    /// takes it up anyway (TCP_DEFER_ACCEPT; 0 = take every connection up at once).
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    pub defer_accept: u64,
    /// Kernel send buffer per connection in bytes (SO_SNDBUF), bounding what a client that
    /// reads slowly can hold in kernel memory; 0 = the kernel's automatic sizing.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub send_buffer: usize,
    /// Seconds an idle kept-alive connection is kept.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    pub keep_alive_timeout: u64,
    /// Seconds a response may make no progress before the client is dropped.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub send_timeout: u64,
    /// Seconds in-flight responses get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub shutdown_timeout: u64,
    /// Longest an event loop polls (yielding the core to anything else runnable) before it
    /// sleeps after a turn that had work, in microseconds; it polls only while events keep
    /// coming that soon, since a sleeping core is slow to wake (0 = never poll).
    #[arg(long, default_value_t = 50, value_name = "USECS")]
    pub busy_poll: u64,
    /// Most connections open at once; accepting pauses at the cap.
    #[arg(long, default_value_t = 10_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Requests served on one connection before it closes (0 = unlimited).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_requests_per_connection: u64,
    /// Largest request body a handler accepts, in bytes (413 past it).
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_body_size: u64,
    /// Do not serve the built-in /api/status, /api/events, /api/echo, /metrics and /healthz
    /// endpoints.
    #[arg(long)]
    pub no_builtin_endpoints: bool,
    /// Write GET /healthz requests to the access log too (left out by default).
    #[arg(long)]
    pub log_health_checks: bool,
    /// Threads of the worker pool that runs blocking handlers (event-loop model).
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub handler_threads: u64,
    /// Requests that may wait for a pool thread; past it a blocking route answers 503.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub handler_queue: u64,
    /// Seconds a blocking handler may take before its request is answered 504.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub handler_timeout: u64,
    /// Forward requests under PREFIX to upstream servers (repeatable), e.g.
    /// /api/=http://127.0.0.1:9000,http://127.0.0.1:9001; a URL with a path replaces the
    /// prefix (http://app:9000/ sends /api/x as /x), one without keeps it.
    #[arg(long, value_name = "PREFIX=URL[,URL...]", value_parser = parse_proxy)]
    pub proxy: Vec<margay::ProxyRule>,
    /// Idle keep-alive connections kept per upstream server by each event loop (and as many
    /// again in the pool they share).
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub proxy_keepalive: u64,
    /// Seconds an upstream server may take to start its response (504) or pause in it.
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub proxy_timeout: u64,
    /// Seconds a connect to an upstream server may take; past it the server counts as down
    /// for the request, as if it had refused (502, or a retry on another server).
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub proxy_connect_timeout: u64,
    /// How an upstream server is chosen: round-robin or least-connections.
    #[arg(
        long,
        default_value = "round-robin",
        value_name = "round-robin|least-connections"
    )]
    pub proxy_balance: margay::Balance,
    /// Failures in a row after which an upstream server is skipped for --proxy-fail-timeout.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub proxy_max_fails: u64,
    /// Seconds a failing upstream server is skipped before it is tried again.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub proxy_fail_timeout: u64,
    /// GET this path on every upstream server every 5 seconds; one that does not answer 2xx
    /// or 3xx is skipped until it does (empty: no active checks).
    #[arg(long, default_value = "", value_name = "PATH")]
    pub proxy_health_check: String,
    /// Host sent upstream: keep (the client's) or upstream (the upstream's own host:port).
    #[arg(long, default_value = "keep", value_name = "keep|upstream", value_parser = parse_host)]
    pub proxy_host: margay::HostHeader,
    /// Copy proxied bodies through buffers, never splice(2) them from socket to socket
    /// (splicing applies to Content-Length bodies of plain-TCP clients, both ways).
    #[arg(long)]
    pub no_proxy_splice: bool,
    /// Single-page-app fallback: a file under the root (e.g. /index.html) served with 200 for
    /// GET and HEAD requests no file or handler answers, whose path has no extension and no
    /// dot segment, from clients whose Accept names text/html.
    #[arg(long, value_name = "PATH", value_parser = fallback_path)]
    pub fallback: Option<String>,
    /// List the files of directories that have no index.html (HTML, or JSON for clients
    /// asking for application/json).
    #[arg(long)]
    pub list_directories: bool,
}

/// Options that steer the command itself and have no key in the file.
pub const NOT_IN_FILE: &[&str] = &["config", "check_config", "help", "version"];

fn parse_proxy(text: &str) -> Result<margay::ProxyRule, String> {
    text.parse()
        .map_err(|e: margay::ProxyRuleError| e.to_string())
}

fn parse_host(text: &str) -> Result<margay::HostHeader, String> {
    match text {
        "keep" => Ok(margay::HostHeader::Keep),
        "upstream" => Ok(margay::HostHeader::Upstream),
        _ => Err("expected keep or upstream".into()),
    }
}

fn parse_model(text: &str) -> Result<Model, String> {
    match text {
        "reactor" => Ok(Model::Reactor),
        "threads" => Ok(Model::Threads),
        _ => Err("expected reactor or threads".into()),
    }
}

fn parse_format(text: &str) -> Result<AccessLogFormat, String> {
    text.parse()
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    text.parse()
}

fn parse_workers(text: &str) -> Result<usize, String> {
    match text {
        "auto" => Ok(0),
        n => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("expected a positive number or auto".into()),
        },
    }
}

/// A file path under the root, or nothing (`""`, the file's way of saying no fallback).
fn fallback_path(text: &str) -> Result<String, String> {
    if !text.is_empty() {
        margay::SiteRules::new()
            .fallback(text)
            .map_err(|e| e.message().to_string())?;
    }
    Ok(text.to_string())
}

fn existing_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(format!("{text} is not a directory"))
    }
}
