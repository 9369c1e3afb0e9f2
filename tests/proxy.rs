//! The reverse proxy against small test backends that misbehave on purpose: refused and reset
//! connections (502, and one retry elsewhere for a request that can be repeated), a stalled
//! backend (504), smuggled responses (502), a backend that dies mid-body (the client's
//! connection closed), a HEAD answered with a body, the hop-by-hop table both ways, the
//! forwarded headers, bodies streamed both ways in bounded memory, 100-continue, the
//! keep-alive pool, and no pipelining upstream. Every test runs on both models.

mod common;

use common::*;
use margay::{Model, ProxyRule};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A request as the backend read it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
    /// Bytes of a following request already in the buffer when this one was read.
    pipelined: bool,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn target(&self) -> String {
        self.head.split(' ').nth(1).unwrap_or("").to_string()
    }
}

type Answer = dyn Fn(&Seen, &mut TcpStream) -> bool + Send + Sync;

/// A backend on `127.0.0.1:0`: reads requests (heads, and bodies by length or chunks) on
/// every connection and lets `answer` write the reply (returning false to close).
struct Backend {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    fn start(answer: impl Fn(&Seen, &mut TcpStream) -> bool + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let (count, record) = (accepts.clone(), seen.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let (answer, record) = (answer.clone(), record.clone());
                thread::spawn(move || serve(stream, &*answer, &record));
            }
        });
        Backend {
            addr,
            accepts,
            seen,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, answer: &Answer, record: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_until(&mut stream, &mut buf, b"\r\n\r\n") else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let lower = head.to_ascii_lowercase();
        let mut body = Vec::new();
        if lower.contains("\r\ntransfer-encoding: chunked") {
            loop {
                let Some(line_end) = read_until(&mut stream, &mut buf, b"\r\n") else {
                    return;
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&buf[..line_end])
                        .split(';')
                        .next()
                        .unwrap()
                        .trim(),
                    16,
                )
                .unwrap();
                buf.drain(..line_end + 2);
                if size == 0 {
                    let Some(t) = read_until(&mut stream, &mut buf, b"\r\n") else {
                        return;
                    };
                    buf.drain(..t + 2);
                    break;
                }
                if !fill(&mut stream, &mut buf, size + 2) {
                    return;
                }
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
            }
        } else if let Some(len) = lower
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
        {
            let len: usize = len.trim().parse().unwrap();
            if !fill(&mut stream, &mut buf, len) {
                return;
            }
            body = buf.drain(..len).collect();
        }
        let seen = Seen {
            head,
            body,
            pipelined: !buf.is_empty(),
        };
        record.lock().unwrap().push(seen.clone());
        if !answer(&seen, &mut stream) {
            return;
        }
    }
}

fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, end: &[u8]) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(end.len()).position(|w| w == end) {
            return Some(at);
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> bool {
    while buf.len() < len {
        let mut chunk = [0u8; 64 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// Answers every request with `body` (keep-alive, `Content-Length`).
fn replies(body: &'static str) -> impl Fn(&Seen, &mut TcpStream) -> bool + Send + Sync {
    move |_, stream| {
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).is_ok()
    }
}

/// Answers every request with its own body, under `status_line` (`200 OK`).
fn echoes(status_line: &'static str) -> impl Fn(&Seen, &mut TcpStream) -> bool + Send + Sync {
    move |seen, stream| {
        let reply = format!(
            "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\n\r\n",
            seen.body.len()
        );
        stream.write_all(reply.as_bytes()).is_ok() && stream.write_all(&seen.body).is_ok()
    }
}

/// Polls `/api/status` until the states of the first rule's members satisfy `done`, for at
/// most `within` (failing with `what` and the last status); returns that status.
fn await_states(
    server: &TestServer,
    within: Duration,
    what: &str,
    done: impl Fn(&[&str]) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let status = server.status();
        let members = status["upstreams"][0]["members"].as_array();
        let states: Vec<&str> = members
            .into_iter()
            .flatten()
            .map(|member| member["state"].as_str().unwrap_or_default())
            .collect();
        if done(&states) {
            return status;
        }
        assert!(started.elapsed() < within, "{what}: {status}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A proxy in front of `urls` under `/up/` (prefix kept).
fn proxy(
    model: Model,
    urls: &[&str],
    tune: impl FnOnce(margay::Config) -> margay::Config + 'static,
) -> TestServer {
    let rule = ProxyRule::new("/up/", urls).unwrap();
    TestServer::builder(model)
        .config(move |c| tune(c.proxy(rule).proxy_timeout(Duration::from_secs(2))))
        .start()
}

both_models!(a_request_is_forwarded_and_answered, |model| {
    let backend = Backend::start(replies("from the backend"));
    let server = proxy(model, &[&backend.url()], |c| c);
    let resp = server.get("/up/a/b%20c?x=1&y=2");
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "from the backend")
    );
    assert_eq!(resp.header("via"), Some("1.1 margay"));
    assert_standard_headers(&resp, false);
    let seen = backend.seen();
    assert_eq!(seen[0].target(), "/up/a/b%20c?x=1&y=2");
    assert_eq!(seen[0].header("host").as_deref(), Some("localhost"));
    assert_eq!(seen[0].header("via").as_deref(), Some("1.1 margay"));
    // Static files are still served beside the proxied prefix.
    assert_eq!(server.get("/style.css").text(), STYLE_CSS);
});

both_models!(busy_polling_answers_before_and_after_sleeping, |model| {
    // The event loop polls up to 2 ms before it sleeps, once requests come that close
    // together; the thread model ignores the setting.
    let backend = Backend::start(replies("polled"));
    let server = proxy(model, &[&backend.url()], |c| {
        c.busy_poll(Duration::from_millis(2))
    });
    let mut stream = server.connect();
    for round in 0..3 {
        for _ in 0..5 {
            send(&mut stream, &get_req("/up/p"));
            let resp = read_response(&mut stream, false);
            assert_eq!((resp.status, resp.text().as_str()), (200, "polled"));
        }
        // Past the busy poll: the loop is asleep, and an arriving request wakes it.
        if round < 2 {
            thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(
        backend.accepts.load(Ordering::SeqCst),
        1,
        "one kept upstream connection"
    );
});

both_models!(a_url_with_a_path_replaces_the_prefix, |model| {
    let backend = Backend::start(replies("ok"));
    let rule = ProxyRule::new("/app/", &[&format!("{}/v2/", backend.url())]).unwrap();
    let server = TestServer::builder(model).config(|c| c.proxy(rule)).start();
    assert_eq!(server.get("/app/items/7").status, 200);
    assert_eq!(backend.seen()[0].target(), "/v2/items/7");
});

both_models!(hop_by_hop_fields_go_neither_way, |model| {
    let backend = Backend::start(|_, stream| {
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Private\r\n\
                     X-Private: secret\r\nKeep-Alive: timeout=5\r\nTrailer: X-T\r\n\
                     Proxy-Authenticate: Basic\r\nX-Public: yes\r\n\r\nok";
        stream.write_all(reply.as_bytes()).is_ok()
    });
    let server = proxy(model, &[&backend.url()], |c| c);
    let resp = server.get_with(
        "/up/x",
        &[
            ("Connection", "keep-alive, X-Client-Private"),
            ("X-Client-Private", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("X-Client-Public", "yes"),
        ],
    );
    let seen = &backend.seen()[0];
    for gone in [
        "x-client-private",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ] {
        assert_eq!(
            seen.header(gone),
            None,
            "{gone} reached the backend: {}",
            seen.head
        );
    }
    assert_eq!(seen.header("connection"), None, "{}", seen.head);
    assert_eq!(seen.header("x-client-public").as_deref(), Some("yes"));
    for gone in ["x-private", "keep-alive", "trailer", "proxy-authenticate"] {
        assert_eq!(
            resp.header(gone),
            None,
            "{gone} reached the client: {resp:?}"
        );
    }
    assert!(!resp.says_close());
    assert_eq!(resp.header("x-public"), Some("yes"));
});

both_models!(
    forwarding_fields_come_from_the_connection_not_the_client,
    |model| {
        let backend = Backend::start(replies("ok"));
        let server = proxy(model, &[&backend.url()], |c| c);
        server.get_with(
            "/up/x",
            &[
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "evil.example"),
                ("Forwarded", "for=6.6.6.6;proto=https"),
            ],
        );
        let seen = &backend.seen()[0];
        assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(
            seen.header("x-forwarded-host").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            seen.header("forwarded").as_deref(),
            Some("for=127.0.0.1;proto=http;host=localhost")
        );
        assert!(
            !seen.head.contains("6.6.6.6") && !seen.head.contains("evil"),
            "{}",
            seen.head
        );
    }
);

both_models!(
    escaped_slashes_and_semicolons_reach_the_application,
    |model| {
        // An application may tell `%2F` from `/` (GitLab's project ids) or `%3B` from `;` (a
        // servlet container's path parameters): the client's escapes go upstream as sent, in
        // capitals, with only unreserved characters decoded.
        let backend = Backend::start(replies("ok"));
        let server = proxy(model, &[&backend.url()], |c| c);
        let resp = server.get("/up/projects/group%2fproject/files/a%3Bb%7E?ref=x%2Fy");
        assert_eq!(resp.text(), "ok");
        assert_eq!(
            backend.seen()[0].target(),
            "/up/projects/group%2Fproject/files/a%3Bb~?ref=x%2Fy"
        );
    }
);

both_models!(methods_margay_does_not_know_are_forwarded, |model| {
    // An application behind the proxy may speak WebDAV or its own methods: the proxy passes
    // any method token on as it came, body and all. Outside the proxy's prefix such a
    // request still gets 501.
    let backend = Backend::start(echoes("207 Multi-Status"));
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut stream = server.connect();
    let body = b"<propfind xmlns='DAV:'/>";
    let length = body.len().to_string();
    send(
        &mut stream,
        &[
            request("PROPFIND", "/up/dav/", &[("Content-Length", &length)]),
            body.to_vec(),
        ]
        .concat(),
    );
    let resp = read_response(&mut stream, false);
    assert_eq!((resp.status, resp.body.as_slice()), (207, &body[..]));
    send(&mut stream, &request("get", "/up/x", &[]));
    assert_eq!(read_response(&mut stream, false).status, 207);
    let lines: Vec<String> = backend
        .seen()
        .iter()
        .map(|seen| seen.head.lines().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(lines, ["PROPFIND /up/dav/ HTTP/1.1", "get /up/x HTTP/1.1"]);

    let outside = server.exchange(&request("PROPFIND", "/style.css", &[]), false);
    assert_eq!(outside.status, 501);
});

both_models!(an_empty_body_goes_upstream_with_its_length, |model| {
    // RFC 9110 section 8.6: a POST says Content-Length even when it is 0; a server behind
    // the proxy may refuse one without a length (411). A GET without a body says nothing.
    let backend = Backend::start(replies("ok"));
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut stream = server.connect();
    send(
        &mut stream,
        &request("POST", "/up/a", &[("Content-Length", "0")]),
    );
    assert_eq!(read_response(&mut stream, false).text(), "ok");
    send(&mut stream, &request("PUT", "/up/b", &[]));
    assert_eq!(read_response(&mut stream, false).text(), "ok");
    send(&mut stream, &get_req("/up/c"));
    assert_eq!(read_response(&mut stream, false).text(), "ok");
    // Another method says it where its client did.
    send(
        &mut stream,
        &request("DELETE", "/up/d", &[("Content-Length", "0")]),
    );
    assert_eq!(read_response(&mut stream, false).text(), "ok");
    let lengths: Vec<_> = backend
        .seen()
        .iter()
        .map(|seen| seen.header("content-length"))
        .collect();
    assert_eq!(&lengths[..3], [Some("0".into()), Some("0".into()), None]);
    assert_eq!(lengths[3].as_deref(), Some("0"));
});

both_models!(via_lists_every_hop_in_order_both_ways, |model| {
    // RFC 9110 section 7.6.3: each intermediary appends its entry to the Via it received.
    let backend = Backend::start(|_, stream| {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nVia: 1.1 app-cache\r\nContent-Length: 2\r\n\r\nok")
            .is_ok()
    });
    let server = proxy(model, &[&backend.url()], |c| c);
    let resp = server.get_with("/up/x", &[("Via", "1.0 corp-proxy")]);
    assert_eq!(resp.headers_named("via"), ["1.1 app-cache", "1.1 margay"]);
    let seen = &backend.seen()[0];
    let vias: Vec<&str> = seen
        .head
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("Via: "))
        .collect();
    assert_eq!(vias, ["1.0 corp-proxy", "1.1 margay"]);

    // Each entry names the protocol its hop received the message in.
    let mut old = server.connect();
    send(&mut old, b"GET /up/y HTTP/1.0\r\n\r\n");
    read_to_close(&mut old);
    let head = &backend.seen()[1].head;
    let vias: Vec<&str> = head
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("Via: "))
        .collect();
    assert_eq!(vias, ["1.0 margay"], "{head}");
});

both_models!(an_absolute_target_names_the_host, |model| {
    // RFC 9112 section 3.2.2: the authority of an absolute-form target overrides Host, so the
    // upstream hears of the host the request was for, not of the Host field beside it.
    let backend = Backend::start(replies("ok"));
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut stream = server.connect();
    send(
        &mut stream,
        b"GET http://app.example:8080/up/x?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    );
    assert_eq!(read_response(&mut stream, false).text(), "ok");
    let seen = &backend.seen()[0];
    assert_eq!(seen.target(), "/up/x?q=1");
    assert_eq!(seen.header("host").as_deref(), Some("app.example:8080"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("app.example:8080")
    );
    assert!(!seen.head.contains("other.example"), "{}", seen.head);
});

both_models!(a_refused_connection_is_retried_on_another_member, |model| {
    let backend = Backend::start(replies("alive"));
    let refusing = Refusing::new();
    let server = proxy(model, &[&refusing.url(), &backend.url()], |c| c);
    for _ in 0..4 {
        let resp = server.get("/up/x");
        assert_eq!((resp.status, resp.text().as_str()), (200, "alive"));
    }
    let status = server.status();
    let members = &status["upstreams"][0]["members"];
    assert!(members[0]["failures"].as_u64().unwrap() >= 1, "{status}");
});

both_models!(with_every_member_refusing_the_answer_is_502, |model| {
    let (first, second) = (Refusing::new(), Refusing::new());
    let server = proxy(model, &[&first.url(), &second.url()], |c| c);
    assert_error_page(&server.get("/up/x"), 502);
    // A request with a body is never repeated: 502 at the first failure.
    let mut raw = request("POST", "/up/x", &[("Content-Length", "3")]);
    raw.extend_from_slice(b"abc");
    assert_error_page(&server.exchange(&raw, false), 502);
});

both_models!(a_reset_before_the_response_is_502_or_a_retry, |model| {
    let resets = Backend::start(|_, stream| {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        false
    });
    let backend = Backend::start(replies("second"));
    let server = proxy(model, &[&resets.url(), &backend.url()], |c| {
        c.proxy_max_fails(100)
    });
    // GET: retried on the other member.
    for _ in 0..2 {
        assert_eq!(server.get("/up/x").text(), "second");
    }
    // POST with a body: 502 when its member resets (round robin sends one of two there).
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut raw = request("POST", "/up/x", &[("Content-Length", "3")]);
        raw.extend_from_slice(b"abc");
        statuses.push(server.exchange(&raw, false).status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 502]);
});

both_models!(only_idempotent_methods_are_sent_twice, |model| {
    // A refused connection before any response: GET, HEAD, PUT, DELETE and OPTIONS without a
    // body go to the other member; POST and PATCH, not idempotent, are never sent twice,
    // body or not. Round robin alternates the first member tried.
    let backend = Backend::start(replies("alive"));
    let refusing = Refusing::new();
    let server = proxy(model, &[&refusing.url(), &backend.url()], |c| {
        c.proxy_max_fails(100)
    });
    for method in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] {
        for _ in 0..2 {
            let raw = request(method, "/up/x", &[]);
            let resp = server.exchange(&raw, method == "HEAD");
            assert_eq!(resp.status, 200, "{method}");
        }
    }
    let status = server.status();
    let retried = status["upstreams"][0]["members"][0]["retried"].as_u64();
    assert!(retried >= Some(5), "{status}");
    for method in ["POST", "PATCH"] {
        let mut statuses: Vec<u16> = (0..2)
            .map(|_| {
                server
                    .exchange(&request(method, "/up/x", &[]), false)
                    .status
            })
            .collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 502], "{method}");
    }
});

both_models!(a_stalled_backend_gets_504_within_the_timeout, |model| {
    let stalled = Backend::start(|_, _| {
        thread::sleep(Duration::from_secs(6));
        false
    });
    let server = proxy(model, &[&stalled.url()], |c| {
        c.proxy_timeout(Duration::from_secs(1))
    });
    let started = Instant::now();
    let resp = server.get("/up/x");
    assert_error_page(&resp, 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The front still serves.
    server.assert_serves("after a stalled upstream");
});

both_models!(a_response_that_could_smuggle_another_is_502, |model| {
    // (name, the backend's reply)
    let rows: &[(&str, &'static str)] = &[
        (
            "two lengths",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        ),
        (
            "length and chunked",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        ("bare LF", "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello"),
        ("not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n"),
        (
            "a protocol switch",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        ),
    ];
    for (name, reply) in rows {
        let backend = Backend::start(move |_, stream| {
            let _ = stream.write_all(reply.as_bytes());
            false
        });
        let server = proxy(model, &[&backend.url()], |c| c);
        let resp = server.get("/up/x");
        assert_eq!(resp.status, 502, "{name}: {resp:?}");
        assert!(!resp.text().contains("hello"), "{name}");
    }
});

both_models!(
    a_backend_that_dies_mid_body_ends_the_client_connection,
    |model| {
        let backend = Backend::start(|_, stream| {
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it");
            false
        });
        let chunked = Backend::start(|_, stream| {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            false
        });
        // Past the read buffer: the rest of the body goes through a pipe when the backend dies.
        let long = Backend::start(|_, stream| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
            for _ in 0..2 {
                thread::sleep(Duration::from_millis(30));
                let _ = stream.write_all(&[b'x'; 64 * 1024]);
            }
            thread::sleep(Duration::from_millis(30));
            false
        });
        let rows = [
            (backend.url(), "length"),
            (chunked.url(), "chunked"),
            (long.url(), "long"),
        ];
        for (url, name) in rows {
            let server = proxy(model, &[&url], |c| c);
            let mut stream = server.connect();
            send(&mut stream, &get_req("/up/x"));
            let all = read_to_close(&mut stream);
            let text = String::from_utf8_lossy(&all);
            let (head, body) = text.split_once("\r\n\r\n").expect("a head");
            assert!(head.starts_with("HTTP/1.1 200"), "{name}: {head}");
            match name {
                "length" => {
                    assert!(head.contains("Content-Length: 100"), "{head}");
                    assert!(body.len() < 100, "{name}: the body looks whole");
                }
                "long" => {
                    assert!(head.contains("Content-Length: 1048576"), "{head}");
                    // Everything the backend sent arrives before the close, no more.
                    assert_eq!(body.len(), 128 * 1024, "{name}");
                }
                _ => assert!(
                    !body.ends_with("0\r\n\r\n"),
                    "{name}: the chunked body looks whole"
                ),
            }
        }
    }
);

both_models!(
    a_head_answered_with_a_body_sends_none_and_drops_the_connection,
    |model| {
        let backend = Backend::start(|seen, stream| {
            let reply = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
            let _ = stream.write_all(reply.as_bytes());
            seen.head.starts_with("GET")
        });
        let server = proxy(model, &[&backend.url()], |c| c);
        let mut stream = server.connect();
        send(&mut stream, &request("HEAD", "/up/x", &[]));
        let resp = read_response(&mut stream, true);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.content_length(), Some(11), "HEAD reports the length");
        // The same client connection goes on; the next answer is a proper one, not the body.
        let next = {
            send(&mut stream, &get_req("/up/y"));
            read_response(&mut stream, false)
        };
        assert_eq!((next.status, next.text().as_str()), (200, "hello world"));
        assert_eq!(
            backend.accepts.load(Ordering::SeqCst),
            2,
            "the used connection was dropped"
        );
    }
);

both_models!(no_content_and_not_modified_have_no_body, |model| {
    let backend = Backend::start(|seen, stream| {
        let reply = if seen.target().ends_with("204") {
            "HTTP/1.1 204 No Content\r\n\r\n"
        } else {
            "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n"
        };
        stream.write_all(reply.as_bytes()).is_ok()
    });
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut stream = server.connect();
    for (path, status) in [("/up/204", 204), ("/up/304", 304), ("/up/204", 204)] {
        send(&mut stream, &get_req(path));
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, status);
        assert!(resp.body.is_empty());
        assert_eq!(resp.header("content-length"), None);
    }
    assert_still_serves(&mut stream);
});

both_models!(bodies_stream_both_ways_intact, |model| {
    let backend = Backend::start(|seen, stream| {
        let digest: u64 = seen.body.iter().map(|&b| b as u64).sum();
        let reply = format!("{} {digest}", seen.body.len());
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", reply.len());
        stream.write_all(head.as_bytes()).is_ok() && stream.write_all(reply.as_bytes()).is_ok()
    });
    let body = big_bin();
    let expected = format!(
        "{} {}",
        body.len(),
        body.iter().map(|&b| b as u64).sum::<u64>()
    );
    // A body by length goes from socket to socket through a pipe, unless splicing is off;
    // a chunked one is decoded and sent as chunks again.
    for splice in [true, false] {
        let server = proxy(model, &[&backend.url()], move |c| c.proxy_splice(splice));
        let mut stream = server.connect();
        let mut raw = request(
            "POST",
            "/up/upload",
            &[("Content-Length", &body.len().to_string())],
        );
        raw.extend_from_slice(body);
        send(&mut stream, &raw);
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.text(), expected, "splice {splice}");
        // The upstream connection took the whole body and carries the next request.
        assert_eq!(server.get("/up/upload").text(), "0 0");
        // Chunked, in uneven chunks.
        let mut raw = request("POST", "/up/upload", &[("Transfer-Encoding", "chunked")]);
        for piece in body.chunks(100_003) {
            raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            raw.extend_from_slice(piece);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        send(&mut stream, &raw);
        assert_eq!(read_response(&mut stream, false).text(), expected);
        let seen = backend.seen();
        let last = seen.last().unwrap();
        assert_eq!(last.header("transfer-encoding").as_deref(), Some("chunked"));
    }
    assert_eq!(backend.accepts.load(Ordering::SeqCst), 2);
});

both_models!(a_client_that_leaves_mid_upload_is_not_waited_for, |model| {
    // The backend reads the body until its connection ends.
    let got = Arc::new(Mutex::new(Vec::new()));
    let record = got.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = Vec::new();
            let Some(end) = read_until(&mut stream, &mut buf, b"\r\n\r\n") else {
                continue;
            };
            let mut body = buf.len() - (end + 4);
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = stream.read(&mut chunk) {
                body += n;
            }
            record.lock().unwrap().push(body);
        }
    });
    for splice in [true, false] {
        let server = proxy(model, &[&url], move |c| {
            c.proxy_splice(splice)
                .proxy_timeout(Duration::from_secs(20))
        });
        let mut stream = server.connect();
        let mut raw = request("POST", "/up/upload", &[("Content-Length", "1048576")]);
        raw.extend_from_slice(&big_bin()[..200 * 1024]);
        send(&mut stream, &raw);
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        // Well before the proxy timeout, the proxy gives up on the request: the client's
        // connection and the upstream's both end, the upstream's short of the body.
        let started = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let answer = read_to_close(&mut stream);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "splice {splice}: the client's connection stayed open {:?}",
            started.elapsed()
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(!text.starts_with("HTTP/1.1 2"), "splice {splice}: {text}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.lock().unwrap().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let bodies = std::mem::take(&mut *got.lock().unwrap());
        assert_eq!(
            bodies.len(),
            1,
            "splice {splice}: the upstream connection ended"
        );
        assert!(bodies[0] <= 200 * 1024, "splice {splice}: {}", bodies[0]);
        assert_eq!(server.get("/style.css").status, 200);
    }
});

/// A backend that answers `GET /up/bytes/N` with the first `N` bytes of [`big_bin`],
/// `Content-Length` framed: the head alone, then the body in three writes 20 ms apart, so the
/// proxy finds the socket empty mid-body and goes on when more arrives.
fn paced_bytes() -> Backend {
    Backend::start(|seen, stream| {
        let n: usize = seen.target().rsplit('/').next().unwrap().parse().unwrap();
        let body = &big_bin()[..n];
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
        if stream.write_all(head.as_bytes()).is_err() {
            return false;
        }
        for piece in body.chunks(n.div_ceil(3).max(1)) {
            thread::sleep(Duration::from_millis(20));
            if stream.write_all(piece).is_err() {
                return false;
            }
        }
        true
    })
}

both_models!(large_answers_arrive_whole_spliced_or_copied, |model| {
    // Bodies past the read buffer go from socket to socket through a pipe unless splicing is
    // off; either way the client gets every byte in order, the kept upstream connection
    // carries every request, and a request pipelined behind a large answer is answered
    // after it.
    let sizes = [1 << 20, 100 * 1024 + 1, 16 * 1024 + 1, 20_000, 5];
    for splice in [true, false] {
        let backend = paced_bytes();
        let server = proxy(model, &[&backend.url()], move |c| c.proxy_splice(splice));
        let mut stream = patient(server.connect());
        for n in &sizes[..3] {
            send(&mut stream, &get_req(&format!("/up/bytes/{n}")));
            let resp = read_response(&mut stream, false);
            assert_eq!(resp.status, 200, "splice {splice}, {n} bytes");
            assert_eq!(resp.content_length(), Some(*n as u64));
            assert!(
                resp.body == big_bin()[..*n],
                "splice {splice}: {n} bytes differ"
            );
        }
        let mut two = get_req(&format!("/up/bytes/{}", sizes[3]));
        two.extend_from_slice(&get_req(&format!("/up/bytes/{}", sizes[4])));
        send(&mut stream, &two);
        for n in &sizes[3..] {
            let resp = read_response(&mut stream, false);
            assert_eq!(resp.status, 200, "splice {splice}, pipelined {n} bytes");
            assert!(
                resp.body == big_bin()[..*n],
                "splice {splice}: {n} bytes differ"
            );
        }
        assert_eq!(
            backend.accepts.load(Ordering::SeqCst),
            1,
            "splice {splice}: one kept upstream connection"
        );
    }
});

/// A backend that answers every request with `total` bytes of `x` (a multiple of 64 KiB),
/// `Content-Length` framed, in 64 KiB writes, counting in `written` the body bytes written.
fn answers_x(total: usize, written: Arc<AtomicUsize>) -> Backend {
    Backend::start(move |_, stream| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..total / piece.len() {
            if stream.write_all(&piece).is_err() {
                return false;
            }
            written.fetch_add(piece.len(), Ordering::SeqCst);
        }
        true
    })
}

both_models!(bytes_after_a_body_never_answer_the_next_request, |model| {
    // A backend that, when armed, sends a second, unasked response right behind a body in
    // the same write, and otherwise answers honestly. The unasked bytes must never be taken
    // for a later request's answer (the connection they wait on is not used again), whether
    // the body was copied or spliced.
    // The next body's length, 0 when not armed.
    let armed = Arc::new(AtomicUsize::new(0));
    let trigger = armed.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let armed = trigger.clone();
            thread::spawn(move || {
                let mut buf = Vec::new();
                while let Some(end) = read_until(&mut stream, &mut buf, b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    let mut reply = Vec::new();
                    let len = armed.swap(0, Ordering::SeqCst);
                    if len > 0 {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                        reply.extend_from_slice(head.as_bytes());
                        reply.resize(reply.len() + len, b'a');
                        reply.extend_from_slice(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
                        );
                    } else {
                        reply.extend_from_slice(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhonest",
                        );
                    }
                    if stream.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    // 114,645 bytes of body end where seven 16 KiB reads of head and body do: a copy
    // finds the body complete with the unasked bytes still in the socket.
    for (splice, len) in [(true, 100_000), (false, 100_000), (false, 114_645)] {
        let server = proxy(model, &[&url], move |c| c.proxy_splice(splice));
        armed.store(len, Ordering::SeqCst);
        let first = server.get("/up/first");
        assert_eq!(first.body.len(), len, "splice {splice}");
        for _ in 0..3 {
            let text = server.get("/up/next").text();
            assert!(text == "honest", "splice {splice}, {len}: {:.40}", text);
        }
    }
});

both_models!(a_slow_client_slows_the_backend_not_the_memory, |model| {
    const TOTAL: usize = 32 * 1024 * 1024;
    let written = Arc::new(AtomicUsize::new(0));
    let backend = answers_x(TOTAL, written.clone());
    let server = proxy(model, &[&backend.url()], |c| c.send_buffer(Some(16 * 1024)));
    let mut stream = connect_small_buffers(server.addr());
    send(&mut stream, &get_req("/up/big"));
    thread::sleep(Duration::from_millis(1500));
    let ahead = written.load(Ordering::SeqCst);
    // Kernel buffers on both sides plus the proxy's bounded buffers: nowhere near 32 MiB.
    assert!(
        ahead < 8 * 1024 * 1024,
        "the backend ran {ahead} bytes ahead of the client"
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.body.len(), TOTAL);
});

both_models!(waiting_for_a_slow_peer_costs_no_cpu, |model| {
    // A download the client does not read, and an upload the backend does not read: once
    // every buffer on the way is full, the proxy has nothing to do until a peer moves, and
    // must spend no CPU waiting (a thread polling for input it cannot take yet would spend
    // the whole second).
    const TOTAL: usize = 64 * 1024 * 1024;
    let download = answers_x(TOTAL, Arc::default());
    // Reads the upload's head, then nothing, holding the connection open.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upload = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let _ = read_until(&mut stream, &mut buf, b"\r\n\r\n");
        thread::sleep(Duration::from_secs(30));
    });
    let server = ServerProcess::builder(model)
        .args(&[
            "--proxy",
            &format!("/down/={}", download.url()),
            "--proxy",
            &format!("/up/={upload}"),
        ])
        .start();
    let mut reader = connect_small_buffers(server.addr);
    send(&mut reader, &get_req("/down/big"));
    let mut writer = connect_small_buffers(server.addr);
    let head = request(
        "POST",
        "/up/load",
        &[("Content-Length", &TOTAL.to_string())],
    );
    writer.write_all(&head).unwrap();
    thread::spawn(move || {
        let piece = vec![b'y'; 64 * 1024];
        for _ in 0..TOTAL / piece.len() {
            if writer.write_all(&piece).is_err() {
                return;
            }
        }
    });
    // Time for every buffer on both ways to fill.
    thread::sleep(Duration::from_millis(700));
    let spent = server.cpu_ticks_in_a_second();
    assert!(spent <= 5, "{spent} ticks of CPU in a second of waiting");
    drop(reader);
});

/// The binary, in front of `backend` under `/up/`, with `extra` arguments.
fn proxy_process(model: Model, backend: &Backend, extra: &[&str]) -> ServerProcess {
    let rule = format!("/up/={}", backend.url());
    let mut args = vec!["--proxy", &rule];
    args.extend_from_slice(extra);
    ServerProcess::builder(model).args(&args).start()
}

/// `stream`, made to wait up to 10 s for an answer.
fn patient(stream: TcpStream) -> TcpStream {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// A backend that answers `late` after 2.5 s.
fn late_backend() -> Backend {
    let reply = replies("late");
    Backend::start(move |seen, stream| {
        thread::sleep(Duration::from_millis(2500));
        reply(seen, stream)
    })
}

both_models!(a_client_that_half_closes_waits_without_spinning, |model| {
    // A client may shut its sending side once its request is out (`shutdown(SHUT_WR)`, as
    // `nc -N` does) and still read the answer. While a slow backend works, the proxy has
    // nothing to do: the end of stream it read once must not be read again and again.
    let backend = late_backend();
    let server = proxy_process(model, &backend, &[]);
    let mut stream = patient(server.connect());
    send(&mut stream, &get_req("/up/slow"));
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(500));
    let spent = server.cpu_ticks_in_a_second();
    let answer = String::from_utf8_lossy(&read_to_close(&mut stream)).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\nlate"),
        "{answer}"
    );
    assert!(spent <= 5, "{spent} ticks of CPU in a second of waiting");
});

both_models!(
    a_pipeline_behind_a_slow_upstream_waits_without_spinning,
    |model| {
        // More pipelined requests than the read buffer holds, behind one a slow upstream is
        // working on: the rest waits in the socket, at no cost, and all are answered in order.
        const BEHIND: usize = 2000;
        let reply = replies("ok");
        let backend = Backend::start(move |seen, stream| {
            if seen.target() == "/up/slow" {
                thread::sleep(Duration::from_millis(2000));
            }
            reply(seen, stream)
        });
        let server = proxy_process(model, &backend, &[]);
        let mut stream = patient(server.connect());
        let sender = send_in_background(&stream, pipelined_behind("/up/slow", BEHIND));
        thread::sleep(Duration::from_millis(500));
        let spent = server.cpu_ticks_in_a_second();
        assert_eq!(read_response(&mut stream, false).text(), "ok");
        expect_style_css(&mut stream, BEHIND);
        assert!(sender.join().unwrap(), "the requests were all sent");
        assert!(spent <= 5, "{spent} ticks of CPU in a second of waiting");
    }
);

both_models!(a_client_that_half_closes_then_resets_is_let_go, |model| {
    // Once the end of stream is read, a reset that follows must still be seen: the client is
    // gone, its connection is closed at once (no second of the server's time spent on it),
    // and the upstream it waited for is not counted as failing.
    let backend = late_backend();
    let server = proxy_process(model, &backend, &["--proxy-max-fails", "1"]);
    let mut stream = server.connect();
    send(&mut stream, &get_req("/up/slow"));
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(200));
    reset(stream);
    thread::sleep(Duration::from_millis(300));
    let spent = server.cpu_ticks_in_a_second();
    assert!(
        spent <= 5,
        "{spent} ticks of CPU in a second after the reset"
    );
    let status = server.status();
    assert_eq!(
        status["upstreams"][0]["members"][0]["state"], "up",
        "{status}"
    );
    assert_eq!(server.try_get().map(|r| r.status), Ok(200));
});

/// Closes `stream` with a reset (`SO_LINGER` of zero) rather than a FIN.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

#[test]
fn an_idle_connection_thread_keeps_no_pipes() {
    // In the thread model a pipe kept for the connection's next body would hold two
    // descriptors through every idle keep-alive, on every connection that ever had a
    // body spliced.
    let backend = answers_x(1 << 20, Arc::default());
    let server = ServerProcess::builder(Model::Threads)
        .args(&["--proxy", &format!("/up/={}", backend.url())])
        .start();
    let open_fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
            .unwrap()
            .count()
    };
    let mut stream = server.connect();
    send(&mut stream, &get_req("/style.css"));
    assert_eq!(read_response(&mut stream, false).status, 200);
    thread::sleep(Duration::from_millis(200));
    let before = open_fds();
    send(&mut stream, &get_req("/up/big"));
    assert_eq!(read_response(&mut stream, false).body.len(), 1 << 20);
    // The kept upstream connection, and nothing else, once the thread waits for the next
    // request (it looks between slices of its wait).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut after = open_fds();
    while after != before + 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        after = open_fds();
    }
    assert_eq!(
        after,
        before + 1,
        "descriptors: {before} before, {after} after"
    );
}

/// Sets the soft descriptor limit of process `pid` (ours or our child's) to `limit`; returns
/// the one it had.
fn set_fd_limit(pid: u32, limit: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only reads the current one into `old`.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: limit,
        rlim_max: old.rlim_max,
    };
    // SAFETY: both pointers are valid rlimits; only the soft limit changes.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

both_models!(bodies_are_copied_when_no_pipe_can_be_opened, |model| {
    // Out of descriptors, a body that would go through a pipe is copied instead, whole, both
    // ways, and the server says so in its log.
    let backend = paced_bytes();
    let mut server = proxy_process(model, &backend, &[]);
    let mut stream = patient(server.connect());
    // A small answer first: the client and upstream connections are open before the limit.
    send(&mut stream, &get_req("/up/bytes/5"));
    assert_eq!(read_response(&mut stream, false).status, 200);
    thread::sleep(Duration::from_millis(200));
    let pid = server.child.id();
    let lowest_free = {
        let open: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        (0..).find(|n| !open.contains(n)).unwrap()
    };
    // No new descriptor can be opened: the lowest free number is past the limit.
    let limit = set_fd_limit(pid, lowest_free);
    const LEN: usize = 1 << 20;
    send(&mut stream, &get_req(&format!("/up/bytes/{LEN}")));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert!(resp.body == big_bin()[..LEN], "the copied answer differs");
    let mut upload = request(
        "POST",
        "/up/bytes/5",
        &[("Content-Length", &LEN.to_string())],
    );
    upload.extend_from_slice(&big_bin()[..LEN]);
    send(&mut stream, &upload);
    assert_eq!(read_response(&mut stream, false).status, 200);
    let seen = backend.seen();
    assert!(
        seen.last().unwrap().body == big_bin()[..LEN],
        "the copied upload differs"
    );
    assert!(
        server
            .log()
            .contains("cannot open a pipe; copying bodies instead"),
        "the log says nothing of the missing pipe:\n{}",
        server.log_tail(10)
    );
    assert_eq!(backend.accepts.load(Ordering::SeqCst), 1);
    set_fd_limit(pid, limit);
    server.assert_serves("with descriptors again");
});

both_models!(
    an_upload_to_a_slow_backend_waits_in_bounded_memory,
    |model| {
        const TOTAL: usize = 64 * 1024 * 1024;
        // A backend that reads the head, then nothing until told to, then counts the body.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let backend = listener.local_addr().unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let end = read_until(&mut stream, &mut buf, b"\r\n\r\n").unwrap();
            let mut got = buf.len() - (end + 4);
            let _ = wait.recv();
            let mut chunk = vec![0u8; 256 * 1024];
            while got < TOTAL {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            let reply = got.to_string();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", reply.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(reply.as_bytes());
        });
        let server = proxy(model, &[&format!("http://{backend}")], |c| {
            c.proxy_timeout(Duration::from_secs(20))
        });
        let mut stream = connect_small_buffers(server.addr());
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let progress = written.clone();
        let mut writer = stream.try_clone().unwrap();
        let upload = thread::spawn(move || {
            let head = request(
                "POST",
                "/up/upload",
                &[("Content-Length", &TOTAL.to_string())],
            );
            writer.write_all(&head).unwrap();
            let piece = vec![b'u'; 64 * 1024];
            for _ in 0..TOTAL / piece.len() {
                writer.write_all(&piece).unwrap();
                progress.fetch_add(piece.len(), Ordering::SeqCst);
            }
        });
        thread::sleep(Duration::from_millis(1500));
        let ahead = written.load(Ordering::SeqCst);
        // Kernel buffers on each hop plus the proxy's bounded buffer: a proxy that took the body
        // in as fast as the client sent it would hold all 64 MiB.
        assert!(
            ahead < 24 * 1024 * 1024,
            "the client got {ahead} bytes ahead of the stalled backend"
        );
        go.send(()).unwrap();
        upload.join().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.text(),
            TOTAL.to_string(),
            "every uploaded byte arrived"
        );
    }
);

both_models!(expect_100_continue_is_answered_by_the_front, |model| {
    let backend = Backend::start(echoes("200 OK"));
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut stream = server.connect();
    send(
        &mut stream,
        &request(
            "POST",
            "/up/x",
            &[("Content-Length", "5"), ("Expect", "100-continue")],
        ),
    );
    let interim = read_response(&mut stream, false);
    assert_eq!(interim.status, 100);
    send(&mut stream, b"hello");
    let resp = read_response(&mut stream, false);
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));
    assert_eq!(backend.seen()[0].header("expect"), None);
});

both_models!(interim_responses_reach_clients_that_take_them, |model| {
    // A proxy forwards 1xx responses (RFC 9110 section 15.2): an HTTP/1.1 client gets the
    // upstream's 103 Early Hints before the answer, with hop-by-hop fields removed and Via
    // added; an HTTP/1.0 client gets none, and a stray 100 goes to no one.
    let backend = Backend::start(|_, stream| {
        stream
            .write_all(
                b"HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nConnection: X-Hop\r\n\
                  X-Hop: 1\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            )
            .is_ok()
    });
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut stream = server.connect();
    send(&mut stream, &get_req("/up/a"));
    let hints = read_response(&mut stream, false);
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</s.css>; rel=preload"));
    assert_eq!(hints.header("x-hop"), None);
    assert_eq!(hints.header("via"), Some("1.1 margay"));
    let resp = read_response(&mut stream, false);
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));

    let mut old = server.connect();
    send(&mut old, b"GET /up/b HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let text = String::from_utf8_lossy(&read_to_close(&mut old)).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
});

both_models!(max_forwards_counts_the_hops_of_options_and_trace, |model| {
    // RFC 9110 section 7.6.2: an OPTIONS or TRACE request goes on with one hop fewer, and one
    // with none left is answered by the proxy itself. Other methods pass the field as it is.
    let backend = Backend::start(replies("upstream"));
    let server = proxy(model, &[&backend.url()], |c| c);
    let ask = |method: &str, hops: &str| {
        let mut stream = server.connect();
        send(
            &mut stream,
            &request(method, "/up/x", &[("Max-Forwards", hops)]),
        );
        read_response(&mut stream, false)
    };
    let options = ask("OPTIONS", "0");
    assert_eq!((options.status, options.text().as_str()), (204, ""));
    assert_eq!(ask("TRACE", "0").status, 501);
    assert!(backend.seen().is_empty(), "a spent request went upstream");

    assert_eq!(ask("OPTIONS", "5").text(), "upstream");
    assert_eq!(ask("TRACE", "1").text(), "upstream");
    assert_eq!(ask("GET", "0").text(), "upstream");
    let hops: Vec<_> = backend
        .seen()
        .iter()
        .map(|seen| seen.header("max-forwards"))
        .collect();
    assert_eq!(hops, [Some("4".into()), Some("0".into()), Some("0".into())]);
});

both_models!(closing_clients_reuse_kept_upstream_connections, |model| {
    let backend = Backend::start(replies("pooled"));
    let server = proxy(model, &[&backend.url()], |c| c);
    for _ in 0..20 {
        let resp = server.get_with("/up/x", &[("Connection", "close")]);
        assert_eq!(resp.text(), "pooled");
    }
    // Without the pool every request would open one.
    let accepts = backend.accepts.load(Ordering::SeqCst);
    assert!(
        accepts <= 2,
        "{accepts} upstream connections for 20 requests"
    );
});

both_models!(requests_are_never_pipelined_upstream, |model| {
    let backend = Backend::start(|_, stream| {
        thread::sleep(Duration::from_millis(50));
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_ok()
    });
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut stream = server.connect();
    let mut batch = Vec::new();
    for i in 0..4 {
        batch.extend_from_slice(&get_req(&format!("/up/{i}")));
    }
    send(&mut stream, &batch);
    for _ in 0..4 {
        assert_eq!(read_response(&mut stream, false).text(), "ok");
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|s| !s.pipelined),
        "a request arrived before its predecessor was answered"
    );
    let targets: Vec<String> = seen.iter().map(Seen::target).collect();
    assert_eq!(targets, ["/up/0", "/up/1", "/up/2", "/up/3"]);
});

both_models!(
    pipelined_requests_are_forwarded_one_after_another_at_once,
    |model| {
        // Each request read with the ones before it is forwarded as soon as its predecessor is
        // answered, not after the client's socket is found to hold nothing more (a blocking
        // read of a quarter second in the thread model, each time).
        const N: usize = 20;
        let backend = Backend::start(replies("ok"));
        let server = proxy(model, &[&backend.url()], |c| c);
        let mut stream = server.connect();
        let mut batch = Vec::new();
        for i in 0..N {
            batch.extend_from_slice(&get_req(&format!("/up/{i}")));
        }
        let started = Instant::now();
        send(&mut stream, &batch);
        for _ in 0..N {
            assert_eq!(read_response(&mut stream, false).text(), "ok");
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{N} pipelined requests took {:?}",
            started.elapsed()
        );
    }
);

both_models!(a_failing_member_is_skipped_then_tried_again, |model| {
    let backend = Backend::start(replies("good"));
    let bad = Refusing::new();
    let server = proxy(model, &[&bad.url(), &backend.url()], |c| {
        c.proxy_max_fails(1)
            .proxy_fail_timeout(Duration::from_secs(2))
    });
    server.get("/up/x");
    let status = server.status();
    let members = &status["upstreams"][0]["members"];
    assert_eq!(members[0]["state"], "down", "{status}");
    thread::sleep(Duration::from_millis(2200));
    let status = server.status();
    assert_eq!(
        status["upstreams"][0]["members"][0]["state"], "up",
        "{status}"
    );
});

both_models!(
    a_client_that_stalls_mid_upload_gets_408_and_fails_no_member,
    |model| {
        // The client, not the upstream, stopped: it gets the client's timeout (408, as for a
        // body served here), and the upstream is not counted as failing. Otherwise a few stalled
        // uploads would take every member out of rotation for everyone.
        let backend = Backend::start(replies("good"));
        let server = proxy(model, &[&backend.url()], |c| {
            c.proxy_max_fails(1)
                .proxy_timeout(Duration::from_secs(30))
                .header_timeout(Duration::from_millis(500))
        });
        for _ in 0..2 {
            let mut stream = patient(server.connect());
            let mut head = request("POST", "/up/x", &[("Content-Length", "100000")]);
            head.extend_from_slice(&[b'y'; 1000]);
            send(&mut stream, &head);
            let started = Instant::now();
            let resp = read_response(&mut stream, false);
            assert_eq!(resp.status, 408, "{}", resp.text());
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "answered after {:?}, not at the client's timeout",
                started.elapsed()
            );
            assert_eq!(resp.header("connection"), Some("close"));
        }
        let status = server.status();
        assert_eq!(
            status["upstreams"][0]["members"][0]["state"], "up",
            "{status}"
        );
        let resp = server.get("/up/x");
        assert_eq!((resp.status, resp.text().as_str()), (200, "good"));
    }
);

both_models!(a_client_that_stops_reading_fails_no_member, |model| {
    // A client that takes no more of a large answer is dropped at its send timeout; the
    // upstream that waited on it is not counted as failing.
    let backend = paced_bytes();
    let server = proxy(model, &[&backend.url()], |c| {
        c.proxy_max_fails(1)
            .proxy_timeout(Duration::from_secs(30))
            .send_timeout(Duration::from_millis(500))
    });
    let mut reader = connect_small_buffers(server.addr());
    send(&mut reader, &get_req(&format!("/up/bytes/{BIG_LEN}")));
    let mut first = [0u8; 100];
    reader.read_exact(&mut first).unwrap();
    // Long past the send timeout; the client is dropped meanwhile.
    thread::sleep(Duration::from_millis(2500));
    let status = server.status();
    assert_eq!(
        status["upstreams"][0]["members"][0]["state"], "up",
        "{status}"
    );
    let resp = server.get("/up/bytes/5");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, big_bin()[..5]);
    // What the dropped client got is less than the whole answer.
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(100 + rest.len() < BIG_LEN, "the stalled client got it all");
});

/// An address whose connects never complete while it lives, as a machine that is gone: a
/// listener whose backlog is full, so the kernel drops further SYNs.
struct Blackhole {
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
    addr: SocketAddr,
}

impl Blackhole {
    fn new() -> Blackhole {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fill the accept queue (never accepted); the next connect hangs.
        let mut queued = Vec::new();
        while queued.len() < 8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => queued.push(stream),
                Err(_) => break,
            }
        }
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
            "the backlog never filled"
        );
        Blackhole {
            _listener: listener,
            _queued: queued,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

both_models!(a_connect_that_never_completes_is_a_refusal, |model| {
    // A member whose machine is gone answers nothing: after the connect timeout it counts as
    // refusing, so an idempotent request is tried on the other member, and one that cannot
    // be tried again gets 502, both long before the proxy timeout.
    let gone = Blackhole::new();
    let backend = Backend::start(replies("good"));
    let server = proxy(model, &[&gone.url(), &backend.url()], |c| {
        c.proxy_timeout(Duration::from_secs(30))
            .proxy_connect_timeout(Duration::from_millis(300))
            .proxy_max_fails(5)
    });
    for _ in 0..2 {
        let started = Instant::now();
        let resp = server.get("/up/x");
        assert_eq!((resp.status, resp.text().as_str()), (200, "good"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    // Each time the gone member was tried, it failed and the request went on to the other.
    let status = server.status();
    let gone_member = &status["upstreams"][0]["members"][0];
    assert!(gone_member["failures"].as_u64() >= Some(1), "{status}");
    assert_eq!(gone_member["failures"], gone_member["retried"], "{status}");
    // With only the gone member, a request that cannot be sent twice gets 502.
    let server = proxy(model, &[&gone.url()], |c| {
        c.proxy_timeout(Duration::from_secs(30))
            .proxy_connect_timeout(Duration::from_millis(300))
    });
    let mut stream = patient(server.connect());
    let mut post = request("POST", "/up/x", &[("Content-Length", "2")]);
    post.extend_from_slice(b"hi");
    let started = Instant::now();
    send(&mut stream, &post);
    let resp = read_response(&mut stream, false);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(resp.status, 502);
});

both_models!(kept_connections_a_server_dropped_cost_no_retry, |model| {
    // A server that restarted leaves the proxy holding kept connections it has closed (here:
    // it closes each unanswered once it gets a second request on it). Finding one dead is
    // nobody's fault and costs the request no attempt; the retry checks kept connections
    // first, or makes a new one, so a GET is answered even when several kept ones are dead.
    let answered = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let backend = Backend::start(move |_, stream| {
        let peer = stream.peer_addr().unwrap();
        if !answered.lock().unwrap().insert(peer) {
            return false;
        }
        thread::sleep(Duration::from_millis(200));
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        true
    });
    let server = proxy(model, &[&backend.url()], |c| c);
    // Two requests at once: two upstream connections, both kept.
    let mut first = server.connect();
    let mut second = server.connect();
    send(&mut first, &get_req("/up/1"));
    send(&mut second, &get_req("/up/2"));
    for stream in [&mut first, &mut second] {
        assert_eq!(read_response(stream, false).text(), "ok");
    }
    assert_eq!(backend.accepts.load(Ordering::SeqCst), 2);
    // Both are dead the moment they carry a request.
    send(&mut first, &get_req("/up/3"));
    let resp = read_response(&mut first, false);
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
    assert_eq!(backend.accepts.load(Ordering::SeqCst), 3);
    let status = server.status();
    assert_eq!(
        status["upstreams"][0]["members"][0]["failures"], 0,
        "{status}"
    );
});

#[test]
fn proxy_rules_in_the_binary() {
    let backend = Backend::start(replies("through the binary"));
    let rule = format!("/api/=http://{}/", backend.addr);
    let server = ServerProcess::builder(Model::Reactor)
        .args(&["--proxy", &rule, "--proxy-balance", "least-connections"])
        .start();
    let mut stream = connect(server.addr);
    send(&mut stream, &get_req("/api/todos"));
    let resp = read_response(&mut stream, false);
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "through the binary")
    );
    assert_eq!(backend.seen()[0].target(), "/todos");
}

/// The idle connections the proxy keeps for the first member, as its status reports them.
fn idle_upstream_connections(server: &TestServer) -> u64 {
    server.status()["upstreams"][0]["members"][0]["idle"]
        .as_u64()
        .unwrap()
}

/// Waits (a bounded while) until the status reports `n` idle upstream connections; returns
/// whether it did.
fn until_idle_upstream_connections(server: &TestServer, n: u64) -> bool {
    for _ in 0..100 {
        if idle_upstream_connections(server) == n {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A backend that answers with keep-alive framing, then closes the connection a moment later,
/// while the proxy keeps it idle (as a backend's own keep-alive timeout does).
fn closes_kept_connections() -> Backend {
    Backend::start(|seen, stream| {
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
            seen.body.len() + 2,
            "ok"
        );
        let _ = stream.write_all(reply.as_bytes());
        let _ = stream.write_all(&seen.body);
        thread::sleep(Duration::from_millis(100));
        false
    })
}

both_models!(
    a_kept_connection_the_backend_closed_is_not_used_again,
    |model| {
        let backend = closes_kept_connections();
        let server = proxy(model, &[&backend.url()], |c| c);
        let mut stream = server.connect();
        send(&mut stream, &get_req("/up/1"));
        assert_eq!(read_response(&mut stream, false).text(), "ok");
        // The event loop hears the close and drops the connection by itself; the thread
        // model finds it closed when it takes it.
        if model == Model::Reactor {
            assert!(
                until_idle_upstream_connections(&server, 0),
                "the closed connection stayed in the pool: {}",
                server.status()
            );
        } else {
            thread::sleep(Duration::from_millis(300));
        }
        // Neither a request that may be repeated nor one that may not meets the dead
        // connection: both go out on a new one, with no failure and no retry.
        send(&mut stream, &get_req("/up/2"));
        assert_eq!(read_response(&mut stream, false).text(), "ok");
        thread::sleep(Duration::from_millis(300));
        let mut raw = request("POST", "/up/3", &[("Content-Length", "3")]);
        raw.extend_from_slice(b"abc");
        send(&mut stream, &raw);
        let resp = read_response(&mut stream, false);
        assert_eq!((resp.status, resp.text().as_str()), (200, "okabc"));
        assert_eq!(backend.accepts.load(Ordering::SeqCst), 3);
        assert_eq!(
            backend.seen().len(),
            3,
            "every request reached the backend once"
        );
        let status = server.status();
        let member = &status["upstreams"][0]["members"][0];
        assert_eq!(member["failures"], 0, "{status}");
        assert_eq!(member["retried"], 0, "{status}");
    }
);

both_models!(kept_alive_clients_share_one_upstream_connection, |model| {
    let backend = Backend::start(replies("shared"));
    let server = proxy(model, &[&backend.url()], |c| c);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for round in 0..4 {
        for (i, client) in clients.iter_mut().enumerate() {
            send(client, &get_req(&format!("/up/{round}/{i}")));
            assert_eq!(read_response(client, false).text(), "shared");
            // The response is through: its connection waits in the pool for the next.
            assert!(until_idle_upstream_connections(&server, 1));
        }
    }
    assert_eq!(
        backend.accepts.load(Ordering::SeqCst),
        1,
        "12 requests one after another need one upstream connection"
    );
    assert_eq!(backend.seen().len(), 12);
});

both_models!(
    a_request_that_cannot_be_repeated_gets_502_not_a_second_send,
    |model| {
        // The backend reads the request and closes without answering: the POST may have
        // taken effect, so it is not sent again.
        let backend = Backend::start(|_, _| false);
        let server = proxy(model, &[&backend.url()], |c| c.proxy_max_fails(100));
        let mut raw = request("POST", "/up/once", &[("Content-Length", "3")]);
        raw.extend_from_slice(b"abc");
        assert_error_page(&server.exchange(&raw, false), 502);
        let posts = backend
            .seen()
            .iter()
            .filter(|s| s.head.starts_with("POST"))
            .count();
        assert_eq!(posts, 1, "the POST was sent twice");
    }
);

both_models!(
    a_kept_connection_that_fails_is_retried_on_the_same_member,
    |model| {
        // Each connection answers one request, then closes at the next without answering: as
        // a server does whose keep-alive timeout fired while that request was on its way.
        let answered = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let backend = Backend::start(move |_, stream| {
            let peer = stream.peer_addr().unwrap();
            if !answered.lock().unwrap().insert(peer) {
                return false;
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .is_ok()
        });
        // One member: there is no other to send the request to.
        let server = proxy(model, &[&backend.url()], |c| c);
        let mut stream = server.connect();
        for _ in 0..3 {
            send(&mut stream, &get_req("/up/x"));
            let resp = read_response(&mut stream, false);
            assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
        }
        let status = server.status();
        let member = &status["upstreams"][0]["members"][0];
        // Not the member's fault: it is not counted as failing.
        assert_eq!(member["failures"], 0, "{status}");
        assert_eq!(member["state"], "up", "{status}");
    }
);

both_models!(upstream_host_mode_sends_the_backends_own_host, |model| {
    let backend = Backend::start(replies("ok"));
    let server = proxy(model, &[&backend.url()], |c| {
        c.proxy_host(margay::HostHeader::Upstream)
    });
    // The client asks for `localhost`, as `a_request_is_forwarded_and_answered` shows
    // reaching the backend by default.
    let resp = server.get("/up/x");
    assert_eq!(resp.status, 200);
    let seen = &backend.seen()[0];
    assert_eq!(
        seen.header("host"),
        Some(backend.addr.to_string()),
        "{}",
        seen.head
    );
    // The client's name still reaches the backend, where it belongs.
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("localhost")
    );
});

both_models!(a_member_failing_its_health_check_gets_no_traffic, |model| {
    let sick = Backend::start(|_, stream| {
        stream
            .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nsick")
            .is_ok()
    });
    let well = Backend::start(replies("well"));
    let server = proxy(model, &[&sick.url(), &well.url()], |c| {
        c.proxy_health_check(Some("/health".into()))
    });
    // The first check runs as the server starts; wait (a bounded while) for its verdict.
    let within = Duration::from_secs(4);
    let noticed = "the failing check was not noticed";
    let status = await_states(&server, within, noticed, |s| s[0] == "unhealthy");
    assert_eq!(
        status["upstreams"][0]["members"][1]["state"], "up",
        "{status}"
    );
    for _ in 0..6 {
        let resp = server.get("/up/x");
        assert_eq!((resp.status, resp.text().as_str()), (200, "well"));
    }
    let proxied = |b: &Backend| b.seen().iter().filter(|s| s.target() == "/up/x").count();
    assert_eq!(proxied(&sick), 0, "the unhealthy member got requests");
    assert_eq!(proxied(&well), 6);
    assert!(
        sick.seen().iter().any(|s| s.target() == "/health"),
        "the check path was not asked"
    );
});

both_models!(
    a_member_whose_check_passes_again_gets_traffic_again,
    |model| {
        // Active health works both ways: a member skipped for a failing check is taken back
        // at the first check it passes (checks come every five seconds).
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answers = healthy.clone();
        let member = Backend::start(move |_, stream| {
            let reply: &[u8] = if answers.load(Ordering::SeqCst) {
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nback"
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            };
            stream.write_all(reply).is_ok()
        });
        let server = proxy(model, &[&member.url()], |c| {
            c.proxy_health_check(Some("/health".into()))
        });
        await_states(&server, Duration::from_secs(4), "never unhealthy", |s| {
            s[0] == "unhealthy"
        });
        assert_eq!(
            server.get("/up/x").status,
            502,
            "an unhealthy member got a request"
        );
        healthy.store(true, Ordering::SeqCst);
        await_states(&server, Duration::from_secs(8), "not taken back", |s| {
            s[0] == "up"
        });
        assert_eq!(server.get("/up/x").text(), "back");
    }
);

both_models!(a_member_going_down_is_logged_once, |model| {
    // Five requests in flight when the member dies all fail; the log says once that it is
    // skipped, not once for each of them.
    const N: usize = 5;
    let backend = Backend::start(|_, _| {
        thread::sleep(Duration::from_millis(300));
        false
    });
    let server = proxy_process(model, &backend, &["--proxy-max-fails", "1"]);
    let clients: Vec<_> = (0..N)
        .map(|_| {
            let mut stream = patient(server.connect());
            thread::spawn(move || {
                let upload = request("POST", "/up/x", &[("Content-Length", "2")]);
                send(&mut stream, &[upload, b"hi".to_vec()].concat());
                read_response(&mut stream, false).status
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 502);
    }
    let log = server.log();
    assert_eq!(
        log.matches("times in a row; skipped").count(),
        1,
        "{}",
        server.log_tail(10)
    );
});

both_models!(
    a_member_that_never_answers_its_check_holds_up_no_other,
    |model| {
        // The checks of a round run side by side: a member whose machine is gone (its connects
        // never complete) does not delay the verdict on the others.
        let gone = Blackhole::new();
        let sick = Backend::start(|_, stream| {
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .is_ok()
        });
        let gone_url = format!("http://{}", gone.addr);
        let server = proxy(model, &[&gone_url, &sick.url()], |c| {
            c.proxy_health_check(Some("/health".into()))
                .proxy_connect_timeout(Duration::from_secs(10))
        });
        let waited = "the failing check waited for the one that hangs";
        await_states(&server, Duration::from_millis(1500), waited, |s| {
            s[1] == "unhealthy"
        });
    }
);

both_models!(a_check_waits_no_longer_than_the_proxy_timeouts, |model| {
    // Checks run every five seconds. A member whose connect does not complete within
    // --proxy-connect-timeout, or whose answer does not begin within --proxy-timeout,
    // fails its check then, not at the next round.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap(); // connects complete; no answer
    let gone = Blackhole::new();
    let urls = [
        format!("http://{}", silent.local_addr().unwrap()),
        format!("http://{}", gone.addr),
    ];
    let server = proxy(model, &[&urls[0], &urls[1]], |c| {
        c.proxy_health_check(Some("/health".into()))
            .proxy_timeout(Duration::from_millis(300))
            .proxy_connect_timeout(Duration::from_millis(300))
    });
    let outlived = "a check outlived the timeouts";
    await_states(&server, Duration::from_secs(3), outlived, |s| {
        s == ["unhealthy", "unhealthy"]
    });
});

both_models!(keepalive_bounds_the_idle_upstream_connections, |model| {
    const N: u64 = 1;
    let backend = Backend::start(|_, stream| {
        thread::sleep(Duration::from_millis(300));
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_ok()
    });
    let server = proxy(model, &[&backend.url()], |c| {
        c.workers(1).proxy_keepalive(N as usize)
    });
    let addr = server.addr();
    let clients: Vec<_> = (0..N + 3)
        .map(|i| {
            thread::spawn(move || {
                let mut stream = connect(addr);
                send(&mut stream, &get_req(&format!("/up/{i}")));
                read_response(&mut stream, false).text()
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), "ok");
    }
    let accepts = backend.accepts.load(Ordering::SeqCst) as u64;
    assert!(
        accepts > N,
        "the requests did not overlap: {accepts} connections"
    );
    thread::sleep(Duration::from_millis(200));
    // One event loop keeps N, and the shared pool N more; the thread model has only the
    // shared pool.
    let bound = match model {
        Model::Reactor => 2 * N,
        _ => N,
    };
    let idle = idle_upstream_connections(&server);
    assert!(
        idle <= bound,
        "{idle} idle upstream connections kept with --proxy-keepalive {N} ({accepts} opened)"
    );
});
