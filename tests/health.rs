//! `GET /healthz` as a load balancer sees it (`200` while serving, `503` once a graceful
//! shutdown has begun), and the admin listener that moves the monitoring endpoints off the
//! public address.

mod common;

use common::*;
use std::thread;
use std::time::Duration;

both_models!(healthz_answers_ok_while_serving, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/healthz");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"ok\n");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(!resp.says_close());
});

both_models!(healthz_answers_503_once_shutdown_begins, |model| {
    let server = TestServer::start(model);
    // Requests under way when the shutdown starts are still answered.
    let mut health = server.connect();
    send(&mut health, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
    let mut metrics = server.connect();
    send(
        &mut metrics,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n",
    );
    thread::sleep(Duration::from_millis(200));
    server.handle().shutdown();
    // The thread model looks at the flag every 250 ms.
    thread::sleep(Duration::from_millis(600));
    send(&mut health, b"\r\n");
    let resp = read_response(&mut health, false);
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body, b"shutting down\n");
    assert!(
        resp.says_close(),
        "a draining server closes: {:?}",
        resp.headers
    );
    send(&mut metrics, b"\r\n");
    let resp = read_response(&mut metrics, false);
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().lines().any(|l| l == "margay_shutting_down 1"),
        "{}",
        resp.text()
    );
});

both_models!(an_admin_listener_takes_the_monitoring_endpoints, |model| {
    let server = TestServer::builder(model)
        .config(|c| c.admin_listen("127.0.0.1:0".parse().unwrap()))
        .start();
    let admin = server.admin_addr().expect("an admin address");
    assert_ne!(admin, server.addr());
    // (method, path, status on the public listener, status on the admin listener)
    let rows: &[(&str, &str, u16, u16)] = &[
        ("GET", "/metrics", 404, 200),
        ("GET", "/healthz", 404, 200),
        ("GET", "/api/status", 404, 200),
        ("HEAD", "/api/events", 404, 200),
        ("HEAD", "/metrics", 404, 200),
        ("GET", "/style.css", 200, 404),
        ("GET", "/", 200, 404),
        ("GET", "/missing", 404, 404),
        ("POST", "/api/echo", 200, 404),
        ("POST", "/metrics", 404, 405),
    ];
    for (method, path, public, private) in rows {
        let length = [("Content-Length", "0")];
        let headers: &[(&str, &str)] = if *method == "POST" { &length } else { &[] };
        let resp = fetch(server.addr(), method, path, headers);
        assert_eq!(resp.status, *public, "public {method} {path}");
        let resp = fetch(admin, method, path, headers);
        assert_eq!(resp.status, *private, "admin {method} {path}");
    }
    let metrics = fetch(admin, "GET", "/metrics", &[]);
    assert!(
        metrics
            .text()
            .contains("# TYPE margay_http_requests_total counter")
    );
});

both_models!(
    without_an_admin_listener_the_public_one_serves_them,
    |model| {
        let server = TestServer::start(model);
        for path in ["/metrics", "/healthz", "/api/status"] {
            assert_eq!(server.get(path).status, 200, "{path}");
        }
        let server = TestServer::builder(model)
            .config(|c| c.builtin_endpoints(false))
            .start();
        for path in ["/metrics", "/healthz"] {
            assert_eq!(server.get(path).status, 404, "{path} switched off");
        }
    }
);

both_models!(
    the_admin_listener_answers_503_while_the_server_drains,
    |model| {
        let server = TestServer::builder(model)
            .config(|c| c.admin_listen("127.0.0.1:0".parse().unwrap()))
            .start();
        let admin = server.admin_addr().expect("an admin address");
        assert_eq!(fetch(admin, "GET", "/healthz", &[]).status, 200);
        // A request under way keeps the server draining (for up to its shutdown timeout).
        let mut slow = server.connect();
        send(&mut slow, b"GET /style.css HTTP/1.1\r\nHost: localhost\r\n");
        thread::sleep(Duration::from_millis(200));
        server.handle().shutdown();
        thread::sleep(Duration::from_millis(600));
        // New probes still reach the admin listener, and learn the server is going away.
        for _ in 0..2 {
            let resp = fetch(admin, "GET", "/healthz", &[]);
            assert_eq!(resp.status, 503);
            assert!(resp.says_close());
        }
        // The public listener takes no new clients.
        let refused = std::net::TcpStream::connect_timeout(&server.addr(), Duration::from_secs(2));
        assert!(refused.is_err(), "the public listener still accepts");
        // The request under way is still answered.
        send(&mut slow, b"\r\n");
        let resp = read_response(&mut slow, false);
        assert_eq!(
            (resp.status, resp.body.as_slice()),
            (200, STYLE_CSS.as_bytes())
        );
    }
);
