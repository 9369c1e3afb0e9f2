//! Fuzzes one connection's core: arbitrary client bytes, cut into arbitrary pieces, reach a
//! `Connection` through the same `pump` the event loop and the thread model use, over an
//! in-memory transport, and what the server would put on the wire is checked.
//!
//! Input layout: byte 0 holds flags (bits 0-2: how many split points follow; bit 3: end the
//! conversation with the header timeout instead of the client closing; bit 4: the server is
//! draining for shutdown; bit 5: small limits, at most 3 requests per connection; bits 6-7:
//! plant a request inside a body, see [`planted_stream`]). Then two bytes (little-endian) per
//! split point, then the bytes the client sends.
//!
//! Checked for every input:
//! - nothing panics, and the session always finishes;
//! - the output is a sequence of complete, well-formed responses, one per access-log line,
//!   each body exactly as long as its `Content-Length` says, nothing after `Connection: close`;
//! - nothing outside the document root or hidden in it is ever sent;
//! - splitting the input never changes the outcome: the bytes and log lines produced for the
//!   split input equal those for the same bytes in one piece;
//! - framing: each response goes out as soon as the byte that completes its request arrives,
//!   and that byte (so where the next request begins) is the same however the input is split;
//! - a request planted inside a body is never answered.

#![no_main]

#[path = "../../tests/reference/mod.rs"]
mod reference;

use libfuzzer_sys::fuzz_target;
use margay::AccessLogFormat;
use margay::internals::TrustedProxies;
use margay::internals::{
    Connection, Execution, Input, Limits, ListenerKind, MAX_CHUNK_LINE, MAX_TRAILERS, Router,
    Site, StateMap, StaticFiles, Stats, Step, Ticket, Timeouts, Transport, Worker, expire, pump,
};
use margay::{Method, Request, Response};
use reference::abnf;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// In a file outside the root (reachable only through a symlink) and in a dotfile inside it:
/// no response may ever contain it unless the client sent it.
const SECRET: &[u8] = b"FUZZ-SECRET-3b9d41f0";

fuzz_target!(|data: &[u8]| run(data));

/// The document root and the two sites, built once per process.
struct World {
    files: StaticFiles,
    plain: Arc<Site>,
    strict: Arc<Site>,
    _root: PathBuf,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        log::set_logger(&ACCESS_LOG).expect("install the access-log capture");
        log::set_max_level(log::LevelFilter::Info);
        let dir = tempfile::Builder::new()
            .prefix("margay-fuzz-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let root = dir.join("root");
        make_root(&dir, &root).expect("build the document root");
        let files = StaticFiles::new(&root).expect("document root");
        World {
            files,
            plain: site(Limits::default(), 0, 1024),
            strict: site(
                Limits {
                    max_head: 1024,
                    max_headers: 8,
                    max_target: 128,
                },
                3,
                64,
            ),
            _root: root,
        }
    })
}

fn make_root(dir: &std::path::Path, root: &std::path::Path) -> io::Result<()> {
    use std::fs;
    fs::create_dir(root)?;
    fs::write(
        root.join("index.html"),
        "<!DOCTYPE html><title>fuzz</title>\n",
    )?;
    fs::write(root.join("style.css"), "body { color: #333 }\n")?;
    fs::write(root.join("data.json"), "{\"a\":[1,2,3]}\n")?;
    fs::write(root.join("empty.txt"), "")?;
    // Larger than the in-memory cache takes, so it is sent from the file.
    let big: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    fs::write(root.join("big.txt"), big)?;
    fs::create_dir(root.join("sub"))?;
    fs::write(root.join("sub/index.html"), "sub index\n")?;
    fs::create_dir(root.join("noindex"))?;
    fs::write(root.join("noindex/a.txt"), "a\n")?;
    fs::write(root.join(".secret"), SECRET)?;
    fs::write(dir.join("outside.txt"), SECRET)?;
    std::os::unix::fs::symlink(dir.join("outside.txt"), root.join("link-out"))?;
    std::os::unix::fs::symlink(dir, root.join("link-dir"))?;
    Ok(())
}

fn site(limits: Limits, max_requests: u64, max_body_size: u64) -> Arc<Site> {
    let mut router = Router::default();
    let on_loop = Execution::OnLoop;
    router.add(
        Method::Post,
        "/echo",
        Arc::new(|request: &Request| {
            Ok(Response::bytes(
                "application/octet-stream",
                request.body().to_vec(),
            ))
        }),
        on_loop,
    );
    router.add(
        Method::Get,
        "/hello",
        Arc::new(|request: &Request| {
            Ok(Response::text(format!(
                "hello {}",
                request.query("name").unwrap_or("world")
            )))
        }),
        on_loop,
    );
    router.add(
        Method::Get,
        "/items/{id}",
        Arc::new(|request: &Request| {
            let id: u64 = request.param_as("id")?;
            Ok(Response::text(format!("item {id}")))
        }),
        on_loop,
    );
    // A blocking route: the fuzzed worker has no pool, so it runs inline as in the thread
    // model.
    router.add(
        Method::Get,
        "/slow",
        Arc::new(|_: &Request| Ok(Response::text("slow"))),
        Execution::Blocking,
    );
    router.prefix(
        Method::Get,
        "/api/",
        Arc::new(|request: &Request| {
            Ok(Response::text(format!("{:?}", request.query_pairs())))
        }),
        on_loop,
    );
    Arc::new(Site {
        router,
        limits,
        max_body_size,
        max_requests_per_connection: max_requests,
        access_log: true,
        timeouts: Timeouts::default(),
        stats: Arc::new(Stats::new(1)),
        tls: None,
        redirect_https: None,
        admin_listener: false,
        // The Combined format carries no duration: split and whole inputs log the same lines.
        access_log_format: AccessLogFormat::Combined,
        trusted_proxies: TrustedProxies::default(),
        state: Arc::new(StateMap::default()),
        pool: None,
        upstreams: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Access-log capture: one line per response, in order, tells the checker each response's
// status and body length.

struct AccessLog;
static ACCESS_LOG: AccessLog = AccessLog;

thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl log::Log for AccessLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == "margay::access"
    }

    fn log(&self, record: &log::Record) {
        if record.target() == "margay::access" {
            LINES.with(|lines| lines.borrow_mut().push(record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

/// An access-log line's request line, status and body length.
struct Logged {
    request_line: String,
    status: u16,
    body_len: usize,
}

fn parse_access_line(line: &str) -> Logged {
    // `IP - - [TIME] "REQUEST LINE" STATUS BYTES "REFERER" "USER-AGENT"`, quotes escaped.
    let start = line.find("] \"").expect("access line has a request") + 3;
    let mut end = start;
    let bytes = line.as_bytes();
    while bytes[end] != b'"' {
        end += if bytes[end] == b'\\' { 2 } else { 1 };
    }
    let mut rest = line[end + 2..].split(' ');
    let status = rest.next().and_then(|s| s.parse().ok()).expect("status");
    let body_len = rest.next().and_then(|s| s.parse().ok()).expect("bytes");
    Logged {
        request_line: line[start..end].to_string(),
        status,
        body_len,
    }
}

// ---------------------------------------------------------------------------------------------
// Driving a connection the way the event loop does, with a scripted client.

/// An in-memory transport: the client's bytes arrive piece by piece (each piece ends in "would
/// block"), and everything the server writes or sends from a file lands in `wire`.
struct Script<'a> {
    pieces: Vec<&'a [u8]>,
    index: usize,
    pos: usize,
    closed: bool,
    wire: Vec<u8>,
    shut: bool,
    trace: Trace,
}

impl Script<'_> {
    fn exhausted(&self) -> bool {
        self.index >= self.pieces.len()
    }
}

impl Transport for Script<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(piece) = self.pieces.get(self.index) else {
            return if self.closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        };
        if self.pos < piece.len() && !buf.is_empty() {
            let n = buf.len().min(piece.len() - self.pos);
            buf[..n].copy_from_slice(&piece[self.pos..self.pos + n]);
            self.pos += n;
            self.trace.read(n);
            return Ok(n);
        }
        self.index += 1;
        self.pos = 0;
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn write(&mut self, bufs: &[IoSlice<'_>], _more: bool) -> io::Result<usize> {
        assert!(!self.shut, "a write after our side was shut");
        self.trace.write(self.wire.len());
        let mut n = 0;
        for buf in bufs {
            self.wire.extend_from_slice(buf);
            n += buf.len();
        }
        Ok(n)
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        assert!(!self.shut, "a file sent after our side was shut");
        self.trace.write(self.wire.len());
        let mut buf = vec![0; len];
        let n = file.read_at(&mut buf, offset)?;
        self.wire.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closes its side after sending everything.
    Close,
    /// The client goes quiet; the header timeout fires.
    Timeout,
}

/// What the server did for one conversation.
#[derive(PartialEq, Eq)]
struct Outcome {
    wire: Vec<u8>,
    log: Vec<String>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("wire", &String::from_utf8_lossy(&self.wire))
            .field("log", &self.log)
            .finish()
    }
}

fn converse(worker: &mut Worker, pieces: Vec<&[u8]>, ending: Ending) -> (Outcome, Trace) {
    LINES.with(|lines| lines.borrow_mut().clear());
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let now = Instant::now();
    let ticket = Ticket { key: 0, id: 0 };
    let mut conn = Connection::open(peer, ListenerKind::Plain, ticket, now, worker.stats());
    let mut io = Script {
        pieces,
        index: 0,
        pos: 0,
        closed: false,
        wire: Vec::new(),
        shut: false,
        trace: Trace::default(),
    };
    let mut turns = 0u64;
    loop {
        turns += 1;
        assert!(turns < 10_000_000, "the connection makes no progress");
        match pump(&mut conn, &mut io, worker, now, Input::Ready) {
            Step::Close => break,
            Step::Yield => {}
            Step::Continue if !io.exhausted() => {}
            Step::Continue => match ending {
                Ending::Close if !io.closed => io.closed = true,
                Ending::Close => panic!("the connection waits after the client closed"),
                Ending::Timeout => {
                    let late = now + Duration::from_secs(3600);
                    assert_eq!(expire(&mut conn, &mut io, worker, late), Step::Close);
                    break;
                }
            },
        }
    }
    conn.close(worker);
    let log = LINES.with(|lines| std::mem::take(&mut *lines.borrow_mut()));
    (Outcome { wire: io.wire, log }, io.trace)
}

// ---------------------------------------------------------------------------------------------
// Checking what went on the wire.

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Header fields margay generates; anything else would have come from the request.
const KNOWN_FIELDS: &[&str] = &[
    "date",
    "server",
    "content-length",
    "connection",
    "content-type",
    "last-modified",
    "etag",
    "accept-ranges",
    "content-range",
    "location",
    "allow",
    "cache-control",
    "vary",
];

/// Checks the responses on the wire and returns where each (but `100 Continue`) begins.
fn check_wire(outcome: &Outcome) -> Vec<usize> {
    let wire = &outcome.wire;
    let logged: Vec<Logged> = outcome.log.iter().map(|l| parse_access_line(l)).collect();
    let mut starts = Vec::new();
    let mut pos = 0;
    let mut next_log = 0;
    let mut closed = false;
    while pos < wire.len() {
        assert!(!closed, "bytes after a `Connection: close` response");
        let start = pos;
        let head_len = find(&wire[pos..], b"\r\n\r\n")
            .unwrap_or_else(|| panic!("incomplete response head at byte {pos}"));
        let head = std::str::from_utf8(&wire[pos..pos + head_len]).expect("head is UTF-8");
        pos += head_len + 4;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = parse_status_line(status_line);
        if status == 100 {
            assert_eq!(status_line, "HTTP/1.1 100 Continue");
            assert!(lines.next().is_none(), "100 Continue carries no fields");
            continue;
        }
        starts.push(start);
        let mut fields: Vec<(String, &str)> = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("field line without a colon: {line:?}"));
            assert!(
                !name.is_empty() && name.bytes().all(is_tchar),
                "bad field name {name:?}"
            );
            assert!(
                value
                    .bytes()
                    .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
                "control byte in field value {value:?}"
            );
            let name = name.to_ascii_lowercase();
            assert!(
                KNOWN_FIELDS.contains(&name.as_str()),
                "unexpected response field {name:?} (injected from the request?)"
            );
            fields.push((name, value.trim()));
        }
        let named = |n: &'static str| fields.iter().filter(move |(f, _)| f == n).map(|(_, v)| *v);
        assert_eq!(named("date").count(), 1, "exactly one Date: {head}");
        assert!(
            named("connection").count() <= 1,
            "one Connection at most: {head}"
        );
        for location in named("location") {
            assert!(
                location.starts_with('/')
                    && !location.starts_with("//")
                    && !location.starts_with("/\\"),
                "Location must stay on this host: {location:?}"
            );
        }
        let lengths: Vec<&str> = named("content-length").collect();
        if status == 204 || status == 304 {
            assert!(lengths.is_empty(), "{status} with Content-Length: {head}");
        } else {
            assert_eq!(lengths.len(), 1, "exactly one Content-Length: {head}");
        }
        let entry = logged
            .get(next_log)
            .unwrap_or_else(|| panic!("a response on the wire without an access-log line: {head}"));
        next_log += 1;
        assert_eq!(entry.status, status, "the wire and the access log disagree");
        let is_head = entry.request_line.starts_with("HEAD ");
        if is_head {
            assert_eq!(entry.body_len, 0, "a body logged for HEAD");
        } else if let Some(length) = lengths.first() {
            let length: usize = length.parse().expect("Content-Length is a number");
            assert_eq!(
                entry.body_len, length,
                "body length logged vs Content-Length"
            );
        }
        pos += entry.body_len;
        assert!(pos <= wire.len(), "response body cut short: {head}");
        if named("connection").any(|v| v.eq_ignore_ascii_case("close")) {
            closed = true;
        }
    }
    assert_eq!(
        next_log,
        logged.len(),
        "access-log lines for responses that never went out"
    );
    starts
}

fn parse_status_line(line: &str) -> u16 {
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let (code, reason) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("status line without a reason {line:?}"));
    assert!(
        code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
        "bad status code in {line:?}"
    );
    assert!(
        !reason.is_empty() && reason.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
        "bad reason phrase in {line:?}"
    );
    code.parse().unwrap()
}

/// Multipart boundaries are random per response: replace each with zeros of its length.
fn normalise_boundaries(wire: &mut [u8]) {
    const MARK: &[u8] = b"multipart/byteranges; boundary=";
    let mut from = 0;
    while let Some(at) = find(&wire[from..], MARK) {
        let start = from + at + MARK.len();
        let end = start
            + wire[start..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
        let boundary = wire[start..end].to_vec();
        from = end;
        if boundary.is_empty() {
            continue;
        }
        let mut i = 0;
        while let Some(at) = find(&wire[i..], &boundary) {
            wire[i + at..i + at + boundary.len()].fill(b'0');
            i += at + boundary.len();
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let splits = usize::from(flags & 7);
    let (points, sent) = if rest.len() >= splits * 2 {
        rest.split_at(splits * 2)
    } else {
        (&rest[..0], rest)
    };
    let ending = if flags & 8 != 0 {
        Ending::Timeout
    } else {
        Ending::Close
    };
    let world = world();
    let site = if flags & 32 != 0 {
        &world.strict
    } else {
        &world.plain
    };
    let mut worker = Worker::new(site.clone(), 0, world.files.clone());
    if flags & 16 != 0 {
        worker.drain();
    }
    let planted = planted_stream(flags >> 6, sent);
    let sent = match &planted {
        Some(planted) => &planted.stream[..],
        None if flags >> 6 != 0 => return,
        None => sent,
    };

    let mut cuts: Vec<usize> = points
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (sent.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for cut in cuts {
        pieces.push(&sent[last..cut]);
        last = cut;
    }
    pieces.push(&sent[last..]);

    let (mut whole, whole_trace) = converse(&mut worker, vec![sent], ending);
    let whole_starts = check_wire(&whole);
    let (mut split, split_trace) = converse(&mut worker, pieces, ending);
    let split_starts = check_wire(&split);

    if find(sent, SECRET).is_none() {
        assert!(
            find(&whole.wire, SECRET).is_none(),
            "a hidden or outside file was served"
        );
    }
    if let Some(planted) = &planted {
        check_planted(planted, &whole);
    }
    if sent.len() <= BYTEWISE_MAX {
        let bytewise: Vec<&[u8]> = sent.chunks(1).collect();
        let (one_by_one, trace) = converse(&mut worker, bytewise, ending);
        let completed = trace.answered_at(&check_wire(&one_by_one));
        check_answered_at(&completed, &whole_trace, &whole_starts, "in one piece");
        check_answered_at(&completed, &split_trace, &split_starts, "split");
    }
    normalise_boundaries(&mut whole.wire);
    normalise_boundaries(&mut split.wire);
    assert_eq!(whole, split, "splitting the input changed the outcome");
}

// ---------------------------------------------------------------------------------------------
// Framing invariants: where requests end, and bodies that hide requests.

/// Inputs up to this long are also fed one byte at a time, to find the byte that completes
/// each request.
const BYTEWISE_MAX: usize = 2048;

/// What the client side of a conversation saw happen, in client bytes read.
#[derive(Debug, Default)]
struct Trace {
    /// Client bytes margay has read so far.
    delivered: usize,
    /// Where each read ended, in client bytes.
    read_ends: Vec<usize>,
    /// Each write: where on the wire it began, and the client bytes read by then.
    writes: Vec<(usize, usize)>,
}

impl Trace {
    fn read(&mut self, n: usize) {
        self.delivered += n;
        self.read_ends.push(self.delivered);
    }

    fn write(&mut self, wire_at: usize) {
        self.writes.push((wire_at, self.delivered));
    }

    /// For each response beginning at one of `starts` on the wire: how many client bytes had
    /// been read when it was written.
    fn answered_at(&self, starts: &[usize]) -> Vec<usize> {
        starts
            .iter()
            .map(|&start| {
                let write = self.writes.iter().rev().find(|(at, _)| *at <= start);
                write.expect("a response without a write").1
            })
            .collect()
    }
}

/// Framing is the same however the input is split: fed one byte at a time, response `i` went
/// out when byte `completed[i]` had just arrived (the byte that completes its request, so where
/// the next begins); fed in any other pieces, it must go out after the read that brings that
/// byte, before any later read.
fn check_answered_at(completed: &[usize], trace: &Trace, starts: &[usize], how: &str) {
    let answered = trace.answered_at(starts);
    assert_eq!(
        answered.len(),
        completed.len(),
        "a different number of responses {how}"
    );
    for (i, (&done, &at)) in completed.iter().zip(&answered).enumerate() {
        let read_end = trace
            .read_ends
            .iter()
            .copied()
            .find(|&end| end >= done)
            .unwrap_or(0);
        assert_eq!(
            at, read_end,
            "response {i} went out after {at} bytes {how}, but its request is complete at byte \
             {done} (read up to {read_end})"
        );
    }
}

/// The request hidden in bodies: it must never be answered.
const PLANTED: &[u8] = b"GET /planted-5c1e HTTP/1.1\r\nHost: a\r\n\r\n";
const PLANTED_LINE: &str = "GET /planted-5c1e HTTP/1.1";
const PLANTED_PATH: &str = "/planted-5c1e";

/// A stream with [`PLANTED`] inside a body, and whether it certainly is inside.
struct Planted {
    stream: Vec<u8>,
    /// False when the fuzzer's bytes end the body before the planted request (then it is a
    /// request of its own). A body that ends inside it leaves a tail that may be answered as
    /// a request, but never with the planted request line.
    inside_body: bool,
}

/// Builds a stream that plants [`PLANTED`] in the body of a `POST /echo`, the fuzzer's bytes
/// standing for one part of the framing (`mode`, flag bits 6-7):
/// 1. the chunked body up to the planted request, which a last chunk follows (the reference
///    tells whether the body ends before the planted request or not);
/// 2. the `Content-Length` value;
/// 3. the `Transfer-Encoding` value, the body a chunk holding the planted request.
///
/// `None` (the input is skipped) when the fuzzer's bytes hold the planted path, or a CR or LF
/// in a field value (they would add fields the check does not model).
fn planted_stream(mode: u8, fuzz: &[u8]) -> Option<Planted> {
    if mode == 0 || find(fuzz, PLANTED_PATH.as_bytes()).is_some() {
        return None;
    }
    let size = format!("{:x}", PLANTED.len());
    let head = |field: &str| format!("POST /echo HTTP/1.1\r\nHost: a\r\n{field}: ").into_bytes();
    let in_field = !fuzz.contains(&b'\r') && !fuzz.contains(&b'\n');
    let limits = abnf::ChunkedLimits {
        max_line: MAX_CHUNK_LINE,
        max_size_digits: 15,
        max_trailers: MAX_TRAILERS,
    };
    Some(match mode {
        1 => {
            let body = [fuzz, PLANTED, b"\r\n0\r\n\r\n"].concat();
            let planted_at = fuzz.len();
            let inside_body = match abnf::chunked_body(&body, limits) {
                abnf::Chunked::Complete { used, .. } => used > planted_at,
                abnf::Chunked::Incomplete | abnf::Chunked::Invalid => true,
            };
            let stream = [&head("Transfer-Encoding")[..], b"chunked\r\n\r\n", &body].concat();
            Planted {
                stream,
                inside_body,
            }
        }
        2 if in_field => {
            let length = abnf::field_value_of(fuzz).and_then(abnf::content_length);
            // Refused, or a body of at least one byte: the planted request starts inside it.
            let inside_body =
                length.is_none_or(|numbers| !abnf::significant(numbers[0]).is_empty());
            let stream = [&head("Content-Length")[..], fuzz, b"\r\n\r\n", PLANTED].concat();
            Planted {
                stream,
                inside_body,
            }
        }
        3 if in_field => {
            // Chunked, or refused: either way the planted request is no request.
            let body = [size.as_bytes(), b"\r\n", PLANTED, b"\r\n0\r\n\r\n"].concat();
            let stream = [&head("Transfer-Encoding")[..], fuzz, b"\r\n\r\n", &body].concat();
            Planted {
                stream,
                inside_body: true,
            }
        }
        _ => return None,
    })
}

/// A request inside a body is never answered.
fn check_planted(planted: &Planted, outcome: &Outcome) {
    if !planted.inside_body {
        return;
    }
    for line in &outcome.log {
        assert_ne!(
            parse_access_line(line).request_line,
            PLANTED_LINE,
            "a request inside a body was answered"
        );
    }
}
