//! Replacing the rules of a running server, on both models: through a `RulesHandle`, new
//! requests follow the new rules on connections that stay open; through SIGHUP, the binary
//! reads its file again, keeps the rules in force when the file has a mistake, and names the
//! options only a restart applies.

mod common;
mod site;

use common::*;
use margay::{Config, Rule, Server, SiteRules};
use site::*;
use std::time::{Duration, Instant};

fn tagged(value: &str) -> SiteRules {
    SiteRules::new()
        .rule(Rule::new("/**").unwrap().header("X-Rules", value).unwrap())
        .unwrap()
}

both_models!(
    new_rules_apply_to_the_next_request_on_open_connections,
    |model| {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), INDEX_HTML).unwrap();
        let config = Config::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .root(root.path())
            .model(model)
            .access_log(margay::AccessLog::Off)
            .builtin_endpoints(true)
            .site_rules(tagged("first"));
        let server = Server::new(config).unwrap();
        let handle = server.rules_handle();
        let running = server.spawn().unwrap();
        let mut kept = connect(running.addr());
        let tag = |stream: &mut std::net::TcpStream, target: &str| {
            send(stream, &get_req(target));
            let resp = read_response(stream, false);
            assert_eq!(resp.status, 200, "{target}");
            resp.header("x-rules").map(str::to_string)
        };
        assert_eq!(tag(&mut kept, "/"), Some("first".into()));
        assert_eq!(tag(&mut kept, "/api/status"), Some("first".into()));

        handle.replace(tagged("second"));
        assert_eq!(
            tag(&mut kept, "/"),
            Some("second".into()),
            "a cached file too"
        );
        assert_eq!(tag(&mut kept, "/api/status"), Some("second".into()));
        assert_eq!(
            tag(&mut connect(running.addr()), "/"),
            Some("second".into())
        );

        running.rules_handle().replace(SiteRules::new());
        assert_eq!(tag(&mut kept, "/"), None);
        assert_eq!(running.status().accepted, 2, "one kept connection, one new");
        running.shutdown().unwrap();
    }
);

const FIRST: &str = "[[rule]]\npath = \"/**\"\nheaders = { \"X-Rules\" = \"first\" }\n";

/// The `X-Rules` value of `GET /` on a new connection.
fn tag_of(margay: &Margay) -> Option<String> {
    let mut stream = connect(margay.addr);
    send(&mut stream, &get_req("/"));
    let resp = read_response(&mut stream, false);
    assert_eq!(resp.status, 200);
    resp.header("x-rules").map(str::to_string)
}

/// Waits until `GET /` says `wanted`, for at most 10 s.
fn wait_for_tag(margay: &Margay, wanted: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tag_of(margay).as_deref() != wanted {
        assert!(
            Instant::now() < deadline,
            "never {wanted:?}:\n{}",
            margay.output()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn sighup_reloads_the_file(model: &str) {
    let dir = Margay::prepare(FIRST);
    std::fs::write(dir.path().join("root/index.html"), INDEX_HTML).unwrap();
    let margay = Margay::start(dir, &["--model", model]);
    let mut kept = connect(margay.addr);
    send(&mut kept, &get_req("/"));
    assert_eq!(
        read_response(&mut kept, false).header("x-rules"),
        Some("first")
    );

    let config = margay.dir().join("site.toml");
    let second = format!(
        "listen = \"{}\"\nworkers = 2\nfallback = \"/index.html\"\n\n{}",
        free_addr(),
        FIRST.replace("first", "second")
    );
    std::fs::write(&config, second).unwrap();
    margay.signal(libc::SIGHUP);
    wait_for_tag(&margay, Some("second"));
    let output = margay.wait_for_output("only a restart applies");
    assert!(output.contains("reloaded"), "{output}");
    let restart = output
        .lines()
        .find(|l| l.contains("only a restart applies"))
        .unwrap();
    assert!(
        restart.contains("workers") && !restart.contains("fallback"),
        "{restart}"
    );
    // The --listen of the command line still overrides the file: no restart needed for it.
    assert!(!restart.contains("listen"), "{restart}");
    send(
        &mut kept,
        &request("GET", "/deep/link", &[("Accept", "text/html")]),
    );
    let deep = read_response(&mut kept, false);
    assert_eq!(
        deep.status, 200,
        "the fallback came with the reload, on an open connection"
    );
    assert_eq!(deep.header("x-rules"), Some("second"));

    std::fs::write(
        &config,
        "[[rule]]\npath = \"/**\"\nredirect = { to = \"/x\", status = 303 }\n",
    )
    .unwrap();
    margay.signal(libc::SIGHUP);
    let output = margay.wait_for_output("reload failed");
    let failure = output
        .lines()
        .find(|l| l.contains("reload failed"))
        .unwrap();
    assert!(
        failure.contains("site.toml:3: rule[1].redirect.status: expected 301, 302, 307 or 308"),
        "{failure}"
    );
    assert_eq!(
        tag_of(&margay).as_deref(),
        Some("second"),
        "the rules in force are kept"
    );
    send(&mut kept, &get_req("/"));
    assert_eq!(
        read_response(&mut kept, false).header("x-rules"),
        Some("second")
    );
}

#[test]
fn sighup_reloads_the_file_reactor() {
    sighup_reloads_the_file("reactor");
}

#[test]
fn sighup_reloads_the_file_threads() {
    sighup_reloads_the_file("threads");
}

#[test]
fn a_changed_listen_in_the_file_is_named_for_a_restart() {
    let listen = free_addr();
    let dir = Margay::prepare(FIRST);
    std::fs::write(dir.path().join("root/index.html"), INDEX_HTML).unwrap();
    // The address comes from the file here, not the command line.
    std::fs::write(
        dir.path().join("site.toml"),
        format!("listen = \"{listen}\"\n{FIRST}"),
    )
    .unwrap();
    let margay = Margay::start_from_file(dir, listen, &[]);
    let config = margay.dir().join("site.toml");
    std::fs::write(&config, format!("listen = \"{}\"\n{FIRST}", free_addr())).unwrap();
    margay.signal(libc::SIGHUP);
    let output = margay.wait_for_output("only a restart applies");
    let restart = output
        .lines()
        .find(|l| l.contains("only a restart applies"))
        .unwrap();
    assert!(restart.contains("listen"), "{restart}");
    assert_eq!(
        tag_of(&margay).as_deref(),
        Some("first"),
        "still serving where it was"
    );
}
