//! What sits between a socket and a connection's core. A [`Transport`] moves plaintext: plain
//! TCP passes bytes straight through (and sends files with `sendfile(2)`); TLS, when it comes,
//! encrypts on the way out and decrypts on the way in. The core never knows which it has.
//!
//! [`pump`] is the one loop that moves bytes between a transport and a
//! [`Connection`](crate::connection::Connection): the event loop and the thread model both
//! call it, so they share every read, write, linger and timeout decision.

pub(crate) mod pipe;
mod plain;
mod pump;
mod stream;
pub(crate) mod tls;
mod upstream;

pub use plain::Plain;
pub use pump::{Input, expire, pump};
pub use stream::Stream;
pub use tls::Tls;
pub use upstream::pump_upstream;

use crate::connection::outbox::{MAX_SLICES, Outbox, Pending};
use pipe::Pipe;
use std::fs::File;
use std::io::{self, IoSlice};

/// A byte stream between a socket and a connection core. Reads and writes follow the
/// non-blocking convention: `WouldBlock` means "not now", `Ok(0)` from `read` means the peer
/// closed its side.
pub trait Transport {
    /// Reads plaintext into `buf`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes plaintext from `bufs`; `more`: further bytes follow at once (a file, or the end
    /// of the connection), so a small write may wait for them and leave in the same segment.
    fn write(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize>;

    /// Sends up to `len` bytes of `file` from `offset`; returns how many went out (0: the file
    /// ended before `offset`).
    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize>;

    /// Whether the transport can move bytes to and from a [`Pipe`] with `splice(2)` (plain
    /// TCP can; TLS must see every byte).
    fn splices(&self) -> bool {
        false
    }

    /// Sends up to `len` of the bytes `pipe` holds; `more` as for [`Transport::write`].
    fn send_piped(&mut self, _pipe: &mut Pipe, _len: usize, _more: bool) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Reads up to `len` bytes into `pipe` (0: the peer closed).
    fn recv_piped(&mut self, _pipe: &mut Pipe, _len: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Whether the peer sent bytes not read yet, or closed (a look, not a read). Unknown
    /// counts as yes.
    fn has_unread(&self) -> bool {
        true
    }

    /// Ends our sending side, once everything written so far is out.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Whether the transport holds bytes of its own still to send (TLS records a full socket
    /// did not take); the connection then waits for writability even while it reads.
    fn has_pending(&self) -> bool {
        false
    }

    /// Sends what [`Transport::has_pending`] reports, as far as the socket takes it.
    fn flush_pending(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Nothing more will be written: a TLS transport queues its `close_notify` here, so it
    /// leaves in the same write as the last records. `whole` is false when the output broke
    /// off (a proxied response cut short): then the end must not look clean, and no
    /// `close_notify` is sent at all, so a TLS client sees the truncation.
    fn end_output(&mut self, _whole: bool) {}

    /// Whether a read that filled less than the space offered means the socket is empty (so
    /// reading again before the next readiness event would only meet `WouldBlock`). True for
    /// plain TCP; TLS knows whether its own last socket read came up short.
    fn short_read_empties(&self) -> bool {
        true
    }

    /// The negotiated TLS protocol version and cipher suite, once a TLS handshake is done;
    /// `None` for plain TCP.
    fn tls_session(&self) -> Option<(&'static str, &'static str)> {
        None
    }
}

/// How a flush of an outbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Done,
    /// The transport would block: wait for writability.
    Blocked,
    /// The turn's budget is spent: let other connections run, then continue.
    Yielded,
    /// A streamed body waits for its producer: nothing to write until it is woken.
    Stalled,
}

/// Writes what `out` holds to `io`, at most about `budget` bytes. Returns how the flush ended
/// and how many bytes went out.
///
/// `then_close`: the connection closes (or shuts down its sending side) as soon as this output
/// is out. The bytes then go with the transport's `more` hint, so the last of them wait the few
/// microseconds for the FIN and leave in one segment with it.
pub fn flush(
    out: &mut Outbox,
    io: &mut impl Transport,
    budget: usize,
    then_close: bool,
) -> io::Result<(Flush, usize)> {
    let mut written = 0;
    while !out.is_empty() {
        if written >= budget {
            return Ok((Flush::Yielded, written));
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let (result, from_file) = match out.pending(&mut slices) {
            Pending::Pipe { len } => {
                let piece = len.min((budget - written).max(1));
                match out.send_piped(|pipe| io.send_piped(pipe, piece, then_close)) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        written += n;
                        continue;
                    }
                    Err(e) => (Err(e), false),
                }
            }
            Pending::Nothing => break,
            Pending::Stream => {
                if out.take_stream() {
                    continue;
                }
                return Ok((Flush::Stalled, written));
            }
            Pending::Bytes {
                count,
                file_follows,
            } => (
                io.write(&slices[..count], file_follows || then_close),
                false,
            ),
            Pending::File { file, offset, len } => {
                // A bounded piece per call, so one download cannot hold the loop.
                let piece = len.min((budget - written).max(1) as u64).min(1 << 30) as usize;
                (io.send_file(file, offset, piece), true)
            }
        };
        match result {
            Ok(0) if from_file => {
                // The file shrank under us: the promised length can no longer be kept.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file truncated while sending",
                ));
            }
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if from_file => {
                out.file_sent(n as u64);
                written += n;
            }
            Ok(n) => {
                out.advance(n);
                written += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok((Flush::Blocked, written));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.clear();
    Ok((Flush::Done, written))
}

/// Everything `outbox` holds, as a client would read it (written through a socket pair, so
/// at most what its buffers take: a few hundred KiB).
#[cfg(test)]
pub(crate) fn drain(outbox: &mut Outbox) -> Vec<u8> {
    use std::io::Read;
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let (done, written) = flush(outbox, &mut Plain(&ours), usize::MAX, false).unwrap();
    assert_eq!(done, Flush::Done);
    drop(ours);
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), written);
    got
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    /// What the outbox tests used to call: a flush over a plain Unix socket.
    fn write_to(
        outbox: &mut Outbox,
        socket: &mut UnixStream,
        budget: usize,
    ) -> io::Result<(Flush, usize)> {
        flush(outbox, &mut Plain(&*socket), budget, false)
    }

    #[test]
    fn bytes_shared_and_file_windows_go_out_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"0123456789").unwrap();
        let file = Arc::new(file);
        let big: Vec<u8> = (0..16 * 1024 + 10).map(|i| i as u8).collect();
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
        let (done, first) = write_to(&mut outbox, &mut ours, usize::MAX).unwrap();
        assert_eq!(done, Flush::Blocked);
        assert!(first < payload.len());
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        loop {
            match write_to(&mut outbox, &mut ours, 64 * 1024).unwrap() {
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
            let (done, written) = write_to(&mut outbox, &mut ours, budget).unwrap();
            // A turn may finish the piece it started, never run on past the budget.
            assert!(written <= budget + 5, "turn {turns} wrote {written}");
            turns += 1;
            if done == Flush::Done {
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
