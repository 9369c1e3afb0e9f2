//! The application-server half: blocking handlers on the worker pool (the loop keeps serving,
//! a full queue answers 503, a slow handler 504, a panic 500, order kept behind a blocking
//! request), streamed bodies (chunked, backpressure on the producer, a vanished client makes
//! the sender fail), routes with parameters and 405, handlers returning `Result`, shared
//! state, and a response API that no input can split.

mod common;

use common::*;
use margay::{Error, Method, Model, Request, Response, StatusCode};
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A gate a handler waits at until the test opens it (one pass per `open`).
#[derive(Clone)]
struct Gate {
    passes: Arc<Mutex<Receiver<()>>>,
    opener: Sender<()>,
    arrived: Arc<AtomicUsize>,
}

impl Gate {
    fn new() -> Gate {
        let (opener, passes) = mpsc::channel();
        Gate {
            passes: Arc::new(Mutex::new(passes)),
            opener,
            arrived: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Called by a handler: waits for a pass (at most 10 s, so a failed test cannot hang).
    fn wait(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let _ = self
            .passes
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
    }

    fn open(&self, n: usize) {
        for _ in 0..n {
            self.opener.send(()).unwrap();
        }
    }

    /// Waits until `n` handlers are at the gate.
    fn wait_arrivals(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.arrived.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "{n} handlers never reached the gate"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn gated_server(
    model: Model,
    gate: &Gate,
    tune: impl FnOnce(margay::Config) -> margay::Config + 'static,
) -> TestServer {
    let gate = gate.clone();
    TestServer::builder(model)
        .config(tune)
        .routes(move |server| {
            server.blocking(Method::Get, "/slow", move |_| {
                gate.wait();
                Response::text("slow done")
            })
        })
        .start()
}

fn get_on(stream: &mut TcpStream, target: &str) -> Resp {
    send(stream, &get_req(target));
    read_response(stream, false)
}

both_models!(a_blocking_handler_does_not_hold_up_other_clients, |model| {
    let gate = Gate::new();
    let server = gated_server(model, &gate, |c| c);
    let mut slow = server.connect();
    send(&mut slow, &get_req("/slow"));
    gate.wait_arrivals(1);
    // While the handler is blocked, other clients are served, static files and handlers.
    for _ in 0..5 {
        let resp = server.get("/style.css");
        assert_eq!(resp.status, 200);
    }
    assert_eq!(server.get("/api/status").status, 200);
    gate.open(1);
    let resp = read_response(&mut slow, false);
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow done"));
    assert_still_serves(&mut slow);
});

/// CPU ticks (user and system) the thread `tid` of this process has used.
fn thread_cpu_ticks(tid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // The fields after the command name, which may hold spaces, start at its ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

both_models!(a_client_that_half_closes_waits_without_spinning, |model| {
    // A client may shut its sending side once its request is out and still read the answer.
    // While the handler works, the thread that serves the connection has nothing to do: the
    // end of stream it read once must not be read again and again.
    let gate = Gate::new();
    let at_gate = gate.clone();
    let server = TestServer::builder(model)
        .routes(move |server| {
            server
                .blocking(Method::Get, "/slow", move |_| {
                    at_gate.wait();
                    Response::text("slow done")
                })
                // Inline handlers run on the thread that serves the connection.
                .get("/thread", |_| {
                    // SAFETY: gettid has no preconditions.
                    Response::text(unsafe { libc::gettid() }.to_string())
                })
        })
        .start();
    let mut stream = server.connect();
    let tid: u64 = get_on(&mut stream, "/thread").text().parse().unwrap();
    send(&mut stream, &get_req("/slow"));
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    gate.wait_arrivals(1);
    thread::sleep(Duration::from_millis(100));
    let before = thread_cpu_ticks(tid);
    thread::sleep(Duration::from_secs(1));
    let spent = thread_cpu_ticks(tid) - before;
    gate.open(1);
    let resp = read_response(&mut stream, false);
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow done"));
    assert!(spent <= 5, "{spent} ticks of CPU in a second of waiting");
});

both_models!(
    pipelined_requests_behind_a_blocking_one_keep_their_order,
    |model| {
        let gate = Gate::new();
        let server = gated_server(model, &gate, |c| c);
        let mut stream = server.connect();
        let mut batch = get_req("/slow");
        batch.extend_from_slice(&get_req("/style.css"));
        batch.extend_from_slice(&get_req("/slow"));
        batch.extend_from_slice(&get_req("/app.js"));
        send(&mut stream, &batch);
        gate.wait_arrivals(1);
        gate.open(2);
        let bodies: Vec<String> = (0..4)
            .map(|_| read_response(&mut stream, false).text())
            .collect();
        assert_eq!(bodies, ["slow done", STYLE_CSS, "slow done", APP_JS]);
    }
);

both_models!(
    many_pipelined_requests_behind_a_blocking_one_wait_unread,
    |model| {
        // More requests than the read buffer holds, behind one a handler is working on: what
        // does not fit stays in the socket until the handler answers, then all are answered
        // in order (the connection is not dropped for a full buffer).
        const BEHIND: usize = 2000;
        let gate = Gate::new();
        let server = gated_server(model, &gate, |c| c);
        let mut stream = server.connect();
        let sender = send_in_background(&stream, pipelined_behind("/slow", BEHIND));
        gate.wait_arrivals(1);
        thread::sleep(Duration::from_millis(200));
        gate.open(1);
        let first = read_response(&mut stream, false);
        assert_eq!((first.status, first.text().as_str()), (200, "slow done"));
        expect_style_css(&mut stream, BEHIND);
        assert!(sender.join().unwrap(), "the requests were all sent");
        assert_still_serves(&mut stream);
    }
);

#[test]
fn a_full_queue_answers_503_at_once_with_retry_after() {
    let gate = Gate::new();
    let server = gated_server(Model::Reactor, &gate, |c| {
        c.handler_threads(1).handler_queue(1)
    });
    let mut running = server.connect();
    send(&mut running, &get_req("/slow"));
    gate.wait_arrivals(1);
    let mut queued = server.connect();
    send(&mut queued, &get_req("/slow"));
    // Give the loop a moment to queue it: the next one must find the queue full.
    thread::sleep(Duration::from_millis(100));
    let refused = server.get("/slow");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let status = server.status();
    assert_eq!(status["handler_pool"]["rejected"], 1, "{status}");
    gate.open(2);
    assert_eq!(read_response(&mut running, false).status, 200);
    assert_eq!(read_response(&mut queued, false).status, 200);
}

#[test]
fn the_thread_model_runs_a_blocking_route_on_its_connection_thread() {
    // No pool, no queue: with one pool thread configured, three requests still all succeed.
    let gate = Gate::new();
    let server = gated_server(Model::Threads, &gate, |c| {
        c.handler_threads(1).handler_queue(1)
    });
    let mut streams: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for stream in &mut streams {
        send(stream, &get_req("/slow"));
    }
    gate.wait_arrivals(3);
    gate.open(3);
    for stream in &mut streams {
        assert_eq!(read_response(stream, false).status, 200);
    }
}

#[test]
fn a_slow_blocking_handler_gets_504_and_its_late_answer_is_dropped() {
    let gate = Gate::new();
    let server = gated_server(Model::Reactor, &gate, |c| {
        c.handler_timeout(Duration::from_secs(1))
    });
    let mut stream = server.connect();
    send(&mut stream, &get_req("/slow"));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 504);
    // The connection goes on; the late answer never appears on it.
    gate.open(1);
    thread::sleep(Duration::from_millis(200));
    let next = get_on(&mut stream, "/style.css");
    assert_eq!((next.status, next.text().as_str()), (200, STYLE_CSS));
    assert_eq!(server.status()["handler_pool"]["timed_out"], 1);
}

both_models!(
    a_panicking_handler_answers_500_and_the_pool_keeps_serving,
    |model| {
        let server = TestServer::builder(model)
            .config(|c| c.handler_threads(1))
            .routes(|server| {
                server
                    .blocking(Method::Get, "/boom", |_| -> Response { panic!("boom") })
                    .blocking(Method::Get, "/fine", |_| Response::text("fine"))
            })
            .start();
        for _ in 0..3 {
            let resp = server.get("/boom");
            assert_error_page(&resp, 500);
            // The one pool thread survived the panic.
            assert_eq!(server.get("/fine").text(), "fine");
        }
    }
);

both_models!(shutdown_waits_for_a_blocking_handler_in_flight, |model| {
    let gate = Gate::new();
    let server = gated_server(model, &gate, |c| {
        c.shutdown_timeout(Duration::from_secs(10))
    });
    let mut stream = server.connect();
    send(&mut stream, &get_req("/slow"));
    gate.wait_arrivals(1);
    let opener = gate.clone();
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        opener.open(1);
    });
    server.shutdown().unwrap();
    releaser.join().unwrap();
    let resp = read_response(&mut stream, false);
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow done"));
    assert!(
        resp.says_close(),
        "a response during shutdown closes its connection"
    );
});

// ---------------------------------------------------------------------------------------------
// Streamed bodies.

/// A server whose `/stream` answers with pieces sent from a thread, as the test dictates.
fn streaming_server(model: Model, pieces: Receiver<Option<String>>) -> TestServer {
    let pieces = Arc::new(Mutex::new(pieces));
    TestServer::builder(model)
        .routes(move |server| {
            server.get("/stream", move |_| {
                let (response, sender) = Response::stream("text/plain");
                let pieces = pieces.clone();
                thread::spawn(move || {
                    let pieces = pieces.lock().unwrap();
                    while let Ok(Some(piece)) = pieces.recv_timeout(Duration::from_secs(10)) {
                        if sender.send(piece).is_err() {
                            return;
                        }
                    }
                });
                response
            })
        })
        .start()
}

both_models!(
    a_streamed_body_is_chunked_and_arrives_piece_by_piece,
    |model| {
        let (feed, pieces) = mpsc::channel();
        let server = streaming_server(model, pieces);
        let mut stream = server.connect();
        send(&mut stream, &get_req("/stream"));
        feed.send(Some("first ".to_string())).unwrap();
        let head = read_head_text(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\ntransfer-encoding: chunked\r\n"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{head}"
        );
        // The first piece arrives before the second is even produced.
        assert_eq!(read_chunk(&mut stream), b"first ");
        feed.send(Some("second".to_string())).unwrap();
        assert_eq!(read_chunk(&mut stream), b"second");
        feed.send(None).unwrap();
        assert_eq!(read_chunk(&mut stream), b"", "the last chunk ends the body");
        let mut crlf = [0u8; 2];
        stream.read_exact(&mut crlf).unwrap();
        assert_eq!(&crlf, b"\r\n");
        // The connection is kept alive after the stream.
        assert_still_serves(&mut stream);
    }
);

both_models!(an_http10_client_gets_a_stream_until_the_close, |model| {
    let (feed, pieces) = mpsc::channel();
    let server = streaming_server(model, pieces);
    let mut stream = server.connect();
    send(&mut stream, b"GET /stream HTTP/1.0\r\n\r\n");
    feed.send(Some("one,".to_string())).unwrap();
    feed.send(Some("two".to_string())).unwrap();
    feed.send(None).unwrap();
    let all = String::from_utf8(read_to_close(&mut stream)).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(body, "one,two");
});

both_models!(a_slow_reader_makes_the_producer_wait, |model| {
    let accepted = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (counted, done) = (accepted.clone(), finished.clone());
    const PIECE: usize = 64 * 1024;
    const PIECES: usize = 160; // 10 MiB
    let server = TestServer::builder(model)
        .config(|c| c.send_buffer(Some(16 * 1024)))
        .routes(move |server| {
            server.get("/big-stream", move |_| {
                let (response, sender) = Response::stream("application/octet-stream");
                let (counted, done) = (counted.clone(), done.clone());
                thread::spawn(move || {
                    for i in 0..PIECES {
                        if sender.send(vec![(i % 251) as u8; PIECE]).is_err() {
                            return;
                        }
                        counted.fetch_add(PIECE, Ordering::SeqCst);
                    }
                    done.store(1, Ordering::SeqCst);
                });
                response
            })
        })
        .start();
    let mut stream = connect_small_buffers(server.addr());
    send(&mut stream, &get_req("/big-stream"));
    thread::sleep(Duration::from_millis(800));
    let before_reading = accepted.load(Ordering::SeqCst);
    // The server holds its buffer, the kernel's send buffer and the client's receive buffer:
    // far less than the 10 MiB the producer would like to send.
    assert!(
        before_reading < 2 * 1024 * 1024,
        "the producer ran ahead of a client that read nothing: {before_reading} bytes"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.body.len(), PIECE * PIECES);
    assert!(
        resp.body
            .chunks(PIECE)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == (i % 251) as u8))
    );
});

both_models!(a_vanished_client_makes_the_sender_fail, |model| {
    let (report, outcome) = mpsc::channel();
    let report = Arc::new(Mutex::new(report));
    let server = TestServer::builder(model)
        .routes(move |server| {
            server.get("/endless", move |_| {
                let (response, sender) = Response::stream("text/plain");
                let report = report.lock().unwrap().clone();
                thread::spawn(move || {
                    let started = Instant::now();
                    loop {
                        if sender.send("tick\n").is_err() {
                            let _ = report.send(Ok(()));
                            return;
                        }
                        if started.elapsed() > Duration::from_secs(15) {
                            let _ = report.send(Err("the sender never learned"));
                            return;
                        }
                        thread::sleep(Duration::from_millis(20));
                    }
                });
                response
            })
        })
        .start();
    let mut stream = server.connect();
    send(&mut stream, &get_req("/endless"));
    read_head_text(&mut stream);
    drop(stream);
    let result = outcome
        .recv_timeout(Duration::from_secs(20))
        .expect("the producer reports");
    assert_eq!(result, Ok(()));
});

both_models!(the_event_stream_sends_the_counters, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(&mut stream, &get_req("/api/events"));
    let head = read_head_text(&mut stream).to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    for _ in 0..2 {
        let event = String::from_utf8(read_chunk(&mut stream)).unwrap();
        let json = event
            .strip_prefix("data: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("not one server-sent event: {event:?}"));
        let report: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(report["requests"].is_u64(), "{report}");
    }
});

// ---------------------------------------------------------------------------------------------
// Routes, results and state.

struct Counter(AtomicUsize);

fn api_server(model: Model) -> TestServer {
    TestServer::builder(model)
        .routes(|server| {
            server
                .state(Counter(AtomicUsize::new(0)))
                .get("/items/{id}", |request: &Request| -> margay::Result {
                    let id: u64 = request.param_as("id")?;
                    if id == 0 {
                        return Err(Error::not_found("no item 0"));
                    }
                    Ok(Response::text(format!("item {id}")))
                })
                .put("/items/{id}", |request: &Request| {
                    Response::text(format!("put {}", request.param("id").unwrap_or("?")))
                })
                .post("/count", |request: &Request| -> margay::Result {
                    let counter = request.state::<Counter>()?;
                    let n = counter.0.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok(Response::text(n.to_string()))
                })
                .get("/missing-state", |request: &Request| -> margay::Result {
                    request.state::<String>()?;
                    Ok(Response::ok())
                })
                .post("/json", |request: &Request| -> margay::Result {
                    let value: serde_json::Value = request.json()?;
                    Ok(Response::json(&value))
                })
        })
        .start()
}

fn post(target: &str, body: &str) -> Vec<u8> {
    let mut raw = request(
        "POST",
        target,
        &[("Content-Length", &body.len().to_string())],
    );
    raw.extend_from_slice(body.as_bytes());
    raw
}

both_models!(routes_with_parameters_results_and_state, |model| {
    let server = api_server(model);
    assert_eq!(server.get("/items/42").text(), "item 42");
    let bad = server.get("/items/abc");
    assert_eq!(bad.status, 400);
    let message: serde_json::Value = serde_json::from_slice(&bad.body).unwrap();
    assert!(
        message["error"].as_str().unwrap().contains("`id`"),
        "{message}"
    );
    let missing = server.get("/items/0");
    assert_eq!(missing.status, 404);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&missing.body).unwrap()["error"],
        "no item 0"
    );
    assert_eq!(
        server
            .exchange(
                &request("PUT", "/items/7", &[("Content-Length", "0")]),
                false
            )
            .text(),
        "put 7"
    );
    // The path exists for other methods: 405 naming them.
    let wrong = server.exchange(&request("DELETE", "/items/7", &[]), false);
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD, PUT"));
    // One state for every request, no clone per route.
    for n in 1..=3 {
        assert_eq!(
            server.exchange(&post("/count", ""), false).text(),
            n.to_string()
        );
    }
    // A server error's details are logged, not shown.
    let unregistered = server.get("/missing-state");
    assert_eq!(unregistered.status, 500);
    assert!(
        !unregistered.text().contains("String"),
        "{}",
        unregistered.text()
    );
    // Bad JSON: 400 with a JSON message.
    let bad_json = server.exchange(&post("/json", "{not json"), false);
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.header("content-type"), Some("application/json"));
    assert!(bad_json.text().contains("JSON body"), "{}", bad_json.text());
});

// ---------------------------------------------------------------------------------------------
// A response no input can split.

both_models!(
    a_query_parameter_copied_into_a_header_cannot_add_one,
    |model| {
        let server = TestServer::builder(model)
            .routes(|server| {
                server
                    .get("/copy", |request: &Request| {
                        let next = request.query("next").unwrap_or("/").to_string();
                        Response::ok().header("X-Next", next)
                    })
                    .get("/redirect", |request: &Request| {
                        let next = request.query("next").unwrap_or("/").to_string();
                        Response::redirect(StatusCode::FOUND, next)
                    })
                    .get("/careful", |request: &Request| -> margay::Result {
                        let next = request.query("next").unwrap_or("/").to_string();
                        Response::try_redirect(StatusCode::FOUND, next)
                            .map_err(|_| Error::bad_request("bad next"))
                    })
            })
            .start();
        let injection = "%0d%0aSet-Cookie:%20x=1";
        for (path, status) in [("/copy", 500), ("/redirect", 500), ("/careful", 400)] {
            let mut stream = server.connect();
            send(&mut stream, &get_req(&format!("{path}?next={injection}")));
            let head = read_head_text(&mut stream);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status} ")),
                "{path}: {head}"
            );
            assert!(
                !head.to_ascii_lowercase().contains("set-cookie"),
                "{path}: a header was injected: {head}"
            );
        }
        // A harmless value goes through.
        let fine = server.get("/copy?next=%2Fhome");
        assert_eq!(fine.header("x-next"), Some("/home"));
    }
);

#[test]
fn a_handler_cannot_write_a_field_the_server_owns() {
    for name in ["Content-Length", "Transfer-Encoding", "Connection", "Date"] {
        let result = Response::text("x").try_header(name, "1");
        assert!(result.is_err(), "{name} accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// Safer defaults.

#[test]
fn the_library_leaves_the_builtin_endpoints_off() {
    let root = tempfile::tempdir().unwrap();
    let config = margay::Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .root(root.path())
        .access_log(margay::AccessLog::Off);
    let running = margay::Server::new(config).unwrap().spawn().unwrap();
    for path in ["/api/status", "/api/events"] {
        let mut stream = connect(running.addr());
        send(&mut stream, &get_req(path));
        assert_eq!(read_response(&mut stream, false).status, 404, "{path}");
    }
}

both_models!(the_echo_withholds_credentials, |model| {
    let server = TestServer::start(model);
    let mut raw = request(
        "POST",
        "/api/echo",
        &[
            ("Authorization", "Basic c2VjcmV0OnBhc3M="),
            ("Cookie", "session=s3cr3t"),
            ("X-Other", "visible"),
            ("Content-Length", "0"),
        ],
    );
    raw.extend_from_slice(b"");
    let resp = server.exchange(&raw, false);
    let text = resp.text();
    assert!(
        !text.contains("c2VjcmV0OnBhc3M=") && !text.contains("s3cr3t"),
        "{text}"
    );
    assert!(text.contains("visible"), "{text}");
});

// ---------------------------------------------------------------------------------------------

/// Reads a response head (through the blank line) as text.
fn read_head_text(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "reading a head: {other:?} after {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8(head).unwrap()
}

/// Reads one chunk of a chunked body: its data (empty for the last chunk).
fn read_chunk(stream: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).expect("a chunk-size line");
        line.push(byte[0]);
    }
    let size = usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).unwrap(), 16)
        .expect("a hex chunk size");
    let mut data = vec![0u8; size];
    stream.read_exact(&mut data).unwrap();
    if size > 0 {
        let mut crlf = [0u8; 2];
        stream.read_exact(&mut crlf).unwrap();
        assert_eq!(&crlf, b"\r\n");
    }
    data
}
