//! The site's own error pages and the single-page-app fallback, on both models: each page
//! with its status, the server's other fields kept; the fallback only for what a browser
//! navigating an app asks, never under a handler's prefix.

mod common;

use common::*;
use margay::{Config, Method, Model, Response, Server, SiteRules, StatusCode};
use std::path::Path;

const NOT_FOUND_PAGE: &str = "<!DOCTYPE html><title>Lost</title><p>This page is not here.</p>\n";
const METHOD_PAGE: &str = "<!DOCTYPE html><p>Not that way.</p>\n";
const BAD_REQUEST_PAGE: &str = "<!DOCTYPE html><p>That was not HTTP.</p>\n";
/// What a browser sends when it navigates.
const NAVIGATION: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn write_pages(root: &Path) {
    std::fs::create_dir_all(root.join("errors")).unwrap();
    std::fs::write(root.join("errors/404.html"), NOT_FOUND_PAGE).unwrap();
    std::fs::write(root.join("errors/405.html"), METHOD_PAGE).unwrap();
    std::fs::write(root.join("errors/400.html"), BAD_REQUEST_PAGE).unwrap();
}

fn with_pages(model: Model, fallback: bool) -> TestServer {
    let mut rules = SiteRules::new()
        .error_page(404, "/errors/404.html")
        .unwrap()
        .error_page(405, "/errors/405.html")
        .unwrap()
        .error_page(400, "/errors/400.html")
        .unwrap()
        .error_page(500, "/errors/none.html")
        .unwrap();
    if fallback {
        rules = rules.fallback("/index.html").unwrap();
    }
    let server = TestServer::start_with(model, |config| config.site_rules(rules));
    write_pages(server.root());
    server
}

both_models!(each_error_page_is_served_with_its_status, |model| {
    let server = with_pages(model, false);
    let missing = server.get("/no/such/file.txt");
    assert_error_page(&missing, 404);
    assert_eq!(missing.text(), NOT_FOUND_PAGE);
    assert_eq!(
        missing.header("etag"),
        None,
        "the page's validators are not the resource's"
    );
    let head = server.head_with("/no/such/file.txt", &[]);
    assert_eq!(head.status, 404);
    assert_eq!(head.content_length(), Some(NOT_FOUND_PAGE.len() as u64));
    assert!(head.body.is_empty());
    // Other fields of the server's answer stay: Allow on 405.
    let wrong = server.exchange(&request("POST", "/style.css", &[]), false);
    assert_error_page(&wrong, 405);
    assert_eq!(wrong.text(), METHOD_PAGE);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD, OPTIONS"));
    // A request the parser refuses gets the page too, and its connection carries on.
    let mut stream = server.connect();
    send(&mut stream, &get_req("/%zz"));
    let bad = read_response(&mut stream, false);
    assert_error_page(&bad, 400);
    assert_eq!(bad.text(), BAD_REQUEST_PAGE);
    assert_still_serves(&mut stream);
    // A handler built with Response::error is replaced: /api/echo only takes POST.
    let builtin = server.get("/api/echo");
    assert_eq!(
        (builtin.status, builtin.text().as_str()),
        (405, METHOD_PAGE)
    );
    // The page itself is served as usual when asked for.
    let page = server.get("/errors/404.html");
    assert_eq!((page.status, page.text().as_str()), (200, NOT_FOUND_PAGE));
});

both_models!(a_missing_error_page_leaves_the_servers_own, |model| {
    let server = with_pages(model, false);
    std::fs::remove_file(server.root().join("errors/404.html")).unwrap();
    let missing = server.get("/nothing");
    assert_error_page(&missing, 404);
    assert!(
        missing.text().contains("404 Not Found"),
        "{}",
        missing.text()
    );
});

both_models!(the_fallback_serves_an_apps_deep_links, |model| {
    let server = with_pages(model, true);
    let mut stream = server.connect();
    for target in [
        "/some/deep/link",
        "/users/42",
        "/v1.2/settings",
        "/app/",
        "/sub/missing/",
    ] {
        send(
            &mut stream,
            &request("GET", target, &[("Accept", NAVIGATION)]),
        );
        let deep = read_response(&mut stream, false);
        assert_eq!(deep.status, 200, "{target}");
        assert_eq!(deep.text(), INDEX_HTML, "{target}");
        assert_eq!(
            media_type(deep.header("content-type").unwrap()).0,
            "text/html"
        );
        assert!(
            deep.list_tokens("vary").contains(&"accept".to_string()),
            "{target}"
        );
    }
    let head = server.head_with("/some/deep/link", &[("Accept", "text/html")]);
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(INDEX_HTML.len() as u64));
    // A browser revalidating the deep link gets 304.
    let etag = server
        .get("/index.html")
        .header("etag")
        .unwrap()
        .to_string();
    let again = server.get_with(
        "/some/deep/link",
        &[("Accept", "text/html"), ("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    // Files, directories and the rest are untouched.
    assert_eq!(
        server
            .get_with("/style.css", &[("Accept", NAVIGATION)])
            .text(),
        STYLE_CSS
    );
    assert_eq!(
        server.get_with("/sub", &[("Accept", NAVIGATION)]).status,
        301
    );
    assert_eq!(
        server.get_with("/sub/", &[("Accept", NAVIGATION)]).text(),
        SUB_INDEX_HTML
    );
});

both_models!(
    the_fallback_leaves_what_is_not_an_apps_page_a_404,
    |model| {
        let server = with_pages(model, true);
        // (method, target, Accept, why it is a 404)
        let rows: &[(&str, &str, Option<&str>, &str)] = &[
            ("GET", "/app/missing.js", Some(NAVIGATION), "an extension"),
            ("GET", "/some/deep/link", Some("*/*"), "*/* names no type"),
            ("GET", "/some/deep/link", None, "no Accept"),
            (
                "GET",
                "/some/deep/link",
                Some("application/json"),
                "JSON wanted",
            ),
            (
                "GET",
                "/some/deep/link",
                Some("text/html;q=0"),
                "HTML refused",
            ),
            (
                "POST",
                "/some/deep/link",
                Some(NAVIGATION),
                "not GET or HEAD",
            ),
            ("GET", "/.git/config", Some(NAVIGATION), "a dotfile"),
            (
                "GET",
                "/.well-known/acme-challenge/token",
                Some(NAVIGATION),
                "a dot segment",
            ),
        ];
        for (method, target, accept, why) in rows {
            let fields: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
            let resp = server.exchange(&request(method, target, &fields), false);
            assert_eq!(resp.status, 404, "{why}: {method} {target}");
            assert_eq!(resp.text(), NOT_FOUND_PAGE, "{why}: the site's 404 page");
        }
        let plain = server.get("/some/deep/link");
        assert!(
            plain.list_tokens("vary").contains(&"accept".to_string()),
            "the 404 depended on Accept"
        );
    }
);

/// A server with handler routes over a root holding the app's index.html.
fn app_server(model: Model) -> (tempfile::TempDir, margay::RunningServer) {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), INDEX_HTML).unwrap();
    let rules = SiteRules::new().fallback("/index.html").unwrap();
    let config = Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .root(root.path())
        .model(model)
        .access_log(margay::AccessLog::Off)
        .site_rules(rules);
    let running = Server::new(config)
        .unwrap()
        .route_prefix(Method::Post, "/rpc/", |_| Response::text("rpc"))
        .route(Method::Get, "/items", |_| {
            Response::json(&serde_json::json!({"error": "none yet"}))
                .with_status(StatusCode::NOT_FOUND)
        })
        .spawn()
        .unwrap();
    (root, running)
}

both_models!(
    handler_routes_win_and_their_prefixes_never_fall_back,
    |model| {
        let (_root, running) = app_server(model);
        let get = |target: &str| {
            let mut stream = connect(running.addr());
            send(
                &mut stream,
                &request("GET", target, &[("Accept", NAVIGATION)]),
            );
            read_response(&mut stream, false)
        };
        let own = get("/items");
        assert_eq!(
            (own.status, own.text().as_str()),
            (404, r#"{"error":"none yet"}"#)
        );
        assert_eq!(
            get("/rpc/call").status,
            405,
            "the prefix route answers, GET is not its method"
        );
        let bare = get("/rpc");
        assert_eq!(bare.status, 404, "under a handler prefix: no fallback");
        assert!(!bare.text().contains("root index page"));
        assert_eq!(get("/elsewhere").text(), INDEX_HTML);
    }
);
