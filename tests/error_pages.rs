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

const FORBIDDEN_PAGE: &str = "<!DOCTYPE html><p>Not for your eyes.</p>\n";
const BAD_GATEWAY_PAGE: &str = "<!DOCTYPE html><p>The application is down.</p>\n";

/// Takes `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` from the calling thread (and so from the
/// threads it starts afterwards), so that a root test run meets file modes as a user would.
fn drop_file_permission_override() {
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const DAC: u32 = (1 << 1) | (1 << 2);
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !DAC;
    data[0].permitted &= !DAC;
    data[0].inheritable &= !DAC;
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
}

both_models!(forbidden_and_bad_gateway_get_their_own_pages, |model| {
    let refusing = Refusing::new();
    let rule = margay::ProxyRule::new("/up/", &[&refusing.url()]).unwrap();
    let rules = SiteRules::new()
        .error_page(403, "/errors/403.html")
        .unwrap()
        .error_page(502, "/errors/502.html")
        .unwrap();
    // Started on a thread of its own that cannot read past file modes, even as root.
    let server = std::thread::spawn(move || {
        drop_file_permission_override();
        let server = TestServer::builder(model)
            .config(move |c| {
                c.site_rules(rules)
                    .proxy(rule)
                    .proxy_timeout(std::time::Duration::from_secs(2))
            })
            .files(|root| {
                std::fs::create_dir_all(root.join("errors")).unwrap();
                std::fs::write(root.join("errors/403.html"), FORBIDDEN_PAGE).unwrap();
                std::fs::write(root.join("errors/502.html"), BAD_GATEWAY_PAGE).unwrap();
                std::fs::write(root.join("locked.txt"), "LOCKED-CONTENT\n").unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(
                    root.join("locked.txt"),
                    std::fs::Permissions::from_mode(0o000),
                )
                .unwrap();
            })
            .start();
        let denied = std::fs::read(server.root().join("locked.txt")).unwrap_err();
        assert_eq!(
            denied.kind(),
            std::io::ErrorKind::PermissionDenied,
            "the server's threads cannot read locked.txt"
        );
        server
    })
    .join()
    .unwrap();

    let locked = server.get("/locked.txt");
    assert_error_page(&locked, 403);
    assert_eq!(locked.text(), FORBIDDEN_PAGE, "the site's 403 page");
    assert!(!locked.text().contains("LOCKED-CONTENT"));
    let head = server.head_with("/locked.txt", &[]);
    assert_eq!(head.status, 403);
    assert_eq!(head.content_length(), Some(FORBIDDEN_PAGE.len() as u64));

    let down = server.get("/up/anything");
    assert_error_page(&down, 502);
    assert_eq!(down.text(), BAD_GATEWAY_PAGE, "the site's 502 page");

    // Pages only for their own statuses: a 404 keeps the server's own.
    let missing = server.get("/no/such/file.txt");
    assert_eq!(missing.status, 404);
    assert_ne!(missing.text(), FORBIDDEN_PAGE);
    assert_ne!(missing.text(), BAD_GATEWAY_PAGE);
});

/// A backend that answers every request `404` with the body `nope`.
fn not_found_backend() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    // Answer each request head on the connection (GETs carry no body).
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        if stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")
                            .is_err()
                        {
                            return;
                        }
                    }
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    addr
}

both_models!(the_fallback_never_applies_under_a_proxy_prefix, |model| {
    let backend = not_found_backend();
    let rule = margay::ProxyRule::new("/up/", &[&format!("http://{backend}")]).unwrap();
    let rules = SiteRules::new().fallback("/index.html").unwrap();
    let server = TestServer::start_with(model, move |c| {
        c.site_rules(rules)
            .proxy(rule)
            .proxy_timeout(std::time::Duration::from_secs(2))
    });
    for accept in ["text/html", NAVIGATION] {
        let page = server.get_with("/up/page", &[("Accept", accept)]);
        assert_eq!(page.status, 404, "the backend's status, Accept: {accept}");
        assert_eq!(page.text(), "nope", "the backend's body, Accept: {accept}");
        assert!(!page.text().contains("root index page"));
    }
    // The same request outside the prefix does fall back: the fallback is on.
    let elsewhere = server.get_with("/page", &[("Accept", "text/html")]);
    assert_eq!(
        (elsewhere.status, elsewhere.text().as_str()),
        (200, INDEX_HTML)
    );
});
