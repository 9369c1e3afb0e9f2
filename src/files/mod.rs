//! Pure static-file logic: resolve a request path safely under the root, answer conditional
//! and range requests, pick the content type, and keep small hot files in memory. With site
//! rules: their headers folded into cached files, redirects where no file is, the
//! single-page-app fallback, directory listings and custom error pages.
//!
//! Nothing here touches a socket: [`StaticFiles::serve`] takes a parsed request head and
//! returns a [`Response`] whose body is bytes or a window of an open file.

pub mod cache;
pub mod conditional;
pub mod listing;
pub mod mime;
pub mod range;
pub mod representation;
pub mod resolve;
pub mod variants;
pub mod watch;

use crate::http::accept::named_quality;
use crate::http::coding::Coding;
use crate::http::{Method, RequestHead, Response, StatusCode};
use crate::rules::{SiteRules, add_vary};
use cache::{CacheCounters, FileCache, read_whole};
use conditional::Precondition;
use range::RangePlan;
use representation::{Representation, Source};
use resolve::{
    FileIdentity, INDEX_FILE, Refusal, Resolved, open_file, resolve_directory, resolve_path,
};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use variants::{Variants, accept_of, find_sidecars, sidecar_path};

/// The methods a static file answers, as sent in `Allow`.
pub const ALLOW: &str = "GET, HEAD, OPTIONS";

/// How long a cached file that is not watched for changes is trusted before its metadata
/// is checked again: zero, so an edit is seen on the next request; the check is one `stat`.
pub const DEFAULT_REVALIDATE_AFTER: Duration = Duration::ZERO;

/// Serves the files under one directory. Each thread owns its own (a clone starts with an
/// empty cache).
#[derive(Debug)]
pub struct StaticFiles {
    root: PathBuf,
    cache: FileCache,
    rules: Arc<SiteRules>,
}

impl Clone for StaticFiles {
    fn clone(&self) -> StaticFiles {
        StaticFiles {
            root: self.root.clone(),
            cache: FileCache::with_counters(
                self.cache.revalidate_after(),
                self.cache.counters().clone(),
            ),
            rules: self.rules.clone(),
        }
    }
}

/// Why a path has no representation to serve.
enum Miss {
    /// A directory named without its trailing slash.
    Directory,
    /// Nothing servable there.
    Refused(Refusal),
}

impl StaticFiles {
    /// Canonicalises the root; `Err` if it does not exist or is not a directory.
    pub fn new(root: impl AsRef<Path>) -> io::Result<StaticFiles> {
        let root = fs::canonicalize(root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(StaticFiles {
            root,
            cache: FileCache::new(DEFAULT_REVALIDATE_AFTER),
            rules: Arc::new(SiteRules::new()),
        })
    }

    /// Serves by `rules` from now on. Empties the cache, whose header lines came from the
    /// rules before.
    pub fn set_rules(&mut self, rules: Arc<SiteRules>) {
        self.rules = rules;
        self.cache.clear();
    }

    /// Logs a warning for each error page or fallback whose file is not there (yet).
    pub fn check_rules(&self) {
        for (what, path) in self.rules.site_paths() {
            if !matches!(resolve_path(&self.root, path), Ok(Resolved::File { .. })) {
                log::warn!(
                    "{what}: no file {path} under {}; the server's own answer is used until \
                     there is one",
                    self.root.display()
                );
            }
        }
    }

    /// Sets how long a cached file is trusted before its metadata is checked again (zero:
    /// on every request). Empties the cache.
    pub fn with_revalidate_after(mut self, period: Duration) -> StaticFiles {
        self.cache = FileCache::with_counters(period, self.cache.counters().clone());
        self
    }

    /// Counts cache hits, misses and compressions into `counters` (shared by its clones).
    /// Empties the cache.
    pub fn with_counters(mut self, counters: Arc<CacheCounters>) -> StaticFiles {
        self.cache = FileCache::with_counters(self.cache.revalidate_after(), counters);
        self
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answers a request for a file under the root, knowing no handler (see
    /// [`StaticFiles::serve_site`]).
    pub fn serve(&mut self, head: &RequestHead) -> Response {
        self.serve_site(head, &|_| false)
    }

    /// Answers a request for a file under the root; `handled(path)` says whether a handler
    /// route covers a path, where the single-page-app fallback never applies.
    ///
    /// Called only for requests whose `head.error` is `None`. GET and HEAD get the same
    /// response (the caller drops the body for HEAD); OPTIONS gets 204 with `Allow`; other
    /// methods get 405 (404 when nothing is there). Where nothing is there, the rules'
    /// redirect or fallback may answer instead. Never panics, never touches a socket.
    pub fn serve_site(&mut self, head: &RequestHead, handled: &dyn Fn(&str) -> bool) -> Response {
        let response = if matches!(head.method, Method::Get | Method::Head) {
            self.serve_file(head, head.path())
        } else {
            self.serve_other(head)
        };
        if response.status != StatusCode::NOT_FOUND {
            return response;
        }
        self.after_miss(head, response, handled)
    }

    fn serve_other(&mut self, head: &RequestHead) -> Response {
        if head.method == Method::Options && head.path() == "*" {
            return Response::new(StatusCode::NO_CONTENT).header("Allow", ALLOW);
        }
        // Other methods are refused only for what exists: a missing file is still 404.
        let found = match resolve_path(&self.root, head.path()) {
            Err(Refusal::NotFound) if self.lists(head.path()) => {
                resolve_directory(&self.root, head.path()).map(|_| ())
            }
            found => found.map(|_| ()),
        };
        match found {
            Err(refusal) => Response::error(refusal.status()),
            Ok(_) if head.method == Method::Options => {
                Response::new(StatusCode::NO_CONTENT).header("Allow", ALLOW)
            }
            Ok(_) => Response::error(StatusCode::METHOD_NOT_ALLOWED).header("Allow", ALLOW),
        }
    }

    /// What answers where no file is: a redirect rule, then the fallback, then the 404.
    fn after_miss(
        &mut self,
        head: &RequestHead,
        missed: Response,
        handled: &dyn Fn(&str) -> bool,
    ) -> Response {
        if let Some(redirect) = self.rules.redirect_on_miss(head) {
            return redirect;
        }
        let Some(fallback) = self.rules.fallback_path() else {
            return missed;
        };
        let path = head.path();
        let last = path.rsplit('/').next().unwrap_or_default();
        // An extension means a file was wanted; a dot segment (`/.git/`, `/.well-known/`)
        // is never an app's route.
        if !matches!(head.method, Method::Get | Method::Head)
            || last.contains('.')
            || path.contains("/.")
            || handled(path)
        {
            return missed;
        }
        let accepts_html =
            named_quality(head.headers_named("accept"), "text/html").is_some_and(|q| q > 0.0);
        let mut response = if accepts_html {
            let fallback = fallback.to_string();
            match self.serve_file(head, &fallback) {
                found if found.status != StatusCode::NOT_FOUND => found,
                _ => missed,
            }
        } else {
            missed
        };
        // Another Accept would have had another answer.
        add_vary(&mut response, "Accept");
        response
    }

    /// Whether directories without an index are listed, and `path` names one.
    fn lists(&self, path: &str) -> bool {
        self.rules.lists_directories() && path.ends_with('/')
    }

    /// Answers GET or HEAD for the file at `key` (the request path, or the fallback's), in
    /// the content coding the request prefers.
    fn serve_file(&mut self, head: &RequestHead, key: &str) -> Response {
        let miss = match self.entry(key) {
            Ok(slot) => return self.respond_negotiated(head, slot),
            Err(miss) => miss,
        };
        match miss {
            Miss::Directory => {
                let mut response = redirect_to_directory(head);
                self.rules.apply_headers(key, &mut response);
                response
            }
            Miss::Refused(Refusal::NotFound) if self.lists(key) => self
                .listing(head, key)
                .unwrap_or_else(|| Response::error(StatusCode::NOT_FOUND)),
            Miss::Refused(refusal) => Response::error(refusal.status()),
        }
    }

    /// Replaces the body of one of the server's own error pages with the site's page for its
    /// status, if there is one; its other fields (`Allow`, `WWW-Authenticate`, ...) stay.
    pub fn error_page(&mut self, mut response: Response) -> Response {
        let Some(path) = self.rules.error_page_for(response.status) else {
            return response;
        };
        let path = path.to_string();
        let Some(variants) = self
            .entry(&path)
            .ok()
            .and_then(|slot| self.cache.variants(slot))
        else {
            return response;
        };
        let page = variants.identity.page(response.status);
        response
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        response.headers.extend(page.headers);
        response.body = page.body;
        response.stock_page = false;
        response
    }

    /// A listing of the directory at `key`, or `None` if there is none to list.
    fn listing(&mut self, head: &RequestHead, key: &str) -> Option<Response> {
        let dir = resolve_directory(&self.root, key).ok()?;
        let entries = match listing::read_entries(&self.root, &dir) {
            Ok(entries) => entries,
            Err(e) => return Some(Response::error(Refusal::from_io(&e).status())),
        };
        let accept = || head.headers_named("accept");
        let json = named_quality(accept(), "application/json").unwrap_or(0.0);
        let html = named_quality(accept(), "text/html").unwrap_or(0.0);
        let mut response = if json > 0.0 && json > html {
            Response::bytes("application/json", listing::json(key, &entries))
        } else {
            Response::bytes("text/html; charset=utf-8", listing::html(key, &entries))
        };
        add_vary(&mut response, "Accept");
        self.rules.apply_headers(key, &mut response);
        Some(response)
    }

    /// The representation of cache entry `slot` that the request's `Accept-Encoding`
    /// prefers, with its preconditions and ranges applied.
    fn respond_negotiated(&mut self, head: &RequestHead, slot: usize) -> Response {
        let Some(variants) = self.cache.variants(slot) else {
            return Response::error(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let coding = variants.choose(&accept_of(head, variants));
        if coding == Coding::Identity {
            return respond(head, &variants.identity);
        }
        if let Some(rep) = self.cache.representation(slot, coding) {
            return respond(head, &rep);
        }
        // The copy could not be made (it would not be smaller): the file as it is.
        match self.cache.variants(slot) {
            Some(variants) => respond(head, &variants.identity),
            None => Response::error(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The cache entry of the file at `key` (its slot), found or read now with its sidecars.
    fn entry(&mut self, key: &str) -> Result<usize, Miss> {
        if let Some(slot) = self.cache.lookup(key, Instant::now, current_identity) {
            return Ok(slot);
        }
        let now = Instant::now();
        let (path, index) = match resolve_path(&self.root, key) {
            Ok(Resolved::File { path, index, .. }) => (path, index),
            Ok(Resolved::Redirect) => return Err(Miss::Directory),
            Err(refusal) => return Err(Miss::Refused(refusal)),
        };
        // Watched before it is opened, so a change after the read below is always reported.
        let watched = self.watch_dirs(key, &path);
        let (file, identity) = open_file(&path).map_err(Miss::Refused)?;
        // The type follows the name asked for, not where a symlink leads.
        let mut content_type = mime::content_type(if index {
            Path::new(INDEX_FILE)
        } else {
            Path::new(key)
        });
        // Header rules are matched once per cached file, as the file it is (`/docs/` as
        // `/docs/index.html`, as nginx matches an index).
        let site_headers = if index {
            self.rules.file_headers(&format!("{key}{INDEX_FILE}"))
        } else {
            self.rules.file_headers(key)
        };
        let extra_lines = match site_headers {
            Some((own_type, lines)) => {
                if let Some(own_type) = own_type {
                    content_type = own_type.into();
                }
                lines
            }
            None => Vec::new(),
        };
        let in_memory = if self.cache.accepts(identity.len) {
            read_whole(&file, identity.len)
        } else {
            None
        };
        let source = match in_memory {
            Some(bytes) => Source::Memory(bytes),
            None => Source::File(Arc::new(file)),
        };
        let sidecars = find_sidecars(&path, &identity);
        let sidecar_identities = Coding::ENCODED
            .iter()
            .zip(&sidecars)
            .filter_map(|(coding, found)| {
                found
                    .as_ref()
                    .map(|(_, id)| (sidecar_path(&path, *coding), *id))
            })
            .collect();
        let variants = Variants::new(source, &identity, content_type, SystemTime::now(), sidecars)
            .with_extra_headers(&extra_lines);
        Ok(self.cache.insert(
            key,
            path,
            watched,
            identity,
            sidecar_identities,
            variants,
            now,
        ))
    }
}

impl StaticFiles {
    /// Starts watching for changes to cached files (inotify): cache hits then need no
    /// syscall. Returns the descriptor the event loop polls; when it is readable, call
    /// [`StaticFiles::apply_changes`].
    pub fn watch_changes(&mut self) -> io::Result<std::os::fd::RawFd> {
        self.cache.watch_changes()
    }

    /// Drops cached files that changed, as reported since the last call.
    pub fn apply_changes(&mut self) {
        self.cache.apply_changes();
    }

    /// Watches every directory the request path passes through, and the real file's own.
    fn watch_dirs(&mut self, key: &str, real: &Path) -> bool {
        if !self.cache.is_watching() {
            return false;
        }
        let mut dirs = vec![self.root.clone()];
        let mut segments: Vec<&str> = key.trim_start_matches('/').split('/').collect();
        segments.pop();
        for segment in segments {
            let next = dirs[dirs.len() - 1].join(segment);
            dirs.push(next);
        }
        if let Some(parent) = real.parent() {
            dirs.push(parent.to_path_buf());
        }
        let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        self.cache.watch(&dirs)
    }
}

/// The identity of the regular file at `path` now, for revalidating a cache entry.
fn current_identity(path: &Path) -> Option<FileIdentity> {
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Some(FileIdentity::of(&metadata)),
        _ => None,
    }
}

/// Preconditions, then ranges, then the whole file (RFC 9110 section 13.2.2), all on the
/// selected representation. Several ranges of an encoded one get the whole of it: a
/// multipart body of pieces of a compressed stream helps no client.
fn respond(head: &RequestHead, rep: &Representation) -> Response {
    let mut response = match conditional::evaluate(head, &rep.validators) {
        Precondition::Failed => Response::error(StatusCode::PRECONDITION_FAILED),
        Precondition::NotModified => return rep.not_modified(),
        Precondition::Proceed => match range::plan(head, &rep.validators, rep.len()) {
            RangePlan::Full => return rep.full(),
            RangePlan::Partial(ranges) if ranges.len() > 1 && rep.coding != Coding::Identity => {
                return rep.full();
            }
            RangePlan::Partial(ranges) => return range::partial(rep, &ranges),
            RangePlan::Unsatisfiable => range::unsatisfiable(rep.len()),
        },
    };
    if rep.varies {
        add_vary(&mut response, "Accept-Encoding");
    }
    response
}

/// 301 to the directory's name with a trailing slash.
fn redirect_to_directory(head: &RequestHead) -> Response {
    Response::error(StatusCode::MOVED_PERMANENTLY).header(
        "Location",
        directory_location(head.raw_path(), head.query()),
    )
}

/// The still-encoded path with `/` appended, and the query if there was one.
fn directory_location(raw_path: &str, query: Option<&str>) -> String {
    // A leading `//` or `/\` would make the Location a reference to another host.
    let path = raw_path.trim_start_matches('/');
    let mut location = String::with_capacity(raw_path.len() + 4 + query.map_or(0, |q| q.len() + 1));
    location.push('/');
    match path.strip_prefix('\\') {
        Some(rest) => {
            location.push_str("%5C");
            location.push_str(rest);
        }
        None => location.push_str(path),
    }
    location.push('/');
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    location
}

/// Parses `METHOD target HTTP/1.1` with `Host` and the given header lines (each ending CRLF).
#[cfg(test)]
pub(crate) fn test_request(method: &str, target: &str, lines: &str) -> RequestHead {
    let text = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n{lines}\r\n");
    let limits = crate::http::Limits::default();
    let (head, _) = crate::http::parse::parse_head(text.as_bytes(), &limits)
        .expect("parses")
        .expect("complete");
    assert_eq!(head.error, None, "request {text:?}");
    head
}

/// The identity of an in-memory test file of `len` bytes last modified Sun, 06 Nov 1994
/// 08:49:37 GMT, and the time it is served at.
#[cfg(test)]
fn test_identity(len: usize) -> (FileIdentity, SystemTime) {
    let identity = FileIdentity {
        len: len as u64,
        modified_secs: 784111777,
        modified_nanos: 0,
        changed_nanos: 0,
        device: 1,
        inode: 2,
    };
    (
        identity,
        SystemTime::UNIX_EPOCH + Duration::from_secs(800_000_000),
    )
}

/// An in-memory text file last modified Sun, 06 Nov 1994 08:49:37 GMT.
#[cfg(test)]
pub(crate) fn test_memory(bytes: &[u8]) -> Representation {
    let (identity, now) = test_identity(bytes.len());
    let content_type = "text/plain; charset=utf-8".into();
    Representation::new(
        Source::Memory(Arc::from(bytes)),
        &identity,
        content_type,
        now,
    )
}

/// [`test_memory`]'s bytes as the only representation of a file.
#[cfg(test)]
pub(crate) fn test_variants(bytes: &[u8]) -> Variants {
    let (identity, now) = test_identity(bytes.len());
    Variants::new(
        Source::Memory(Arc::from(bytes)),
        &identity,
        "text/plain; charset=utf-8".into(),
        now,
        [None, None, None],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Body;

    fn site() -> (tempfile::TempDir, StaticFiles) {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("docs")).expect("mkdir");
        fs::write(dir.path().join("index.html"), "<h1>home</h1>").expect("write");
        fs::write(dir.path().join("hello.txt"), "hello world").expect("write");
        fs::write(dir.path().join("big.bin"), vec![7u8; 100_000]).expect("write");
        let files = StaticFiles::new(dir.path()).expect("root");
        (dir, files)
    }

    fn body_bytes(response: &Response) -> Vec<u8> {
        match &response.body {
            Body::Empty => Vec::new(),
            Body::Bytes(bytes) => bytes.clone(),
            Body::Shared(bytes) => bytes.to_vec(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    /// Every header line the response carries besides the encoder's own.
    fn header_text(response: &Response) -> String {
        let mut text: String = response
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\r\n"))
            .collect();
        text.push_str(&String::from_utf8_lossy(
            response.encoded_headers.as_deref().unwrap_or_default(),
        ));
        text
    }

    #[test]
    fn cached_file_is_served_then_refreshed_when_rewritten() {
        let (dir, files) = site();
        let mut files = files.with_revalidate_after(Duration::ZERO);
        let get = test_request("GET", "/hello.txt", "");
        let first = files.serve(&get);
        assert_eq!(
            (first.status, body_bytes(&first)),
            (StatusCode::OK, b"hello world".to_vec())
        );
        let second = files.serve(&get);
        assert_eq!(header_text(&second), header_text(&first));
        match (&first.body, &second.body) {
            (Body::Shared(a), Body::Shared(b)) => {
                assert!(Arc::ptr_eq(a, b), "served from the cache")
            }
            other => panic!("expected shared bodies, got {other:?}"),
        }
        fs::write(dir.path().join("hello.txt"), "goodbye, cruel world").expect("rewrite");
        let third = files.serve(&get);
        assert_eq!(body_bytes(&third), b"goodbye, cruel world");
        assert_ne!(header_text(&third), header_text(&first), "new validators");
        fs::remove_file(dir.path().join("hello.txt")).expect("remove");
        assert_eq!(files.serve(&get).status, 404);
        assert_eq!(files.clone().root(), files.root());
    }

    #[test]
    fn requests_and_answers() {
        let (_dir, mut files) = site();
        let etag = files
            .serve(&test_request("GET", "/hello.txt", ""))
            .encoded_headers
            .map(|h| {
                let text = String::from_utf8_lossy(&h).to_string();
                text.lines()
                    .find_map(|l| l.strip_prefix("ETag: ").map(str::to_string))
                    .unwrap_or_default()
            });
        let etag = etag.expect("etag");
        // (method, target, header lines, status, header lines expected among the response's)
        let rows: Vec<(&str, &str, String, u16, &[&str])> = vec![
            (
                "GET",
                "/",
                String::new(),
                200,
                &[
                    "Content-Type: text/html; charset=utf-8",
                    "Accept-Ranges: bytes",
                    "ETag: \"",
                    "Last-Modified: ",
                ],
            ),
            (
                "GET",
                "/hello.txt",
                String::new(),
                200,
                &["Content-Type: text/plain; charset=utf-8"],
            ),
            (
                "HEAD",
                "/hello.txt",
                String::new(),
                200,
                &["Content-Type: text/plain; charset=utf-8"],
            ),
            (
                "GET",
                "/big.bin",
                String::new(),
                200,
                &[
                    "Content-Type: application/octet-stream",
                    "Accept-Ranges: bytes",
                ],
            ),
            ("GET", "/docs", String::new(), 301, &["Location: /docs/"]),
            (
                "GET",
                "/docs?a=%20b",
                String::new(),
                301,
                &["Location: /docs/?a=%20b"],
            ),
            (
                "HEAD",
                "http://test/docs",
                String::new(),
                301,
                &["Location: /docs/"],
            ),
            ("GET", "/docs/", String::new(), 404, &[]),
            ("GET", "/missing", String::new(), 404, &[]),
            ("GET", "/hello.txt/", String::new(), 404, &[]),
            (
                "OPTIONS",
                "*",
                String::new(),
                204,
                &["Allow: GET, HEAD, OPTIONS"],
            ),
            (
                "OPTIONS",
                "/hello.txt",
                String::new(),
                204,
                &["Allow: GET, HEAD, OPTIONS"],
            ),
            (
                "POST",
                "/hello.txt",
                String::new(),
                405,
                &["Allow: GET, HEAD, OPTIONS"],
            ),
            ("DELETE", "/missing", String::new(), 404, &[]),
            (
                "GET",
                "/hello.txt",
                format!("If-None-Match: {etag}\r\n"),
                304,
                &["ETag: \"", "Last-Modified: "],
            ),
            (
                "GET",
                "/hello.txt",
                "If-Match: \"nope\"\r\n".into(),
                412,
                &[],
            ),
            (
                "GET",
                "/hello.txt",
                "Range: bytes=0-4\r\n".into(),
                206,
                &["Content-Range: bytes 0-4/11", "Content-Type: text/plain"],
            ),
            (
                "GET",
                "/big.bin",
                "Range: bytes=-10\r\n".into(),
                206,
                &["Content-Range: bytes 99990-99999/100000"],
            ),
            (
                "GET",
                "/big.bin",
                "Range: bytes=0-0,-1\r\n".into(),
                206,
                &["Content-Type: multipart/byteranges; boundary="],
            ),
            (
                "GET",
                "/hello.txt",
                "Range: bytes=11-\r\n".into(),
                416,
                &["Content-Range: bytes */11"],
            ),
            (
                "GET",
                "/hello.txt",
                "Range: bytes=0-4\r\nIf-Range: \"old\"\r\n".into(),
                200,
                &[],
            ),
            (
                "HEAD",
                "/hello.txt",
                "Range: bytes=0-4\r\n".into(),
                200,
                &[],
            ),
        ];
        for (method, target, lines, status, expected) in rows {
            let response = files.serve(&test_request(method, target, &lines));
            let text = header_text(&response);
            assert_eq!(
                response.status, status,
                "{method} {target} {lines:?}: {text}"
            );
            for line in expected {
                assert!(
                    text.contains(line),
                    "{method} {target} {lines:?}: {line:?} in {text}"
                );
            }
        }
    }

    #[test]
    fn bodies_by_size() {
        let (_dir, mut files) = site();
        let big = files.serve(&test_request("GET", "/big.bin", ""));
        assert!(
            matches!(
                big.body,
                Body::File {
                    offset: 0,
                    len: 100_000,
                    ..
                }
            ),
            "{:?}",
            big.body
        );
        let tail = files.serve(&test_request("GET", "/big.bin", "Range: bytes=99990-\r\n"));
        assert!(
            matches!(
                tail.body,
                Body::File {
                    offset: 99_990,
                    len: 10,
                    ..
                }
            ),
            "{:?}",
            tail.body
        );
        let part = files.serve(&test_request("GET", "/hello.txt", "Range: bytes=6-\r\n"));
        assert_eq!(body_bytes(&part), b"world");
        let not_modified = files.serve(&test_request(
            "GET",
            "/hello.txt",
            "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n",
        ));
        assert_eq!(
            (not_modified.status, not_modified.body.len()),
            (StatusCode::NOT_MODIFIED, 0)
        );
    }

    #[test]
    fn directory_locations() {
        // (raw path, query, Location)
        let rows: &[(&str, Option<&str>, &str)] = &[
            ("/docs", None, "/docs/"),
            ("/a%20b", Some("x=1"), "/a%20b/?x=1"),
            ("/docs", Some(""), "/docs/?"),
            ("//evil.example/x", None, "/evil.example/x/"),
            ("/\\evil.example", None, "/%5Cevil.example/"),
        ];
        for (raw, query, expected) in rows {
            assert_eq!(
                directory_location(raw, *query),
                *expected,
                "{raw:?} {query:?}"
            );
        }
    }

    #[test]
    fn root_must_be_a_directory() {
        let (dir, _) = site();
        assert!(StaticFiles::new(dir.path().join("hello.txt")).is_err());
        assert!(StaticFiles::new(dir.path().join("missing")).is_err());
        let files = StaticFiles::new(dir.path().join("docs/..")).expect("root");
        assert_eq!(
            files.root(),
            fs::canonicalize(dir.path()).expect("canonical")
        );
    }
}
