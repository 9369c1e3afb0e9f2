//! One request forwarded to an upstream server, without its sockets: the bytes to send (the
//! rewritten head, then the body re-framed as it arrives from the client), and the bytes
//! received (the response head, parsed strictly, then the body passed on with the framing
//! the client gets). Memory is bounded both ways: at most [`UPSTREAM_BUFFER`] bytes wait to
//! be sent upstream, and the caller reads from upstream only while the client keeps up.

use super::head::{
    BadUpstream, BodyFraming, ResponseFraming, UpstreamHead, interim_head, parse_response,
};
use crate::connection::outbox::{Outbox, give_buffer};
use crate::connection::readbuf::ReadBuf;
use crate::http::chunked::{ChunkedDecoder, SizeLine};
use crate::http::{Method, RequestError, StatusCode};
use crate::transport::pipe::Pipe;
use std::cell::RefCell;

/// Request bytes that may wait to be sent upstream before the client is read no further.
pub const UPSTREAM_BUFFER: usize = 64 * 1024;
/// Size of the buffer upstream bytes are read into.
const READ_BUFFER: usize = 16 * 1024;
/// A body with no more than this left is copied: one read and one write move it, where
/// splicing takes two calls and a pipe, and the copy lets it leave in one write with the head.
pub const SPLICE_MIN: u64 = READ_BUFFER as u64;
/// Read buffers a thread keeps for its next forwarded requests.
const SPARE_BUFFERS: usize = 64;

thread_local! {
    /// Read buffers of finished forwards, zeroed once when made and reused after.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Upstream bytes read and not yet consumed: the first `len` bytes of a buffer whose every
/// byte is initialised, so a read needs no zeroing first. The buffer goes back to the thread's
/// spares when the forward ends.
#[derive(Debug, Default)]
struct Received {
    buf: Vec<u8>,
    len: usize,
}

impl Received {
    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// Room for one read, after the bytes held (the buffer grows for a head larger than one
    /// read).
    fn room(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = SPARE
                .with(|spare| spare.borrow_mut().pop())
                .unwrap_or_default();
        }
        if self.buf.len() < self.len + READ_BUFFER {
            self.buf.resize(self.len + READ_BUFFER, 0);
        }
        &mut self.buf[self.len..self.len + READ_BUFFER]
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if self.buf.len() == READ_BUFFER {
            let buf = std::mem::take(&mut self.buf);
            SPARE.with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.len() < SPARE_BUFFERS {
                    spare.push(buf);
                }
            });
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        give_buffer(std::mem::take(&mut self.to_upstream));
    }
}

/// How the request body arrives from the client.
#[derive(Debug)]
enum RequestBody {
    /// No body, or all of it has been taken.
    Done,
    /// This many bytes still to take.
    Length(u64),
    /// Chunked: decoded, and sent upstream as chunks again.
    Chunked(ChunkedDecoder),
}

/// Where the response stands.
#[derive(Debug)]
enum Phase {
    /// Waiting for (more of) the head.
    Head,
    /// Passing the body on.
    Body {
        framing: ResponseFraming,
        /// Bytes still to come, for a `Length` body.
        left: u64,
        decoder: ChunkedDecoder,
        /// The client gets the body as chunks (true) or as it is (a length, or until the
        /// close).
        chunked_out: bool,
    },
    /// Complete.
    Done,
}

/// What upstream bytes amounted to.
#[derive(Debug)]
pub enum Progress {
    /// Nothing complete yet.
    Nothing,
    /// The response head: answer the client with it, then call [`Forward::start_body`].
    Head(UpstreamHead),
    /// The response is complete; the upstream connection may be reused if `reusable`.
    Complete {
        /// Whether the upstream connection can carry another request.
        reusable: bool,
    },
}

/// Why forwarding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection failed (refused, reset, closed) before any of the response arrived:
    /// `502`, and a request without a body may be tried again elsewhere.
    BeforeResponse,
    /// The response broke the rules: `502`.
    BadResponse(BadUpstream),
    /// The connection ended or broke while the body was under way: the client's connection
    /// is closed, so it cannot mistake a truncated body for a whole one.
    MidBody,
    /// The client's request body broke its framing.
    BadRequestBody(RequestError),
    /// No response head within the proxy timeout: `504`.
    TimedOut,
    /// The client sent no more of the request's body within its timeout: `408`, and the
    /// upstream is not to blame.
    ClientTimedOut,
}

/// One request on its way upstream and its response on its way back.
#[derive(Debug)]
pub struct Forward {
    method: Method,
    /// Bytes to send upstream, from `sent` on: the head first, then the body as it comes.
    to_upstream: Vec<u8>,
    sent: usize,
    body: RequestBody,
    /// Whether any body byte was taken from the client (then it cannot be sent again).
    body_taken: bool,
    /// Request body bytes spliced from the client's socket, to go upstream after
    /// `to_upstream`'s.
    body_pipe: Option<Pipe>,
    /// Upstream bytes not yet consumed.
    from_upstream: Received,
    phase: Phase,
    /// Whether the response head allows reusing the upstream connection.
    head_reusable: bool,
    /// Whether any response byte arrived.
    answered: bool,
    /// Whether the client may get interim responses (it speaks HTTP/1.1).
    interim_to_client: bool,
}

impl Forward {
    /// Forwards a request whose rewritten head is `head`, its body framed as that head says.
    pub fn new(method: Method, head: Vec<u8>, framing: BodyFraming) -> Forward {
        let body = match framing {
            BodyFraming::Chunked => RequestBody::Chunked(ChunkedDecoder::new()),
            BodyFraming::Length(n) if n > 0 => RequestBody::Length(n),
            BodyFraming::Length(_) | BodyFraming::None => RequestBody::Done,
        };
        Forward {
            method,
            to_upstream: head,
            sent: 0,
            body,
            body_taken: false,
            body_pipe: None,
            from_upstream: Received::default(),
            phase: Phase::Head,
            head_reusable: false,
            answered: false,
            interim_to_client: false,
        }
    }

    /// Passes the upstream's interim responses (`102`, `103`) on to the client: for a client
    /// that speaks HTTP/1.1 (RFC 9110 section 15.2; an HTTP/1.0 client must get none).
    pub fn passing_interim(mut self, yes: bool) -> Forward {
        self.interim_to_client = yes;
        self
    }

    /// Whether the request may be sent again to another upstream: nothing of the response
    /// arrived, no body byte was taken from the client, and the method is idempotent.
    pub fn can_retry(&self) -> bool {
        !self.answered
            && !self.body_taken
            && matches!(self.body, RequestBody::Done)
            && self.method.is_idempotent()
    }

    /// Starts over on another upstream connection with `head`, the request's head as written
    /// for it. Only a request that [can be retried](Forward::can_retry) starts over: nothing
    /// but its head was ever queued.
    pub fn restart(&mut self, head: Vec<u8>) {
        give_buffer(std::mem::replace(&mut self.to_upstream, head));
        self.sent = 0;
        self.from_upstream.clear();
        self.phase = Phase::Head;
    }

    /// Whether the whole request (head and body) has been taken from the client.
    pub fn request_taken(&self) -> bool {
        matches!(self.body, RequestBody::Done)
    }

    /// Whether the whole request went upstream: taken from the client and written. An
    /// upstream that answered before it read all of it is not sent another request: it
    /// would take that request's bytes for the rest of this one's body.
    fn request_sent(&self) -> bool {
        self.request_taken() && self.sent == self.to_upstream.len() && self.piped() == 0
    }

    /// Takes request body bytes from `input` while there is room to send them.
    pub fn take_body(&mut self, input: &mut ReadBuf) -> Result<(), Failure> {
        if matches!(self.body, RequestBody::Done) {
            return Ok(());
        }
        if self.to_upstream.len() - self.sent >= UPSTREAM_BUFFER || self.piped() > 0 {
            // Full, or spliced bytes wait: anything taken now would overtake them.
            return Ok(());
        }
        if self.sent > 0 && self.sent == self.to_upstream.len() {
            self.to_upstream.clear();
            self.sent = 0;
        }
        let room = UPSTREAM_BUFFER - (self.to_upstream.len() - self.sent);
        let data = input.data();
        let data = &data[..data.len().min(room)];
        let used = match &mut self.body {
            RequestBody::Done => return Ok(()),
            RequestBody::Length(left) => {
                let take = (*left).min(data.len() as u64) as usize;
                self.to_upstream.extend_from_slice(&data[..take]);
                *left -= take as u64;
                if *left == 0 {
                    self.body = RequestBody::Done;
                }
                take
            }
            RequestBody::Chunked(decoder) => {
                let mut decoded = Vec::new();
                let used = decoder
                    .decode(data, Some(&mut decoded))
                    .map_err(Failure::BadRequestBody)?;
                if !decoded.is_empty() {
                    self.to_upstream
                        .extend_from_slice(SizeLine::new(decoded.len()).as_bytes());
                    self.to_upstream.extend_from_slice(&decoded);
                    self.to_upstream.extend_from_slice(b"\r\n");
                }
                if decoder.is_done() {
                    self.to_upstream.extend_from_slice(b"0\r\n\r\n");
                    self.body = RequestBody::Done;
                }
                used
            }
        };
        self.body_taken |= used > 0;
        input.consume(used);
        Ok(())
    }

    /// Whether the rest of the request body may be spliced from the client's socket (once
    /// the caller has no body bytes buffered): framed by `Content-Length`, with more than
    /// [`SPLICE_MIN`] left.
    fn splices_body(&self) -> bool {
        matches!(self.body, RequestBody::Length(left) if left > SPLICE_MIN)
    }

    /// Fills the body pipe (taken first if there is none) with `recv`, given the pipe and how
    /// many bytes it may take, and counts what it took as body. `None`: the body is not
    /// spliced now (not one to splice, see [`Forward::splices_body`], or no pipe could be
    /// had): read it as usual.
    pub fn fill_body_pipe(
        &mut self,
        recv: impl FnOnce(&mut Pipe, usize) -> std::io::Result<usize>,
    ) -> Option<std::io::Result<usize>> {
        if !self.splices_body() {
            return None;
        }
        let RequestBody::Length(left) = &mut self.body else {
            return None;
        };
        if self.body_pipe.is_none() {
            self.body_pipe = Some(Pipe::take()?);
        }
        let pipe = self.body_pipe.as_mut()?;
        let result = recv(pipe, usize::try_from(*left).unwrap_or(usize::MAX));
        if let Ok(n) = result {
            *left -= (n as u64).min(*left);
            self.body_taken |= n > 0;
            if *left == 0 {
                self.body = RequestBody::Done;
            }
        }
        Some(result)
    }

    /// Body bytes in the pipe, to be sent upstream once [`Forward::pending`]'s are.
    pub fn piped(&self) -> usize {
        self.body_pipe.as_ref().map_or(0, Pipe::held)
    }

    /// Sends from the body pipe with `send`; returns what it did.
    pub fn send_piped(
        &mut self,
        send: impl FnOnce(&mut Pipe) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        match self.body_pipe.as_mut() {
            Some(pipe) if pipe.held() > 0 => send(pipe),
            _ => Ok(0),
        }
    }

    /// Bytes waiting to be sent upstream.
    pub fn pending(&self) -> &[u8] {
        &self.to_upstream[self.sent..]
    }

    /// Records that `n` of them went out.
    pub fn sent(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.to_upstream.len());
    }

    /// Reads upstream bytes with `read` (one read into a bounded buffer); returns what it
    /// returned, 0 being the upstream's end of stream.
    pub fn fill(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let result = read(self.from_upstream.room());
        let n = *result.as_ref().unwrap_or(&0);
        self.from_upstream.len += n.min(READ_BUFFER);
        if n > 0 {
            self.answered = true;
        }
        result
    }

    /// Passes on what the bytes read so far complete (`eof`: the upstream closed): the head
    /// as [`Progress::Head`], body bytes into `out` with the client's framing.
    pub fn process(&mut self, eof: bool, out: &mut Outbox) -> Result<Progress, Failure> {
        self.advance(out, eof)
    }

    fn advance(&mut self, out: &mut Outbox, eof: bool) -> Result<Progress, Failure> {
        loop {
            match &mut self.phase {
                Phase::Head => {
                    match parse_response(self.from_upstream.data(), self.method) {
                        Err(bad) => return Err(Failure::BadResponse(bad)),
                        Ok(None) if eof && self.from_upstream.is_empty() => {
                            return Err(Failure::BeforeResponse);
                        }
                        Ok(None) if eof => {
                            return Err(Failure::BadResponse(BadUpstream::Malformed));
                        }
                        Ok(None) => return Ok(Progress::Nothing),
                        Ok(Some((head, len))) => {
                            self.from_upstream.consume(len);
                            // An interim response: the final one follows. A `100` is not
                            // passed on: the client's expectation was met here, and the
                            // upstream never saw it.
                            if head.status.as_u16() < 200 {
                                if self.interim_to_client && head.status != StatusCode::CONTINUE {
                                    out.push_bytes(&interim_head(&head));
                                }
                                continue;
                            }
                            return Ok(Progress::Head(head));
                        }
                    }
                }
                Phase::Body { .. } => return self.pass_body(out, eof),
                Phase::Done => return Ok(Progress::Nothing),
            }
        }
    }

    /// After the client was answered with the head: pass the body on as `framing` says, as
    /// chunks if `chunked_out`. Returns what the bytes already read amount to.
    pub fn start_body(
        &mut self,
        head: &UpstreamHead,
        chunked_out: bool,
        out: &mut Outbox,
    ) -> Result<Progress, Failure> {
        let left = match head.framing {
            ResponseFraming::Length(n) => n,
            _ => 0,
        };
        self.phase = Phase::Body {
            framing: head.framing,
            left,
            decoder: ChunkedDecoder::new(),
            chunked_out,
        };
        self.head_reusable = head.reusable;
        self.pass_body(out, false)
    }

    /// How many more response body bytes may go to the client as they come, without being
    /// looked at: the rest of a body framed by `Content-Length` and passed on as it is, once
    /// every byte read before is passed on, if more than [`SPLICE_MIN`] are left. The caller may then splice them ([`Forward::spliced`]).
    pub fn splice_room(&self) -> Option<u64> {
        match self.phase {
            Phase::Body {
                framing: ResponseFraming::Length(_),
                left,
                chunked_out: false,
                ..
            } if left > SPLICE_MIN && self.from_upstream.is_empty() => Some(left),
            _ => None,
        }
    }

    /// Records that `n` body bytes went to the client outside the read buffer (0: the upstream
    /// closed).
    pub fn spliced(&mut self, n: usize) -> Result<Progress, Failure> {
        let Phase::Body { left, .. } = &mut self.phase else {
            return Ok(Progress::Nothing);
        };
        if n == 0 {
            return Err(Failure::MidBody);
        }
        *left = left.saturating_sub(n as u64);
        if *left > 0 {
            return Ok(Progress::Nothing);
        }
        self.phase = Phase::Done;
        Ok(Progress::Complete {
            reusable: self.request_sent() && self.head_reusable,
        })
    }

    fn pass_body(&mut self, out: &mut Outbox, eof: bool) -> Result<Progress, Failure> {
        let Phase::Body {
            framing,
            left,
            decoder,
            chunked_out,
        } = &mut self.phase
        else {
            return Ok(Progress::Nothing);
        };
        // Body bytes are copied once, from the read buffer into the client's output.
        let data = self.from_upstream.data();
        let (consumed, complete) = match framing {
            ResponseFraming::None => (0, true),
            ResponseFraming::Length(_) => {
                let take = (*left).min(data.len() as u64) as usize;
                if take > 0 {
                    out.push_bytes(&data[..take]);
                }
                *left -= take as u64;
                (take, *left == 0)
            }
            ResponseFraming::Chunked => {
                let mut decoded = Vec::new();
                let used = decoder
                    .decode(data, Some(&mut decoded))
                    .map_err(|_| Failure::MidBody)?;
                push_piece(out, &decoded, *chunked_out);
                (used, decoder.is_done())
            }
            ResponseFraming::UntilClose => {
                push_piece(out, data, *chunked_out);
                (data.len(), eof)
            }
        };
        let chunked_out = *chunked_out;
        let framing = *framing;
        self.from_upstream.consume(consumed);
        if complete {
            if chunked_out {
                out.push_bytes(b"0\r\n\r\n");
            }
            self.phase = Phase::Done;
            let reusable = framing != ResponseFraming::UntilClose
                && self.from_upstream.is_empty()
                && self.request_sent()
                && self.head_reusable;
            return Ok(Progress::Complete { reusable });
        }
        if eof {
            return Err(Failure::MidBody);
        }
        Ok(Progress::Nothing)
    }
}

/// Queues a decoded body piece for the client, as a chunk or as it is.
fn push_piece(out: &mut Outbox, piece: &[u8], chunked: bool) {
    if piece.is_empty() {
        return;
    }
    if chunked {
        out.push_bytes(SizeLine::new(piece.len()).as_bytes());
        out.push_bytes(piece);
        out.push_bytes(b"\r\n");
    } else {
        out.push_bytes(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::readbuf::BufferPool;

    const BODY: &[u8] = b"0123456789";

    /// A `POST` with [`BODY`] whose body was wholly taken from the client, of which the
    /// upstream has taken `unsent` bytes less than all.
    fn posted(unsent: usize) -> Forward {
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", BODY.len());
        let framing = BodyFraming::Length(BODY.len() as u64);
        let mut forward = Forward::new(Method::Post, head.into_bytes(), framing);
        let (mut pool, mut input) = (BufferPool::default(), ReadBuf::default());
        input.space(&mut pool, 1024).unwrap()[..BODY.len()].copy_from_slice(BODY);
        input.filled(BODY.len());
        forward.take_body(&mut input).unwrap();
        assert!(forward.request_taken());
        let n = forward.pending().len() - unsent;
        forward.sent(n);
        forward
    }

    /// Answers `forward` with a kept-alive `200` whose body is `len` bytes, all but
    /// `spliced` of them read with the head; returns the progress that completes it.
    fn answer(forward: &mut Forward, len: usize, spliced: usize) -> Progress {
        let mut bytes = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        bytes.resize(bytes.len() + len - spliced, b'x');
        forward
            .fill(|room| {
                room[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            })
            .unwrap();
        let mut out = Outbox::default();
        let Ok(Progress::Head(head)) = forward.process(false, &mut out) else {
            panic!("no head");
        };
        let progress = forward.start_body(&head, false, &mut out).unwrap();
        if spliced == 0 {
            return progress;
        }
        assert!(forward.splice_room() == Some(spliced as u64));
        forward.spliced(spliced).unwrap()
    }

    #[test]
    fn an_upstream_is_reused_only_once_the_whole_request_went_out() {
        // An upstream that answers before it read the whole body would take the next
        // request's bytes for the rest of this one's: it is kept only if nothing is unsent,
        // whether the answer's body was copied or spliced.
        for (len, spliced) in [(2, 0), (40_000, 30_000)] {
            for unsent in [0, 1, BODY.len()] {
                let mut forward = posted(unsent);
                let progress = answer(&mut forward, len, spliced);
                let Progress::Complete { reusable } = progress else {
                    panic!("{len}-byte answer incomplete: {progress:?}");
                };
                assert_eq!(
                    reusable,
                    unsent == 0,
                    "{unsent} bytes unsent, {len}-byte answer"
                );
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Any upstream bytes, cut anywhere.

    use proptest::prelude::*;

    /// How a generated response frames its body.
    #[derive(Debug, Clone)]
    enum Frame {
        Length,
        /// Chunk sizes (the body is cut into chunks of these lengths, the rest in one more),
        /// and whether the chunks carry extensions and the message a trailer.
        Chunked(Vec<usize>, bool, bool),
        UntilClose,
        /// A `204` or `304`, whose body (if the upstream sends one) is not part of it.
        NoBody(u16),
    }

    /// A generated upstream response and what it should amount to.
    #[derive(Debug, Clone)]
    struct Generated {
        bytes: Vec<u8>,
        /// Where the message ends (`None`: at the close).
        end: Option<usize>,
        status: u16,
        /// The body the client should get.
        body: Vec<u8>,
        /// Whether a byte was overwritten: then only the cut-anywhere rule is checked.
        corrupted: bool,
    }

    fn generated() -> impl Strategy<Value = (Generated, bool, bool)> {
        let frame = prop_oneof![
            Just(Frame::Length),
            (
                prop::collection::vec(1usize..3000, 0..6),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(sizes, ext, trailer)| Frame::Chunked(sizes, ext, trailer)),
            Just(Frame::UntilClose),
            prop_oneof![Just(204u16), Just(304)].prop_map(Frame::NoBody),
        ];
        (
            frame,
            prop::collection::vec(any::<u8>(), 0..40_000),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(frame, body, interim, extra, corrupt, head_req, http10)| {
                let mut sent = build(&frame, &body, interim, &extra, head_req);
                if let Some((at, byte)) = corrupt {
                    let at = at.index(sent.bytes.len());
                    sent.corrupted = sent.bytes[at] != byte;
                    sent.bytes[at] = byte;
                }
                (sent, head_req, http10)
            })
    }

    fn build(frame: &Frame, body: &[u8], interim: bool, extra: &[u8], head_req: bool) -> Generated {
        let mut bytes = Vec::new();
        if interim {
            bytes.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");
        }
        let status = match frame {
            Frame::NoBody(status) => *status,
            _ => 200,
        };
        bytes.extend_from_slice(format!("HTTP/1.1 {status} OK\r\nX-A: b\r\n").as_bytes());
        match frame {
            Frame::Length => {
                bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes())
            }
            Frame::Chunked(..) => bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Frame::UntilClose | Frame::NoBody(_) => {}
        }
        bytes.extend_from_slice(b"\r\n");
        let head_end = bytes.len();
        match frame {
            Frame::Length | Frame::UntilClose | Frame::NoBody(_) => bytes.extend_from_slice(body),
            Frame::Chunked(sizes, ext, trailer) => {
                let mut rest = body;
                for size in sizes.iter().copied().chain([usize::MAX]) {
                    let piece = &rest[..size.min(rest.len())];
                    rest = &rest[piece.len()..];
                    if piece.is_empty() {
                        continue;
                    }
                    let ext = if *ext { ";a=b" } else { "" };
                    bytes.extend_from_slice(format!("{:x}{ext}\r\n", piece.len()).as_bytes());
                    bytes.extend_from_slice(piece);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n");
                if *trailer {
                    bytes.extend_from_slice(b"X-T: 1\r\n");
                }
                bytes.extend_from_slice(b"\r\n");
            }
        }
        let without_body = head_req || matches!(frame, Frame::NoBody(_));
        let end = match frame {
            _ if without_body => Some(head_end),
            Frame::UntilClose => None,
            _ => Some(bytes.len()),
        };
        if end.is_some() {
            bytes.extend_from_slice(extra);
        }
        Generated {
            bytes,
            end,
            status,
            body: if without_body {
                Vec::new()
            } else {
                body.to_vec()
            },
            corrupted: false,
        }
    }

    /// What feeding a forward some upstream bytes came to.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        status: Option<u16>,
        /// `Some(reusable)` once complete.
        complete: Option<bool>,
        failure: Option<Failure>,
        /// Upstream bytes fed when it completed or failed.
        fed: usize,
        /// The body bytes queued for the client, raw (chunks as they were made).
        out: Vec<u8>,
        chunked_out: bool,
    }

    /// Feeds `bytes` to a forward for a `GET` (or `HEAD`) in reads that stop at each of
    /// `cuts` (and at the read buffer's size), then the upstream's close.
    fn feed(bytes: &[u8], cuts: &[usize], head_req: bool, http10: bool) -> Outcome {
        let method = if head_req { Method::Head } else { Method::Get };
        let request = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let mut forward = Forward::new(method, request, BodyFraming::None);
        forward.sent(forward.pending().len());
        let mut outcome = Outcome {
            status: None,
            complete: None,
            failure: None,
            fed: 0,
            out: Vec::new(),
            chunked_out: false,
        };
        let mut out = Outbox::default();
        let mut stops: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        stops.push(bytes.len());
        stops.sort_unstable();
        let mut at = 0;
        let mut stops = stops.into_iter().peekable();
        loop {
            while stops.peek().is_some_and(|&s| s <= at) && at < bytes.len() {
                stops.next();
            }
            let eof = at == bytes.len();
            if !eof {
                let stop = stops.peek().copied().unwrap_or(bytes.len());
                let n = forward
                    .fill(|room| {
                        let n = room.len().min(stop - at);
                        room[..n].copy_from_slice(&bytes[at..at + n]);
                        Ok(n)
                    })
                    .unwrap();
                at += n;
            }
            let mut progress = forward.process(eof, &mut out);
            if let Ok(Progress::Head(head)) = progress {
                outcome.status = Some(head.status.as_u16());
                outcome.chunked_out = !http10
                    && matches!(
                        head.framing,
                        ResponseFraming::Chunked | ResponseFraming::UntilClose
                    );
                progress = forward.start_body(&head, outcome.chunked_out, &mut out);
            }
            outcome.out.extend(crate::transport::drain(&mut out));
            match progress {
                Ok(Progress::Complete { reusable }) => outcome.complete = Some(reusable),
                Err(failure) => outcome.failure = Some(failure),
                Ok(_) if eof => {}
                Ok(_) => continue,
            }
            outcome.fed = at;
            return outcome;
        }
    }

    /// Decodes a chunked body that must end exactly at the end of `raw`.
    fn dechunk(raw: &[u8]) -> Vec<u8> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let used = decoder.decode(raw, Some(&mut body)).expect("valid chunks");
        assert!(decoder.is_done(), "the chunks do not end");
        assert_eq!(used, raw.len(), "bytes after the last chunk");
        body
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Whatever an upstream sends, cut wherever, the forward never panics and comes to the
        /// same status, outcome and body as for the bytes in one piece; a well-formed response
        /// reaches the client as exactly its body, framed for the client, with nothing that
        /// followed it; and the connection is reusable only if nothing followed it yet.
        #[test]
        fn upstream_bytes_cut_anywhere_give_the_same_answer(
            (sent, head_req, http10) in generated(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = feed(&sent.bytes, &[], head_req, http10);
            let cut = feed(&sent.bytes, &cuts, head_req, http10);
            prop_assert_eq!(cut.status, whole.status);
            prop_assert_eq!(cut.failure, whole.failure);
            prop_assert_eq!(cut.complete.is_some(), whole.complete.is_some());
            let body = |o: &Outcome| if o.chunked_out { dechunk(&o.out) } else { o.out.clone() };
            if whole.complete.is_some() {
                prop_assert!(body(&cut) == body(&whole), "bodies differ");
            }
            if sent.corrupted {
                return Ok(());
            }
            prop_assert_eq!(whole.status, Some(sent.status));
            prop_assert_eq!(whole.failure, None);
            for outcome in [&whole, &cut] {
                let reusable = outcome.complete.expect("complete");
                prop_assert!(body(outcome) == sent.body, "not the body sent");
                match sent.end {
                    // Reusable exactly when nothing past the message was read with it.
                    Some(end) => prop_assert_eq!(reusable, outcome.fed == end),
                    None => prop_assert!(!reusable),
                }
            }
        }
    }
}
