//! Proves static files are served byte for byte with the right metadata: `Date`, `Server`,
//! `Content-Length` and `Content-Type` on every response, and the method rules (405 with
//! `Allow` for methods a file does not support, 501 for unknown methods).

#[macro_use]
mod common;

use common::*;

both_models!(get_serves_every_file_byte_for_byte, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    for (path, content) in served_files() {
        send(&mut stream, &get_req(path));
        let resp = read_response(&mut stream, false);
        assert_eq!(resp.status, 200, "{path}");
        assert_standard_headers(&resp, false);
        assert_eq!(resp.content_length(), Some(content.len() as u64), "{path}");
        assert_eq!(resp.body, content, "{path}");
    }
});

both_models!(root_serves_index_html, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, INDEX_HTML.as_bytes());
    assert_eq!(
        media_type(resp.header("content-type").unwrap()).0,
        "text/html"
    );
});

both_models!(content_type_follows_extension, |model| {
    let server = TestServer::start(model);
    let text_with_utf8 = [("/index.html", "text/html"), ("/style.css", "text/css")];
    for (path, essence) in text_with_utf8 {
        let resp = server.get(path);
        let ct = resp
            .header("content-type")
            .unwrap_or_else(|| panic!("{path}: no Content-Type"));
        assert_eq!(media_type(ct).0, essence, "{path}: {ct}");
        assert_eq!(charset(ct).as_deref(), Some("utf-8"), "{path}: {ct}");
    }

    let js = server.get("/app.js");
    let ct = js.header("content-type").expect("app.js Content-Type");
    assert!(media_type(ct).0.ends_with("/javascript"), "app.js: {ct}");

    for (path, essence) in [
        ("/data.json", "application/json"),
        ("/img.png", "image/png"),
    ] {
        let resp = server.get(path);
        let ct = resp
            .header("content-type")
            .unwrap_or_else(|| panic!("{path}: no Content-Type"));
        assert_eq!(media_type(ct).0, essence, "{path}: {ct}");
    }
});

both_models!(every_response_has_date_server_and_length, |model| {
    let server = TestServer::start(model);
    let cases: Vec<(Vec<u8>, u16, bool)> = vec![
        (get_req("/style.css"), 200, false),
        (request("HEAD", "/style.css", &[]), 200, true),
        (get_req("/missing.txt"), 404, false),
        (request("DELETE", "/style.css", &[]), 405, false),
        (request("BREW", "/style.css", &[]), 501, false),
        (b"GET /style.css HTTP/1.1\r\n\r\n".to_vec(), 400, false),
        (b"GET /style.css HTTP/1.0\r\n\r\n".to_vec(), 200, false),
    ];
    for (raw, status, head) in cases {
        let resp = server.exchange(&raw, head);
        assert_eq!(resp.status, status, "{:?}", String::from_utf8_lossy(&raw));
        assert_standard_headers(&resp, head);
        assert_eq!(
            resp.version, "HTTP/1.1",
            "a 1.1 server sends its own version"
        );
    }
});

both_models!(head_has_no_body_but_full_length, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    for (path, content) in served_files() {
        send(&mut stream, &request("HEAD", path, &[]));
        let resp = read_response(&mut stream, true);
        assert_eq!(resp.status, 200, "{path}");
        assert_standard_headers(&resp, true);
        assert_eq!(
            resp.content_length(),
            Some(content.len() as u64),
            "HEAD {path}"
        );
    }
    // Had any HEAD carried a body, this response would be misread.
    assert_still_serves(&mut stream);
});

both_models!(unsupported_methods_on_file_get_405_with_allow, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        send(
            &mut stream,
            &request(method, "/style.css", &[("Content-Length", "0")]),
        );
        let resp = read_response(&mut stream, false);
        assert_error_page(&resp, 405);
        let allow = resp.list_tokens("allow");
        assert!(
            allow.contains(&"get".into()) && allow.contains(&"head".into()),
            "{method}: Allow {allow:?}"
        );
        assert!(
            !allow.contains(&method.to_ascii_lowercase()),
            "{method} listed in Allow {allow:?}"
        );
    }
    // A 405 does not end the connection, and the file was not touched.
    assert_still_serves(&mut stream);
    assert_eq!(
        std::fs::read(disk_path(&server, "style.css")).unwrap(),
        STYLE_CSS.as_bytes()
    );
});

both_models!(unknown_method_gets_501, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(&request("BREW", "/style.css", &[]), false);
    assert_error_page(&resp, 501);
});

both_models!(methods_are_case_sensitive, |model| {
    let server = TestServer::start(model);
    // `get` is not `GET` (RFC 9110 section 9.1): an unknown method, never the file.
    let resp = server.exchange(&request("get", "/style.css", &[]), false);
    assert_status_in(&resp, &[501, 400], "lowercase get");
    assert_ne!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(missing_file_is_404_and_connection_lives, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(&mut stream, &get_req("/does-not-exist.html"));
    let resp = read_response(&mut stream, false);
    assert_error_page(&resp, 404);
    assert!(!resp.says_close(), "a 404 need not close the connection");
    assert_still_serves(&mut stream);
});

both_models!(empty_file_has_zero_length, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(&mut stream, &get_req("/empty.txt"));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_length(), Some(0));
    assert_still_serves(&mut stream);
});

/// Requests `path` until `done` accepts the response or a second has passed: the event loop
/// applies change notifications at the start of each turn, so a request it reads later in the
/// turn during which the file changed can still get the old copy.
fn settles(server: &TestServer, path: &str, done: impl Fn(&Resp) -> bool) -> Resp {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let resp = server.get(path);
        if done(&resp) || std::time::Instant::now() > deadline {
            return resp;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

both_models!(changed_file_is_served_fresh, |model| {
    let server = TestServer::start(model);
    let path = disk_path(&server, "mutable.txt");
    std::fs::write(&path, "first version\n").unwrap();
    let first = server.get("/mutable.txt");
    assert_eq!(first.body, b"first version\n");
    // Served again from the cache, unchanged.
    assert_eq!(server.get("/mutable.txt").body, b"first version\n");

    // A different size, so even a cache that checks only size and mtime must notice.
    std::fs::write(&path, "second, longer version\n").unwrap();
    let second = settles(&server, "/mutable.txt", |r| r.body != first.body);
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"second, longer version\n");
    assert_ne!(
        first.header("etag"),
        second.header("etag"),
        "ETag must change with the content"
    );

    // The same size and a rename over the old name: what deploy tools do.
    let staged = disk_path(&server, "mutable.tmp");
    std::fs::write(&staged, "third, longer version!\n").unwrap();
    std::fs::rename(&staged, &path).unwrap();
    let third = settles(&server, "/mutable.txt", |r| r.body != second.body);
    assert_eq!(third.body, b"third, longer version!\n");

    std::fs::remove_file(&path).unwrap();
    let gone = settles(&server, "/mutable.txt", |r| r.status == 404);
    assert_eq!(gone.status, 404, "a deleted file is gone");
});
