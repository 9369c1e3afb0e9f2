//! `GET /metrics`: the server's counters in the Prometheus text exposition format (version
//! 0.0.4): a `# HELP` and a `# TYPE` line per family, then its samples; histograms as
//! cumulative `_bucket{le=".."}` samples ending with `+Inf`, then `_sum` and `_count`.

use crate::proxy::Upstreams;
use crate::proxy::upstreams::MemberReport;
use crate::stats::{Counters, DURATION_BUCKETS_US, METHODS, STATUS_CLASSES, Stats};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every family from `stats`, and the reverse proxy's upstream servers if any.
pub fn render(stats: &Stats, shutting_down: bool, upstreams: Option<&Upstreams>) -> String {
    let counters = stats.counters();
    let mut out = String::with_capacity(8 * 1024);
    let out = &mut out;
    server_families(out, &counters, shutting_down);
    request_families(out, &counters);
    connection_families(out, &counters);
    cache_families(out, stats);
    tls_families(out, &counters);
    pool_families(out, &counters);
    if let Some(upstreams) = upstreams {
        upstream_families(out, upstreams);
    }
    std::mem::take(out)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Counters with no labels, each a family of one sample: `(name, help, value)`.
fn plain_counters(out: &mut String, families: &[(&str, &str, u64)]) {
    for &(name, help, value) in families {
        family(out, name, "counter", help);
        sample(out, name, &[], value);
    }
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"");
            escape_label(text, out);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
fn escape_label(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn server_families(out: &mut String, counters: &Counters, shutting_down: bool) {
    family(
        out,
        "margay_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    sample(out, "margay_uptime_seconds", &[], counters.uptime_seconds);
    family(
        out,
        "margay_shutting_down",
        "gauge",
        "1 once a graceful shutdown has begun (GET /healthz then answers 503), else 0.",
    );
    sample(out, "margay_shutting_down", &[], u8::from(shutting_down));
}

fn request_families(out: &mut String, counters: &Counters) {
    family(
        out,
        "margay_http_requests_total",
        "counter",
        "Responses sent, by request method and status class.",
    );
    for (m, method) in METHODS.iter().enumerate() {
        for (c, class) in STATUS_CLASSES.iter().enumerate() {
            let n = counters.responses[m][c];
            // Families stay small: a method appears once it has been answered.
            if n > 0 || (m == 0 && c == 1) {
                sample(
                    out,
                    "margay_http_requests_total",
                    &[("method", method), ("code", class)],
                    n,
                );
            }
        }
    }
    let name = "margay_http_request_duration_seconds";
    family(
        out,
        name,
        "histogram",
        "Time from the first byte of a request to its response being queued for sending.",
    );
    let bucket = format!("{name}_bucket");
    for (bound, count) in DURATION_BUCKETS_US
        .iter()
        .zip(&counters.duration_cumulative)
    {
        let le = format!("{}", *bound as f64 / 1e6);
        sample(out, &bucket, &[("le", &le)], count);
    }
    let total = counters.duration_cumulative.last().copied().unwrap_or(0);
    sample(out, &bucket, &[("le", "+Inf")], total);
    sample(
        out,
        &format!("{name}_sum"),
        &[],
        counters.duration_sum_seconds,
    );
    sample(out, &format!("{name}_count"), &[], total);
    family(
        out,
        "margay_sent_bytes_total",
        "counter",
        "Bytes written to client sockets (heads and bodies).",
    );
    sample(out, "margay_sent_bytes_total", &[], counters.bytes_sent);
    family(
        out,
        "margay_worker_requests_total",
        "counter",
        "Responses sent by each worker (event loop).",
    );
    for (i, n) in counters.per_worker.iter().enumerate() {
        let worker = i.to_string();
        sample(
            out,
            "margay_worker_requests_total",
            &[("worker", &worker)],
            n,
        );
    }
}

fn connection_families(out: &mut String, counters: &Counters) {
    family(
        out,
        "margay_connections",
        "gauge",
        "Open client connections by state.",
    );
    for (state, n) in counters.connections {
        sample(out, "margay_connections", &[("state", state)], n);
    }
    plain_counters(
        out,
        &[
            (
                "margay_connections_accepted_total",
                "Client connections accepted.",
                counters.accepted,
            ),
            (
                "margay_connections_closed_total",
                "Client connections closed.",
                counters.closed,
            ),
            (
                "margay_connections_shed_total",
                "Idle kept-alive connections closed to make room for new ones at the cap.",
                counters.shed,
            ),
        ],
    );
}

fn cache_families(out: &mut String, stats: &Stats) {
    let cache = &stats.file_cache;
    plain_counters(
        out,
        &[
            (
                "margay_file_cache_hits_total",
                "Static file lookups answered from a worker's file cache.",
                cache.hits.load(Relaxed),
            ),
            (
                "margay_file_cache_misses_total",
                "Static file lookups that went to the file system.",
                cache.misses.load(Relaxed),
            ),
        ],
    );
    let name = "margay_file_cache_compressions_total";
    family(
        out,
        name,
        "counter",
        "Cached files compressed on first request, by content coding.",
    );
    for (encoding, i) in [("br", 0), ("gzip", 2)] {
        let n = cache.compressions[i].load(Relaxed);
        sample(out, name, &[("encoding", encoding)], n);
    }
    let name = "margay_file_cache_compressed_bytes";
    family(
        out,
        name,
        "gauge",
        "Bytes of compressed copies held by the file caches.",
    );
    sample(out, name, &[], cache.compressed_bytes.load(Relaxed));
}

fn tls_families(out: &mut String, counters: &Counters) {
    plain_counters(
        out,
        &[
            (
                "margay_tls_handshakes_total",
                "TLS handshakes completed, full and resumed.",
                counters.tls_handshakes,
            ),
            (
                "margay_tls_resumed_handshakes_total",
                "TLS handshakes completed by resuming a session.",
                counters.tls_resumed,
            ),
        ],
    );
    let name = "margay_tls_handshake_failures_total";
    family(
        out,
        name,
        "counter",
        "TLS handshakes that failed, by reason.",
    );
    for (reason, n) in &counters.tls_failures {
        sample(out, name, &[("reason", reason)], n);
    }
}

fn pool_families(out: &mut String, counters: &Counters) {
    let pool = &counters.handler_pool;
    for (name, kind, help, value) in [
        (
            "margay_handler_pool_queued",
            "gauge",
            "Blocking-handler requests waiting for a pool thread.",
            pool.queued,
        ),
        (
            "margay_handler_pool_running",
            "gauge",
            "Blocking-handler requests a pool thread is running.",
            pool.running,
        ),
        (
            "margay_handler_pool_finished_total",
            "counter",
            "Blocking-handler requests the pool has finished.",
            i64::try_from(pool.finished).unwrap_or(i64::MAX),
        ),
        (
            "margay_handler_pool_rejected_total",
            "counter",
            "Blocking-handler requests refused with 503 because the queue was full.",
            i64::try_from(pool.rejected).unwrap_or(i64::MAX),
        ),
        (
            "margay_handler_pool_timeouts_total",
            "counter",
            "Blocking-handler requests answered 504 because the handler overran its timeout.",
            i64::try_from(pool.timed_out).unwrap_or(i64::MAX),
        ),
    ] {
        family(out, name, kind, help);
        sample(out, name, &[], value);
    }
}

fn upstream_families(out: &mut String, upstreams: &Upstreams) {
    let groups = upstreams.report();
    let members = || {
        groups.iter().flat_map(|group| {
            group
                .members
                .iter()
                .map(move |member| (group.prefix.as_str(), member))
        })
    };
    type Value = fn(&MemberReport) -> u64;
    let families: [(&str, &str, &str, Value); 6] = [
        (
            "margay_upstream_up",
            "gauge",
            "1 while an upstream server is used, 0 while it is skipped (down after failures, or unhealthy by its active check).",
            |m| u64::from(m.state == "up"),
        ),
        (
            "margay_upstream_active_requests",
            "gauge",
            "Requests an upstream server is serving now.",
            |m| m.active as u64,
        ),
        (
            "margay_upstream_idle_connections",
            "gauge",
            "Idle keep-alive connections kept for an upstream server.",
            |m| m.idle as u64,
        ),
        (
            "margay_upstream_requests_total",
            "counter",
            "Requests sent to an upstream server.",
            |m| m.requests,
        ),
        (
            "margay_upstream_failures_total",
            "counter",
            "Connections or responses of an upstream server that failed.",
            |m| m.failures,
        ),
        (
            "margay_upstream_retries_total",
            "counter",
            "Requests retried elsewhere after an upstream server failed them.",
            |m| m.retried,
        ),
    ];
    for (name, kind, help, value) in families {
        family(out, name, kind, help);
        for (prefix, member) in members() {
            let labels = [("prefix", prefix), ("upstream", member.addr.as_str())];
            sample(out, name, &labels, value(member));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::State;
    use crate::http::{Method, StatusCode};
    use std::time::Duration;

    #[test]
    fn families_have_help_type_and_samples() {
        let stats = Stats::new(2);
        // One open connection, its request with a blocking handler.
        stats.connection_opened();
        stats.state_changed(State::Reading, State::Waiting);
        stats.request_served(
            1,
            Some(Method::Get),
            StatusCode::NOT_FOUND,
            Duration::from_micros(300),
        );
        let text = render(&stats, true, None);
        for line in [
            "# TYPE margay_http_requests_total counter",
            "margay_http_requests_total{method=\"GET\",code=\"2xx\"} 0",
            "margay_http_requests_total{method=\"GET\",code=\"4xx\"} 1",
            "# TYPE margay_http_request_duration_seconds histogram",
            "margay_http_request_duration_seconds_bucket{le=\"0.00025\"} 0",
            "margay_http_request_duration_seconds_bucket{le=\"0.0005\"} 1",
            "margay_http_request_duration_seconds_bucket{le=\"10\"} 1",
            "margay_http_request_duration_seconds_bucket{le=\"+Inf\"} 1",
            "margay_http_request_duration_seconds_sum 0.0003",
            "margay_http_request_duration_seconds_count 1",
            "margay_worker_requests_total{worker=\"1\"} 1",
            "margay_connections{state=\"idle\"} 0",
            "margay_connections{state=\"reading\"} 0",
            "margay_connections{state=\"waiting\"} 1",
            "margay_shutting_down 1",
            "margay_tls_handshake_failures_total{reason=\"plain_http\"} 0",
            "margay_handler_pool_queued 0",
            "margay_handler_pool_timeouts_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        let mut escaped = String::new();
        escape_label("a\"b\\c\nd", &mut escaped);
        assert_eq!(escaped, "a\\\"b\\\\c\\nd");
        // Every sample belongs to the family announced last.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&family), "{line} outside {family}");
            }
        }
    }
}
