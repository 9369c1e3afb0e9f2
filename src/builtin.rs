//! The endpoints the server can answer by itself: `GET /api/status`, `POST /api/echo`, and
//! for monitoring `GET /metrics` (Prometheus) and `GET /healthz`.

use crate::app::{Request, Router};
use crate::control::Control;
use crate::http::{Body, Method, Response, StatusCode};
use crate::metrics;
use crate::stats::Stats;
use std::sync::Arc;

/// The paths an admin listener serves, and that the public listeners then do not.
pub(crate) const ADMIN_PATHS: [&str; 3] = ["/metrics", "/healthz", "/api/status"];

/// `GET /metrics` (the counters in the Prometheus text format) and `GET /healthz` (`200 ok`
/// while serving, `503` once a graceful shutdown has begun, left out of the access log
/// unless `log_health_checks`).
pub(crate) fn add_monitoring(
    router: &mut Router,
    stats: &Arc<Stats>,
    control: &Arc<Control>,
    log_health_checks: bool,
) {
    let (stats, shutdown) = (stats.clone(), control.clone());
    router.exact(
        Method::Get,
        "/metrics",
        Arc::new(move |_| {
            let text = metrics::render(&stats, shutdown.is_shutting_down());
            Response::bytes(metrics::CONTENT_TYPE, text).header("Cache-Control", "no-store")
        }),
    );
    let control = control.clone();
    router.exact(
        Method::Get,
        "/healthz",
        Arc::new(move |_| {
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
    );
}

/// `GET /api/status` (counters as JSON) and `POST /api/echo` (the request as JSON).
pub(crate) fn add_endpoints(router: &mut Router, stats: &Arc<Stats>) {
    let stats = stats.clone();
    router.exact(
        Method::Get,
        "/api/status",
        Arc::new(move |_| Response::json(&stats.report()).header("Cache-Control", "no-store")),
    );
    router.exact(
        Method::Post,
        "/api/echo",
        Arc::new(|request: &Request| {
            let headers: Vec<(String, String)> = request
                .headers()
                .map(|(n, v)| (n.to_string(), v.into_owned()))
                .collect();
            Response::json(&serde_json::json!({
                "method": request.method().as_str(),
                "path": request.path(),
                "query": request.query_pairs(),
                "headers": headers,
                "body": String::from_utf8_lossy(request.body()),
                "remote_addr": request.remote_addr().to_string(),
            }))
        }),
    );
}
