//! Header, redirect and CORS rules as a client sees them, on both models: headers on cached
//! files, their 304s and handler answers but not on errors; redirects with captures that
//! cannot inject anything into `Location`; preflights answered from the rule.

mod common;

use common::*;
use margay::{Cors, Method, Rule, SiteRules};
use std::time::Duration;

fn rules() -> SiteRules {
    SiteRules::new()
        .rule(
            Rule::new("/**")
                .unwrap()
                .header("X-Content-Type-Options", "nosniff")
                .unwrap()
                .header("Cache-Control", "no-cache")
                .unwrap(),
        )
        .unwrap()
        .rule(
            Rule::new("/**/*.css")
                .unwrap()
                .header("Cache-Control", "public, max-age=31536000, immutable")
                .unwrap(),
        )
        .unwrap()
        .rule(
            Rule::new("/data.json")
                .unwrap()
                .header("Content-Type", "application/vnd.margay+json")
                .unwrap(),
        )
        .unwrap()
        .rule(
            Rule::new("/old/*")
                .unwrap()
                .redirect("/new/{1}", 301)
                .unwrap(),
        )
        .unwrap()
        .rule(
            Rule::new("/noindex/*")
                .unwrap()
                .redirect("/gone", 302)
                .unwrap(),
        )
        .unwrap()
        .rule(Rule::new("/go/**").unwrap().redirect("/{1}", 307).unwrap())
        .unwrap()
        .rule(
            Rule::new("/sub/**")
                .unwrap()
                .forced_redirect("https://docs.example/{1}", 308)
                .unwrap(),
        )
        .unwrap()
        .rule(
            Rule::new("/api/**").unwrap().cors(
                Cors::new(["https://app.example"])
                    .unwrap()
                    .methods(&[Method::Get, Method::Post])
                    .allow_headers(["Content-Type"])
                    .unwrap()
                    .max_age(Duration::from_secs(600)),
            ),
        )
        .unwrap()
        .rule(
            Rule::new("/style.css")
                .unwrap()
                .cors(Cors::new(["*"]).unwrap()),
        )
        .unwrap()
}

fn start(model: margay::Model) -> TestServer {
    TestServer::start_with(model, |config| config.site_rules(rules()))
}

both_models!(
    header_rules_reach_cached_files_their_304s_and_handlers,
    |model| {
        let server = start(model);
        let mut stream = server.connect();
        // The first answer reads the file, the second comes from the cache: the same headers.
        for round in 0..2 {
            send(&mut stream, &get_req("/style.css"));
            let css = read_response(&mut stream, false);
            assert_eq!(css.status, 200, "round {round}");
            assert_eq!(css.body, STYLE_CSS.as_bytes());
            assert_eq!(
                css.headers_named("cache-control"),
                ["public, max-age=31536000, immutable"],
                "the later rule's value, once (round {round})"
            );
            assert_eq!(css.header("x-content-type-options"), Some("nosniff"));
            assert_standard_headers(&css, false);
        }
        send(&mut stream, &get_req("/index.html"));
        let index = read_response(&mut stream, false);
        assert_eq!(index.header("cache-control"), Some("no-cache"));
        let etag = index.header("etag").expect("etag").to_string();
        send(
            &mut stream,
            &request("GET", "/index.html", &[("If-None-Match", &etag)]),
        );
        let not_modified = read_response(&mut stream, false);
        assert_eq!(not_modified.status, 304);
        assert_eq!(
            not_modified.header("cache-control"),
            Some("no-cache"),
            "304 says it too"
        );
        // A directory's index is matched as its file: /sub/ is /sub/index.html, not a .css.
        let data = server.get("/data.json");
        assert_eq!(
            data.header("content-type"),
            Some("application/vnd.margay+json")
        );
        assert_eq!(data.headers_named("content-type").len(), 1);
        let ranged = server.get_with("/style.css", &[("Range", "bytes=0-3")]);
        assert_eq!(ranged.status, 206);
        assert_eq!(
            ranged.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        // A handler's answer gets them per request.
        let status = server.get("/api/status");
        assert_eq!(status.status, 200);
        assert_eq!(status.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(status.header("cache-control"), Some("no-cache"));
        // Errors do not: a 404 must not be cached for a year.
        let missing = server.get("/missing.css");
        assert_error_page(&missing, 404);
        assert_eq!(missing.header("cache-control"), None);
        assert_eq!(missing.header("x-content-type-options"), None);
    }
);

both_models!(a_site_without_rules_sends_no_extra_field, |model| {
    let plain = TestServer::start(model);
    let styled = start(model);
    let names = |resp: &Resp| -> Vec<String> {
        resp.headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    };
    let before = plain.get("/style.css");
    let after = styled.get("/style.css");
    assert_eq!(
        names(&before),
        [
            "server",
            "date",
            "content-length",
            "content-type",
            "last-modified",
            "etag",
            "accept-ranges"
        ]
    );
    let mut expected = names(&before);
    expected.extend(["x-content-type-options".into(), "cache-control".into()]);
    assert_eq!(names(&after), expected);
});

both_models!(
    redirects_answer_where_no_file_is_and_escape_their_captures,
    |model| {
        let server = start(model);
        std::fs::create_dir(server.root().join("old")).unwrap();
        std::fs::write(server.root().join("old/kept.txt"), "still here\n").unwrap();
        // (target, status, Location)
        let rows: &[(&str, u16, &str)] = &[
            ("/old/page", 301, "/new/page"),
            ("/old/page?a=1&b=%20", 301, "/new/page?a=1&b=%20"),
            ("/old/a%20b%3Fc", 301, "/new/a%20b%3Fc"),
            ("/old/caf%C3%A9", 301, "/new/caf%C3%A9"),
            (
                "/old/x%0D%0ASet-Cookie:%20evil=1",
                301,
                "/new/x%0D%0ASet-Cookie:%20evil=1",
            ),
            ("/old/%5Cevil.example", 301, "/new/%5Cevil.example"),
            ("/go/evil.example", 307, "/evil.example"),
            ("/go/%2F%2Fevil.example/x", 307, "/evil.example/x"),
            ("/go//evil.example", 307, "/evil.example"),
            ("/noindex/none.txt", 302, "/gone"),
            ("/sub/", 308, "https://docs.example/"),
            ("/sub/index.html", 308, "https://docs.example/index.html"),
        ];
        for (target, status, location) in rows {
            let resp = server.get(target);
            assert_eq!(resp.status, *status, "{target}: {resp:?}");
            assert_eq!(resp.header("location"), Some(*location), "{target}");
            assert_eq!(resp.header("set-cookie"), None, "{target}");
            assert_eq!(
                resp.header("x-content-type-options"),
                Some("nosniff"),
                "{target}"
            );
        }
        // Where a file answers, an unforced redirect does not; a forced one does (above).
        let kept = server.get("/old/kept.txt");
        assert_eq!((kept.status, kept.text().as_str()), (200, "still here\n"));
        let file = server.get("/noindex/a.txt");
        assert_eq!(file.status, 200, "a file shadows the redirect");
        let other_method = server.exchange(&request("DELETE", "/old/page", &[]), false);
        assert_eq!(other_method.status, 301, "every method of a missing path");
    }
);

both_models!(cors_preflights_are_answered_from_the_rule, |model| {
    let server = start(model);
    let preflight = |origin: &str, method: &str, headers: &str| {
        let mut fields = vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
        ];
        if !headers.is_empty() {
            fields.push(("Access-Control-Request-Headers", headers));
        }
        server.exchange(&request("OPTIONS", "/api/items", &fields), false)
    };
    let allowed = preflight("https://app.example", "POST", "content-type");
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        allowed.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        allowed.header("access-control-allow-headers"),
        Some("Content-Type")
    );
    assert_eq!(allowed.header("access-control-max-age"), Some("600"));
    assert!(allowed.list_tokens("vary").contains(&"origin".to_string()));
    for (origin, method, headers) in [
        ("https://evil.example", "POST", ""),
        ("https://app.example", "DELETE", ""),
        ("https://app.example", "POST", "x-secret"),
    ] {
        let refused = preflight(origin, method, headers);
        assert_eq!(
            refused.header("access-control-allow-origin"),
            None,
            "{origin} {method} {headers}: {refused:?}"
        );
    }
});

both_models!(cors_fields_follow_each_requests_origin, |model| {
    let server = start(model);
    let mut stream = server.connect();
    // The same cached file, alternately from an allowed origin, another, and none.
    for round in 0..2 {
        for (origin, allowed) in [
            (Some("https://app.example"), Some("https://app.example")),
            (Some("https://evil.example"), None),
            (None, None),
        ] {
            let fields: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
            send(&mut stream, &request("GET", "/api/status", &fields));
            let resp = read_response(&mut stream, false);
            assert_eq!(resp.status, 200);
            assert_eq!(
                resp.header("access-control-allow-origin"),
                allowed,
                "round {round} {origin:?}"
            );
            assert!(
                resp.list_tokens("vary").contains(&"origin".to_string()),
                "{resp:?}"
            );
        }
        send(
            &mut stream,
            &request("GET", "/style.css", &[("Origin", "https://x.example")]),
        );
        let any = read_response(&mut stream, false);
        assert_eq!(
            any.header("access-control-allow-origin"),
            Some("*"),
            "round {round}"
        );
        assert_eq!(any.body, STYLE_CSS.as_bytes());
    }
});

both_models!(rules_reach_handlers_on_the_loop_and_on_the_pool, |model| {
    let root = tempfile::tempdir().unwrap();
    let config = margay::Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .root(root.path())
        .model(model)
        .access_log(margay::AccessLog::Off)
        .site_rules(rules());
    let running = margay::Server::new(config)
        .unwrap()
        .route(Method::Get, "/api/quick", |_| {
            margay::Response::text("quick").header("Cache-Control", "max-age=5")
        })
        .blocking(Method::Get, "/api/slow", |_| {
            std::thread::sleep(Duration::from_millis(20));
            margay::Response::text("slow")
        })
        .spawn()
        .unwrap();
    for (target, body) in [("/api/quick", "quick"), ("/api/slow", "slow")] {
        let mut stream = connect(running.addr());
        send(
            &mut stream,
            &request("GET", target, &[("Origin", "https://app.example")]),
        );
        let resp = read_response(&mut stream, false);
        assert_eq!((resp.status, resp.text().as_str()), (200, body), "{target}");
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "{target}"
        );
        assert_eq!(
            resp.headers_named("cache-control"),
            ["no-cache"],
            "the rule's value replaces the handler's ({target})"
        );
        assert_eq!(
            resp.header("access-control-allow-origin"),
            Some("https://app.example"),
            "{target}"
        );
    }
});
