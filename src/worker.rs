//! A worker thread's view of the server: the [`Site`] every worker shares (routes, limits,
//! timeouts, counters) and what only this thread touches (its file cache, the cached `Date`
//! and log time, read buffers, the allocations of the last request head, the site rules it
//! last picked up).

use crate::access_log::AccessLogFormat;
use crate::app::pool::{Mailbox, Pool, QueueFull, Ticket, Wake};
use crate::app::{Handler, Request, Router, StateMap};
use crate::connection::Timeouts;
use crate::connection::readbuf::BufferPool;
use crate::control::Control;
use crate::files::StaticFiles;
use crate::forwarded::TrustedProxies;
use crate::http::date::DateCache;
use crate::http::parse::SpareHeads;
use crate::http::{Limits, Method, RequestError, RequestHead, Response, StatusCode};
use crate::proxy::Upstreams;
use crate::rules::{RulesSlot, SiteRules};
use crate::stats::Stats;
use crate::transport::tls::settings::TlsSettings;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The served site as every worker sees it: immutable once the server runs.
pub struct Site {
    /// Handler routes, consulted before the static files.
    pub router: Router,
    /// Request head limits.
    pub limits: Limits,
    /// Largest request body a handler accepts.
    pub max_body_size: u64,
    /// Requests served on one connection before it closes (0: no limit).
    pub max_requests_per_connection: u64,
    /// Whether to write an access-log line per response.
    pub access_log: bool,
    /// What each connection is held to.
    pub timeouts: Timeouts,
    /// Server-wide counters.
    pub stats: Arc<Stats>,
    /// What TLS listeners' connections are made with, if there are any.
    pub tls: Option<TlsSettings>,
    /// Where plain HTTP requests are redirected with `308`: the HTTPS port.
    pub redirect_https: Option<u16>,
    /// Whether an admin listener serves the monitoring endpoints (the others then do not).
    pub admin_listener: bool,
    /// How access-log lines are written.
    pub access_log_format: AccessLogFormat,
    /// Proxies whose `X-Forwarded-For` or `Forwarded` names the client in the access log.
    pub trusted_proxies: TrustedProxies,
    /// The application's shared state, for handlers.
    pub state: Arc<StateMap>,
    /// The worker pool for blocking handlers (the event loop only; in the thread model a
    /// blocking handler runs on its connection's thread).
    pub pool: Option<Arc<Pool>>,
    /// The reverse proxy's rules and upstream servers, if any.
    pub upstreams: Option<Arc<Upstreams>>,
}

impl Site {
    /// Whether forwarded bodies may be spliced socket to socket (`--no-proxy-splice` off).
    pub fn proxy_splices(&self) -> bool {
        self.upstreams
            .as_ref()
            .is_some_and(|upstreams| upstreams.settings().splice)
    }

    /// Whether `ip` is a proxy in front of this server whose forwarding fields are believed.
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.trusts(ip)
    }
}

/// How a worker is reached from other threads (a blocking handler's result, a streamed
/// body's next piece).
#[derive(Clone)]
pub enum Notifier {
    /// Nothing reaches it (a worker that never waits for another thread).
    Nobody,
    /// An event loop's mailbox.
    Mailbox(Arc<Mailbox>),
    /// A connection thread's doorbell.
    Doorbell(Arc<Doorbell>),
}

/// What a connection thread waits on while a streamed body's producer is behind.
#[derive(Debug, Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    bell: Condvar,
}

impl Doorbell {
    /// Rings it: a waiting thread wakes (a later wait returns at once).
    pub fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.bell.notify_all();
    }

    /// Waits until it rings, or at most `timeout`; clears it.
    pub fn wait(&self, timeout: Duration) {
        let rung = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        let mut rung = self
            .bell
            .wait_timeout_while(rung, timeout, |rung| !*rung)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        *rung = false;
    }
}

/// One worker thread's state: the shared site, and caches only this thread touches.
pub struct Worker {
    site: Arc<Site>,
    /// Which of the server's workers this is, for its counters.
    index: usize,
    files: StaticFiles,
    date: DateCache,
    log_time: LogTime,
    buffers: BufferPool,
    /// Answered heads' allocations, for the next heads.
    spare_heads: SpareHeads,
    draining: bool,
    notifier: Notifier,
    /// The server's shutdown flag, looked at when a response is encoded.
    control: Option<Arc<Control>>,
    /// The site rules in force when last looked, and where replacements appear.
    rules: Arc<SiteRules>,
    slot: Option<Arc<RulesSlot>>,
    epoch: u64,
    /// The buffer access-log lines are built in, line after line.
    access_line: String,
    /// When the logger is flushed after an access-log line.
    log_flush: LogFlush,
}

impl Worker {
    /// Worker number `index` serving `site`, with `files` behind it.
    pub fn new(site: Arc<Site>, index: usize, files: StaticFiles) -> Worker {
        Worker {
            site,
            index,
            files,
            date: DateCache::new(),
            log_time: LogTime::default(),
            buffers: BufferPool::default(),
            spare_heads: SpareHeads::default(),
            draining: false,
            notifier: Notifier::Nobody,
            control: None,
            rules: Arc::new(SiteRules::new()),
            slot: None,
            epoch: 0,
            access_line: String::new(),
            log_flush: LogFlush::EachLine,
        }
    }

    /// Watches `control`: once shutdown begins, every response closes its connection, even
    /// one whose handler was running when it began.
    pub fn watch_shutdown(&mut self, control: Arc<Control>) {
        self.control = Some(control);
    }

    /// Sets how other threads reach this worker.
    pub fn set_notifier(&mut self, notifier: Notifier) {
        self.notifier = notifier;
    }

    /// Whether blocking handlers go to the worker pool (on an event loop that can be told
    /// their results).
    pub fn has_pool(&self) -> bool {
        self.site.pool.is_some() && matches!(self.notifier, Notifier::Mailbox(_))
    }

    /// Hands a blocking handler's request to the pool; its response comes back through the
    /// mailbox for `ticket`. Returns the job's id, or [`QueueFull`] (also without a pool).
    pub fn submit(
        &self,
        request: Request,
        handler: Handler,
        ticket: Ticket,
    ) -> Result<u64, QueueFull> {
        match (&self.site.pool, &self.notifier) {
            (Some(pool), Notifier::Mailbox(mailbox)) => {
                pool.submit(request, handler, mailbox.clone(), ticket)
            }
            _ => Err(QueueFull),
        }
    }

    /// What wakes connection `ticket` when a streamed body has something for it.
    pub fn wake_for(&self, ticket: Ticket) -> Box<dyn Fn() + Send + Sync> {
        match &self.notifier {
            Notifier::Nobody => Box::new(|| {}),
            Notifier::Mailbox(mailbox) => {
                let mailbox = mailbox.clone();
                Box::new(move || mailbox.post(Wake::Ready(ticket)))
            }
            Notifier::Doorbell(doorbell) => {
                let doorbell = doorbell.clone();
                Box::new(move || doorbell.ring())
            }
        }
    }

    /// Serves by the rules in `slot`, and by whatever replaces them there.
    pub(crate) fn with_rules(mut self, slot: Arc<RulesSlot>) -> Worker {
        self.epoch = u64::MAX;
        self.slot = Some(slot);
        self.follow_rules();
        self
    }

    /// Another worker for the same site, with caches of its own (empty).
    pub fn sibling(&self) -> Worker {
        let mut sibling = Worker::new(self.site.clone(), self.index, self.files.clone());
        sibling.rules = self.rules.clone();
        sibling.slot = self.slot.clone();
        sibling.epoch = self.epoch;
        sibling
    }

    /// Picks up rules replaced since the last look: one atomic load when nothing changed.
    pub fn follow_rules(&mut self) {
        let Some(slot) = &self.slot else {
            return;
        };
        if slot.epoch() == self.epoch {
            return;
        }
        let (epoch, rules) = slot.current();
        self.epoch = epoch;
        self.files.set_rules(rules.clone());
        self.rules = rules;
    }

    /// The site rules in force.
    pub fn rules(&self) -> &SiteRules {
        &self.rules
    }

    /// The shared site.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The server-wide counters.
    pub fn stats(&self) -> &Stats {
        &self.site.stats
    }

    /// Counts a response queued by this worker: its request's method (`None` if unknown),
    /// its status and how long after the request's first byte it was queued.
    pub fn count_response(&self, method: Option<Method>, status: StatusCode, elapsed: Duration) {
        self.site
            .stats
            .request_served(self.index, method, status, elapsed);
    }

    /// The read buffers kept for reuse.
    pub fn buffers(&mut self) -> &mut BufferPool {
        &mut self.buffers
    }

    /// Moves the cached clocks to `now`.
    pub fn tick(&mut self, now: SystemTime) {
        self.date.refresh(now);
        if self.site.access_log {
            self.log_time.refresh(now);
        }
    }

    /// Starts watching what the worker's caches depend on. Returns a descriptor that becomes
    /// readable when something changed; then call [`Worker::refresh`].
    pub fn watch_changes(&mut self) -> io::Result<RawFd> {
        self.files.watch_changes()
    }

    /// Brings the caches up to date with the changes reported so far. Call it wherever input
    /// read after the last poll is about to be served.
    pub fn refresh(&mut self) {
        self.files.apply_changes();
    }

    /// A graceful shutdown began: every response from now on closes its connection.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Whether a graceful shutdown is under way.
    pub fn is_draining(&self) -> bool {
        self.draining || self.control.as_ref().is_some_and(|c| c.is_shutting_down())
    }

    /// Parses a request head at the start of `input`, into the last head's allocations.
    pub fn parse_head(
        &mut self,
        input: &[u8],
    ) -> Result<Option<(RequestHead, usize)>, RequestError> {
        self.spare_heads.parse(input, &self.site.limits)
    }

    /// Keeps an answered head's allocations for a later head.
    pub fn recycle_head(&mut self, head: RequestHead) {
        self.spare_heads.recycle(head);
    }

    /// Answers a request from the static files (with the fallback where no handler route
    /// covers the path; a path a proxy rule covers never gets here, the exchange forwards it).
    pub fn serve_file(&mut self, head: &RequestHead) -> Response {
        let router = &self.site.router;
        self.files.serve_site(head, &|path| router.covers(path))
    }

    /// The site's own page for an error response of the server's, if it has one.
    pub fn error_page(&mut self, response: Response) -> Response {
        if response.stock_page && self.rules.has_error_pages() {
            self.files.error_page(response)
        } else {
            response
        }
    }

    /// The `Date` value for this second.
    pub fn date(&self) -> &[u8] {
        self.date.as_bytes()
    }

    /// The access-log timestamp for this second.
    pub fn log_time(&self) -> &str {
        self.log_time.as_str()
    }

    /// The access-log timestamp for this second in RFC 3339 form.
    pub fn log_time_iso(&self) -> &str {
        self.log_time.iso()
    }

    /// The buffer to build an access-log line in; give it back with
    /// [`Worker::access_logged`].
    pub fn take_access_line(&mut self) -> String {
        std::mem::take(&mut self.access_line)
    }

    /// An access-log line built in `buffer` was logged: flushes the logger, or, in an event
    /// loop, leaves that to the end of the turn ([`Worker::flush_access_log`]).
    pub fn access_logged(&mut self, buffer: String) {
        self.access_line = buffer;
        match &mut self.log_flush {
            LogFlush::EachLine => log::logger().flush(),
            LogFlush::EachTurn { pending } => *pending = true,
        }
    }

    /// From now on the logger is flushed by [`Worker::flush_access_log`], which the event loop
    /// calls before it waits: the lines of one turn reach a buffering logger's file together.
    pub fn flush_access_log_per_turn(&mut self) {
        self.log_flush = LogFlush::EachTurn { pending: false };
    }

    /// Flushes the logger if an access-log line was logged since it was last flushed.
    pub fn flush_access_log(&mut self) {
        if let LogFlush::EachTurn { pending } = &mut self.log_flush
            && std::mem::take(pending)
        {
            log::logger().flush();
        }
    }
}

/// When a worker flushes the logger after an access-log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFlush {
    /// At once (a connection thread).
    EachLine,
    /// Before the event loop next waits; `pending` once a line was logged since.
    EachTurn { pending: bool },
}

/// The Common Log Format time (`10/Oct/2000:13:55:36 +0000`) and the RFC 3339 one
/// (`2000-10-10T13:55:36Z`), formatted once per second.
#[derive(Debug, Default)]
pub struct LogTime {
    second: u64,
    text: String,
    iso: String,
}

impl LogTime {
    /// Updates the text if `now` is in a new second.
    pub fn refresh(&mut self, now: SystemTime) {
        let second = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if second == self.second && !self.text.is_empty() {
            return;
        }
        self.second = second;
        // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" rearranged to "06/Nov/1994:08:49:37 +0000".
        let imf = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
        let (day, month, year, time) = (&imf[5..7], &imf[8..11], &imf[12..16], &imf[17..25]);
        self.text = format!("{day}/{month}/{year}:{time} +0000");
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let number = months.iter().position(|m| *m == month).unwrap_or(0) + 1;
        self.iso = format!("{year}-{number:02}-{day}T{time}Z");
    }

    /// The RFC 3339 form.
    pub fn iso(&self) -> &str {
        &self.iso
    }

    /// The formatted time.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time_is_common_log_format() {
        let mut time = LogTime::default();
        time.refresh(UNIX_EPOCH + Duration::from_secs(971_185_736));
        assert_eq!(time.as_str(), "10/Oct/2000:13:48:56 +0000");
        assert_eq!(time.iso(), "2000-10-10T13:48:56Z");
        time.refresh(UNIX_EPOCH + Duration::from_secs(1_767_225_599));
        assert_eq!(time.iso(), "2025-12-31T23:59:59Z");
    }
}
