//! Helpers of the site-rules tests: the margay binary run with a configuration file, users
//! files with bcrypt hashes, and Basic credentials.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A bcrypt hash of `password` at the lowest cost (4), so that tests stay fast.
pub fn quick_hash(password: &str) -> String {
    bcrypt::hash_with_salt(password, 4, [42; 16])
        .expect("hash")
        .format_for_version(bcrypt::Version::TwoY)
}

/// The `Authorization` value for `user:password`.
pub fn basic(user_password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// Writes a users file called `name` in `dir` with `mode`.
pub fn users_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("create users file");
    file.write_all(text.as_bytes()).expect("write users file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// A free port on 127.0.0.1.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The margay binary serving `root/` of a fresh directory with `site.toml` beside it, its
/// standard output and error in one file; killed on drop.
pub struct Margay {
    child: Child,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Margay {
    /// A directory with `site.toml` holding `config` and an empty `root/`, ready for
    /// [`Margay::start`].
    pub fn prepare(config: &str) -> TempDir {
        let dir = TempDir::new().expect("temp dir");
        std::fs::create_dir(dir.path().join("root")).expect("mkdir root");
        std::fs::write(dir.path().join("site.toml"), config).expect("write site.toml");
        dir
    }

    /// Starts the binary on a free port with `--config site.toml --root root` from `dir`, the
    /// access log and debug log in its output, and `args`; waits until it serves.
    pub fn start(dir: TempDir, args: &[&str]) -> Margay {
        let addr = free_addr();
        let listen = ["--listen".to_string(), addr.to_string()];
        let mut all: Vec<&str> = listen.iter().map(String::as_str).collect();
        all.extend(args);
        Margay::launch(dir, addr, &all)
    }

    /// Like [`Margay::start`], for a `site.toml` that sets `listen = addr` itself.
    pub fn start_from_file(dir: TempDir, addr: SocketAddr, args: &[&str]) -> Margay {
        Margay::launch(dir, addr, args)
    }

    fn launch(dir: TempDir, addr: SocketAddr, args: &[&str]) -> Margay {
        let output = std::fs::File::create(dir.path().join("output.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_margay"))
            .arg("--config")
            .arg(dir.path().join("site.toml"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(["--access-log", "stdout"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone"))
            .stderr(output)
            .spawn()
            .expect("spawn margay");
        let mut margay = Margay { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = margay.child.try_wait() {
                panic!("margay exited with {status}: {}", margay.output());
            }
            assert!(
                Instant::now() < deadline,
                "margay did not listen: {}",
                margay.output()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        margay
    }

    /// The directory holding `site.toml` and `root/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default()
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with the pid of our own child and a valid signal number.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill");
    }

    /// Waits until the output holds `words`, for at most 10 s.
    pub fn wait_for_output(&self, words: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = self.output();
            if output.contains(words) {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "{words:?} never logged:\n{output}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the server and returns everything it wrote.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output()
    }
}

impl Drop for Margay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args`, from nowhere in particular.
pub fn run_margay(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_margay"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run margay")
}
