//! Handlers embedded in the server: routing and its precedence over static files, what a
//! `Request` exposes, request bodies (length, chunked, `Expect: 100-continue`, size limit),
//! a slow body not blocking others, panics, and the built-in `/api/status` and `/api/echo`.

mod common;

use common::{Resp, TestServer, assert_closed, connect, read_response, request, send};
use margay::{Config, Method, Model, Response, Server};
use serde_json::{Value, json};
use std::thread;
use std::time::{Duration, Instant};

/// Content of the static `page.html`, which a route at the same path hides.
const STATIC_PAGE: &str = "<p>static page.html</p>\n";
/// Content of the static `other.html`, which no route covers.
const STATIC_OTHER: &str = "<p>static other.html</p>\n";
/// The body-size limit of servers started with [`small_bodies`].
const SMALL_LIMIT: u64 = 1024;

/// A server with the test routes, and the static files they compete with, in the root.
fn with_routes(model: Model, tune: impl FnOnce(Config) -> Config) -> TestServer {
    TestServer::builder(model)
        .config(tune)
        .files(|root| {
            std::fs::write(root.join("page.html"), STATIC_PAGE).unwrap();
            std::fs::write(root.join("other.html"), STATIC_OTHER).unwrap();
        })
        .routes(with_test_routes)
        .start()
}

fn start(model: Model) -> TestServer {
    with_routes(model, |c| c)
}

/// A server whose body-size limit is [`SMALL_LIMIT`].
fn small_bodies(model: Model) -> TestServer {
    with_routes(model, |config| config.max_body_size(SMALL_LIMIT))
}

fn with_test_routes(server: Server) -> Server {
    server
        .route(Method::Get, "/exact", |_| Response::text("exact"))
        .route_prefix(Method::Get, "/pre/", |r| {
            Response::text(format!("prefix {}", r.path()))
        })
        .route_prefix(Method::Get, "/pre/deeper/", |_| {
            Response::text("longer prefix")
        })
        .route(Method::Get, "/pre/x", |_| {
            Response::text("exact inside prefix")
        })
        .route(Method::Get, "/page.html", |_| Response::text("route"))
        .route(Method::Post, "/upload", |r| {
            Response::bytes("application/octet-stream", r.body())
        })
        .route(Method::Get, "/whoami", |r| {
            Response::text(r.remote_addr().to_string())
        })
        .route(Method::Get, "/inspect", |r| {
            Response::json(&json!({
                "q": r.query("q"),
                "x": r.query("x"),
                "pairs": r.query_pairs(),
                "header": r.header("X-Test-Header"),
            }))
        })
        .route(Method::Get, "/panic", |_| -> Response {
            panic!("this handler always panics")
        })
}

fn json_body(resp: &Resp) -> Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", resp.text()))
}

fn post(target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let length = body.len().to_string();
    let mut headers = headers.to_vec();
    headers.push(("Content-Length", &length));
    let mut raw = request("POST", target, &headers);
    raw.extend_from_slice(body);
    raw
}

both_models!(exact_beats_prefix_beats_static, |model| {
    let server = start(model);
    let rows = [
        ("/exact", "exact"),
        ("/pre/a", "prefix /pre/a"),
        ("/pre/deeper/b", "longer prefix"),
        ("/pre/x", "exact inside prefix"),
        ("/pre/x/y", "prefix /pre/x/y"),
        ("/page.html", "route"),
        ("/other.html", STATIC_OTHER),
    ];
    for (target, body) in rows {
        let resp = server.get(target);
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, body),
            "GET {target}"
        );
    }
    assert_eq!(
        server.get("/pre").status,
        404,
        "a prefix route needs its trailing slash"
    );
});

both_models!(wrong_method_on_a_route_is_405_with_allow, |model| {
    let server = start(model);
    let mut stream = server.connect();
    for target in ["/exact", "/pre/a"] {
        send(&mut stream, &request("DELETE", target, &[]));
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 405, "DELETE {target}");
        assert_eq!(
            resp.list_tokens("allow"),
            ["get", "head"],
            "DELETE {target}"
        );
    }
    send(&mut stream, &request("GET", "/exact", &[]));
    assert_eq!(
        read_response(&mut stream, false).text(),
        "exact",
        "the connection still serves"
    );
});

both_models!(head_on_a_get_route_has_no_body, |model| {
    let server = start(model);
    let mut stream = server.connect();
    send(&mut stream, &request("HEAD", "/exact", &[]));
    let head = read_response(&mut stream, true);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.content_length(),
        Some("exact".len() as u64),
        "HEAD tells the GET length"
    );
    // Had a body followed the head, it would be read here in place of the next status line.
    send(&mut stream, &request("GET", "/whoami", &[]));
    let next = read_response(&mut stream, false);
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), stream.local_addr().unwrap().to_string());
});

both_models!(query_parameters_are_decoded, |model| {
    let server = start(model);
    let got = json_body(&server.get("/inspect?q=a+b&x=%2F&flag"));
    assert_eq!(got["q"], "a b");
    assert_eq!(got["x"], "/");
    assert_eq!(
        got["pairs"],
        json!([["q", "a b"], ["x", "/"], ["flag", ""]])
    );
});

both_models!(header_lookup_ignores_case, |model| {
    let server = start(model);
    let got = json_body(&server.exchange(
        &request("GET", "/inspect", &[("x-tEsT-hEaDeR", "  value 1 ")]),
        false,
    ));
    assert_eq!(got["header"], "value 1");
    let none = json_body(&server.get("/inspect"));
    assert_eq!(none["header"], Value::Null);
});

both_models!(request_knows_the_remote_address, |model| {
    let server = start(model);
    let mut stream = server.connect();
    send(&mut stream, &request("GET", "/whoami", &[]));
    assert_eq!(
        read_response(&mut stream, false).text(),
        stream.local_addr().unwrap().to_string()
    );
});

both_models!(content_length_body_reaches_the_handler, |model| {
    let server = start(model);
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut stream = server.connect();
    send(&mut stream, &post("/upload", &[], &body));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert!(
        resp.body == body,
        "echoed body differs ({} bytes back)",
        resp.body.len()
    );
    send(&mut stream, &post("/upload", &[], b""));
    assert_eq!(
        read_response(&mut stream, false).body,
        b"",
        "empty body on the same connection"
    );
});

both_models!(chunked_body_with_extensions_and_trailers, |model| {
    let server = start(model);
    let mut stream = server.connect();
    let mut raw = request("POST", "/upload", &[("Transfer-Encoding", "chunked")]);
    raw.extend_from_slice(b"5;name=value\r\nhello\r\n6 ;x\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\nOther: 1\r\n\r\n");
    send(&mut stream, &raw);
    let resp = read_response(&mut stream, false);
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "hello world0123456789")
    );
    // The trailers were consumed: the next request on the connection parses cleanly.
    send(&mut stream, &request("GET", "/exact", &[]));
    assert_eq!(read_response(&mut stream, false).text(), "exact");
});

both_models!(malformed_chunk_size_is_400_and_closes, |model| {
    let server = start(model);
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n",
        "0x5\r\nhello\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "ffffffffffffffff\r\n",
    ] {
        let mut stream = server.connect();
        let mut raw = request("POST", "/upload", &[("Transfer-Encoding", "chunked")]);
        raw.extend_from_slice(body.as_bytes());
        send(&mut stream, &raw);
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 400, "chunked body {body:?}");
        assert!(
            resp.says_close(),
            "chunked body {body:?}: 400 must say Connection: close"
        );
        assert_closed(&mut stream);
    }
});

both_models!(expect_continue_gets_100_when_the_body_is_wanted, |model| {
    let server = start(model);
    let mut stream = server.connect();
    send(
        &mut stream,
        &request(
            "POST",
            "/upload",
            &[("Content-Length", "5"), ("Expect", "100-continue")],
        ),
    );
    let interim = read_response(&mut stream, false);
    assert_eq!(
        (interim.version.as_str(), interim.status),
        ("HTTP/1.1", 100),
        "interim response before the body is sent"
    );
    send(&mut stream, b"hello");
    let resp = read_response(&mut stream, false);
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));
});

both_models!(
    expect_continue_gets_no_100_when_the_body_is_refused,
    |model| {
        let server = small_bodies(model);
        let too_long = (SMALL_LIMIT + 1).to_string();
        // Too large for the route; a route without POST; a static file, which takes no body.
        let rows = [
            ("/upload", too_long.as_str(), 413),
            ("/page.html", "5", 405),
            ("/other.html", "5", 405),
        ];
        for (target, length, status) in rows {
            let mut stream = server.connect();
            send(
                &mut stream,
                &request(
                    "POST",
                    target,
                    &[("Content-Length", length), ("Expect", "100-continue")],
                ),
            );
            let resp = read_response(&mut stream, false);
            assert_eq!(
                resp.status, status,
                "POST {target} with Content-Length {length}: a final answer, no 100"
            );
            assert_closed(&mut stream);
        }
    }
);

both_models!(declared_body_over_the_limit_is_413_and_closes, |model| {
    let server = small_bodies(model);
    let at_limit = vec![b'a'; SMALL_LIMIT as usize];
    let resp = server.exchange(&post("/upload", &[], &at_limit), false);
    assert_eq!(
        (resp.status, resp.body.len()),
        (200, at_limit.len()),
        "a body of exactly the limit is taken"
    );

    let mut stream = server.connect();
    let length = (SMALL_LIMIT + 1).to_string();
    // Only the head: the server must refuse on the declared length alone.
    send(
        &mut stream,
        &request("POST", "/upload", &[("Content-Length", &length)]),
    );
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 413);
    assert!(resp.says_close(), "413 must say Connection: close");
    assert_closed(&mut stream);
});

both_models!(chunked_body_over_the_limit_is_413_and_closes, |model| {
    let server = small_bodies(model);
    let mut stream = server.connect();
    let mut raw = request("POST", "/upload", &[("Transfer-Encoding", "chunked")]);
    // Three chunks that together are one byte over the limit.
    let third = SMALL_LIMIT as usize + 1 - 2 * 500;
    raw.extend_from_slice(
        format!(
            "1f4\r\n{}\r\n1f4\r\n{}\r\n{third:x}\r\n{}",
            "a".repeat(500),
            "b".repeat(500),
            "c".repeat(third)
        )
        .as_bytes(),
    );
    send(&mut stream, &raw);
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 413);
    assert!(resp.says_close(), "413 must say Connection: close");
    assert_closed(&mut stream);
});

both_models!(slow_body_does_not_block_other_clients, |model| {
    const BODY_LEN: usize = 40;
    const PAUSE: Duration = Duration::from_millis(50);
    let server = start(model);
    let addr = server.addr();
    let slow = thread::spawn(move || {
        let mut stream = connect(addr);
        send(
            &mut stream,
            &request(
                "POST",
                "/upload",
                &[("Content-Length", &BODY_LEN.to_string())],
            ),
        );
        for i in 0..BODY_LEN {
            thread::sleep(PAUSE);
            send(&mut stream, &[b'a' + (i % 26) as u8]);
        }
        let finished = Instant::now();
        (finished, read_response(&mut stream, false))
    });
    thread::sleep(PAUSE * 4);
    let asked = Instant::now();
    let resp = server.get("/exact");
    let answered = Instant::now();
    assert_eq!(resp.text(), "exact");
    assert!(
        answered - asked < Duration::from_millis(500),
        "other client waited {:?}",
        answered - asked
    );

    let (slow_finished, slow_resp) = slow.join().expect("slow client");
    let expected: Vec<u8> = (0..BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(slow_resp.body, expected, "the slow body arrives whole");
    assert!(
        answered + Duration::from_secs(1) < slow_finished,
        "the other client was answered only {:?} before the slow body finished",
        slow_finished.saturating_duration_since(answered)
    );
});

both_models!(
    panicking_handler_gives_500_and_the_server_lives_on,
    |model| {
        let server = start(model);
        let resp = server.get("/panic");
        assert_eq!(resp.status, 500);
        assert_eq!(
            server.get("/exact").text(),
            "exact",
            "a new connection after the panic"
        );
        assert_eq!(
            server.get("/panic").status,
            500,
            "and the handler still runs"
        );
    }
);

both_models!(status_counters_move, |model| {
    const N: u64 = 5;
    let server = start(model);
    let before = server.status();
    for _ in 0..N {
        assert_eq!(server.get("/exact").status, 200);
    }
    let mut held = server.connect();
    send(&mut held, &request("GET", "/exact", &[]));
    assert_eq!(read_response(&mut held, false).status, 200);

    let after = server.status();
    let delta = |key: &str| after[key].as_u64().unwrap() - before[key].as_u64().unwrap();
    // The first status request, N requests, and the held connection's request.
    assert_eq!(delta("requests"), N + 2, "requests: {before} -> {after}");
    // N connections, the held one, and the one asking now.
    assert_eq!(delta("accepted"), N + 2, "accepted: {before} -> {after}");
    assert!(
        after["active"].as_i64().unwrap() >= 2,
        "held and asking connections open: {after}"
    );
    assert!(delta("bytes_sent") > 0, "bytes_sent: {before} -> {after}");
    assert!(
        after["requests_per_second"].as_f64().unwrap() > 0.0,
        "{after}"
    );
    assert!(
        after["uptime_seconds"].as_f64().unwrap() >= before["uptime_seconds"].as_f64().unwrap()
    );
    assert!(after["handled"].as_u64().unwrap() <= after["accepted"].as_u64().unwrap());
    drop(held);
});

both_models!(echo_reflects_body_and_headers, |model| {
    let server = start(model);
    let mut stream = server.connect();
    send(
        &mut stream,
        &post(
            "/api/echo?k=v+w",
            &[("X-Custom", "abc")],
            b"ping \xF0\x9F\x90\x88",
        ),
    );
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    let echo = json_body(&resp);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/echo");
    assert_eq!(echo["query"], json!([["k", "v w"]]));
    assert_eq!(echo["body"], "ping 🐈");
    assert_eq!(
        echo["remote_addr"],
        stream.local_addr().unwrap().to_string()
    );
    let headers = echo["headers"].as_array().expect("headers array");
    assert!(
        headers.contains(&json!(["X-Custom", "abc"])),
        "headers: {headers:?}"
    );
    assert!(
        headers.contains(&json!(["Content-Length", "9"])),
        "headers: {headers:?}"
    );
});

both_models!(builtin_endpoints_can_be_turned_off, |model| {
    let server = with_routes(model, |config| config.builtin_endpoints(false));
    assert_eq!(server.get("/api/status").status, 404);
    // Without the endpoint the path falls through to the root, where nothing is there.
    let echo = server.exchange(&post("/api/echo", &[], b"ping"), false);
    assert_eq!(
        echo.status,
        404,
        "POST /api/echo must not be answered: {}",
        echo.text()
    );
    assert!(!echo.text().contains("ping"));
    assert_eq!(
        server.get("/exact").text(),
        "exact",
        "the application's own routes still work"
    );
});
