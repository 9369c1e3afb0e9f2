//! A kernel pipe that carries a forwarded body from one socket to another with `splice(2)`:
//! the bytes go socket -> pipe -> socket inside the kernel and are never copied through user
//! space. A pipe is asked for [`PIPE_SIZE`] bytes (four times the kernel's default: a 10 MB
//! upload then costs a quarter of the calls), and holds at most what it got, which bounds
//! what one connection has in flight this way. Empty pipes are kept per thread for the next
//! body (a connection thread of the thread model closes its own when its connection is idle,
//! [`close_spares`]); one dropped with bytes still in it is closed.

use std::cell::RefCell;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The size a new pipe is asked for. The kernel may refuse it (past `pipe-max-size`, or a
/// user's `pipe-user-pages-soft`); the pipe then keeps the size it has.
pub const PIPE_SIZE: usize = 256 * 1024;
/// Empty pipes a thread keeps for later bodies.
const SPARE_PIPES: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Ends>> = const { RefCell::new(Vec::new()) };
}

/// Closes the empty pipes this thread keeps.
pub fn close_spares() {
    SPARE.with(|spare| spare.borrow_mut().clear());
}

/// A pipe's two descriptors, and how many bytes it holds at most.
#[derive(Debug)]
struct Ends {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

/// A pipe and the count of bytes it holds.
#[derive(Debug)]
pub struct Pipe {
    /// Taken out only by `drop`, to be kept for reuse.
    ends: ManuallyDrop<Ends>,
    held: usize,
}

impl Pipe {
    /// An empty pipe, from the thread's spares or new. `None` if the system refuses one (out
    /// of descriptors): the caller copies instead.
    pub fn take() -> Option<Pipe> {
        let ends = match SPARE.with(|spare| spare.borrow_mut().pop()) {
            Some(ends) => ends,
            None => {
                let mut fds = [0; 2];
                // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
                if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0
                {
                    log::warn!(
                        "cannot open a pipe; copying bodies instead: {}",
                        io::Error::last_os_error()
                    );
                    return None;
                }
                // SAFETY: pipe2 succeeded, so both descriptors are open and owned by no one else.
                let (read, write) =
                    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
                // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ and F_GETPIPE_SZ take an
                // int and return the size (or -1).
                let size = unsafe {
                    match libc::fcntl(
                        write.as_raw_fd(),
                        libc::F_SETPIPE_SZ,
                        PIPE_SIZE as libc::c_int,
                    ) {
                        -1 => libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ),
                        size => size,
                    }
                };
                Ends {
                    read,
                    write,
                    // Linux's default when even the question fails.
                    capacity: usize::try_from(size).unwrap_or(64 * 1024).max(4096),
                }
            }
        };
        Some(Pipe {
            ends: ManuallyDrop::new(ends),
            held: 0,
        })
    }

    /// Bytes in the pipe.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes it may still take.
    pub fn room(&self) -> usize {
        self.ends.capacity.saturating_sub(self.held)
    }

    /// Moves up to `len` bytes from `socket` into the pipe; returns how many (0: the socket's
    /// peer closed). `WouldBlock` when the socket has nothing or the pipe is full.
    pub fn fill_from(&mut self, socket: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
        let len = len.min(self.room());
        if len == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = splice(socket, self.ends.write.as_fd(), len, false)?;
        self.held += n;
        Ok(n)
    }

    /// Moves up to `len` bytes of the pipe into `socket`; returns how many. `more`: further
    /// bytes follow at once, so the last of these may wait to share a segment with them.
    pub fn drain_to(
        &mut self,
        socket: BorrowedFd<'_>,
        len: usize,
        more: bool,
    ) -> io::Result<usize> {
        let n = splice(self.ends.read.as_fd(), socket, len.min(self.held), more)?;
        self.held -= n.min(self.held);
        Ok(n)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: `ends` is not used again: this is the pipe's last moment.
        let ends = unsafe { ManuallyDrop::take(&mut self.ends) };
        if self.held > 0 {
            // Bytes of a body that was cut off: closing the pipe discards them.
            return;
        }
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_PIPES {
                spare.push(ends);
            }
        });
    }
}

/// One `splice(2)` call from `from` to `to`, neither end waiting on the pipe's side.
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize, more: bool) -> io::Result<usize> {
    let mut flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    if more {
        flags |= libc::SPLICE_F_MORE;
    }
    // SAFETY: both descriptors are borrowed, so open for the call; null offsets are what
    // splice takes for a pipe and a socket.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
