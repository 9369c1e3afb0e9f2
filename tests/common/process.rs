//! The margay binary as a child process: started with a model and command-line options over
//! the known site, its log kept in a file, killed on drop.

use super::client::{Resp, connect, fetch_status, get_req, try_read_response};
use super::site::{STYLE_CSS, Site};
use margay::Model;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long the binary may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Read, write and connect timeout of [`ServerProcess::try_get`]: short, because a server out
/// of descriptors may leave a client hanging.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `--model` value that selects `model`.
pub fn model_flag(model: Model) -> &'static str {
    match model {
        Model::Reactor => "reactor",
        Model::Threads => "threads",
    }
}

/// Sends `signal` to `child`.
pub fn signal_child(child: &Child, signal: libc::c_int) {
    // SAFETY: kill only sends a signal to our own child, which has not been reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Waits for `child` to exit; after `within` panics with what `still_running` says.
pub fn wait_child(
    child: &mut Child,
    within: Duration,
    still_running: impl Fn() -> String,
) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{}", still_running());
        thread::sleep(Duration::from_millis(20));
    }
}

/// The binary running over a fresh copy of the known site, its log (standard error) in a
/// file; killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every listener, as (scheme, address), from the log line that names them.
    urls: Vec<(String, SocketAddr)>,
    log_dir: TempDir,
    // Held so the document root lives as long as the process.
    site: Site,
}

/// A binary about to start: see [`ServerProcess::builder`].
pub struct ProcessBuilder {
    model: Model,
    ip: IpAddr,
    args: Vec<String>,
    access_log: Option<PathBuf>,
    fd_limit: Option<u32>,
}

impl ServerProcess {
    /// Starts the binary for `model` with the defaults: `127.0.0.1`, access log off.
    pub fn start(model: Model) -> ServerProcess {
        ServerProcess::builder(model).start()
    }

    /// The binary for `model` on a free port of `127.0.0.1`, access log off, log level info,
    /// to adjust before [`ProcessBuilder::start`].
    pub fn builder(model: Model) -> ProcessBuilder {
        ProcessBuilder {
            model,
            ip: [127, 0, 0, 1].into(),
            args: Vec::new(),
            access_log: None,
            fd_limit: None,
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("server.log")).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_alive(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{what}: margay exited with {status}; log:\n{}",
                self.log_tail(20)
            );
        }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        signal_child(&self.child, signal);
    }

    /// Waits for the process to exit, or panics after `within`.
    pub fn wait_exit(&mut self, within: Duration, what: &str) -> ExitStatus {
        let log = self.log_dir.path().join("server.log");
        wait_child(&mut self.child, within, || {
            format!(
                "{what}: margay still running after {within:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }

    /// A new client connection with read/write timeouts and Nagle off.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// The process's user and system CPU time so far, in clock ticks (`/proc/PID/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc stat");
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// The CPU ticks the process spends in the next second (about 100 if it spins a core).
    pub fn cpu_ticks_in_a_second(&self) -> u64 {
        let before = self.cpu_ticks();
        std::thread::sleep(Duration::from_secs(1));
        self.cpu_ticks() - before
    }

    /// One `GET /style.css` on a fresh connection, with short timeouts.
    pub fn try_get(&self) -> Result<Resp, String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, PROBE_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(PROBE_TIMEOUT)).unwrap();
        stream
            .write_all(&get_req("/style.css"))
            .map_err(|e| format!("write: {e}"))?;
        try_read_response(&mut stream, false)
    }

    /// `GET /style.css` is answered with the file.
    pub fn assert_serves(&mut self, what: &str) {
        self.assert_alive(what);
        match self.try_get() {
            Ok(resp) if resp.status == 200 && resp.body == STYLE_CSS.as_bytes() => {}
            Ok(resp) => panic!("{what}: answered {} {}", resp.status, resp.text()),
            Err(e) => panic!("{what}: not served: {e}; log:\n{}", self.log_tail(20)),
        }
    }

    /// The `/api/status` report, fetched on a fresh connection.
    pub fn status(&self) -> serde_json::Value {
        fetch_status(self.addr)
    }

    /// Waits for the log line naming the addresses the binary bound (it is asked for port 0,
    /// so no other process can take a port between a pick and the bind) and keeps them.
    fn wait_until_listening(&mut self) {
        let log = self.log_dir.path().join("server.log");
        let line = wait_for_log_line(&mut self.child, &log, "margay listening on ", START_TIMEOUT);
        self.urls = listening_urls(&line);
        self.addr = self.url_addr("http://");
    }

    /// The address of the first listener whose URL starts with `scheme` (`"https://"`).
    pub fn url_addr(&self, scheme: &str) -> SocketAddr {
        self.urls
            .iter()
            .find(|(s, _)| s == scheme)
            .map(|&(_, addr)| addr)
            .unwrap_or_else(|| panic!("margay listens on no {scheme} address: {:?}", self.urls))
    }
}

/// Waits until the log file `log` of `child` has a line containing `says`, and returns what
/// follows `says` on it; panics with the log if the child exits first or `within` passes.
pub fn wait_for_log_line(child: &mut Child, log: &Path, says: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|line| line.contains(says)) {
            return line[line.find(says).unwrap() + says.len()..].to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited with {status} before saying {says:?}; log:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "did not say {says:?} within {within:?}; log:\n{text}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The listeners of margay's "listening on" line, as (scheme, address): `http://` and
/// `https://` URLs, each followed by a comma or a space.
pub fn listening_urls(line: &str) -> Vec<(String, SocketAddr)> {
    line.split([',', ' '])
        .filter_map(|word| {
            let (scheme, rest) = ["http://", "https://"]
                .iter()
                .find_map(|scheme| Some((*scheme, word.strip_prefix(scheme)?)))?;
            Some((scheme.to_string(), rest.parse().ok()?))
        })
        .collect()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ProcessBuilder {
    /// Listens on `ip` (a free port of it) instead of `127.0.0.1`.
    pub fn ip(mut self, ip: &str) -> ProcessBuilder {
        self.ip = ip.parse().expect("an IP address");
        self
    }

    /// Writes the access log to `path` instead of switching it off.
    pub fn access_log(mut self, path: impl Into<PathBuf>) -> ProcessBuilder {
        self.access_log = Some(path.into());
        self
    }

    /// More command-line options.
    pub fn args(mut self, args: &[&str]) -> ProcessBuilder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Starts the binary under a shell that first lowers its descriptor limit (`ulimit -n`).
    pub fn fd_limit(mut self, limit: u32) -> ProcessBuilder {
        self.fd_limit = Some(limit);
        self
    }

    /// Spawns the binary and waits until it accepts connections.
    pub fn start(self) -> ServerProcess {
        let site = Site::new();
        let log_dir = TempDir::new().unwrap();
        let log = std::fs::File::create(log_dir.path().join("server.log")).unwrap();
        let addr = SocketAddr::new(self.ip, 0);
        let binary = env!("CARGO_BIN_EXE_margay");
        let mut command = match self.fd_limit {
            Some(limit) => {
                let mut shell = Command::new("sh");
                let script = format!(r#"ulimit -n {limit} && exec "$0" "$@""#);
                shell.arg("-c").arg(script).arg(binary);
                shell
            }
            None => Command::new(binary),
        };
        command
            .args(["--listen", &addr.to_string(), "--root"])
            .arg(site.root())
            .arg("--access-log")
            .arg(self.access_log.unwrap_or_else(|| "off".into()))
            .args(["--log-level", "info", "--model", model_flag(self.model)])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command.spawn().expect("spawn margay");
        let mut process = ServerProcess {
            child,
            addr,
            urls: Vec::new(),
            log_dir,
            site,
        };
        process.wait_until_listening();
        process
    }
}
