//! The upstream sockets of one event loop, busy or idle. Each is registered in the loop's
//! poll once, for its whole life (readable and writable, edge-triggered), under a token of its
//! own, so taking a kept connection or giving one back costs no system call, and an upstream
//! that closes an idle connection is heard as an event instead of found by a peek at reuse.
//! What the loop has no room for goes to the shared pool of [`Upstreams`].

use super::UPSTREAM;
use crate::proxy::Upstreams;
use crate::proxy::upstreams::still_open;
use crate::transport::Plain;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

/// Whom an upstream socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    /// A client's forwarded request: the client's slab key and id.
    Client { key: usize, id: u64 },
    /// Nobody: it has waited in the loop's pool since then.
    Idle(Instant),
}

/// A connection to an upstream server.
pub(super) struct UpstreamSocket {
    pub io: Plain<TcpStream>,
    /// The member of the proxy rule's group it is connected to.
    pub member: usize,
    /// Whether the (non-blocking) connect has completed.
    pub connected: bool,
    pub holder: Holder,
    /// An event saying there is something to read arrived since it was taken. Until then
    /// nothing is read: the upstream answers only after the request, and the first bytes of
    /// its answer raise an event, since the socket is registered already.
    pub heard: bool,
    /// The upstream closed its side, or the socket failed: it is not kept again.
    closed: bool,
}

/// The loop's upstream sockets and, per member, the idle ones it keeps.
#[derive(Default)]
pub(super) struct UpstreamSockets {
    sockets: Slab<UpstreamSocket>,
    /// For each member, the keys of its idle sockets, the most recently used last.
    idle: Vec<Vec<usize>>,
}

impl UpstreamSockets {
    pub fn get_mut(&mut self, key: usize) -> Option<&mut UpstreamSocket> {
        self.sockets.get_mut(key)
    }

    pub fn holder(&self, key: usize) -> Option<Holder> {
        self.sockets.get(key).map(|s| s.holder)
    }

    /// A connection to `member` for `holder`: the most recently used one this loop keeps, one
    /// from the shared pool, or a new non-blocking connect. `check`: a kept one must also
    /// pass a peek (for a request that could not be sent again if it failed).
    pub fn take(
        &mut self,
        upstreams: &Upstreams,
        member: usize,
        holder: Holder,
        check: bool,
        registry: &Registry,
        now: Instant,
    ) -> io::Result<usize> {
        let idle_timeout = upstreams.settings().idle_timeout;
        while let Some(key) = self.idle.get_mut(member).and_then(Vec::pop) {
            upstreams.count_kept(member, false);
            let socket = &mut self.sockets[key];
            let fresh = matches!(socket.holder,
                Holder::Idle(since) if now.saturating_duration_since(since) < idle_timeout);
            if fresh && (!check || still_open(&socket.io.0)) {
                socket.holder = holder;
                socket.heard = false;
                return Ok(key);
            }
            // Closing the descriptor takes it out of the poll.
            self.sockets.remove(key);
        }
        // A connection from the shared pool has passed its peek there, and is non-blocking.
        let (socket, connected) = match upstreams.take_idle(member) {
            Some(kept) => (TcpStream::from_std(kept), true),
            None => {
                let socket = TcpStream::connect(upstreams.member(member).addr)?;
                let _ = socket.set_nodelay(true);
                (socket, false)
            }
        };
        let entry = self.sockets.vacant_entry();
        let key = entry.key();
        let mut io = Plain(socket);
        registry.register(
            &mut io.0,
            Token(UPSTREAM | key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(UpstreamSocket {
            io,
            member,
            connected,
            holder,
            heard: false,
            closed: false,
        });
        Ok(key)
    }

    /// Gives back the socket `key`: kept for a later request if `reusable` (in this loop's
    /// pool while it holds fewer than the keep-alive limit for the member, else in the shared
    /// one), closed otherwise.
    pub fn give_back(
        &mut self,
        key: usize,
        reusable: bool,
        upstreams: &Upstreams,
        registry: &Registry,
        now: Instant,
    ) {
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        if !reusable || !socket.connected || socket.closed {
            self.sockets.remove(key);
            return;
        }
        let member = socket.member;
        if self.idle.len() <= member {
            self.idle.resize_with(member + 1, Vec::new);
        }
        if self.idle[member].len() < upstreams.settings().keepalive {
            socket.holder = Holder::Idle(now);
            self.idle[member].push(key);
            upstreams.count_kept(member, true);
            return;
        }
        let mut socket = self.sockets.remove(key);
        let _ = registry.deregister(&mut socket.io.0);
        let socket = std::net::TcpStream::from(OwnedFd::from(socket.io.0));
        upstreams.give_idle(member, socket);
    }

    /// Takes note of an event the poll reported for `key`, before the turn does anything
    /// else. The readiness an event reports is the socket's as the poll returned, so an idle
    /// socket reported readable, closed or failed has unasked bytes or an end waiting: it is
    /// dropped. A busy one that was closed is not kept after its response.
    pub fn polled(&mut self, key: usize, event: &Event, upstreams: &Upstreams) {
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        let closed = event.is_read_closed() || event.is_write_closed() || event.is_error();
        match socket.holder {
            Holder::Client { .. } => socket.closed |= closed,
            Holder::Idle(_) if closed || event.is_readable() => {
                let member = socket.member;
                if let Some(idle) = self.idle.get_mut(member)
                    && let Some(at) = idle.iter().position(|&k| k == key)
                {
                    idle.remove(at);
                    upstreams.count_kept(member, false);
                }
                log::debug!(
                    "upstream {}: a kept connection was closed",
                    upstreams.member(member).addr
                );
                self.sockets.remove(key);
            }
            Holder::Idle(_) => {}
        }
    }

    /// Closes the idle sockets kept longer than the idle timeout, the oldest first.
    pub fn sweep(&mut self, upstreams: &Upstreams, now: Instant) {
        let idle_timeout = upstreams.settings().idle_timeout;
        for (member, idle) in self.idle.iter_mut().enumerate() {
            while let Some(&key) = idle.first() {
                let expired = matches!(self.sockets[key].holder,
                    Holder::Idle(since) if now.saturating_duration_since(since) >= idle_timeout);
                if !expired {
                    break;
                }
                idle.remove(0);
                upstreams.count_kept(member, false);
                self.sockets.remove(key);
            }
        }
    }

    /// Closes every idle socket (the loop is ending).
    pub fn close_idle(&mut self, upstreams: &Upstreams) {
        for (member, idle) in self.idle.iter_mut().enumerate() {
            for key in idle.drain(..) {
                upstreams.count_kept(member, false);
                self.sockets.remove(key);
            }
        }
    }
}
