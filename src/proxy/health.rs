//! Active health checks: every few seconds, `GET path` on each upstream server, all of them
//! at once from one thread and one poll, so a server whose machine is gone (its connect
//! never completes) holds up no other's verdict and a round costs no thread per server.

use super::upstreams::{Member, Upstreams};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a check waits: for the connect, and then for the answer's status line.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTimeouts {
    pub connect: Duration,
    pub answer: Duration,
}

/// Runs the checks on a thread of their own: every `interval`, `GET path` on each member; a
/// 2xx or 3xx answer within `timeouts` (never longer than the interval) is healthy. Ends
/// when `stop` says so.
pub fn check_health(
    upstreams: Arc<Upstreams>,
    path: String,
    interval: Duration,
    timeouts: ProbeTimeouts,
    stop: impl Fn() -> bool + Send + 'static,
) {
    let timeouts = ProbeTimeouts {
        connect: timeouts.connect.min(interval),
        answer: timeouts.answer.min(interval),
    };
    let spawned = std::thread::Builder::new()
        .name("margay-health".into())
        .spawn(move || {
            while !stop() {
                let decided = |i, healthy| upstreams.set_healthy(i, healthy);
                if let Err(e) = check_round(upstreams.members(), &path, timeouts, decided) {
                    log::warn!("the upstream health checks cannot poll: {e}");
                }
                let mut slept = Duration::ZERO;
                while slept < interval && !stop() {
                    std::thread::sleep(Duration::from_millis(100));
                    slept += Duration::from_millis(100);
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("the upstream health checks cannot run: {e}");
    }
}

/// What a check has got to.
enum Stage {
    /// The connect is under way.
    Connecting(TcpStream),
    /// Connected: the request goes out from `written` on, then the status line comes in.
    Asking { socket: TcpStream, written: usize },
    /// Decided (and told).
    Done,
}

/// One member's check.
struct Probe {
    stage: Stage,
    request: Vec<u8>,
    /// The answer's first bytes: `HTTP/1.1 200`.
    line: [u8; 12],
    got: usize,
    deadline: Instant,
}

impl Probe {
    /// Starts the connect, polled in `registry` as `token`; `None` if it failed at once or
    /// cannot be polled (an unhealthy verdict).
    fn start(
        member: &Member,
        path: &str,
        timeouts: ProbeTimeouts,
        registry: &Registry,
        token: Token,
    ) -> Option<Probe> {
        let mut socket = TcpStream::connect(member.addr).ok()?;
        let interest = Interest::READABLE | Interest::WRITABLE;
        registry.register(&mut socket, token, interest).ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: margay-health-check\r\nConnection: close\r\n\r\n",
            member.authority
        );
        Some(Probe {
            stage: Stage::Connecting(socket),
            request: request.into_bytes(),
            line: [0; 12],
            got: 0,
            deadline: Instant::now() + timeouts.connect,
        })
    }

    fn pending(&self) -> bool {
        !matches!(self.stage, Stage::Done)
    }

    /// Ends the check with `healthy`, which is returned to be told.
    fn decide(&mut self, healthy: bool) -> Option<bool> {
        self.stage = Stage::Done;
        Some(healthy)
    }

    /// An unhealthy verdict once the stage's deadline has passed.
    fn expire(&mut self, now: Instant) -> Option<bool> {
        if self.pending() && now >= self.deadline {
            return self.decide(false);
        }
        None
    }

    /// Moves the check on as far as its socket allows now; the verdict when it is reached.
    fn advance(&mut self, timeouts: ProbeTimeouts, now: Instant) -> Option<bool> {
        let verdict = self.try_advance(timeouts, now)?;
        self.decide(verdict)
    }

    /// `Some`: decided. Errors and an early end are unhealthy; waiting is `None`.
    fn try_advance(&mut self, timeouts: ProbeTimeouts, now: Instant) -> Option<bool> {
        if let Stage::Connecting(socket) = &mut self.stage {
            if socket.take_error().ok().flatten().is_some() {
                return Some(false);
            }
            match socket.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return None,
                Err(_) => return Some(false),
            }
            let Stage::Connecting(socket) = std::mem::replace(&mut self.stage, Stage::Done) else {
                unreachable!("matched above");
            };
            self.stage = Stage::Asking { socket, written: 0 };
            self.deadline = now + timeouts.answer;
        }
        let Stage::Asking { socket, written } = &mut self.stage else {
            return None;
        };
        while *written < self.request.len() {
            match socket.write(&self.request[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Some(false),
            }
        }
        while self.got < self.line.len() {
            match socket.read(&mut self.line[self.got..]) {
                Ok(0) => return Some(false),
                Ok(n) => self.got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Some(false),
            }
        }
        Some(self.line.starts_with(b"HTTP/1.") && matches!(self.line[9], b'2' | b'3'))
    }
}

/// One round: every member checked at once, each verdict told to `decided` (with the
/// member's index) as soon as it is reached.
fn check_round(
    members: &[Member],
    path: &str,
    timeouts: ProbeTimeouts,
    mut decided: impl FnMut(usize, bool),
) -> std::io::Result<()> {
    let mut poll = Poll::new()?;
    // Each started check with its member's index; its token is its place here. A member
    // whose connect fails at once, or cannot be polled, is told at once.
    let mut probes: Vec<(usize, Probe)> = Vec::with_capacity(members.len());
    for (i, member) in members.iter().enumerate() {
        let token = Token(probes.len());
        match Probe::start(member, path, timeouts, poll.registry(), token) {
            Some(probe) => probes.push((i, probe)),
            None => decided(i, false),
        }
    }
    let mut events = Events::with_capacity(probes.len().max(1));
    loop {
        let now = Instant::now();
        for (i, probe) in &mut probes {
            if let Some(healthy) = probe.expire(now) {
                decided(*i, healthy);
            }
        }
        let Some(next) = probes
            .iter()
            .filter(|(_, p)| p.pending())
            .map(|(_, p)| p.deadline)
            .min()
        else {
            return Ok(());
        };
        if let Err(e) = poll.poll(&mut events, Some(next - now))
            && e.kind() != ErrorKind::Interrupted
        {
            return Err(e);
        }
        let now = Instant::now();
        for event in events.iter() {
            if let Some((i, probe)) = probes.get_mut(event.token().0)
                && let Some(healthy) = probe.advance(timeouts, now)
            {
                decided(*i, healthy);
            }
        }
    }
}
