//! Plain TCP: bytes pass straight through; files go with `sendfile(2)`, small writes before
//! more output with `MSG_MORE`.

use super::Transport;
use super::pipe::Pipe;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};

/// A stream socket used as it is: a `mio` socket on the event loop, a blocking `std` one in
/// the thread model (where a read or write timeout reads as `WouldBlock`).
#[derive(Debug)]
pub struct Plain<S>(pub S);

impl<S> Transport for Plain<S>
where
    S: Read + Write + AsFd,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            // A blocking socket's read timeout: "not now", as on a non-blocking one.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        let result = if more {
            // MSG_MORE: these bytes wait for what follows (a file's first bytes, or the FIN)
            // and leave in the same segment, rather than as a tiny packet of their own.
            let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL;
            socket2::SockRef::from(&self.0).send_vectored_with_flags(bufs, flags)
        } else if let [one] = bufs {
            self.0.write(one)
        } else {
            self.0.write_vectored(bufs)
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        }
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let mut off = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: both descriptors are open for the duration of the call (the socket and the
        // file are borrowed), and `off` is a valid, exclusively borrowed offset; sendfile
        // neither keeps nor frees either.
        let sent =
            unsafe { libc::sendfile(self.0.as_fd().as_raw_fd(), file.as_raw_fd(), &mut off, len) };
        if sent < 0 {
            // On a blocking socket a send timeout is EAGAIN too: "not now".
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    fn splices(&self) -> bool {
        true
    }

    fn send_piped(&mut self, pipe: &mut Pipe, len: usize, more: bool) -> io::Result<usize> {
        // A blocking socket's send timeout reads as EAGAIN, as for sendfile: "not now".
        pipe.drain_to(self.0.as_fd(), len, more)
    }

    fn recv_piped(&mut self, pipe: &mut Pipe, len: usize) -> io::Result<usize> {
        pipe.fill_from(self.0.as_fd(), len)
    }

    fn has_unread(&self) -> bool {
        !crate::proxy::upstreams::still_open(&self.0.as_fd())
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        socket2::SockRef::from(&self.0).shutdown(Shutdown::Write)
    }
}
