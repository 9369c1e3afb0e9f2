//! The request/response exchange on one connection: turns the bytes read so far into
//! requests (head, then body), routes each to a handler or the static files, and queues the
//! encoded responses in order in an [`Outbox`]. Pure protocol: no socket, no clock.

use super::outbox::Outbox;
use super::peer::Peer;
use super::readbuf::ReadBuf;
use super::stamp::Stamp;
use crate::access_log;
use crate::app::pool::{self, Ticket};
use crate::app::{Execution, Handler, Request, RouteMatch};
use crate::builtin::ADMIN_PATHS;
use crate::http::chunked::ChunkedDecoder;
use crate::http::coding::{self, AcceptEncoding};
use crate::http::encode::{Persistence, encode_head};
use crate::http::{
    Body, BodyPart, Framing, Method, RequestError, RequestHead, Response, StatusCode, Version,
};
use crate::listener::{ListenerKind, Scheme};
use crate::proxy::HostHeader;
use crate::proxy::forward::{Failure as ForwardFailure, Forward, Progress};
use crate::proxy::head::{
    BodyFraming, Origin, ResponseFraming, UpstreamHead, answer_spent_hops, request_head,
};
use crate::transport::pipe::Pipe;
use crate::worker::Worker;
use std::net::SocketAddr;

/// Stop parsing pipelined requests once this many response bytes wait to be written.
pub const OUTBOX_HIGH_WATER: usize = 256 * 1024;

/// What the exchange is reading.
enum Inbound {
    /// The next request head.
    Head,
    /// A request body, to collect for a handler or to discard.
    Body(Box<BodyState>),
    /// Nothing until a blocking handler's response comes back (pipelined requests wait, so
    /// responses keep their order).
    Waiting(Box<Waiting>),
    /// The request is forwarded to an upstream server (its body too, as it arrives); the
    /// next request waits until the response is through.
    Forwarding(Box<Forwarding>),
    /// Nothing more: the connection closes once its responses are written.
    Done,
}

struct BodyState {
    head: RequestHead,
    reader: BodyReader,
    /// Collected bytes for a handler; `None` when the body is being discarded.
    collected: Option<Vec<u8>>,
    handler: Option<Route>,
}

/// A handler that takes a request, and what routing found for it.
struct Route {
    handler: Handler,
    execution: Execution,
    params: Vec<(String, String)>,
}

/// The upstream connection a forwarded request's current attempt has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// None yet, or the attempt failed.
    None,
    /// Being made (a non-blocking connect under way).
    Connecting,
    /// Made for this request.
    New,
    /// Kept from an earlier request (its server may have closed it meanwhile).
    Kept,
}

/// A request being forwarded upstream.
struct Forwarding {
    /// The client's request head, for the access log and persistence.
    head: RequestHead,
    /// The proxy rule's group.
    group: usize,
    /// The member serving it, once the shell has a connection to one.
    member: Option<usize>,
    /// The member that just failed it, not to be chosen for the retry.
    avoid: Option<usize>,
    /// Attempts made (a retry goes to another member once).
    attempts: u8,
    /// The connection of the current attempt.
    link: Link,
    /// A kept connection its server had closed failed an attempt, which was not counted.
    stale_forgiven: bool,
    forward: Option<Forward>,
    /// The response head was passed to the client.
    answered: bool,
}

/// An upstream connection the exchange is done with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The member it is connected to (an index into the group's members, kept small so an
    /// idle connection's state stays small).
    pub member: u32,
    /// It may carry another request (keep it in the pool).
    pub reusable: bool,
    /// The member failed (counted for its passive health).
    pub failed: bool,
}

/// A request handed to the worker pool.
struct Waiting {
    /// When the connection noted the hand-over ([`Exchange::note_waiting`]; the exchange
    /// keeps no clock of its own).
    since: Option<Stamp>,
    /// Its id: a result for another (a late one, after a timeout) is dropped.
    job: u64,
    /// A copy of its head, for the access log and persistence once the answer comes.
    head: RequestHead,
}

enum BodyReader {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The request/response state of one connection.
pub struct Exchange {
    peer: Peer,
    /// The kind of listener that accepted the connection: its scheme and role.
    listener: ListenerKind,
    /// The TLS protocol version and cipher suite, once known.
    tls: Option<Box<(&'static str, &'static str)>>,
    /// Where results and wake-ups for this connection are addressed.
    ticket: Ticket,
    /// An upstream connection to give back (or drop), for the shell to collect.
    released: Option<Released>,
    /// A proxied response broke off: close without completing its framing.
    aborted: bool,
    inbound: Inbound,
    served: u32,
    /// A response was queued since the connection last asked ([`Exchange::take_answered`]).
    answered: bool,
    peer_closed: bool,
    /// The request being answered still has bytes on the way (see `peer_may_send`).
    request_unread: bool,
    /// When the first byte of the requests now being read or answered arrived: durations
    /// count from it. `None` until a byte comes (a response to nothing counts zero).
    started: Option<Stamp>,
}

impl Exchange {
    /// An exchange for a connection from `peer` accepted by a `listener`; the shell addresses
    /// it by `ticket`.
    pub fn new(peer: SocketAddr, listener: ListenerKind, ticket: Ticket) -> Exchange {
        Exchange {
            peer: Peer::from(peer),
            listener,
            tls: None,
            ticket,
            released: None,
            aborted: false,
            inbound: Inbound::Head,
            served: 0,
            answered: false,
            peer_closed: false,
            request_unread: false,
            started: None,
        }
    }

    /// Notes that request bytes arrived at `at`: the clock starts with the first of them.
    pub fn bytes_arrived(&mut self, at: Stamp) {
        self.started.get_or_insert(at);
    }

    /// Starts the clock over for the next request: at `at` if its bytes are already here
    /// (pipelined), else with its first byte.
    pub fn restart_clock(&mut self, at: Option<Stamp>) {
        self.started = at;
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer.addr()
    }

    /// Where results and wake-ups for this connection are addressed.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// The TLS protocol version and cipher suite, once noted.
    pub fn tls_session(&self) -> Option<(&'static str, &'static str)> {
        self.tls.as_deref().copied()
    }

    /// Notes the TLS session of the connection.
    pub fn set_tls_session(&mut self, session: Option<(&'static str, &'static str)>) {
        self.tls = session.map(Box::new);
    }

    /// Whether no more requests will be read: close once the outbox is flushed.
    pub fn is_done(&self) -> bool {
        matches!(self.inbound, Inbound::Done)
    }

    /// Whether a request is partly read (head bytes buffered or a body under way).
    pub fn mid_request(&self, input: &ReadBuf) -> bool {
        match self.inbound {
            Inbound::Head => !input.is_empty(),
            Inbound::Body(_) | Inbound::Waiting(_) | Inbound::Forwarding(_) => true,
            Inbound::Done => false,
        }
    }

    /// Whether a blocking handler's response is awaited.
    pub fn is_waiting(&self) -> bool {
        matches!(self.inbound, Inbound::Waiting(_))
    }

    /// When the awaited handler got its request, as noted.
    pub fn waiting_since(&self) -> Option<Stamp> {
        match &self.inbound {
            Inbound::Waiting(waiting) => waiting.since,
            _ => None,
        }
    }

    /// Notes `now` as when the awaited handler got its request, unless noted already.
    pub fn note_waiting(&mut self, now: Stamp) {
        if let Inbound::Waiting(waiting) = &mut self.inbound {
            waiting.since.get_or_insert(now);
        }
    }

    /// Delivers a blocking handler's response for `job`; false (and dropped) if it is not the
    /// one awaited (it came after its timeout).
    pub fn deliver(
        &mut self,
        job: u64,
        response: Response,
        out: &mut Outbox,
        worker: &mut Worker,
    ) -> bool {
        match &self.inbound {
            Inbound::Waiting(waiting) if waiting.job == job => {}
            _ => return false,
        }
        let Inbound::Waiting(waiting) = std::mem::replace(&mut self.inbound, Inbound::Head) else {
            return false;
        };
        let mut response = response;
        worker
            .rules()
            .apply_headers(waiting.head.path(), &mut response);
        self.answer(Some(&waiting.head), response, out, worker);
        worker.recycle_head(waiting.head);
        true
    }

    /// The blocking handler took too long: answers `504`; its late response will be dropped.
    pub fn give_up_waiting(&mut self, out: &mut Outbox, worker: &mut Worker) {
        let Inbound::Waiting(waiting) = std::mem::replace(&mut self.inbound, Inbound::Head) else {
            return;
        };
        log::debug!(
            "{}: {} timed out in its handler",
            self.peer,
            waiting.head.request_line()
        );
        worker.stats().pool_timed_out();
        let response = Response::error(StatusCode::GATEWAY_TIMEOUT);
        self.answer(Some(&waiting.head), response, out, worker);
        worker.recycle_head(waiting.head);
    }

    /// Whether the exchange is reading a body rather than a head.
    pub fn reading_body(&self) -> bool {
        matches!(self.inbound, Inbound::Body(_))
    }

    /// How many responses have been queued on this connection.
    pub fn served(&self) -> u32 {
        self.served
    }

    /// Whether a response was queued since the last call.
    pub fn take_answered(&mut self) -> bool {
        std::mem::take(&mut self.answered)
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
                Inbound::Done | Inbound::Waiting(_) => return,
                Inbound::Forwarding(forwarding) => {
                    let Some(forward) = forwarding.forward.as_mut() else {
                        return;
                    };
                    if let Err(failure) = forward.take_body(input) {
                        self.forward_failed(failure, out, worker);
                        continue;
                    }
                    return;
                }
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

    /// Whether [`Exchange::process`] parses no further request now: an earlier one's answer
    /// is awaited (a blocking handler, a forward) or enough output waits. Bytes the client
    /// sent meanwhile stay unread once the read buffer is full.
    pub fn parsing_paused(&self, out: &Outbox) -> bool {
        out.queued() >= OUTBOX_HIGH_WATER
            || matches!(self.inbound, Inbound::Waiting(_) | Inbound::Forwarding(_))
    }

    /// Decides what to do with a freshly parsed head.
    fn begin(&mut self, head: RequestHead, out: &mut Outbox, worker: &mut Worker) {
        log::debug!("{}: {}", self.peer, head.request_line());
        let has_body = head.framing != Framing::None;
        self.request_unread = has_body;
        worker.follow_rules();
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
        // A CORS preflight, a 401 or a forced redirect, before any route (and after the
        // move to HTTPS, so no password is asked for in clear).
        if let Some(response) = worker.rules().before_route(&head) {
            return self.answer_then_discard(head, response, out, worker);
        }
        // A handler route takes precedence over a proxy rule for the same path; only a site
        // with proxy rules pays for the check.
        if let Some(upstreams) = &worker.site().upstreams
            && !worker.site().router.covers(head.path())
            && let Some(group) = upstreams.route(head.path())
        {
            if let Some(response) = answer_spent_hops(&head) {
                return self.answer_then_discard(head, response, out, worker);
            }
            return self.begin_forward(head, group, out);
        }
        if head.method == Method::Other {
            let response = Response::error(StatusCode::NOT_IMPLEMENTED);
            return self.answer_then_discard(head, response, out, worker);
        }
        let route = match worker.site().router.find(head.method, head.path()) {
            RouteMatch::Found(found) => Some(Route {
                handler: found.handler.clone(),
                execution: found.execution,
                params: found.params,
            }),
            RouteMatch::WrongMethod(allow) => {
                let response =
                    Response::error(StatusCode::METHOD_NOT_ALLOWED).header("Allow", allow);
                return self.answer_then_discard(head, response, out, worker);
            }
            RouteMatch::NoRoute => None,
        };
        match route {
            Some(route) if !has_body => self.dispatch(head, Vec::new(), route, out, worker),
            Some(route) => self.begin_body(head, route, out, worker),
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

    /// Starts forwarding a request to group `group`'s upstream servers: the shell is asked for
    /// a connection ([`Exchange::upstream_wanted`]).
    fn begin_forward(&mut self, head: RequestHead, group: usize, out: &mut Outbox) {
        // The client waiting for 100 gets it from us; the upstream never sees the expectation.
        if head.expect_continue && head.version == Version::Http11 && head.framing != Framing::None
        {
            out.push_bytes(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.request_unread = head.framing != Framing::None;
        self.inbound = Inbound::Forwarding(Box::new(Forwarding {
            head,
            group,
            member: None,
            avoid: None,
            attempts: 0,
            link: Link::None,
            stale_forgiven: false,
            forward: None,
            answered: false,
        }));
    }

    /// A forwarded request waits for an upstream connection: its group, and a member to
    /// avoid (one that just failed it).
    pub fn upstream_wanted(&self) -> Option<(usize, Option<usize>)> {
        match &self.inbound {
            Inbound::Forwarding(f) if f.member.is_none() => Some((f.group, f.avoid)),
            _ => None,
        }
    }

    /// Whether the forwarded request could be sent again if its connection failed before any
    /// response byte: idempotent, without a body, and not a retry already. A shell takes a
    /// kept connection for one that could not without checking it is still open first.
    pub fn upstream_retryable(&self) -> bool {
        let Inbound::Forwarding(f) = &self.inbound else {
            return false;
        };
        f.attempts < 2
            && match &f.forward {
                Some(forward) => forward.can_retry(),
                None => {
                    matches!(f.head.framing, Framing::None | Framing::Length(0))
                        && f.head.method.is_idempotent()
                }
            }
    }

    /// Whether a kept connection must pass a peek before it carries the forwarded request:
    /// when the request could not be sent again, or a kept connection already failed it.
    pub fn upstream_needs_check(&self) -> bool {
        !self.upstream_retryable()
            || matches!(&self.inbound, Inbound::Forwarding(f) if f.stale_forgiven)
    }

    /// The shell has a connection to `member` for the forwarded request (`link`: in what
    /// state): the request is written for it.
    pub fn attach_upstream(&mut self, member: usize, link: Link, worker: &Worker) {
        let Inbound::Forwarding(forwarding) = &mut self.inbound else {
            return;
        };
        let Some(upstreams) = &worker.site().upstreams else {
            return;
        };
        let group = upstreams.group(forwarding.group);
        let target = upstreams.member(member);
        let upstream = group
            .rule
            .upstreams
            .iter()
            .find(|u| u.addr == target.addr)
            .unwrap_or(&group.rule.upstreams[0]);
        let head = &forwarding.head;
        let path = group
            .rule
            .upstream_path(head.path(), head.raw_path(), upstream);
        let host = match upstreams.settings().host {
            HostHeader::Keep => head.host().unwrap_or(&target.authority),
            HostHeader::Upstream => &target.authority,
        };
        let origin = Origin {
            client: self.peer.ip(),
            trusted: worker.site().is_trusted_proxy(self.peer.ip()),
            proto: match self.listener.scheme() {
                Scheme::Http => "http",
                Scheme::Https => "https",
            },
        };
        let framing = match head.framing {
            // An empty body a method with content has, or one the client framed: said so
            // upstream, as a client would (RFC 9110 section 8.6), so no server asks for a
            // length (`411`). A GET or HEAD, nearly every request, has none to say and
            // costs no look through its fields.
            Framing::None => match head.method {
                Method::Post | Method::Put | Method::Patch => BodyFraming::Length(0),
                Method::Get | Method::Head => BodyFraming::None,
                _ if head.header("content-length").is_some() => BodyFraming::Length(0),
                _ => BodyFraming::None,
            },
            Framing::Length(n) => BodyFraming::Length(n),
            Framing::Chunked => BodyFraming::Chunked,
        };
        let bytes = request_head(head, &path, host, &origin, framing);
        match &mut forwarding.forward {
            // A retry: the same request again, to another member (its path and host as that
            // member gets them).
            Some(forward) => forward.restart(bytes),
            None => {
                let forward = Forward::new(head.method, bytes, framing);
                forwarding.forward = Some(forward.passing_interim(head.version == Version::Http11));
            }
        }
        forwarding.member = Some(member);
        forwarding.link = link;
        forwarding.attempts += 1;
    }

    /// The connect of the current attempt completed.
    pub fn upstream_connected(&mut self) {
        if let Inbound::Forwarding(forwarding) = &mut self.inbound
            && forwarding.link == Link::Connecting
        {
            forwarding.link = Link::New;
        }
    }

    /// Whether the forwarded request waits for its upstream connection to be made.
    pub fn upstream_connecting(&self) -> bool {
        matches!(&self.inbound, Inbound::Forwarding(f) if f.link == Link::Connecting)
    }

    /// Whether a request is forwarded (with or without its upstream connection yet).
    pub fn is_forwarding(&self) -> bool {
        matches!(self.inbound, Inbound::Forwarding(_))
    }

    /// Whether the forwarded request waits for its response head.
    pub fn awaits_upstream_head(&self) -> bool {
        matches!(&self.inbound, Inbound::Forwarding(f) if !f.answered)
    }

    /// The forwarded request, once it has an upstream connection.
    fn forward(&self) -> Option<&Forward> {
        match &self.inbound {
            Inbound::Forwarding(f) => f.forward.as_ref(),
            _ => None,
        }
    }

    fn forward_mut(&mut self) -> Option<&mut Forward> {
        match &mut self.inbound {
            Inbound::Forwarding(f) => f.forward.as_mut(),
            _ => None,
        }
    }

    /// The forwarded request's bytes still to send upstream.
    pub fn upstream_output(&self) -> &[u8] {
        self.forward().map_or(&[], Forward::pending)
    }

    /// Records that `n` of them went out.
    pub fn upstream_sent(&mut self, n: usize) {
        if let Some(forward) = self.forward_mut() {
            forward.sent(n);
        }
    }

    /// Reads upstream bytes with `read` into the forwarded request's buffer (0: the upstream
    /// closed).
    pub fn upstream_fill(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        self.forward_mut()
            .map_or(Ok(0), |forward| forward.fill(read))
    }

    /// Passes on what the upstream bytes complete: answers the client when the head is in,
    /// queues body bytes, and ends the forwarding when the response is through.
    pub fn upstream_progress(&mut self, eof: bool, out: &mut Outbox, worker: &mut Worker) {
        if let Some(progress) = self.forward_mut().map(|f| f.process(eof, out)) {
            self.progressed(progress, out, worker);
        }
    }

    /// Acts on what the forward's upstream bytes amounted to.
    fn progressed(
        &mut self,
        progress: Result<Progress, ForwardFailure>,
        out: &mut Outbox,
        worker: &mut Worker,
    ) {
        match progress {
            Ok(Progress::Nothing) => {}
            Ok(Progress::Head(upstream)) => self.answer_upstream(upstream, out, worker),
            Ok(Progress::Complete { reusable }) => self.end_forward(reusable, false, worker),
            Err(failure) => self.forward_failed(failure, out, worker),
        }
    }

    /// Whether a request is forwarded whose body is not all taken from the client.
    pub fn forwarded_body_unread(&self) -> bool {
        self.forward().is_some_and(|f| !f.request_taken())
    }

    /// Splices request body bytes from the client into the forwarded request's pipe with
    /// `recv` (see [`Forward::fill_body_pipe`]), once every buffered body byte is taken.
    /// `None`: read the body as usual.
    pub fn fill_body_pipe(
        &mut self,
        input: &ReadBuf,
        recv: impl FnOnce(&mut Pipe, usize) -> std::io::Result<usize>,
    ) -> Option<std::io::Result<usize>> {
        if !input.data().is_empty() {
            return None;
        }
        self.forward_mut()?.fill_body_pipe(recv)
    }

    /// Request body bytes in the pipe, to go upstream after [`Exchange::upstream_output`].
    pub fn upstream_piped(&self) -> usize {
        self.forward().map_or(0, Forward::piped)
    }

    /// Sends piped request body bytes upstream with `send`.
    pub fn upstream_send_piped(
        &mut self,
        send: impl FnOnce(&mut Pipe) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        self.forward_mut().map_or(Ok(0), |f| f.send_piped(send))
    }

    /// How many response body bytes may be spliced to the client now (see
    /// [`Forward::splice_room`]).
    pub fn upstream_splice_room(&self) -> Option<u64> {
        self.forward()?.splice_room()
    }

    /// `n` response body bytes were spliced to the client (0: the upstream closed): ends the
    /// forwarding when the body is through.
    pub fn upstream_spliced(&mut self, n: usize, out: &mut Outbox, worker: &mut Worker) {
        if let Some(progress) = self.forward_mut().map(|f| f.spliced(n)) {
            self.progressed(progress, out, worker);
        }
    }

    /// The upstream's response head is in: the client is answered with it, then its body
    /// follows as it comes.
    fn answer_upstream(&mut self, upstream: UpstreamHead, out: &mut Outbox, worker: &mut Worker) {
        let Inbound::Forwarding(mut forwarding) =
            std::mem::replace(&mut self.inbound, Inbound::Head)
        else {
            return;
        };
        if let Some(member) = forwarding.member
            && let Some(upstreams) = &worker.site().upstreams
        {
            upstreams.answered(member);
        }
        let len = match upstream.framing {
            ResponseFraming::Length(n) => Some(n),
            ResponseFraming::None if forwarding.head.method == Method::Head => {
                upstream.content_length
            }
            ResponseFraming::None => Some(0),
            ResponseFraming::Chunked | ResponseFraming::UntilClose => None,
        };
        let mut response = Response::new(upstream.status).with_body(Body::Upstream(len));
        response.encoded_headers = Some(upstream.fields.clone());
        let taken = forwarding
            .forward
            .as_ref()
            .is_some_and(Forward::request_taken);
        // The client's body is not all read: the connection cannot carry another request.
        response.close = !taken;
        self.answer(Some(&forwarding.head), response, out, worker);
        let keep_going = !matches!(self.inbound, Inbound::Done);
        let chunked = out_is_chunked(&forwarding.head, &upstream);
        forwarding.answered = true;
        let progress = forwarding
            .forward
            .as_mut()
            .map(|forward| forward.start_body(&upstream, chunked, out));
        self.inbound = Inbound::Forwarding(forwarding);
        match progress {
            Some(Ok(Progress::Complete { reusable })) => {
                self.end_forward(reusable, !keep_going, worker)
            }
            Some(Err(failure)) => self.forward_failed(failure, out, worker),
            _ => {
                if !keep_going && let Inbound::Forwarding(f) = &mut self.inbound {
                    f.head.keep_alive = false;
                }
            }
        }
    }

    /// The response is through: the upstream connection is given back, and the exchange goes
    /// on with the next request (or ends, if the client's connection closes).
    fn end_forward(&mut self, reusable: bool, close: bool, worker: &mut Worker) {
        let Inbound::Forwarding(forwarding) = std::mem::replace(&mut self.inbound, Inbound::Head)
        else {
            return;
        };
        if let Some(member) = forwarding.member {
            self.released = Some(Released {
                member: member_index(member),
                reusable,
                failed: false,
            });
        }
        self.request_unread = false;
        if close || !forwarding.head.keep_alive || self.peer_closed {
            self.inbound = Inbound::Done;
        }
        // The next request's head is parsed into this one's allocations.
        worker.recycle_head(forwarding.head);
    }

    /// The upstream connection failed (refused, reset, closed) before the response was through.
    pub fn upstream_broke(&mut self, out: &mut Outbox, worker: &mut Worker) {
        let failure = match &self.inbound {
            Inbound::Forwarding(f) if f.answered => ForwardFailure::MidBody,
            _ => ForwardFailure::BeforeResponse,
        };
        self.forward_failed(failure, out, worker);
    }

    /// The client sent no more of a forwarded request's body in time: `408` before the
    /// response head, the connection closed after it; the upstream is not counted as failing.
    pub fn client_body_timed_out(&mut self, out: &mut Outbox, worker: &mut Worker) {
        self.forward_failed(ForwardFailure::ClientTimedOut, out, worker);
    }

    /// No upstream answered in time: `504` before the head, the client's connection closed
    /// after it.
    pub fn upstream_timed_out(&mut self, out: &mut Outbox, worker: &mut Worker) {
        let answered = matches!(&self.inbound, Inbound::Forwarding(f) if f.answered);
        let failure = if answered {
            ForwardFailure::MidBody
        } else {
            ForwardFailure::TimedOut
        };
        self.forward_failed(failure, out, worker);
    }

    /// No upstream can take the request (all down, or the connection could not be made).
    pub fn upstream_unavailable(&mut self, out: &mut Outbox, worker: &mut Worker) {
        self.forward_failed(ForwardFailure::BeforeResponse, out, worker);
    }

    fn forward_failed(&mut self, failure: ForwardFailure, out: &mut Outbox, worker: &mut Worker) {
        let Inbound::Forwarding(mut forwarding) =
            std::mem::replace(&mut self.inbound, Inbound::Head)
        else {
            return;
        };
        let member = forwarding.member.take();
        // A kept connection its server closed before it heard the request is no fault of the
        // member's: the retry may go to it again, on another connection.
        let stale = failure == ForwardFailure::BeforeResponse && forwarding.link == Link::Kept;
        // Whatever comes next (a retry, an answer), this attempt's connection is over.
        forwarding.link = Link::None;
        // Once per request, such a connection costs no attempt: after it the shell checks
        // kept connections before use, so the dead ones a restarted server left behind
        // cannot use up the attempts one after another.
        if stale && !forwarding.stale_forgiven {
            forwarding.stale_forgiven = true;
            forwarding.attempts = forwarding.attempts.saturating_sub(1);
        }
        let client_failed = matches!(
            failure,
            ForwardFailure::BadRequestBody(_) | ForwardFailure::ClientTimedOut
        );
        let member_failed = !client_failed && !stale;
        if let Some(member) = member {
            self.released = Some(Released {
                member: member_index(member),
                reusable: false,
                failed: member_failed,
            });
        }
        let retry = failure == ForwardFailure::BeforeResponse
            && forwarding.attempts < 2
            && forwarding.forward.as_ref().is_none_or(Forward::can_retry);
        if retry && member.is_some() {
            if let (Some(member), Some(upstreams)) = (member, &worker.site().upstreams) {
                upstreams.retried(member);
            }
            log::debug!("{}: upstream failed; trying another", self.peer);
            forwarding.avoid = if stale { None } else { member };
            self.inbound = Inbound::Forwarding(forwarding);
            return;
        }
        let head = forwarding.head;
        match failure {
            ForwardFailure::MidBody if forwarding.answered => {
                log::debug!("{}: upstream broke off mid-body; closing", self.peer);
                self.aborted = true;
                self.inbound = Inbound::Done;
                worker.recycle_head(head);
                return;
            }
            ForwardFailure::BadRequestBody(error) => {
                let mut response = Response::error(error.status());
                response.close = true;
                self.answer(Some(&head), response, out, worker);
                self.inbound = Inbound::Done;
            }
            _ if forwarding.answered => {
                self.aborted = true;
                self.inbound = Inbound::Done;
            }
            failure => {
                let status = match failure {
                    ForwardFailure::TimedOut => StatusCode::GATEWAY_TIMEOUT,
                    ForwardFailure::ClientTimedOut => RequestError::Timeout.status(),
                    _ => StatusCode::BAD_GATEWAY,
                };
                if let ForwardFailure::BadResponse(why) = failure {
                    log::warn!("{}: upstream response refused: {why:?}", self.peer);
                }
                let mut response = Response::error(status);
                // The client's body (if any) was not all read: the stream cannot be trusted.
                response.close = head.framing != Framing::None;
                self.answer(Some(&head), response, out, worker);
            }
        }
        worker.recycle_head(head);
    }

    /// The upstream connection to give back or drop, once the exchange is done with it.
    pub fn take_released(&mut self) -> Option<Released> {
        self.released.take()
    }

    /// Whether an upstream connection is about to be given back for reuse.
    pub fn releases_for_reuse(&self) -> bool {
        self.released.as_ref().is_some_and(|r| r.reusable)
    }

    /// The upstream connection about to be given back must not be reused after all.
    pub fn spoil_release(&mut self) {
        if let Some(released) = self.released.as_mut() {
            released.reusable = false;
        }
    }

    /// Whether a proxied response broke off (the connection closes without completing it).
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Starts collecting a body for a handler, refusing one that is declared too large.
    fn begin_body(
        &mut self,
        head: RequestHead,
        route: Route,
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
            handler: Some(route),
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
                    // Data past the limit before the error is 413, as when the same bytes
                    // arrive in pieces and the limit is checked between them.
                    let over = state.collected.as_ref().map_or(0, Vec::len) as u64 > limit;
                    let status = match over {
                        true => StatusCode::CONTENT_TOO_LARGE,
                        false => error.status(),
                    };
                    let handler_wanted_it = state.handler.is_some();
                    let head = state.head.clone();
                    self.inbound = Inbound::Done;
                    if handler_wanted_it {
                        let mut response = Response::error(status);
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
        if let (Some(route), Some(body)) = (handler, collected) {
            self.dispatch(head, body, route, out, worker);
        }
        true
    }

    /// Runs a handler: on this thread, or (a blocking route, on the event loop) on the
    /// worker pool, the exchange then waiting for its response.
    fn dispatch(
        &mut self,
        head: RequestHead,
        body: Vec<u8>,
        route: Route,
        out: &mut Outbox,
        worker: &mut Worker,
    ) {
        let state = worker.site().state.clone();
        if route.execution == Execution::Blocking && worker.has_pool() {
            let kept = head.clone();
            let request = Request::new(head, body, self.peer.addr(), route.params, state);
            match worker.submit(request, route.handler, self.ticket) {
                Ok(job) => {
                    self.inbound = Inbound::Waiting(Box::new(Waiting {
                        since: None,
                        job,
                        head: kept,
                    }));
                }
                Err(_) => {
                    let response =
                        Response::error(StatusCode::SERVICE_UNAVAILABLE).header("Retry-After", "1");
                    self.answer(Some(&kept), response, out, worker);
                    worker.recycle_head(kept);
                }
            }
            return;
        }
        let request = Request::new(head, body, self.peer.addr(), route.params, state);
        let mut response = pool::run(&route.handler, &request);
        worker.rules().apply_headers(request.path(), &mut response);
        if route.execution == Execution::Blocking {
            // The thread model: this is the connection's own thread, not an event loop.
            let accept = AcceptEncoding::parse(request.head().header_values("accept-encoding"));
            coding::compress_response(&mut response, &accept, coding::MAX_OFF_LOOP_COMPRESS);
        }
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
            coding::compress_response(&mut response, &accept, coding::MAX_ON_LOOP_COMPRESS);
        }
        if let Some(head) = head {
            worker.rules().decorate_cors(head, &mut response);
        }
        let mut response = worker.error_page(response);
        self.served = self.served.saturating_add(1);
        self.answered = true;
        let limit = worker.site().max_requests_per_connection;
        let sends_body =
            head.is_none_or(|h| h.method != Method::Head) && response.status.allows_body();
        // A stream's end is its last chunk; an HTTP/1.0 client knows it only by the close.
        let streamed = !response.body.has_length();
        let http10 = head.is_none_or(|h| h.version == Version::Http10);
        response.chunked = streamed && !http10 && response.status.allows_body();
        let close_delimited = streamed && http10 && sends_body;
        let keep_alive = head.is_some_and(|h| h.keep_alive)
            && !close_delimited
            && !response.close
            && !worker.is_draining()
            && !self.peer_closed
            && (limit == 0 || u64::from(self.served) < limit);
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
        let body_len = if sends_body { response.body.len() } else { 0 };
        let elapsed = self
            .started
            .map_or(std::time::Duration::ZERO, Stamp::elapsed);
        if worker.site().access_log
            && !response.quiet
            && log::log_enabled!(target: "margay::access", log::Level::Info)
        {
            self.log_access(head, response.status, body_len, elapsed, worker);
        }
        worker.count_response(head.map(|h| h.method), response.status, elapsed);
        if sends_body {
            if let Body::Stream(stream) = &response.body {
                stream.set_wake(worker.wake_for(self.ticket));
            }
            queue_body(response.body, response.chunked, out);
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
        worker: &mut Worker,
    ) {
        let mut line = worker.take_access_line();
        let site = worker.site();
        let entry = access_log::Entry {
            client: site.trusted_proxies.client(self.peer.ip(), head),
            peer: self.peer.addr(),
            head,
            status,
            bytes,
            elapsed,
            clf_time: worker.log_time(),
            iso_time: worker.log_time_iso(),
            tls: self.tls.as_deref().copied(),
        };
        entry.format_into(site.access_log_format, &mut line);
        log::info!(target: "margay::access", "{line}");
        worker.access_logged(line);
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
    let host = head.host()?;
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

/// Whether the client gets an upstream body as chunks: an HTTP/1.1 client, and a body whose
/// length is not known in advance.
fn out_is_chunked(head: &RequestHead, upstream: &UpstreamHead) -> bool {
    head.version == Version::Http11
        && matches!(
            upstream.framing,
            ResponseFraming::Chunked | ResponseFraming::UntilClose
        )
}

fn reader_for(framing: Framing) -> BodyReader {
    match framing {
        Framing::Chunked => BodyReader::Chunked(ChunkedDecoder::new()),
        Framing::Length(n) => BodyReader::Length(n),
        Framing::None => BodyReader::Length(0),
    }
}

fn queue_body(body: Body, chunked: bool, out: &mut Outbox) {
    match body {
        Body::Empty | Body::Upstream(_) => {}
        Body::Stream(stream) => out.push_stream(stream, chunked),
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

/// A member's index as [`Released`] keeps it.
fn member_index(member: usize) -> u32 {
    u32::try_from(member).expect("a proxy group has fewer than 2^32 members")
}
