//! A raw-socket HTTP/1.1 client that sees every byte: connections with timeouts, requests
//! written by hand, and responses parsed strictly (status line, fields, and a body framed by
//! `Content-Length`, chunked coding or the close).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long any single read or write on a test socket may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A new connection to `addr` with read/write timeouts and Nagle off.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to test server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Writes all of `bytes`, panicking on error.
pub fn send(stream: &mut impl Write, bytes: &[u8]) {
    stream.write_all(bytes).expect("write request");
    stream.flush().unwrap();
}

/// Writes as much of `bytes` as the server accepts: for requests the server may refuse and
/// close before reading them whole (431, 414).
pub fn send_lenient(stream: &mut impl Write, bytes: &[u8]) {
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
pub fn read_response(stream: &mut impl Read, head_request: bool) -> Resp {
    match try_read_response(stream, head_request) {
        Ok(resp) => resp,
        Err(e) => panic!("reading response: {e}"),
    }
}

/// Like [`read_response`] but returns an error instead of panicking.
pub fn try_read_response(stream: &mut impl Read, head_request: bool) -> Result<Resp, String> {
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
fn read_head(stream: &mut impl Read) -> Result<Vec<u8>, String> {
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

fn read_line(stream: &mut impl Read) -> Result<String, String> {
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

fn read_chunked(stream: &mut impl Read) -> Result<Vec<u8>, String> {
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

/// Whether a read or write error is the socket timeout running out.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads everything until the peer closes. A reset after the data counts as the close; a
/// timeout panics.
pub fn read_to_close(stream: &mut impl Read) -> Vec<u8> {
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

/// A connection whose kernel buffers are pinned small (no autotuning), so "the client stopped
/// reading" and "the server stopped reading" become visible within a few hundred KiB instead
/// of the many MiB loopback buffers can grow to, and a download cannot be parked in them.
pub fn connect_small_buffers(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    socket
        .connect(&addr.into())
        .expect("connect to test server");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `method target` with extra fields over a fresh connection to `addr`, one response read.
pub fn fetch(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut stream = connect(addr);
    send(&mut stream, &request(method, target, headers));
    read_response(&mut stream, method == "HEAD")
}

/// `GET /api/status` on a fresh connection to `addr`, checked and parsed.
pub fn fetch_status(addr: SocketAddr) -> serde_json::Value {
    let mut stream = connect(addr);
    send(&mut stream, &get_req("/api/status"));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200, "/api/status: {}", resp.text());
    serde_json::from_slice(&resp.body).expect("/api/status is JSON")
}

/// An address that refuses connections for as long as it lives: a socket bound to a port of
/// 127.0.0.1 but not listening, so the kernel answers a connect with a reset and no other
/// test can take the port meanwhile (a port merely bound and closed again can be).
pub struct Refusing {
    socket: socket2::Socket,
}

impl Refusing {
    pub fn new() -> Refusing {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&addr.into()).expect("bind a refusing address");
        Refusing { socket }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let addr = self.socket.local_addr().unwrap().as_socket().unwrap();
        format!("http://{addr}")
    }
}

/// `first`, then `behind` requests for `/style.css`, in one batch larger than a read buffer.
pub fn pipelined_behind(first: &str, behind: usize) -> Vec<u8> {
    let mut batch = get_req(first);
    for _ in 0..behind {
        batch.extend_from_slice(&get_req("/style.css"));
    }
    assert!(batch.len() > 64 * 1024, "more than a read buffer");
    batch
}

/// Writes `bytes` to `stream` from another thread (the server may stop reading a while);
/// the handle says whether all were written.
pub fn send_in_background(stream: &TcpStream, bytes: Vec<u8>) -> std::thread::JoinHandle<bool> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || writer.write_all(&bytes).is_ok())
}

/// Reads `n` answers of `/style.css` in a row.
pub fn expect_style_css(stream: &mut impl Read, n: usize) {
    for i in 0..n {
        let resp = read_response(stream, false);
        assert_eq!(
            (resp.status, resp.text()),
            (200, super::site::STYLE_CSS.to_string()),
            "answer #{i}"
        );
    }
}
