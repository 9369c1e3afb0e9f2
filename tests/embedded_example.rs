//! The embedded example: `examples/embedded.rs`, started through cargo, is a to-do JSON API
//! stored in SQLite under `--data DIR`. Its routes answer as documented (400 with a JSON error
//! for bad JSON, 404 for an unknown id, 413 past the body limit, 405 with `Allow`), what it
//! stores survives a restart, and a SIGTERM while clients write loses no item that was
//! acknowledged with `201` and leaves no item half-written, on both models.

mod common;

use common::{
    IO_TIMEOUT, Resp, connect, listening_urls, read_response, send, signal_child,
    try_read_response, wait_child, wait_for_log_line,
};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long cargo may take to build and start the example.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// The example's body limit.
const MAX_BODY: usize = 16 * 1024;

/// `cargo run --example embedded` on a free port over a data directory; killed on drop.
struct Example {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    // Holds the log file; the data directory is the test's.
    _log_dir: TempDir,
}

impl Example {
    /// Starts the example with `--data data` and extra options, and waits until it accepts.
    fn start(data: &Path, extra: &[&str]) -> Example {
        let log_dir = TempDir::new().unwrap();
        let log = log_dir.path().join("example.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--example", "embedded", "--"])
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start cargo run --example embedded");
        let line = wait_for_log_line(&mut child, &log, "margay listening on ", START_TIMEOUT);
        let addr = listening_urls(&line)
            .first()
            .map(|&(_, addr)| addr)
            .unwrap_or_else(|| panic!("the example names no address: {line}"));
        Example {
            child,
            addr,
            log,
            _log_dir: log_dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `method target` with a JSON body (if any) on a fresh connection.
    fn call(&self, method: &str, target: &str, body: Option<&str>) -> Resp {
        let mut stream = connect(self.addr);
        send(&mut stream, &json_request(method, target, body));
        read_response(&mut stream, false)
    }

    /// SIGTERM, then the exit status (or a panic after `within`).
    fn terminate(&mut self, within: Duration) -> ExitStatus {
        // `cargo run` replaces itself with the example on Unix, so this is the server.
        signal_child(&self.child, libc::SIGTERM);
        let log = self.log.clone();
        wait_child(&mut self.child, within, || {
            format!(
                "the example still ran {within:?} after SIGTERM; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 request with a JSON body when one is given.
fn json_request(method: &str, target: &str, body: Option<&str>) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(body) = body {
        out.push_str("Content-Type: application/json\r\n");
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    out.push_str(body.unwrap_or(""));
    out.into_bytes()
}

/// The body as JSON, after checking it is labelled so.
fn json_of(resp: &Resp) -> Value {
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{} {}",
        resp.status,
        resp.text()
    );
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("{e}: {}", resp.text()))
}

/// Asserts `resp` is `status` with a JSON body `{"error": "<something>"}`.
fn assert_json_error(resp: &Resp, status: u16, what: &str) {
    assert_eq!(resp.status, status, "{what}: {}", resp.text());
    let error = json_of(resp);
    let message = error["error"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: no error message in {error}");
}

#[test]
fn the_routes_create_list_show_replace_and_delete() {
    let dir = TempDir::new().unwrap();
    let example = Example::start(&dir.path().join("data"), &[]);

    let created = example.call("POST", "/api/todos", Some(r#"{"title":"feed the cat"}"#));
    assert_eq!(created.status, 201, "{}", created.text());
    let first = json_of(&created);
    let id = first["id"].as_i64().expect("an id");
    assert_eq!(
        first,
        json!({"id": id, "title": "feed the cat", "done": false})
    );
    assert_eq!(
        created.header("location"),
        Some(format!("/api/todos/{id}").as_str())
    );
    let second = json_of(&example.call(
        "POST",
        "/api/todos",
        Some(r#"{"title":"  water the plants ","done":true}"#),
    ));
    let id2 = second["id"].as_i64().unwrap();
    assert_ne!(id, id2);
    assert_eq!(second["title"], "water the plants", "blanks trimmed");

    let all = example.call("GET", "/api/todos", None);
    assert_eq!(all.status, 200);
    assert_eq!(json_of(&all), json!([first, second]));

    let shown = example.call("GET", &format!("/api/todos/{id}"), None);
    assert_eq!((shown.status, json_of(&shown)), (200, first.clone()));

    let put = example.call(
        "PUT",
        &format!("/api/todos/{id}"),
        Some(r#"{"title":"feed the cat twice","done":true}"#),
    );
    let replaced = json!({"id": id, "title": "feed the cat twice", "done": true});
    assert_eq!((put.status, json_of(&put)), (200, replaced.clone()));
    let shown = example.call("GET", &format!("/api/todos/{id}"), None);
    assert_eq!(json_of(&shown), replaced);

    let deleted = example.call("DELETE", &format!("/api/todos/{id}"), None);
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
    let all = example.call("GET", "/api/todos", None);
    assert_eq!(json_of(&all), json!([second]));

    // A route exists for the path, not for the method.
    let patch = example.call("PATCH", &format!("/api/todos/{id2}"), Some("{}"));
    assert_eq!(patch.status, 405);
    assert_eq!(patch.header("allow"), Some("DELETE, GET, HEAD, PUT"));
    // The static site is still served beside the API.
    assert_eq!(example.call("GET", "/", None).status, 200);
}

#[test]
fn bad_json_gets_400_with_a_json_error_and_stores_nothing() {
    let dir = TempDir::new().unwrap();
    let example = Example::start(&dir.path().join("data"), &[]);
    let kept = json_of(&example.call("POST", "/api/todos", Some(r#"{"title":"kept"}"#)));
    let kept_path = format!("/api/todos/{}", kept["id"]);
    // (method, target, body, what is wrong)
    let rows: &[(&str, &str, &str, &str)] = &[
        ("POST", "/api/todos", "not json", "not JSON at all"),
        ("POST", "/api/todos", r#"{"title":"cut"#, "cut short"),
        ("POST", "/api/todos", "{}", "no title"),
        (
            "POST",
            "/api/todos",
            r#"{"title":5}"#,
            "a number for a title",
        ),
        (
            "POST",
            "/api/todos",
            r#""feed the cat""#,
            "a string, not an object",
        ),
        (
            "POST",
            "/api/todos",
            r#"{"title":"x","colour":1}"#,
            "unknown field",
        ),
        ("POST", "/api/todos", r#"{"title":"   "}"#, "a blank title"),
        ("POST", "/api/todos", "", "no body"),
        (
            "PUT",
            &kept_path,
            r#"{"title":"no flag"}"#,
            "PUT without done",
        ),
        (
            "PUT",
            &kept_path,
            r#"{"title":"x","done":"yes"}"#,
            "a string flag",
        ),
    ];
    for (method, target, body, what) in rows {
        let resp = example.call(method, target, Some(body));
        assert_json_error(&resp, 400, what);
    }
    let long = format!(r#"{{"title":"{}"}}"#, "x".repeat(501));
    assert_json_error(
        &example.call("POST", "/api/todos", Some(&long)),
        400,
        "501 characters",
    );
    assert_json_error(
        &example.call("GET", "/api/todos/seven", None),
        400,
        "an id that is not a number",
    );
    let all = json_of(&example.call("GET", "/api/todos", None));
    assert_eq!(all, json!([kept]), "a refused request stored something");
}

#[test]
fn an_unknown_id_gets_404() {
    let dir = TempDir::new().unwrap();
    let example = Example::start(&dir.path().join("data"), &[]);
    let body = r#"{"title":"x","done":false}"#;
    for (method, body) in [("GET", None), ("PUT", Some(body)), ("DELETE", None)] {
        let resp = example.call(method, "/api/todos/424242", body);
        assert_json_error(&resp, 404, method);
    }
    let created = json_of(&example.call("POST", "/api/todos", Some(r#"{"title":"gone"}"#)));
    let path = format!("/api/todos/{}", created["id"]);
    assert_eq!(example.call("DELETE", &path, None).status, 204);
    assert_json_error(&example.call("GET", &path, None), 404, "deleted");
    assert_json_error(&example.call("DELETE", &path, None), 404, "deleted twice");
    // The PUT above did not create the item it could not find.
    assert_eq!(json_of(&example.call("GET", "/api/todos", None)), json!([]));
}

#[test]
fn a_body_over_the_limit_gets_413_and_stores_nothing() {
    let dir = TempDir::new().unwrap();
    let example = Example::start(&dir.path().join("data"), &[]);
    let title = "x".repeat(MAX_BODY);
    let body = format!(r#"{{"title":"{title}"}}"#);
    let mut stream = connect(example.addr);
    // The server may answer and close before reading it all.
    let _ = std::io::Write::write_all(
        &mut stream,
        &json_request("POST", "/api/todos", Some(&body)),
    );
    let resp = try_read_response(&mut stream, false).expect("an answer to the large body");
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_eq!(json_of(&example.call("GET", "/api/todos", None)), json!([]));
    // Just under the limit the same route takes a body (and refuses the title's length).
    let small = format!(r#"{{"title":"{}"}}"#, "x".repeat(MAX_BODY - 20));
    assert_json_error(
        &example.call("POST", "/api/todos", Some(&small)),
        400,
        "long title",
    );
}

#[test]
fn the_database_is_created_under_data_and_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("nested").join("data");
    let mut example = Example::start(&data, &[]);
    assert!(
        data.join("todos.db").is_file(),
        "no database file in {}",
        data.display()
    );
    let created = json_of(&example.call("POST", "/api/todos", Some(r#"{"title":"persist"}"#)));
    assert_eq!(
        json_of(&example.call("GET", "/api/todos", None)),
        json!([created])
    );
    let status = example.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit {status}; log:\n{}", example.log());
    // A clean stop closes the database: the write-ahead log is folded into the file.
    assert!(
        !data.join("todos.db-wal").exists(),
        "todos.db-wal is left after a clean stop"
    );
    drop(example);

    let example = Example::start(&data, &[]);
    assert_eq!(
        json_of(&example.call("GET", "/api/todos", None)),
        json!([created])
    );
}

/// What one POST got.
enum Outcome {
    /// `201` with this id.
    Created(i64),
    /// No answer: refused, reset or closed (the server was stopping).
    NoAnswer,
}

/// Several clients POST without pause; SIGTERM arrives mid-way. Then the database file,
/// opened directly, must hold every item acknowledged with 201 under its id, whole, and
/// nothing else but at most one unacknowledged item per client, whole too.
fn sigterm_while_clients_write_loses_nothing(model: &str) {
    const CLIENTS: usize = 8;
    const BEFORE_SIGTERM: usize = 60;
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let mut example = Example::start(&data, &["--model", model]);
    let addr = example.addr;
    let created = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (created, stop) = (created.clone(), stop.clone());
            thread::spawn(move || {
                let mut sent = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    // Titles of many lengths, so a torn write would show as a cut title.
                    let title = format!("client {client} item {n}/{}", "z".repeat((n * 37) % 400));
                    let outcome = post_title(addr, &title);
                    let answered = matches!(outcome, Outcome::Created(_));
                    if answered {
                        created.fetch_add(1, Ordering::SeqCst);
                    }
                    sent.push((title, outcome));
                    if !answered {
                        break; // the server is going: no new connection would be taken
                    }
                }
                sent
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while created.load(Ordering::SeqCst) < BEFORE_SIGTERM {
        assert!(
            Instant::now() < deadline,
            "the clients stored too little; log:\n{}",
            example.log()
        );
        thread::sleep(Duration::from_millis(5));
    }
    let status = example.terminate(Duration::from_secs(20));
    stop.store(true, Ordering::SeqCst);
    let sent: Vec<(String, Outcome)> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread panicked"))
        .collect();
    assert!(
        status.success(),
        "exit {status} after SIGTERM; log:\n{}",
        example.log()
    );

    let stored = read_database(&data.join("todos.db"));
    let acknowledged: Vec<(i64, &str)> = sent
        .iter()
        .filter_map(|(title, outcome)| match outcome {
            Outcome::Created(id) => Some((*id, title.as_str())),
            Outcome::NoAnswer => None,
        })
        .collect();
    assert!(acknowledged.len() >= BEFORE_SIGTERM);
    for (id, title) in &acknowledged {
        match stored.get(id) {
            Some((stored_title, false)) if stored_title == title => {}
            other => {
                panic!("item {id} {title:?} was acknowledged with 201 but is stored as {other:?}")
            }
        }
    }
    let titles: HashMap<&str, &Outcome> = sent.iter().map(|(t, o)| (t.as_str(), o)).collect();
    let mut unacknowledged = 0;
    for (id, (title, done)) in &stored {
        match titles.get(title.as_str()) {
            Some(Outcome::Created(acked)) => assert_eq!(acked, id, "{title:?} stored twice"),
            Some(Outcome::NoAnswer) => unacknowledged += 1,
            None => panic!("item {id} holds {title:?} (done {done}), which no client sent whole"),
        }
    }
    assert!(
        unacknowledged <= CLIENTS,
        "{unacknowledged} items stored without an answer, more than the {CLIENTS} in flight"
    );
    let refused = sent.len() - acknowledged.len();
    eprintln!(
        "{model}: {} acknowledged and stored, {refused} without an answer ({unacknowledged} of them stored)",
        acknowledged.len()
    );
}

/// One POST on a fresh connection.
fn post_title(addr: SocketAddr, title: &str) -> Outcome {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
        return Outcome::NoAnswer;
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let body = json!({ "title": title }).to_string();
    if std::io::Write::write_all(
        &mut stream,
        &json_request("POST", "/api/todos", Some(&body)),
    )
    .is_err()
    {
        return Outcome::NoAnswer;
    }
    match try_read_response(&mut stream, false) {
        Ok(resp) if resp.status == 201 => {
            let item = json_of(&resp);
            assert_eq!(item["title"], title, "the 201 names another title");
            Outcome::Created(item["id"].as_i64().expect("an id"))
        }
        Ok(resp) => panic!("POST answered {} {}", resp.status, resp.text()),
        Err(_) => Outcome::NoAnswer,
    }
}

/// Every row of the database file, by id: (title, done). Checks the file's integrity first.
fn read_database(path: &Path) -> HashMap<i64, (String, bool)> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut select = db.prepare("SELECT id, title, done FROM todos").unwrap();
    select
        .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn sigterm_while_clients_write_loses_nothing_on_the_event_loop() {
    sigterm_while_clients_write_loses_nothing("reactor");
}

#[test]
fn sigterm_while_clients_write_loses_nothing_on_threads() {
    sigterm_while_clients_write_loses_nothing("threads");
}
