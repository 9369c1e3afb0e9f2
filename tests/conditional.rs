//! Proves validators and conditional requests (RFC 9110 sections 8.8 and 13): a strong `ETag`
//! and `Last-Modified` on files, and `If-None-Match`, `If-Modified-Since`, `If-Match` and
//! `If-Unmodified-Since` evaluated with the right comparison and precedence.

#[macro_use]
mod common;

use common::*;
use std::time::{Duration, UNIX_EPOCH};

/// The current strong ETag and Last-Modified of `path`.
fn validators(server: &TestServer, path: &str) -> (String, String) {
    let resp = server.get(path);
    assert_eq!(resp.status, 200, "{path}");
    let etag = resp
        .header("etag")
        .unwrap_or_else(|| panic!("{path}: no ETag"))
        .to_string();
    let lm = resp
        .header("last-modified")
        .unwrap_or_else(|| panic!("{path}: no Last-Modified"))
        .to_string();
    (etag, lm)
}

/// Asserts a 304 carries no body, the same ETag, and no Content-Length other than the full one.
fn assert_not_modified(resp: &Resp, etag: &str, full_len: usize) {
    assert_eq!(resp.status, 304, "expected 304, got {resp:?}");
    assert_standard_headers(resp, false);
    assert_eq!(resp.header("etag"), Some(etag), "304 must repeat the ETag");
    if let Some(len) = resp.content_length() {
        assert_eq!(
            len, full_len as u64,
            "a 304 Content-Length may only state the 200 length"
        );
    }
}

both_models!(files_carry_strong_etag_and_last_modified, |model| {
    let server = TestServer::start(model);
    for (path, _) in served_files() {
        let resp = server.get(path);
        let etag = resp
            .header("etag")
            .unwrap_or_else(|| panic!("{path}: no ETag"));
        assert_strong_etag(etag);
        let lm = resp
            .header("last-modified")
            .unwrap_or_else(|| panic!("{path}: no Last-Modified"));
        let lm_time = assert_imf_fixdate(lm);
        let date = assert_imf_fixdate(resp.header("date").unwrap());
        assert!(lm_time <= date, "{path}: Last-Modified {lm} after Date");
    }
    // Last-Modified is the file's modification time, to the second.
    let mtime = std::fs::metadata(disk_path(&server, "ranges.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let secs = mtime.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (_, lm) = validators(&server, "/ranges.txt");
    assert_eq!(
        lm,
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    );
});

both_models!(etag_is_stable_and_same_for_head, |model| {
    let server = TestServer::start(model);
    let (etag, lm) = validators(&server, "/style.css");
    let (etag2, lm2) = validators(&server, "/style.css");
    assert_eq!(etag, etag2);
    assert_eq!(lm, lm2);
    let head = server.head_with("/style.css", &[]);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("last-modified"), Some(lm.as_str()));
});

both_models!(if_none_match_same_etag_gives_304_without_body, |model| {
    let server = TestServer::start(model);
    let (etag, _) = validators(&server, "/style.css");
    let mut stream = server.connect();
    send(
        &mut stream,
        &request("GET", "/style.css", &[("If-None-Match", &etag)]),
    );
    let resp = read_response(&mut stream, false);
    assert_not_modified(&resp, &etag, STYLE_CSS.len());
    // A body after the 304 would be misread as the next response.
    assert_still_serves(&mut stream);

    let head = server.head_with("/style.css", &[("If-None-Match", &etag)]);
    assert_eq!(head.status, 304, "HEAD is conditional like GET");
});

both_models!(if_none_match_list_containing_etag_gives_304, |model| {
    let server = TestServer::start(model);
    let (etag, _) = validators(&server, "/app.js");
    let list = format!("\"nope-1\", {etag} , \"nope-2\"");
    let resp = server.get_with("/app.js", &[("If-None-Match", &list)]);
    assert_not_modified(&resp, &etag, APP_JS.len());
});

both_models!(if_none_match_star_gives_304, |model| {
    let server = TestServer::start(model);
    let (etag, _) = validators(&server, "/app.js");
    let resp = server.get_with("/app.js", &[("If-None-Match", "*")]);
    assert_not_modified(&resp, &etag, APP_JS.len());
});

both_models!(if_none_match_uses_weak_comparison, |model| {
    let server = TestServer::start(model);
    let (etag, _) = validators(&server, "/data.json");
    let weak = format!("W/{etag}");
    let resp = server.get_with("/data.json", &[("If-None-Match", &weak)]);
    assert_not_modified(&resp, &etag, DATA_JSON.len());
});

both_models!(if_none_match_other_etag_gives_200, |model| {
    let server = TestServer::start(model);
    let (etag, _) = validators(&server, "/data.json");
    // The same opaque-tag with a character added, and an unrelated one.
    let other = format!("\"x{}", &etag[1..]);
    for candidate in [other.as_str(), "\"something-else\""] {
        let resp = server.get_with("/data.json", &[("If-None-Match", candidate)]);
        assert_eq!(resp.status, 200, "If-None-Match {candidate}");
        assert_eq!(resp.body, DATA_JSON.as_bytes());
    }
});

both_models!(if_modified_since_not_older_gives_304, |model| {
    let server = TestServer::start(model);
    let (etag, lm) = validators(&server, "/index.html");
    let resp = server.get_with("/index.html", &[("If-Modified-Since", &lm)]);
    assert_not_modified(&resp, &etag, INDEX_HTML.len());

    let later = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).unwrap() + Duration::from_secs(3600),
    );
    let resp = server.get_with("/index.html", &[("If-Modified-Since", &later)]);
    assert_eq!(resp.status, 304, "If-Modified-Since after Last-Modified");
});

both_models!(if_modified_since_older_gives_200, |model| {
    let server = TestServer::start(model);
    let (_, lm) = validators(&server, "/index.html");
    let earlier = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).unwrap() - Duration::from_secs(86400),
    );
    let resp = server.get_with("/index.html", &[("If-Modified-Since", &earlier)]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, INDEX_HTML.as_bytes());
});

both_models!(if_modified_since_invalid_date_is_ignored, |model| {
    let server = TestServer::start(model);
    let resp = server.get_with("/index.html", &[("If-Modified-Since", "not a date")]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, INDEX_HTML.as_bytes());
});

both_models!(
    if_modified_since_ignored_when_if_none_match_fails,
    |model| {
        let server = TestServer::start(model);
        let (_, lm) = validators(&server, "/style.css");
        let resp = server.get_with(
            "/style.css",
            &[
                ("If-None-Match", "\"does-not-match\""),
                ("If-Modified-Since", &lm),
            ],
        );
        assert_eq!(
            resp.status, 200,
            "If-None-Match takes precedence over If-Modified-Since"
        );
        assert_eq!(resp.body, STYLE_CSS.as_bytes());
    }
);

both_models!(if_match_mismatch_gives_412, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(
        &mut stream,
        &request("GET", "/style.css", &[("If-Match", "\"does-not-match\"")]),
    );
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 412);
    assert_standard_headers(&resp, false);
    assert_ne!(resp.body, STYLE_CSS.as_bytes());
    assert_still_serves(&mut stream);
});

both_models!(if_match_matching_gives_200, |model| {
    let server = TestServer::start(model);
    let (etag, _) = validators(&server, "/style.css");
    for value in [etag.clone(), format!("\"a\", {etag}"), "*".to_string()] {
        let resp = server.get_with("/style.css", &[("If-Match", &value)]);
        assert_eq!(resp.status, 200, "If-Match {value}");
        assert_eq!(resp.body, STYLE_CSS.as_bytes());
    }
});

both_models!(if_match_uses_strong_comparison, |model| {
    let server = TestServer::start(model);
    let (etag, _) = validators(&server, "/style.css");
    let weak = format!("W/{etag}");
    let resp = server.get_with("/style.css", &[("If-Match", &weak)]);
    assert_eq!(resp.status, 412, "a weak tag never matches If-Match");
});

both_models!(if_unmodified_since_earlier_gives_412, |model| {
    let server = TestServer::start(model);
    let (_, lm) = validators(&server, "/style.css");
    let earlier = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).unwrap() - Duration::from_secs(86400),
    );
    let resp = server.get_with("/style.css", &[("If-Unmodified-Since", &earlier)]);
    assert_eq!(resp.status, 412);
    let resp = server.get_with("/style.css", &[("If-Unmodified-Since", &lm)]);
    assert_eq!(resp.status, 200, "not modified since Last-Modified itself");
});
