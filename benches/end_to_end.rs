//! Measures whole requests over loopback against the real server, for both concurrency
//! models: keep-alive round trips, pipelined batches, and many concurrent clients.
//!
//! Clients and server share the machine, so these numbers include the client's own system
//! calls; compare the models with each other and with earlier runs, not with other servers.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use margay::{AccessLog, Config, Model, RunningServer, Server};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// What `wrk` sends for each request.
const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Requests written at once in the pipelined benchmark.
const PIPELINE_DEPTH: usize = 16;

/// Concurrent client counts measured.
const CLIENT_COUNTS: [usize; 2] = [8, 64];

/// Requests each concurrent client makes per iteration.
const REQUESTS_PER_CLIENT: usize = 32;

/// The status line every response must start with.
const OK_LINE: &[u8] = b"HTTP/1.1 200 OK\r\n";

/// A client gives up on a silent server after this, rather than hanging the run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server over a temporary document root, and the exact length of its answer to
/// [`REQUEST`].
struct Fixture {
    name: &'static str,
    server: RunningServer,
    addr: SocketAddr,
    response_len: usize,
    _root: tempfile::TempDir,
}

impl Fixture {
    fn start(model: Model, name: &'static str) -> Fixture {
        let root = tempfile::tempdir().expect("temp dir");
        let mut page = String::from("<!DOCTYPE html>\n<html><head><title>bench</title></head>\n");
        while page.len() < 1000 {
            page.push_str("<p>margay serves many clients from one thread.</p>\n");
        }
        page.push_str("</html>\n");
        fs::write(root.path().join("index.html"), page).expect("write index.html");
        let config = Config::default()
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .root(root.path())
            .model(model)
            .access_log(AccessLog::Off);
        let server = Server::new(config)
            .and_then(Server::spawn)
            .expect("server starts");
        let addr = server.addr();
        // Every answer has the same length (the `Date` value is fixed-width), so one
        // measured response frames all the others.
        let mut probe = Fixture::open(addr);
        let response_len = read_one_response(&mut probe);
        let fixture = Fixture {
            name,
            server,
            addr,
            response_len,
            _root: root,
        };
        assert_eq!(
            read_one_response(&mut fixture.connect().stream),
            response_len,
            "{name}: cached answer has the same length"
        );
        fixture
    }

    fn open(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
            .set_read_timeout(Some(CLIENT_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(CLIENT_TIMEOUT))
            .expect("write timeout");
        stream
    }

    /// A keep-alive connection that has already been answered once.
    fn connect(&self) -> Client {
        let mut client = Client {
            stream: Fixture::open(self.addr),
            response_len: self.response_len,
            buf: vec![0; self.response_len * PIPELINE_DEPTH],
        };
        client.round_trip();
        client
    }

    fn stop(self) {
        self.server.shutdown().expect("server shuts down cleanly");
    }
}

/// Sends [`REQUEST`] and reads one response by its `Content-Length`; returns its length.
fn read_one_response(stream: &mut TcpStream) -> usize {
    stream.write_all(REQUEST).expect("send request");
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).expect("read response head");
        assert!(n > 0, "server closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_len]).expect("ASCII head");
    assert!(head.as_bytes().starts_with(OK_LINE), "not 200: {head}");
    let body_len: usize = head
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("numeric Content-Length"))
        })
        .expect("Content-Length");
    let total = head_len + body_len;
    while buf.len() < total {
        let n = stream.read(&mut chunk).expect("read response body");
        assert!(n > 0, "server closed before the response body");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(buf.len(), total, "nothing after the response");
    total
}

/// One keep-alive connection that knows how long each response is.
struct Client {
    stream: TcpStream,
    response_len: usize,
    buf: Vec<u8>,
}

impl Client {
    /// One request, one response.
    fn round_trip(&mut self) {
        self.exchange(REQUEST, 1);
    }

    /// Writes `requests` (holding `count` requests) at once, then reads all `count` answers.
    fn exchange(&mut self, requests: &[u8], count: usize) {
        self.stream.write_all(requests).expect("send requests");
        let want = &mut self.buf[..self.response_len * count];
        self.stream.read_exact(want).expect("read responses");
        // A response of another length would shift every later one off its status line.
        for response in want.chunks_exact(self.response_len) {
            assert!(response.starts_with(OK_LINE), "responses out of step");
        }
    }
}

fn bench_round_trip(c: &mut Criterion, fixtures: &[Fixture]) {
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    for fixture in fixtures {
        let mut client = fixture.connect();
        group.bench_function(fixture.name, |b| b.iter(|| client.round_trip()));
    }
    group.finish();
}

fn bench_pipelined(c: &mut Criterion, fixtures: &[Fixture]) {
    let batch = REQUEST.repeat(PIPELINE_DEPTH);
    let mut group = c.benchmark_group("pipelined_16");
    group.throughput(Throughput::Elements(PIPELINE_DEPTH as u64));
    for fixture in fixtures {
        let mut client = fixture.connect();
        group.bench_function(fixture.name, |b| {
            b.iter(|| client.exchange(&batch, PIPELINE_DEPTH))
        });
    }
    group.finish();
}

/// Runs `clients` keep-alive clients, each on its own thread, through `iters` rounds of
/// [`REQUESTS_PER_CLIENT`] requests; times from the common start until the last finishes.
fn run_clients(fixture: &Fixture, clients: usize, iters: u64) -> Duration {
    let requests = iters as usize * REQUESTS_PER_CLIENT;
    let start = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            // Connected and answered once before the clock starts.
            let mut client = fixture.connect();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                for _ in 0..requests {
                    client.round_trip();
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for thread in threads {
        thread.join().expect("client thread");
    }
    began.elapsed()
}

fn bench_concurrent(c: &mut Criterion, fixtures: &[Fixture]) {
    let mut group = c.benchmark_group("concurrent_clients");
    // Each iteration takes milliseconds: the same iteration count in every sample.
    group.sampling_mode(SamplingMode::Flat);
    for clients in CLIENT_COUNTS {
        group.throughput(Throughput::Elements((clients * REQUESTS_PER_CLIENT) as u64));
        for fixture in fixtures {
            group.bench_function(BenchmarkId::new(fixture.name, clients), |b| {
                b.iter_custom(|iters| run_clients(fixture, clients, iters))
            });
        }
    }
    group.finish();
}

fn end_to_end(c: &mut Criterion) {
    let fixtures = [
        Fixture::start(Model::Reactor, "reactor"),
        Fixture::start(Model::Threads, "threads"),
    ];
    bench_round_trip(c, &fixtures);
    bench_pipelined(c, &fixtures);
    bench_concurrent(c, &fixtures);
    for fixture in fixtures {
        fixture.stop();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = end_to_end
}
criterion_main!(benches);
