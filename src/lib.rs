//! margay: an HTTP/1.1 server that serves many clients from one thread.
//!
//! One `mio` event loop keeps a slab of small per-connection state machines and serves them
//! all: static files from a document root (the web-server role) and handlers registered by
//! the application that embeds it (the application-server role). A thread-per-connection
//! model ([`Model::Threads`]) runs the same protocol code for comparison.
//!
//! ```no_run
//! use margay::{Config, Method, Response, Server};
//!
//! fn main() -> std::io::Result<()> {
//!     Server::new(Config::default().root("htdocs"))?
//!         .route(Method::Get, "/api/hello", |request| {
//!             let name = request.query("name").unwrap_or("world");
//!             Response::json(&serde_json::json!({ "hello": name }))
//!         })
//!         .run()
//! }
//! ```
//!
//! What a site says beyond that (response headers, CORS, redirects and basic auth by path
//! pattern, its own error pages, a single-page-app fallback, directory listings) is a set of
//! [`SiteRules`], built in code or read from TOML, set with [`Config::site_rules`] and
//! replaceable while the server runs through a [`RulesHandle`].
//!
//! Handlers run on the event-loop thread: they must not block (no sleeping, no slow disk or
//! network calls), or every other client waits. A handler that panics answers its request
//! with `500 Internal Server Error`; the panic is logged and the server carries on.

mod access_log;
mod app;
mod builtin;
mod config;
mod connection;
mod control;
mod files;
mod forwarded;
mod http;
mod listener;
mod metrics;
mod proxy;
mod reactor;
mod rules;
mod server;
mod stats;
mod threaded;
mod transport;
mod worker;

pub use access_log::AccessLogFormat;
pub use app::{BodySender, Disconnected, Error, IntoResponse, Request, Result};
pub use config::{AccessLog, Config, Model};
pub use forwarded::Cidr;
pub use http::status::InvalidStatusCode;
pub use http::{Body, BodyPart, InvalidHeader, Method, Response, StatusCode, Version};
pub use proxy::{Balance, HostHeader, ProxyRule, ProxyRuleError};
pub use rules::{Cors, Rule, RulesError, RulesHandle, SiteRules};
pub use server::{RunningServer, Server, ShutdownHandle};
pub use stats::StatusReport;

/// Internals for the project's own benchmarks and fuzz targets. Not part of the API: it
/// changes without notice.
#[doc(hidden)]
pub mod internals {
    pub use crate::access_log::Entry as AccessLogEntry;
    pub use crate::app::pool::Ticket;
    pub use crate::app::{Execution, Handler, Router, StateMap};
    pub use crate::connection::outbox::Outbox;
    pub use crate::connection::{Connection, State, Step, Timeouts};
    pub use crate::files::StaticFiles;
    pub use crate::files::conditional::{Comparison, lines_match};
    pub use crate::files::range::{ByteRange, MAX_RANGES, RangePlan, parse_ranges};
    pub use crate::files::resolve::{Resolved, resolve_path};
    pub use crate::forwarded::TrustedProxies;
    pub use crate::http::authority::parse_host_port;
    pub use crate::http::chunked::{ChunkedDecoder, MAX_CHUNK_LINE, MAX_TRAILERS};
    pub use crate::http::coding::{AcceptEncoding, Coding, compress};
    pub use crate::http::date::{DateCache, parse_http_date};
    pub use crate::http::encode::{Persistence, encode_head};
    pub use crate::http::parse::{HeadStorage, parse_head, parse_head_reusing};
    pub use crate::http::target::parse_target;
    pub use crate::http::{Framing, Limits, RequestError, RequestHead};
    pub use crate::listener::{ListenerKind, Scheme};
    pub use crate::stats::Stats;
    pub use crate::transport::tls::certs::CertificatePair;
    pub use crate::transport::tls::settings::TlsSettings;
    pub use crate::transport::{Flush, Input, Plain, Tls, Transport, expire, flush, pump};
    pub use crate::worker::{Site, Worker};
}
