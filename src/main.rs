//! The `margay` binary: command line -> `Config` -> run, plus the logger. Thin on purpose.

mod cli;

use cli::{Failure, Options};
use margay::{AccessLog, Config, RulesHandle, Server};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let options = match Options::load(argv.clone()) {
        Ok(options) => options,
        Err(Failure::Display(help)) => help.exit(),
        Err(Failure::Mistake(message)) => {
            eprintln!("margay: {message}");
            std::process::exit(2);
        }
    };
    if options.args.check_config {
        print!("{}", options.effective());
        match &options.file {
            Some(file) => eprintln!("margay: {} is valid", file.display()),
            None => eprintln!("margay: the options are valid"),
        }
        return;
    }
    if let Err(e) = run(options, argv) {
        eprintln!("margay: {e}");
        std::process::exit(exit_code(&*e));
    }
}

/// 2 for a configuration the server refused before serving (an unusable certificate pair,
/// nothing to listen on), as for a mistake in the options; 1 for any other failure.
fn exit_code(error: &(dyn std::error::Error + 'static)) -> i32 {
    match error.downcast_ref::<std::io::Error>() {
        Some(e) if e.kind() == std::io::ErrorKind::InvalidInput => 2,
        _ => 1,
    }
}

fn run(options: Options, argv: Vec<OsString>) -> Result<(), Box<dyn std::error::Error>> {
    let args = &options.args;
    let listen_is_default = options.is_default("listen");
    let access_log = match args.access_log.as_str() {
        "off" => AccessLog::Off,
        "stdout" => AccessLog::Stdout,
        path => AccessLog::File(PathBuf::from(path)),
    };
    install_logger(args.log_level, &access_log)?;
    // Plain HTTP on its default address only when no listener of any kind was asked for.
    let plain = if args.tls_listen.is_empty() || !listen_is_default {
        args.listen.clone()
    } else {
        Vec::new()
    };
    let mut config = Config::default()
        .listen_on(plain)
        .redirect_https(args.redirect_https)
        .root(&args.root)
        .model(args.model)
        .access_log(access_log)
        .access_log_format(args.access_log_format)
        .header_timeout(Duration::from_secs(args.header_timeout))
        .defer_accept(Duration::from_secs(args.defer_accept))
        .send_buffer((args.send_buffer > 0).then_some(args.send_buffer))
        .keep_alive_timeout(Duration::from_secs(args.keep_alive_timeout))
        .send_timeout(Duration::from_secs(args.send_timeout))
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout))
        .busy_poll(Duration::from_micros(args.busy_poll))
        .max_connections(usize::try_from(args.max_connections).unwrap_or(usize::MAX))
        .max_requests_per_connection(args.max_requests_per_connection)
        .max_body_size(args.max_body_size)
        .workers(args.workers)
        .builtin_endpoints(!args.no_builtin_endpoints)
        .log_health_checks(args.log_health_checks)
        .handler_threads(usize::try_from(args.handler_threads).unwrap_or(usize::MAX))
        .handler_queue(usize::try_from(args.handler_queue).unwrap_or(usize::MAX))
        .handler_timeout(Duration::from_secs(args.handler_timeout))
        .site_rules(options.rules.clone());
    config = config
        .proxy_keepalive(usize::try_from(args.proxy_keepalive).unwrap_or(usize::MAX))
        .proxy_timeout(Duration::from_secs(args.proxy_timeout))
        .proxy_connect_timeout(Duration::from_secs(args.proxy_connect_timeout))
        .proxy_balance(args.proxy_balance)
        .proxy_max_fails(u32::try_from(args.proxy_max_fails).unwrap_or(u32::MAX))
        .proxy_fail_timeout(Duration::from_secs(args.proxy_fail_timeout))
        .proxy_health_check(Some(args.proxy_health_check.clone()).filter(|p| !p.is_empty()))
        .proxy_host(args.proxy_host)
        .proxy_splice(!args.no_proxy_splice);
    for rule in &args.proxy {
        config = config.proxy(rule.clone());
    }
    for addr in &args.tls_listen {
        config = config.tls_listen(*addr);
    }
    for addr in &args.admin_listen {
        config = config.admin_listen(*addr);
    }
    for block in &args.trusted_proxy {
        config = config.trusted_proxy(*block);
    }
    for (cert, key) in args.tls_cert.iter().zip(&args.tls_key) {
        config = config.tls_certificate(cert, key);
    }
    let server = Server::new(config)?;
    reload_on_sighup(options, argv, server.rules_handle())?;
    server.run()?;
    log::logger().flush();
    log::info!("stopped");
    Ok(())
}

/// On SIGHUP, reads the command line and the configuration file again and puts the new site
/// rules in force; a file with a mistake is reported and the rules in force are kept.
/// Options that only a restart applies (the address, the workers, ...) are named if changed.
fn reload_on_sighup(
    started: Options,
    argv: Vec<OsString>,
    rules: RulesHandle,
) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("margay-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                let Some(file) = started.file.clone() else {
                    log::info!("SIGHUP: no configuration file to reload");
                    continue;
                };
                match Options::load(argv.clone()) {
                    Ok(newer) => {
                        rules.replace(newer.rules.clone());
                        log::info!(
                            "reloaded {}: {} rule(s); new requests follow them",
                            file.display(),
                            newer.rules.len()
                        );
                        // Against what the server started with: that is what still runs.
                        let restart = started.needing_restart(&newer);
                        if !restart.is_empty() {
                            log::warn!(
                                "{} changed in {}: only a restart applies {}",
                                restart.join(", "),
                                file.display(),
                                if restart.len() == 1 { "it" } else { "them" }
                            );
                        }
                    }
                    Err(Failure::Mistake(message)) => {
                        log::error!("reload failed, the configuration in force is kept: {message}")
                    }
                    Err(Failure::Display(_)) => {}
                }
            }
        })?;
    Ok(())
}

/// Routes `margay::access` lines to the access log and everything else to `simple_logger`.
struct Logger {
    server: simple_logger::SimpleLogger,
    access: Option<Arc<Mutex<AccessSink>>>,
}

/// Where access lines are written, and the file to open again on SIGUSR1.
///
/// Lines are gathered in `lines` and written when the server flushes the logger, which it does
/// after each line in the thread model and once per turn in an event loop (before it waits
/// again), so the lines of one turn reach the file in one `write(2)`. Each line goes into
/// `lines` whole, under the lock, so a write or a reopen falls between two lines.
struct AccessSink {
    out: Box<dyn Write + Send>,
    lines: Vec<u8>,
    path: Option<PathBuf>,
}

/// Lines gathered beyond this are written without waiting for a flush.
const ACCESS_BUFFER: usize = 64 * 1024;

impl AccessSink {
    fn new(out: Box<dyn Write + Send>, path: Option<PathBuf>) -> AccessSink {
        AccessSink {
            out,
            lines: Vec::with_capacity(ACCESS_BUFFER),
            path,
        }
    }

    /// Writes the lines gathered so far (dropped if the write fails, so that a full disk does
    /// not grow them without bound).
    fn write_out(&mut self) {
        if !self.lines.is_empty() {
            let _ = self.out.write_all(&self.lines);
            self.lines.clear();
        }
        let _ = self.out.flush();
    }
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
            && let Ok(mut sink) = access.lock()
        {
            let _ = writeln!(sink.lines, "{}", record.args());
            if sink.lines.len() >= ACCESS_BUFFER {
                sink.write_out();
            }
        }
    }

    fn flush(&self) {
        if let Some(access) = &self.access
            && let Ok(mut sink) = access.lock()
        {
            sink.write_out();
        }
    }
}

/// Appends to `path`; [`AccessSink`] gathers the lines.
fn open_access_file(path: &Path) -> std::io::Result<Box<dyn Write + Send>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(Box::new(file))
}

fn install_logger(
    level: log::LevelFilter,
    access_log: &AccessLog,
) -> Result<(), Box<dyn std::error::Error>> {
    let access = match access_log {
        AccessLog::Off => None,
        AccessLog::Stdout => Some(AccessSink::new(Box::new(std::io::stdout()), None)),
        AccessLog::File(path) => Some(AccessSink::new(
            open_access_file(path).map_err(|e| format!("access log {}: {e}", path.display()))?,
            Some(path.clone()),
        )),
    };
    // rustls warns about what a client sent (an IP address as SNI, as wrk sends): one line per
    // handshake that any client can cause, so below debug only its errors are logged.
    let rustls_level = if level >= log::LevelFilter::Debug {
        level
    } else {
        level.min(log::LevelFilter::Error)
    };
    let server = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("rustls", rustls_level)
        .with_utc_timestamps();
    let max = if access.is_some() {
        level.max(log::LevelFilter::Info)
    } else {
        level
    };
    let access = access.map(|sink| Arc::new(Mutex::new(sink)));
    reopen_on_sigusr1(access.clone())?;
    log::set_boxed_logger(Box::new(Logger { server, access }))?;
    log::set_max_level(max);
    Ok(())
}

/// SIGUSR1 opens the access log file again (logrotate's convention: it renames the file,
/// then signals): lines written before go to the renamed file, lines after to a new one.
/// Without a file the signal is ignored rather than ending the process.
fn reopen_on_sigusr1(access: Option<Arc<Mutex<AccessSink>>>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
    std::thread::Builder::new()
        .name("margay-log-reopen".into())
        .spawn(move || {
            for _ in signals.forever() {
                let Some(access) = &access else { continue };
                let Ok(mut sink) = access.lock() else {
                    continue;
                };
                let Some(path) = sink.path.clone() else {
                    continue;
                };
                sink.write_out();
                match open_access_file(&path) {
                    Ok(out) => sink.out = out,
                    Err(e) => {
                        drop(sink);
                        log::error!("SIGUSR1: cannot reopen {}: {e}", path.display());
                        continue;
                    }
                }
                drop(sink);
                log::info!("SIGUSR1: reopened the access log {}", path.display());
            }
        })?;
    Ok(())
}
