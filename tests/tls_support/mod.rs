//! A throwaway PKI for the TLS tests, made in the test: a CA, leaves it signs for the names
//! asked (ECDSA P-256, or RSA with a fixed test key), their private keys written as PKCS#8,
//! SEC1 or PKCS#1 PEM, and a rustls client that trusts the CA (or records whatever it is
//! shown), talking over a `TcpStream` with timeouts.

#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a TLS client's socket may block in one read or write.
pub const TLS_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A 2048-bit RSA key in PKCS#8, made with `openssl genpkey` for these tests only (ring, which
/// rcgen uses here, cannot generate RSA keys). It protects nothing.
const RSA_TEST_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCYRMImpLyfqmNj
UgSZNVsiSbyLEwI9+7FlUY4xljtP+vV+8c4gtEGXcHeFoboIxmk6MbvTGNb/VD4V
btqExfEws5RqJm0qmPQ0LOm3ATm2B/hx7Bo2woWEMnwxV1Gm+5snaeH43EUVJ0bm
y1/eS+/oZE+pIR/ernpLvH8BH5N9B6dhua6qoFVU8N35UzrDwOM30SOzxWrEx4Nv
TYUSPSq0e2i/sdlKUg9dzyozsTYOv4WvTi8ggDsUdtBttZSF8Dr50jrBh6oKcSlN
agGBQMXwCsr3w9Uj3vZWSSkByK/XUQqPTAb8A3ACko8KIvFwEctI6+nDLZd/2BWv
HARW2MkxAgMBAAECggEABPruvLPTpYc9o/B5TQeFOQxfWc8f2iYiybUOqQmIXBfR
srq26rPql0jq59h/zKysoWYiBggAdC5tr2bGR+RvfI/LEWO7W1LQXeqAJGeqWw1M
r3Ew9EyNcGL0U+rOtV7yVqosZWbS7ZuwwnixZIRoTtoFDvuR3scnIdYC82b0fHjY
LYvxMl0VyxBvyfA2yEBkt5ungv3E4prlhZa3lKN2hTJKs0KE8QKhTSDCfKKvxzi8
iNWxdkr/1N++KkyfePaL0MTJd3X5UTYgkaI4WFGup0KFHZ6RTCuBcLeA0DP8QbEz
WuOYQBG1svtPAK8HGCZZ8TnVfJvNZl/yfVxXQ7QsCQKBgQDQ+HkjcYPiuW9tPrhx
b2a5ueWg3SnqPcQfoo05scgWZdx/tRsbmUkbmUKI4YXp7HIQQ2ZMg+VztZTCG2bs
V4+BxSs8AYTA3SlJk5txKJ64Ceat7RK7Mm2mFO/m941cqEhMg9vGdK2fE8Jok5mX
CyIuYasZNvi23eSE20YXano/pQKBgQC6iXvufkmiLsvNuIOmdbZOg+gnGRjMvULK
3tD+mZmL5eb/yWnAUMPiTNAI/9xN4G9JZxnzdACyuWcY4tgHmJv8010ZWoCUHreC
Ht7eY7yhhb1bqqXD7LBcHLCtgMp3tVbYMHfRvKp151kFFUGpUR3w6ehKflFroQOl
NqAMFuTtnQKBgHopR2fY7GiWTvVmPRzTKxJYAk1P/TjactSrijO4Img1k/l0Piyc
J4jix2qNrGNbvjKTtDH2ySQjepseucRgS5xpTyT9HkZBA+nnSG+Wd3LPFvOGK/UT
PdZhVv2GqjUIi3tvegNCIl1kh7nqz1blQ04p+oP7BtqgTP790LPPozehAoGAG5Mn
VuIkUG1Kg2a7T2gnQwQM1XrIR7vSm9rEWl6qbBvYQgesMlm+Gz3vouTv1DNRQDCV
jX+gessding+JyFQLdew84aFa1//EKUvnQBxag8zJtHbH1Nl3rf/Bib7xyZvaBYC
IGcba8J/TlkOE9GB85MgW6LAtoBe4ZVpo1/fB6ECgYAa46L4Tswf+6NIuNszt/en
sUohzOQb300Jia/cY8fxeOJkFQtZUpewygFfPyYA9EfEdKs7ur5cBOy+n5fc9pYM
GwpslqFYZrrCxVcOSdrdFNl8rVroWJqWnOyKCEgJvc7M3Yha3Gl/P4PVxFo6EzoL
O/PC5Ukp3G6opDvg+U57UQ==
-----END PRIVATE KEY-----
";

/// A client over TLS: rustls on a blocking `TcpStream`.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// The key algorithm of a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    Rsa,
}

/// How a private key is written to its PEM file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `PRIVATE KEY`: PKCS#8, either algorithm.
    Pkcs8,
    /// `EC PRIVATE KEY`: SEC1, ECDSA only.
    Sec1,
    /// `RSA PRIVATE KEY`: PKCS#1, RSA only.
    Pkcs1,
}

/// A certificate authority that exists for one test.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

impl Ca {
    /// A fresh self-signed CA with an ECDSA P-256 key, called `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The CA's certificate as PEM.
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    /// A leaf for `names` (DNS names or IP addresses) with a new ECDSA P-256 key.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_of(names, KeyKind::EcdsaP256)
    }

    /// A leaf for `names` with a key of `kind` (RSA: always the same test key).
    pub fn leaf_of(&self, names: &[&str], kind: KeyKind) -> Leaf {
        let key = match kind {
            KeyKind::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
            KeyKind::Rsa => {
                let der = pem_body(RSA_TEST_KEY);
                KeyPair::from_pkcs8_der_and_sign_algo(
                    &PrivatePkcs8KeyDer::from(der),
                    &PKCS_RSA_SHA256,
                )
                .expect("the RSA test key")
            }
        };
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf names");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let cert = params.signed_by(&key, &self.issuer).expect("leaf signed");
        Leaf {
            der: cert.der().clone(),
            pkcs8: key.serialize_der(),
            kind,
        }
    }

    /// Roots that trust this CA alone.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("CA in the root store");
        roots
    }
}

/// A certificate and its private key.
#[derive(Clone)]
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pkcs8: Vec<u8>,
    kind: KeyKind,
}

impl Leaf {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    /// The private key as PEM in `format`.
    pub fn key_pem(&self, format: KeyFormat) -> String {
        match (format, self.kind) {
            (KeyFormat::Pkcs8, _) => pem("PRIVATE KEY", &self.pkcs8),
            (KeyFormat::Sec1, KeyKind::EcdsaP256) => {
                pem("EC PRIVATE KEY", pkcs8_inner_key(&self.pkcs8))
            }
            (KeyFormat::Pkcs1, KeyKind::Rsa) => {
                pem("RSA PRIVATE KEY", pkcs8_inner_key(&self.pkcs8))
            }
            (format, kind) => panic!("a {kind:?} key cannot be written as {format:?}"),
        }
    }

    /// Writes `NAME.crt` and `NAME.key` (PKCS#8) into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        self.write_as(dir, name, KeyFormat::Pkcs8)
    }

    /// Writes `NAME.crt` and `NAME.key` with the key in `format` into `dir`.
    pub fn write_as(&self, dir: &Path, name: &str, format: KeyFormat) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, self.cert_pem()).unwrap();
        std::fs::write(&key, self.key_pem(format)).unwrap();
        (cert, key)
    }
}

/// The private key inside a PKCS#8 `PrivateKeyInfo` (SEQUENCE { version, algorithm,
/// OCTET STRING key, ... }): the SEC1 or PKCS#1 structure the OCTET STRING holds.
pub fn pkcs8_inner_key(pkcs8: &[u8]) -> &[u8] {
    let (tag, info, _) = der_element(pkcs8);
    assert_eq!(tag, 0x30, "PKCS#8 is a SEQUENCE");
    let (tag, _, rest) = der_element(info);
    assert_eq!(tag, 0x02, "PKCS#8 starts with its version");
    let (tag, _, rest) = der_element(rest);
    assert_eq!(tag, 0x30, "then the algorithm");
    let (tag, key, _) = der_element(rest);
    assert_eq!(tag, 0x04, "then the key in an OCTET STRING");
    key
}

/// One DER element at the start of `der`: its tag, its contents, and what follows it.
fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, header) = match der[1] {
        short @ 0..=0x7f => (usize::from(short), 2),
        long => {
            let count = usize::from(long & 0x7f);
            let len = der[2..2 + count]
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b));
            (len, 2 + count)
        }
    };
    (tag, &der[header..header + len], &der[header + len..])
}

/// `der` as a PEM block labelled `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The bytes of a single-block PEM text.
fn pem_body(pem: &str) -> Vec<u8> {
    let text: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    unbase64(&text)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut held) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = BASE64.iter().position(|&b| b == c).expect("base64") as u32;
        bits = bits << 6 | value;
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
        }
    }
    out
}

/// rustls with ring, as the server uses it.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a test client offers.
#[derive(Clone)]
pub struct ClientOptions {
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    pub alpn: Vec<Vec<u8>>,
    /// Send the server name (SNI) when connecting by name.
    pub sni: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            alpn: vec![b"http/1.1".to_vec()],
            sni: true,
        }
    }
}

impl ClientOptions {
    /// Only TLS 1.3.
    pub fn tls13() -> ClientOptions {
        ClientOptions {
            versions: vec![&rustls::version::TLS13],
            ..ClientOptions::default()
        }
    }

    /// Only TLS 1.2.
    pub fn tls12() -> ClientOptions {
        ClientOptions {
            versions: vec![&rustls::version::TLS12],
            ..ClientOptions::default()
        }
    }
}

/// A client configuration that trusts `roots`; it keeps sessions for resumption (rustls's
/// default in-memory cache), so connections made with the same configuration resume.
pub fn client_config(roots: RootCertStore, options: &ClientOptions) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&options.versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = options.alpn.clone();
    config.enable_sni = options.sni;
    Arc::new(config)
}

/// A client that trusts `ca`, offering TLS 1.3 and 1.2 and ALPN `http/1.1`.
pub fn trusting(ca: &Ca) -> Arc<ClientConfig> {
    client_config(ca.roots(), &ClientOptions::default())
}

/// A client configuration that accepts any certificate (and checks the handshake
/// signatures), so a test can look at which certificate the server chose for a name it is
/// not valid for.
pub fn accepting_any(options: &ClientOptions) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&options.versions)
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    config.alpn_protocols = options.alpn.clone();
    config.enable_sni = options.sni;
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `addr` as `name` (a DNS name, sent as SNI, or an IP address, which sends
/// none) and completes the handshake; the error is what the handshake failed with.
pub fn try_connect_tls(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> io::Result<TlsStream> {
    let server_name = ServerName::try_from(name.to_string()).expect("a server name");
    let conn = ClientConnection::new(config.clone(), server_name).map_err(io::Error::other)?;
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(TLS_IO_TIMEOUT))?;
    sock.set_write_timeout(Some(TLS_IO_TIMEOUT))?;
    sock.set_nodelay(true)?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Like [`try_connect_tls`], panicking if the handshake fails.
pub fn connect_tls(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> TlsStream {
    try_connect_tls(addr, config, name)
        .unwrap_or_else(|e| panic!("TLS handshake with {addr} as {name:?}: {e}"))
}

/// The rustls error a failed handshake's I/O error carries.
pub fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The certificate the server presented on `stream`.
pub fn presented(stream: &TlsStream) -> CertificateDer<'static> {
    stream
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server presented a certificate")
        .clone()
}

/// A ClientHello as a real client would send it first, for tests that cut it short.
pub fn client_hello() -> Vec<u8> {
    let config = accepting_any(&ClientOptions::default());
    let mut conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
        .expect("client connection");
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    hello
}

/// The binary's arguments for HTTPS on a port of its choosing with the pair given.
pub fn https_args<'a>(cert: &'a Path, key: &'a Path) -> [&'a str; 6] {
    [
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]
}
