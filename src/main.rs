//! The `margay` binary: command line -> `Config` -> run, plus the logger. Thin on purpose.

use clap::Parser;
use margay::{AccessLog, Config, Model, Server};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// An HTTP/1.1 server that serves many clients from one thread.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on, IPv4 or IPv6 (e.g. 127.0.0.1:8080 or [::1]:8080).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Directory whose files are served.
    #[arg(long, default_value = "htdocs", value_name = "DIR")]
    root: PathBuf,
    /// Access log (Combined Log Format): off, stdout, or a file path to append to.
    #[arg(long, default_value = "stdout", value_name = "off|stdout|PATH")]
    access_log: String,
    /// Level of the server's own log: error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: log::LevelFilter,
    /// Concurrency model: one event loop (reactor) or a thread per connection (threads).
    #[arg(long, default_value = "reactor", value_parser = parse_model, value_name = "reactor|threads")]
    model: Model,
    /// Event loops sharing the port with SO_REUSEPORT: a number, or auto (one per CPU).
    #[arg(long, default_value = "1", value_parser = parse_workers, value_name = "N|auto")]
    workers: usize,
    /// Seconds a request head may take to arrive, from its first byte.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    header_timeout: u64,
    /// Seconds a new connection may wait in the kernel for its first bytes before the server
    /// takes it up anyway (TCP_DEFER_ACCEPT; 0 = take every connection up at once).
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    defer_accept: u64,
    /// Kernel send buffer per connection in bytes (SO_SNDBUF), bounding what a client that
    /// reads slowly can hold in kernel memory; 0 = the kernel's automatic sizing.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    send_buffer: usize,
    /// Seconds an idle kept-alive connection is kept.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    keep_alive_timeout: u64,
    /// Seconds a response may make no progress before the client is dropped.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    send_timeout: u64,
    /// Seconds in-flight responses get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    shutdown_timeout: u64,
    /// Most connections open at once; accepting pauses at the cap.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_connections: usize,
    /// Requests served on one connection before it closes (0 = unlimited).
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_requests_per_connection: u64,
    /// Largest request body a handler accepts, in bytes (413 past it).
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    max_body_size: u64,
    /// Do not serve the built-in /api/status and /api/echo endpoints.
    #[arg(long)]
    no_builtin_endpoints: bool,
}

fn parse_model(text: &str) -> Result<Model, String> {
    match text {
        "reactor" => Ok(Model::Reactor),
        "threads" => Ok(Model::Threads),
        _ => Err("expected reactor or threads".into()),
    }
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

fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => e.exit(), // --help and --version
        Err(e) => {
            // clap's message, first line only: a bad option is a one-line error.
            let rendered = e.render().to_string();
            let message = rendered.lines().next().unwrap_or_default();
            eprintln!("margay: {}", message.trim_start_matches("error: "));
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("margay: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let access_log = match args.access_log.as_str() {
        "off" => AccessLog::Off,
        "stdout" => AccessLog::Stdout,
        path => AccessLog::File(PathBuf::from(path)),
    };
    install_logger(args.log_level, &access_log)?;
    if !args.root.is_dir() {
        return Err(format!("document root {} is not a directory", args.root.display()).into());
    }
    let config = Config::default()
        .listen(args.listen)
        .root(args.root)
        .model(args.model)
        .access_log(access_log)
        .header_timeout(Duration::from_secs(args.header_timeout))
        .defer_accept(Duration::from_secs(args.defer_accept))
        .send_buffer((args.send_buffer > 0).then_some(args.send_buffer))
        .keep_alive_timeout(Duration::from_secs(args.keep_alive_timeout))
        .send_timeout(Duration::from_secs(args.send_timeout))
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout))
        .max_connections(args.max_connections)
        .max_requests_per_connection(args.max_requests_per_connection)
        .max_body_size(args.max_body_size)
        .workers(args.workers)
        .builtin_endpoints(!args.no_builtin_endpoints);
    Server::new(config)?.run()?;
    log::info!("stopped");
    Ok(())
}

/// Routes `margay::access` lines to the access log and everything else to `simple_logger`.
struct Logger {
    server: simple_logger::SimpleLogger,
    access: Option<Mutex<Box<dyn Write + Send>>>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        if metadata.target() == "margay::access" {
            self.access.is_some()
        } else {
            self.server.enabled(metadata)
        }
    }

    fn log(&self, record: &log::Record) {
        if record.target() != "margay::access" {
            return self.server.log(record);
        }
        if let Some(access) = &self.access
            && let Ok(mut out) = access.lock()
        {
            let _ = writeln!(out, "{}", record.args());
        }
    }

    fn flush(&self) {
        if let Some(access) = &self.access
            && let Ok(mut out) = access.lock()
        {
            let _ = out.flush();
        }
    }
}

fn install_logger(
    level: log::LevelFilter,
    access_log: &AccessLog,
) -> Result<(), Box<dyn std::error::Error>> {
    let access: Option<Box<dyn Write + Send>> = match access_log {
        AccessLog::Off => None,
        AccessLog::Stdout => Some(Box::new(std::io::stdout())),
        AccessLog::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("access log {}: {e}", path.display()))?;
            Some(Box::new(std::io::LineWriter::new(file)))
        }
    };
    let server = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps();
    let max = if access.is_some() {
        level.max(log::LevelFilter::Info)
    } else {
        level
    };
    log::set_boxed_logger(Box::new(Logger {
        server,
        access: access.map(Mutex::new),
    }))?;
    log::set_max_level(max);
    Ok(())
}
