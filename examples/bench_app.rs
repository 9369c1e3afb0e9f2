//! The server `scripts/bench-handlers.sh` measures: the static site, the built-in endpoints
//! (`/api/events` among them) and `GET /sleep`, a blocking route that waits as a database
//! call would.
//!
//! ```sh
//! cargo run --release --example bench_app -- --listen 127.0.0.1:9000 --sleep-ms 20
//! ```
//!
//! Options: `--listen ADDR`, `--root DIR`, `--model reactor|threads`, `--sleep-ms MS`
//! (default 20), `--handler-threads N`, `--handler-queue N`, `--max-connections N`. The
//! access log is off; the log level is `warn`.

use margay::{AccessLog, Config, Method, Model, Response, Server};
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_app: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Warn)
        .init()?;
    let mut config = Config::default()
        .access_log(AccessLog::Off)
        .builtin_endpoints(true);
    let mut sleep = Duration::from_millis(20);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        config = match flag.as_str() {
            "--listen" => config.listen(value.parse()?),
            "--root" => config.root(value),
            "--model" => config.model(match value.as_str() {
                "reactor" => Model::Reactor,
                "threads" => Model::Threads,
                _ => return Err(format!("--model {value:?}: reactor or threads").into()),
            }),
            "--sleep-ms" => {
                sleep = Duration::from_millis(value.parse()?);
                config
            }
            "--handler-threads" => config.handler_threads(value.parse()?),
            "--handler-queue" => config.handler_queue(value.parse()?),
            "--max-connections" => config.max_connections(value.parse()?),
            _ => return Err(format!("unknown option {flag:?}").into()),
        };
    }
    Server::new(config)?
        .blocking(Method::Get, "/sleep", move |_| {
            std::thread::sleep(sleep);
            Response::text("slept\n")
        })
        .run()?;
    Ok(())
}
