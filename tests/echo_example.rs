//! The echo example: `examples/echo_server.rs`, started through cargo, serves many clients at
//! once from its one thread and sends each exactly what it sent, and `examples/echo_client.rs`
//! prints the echo of its line.

mod common;

use common::wait_for_log_line;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;
use tempfile::TempDir;

/// How long cargo may take to build and start an example.
const START_TIMEOUT: Duration = Duration::from_secs(300);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// `cargo run --example echo_server` on a port of the kernel's choosing; killed on drop.
struct EchoServer {
    child: Child,
    addr: SocketAddr,
    _log_dir: TempDir,
}

impl EchoServer {
    fn start() -> EchoServer {
        let log_dir = TempDir::new().unwrap();
        let log = log_dir.path().join("echo_server.log");
        let mut child = cargo(&[
            "run",
            "--quiet",
            "--example",
            "echo_server",
            "--",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start cargo run --example echo_server");
        let says = "echo server listening on ";
        let addr = wait_for_log_line(&mut child, &log, says, START_TIMEOUT);
        EchoServer {
            child,
            addr: addr
                .trim()
                .parse()
                .expect("the echo server names its address"),
            _log_dir: log_dir,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to echo_server");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        // `cargo run` replaces itself with the example on Unix, so this is the server itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cargo command in this package.
fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    command
}

#[test]
fn fifty_concurrent_clients_get_exact_echoes() {
    const CLIENTS: usize = 50;
    const LINES: usize = 20;
    let server = EchoServer::start();
    // Connect everyone first, so all fifty are open on the server's one thread at once.
    let streams: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    let clients: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(client, mut stream)| {
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                for line in 0..LINES {
                    let sent = format!(
                        "client {client} line {line} {}\n",
                        "x".repeat(client * 37 + line)
                    );
                    stream.write_all(sent.as_bytes()).unwrap();
                    let mut echo = String::new();
                    reader.read_line(&mut echo).expect("read echo");
                    assert_eq!(echo, sent, "client {client}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client saw a wrong echo");
    }
}

#[test]
fn a_large_stream_comes_back_whole_through_the_bounded_buffer() {
    const LEN: usize = 4 * 1024 * 1024;
    let server = EchoServer::start();
    let stream = server.connect();
    let data: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
    // Write and read at once: the server stops reading while 64 KiB of echo are unsent, so a
    // client that only wrote would stall once its own receive buffer filled.
    let mut writer = stream.try_clone().unwrap();
    let to_send = data.clone();
    let sender = thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut echo = Vec::with_capacity(LEN);
    (&stream)
        .read_to_end(&mut echo)
        .expect("read the echo until the server closes");
    sender.join().unwrap();
    assert_eq!(echo.len(), LEN);
    assert!(echo == data, "the echo differs from what was sent");
}

#[test]
fn echo_client_prints_the_echo() {
    let server = EchoServer::start();
    let output: Output = cargo(&[
        "run",
        "--quiet",
        "--example",
        "echo_client",
        "--",
        "--addr",
        &server.addr.to_string(),
        "good",
        "morning",
    ])
    .output()
    .expect("run echo_client");
    assert!(
        output.status.success(),
        "echo_client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "good morning\n");
}
