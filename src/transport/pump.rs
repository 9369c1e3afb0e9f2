//! The loop between a transport and a connection core: write what is queued, answer what was
//! read, read more, until the transport would block, the turn's budget is spent or the
//! connection is over. Then linger, or close.

use super::{Flush, Transport, flush};
use crate::connection::{Connection, READ_BUDGET, Splice, Step, WRITE_BUDGET};
use crate::worker::Worker;
use std::io;
use std::time::Instant;

/// What the shell knows of the socket's input when it runs the pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// It may hold bytes: a readiness event for it, or a shell that waits in its reads.
    Ready,
    /// The event reported the peer's end of stream (or an error), which must be read to be
    /// seen; read on even after a short read.
    Closed,
    /// No event for it since the pump last ran (another socket, such as a forwarded request's
    /// upstream, woke the connection): if a read has found it empty since its last event, a
    /// byte arriving later raises a new one, and reading now could only meet `WouldBlock`.
    Quiet,
}

/// Runs a connection as far as it can go without blocking; `input` says what the shell knows
/// of the socket's input.
pub fn pump(
    conn: &mut Connection,
    io: &mut impl Transport,
    worker: &mut Worker,
    now: Instant,
    input: Input,
) -> Step {
    let step = run(conn, io, worker, now, input);
    conn.count_state(worker.stats());
    step
}

/// Called when a connection's deadline may have passed: if it did, a blocking handler or an
/// upstream that took too long gets `504` (a forwarded body the client stopped sending, `408`)
/// and the connection goes on; otherwise a half-read request gets `408` (if the transport
/// takes it at once) and the connection closes.
pub fn expire(
    conn: &mut Connection,
    io: &mut impl Transport,
    worker: &mut Worker,
    now: Instant,
) -> Step {
    let (clock, deadline) = conn.clock(&worker.site().timeouts);
    if now < deadline.instant() {
        return Step::Continue;
    }
    if conn.give_up(clock, worker) {
        return pump(conn, io, worker, now, Input::Ready);
    }
    if conn.time_out(worker) {
        log::debug!("{}: request timed out", conn.peer());
        let _ = flush(conn.output(), io, WRITE_BUDGET, true);
    } else {
        log::debug!(
            "{}: closed after its deadline in state {:?}",
            conn.peer(),
            conn.state()
        );
    }
    Step::Close
}

fn run(
    conn: &mut Connection,
    io: &mut impl Transport,
    worker: &mut Worker,
    now: Instant,
    input: Input,
) -> Step {
    let read_closed = input == Input::Closed;
    if input != Input::Quiet {
        conn.set_input_empty(false);
    }
    // Found empty since its last event: skip the read that could only meet `WouldBlock`.
    let quiet = input == Input::Quiet && conn.input_empty();
    let was_forwarding = conn.is_forwarding();
    if io.has_pending() {
        if let Err(e) = io.flush_pending() {
            return broken(conn, e);
        }
        if io.has_pending() {
            return Step::Continue;
        }
    }
    if conn.is_lingering() {
        return linger(conn, io, now);
    }
    let mut reads = 0;
    // A short read empties the socket; a later arrival raises a new edge, so reading again
    // only to meet `WouldBlock` is a wasted syscall per request.
    let mut drained = false;
    loop {
        let mut stalled = false;
        if conn.has_output() {
            let then_close = conn.is_done();
            match flush(conn.output(), io, WRITE_BUDGET, then_close) {
                Ok((done, written)) => {
                    conn.wrote(written, now, worker.stats());
                    match done {
                        Flush::Done => {}
                        Flush::Blocked | Flush::Yielded => {
                            conn.set_stalled(false);
                            return match done {
                                Flush::Blocked => Step::Continue,
                                _ => Step::Yield,
                            };
                        }
                        // A streamed body waits for its producer: meanwhile read on, so
                        // pipelined requests are queued behind it and a client that leaves
                        // is seen.
                        Flush::Stalled => stalled = true,
                    }
                }
                Err(e) => return broken(conn, e),
            }
        }
        conn.set_stalled(stalled);
        if !stalled && conn.is_done() {
            // The connection ends after this output: its close_notify goes with it, unless
            // the output broke off.
            io.end_output(!conn.is_aborted());
        }
        if io.has_pending() {
            // The transport's own output (TLS records) must be out before a close or a linger,
            // and before more is read: it is part of what was answered.
            if let Err(e) = io.flush_pending() {
                return broken(conn, e);
            }
            if io.has_pending() {
                return Step::Continue;
            }
        }
        if stalled {
            if conn.saw_end() {
                // The client left while its stream waits for the producer: end both now.
                return Step::Close;
            }
        } else if conn.is_done() {
            // Found empty since its last event is as good as a short read in this turn: a
            // forwarded response is written in a later turn than the request was read in.
            if conn.may_close_quietly(drained || quiet) || conn.is_aborted() {
                return Step::Close;
            }
            return linger(conn, io, now);
        }
        conn.answer(worker, now);
        if !stalled && (conn.has_output() || conn.is_done()) {
            continue;
        }
        if !conn.has_output() {
            conn.responses_sent(now);
        }
        if (drained || quiet) && !read_closed {
            conn.release_input(worker);
            return Step::Continue;
        }
        if conn.is_forwarding() && !was_forwarding {
            // A forward began with bytes read before: the shell takes an upstream for it
            // (and the thread model makes the socket non-blocking) before the client is read
            // again, rather than waiting in that read for more.
            return Step::Continue;
        }
        if conn.saw_end() && !(read_closed && reads == 0) {
            // The end of stream, once read, is all a read would find again: what is left
            // waits for the producer (an upstream, a handler), which wakes the connection.
            // A new report of an end or an error is read once, to see a reset.
            conn.release_input(worker);
            return Step::Continue;
        }
        if reads == READ_BUDGET {
            return Step::Yield;
        }
        reads += 1;
        if io.splices() && worker.site().proxy_splices() {
            match conn.splice_body(|pipe, len| io.recv_piped(pipe, len), now) {
                Splice::No => {}
                // Resumed once the upstream took the pipe's bytes (an upstream event).
                Splice::Full => return Step::Continue,
                Splice::Moved(Ok(0)) => {
                    log::debug!("{}: client left mid-body", conn.peer());
                    return Step::Close;
                }
                Splice::Moved(Ok(_)) => continue,
                // An empty pipe that takes nothing means an empty socket.
                Splice::Moved(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.set_input_empty(true);
                    conn.release_input(worker);
                    return Step::Continue;
                }
                Splice::Moved(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Splice::Moved(Err(e)) => return broken(conn, e),
            }
        }
        let Some(space) = conn.read_space(worker) else {
            if conn.parsing_paused() {
                // What was read waits for an earlier request's answer (a handler, an
                // upstream, the client reading its output); the rest stays in the socket
                // until that wakes the connection.
                return Step::Continue;
            }
            log::warn!("{}: read buffer full without a parse decision", conn.peer());
            return Step::Close;
        };
        let room = space.len();
        match io.read(space) {
            Ok(n) => {
                drained = n > 0 && n < room && io.short_read_empties();
                conn.set_input_empty(drained);
                conn.received(n, now);
                if n > 0 && !conn.knows_tls() {
                    conn.note_tls(io.tls_session());
                }
                if n == 0 && conn.forwarded_body_cut_short() {
                    log::debug!("{}: client left mid-body", conn.peer());
                    return Step::Close;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.set_input_empty(true);
                conn.release_input(worker);
                return Step::Continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return broken(conn, e),
        }
    }
}

/// Shuts our side once, then discards what the peer still sends until it closes.
fn linger(conn: &mut Connection, io: &mut impl Transport, now: Instant) -> Step {
    if conn.start_lingering(now) && io.shutdown_write().is_err() {
        return Step::Close;
    }
    let mut scratch = [0u8; 4096];
    loop {
        match io.read(&mut scratch) {
            Ok(0) => return Step::Close,
            Ok(n) if conn.discarded(n) => return Step::Close,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
}

/// Logs an I/O failure at the level it deserves and closes.
fn broken(conn: &mut Connection, e: io::Error) -> Step {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => {
            log::debug!("{}: peer went away: {e}", conn.peer());
        }
        // What a client sent could not be understood below HTTP (a broken TLS record, plain
        // HTTP on a TLS port): the client's fault, not the server's.
        io::ErrorKind::InvalidData => log::debug!("{}: {e}", conn.peer()),
        _ => log::warn!("{}: connection failed: {e}", conn.peer()),
    }
    conn.discard_output();
    Step::Close
}
