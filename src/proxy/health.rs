//! Active health checks: every few seconds, `GET path` on each upstream server, all of them
//! at once from one thread and one poll, so a server whose machine is gone (its connect
//! never completes) holds up no other's verdict and a round costs no thread per server.

use super::upstreams::{Member, Upstreams};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
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
    Connecting,
    /// Connected: the request goes out from `written` on, then the status line comes in.
    Asking { written: usize },
    /// Decided.
    Done(bool),
}

/// One member's check.
struct Probe {
    socket: Option<TcpStream>,
    request: Vec<u8>,
    /// The answer's first bytes: `HTTP/1.1 200`.
    line: [u8; 12],
    got: usize,
    stage: Stage,
    deadline: Instant,
}

impl Probe {
    fn start(member: &Member, path: &str, timeouts: ProbeTimeouts, now: Instant) -> Probe {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: margay-health-check\r\nConnection: close\r\n\r\n",
            member.authority
        );
        let socket = TcpStream::connect(member.addr).ok();
        let stage = match socket {
            Some(_) => Stage::Connecting,
            None => Stage::Done(false),
        };
        Probe {
            socket,
            request: request.into_bytes(),
            line: [0; 12],
            got: 0,
            stage,
            deadline: now + timeouts.connect,
        }
    }

    fn verdict(&self) -> Option<bool> {
        match self.stage {
            Stage::Done(healthy) => Some(healthy),
            _ => None,
        }
    }

    fn decide(&mut self, healthy: bool) {
        self.stage = Stage::Done(healthy);
        self.socket = None;
    }

    /// Moves the check on as far as its socket allows now.
    fn advance(&mut self, timeouts: ProbeTimeouts, now: Instant) {
        if let Some(healthy) = self.try_advance(timeouts, now) {
            self.decide(healthy);
        }
    }

    /// `Some`: decided. Errors and an early end are unhealthy; waiting is `None`.
    fn try_advance(&mut self, timeouts: ProbeTimeouts, now: Instant) -> Option<bool> {
        let socket = self.socket.as_mut()?;
        if let Stage::Connecting = self.stage {
            if socket.take_error().ok().flatten().is_some() {
                return Some(false);
            }
            match socket.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return None,
                Err(_) => return Some(false),
            }
            self.stage = Stage::Asking { written: 0 };
            self.deadline = now + timeouts.answer;
        }
        let Stage::Asking { written } = &mut self.stage else {
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
    let now = Instant::now();
    let mut probes: Vec<Probe> = members
        .iter()
        .map(|member| Probe::start(member, path, timeouts, now))
        .collect();
    for (i, probe) in probes.iter_mut().enumerate() {
        if let Some(socket) = &mut probe.socket {
            let interest = Interest::READABLE | Interest::WRITABLE;
            if poll
                .registry()
                .register(socket, Token(i), interest)
                .is_err()
            {
                probe.decide(false);
            }
        }
    }
    let mut events = Events::with_capacity(members.len().max(1));
    let mut told = vec![false; probes.len()];
    loop {
        let now = Instant::now();
        for (i, probe) in probes.iter_mut().enumerate() {
            if probe.verdict().is_none() && now >= probe.deadline {
                probe.decide(false);
            }
            if let Some(healthy) = probe.verdict()
                && !std::mem::replace(&mut told[i], true)
            {
                decided(i, healthy);
            }
        }
        let Some(next) = probes
            .iter()
            .filter(|p| p.verdict().is_none())
            .map(|p| p.deadline)
            .min()
        else {
            break;
        };
        if let Err(e) = poll.poll(&mut events, Some(next - now))
            && e.kind() != ErrorKind::Interrupted
        {
            return Err(e);
        }
        let now = Instant::now();
        for event in events.iter() {
            if let Some(probe) = probes.get_mut(event.token().0) {
                probe.advance(timeouts, now);
            }
        }
    }
    Ok(())
}
