//! The per-connection write queue: response heads and small bodies coalesced into one byte
//! buffer, large files as windows sent with `sendfile(2)`, flushed with as few syscalls as
//! possible and never more than a budget per turn.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd};
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

thread_local! {
    /// Write buffers kept for reuse by this thread's connections, so a response costs no
    /// allocation and an idle connection holds no buffer.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Most spare buffers a thread keeps, and the largest it keeps.
const SPARE_COUNT: usize = 64;
const SPARE_CAPACITY: usize = 64 * 1024;

fn take_buffer() -> Vec<u8> {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(4096))
}

fn give_buffer(mut buf: Vec<u8>) {
    if buf.capacity() > SPARE_CAPACITY {
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
            self.queued += 256;
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

    /// Writes queued data to `socket`, at most about `budget` bytes this turn. Returns how
    /// the flush ended and how many bytes went out.
    ///
    /// `then_close`: the connection closes (or shuts down its sending side) as soon as this
    /// output is out. The bytes then go with `MSG_MORE`, so the last of them wait the few
    /// microseconds for the FIN and leave in one segment with it: one packet fewer for both
    /// ends to handle per closed connection.
    pub fn write_to<S: Write + AsFd>(
        &mut self,
        socket: &mut S,
        budget: usize,
        then_close: bool,
    ) -> io::Result<(Flush, usize)> {
        let mut written = 0;
        while !self.is_empty() {
            if written >= budget {
                return Ok((Flush::Yielded, written));
            }
            let result = if self.front_sent == self.front.len()
                && matches!(self.rest.front(), Some(Chunk::File { .. }))
            {
                self.send_file(socket, budget - written)
            } else {
                self.write_bytes(socket, then_close)
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
        self.clear();
        Ok((Flush::Done, written))
    }

    /// One `write`/`writev` of the front bytes and the in-memory chunks after them.
    fn write_bytes<S: Write + AsFd>(
        &mut self,
        socket: &mut S,
        then_close: bool,
    ) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        if self.front_sent < self.front.len() {
            slices[0] = IoSlice::new(&self.front[self.front_sent..]);
            count = 1;
        }
        let mut file_follows = false;
        for chunk in &self.rest {
            file_follows = matches!(chunk, Chunk::File { .. });
            if count == MAX_SLICES || file_follows {
                break;
            }
            slices[count] = IoSlice::new(chunk.remaining());
            count += 1;
        }
        let n = if file_follows || then_close {
            // MSG_MORE: the head waits for the file's first bytes (or the last bytes for the
            // FIN) and leaves in the same segment, rather than as a tiny packet of its own.
            let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL;
            socket2::SockRef::from(&*socket).send_vectored_with_flags(&slices[..count], flags)?
        } else if count == 1 {
            socket.write(&slices[0])?
        } else {
            socket.write_vectored(&slices[..count])?
        };
        self.advance(n);
        Ok(n)
    }

    /// Marks `n` written bytes as sent: the front first, then whole or partial chunks.
    fn advance(&mut self, n: usize) {
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
                    Chunk::File { .. } => unreachable!("file chunks are not in a writev"),
                }
                break;
            }
            n -= left;
            if let Some(Chunk::Bytes { buf, .. }) = self.rest.pop_front() {
                give_buffer(buf);
            }
        }
    }

    /// One bounded `sendfile(2)` from the front file window.
    fn send_file<S: AsFd>(&mut self, socket: &mut S, budget: usize) -> io::Result<usize> {
        let Some(Chunk::File { file, offset, left }) = self.rest.front_mut() else {
            return Ok(0);
        };
        let count = (*left).min(budget.max(1) as u64).min(1 << 30) as usize;
        let mut off = *offset as libc::off_t;
        // SAFETY: both descriptors are open for the duration of the call (the socket is
        // borrowed, the file is held by the Arc), and `off` is a valid, exclusively borrowed
        // offset; sendfile neither keeps nor frees either.
        let sent = unsafe {
            libc::sendfile(
                socket.as_fd().as_raw_fd(),
                file.as_raw_fd(),
                &mut off,
                count,
            )
        };
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
            self.rest.pop_front();
            self.queued = self.queued.saturating_sub(256);
        }
        Ok(sent as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    fn drain(outbox: &mut Outbox) -> Vec<u8> {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        let (flush, written) = outbox.write_to(&mut ours, usize::MAX, false).unwrap();
        assert_eq!(flush, Flush::Done);
        drop(ours);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), written);
        got
    }

    #[test]
    fn bytes_shared_and_file_windows_go_out_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"0123456789").unwrap();
        let file = Arc::new(file);
        let big: Vec<u8> = (0..COPY_LIMIT + 10).map(|i| i as u8).collect();
        let mut outbox = Outbox::default();
        outbox.push_bytes(b"head1|");
        outbox.push_shared(Arc::from(&b"small|"[..]));
        outbox.push_file(file.clone(), 2, 3);
        outbox.push_bytes(b"|head2|");
        outbox.push_vec(big.clone());
        outbox.push_file(file, 0, 10);
        assert!(!outbox.is_empty());
        let mut expected = b"head1|small|234|head2|".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"0123456789");
        assert_eq!(drain(&mut outbox), expected);
        assert!(outbox.is_empty());
        assert_eq!(outbox.queued(), 0);
    }

    #[test]
    fn a_full_socket_blocks_and_the_rest_follows_later() {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let mut outbox = Outbox::default();
        outbox.push_vec(payload.clone());
        let (flush, first) = outbox.write_to(&mut ours, usize::MAX, false).unwrap();
        assert_eq!(flush, Flush::Blocked);
        assert!(first < payload.len());
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        loop {
            match outbox.write_to(&mut ours, 64 * 1024, false).unwrap() {
                (Flush::Done, _) => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        drop(ours);
        assert_eq!(reader.join().unwrap(), payload);
    }

    #[test]
    fn a_large_file_goes_out_in_pieces_no_bigger_than_the_budget() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        std::io::Write::write_all(&mut file, &content).unwrap();
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        let mut outbox = Outbox::default();
        outbox.push_bytes(b"head|");
        outbox.push_file(Arc::new(file), 0, content.len() as u64);
        let budget = 64 * 1024;
        let mut turns = 0;
        loop {
            let (flush, written) = outbox.write_to(&mut ours, budget, false).unwrap();
            // A turn may finish the piece it started, never run on past the budget.
            assert!(written <= budget + 5, "turn {turns} wrote {written}");
            turns += 1;
            if flush == Flush::Done {
                break;
            }
        }
        drop(ours);
        assert!(turns >= content.len() / budget, "{turns} turns");
        let mut expected = b"head|".to_vec();
        expected.extend_from_slice(&content);
        assert_eq!(reader.join().unwrap(), expected);
    }
}
