//! The servers under test: margay in process on `127.0.0.1:0` over the known site, and the
//! margay binary as a child process.

use super::client::{Resp, connect, read_response, request, send};
use super::site::{STYLE_CSS, big_bin, populate_root};
use margay::Model;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A running server over a fresh temporary document root. Dropping it stops the server and
/// then removes the directories.
pub struct TestServer {
    // Declared first so it is dropped (and the server stopped) before the directories go.
    running: margay::RunningServer,
    addr: SocketAddr,
    root: TempDir,
    outside: TempDir,
}

impl TestServer {
    /// Builds the document root and starts the server with the given concurrency model.
    pub fn start(model: Model) -> TestServer {
        TestServer::start_with(model, |config| config)
    }

    /// Like [`TestServer::start`], with the configuration adjusted by `tune` first.
    pub fn start_with(
        model: Model,
        tune: impl FnOnce(margay::Config) -> margay::Config,
    ) -> TestServer {
        let root = TempDir::new().expect("create temp root");
        let outside = TempDir::new().expect("create temp outside dir");
        populate_root(root.path(), outside.path()).expect("populate root");

        let config = margay::Config::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .root(root.path())
            .model(model)
            .access_log(margay::AccessLog::Off);
        let config = tune(config);
        let running = margay::Server::new(config)
            .expect("Server::new")
            .spawn()
            .expect("Server::spawn");
        let addr = running.addr();
        TestServer {
            running,
            addr,
            root,
            outside,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The document root on disk.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory beside the root that holds [`OUTSIDE_FILE`].
    pub fn outside(&self) -> &Path {
        self.outside.path()
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
}

/// Path of a file on disk, for tests that compare against metadata.
pub fn disk_path(server: &TestServer, rel: &str) -> PathBuf {
    server.root().join(rel)
}

/// The margay binary running as a child process over a temporary root holding `style.css`
/// and `big.bin`, its log in a file; killed on drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl ServerProcess {
    /// Starts the binary with `--model model`, the access log off and `extra` arguments; with
    /// `fd_limit`, under a shell that first lowers its descriptor limit (`ulimit -n`). Returns
    /// at once: callers wait for it to serve in their own way.
    pub fn spawn(model: &str, extra: &[&str], fd_limit: Option<u32>) -> ServerProcess {
        use std::process::{Command, Stdio};
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("style.css"), STYLE_CSS).unwrap();
        std::fs::write(root.join("big.bin"), big_bin()).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let binary = env!("CARGO_BIN_EXE_margay");
        let mut command = match fd_limit {
            Some(limit) => {
                let mut shell = Command::new("sh");
                let script = format!(r#"ulimit -n {limit} && exec "$0" "$@""#);
                shell.arg("-c").arg(script).arg(binary);
                shell
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["--listen", &addr.to_string(), "--root"])
            .arg(&root)
            .args([
                "--access-log",
                "off",
                "--log-level",
                "info",
                "--model",
                model,
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn margay");
        ServerProcess { child, addr, dir }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
