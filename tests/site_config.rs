//! The configuration file's site-rule tables as an operator meets them: each mistake stops
//! the server before it binds with the file, the line and the key; `--check-config` prints
//! the tables in force; `--fallback` and `--list-directories` are options like any other.

mod common;
mod site;

use common::*;
use site::*;

fn check(text: &str, extra: &[&str]) -> (Option<i32>, String, String, String) {
    let dir = Margay::prepare(text);
    let config = dir.path().join("site.toml").display().to_string();
    let mut args = vec!["--config", config.as_str(), "--check-config"];
    args.extend(extra);
    let output = run_margay(&args);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
        config,
    )
}

#[test]
fn a_mistake_in_a_table_names_the_file_the_line_and_the_key() {
    let example = "listen = \"127.0.0.1:8080\"\nroot = \"htdocs\"\nfallback = \"/index.html\"\n\
        list_directories = false\n\n[error_pages]\n404 = \"/404.html\"\n\n[[rule]]\n\
        path = \"/assets/**\"\nheaders = { \"Cache-Control\" = \"public, max-age=31536000, immutable\" }\n\n\
        [[rule]]\npath = \"/old/*\"\nredirect = { to = \"/new/{1}\", status = 303 }\n";
    // (file, line, key, words)
    let rows: &[(&str, usize, &str, &str)] = &[
        (
            example,
            15,
            "rule[2].redirect.status",
            "expected 301, 302, 307 or 308",
        ),
        (
            "[[rule]]\npath = \"/a/*\"\nredirect = { to = \"/b/{1}\\r\\nSet-Cookie: x=1\" }\n",
            3,
            "rule[1].redirect.to",
            "cannot appear in a URL",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheaders = { \"X-A\" = \"1\\r\\nSet-Cookie: x=1\" }\n",
            3,
            "rule[1].headers.X-A",
            "0x0D",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheaders = { \"Transfer-Encoding\" = \"chunked\" }\n",
            3,
            "rule[1].headers.Transfer-Encoding",
            "written by the server",
        ),
        (
            "[[rule]]\npath = \"/a\"\nheaders = { X = \"1\" }\nbogus = true\n",
            4,
            "rule[1].bogus",
            "unknown key",
        ),
        (
            "[[rule]]\npath = \"/a/{b\"\nheaders = { X = \"1\" }\n",
            2,
            "rule[1].path",
            "not a valid pattern",
        ),
        (
            "[errors]\n404 = \"/404.html\"\n",
            1,
            "errors",
            "unknown key",
        ),
        (
            "[error_pages]\n404 = 404\n",
            2,
            "error_pages.404",
            "expected a string",
        ),
        (
            "fallback = \"index.html\"\n",
            1,
            "fallback",
            "not a file path",
        ),
        (
            "list_directories = \"yes\"\n",
            1,
            "list_directories",
            "true or false",
        ),
    ];
    for (text, line, key, words) in rows {
        let (code, _, stderr, config) = check(text, &[]);
        assert_eq!(code, Some(2), "{text:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        let expected = format!("margay: {config}:{line}: {key}: ");
        assert!(
            stderr.starts_with(&expected),
            "{text:?}:\n{stderr}\nwanted {expected}"
        );
        assert!(stderr.contains(words), "{text:?}: {stderr}");
    }
}

#[test]
fn check_config_prints_the_tables_in_force() {
    let text = "fallback = \"/index.html\"\n\n[error_pages]\n404 = \"/404.html\"\n\n[[rule]]\n\
        path = \"/old/*\"\nredirect = { to = \"/new/{1}\", status = 308 }\n";
    let (code, stdout, stderr, _) = check(text, &["--list-directories"]);
    assert_eq!(code, Some(0), "{stderr}");
    for line in [
        "fallback = \"/index.html\"  # configuration file",
        "list_directories = true  # command line",
        "[error_pages]",
        "404 = \"/404.html\"",
        "[[rule]]",
        "path = \"/old/*\"",
        "redirect = { to = \"/new/{1}\", status = 308 }",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in:\n{stdout}");
    }
    let (_, bare, _, _) = check("", &[]);
    assert!(bare.contains("fallback = \"\"  # default"), "{bare}");
    assert!(!bare.contains("[[rule]]"), "{bare}");
}

fn the_options_reach_the_server(model: &str) {
    let dir = Margay::prepare("[error_pages]\n404 = \"/404.html\"\n");
    std::fs::write(dir.path().join("root/index.html"), INDEX_HTML).unwrap();
    std::fs::write(dir.path().join("root/404.html"), "custom 404\n").unwrap();
    std::fs::create_dir(dir.path().join("root/files")).unwrap();
    std::fs::write(dir.path().join("root/files/a.txt"), "a").unwrap();
    let margay = Margay::start(
        dir,
        &[
            "--model",
            model,
            "--fallback",
            "/index.html",
            "--list-directories",
        ],
    );
    let ask = |target: &str, accept: &str| {
        let mut stream = connect(margay.addr);
        send(&mut stream, &request("GET", target, &[("Accept", accept)]));
        read_response(&mut stream, false)
    };
    let deep = ask("/app/route", "text/html");
    assert_eq!((deep.status, deep.text().as_str()), (200, INDEX_HTML));
    let missing = ask("/app/route.js", "text/html");
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (404, "custom 404\n")
    );
    let listing = ask("/files/", "application/json");
    assert_eq!(listing.status, 200);
    assert!(
        listing.text().contains("\"name\":\"a.txt\""),
        "{}",
        listing.text()
    );
}

#[test]
fn the_options_reach_the_server_reactor() {
    the_options_reach_the_server("reactor");
}

#[test]
fn the_options_reach_the_server_threads() {
    the_options_reach_the_server("threads");
}

#[test]
fn the_documented_examples_are_valid() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    users_file(
        dir.path(),
        "users.htpasswd",
        &format!("ann:{}\n", quick_hash("pw")),
        0o600,
    );
    // margay.toml's commented tables, uncommented.
    let example = std::fs::read_to_string(repo.join("margay.toml")).unwrap();
    let start = example.find("# [error_pages]").expect("the example tables");
    let tables: String = example[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").or(l.strip_prefix('#')).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let rules = margay::SiteRules::from_toml(&tables, dir.path())
        .unwrap_or_else(|e| panic!("margay.toml's examples: {e}\n{tables}"));
    assert_eq!(rules.len(), 6, "{tables}");
    // Every TOML block of docs/configuration.md.
    let docs = std::fs::read_to_string(repo.join("docs/configuration.md")).unwrap();
    let blocks: Vec<&str> = docs
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 6, "{} blocks", blocks.len());
    for block in blocks {
        margay::SiteRules::from_toml(block, dir.path())
            .unwrap_or_else(|e| panic!("docs/configuration.md: {e}\n{block}"));
    }
}
