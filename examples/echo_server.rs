//! The classic first socket program, on margay's pattern: a TCP echo server that serves many
//! clients from one thread with one `mio::Poll` and a `Slab` of connections.
//!
//! ```sh
//! cargo run --example echo_server                  # listens on 127.0.0.1:65432
//! cargo run --example echo_server -- '[::1]:7000'  # or on the address given
//! ```
//!
//! Every readiness event is drained until `WouldBlock`, and each connection's interest follows
//! its state: it asks for `READABLE` while it may read and `WRITABLE` while it has an unsent
//! echo. A client that sends faster than it reads is not read from while more than
//! [`MAX_PENDING`] bytes of its echo are unsent, so memory per client stays bounded.

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

/// Where the server listens unless told otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:65432";
/// Stop reading from a client while more than this much of its echo waits to be sent.
const MAX_PENDING: usize = 64 * 1024;
/// The listener's token; connections use their slab keys, which never reach this.
const LISTENER: Token = Token(usize::MAX);

/// One client: its socket and the bytes read from it but not yet echoed back.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    pending: Vec<u8>,
    peer_closed: bool,
    interest: Interest,
}

/// What a readiness event left the connection wanting.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Continue,
    Close,
}

fn main() -> io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .map_err(io::Error::other)?;
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or(DEFAULT_ADDR)
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, format!("bad address: {e}")))?;

    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    info!("echo server listening on {}", listener.local_addr()?);

    let mut connections: Slab<Connection> = Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut connections);
                continue;
            }
            let key = event.token().0;
            let Some(connection) = connections.get_mut(key) else {
                continue; // closed earlier in this batch
            };
            if connection.serve(&poll, event.token()) == Step::Close {
                let mut connection = connections.remove(key);
                let _ = poll.registry().deregister(&mut connection.stream);
                info!(
                    "{} disconnected ({} open)",
                    connection.peer,
                    connections.len()
                );
            }
        }
    }
}

/// Accepts every waiting client, until `WouldBlock`.
fn accept_all(listener: &TcpListener, poll: &Poll, connections: &mut Slab<Connection>) {
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            // A client that gave up while queued: the next one may be fine.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // Out of file descriptors, say: keep serving the clients we have.
                warn!("accept failed: {e}");
                return;
            }
        };
        let entry = connections.vacant_entry();
        if let Err(e) =
            poll.registry()
                .register(&mut stream, Token(entry.key()), Interest::READABLE)
        {
            warn!("{peer}: cannot register: {e}");
            continue;
        }
        entry.insert(Connection {
            stream,
            peer,
            pending: Vec::new(),
            peer_closed: false,
            interest: Interest::READABLE,
        });
        info!("{peer} connected ({} open)", connections.len());
    }
}

impl Connection {
    /// Moves bytes until the socket would block both ways, then updates the interest.
    fn serve(&mut self, poll: &Poll, token: Token) -> Step {
        loop {
            let read = match self.read_some() {
                Ok(n) => n,
                Err(e) => return self.fail(e),
            };
            let written = match self.write_some() {
                Ok(n) => n,
                Err(e) => return self.fail(e),
            };
            if read == 0 && written == 0 {
                break;
            }
        }
        if self.peer_closed && self.pending.is_empty() {
            return Step::Close;
        }
        let wanted = self.wanted_interest();
        if wanted != self.interest {
            if let Err(e) = poll.registry().reregister(&mut self.stream, token, wanted) {
                return self.fail(e);
            }
            self.interest = wanted;
        }
        Step::Continue
    }

    /// Reads while the client is open and its unsent echo is under the cap. Returns the
    /// bytes read.
    fn read_some(&mut self) -> io::Result<usize> {
        let mut total = 0;
        let mut chunk = [0u8; 16 * 1024];
        while !self.peer_closed && self.pending.len() < MAX_PENDING {
            match self.stream.read(&mut chunk) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    self.pending.extend_from_slice(&chunk[..n]);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Writes the unsent echo until it is gone or the socket is full. Returns the bytes
    /// written.
    fn write_some(&mut self) -> io::Result<usize> {
        let mut sent = 0;
        while sent < self.pending.len() {
            match self.stream.write(&self.pending[sent..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // One copy per batch, not per write.
        self.pending.drain(..sent);
        Ok(sent)
    }

    /// `READABLE` while there is room to read, `WRITABLE` while an echo is unsent.
    fn wanted_interest(&self) -> Interest {
        let readable = !self.peer_closed && self.pending.len() < MAX_PENDING;
        match (readable, self.pending.is_empty()) {
            (true, true) => Interest::READABLE,
            (true, false) => Interest::READABLE | Interest::WRITABLE,
            (false, _) => Interest::WRITABLE,
        }
    }

    /// Ends the connection on a socket error: quietly for a normal disconnect.
    fn fail(&self, e: io::Error) -> Step {
        match e.kind() {
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => debug!("{}: {e}", self.peer),
            _ => warn!("{}: {e}", self.peer),
        }
        Step::Close
    }
}
