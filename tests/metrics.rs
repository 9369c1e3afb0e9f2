//! `GET /metrics` as a Prometheus server scrapes it: the text exposition format, and counts
//! that follow the traffic exactly (requests by method and status class, the duration
//! histogram, connections, the file cache and its compressed copies).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The samples of a scrape by name with labels as written (`name{a="b"}`), and the families
/// declared by `# TYPE` lines with their type.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in {:?}", self.samples.keys()))
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    let resp = fetch(addr, "GET", "/metrics", &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text();
    assert!(text.ends_with('\n'), "the format ends every line");
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            types.insert(name.to_string(), kind.to_string());
        } else if !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value: f64 = value.parse().expect("a number");
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "{series} twice"
            );
        }
    }
    Scrape { samples, types }
}

both_models!(
    requests_are_counted_by_method_status_and_duration,
    |model| {
        let server = TestServer::start(model);
        for _ in 0..3 {
            assert_eq!(server.get("/style.css").status, 200);
        }
        assert_eq!(server.get("/missing").status, 404);
        assert_eq!(server.head_with("/style.css", &[]).status, 200);
        let echo = fetch(
            server.addr(),
            "POST",
            "/api/echo",
            &[("Content-Length", "0")],
        );
        assert_eq!(echo.status, 200);

        let scrape = scrape(server.addr());
        let requests = |method: &str, code: &str| {
            scrape.get(&format!(
                "margay_http_requests_total{{method=\"{method}\",code=\"{code}\"}}"
            ))
        };
        assert_eq!(requests("GET", "2xx"), 3.0);
        assert_eq!(requests("GET", "4xx"), 1.0);
        assert_eq!(requests("HEAD", "2xx"), 1.0);
        assert_eq!(requests("POST", "2xx"), 1.0);
        let name = "margay_http_request_duration_seconds";
        assert_eq!(scrape.types[name], "histogram");
        assert_eq!(scrape.get(&format!("{name}_count")), 6.0);
        assert_eq!(scrape.get(&format!("{name}_bucket{{le=\"+Inf\"}}")), 6.0);
        let sum = scrape.get(&format!("{name}_sum"));
        assert!(sum > 0.0 && sum < 6.0, "sum {sum}");
        // Buckets are cumulative: never decreasing, ending at the count.
        let buckets: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|(series, _)| series.starts_with(&format!("{name}_bucket")))
            .map(|(_, v)| *v)
            .collect();
        assert!(buckets.len() > 10, "{buckets:?}");
        assert!(buckets.iter().all(|&b| b <= 6.0));
        assert_eq!(
            scrape.get(&format!("{name}_bucket{{le=\"10\"}}")),
            6.0,
            "every request took under 10 s"
        );
        // The six requests and this scrape each came on their own connection.
        assert_eq!(scrape.get("margay_connections_accepted_total"), 7.0);
        assert_eq!(scrape.get("margay_connections{state=\"reading\"}"), 1.0);
        assert!(scrape.get("margay_sent_bytes_total") > 1000.0);
        // Five lookups of static files: the first of style.css and the missing one miss.
        let hits = scrape.get("margay_file_cache_hits_total");
        let misses = scrape.get("margay_file_cache_misses_total");
        assert_eq!(hits + misses, 5.0, "hits {hits}, misses {misses}");
        assert!(misses >= 2.0);
        assert_eq!(scrape.get("margay_shutting_down"), 0.0);
        for (family, kind) in [
            ("margay_http_requests_total", "counter"),
            ("margay_connections", "gauge"),
            ("margay_connections_shed_total", "counter"),
            ("margay_file_cache_compressions_total", "counter"),
            ("margay_tls_handshakes_total", "counter"),
            ("margay_uptime_seconds", "gauge"),
        ] {
            assert_eq!(scrape.types.get(family).map(String::as_str), Some(kind));
        }
    }
);

both_models!(compressed_copies_are_counted_once, |model| {
    let text = "let answer = 42; // a line of a script\n".repeat(100);
    let server = TestServer::builder(model)
        .files(move |root| std::fs::write(root.join("bundle.js"), text).unwrap())
        .start();
    let before = scrape(server.addr());
    assert_eq!(
        before.get("margay_file_cache_compressions_total{encoding=\"gzip\"}"),
        0.0
    );
    let mut stream = server.connect();
    for _ in 0..3 {
        send(
            &mut stream,
            &request("GET", "/bundle.js", &[("Accept-Encoding", "gzip")]),
        );
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
    }
    let after = scrape(server.addr());
    assert_eq!(
        after.get("margay_file_cache_compressions_total{encoding=\"gzip\"}"),
        1.0,
        "compressed once, served three times"
    );
    assert_eq!(
        after.get("margay_file_cache_compressions_total{encoding=\"br\"}"),
        0.0
    );
    let held = after.get("margay_file_cache_compressed_bytes");
    assert!(held > 20.0 && held < 1000.0, "{held} bytes held");
});

both_models!(shed_connections_are_counted, |model| {
    let server = TestServer::builder(model)
        .config(|c| c.max_connections(2))
        .start();
    // Two kept-alive idle connections fill the cap; a third client makes one of them go.
    let mut idle: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = server.connect();
            assert_still_serves(&mut stream);
            stream
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let scrape = scrape(server.addr());
    assert_eq!(scrape.get("margay_connections_shed_total"), 1.0);
    idle.clear();
});

both_models!(upstreams_and_the_handler_pool_are_counted, |model| {
    let backend = TestServer::start(model);
    let upstream = backend.addr().to_string();
    let rule = margay::ProxyRule::new("/up/", &[&format!("http://{upstream}/")]).unwrap();
    let server = TestServer::builder(model)
        .config(move |c| c.proxy(rule))
        .routes(|s| {
            s.blocking(margay::Method::Get, "/slow", |_| {
                margay::Response::text("done")
            })
        })
        .start();
    for _ in 0..3 {
        let resp = server.get("/up/style.css");
        assert_eq!((resp.status, resp.text()), (200, STYLE_CSS.to_string()));
    }
    for _ in 0..2 {
        assert_eq!(server.get("/slow").text(), "done");
    }
    let scrape = scrape(server.addr());
    let labels = format!("{{prefix=\"/up/\",upstream=\"{upstream}\"}}");
    let upstream_sample = |name: &str| scrape.get(&format!("{name}{labels}"));
    assert_eq!(upstream_sample("margay_upstream_requests_total"), 3.0);
    assert_eq!(upstream_sample("margay_upstream_up"), 1.0);
    assert_eq!(upstream_sample("margay_upstream_failures_total"), 0.0);
    assert_eq!(upstream_sample("margay_upstream_active_requests"), 0.0);
    assert_eq!(scrape.types["margay_upstream_up"], "gauge");
    // The event loop hands blocking handlers to its pool; the thread model runs them on the
    // connection's own thread.
    let pooled = match model {
        margay::Model::Reactor => 2.0,
        margay::Model::Threads => 0.0,
    };
    assert_eq!(scrape.get("margay_handler_pool_finished_total"), pooled);
    assert_eq!(scrape.get("margay_handler_pool_queued"), 0.0);
    assert_eq!(scrape.get("margay_handler_pool_rejected_total"), 0.0);
});
