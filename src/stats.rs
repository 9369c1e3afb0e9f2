//! Counters about the running server, shared by every worker and read by `/api/status` and
//! `/metrics`.

use crate::connection::State;
use crate::files::cache::CacheCounters;
use crate::http::{Method, StatusCode};
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a TLS handshake did not finish, as `/api/status` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client sent an alert (e.g. it does not trust the certificate).
    AlertReceived,
    /// No protocol version, cipher suite or ALPN protocol in common.
    NoCommonProtocol,
    /// A record or handshake message that breaks the protocol.
    Protocol,
    /// Plain HTTP sent to a TLS port (answered `400` in clear text).
    PlainHttp,
    /// The client closed the connection during the handshake.
    Eof,
    /// The client stalled or vanished mid-handshake (the header timeout ended it).
    Incomplete,
}

impl TlsFailure {
    const ALL: [TlsFailure; 6] = [
        TlsFailure::AlertReceived,
        TlsFailure::NoCommonProtocol,
        TlsFailure::Protocol,
        TlsFailure::PlainHttp,
        TlsFailure::Eof,
        TlsFailure::Incomplete,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            TlsFailure::AlertReceived => "alert_received",
            TlsFailure::NoCommonProtocol => "no_common_protocol",
            TlsFailure::Protocol => "protocol_error",
            TlsFailure::PlainHttp => "plain_http",
            TlsFailure::Eof => "closed_in_handshake",
            TlsFailure::Incomplete => "incomplete",
        }
    }
}

/// TLS handshakes in the status report.
#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    /// Handshakes completed, full and resumed.
    pub handshakes: u64,
    /// Of those, resumed from a session ticket or cache.
    pub resumed: u64,
    /// Handshakes that failed, by why.
    pub failures: std::collections::BTreeMap<&'static str, u64>,
}

/// Upper bounds of the request duration histogram's buckets, in microseconds: from 50 µs (a
/// cached file) to 10 s (a slow client's upload).
pub const DURATION_BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Methods as the request counters tell them apart; the last slot counts responses to
/// requests whose method is unknown or whose head could not be parsed.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "other",
];

/// Status classes as the request counters tell them apart.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(method: Option<Method>) -> usize {
    match method {
        Some(Method::Get) => 0,
        Some(Method::Head) => 1,
        Some(Method::Post) => 2,
        Some(Method::Put) => 3,
        Some(Method::Delete) => 4,
        Some(Method::Patch) => 5,
        Some(Method::Options) => 6,
        Some(Method::Trace) => 7,
        Some(Method::Connect) => 8,
        Some(Method::Other) | None => 9,
    }
}

/// The blocking handlers' pool.
#[derive(Debug, Default)]
struct HandlerCounters {
    queued: AtomicI64,
    running: AtomicI64,
    finished: AtomicU64,
    rejected: AtomicU64,
    timed_out: AtomicU64,
}

/// The blocking handlers' pool in the status report.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerReport {
    /// Requests waiting for a pool thread now.
    pub queued: i64,
    /// Requests a pool thread is running now.
    pub running: i64,
    /// Requests the pool has finished since start.
    pub finished: u64,
    /// Requests refused with `503` because the queue was full.
    pub rejected: u64,
    /// Requests answered `504` because the handler took longer than its timeout.
    pub timed_out: u64,
}

/// Server-wide counters. Updated with relaxed atomics: each is exact, together they are a
/// snapshot that may be a few operations apart.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    accepted: AtomicU64,
    closed: AtomicU64,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    idle: AtomicI64,
    reading: AtomicI64,
    writing: AtomicI64,
    closing: AtomicI64,
    waiting: AtomicI64,
    /// Responses each worker (event loop, or the thread model's acceptor) has sent.
    per_worker: Box<[AtomicU64]>,
    handlers: HandlerCounters,
    tls_handshakes: AtomicU64,
    tls_resumed: AtomicU64,
    tls_failures: [AtomicU64; 6],
    samples: Mutex<Vec<Sample>>,
    /// Responses by method and status class.
    responses: [[AtomicU64; 5]; 10],
    /// Request durations: a count per bucket (not cumulative), the last for beyond them all.
    duration_buckets: [AtomicU64; DURATION_BUCKETS_US.len() + 1],
    duration_sum_us: AtomicU64,
    /// Idle connections closed to make room for new ones at the connection cap.
    shed: AtomicU64,
    /// What the workers' file caches count.
    pub(crate) file_cache: Arc<CacheCounters>,
}

/// The counters `/metrics` renders, read at one moment.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Responses by [`METHODS`] and [`STATUS_CLASSES`].
    pub responses: [[u64; 5]; 10],
    /// Cumulative counts for each of [`DURATION_BUCKETS_US`], then the total count.
    pub duration_cumulative: Vec<u64>,
    /// Sum of every request's duration, in seconds.
    pub duration_sum_seconds: f64,
    /// Bytes sent since start.
    pub bytes_sent: u64,
    /// Connections accepted, closed and shed since start.
    pub accepted: u64,
    /// Connections closed since start.
    pub closed: u64,
    /// Idle connections closed at the connection cap to make room.
    pub shed: u64,
    /// Open connections by state: reading, writing, idle, closing, waiting (for a blocking
    /// handler); together, every open connection.
    pub connections: [(&'static str, i64); 5],
    /// Responses per worker.
    pub per_worker: Vec<u64>,
    /// TLS handshakes completed and resumed.
    pub tls_handshakes: u64,
    /// Of those, resumed.
    pub tls_resumed: u64,
    /// TLS handshake failures by reason.
    pub tls_failures: Vec<(&'static str, u64)>,
    /// The blocking handlers' pool.
    pub handler_pool: HandlerReport,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    requests: u64,
    bytes_sent: u64,
    accepted: u64,
}

/// What `/api/status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections accepted and fully handled (closed) since start.
    pub handled: u64,
    /// Connections open now.
    pub active: i64,
    /// Connections reading a request now.
    pub reading: i64,
    /// Connections writing a response now.
    pub writing: i64,
    /// Kept-alive connections waiting for a request now.
    pub idle: i64,
    /// Connections whose responses are sent, waiting for the client to close.
    pub closing: i64,
    /// Connections waiting for a blocking handler's response.
    pub waiting: i64,
    /// Responses sent since start.
    pub requests: u64,
    /// Bytes sent since start (heads and bodies).
    pub bytes_sent: u64,
    /// Responses per second over the last few seconds.
    pub requests_per_second: f64,
    /// Bytes per second over the last few seconds.
    pub bytes_per_second: f64,
    /// Responses sent by each worker since start, in worker order: how evenly the kernel
    /// spreads connections over event loops sharing the port.
    pub requests_per_worker: Vec<u64>,
    /// The blocking handlers' pool.
    pub handler_pool: HandlerReport,
    /// TLS handshakes.
    pub tls: TlsReport,
    /// Connections accepted per second over the last few seconds.
    pub accepted_per_second: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(1)
    }
}

impl Stats {
    /// Counters at zero for a server of `workers` workers, the clock starting now.
    pub fn new(workers: usize) -> Stats {
        Stats {
            started: Instant::now(),
            accepted: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            idle: AtomicI64::new(0),
            reading: AtomicI64::new(0),
            writing: AtomicI64::new(0),
            closing: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
            per_worker: (0..workers.max(1)).map(|_| AtomicU64::new(0)).collect(),
            handlers: HandlerCounters::default(),
            tls_handshakes: AtomicU64::new(0),
            tls_resumed: AtomicU64::new(0),
            tls_failures: Default::default(),
            samples: Mutex::new(Vec::new()),
            responses: Default::default(),
            duration_buckets: Default::default(),
            duration_sum_us: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            file_cache: Arc::default(),
        }
    }

    /// A connection was accepted; it starts out reading.
    pub fn connection_opened(&self) {
        self.accepted.fetch_add(1, Relaxed);
        self.gauge(State::Reading).fetch_add(1, Relaxed);
    }

    /// A connection in `state` was closed.
    pub fn connection_closed(&self, state: State) {
        self.closed.fetch_add(1, Relaxed);
        self.gauge(state).fetch_sub(1, Relaxed);
    }

    /// A connection moved from one state to another.
    pub fn state_changed(&self, from: State, to: State) {
        if from != to {
            self.gauge(from).fetch_sub(1, Relaxed);
            self.gauge(to).fetch_add(1, Relaxed);
        }
    }

    /// Worker `worker` queued a response with `status` to a request of `method` (`None`:
    /// unknown or unparsed), `elapsed` after the request's first byte was read.
    pub fn request_served(
        &self,
        worker: usize,
        method: Option<Method>,
        status: StatusCode,
        elapsed: Duration,
    ) {
        self.requests.fetch_add(1, Relaxed);
        if let Some(count) = self.per_worker.get(worker) {
            count.fetch_add(1, Relaxed);
        }
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.responses[method_index(method)][class].fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_US.partition_point(|&bound| bound < micros);
        self.duration_buckets[bucket].fetch_add(1, Relaxed);
        self.duration_sum_us.fetch_add(micros, Relaxed);
    }

    /// An idle connection was closed to make room for a new one.
    pub fn connection_shed(&self) {
        self.shed.fetch_add(1, Relaxed);
    }

    /// The counters for `/metrics`, read now.
    pub fn counters(&self) -> Counters {
        let mut cumulative = Vec::with_capacity(self.duration_buckets.len());
        let mut running = 0;
        for bucket in &self.duration_buckets {
            running += bucket.load(Relaxed);
            cumulative.push(running);
        }
        Counters {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            responses: std::array::from_fn(|m| {
                std::array::from_fn(|c| self.responses[m][c].load(Relaxed))
            }),
            duration_cumulative: cumulative,
            duration_sum_seconds: self.duration_sum_us.load(Relaxed) as f64 / 1e6,
            bytes_sent: self.bytes_sent.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            closed: self.closed.load(Relaxed),
            shed: self.shed.load(Relaxed),
            connections: [
                ("reading", self.reading.load(Relaxed)),
                ("writing", self.writing.load(Relaxed)),
                ("idle", self.idle.load(Relaxed)),
                ("closing", self.closing.load(Relaxed)),
                ("waiting", self.waiting.load(Relaxed)),
            ],
            per_worker: self.per_worker.iter().map(|n| n.load(Relaxed)).collect(),
            tls_handshakes: self.tls_handshakes.load(Relaxed),
            tls_resumed: self.tls_resumed.load(Relaxed),
            tls_failures: TlsFailure::ALL
                .iter()
                .map(|f| (f.name(), self.tls_failures[f.index()].load(Relaxed)))
                .collect(),
            handler_pool: self.handler_report(),
        }
    }

    fn handler_report(&self) -> HandlerReport {
        HandlerReport {
            queued: self.handlers.queued.load(Relaxed),
            running: self.handlers.running.load(Relaxed),
            finished: self.handlers.finished.load(Relaxed),
            rejected: self.handlers.rejected.load(Relaxed),
            timed_out: self.handlers.timed_out.load(Relaxed),
        }
    }

    /// A request was queued for the pool.
    pub fn pool_queued(&self) {
        self.handlers.queued.fetch_add(1, Relaxed);
    }

    /// A pool thread took a queued request.
    pub fn pool_started(&self) {
        self.handlers.queued.fetch_sub(1, Relaxed);
        self.handlers.running.fetch_add(1, Relaxed);
    }

    /// A pool thread finished a request.
    pub fn pool_finished(&self) {
        self.handlers.running.fetch_sub(1, Relaxed);
        self.handlers.finished.fetch_add(1, Relaxed);
    }

    /// The pool's queue was full: the request got `503`.
    pub fn pool_rejected(&self) {
        self.handlers.rejected.fetch_add(1, Relaxed);
    }

    /// A blocking handler ran past its timeout: the request got `504`.
    pub fn pool_timed_out(&self) {
        self.handlers.timed_out.fetch_add(1, Relaxed);
    }

    /// A TLS handshake completed.
    pub fn tls_handshake(&self, resumed: bool) {
        self.tls_handshakes.fetch_add(1, Relaxed);
        if resumed {
            self.tls_resumed.fetch_add(1, Relaxed);
        }
    }

    /// A TLS handshake failed.
    pub fn tls_failed(&self, why: TlsFailure) {
        self.tls_failures[why.index()].fetch_add(1, Relaxed);
    }

    /// Bytes went out on a socket.
    pub fn bytes_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Relaxed);
    }

    fn gauge(&self, state: State) -> &AtomicI64 {
        match state {
            State::Idle => &self.idle,
            State::Reading => &self.reading,
            State::Writing => &self.writing,
            State::Waiting => &self.waiting,
            State::Closing => &self.closing,
        }
    }

    /// A snapshot with rates over roughly the last five seconds.
    pub fn report(&self) -> StatusReport {
        let now = Instant::now();
        let current = Sample {
            at: now,
            requests: self.requests.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
        };
        let base = self.rate_base(current);
        let seconds = now.duration_since(base.at).as_secs_f64().max(1e-3);
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        let (idle, reading, writing, closing, waiting) = (
            self.idle.load(Relaxed),
            self.reading.load(Relaxed),
            self.writing.load(Relaxed),
            self.closing.load(Relaxed),
            self.waiting.load(Relaxed),
        );
        StatusReport {
            uptime_seconds: now.duration_since(self.started).as_secs_f64(),
            accepted: current.accepted,
            handled: self.closed.load(Relaxed),
            active: idle + reading + writing + closing + waiting,
            reading,
            writing,
            idle,
            closing,
            waiting,
            requests: current.requests,
            bytes_sent: current.bytes_sent,
            requests_per_second: rate(current.requests, base.requests),
            bytes_per_second: rate(current.bytes_sent, base.bytes_sent),
            requests_per_worker: self.per_worker.iter().map(|n| n.load(Relaxed)).collect(),
            handler_pool: self.handler_report(),
            tls: TlsReport {
                handshakes: self.tls_handshakes.load(Relaxed),
                resumed: self.tls_resumed.load(Relaxed),
                failures: TlsFailure::ALL
                    .iter()
                    .map(|f| (f.name(), self.tls_failures[f.index()].load(Relaxed)))
                    .collect(),
            },
            accepted_per_second: rate(current.accepted, base.accepted),
        }
    }

    /// Records `current` (at most one sample per second, five kept) and returns the oldest
    /// sample to measure rates against.
    fn rate_base(&self, current: Sample) -> Sample {
        let Ok(mut samples) = self.samples.lock() else {
            return current;
        };
        if samples
            .last()
            .is_none_or(|last| current.at.duration_since(last.at) >= Duration::from_secs(1))
        {
            samples.push(current);
        }
        let window = Duration::from_secs(6);
        samples.retain(|s| current.at.duration_since(s.at) <= window);
        let started = Sample {
            at: self.started,
            requests: 0,
            bytes_sent: 0,
            accepted: 0,
        };
        match samples.first() {
            Some(first) if current.at.duration_since(first.at) >= Duration::from_millis(500) => {
                *first
            }
            _ if samples.len() > 1 => samples[0],
            _ => started,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_follow_connections_through_their_states() {
        let stats = Stats::new(2);
        stats.connection_opened();
        stats.connection_opened();
        stats.state_changed(State::Reading, State::Writing);
        stats.request_served(
            1,
            Some(Method::Get),
            StatusCode::OK,
            Duration::from_micros(70),
        );
        stats.bytes_sent(100);
        stats.state_changed(State::Writing, State::Idle);
        let report = stats.report();
        assert_eq!(
            (report.active, report.reading, report.writing, report.idle),
            (2, 1, 0, 1)
        );
        assert_eq!(
            (report.accepted, report.requests, report.bytes_sent),
            (2, 1, 100)
        );
        assert_eq!(report.requests_per_worker, [0, 1]);
        stats.connection_closed(State::Idle);
        let report = stats.report();
        assert_eq!((report.active, report.handled), (1, 1));
        assert!(report.requests_per_second > 0.0);
    }

    #[test]
    fn responses_are_counted_by_method_class_and_duration() {
        let stats = Stats::new(1);
        // (method, status, duration in µs)
        let rows: &[(Option<Method>, u16, u64)] = &[
            (Some(Method::Get), 200, 40),
            (Some(Method::Get), 200, 50),
            (Some(Method::Get), 304, 51),
            (Some(Method::Post), 500, 2_000_000),
            (None, 400, 20_000_000),
        ];
        for (method, status, micros) in rows {
            let status = StatusCode::from_u16(*status).unwrap();
            stats.request_served(0, *method, status, Duration::from_micros(*micros));
        }
        let counters = stats.counters();
        assert_eq!(counters.responses[0], [0, 2, 1, 0, 0]);
        assert_eq!(counters.responses[2], [0, 0, 0, 0, 1]);
        assert_eq!(counters.responses[9], [0, 0, 0, 1, 0]);
        // <= 50 µs: two; <= 100 µs: three; <= 2.5 s: four; all: five.
        let cumulative = &counters.duration_cumulative;
        assert_eq!((cumulative[0], cumulative[1]), (2, 3));
        assert_eq!(cumulative[DURATION_BUCKETS_US.len() - 3], 4);
        assert_eq!(cumulative[DURATION_BUCKETS_US.len() - 1], 4);
        assert_eq!(cumulative[DURATION_BUCKETS_US.len()], 5);
        assert!((counters.duration_sum_seconds - 22.000141).abs() < 1e-9);
    }
}
