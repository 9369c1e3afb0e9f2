//! Shared fixture for the integration tests: a real margay server on `127.0.0.1:0` over a
//! temporary document root with known files, and a small raw-socket HTTP/1.1 client that
//! parses every response byte itself.

#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use margay::Model;
use tempfile::TempDir;

/// How long any single read or write on a test socket may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a test body once per concurrency model: `both_models!(name, |model| { ... })` expands to
/// `mod name { #[test] fn reactor() {..} #[test] fn threads() {..} }`. Exported so a test file
/// can use it with either `#[macro_use] mod common;` or a plain `mod common;`.
#[macro_export]
macro_rules! both_models {
    ($name:ident, |$model:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_variables)]
            fn run($model: margay::Model) $body

            #[test]
            fn reactor() {
                run(margay::Model::Reactor)
            }

            #[test]
            fn threads() {
                run(margay::Model::Threads)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Known content of the document root.

pub const INDEX_HTML: &str = "<!DOCTYPE html>\n<html><head><title>root index</title></head><body>root index page</body></html>\n";
pub const STYLE_CSS: &str = "body { color: #333; background: white; }\n";
pub const APP_JS: &str = "console.log(\"margay test app\");\n";
pub const DATA_JSON: &str = "{\"name\":\"margay\",\"items\":[1,2,3]}\n";
/// The PNG signature followed by the start of an IHDR chunk.
pub const IMG_PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";
pub const SUB_INDEX_HTML: &str = "<!DOCTYPE html>\n<html><body>sub directory index</body></html>\n";
pub const NOINDEX_A_TXT: &str = "file a inside a directory without an index\n";
pub const SECRET: &str = "DOTFILE-SECRET-must-never-be-served\n";
pub const HIDDEN_X_TXT: &str = "HIDDEN-DIR-SECRET-must-never-be-served\n";
pub const WITH_SPACE_TXT: &str = "a file whose name has a space\n";
/// Served only if the server decodes percent-escapes twice would `/%41.txt` find it; its real
/// name contains a literal `%`.
pub const PERCENT_NAME_TXT: &str = "the file literally named %41.txt\n";
pub const RANGES_TXT: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
/// Content of the file that lives outside the document root; no response may ever contain it.
pub const OUTSIDE_SECRET: &str = "OUTSIDE-THE-ROOT-a7f3c9e1-must-never-be-served\n";
/// Name of the file inside the outside directory.
pub const OUTSIDE_FILE: &str = "outside-secret.txt";
/// Size of `big.bin`.
pub const BIG_LEN: usize = 10 * 1024 * 1024;

/// The deterministic pseudo-random content of `big.bin` (xorshift64).
pub fn big_bin() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut out = Vec::with_capacity(BIG_LEN);
        while out.len() < BIG_LEN {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(BIG_LEN);
        out
    })
}

/// Every regular file served from the root, as (URL path, content).
pub fn served_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("/index.html", INDEX_HTML.as_bytes()),
        ("/style.css", STYLE_CSS.as_bytes()),
        ("/app.js", APP_JS.as_bytes()),
        ("/data.json", DATA_JSON.as_bytes()),
        ("/img.png", IMG_PNG),
        ("/sub/index.html", SUB_INDEX_HTML.as_bytes()),
        ("/noindex/a.txt", NOINDEX_A_TXT.as_bytes()),
        ("/with%20space.txt", WITH_SPACE_TXT.as_bytes()),
        ("/ranges.txt", RANGES_TXT.as_bytes()),
        ("/empty.txt", b""),
    ]
}

// ---------------------------------------------------------------------------------------------
// The server fixture.

/// A running server over a fresh temporary document root. Dropping it stops the server and
/// then removes the directories.
pub struct TestServer {
    // Declared first so it is dropped (and the server stopped) before the directories go.
    running: margay::RunningServer,
    addr: SocketAddr,
    root: TempDir,
    outside: TempDir,
}

impl TestServer {
    /// Builds the document root and starts the server with the given concurrency model.
    pub fn start(model: Model) -> TestServer {
        TestServer::start_with(model, |config| config)
    }

    /// Like [`TestServer::start`], with the configuration adjusted by `tune` first.
    pub fn start_with(
        model: Model,
        tune: impl FnOnce(margay::Config) -> margay::Config,
    ) -> TestServer {
        let root = TempDir::new().expect("create temp root");
        let outside = TempDir::new().expect("create temp outside dir");
        populate_root(root.path(), outside.path()).expect("populate root");

        let config = margay::Config::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .root(root.path())
            .model(model)
            .access_log(margay::AccessLog::Off);
        let config = tune(config);
        let running = margay::Server::new(config)
            .expect("Server::new")
            .spawn()
            .expect("Server::spawn");
        let addr = running.addr();
        TestServer {
            running,
            addr,
            root,
            outside,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The document root on disk.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory beside the root that holds [`OUTSIDE_FILE`].
    pub fn outside(&self) -> &Path {
        self.outside.path()
    }

    /// A new client connection with read/write timeouts and Nagle off.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Opens a connection, sends `raw`, and reads one response.
    pub fn exchange(&self, raw: &[u8], head_request: bool) -> Resp {
        let mut stream = self.connect();
        send(&mut stream, raw);
        read_response(&mut stream, head_request)
    }

    /// `GET path` over a fresh HTTP/1.1 connection.
    pub fn get(&self, path: &str) -> Resp {
        self.exchange(&request("GET", path, &[]), false)
    }

    /// `GET path` with extra header fields over a fresh HTTP/1.1 connection.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.exchange(&request("GET", path, headers), false)
    }

    /// `HEAD path` with extra header fields over a fresh HTTP/1.1 connection.
    pub fn head_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.exchange(&request("HEAD", path, headers), true)
    }
}

fn populate_root(root: &Path, outside: &Path) -> io::Result<()> {
    use std::fs;
    use std::os::unix::fs::symlink;

    fs::write(root.join("index.html"), INDEX_HTML)?;
    fs::write(root.join("style.css"), STYLE_CSS)?;
    fs::write(root.join("app.js"), APP_JS)?;
    fs::write(root.join("data.json"), DATA_JSON)?;
    fs::write(root.join("img.png"), IMG_PNG)?;
    fs::write(root.join("big.bin"), big_bin())?;
    fs::write(root.join("ranges.txt"), RANGES_TXT)?;
    fs::write(root.join("with space.txt"), WITH_SPACE_TXT)?;
    fs::write(root.join("%41.txt"), PERCENT_NAME_TXT)?;
    fs::write(root.join("empty.txt"), "")?;
    fs::write(root.join(".secret"), SECRET)?;

    fs::create_dir(root.join("sub"))?;
    fs::write(root.join("sub/index.html"), SUB_INDEX_HTML)?;
    fs::create_dir(root.join("noindex"))?;
    fs::write(root.join("noindex/a.txt"), NOINDEX_A_TXT)?;
    fs::create_dir(root.join(".hidden"))?;
    fs::write(root.join(".hidden/x.txt"), HIDDEN_X_TXT)?;

    let outside_file = outside.join(OUTSIDE_FILE);
    fs::write(&outside_file, OUTSIDE_SECRET)?;
    symlink(&outside_file, root.join("link-out"))?;
    symlink(outside, root.join("link-dir"))?;
    symlink("style.css", root.join("link-in"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The raw client.

/// A new connection to `addr` with read/write timeouts and Nagle off.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to test server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Writes all of `bytes`, panicking on error.
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).expect("write request");
    stream.flush().unwrap();
}

/// Writes as much of `bytes` as the server accepts: for requests the server may refuse and
/// close before reading them whole (431, 414).
pub fn send_lenient(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
}

/// An HTTP/1.1 request with `Host` and the given extra fields, and no body.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// `GET target HTTP/1.1` with `Host` only.
pub fn get_req(target: &str) -> Vec<u8> {
    request("GET", target, &[])
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// `HTTP/1.1` or `HTTP/1.0` as sent on the status line.
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first field called `name`, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field called `name`, case-insensitive.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every member of the comma-separated list fields called `name`, trimmed and lowercased.
    pub fn list_tokens(&self, name: &str) -> Vec<String> {
        self.headers_named(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// The parsed `Content-Length`, if one was sent.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("bad Content-Length in response: {v:?}"))
        })
    }

    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response says the connection will close.
    pub fn says_close(&self) -> bool {
        self.list_tokens("connection").iter().any(|t| t == "close")
    }
}

/// Reads one response. The head is read a byte at a time so bytes of a following pipelined
/// response stay in the socket; the body is read by `Content-Length`, by chunked coding, or
/// until close when neither is present and the status allows a body. HEAD responses and
/// 1xx/204/304 have no body.
pub fn read_response(stream: &mut TcpStream, head_request: bool) -> Resp {
    match try_read_response(stream, head_request) {
        Ok(resp) => resp,
        Err(e) => panic!("reading response: {e}"),
    }
}

/// Like [`read_response`] but returns an error instead of panicking.
pub fn try_read_response(stream: &mut TcpStream, head_request: bool) -> Result<Resp, String> {
    let head = read_head(stream)?;
    let text =
        std::str::from_utf8(&head).map_err(|_| format!("response head not UTF-8: {head:?}"))?;
    let text = text
        .strip_suffix("\r\n\r\n")
        .ok_or("head does not end in CRLF CRLF")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let (version, status, reason) = parse_status_line(status_line)?;

    let mut headers = Vec::new();
    for line in lines {
        if line.contains('\r') || line.contains('\n') {
            return Err(format!("bare CR or LF in response header line {line:?}"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line without colon: {line:?}"))?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("bad header name {name:?}"));
        }
        headers.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    let mut resp = Resp {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
    };

    let lengths = resp.headers_named("content-length");
    if lengths.len() > 1 {
        return Err(format!("several Content-Length fields: {lengths:?}"));
    }
    let no_body = head_request || resp.status < 200 || resp.status == 204 || resp.status == 304;
    if no_body {
        return Ok(resp);
    }
    if let Some(te) = resp.header("transfer-encoding") {
        if !lengths.is_empty() {
            return Err("response has both Transfer-Encoding and Content-Length".into());
        }
        if !te.to_ascii_lowercase().trim().ends_with("chunked") {
            return Err(format!("response transfer coding not chunked: {te:?}"));
        }
        resp.body = read_chunked(stream)?;
    } else if let Some(len) = lengths.first() {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        let mut body = vec![0u8; len];
        stream
            .read_exact(&mut body)
            .map_err(|e| format!("reading {len}-byte body: {e}"))?;
        resp.body = body;
    } else {
        resp.body = read_to_close(stream);
    }
    Ok(resp)
}

fn parse_status_line(line: &str) -> Result<(String, u16, String), String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts
        .next()
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let reason = parts
        .next()
        .ok_or_else(|| format!("status line without reason space {line:?}"))?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("bad version in status line {line:?}"));
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad status code in {line:?}"));
    }
    Ok((
        version.to_string(),
        code.parse().unwrap(),
        reason.to_string(),
    ))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads up to and including the blank line that ends a response head.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) if head.is_empty() => return Err("connection closed before any response".into()),
            Ok(0) => {
                return Err(format!(
                    "connection closed inside response head: {:?}",
                    String::from_utf8_lossy(&head)
                ));
            }
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(format!(
                    "timed out waiting for response head (got {:?})",
                    String::from_utf8_lossy(&head)
                ));
            }
            Err(e) => {
                return Err(format!(
                    "error reading response head: {e} (got {:?})",
                    String::from_utf8_lossy(&head)
                ));
            }
        }
        if head.len() > 1 << 20 {
            return Err("response head over 1 MiB".into());
        }
    }
    Ok(head)
}

fn read_line(stream: &mut TcpStream) -> Result<String, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return Err("closed inside chunked body".into()),
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("reading chunk line: {e}")),
        }
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| "chunk line not UTF-8".into())
}

fn read_chunked(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream)?;
        let size_text = line.split(';').next().unwrap().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            // Trailer section up to the empty line.
            while !read_line(stream)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream
            .read_exact(&mut body[start..])
            .map_err(|e| format!("reading chunk: {e}"))?;
        if !read_line(stream)?.is_empty() {
            return Err("chunk data not followed by CRLF".into());
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads everything until the peer closes. A reset after the data counts as the close; a
/// timeout panics.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) if is_timeout(&e) => panic!(
                "connection not closed within {IO_TIMEOUT:?} (read {} bytes: {:?})",
                out.len(),
                String::from_utf8_lossy(&out[..out.len().min(300)])
            ),
            Err(e) => panic!("read_to_close: {e}"),
        }
    }
}

/// Asserts that the server closes the connection without sending anything more: a read
/// returns end-of-file or a reset within the timeout.
pub fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!(
                "expected the connection to close, but got {n} more bytes: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) if is_timeout(&e) => panic!("connection still open after {IO_TIMEOUT:?}"),
            Err(e) => panic!("unexpected error waiting for close: {e}"),
        }
    }
}

/// Asserts the connection still serves: `GET /style.css` on it returns the file.
pub fn assert_still_serves(stream: &mut TcpStream) {
    send(stream, &get_req("/style.css"));
    let resp = read_response(stream, false);
    assert_eq!(resp.status, 200, "follow-up request on the same connection");
    assert_eq!(resp.body, STYLE_CSS.as_bytes(), "follow-up body");
}

// ---------------------------------------------------------------------------------------------
// Assertions on responses.

/// Asserts `value` is an IMF-fixdate (RFC 9110 section 5.6.7), the only form a server may
/// generate, and returns the time it names.
pub fn assert_imf_fixdate(value: &str) -> SystemTime {
    let time =
        httpdate::parse_http_date(value).unwrap_or_else(|_| panic!("not an HTTP-date: {value:?}"));
    // IMF-fixdate is the canonical form httpdate prints; obsolete forms print differently.
    assert_eq!(
        httpdate::fmt_http_date(time),
        value,
        "date is not in IMF-fixdate form"
    );
    time
}

/// Asserts the fields every response must carry: exactly one `Date` in IMF-fixdate close to
/// now, a non-empty `Server`, and a `Content-Length` wherever a body is defined (margay never
/// uses chunked responses), matching the body that was read.
pub fn assert_standard_headers(resp: &Resp, head_request: bool) {
    let dates = resp.headers_named("date");
    assert_eq!(dates.len(), 1, "exactly one Date field in {resp:?}");
    let date = assert_imf_fixdate(dates[0]);
    let now = SystemTime::now();
    let skew = match now.duration_since(date) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        skew < Duration::from_secs(60),
        "Date {:?} far from now",
        dates[0]
    );

    let server = resp.header("server").unwrap_or("");
    assert!(!server.is_empty(), "missing Server field in {resp:?}");

    let bodiless_status = resp.status < 200 || resp.status == 204 || resp.status == 304;
    if resp.status < 200 || resp.status == 204 {
        assert!(
            resp.header("content-length").is_none(),
            "Content-Length on a {} response",
            resp.status
        );
    } else if !bodiless_status {
        let len = resp
            .content_length()
            .unwrap_or_else(|| panic!("missing Content-Length in {resp:?}"));
        if !head_request {
            assert_eq!(len, resp.body.len() as u64, "Content-Length vs body");
        }
    }
    assert!(
        resp.header("transfer-encoding").is_none(),
        "unexpected Transfer-Encoding"
    );
}

/// Asserts an error response: the status, the standard fields, and an HTML body whose length
/// `Content-Length` states.
pub fn assert_error_page(resp: &Resp, status: u16) {
    assert_eq!(resp.status, status, "status of {resp:?}");
    assert_standard_headers(resp, false);
    let ct = resp
        .header("content-type")
        .unwrap_or_else(|| panic!("error {status} without Content-Type"));
    assert_eq!(media_type(ct).0, "text/html", "error page Content-Type");
    assert!(!resp.body.is_empty(), "error page has an empty body");
}

/// Asserts the status is one of `allowed`.
pub fn assert_status_in(resp: &Resp, allowed: &[u16], what: &str) {
    assert!(
        allowed.contains(&resp.status),
        "{what}: status {} not in {allowed:?}; body {:?}",
        resp.status,
        resp.text()
    );
}

/// Splits a media type into its lowercased essence (`type/subtype`) and its parameters
/// (names lowercased, values unquoted).
pub fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (n, v) = p.split_once('=')?;
            Some((
                n.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    (essence, params)
}

/// The `charset` parameter of a media type, lowercased.
pub fn charset(value: &str) -> Option<String> {
    media_type(value)
        .1
        .into_iter()
        .find(|(n, _)| n == "charset")
        .map(|(_, v)| v.to_ascii_lowercase())
}

/// Asserts `etag` is a strong entity-tag: `"` etagc* `"` with no `W/` prefix.
pub fn assert_strong_etag(etag: &str) {
    assert!(!etag.starts_with("W/"), "ETag {etag:?} is weak");
    assert!(
        etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"'),
        "ETag {etag:?} not quoted"
    );
    let inner = &etag.as_bytes()[1..etag.len() - 1];
    assert!(
        inner
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80),
        "ETag {etag:?} has characters outside etagc"
    );
}

// ---------------------------------------------------------------------------------------------
// Ranges.

/// A parsed `Content-Range` value: `bytes first-last/complete` or `bytes */complete`.
#[derive(Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub range: Option<(u64, u64)>,
    pub complete: Option<u64>,
}

pub fn parse_content_range(value: &str) -> ContentRange {
    let rest = value
        .strip_prefix("bytes ")
        .unwrap_or_else(|| panic!("Content-Range without `bytes `: {value:?}"));
    let (range, complete) = rest
        .split_once('/')
        .unwrap_or_else(|| panic!("Content-Range without '/': {value:?}"));
    let complete = if complete == "*" {
        None
    } else {
        Some(
            complete
                .parse()
                .unwrap_or_else(|_| panic!("bad length in {value:?}")),
        )
    };
    let range = if range == "*" {
        None
    } else {
        let (a, b) = range
            .split_once('-')
            .unwrap_or_else(|| panic!("bad range in {value:?}"));
        let a: u64 = a
            .parse()
            .unwrap_or_else(|_| panic!("bad first-pos in {value:?}"));
        let b: u64 = b
            .parse()
            .unwrap_or_else(|_| panic!("bad last-pos in {value:?}"));
        assert!(a <= b, "first-pos > last-pos in {value:?}");
        Some((a, b))
    };
    ContentRange { range, complete }
}

/// What a response to a range request turned out to be, once checked for consistency.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole representation.
    Full,
    /// 206 with one range.
    Single(u64, u64),
    /// 206 `multipart/byteranges` with these parts, in order.
    Multi(Vec<(u64, u64)>),
}

/// Checks that a 200 or 206 response to a range request is self-consistent against the full
/// content: a 200 carries the whole file; a single-part 206 carries exactly the bytes its
/// `Content-Range` names; a multipart 206 has parts that each do.
pub fn check_range_response(resp: &Resp, full: &[u8]) -> RangeOutcome {
    let total = full.len() as u64;
    match resp.status {
        200 => {
            assert_eq!(
                resp.body, full,
                "200 to a range request must carry the whole file"
            );
            RangeOutcome::Full
        }
        206 => {
            let ct = resp.header("content-type").unwrap_or("");
            let (essence, params) = media_type(ct);
            if essence == "multipart/byteranges" {
                assert!(
                    resp.header("content-range").is_none(),
                    "a multipart 206 must not carry a top-level Content-Range"
                );
                let boundary = params
                    .iter()
                    .find(|(n, _)| n == "boundary")
                    .map(|(_, v)| v.clone())
                    .expect("multipart/byteranges without boundary");
                let parts = parse_multipart(&resp.body, &boundary);
                assert!(!parts.is_empty(), "multipart 206 with no parts");
                let mut ranges = Vec::new();
                for part in &parts {
                    let cr = part
                        .header("content-range")
                        .unwrap_or_else(|| panic!("part without Content-Range: {part:?}"));
                    let cr = parse_content_range(cr);
                    assert_eq!(cr.complete, Some(total), "complete length in part");
                    let (a, b) = cr.range.expect("part with unsatisfied range");
                    assert!(b < total, "part range beyond the file");
                    assert_eq!(
                        part.body,
                        &full[a as usize..=b as usize],
                        "part bytes for {a}-{b}"
                    );
                    ranges.push((a, b));
                }
                RangeOutcome::Multi(ranges)
            } else {
                let cr = resp
                    .header("content-range")
                    .expect("single-part 206 without Content-Range");
                let cr = parse_content_range(cr);
                assert_eq!(cr.complete, Some(total), "complete length in Content-Range");
                let (a, b) = cr
                    .range
                    .expect("206 with an unsatisfied-range Content-Range");
                assert!(b < total, "range beyond the file");
                assert_eq!(
                    resp.body,
                    &full[a as usize..=b as usize],
                    "206 bytes for {a}-{b}"
                );
                RangeOutcome::Single(a, b)
            }
        }
        other => panic!(
            "expected 200 or 206 to a range request, got {other}: {:?}",
            resp.text()
        ),
    }
}

/// One part of a multipart body.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Parses a multipart body (RFC 2046 section 5.1.1): optional preamble, `--boundary` lines
/// each followed by part headers, a blank line and content, and a closing `--boundary--`.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let dash = format!("--{boundary}").into_bytes();
    let delim = format!("\r\n--{boundary}").into_bytes();
    let mut pos = if body.starts_with(&dash) {
        dash.len()
    } else {
        find(body, &delim, 0).expect("no first boundary in multipart body") + delim.len()
    };
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return parts; // close delimiter; an epilogue may follow
        }
        // Transport padding, then CRLF.
        while body.get(pos).is_some_and(|&b| b == b' ' || b == b'\t') {
            pos += 1;
        }
        assert!(
            body[pos..].starts_with(b"\r\n"),
            "boundary line not ended by CRLF"
        );
        pos += 2;
        let mut headers = Vec::new();
        loop {
            let end = find(body, b"\r\n", pos).expect("unterminated part header");
            let line = std::str::from_utf8(&body[pos..end]).expect("part header not UTF-8");
            pos = end + 2;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').expect("part header without colon");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let end = find(body, &delim, pos).expect("part not followed by a boundary");
        parts.push(Part {
            headers,
            body: body[pos..end].to_vec(),
        });
        pos = end + delim.len();
    }
}

/// Path of a file on disk, for tests that compare against metadata.
pub fn disk_path(server: &TestServer, rel: &str) -> PathBuf {
    server.root().join(rel)
}

// ---------------------------------------------------------------------------------------------
// The real binary as a child process.

/// The margay binary running as a child process over a temporary root holding `style.css`
/// and `big.bin`, its log in a file; killed on drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl ServerProcess {
    /// Starts the binary with `--model model`, the access log off and `extra` arguments; with
    /// `fd_limit`, under a shell that first lowers its descriptor limit (`ulimit -n`). Returns
    /// at once: callers wait for it to serve in their own way.
    pub fn spawn(model: &str, extra: &[&str], fd_limit: Option<u32>) -> ServerProcess {
        use std::process::{Command, Stdio};
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("style.css"), STYLE_CSS).unwrap();
        std::fs::write(root.join("big.bin"), big_bin()).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let binary = env!("CARGO_BIN_EXE_margay");
        let mut command = match fd_limit {
            Some(limit) => {
                let mut shell = Command::new("sh");
                let script = format!(r#"ulimit -n {limit} && exec "$0" "$@""#);
                shell.arg("-c").arg(script).arg(binary);
                shell
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["--listen", &addr.to_string(), "--root"])
            .arg(&root)
            .args([
                "--access-log",
                "off",
                "--log-level",
                "info",
                "--model",
                model,
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn margay");
        ServerProcess { child, addr, dir }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
