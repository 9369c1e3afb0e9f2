//! The `margay` binary as a user meets it: `--help`, one-line errors with a non-zero exit
//! for bad options, a missing root or a port in use, IPv6 listening, the access log in
//! Combined Log Format, `--defer-accept` reaching the listening socket, and an idle server
//! that spends no CPU.

#[macro_use]
mod common;

use common::*;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn margay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_margay"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run margay")
}

/// The one line a failed start printed to standard error.
fn error_line(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "an error is printed");
    assert!(!text.contains("panicked"), "no panic: {text}");
    lines[lines.len() - 1].to_string()
}

#[test]
fn help_explains_every_option_and_its_default() {
    let output = margay(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (option, default) in [
        ("--listen", "127.0.0.1:8080"),
        ("--root", "htdocs"),
        ("--access-log", "stdout"),
        ("--log-level", "info"),
        ("--model", "reactor"),
        ("--workers", "1"),
        ("--header-timeout", "10"),
        ("--defer-accept", "1"),
        ("--send-buffer", "0"),
        ("--keep-alive-timeout", "15"),
        ("--send-timeout", "30"),
        ("--shutdown-timeout", "10"),
        ("--busy-poll", "50"),
        ("--max-connections", "10000"),
        ("--max-requests-per-connection", "0"),
        ("--max-body-size", "1048576"),
        ("--proxy-keepalive", "128"),
    ] {
        // Each option's entry runs from its name to the next option's.
        let line = help
            .split("\n      --")
            .find(|entry| entry.starts_with(&option[2..]))
            .unwrap_or_else(|| panic!("{option} is not in --help:\n{help}"));
        assert!(
            line.contains(&format!("[default: {default}]")),
            "{option} shows its default {default}: {line}"
        );
    }
}

#[test]
fn a_bad_option_is_an_error_not_a_panic() {
    for args in [
        &["--bogus"][..],
        &["--listen", "not-an-address"],
        &["--model", "fibers"],
        &["--workers", "0"],
    ] {
        let output = margay(args);
        assert!(!output.status.success(), "{args:?} must fail");
        let text = String::from_utf8_lossy(&output.stderr);
        assert_eq!(text.trim().lines().count(), 1, "{args:?}: one line: {text}");
        assert!(error_line(&output).contains("margay:"), "{args:?}: {text}");
    }
}

#[test]
fn a_missing_root_is_a_one_line_error() {
    // A configuration mistake, found before binding: exit status 2, as for a bad option.
    let output = margay(&["--listen", "127.0.0.1:0", "--root", "/no/such/directory"]);
    assert_eq!(output.status.code(), Some(2));
    let line = error_line(&output);
    assert!(line.contains("/no/such/directory"), "{line}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr)
            .trim()
            .lines()
            .count(),
        1
    );
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = margay(&["--listen", &addr, "--root", "htdocs"]);
    assert_eq!(output.status.code(), Some(1));
    let line = error_line(&output);
    assert!(line.contains(&addr) && line.contains("in use"), "{line}");
}

both_models!(listens_on_ipv6, |model| {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; nothing to test");
        return;
    }
    let server = ServerProcess::builder(model).ip("::1").start();
    let mut stream = server.connect();
    send(&mut stream, &get_req("/index.html"));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, INDEX_HTML.as_bytes());
});

both_models!(
    access_log_has_one_combined_format_line_per_response,
    |model| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let server = ServerProcess::builder(model).access_log(&log).start();
        let mut stream = server.connect();
        let request = request(
            "GET",
            "/index.html?x=1",
            &[
                ("Referer", "http://example.com/"),
                ("User-Agent", "test \"agent\""),
            ],
        );
        send(&mut stream, &request);
        assert_eq!(read_response(&mut stream, false).status, 200);
        send(&mut stream, &get_req("/missing"));
        let missing = read_response(&mut stream, false);
        let deadline = Instant::now() + Duration::from_secs(5);
        let text = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().filter(|l| l.contains("GET /")).count() >= 2
                || Instant::now() > deadline
            {
                break text;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(server);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"GET /")).collect();
        assert_eq!(lines.len(), 2, "one line per response:\n{text}");
        let first = lines[0];
        // host ident user [time] "request line" status bytes "referer" "user agent"
        assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
        assert!(
            first.contains(" +0000] \"GET /index.html?x=1 HTTP/1.1\" 200 "),
            "{first}"
        );
        assert!(
            first.ends_with("\"http://example.com/\" \"test \\\"agent\\\"\""),
            "quotes in a field are escaped: {first}"
        );
        let bytes = missing.body.len().to_string();
        assert!(
            lines[1].contains(&format!("\"GET /missing HTTP/1.1\" 404 {bytes} \"-\"")),
            "{}",
            lines[1]
        );
    }
);

/// `/api/status`'s count of open connections (the asking one included).
fn active_connections(server: &ServerProcess) -> i64 {
    server.status()["active"]
        .as_i64()
        .expect("active is a number")
}

both_models!(
    defer_accept_option_decides_when_a_silent_connection_is_taken_up,
    |model| {
        // Deferred (the default, 1 s): the kernel keeps a connection that has said nothing, and
        // it cannot hand it over before its first SYN-ACK retransmission, a second later.
        let server = ServerProcess::start(model);
        let _silent = server.connect();
        std::thread::sleep(Duration::from_millis(300));
        let deferred = active_connections(&server);
        drop(server);
        assert_eq!(deferred, 1, "only the status request is in the server");

        // `--defer-accept 0`: taken up at once.
        let server = ServerProcess::builder(model)
            .args(&["--defer-accept", "0"])
            .start();
        let _silent = server.connect();
        let deadline = Instant::now() + Duration::from_millis(800);
        let mut active = active_connections(&server);
        while active != 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            active = active_connections(&server);
        }
        drop(server);
        assert_eq!(active, 2, "the silent connection and the status request");
    }
);

#[test]
fn an_idle_server_spends_no_cpu_after_a_burst_of_requests() {
    // The event loop polls before it sleeps while requests come close together (the busy
    // poll, on by default): once they stop, it must go back to sleeping, not poll on.
    let server = ServerProcess::start(margay::Model::Reactor);
    let mut stream = server.connect();
    for _ in 0..300 {
        send(&mut stream, &get_req("/index.html"));
        assert_eq!(read_response(&mut stream, false).status, 200);
    }
    let idle = server.cpu_ticks_in_a_second();
    // A loop that kept polling would spend the whole second (about 100 ticks).
    assert!(
        idle <= 5,
        "{idle} ticks of CPU in a second without requests"
    );
    drop(stream);
}
