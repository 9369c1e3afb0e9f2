//! An application that embeds margay: a to-do list as a JSON API stored in SQLite, served
//! beside the static site in `htdocs/`.
//!
//! ```sh
//! cargo run --release --example embedded                     # http://127.0.0.1:8080
//! cargo run --release --example embedded -- --listen 127.0.0.1:9000 --data /tmp/todos
//! curl -d '{"title":"feed the cat"}' http://127.0.0.1:8080/api/todos
//! curl http://127.0.0.1:8080/api/todos
//! curl -X PUT -d '{"title":"feed the cat","done":true}' http://127.0.0.1:8080/api/todos/1
//! curl -X DELETE http://127.0.0.1:8080/api/todos/1
//! ```
//!
//! | Request                  | Answer                                                        |
//! | ------------------------ | ------------------------------------------------------------- |
//! | `GET /api/todos`         | `200` and every item                                          |
//! | `POST /api/todos`        | `201` and the new item, from `{"title": "...", "done"?: b}`   |
//! | `GET /api/todos/{id}`    | `200` and the item, or `404`                                  |
//! | `PUT /api/todos/{id}`    | `200` and the item, from `{"title": "...", "done": b}`; `404` |
//! | `DELETE /api/todos/{id}` | `204`, or `404`                                               |
//!
//! A body that is not such JSON gets `400` and `{"error": "..."}`, a body over 16 KiB `413`.
//!
//! Options: `--listen ADDR` (default `127.0.0.1:8080`, or `MARGAY_LISTEN`), `--data DIR`
//! where the database file lives (default `./data`, created on first run), `--root DIR` of
//! static files (default this package's `htdocs/`), `--model reactor|threads`.
//!
//! Every database call may wait on the disk, so the database routes are registered with
//! `Server::blocking`: they run on the server's worker pool while the event loop goes on
//! serving static files and other clients. Each write is one SQLite transaction, committed
//! before the `201` leaves; on SIGTERM the server stops accepting and lets handlers in flight
//! finish, so a client that got its answer has its item on disk.

use margay::{Config, Error, Method, Model, Request, Response, Server, StatusCode};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Largest request body: a to-do is a title and a flag.
const MAX_BODY: u64 = 16 * 1024;
/// Longest title, in characters.
const MAX_TITLE: usize = 500;
/// Connections that only read; GETs take whichever is free.
const READERS: usize = 4;

/// One item of the list.
#[derive(Serialize)]
struct Todo {
    id: i64,
    title: String,
    done: bool,
}

impl Todo {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Todo> {
        Ok(Todo {
            id: row.get(0)?,
            title: row.get(1)?,
            done: row.get(2)?,
        })
    }
}

/// What a client posts to create an item.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodo {
    title: String,
    #[serde(default)]
    done: bool,
}

/// What a client puts to replace an item.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Replacement {
    title: String,
    done: bool,
}

/// The database, shared by every handler through `Server::state`.
///
/// SQLite lets one connection write at a time. Writers from several pool threads on
/// connections of their own would meet `SQLITE_BUSY` and poll for the lock; one writing
/// connection behind a `Mutex` makes them queue in order instead. In WAL mode readers do not
/// wait for the writer (they see the last commit), so reads get connections of their own and
/// a slow write holds up only other writes.
struct Db {
    // Dropped in this order: the writer closes last, so it checkpoints the WAL into the
    // database file and removes it (a read-only connection closing last would leave it).
    readers: Vec<Mutex<Connection>>,
    writer: Mutex<Connection>,
    next_reader: AtomicUsize,
}

impl Db {
    /// Opens (creating on first run) `dir/todos.db`.
    fn open(dir: &Path) -> Result<Db, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
        let path = dir.join("todos.db");
        let writer = Connection::open(&path)?;
        // WAL: readers and the writer do not block each other. FULL: a commit is on disk
        // (the WAL synced) before the handler answers, so a 201 survives even a power cut.
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("{}: journal mode {mode}, not WAL", path.display()).into());
        }
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.busy_timeout(Duration::from_secs(5))?;
        writer.execute_batch(
            "CREATE TABLE IF NOT EXISTS todos (
                 id    INTEGER PRIMARY KEY AUTOINCREMENT,
                 title TEXT    NOT NULL,
                 done  INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1))
             )",
        )?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                reader.busy_timeout(Duration::from_secs(5))?;
                Ok(Mutex::new(reader))
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Db {
            readers,
            writer: Mutex::new(writer),
            next_reader: AtomicUsize::new(0),
        })
    }

    /// The writing connection.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A handler that panicked poisons the lock; SQLite rolled its transaction back, so the
        // connection is whole.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free reading connection, or the next one in turn when all are busy.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            if let Ok(guard) = reader.try_lock() {
                return guard;
            }
        }
        let turn = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[turn]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("embedded: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()?;
    let options = Options::parse(std::env::args().skip(1))?;
    let db = Db::open(&options.data)?;
    log::info!("to-do list in {}", options.data.join("todos.db").display());
    let config = Config::default()
        .listen(options.listen)
        .root(options.root)
        .model(options.model)
        .max_body_size(MAX_BODY);
    Server::new(config)?
        .state(db)
        .blocking(Method::Get, "/api/todos", list)
        .blocking(Method::Post, "/api/todos", create)
        .blocking(Method::Get, "/api/todos/{id}", show)
        .blocking(Method::Put, "/api/todos/{id}", replace)
        .blocking(Method::Delete, "/api/todos/{id}", delete)
        .run()?;
    log::info!("stopped");
    Ok(())
}

/// `GET /api/todos`.
fn list(request: &Request) -> margay::Result {
    let db = request.state::<Db>()?.reader();
    let mut select = db.prepare_cached("SELECT id, title, done FROM todos ORDER BY id")?;
    let todos = select
        .query_map([], Todo::from_row)?
        .collect::<rusqlite::Result<Vec<Todo>>>()?;
    Ok(Response::json(&todos))
}

/// `POST /api/todos`: one `INSERT`, committed before the answer.
fn create(request: &Request) -> margay::Result {
    let new: NewTodo = request.json()?;
    let title = checked_title(new.title)?;
    let db = request.state::<Db>()?.writer();
    let todo = db
        .prepare_cached(
            "INSERT INTO todos (title, done) VALUES (?1, ?2) RETURNING id, title, done",
        )?
        .query_row(params![title, new.done], Todo::from_row)?;
    drop(db);
    Ok(Response::json(&todo)
        .with_status(StatusCode::CREATED)
        .header("Location", format!("/api/todos/{}", todo.id)))
}

/// `GET /api/todos/{id}`.
fn show(request: &Request) -> margay::Result {
    let id: i64 = request.param_as("id")?;
    let db = request.state::<Db>()?.reader();
    let todo = db
        .prepare_cached("SELECT id, title, done FROM todos WHERE id = ?1")?
        .query_row([id], Todo::from_row)
        .optional()?;
    todo.map(|todo| Response::json(&todo))
        .ok_or_else(|| no_such(id))
}

/// `PUT /api/todos/{id}`: replaces the title and the flag.
fn replace(request: &Request) -> margay::Result {
    let id: i64 = request.param_as("id")?;
    let new: Replacement = request.json()?;
    let title = checked_title(new.title)?;
    let db = request.state::<Db>()?.writer();
    let todo = db
        .prepare_cached(
            "UPDATE todos SET title = ?2, done = ?3 WHERE id = ?1 RETURNING id, title, done",
        )?
        .query_row(params![id, title, new.done], Todo::from_row)
        .optional()?;
    todo.map(|todo| Response::json(&todo))
        .ok_or_else(|| no_such(id))
}

/// `DELETE /api/todos/{id}`.
fn delete(request: &Request) -> margay::Result {
    let id: i64 = request.param_as("id")?;
    let deleted = request
        .state::<Db>()?
        .writer()
        .prepare_cached("DELETE FROM todos WHERE id = ?1")?
        .execute([id])?;
    if deleted == 0 {
        return Err(no_such(id));
    }
    Ok(Response::new(StatusCode::NO_CONTENT))
}

/// The title without surrounding blanks, or `400` when nothing or too much is left.
fn checked_title(title: String) -> margay::Result<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::bad_request("the title is empty"));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(Error::bad_request(format!(
            "the title is longer than {MAX_TITLE} characters"
        )));
    }
    Ok(title.to_string())
}

fn no_such(id: i64) -> Error {
    Error::not_found(format!("no to-do with id {id}"))
}

/// The command line: `--listen ADDR`, `--data DIR`, `--root DIR`, `--model reactor|threads`.
struct Options {
    listen: SocketAddr,
    data: PathBuf,
    root: PathBuf,
    model: Model,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let listen = std::env::var("MARGAY_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
        let mut options = Options {
            listen: parse_addr(&listen)?,
            data: PathBuf::from("data"),
            root: Path::new(env!("CARGO_MANIFEST_DIR")).join("htdocs"),
            model: Model::Reactor,
        };
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--listen" => options.listen = parse_addr(&value)?,
                "--data" => options.data = PathBuf::from(value),
                "--root" => options.root = PathBuf::from(value),
                "--model" => {
                    options.model = match value.as_str() {
                        "reactor" => Model::Reactor,
                        "threads" => Model::Threads,
                        _ => return Err(format!("--model {value:?}: reactor or threads")),
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown option {flag:?}; the options are --listen ADDR, --data DIR, \
                         --root DIR and --model reactor|threads"
                    ));
                }
            }
        }
        Ok(options)
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|e| format!("bad address {text:?}: {e}"))
}
