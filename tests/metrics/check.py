"""Parses a /metrics scrape with prometheus_client's text-format parser and checks that every
family margay documents is there with its type, and that the counts follow the traffic that
tests/metrics/check.sh sent before scraping."""

import sys

from prometheus_client.parser import text_string_to_metric_families

# Family name as the parser reports it (counters without "_total") and its type.
EXPECTED = {
    "margay_uptime_seconds": "gauge",
    "margay_shutting_down": "gauge",
    "margay_http_requests": "counter",
    "margay_http_request_duration_seconds": "histogram",
    "margay_sent_bytes": "counter",
    "margay_worker_requests": "counter",
    "margay_connections": "gauge",
    "margay_connections_accepted": "counter",
    "margay_connections_closed": "counter",
    "margay_connections_shed": "counter",
    "margay_file_cache_hits": "counter",
    "margay_file_cache_misses": "counter",
    "margay_file_cache_compressions": "counter",
    "margay_file_cache_compressed_bytes": "gauge",
    "margay_tls_handshakes": "counter",
    "margay_tls_resumed_handshakes": "counter",
    "margay_tls_handshake_failures": "counter",
    "margay_handler_pool_queued": "gauge",
    "margay_handler_pool_running": "gauge",
    "margay_handler_pool_finished": "counter",
    "margay_handler_pool_rejected": "counter",
    "margay_handler_pool_timeouts": "counter",
    "margay_upstream_up": "gauge",
    "margay_upstream_active_requests": "gauge",
    "margay_upstream_idle_connections": "gauge",
    "margay_upstream_requests": "counter",
    "margay_upstream_failures": "counter",
    "margay_upstream_retries": "counter",
}


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # Raises on any line the format does not allow.
    families = {family.name: family for family in text_string_to_metric_families(text)}
    failures = []
    for name, kind in EXPECTED.items():
        family = families.get(name)
        if family is None:
            failures.append(f"missing family {name}")
        elif family.type != kind:
            failures.append(f"{name} is a {family.type}, expected {kind}")
    if failures:
        sys.exit("\n".join(failures))

    def value(name, sample_name, **labels):
        for sample in families[name].samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return sample.value
        sys.exit(f"no sample {sample_name} {labels}")

    checks = [
        # Three GET / and two GET /app.js; HEAD, POST and the 404s on their own.
        (value("margay_http_requests", "margay_http_requests_total", method="GET", code="2xx") >= 5, "GET 2xx"),
        (value("margay_http_requests", "margay_http_requests_total", method="HEAD", code="2xx") >= 1, "HEAD 2xx"),
        (value("margay_http_requests", "margay_http_requests_total", method="GET", code="4xx") >= 2, "GET 4xx"),
        (value("margay_http_requests", "margay_http_requests_total", method="POST", code="2xx") >= 1, "POST 2xx"),
        (value("margay_file_cache_compressions", "margay_file_cache_compressions_total", encoding="gzip") == 1, "one gzip copy"),
        (value("margay_file_cache_compressions", "margay_file_cache_compressions_total", encoding="br") == 1, "one br copy"),
        (value("margay_file_cache_compressed_bytes", "margay_file_cache_compressed_bytes") > 0, "compressed bytes held"),
        (value("margay_upstream_requests", "margay_upstream_requests_total", prefix="/up/") == 1, "one proxied request"),
        (value("margay_upstream_up", "margay_upstream_up", prefix="/up/") == 1, "the upstream is up"),
    ]
    histogram = families["margay_http_request_duration_seconds"]
    buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
    count = value("margay_http_request_duration_seconds", "margay_http_request_duration_seconds_count")
    checks += [
        (buckets and buckets[-1].labels["le"] == "+Inf", "the last bucket is +Inf"),
        (buckets[-1].value == count, "+Inf equals _count"),
        (all(a.value <= b.value for a, b in zip(buckets, buckets[1:])), "buckets are cumulative"),
        (count >= 10, "every request timed"),
    ]
    failed = [what for ok, what in checks if not ok]
    if failed:
        sys.exit("failed: " + ", ".join(failed))
    print(f"/metrics: {len(families)} families parsed by prometheus_client, all checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
