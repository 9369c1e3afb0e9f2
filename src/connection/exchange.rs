//! The request/response exchange on one connection: turns the bytes read so far into
//! requests (head, then body), routes each to a handler or the static files, and queues the
//! encoded responses in order in an [`Outbox`]. Pure protocol: no socket, no clock.

use super::outbox::Outbox;
use super::readbuf::ReadBuf;
use crate::access_log;
use crate::app::Handler;
use crate::app::{Request, RouteMatch};
use crate::builtin::ADMIN_PATHS;
use crate::http::chunked::ChunkedDecoder;
use crate::http::coding::{self, AcceptEncoding};
use crate::http::encode::{Persistence, encode_head};
use crate::http::{
    Body, BodyPart, Framing, Method, RequestError, RequestHead, Response, StatusCode, Version,
};
use crate::listener::ListenerKind;
use crate::worker::Worker;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// Stop parsing pipelined requests once this many response bytes wait to be written.
pub const OUTBOX_HIGH_WATER: usize = 256 * 1024;

/// What the exchange is reading.
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

/// The request/response state of one connection.
pub struct Exchange {
    peer: SocketAddr,
    /// The kind of listener that accepted the connection: its scheme and role.
    listener: ListenerKind,
    /// The TLS protocol version and cipher suite, once known.
    tls: Option<(&'static str, &'static str)>,
    inbound: Inbound,
    served: u64,
    peer_closed: bool,
    /// The request being answered still has bytes on the way (see `peer_may_send`).
    request_unread: bool,
    /// When the first byte of the requests being answered was read: durations count from it.
    started: Instant,
}

impl Exchange {
    /// An exchange for a connection from `peer` accepted at `now` by a `listener`.
    pub fn new(peer: SocketAddr, listener: ListenerKind, now: Instant) -> Exchange {
        Exchange {
            peer,
            listener,
            tls: None,
            inbound: Inbound::Head,
            served: 0,
            peer_closed: false,
            request_unread: false,
            started: now,
        }
    }

    /// Notes when the first byte of the requests about to be answered was read.
    pub fn set_started(&mut self, started: Instant) {
        self.started = started;
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The TLS protocol version and cipher suite, once noted.
    pub fn tls_session(&self) -> Option<(&'static str, &'static str)> {
        self.tls
    }

    /// Notes the TLS session of the connection.
    pub fn set_tls_session(&mut self, session: Option<(&'static str, &'static str)>) {
        self.tls = session;
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

    /// Whether the exchange is reading a body rather than a head.
    pub fn reading_body(&self) -> bool {
        matches!(self.inbound, Inbound::Body(_))
    }

    /// How many responses have been queued on this connection.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// The peer closed its side: buffered complete requests are still answered, then the
    /// exchange ends.
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

    /// Answers a request that took too long with 408 and ends the exchange.
    pub fn time_out(&mut self, out: &mut Outbox, worker: &mut Worker) {
        self.answer(
            None,
            Response::error(RequestError::Timeout.status()),
            out,
            worker,
        );
        self.inbound = Inbound::Done;
    }

    /// Parses what `input` holds and queues responses, until input runs out, the outbox is
    /// full enough, or the exchange ends.
    pub fn process(&mut self, input: &mut ReadBuf, out: &mut Outbox, worker: &mut Worker) {
        while out.queued() < OUTBOX_HIGH_WATER {
            match &mut self.inbound {
                Inbound::Done => return,
                Inbound::Head => match worker.parse_head(input.data()) {
                    Ok(Some((head, len))) => {
                        input.consume(len);
                        self.begin(head, out, worker);
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
                        self.answer(None, Response::error(error.status()), out, worker);
                        self.inbound = Inbound::Done;
                    }
                },
                Inbound::Body(_) => {
                    if !self.read_body(input, out, worker) {
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
    fn begin(&mut self, head: RequestHead, out: &mut Outbox, worker: &mut Worker) {
        log::debug!("{}: {}", self.peer, head.request_line());
        let has_body = head.framing != Framing::None;
        self.request_unread = has_body;
        if let Some(error) = head.error {
            let mut response = Response::error(error.status());
            response.close = error.closes() || (has_body && head.expect_continue);
            return self.answer_then_discard(head, response, out, worker);
        }
        if worker.site().admin_listener
            && (self.listener == ListenerKind::Admin) != ADMIN_PATHS.contains(&head.path())
        {
            let response = Response::error(StatusCode::NOT_FOUND);
            return self.answer_then_discard(head, response, out, worker);
        }
        if self.listener == ListenerKind::Plain
            && let Some(port) = worker.site().redirect_https
            && let Some(response) = redirect_to_https(&head, port)
        {
            return self.answer_then_discard(head, response, out, worker);
        }
        let route = match worker.site().router.find(head.method, head.path()) {
            RouteMatch::Handler(handler) => Some(handler.clone()),
            RouteMatch::WrongMethod(allow) => {
                let response =
                    Response::error(StatusCode::METHOD_NOT_ALLOWED).header("Allow", allow);
                return self.answer_then_discard(head, response, out, worker);
            }
            RouteMatch::NoRoute => None,
        };
        match route {
            Some(handler) if !has_body => self.dispatch(head, Vec::new(), &handler, out, worker),
            Some(handler) => self.begin_body(head, handler, out, worker),
            // An admin listener serves no files.
            None if self.listener == ListenerKind::Admin => {
                let response = Response::error(StatusCode::NOT_FOUND);
                self.answer_then_discard(head, response, out, worker);
            }
            None => {
                let response = worker.serve_file(&head);
                self.answer_then_discard(head, response, out, worker);
            }
        }
    }

    /// Starts collecting a body for a handler, refusing one that is declared too large.
    fn begin_body(
        &mut self,
        head: RequestHead,
        handler: Handler,
        out: &mut Outbox,
        worker: &mut Worker,
    ) {
        if let Framing::Length(n) = head.framing
            && n > worker.site().max_body_size
        {
            let mut response = Response::error(StatusCode::CONTENT_TOO_LARGE);
            response.close = true;
            return self.answer(Some(&head), response, out, worker);
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
        worker: &mut Worker,
    ) {
        let discard_limit = worker.site().max_body_size.max(1 << 20);
        response.close |= match head.framing {
            Framing::None => false,
            // A client waiting for 100 may never send the body: the stream cannot be trusted.
            _ if head.expect_continue => true,
            Framing::Length(n) => n > discard_limit,
            Framing::Chunked => false,
        };
        self.answer(Some(&head), response, out, worker);
        if head.framing != Framing::None && !self.is_done() {
            self.inbound = Inbound::Body(Box::new(BodyState {
                reader: reader_for(head.framing),
                head,
                collected: None,
                handler: None,
            }));
        } else {
            worker.recycle_head(head);
        }
    }

    /// Feeds buffered bytes to the body under way. Returns false when more input is needed.
    fn read_body(&mut self, input: &mut ReadBuf, out: &mut Outbox, worker: &mut Worker) -> bool {
        let Inbound::Body(state) = &mut self.inbound else {
            return true;
        };
        let limit = match state.collected {
            Some(_) => worker.site().max_body_size,
            None => worker.site().max_body_size.max(1 << 20),
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
                        self.answer(Some(&head), response, out, worker);
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
            let mut response = Response::error(StatusCode::CONTENT_TOO_LARGE);
            response.close = true;
            self.answer(Some(&head), response, out, worker);
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
            self.dispatch(head, body, &handler, out, worker);
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
        worker: &mut Worker,
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
                Response::error(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        let head = request.into_head();
        self.answer(Some(&head), response, out, worker);
        worker.recycle_head(head);
    }

    /// Encodes a response into the outbox and logs it; ends the exchange if the connection
    /// must not persist.
    fn answer(
        &mut self,
        head: Option<&RequestHead>,
        mut response: Response,
        out: &mut Outbox,
        worker: &mut Worker,
    ) {
        if response.compress
            && let Some(head) = head
        {
            let accept = AcceptEncoding::parse(head.header_values("accept-encoding"));
            coding::compress_response(&mut response, &accept);
        }
        self.served += 1;
        let limit = worker.site().max_requests_per_connection;
        let keep_alive = head.is_some_and(|h| h.keep_alive)
            && !response.close
            && !worker.is_draining()
            && !self.peer_closed
            && (limit == 0 || self.served < limit);
        let persistence = match head {
            _ if !keep_alive => Persistence::Close,
            Some(h) if h.version == Version::Http10 => Persistence::KeepAliveExplicit,
            _ => Persistence::KeepAlive,
        };
        let tail = out.tail();
        let before = tail.len();
        encode_head(&response, persistence, worker.date(), tail);
        let head_len = tail.len() - before;
        out.added(head_len);
        let sends_body =
            head.is_none_or(|h| h.method != Method::Head) && response.status.allows_body();
        let body_len = if sends_body { response.body.len() } else { 0 };
        let elapsed = self.started.elapsed();
        if worker.site().access_log
            && !response.quiet
            && log::log_enabled!(target: "margay::access", log::Level::Info)
        {
            self.log_access(head, response.status, body_len, elapsed, worker);
        }
        worker.count_response(head.map(|h| h.method), response.status, elapsed);
        if sends_body {
            queue_body(response.body, out);
        }
        if !keep_alive {
            self.inbound = Inbound::Done;
        }
    }
}

impl Exchange {
    /// Writes the response's access-log line under the `margay::access` target.
    fn log_access(
        &self,
        head: Option<&RequestHead>,
        status: StatusCode,
        bytes: u64,
        elapsed: std::time::Duration,
        worker: &Worker,
    ) {
        let site = worker.site();
        let entry = access_log::Entry {
            client: site.trusted_proxies.client(self.peer.ip(), head),
            peer: self.peer,
            head,
            status,
            bytes,
            elapsed,
            clf_time: worker.log_time(),
            iso_time: worker.log_time_iso(),
            tls: self.tls,
        };
        let line = entry.format(site.access_log_format);
        log::info!(target: "margay::access", "{line}");
    }
}

/// Where an ACME HTTP-01 challenge is fetched: served over plain HTTP even when everything
/// else is redirected, so a certificate can be obtained before HTTPS works.
const ACME_CHALLENGES: &str = "/.well-known/acme-challenge/";

/// `308` to the same host and target over HTTPS on `port`, for any request but an ACME
/// challenge; `None` without a `Host` to redirect to.
fn redirect_to_https(head: &RequestHead, port: u16) -> Option<Response> {
    if head.path().starts_with(ACME_CHALLENGES) {
        return None;
    }
    let host = head.header("host")?;
    // The parser checked Host's grammar: an IP literal in brackets, or a name, then a port.
    let name = match host.strip_prefix('[') {
        Some(rest) => &host[..rest.find(']')? + 2],
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let mut location = String::with_capacity(name.len() + head.target().len() + 16);
    location.push_str("https://");
    location.push_str(name);
    if port != 443 {
        location.push(':');
        location.push_str(itoa::Buffer::new().format(port));
    }
    // The target as sent (origin form), or its path and query (absolute form).
    match head.query() {
        Some(query) => {
            location.push_str(head.raw_path());
            location.push('?');
            location.push_str(query);
        }
        None => location.push_str(head.raw_path()),
    }
    Some(Response::redirect(StatusCode::PERMANENT_REDIRECT, location))
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
