//! The endpoints the server can answer by itself: `GET /api/status` and `POST /api/echo`.

use crate::app::{Request, Router};
use crate::http::{Method, Response};
use crate::stats::Stats;
use std::sync::Arc;

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
