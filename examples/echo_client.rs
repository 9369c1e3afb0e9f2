//! The other half of the echo example: connects, sends one line, prints what comes back.
//!
//! ```sh
//! cargo run --example echo_client                          # sends "hello" to 127.0.0.1:65432
//! cargo run --example echo_client -- good morning          # sends "good morning"
//! cargo run --example echo_client -- --addr '[::1]:7000' hi
//! ```

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Where the client connects unless told otherwise (the echo server's default).
const DEFAULT_ADDR: &str = "127.0.0.1:65432";

fn main() -> io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .map_err(io::Error::other)?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let addr = if args.len() >= 2 && args[0] == "--addr" {
        args.remove(0);
        args.remove(0)
    } else {
        DEFAULT_ADDR.to_string()
    };
    let line = if args.is_empty() {
        "hello".to_string()
    } else {
        args.join(" ")
    };

    let mut stream = TcpStream::connect(&addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    log::info!("connected to {addr}");
    stream.write_all(format!("{line}\n").as_bytes())?;

    let mut echo = String::new();
    BufReader::new(&stream).read_line(&mut echo)?;
    if echo.trim_end_matches('\n') != line {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("sent {line:?}, got back {echo:?}"),
        ));
    }
    println!("{}", echo.trim_end_matches('\n'));
    Ok(())
}
