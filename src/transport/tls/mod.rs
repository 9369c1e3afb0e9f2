//! TLS as a transport: rustls's `ServerConnection` between the socket and the connection core.
//! Ciphertext moves on the socket side (`read_tls`, `write_tls`), plaintext on the core's side
//! (`reader()`, `writer()`); the core cannot tell it from plain TCP.
//!
//! Files cannot go with `sendfile(2)` (the kernel would send them unencrypted): they are read
//! in pieces of whole 16 KiB records and encrypted, and no more is taken while a previous piece
//! still waits for the socket, so memory per connection stays bounded.

pub(crate) mod certs;
pub(crate) mod settings;

use super::Transport;
use crate::stats::{Stats, TlsFailure};
use rustls::ServerConnection;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// The largest TLS record's payload: a file piece is read in multiples of it.
const RECORD: usize = 16 * 1024;
/// Plaintext of a file read and encrypted per call.
const FILE_PIECE: usize = 4 * RECORD;
/// What a client sending plain HTTP to a TLS port gets, in clear text, before the close.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 46\r\n\
Connection: close\r\n\r\n\
This port speaks HTTPS, not plain HTTP (400).\n";

thread_local! {
    /// One file piece in plaintext, reused by every TLS connection of the thread.
    static PIECE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; FILE_PIECE]);
}

/// A TLS connection over a stream socket `S` (a `mio` socket on the event loop, a blocking
/// `std` one in the thread model).
pub struct Tls<S: Read + Write + AsFd> {
    socket: S,
    tls: ServerConnection,
    stats: Arc<Stats>,
    /// The last socket read came up short: nothing more until a new readiness edge.
    socket_drained: bool,
    /// The peer's close_notify was read: a read after its last plaintext finds the end,
    /// which no readiness edge will report.
    peer_closed: bool,
    /// Nothing was read yet: the first byte tells a TLS client from a plain HTTP one.
    first_read: bool,
    /// The handshake finished (and was counted).
    established: bool,
    /// A failure was counted; nothing more to count when the connection goes.
    failed: bool,
    /// Our side is to be shut once the queued records (the close_notify last) are out.
    shutting: bool,
    /// What is queued was left there on purpose (tickets before the answer to the request that
    /// came with them, a head before its file), to leave in one write with what follows: the
    /// next write or file piece does not flush it first.
    deferred: bool,
    /// Records queued with a request's arrival (tickets) wait for its answer: not reported as
    /// pending, so the shell does not flush them alone. The next write, a read that finds the
    /// socket empty, or the end of the output sends them.
    held: bool,
    /// The output broke off: the connection ends without `close_notify`.
    cut_short: bool,
}

impl<S: Read + Write + AsFd> Tls<S> {
    /// A server-side TLS connection on `socket`.
    pub fn new(socket: S, tls: ServerConnection, stats: Arc<Stats>) -> Tls<S> {
        Tls {
            socket,
            tls,
            stats,
            socket_drained: false,
            peer_closed: false,
            first_read: true,
            established: false,
            failed: false,
            shutting: false,
            deferred: false,
            held: false,
            cut_short: false,
        }
    }

    /// The socket, for (de)registration with the poller.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    /// Reads ciphertext from the socket into rustls and processes it. `Ok(false)`: the socket
    /// reached its end.
    fn pull(&mut self) -> io::Result<bool> {
        let mut socket = ShortReads {
            inner: &mut self.socket,
            short: false,
            first: self.first_read.then_some(0),
        };
        let read = self.tls.read_tls(&mut socket);
        self.socket_drained = socket.short;
        let first = socket.first;
        let n = match read {
            Ok(n) => n,
            Err(e) => return Err(blocking_timeout_is_would_block(e)),
        };
        if self.first_read && n > 0 {
            self.first_read = false;
            if first.is_some_and(looks_like_plain_http) {
                return Err(self.refuse_plain_http());
            }
        }
        if n == 0 {
            if self.tls.is_handshaking() {
                self.fail(TlsFailure::Eof);
            }
            return Ok(false);
        }
        match self.tls.process_new_packets() {
            Ok(state) => {
                self.note_established();
                self.peer_closed |= state.peer_has_closed();
                // Handshake messages (or an alert) are answered at once, as far as the socket
                // takes them; what it does not is sent when it becomes writable. Records queued
                // once the handshake is done (session tickets) wait when a request came with
                // them: they leave in one write with its answer.
                if self.tls.is_handshaking() || state.plaintext_bytes_to_read() == 0 {
                    self.flush_quietly();
                } else {
                    self.held = self.tls.wants_write();
                    self.deferred = self.held;
                }
                Ok(true)
            }
            Err(error) => {
                // The alert rustls queued for the peer goes out before the close.
                self.flush_quietly();
                self.fail(classify(&error));
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("TLS: {error}"),
                ))
            }
        }
    }

    fn note_established(&mut self) {
        if self.established || self.tls.is_handshaking() {
            return;
        }
        self.established = true;
        let resumed = self.tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.stats.tls_handshake(resumed);
    }

    fn fail(&mut self, failure: TlsFailure) {
        if !self.failed && !self.established {
            self.failed = true;
            self.stats.tls_failed(failure);
        }
    }

    /// Answers a plain HTTP request on this TLS port with a short `400` in clear text.
    fn refuse_plain_http(&mut self) -> io::Error {
        self.fail(TlsFailure::PlainHttp);
        let _ = self.socket.write(PLAIN_HTTP_ANSWER);
        let _ = socket2::SockRef::from(&self.socket).shutdown(Shutdown::Write);
        io::Error::new(
            io::ErrorKind::InvalidData,
            "plain HTTP sent to a TLS port; answered 400",
        )
    }

    /// Sends queued ciphertext until the socket would block; once all is out after a
    /// shutdown was asked for, shuts our side of the socket.
    fn flush_tls(&mut self) -> io::Result<()> {
        self.held = false;
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(blocking_timeout_is_would_block(e)),
            }
        }
        if self.shutting {
            self.shutting = false;
            socket2::SockRef::from(&self.socket).shutdown(Shutdown::Write)?;
        }
        Ok(())
    }

    fn flush_quietly(&mut self) {
        let _ = self.flush_tls();
    }

    /// Room for more plaintext: queued ciphertext first goes out as far as it can; while some
    /// still waits, no more is taken (the caller waits for writability).
    fn make_room(&mut self) -> io::Result<()> {
        match self.flush_tls() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.tls.is_handshaking() => Err(e),
            // During the handshake the plaintext is buffered until it completes.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// After plaintext was taken: the records go out now, or with what follows at once.
    fn accepted(&mut self, n: usize, more: bool) -> io::Result<usize> {
        if n == 0 {
            self.flush_quietly();
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.deferred = more;
        if !more {
            self.flush_quietly();
        }
        Ok(n)
    }
}

impl<S: Read + Write + AsFd> Transport for Tls<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pulled_short = false;
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: for HTTP/1.1 framing that is just an
                // end of stream (a truncated body is caught by the framing).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if pulled_short {
                // This call's socket read came up short: another would only meet
                // `WouldBlock`. What the records read so far asked for goes out first.
                self.flush_quietly();
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if !self.pull()? {
                return Ok(0);
            }
            pulled_short = self.socket_drained;
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        self.held = false;
        if !std::mem::take(&mut self.deferred) {
            self.make_room()?;
        }
        let n = self.tls.writer().write_vectored(bufs)?;
        self.accepted(n, more)
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        // A head left queued for this file leaves with its first piece; anything else queued
        // goes out before more of the file is read.
        self.held = false;
        if !std::mem::take(&mut self.deferred) {
            self.make_room()?;
        }
        let accepted = PIECE.with(|piece| {
            let mut piece = piece.borrow_mut();
            let want = len.min(FILE_PIECE);
            let n = file.read_at(&mut piece[..want], offset)?;
            if n == 0 {
                return Ok(0);
            }
            self.tls.writer().write(&piece[..n])
        })?;
        if accepted == 0 && !self.tls.wants_write() {
            // The file ended before `offset`: the caller reports the truncation.
            return Ok(0);
        }
        self.accepted(accepted, false)
    }

    fn end_output(&mut self, whole: bool) {
        self.held = false;
        if !whole {
            self.cut_short = true;
        } else if self.established {
            self.tls.send_close_notify();
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        self.shutting = true;
        // What the socket does not take now goes when it is writable (`has_pending`).
        self.flush_pending()
    }

    fn has_pending(&self) -> bool {
        self.tls.wants_write() && !self.held
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        match self.flush_tls() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    fn short_read_empties(&self) -> bool {
        self.socket_drained && !self.peer_closed
    }

    fn tls_session(&self) -> Option<(&'static str, &'static str)> {
        if self.tls.is_handshaking() {
            return None;
        }
        let version = self.tls.protocol_version()?.as_str()?;
        let suite = self.tls.negotiated_cipher_suite()?.suite().as_str()?;
        Some((version, suite))
    }
}

impl<S: Read + Write + AsFd> Drop for Tls<S> {
    fn drop(&mut self) {
        if self.established && !self.cut_short {
            // Without close_notify a TLS client cannot tell the end from a truncation attack
            // (rustls and OpenSSL 3 report an error). Once only: a linger already sent it.
            self.tls.send_close_notify();
            self.flush_quietly();
        } else if !self.failed && !self.first_read {
            // A client that went quiet or away before the handshake finished.
            self.stats.tls_failed(TlsFailure::Incomplete);
        }
    }
}

/// Reads from the socket, noting whether a read came up short (the socket is then empty)
/// and the very first byte.
struct ShortReads<'a, S> {
    inner: &'a mut S,
    short: bool,
    first: Option<u8>,
}

impl<S: Read> Read for ShortReads<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n < buf.len();
        if let Some(first) = &mut self.first
            && n > 0
        {
            *first = buf[0];
        }
        Ok(n)
    }
}

/// A TLS connection starts with a handshake record (content type 22); an HTTP request starts
/// with a method's capital letters.
fn looks_like_plain_http(first: u8) -> bool {
    first.is_ascii_uppercase()
}

/// A blocking socket's timeout reads as "not now", as on a non-blocking one.
fn blocking_timeout_is_would_block(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        io::ErrorKind::WouldBlock.into()
    } else {
        e
    }
}

fn classify(error: &rustls::Error) -> TlsFailure {
    match error {
        rustls::Error::AlertReceived(_) => TlsFailure::AlertReceived,
        rustls::Error::NoApplicationProtocol => TlsFailure::NoCommonProtocol,
        rustls::Error::PeerIncompatible(_) => TlsFailure::NoCommonProtocol,
        _ => TlsFailure::Protocol,
    }
}
