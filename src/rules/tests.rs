//! The rules as a whole: TOML in, located errors out, matching order, and what a request gets.

use super::auth::tests::{quick_hash, users_file};
use super::*;
use crate::files::test_request;

const SITE: &str = r#"
listen = "127.0.0.1:8080"
root = "htdocs"

[error_pages]
404 = "/404.html"
500 = "/oops.html"

[[rule]]
path = "/**"
headers = { "X-Content-Type-Options" = "nosniff", "X-Frame-Options" = "DENY" }

[[rule]]
path = "/assets/**"
headers = { "Cache-Control" = "public, max-age=31536000, immutable", "X-Frame-Options" = "SAMEORIGIN" }

[[rule]]
path = "/old/*"
redirect = { to = "/new/{1}", status = 301 }

[[rule]]
path = "/moved/**"
redirect = { to = "https://example.com/{1}", status = 308, force = true }

[[rule]]
path = "/api/**"
cors = { origins = ["https://app.example"], methods = ["GET", "POST"], max_age = 600 }

[[rule]]
path = "/api/open/**"
cors = { origins = ["*"] }

[rule.headers]
Cache-Control = "no-store"
"#;

fn fields(response: &Response) -> Vec<String> {
    response
        .headers()
        .map(|(n, v)| format!("{n}: {v}"))
        .collect()
}

#[test]
fn a_site_file_reads_and_prints_back() {
    let rules = SiteRules::from_toml(SITE, Path::new(".")).expect("valid");
    assert_eq!(rules.len(), 6);
    assert_eq!(
        rules.error_page_for(StatusCode::NOT_FOUND),
        Some("/404.html")
    );
    assert_eq!(rules.error_page_for(StatusCode::FORBIDDEN), None);
    let printed = rules.to_toml();
    for line in [
        "[error_pages]\n404 = \"/404.html\"\n500 = \"/oops.html\"\n",
        "[[rule]]\npath = \"/old/*\"\nredirect = { to = \"/new/{1}\", status = 301 }\n",
        "redirect = { to = \"https://example.com/{1}\", status = 308, force = true }\n",
        "cors = { origins = [\"https://app.example\"], methods = [\"GET\", \"POST\"], max_age = 600 }\n",
        "path = \"/api/open/**\"\nheaders = { \"Cache-Control\" = \"no-store\" }\ncors = { origins = [\"*\"], methods = [\"GET\", \"HEAD\"] }\n",
    ] {
        assert!(printed.contains(line), "{line:?} in\n{printed}");
    }
    let again = SiteRules::from_toml(&printed, Path::new(".")).expect("reads its own output");
    assert_eq!(again.to_toml(), printed);
}

#[test]
fn mistakes_name_the_line_and_the_key() {
    // (file, line, key, words of the message)
    let rows: &[(&str, usize, &str, &str)] = &[
        (
            "[[rule]]\npath = \"/a\"\nredirect = { to = \"/b\", status = 300 }\n",
            3,
            "rule[1].redirect.status",
            "expected 301, 302, 307 or 308",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheaders = { X = \"1\" }\n\n[[rule]]\npath = \"/old/*\"\nredirect = { to = \"/new/{1}\", status = 303 }\n",
            7,
            "rule[2].redirect.status",
            "expected 301, 302, 307 or 308",
        ),
        (
            "[[rule]]\npath = \"/a\"\nredirect = { to = \"/b\", status = \"301\" }\n",
            3,
            "rule[1].redirect.status",
            "expected 301, 302, 307 or 308",
        ),
        (
            "[[rule]]\npath = \"/a/*\"\nredirect = { to = \"/b/{2}\" }\n",
            3,
            "rule[1].redirect.to",
            "1 wildcard",
        ),
        (
            "[[rule]]\npath = \"/a/*\"\nredirect = { to = \"//evil.example/{1}\" }\n",
            3,
            "rule[1].redirect.to",
            "another host",
        ),
        (
            "[[rule]]\npath = \"/a/*\"\nredirect = { status = 301 }\n",
            3,
            "rule[1].redirect",
            "to is missing",
        ),
        (
            "[[rule]]\npath = \"/a/*\"\nredirect = { to = \"/b\", code = 301 }\n",
            3,
            "rule[1].redirect.code",
            "unknown key",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheader = { X = \"1\" }\n",
            3,
            "rule[1].header",
            "unknown key",
        ),
        (
            "[[rule]]\npath = \"/a\"\n\n[rule.headers]\nX-Ok = \"1\"\nX-Bad = \"a\\r\\nSet-Cookie: x=1\"\n",
            6,
            "rule[1].headers.X-Bad",
            "0x0D",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheaders = { \"Content-Length\" = \"1\" }\n",
            3,
            "rule[1].headers.Content-Length",
            "written by the server",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheaders = { \"Bad Name\" = \"1\" }\n",
            3,
            "rule[1].headers.Bad Name",
            "not a header field name",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheaders = { X = 1 }\n",
            3,
            "rule[1].headers.X",
            "expected a string, found integer",
        ),
        (
            "[[rule]]\npath = \"a/*\"\nheaders = { X = \"1\" }\n",
            2,
            "rule[1].path",
            "does not start with /",
        ),
        (
            "[[rule]]\npath = \"/a/[\"\nheaders = { X = \"1\" }\n",
            2,
            "rule[1].path",
            "not a valid pattern",
        ),
        (
            "[[rule]]\npath = 5\n",
            2,
            "rule[1].path",
            "expected a string",
        ),
        (
            "\n[[rule]]\nheaders = { X = \"1\" }\n",
            2,
            "rule[1]",
            "a rule needs a path",
        ),
        (
            "[[rule]]\npath = \"/a\"\n",
            1,
            "rule[1]",
            "a rule needs headers, redirect, cors or basic_auth",
        ),
        ("rule = \"x\"\n", 1, "rule", "expected [[rule]] tables"),
        (
            "[[rule]]\npath = \"/a\"\ncors = { origins = [\"https://a.example/\"] }\n",
            3,
            "rule[1].cors.origins",
            "not an origin",
        ),
        (
            "[[rule]]\npath = \"/a\"\ncors = { origins = [\"*\"], credentials = true }\n",
            3,
            "rule[1].cors.credentials",
            "cannot be true",
        ),
        (
            "[[rule]]\npath = \"/a\"\ncors = { origins = [\"*\"], methods = [\"FETCH\"] }\n",
            3,
            "rule[1].cors.methods",
            "not a method",
        ),
        (
            "[[rule]]\npath = \"/a\"\ncors = { origins = [\"*\"], max_age = -1 }\n",
            3,
            "rule[1].cors.max_age",
            "seconds",
        ),
        (
            "[[rule]]\npath = \"/a\"\ncors = { methods = [\"GET\"] }\n",
            3,
            "rule[1].cors",
            "origins is missing",
        ),
        (
            "[[rule]]\npath = \"/a\"\nbasic_auth = { realm = \"x\" }\n",
            3,
            "rule[1].basic_auth",
            "users is missing",
        ),
        (
            "[[rule]]\npath = \"/a\"\nbasic_auth = { realm = \"x\", users = \"no-such-file\" }\n",
            3,
            "rule[1].basic_auth.users",
            "cannot read",
        ),
        (
            "[error_pages]\n404 = \"/404.html\"\n399 = \"/x.html\"\n",
            3,
            "error_pages.399",
            "400 to 599",
        ),
        (
            "[error_pages]\nnot-found = \"/404.html\"\n",
            2,
            "error_pages.not-found",
            "status code",
        ),
        (
            "[error_pages]\n404 = \"404.html\"\n",
            2,
            "error_pages.404",
            "not a file path",
        ),
        (
            "[error_pages]\n404 = \"/../secret\"\n",
            2,
            "error_pages.404",
            "not a file path",
        ),
        ("error_pages = 404\n", 1, "error_pages", "expected a table"),
        ("[[rule]\n", 1, "", "unclosed array table"),
    ];
    for (text, line, key, words) in rows {
        let error = SiteRules::from_toml(text, Path::new("/nonexistent")).expect_err(text);
        assert_eq!(
            (error.line(), error.key()),
            (Some(*line), *key),
            "{text:?}: {error}"
        );
        assert!(error.message().contains(words), "{text:?}: {error}");
        let shown = error.to_string();
        assert!(shown.starts_with(&format!("{line}: ")), "{shown}");
    }
}

#[test]
fn basic_auth_reads_its_users_next_to_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    users_file(dir.path(), &format!("ann:{}\n", quick_hash("pw")), 0o600);
    let text = "[[rule]]\npath = \"/private/**\"\nbasic_auth = { realm = \"staff\", users = \"users.htpasswd\" }\n";
    let rules = SiteRules::from_toml(text, dir.path()).expect("valid");
    assert!(
        rules.to_toml().contains("users.htpasswd\" }  # 1 user(s)"),
        "{}",
        rules.to_toml()
    );
    let refused = rules.before_route(&test_request("GET", "/private/x", ""));
    let refused = refused.expect("401");
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header_value("WWW-Authenticate"),
        Some("Basic realm=\"staff\", charset=\"UTF-8\"")
    );
    // "ann:pw" in base64.
    let admitted = test_request("GET", "/private", "Authorization: Basic YW5uOnB3\r\n");
    assert!(rules.before_route(&admitted).is_none());
    assert!(
        rules
            .before_route(&test_request("GET", "/public", ""))
            .is_none()
    );

    users_file(dir.path(), &format!("ann:{}\n", quick_hash("pw")), 0o644);
    let error = SiteRules::from_toml(text, dir.path()).expect_err("world-readable");
    assert_eq!(error.key(), "rule[1].basic_auth.users");
    assert_eq!(error.line(), Some(3));
}

#[test]
fn headers_add_up_in_order_and_a_later_rule_wins() {
    let rules = SiteRules::from_toml(SITE, Path::new(".")).expect("valid");
    // (path, header lines folded for the file, its own content type)
    let rows: &[(&str, &str, Option<&str>)] = &[
        (
            "/index.html",
            "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n",
            None,
        ),
        (
            "/assets/app.js",
            "X-Content-Type-Options: nosniff\r\nX-Frame-Options: SAMEORIGIN\r\n\
             Cache-Control: public, max-age=31536000, immutable\r\n",
            None,
        ),
        (
            "/api/open/data.json",
            "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nCache-Control: no-store\r\n",
            None,
        ),
    ];
    for (path, lines, content_type) in rows {
        let (own_type, got) = rules.file_headers(path).expect("headers");
        assert_eq!(String::from_utf8(got).unwrap(), *lines, "{path}");
        assert_eq!(own_type.as_deref(), *content_type, "{path}");
    }
    let typed = SiteRules::new()
        .rule(
            Rule::new("/**/*.wasm")
                .unwrap()
                .header("Content-Type", "application/wasm")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        typed.file_headers("/app/x.wasm"),
        Some((Some("application/wasm".to_string()), Vec::new()))
    );
    assert_eq!(typed.file_headers("/app/x.js"), None);
    assert_eq!(SiteRules::new().file_headers("/x"), None);

    // Per request: a handler's own value is replaced; errors get none.
    let mut response = Response::text("x").header("Cache-Control", "max-age=5");
    rules.apply_headers("/api/open/x", &mut response);
    assert!(
        fields(&response).contains(&"Cache-Control: no-store".to_string()),
        "{:?}",
        fields(&response)
    );
    let mut error = Response::error(StatusCode::NOT_FOUND);
    rules.apply_headers("/api/open/x", &mut error);
    assert_eq!(fields(&error), ["Content-Type: text/html; charset=utf-8"]);
}

#[test]
fn what_requests_get_before_any_route() {
    let rules = SiteRules::from_toml(SITE, Path::new(".")).expect("valid");
    // (method, target, header lines, status and Location, or None to go on)
    type Row<'a> = (&'a str, &'a str, &'a str, Option<(u16, Option<&'a str>)>);
    let rows: &[Row] = &[
        ("GET", "/index.html", "", None),
        (
            "GET",
            "/moved/a/b?x=1",
            "",
            Some((308, Some("https://example.com/a/b?x=1"))),
        ),
        (
            "POST",
            "/moved",
            "",
            Some((308, Some("https://example.com/"))),
        ),
        ("GET", "/old/page", "", None),
        (
            "OPTIONS",
            "/api/items",
            "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n",
            Some((204, None)),
        ),
        (
            "OPTIONS",
            "/api/items",
            "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n",
            None,
        ),
        (
            "OPTIONS",
            "/api/items",
            "Origin: https://app.example\r\n",
            None,
        ),
    ];
    for (method, target, lines, expected) in rows {
        let got = rules.before_route(&test_request(method, target, lines));
        let got = got.map(|r| {
            (
                r.status.as_u16(),
                r.header_value("Location").map(str::to_string),
            )
        });
        let expected = expected.map(|(s, l)| (s, l.map(str::to_string)));
        assert_eq!(got, expected, "{method} {target} {lines:?}");
    }
    // Unforced redirects answer only where no file did.
    let miss = rules
        .redirect_on_miss(&test_request("GET", "/old/a%0D%0Ab?q=1", ""))
        .expect("redirect");
    assert_eq!(miss.status, 301);
    assert_eq!(miss.header_value("Location"), Some("/new/a%0D%0Ab?q=1"));
    assert!(
        fields(&miss).contains(&"X-Frame-Options: DENY".to_string()),
        "headers apply to redirects"
    );
    assert!(
        rules
            .redirect_on_miss(&test_request("GET", "/old/a/b", ""))
            .is_none()
    );
    assert!(
        rules
            .redirect_on_miss(&test_request("GET", "/moved/x", ""))
            .is_none()
    );
}

#[test]
fn cors_fields_go_on_actual_requests_only() {
    let rules = SiteRules::from_toml(SITE, Path::new(".")).expect("valid");
    let mut response = Response::text("x");
    rules.decorate_cors(
        &test_request("GET", "/api/x", "Origin: https://app.example\r\n"),
        &mut response,
    );
    assert!(
        fields(&response).contains(&"Access-Control-Allow-Origin: https://app.example".to_string())
    );
    let mut preflight = Response::new(StatusCode::NO_CONTENT);
    let head = test_request(
        "OPTIONS",
        "/api/x",
        "Origin: https://app.example\r\nAccess-Control-Request-Method: DELETE\r\n",
    );
    rules.decorate_cors(&head, &mut preflight);
    assert!(
        fields(&preflight).is_empty(),
        "a refused preflight gets no permission"
    );
    let mut elsewhere = Response::text("x");
    rules.decorate_cors(
        &test_request("GET", "/x", "Origin: https://app.example\r\n"),
        &mut elsewhere,
    );
    assert_eq!(
        fields(&elsewhere),
        ["Content-Type: text/plain; charset=utf-8"]
    );
}

#[test]
fn builders_refuse_what_the_file_would() {
    assert_eq!(Rule::new("x").unwrap_err().key(), "path");
    let rule = Rule::new("/a").unwrap();
    assert_eq!(
        rule.clone().header("Date", "x").unwrap_err().key(),
        "headers.Date"
    );
    assert_eq!(
        rule.clone().redirect("/b", 200).unwrap_err().key(),
        "redirect.status"
    );
    assert_eq!(
        SiteRules::new().rule(rule).unwrap_err().message(),
        "a rule needs headers, redirect, cors or basic_auth"
    );
    assert_eq!(
        SiteRules::new().fallback("index.html").unwrap_err().key(),
        "fallback"
    );
    assert!(SiteRules::new().fallback("/.well-known/app.html").is_ok());
    assert!(SiteRules::new().fallback("/.git/app.html").is_err());
    assert_eq!(
        SiteRules::new()
            .error_page(200, "/x.html")
            .unwrap_err()
            .key(),
        "error_pages.200"
    );
    assert!(SiteRules::new().is_empty());
    assert!(!SiteRules::new().list_directories(true).is_empty());
}
