//! One connection's protocol state, without its socket: takes the bytes read so far, turns
//! complete requests into responses queued in an [`Outbox`]. The event loop and the thread
//! model both drive a `Session`, so they share every protocol decision.

use crate::app::Handler;
use crate::app::{Request, RouteMatch};
use crate::http::chunked::ChunkedDecoder;
use crate::http::encode::{Persistence, encode_head, status_forbids_body};
use crate::http::parse::parse_head_reusing;
use crate::http::{Body, BodyPart, Framing, Method, RequestError, RequestHead, Response, Version};
use crate::outbox::Outbox;
use crate::readbuf::ReadBuf;
use crate::site::Site;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Stop parsing pipelined requests once this many response bytes wait to be written.
pub const OUTBOX_HIGH_WATER: usize = 256 * 1024;

/// What the session is reading.
enum Inbound {
    /// The next request head.
    Head,
    /// A request body, to collect for a handler or to discard.
    Body(Box<BodyState>),
    /// Nothing more: the connection closes once its responses are written.
    Done,
}

struct BodyState {
    head: RequestHead,
    reader: BodyReader,
    /// Collected bytes for a handler; `None` when the body is being discarded.
    collected: Option<Vec<u8>>,
    handler: Option<Handler>,
}

enum BodyReader {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The protocol state of one connection.
pub struct Session {
    peer: SocketAddr,
    inbound: Inbound,
    served: u64,
    peer_closed: bool,
    /// The request being answered still has bytes on the way (see `peer_may_send`).
    request_unread: bool,
}

impl Session {
    /// A session for a newly accepted connection from `peer`.
    pub fn new(peer: SocketAddr) -> Session {
        Session {
            peer,
            inbound: Inbound::Head,
            served: 0,
            peer_closed: false,
            request_unread: false,
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether no more requests will be read: close once the outbox is flushed.
    pub fn is_done(&self) -> bool {
        matches!(self.inbound, Inbound::Done)
    }

    /// Whether a request is partly read (head bytes buffered or a body under way).
    pub fn mid_request(&self, input: &ReadBuf) -> bool {
        match self.inbound {
            Inbound::Head => !input.is_empty(),
            Inbound::Body(_) => true,
            Inbound::Done => false,
        }
    }

    /// Whether the session is reading a body rather than a head.
    pub fn reading_body(&self) -> bool {
        matches!(self.inbound, Inbound::Body(_))
    }

    /// How many responses have been queued on this connection.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// The peer closed its side: buffered complete requests are still answered, then the
    /// session ends.
    pub fn peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Whether the peer may still be sending: its end of stream is unseen and the last
    /// request was not read to its end (a refused head, or a body cut short).
    pub fn peer_may_send(&self) -> bool {
        !self.peer_closed && self.request_unread
    }

    /// Whether the peer's end of stream has been read.
    pub fn saw_end(&self) -> bool {
        self.peer_closed
    }

    /// Answers a request that took too long with 408 and ends the session.
    pub fn time_out(&mut self, out: &mut Outbox, site: &mut Site) {
        self.answer(
            None,
            Response::error(RequestError::Timeout.status()),
            out,
            site,
        );
        self.inbound = Inbound::Done;
    }

    /// Parses what `input` holds and queues responses, until input runs out, the outbox is
    /// full enough, or the session ends.
    pub fn process(&mut self, input: &mut ReadBuf, out: &mut Outbox, site: &mut Site) {
        while out.queued() < OUTBOX_HIGH_WATER {
            match &mut self.inbound {
                Inbound::Done => return,
                Inbound::Head => {
                    match parse_head_reusing(input.data(), &site.app.limits, &mut site.spare_head) {
                        Ok(Some((head, len))) => {
                            input.consume(len);
                            self.begin(head, out, site);
                        }
                        Ok(None) => {
                            if self.peer_closed {
                                self.inbound = Inbound::Done;
                            }
                            return;
                        }
                        Err(error) => {
                            log::debug!("{}: refused request: {error:?}", self.peer);
                            self.request_unread = true;
                            self.answer(None, Response::error(error.status()), out, site);
                            self.inbound = Inbound::Done;
                        }
                    }
                }
                Inbound::Body(_) => {
                    if !self.read_body(input, out, site) {
                        if self.peer_closed {
                            self.inbound = Inbound::Done;
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Decides what to do with a freshly parsed head.
    fn begin(&mut self, head: RequestHead, out: &mut Outbox, site: &mut Site) {
        log::debug!("{}: {}", self.peer, head.request_line());
        let has_body = head.framing != Framing::None;
        self.request_unread = has_body;
        if let Some(error) = head.error {
            let mut response = Response::error(error.status());
            response.close = error.closes() || (has_body && head.expect_continue);
            return self.answer_then_discard(head, response, out, site);
        }
        let route = match site.app.router.find(head.method, head.path()) {
            RouteMatch::Handler(handler) => Some(handler.clone()),
            RouteMatch::WrongMethod(allow) => {
                let response = Response::error(405).header("Allow", allow);
                return self.answer_then_discard(head, response, out, site);
            }
            RouteMatch::NoRoute => None,
        };
        match route {
            Some(handler) if !has_body => self.dispatch(head, Vec::new(), &handler, out, site),
            Some(handler) => self.begin_body(head, handler, out, site),
            None => {
                let response = site.files.serve(&head);
                self.answer_then_discard(head, response, out, site);
            }
        }
    }

    /// Starts collecting a body for a handler, refusing one that is declared too large.
    fn begin_body(
        &mut self,
        head: RequestHead,
        handler: Handler,
        out: &mut Outbox,
        site: &mut Site,
    ) {
        if let Framing::Length(n) = head.framing
            && n > site.app.max_body_size
        {
            let mut response = Response::error(413);
            response.close = true;
            return self.answer(Some(&head), response, out, site);
        }
        if head.expect_continue && head.version == Version::Http11 {
            out.push_bytes(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.inbound = Inbound::Body(Box::new(BodyState {
            reader: reader_for(head.framing),
            head,
            collected: Some(Vec::new()),
            handler: Some(handler),
        }));
    }

    /// Queues a response that does not need the body, then reads past the body (if any) so
    /// the next request starts at the right byte.
    fn answer_then_discard(
        &mut self,
        head: RequestHead,
        mut response: Response,
        out: &mut Outbox,
        site: &mut Site,
    ) {
        let discard_limit = site.app.max_body_size.max(1 << 20);
        response.close |= match head.framing {
            Framing::None => false,
            // A client waiting for 100 may never send the body: the stream cannot be trusted.
            _ if head.expect_continue => true,
            Framing::Length(n) => n > discard_limit,
            Framing::Chunked => false,
        };
        self.answer(Some(&head), response, out, site);
        if head.framing != Framing::None && !self.is_done() {
            self.inbound = Inbound::Body(Box::new(BodyState {
                reader: reader_for(head.framing),
                head,
                collected: None,
                handler: None,
            }));
        } else {
            site.spare_head = head.into_storage();
        }
    }

    /// Feeds buffered bytes to the body under way. Returns false when more input is needed.
    fn read_body(&mut self, input: &mut ReadBuf, out: &mut Outbox, site: &mut Site) -> bool {
        let Inbound::Body(state) = &mut self.inbound else {
            return true;
        };
        let limit = match state.collected {
            Some(_) => site.app.max_body_size,
            None => site.app.max_body_size.max(1 << 20),
        };
        let data = input.data();
        let (used, finished) = match &mut state.reader {
            BodyReader::Length(left) => {
                let take = (*left).min(data.len() as u64) as usize;
                if let Some(body) = &mut state.collected {
                    body.extend_from_slice(&data[..take]);
                }
                *left -= take as u64;
                (take, *left == 0)
            }
            BodyReader::Chunked(decoder) => match decoder.decode(data, state.collected.as_mut()) {
                Ok(used) => (used, decoder.is_done()),
                Err(error) => {
                    let handler_wanted_it = state.handler.is_some();
                    let head = state.head.clone();
                    self.inbound = Inbound::Done;
                    if handler_wanted_it {
                        let mut response = Response::error(error.status());
                        response.close = true;
                        self.answer(Some(&head), response, out, site);
                    }
                    return true;
                }
            },
        };
        input.consume(used);
        let collected = state.collected.as_ref().map_or(0, Vec::len) as u64;
        if collected > limit {
            let head = state.head.clone();
            self.inbound = Inbound::Done;
            let mut response = Response::error(413);
            response.close = true;
            self.answer(Some(&head), response, out, site);
            return true;
        }
        if !finished {
            return false;
        }
        self.request_unread = false;
        let Inbound::Body(state) = std::mem::replace(&mut self.inbound, Inbound::Head) else {
            return true;
        };
        let BodyState {
            head,
            collected,
            handler,
            ..
        } = *state;
        if let (Some(handler), Some(body)) = (handler, collected) {
            self.dispatch(head, body, &handler, out, site);
        }
        true
    }

    /// Runs a handler, turning a panic into a 500 so the server lives on.
    fn dispatch(
        &mut self,
        head: RequestHead,
        body: Vec<u8>,
        handler: &Handler,
        out: &mut Outbox,
        site: &mut Site,
    ) {
        let request = Request::new(head, body, self.peer);
        let response = match catch_unwind(AssertUnwindSafe(|| handler(&request))) {
            Ok(response) => response,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!(
                    "handler for {} {} panicked: {message}",
                    request.method(),
                    request.path()
                );
                Response::error(500)
            }
        };
        let head = request.into_head();
        self.answer(Some(&head), response, out, site);
        site.spare_head = head.into_storage();
    }

    /// Encodes a response into the outbox and logs it; ends the session if the connection
    /// must not persist.
    fn answer(
        &mut self,
        head: Option<&RequestHead>,
        response: Response,
        out: &mut Outbox,
        site: &mut Site,
    ) {
        self.served += 1;
        let limit = site.app.max_requests_per_connection;
        let keep_alive = head.is_some_and(|h| h.keep_alive)
            && !response.close
            && !site.draining
            && !self.peer_closed
            && (limit == 0 || self.served < limit);
        let persistence = match head {
            _ if !keep_alive => Persistence::Close,
            Some(h) if h.version == Version::Http10 => Persistence::KeepAliveExplicit,
            _ => Persistence::KeepAlive,
        };
        let tail = out.tail();
        let before = tail.len();
        encode_head(&response, persistence, site.date.as_bytes(), tail);
        let head_len = tail.len() - before;
        out.added(head_len);
        let sends_body =
            head.is_none_or(|h| h.method != Method::Head) && !status_forbids_body(response.status);
        let body_len = if sends_body { response.body.len() } else { 0 };
        if site.app.access_log && log::log_enabled!(target: "margay::access", log::Level::Info) {
            access_log(self.peer, head, response.status, body_len, site);
        }
        site.app.stats.request_served();
        if sends_body {
            queue_body(response.body, out);
        }
        if !keep_alive {
            self.inbound = Inbound::Done;
        }
    }
}

fn reader_for(framing: Framing) -> BodyReader {
    match framing {
        Framing::Chunked => BodyReader::Chunked(ChunkedDecoder::new()),
        Framing::Length(n) => BodyReader::Length(n),
        Framing::None => BodyReader::Length(0),
    }
}

fn queue_body(body: Body, out: &mut Outbox) {
    match body {
        Body::Empty => {}
        Body::Bytes(bytes) => out.push_vec(bytes),
        Body::Shared(bytes) => out.push_shared(bytes),
        Body::File { file, offset, len } => out.push_file(file, offset, len),
        Body::Parts(parts) => {
            for part in parts {
                match part {
                    BodyPart::Bytes(bytes) => out.push_vec(bytes),
                    BodyPart::File { file, offset, len } => out.push_file(file, offset, len),
                }
            }
        }
    }
}

/// Writes one Combined Log Format line under the `margay::access` target.
fn access_log(peer: SocketAddr, head: Option<&RequestHead>, status: u16, bytes: u64, site: &Site) {
    let field = |name: &str| {
        head.and_then(|h| h.header(name))
            .map_or_else(|| "-".to_string(), escape)
    };
    let line = head.map_or_else(|| "-".to_string(), |h| escape(h.request_line()));
    log::info!(
        target: "margay::access",
        "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"",
        peer.ip(),
        site.log_time.as_str(),
        line,
        status,
        bytes,
        field("referer"),
        field("user-agent"),
    );
}

/// Escapes quotes, backslashes and non-printable bytes so a log line cannot be forged.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => out.extend(
                c.to_string()
                    .bytes()
                    .map(|b| format!("\\x{b:02X}"))
                    .collect::<Vec<_>>(),
            ),
        }
    }
    out
}
