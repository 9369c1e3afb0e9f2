//! Certificates: PEM chains and private keys loaded and checked as pairs, chosen per handshake
//! by the server name the client asks for (SNI), and replaced without a restart.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A certificate chain and its private key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePair {
    /// PEM file with the certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// Why a certificate pair cannot be used; the message names the file.
#[derive(Debug)]
pub struct CertificateError(String);

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CertificateError {}

impl CertificateError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> CertificateError {
        CertificateError(message.into())
    }
}

/// One loaded pair: what rustls signs with, and the end-entity certificate to match names
/// against.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
}

impl Loaded {
    /// Whether the certificate is valid for `name` the way a client checks it (its subject
    /// alternative names, wildcards included).
    fn serves(&self, name: &ServerName<'_>) -> bool {
        let Some(end_entity) = self.key.cert.first() else {
            return false;
        };
        webpki::EndEntityCert::try_from(end_entity)
            .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// Loads and checks every pair; the first error stops it.
fn load_all(
    pairs: &[CertificatePair],
    provider: &CryptoProvider,
) -> Result<Vec<Loaded>, CertificateError> {
    pairs.iter().map(|pair| load(pair, provider)).collect()
}

fn load(pair: &CertificatePair, provider: &CryptoProvider) -> Result<Loaded, CertificateError> {
    let cert_file = pair.cert.display();
    let key_file = pair.key.display();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pair.cert)
        .map_err(|e| CertificateError::new(format!("certificate {cert_file}: {}", pem_error(&e))))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            CertificateError::new(format!("certificate {cert_file}: {}", pem_error(&e)))
        })?;
    if chain.is_empty() {
        return Err(CertificateError::new(format!(
            "certificate {cert_file}: no PEM certificate in it"
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&pair.key)
        .map_err(|e| CertificateError::new(format!("private key {key_file}: {}", pem_error(&e))))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertificateError::new(format!("private key {key_file}: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|_| {
        CertificateError::new(format!(
            "private key {key_file} does not belong to certificate {cert_file}"
        ))
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
    })
}

/// The files of every pair, each chain before its key.
fn files(pairs: &[CertificatePair]) -> impl Iterator<Item = &Path> {
    pairs
        .iter()
        .flat_map(|pair| [pair.cert.as_path(), pair.key.as_path()])
}

fn fingerprint(pairs: &[CertificatePair]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    files(pairs)
        .map(|file| {
            let m = std::fs::metadata(file).ok()?;
            Some([
                m.dev() as i64,
                m.ino() as i64,
                m.size() as i64,
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ])
        })
        .collect()
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the right kind in it".into(),
        other => format!("not valid PEM ({other})"),
    }
}

/// Picks the certificate for each handshake: the first pair valid for the server name the
/// client sent, else the first pair. Holds the pairs' files so they can be read again.
#[derive(Debug)]
pub struct Certificates {
    pairs: Vec<CertificatePair>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Vec<Loaded>>>,
    /// The files as they were just before they were last read.
    read: Mutex<Fingerprint>,
}

/// What tells whether files changed without reading them: for each, the file it leads to,
/// its size, and its modification and change times.
type Fingerprint = Vec<Option<[i64; 7]>>;

impl Certificates {
    /// Loads every pair; an unreadable, malformed or mismatched one is an error naming the
    /// file.
    pub fn load(
        pairs: Vec<CertificatePair>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Certificates, CertificateError> {
        if pairs.is_empty() {
            return Err(CertificateError::new(
                "TLS needs at least one certificate and key",
            ));
        }
        // Taken first: a change made while the files are read shows as one afterwards.
        let read = fingerprint(&pairs);
        let loaded = load_all(&pairs, &provider)?;
        Ok(Certificates {
            pairs,
            provider,
            current: RwLock::new(Arc::new(loaded)),
            read: Mutex::new(read),
        })
    }

    /// Reads every pair again; new handshakes use them from now on. On any error the pairs in
    /// use stay.
    pub fn reload(&self) -> Result<(), CertificateError> {
        *self
            .read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fingerprint(&self.pairs);
        let loaded = load_all(&self.pairs, &self.provider)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    /// Whether a file changed (or was replaced) since the files were last read.
    pub fn changed_since_read(&self) -> bool {
        fingerprint(&self.pairs)
            != *self
                .read
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The files of every pair.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        files(&self.pairs)
    }

    fn loaded(&self) -> Arc<Vec<Loaded>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded();
        if loaded.len() > 1
            && let Some(name) = hello.server_name()
            && let Ok(name) = ServerName::try_from(name)
            && let Some(pair) = loaded.iter().find(|pair| pair.serves(&name))
        {
            return Some(pair.key.clone());
        }
        loaded.first().map(|pair| pair.key.clone())
    }
}
