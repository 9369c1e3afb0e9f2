//! The per-connection read buffer: bytes in at the end, requests out at a cursor, compacted
//! once per read rather than drained per request, and given back to a pool while idle. It
//! offers space to read into and is told what arrived; it never reads a socket itself.

/// Size of a fresh buffer; grows (up to `max`) only for unusually large heads.
const INITIAL: usize = 8 * 1024;

/// Buffers kept for reuse by one worker.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Box<[u8]>>,
}

impl BufferPool {
    /// Most buffers kept; the rest are freed.
    const KEEP: usize = 256;

    fn take(&mut self) -> Box<[u8]> {
        self.free
            .pop()
            .unwrap_or_else(|| vec![0; INITIAL].into_boxed_slice())
    }

    fn give(&mut self, buf: Box<[u8]>) {
        if self.free.len() < Self::KEEP && buf.len() == INITIAL {
            self.free.push(buf);
        }
    }
}

/// Bytes read from a socket and not yet parsed. Every idle connection keeps one (without its
/// buffer), so it is kept small: a boxed slice and two 32-bit cursors, 24 bytes.
#[derive(Debug, Default)]
pub struct ReadBuf {
    buf: Box<[u8]>,
    start: u32,
    end: u32,
}

impl ReadBuf {
    /// The unparsed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start as usize..self.end as usize]
    }

    /// Whether nothing is waiting to be parsed.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes as parsed.
    pub fn consume(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.start = self.start.saturating_add(n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The free space the next read should fill, made first (compacting, or growing up to
    /// `max` bytes, at most 4 GiB); `None` when `max` unparsed bytes are already held: parse
    /// before reading.
    pub fn space(&mut self, pool: &mut BufferPool, max: usize) -> Option<&mut [u8]> {
        let max = max.min(u32::MAX as usize);
        if self.buf.is_empty() {
            self.buf = pool.take();
        }
        if self.is_full(max) {
            return None;
        }
        let (start, end) = (self.start as usize, self.end as usize);
        if end == self.buf.len() {
            if start > 0 {
                self.buf.copy_within(start..end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let mut grown = std::mem::take(&mut self.buf).into_vec();
                grown.resize((grown.len() * 2).min(max), 0);
                self.buf = grown.into_boxed_slice();
            }
        }
        Some(&mut self.buf[self.end as usize..])
    }

    /// Whether `max` unparsed bytes are held: [`ReadBuf::space`] would give no room.
    pub fn is_full(&self, max: usize) -> bool {
        let max = max.min(u32::MAX as usize);
        self.start == 0 && self.end as usize == self.buf.len() && self.buf.len() >= max
    }

    /// Records that a read put `n` bytes at the start of the last [`ReadBuf::space`].
    pub fn filled(&mut self, n: usize) {
        // The buffer is at most 4 GiB (see `space`), so its length fits.
        let len = self.buf.len() as u32;
        self.end = self
            .end
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX))
            .min(len);
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

    /// Reads `source` into `buf` the way a connection does: once, into the offered space.
    fn read_once(
        buf: &mut ReadBuf,
        pool: &mut BufferPool,
        source: &mut &[u8],
        max: usize,
    ) -> Option<usize> {
        let space = buf.space(pool, max)?;
        let n = space.len().min(source.len());
        space[..n].copy_from_slice(&source[..n]);
        *source = &source[n..];
        buf.filled(n);
        Some(n)
    }

    #[test]
    fn reads_consumes_compacts_and_releases() {
        let mut pool = BufferPool::default();
        let mut buf = ReadBuf::default();
        let mut source: &[u8] = b"GET / HTTP/1.1\r\n\r\nrest";
        assert_eq!(
            read_once(&mut buf, &mut pool, &mut source, 64 * 1024),
            Some(22)
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
        read_once(&mut first, &mut pool, &mut source, 64 * 1024);
        let address = first.buf.as_ptr();
        first.recycle(&mut pool);
        assert_eq!(pool.free.len(), 1, "recycled though it still held bytes");

        let mut next = ReadBuf::default();
        let mut source: &[u8] = b"GET /next";
        read_once(&mut next, &mut pool, &mut source, 64 * 1024);
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
    fn grows_up_to_the_limit_then_offers_no_space() {
        let mut pool = BufferPool::default();
        let mut buf = ReadBuf::default();
        let big = vec![b'x'; 40 * 1024];
        let mut source: &[u8] = &big;
        let mut total = 0;
        while let Some(n) = read_once(&mut buf, &mut pool, &mut source, 16 * 1024) {
            total += n;
        }
        assert_eq!(total, 16 * 1024);
        assert_eq!(buf.data().len(), 16 * 1024);
        assert!(!source.is_empty(), "the source had more than the limit");
    }
}
