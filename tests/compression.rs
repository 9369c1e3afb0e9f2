//! Content codings as a client meets them: precompressed sidecars and copies compressed once,
//! chosen by `Accept-Encoding`, each its own representation (its own `ETag`, conditional
//! requests and ranges on its bytes), with `Vary: Accept-Encoding` wherever the body could
//! differ, 304s included.

mod common;

use common::*;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A JavaScript file large enough to be compressed (about 6 KiB of text).
fn script(version: &str) -> String {
    (0..120)
        .map(|i| format!("function f{i}() {{ return \"{version} line {i}\"; }}\n"))
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a valid brotli stream");
    out
}

fn vary(resp: &Resp) -> Vec<String> {
    resp.list_tokens("vary")
}

fn write(root: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(root.join(name), bytes).unwrap();
}

/// Sets a file's modification time `secs_ago` seconds in the past.
fn age(root: &Path, name: &str, secs_ago: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(root.join(name))
        .unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

both_models!(encodings_are_chosen_by_accept_encoding, |model| {
    let server = TestServer::builder(model)
        .files(|root| write(root, "app.js", script("v1")))
        .start();
    let original = script("v1").into_bytes();
    // (Accept-Encoding, Content-Encoding expected)
    let rows: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some("gzip"), Some("gzip")),
        (Some("gzip, deflate, br"), Some("br")),
        (Some("br;q=0.5, gzip"), Some("gzip")),
        (Some("zstd"), None),
        (Some("gzip;q=0"), None),
        (Some("*"), Some("br")),
        (Some("identity;q=0"), None),
        (Some("*;q=0"), None),
        (Some("gzip;q=2"), None),
    ];
    for (accept, expected) in rows {
        let headers: Vec<(&str, &str)> = accept.iter().map(|v| ("Accept-Encoding", *v)).collect();
        let resp = server.get_with("/app.js", &headers);
        assert_eq!(resp.status, 200, "{accept:?}");
        assert_eq!(resp.header("content-encoding"), *expected, "{accept:?}");
        assert_eq!(vary(&resp), ["accept-encoding"], "{accept:?}");
        assert_eq!(
            resp.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        let body = match expected {
            None => resp.body.clone(),
            Some("gzip") => gunzip(&resp.body),
            Some("br") => unbrotli(&resp.body),
            Some(other) => panic!("unexpected coding {other}"),
        };
        assert_eq!(body, original, "{accept:?}: decoded body");
        if expected.is_some() {
            assert!(
                resp.body.len() < original.len() / 3,
                "{accept:?}: {} of {} bytes",
                resp.body.len(),
                original.len()
            );
        }
    }
});

both_models!(sidecars_are_served_by_preference, |model| {
    let server = TestServer::builder(model)
        .files(|root| {
            write(root, "lib.js", script("plain"));
            write(root, "lib.js.br", b"BROTLI SIDECAR");
            write(root, "lib.js.zst", b"ZSTD SIDECAR");
            write(root, "lib.js.gz", b"GZIP SIDECAR");
            // An image is never compressed here, but a sidecar for it is served.
            write(root, "pic.png", IMG_PNG);
            write(root, "pic.png.gz", b"GZIPPED PNG");
            // Larger than the memory cache: served compressed only from a sidecar.
            write(root, "big.txt", "x".repeat(200 * 1024));
            write(root, "big.txt.gz", b"GZIPPED BIG");
            write(root, "bigger.txt", "y".repeat(200 * 1024));
        })
        .start();
    // (path, Accept-Encoding, Content-Encoding, body)
    let rows: &[(&str, &str, Option<&str>, &[u8])] = &[
        ("/lib.js", "gzip, br, zstd", Some("br"), b"BROTLI SIDECAR"),
        ("/lib.js", "zstd, gzip", Some("zstd"), b"ZSTD SIDECAR"),
        ("/lib.js", "zstd;q=0.5, gzip", Some("gzip"), b"GZIP SIDECAR"),
        ("/pic.png", "gzip, br", Some("gzip"), b"GZIPPED PNG"),
        ("/pic.png", "br", None, IMG_PNG),
        ("/big.txt", "br, gzip", Some("gzip"), b"GZIPPED BIG"),
    ];
    for (path, accept, coding, body) in rows {
        let resp = server.get_with(path, &[("Accept-Encoding", accept)]);
        assert_eq!(resp.status, 200, "{path} {accept}");
        assert_eq!(resp.header("content-encoding"), *coding, "{path} {accept}");
        assert_eq!(resp.body, *body, "{path} {accept}");
        assert_eq!(vary(&resp), ["accept-encoding"], "{path} {accept}");
    }
    let plain = server.get_with("/bigger.txt", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(plain.header("content-encoding"), None);
    assert!(
        vary(&plain).is_empty(),
        "no other coding exists: {:?}",
        plain.headers
    );
    assert_eq!(plain.body.len(), 200 * 1024);
});

both_models!(
    small_and_precompressed_types_are_never_compressed,
    |model| {
        let server = TestServer::builder(model)
            .files(|root| {
                write(root, "photo.jpg", vec![b'j'; 8 * 1024]);
                write(root, "font.woff2", vec![b'w'; 8 * 1024]);
            })
            .start();
        for path in ["/style.css", "/app.js", "/photo.jpg", "/font.woff2"] {
            let resp = server.get_with(path, &[("Accept-Encoding", "gzip, br")]);
            assert_eq!(resp.status, 200, "{path}");
            assert_eq!(resp.header("content-encoding"), None, "{path}");
            assert!(vary(&resp).is_empty(), "{path}: {:?}", resp.headers);
        }
    }
);

both_models!(each_encoding_has_its_own_etag_and_conditionals, |model| {
    let server = TestServer::builder(model)
        .files(|root| write(root, "app.js", script("v1")))
        .start();
    let identity = server.get("/app.js");
    let gzip = server.get_with("/app.js", &[("Accept-Encoding", "gzip")]);
    let br = server.get_with("/app.js", &[("Accept-Encoding", "br")]);
    let tag = |r: &Resp| r.header("etag").expect("ETag").to_string();
    let (identity_tag, gzip_tag, br_tag) = (tag(&identity), tag(&gzip), tag(&br));
    assert_eq!(
        gzip_tag,
        format!("{}-gz\"", identity_tag.trim_end_matches('"'))
    );
    assert_eq!(
        br_tag,
        format!("{}-br\"", identity_tag.trim_end_matches('"'))
    );
    assert!(
        !identity_tag.starts_with("W/"),
        "strong tags: {identity_tag}"
    );
    assert_eq!(
        gzip.header("last-modified"),
        identity.header("last-modified")
    );

    // (Accept-Encoding, If-None-Match, status, ETag of the response)
    let rows: &[(&str, &str, u16, &str)] = &[
        ("br", &br_tag, 304, &br_tag),
        ("gzip", &gzip_tag, 304, &gzip_tag),
        ("identity", &identity_tag, 304, &identity_tag),
        // Another coding's tag does not validate this one.
        ("br", &identity_tag, 200, &br_tag),
        ("gzip", &br_tag, 200, &gzip_tag),
        ("identity", &gzip_tag, 200, &identity_tag),
    ];
    for (accept, tag_sent, status, tag_back) in rows {
        let resp = server.get_with(
            "/app.js",
            &[("Accept-Encoding", accept), ("If-None-Match", tag_sent)],
        );
        assert_eq!(resp.status, *status, "{accept} If-None-Match {tag_sent}");
        assert_eq!(resp.header("etag"), Some(*tag_back), "{accept}");
        assert_eq!(vary(&resp), ["accept-encoding"], "{accept} {status}: Vary");
    }
    // If-Match is strong: the gzip tag matches the gzip representation only.
    let failed = server.get_with(
        "/app.js",
        &[("Accept-Encoding", "br"), ("If-Match", &gzip_tag)],
    );
    assert_eq!(failed.status, 412);
    assert_eq!(vary(&failed), ["accept-encoding"]);
    let matched = server.get_with(
        "/app.js",
        &[("Accept-Encoding", "gzip"), ("If-Match", &gzip_tag)],
    );
    assert_eq!(matched.status, 200);
    assert_eq!(matched.header("content-encoding"), Some("gzip"));
});

both_models!(ranges_apply_to_the_encoded_bytes, |model| {
    let server = TestServer::builder(model)
        .files(|root| write(root, "app.js", script("v1")))
        .start();
    let whole = server.get_with("/app.js", &[("Accept-Encoding", "gzip")]);
    let len = whole.body.len();
    let etag = whole.header("etag").unwrap().to_string();
    let part = server.get_with(
        "/app.js",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=10-19")],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-encoding"), Some("gzip"));
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );
    assert_eq!(part.body, whole.body[10..20]);
    assert_eq!(vary(&part), ["accept-encoding"]);
    // If-Range with the encoded representation's own tag keeps the range.
    let kept = server.get_with(
        "/app.js",
        &[
            ("Accept-Encoding", "gzip"),
            ("Range", "bytes=-5"),
            ("If-Range", &etag),
        ],
    );
    assert_eq!(kept.status, 206);
    assert_eq!(kept.body, whole.body[len - 5..]);
    // Past the encoded length: 416 naming that length.
    let beyond = server.get_with(
        "/app.js",
        &[
            ("Accept-Encoding", "gzip"),
            ("Range", &format!("bytes={len}-")),
        ],
    );
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert_eq!(vary(&beyond), ["accept-encoding"]);
    // Several ranges of a compressed stream: the whole representation instead.
    let several = server.get_with(
        "/app.js",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-1,5-9")],
    );
    assert_eq!(several.status, 200);
    assert_eq!(several.body, whole.body);
});

both_models!(head_matches_get_for_every_encoding, |model| {
    let server = TestServer::builder(model)
        .files(|root| write(root, "app.js", script("v1")))
        .start();
    for accept in ["identity", "gzip", "br"] {
        let get = server.get_with("/app.js", &[("Accept-Encoding", accept)]);
        let head = server.head_with("/app.js", &[("Accept-Encoding", accept)]);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        for field in [
            "content-length",
            "content-encoding",
            "etag",
            "vary",
            "content-type",
        ] {
            assert_eq!(head.header(field), get.header(field), "{accept}: {field}");
        }
        assert_eq!(get.content_length(), Some(get.body.len() as u64));
    }
});

both_models!(a_sidecar_older_than_its_file_is_ignored, |model| {
    let server = TestServer::builder(model)
        .files(|root| {
            // Below the size compressed here, so only a sidecar could be sent.
            write(root, "note.txt", "a short note\n");
            write(root, "note.txt.br", b"STALE BROTLI");
            age(root, "note.txt.br", 3600);
            write(root, "fresh.txt", "a short note\n");
            write(root, "fresh.txt.br", b"FRESH BROTLI");
        })
        .start();
    let stale = server.get_with("/note.txt", &[("Accept-Encoding", "br")]);
    assert_eq!(stale.header("content-encoding"), None);
    assert_eq!(stale.body, b"a short note\n");
    assert!(vary(&stale).is_empty(), "{:?}", stale.headers);
    let fresh = server.get_with("/fresh.txt", &[("Accept-Encoding", "br")]);
    assert_eq!(fresh.header("content-encoding"), Some("br"));
    assert_eq!(fresh.body, b"FRESH BROTLI");
});

both_models!(a_changed_file_drops_its_compressed_copies, |model| {
    let server = TestServer::builder(model)
        .files(|root| {
            write(root, "app.js", script("v1"));
            write(root, "side.txt", "side v1\n");
            write(root, "side.txt.gz", b"SIDECAR ONE");
        })
        .start();
    let root = server.root().to_path_buf();
    let first = server.get_with("/app.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gunzip(&first.body), script("v1").as_bytes());
    let first_br = server.get_with("/app.js", &[("Accept-Encoding", "br")]);
    assert_eq!(unbrotli(&first_br.body), script("v1").as_bytes());
    // A rewrite that keeps the length: only the content tells the versions apart.
    write(&root, "app.js", script("v2"));
    let second = server.get_with("/app.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gunzip(&second.body), script("v2").as_bytes());
    assert_ne!(second.header("etag"), first.header("etag"));
    let second_br = server.get_with("/app.js", &[("Accept-Encoding", "br")]);
    assert_eq!(unbrotli(&second_br.body), script("v2").as_bytes());

    // A sidecar rewritten in place is seen too.
    let side = server.get_with("/side.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(side.body, b"SIDECAR ONE");
    write(&root, "side.txt.gz", b"SIDECAR TWO");
    let side = server.get_with("/side.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(side.body, b"SIDECAR TWO");
    // And a sidecar that appears later, where the event loop watches the directory (the
    // thread model finds it when the file next changes, or in a fresh cache).
    if model == margay::Model::Reactor {
        let before = server.get_with("/style.css", &[("Accept-Encoding", "br")]);
        assert_eq!(before.body, STYLE_CSS.as_bytes());
        write(&root, "style.css.br", b"NEW BROTLI");
        let after = server.get_with("/style.css", &[("Accept-Encoding", "br")]);
        assert_eq!(after.header("content-encoding"), Some("br"));
        assert_eq!(after.body, b"NEW BROTLI");
    }
});

both_models!(handlers_opt_in_to_compression, |model| {
    fn report(rows: usize) -> Vec<u8> {
        (0..rows)
            .map(|i| format!("{{\"row\":{i},\"name\":\"item number {i}\"}}\n"))
            .collect::<String>()
            .into_bytes()
    }
    let server = TestServer::builder(model)
        .routes(|s| {
            s.route(margay::Method::Get, "/report", |r| {
                let rows = r.query("rows").and_then(|n| n.parse().ok()).unwrap_or(100);
                margay::Response::bytes("application/json", report(rows))
                    .header("ETag", "\"report-1\"")
                    .compressible()
            })
            .route(margay::Method::Get, "/plain", |_| {
                margay::Response::bytes("application/json", report(100))
            })
            .blocking(margay::Method::Get, "/slow-report", |_| {
                margay::Response::bytes("application/json", report(3000)).compressible()
            })
        })
        .start();
    let big = report(100);
    assert!(big.len() > 2048);
    let identity = server.get("/report");
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.body, big);
    assert_eq!(vary(&identity), ["accept-encoding"]);
    assert_eq!(identity.header("etag"), Some("\"report-1\""));
    for (accept, coding) in [("gzip", "gzip"), ("gzip, br", "br")] {
        let resp = server.get_with("/report", &[("Accept-Encoding", accept)]);
        assert_eq!(resp.header("content-encoding"), Some(coding), "{accept}");
        assert_eq!(vary(&resp), ["accept-encoding"]);
        let decoded = match coding {
            "gzip" => gunzip(&resp.body),
            _ => unbrotli(&resp.body),
        };
        assert_eq!(decoded, big, "{accept}");
        let suffix = if coding == "gzip" { "gz" } else { "br" };
        assert_eq!(
            resp.header("etag"),
            Some(format!("\"report-1-{suffix}\"").as_str())
        );
        let head = server.head_with("/report", &[("Accept-Encoding", accept)]);
        assert_eq!(head.header("content-length"), resp.header("content-length"));
        assert_eq!(head.header("content-encoding"), Some(coding));
    }
    // Too small to be worth it, or too large to compress on the event loop.
    for rows in [5, 3000] {
        let resp = server.get_with(
            &format!("/report?rows={rows}"),
            &[("Accept-Encoding", "gzip")],
        );
        assert_eq!(resp.header("content-encoding"), None, "{rows} rows");
        assert_eq!(resp.body, report(rows), "{rows} rows");
    }
    // A blocking handler's body is compressed off the event loop, so larger ones too.
    let slow = server.get_with("/slow-report", &[("Accept-Encoding", "gzip")]);
    assert_eq!(slow.status, 200);
    assert_eq!(slow.header("content-encoding"), Some("gzip"));
    assert_eq!(vary(&slow), ["accept-encoding"]);
    assert_eq!(gunzip(&slow.body), report(3000));
    let slow_plain = server.get("/slow-report");
    assert_eq!(slow_plain.header("content-encoding"), None);
    assert_eq!(vary(&slow_plain), ["accept-encoding"]);
    // Without the opt-in, nothing changes.
    let plain = server.get_with("/plain", &[("Accept-Encoding", "gzip")]);
    assert_eq!(plain.header("content-encoding"), None);
    assert!(vary(&plain).is_empty());
});

both_models!(site_rule_headers_reach_every_encoding, |model| {
    let rules = margay::SiteRules::new()
        .rule(
            margay::Rule::new("/**/*.js")
                .unwrap()
                .header("Cache-Control", "public, max-age=600")
                .unwrap(),
        )
        .unwrap();
    let server = TestServer::builder(model)
        .config(|c| c.site_rules(rules))
        .files(|root| {
            write(root, "app.js", script("v1"));
            write(root, "lib.js", script("lib"));
            write(root, "lib.js.br", b"BROTLI SIDECAR");
        })
        .start();
    // (path, Accept-Encoding, Content-Encoding)
    let rows: &[(&str, &str, Option<&str>)] = &[
        ("/app.js", "identity", None),
        ("/app.js", "gzip", Some("gzip")),
        ("/app.js", "br", Some("br")),
        ("/lib.js", "br", Some("br")),
    ];
    for (path, accept, coding) in rows {
        let resp = server.get_with(path, &[("Accept-Encoding", accept)]);
        assert_eq!(resp.header("content-encoding"), *coding, "{path} {accept}");
        assert_eq!(
            resp.header("cache-control"),
            Some("public, max-age=600"),
            "{path} {accept}"
        );
        let etag = resp.header("etag").unwrap().to_string();
        let revalidated = server.get_with(
            path,
            &[("Accept-Encoding", accept), ("If-None-Match", &etag)],
        );
        assert_eq!(revalidated.status, 304);
        assert_eq!(
            revalidated.header("cache-control"),
            Some("public, max-age=600")
        );
        assert_eq!(vary(&revalidated), ["accept-encoding"]);
    }
});
