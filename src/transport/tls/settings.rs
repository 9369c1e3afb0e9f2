//! What every TLS listener shares: rustls's server configuration over the certificates, and
//! the thread that reads the certificates again when their files change or on request.

use super::certs::{CertificateError, CertificatePair, Certificates};
use crate::control::Control;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sessions kept for resumption by session ID (TLS 1.2 clients without tickets).
const SESSION_CACHE: usize = 4096;
/// How long the files must stay quiet after a change before they are read again: a renewal
/// writes the chain and the key one after the other.
const SETTLE: Duration = Duration::from_millis(200);
/// How often the watcher looks at the shutdown flag and the reload request.
const WAKE: Duration = Duration::from_millis(250);
/// The shortest time between two reads of the directories' events.
const READ_GAP: Duration = Duration::from_millis(50);

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
        let watched = match Inotify::init().and_then(|inotify| Watched::new(inotify, &certificates))
        {
            Ok(watched) => Some(watched),
            Err(e) => {
                log::warn!("certificate files cannot be watched ({e}); SIGHUP still reloads them");
                None
            }
        };
        let spawned = std::thread::Builder::new()
            .name("margay-certificates".into())
            .spawn(move || watch(&certificates, watched, &reload, &control));
        if let Err(e) = spawned {
            log::warn!("certificate changes cannot be watched: {e}");
        }
    }
}

fn watch(
    certificates: &Certificates,
    mut watched: Option<Watched>,
    reload: &AtomicBool,
    control: &Control,
) {
    // When the last change to a certificate file was seen, until the files are read again;
    // one made between their first read and the start of the watch counts too.
    let mut changed_at = certificates.changed_since_read().then(Instant::now);
    let mut last_read = Instant::now();
    while !control.is_shutting_down() {
        let wait = changed_at.map_or(WAKE, |at| SETTLE.saturating_sub(at.elapsed()));
        match &mut watched {
            Some(watched) if readable(watched.inotify.as_raw_fd(), wait) => {
                // Other files in the same directories (a log beside the certificates) may
                // change without pause: their events are read no more often than this.
                std::thread::sleep(READ_GAP.saturating_sub(last_read.elapsed()));
                last_read = Instant::now();
                if watched.read_changes() {
                    changed_at = Some(last_read);
                }
            }
            Some(_) => {}
            None => std::thread::sleep(wait),
        }
        let settled = changed_at.is_some_and(|at| at.elapsed() >= SETTLE);
        let asked = reload.swap(false, Ordering::SeqCst);
        if !settled && !asked {
            continue;
        }
        changed_at = None;
        // Events for a file that ends as it was read are no change.
        if !asked && !certificates.changed_since_read() {
            continue;
        }
        match certificates.reload() {
            Ok(()) => log::info!("certificates read again; new handshakes use them"),
            Err(e) => log::error!("{e}; the certificates in use are kept"),
        }
        // A renewal may have moved where the files lead (a mounted secret's new directory).
        if let Some(watched) = &mut watched
            && let Err(e) = watched.watch(certificates)
        {
            log::warn!(
                "certificate files cannot be watched again ({e}); SIGHUP still reloads them"
            );
        }
    }
}

/// The directories the certificate files are in (and the ones their symlinks lead to), and the
/// names in them whose change may change a certificate: each file's own, its symlink target's,
/// and the first step of a relative symlink (the `..data` a mounted secret swaps). A renewal
/// that replaces a file, or a symlink, is seen; a log written beside them is not.
struct Watched {
    inotify: Inotify,
    /// A handful per pair: looked through, not hashed, so an event's name is not copied.
    names: Vec<(WatchDescriptor, OsString)>,
}

impl Watched {
    fn new(inotify: Inotify, certificates: &Certificates) -> std::io::Result<Watched> {
        let mut watched = Watched {
            inotify,
            names: Vec::new(),
        };
        watched.watch(certificates)?;
        Ok(watched)
    }

    /// Watches where the files are now.
    fn watch(&mut self, certificates: &Certificates) -> std::io::Result<()> {
        let mask = WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::ATTRIB
            | WatchMask::MODIFY;
        let mut names = Vec::new();
        for file in certificates.files() {
            let mut entries: Vec<PathBuf> = vec![file.to_path_buf()];
            if let Ok(target) = std::fs::read_link(file)
                && target.is_relative()
                && let Some(first) = target.components().next()
            {
                entries.push(file.with_file_name(first));
            }
            entries.extend(std::fs::canonicalize(file).ok());
            for entry in entries {
                let (Some(dir), Some(name)) = (entry.parent(), entry.file_name()) else {
                    continue;
                };
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                let entry = (self.inotify.watches().add(dir, mask)?, name.to_os_string());
                if !names.contains(&entry) {
                    names.push(entry);
                }
            }
        }
        self.names = names;
        Ok(())
    }

    /// Reads the events waiting; true if one may have changed a certificate file.
    fn read_changes(&mut self) -> bool {
        let mut buffer = [0u8; 4096];
        let mut changed = false;
        // Bounded: a directory that never stops changing cannot keep the thread here.
        for _ in 0..64 {
            let Ok(events) = self.inotify.read_events(&mut buffer) else {
                break;
            };
            let mut any = false;
            for event in events {
                any = true;
                changed |= event.mask.contains(EventMask::Q_OVERFLOW)
                    || event.name.is_some_and(|name| {
                        self.names
                            .iter()
                            .any(|(wd, n)| *wd == event.wd && n == name)
                    });
            }
            if !any {
                break;
            }
        }
        changed
    }
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
