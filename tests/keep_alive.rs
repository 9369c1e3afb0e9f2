//! Proves connection management (RFC 9112 section 9): persistence by version and the
//! `Connection` field, pipelining in order, HEAD framing on a live connection, and requests
//! that arrive in pieces.

#[macro_use]
mod common;

use common::*;
use std::thread;
use std::time::Duration;

both_models!(http11_keep_alive_serves_two_requests, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();

    send(&mut stream, &get_req("/style.css"));
    let first = read_response(&mut stream, false);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, STYLE_CSS.as_bytes());
    assert!(
        !first.says_close(),
        "HTTP/1.1 response must not close by default: {first:?}"
    );

    send(&mut stream, &get_req("/app.js"));
    let second = read_response(&mut stream, false);
    assert_eq!(second.status, 200);
    assert_eq!(second.body, APP_JS.as_bytes());
});

both_models!(http10_closes_by_default, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(&mut stream, b"GET /style.css HTTP/1.0\r\n\r\n");
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
    assert_standard_headers(&resp, false);
    assert!(
        !resp
            .list_tokens("connection")
            .contains(&"keep-alive".to_string()),
        "HTTP/1.0 without keep-alive must not be told keep-alive"
    );
    assert_closed(&mut stream);
});

both_models!(http10_keep_alive_when_asked, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();

    for path in ["/style.css", "/app.js"] {
        send(
            &mut stream,
            format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        );
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 200, "{path}");
        assert!(
            resp.list_tokens("connection")
                .contains(&"keep-alive".to_string()),
            "HTTP/1.0 keep-alive response must say Connection: keep-alive: {resp:?}"
        );
        assert!(
            resp.content_length().is_some(),
            "a persistent 1.0 response needs Content-Length"
        );
    }

    // Without the option the next 1.0 request ends the connection.
    send(&mut stream, b"GET /data.json HTTP/1.0\r\n\r\n");
    let last = read_response(&mut stream, false);
    assert_eq!(last.status, 200);
    assert_eq!(last.body, DATA_JSON.as_bytes());
    assert_closed(&mut stream);
});

both_models!(
    connection_close_is_honoured_and_later_pipelined_request_unanswered,
    |model| {
        let server = TestServer::start(model);
        let mut stream = server.connect();
        let mut both = request("GET", "/style.css", &[("Connection", "close")]);
        both.extend_from_slice(&get_req("/app.js"));
        send(&mut stream, &both);

        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, STYLE_CSS.as_bytes());
        assert!(
            resp.says_close(),
            "response to Connection: close should say close: {resp:?}"
        );
        assert_closed(&mut stream);
    }
);

both_models!(
    closing_connection_delivers_all_it_queued_before_its_end,
    |model| {
        // The output of a connection that is about to close leaves with MSG_MORE, so that its
        // last bytes travel with the FIN: nothing of it may be held back or lost, even when
        // the client reads late and the writes block many times.
        let server = TestServer::start(model);
        let mut stream = server.connect();
        let count = 1500;
        let mut batch: Vec<u8> = (1..count).flat_map(|_| get_req("/style.css")).collect();
        batch.extend_from_slice(&request("GET", "/app.js", &[("Connection", "close")]));
        send(&mut stream, &batch);
        thread::sleep(Duration::from_millis(300));
        for i in 1..count {
            let resp = read_response(&mut stream, false);
            assert_eq!(resp.status, 200, "response {i}");
            assert_eq!(resp.body, STYLE_CSS.as_bytes(), "response {i}");
        }
        let last = read_response(&mut stream, false);
        assert_eq!(last.status, 200);
        assert_eq!(last.body, APP_JS.as_bytes());
        assert!(last.says_close(), "the last response says close: {last:?}");
        assert_closed(&mut stream);
    }
);

/// Segments the kernel has received on `stream` (Linux `TCP_INFO`).
#[cfg(target_os = "linux")]
fn segments_received(stream: &std::net::TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers, for which all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the descriptor is open, and `info` is writable for the `len` bytes passed.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_segs_in
}

#[cfg(target_os = "linux")]
both_models!(
    closing_response_and_its_fin_arrive_in_one_segment,
    |model| {
        let server = TestServer::start(model);
        let mut stream = server.connect();
        send(
            &mut stream,
            &request("GET", "/style.css", &[("Connection", "close")]),
        );
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, STYLE_CSS.as_bytes());
        assert_closed(&mut stream);
        // The handshake's SYN-ACK, at most one bare ACK of the request, then the response with
        // the FIN on it; a FIN in a segment of its own would make four.
        let segments = segments_received(&stream);
        assert!(
            segments <= 3,
            "the client received {segments} segments for one closing exchange"
        );
    }
);

both_models!(connection_close_found_in_option_list_any_case, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(
        &mut stream,
        &request("GET", "/style.css", &[("Connection", "TE, Close")]),
    );
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert_closed(&mut stream);
});

both_models!(pipelined_requests_answer_in_order, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    let order = [
        "/app.js",
        "/style.css",
        "/data.json",
        "/nope.txt",
        "/img.png",
        "/index.html",
    ];
    let mut batch = Vec::new();
    for path in order {
        batch.extend_from_slice(&get_req(path));
    }
    send(&mut stream, &batch);

    let files = served_files();
    for path in order {
        let resp = read_response(&mut stream, false);
        match files.iter().find(|(p, _)| *p == path) {
            Some((_, content)) => {
                assert_eq!(resp.status, 200, "{path}");
                assert_eq!(resp.body, *content, "body for {path} out of order or wrong");
            }
            None => assert_eq!(resp.status, 404, "{path}"),
        }
    }
    assert_still_serves(&mut stream);
});

both_models!(many_pipelined_requests_in_one_write, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    let paths: Vec<&str> = (0..60)
        .map(|i| {
            if i % 2 == 0 {
                "/ranges.txt"
            } else {
                "/style.css"
            }
        })
        .collect();
    let batch: Vec<u8> = paths.iter().flat_map(|p| get_req(p)).collect();
    send(&mut stream, &batch);
    for (i, path) in paths.iter().enumerate() {
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 200, "response {i}");
        let expected = if *path == "/ranges.txt" {
            RANGES_TXT
        } else {
            STYLE_CSS
        };
        assert_eq!(resp.body, expected.as_bytes(), "response {i} for {path}");
    }
});

both_models!(head_then_get_on_one_connection, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();

    // Pipelined: if HEAD wrongly carried a body, the GET's status line would be misread.
    let mut batch = request("HEAD", "/index.html", &[]);
    batch.extend_from_slice(&get_req("/index.html"));
    send(&mut stream, &batch);

    let head = read_response(&mut stream, true);
    let get = read_response(&mut stream, false);
    assert_eq!(head.status, 200);
    assert_eq!(get.status, 200);
    assert_standard_headers(&head, true);
    assert_eq!(
        head.content_length(),
        Some(INDEX_HTML.len() as u64),
        "HEAD Content-Length is the GET body length"
    );
    assert_eq!(get.body, INDEX_HTML.as_bytes());

    let without_date = |r: &Resp| -> Vec<(String, String)> {
        let mut h: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    };
    assert_eq!(
        without_date(&head),
        without_date(&get),
        "HEAD and GET heads differ"
    );

    // And sequentially: HEAD's missing body leaves the connection in step.
    send(&mut stream, &request("HEAD", "/big.bin", &[]));
    let big_head = read_response(&mut stream, true);
    assert_eq!(big_head.content_length(), Some(BIG_LEN as u64));
    assert_still_serves(&mut stream);
});

both_models!(request_sent_one_byte_at_a_time, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    let req = request(
        "GET",
        "/data.json",
        &[("Accept", "*/*"), ("User-Agent", "slow-client")],
    );
    for byte in &req {
        send(&mut stream, std::slice::from_ref(byte));
        thread::sleep(Duration::from_millis(2));
    }
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, DATA_JSON.as_bytes());
    assert_standard_headers(&resp, false);
    assert_still_serves(&mut stream);
});

both_models!(request_split_inside_line_ending, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    // Split between the CR and LF of the final empty line.
    send(
        &mut stream,
        b"GET /app.js HTTP/1.1\r\nHost: localhost\r\n\r",
    );
    thread::sleep(Duration::from_millis(50));
    send(&mut stream, b"\n");
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, APP_JS.as_bytes());
});
