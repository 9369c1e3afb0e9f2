//! The per-connection read buffer: bytes in at the end, requests out at a cursor, compacted
//! once per read rather than drained per request, and given back to a pool while idle.

use std::io::{self, Read};

/// Size of a fresh buffer; grows (up to `max`) only for unusually large heads.
const INITIAL: usize = 8 * 1024;

/// Buffers kept for reuse by one worker.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    /// Most buffers kept; the rest are freed.
    const KEEP: usize = 256;

    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| vec![0; INITIAL])
    }

    fn give(&mut self, buf: Vec<u8>) {
        if self.free.len() < Self::KEEP && buf.len() == INITIAL {
            self.free.push(buf);
        }
    }
}

/// What one read brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// The peer closed its side.
    Eof,
    /// `n` bytes; `drained` when they did not fill the free space, so the socket had no more
    /// at that moment (a later arrival raises a new readiness edge).
    Bytes {
        /// How many bytes arrived.
        n: usize,
        /// Whether the read came up short of the space offered.
        drained: bool,
    },
    /// The buffer is at its size limit: parse before reading more.
    Full,
}

/// Bytes read from a socket and not yet parsed.
#[derive(Debug, Default)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    /// The unparsed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether nothing is waiting to be parsed.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes as parsed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once from `source` into free space, making room first (compacting, or growing
    /// up to `max` bytes).
    pub fn read_from(
        &mut self,
        source: &mut impl Read,
        pool: &mut BufferPool,
        max: usize,
    ) -> io::Result<Filled> {
        if self.buf.is_empty() {
            self.buf = pool.take();
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < max {
                let grown = (self.buf.len() * 2).min(max);
                self.buf.resize(grown, 0);
            } else {
                return Ok(Filled::Full);
            }
        }
        let space = self.buf.len() - self.end;
        let n = source.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(match n {
            0 => Filled::Eof,
            n => Filled::Bytes {
                n,
                drained: n < space,
            },
        })
    }

    /// Gives the buffer back to the pool if it holds nothing, so an idle connection costs no
    /// buffer memory.
    pub fn release(&mut self, pool: &mut BufferPool) {
        if self.is_empty() && !self.buf.is_empty() {
            pool.give(std::mem::take(&mut self.buf));
        }
    }

    /// Gives the buffer back when its connection ends, whatever it still holds (nothing more
    /// is parsed from it), so the next connection neither allocates nor zeroes one: a
    /// connection that carries one request and closes never goes idle to `release` it.
    pub fn recycle(self, pool: &mut BufferPool) {
        if !self.buf.is_empty() {
            pool.give(self.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_consumes_compacts_and_releases() {
        let mut pool = BufferPool::default();
        let mut buf = ReadBuf::default();
        let mut source: &[u8] = b"GET / HTTP/1.1\r\n\r\nrest";
        assert_eq!(
            buf.read_from(&mut source, &mut pool, 64 * 1024).unwrap(),
            Filled::Bytes {
                n: 22,
                drained: true
            }
        );
        buf.consume(18);
        assert_eq!(buf.data(), b"rest");
        buf.release(&mut pool);
        assert_eq!(pool.free.len(), 0, "a buffer holding bytes is kept");
        buf.consume(4);
        buf.release(&mut pool);
        assert_eq!(pool.free.len(), 1);
        assert!(buf.data().is_empty());
    }

    #[test]
    fn an_ended_connection_hands_its_buffer_to_the_next() {
        let mut pool = BufferPool::default();
        let mut first = ReadBuf::default();
        let mut source: &[u8] = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        first.read_from(&mut source, &mut pool, 64 * 1024).unwrap();
        let address = first.buf.as_ptr();
        first.recycle(&mut pool);
        assert_eq!(pool.free.len(), 1, "recycled though it still held bytes");

        let mut next = ReadBuf::default();
        let mut source: &[u8] = b"GET /next";
        next.read_from(&mut source, &mut pool, 64 * 1024).unwrap();
        assert_eq!(
            next.buf.as_ptr(),
            address,
            "the same allocation, not a new one"
        );
        assert_eq!(
            next.data(),
            b"GET /next",
            "nothing of the first connection shows"
        );

        ReadBuf::default().recycle(&mut pool);
        assert_eq!(
            pool.free.len(),
            0,
            "a connection that never read has nothing to give"
        );
    }

    #[test]
    fn grows_up_to_the_limit_then_stops_reading() {
        let mut pool = BufferPool::default();
        let mut buf = ReadBuf::default();
        let big = vec![b'x'; 40 * 1024];
        let mut source: &[u8] = &big;
        let mut total = 0;
        loop {
            match buf.read_from(&mut source, &mut pool, 16 * 1024).unwrap() {
                Filled::Full => break,
                Filled::Bytes { n, drained } => {
                    assert!(!drained, "the source had more than the space offered");
                    total += n;
                }
                Filled::Eof => panic!("the source is not exhausted"),
            }
        }
        assert_eq!(total, 16 * 1024);
        assert_eq!(buf.data().len(), 16 * 1024);
    }
}
