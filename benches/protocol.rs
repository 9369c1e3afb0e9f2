//! Measures the pure per-request work: parsing request heads, encoding response heads,
//! decoding request-targets, resolving static-file paths, serving a cached file (as it is and
//! compressed), compressing a file the first time, and writing an access-log line in each
//! format.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use margay::internals::{
    AccessLogEntry, Coding, DateCache, HeadStorage, Limits, Persistence, RequestHead, Resolved,
    StaticFiles, compress, encode_head, parse_head_reusing, parse_target, resolve_path,
};
use margay::{AccessLogFormat, Body, StatusCode};
use std::fs;
use std::hint::black_box;
use std::time::Duration;

/// What `wrk` sends: the request line and `Host`, nothing else.
const WRK_REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// A desktop browser navigating to a page: 12 fields, one of them a session cookie.
const BROWSER_REQUEST: &[u8] = b"GET /docs/guide/getting-started.html?lang=en&ref=nav HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Referer: https://www.example.com/docs/index.html\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9,de;q=0.8\r\n\
Cookie: session=9f8e7d6c5b4a39281706f5e4d3c2b1a0; theme=dark; _ga=GA1.2.1234567890.1700000000; consent=analytics%3Dno%26ads%3Dno\r\n\
\r\n";

/// Requests pipelined in one batch, as `wrk --pipeline 16` or an HTTP benchmark client sends.
const PIPELINE_DEPTH: usize = 16;

/// A small page standing in for a site's front page.
const INDEX_HTML: &str = "<!DOCTYPE html>\n<html><head><title>bench</title></head><body>\n";

/// Parses one head the way a connection does: into the allocations the last answered head
/// handed back.
fn parse_one(input: &[u8], limits: &Limits, storage: &mut HeadStorage) -> (RequestHead, usize) {
    parse_head_reusing(input, limits, storage)
        .expect("request parses")
        .expect("request is complete")
}

fn bench_parse_head(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse_head");
    for (name, input) in [("wrk_minimal", WRK_REQUEST), ("browser", BROWSER_REQUEST)] {
        let mut storage = HeadStorage::default();
        let (head, len) = parse_one(input, &limits, &mut storage);
        assert_eq!((head.error, len), (None, input.len()), "{name}");
        storage = head.into_storage();
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| {
                let (head, _) = parse_one(black_box(input), &limits, &mut storage);
                storage = black_box(head).into_storage();
            })
        });
    }

    let batch = WRK_REQUEST.repeat(PIPELINE_DEPTH);
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_with_input(
        BenchmarkId::from_parameter("pipelined_16"),
        batch.as_slice(),
        |b, batch| {
            let mut storage = HeadStorage::default();
            b.iter(|| {
                let mut rest = black_box(batch);
                let mut parsed = 0;
                while !rest.is_empty() {
                    let (head, len) = parse_one(rest, &limits, &mut storage);
                    storage = black_box(head).into_storage();
                    rest = &rest[len..];
                    parsed += 1;
                }
                assert_eq!(parsed, PIPELINE_DEPTH);
            })
        },
    );
    group.finish();
}

/// A temporary document root holding `index.html` (about 1 KiB) and a `docs/` directory.
fn docroot() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut page = String::from(INDEX_HTML);
    while page.len() < 1000 {
        page.push_str("<p>margay serves many clients from one thread.</p>\n");
    }
    page.push_str("</body></html>\n");
    fs::write(dir.path().join("index.html"), page).expect("write index.html");
    fs::create_dir(dir.path().join("docs")).expect("mkdir docs");
    fs::write(dir.path().join("docs/index.html"), INDEX_HTML).expect("write docs/index.html");
    dir
}

fn bench_encode_head(c: &mut Criterion) {
    let dir = docroot();
    let mut files = StaticFiles::new(dir.path()).expect("document root");
    let (head, _) = parse_one(WRK_REQUEST, &Limits::default(), &mut HeadStorage::default());
    // The second answer comes from the file cache, with its header lines already encoded.
    files.serve(&head);
    let response = files.serve(&head);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().count(), 0, "cached headers come encoded");
    let date = DateCache::new();
    // Reused across iterations, as a connection reuses its write buffer.
    let mut out = Vec::with_capacity(4096);

    let mut group = c.benchmark_group("encode_head");
    for (name, persistence) in [
        ("file_200_keep_alive", Persistence::KeepAlive),
        ("file_200_close", Persistence::Close),
    ] {
        out.clear();
        encode_head(&response, persistence, date.as_bytes(), &mut out);
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode_head(black_box(&response), persistence, date.as_bytes(), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_parse_target(c: &mut Criterion) {
    // (benchmark id, request-target)
    let rows = [
        ("clean", "/static/css/site.min.css?v=20240501"),
        ("escaped", "/files/Annual%20Report%202024%20%28final%29.pdf"),
        ("dot_segments", "/docs/./guide/../api//index.html"),
    ];
    let mut group = c.benchmark_group("parse_target");
    for (name, target) in rows {
        parse_target(target).expect("target is accepted");
        group.throughput(Throughput::Bytes(target.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), target, |b, target| {
            b.iter(|| parse_target(black_box(target)))
        });
    }
    group.finish();
}

fn bench_static_files(c: &mut Criterion) {
    let dir = docroot();
    let mut files = StaticFiles::new(dir.path()).expect("document root");
    let root = files.root().to_path_buf();
    let mut group = c.benchmark_group("static_files");
    // (benchmark id, decoded path)
    for (name, path) in [
        ("resolve_file", "/index.html"),
        ("resolve_directory_index", "/docs/"),
    ] {
        assert!(
            matches!(resolve_path(&root, path), Ok(Resolved::File { .. })),
            "{path} resolves to a file"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| resolve_path(&root, black_box(path)))
        });
    }

    let (head, _) = parse_one(WRK_REQUEST, &Limits::default(), &mut HeadStorage::default());
    files.serve(&head);
    let hit = files.serve(&head);
    assert_eq!(hit.status(), 200);
    assert!(
        matches!(hit.body(), Body::Shared(_)),
        "served from the cache"
    );
    group.bench_function("serve_cache_hit", |b| {
        b.iter(|| files.serve(black_box(&head)))
    });
    group.finish();
}

/// A script of `len` bytes, as a bundler writes them: many short, similar lines.
fn script(len: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while text.len() < len {
        let line = format!(
            "export function handler{i}(event) {{ return render(event.target, {}); }}\n",
            i * 7919 % 1000
        );
        text.extend_from_slice(line.as_bytes());
        i += 1;
    }
    text.truncate(len);
    text
}

fn bench_compression(c: &mut Criterion) {
    let mut group = c.benchmark_group("compression");
    // What a cache entry costs once: the largest file kept in memory.
    let big = script(64 * 1024);
    group.throughput(Throughput::Bytes(big.len() as u64));
    for coding in [Coding::Gzip, Coding::Brotli] {
        let out = compress(coding, &big).expect("smaller");
        eprintln!("{coding:?}: 64 KiB script to {} bytes", out.len());
        group.bench_function(BenchmarkId::new("compress_64k", coding.token()), |b| {
            b.iter(|| compress(coding, black_box(&big)))
        });
    }
    // What every request for a compressed file costs: a hit on the kept copy.
    let dir = docroot();
    fs::write(dir.path().join("app.js"), script(8 * 1024)).expect("write");
    let mut files = StaticFiles::new(dir.path()).expect("document root");
    group.throughput(Throughput::Elements(1));
    for (name, request) in [
        (
            "serve_cache_hit_identity",
            &b"GET /app.js HTTP/1.1\r\nHost: b\r\n\r\n"[..],
        ),
        (
            "serve_cache_hit_gzip",
            &b"GET /app.js HTTP/1.1\r\nHost: b\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\r\n"
                [..],
        ),
    ] {
        let (head, _) = parse_one(request, &Limits::default(), &mut HeadStorage::default());
        files.serve(&head);
        group.bench_function(name, |b| b.iter(|| files.serve(black_box(&head))));
    }
    group.finish();
}

/// One access-log line for a browser's request, in each format, built in a reused buffer as
/// the server builds it: what the choice of format costs per request (the lines are written
/// out once per event-loop turn, whatever their format).
fn bench_access_log(c: &mut Criterion) {
    let (head, _) = parse_one(
        BROWSER_REQUEST,
        &Limits::default(),
        &mut HeadStorage::default(),
    );
    let entry = AccessLogEntry {
        client: "198.51.100.7".parse().unwrap(),
        peer: "198.51.100.7:51234".parse().unwrap(),
        head: Some(&head),
        status: StatusCode::OK,
        bytes: 1290,
        elapsed: Duration::from_micros(1742),
        clf_time: "01/Dec/2026:12:00:00 +0000",
        iso_time: "2026-12-01T12:00:00Z",
        tls: None,
    };
    let mut group = c.benchmark_group("access_log_line");
    for (name, format) in [
        ("combined", AccessLogFormat::Combined),
        ("combined_time", AccessLogFormat::CombinedTime),
        ("json", AccessLogFormat::Json),
    ] {
        let mut line = String::new();
        group.bench_function(name, |b| {
            b.iter(|| black_box(&entry).format_into(format, &mut line))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_parse_head, bench_encode_head, bench_parse_target, bench_static_files,
        bench_compression, bench_access_log
}
criterion_main!(benches);
