//! Proves the server stays up for everyone under hostile or careless clients: slow heads
//! (slowloris), idle and silent connections, clients that stop reading, the connection cap,
//! the per-connection request cap, pipelined floods, oversized garbage and running out of
//! file descriptors.
//!
//! Timeouts are set to a second where a test waits for one; every assertion about time is
//! either a lower bound (the server must not act early) or a deadline of several seconds.

#[macro_use]
mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Waits up to `within` for the server to close `stream`, discarding what arrives; returns
/// how long it took and the bytes received.
fn wait_closed(stream: &mut TcpStream, within: Duration) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let deadline = started + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "connection still open after {within:?} ({} bytes received)",
            got.len()
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (started.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (started.elapsed(), got),
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("waiting for close: {e}"),
        }
    }
}

/// Asserts that nothing at all arrives on `stream` for `quiet`.
fn assert_no_response_for(stream: &mut TcpStream, quiet: Duration, what: &str) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Err(e) if is_timeout(&e) => {}
        Ok(0) => panic!("{what}: connection closed"),
        Ok(n) => panic!(
            "{what}: got a response: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("{what}: {e}"),
    }
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Slow and silent clients.

both_models!(slowloris_gets_408_while_others_are_served, |model| {
    let server = TestServer::start_with(model, |c| c.header_timeout(Duration::from_secs(1)));
    let head = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut slow = server.connect();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut others_served = 0;
    // One byte, then wait 300 ms for an answer; the read timeout paces the trickle.
    for &byte in head.iter().take(head.len() - 2) {
        if slow.write_all(&[byte]).is_err() {
            break;
        }
        if others_served == 0 {
            server.assert_serves("while a slowloris client trickles its head");
            others_served += 1;
            // Served while the slow head was still pending, not after it was cut off.
            slow.set_nonblocking(true).unwrap();
            let mut probe = [0u8; 1];
            match slow.read(&mut probe) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                other => panic!(
                    "the normal client was served only after the slowloris one ended: {other:?}"
                ),
            }
            slow.set_nonblocking(false).unwrap();
        }
        slow.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 4096];
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("slowloris read: {e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no answer to a slow head 10 s after it started (header timeout 1 s)"
        );
    }
    let elapsed = started.elapsed();
    assert!(
        answer.starts_with(b"HTTP/1.1 408 "),
        "a head still incomplete at the header timeout must get 408, got {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "408 after {elapsed:?}, before the 1 s header timeout"
    );
    // The rest of the 408 and then the close.
    let (_, rest) = wait_closed(&mut slow, Duration::from_secs(5));
    answer.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(
        text.contains("\r\nconnection: close\r\n"),
        "the 408 must announce the close: {text:?}"
    );
    server.assert_serves("after the slowloris client was cut off");
});

both_models!(idle_keep_alive_connection_closes_after_timeout, |model| {
    let server = TestServer::start_with(model, |c| {
        c.keep_alive_timeout(Duration::from_secs(1))
            .header_timeout(Duration::from_secs(30))
    });
    let mut stream = server.connect();
    send(&mut stream, &get_req("/style.css"));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert!(!resp.says_close(), "the connection should be kept alive");
    let (idle, extra) = wait_closed(&mut stream, Duration::from_secs(8));
    assert!(
        extra.is_empty(),
        "nothing may be sent on an idle connection: {:?}",
        String::from_utf8_lossy(&extra)
    );
    assert!(
        idle >= Duration::from_millis(800),
        "closed after {idle:?}, before the 1 s keep-alive timeout"
    );
});

both_models!(silent_connection_closes_after_header_timeout, |model| {
    let server = TestServer::start_with(model, |c| {
        c.header_timeout(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(30))
    });
    let mut stream = server.connect();
    let (silent, sent) = wait_closed(&mut stream, Duration::from_secs(8));
    // 408 answers a request that started; one that never did is closed without a word, as a
    // client may be about to send on it (`connection/mod.rs`, RFC 9112 section 9.5).
    assert!(
        sent.is_empty(),
        "a connection that sent nothing gets nothing, not even a 408: {:?}",
        String::from_utf8_lossy(&sent)
    );
    assert!(
        silent >= Duration::from_millis(800),
        "closed after {silent:?}, before the 1 s header timeout"
    );
    server.assert_serves("after a silent connection timed out");
});

both_models!(
    deferred_accept_keeps_a_silent_connection_out_of_the_server,
    |model| {
        let server = TestServer::start_with(model, |c| {
            c.defer_accept(Duration::from_secs(30)).max_connections(1)
        });
        let mut silent = server.connect();
        thread::sleep(Duration::from_millis(300));
        // With a cap of 1, a silent connection the server had taken up would hold the only
        // slot for the whole header timeout; deferred, it costs no slot at all.
        server.assert_serves("while a connected client has said nothing");
        let status = server.status();
        // Taken up: the served client and the status request, not the silent one. (Counted
        // as accepted, not as active: the served client's close may not be seen yet.)
        assert_eq!(
            status["accepted"], 2,
            "the silent connection was taken up: {status}"
        );
        // Once it speaks it is taken up and served like anyone else.
        send(&mut silent, &get_req("/style.css"));
        let resp = try_read_response(&mut silent, false)
            .unwrap_or_else(|e| panic!("the late speaker was not served: {e}"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, STYLE_CSS.as_bytes());
    }
);

both_models!(
    without_deferred_accept_a_silent_connection_is_taken_up,
    |model| {
        let server = TestServer::start_with(model, |c| c.defer_accept(Duration::ZERO));
        let _silent = server.connect();
        server.wait_for_active(
            2,
            Duration::from_secs(5),
            "a silent connection accepted at once",
        );
    }
);

/// What the kernel holds unacknowledged in the server's socket of the connection whose client
/// end is `client` (the `tx_queue` column of `/proc/net/tcp`), if that socket is listed.
fn server_send_queue(server: SocketAddr, client: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (local, remote) = (
        format!(":{:04X}", server.port()),
        format!(":{:04X}", client.port()),
    );
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 4 && fields[1].ends_with(&local) && fields[2].ends_with(&remote) {
            let tx_queue = fields[4].split(':').next()?;
            u64::from_str_radix(tx_queue, 16).ok()
        } else {
            None
        }
    })
}

/// The most a client that asks for `/big.bin` and then reads nothing gets the server's kernel
/// to hold for it, once the server has stopped making progress.
fn held_for_a_client_that_reads_nothing(server: &TestServer) -> u64 {
    let mut stalled = connect_small_buffers(server.addr());
    send(&mut stalled, &get_req("/big.bin"));
    let client = stalled.local_addr().unwrap();
    // The queue can move back a little between readings: wait until it stops growing.
    let (mut most, mut not_grown) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while not_grown < 5 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        let now = server_send_queue(server.addr(), client).unwrap_or(0);
        not_grown = if now > most { 0 } else { not_grown + 1 };
        most = most.max(now);
    }
    most
}

both_models!(
    send_buffer_caps_what_a_client_that_reads_nothing_holds,
    |model| {
        const CAP: usize = 16 * 1024;
        let capped = TestServer::start_with(model, |c| c.send_buffer(Some(CAP)));
        let held = held_for_a_client_that_reads_nothing(&capped);
        assert!(held > 0, "the download never started");
        // Linux doubles the value for its bookkeeping and lets one write overshoot a little.
        assert!(
            held <= 4 * CAP as u64,
            "with a {CAP}-byte send buffer the kernel held {held} bytes for the client"
        );
        capped.assert_serves("while a client with a capped buffer reads nothing");

        // The control: without a cap, the kernel sizes the buffer itself and holds far more.
        let automatic = TestServer::start_with(model, |c| c.send_buffer(None));
        let held_automatic = held_for_a_client_that_reads_nothing(&automatic);
        assert!(
            held_automatic > 4 * held,
            "automatic sizing held {held_automatic} bytes, the cap {held}: the cap made no difference"
        );
    }
);

both_models!(
    client_that_stops_reading_is_dropped_after_send_timeout,
    |model| {
        let server = TestServer::start_with(model, |c| c.send_timeout(Duration::from_secs(1)));
        let mut stalled = connect_small_buffers(server.addr());
        send(&mut stalled, &get_req("/big.bin"));
        // The download has started; from here on the client reads nothing.
        let mut start = [0u8; 13];
        stalled.read_exact(&mut start).unwrap();
        assert_eq!(&start, b"HTTP/1.1 200 ");
        let during = server.status();
        assert_eq!(
            during["active"], 2,
            "the stalled download and the status request: {during}"
        );
        // No byte moves for the send timeout: the server must give up on the client.
        server.wait_for_active(1, Duration::from_secs(10), "stalled download");
        // Reading now yields what was already buffered, then the end, well short of 10 MiB.
        let (_, received) = wait_closed(&mut stalled, Duration::from_secs(10));
        assert!(
            received.len() < BIG_LEN,
            "the dropped client still received {} bytes, the whole file",
            received.len()
        );
        server.assert_serves("after dropping a client that stopped reading");
    }
);

// ---------------------------------------------------------------------------------------------
// The connection cap.

both_models!(
    at_connection_cap_new_client_waits_for_a_free_slot,
    |model| {
        let server = TestServer::start_with(model, |c| {
            c.max_connections(2).header_timeout(Duration::from_secs(30))
        });
        let partial = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\n";
        let mut first = server.connect();
        send(&mut first, partial);
        thread::sleep(Duration::from_millis(200));
        let mut second = server.connect();
        send(&mut second, partial);
        thread::sleep(Duration::from_millis(200));

        // The kernel completes the handshake from the backlog; the server must not take it up.
        let mut third = server.connect();
        send(&mut third, &get_req("/style.css"));
        assert_no_response_for(
            &mut third,
            Duration::from_millis(1500),
            "a third client while two connections hold the cap of 2",
        );

        drop(first);
        let resp = try_read_response(&mut third, false)
            .unwrap_or_else(|e| panic!("the waiting client was not served once a slot freed: {e}"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, STYLE_CSS.as_bytes());

        // The connection still inside the cap was never disturbed: it finishes its request.
        send(&mut second, b"\r\n");
        let resp = try_read_response(&mut second, false)
            .unwrap_or_else(|e| panic!("the second held connection lost its request: {e}"));
        assert_eq!(resp.status, 200);
    }
);

both_models!(
    at_connection_cap_oldest_idle_connection_makes_room,
    |model| {
        let server = TestServer::start_with(model, |c| {
            c.max_connections(2)
                .keep_alive_timeout(Duration::from_secs(60))
        });
        let mut oldest = server.connect();
        assert_still_serves(&mut oldest);
        thread::sleep(Duration::from_millis(100));
        let mut newer = server.connect();
        assert_still_serves(&mut newer);
        thread::sleep(Duration::from_millis(100));

        // Both slots hold idle kept-alive connections: a new client is served at once, because
        // the oldest idle one is closed for it (not after the 60 s keep-alive timeout).
        let mut third = server.connect();
        send(&mut third, &get_req("/style.css"));
        let resp = try_read_response(&mut third, false).unwrap_or_else(|e| {
            panic!("a new client was not served while idle connections held the cap: {e}")
        });
        assert_eq!(resp.status, 200);

        let (_, extra) = wait_closed(&mut oldest, Duration::from_secs(5));
        assert!(extra.is_empty(), "the shed connection gets no bytes");
        assert_still_serves(&mut newer);
    }
);

// Clients that all connect at once, more than the server takes in one round of accepts: every
// one of them is served, none is left in the listen queue until some later client arrives.
both_models!(
    a_burst_of_clients_larger_than_one_accept_round_is_all_served,
    |model| {
        let server = TestServer::start(model);
        let mut clients: Vec<TcpStream> = (0..200).map(|_| server.connect()).collect();
        for stream in &mut clients {
            send(stream, &get_req("/style.css"));
        }
        for (i, stream) in clients.iter_mut().enumerate() {
            let resp = try_read_response(stream, false)
                .unwrap_or_else(|e| panic!("client {i} of the burst was not served: {e}"));
            assert_eq!(resp.status, 200, "client {i}");
            assert_eq!(resp.body, STYLE_CSS.as_bytes(), "client {i}");
        }
    }
);

both_models!(reaching_connection_cap_closes_no_one, |model| {
    let server = TestServer::start_with(model, |c| {
        c.max_connections(2)
            .keep_alive_timeout(Duration::from_secs(60))
    });
    // Two clients exactly fill the cap; nobody waits, so neither may be closed.
    let mut first = server.connect();
    assert_still_serves(&mut first);
    thread::sleep(Duration::from_millis(100));
    let mut second = server.connect();
    assert_still_serves(&mut second);
    thread::sleep(Duration::from_millis(200));
    assert_still_serves(&mut first);
    assert_still_serves(&mut second);
});

// ---------------------------------------------------------------------------------------------
// Per-connection limits.

both_models!(max_requests_per_connection_closes_after_the_last, |model| {
    let server = TestServer::start_with(model, |c| c.max_requests_per_connection(3));
    let mut stream = server.connect();
    for n in 1..=3 {
        send(&mut stream, &get_req("/style.css"));
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 200, "request {n}");
        assert_eq!(resp.body, STYLE_CSS.as_bytes(), "request {n}");
        assert_eq!(
            resp.says_close(),
            n == 3,
            "request {n} of 3: Connection: close only on the last: {:?}",
            resp.headers
        );
    }
    assert_closed(&mut stream);
});

both_models!(pipelined_flood_without_reading_is_not_buffered, |model| {
    let server = TestServer::start_with(model, |c| c.send_timeout(Duration::from_secs(60)));
    // 20,000 small requests (840 KB) in one write. Each asks for the 10 MiB file, so the
    // server cannot answer them faster than the client (which never reads) takes them: it
    // must stop reading requests rather than queue 20,000 responses.
    let one = get_req("/big.bin");
    let flood: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 20_000)
        .collect();
    let mut client = connect_small_buffers(server.addr());
    client
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut written = 0;
    let stalled = loop {
        match client.write(&flood[written..]) {
            Ok(0) => break None,
            Ok(n) => {
                written += n;
                if written == flood.len() {
                    break None;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Some(e),
        }
    };
    match stalled {
        Some(e) if is_timeout(&e) => {}
        Some(e) => panic!("flood write failed instead of blocking: {e}"),
        None => panic!(
            "the server took all {} bytes of 20,000 pipelined requests without answering them",
            flood.len()
        ),
    }
    assert!(written < flood.len());
    server.assert_serves("while a pipelining client refuses to read");
    // The flood connection is still held, not dropped: it plus the status request.
    server.wait_for_active(2, Duration::from_secs(5), "flood client held");
    drop(client);
    server.wait_for_active(1, Duration::from_secs(10), "flood client gone");
});

both_models!(huge_head_is_refused_with_431_and_closed, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    let mut head = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nX-Huge: ".to_vec();
    head.resize(100 * 1024, b'a');
    send_lenient(&mut stream, &head);
    let resp = try_read_response(&mut stream, false)
        .unwrap_or_else(|e| panic!("no answer to a 100 KiB head: {e}"));
    assert_eq!(resp.status, 431, "{}", resp.text());
    assert!(resp.says_close(), "431 must close: {:?}", resp.headers);
    assert_closed(&mut stream);
    server.assert_serves("after a 100 KiB head");
});

both_models!(huge_garbage_is_refused_and_closed, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    // 100 KiB of binary noise: no request line, no line ends to speak of.
    let mut state: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..100 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    send_lenient(&mut stream, &garbage);
    let resp = try_read_response(&mut stream, false)
        .unwrap_or_else(|e| panic!("no answer to 100 KiB of garbage: {e}"));
    // Not a request line: RFC 9112 section 2.2 answers bytes that do not match the grammar
    // with 400. They are refused at the first bad byte, long before the head limit (431).
    assert_eq!(resp.status, 400, "100 KiB of garbage: {}", resp.text());
    assert!(
        resp.says_close(),
        "refusing garbage must close: {:?}",
        resp.headers
    );
    assert_closed(&mut stream);
    server.assert_serves("after 100 KiB of garbage");
});

// ---------------------------------------------------------------------------------------------
// Running out of file descriptors (the real binary under `ulimit -n 64`).

/// User plus system CPU time the process has used.
fn cpu_time(server: &ServerProcess) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id()))
        .expect("read /proc/PID/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

both_models!(descriptor_exhaustion_does_not_spin_and_recovers, |model| {
    // Flood connections must stay put while the CPU is measured.
    let mut server = ServerProcess::builder(model)
        .args(&["--header-timeout", "60"])
        .fd_limit(64)
        .start();
    server.assert_serves("started under ulimit -n 64");
    // Far more connections than 64 descriptors allow, opened as fast as possible. Half send
    // the start of a head (so they cannot be shed as idle), half send nothing.
    let mut flood = Vec::new();
    for n in 0..200 {
        if let Ok(mut stream) = TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)) {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            if n % 2 == 0 {
                let _ = stream.write_all(b"GET /style.css HTTP/1.1\r\n");
            }
            flood.push(stream);
        }
    }
    assert!(
        flood.len() > 64,
        "only {} connections opened; the test needs more than the server's descriptors",
        flood.len()
    );
    thread::sleep(Duration::from_millis(500));
    server.assert_alive("flooded past its descriptor limit");

    let before = cpu_time(&server);
    thread::sleep(Duration::from_secs(2));
    let used = cpu_time(&server).saturating_sub(before);
    server.assert_alive("held at its descriptor limit");
    assert!(
        used < Duration::from_secs(1),
        "margay used {used:?} of CPU in 2 s while out of descriptors: it spins; log:\n{}",
        server.log_tail(20)
    );

    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match server.try_get() {
            Ok(resp) if resp.status == 200 => break,
            Ok(resp) => panic!("after the flood: {} {}", resp.status, resp.text()),
            Err(e) => assert!(
                Instant::now() < deadline,
                "not serving again 15 s after the flood ended: {e}; log:\n{}",
                server.log_tail(20)
            ),
        }
        thread::sleep(Duration::from_millis(200));
    }
    server.assert_alive("after the flood");
});
