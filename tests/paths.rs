//! Proves request-targets map safely onto the document root: directory redirects and indexes,
//! percent-decoding exactly once, and no traversal, symlink, dotfile or encoding trick ever
//! reveals a file outside the root or a hidden one.

#[macro_use]
mod common;

use common::*;

/// Asserts the response refuses `target` with `status` and does not leak any secret content.
fn assert_refused(resp: &Resp, target: &str, status: u16) {
    assert_eq!(resp.status, status, "{target}");
    assert_no_leak(resp, target);
}

fn assert_no_leak(resp: &Resp, target: &str) {
    let text = resp.text();
    for secret in [OUTSIDE_SECRET, SECRET, HIDDEN_X_TXT, "root:x:0:0"] {
        assert!(!text.contains(secret.trim()), "{target} leaked {secret:?}");
    }
}

/// Status of a target whose dot-segments would climb above the root: refused as a bad
/// target, whatever lies beyond (`http/target.rs`).
const CLIMBS: u16 = 400;
/// Status of a path that resolves inside the root but names nothing servable: a missing
/// file, a dotfile, a symlink out of the root. 404 tells nothing about what is there.
const NOT_SERVED: u16 = 404;

both_models!(directory_without_slash_redirects, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/sub");
    assert_eq!(resp.status, 301);
    assert_standard_headers(&resp, false);
    let location = resp.header("location").expect("301 without Location");
    assert!(location.ends_with("/sub/"), "Location {location:?}");

    let resp = server.get("/sub?x=1");
    assert_eq!(resp.status, 301);
    let location = resp.header("location").expect("301 without Location");
    assert!(
        location.ends_with("/sub/?x=1"),
        "Location {location:?} must keep the query"
    );
});

both_models!(directory_with_slash_serves_its_index, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/sub/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, SUB_INDEX_HTML.as_bytes());
    assert_eq!(
        media_type(resp.header("content-type").unwrap()).0,
        "text/html"
    );
});

both_models!(directory_without_index_is_404, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/noindex/");
    assert_error_page(&resp, 404);
    assert!(!resp.text().contains("a.txt"), "no directory listing");
});

both_models!(query_string_is_ignored_for_files, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/style.css?v=3");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
    let resp = server.get("/style.css?../../etc/passwd");
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(traversal_never_leaves_the_root, |model| {
    let server = TestServer::start(model);
    let outside_name = server
        .outside()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let outside_abs = server.outside().to_str().unwrap().to_string();
    let o = &outside_name;
    let f = OUTSIDE_FILE;
    let outside_rel = outside_abs.trim_start_matches('/');
    let rows = [
        (format!("/../{o}/{f}"), CLIMBS),
        ("/../../../../../../etc/passwd".to_string(), CLIMBS),
        (format!("/%2e%2e/{o}/{f}"), CLIMBS),
        (format!("/%2E%2E/{o}/{f}"), CLIMBS),
        (format!("/.%2e/{o}/{f}"), CLIMBS),
        (format!("/sub/../../{o}/{f}"), CLIMBS),
        (format!("/sub/%2e%2e/%2e%2e/{o}/{f}"), CLIMBS),
        (format!("/./../{o}/{f}"), CLIMBS),
        // Decoded once, `%2f` is a slash like any other.
        (format!("/..%2f{o}%2f{f}"), CLIMBS),
        (format!("/%2f..%2f{o}%2f{f}"), CLIMBS),
        (format!("/sub%2f..%2f..%2f{o}%2f{f}"), CLIMBS),
        // Decoded, a backslash is a byte of a name, not a separator: no such file.
        (format!("/%5c..%5c{o}%5c{f}"), NOT_SERVED),
        (format!("/..%5c{o}%5c{f}"), NOT_SERVED),
        // Decoded once to a literal `%2e%2e` directory, which does not exist.
        (format!("/%252e%252e/{o}/{f}"), NOT_SERVED),
        // Overlong UTF-8 for `.`: not UTF-8 once decoded, so not a path (`http/target.rs`).
        (format!("/%c0%ae%c0%ae/{o}/{f}"), 400),
        // Empty segments fold: these name the outside directory's path again, under the root.
        (format!("/{outside_abs}/{f}"), NOT_SERVED),
        (format!("/%2f{outside_rel}/{f}"), NOT_SERVED),
        (format!("/sub/..//{outside_rel}/{f}"), NOT_SERVED),
        // `..;` is a name, not a dot-segment.
        (format!("/..;/{o}/{f}"), NOT_SERVED),
    ];
    for (target, status) in &rows {
        let resp = server.get(target);
        assert_refused(&resp, target, *status);
    }
    // A raw backslash is not allowed in a target at all; its status is checked by
    // `raw_backslash_in_target_is_400`.
    let target = format!("/..\\{o}\\{f}");
    assert_no_leak(&server.get(&target), &target);
    // Absolute-form carries the same path rules.
    let resp = server.exchange(
        format!("GET http://localhost/../{o}/{f} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
        false,
    );
    assert_refused(&resp, "absolute-form traversal", CLIMBS);
});

// RFC 9112 section 3.2: the target is origin-form, every path byte a pchar (RFC 3986); a
// raw backslash is not one, so the request line is invalid and the answer 400 (section 3).
both_models!(raw_backslash_in_target_is_400, |model| {
    let server = TestServer::start(model);
    let o = server.outside().file_name().unwrap().to_str().unwrap();
    let target = format!("/..\\{o}\\{OUTSIDE_FILE}");
    let resp = server.get(&target);
    assert_error_page(&resp, 400);
    assert_no_leak(&resp, &target);
});

both_models!(double_encoding_is_decoded_once, |model| {
    let server = TestServer::start(model);
    // `%252e%252e` decodes once to the literal name `%2e%2e`, which does not exist.
    let resp = server.get("/%252e%252e/style.css");
    assert_eq!(
        resp.status, 404,
        "a literal %2e%2e directory does not exist"
    );
    // `/%2541.txt` names the file literally called `%41.txt`...
    let resp = server.get("/%2541.txt");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, PERCENT_NAME_TXT.as_bytes());
    // ...while `/%41.txt` is `/A.txt`, which does not exist.
    assert_eq!(server.get("/%41.txt").status, 404);
});

both_models!(escaped_unreserved_characters_are_decoded, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/%73tyle.%63ss");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(symlink_out_of_root_is_refused, |model| {
    let server = TestServer::start(model);
    assert_refused(&server.get("/link-out"), "/link-out", NOT_SERVED);
    assert_refused(
        &server.get(&format!("/link-dir/{OUTSIDE_FILE}")),
        "/link-dir/...",
        NOT_SERVED,
    );
});

both_models!(symlink_inside_root_is_served, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/link-in");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(dotfiles_are_not_served, |model| {
    let server = TestServer::start(model);
    for target in [
        "/.secret",
        "/.hidden/x.txt",
        "/%2esecret",
        "/sub/../.secret",
        "/.hidden/",
        "/%2ehidden/x.txt",
    ] {
        assert_refused(&server.get(target), target, NOT_SERVED);
    }
});

both_models!(nul_in_path_is_400, |model| {
    let server = TestServer::start(model);
    for target in ["/style.css%00.txt", "/%00", "/sub/%00/index.html"] {
        let resp = server.get(target);
        assert_error_page(&resp, 400);
    }
});

both_models!(malformed_percent_escape_is_400, |model| {
    let server = TestServer::start(model);
    for target in ["/%zz", "/%4", "/style%2.css", "/%", "/a%g0.txt"] {
        let resp = server.get(target);
        assert_eq!(resp.status, 400, "{target}");
        assert_error_page(&resp, 400);
    }
});

both_models!(encoded_space_finds_file, |model| {
    let server = TestServer::start(model);
    let resp = server.get("/with%20space.txt");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, WITH_SPACE_TXT.as_bytes());
});

both_models!(absolute_form_target_is_served, |model| {
    let server = TestServer::start(model);
    let resp = server.exchange(
        b"GET http://127.0.0.1/style.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        false,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
});

both_models!(target_must_be_origin_or_absolute_form, |model| {
    let server = TestServer::start(model);
    // A GET may not use asterisk-form, and origin-form starts with '/'.
    for target in ["*", "style.css"] {
        let resp = server.exchange(&get_req(target), false);
        assert_error_page(&resp, 400);
    }
});
