//! The per-connection write queue: response heads and small bodies coalesced into one byte
//! buffer, large files as windows sent with `sendfile(2)`, flushed with as few syscalls as
//! possible and never more than a budget per turn.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// Bodies up to this size are copied next to their head so a response is one write.
const COPY_LIMIT: usize = 16 * 1024;
/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 64;

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
}

impl Chunk {
    fn remaining(&self) -> &[u8] {
        match self {
            Chunk::Bytes { buf, sent } => &buf[*sent..],
            Chunk::Shared { buf, sent } => &buf[*sent..],
            Chunk::File { .. } => &[],
        }
    }
}

/// How a flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Done,
    /// The socket would block: wait for writability.
    Blocked,
    /// The turn's budget is spent: let other connections run, then continue.
    Yielded,
}

/// Bytes and file windows waiting to be written, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    queued: usize,
}

impl Outbox {
    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// In-memory bytes waiting (file windows count a fixed small amount each), for
    /// back-pressure on pipelined requests.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The byte buffer at the tail, to encode a head straight into.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if !matches!(self.chunks.back(), Some(Chunk::Bytes { .. })) {
            self.chunks.push_back(Chunk::Bytes {
                buf: Vec::with_capacity(1024),
                sent: 0,
            });
        }
        match self.chunks.back_mut() {
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
            self.chunks.push_back(Chunk::Bytes {
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
            self.chunks.push_back(Chunk::Shared {
                buf: bytes,
                sent: 0,
            });
        }
    }

    /// Queues a window of a file.
    pub fn push_file(&mut self, file: Arc<File>, offset: u64, len: u64) {
        if len > 0 {
            self.queued += 256;
            self.chunks.push_back(Chunk::File {
                file,
                offset,
                left: len,
            });
        }
    }

    /// Drops everything queued (the peer is gone).
    pub fn clear(&mut self) {
        self.chunks = VecDeque::new();
        self.queued = 0;
    }

    /// Writes queued data to `socket`, at most about `budget` bytes this turn. Returns how
    /// the flush ended and how many bytes went out.
    pub fn write_to<S: Write + AsRawFd>(
        &mut self,
        socket: &mut S,
        budget: usize,
    ) -> io::Result<(Flush, usize)> {
        let mut written = 0;
        while let Some(front) = self.chunks.front() {
            if written >= budget {
                return Ok((Flush::Yielded, written));
            }
            let result = match front {
                Chunk::File { .. } => self.send_file(socket, budget - written),
                _ => self.write_bytes(socket),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((Flush::Blocked, written));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.queued = 0;
        if self.chunks.capacity() > 8 {
            self.chunks = VecDeque::new();
        }
        Ok((Flush::Done, written))
    }

    /// One `writev` of the leading in-memory chunks.
    fn write_bytes<S: Write>(&mut self, socket: &mut S) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for chunk in self.chunks.iter().take(MAX_SLICES) {
            if matches!(chunk, Chunk::File { .. }) {
                break;
            }
            slices[count] = IoSlice::new(chunk.remaining());
            count += 1;
        }
        let n = if count == 1 {
            socket.write(slices[0].as_ref())?
        } else {
            socket.write_vectored(&slices[..count])?
        };
        self.advance(n);
        Ok(n)
    }

    fn advance(&mut self, mut n: usize) {
        let written = n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let left = front.remaining().len();
            if n >= left {
                n -= left;
                self.chunks.pop_front();
            } else {
                match front {
                    Chunk::Bytes { sent, .. } | Chunk::Shared { sent, .. } => *sent += n,
                    Chunk::File { .. } => unreachable!("file chunks are not in a writev"),
                }
                n = 0;
            }
        }
        self.queued = self.queued.saturating_sub(written);
    }

    /// One bounded `sendfile(2)` from the front file window.
    fn send_file<S: AsRawFd>(&mut self, socket: &mut S, budget: usize) -> io::Result<usize> {
        let Some(Chunk::File { file, offset, left }) = self.chunks.front_mut() else {
            return Ok(0);
        };
        let count = (*left).min(budget.max(1) as u64).min(1 << 30) as usize;
        let mut off = *offset as libc::off_t;
        // SAFETY: both descriptors are open for the duration of the call (the socket is
        // borrowed, the file is held by the Arc), and `off` is a valid, exclusively borrowed
        // offset; sendfile neither keeps nor frees either.
        let sent = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let sent = sent as u64;
        if sent == 0 {
            // The file shrank under us: the promised length can no longer be kept.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file truncated while sending",
            ));
        }
        *offset += sent;
        *left -= sent;
        if *left == 0 {
            self.chunks.pop_front();
            self.queued = self.queued.saturating_sub(256);
        }
        Ok(sent as usize)
    }
}
