//! Proves graceful shutdown: on SIGTERM the binary stops accepting, closes idle connections,
//! lets an in-flight download finish and exits 0; a second signal exits at once; and an
//! embedded server's `RunningServer::shutdown` returns and frees the port.

#[macro_use]
mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Reads a response head a byte at a time and returns it as text.
fn read_head_text(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => panic!("closed inside the response head"),
            Err(e) => panic!("reading the response head: {e}"),
        }
    }
    String::from_utf8(head).expect("head is text")
}

/// Reads exactly `n` body bytes, 64 KiB at a time with a pause after each read.
fn read_slowly(stream: &mut TcpStream, n: usize, into: &mut Vec<u8>) {
    let mut buf = vec![0u8; 64 * 1024];
    let target = into.len() + n;
    while into.len() < target {
        let want = buf.len().min(target - into.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => panic!("download cut off after {} of {BIG_LEN} bytes", into.len()),
            Ok(got) => into.extend_from_slice(&buf[..got]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("download failed after {} bytes: {e}", into.len()),
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts a connection attempt is refused, or accepted by nobody: closed without a byte.
fn assert_not_served(addr: SocketAddr, what: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = stream.write_all(&get_req("/style.css"));
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "{what}: a new connection was served: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("{what}: a new connection hangs instead of being refused: {e}"),
    }
}

both_models!(sigterm_finishes_download_then_exits, |model| {
    let mut server = ServerProcess::builder(model)
        .args(&[
            "--shutdown-timeout",
            "20",
            "--keep-alive-timeout",
            "60",
            "--send-timeout",
            "60",
        ])
        .start();
    server.assert_serves("at start");
    // An idle kept-alive connection, served once.
    let mut idle = connect(server.addr);
    assert_still_serves(&mut idle);

    // A download under way: the head and the first MiB read, the rest still to come.
    let mut download = connect_small_buffers(server.addr);
    send(&mut download, &get_req("/big.bin"));
    let head = read_head_text(&mut download);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("\r\ncontent-length: {BIG_LEN}\r\n")),
        "{head}"
    );
    let mut body = Vec::with_capacity(BIG_LEN);
    read_slowly(&mut download, 1024 * 1024, &mut body);

    server.signal(libc::SIGTERM);
    let signalled = Instant::now();

    // Idle connections are closed at once rather than kept for the keep-alive timeout.
    assert_closed(&mut idle);
    // The listener is gone: a new client is refused (or closed unanswered).
    assert_not_served(server.addr, "after SIGTERM");
    assert!(server.is_running(), "exited before the download finished");

    read_slowly(&mut download, BIG_LEN - body.len(), &mut body);
    assert!(
        body == big_bin(),
        "the download's bytes differ from the file"
    );
    let status = server.wait_exit(Duration::from_secs(25), "after the download finished");
    assert!(
        status.success(),
        "graceful shutdown must exit 0, got {status}; log:\n{}",
        server.log()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(25),
        "shutdown took {:?}",
        signalled.elapsed()
    );
});

both_models!(second_signal_exits_at_once, |model| {
    let mut server = ServerProcess::builder(model)
        .args(&["--shutdown-timeout", "30", "--send-timeout", "60"])
        .start();
    server.assert_serves("at start");
    // A download whose client never reads: graceful shutdown would wait the full 30 s.
    let mut stalled = connect_small_buffers(server.addr);
    send(&mut stalled, &get_req("/big.bin"));
    thread::sleep(Duration::from_millis(300));

    server.signal(libc::SIGTERM);
    thread::sleep(Duration::from_millis(1500));
    assert!(
        server.is_running(),
        "the first signal must wait for the stalled download, not exit; log:\n{}",
        server.log()
    );

    server.signal(libc::SIGINT);
    let status = server.wait_exit(
        Duration::from_secs(10),
        "a second signal with a stalled download (shutdown timeout 30 s)",
    );
    assert!(
        status.code().is_some(),
        "margay should exit by itself on the second signal, not die of it: {status}"
    );
    drop(stalled);
});

both_models!(
    running_server_shutdown_returns_and_stops_accepting,
    |model| {
        let server = TestServer::start_with(model, |c| {
            c.keep_alive_timeout(Duration::from_secs(60))
                .shutdown_timeout(Duration::from_secs(30))
        });
        let addr = server.addr();
        let mut idle = connect(addr);
        assert_still_serves(&mut idle);

        // shutdown() must not wait for the idle connection's keep-alive timeout.
        let (done, result) = mpsc::channel();
        let started = Instant::now();
        thread::spawn(move || done.send(server.shutdown()).unwrap());
        let outcome = result
            .recv_timeout(Duration::from_secs(10))
            .expect("RunningServer::shutdown did not return within 10 s");
        outcome.expect("shutdown reports success");
        assert!(started.elapsed() < Duration::from_secs(10));

        assert_closed(&mut idle);
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::ConnectionRefused,
                "connecting after shutdown: {e}"
            ),
            Ok(_) => panic!("the port still accepts connections after shutdown returned"),
        }
    }
);
