//! What every TLS listener shares: rustls's server configuration over the certificates, and
//! the thread that reads the certificates again when their files change or on request.

use super::certs::{CertificateError, CertificatePair, Certificates};
use crate::control::Control;
use inotify::{Inotify, WatchMask};
use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sessions kept for resumption by session ID (TLS 1.2 clients without tickets).
const SESSION_CACHE: usize = 4096;
/// How long the files must stay quiet after a change before they are read again: a renewal
/// writes the chain and the key one after the other.
const SETTLE: Duration = Duration::from_millis(200);
/// How often the watcher looks at the shutdown flag and the reload request.
const WAKE: Duration = Duration::from_millis(250);

/// The TLS side of a server: the configuration handshakes use, and its certificates.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// What every TLS connection is created from.
    pub config: Arc<ServerConfig>,
    /// The certificates, to read again on a change.
    pub certificates: Arc<Certificates>,
}

impl TlsSettings {
    /// TLS 1.3 and 1.2 with rustls's default cipher suites (ring), ALPN `http/1.1` only (a
    /// client that offers only `h2` gets the `no_application_protocol` alert), session
    /// tickets with keys that rotate, and a session cache for clients without tickets.
    pub fn new(pairs: Vec<CertificatePair>) -> Result<TlsSettings, CertificateError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificates = Arc::new(Certificates::load(pairs, provider.clone())?);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| CertificateError::from(format!("TLS settings: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| CertificateError::from(format!("TLS session tickets: {e}")))?;
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        Ok(TlsSettings {
            config: Arc::new(config),
            certificates,
        })
    }

    /// Starts the thread that reads the certificates again when their files change
    /// (inotify on their directories, so a renewal that replaces a file or a symlink is seen
    /// too) or when `reload` is set (SIGHUP in the binary). A broken or mismatched new pair is
    /// logged and the pairs in use stay. The thread ends with the server.
    pub fn watch(&self, reload: Arc<AtomicBool>, control: Arc<Control>) {
        let certificates = self.certificates.clone();
        // Watching starts before this returns, so no change made after the start is missed.
        let inotify = match watch_directories(&certificates) {
            Ok(inotify) => Some(inotify),
            Err(e) => {
                log::warn!("certificate files cannot be watched ({e}); SIGHUP still reloads them");
                None
            }
        };
        let spawned = std::thread::Builder::new()
            .name("margay-certificates".into())
            .spawn(move || watch(&certificates, inotify, &reload, &control));
        if let Err(e) = spawned {
            log::warn!("certificate changes cannot be watched: {e}");
        }
    }
}

fn watch(
    certificates: &Certificates,
    mut inotify: Option<Inotify>,
    reload: &AtomicBool,
    control: &Control,
) {
    let mut changed = false;
    let mut buffer = [0u8; 4096];
    while !control.is_shutting_down() {
        let wait = if changed { SETTLE } else { WAKE };
        let ready = inotify
            .as_ref()
            .is_some_and(|inotify| readable(inotify.as_raw_fd(), wait));
        if inotify.is_none() {
            std::thread::sleep(wait);
        }
        if ready && let Some(inotify) = &mut inotify {
            // Drain the queue; which file changed does not matter, all are read again.
            while inotify
                .read_events(&mut buffer)
                .is_ok_and(|e| e.count() > 0)
            {}
            changed = true;
            continue;
        }
        if changed || reload.swap(false, Ordering::SeqCst) {
            changed = false;
            match certificates.reload() {
                Ok(()) => log::info!("certificates read again; new handshakes use them"),
                Err(e) => log::error!("{e}; the certificates in use are kept"),
            }
        }
    }
}

/// Watches the directory of every certificate and key file, and of the file a symlink leads
/// to.
fn watch_directories(certificates: &Certificates) -> std::io::Result<Inotify> {
    let inotify = Inotify::init()?;
    let mask = WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::ATTRIB
        | WatchMask::MODIFY;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for file in certificates.files() {
        let candidates = [Some(file.to_path_buf()), std::fs::canonicalize(file).ok()];
        for path in candidates.into_iter().flatten() {
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir.to_path_buf()
                };
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
    }
    for dir in &dirs {
        inotify.watches().add(dir, mask)?;
    }
    Ok(inotify)
}

/// Waits up to `wait` for `fd` to become readable.
fn readable(fd: std::os::fd::RawFd, wait: Duration) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut pollfd, 1, millis) };
    n > 0 && pollfd.revents & libc::POLLIN != 0
}

impl From<String> for CertificateError {
    fn from(message: String) -> CertificateError {
        CertificateError::new(message)
    }
}
