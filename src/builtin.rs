//! The endpoints the server can answer by itself: `GET /api/status` (the counters as JSON),
//! `GET /api/events` (the same counters once a second as server-sent events),
//! `POST /api/echo` (the request as JSON, credentials withheld), and for monitoring
//! `GET /metrics` (Prometheus) and `GET /healthz`.

use crate::app::{BodySender, Execution, Handler, Request, Router};
use crate::control::Control;
use crate::http::{Body, Method, Response, StatusCode};
use crate::metrics;
use crate::proxy::Upstreams;
use crate::stats::Stats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The paths an admin listener serves, and that the public listeners then do not: the
/// monitoring endpoints and the counters (`/api/events` streams what `/api/status` reports).
pub(crate) const ADMIN_PATHS: [&str; 4] = ["/metrics", "/healthz", "/api/status", "/api/events"];

/// `GET /metrics` (the counters in the Prometheus text format) and `GET /healthz` (`200 ok`
/// while serving, `503` once a graceful shutdown has begun, left out of the access log
/// unless `log_health_checks`).
pub(crate) fn add_monitoring(
    router: &mut Router,
    stats: &Arc<Stats>,
    control: &Arc<Control>,
    upstreams: Option<Arc<Upstreams>>,
    log_health_checks: bool,
) {
    let (stats, shutdown) = (stats.clone(), control.clone());
    router.add(
        Method::Get,
        "/metrics",
        handler(move |_| {
            let shutting_down = shutdown.is_shutting_down();
            let text = metrics::render(&stats, shutting_down, upstreams.as_deref());
            Response::bytes(metrics::CONTENT_TYPE, text).header("Cache-Control", "no-store")
        }),
        Execution::OnLoop,
    );
    let control = control.clone();
    router.add(
        Method::Get,
        "/healthz",
        handler(move |_| {
            let mut response = if control.is_shutting_down() {
                Response::new(StatusCode::SERVICE_UNAVAILABLE)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .with_body(Body::Bytes(b"shutting down\n".to_vec()))
            } else {
                Response::text("ok\n")
            };
            response.quiet = !log_health_checks;
            response.header("Cache-Control", "no-store")
        }),
        Execution::OnLoop,
    );
}

/// How often `/api/events` sends the counters.
const EVENT_PERIOD: Duration = Duration::from_secs(1);

/// Adds the built-in endpoints to `router`.
pub(crate) fn add_endpoints(
    router: &mut Router,
    stats: &Arc<Stats>,
    control: &Arc<Control>,
    upstreams: Option<Arc<Upstreams>>,
) {
    let on_loop = Execution::OnLoop;
    let status_stats = stats.clone();
    router.add(
        Method::Get,
        "/api/status",
        handler(move |_| {
            let mut report = serde_json::to_value(status_stats.report()).unwrap_or_default();
            if let Some(upstreams) = &upstreams {
                report["upstreams"] = serde_json::to_value(upstreams.report()).unwrap_or_default();
            }
            Response::json(&report).header("Cache-Control", "no-store")
        }),
        on_loop,
    );
    let events = Arc::new(Broadcaster {
        subscribers: Mutex::new(Vec::new()),
        running: AtomicBool::new(false),
        stats: stats.clone(),
        control: control.clone(),
    });
    router.add(
        Method::Get,
        "/api/events",
        handler(move |_| events.subscribe()),
        on_loop,
    );
    router.add(Method::Post, "/api/echo", handler(echo), on_loop);
}

fn handler(f: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Handler {
    Arc::new(move |request| Ok(f(request)))
}

/// Fields whose values `/api/echo` withholds: an echo must not hand credentials to a script
/// that can read its own responses.
const WITHHELD: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

fn echo(request: &Request) -> Response {
    let headers: Vec<(String, String)> = request
        .headers()
        .map(|(name, value)| {
            let value = if WITHHELD.iter().any(|w| w.eq_ignore_ascii_case(name)) {
                "(withheld)".to_string()
            } else {
                value.into_owned()
            };
            (name.to_string(), value)
        })
        .collect();
    Response::json(&serde_json::json!({
        "method": request.method().as_str(),
        "path": request.path(),
        "query": request.query_pairs(),
        "headers": headers,
        "body": String::from_utf8_lossy(request.body()),
        "remote_addr": request.remote_addr().to_string(),
    }))
}

/// Sends the counters to every `/api/events` client once a second, from one thread that runs
/// while anyone listens. A client too slow to take an event misses it rather than holding
/// the others up; one that has gone is forgotten.
struct Broadcaster {
    subscribers: Mutex<Vec<BodySender>>,
    running: AtomicBool,
    stats: Arc<Stats>,
    control: Arc<Control>,
}

impl Broadcaster {
    fn subscribe(self: &Arc<Self>) -> Response {
        let (response, sender) = Response::stream("text/event-stream");
        // The first event at once, so the page shows numbers without waiting a period.
        let _ = sender.try_send(self.event());
        self.lock().push(sender);
        if !self.running.swap(true, Ordering::SeqCst) {
            let broadcaster = self.clone();
            let spawned = std::thread::Builder::new()
                .name("margay-events".into())
                .spawn(move || broadcaster.run());
            if spawned.is_err() {
                self.running.store(false, Ordering::SeqCst);
            }
        }
        response.header("Cache-Control", "no-store")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BodySender>> {
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn event(&self) -> Arc<[u8]> {
        let json = serde_json::to_string(&self.stats.report()).unwrap_or_default();
        Arc::from(format!("data: {json}\n\n").into_bytes())
    }

    fn run(&self) {
        loop {
            let mut slept = Duration::ZERO;
            while slept < EVENT_PERIOD && !self.control.is_shutting_down() {
                std::thread::sleep(Duration::from_millis(100));
                slept += Duration::from_millis(100);
            }
            let mut subscribers = self.lock();
            if self.control.is_shutting_down() {
                // Dropping the senders ends every stream, so their connections can close.
                subscribers.clear();
            } else {
                let event = self.event();
                subscribers.retain(|s| s.try_send(event.clone()).is_ok());
            }
            if subscribers.is_empty() {
                self.running.store(false, Ordering::SeqCst);
                return;
            }
        }
    }
}
