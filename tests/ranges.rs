//! Proves byte-range requests (RFC 9110 section 14): single, suffix, open and clamped ranges,
//! 416 for unsatisfiable ones, `If-Range` with strong comparison, and multi-range responses
//! whose parts match their headers. No 206 ever carries bytes other than those it names.

#[macro_use]
mod common;

use common::*;

const TOTAL: u64 = RANGES_TXT.len() as u64;

fn range_get(server: &TestServer, range: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("Range", range)];
    headers.extend_from_slice(extra);
    server.get_with("/ranges.txt", &headers)
}

/// Asserts a single-part 206 for `first..=last` of ranges.txt.
fn assert_partial(resp: &Resp, first: u64, last: u64) {
    assert_eq!(resp.status, 206, "expected 206: {resp:?}");
    assert_standard_headers(resp, false);
    assert_eq!(
        resp.header("content-range"),
        Some(format!("bytes {first}-{last}/{TOTAL}").as_str()),
        "Content-Range"
    );
    assert_eq!(
        resp.body,
        &RANGES_TXT.as_bytes()[first as usize..=last as usize]
    );
    assert!(
        resp.header("etag").is_some(),
        "206 carries the validators of a 200"
    );
}

both_models!(full_response_advertises_byte_ranges, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/ranges.txt");
    assert_eq!(resp.status, 200);
    assert!(
        resp.list_tokens("accept-ranges").contains(&"bytes".into()),
        "{resp:?}"
    );
});

both_models!(first_bytes_range, |model| {
    let server = TestServer::start(model);
    let resp = range_get(&server, "bytes=0-4", &[]);
    assert_partial(&resp, 0, 4);
    assert_eq!(resp.body, b"01234");
    assert_eq!(resp.header("content-range"), Some("bytes 0-4/36"));
    assert_eq!(resp.content_length(), Some(5));
});

both_models!(middle_range_and_single_byte, |model| {
    let server = TestServer::start(model);
    assert_partial(&range_get(&server, "bytes=10-15", &[]), 10, 15);
    assert_partial(&range_get(&server, "bytes=35-35", &[]), 35, 35);
    assert_partial(&range_get(&server, "bytes=0-0", &[]), 0, 0);
});

both_models!(suffix_range, |model| {
    let server = TestServer::start(model);
    let resp = range_get(&server, "bytes=-3", &[]);
    assert_partial(&resp, 33, 35);
    assert_eq!(resp.body, b"xyz");
});

both_models!(suffix_longer_than_file_is_whole_file, |model| {
    let server = TestServer::start(model);
    assert_partial(&range_get(&server, "bytes=-100", &[]), 0, 35);
});

both_models!(open_ended_range, |model| {
    let server = TestServer::start(model);
    let resp = range_get(&server, "bytes=30-", &[]);
    assert_partial(&resp, 30, 35);
    assert_eq!(resp.body, b"uvwxyz");
});

both_models!(end_past_file_is_clamped, |model| {
    let server = TestServer::start(model);
    assert_partial(&range_get(&server, "bytes=30-100", &[]), 30, 35);
    assert_partial(&range_get(&server, "bytes=0-999999999999", &[]), 0, 35);
});

both_models!(unsatisfiable_range_gives_416, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    for range in ["bytes=100-", "bytes=36-", "bytes=36-40"] {
        send(
            &mut stream,
            &request("GET", "/ranges.txt", &[("Range", range)]),
        );
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 416, "{range}");
        assert_standard_headers(&resp, false);
        assert_eq!(resp.header("content-range"), Some("bytes */36"), "{range}");
    }
    assert_still_serves(&mut stream);
});

both_models!(zero_suffix_is_416, |model| {
    let server = TestServer::start(model);
    // A suffix-range is satisfiable only with a non-zero length (RFC 9110 section 14.1.1).
    let resp = range_get(&server, "bytes=-0", &[]);
    assert_eq!(resp.status, 416, "bytes=-0 is unsatisfiable");
    assert_eq!(resp.header("content-range"), Some("bytes */36"));
});

both_models!(invalid_range_is_ignored, |model| {
    let server = TestServer::start(model);
    // RFC 9110 section 14.2 lets a server ignore or reject an invalid ranges-specifier;
    // margay ignores it (`files/range.rs`) and sends the whole file.
    for range in ["bytes=5-2", "bytes=abc", "bytes=", "bytes 0-4", "bytes=--1"] {
        let resp = range_get(&server, range, &[]);
        assert_eq!(resp.status, 200, "{range} is not a valid range set");
        assert_eq!(resp.body, RANGES_TXT.as_bytes(), "{range}");
    }
});

both_models!(unknown_range_unit_is_ignored, |model| {
    let server = TestServer::start(model);
    let resp = range_get(&server, "items=0-4", &[]);
    assert_eq!(resp.status, 200, "an unknown range unit must be ignored");
    assert_eq!(resp.body, RANGES_TXT.as_bytes());
});

both_models!(range_is_ignored_for_head, |model| {
    let server = TestServer::start(model);
    // Range handling is defined for GET only (RFC 9110 section 14.2).
    let resp = server.head_with("/ranges.txt", &[("Range", "bytes=0-4")]);
    assert_eq!(resp.status, 200, "HEAD with Range");
    assert_eq!(resp.content_length(), Some(TOTAL));
});

both_models!(if_range_with_current_etag_gives_206, |model| {
    let server = TestServer::start(model);
    let etag = server
        .get("/ranges.txt")
        .header("etag")
        .expect("ETag")
        .to_string();
    let resp = range_get(&server, "bytes=0-4", &[("If-Range", &etag)]);
    assert_partial(&resp, 0, 4);
});

both_models!(if_range_with_other_etag_gives_full_200, |model| {
    let server = TestServer::start(model);
    let resp = range_get(&server, "bytes=0-4", &[("If-Range", "\"stale-etag\"")]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, RANGES_TXT.as_bytes());
});

both_models!(if_range_with_weak_etag_gives_full_200, |model| {
    let server = TestServer::start(model);
    let etag = server
        .get("/ranges.txt")
        .header("etag")
        .expect("ETag")
        .to_string();
    let weak = format!("W/{etag}");
    let resp = range_get(&server, "bytes=0-4", &[("If-Range", &weak)]);
    assert_eq!(resp.status, 200, "If-Range needs a strong match");
    assert_eq!(resp.body, RANGES_TXT.as_bytes());
});

both_models!(if_range_with_old_date_gives_full_200, |model| {
    let server = TestServer::start(model);
    let resp = range_get(
        &server,
        "bytes=0-4",
        &[("If-Range", "Sat, 01 Jan 2000 00:00:00 GMT")],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, RANGES_TXT.as_bytes());
});

both_models!(if_none_match_wins_over_range, |model| {
    let server = TestServer::start(model);
    let etag = server
        .get("/ranges.txt")
        .header("etag")
        .expect("ETag")
        .to_string();
    let resp = range_get(&server, "bytes=0-4", &[("If-None-Match", &etag)]);
    assert_eq!(resp.status, 304);
});

// A multipart body longer than the file it cuts up is never sent: the whole file is smaller
// (`files/range.rs`; RFC 9110 section 14.2 lets a server ignore Range). The part headers alone
// outweigh 36 bytes.
both_models!(two_ranges_of_a_small_file_give_the_whole_file, |model| {
    let server = TestServer::start(model);
    let resp = range_get(&server, "bytes=0-4,10-14", &[]);
    assert_standard_headers(&resp, false);
    assert_eq!(
        check_range_response(&resp, RANGES_TXT.as_bytes()),
        RangeOutcome::Full
    );
});

both_models!(awkward_range_sets_are_never_inconsistent, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    // Overlapping, out of order, partly unsatisfiable, suffix mixed with absolute. Several
    // parts of this small file would make a multipart body longer than the file: the whole
    // file instead. An unsatisfiable spec is dropped from the set.
    for (set, outcome) in [
        ("bytes=0-5,2-8", RangeOutcome::Full),
        ("bytes=20-25,0-1", RangeOutcome::Full),
        ("bytes=0-4,100-200", RangeOutcome::Single(0, 4)),
        ("bytes=-3,0-0", RangeOutcome::Full),
        ("bytes=1-1,3-3,5-5", RangeOutcome::Full),
    ] {
        send(
            &mut stream,
            &request("GET", "/ranges.txt", &[("Range", set)]),
        );
        let resp = read_response(&mut stream, false);
        assert_standard_headers(&resp, false);
        assert_eq!(
            check_range_response(&resp, RANGES_TXT.as_bytes()),
            outcome,
            "{set}"
        );
    }
    assert_still_serves(&mut stream);
});

both_models!(range_of_empty_file_is_416, |model| {
    let server = TestServer::start(model);
    // No first-pos is below a length of 0: unsatisfiable (RFC 9110 section 14.1.1).
    let resp = server.get_with("/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!(resp.status, 416, "range of an empty file");
    assert_eq!(resp.header("content-range"), Some("bytes */0"));
});

both_models!(ranges_deep_inside_big_file, |model| {
    let server = TestServer::start(model);
    let big = big_bin();
    let mut stream = server.connect();
    for (a, b) in [
        (5_000_000u64, 5_000_099u64),
        (1000, 8_000_000),
        (BIG_LEN as u64 - 10, BIG_LEN as u64 - 1),
    ] {
        let range = format!("bytes={a}-{b}");
        send(
            &mut stream,
            &request("GET", "/big.bin", &[("Range", &range)]),
        );
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 206, "{range}");
        assert_eq!(
            resp.header("content-range"),
            Some(format!("bytes {a}-{b}/{BIG_LEN}").as_str())
        );
        assert!(
            resp.body == big[a as usize..=b as usize],
            "bytes of {range} differ"
        );
    }
    assert_still_serves(&mut stream);
});

both_models!(two_ranges_of_big_file_give_a_multipart_206, |model| {
    let server = TestServer::start(model);
    let big = big_bin();
    let resp = server.get_with("/big.bin", &[("Range", "bytes=100-199,9000000-9000999")]);
    assert_standard_headers(&resp, false);
    assert_eq!(
        check_range_response(&resp, big),
        RangeOutcome::Multi(vec![(100, 199), (9_000_000, 9_000_999)])
    );
});
