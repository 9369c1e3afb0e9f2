//! Directory listings and `/.well-known/`, on both models: listings only when asked for,
//! sorted, with sizes and times, every name escaped, dotfiles and escapes out of the root
//! left out; `/.well-known/` served while every other dot segment stays refused.

mod common;

use common::*;
use margay::{Model, SiteRules};

fn listing_server(model: Model) -> TestServer {
    let server = TestServer::start_with(model, |config| {
        config.site_rules(SiteRules::new().list_directories(true))
    });
    let dir = server.root().join("noindex");
    std::fs::write(dir.join("<img src=x onerror=alert(1)>.txt"), "xss").unwrap();
    std::fs::write(dir.join("b.txt"), "0123456789").unwrap();
    std::fs::write(dir.join(".env"), "SECRET=1").unwrap();
    std::fs::create_dir(dir.join("zdir")).unwrap();
    std::fs::create_dir(dir.join(".git")).unwrap();
    std::os::unix::fs::symlink(server.outside(), dir.join("escape")).unwrap();
    server
}

both_models!(listings_are_off_unless_asked_for, |model| {
    let server = TestServer::start(model);
    assert_error_page(&server.get("/noindex/"), 404);
    assert_eq!(server.get("/noindex/a.txt").text(), NOINDEX_A_TXT);
});

both_models!(an_html_listing_is_sorted_measured_and_escaped, |model| {
    let server = listing_server(model);
    let page = server.get_with("/noindex/", &[("Accept", "text/html")]);
    assert_eq!(page.status, 200);
    assert_eq!(
        media_type(page.header("content-type").unwrap()).0,
        "text/html"
    );
    assert!(page.list_tokens("vary").contains(&"accept".to_string()));
    let html = page.text();
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} in\n{html}"))
    };
    // Directories first, then files by name; each with its size.
    assert!(
        at(">zdir/<") < at(">&lt;img")
            && at(">&lt;img") < at(">a.txt<")
            && at(">a.txt<") < at(">b.txt<")
    );
    assert!(html.contains(&format!(
        ">a.txt</a></td><td class=\"size\">{}</td>",
        NOINDEX_A_TXT.len()
    )));
    assert!(html.contains(">b.txt</a></td><td class=\"size\">10</td>"));
    assert!(html.contains("<a href=\"../\">../</a>"));
    // The file named like a tag is text, and its link stays a relative path.
    assert!(!html.contains("<img"), "the name became markup:\n{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.txt</a>"));
    assert!(html.contains("href=\"./%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt\""));
    for hidden in [".env", ".git", "escape"] {
        assert!(!html.contains(hidden), "{hidden} listed:\n{html}");
    }
    // The listed link leads to the file.
    let linked = server.get("/noindex/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt");
    assert_eq!(linked.text(), "xss");
    // The modification time is an HTTP date.
    let row = &html[at(">b.txt<")..];
    let cells: Vec<&str> = row.split("<td>").collect();
    assert_imf_fixdate(cells[1].split('<').next().unwrap());
});

both_models!(a_json_listing_for_clients_that_ask, |model| {
    let server = listing_server(model);
    let resp = server.get_with("/noindex/", &[("Accept", "application/json")]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
    assert_eq!(json["path"], "/noindex/");
    let names: Vec<(&str, &str)> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("zdir", "directory"),
            ("<img src=x onerror=alert(1)>.txt", "file"),
            ("a.txt", "file"),
            ("b.txt", "file"),
        ]
    );
    assert_eq!(json["entries"][3]["size"], 10);
    assert!(json["entries"][3]["modified"].as_u64().unwrap() > 1_600_000_000);
    // A browser's Accept prefers HTML even though it takes anything.
    let browser = server.get_with("/noindex/", &[("Accept", "text/html,*/*;q=0.8")]);
    assert_eq!(
        media_type(browser.header("content-type").unwrap()).0,
        "text/html"
    );
});

both_models!(listings_never_leave_the_root, |model| {
    let server = listing_server(model);
    std::fs::remove_file(server.root().join("index.html")).unwrap();
    let root = server.get("/");
    assert_eq!(root.status, 200);
    let html = root.text();
    assert!(!html.contains("../"), "a way up from the root:\n{html}");
    for hidden in [".secret", ".hidden", "link-out", "link-dir"] {
        assert!(!html.contains(hidden), "{hidden} listed:\n{html}");
    }
    assert!(
        html.contains(">link-in<"),
        "a link inside the root is listed:\n{html}"
    );
    assert!(html.contains(">noindex/<"));
    // Directories outside the root, or hidden, are not listed at all.
    for target in [
        "/link-dir/",
        "/.hidden/",
        "/noindex/escape/",
        "/../",
        "/noindex/.git/",
    ] {
        let resp = server.get(target);
        assert!(
            !resp.text().contains(OUTSIDE_FILE) && !resp.text().contains("x.txt"),
            "{target}: {resp:?}"
        );
        assert_ne!(resp.status, 500, "{target}");
    }
    assert_eq!(server.get("/link-dir/").status, 404);
    assert_eq!(server.get("/.hidden/").status, 404);
});

both_models!(
    well_known_is_served_and_other_dot_segments_are_not,
    |model| {
        let server = TestServer::start(model);
        let challenge = server.root().join(".well-known/acme-challenge");
        std::fs::create_dir_all(&challenge).unwrap();
        std::fs::write(challenge.join("token-xyz"), "token-xyz.thumbprint").unwrap();
        std::fs::write(
            server.root().join(".well-known/security.txt"),
            "Contact: mailto:a@b\n",
        )
        .unwrap();
        std::fs::write(server.root().join(".well-known/.private"), "no").unwrap();
        let token = server.get("/.well-known/acme-challenge/token-xyz");
        assert_eq!(
            (token.status, token.text().as_str()),
            (200, "token-xyz.thumbprint")
        );
        let head = server.head_with("/.well-known/security.txt", &[]);
        assert_eq!(head.status, 200);
        assert_eq!(
            media_type(head.header("content-type").unwrap()).0,
            "text/plain"
        );
        for refused in [
            "/.well-known/.private",
            "/.secret",
            "/.hidden/x.txt",
            "/sub/.well-known/x",
            "/.well-known/../.secret",
            "/.well-known/acme-challenge/missing",
        ] {
            let resp = server.get(refused);
            assert_error_page(&resp, 404);
            assert!(!resp.text().contains("SECRET"), "{refused}");
        }
    }
);
