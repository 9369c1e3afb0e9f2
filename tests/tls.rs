//! HTTPS: every framing and keep-alive behaviour that matters, over TLS, on both models; the
//! protocol versions, ALPN, SNI, resumption and certificate reload; what a broken pair does at
//! start; bad input below HTTP; and the redirect of plain HTTP to HTTPS. The PKI is made in
//! the test (`tls_support`), the client is rustls over a `TcpStream`.

mod common;
mod tls_support;

use common::*;
use margay::{Config, Model, Server};
use rustls::{AlertDescription, HandshakeKind, ProtocolVersion};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tls_support::*;

/// A CA and a leaf for `localhost` and `127.0.0.1`, its files in a directory of their own.
struct Pki {
    ca: Ca,
    leaf: Leaf,
    cert: PathBuf,
    key: PathBuf,
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::new("margay test CA");
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
        let dir = TempDir::new().unwrap();
        let (cert, key) = leaf.write(dir.path(), "localhost");
        Pki {
            ca,
            leaf,
            cert,
            key,
            dir,
        }
    }

    /// A client that trusts the CA.
    fn client(&self) -> std::sync::Arc<rustls::ClientConfig> {
        trusting(&self.ca)
    }
}

/// The binary, serving HTTPS on a port of its choosing with the pair given.
fn https_process(model: Model, cert: &Path, key: &Path) -> ServerProcess {
    ServerProcess::builder(model)
        .args(&https_args(cert, key))
        .start()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A server for `model` with plain HTTP (for `/api/status`) and HTTPS with the pair given.
fn https_server(model: Model, cert: &Path, key: &Path) -> TestServer {
    https_server_with(model, &[(cert, key)], |c| c)
}

fn https_server_with(
    model: Model,
    pairs: &[(&Path, &Path)],
    tune: impl FnOnce(Config) -> Config,
) -> TestServer {
    let pairs: Vec<(PathBuf, PathBuf)> = pairs
        .iter()
        .map(|(c, k)| (c.to_path_buf(), k.to_path_buf()))
        .collect();
    TestServer::builder(model)
        .config(move |mut config| {
            config = config.tls_listen(any_port());
            for (cert, key) in pairs {
                config = config.tls_certificate(cert, key);
            }
            tune(config)
        })
        .start()
}

/// A GET for `target` with `Host: localhost`, over TLS.
fn get_over(stream: &mut TlsStream, target: &str) -> Resp {
    send(stream, &get_req(target));
    read_response(stream, false)
}

/// The `tls` section of `/api/status`.
fn tls_status(server: &TestServer) -> serde_json::Value {
    server.status()["tls"].clone()
}

/// Polls `/api/status` until `tls.failures.KIND` is `want`, or panics after a few seconds
/// (the thread model counts on the connection's own thread, after the client saw the end).
fn wait_for_failures(server: &TestServer, kind: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tls = tls_status(server);
        let got = tls["failures"][kind]
            .as_u64()
            .unwrap_or_else(|| panic!("no tls.failures.{kind} in /api/status: {tls}"));
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tls.failures.{kind} is {got}, expected {want}: {tls}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Reads until the server closes, ignoring what it sends first (an alert, say); panics if it
/// keeps the connection open.
fn wait_closed(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) if is_timeout(&e) => panic!("{what}: the server kept the connection open"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// A fresh HTTPS client that trusts the CA serves `GET /style.css`.
fn assert_serves_https(server: &TestServer, pki: &Pki, what: &str) {
    let mut tls = try_connect_tls(server.tls_addr(), &pki.client(), "localhost")
        .unwrap_or_else(|e| panic!("{what}: a normal HTTPS client failed its handshake: {e}"));
    let resp = get_over(&mut tls, "/style.css");
    assert_eq!(resp.status, 200, "{what}");
    assert_eq!(resp.body, STYLE_CSS.as_bytes(), "{what}");
}

// ---------------------------------------------------------------------------------------------
// Framing and keep-alive over TLS.

both_models!(keep_alive_serves_two_requests_over_tls, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    let first = get_over(&mut tls, "/style.css");
    assert_eq!(first.status, 200);
    assert_eq!(first.body, STYLE_CSS.as_bytes());
    assert!(!first.says_close(), "the first response closes: {first:?}");
    assert_standard_headers(&first, false);
    let second = get_over(&mut tls, "/data.json");
    assert_eq!(second.status, 200);
    assert_eq!(second.body, DATA_JSON.as_bytes());
    assert_eq!(
        tls_status(&server)["handshakes"],
        1,
        "two requests took one handshake"
    );
});

both_models!(pipelined_requests_answer_in_order_over_tls, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    let mut batch = get_req("/style.css");
    batch.extend(get_req("/app.js"));
    batch.extend(request("HEAD", "/data.json", &[]));
    batch.extend(get_req("/data.json"));
    send(&mut tls, &batch);
    let answers = [
        (read_response(&mut tls, false), STYLE_CSS.as_bytes()),
        (read_response(&mut tls, false), APP_JS.as_bytes()),
        (read_response(&mut tls, true), &b""[..]),
        (read_response(&mut tls, false), DATA_JSON.as_bytes()),
    ];
    for (i, (resp, body)) in answers.iter().enumerate() {
        assert_eq!(resp.status, 200, "response {i}");
        assert_eq!(resp.body, *body, "response {i} out of order or wrong");
    }
    assert_still_serves(&mut tls);
});

both_models!(connection_close_ends_with_close_notify, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    send(
        &mut tls,
        &request("GET", "/style.css", &[("Connection", "close")]),
    );
    let resp = read_response(&mut tls, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
    assert!(resp.says_close(), "no Connection: close in {resp:?}");
    // rustls reads end of stream only after the server's close_notify; a bare TCP close
    // would be an `UnexpectedEof` error here.
    assert_closed(&mut tls);
});

both_models!(
    a_close_notify_after_a_request_ends_the_connection,
    |model| {
        // A client may close its side with close_notify once its request is out and still read:
        // the answer comes, then the server's close_notify, at once, not after the keep-alive
        // timeout (a minute here).
        let pki = Pki::new();
        let server = https_server_with(model, &[(&pki.cert, &pki.key)], |c| {
            c.keep_alive_timeout(Duration::from_secs(60))
        });
        let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
        send(&mut tls, &get_req("/style.css"));
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        let resp = read_response(&mut tls, false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, STYLE_CSS.as_bytes());
        assert_closed(&mut tls);
    }
);

/// An upstream server on `127.0.0.1:0` (its URL returned) that reads each request's head,
/// then lets `answer` write to the connection, given that head, and closes it.
fn backend(answer: impl Fn(&[u8], &mut TcpStream) + Send + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            answer(&head, &mut stream);
        }
    });
    url
}

both_models!(
    a_proxied_answer_cut_short_ends_without_close_notify,
    |model| {
        // A backend that promises 100 bytes, sends 15 and closes.
        let url = backend(|_, stream| {
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it");
        });
        let pki = Pki::new();
        let rule = margay::ProxyRule::new("/up/", &[&url]).unwrap();
        let server = https_server_with(model, &[(&pki.cert, &pki.key)], move |c| c.proxy(rule));
        let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
        send(&mut tls, &request("GET", "/up/x", &[]));
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            match tls.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e),
            }
        };
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("only part of it"), "{text}");
        // With close_notify the client would take the cut-off body for the whole one.
        let end = end.expect("the cut-off answer ended with close_notify, as a whole one does");
        assert_eq!(end.kind(), std::io::ErrorKind::UnexpectedEof, "{end}");
    }
);

both_models!(
    the_upstream_hears_that_the_client_came_over_https,
    |model| {
        // The forwarding fields say what the client's own connection was, whatever it sent.
        let url = backend(|head, stream| {
            let head = String::from_utf8_lossy(head).into_owned();
            let told: Vec<&str> = head
                .split("\r\n")
                .filter(|line| {
                    line.starts_with("X-Forwarded-Proto:") || line.starts_with("Forwarded:")
                })
                .collect();
            let body = told.join("\n");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        });
        let pki = Pki::new();
        let rule = margay::ProxyRule::new("/up/", &[&url]).unwrap();
        let server = https_server_with(model, &[(&pki.cert, &pki.key)], move |c| c.proxy(rule));
        let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
        send(
            &mut tls,
            &request("GET", "/up/x", &[("X-Forwarded-Proto", "http")]),
        );
        let resp = read_response(&mut tls, false);
        assert_eq!(
            resp.text(),
            "X-Forwarded-Proto: https\nForwarded: for=127.0.0.1;proto=https;host=localhost"
        );
    }
);

both_models!(a_large_proxied_answer_reaches_a_tls_client_whole, |model| {
    // Plain-TCP clients get such a body spliced from socket to socket; a TLS client's must be
    // encrypted on the way, so it is copied, and arrives whole.
    const LEN: usize = 1 << 20;
    let url = backend(|_, stream| {
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n");
        let _ = stream.write_all(reply.as_bytes());
        thread::sleep(Duration::from_millis(20));
        let _ = stream.write_all(&big_bin()[..LEN]);
    });
    let pki = Pki::new();
    let rule = margay::ProxyRule::new("/up/", &[&url]).unwrap();
    let server = https_server_with(model, &[(&pki.cert, &pki.key)], move |c| c.proxy(rule));
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    send(&mut tls, &request("GET", "/up/big", &[]));
    let resp = read_response(&mut tls, false);
    assert_eq!(resp.status, 200);
    assert!(resp.body == big_bin()[..LEN], "the body differs");
    assert_still_serves(&mut tls);
});

both_models!(chunked_request_body_reaches_the_handler_over_tls, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    // The body's chunks in separate writes, so they arrive in separate records.
    send(
        &mut tls,
        b"POST /api/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    send(&mut tls, b"5\r\nhello\r\n");
    send(&mut tls, b"5\r\n over\r\n4\r\n TLS\r\n0\r\n\r\n");
    let resp = read_response(&mut tls, false);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo: serde_json::Value = serde_json::from_slice(&resp.body).expect("echo is JSON");
    assert_eq!(echo["body"], "hello over TLS");
    assert_eq!(echo["method"], "POST");
    assert_still_serves(&mut tls);
});

both_models!(head_sends_the_length_and_no_body_over_tls, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    send(&mut tls, &request("HEAD", "/style.css", &[]));
    let resp = read_response(&mut tls, true);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_length(), Some(STYLE_CSS.len() as u64));
    // A body sent after the HEAD response would be read as the next response's head.
    assert_still_serves(&mut tls);
});

both_models!(range_request_over_tls, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    send(
        &mut tls,
        &request("GET", "/ranges.txt", &[("Range", "bytes=10-15")]),
    );
    let resp = read_response(&mut tls, false);
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, b"abcdef");
    assert_eq!(
        resp.header("content-range"),
        Some(format!("bytes 10-15/{}", RANGES_TXT.len()).as_str())
    );
    assert_still_serves(&mut tls);
});

both_models!(large_file_arrives_byte_for_byte_over_tls, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
    let resp = get_over(&mut tls, "/big.bin");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_length(), Some(BIG_LEN as u64));
    assert!(
        resp.body == big_bin(),
        "big.bin differs over TLS (first difference at byte {:?})",
        resp.body.iter().zip(big_bin()).position(|(a, b)| a != b)
    );
    assert_still_serves(&mut tls);
});

// ---------------------------------------------------------------------------------------------
// Versions and ALPN.

both_models!(tls13_and_tls12_each_negotiate_http11, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    for (options, version) in [
        (ClientOptions::tls13(), ProtocolVersion::TLSv1_3),
        (ClientOptions::tls12(), ProtocolVersion::TLSv1_2),
    ] {
        let config = client_config(pki.ca.roots(), &options);
        let mut tls = connect_tls(server.tls_addr(), &config, "localhost");
        assert_eq!(tls.conn.protocol_version(), Some(version));
        assert_eq!(
            tls.conn.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "{version:?}"
        );
        let suite = tls.conn.negotiated_cipher_suite().expect("a cipher suite");
        assert_eq!(suite.version().version, version);
        assert_eq!(presented(&tls), pki.leaf.der);
        let resp = get_over(&mut tls, "/style.css");
        assert_eq!(resp.status, 200, "{version:?}");
        assert_eq!(resp.body, STYLE_CSS.as_bytes(), "{version:?}");
    }
});

both_models!(a_client_without_alpn_is_served, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let options = ClientOptions {
        alpn: Vec::new(),
        ..ClientOptions::default()
    };
    let mut tls = connect_tls(
        server.tls_addr(),
        &client_config(pki.ca.roots(), &options),
        "localhost",
    );
    assert_eq!(tls.conn.alpn_protocol(), None);
    assert_eq!(get_over(&mut tls, "/style.css").status, 200);
});

both_models!(h2_only_client_gets_no_application_protocol, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let options = ClientOptions {
        alpn: vec![b"h2".to_vec()],
        ..ClientOptions::default()
    };
    let config = client_config(pki.ca.roots(), &options);
    let error = match try_connect_tls(server.tls_addr(), &config, "localhost") {
        Ok(_) => panic!("an h2-only client completed its handshake"),
        Err(e) => e,
    };
    assert_eq!(
        tls_error(&error),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::NoApplicationProtocol
        )),
        "{error}"
    );
    wait_for_failures(&server, "no_common_protocol", 1);
    assert_serves_https(&server, &pki, "after an h2-only client");
});

// ---------------------------------------------------------------------------------------------
// SNI and key formats.

/// The certificate presented to a client that asks for `name` (`None`: sends no SNI).
fn certificate_for(
    server: &TestServer,
    name: Option<&str>,
) -> rustls::pki_types::CertificateDer<'static> {
    let options = ClientOptions {
        sni: name.is_some(),
        ..ClientOptions::default()
    };
    let tls = connect_tls(
        server.tls_addr(),
        &accepting_any(&options),
        name.unwrap_or("localhost"),
    );
    presented(&tls)
}

both_models!(sni_picks_the_certificate_by_name, |model| {
    let ca = Ca::new("margay test CA");
    let dir = TempDir::new().unwrap();
    let local = ca.leaf(&["localhost", "127.0.0.1"]);
    let other = ca.leaf(&["other.test", "*.wild.test"]);
    let (local_cert, local_key) = local.write(dir.path(), "local");
    let (other_cert, other_key) = other.write(dir.path(), "other");

    let server = https_server_with(
        model,
        &[(&local_cert, &local_key), (&other_cert, &other_key)],
        |c| c,
    );
    assert!(
        certificate_for(&server, Some("other.test")) == other.der,
        "other.test"
    );
    assert!(
        certificate_for(&server, Some("a.wild.test")) == other.der,
        "a wildcard name"
    );
    assert!(
        certificate_for(&server, Some("localhost")) == local.der,
        "localhost"
    );
    assert!(
        certificate_for(&server, Some("unknown.test")) == local.der,
        "an unknown name gets the first pair"
    );
    assert!(
        certificate_for(&server, None) == local.der,
        "no SNI gets the first pair"
    );
    // The chosen chain verifies for the name against the CA.
    let mut tls = connect_tls(server.tls_addr(), &trusting(&ca), "other.test");
    assert_eq!(get_over(&mut tls, "/style.css").status, 200);
    drop(server);

    // The other order: a name still finds its pair, and the default is now `other`.
    let server = https_server_with(
        model,
        &[(&other_cert, &other_key), (&local_cert, &local_key)],
        |c| c,
    );
    assert!(
        certificate_for(&server, Some("localhost")) == local.der,
        "localhost, second pair"
    );
    assert!(
        certificate_for(&server, None) == other.der,
        "no SNI gets the first pair, whichever it is"
    );
});

both_models!(private_keys_in_pkcs8_sec1_and_pkcs1_are_read, |model| {
    let ca = Ca::new("margay test CA");
    let dir = TempDir::new().unwrap();
    for (kind, format) in [
        (KeyKind::EcdsaP256, KeyFormat::Pkcs8),
        (KeyKind::EcdsaP256, KeyFormat::Sec1),
        (KeyKind::Rsa, KeyFormat::Pkcs8),
        (KeyKind::Rsa, KeyFormat::Pkcs1),
    ] {
        let leaf = ca.leaf_of(&["localhost", "127.0.0.1"], kind);
        let name = format!("{kind:?}-{format:?}");
        let (cert, key) = leaf.write_as(dir.path(), &name, format);
        let pem = std::fs::read_to_string(&key).unwrap();
        let label = match format {
            KeyFormat::Pkcs8 => "-----BEGIN PRIVATE KEY-----",
            KeyFormat::Sec1 => "-----BEGIN EC PRIVATE KEY-----",
            KeyFormat::Pkcs1 => "-----BEGIN RSA PRIVATE KEY-----",
        };
        assert!(pem.starts_with(label), "{name}: {pem}");
        let server = https_server(model, &cert, &key);
        let mut tls = try_connect_tls(server.tls_addr(), &trusting(&ca), "localhost")
            .unwrap_or_else(|e| panic!("{name}: handshake failed: {e}"));
        assert!(presented(&tls) == leaf.der, "{name}: another certificate");
        assert_eq!(get_over(&mut tls, "/style.css").status, 200, "{name}");
    }
});

// ---------------------------------------------------------------------------------------------
// Resumption.

both_models!(a_second_connection_resumes_the_session, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    for (options, version) in [
        (ClientOptions::tls13(), "TLS 1.3"),
        (ClientOptions::tls12(), "TLS 1.2"),
    ] {
        // One configuration: its session cache carries the ticket to the second connection.
        let config = client_config(pki.ca.roots(), &options);
        let mut first = connect_tls(server.tls_addr(), &config, "localhost");
        assert_eq!(first.conn.handshake_kind(), Some(HandshakeKind::Full));
        // TLS 1.3 tickets come after the handshake: reading a response takes them in.
        assert_eq!(get_over(&mut first, "/style.css").status, 200);
        drop(first);
        let mut second = connect_tls(server.tls_addr(), &config, "localhost");
        assert_eq!(
            second.conn.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version}: the second handshake was not resumed"
        );
        assert_eq!(get_over(&mut second, "/style.css").status, 200, "{version}");
    }
    let tls = tls_status(&server);
    assert_eq!(tls["handshakes"], 4, "{tls}");
    assert_eq!(tls["resumed"], 2, "{tls}");
});

// ---------------------------------------------------------------------------------------------
// Certificates read again.

/// The certificate a new client (with no session to resume) is shown.
fn fresh_certificate(server: &TestServer, ca: &Ca) -> rustls::pki_types::CertificateDer<'static> {
    presented(&connect_tls(server.tls_addr(), &trusting(ca), "localhost"))
}

/// Polls new handshakes until they present `want`, or panics after `within`.
fn wait_for_certificate(server: &TestServer, ca: &Ca, want: &Leaf, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while fresh_certificate(server, ca) != want.der {
        assert!(
            Instant::now() < deadline,
            "{what}: new handshakes still present the old certificate after {within:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls new handshakes with `addr` until they present `want`, or panics with `why()` after
/// `within`.
fn wait_until_presented(
    addr: SocketAddr,
    client: &std::sync::Arc<rustls::ClientConfig>,
    want: &Leaf,
    within: Duration,
    why: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while presented(&connect_tls(addr, client, "localhost")) != want.der {
        assert!(Instant::now() < deadline, "{}", why());
        thread::sleep(Duration::from_millis(100));
    }
}

both_models!(
    changed_certificate_files_are_used_by_new_handshakes,
    |model| {
        let pki = Pki::new();
        let server = https_server(model, &pki.cert, &pki.key);
        let mut open = connect_tls(server.tls_addr(), &pki.client(), "localhost");
        assert_eq!(get_over(&mut open, "/style.css").status, 200);
        assert!(presented(&open) == pki.leaf.der);

        // A renewal: a new certificate with a new key, written over the old files.
        let renewed = pki.ca.leaf(&["localhost", "127.0.0.1"]);
        renewed.write(pki.dir.path(), "localhost");
        wait_for_certificate(
            &server,
            &pki.ca,
            &renewed,
            Duration::from_secs(5),
            "renewal",
        );
        // The connection made before goes on with its own session.
        let resp = get_over(&mut open, "/data.json");
        assert_eq!(resp.status, 200, "an open connection after the reload");
        assert_eq!(resp.body, DATA_JSON.as_bytes());

        // A broken renewal: a certificate with someone else's key. It is refused, the pair in use
        // stays. (The good renewal above took effect within this time.)
        let cert_only = pki.ca.leaf(&["localhost", "127.0.0.1"]);
        let key_only = pki.ca.leaf(&["localhost", "127.0.0.1"]);
        std::fs::write(&pki.cert, cert_only.cert_pem()).unwrap();
        std::fs::write(&pki.key, key_only.key_pem(KeyFormat::Pkcs8)).unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            assert!(
                fresh_certificate(&server, &pki.ca) == renewed.der,
                "a mismatched pair replaced the good one"
            );
            thread::sleep(Duration::from_millis(200));
        }
        assert_still_serves(&mut open);
    }
);

/// Certificate files reached through a directory symlink the watcher does not look at:
/// `conf/site.crt -> links/current/site.crt`, `links/current -> one/` (then `two/`).
struct Switchable {
    base: TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Switchable {
    fn new(first: &Leaf, second: &Leaf) -> Switchable {
        use std::os::unix::fs::symlink;
        let base = TempDir::new().unwrap();
        let path = |p: &str| base.path().join(p);
        for (dir, leaf) in [("one", first), ("two", second)] {
            std::fs::create_dir(path(dir)).unwrap();
            leaf.write(&path(dir), "site");
        }
        std::fs::create_dir(path("links")).unwrap();
        std::fs::create_dir(path("conf")).unwrap();
        symlink(path("one"), path("links/current")).unwrap();
        symlink(path("links/current/site.crt"), path("conf/site.crt")).unwrap();
        symlink(path("links/current/site.key"), path("conf/site.key")).unwrap();
        Switchable {
            cert: path("conf/site.crt"),
            key: path("conf/site.key"),
            base,
        }
    }

    /// Points `links/current` at `two/` in one rename, out of the watched directories.
    fn switch(&self) {
        let path = |p: &str| self.base.path().join(p);
        std::os::unix::fs::symlink(path("two"), path("links/next")).unwrap();
        std::fs::rename(path("links/next"), path("links/current")).unwrap();
    }
}

both_models!(reload_certificates_reads_the_files_again, |model| {
    let ca = Ca::new("margay test CA");
    let (first, second) = (ca.leaf(&["localhost"]), ca.leaf(&["localhost"]));
    let files = Switchable::new(&first, &second);
    let server = https_server(model, &files.cert, &files.key);
    assert!(fresh_certificate(&server, &ca) == first.der);
    files.switch();
    thread::sleep(Duration::from_millis(800));
    assert!(
        fresh_certificate(&server, &ca) == first.der,
        "the test needs a change the file watcher cannot see"
    );
    server.running().reload_certificates();
    wait_for_certificate(
        &server,
        &ca,
        &second,
        Duration::from_secs(3),
        "reload_certificates",
    );
});

both_models!(a_swapped_secret_mount_is_a_renewal, |model| {
    // How a mounted secret is renewed: `tls.crt -> ..data/tls.crt`, and `..data`, a symlink
    // to a directory of this version's files, replaced in one rename by one to the next
    // version's. The rename happens beside the files the server was given.
    use std::os::unix::fs::symlink;
    let ca = Ca::new("margay test CA");
    let (first, second) = (ca.leaf(&["localhost"]), ca.leaf(&["localhost"]));
    let mount = TempDir::new().unwrap();
    let path = |p: &str| mount.path().join(p);
    for (version, leaf) in [("..v1", &first), ("..v2", &second)] {
        std::fs::create_dir(path(version)).unwrap();
        leaf.write(&path(version), "tls");
    }
    symlink("..v1", path("..data")).unwrap();
    symlink("..data/tls.crt", path("tls.crt")).unwrap();
    symlink("..data/tls.key", path("tls.key")).unwrap();
    let server = https_server(model, &path("tls.crt"), &path("tls.key"));
    assert!(fresh_certificate(&server, &ca) == first.der);
    symlink("..v2", path("..data_tmp")).unwrap();
    std::fs::rename(path("..data_tmp"), path("..data")).unwrap();
    wait_for_certificate(
        &server,
        &ca,
        &second,
        Duration::from_secs(3),
        "..data swapped",
    );
});

#[test]
fn a_file_written_beside_the_certificates_is_no_renewal() {
    // The certificates' directory is watched. A log written there without pause must not
    // make the server read the certificates again and again, keep its watcher busy, or hide
    // a real renewal made meanwhile.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let pki = Pki::new();
    let process = https_process(Model::Reactor, &pki.cert, &pki.key);
    let tls_addr = process.url_addr("https://");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), pki.dir.path().join("app.log"));
        thread::spawn(move || {
            let mut file = std::fs::File::create(log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                file.write_all(b"a line of someone else's log\n").unwrap();
            }
        })
    };
    thread::sleep(Duration::from_millis(500));
    let spent = process.cpu_ticks_in_a_second();
    assert!(
        spent <= 10,
        "{spent} ticks of CPU in a second of someone else's writes"
    );
    assert!(
        !process.log().contains("certificates read again"),
        "{}",
        process.log_tail(5)
    );
    let renewed = pki.ca.leaf(&["localhost", "127.0.0.1"]);
    renewed.write(pki.dir.path(), "localhost");
    let client = pki.client();
    wait_until_presented(tls_addr, &client, &renewed, Duration::from_secs(5), || {
        format!("the renewal was not seen; log:\n{}", process.log_tail(5))
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(process.log().matches("certificates read again").count(), 1);
}

#[test]
fn the_binary_reads_certificates_again_on_sighup() {
    let ca = Ca::new("margay test CA");
    let (first, second) = (ca.leaf(&["localhost"]), ca.leaf(&["localhost"]));
    let files = Switchable::new(&first, &second);
    let mut process = https_process(Model::Reactor, &files.cert, &files.key);
    let tls_addr = process.url_addr("https://");
    let client = trusting(&ca);
    assert!(presented(&connect_tls(tls_addr, &client, "localhost")) == first.der);
    files.switch();
    process.signal(libc::SIGHUP);
    wait_until_presented(tls_addr, &client, &second, Duration::from_secs(3), || {
        format!(
            "SIGHUP did not bring in the new certificate; log:\n{}",
            process.log_tail(10)
        )
    });
    process.assert_serves("after SIGHUP");
}

// ---------------------------------------------------------------------------------------------
// A pair that cannot be used stops the start.

/// Every way a pair can be unusable at start, as (what, certificate file, key file, the file
/// the message must name).
fn broken_pairs(pki: &Pki) -> Vec<(&'static str, PathBuf, PathBuf, PathBuf)> {
    let dir = pki.dir.path();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN NONSENSE-----\nnot base64 at all\n").unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let stranger = pki.ca.leaf(&["localhost"]);
    let (_, stranger_key) = stranger.write(dir, "stranger");
    let missing = dir.join("missing.pem");
    vec![
        (
            "a missing certificate",
            missing.clone(),
            pki.key.clone(),
            missing.clone(),
        ),
        ("a missing key", pki.cert.clone(), missing.clone(), missing),
        (
            "garbage for a certificate",
            garbage.clone(),
            pki.key.clone(),
            garbage.clone(),
        ),
        (
            "garbage for a key",
            pki.cert.clone(),
            garbage.clone(),
            garbage,
        ),
        (
            "an empty certificate",
            empty.clone(),
            pki.key.clone(),
            empty.clone(),
        ),
        (
            "a key for another certificate",
            pki.cert.clone(),
            stranger_key.clone(),
            stranger_key,
        ),
    ]
}

both_models!(
    server_new_refuses_an_unusable_pair_naming_the_file,
    |model| {
        let pki = Pki::new();
        for (what, cert, key, named) in broken_pairs(&pki) {
            let config = Config::default()
                .listen(any_port())
                .tls_listen(any_port())
                .tls_certificate(&cert, &key)
                .model(model);
            let message = match Server::new(config) {
                Ok(_) => panic!("{what}: the server started"),
                Err(e) => e.to_string(),
            };
            assert!(
                message.contains(named.to_str().unwrap()),
                "{what}: the message does not name {}: {message}",
                named.display()
            );
        }
    }
);

/// Runs the binary to its exit (it must not start serving); returns the exit code and what
/// it wrote to standard error.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let root = TempDir::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_margay"))
        .args(["--listen", "127.0.0.1:0", "--access-log", "off", "--root"])
        .arg(root.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn margay");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("margay {args:?} kept running");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

#[test]
fn the_binary_exits_2_naming_the_file_of_an_unusable_pair() {
    let pki = Pki::new();
    for (what, cert, key, named) in broken_pairs(&pki) {
        let (code, stderr) = run_binary(&https_args(&cert, &key));
        assert_eq!(code, Some(2), "{what}: exit code; stderr: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
        assert!(
            stderr.contains(named.to_str().unwrap()),
            "{what}: the message does not name {}: {stderr}",
            named.display()
        );
    }
}

#[test]
fn the_binary_exits_2_on_tls_options_without_pairs() {
    let pki = Pki::new();
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    for (what, args) in [
        (
            "--tls-listen without a certificate",
            vec!["--tls-listen", "127.0.0.1:0"],
        ),
        (
            "a certificate without a key",
            vec!["--tls-listen", "127.0.0.1:0", "--tls-cert", cert],
        ),
        (
            "a key without a certificate",
            vec!["--tls-listen", "127.0.0.1:0", "--tls-key", key],
        ),
        (
            "two certificates, one key",
            vec![
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ],
        ),
    ] {
        let (code, stderr) = run_binary(&args);
        assert_eq!(code, Some(2), "{what}: exit code; stderr: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
        assert!(stderr.contains("--tls-"), "{what}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input below HTTP.

both_models!(plain_http_to_the_tls_port_gets_a_clear_text_400, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let mut raw = connect(server.tls_addr());
    send(&mut raw, &get_req("/style.css"));
    let resp = read_response(&mut raw, false);
    assert_eq!(resp.status, 400);
    assert!(resp.says_close(), "{resp:?}");
    assert!(resp.text().contains("HTTPS"), "{}", resp.text());
    assert_closed(&mut raw);
    wait_for_failures(&server, "plain_http", 1);
    assert_serves_https(&server, &pki, "after plain HTTP on the TLS port");
});

both_models!(broken_handshakes_are_closed_and_counted, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let hello = client_hello();
    // What each client sends, whether it then closes its side, and the failure it counts as.
    let cases: [(&str, Vec<u8>, bool, &str); 4] = [
        (
            "half a ClientHello, then the close",
            hello[..hello.len() / 2].to_vec(),
            true,
            "closed_in_handshake",
        ),
        (
            "a handshake record of garbage",
            [&[0x16, 0x03, 0x01, 0x00, 0x10][..], &[0xff; 16]].concat(),
            false,
            "protocol_error",
        ),
        (
            "a ClientHello with nothing in it",
            vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00],
            false,
            "protocol_error",
        ),
        (
            "a record of an unknown type",
            vec![0x19, 0x03, 0x03, 0x00, 0x02, 0x01, 0x02],
            false,
            "protocol_error",
        ),
    ];
    let mut counted = std::collections::HashMap::new();
    for (what, bytes, close, kind) in cases {
        let mut raw = connect(server.tls_addr());
        send(&mut raw, &bytes);
        if close {
            raw.shutdown(std::net::Shutdown::Write).unwrap();
        }
        wait_closed(&mut raw, what);
        let count = counted.entry(kind).or_insert(0);
        *count += 1;
        wait_for_failures(&server, kind, *count);
        assert_serves_https(&server, &pki, what);
    }
});

both_models!(a_client_that_rejects_the_certificate_is_counted, |model| {
    let pki = Pki::new();
    let server = https_server(model, &pki.cert, &pki.key);
    let stranger = Ca::new("another CA");
    for (n, options) in [ClientOptions::tls13(), ClientOptions::tls12()]
        .iter()
        .enumerate()
    {
        let config = client_config(stranger.roots(), options);
        let error = match try_connect_tls(server.tls_addr(), &config, "localhost") {
            Ok(_) => panic!("a client that trusts another CA completed its handshake"),
            Err(e) => e,
        };
        assert!(
            matches!(
                tls_error(&error),
                Some(rustls::Error::InvalidCertificate(_))
            ),
            "{error}"
        );
        // The client sent an alert as it gave up; the server counts it.
        wait_for_failures(&server, "alert_received", n as u64 + 1);
    }
    assert_serves_https(&server, &pki, "after clients that sent alerts");
    assert_eq!(tls_status(&server)["failures"]["protocol_error"], 0);
});

both_models!(
    a_stalled_handshake_is_closed_after_the_header_timeout,
    |model| {
        let pki = Pki::new();
        let server = https_server_with(model, &[(&pki.cert, &pki.key)], |c| {
            c.max_connections(1)
                .header_timeout(Duration::from_secs(1))
                .defer_accept(Duration::ZERO)
        });
        let hello = client_hello();
        let mut stalled = connect(server.tls_addr());
        send(&mut stalled, &hello[..hello.len() / 2]);
        let started = Instant::now();
        thread::sleep(Duration::from_millis(100));
        // The only slot is taken: this client is served once the stalled one is closed.
        assert_serves_https(&server, &pki, "a client waiting behind a stalled handshake");
        let waited = started.elapsed();
        wait_closed(&mut stalled, "the stalled handshake");
        assert!(
            waited >= Duration::from_millis(700),
            "served after {waited:?}: the slot was not held by the stalled handshake"
        );
        wait_for_failures(&server, "incomplete", 1);
    }
);

// ---------------------------------------------------------------------------------------------
// Plain HTTP redirected to HTTPS.

both_models!(
    redirect_https_sends_plain_requests_to_the_tls_port,
    |model| {
        let pki = Pki::new();
        let server = TestServer::builder(model)
            .config(|c| {
                c.tls_listen(any_port())
                    .tls_certificate(&pki.cert, &pki.key)
                    .redirect_https(true)
            })
            .files(|root| {
                std::fs::create_dir_all(root.join(".well-known/acme-challenge")).unwrap();
                std::fs::write(root.join(".well-known/acme-challenge/token"), "token-body")
                    .unwrap();
            })
            .start();
        let (port, tls_port) = (server.addr().port(), server.tls_addr().port());
        let plain = |target: &str, host: &str| {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            server.exchange(raw.as_bytes(), false)
        };

        let resp = plain("/a/b?c=d", &format!("localhost:{port}"));
        assert_eq!(resp.status, 308, "{resp:?}");
        assert_eq!(
            resp.header("location"),
            Some(format!("https://localhost:{tls_port}/a/b?c=d").as_str())
        );
        let resp = plain("/x", &format!("[::1]:{port}"));
        assert_eq!(resp.status, 308, "{resp:?}");
        assert_eq!(
            resp.header("location"),
            Some(format!("https://[::1]:{tls_port}/x").as_str())
        );
        let resp = plain("/", "example.test");
        assert_eq!(
            resp.header("location"),
            Some(format!("https://example.test:{tls_port}/").as_str())
        );

        // ACME HTTP-01 challenges stay on plain HTTP: certbot's webroot mode fetches them there.
        let resp = plain(
            "/.well-known/acme-challenge/token",
            &format!("localhost:{port}"),
        );
        assert_ne!(
            resp.status, 308,
            "an ACME challenge was redirected: {resp:?}"
        );
        assert!(
            resp.status == 200 && resp.body == b"token-body" || resp.status == 404,
            "{resp:?}"
        );

        // HTTPS itself is not redirected.
        let mut tls = connect_tls(server.tls_addr(), &pki.client(), "localhost");
        assert_eq!(get_over(&mut tls, "/style.css").status, 200);
        assert_eq!(get_over(&mut tls, "/a/b?c=d").status, 404);
    }
);

#[test]
fn the_binary_serves_https() {
    let pki = Pki::new();
    let mut process = https_process(Model::Threads, &pki.cert, &pki.key);
    let tls_addr = process.url_addr("https://");
    let mut tls = connect_tls(tls_addr, &pki.client(), "localhost");
    let resp = get_over(&mut tls, "/style.css");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, STYLE_CSS.as_bytes());
    process.assert_serves("plain HTTP beside HTTPS");
}
