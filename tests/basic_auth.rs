//! Basic auth as a client and an operator meet it, on both models: 401 with a challenge
//! without the right credentials, the file served with them, preflights still answered;
//! users files that are world-readable or hold other hashes refused before the server
//! starts; credentials never in any log.

mod common;
mod site;

use common::*;
use margay::{Cors, Model, Rule, SiteRules};
use site::*;

const SECRET_TXT: &str = "staff only\n";

fn protected(model: Model) -> (tempfile::TempDir, TestServer) {
    let users = tempfile::tempdir().unwrap();
    let text = format!(
        "# staff\nann:{}\nbob:{}\n",
        quick_hash("correct horse"),
        quick_hash("b:b")
    );
    let file = users_file(users.path(), "users.htpasswd", &text, 0o600);
    let rules = SiteRules::new()
        .rule(
            Rule::new("/api/**")
                .unwrap()
                .cors(Cors::new(["https://app.example"]).unwrap()),
        )
        .unwrap()
        .rule(
            Rule::new("/private/**")
                .unwrap()
                .basic_auth("staff", &file)
                .unwrap(),
        )
        .unwrap()
        .rule(
            Rule::new("/api/**")
                .unwrap()
                .basic_auth("api", &file)
                .unwrap(),
        )
        .unwrap();
    let server = TestServer::start_with(model, |config| config.site_rules(rules));
    std::fs::create_dir(server.root().join("private")).unwrap();
    std::fs::write(server.root().join("private/secret.txt"), SECRET_TXT).unwrap();
    (users, server)
}

both_models!(no_valid_credentials_no_file, |model| {
    let (_users, server) = protected(model);
    // (Authorization, what it is)
    let rows: Vec<(Option<String>, &str)> = vec![
        (None, "none"),
        (Some(basic("ann:wrong")), "a wrong password"),
        (Some(basic("carol:correct horse")), "an unknown user"),
        (Some(basic("ann")), "no colon"),
        (Some("Basic ***".into()), "not base64"),
        (Some("Bearer abc".into()), "another scheme"),
    ];
    for (authorization, what) in &rows {
        let fields: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        for target in [
            "/private/secret.txt",
            "/private/",
            "/private",
            "/private/missing",
        ] {
            let resp = server.get_with(target, &fields);
            assert_error_page(&resp, 401);
            assert_eq!(
                resp.header("www-authenticate"),
                Some("Basic realm=\"staff\", charset=\"UTF-8\""),
                "{what}: {target}"
            );
            assert!(!resp.text().contains("staff only"), "{what}: {target}");
        }
    }
    assert_eq!(server.get("/style.css").status, 200, "other paths are open");
});

both_models!(the_right_credentials_open_the_door, |model| {
    let (_users, server) = protected(model);
    let mut stream = server.connect();
    // Twice on one connection: the second is answered from memory, not bcrypt.
    for _ in 0..2 {
        for (user, target) in [
            ("ann:correct horse", "/private/secret.txt"),
            ("bob:b:b", "/private/secret.txt"),
        ] {
            send(
                &mut stream,
                &request("GET", target, &[("Authorization", &basic(user))]),
            );
            let resp = read_response(&mut stream, false);
            assert_eq!(
                (resp.status, resp.text().as_str()),
                (200, SECRET_TXT),
                "{user}"
            );
        }
    }
    let dir = server.get_with(
        "/private",
        &[("Authorization", &basic("ann:correct horse"))],
    );
    assert_eq!(dir.status, 301, "past the door, the directory redirect");
});

both_models!(
    a_preflight_needs_no_credentials_but_the_request_does,
    |model| {
        let (_users, server) = protected(model);
        let preflight = server.exchange(
            &request(
                "OPTIONS",
                "/api/status",
                &[
                    ("Origin", "https://app.example"),
                    ("Access-Control-Request-Method", "GET"),
                ],
            ),
            false,
        );
        assert_eq!(preflight.status, 204);
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        let refused = server.get_with("/api/status", &[("Origin", "https://app.example")]);
        assert_eq!(refused.status, 401);
        assert_eq!(
            refused.header("access-control-allow-origin"),
            Some("https://app.example"),
            "a script may read the 401"
        );
        assert_eq!(
            refused.header("www-authenticate"),
            Some("Basic realm=\"api\", charset=\"UTF-8\"")
        );
        let admitted = server.get_with(
            "/api/status",
            &[
                ("Origin", "https://app.example"),
                ("Authorization", &basic("ann:correct horse")),
            ],
        );
        assert_eq!(admitted.status, 200);
    }
);

// bcrypt is slow on purpose; a client sending wrong password after wrong password must not
// get the server to spend all its time in it. Once the checks have used their share, new
// credentials get 503 with Retry-After, while credentials already verified and everything
// outside the realm are served as before.
both_models!(
    a_flood_of_wrong_passwords_gets_503_and_the_rest_is_served,
    |model| {
        let users = tempfile::tempdir().unwrap();
        let hash = |password: &str| {
            bcrypt::hash_with_salt(password, 8, [7; 16])
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY)
        };
        let text = format!("ann:{}\nbob:{}\n", hash("ann's"), hash("bob's"));
        let file = users_file(users.path(), "users.htpasswd", &text, 0o600);
        let rules = SiteRules::new()
            .rule(
                Rule::new("/private/**")
                    .unwrap()
                    .basic_auth("staff", &file)
                    .unwrap(),
            )
            .unwrap();
        let server = TestServer::start_with(model, |config| config.site_rules(rules));
        std::fs::create_dir(server.root().join("private")).unwrap();
        std::fs::write(server.root().join("private/secret.txt"), SECRET_TXT).unwrap();
        let ann = [("Authorization", basic("ann:ann's"))];
        let ann: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(server.get_with("/private/secret.txt", &ann).status, 200);

        let mut stream = server.connect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut tries = 0;
        let busy = loop {
            let wrong = basic(&format!("ann:guess {tries}"));
            send(
                &mut stream,
                &request("GET", "/private/secret.txt", &[("Authorization", &wrong)]),
            );
            let resp = read_response(&mut stream, false);
            tries += 1;
            match resp.status {
                401 => assert!(
                    std::time::Instant::now() < deadline,
                    "{tries} wrong passwords in a row were all checked"
                ),
                503 => break resp,
                other => panic!("a wrong password got {other}"),
            }
        };
        let retry_after: u64 = busy
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!(retry_after >= 1, "Retry-After {retry_after}");
        assert!(!busy.text().contains("staff only"));

        // Right credentials not checked yet wait too: 503, not a 401 that would call them wrong.
        let bob = basic("bob:bob's");
        let resp = server.get_with("/private/secret.txt", &[("Authorization", &bob)]);
        assert_eq!(
            resp.status, 503,
            "unchecked credentials while the budget is spent"
        );
        // Credentials verified before, and files outside the realm, are served as ever.
        let resp = server.get_with("/private/secret.txt", &ann);
        assert_eq!((resp.status, resp.text().as_str()), (200, SECRET_TXT));
        assert_eq!(server.get("/index.html").status, 200);
    }
);

#[test]
fn users_files_the_library_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!("ann:{}\n", quick_hash("pw"));
    // (file text, mode, words of the message)
    let rows: &[(String, u32, &str)] = &[
        (
            good.clone(),
            0o644,
            "every user of this machine can read it (mode 644)",
        ),
        (
            "ann:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n".into(),
            0o600,
            "users.htpasswd:1: the hash of user \"ann\" is not bcrypt",
        ),
        (
            format!("{good}bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n"),
            0o600,
            "users.htpasswd:2: the hash of user \"bob\" is not bcrypt",
        ),
        (
            format!("{good}carol:plain-password\n"),
            0o600,
            ":2: the hash of user \"carol\"",
        ),
        (
            format!("{good}dave:$2x$04$abcdefghijklmnopqrstuu5ll6Ir8aZ4dMi2v0uK1PkYSWJu4P/v.\n"),
            0o600,
            ":2:",
        ),
    ];
    for (text, mode, words) in rows {
        let file = users_file(dir.path(), "users.htpasswd", text, *mode);
        let error = Rule::new("/p/**")
            .unwrap()
            .basic_auth("staff", &file)
            .unwrap_err();
        assert_eq!(error.key(), "basic_auth.users");
        assert!(error.message().contains(words), "{text:?}: {error}");
        assert!(!error.message().contains("W6ph5") && !error.message().contains("plain-password"));
    }
}

#[test]
fn the_binary_refuses_to_start_with_a_bad_users_file() {
    let dir = Margay::prepare(
        "\n[[rule]]\npath = \"/private/**\"\nbasic_auth = { realm = \"staff\", users = \"users.htpasswd\" }\n",
    );
    let config = dir.path().join("site.toml").display().to_string();
    let root = dir.path().join("root").display().to_string();
    // (users file, mode, words of the message)
    let rows: &[(String, u32, &str)] = &[
        (
            format!("ann:{}\n", quick_hash("pw")),
            0o644,
            "every user of this machine can read it",
        ),
        (
            "ann:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n".into(),
            0o600,
            "users.htpasswd:1: the hash of user \"ann\" is not bcrypt",
        ),
    ];
    for (text, mode, words) in rows {
        users_file(dir.path(), "users.htpasswd", text, *mode);
        let output = run_margay(&[
            "--config",
            &config,
            "--root",
            &root,
            "--listen",
            "127.0.0.1:0",
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        let expected = format!("margay: {config}:4: rule[1].basic_auth.users: ");
        assert!(stderr.starts_with(&expected), "{stderr}");
        assert!(stderr.contains(words), "{stderr}");
    }
}

fn credentials_stay_out_of_the_logs(model: &str) {
    let dir = Margay::prepare(
        "[[rule]]\npath = \"/private/**\"\nbasic_auth = { realm = \"staff\", users = \"users.htpasswd\" }\n",
    );
    users_file(
        dir.path(),
        "users.htpasswd",
        &format!("ann:{}\n", quick_hash("hunter2-secret")),
        0o600,
    );
    std::fs::create_dir(dir.path().join("root/private")).unwrap();
    std::fs::write(dir.path().join("root/private/x.txt"), SECRET_TXT).unwrap();
    let margay = Margay::start(dir, &["--model", model, "--log-level", "trace"]);
    let good = basic("ann:hunter2-secret");
    let bad = basic("ann:wrong-guess-77");
    for (authorization, status) in [(&good, 200), (&bad, 401), (&good, 200)] {
        let mut stream = connect(margay.addr);
        send(
            &mut stream,
            &request("GET", "/private/x.txt", &[("Authorization", authorization)]),
        );
        assert_eq!(read_response(&mut stream, false).status, status);
    }
    margay.wait_for_output("\"GET /private/x.txt HTTP/1.1\" 200");
    let output = margay.stop();
    assert!(
        output.contains("\" 401 "),
        "the refusal is logged:\n{output}"
    );
    for secret in [
        "hunter2-secret",
        "wrong-guess-77",
        &good[6..],
        &bad[6..],
        "Authorization",
        "$2y$",
    ] {
        assert!(
            !output.contains(secret),
            "{secret:?} in the logs:\n{output}"
        );
    }
}

#[test]
fn credentials_stay_out_of_the_logs_reactor() {
    credentials_stay_out_of_the_logs("reactor");
}

#[test]
fn credentials_stay_out_of_the_logs_threads() {
    credentials_stay_out_of_the_logs("threads");
}
