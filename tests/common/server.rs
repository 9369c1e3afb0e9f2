//! The server under test, in process: a real margay on `127.0.0.1:0` over the known site,
//! started with the configuration, routes and extra files a test asks for, stopped on drop.

use super::client::{
    Resp, connect, fetch_status, get_req, read_response, request, send, try_read_response,
};
use super::site::{STYLE_CSS, Site};
use margay::{AccessLog, Config, Model, RunningServer, Server, ShutdownHandle};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// How long the fixture's own shutdown may wait for what a test left in flight.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running server over a fresh copy of the known site. Dropping it stops the server, then
/// removes the directories.
pub struct TestServer {
    // Declared first so it is dropped (and the server stopped) before the site goes.
    running: RunningServer,
    addr: SocketAddr,
    site: Site,
}

/// A server about to start: see [`TestServer::builder`].
pub struct TestServerBuilder {
    site: Site,
    config: Config,
    routes: Vec<Box<dyn FnOnce(Server) -> Server>>,
}

impl TestServer {
    /// Starts a server for `model` with the defaults: the known site, access log off, a short
    /// shutdown timeout.
    pub fn start(model: Model) -> TestServer {
        TestServer::builder(model).start()
    }

    /// Like [`TestServer::start`], with the configuration adjusted by `tune` first.
    pub fn start_with(model: Model, tune: impl FnOnce(Config) -> Config) -> TestServer {
        TestServer::builder(model).config(tune).start()
    }

    /// A server for `model` over a freshly written site, to adjust before
    /// [`TestServerBuilder::start`]: `TestServer::builder(model).config(|c| ..).routes(|s| ..)`.
    pub fn builder(model: Model) -> TestServerBuilder {
        let site = Site::new();
        let config = Config::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .root(site.root())
            .model(model)
            .access_log(AccessLog::Off)
            .builtin_endpoints(true)
            .shutdown_timeout(SHUTDOWN_TIMEOUT);
        TestServerBuilder {
            site,
            config,
            routes: Vec::new(),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first admin listener's address, if one was configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.running.admin_addr()
    }

    /// A handle that starts a graceful shutdown without waiting for it.
    pub fn handle(&self) -> ShutdownHandle {
        self.running.handle()
    }

    /// The first address the server serves HTTPS on; panics if it has none.
    pub fn tls_addr(&self) -> SocketAddr {
        self.running.tls_addr().expect("a TLS listener")
    }

    /// The running server, for what an embedder can ask of it.
    pub fn running(&self) -> &RunningServer {
        &self.running
    }

    /// The document root on disk.
    pub fn root(&self) -> &Path {
        self.site.root()
    }

    /// The directory beside the root that holds the outside secret.
    pub fn outside(&self) -> &Path {
        self.site.outside()
    }

    /// A new client connection with read/write timeouts and Nagle off.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Opens a connection, sends `raw`, and reads one response.
    pub fn exchange(&self, raw: &[u8], head_request: bool) -> Resp {
        let mut stream = self.connect();
        send(&mut stream, raw);
        read_response(&mut stream, head_request)
    }

    /// `GET path` over a fresh HTTP/1.1 connection.
    pub fn get(&self, path: &str) -> Resp {
        self.exchange(&request("GET", path, &[]), false)
    }

    /// `GET path` with extra header fields over a fresh HTTP/1.1 connection.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.exchange(&request("GET", path, headers), false)
    }

    /// `HEAD path` with extra header fields over a fresh HTTP/1.1 connection.
    pub fn head_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.exchange(&request("HEAD", path, headers), true)
    }

    /// The `/api/status` report, fetched on a fresh connection.
    pub fn status(&self) -> serde_json::Value {
        fetch_status(self.addr)
    }

    /// `GET /style.css` on a fresh connection, checked.
    pub fn assert_serves(&self, what: &str) {
        let mut stream = self.connect();
        send(&mut stream, &get_req("/style.css"));
        let resp = try_read_response(&mut stream, false)
            .unwrap_or_else(|e| panic!("{what}: a normal client was not served: {e}"));
        assert_eq!(resp.status, 200, "{what}: a normal client was not served");
        assert_eq!(resp.body, STYLE_CSS.as_bytes(), "{what}");
    }

    /// Polls `/api/status` until `active` (which counts the polling connection itself) is
    /// `want`, or panics after `within`.
    pub fn wait_for_active(&self, want: i64, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            let active = self.status()["active"]
                .as_i64()
                .expect("active is a number");
            if active == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: /api/status active stayed at {active}, expected {want} within {within:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Shuts the server down gracefully and waits for it, as an embedder would.
    pub fn shutdown(self) -> io::Result<()> {
        let TestServer { running, site, .. } = self;
        let result = running.shutdown();
        drop(site);
        result
    }
}

impl TestServerBuilder {
    /// Adjusts the configuration: timeouts, limits, workers, built-in endpoints.
    pub fn config(mut self, tune: impl FnOnce(Config) -> Config) -> TestServerBuilder {
        self.config = tune(self.config);
        self
    }

    /// Registers handlers before the server starts.
    pub fn routes(mut self, add: impl FnOnce(Server) -> Server + 'static) -> TestServerBuilder {
        self.routes.push(Box::new(add));
        self
    }

    /// Writes extra files into the document root before the server starts.
    pub fn files(self, write: impl FnOnce(&Path)) -> TestServerBuilder {
        write(self.site.root());
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on background threads.
    pub fn start(self) -> TestServer {
        let mut server = Server::new(self.config).expect("Server::new");
        for add in self.routes {
            server = add(server);
        }
        let running = server.spawn().expect("Server::spawn");
        let addr = running.addr();
        TestServer {
            running,
            addr,
            site: self.site,
        }
    }
}

/// Path of a file on disk, for tests that compare against metadata.
pub fn disk_path(server: &TestServer, rel: &str) -> PathBuf {
    server.root().join(rel)
}
