//! Proves message parsing and framing (RFC 9112): Host rules, field syntax, request body
//! length (Content-Length and chunked, and the smuggling-prone combinations that must be
//! refused and close), size limits (414, 431), version handling (505), and that error
//! responses are well-formed HTML pages.

#[macro_use]
mod common;

use common::*;

/// Sends `raw` on a fresh connection and returns the response and the stream.
fn exchange_keep(server: &TestServer, raw: &[u8]) -> (Resp, std::net::TcpStream) {
    let mut stream = server.connect();
    send_lenient(&mut stream, raw);
    let resp = read_response(&mut stream, false);
    (resp, stream)
}

/// Asserts `raw` is refused with `status`, as an error page, and the connection then closes.
fn assert_refused_and_closed(server: &TestServer, raw: &[u8], status: u16) {
    let (resp, mut stream) = exchange_keep(server, raw);
    let what = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
    assert_eq!(resp.status, status, "{what}");
    assert_error_page(&resp, status);
    assert_closed(&mut stream);
}

both_models!(http11_without_host_is_400, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(b"GET /style.css HTTP/1.1\r\nAccept: */*\r\n\r\n", false);
    assert_error_page(&resp, 400);
});

both_models!(http10_without_host_is_served, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(b"GET /style.css HTTP/1.0\r\nAccept: */*\r\n\r\n", false);
    assert_eq!(
        resp.status, 200,
        "Host is only required from HTTP/1.1 clients"
    );
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(two_host_fields_are_400, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(
        b"GET /style.css HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        false,
    );
    assert_error_page(&resp, 400);
});

both_models!(whitespace_before_colon_is_400, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(
        b"GET /style.css HTTP/1.1\r\nHost : localhost\r\n\r\n",
        false,
    );
    assert_error_page(&resp, 400);
    let resp = server.exchange(
        b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nAccept\t: */*\r\n\r\n",
        false,
    );
    assert_error_page(&resp, 400);
});

both_models!(invalid_field_name_is_400, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(
        b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n",
        false,
    );
    assert_error_page(&resp, 400);
});

both_models!(control_characters_in_field_value_are_400, |model| {
    let server = TestServer::start(model);
    for (name, bad) in [
        ("bare CR", &b"a\rb"[..]),
        ("NUL", b"a\0b"),
        ("SOH", b"a\x01b"),
        ("DEL", b"a\x7fb"),
        ("ESC", b"a\x1bb"),
    ] {
        let mut raw = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nX-Test: ".to_vec();
        raw.extend_from_slice(bad);
        raw.extend_from_slice(b"\r\n\r\n");
        let resp = server.exchange(&raw, false);
        assert_eq!(resp.status, 400, "{name} in a field value");
        assert_error_page(&resp, 400);
    }
});

both_models!(tab_and_obs_text_in_field_value_are_accepted, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(
        b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nX-Test: a\tb \xe9t\xc3\xa9\r\n\r\n",
        false,
    );
    assert_eq!(
        resp.status, 200,
        "HTAB and obs-text are legal in field values"
    );
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(obsolete_line_folding_is_400, |model| {
    let server = TestServer::start(model);
    // RFC 9112 section 5.2 lets a server reject obs-fold with 400 or unfold it; margay's
    // parser takes no folded lines, so it is the 400.
    let resp = server.exchange(
        b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n  b\r\n\r\n",
        false,
    );
    assert_error_page(&resp, 400);
});

both_models!(empty_lines_before_request_line_are_ignored, |model| {
    let server = TestServer::start(model);
    let mut raw = b"\r\n".to_vec();
    raw.extend_from_slice(&get_req("/style.css"));
    let resp = server.exchange(&raw, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(bad_content_length_is_400_and_closes, |model| {
    let server = TestServer::start(model);
    for value in ["abc", "-1", "+5", "5 5", "0x5", "", "5;", "1.5"] {
        let raw = format!(
            "GET /style.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: {value}\r\n\r\nhello"
        );
        assert_refused_and_closed(&server, raw.as_bytes(), 400);
    }
});

both_models!(two_different_content_lengths_are_400_and_close, |model| {
    let server = TestServer::start(model);
    let raw = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_refused_and_closed(&server, raw, 400);
    let raw = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\nhello!";
    assert_refused_and_closed(&server, raw, 400);
});

both_models!(overflowing_content_length_is_refused_and_closes, |model| {
    let server = TestServer::start(model);
    // No u64 holds it: the length cannot be read, so the framing is invalid (RFC 9112
    // section 6.3, rule 5), which is 400 and a close, not a declared body too large (413).
    let raw = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
    assert_refused_and_closed(&server, raw, 400);
});

both_models!(unknown_transfer_coding_is_refused_and_closes, |model| {
    let server = TestServer::start(model);
    // None of them ends in chunked, so the body's length cannot be determined: RFC 9112
    // section 6.3, rule 4, requires 400 and a close (501 is for a coding before chunked).
    for te in ["gzip", "chunked, gzip", "identity"] {
        let raw = format!(
            "GET /style.css HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        assert_refused_and_closed(&server, raw.as_bytes(), 400);
    }
});

both_models!(
    content_length_with_transfer_encoding_is_400_and_closes,
    |model| {
        let server = TestServer::start(model);
        let raw = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /app.js HTTP/1.1\r\nHost: localhost\r\n\r\n";
        assert_refused_and_closed(&server, raw, 400);
    }
);

both_models!(transfer_encoding_in_http10_is_refused_and_closes, |model| {
    let server = TestServer::start(model);
    // RFC 9112 section 6.1: framing of a 1.0 message with Transfer-Encoding is faulty.
    let raw = b"GET /style.css HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let (resp, mut stream) = exchange_keep(&server, raw);
    assert_eq!(resp.status, 400);
    assert_closed(&mut stream);
});

both_models!(body_with_content_length_is_skipped_not_parsed, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    let mut raw = request("GET", "/style.css", &[("Content-Length", "5")]);
    raw.extend_from_slice(b"GET /");
    raw.extend_from_slice(&get_req("/app.js"));
    send(&mut stream, &raw);
    let first = read_response(&mut stream, false);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, STYLE_CSS.as_bytes());
    let second = read_response(&mut stream, false);
    assert_eq!(
        second.status, 200,
        "the 5-byte body was taken for a request"
    );
    assert_eq!(second.body, APP_JS.as_bytes());
});

both_models!(chunked_body_is_skipped_not_parsed, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    let mut raw = request("GET", "/style.css", &[("Transfer-Encoding", "chunked")]);
    raw.extend_from_slice(b"5\r\nGET /\r\n3;ext=\"x\"\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n");
    raw.extend_from_slice(&get_req("/app.js"));
    send(&mut stream, &raw);
    let first = read_response(&mut stream, false);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, STYLE_CSS.as_bytes());
    let second = read_response(&mut stream, false);
    assert_eq!(second.status, 200, "chunked body mistaken for a request");
    assert_eq!(second.body, APP_JS.as_bytes());
});

both_models!(malformed_chunk_size_closes_after_the_answer, |model| {
    let server = TestServer::start(model);
    let mut raw = request("GET", "/style.css", &[("Transfer-Encoding", "chunked")]);
    raw.extend_from_slice(b"zz\r\nhello\r\n0\r\n\r\n");
    let mut stream = server.connect();
    send(&mut stream, &raw);
    // A file needs no body, so the valid head is answered at once; the body is then only
    // skipped, and the bad chunk size ends the connection: nothing after it can be framed.
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200, "the valid head is answered");
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
    assert_closed(&mut stream);
});

both_models!(long_request_target_is_414, |model| {
    let server = TestServer::start(model);
    let target = format!("/style.css?{}", "a".repeat(10 * 1024));
    let (resp, _stream) = exchange_keep(&server, &get_req(&target));
    assert_error_page(&resp, 414);
});

both_models!(target_under_the_limit_is_served, |model| {
    let server = TestServer::start(model);
    let target = format!("/style.css?{}", "a".repeat(7 * 1024));
    let resp = server.exchange(&get_req(&target), false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(huge_head_is_431, |model| {
    let server = TestServer::start(model);
    let big = "v".repeat(8 * 1024);
    let headers: Vec<(String, String)> = (0..8)
        .map(|i| (format!("X-Big-{i}"), big.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (resp, _stream) = exchange_keep(&server, &request("GET", "/style.css", &refs));
    assert_error_page(&resp, 431);
});

both_models!(too_many_fields_is_431, |model| {
    let server = TestServer::start(model);
    let headers: Vec<(String, String)> = (0..200)
        .map(|i| (format!("X-F{i}"), "1".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (resp, _stream) = exchange_keep(&server, &request("GET", "/style.css", &refs));
    assert_error_page(&resp, 431);
});

both_models!(hundred_fields_are_accepted, |model| {
    let server = TestServer::start(model);
    // Host plus 99 more: exactly the documented limit.
    let headers: Vec<(String, String)> = (0..99)
        .map(|i| (format!("X-F{i}"), "1".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let resp = server.exchange(&request("GET", "/style.css", &refs), false);
    assert_eq!(resp.status, 200);
});

both_models!(big_cookie_is_accepted, |model| {
    let server = TestServer::start(model);
    let cookie: String = (0..12 * 1024 / 16)
        .map(|i| format!("c{i:05}=0123456; "))
        .collect();
    let mut stream = server.connect();
    send(
        &mut stream,
        &request(
            "GET",
            "/style.css",
            &[
                ("Cookie", cookie.trim_end_matches("; ")),
                ("User-Agent", "big-cookie-browser"),
            ],
        ),
    );
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200, "a 12 KiB Cookie is within the head limit");
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
    assert_still_serves(&mut stream);
});

both_models!(unsupported_versions_are_505, |model| {
    let server = TestServer::start(model);
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9"] {
        let raw = format!("GET /style.css {version}\r\nHost: localhost\r\n\r\n");
        let resp = server.exchange(raw.as_bytes(), false);
        assert_eq!(resp.status, 505, "{version}");
        assert_error_page(&resp, 505);
    }
});

both_models!(malformed_versions_are_400, |model| {
    let server = TestServer::start(model);
    for version in [
        "http/1.1",
        "HTTP/1",
        "HTTX/1.1",
        "HTTP/1.1 extra",
        "HTTP/11",
    ] {
        let raw = format!("GET /style.css {version}\r\nHost: localhost\r\n\r\n");
        let resp = server.exchange(raw.as_bytes(), false);
        assert_eq!(resp.status, 400, "{version:?}");
    }
});

both_models!(tls_client_hello_is_400_and_closes, |model| {
    let server = TestServer::start(model);
    // The start of a TLS 1.2 ClientHello record: no CRLF anywhere.
    let mut hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec();
    hello.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    hello.extend_from_slice(b"\x00\x00\x20\xc0\x2b\xc0\x2f\x00\x9e");
    assert_refused_and_closed(&server, &hello, 400);
});

both_models!(garbage_request_line_is_400, |model| {
    let server = TestServer::start(model);
    for raw in [
        &b"HELLO\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /style.css\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        let (resp, mut stream) = exchange_keep(&server, raw);
        assert_error_page(&resp, 400);
        assert_closed(&mut stream);
    }
});

both_models!(errors_keep_the_connection_when_framing_is_sound, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(&mut stream, &get_req("/missing"));
    assert_error_page(&read_response(&mut stream, false), 404);
    send(
        &mut stream,
        &request("PUT", "/style.css", &[("Content-Length", "3")]),
    );
    send(&mut stream, b"abc");
    assert_error_page(&read_response(&mut stream, false), 405);
    assert_still_serves(&mut stream);
});
