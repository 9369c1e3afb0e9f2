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
    // `get` is not `GET` (RFC 9110 section 9.1) but a well-formed token: an unknown method,
    // which is 501 (section 15.6.2), never the file.
    let resp = server.exchange(&request("get", "/style.css", &[]), false);
    assert_eq!(resp.status, 501, "lowercase get");
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
    let second = server.get("/mutable.txt");
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
    let third = server.get("/mutable.txt");
    assert_eq!(third.body, b"third, longer version!\n");

    std::fs::remove_file(&path).unwrap();
    let gone = server.get("/mutable.txt");
    assert_eq!(gone.status, 404, "a deleted file is gone");
});

// Each request below is sent after the change's system call has returned, when the kernel has
// already queued the change notification: the server must never answer with the old copy, over
// a new connection or a kept-alive one, for edits in place and for renames over the name.
both_models!(every_request_after_a_change_sees_it, |model| {
    let server = TestServer::start(model);
    let path = disk_path(&server, "changing.txt");
    let staged = disk_path(&server, "changing.tmp");
    std::fs::write(&path, "version start\n").unwrap();
    let mut kept = server.connect();
    for i in 0..300 {
        let body = format!("version {i}\n");
        if i % 3 == 0 {
            std::fs::write(&staged, &body).unwrap();
            std::fs::rename(&staged, &path).unwrap();
        } else {
            std::fs::write(&path, &body).unwrap();
        }
        let resp = if i % 2 == 0 {
            server.get("/changing.txt")
        } else {
            send(&mut kept, &get_req("/changing.txt"));
            read_response(&mut kept, false)
        };
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), body, "request {i} got an old copy");
    }
});

// The widest window for an old copy: the server is still taking a burst of new connections
// (each a download it starts at once) when the file changes and one more client asks for it.
// That client's request came after the change, so it must get the new content.
both_models!(a_client_queued_behind_a_burst_sees_a_change, |model| {
    let server = TestServer::start(model);
    let path = disk_path(&server, "burst.txt");
    for i in 0..10 {
        std::fs::write(&path, format!("before {i}\n")).unwrap();
        assert_eq!(server.get("/burst.txt").text(), format!("before {i}\n"));

        let mut burst: Vec<_> = (0..30).map(|_| server.connect()).collect();
        for stream in &mut burst {
            send(stream, &get_req("/big.bin"));
        }
        let mut first = [0u8; 1];
        std::io::Read::read_exact(&mut burst[0], &mut first).unwrap();

        std::fs::write(&path, format!("after {i}\n")).unwrap();
        let resp = server.get("/burst.txt");
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.text(),
            format!("after {i}\n"),
            "round {i} got the old copy"
        );
    }
});
