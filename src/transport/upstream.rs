//! The loop between an upstream server's socket and the connection whose request it carries:
//! the request's bytes out, the response's bytes in (only while the client keeps up).

use super::Transport;
use crate::connection::Connection;
use crate::worker::Worker;
use std::io::{self, IoSlice};
use std::time::Instant;

/// Reads from the upstream per turn before other connections get theirs.
const READ_BUDGET: usize = 16;

/// Moves a forwarded request's bytes to `up` and its response's bytes back into the
/// connection's output, as far as both sides allow. Returns whether anything moved (the
/// client side may then have more to do). A broken upstream is reported to the connection,
/// which retries, answers `502` or ends the client's connection.
///
/// `read` false skips reading: a shell whose poller will report the upstream's first response
/// bytes (its socket registered before the request went out) waits for that event instead
/// of a read that would mostly meet `EAGAIN`. `splice`: the client's transport can send from
/// a pipe, so a body that needs no reframing goes there with `splice(2)`, uncopied (unless
/// `--no-proxy-splice`).
pub fn pump_upstream(
    conn: &mut Connection,
    up: &mut impl Transport,
    worker: &mut Worker,
    now: Instant,
    read: bool,
    splice: bool,
) -> bool {
    let mut moved = false;
    // The buffered request bytes first, then any spliced body bytes after them.
    loop {
        let result = if !conn.upstream_output().is_empty() {
            let written = up.write(&[IoSlice::new(conn.upstream_output())], false);
            if let Ok(n) = written {
                conn.upstream_sent(n, now);
            }
            written
        } else if conn.upstream_piped() > 0 {
            let len = conn.upstream_piped();
            conn.upstream_send_piped(|pipe| up.send_piped(pipe, len, false), now)
        } else {
            break;
        };
        match result {
            Ok(0) => return broke(conn, worker, "write", None),
            Ok(_) => moved = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return broke(conn, worker, "write", Some(e)),
        }
    }
    for _ in 0..READ_BUDGET {
        if !read || !conn.takes_upstream_bytes() {
            break;
        }
        let spliced = if splice && up.splices() && worker.site().proxy_splices() {
            conn.upstream_splice(|pipe, len| up.recv_piped(pipe, len), worker, now)
        } else {
            None
        };
        // A splice takes exactly what the body lacks; a read may fill its buffer.
        let mut filled = spliced.is_some();
        let result = spliced.unwrap_or_else(|| {
            conn.upstream_read(
                |buf| {
                    let room = buf.len();
                    let read = up.read(buf);
                    filled = read.as_ref().is_ok_and(|&n| n == room);
                    read
                },
                worker,
                now,
            )
        });
        // Bytes an upstream sent past a response's end show in the read that completes it,
        // which then does not keep the connection, unless that read stopped exactly at the
        // end. Then they may still wait in the socket, where no new event will announce
        // them, and would answer the next request sent on it: a look decides.
        if filled
            && matches!(result, Ok(1..))
            && conn.releases_upstream_for_reuse()
            && up.has_unread()
        {
            conn.upstream_has_leftovers();
        }
        match result {
            Ok(0) => return true,
            Ok(_) => moved = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return broke(conn, worker, "read", Some(e)),
        }
    }
    moved
}

/// Reports a broken upstream connection (a write that took nothing, or an error) to the
/// connection; returns true: something happened the client side should see.
fn broke(conn: &mut Connection, worker: &mut Worker, what: &str, e: Option<io::Error>) -> bool {
    if let Some(e) = e {
        log::debug!("{}: upstream {what} failed: {e}", conn.peer());
    }
    conn.upstream_broke(worker);
    true
}
