//! The upstream servers: which path prefixes go to which group, how a member of a group is
//! chosen (round robin or least connections), which members are healthy (passively, from
//! failures; actively, from periodic checks), and the idle keep-alive connections kept for
//! each member.

use super::rule::{Balance, ProxyRule, ProxySettings, Upstream};
use serde::Serialize;
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// One upstream server.
#[derive(Debug)]
pub struct Member {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `host:port` as written in the rule, for a rewritten `Host`.
    pub authority: String,
    /// Requests it is serving now (least connections).
    active: AtomicUsize,
    /// Failures in a row.
    fails: AtomicU32,
    /// Until when it is skipped (milliseconds since the pool started).
    down_until: AtomicU64,
    /// What the last active check said.
    healthy: AtomicBool,
    requests: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    /// Idle connections no event loop holds: the thread model's, and those a loop had no
    /// room for.
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    /// Idle connections the event loops hold in their own pools, for the status report.
    kept: AtomicUsize,
}

/// A rule compiled: its prefix and the members it spreads requests over.
#[derive(Debug)]
pub struct Group {
    /// The rule.
    pub rule: ProxyRule,
    /// Indices into the members.
    members: Vec<usize>,
    /// Round-robin position.
    next: AtomicUsize,
}

/// Every rule and member, shared by all workers.
#[derive(Debug)]
pub struct Upstreams {
    groups: Vec<Group>,
    members: Vec<Member>,
    settings: ProxySettings,
    started: Instant,
}

/// A member's state in the status report.
#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    /// Its address.
    pub addr: String,
    /// `up`, `down` (failing: skipped until its fail timeout has passed) or `unhealthy`
    /// (its active check fails).
    pub state: &'static str,
    /// Requests it is serving now.
    pub active: usize,
    /// Requests sent to it.
    pub requests: u64,
    /// Connections or responses that failed.
    pub failures: u64,
    /// Requests retried elsewhere after it failed them.
    pub retried: u64,
    /// Idle keep-alive connections kept for it.
    pub idle: usize,
}

/// A group in the status report.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// The path prefix.
    pub prefix: String,
    /// Its members.
    pub members: Vec<MemberReport>,
}

impl Upstreams {
    /// Compiles the rules.
    pub fn new(rules: &[ProxyRule], settings: ProxySettings) -> Upstreams {
        let mut members: Vec<Member> = Vec::new();
        let mut groups = Vec::new();
        for rule in rules {
            let mut indices = Vec::new();
            for upstream in &rule.upstreams {
                let index = match members.iter().position(|m| m.addr == upstream.addr) {
                    Some(i) => i,
                    None => {
                        members.push(Member::new(upstream));
                        members.len() - 1
                    }
                };
                indices.push(index);
            }
            groups.push(Group {
                rule: rule.clone(),
                members: indices,
                next: AtomicUsize::new(0),
            });
        }
        Upstreams {
            groups,
            members,
            settings,
            started: Instant::now(),
        }
    }

    /// The settings every group shares.
    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group whose prefix covers `path` (the longest), if any.
    pub fn route(&self, path: &str) -> Option<usize> {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.rule.covers(path))
            .max_by_key(|(_, g)| g.rule.prefix.len())
            .map(|(i, _)| i)
    }

    /// A group by index.
    pub fn group(&self, index: usize) -> &Group {
        &self.groups[index]
    }

    /// A member by index.
    pub fn member(&self, index: usize) -> &Member {
        &self.members[index]
    }

    /// Every member, for the active health checks.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Chooses a member of `group` for a request, skipping `avoid` (one that just failed it)
    /// and members that are down or unhealthy; `None` when none is left.
    pub fn choose(&self, group: usize, avoid: Option<usize>) -> Option<usize> {
        let group = &self.groups[group];
        let now = self.now_ms();
        let usable = |&&m: &&usize| {
            let member = &self.members[m];
            Some(m) != avoid
                && member.healthy.load(Relaxed)
                && member.down_until.load(Relaxed) <= now
        };
        // Two passes over the members, without allocating: count the candidates, then take
        // the turn's one.
        let active = |m: usize| self.members[m].active.load(Relaxed);
        let chosen = match self.settings.balance {
            Balance::RoundRobin => {
                let count = group.members.iter().filter(usable).count();
                if count == 0 {
                    return None;
                }
                let turn = group.next.fetch_add(1, Relaxed);
                group.members.iter().filter(usable).nth(turn % count)
            }
            Balance::LeastConnections => {
                // Ties go round robin, so equal members share the load.
                let least = group
                    .members
                    .iter()
                    .filter(usable)
                    .map(|&m| active(m))
                    .min()?;
                let tied = |m: &&usize| usable(m) && active(**m) == least;
                let count = group.members.iter().filter(tied).count();
                let turn = group.next.fetch_add(1, Relaxed);
                group.members.iter().filter(tied).nth(turn % count.max(1))
            }
        };
        // Another worker may change a member's state between the passes: then the first
        // usable one.
        let chosen = *chosen.or_else(|| group.members.iter().find(usable))?;
        let member = &self.members[chosen];
        member.active.fetch_add(1, Relaxed);
        member.requests.fetch_add(1, Relaxed);
        Some(chosen)
    }

    /// `member` answered a request: its count of failures in a row starts again.
    pub fn answered(&self, member: usize) {
        self.members[member].fails.store(0, Relaxed);
    }

    /// A request to `member` ended; `failed`: the connection or the response failed, which
    /// counts for its passive health.
    pub fn finished(&self, member: usize, failed: bool) {
        let m = &self.members[member];
        let _ = m
            .active
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        if !failed {
            return;
        }
        m.failures.fetch_add(1, Relaxed);
        let fails = m.fails.fetch_add(1, Relaxed) + 1;
        if fails >= self.settings.max_fails {
            m.fails.store(0, Relaxed);
            let now = self.now_ms();
            let until = now + self.settings.fail_timeout.as_millis() as u64;
            // Requests in flight when it went down fail too: said once, not once for each.
            if m.down_until.swap(until, Relaxed) <= now {
                log::warn!(
                    "upstream {} failed {fails} times in a row; skipped for {:?}",
                    m.addr,
                    self.settings.fail_timeout
                );
            }
        }
    }

    /// Counts a request of `member`'s retried elsewhere.
    pub fn retried(&self, member: usize) {
        self.members[member].retries.fetch_add(1, Relaxed);
    }

    /// An idle keep-alive connection to `member`, if one is kept and still open.
    pub fn take_idle(&self, member: usize) -> Option<TcpStream> {
        let mut idle = self.members[member]
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while let Some((socket, since)) = idle.pop() {
            if since.elapsed() < self.settings.idle_timeout && still_open(&socket) {
                return Some(socket);
            }
        }
        None
    }

    /// Keeps an idle keep-alive connection to `member` for a later request (up to the
    /// keep-alive limit; past it the connection is closed).
    pub fn give_idle(&self, member: usize, socket: TcpStream) {
        let mut idle = self.members[member]
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.settings.keepalive {
            idle.push((socket, Instant::now()));
        }
    }

    /// Counts an idle connection to `member` an event loop keeps in its own pool (`true`), or
    /// one it no longer keeps (`false`).
    pub fn count_kept(&self, member: usize, kept: bool) {
        let count = &self.members[member].kept;
        match kept {
            true => count.fetch_add(1, Relaxed),
            false => count.fetch_sub(1, Relaxed),
        };
    }

    /// Marks what an active check found. A member that passes again after failing is used
    /// at once: its failures from before are stale (it got no requests meanwhile), so a fail
    /// timeout they started does not hold it back.
    pub fn set_healthy(&self, member: usize, healthy: bool) {
        let m = &self.members[member];
        if m.healthy.swap(healthy, Relaxed) != healthy {
            match healthy {
                true => {
                    m.fails.store(0, Relaxed);
                    m.down_until.store(0, Relaxed);
                    log::info!("upstream {} passes its health check again", m.addr);
                }
                false => log::warn!("upstream {} fails its health check; skipped", m.addr),
            }
        }
    }

    /// Every group and member, for the status report.
    pub fn report(&self) -> Vec<GroupReport> {
        let now = self.now_ms();
        self.groups
            .iter()
            .map(|group| GroupReport {
                prefix: group.rule.prefix.clone(),
                members: group
                    .members
                    .iter()
                    .map(|&i| {
                        let m = &self.members[i];
                        let state = if !m.healthy.load(Relaxed) {
                            "unhealthy"
                        } else if m.down_until.load(Relaxed) > now {
                            "down"
                        } else {
                            "up"
                        };
                        MemberReport {
                            addr: m.addr.to_string(),
                            state,
                            active: m.active.load(Relaxed),
                            requests: m.requests.load(Relaxed),
                            failures: m.failures.load(Relaxed),
                            retried: m.retries.load(Relaxed),
                            idle: m.idle.lock().map_or(0, |i| i.len()) + m.kept.load(Relaxed),
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

impl Member {
    fn new(upstream: &Upstream) -> Member {
        Member {
            addr: upstream.addr,
            authority: upstream.authority.clone(),
            active: AtomicUsize::new(0),
            fails: AtomicU32::new(0),
            down_until: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
            kept: AtomicUsize::new(0),
        }
    }
}

/// Whether an idle connection is still open: the upstream may have closed it meanwhile (its
/// own keep-alive timeout), which a peek sees as an end of stream or an error.
pub(crate) fn still_open(socket: &impl std::os::fd::AsRawFd) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: a valid descriptor and a one-byte buffer for the duration of the call.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn two_members() -> Upstreams {
        let rule: ProxyRule = "/api/=http://127.0.0.1:1,http://127.0.0.1:2"
            .parse()
            .unwrap();
        let settings = ProxySettings {
            max_fails: 2,
            fail_timeout: Duration::from_secs(3600),
            ..ProxySettings::default()
        };
        Upstreams::new(&[rule], settings)
    }

    /// Which members `choose` returns over `n` requests, each finished at once.
    fn chosen(upstreams: &Upstreams, n: usize) -> Vec<usize> {
        let mut seen: Vec<usize> = (0..n)
            .filter_map(|_| upstreams.choose(0, None))
            .inspect(|&m| upstreams.finished(m, false))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    #[test]
    fn a_member_that_fails_is_skipped_until_its_check_passes_again() {
        let upstreams = two_members();
        assert_eq!(chosen(&upstreams, 4), [0, 1]);
        // Two failures in a row: skipped for its (long) fail timeout.
        for _ in 0..2 {
            upstreams.choose(0, Some(0));
            upstreams.finished(1, true);
        }
        assert_eq!(chosen(&upstreams, 4), [0]);
        assert_eq!(upstreams.report()[0].members[1].state, "down");
        // Its check fails, then passes again: it is used at once, not after the timeout.
        upstreams.set_healthy(1, false);
        assert_eq!(upstreams.report()[0].members[1].state, "unhealthy");
        assert_eq!(chosen(&upstreams, 4), [0]);
        upstreams.set_healthy(1, true);
        assert_eq!(upstreams.report()[0].members[1].state, "up");
        assert_eq!(chosen(&upstreams, 4), [0, 1]);
    }

    #[test]
    fn a_passing_check_does_not_clear_failures_of_a_member_it_never_failed() {
        let upstreams = two_members();
        for _ in 0..2 {
            upstreams.choose(0, Some(0));
            upstreams.finished(1, true);
        }
        // Checks that keep passing say nothing new: the member answers checks but fails
        // requests, and stays skipped.
        upstreams.set_healthy(1, true);
        assert_eq!(chosen(&upstreams, 4), [0]);
    }

    #[test]
    fn least_connections_skips_a_member_with_a_request_in_flight() {
        let rule: ProxyRule = "/api/=http://127.0.0.1:1,http://127.0.0.1:2"
            .parse()
            .unwrap();
        let settings = ProxySettings {
            balance: Balance::LeastConnections,
            ..ProxySettings::default()
        };
        let upstreams = Upstreams::new(&[rule], settings);
        // A request in flight on whichever member comes first.
        let busy = upstreams.choose(0, None).unwrap();
        let free = 1 - busy;
        // Round robin would alternate; least connections picks the free member every time.
        for _ in 0..4 {
            let m = upstreams.choose(0, None).unwrap();
            assert_eq!(m, free, "the busy member was chosen");
            upstreams.finished(m, false);
        }
        // Once its request is done, the members are tied again and share the load.
        upstreams.finished(busy, false);
        assert_eq!(chosen(&upstreams, 4), [0, 1]);
    }
}
