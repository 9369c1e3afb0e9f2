//! The per-connection write queue: response heads and small bodies coalesced into one byte
//! buffer, large files as windows of an open file. It offers what to write next (slices for
//! one `writev`, or a file window for `sendfile(2)`) and is told what went out; the transport
//! does the writing.

use crate::http::chunked::SizeLine;
use crate::http::stream::{BodyStream, Piece};
use crate::transport::pipe::Pipe;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::sync::Arc;

/// Bodies up to this size are copied next to their head so a response is one write.
const COPY_LIMIT: usize = 16 * 1024;
/// Most slices handed to one `writev`.
pub const MAX_SLICES: usize = 64;
/// What a queued file window counts toward [`Outbox::queued`].
const FILE_COST: usize = 256;

#[derive(Debug)]
enum Chunk {
    Bytes {
        buf: Vec<u8>,
        sent: usize,
    },
    Shared {
        buf: Arc<[u8]>,
        sent: usize,
    },
    File {
        file: Arc<File>,
        offset: u64,
        left: u64,
    },
    /// A streamed body: its pieces are taken (and framed) when it reaches the front.
    Stream {
        body: BodyStream,
        chunked: bool,
    },
    /// Body bytes held in a pipe, spliced from an upstream socket (never empty).
    Pipe(Pipe),
}

impl Chunk {
    fn remaining(&self) -> &[u8] {
        match self {
            Chunk::Bytes { buf, sent } => &buf[*sent..],
            Chunk::Shared { buf, sent } => &buf[*sent..],
            Chunk::File { .. } | Chunk::Stream { .. } | Chunk::Pipe(_) => &[],
        }
    }
}

/// What the outbox offers to write next.
#[derive(Debug)]
pub enum Pending<'a> {
    /// Nothing is queued.
    Nothing,
    /// `count` slices of bytes; `file_follows` when a file window comes right after them.
    Bytes {
        /// How many of the slices were filled in.
        count: usize,
        /// Whether a file window follows these bytes.
        file_follows: bool,
    },
    /// A streamed body whose next pieces must be taken first ([`Outbox::take_stream`]).
    Stream,
    /// Bytes held in a pipe ([`Outbox::send_piped`]).
    Pipe {
        /// How many.
        len: usize,
    },
    /// A window of an open file.
    File {
        /// The file.
        file: &'a File,
        /// Its first byte to send.
        offset: u64,
        /// How many bytes are left to send.
        len: u64,
    },
}

thread_local! {
    /// Byte buffers kept for reuse by this thread: connections' write buffers, so a response
    /// costs no allocation and an idle connection holds no buffer, and the request heads the
    /// proxy writes for upstream servers.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Most spare buffers a thread keeps, and the largest it keeps.
const SPARE_COUNT: usize = 64;
const SPARE_CAPACITY: usize = 64 * 1024;

/// An empty byte buffer, from the thread's spares if it has one.
pub(crate) fn take_buffer() -> Vec<u8> {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(4096))
}

/// Keeps `buf` for a later [`take_buffer`], unless it holds no allocation or too large a one.
pub(crate) fn give_buffer(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > SPARE_CAPACITY {
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARE_COUNT {
            spare.push(buf);
        }
    });
}

/// Bytes and file windows waiting to be written, in order: `front` first (the usual case,
/// heads and small bodies, needs nothing else), then `rest`.
#[derive(Debug, Default)]
pub struct Outbox {
    front: Vec<u8>,
    front_sent: usize,
    rest: VecDeque<Chunk>,
    queued: usize,
}

impl Outbox {
    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.front_sent == self.front.len() && self.rest.is_empty()
    }

    /// In-memory bytes waiting (file windows count a fixed small amount each), for
    /// back-pressure on pipelined requests.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The byte buffer at the tail, to encode a head straight into.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if self.rest.is_empty() {
            if self.front.capacity() == 0 {
                self.front = take_buffer();
            }
            return &mut self.front;
        }
        if !matches!(self.rest.back(), Some(Chunk::Bytes { .. })) {
            self.rest.push_back(Chunk::Bytes {
                buf: take_buffer(),
                sent: 0,
            });
        }
        match self.rest.back_mut() {
            Some(Chunk::Bytes { buf, .. }) => buf,
            _ => unreachable!("a byte chunk was just pushed"),
        }
    }

    /// Records bytes added through [`Outbox::tail`].
    pub fn added(&mut self, n: usize) {
        self.queued += n;
    }

    /// Queues a copy of `bytes`.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.tail().extend_from_slice(bytes);
        self.queued += bytes.len();
    }

    /// Queues owned bytes, copying small ones next to the previous chunk.
    pub fn push_vec(&mut self, bytes: Vec<u8>) {
        if bytes.len() <= COPY_LIMIT {
            self.push_bytes(&bytes);
        } else {
            self.queued += bytes.len();
            self.rest.push_back(Chunk::Bytes {
                buf: bytes,
                sent: 0,
            });
        }
    }

    /// Queues shared bytes (a cached file), copying small ones so a response is one write.
    pub fn push_shared(&mut self, bytes: Arc<[u8]>) {
        if bytes.len() <= COPY_LIMIT {
            self.push_bytes(&bytes);
        } else {
            self.queued += bytes.len();
            self.rest.push_back(Chunk::Shared {
                buf: bytes,
                sent: 0,
            });
        }
    }

    /// Queues a window of a file.
    pub fn push_file(&mut self, file: Arc<File>, offset: u64, len: u64) {
        if len > 0 {
            self.queued += FILE_COST;
            self.rest.push_back(Chunk::File {
                file,
                offset,
                left: len,
            });
        }
    }

    /// Drops everything queued (the peer is gone).
    pub fn clear(&mut self) {
        self.rest = VecDeque::new();
        self.front_sent = 0;
        give_buffer(std::mem::take(&mut self.front));
        self.queued = 0;
    }

    /// What to write next: fills `slices` with the front bytes and the in-memory chunks after
    /// them (up to a file window or [`MAX_SLICES`]), or names the file window at the front.
    pub fn pending<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> Pending<'a> {
        let front_done = self.front_sent == self.front.len();
        match self.rest.front() {
            Some(Chunk::File { file, offset, left }) if front_done => {
                return Pending::File {
                    file,
                    offset: *offset,
                    len: *left,
                };
            }
            Some(Chunk::Stream { .. }) if front_done => return Pending::Stream,
            Some(Chunk::Pipe(pipe)) if front_done => return Pending::Pipe { len: pipe.held() },
            _ => {}
        }
        let mut count = 0;
        if !front_done {
            slices[0] = IoSlice::new(&self.front[self.front_sent..]);
            count = 1;
        }
        let mut file_follows = false;
        for chunk in &self.rest {
            if matches!(chunk, Chunk::Stream { .. }) {
                break;
            }
            // Body bytes from a file or a pipe follow at once: the bytes before them may wait
            // to leave with their first ones.
            file_follows = matches!(chunk, Chunk::File { .. } | Chunk::Pipe(_));
            if count == MAX_SLICES || file_follows {
                break;
            }
            slices[count] = IoSlice::new(chunk.remaining());
            count += 1;
        }
        if count == 0 {
            return Pending::Nothing;
        }
        Pending::Bytes {
            count,
            file_follows,
        }
    }

    /// Marks `n` written bytes as sent: the front first, then whole or partial chunks.
    pub fn advance(&mut self, n: usize) {
        self.queued = self.queued.saturating_sub(n);
        let from_front = n.min(self.front.len() - self.front_sent);
        self.front_sent += from_front;
        let mut n = n - from_front;
        while n > 0 {
            let Some(chunk) = self.rest.front_mut() else {
                break;
            };
            let left = chunk.remaining().len();
            if n < left {
                match chunk {
                    Chunk::Bytes { sent, .. } | Chunk::Shared { sent, .. } => *sent += n,
                    Chunk::File { .. } | Chunk::Stream { .. } | Chunk::Pipe(_) => {
                        unreachable!("file, stream and pipe chunks are not in a writev")
                    }
                }
                break;
            }
            n -= left;
            if let Some(Chunk::Bytes { buf, .. }) = self.rest.pop_front() {
                give_buffer(buf);
            }
        }
    }

    /// Queues a streamed body: sent chunked (or as it comes, until the close, for HTTP/1.0)
    /// once everything before it is out.
    pub fn push_stream(&mut self, body: BodyStream, chunked: bool) {
        self.queued += FILE_COST;
        self.rest.push_back(Chunk::Stream { body, chunked });
    }

    /// Takes what the stream at the front holds, framed, into the queue before it; returns
    /// whether anything can be written now (false: the stream waits for its producer).
    pub fn take_stream(&mut self) -> bool {
        let Some(Chunk::Stream { body, chunked }) = self.rest.front() else {
            return true;
        };
        let chunked = *chunked;
        let taken = body.take();
        let mut framed = VecDeque::with_capacity(taken.pieces.len() * 3 + 1);
        for piece in taken.pieces {
            let len = match &piece {
                Piece::Owned(v) => v.len(),
                Piece::Shared(s) => s.len(),
            };
            if chunked {
                framed.push_back(Chunk::Bytes {
                    buf: SizeLine::new(len).as_bytes().to_vec(),
                    sent: 0,
                });
            }
            framed.push_back(match piece {
                Piece::Owned(buf) => Chunk::Bytes { buf, sent: 0 },
                Piece::Shared(buf) => Chunk::Shared { buf, sent: 0 },
            });
            if chunked {
                framed.push_back(Chunk::Bytes {
                    buf: b"\r\n".to_vec(),
                    sent: 0,
                });
            }
            self.queued += len;
        }
        let progress = !framed.is_empty() || taken.finished;
        if taken.finished {
            self.rest.pop_front();
            self.queued = self.queued.saturating_sub(FILE_COST);
            if chunked {
                framed.push_back(Chunk::Bytes {
                    buf: b"0\r\n\r\n".to_vec(),
                    sent: 0,
                });
            }
        }
        for chunk in framed.into_iter().rev() {
            self.rest.push_front(chunk);
        }
        progress
    }

    /// Whether body bytes wait in a pipe.
    pub fn holds_pipe(&self) -> bool {
        matches!(self.rest.back(), Some(Chunk::Pipe(_)))
    }

    /// Moves up to `len` more body bytes into a pipe with `fill` (given the pipe and how much
    /// it may take), queued after everything so far. Returns what `fill` did; `None` if no
    /// pipe could be had (the caller copies instead).
    pub fn fill_pipe(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut Pipe, usize) -> io::Result<usize>,
    ) -> Option<io::Result<usize>> {
        let mut pipe = Pipe::take()?;
        let result = fill(&mut pipe, len);
        if let Ok(n) = result {
            self.queued += n;
        }
        // An empty pipe goes back to the spares rather than wait in the queue.
        if pipe.held() > 0 {
            self.rest.push_back(Chunk::Pipe(pipe));
        }
        Some(result)
    }

    /// Sends from the pipe at the front with `send`; returns what it did.
    pub fn send_piped(
        &mut self,
        send: impl FnOnce(&mut Pipe) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let Some(Chunk::Pipe(pipe)) = self.rest.front_mut() else {
            return Ok(0);
        };
        let n = send(pipe)?;
        let empty = pipe.held() == 0;
        self.queued = self.queued.saturating_sub(n);
        if empty {
            self.rest.pop_front();
        }
        Ok(n)
    }

    /// Marks `n` bytes of the front file window as sent.
    pub fn file_sent(&mut self, n: u64) {
        let Some(Chunk::File { offset, left, .. }) = self.rest.front_mut() else {
            return;
        };
        let n = n.min(*left);
        *offset += n;
        *left -= n;
        if *left == 0 {
            self.rest.pop_front();
            self.queued = self.queued.saturating_sub(FILE_COST);
        }
    }
}
