//! The access log as a log pipeline reads it, from the binary: Combined Log Format with or
//! without the request time, JSON lines, the client named by trusted proxies only, health
//! checks left out, durations from a request's first byte, and a reopen on SIGUSR1 under
//! load that loses and tears no line.

mod common;
mod tls_support;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the log holds `n` lines (they are written at the end of the event-loop turn
/// that sent their responses, or after each line in the thread model, so they are there
/// moments after a client has read its response; the wait covers a slow machine).
fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = lines_of(path);
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Resp {
    fetch(addr, "GET", target, headers)
}

/// A server writing JSON access lines to a file in a fresh directory (kept while the test
/// holds it).
fn json_logging(model: margay::Model) -> (tempfile::TempDir, std::path::PathBuf, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let server = ServerProcess::builder(model)
        .access_log(&log)
        .args(&["--access-log-format", "json"])
        .start();
    (dir, log, server)
}

both_models!(json_lines_carry_every_field, |model| {
    let (_dir, log, server) = json_logging(model);
    let ok = get(
        server.addr,
        "/style.css?q=%22x%22",
        &[("User-Agent", "tester \"1\""), ("Referer", "http://ref/")],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(get(server.addr, "/missing", &[]).status, 404);
    assert_eq!(fetch(server.addr, "BREW", "/style.css", &[]).status, 501);
    let lines = wait_for_lines(&log, 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["target"], "/style.css?q=%22x%22");
    assert_eq!(first["protocol"], "HTTP/1.1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], STYLE_CSS.len());
    assert_eq!(first["referer"], "http://ref/");
    assert_eq!(first["user_agent"], "tester \"1\"");
    assert_eq!(first["tls"], serde_json::Value::Null);
    let micros = first["duration_us"].as_u64().expect("a whole number");
    assert!(micros < 5_000_000, "{micros} µs");
    let time = first["time"].as_str().unwrap();
    assert_eq!(time.len(), 20, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    // No proxy in front: the peer is the client, and is not repeated.
    assert_eq!(first.get("peer"), None, "{first}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(
        (second["status"].as_u64(), second["referer"].is_null()),
        (Some(404), true)
    );
    // A method margay does not serve is logged as it was sent.
    let third: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(
        (&third["method"], &third["status"]),
        (&"BREW".into(), &501.into())
    );
});

both_models!(combined_lines_with_and_without_the_request_time, |model| {
    let dir = tempfile::tempdir().unwrap();
    for (format, timed) in [("combined", false), ("combined_time", true)] {
        let log = dir.path().join(format!("{format}.log"));
        let server = ServerProcess::builder(model)
            .access_log(&log)
            .args(&["--access-log-format", format])
            .start();
        assert_eq!(
            get(server.addr, "/style.css", &[("User-Agent", "ua")]).status,
            200
        );
        let lines = wait_for_lines(&log, 1);
        assert_eq!(lines.len(), 1, "{format}: {lines:?}");
        let line = &lines[0];
        let base = format!(
            "\"GET /style.css HTTP/1.1\" 200 {} \"-\" \"ua\"",
            STYLE_CSS.len()
        );
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        if timed {
            let (rest, seconds) = line.rsplit_once(' ').unwrap();
            assert!(rest.ends_with(&base), "{line}");
            let (whole, millis) = seconds.split_once('.').expect("seconds.millis");
            assert!(whole.parse::<u64>().is_ok() && millis.len() == 3, "{line}");
        } else {
            assert!(line.ends_with(&base), "{line}");
        }
    }
});

both_models!(
    a_forged_forwarded_for_from_an_untrusted_client_is_ignored,
    |model| {
        let dir = tempfile::tempdir().unwrap();
        // (--trusted-proxy blocks, X-Forwarded-For sent, client logged)
        let rows: &[(&[&str], &str, &str)] = &[
            (&[], "198.51.100.7", "127.0.0.1"),
            (&["10.0.0.0/8"], "198.51.100.7", "127.0.0.1"),
            (&["127.0.0.0/8"], "6.6.6.6, 198.51.100.7", "198.51.100.7"),
            (
                &["127.0.0.1", "198.51.100.0/24"],
                "6.6.6.6, 198.51.100.7",
                "6.6.6.6",
            ),
        ];
        for (i, (trusted, forwarded, client)) in rows.iter().enumerate() {
            let log = dir.path().join(format!("{i}.log"));
            let mut args = vec!["--access-log-format", "json"];
            for block in *trusted {
                args.extend(["--trusted-proxy", block]);
            }
            let server = ServerProcess::builder(model)
                .access_log(&log)
                .args(&args)
                .start();
            let resp = get(server.addr, "/style.css", &[("X-Forwarded-For", forwarded)]);
            assert_eq!(resp.status, 200);
            let lines = wait_for_lines(&log, 1);
            let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
            assert_eq!(
                line["client"], *client,
                "trusted {trusted:?}, sent {forwarded}"
            );
            // The connection's own address and port, when a proxy named another client.
            match line["peer"].as_str() {
                Some(peer) => assert!(
                    *client != "127.0.0.1" && peer.starts_with("127.0.0.1:"),
                    "{line}"
                ),
                None => assert_eq!(*client, "127.0.0.1", "{line}"),
            }
        }
    }
);

both_models!(health_checks_are_logged_only_when_asked, |model| {
    let dir = tempfile::tempdir().unwrap();
    for (extra, logged) in [(&[][..], false), (&["--log-health-checks"][..], true)] {
        let log = dir.path().join(format!("{logged}.log"));
        let server = ServerProcess::builder(model)
            .access_log(&log)
            .args(extra)
            .start();
        assert_eq!(get(server.addr, "/healthz", &[]).status, 200);
        assert_eq!(get(server.addr, "/style.css", &[]).status, 200);
        let lines = wait_for_lines(&log, 2);
        let health = lines.iter().filter(|l| l.contains("/healthz")).count();
        assert_eq!(health, usize::from(logged), "{extra:?}: {lines:?}");
        assert!(lines.iter().any(|l| l.contains("/style.css")), "{lines:?}");
    }
});

both_models!(sigusr1_reopens_the_log_without_losing_a_line, |model| {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let mut server = ServerProcess::builder(model).access_log(&log).start();
    let (threads, per_thread) = (4, 300);
    let done = Arc::new(AtomicUsize::new(0));
    let addr = server.addr;
    let clients: Vec<_> = (0..threads)
        .map(|t| {
            let done = done.clone();
            thread::spawn(move || {
                let mut stream = connect(addr);
                for n in 0..per_thread {
                    send(&mut stream, &get_req(&format!("/style.css?c={t}-{n}")));
                    let resp = read_response(&mut stream, false);
                    assert_eq!(resp.status, 200);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Rotate while the clients are in full flow.
    let total = threads * per_thread;
    while done.load(Ordering::SeqCst) < total / 3 {
        thread::sleep(Duration::from_millis(1));
    }
    std::fs::rename(&log, &rotated).unwrap();
    server.signal(libc::SIGUSR1);
    let at_signal = done.load(Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    assert!(at_signal < total, "the rotation happened under load");
    let deadline = Instant::now() + Duration::from_secs(5);
    let (old, new) = loop {
        let (old, new) = (lines_of(&rotated), lines_of(&log));
        if old.len() + new.len() >= total || Instant::now() > deadline {
            break (old, new);
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !old.is_empty() && !new.is_empty(),
        "{} then {}",
        old.len(),
        new.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    for line in old.iter().chain(&new) {
        // A whole Combined Log Format line: nothing torn, nothing glued to another.
        assert!(line.starts_with("127.0.0.1 - - ["), "torn line {line:?}");
        assert!(line.ends_with("\"-\" \"-\""), "torn line {line:?}");
        let target = line
            .split("\"GET /style.css?c=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("not a request line: {line:?}"));
        assert!(seen.insert(target.to_string()), "{target} logged twice");
    }
    assert_eq!(seen.len(), total, "one line per request, across both files");
    server.assert_alive("after SIGUSR1");
});

both_models!(
    every_response_answered_is_logged_by_a_graceful_exit,
    |model| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let mut server = ServerProcess::builder(model).access_log(&log).start();
        let answered = Arc::new(AtomicUsize::new(0));
        let addr = server.addr;
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let answered = answered.clone();
                thread::spawn(move || {
                    // Requests until the server closes: the targets of those answered.
                    let mut stream = connect(addr);
                    let mut targets = Vec::new();
                    for n in 0.. {
                        let target = format!("/style.css?c={t}-{n}");
                        if stream.write_all(&get_req(&target)).is_err() {
                            break;
                        }
                        match try_read_response(&mut stream, false) {
                            Ok(resp) if resp.status == 200 => targets.push(target),
                            _ => break,
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    targets
                })
            })
            .collect();
        while answered.load(Ordering::SeqCst) < 200 {
            thread::sleep(Duration::from_millis(1));
        }
        server.signal(libc::SIGTERM);
        server.wait_exit(Duration::from_secs(10), "after SIGTERM");
        let targets: Vec<String> = clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        // Read once the process is gone: nothing may arrive later.
        let logged = std::fs::read_to_string(&log).unwrap();
        for target in &targets {
            assert!(
                logged.contains(&format!("\"GET {target} HTTP/1.1\"")),
                "{target} was answered but not logged"
            );
        }
        assert!(logged.ends_with('\n'), "the last line is whole");
    }
);

both_models!(
    the_proxy_keeps_a_trusted_peers_forwarded_chain_only,
    |model| {
        let backend = TestServer::start(model);
        let upstream = format!("http://{}/", backend.addr());
        // (trusted blocks, X-Forwarded-For the backend sees)
        let rows: &[(&[&str], &str)] = &[
            (&[], "127.0.0.1"),
            (&["10.0.0.0/8"], "127.0.0.1"),
            (&["127.0.0.1"], "198.51.100.9, 127.0.0.1"),
        ];
        for (trusted, seen) in rows {
            let rule = margay::ProxyRule::new("/up/", &[&upstream]).unwrap();
            let blocks: Vec<margay::Cidr> = trusted.iter().map(|b| b.parse().unwrap()).collect();
            let front = TestServer::builder(model)
                .config(move |c| {
                    blocks
                        .into_iter()
                        .fold(c.proxy(rule), |c, block| c.trusted_proxy(block))
                })
                .start();
            let resp = fetch(
                front.addr(),
                "POST",
                "/up/api/echo",
                &[("X-Forwarded-For", "198.51.100.9"), ("Content-Length", "0")],
            );
            assert_eq!(resp.status, 200, "{}", resp.text());
            let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            let forwarded: Vec<&str> = echo["headers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| {
                    h[0].as_str()
                        .unwrap()
                        .eq_ignore_ascii_case("x-forwarded-for")
                })
                .map(|h| h[1].as_str().unwrap())
                .collect();
            assert_eq!(forwarded, [*seen], "trusted {trusted:?}");
        }
    }
);

both_models!(json_lines_name_the_tls_session, |model| {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let ca = tls_support::Ca::new("margay test CA");
    let (cert, key) = ca.leaf(&["localhost"]).write(dir.path(), "site");
    let server = ServerProcess::builder(model)
        .access_log(&log)
        .args(
            &[
                &["--access-log-format", "json"][..],
                &tls_support::https_args(&cert, &key),
            ]
            .concat(),
        )
        .start();
    let tls_addr = server.url_addr("https://");
    let config = tls_support::trusting(&ca);
    let mut stream = tls_support::connect_tls(tls_addr, &config, "localhost");
    stream
        .write_all(b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(get(server.addr, "/style.css", &[]).status, 200);
    let lines = wait_for_lines(&log, 2);
    let tls: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["tls"].clone())
        .collect();
    let over_tls = tls[0].as_str().expect("the TLS session");
    assert!(over_tls.starts_with("TLSv1_3 TLS13_"), "{over_tls}");
    assert_eq!(tls[1], serde_json::Value::Null, "plain HTTP");
});

both_models!(a_requests_duration_runs_from_its_first_byte, |model| {
    // What a log reader takes the duration for: from the request's first byte to its answer,
    // so a slow sender's pause counts and a kept-alive connection's idle time does not.
    let (_dir, log, server) = json_logging(model);
    let mut stream = server.connect();
    send(&mut stream, b"GET /index.html HTTP/1.1\r\n");
    thread::sleep(Duration::from_millis(300));
    send(&mut stream, b"Host: x\r\n\r\n");
    assert_eq!(read_response(&mut stream, false).status, 200);
    // Idle on the kept-alive connection, then a request sent whole.
    thread::sleep(Duration::from_millis(500));
    send(&mut stream, &get_req("/index.html"));
    assert_eq!(read_response(&mut stream, false).status, 200);
    let lines = wait_for_lines(&log, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let duration = |line: &str| {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        value["duration_us"].as_u64().expect("a whole number")
    };
    let (slow, after_idle) = (duration(&lines[0]), duration(&lines[1]));
    assert!(slow >= 250_000, "the sender's pause counts: {slow} µs");
    assert!(
        after_idle < 400_000,
        "the idle wait does not: {after_idle} µs"
    );
});
