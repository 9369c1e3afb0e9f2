//! An application that embeds margay: a small in-memory to-do list as a JSON API, served
//! beside the static site in `htdocs/`.
//!
//! ```sh
//! cargo run --release --example embedded                     # http://127.0.0.1:8080
//! cargo run --release --example embedded -- --listen 127.0.0.1:9000
//! curl -d '{"title":"feed the cat"}' http://127.0.0.1:8080/api/todos
//! curl http://127.0.0.1:8080/api/todos
//! curl -X DELETE http://127.0.0.1:8080/api/todos/1
//! ```
//!
//! | Request                 | Answer                                          |
//! | ----------------------- | ----------------------------------------------- |
//! | `GET /api/todos`        | `200` and every item                            |
//! | `POST /api/todos`       | `201` and the new item, from `{"title": "..."}` |
//! | `GET /api/todos/{id}`   | `200` and the item, or `404`                    |
//! | `DELETE /api/todos/{id}`| `204`, or `404`                                 |
//!
//! Handlers run on the event-loop thread, so they only touch memory: the lock is held for
//! microseconds and nothing waits on disk or network.

use margay::{Config, Method, Request, Response, Server, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One item of the list.
#[derive(Clone, Serialize)]
struct Todo {
    id: u64,
    title: String,
    done: bool,
}

/// What a client posts to create an item.
#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

/// The list, shared by every handler.
#[derive(Default)]
struct Todos {
    items: Vec<Todo>,
    last_id: u64,
}

type Store = Arc<Mutex<Todos>>;

fn main() -> std::io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .map_err(std::io::Error::other)?;
    let config = Config::default()
        .listen(listen_addr()?)
        .root(Path::new(env!("CARGO_MANIFEST_DIR")).join("htdocs"));
    let store = Store::default();
    let (list, create, show, delete) = (store.clone(), store.clone(), store.clone(), store);
    Server::new(config)?
        .route(Method::Get, "/api/todos", move |_| {
            Response::json(&lock(&list).items)
        })
        .route(Method::Post, "/api/todos", move |request| {
            create_todo(&create, request)
        })
        .route_prefix(Method::Get, "/api/todos/", move |request| {
            let todos = lock(&show);
            match todo_id(request).and_then(|id| todos.items.iter().find(|t| t.id == id)) {
                Some(todo) => Response::json(todo),
                None => not_found(),
            }
        })
        .route_prefix(Method::Delete, "/api/todos/", move |request| {
            let mut todos = lock(&delete);
            let before = todos.items.len();
            let id = todo_id(request);
            todos.items.retain(|t| Some(t.id) != id);
            if todos.items.len() < before {
                Response::new(StatusCode::NO_CONTENT)
            } else {
                not_found()
            }
        })
        .run()
}

/// `POST /api/todos`: 201 with the new item, or 400 when the body is not `{"title": "..."}`.
fn create_todo(store: &Store, request: &Request) -> Response {
    let new: NewTodo = match request.json() {
        Ok(new) => new,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"title\": \"...\"}}: {e}"),
            );
        }
    };
    if new.title.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "the title is empty");
    }
    let mut todos = lock(store);
    todos.last_id += 1;
    let todo = Todo {
        id: todos.last_id,
        title: new.title,
        done: false,
    };
    todos.items.push(todo.clone());
    Response::json(&todo)
        .with_status(StatusCode::CREATED)
        .header("Location", format!("/api/todos/{}", todo.id))
}

/// The `{id}` of `/api/todos/{id}`, if it is a number.
fn todo_id(request: &Request) -> Option<u64> {
    request.path().strip_prefix("/api/todos/")?.parse().ok()
}

/// A handler that panicked poisons the lock, but the list itself is still whole.
fn lock(store: &Store) -> MutexGuard<'_, Todos> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such to-do")
}

fn error(status: StatusCode, message: &str) -> Response {
    Response::json(&json!({ "error": message })).with_status(status)
}

/// `--listen ADDR` as the first argument, else `MARGAY_LISTEN`, else 127.0.0.1:8080.
fn listen_addr() -> std::io::Result<SocketAddr> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = match args.as_slice() {
        [flag, addr, ..] if flag == "--listen" => addr.clone(),
        _ => std::env::var("MARGAY_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_string()),
    };
    text.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad address {text:?}: {e}"),
        )
    })
}
