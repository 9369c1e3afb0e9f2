//! Fuzzes HTTPS below HTTP: an in-process rustls client talks to the server's `Tls` transport
//! and a `Connection`, driven by the same `pump` the event loop and the thread model use, over
//! a Unix socket pair. The client's ciphertext reaches the server in pieces cut where the
//! input says, and (with a flag) with one byte flipped on the way.
//!
//! Input layout: byte 0 holds flags (bits 0-3: how many cut points follow; bit 4: flip a byte;
//! bit 5: the client offers only TLS 1.2). Then two bytes (little-endian) per cut point, an
//! offset into the client's ciphertext; with bit 4, two bytes of offset and one byte to XOR
//! there. The rest is the plaintext the client sends once connected (HTTP requests).
//!
//! Checked for every input:
//! - nothing panics, and the connection always ends once the client has closed;
//! - without a flipped byte, the handshake completes and the plaintext the client receives is
//!   the same whether the ciphertext arrived cut into pieces or as it came.

#![no_main]

use libfuzzer_sys::fuzz_target;
use margay::AccessLogFormat;
use margay::internals::TrustedProxies;
use margay::internals::{
    CertificatePair, Connection, Execution, Input, ListenerKind, Router, Site, StateMap,
    StaticFiles, Stats, Step, Ticket, Timeouts, Tls, TlsSettings, Worker, expire, pump,
};
use margay::{Method, Request, Response};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Cut points and the flipped byte fall within this much of the client's ciphertext: the
/// handshake and the first records, where the framing is.
const REACH: usize = 4096;
/// Turns of the loop before a connection is declared stuck.
const MAX_TURNS: usize = 100_000;

fuzz_target!(|data: &[u8]| run(data));

/// The certificate, the server's settings, a document root and the clients, built once.
struct World {
    settings: TlsSettings,
    site: Arc<Site>,
    files: StaticFiles,
    tls13: Arc<ClientConfig>,
    tls12: Arc<ClientConfig>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("margay-fuzz-tls-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a self-signed certificate");
        let pair = CertificatePair {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&pair.cert, certified.cert.pem()).unwrap();
        std::fs::write(&pair.key, certified.signing_key.serialize_pem()).unwrap();
        let settings = TlsSettings::new(vec![pair]).expect("TLS settings");
        let root = dir.join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(
            root.join("index.html"),
            "<!DOCTYPE html><title>fuzz</title>\n",
        )
        .unwrap();
        // Larger than the in-memory cache and than one file piece: sent from the file in
        // several encrypted pieces.
        let big: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(root.join("big.txt"), big).unwrap();
        let files = StaticFiles::new(&root).expect("document root");
        let mut router = Router::default();
        router.add(
            Method::Post,
            "/echo",
            Arc::new(|request: &Request| {
                Ok(Response::bytes(
                    "application/octet-stream",
                    request.body().to_vec(),
                ))
            }),
            Execution::OnLoop,
        );
        let site = Arc::new(Site {
            router,
            limits: Default::default(),
            max_body_size: 64 * 1024,
            max_requests_per_connection: 0,
            access_log: false,
            timeouts: Timeouts::default(),
            stats: Arc::new(Stats::new(1)),
            tls: Some(settings.clone()),
            redirect_https: None,
            admin_listener: false,
            access_log_format: AccessLogFormat::Combined,
            trusted_proxies: TrustedProxies::default(),
            state: Arc::new(StateMap::default()),
            pool: None,
            upstreams: None,
        });
        World {
            settings,
            site,
            files,
            tls13: client(&rustls::version::TLS13),
            tls12: client(&rustls::version::TLS12),
        }
    })
}

/// A client for one protocol version that accepts the server's certificate (verification is
/// not what is fuzzed) and keeps no sessions, so every handshake is a full one.
fn client(version: &'static rustls::SupportedProtocolVersion) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client's ciphertext on its way to the server: held back at each cut point until the
/// server has had a turn, one byte changed if asked.
struct Wire {
    held: Vec<u8>,
    /// Bytes of the client's ciphertext passed on so far.
    passed: usize,
    cuts: Vec<usize>,
    flip: Option<(usize, u8)>,
}

impl Wire {
    /// Passes on what the client sent, up to the next cut point. Returns how many bytes.
    fn pass(&mut self, socket: &mut UnixStream) -> usize {
        let stop = self
            .cuts
            .iter()
            .find(|&&cut| cut > self.passed)
            .copied()
            .unwrap_or(usize::MAX);
        let n = self.held.len().min(stop - self.passed);
        if n == 0 {
            return 0;
        }
        if let Some((at, mask)) = self.flip
            && (self.passed..self.passed + n).contains(&at)
        {
            self.held[at - self.passed] ^= mask;
        }
        let written = match socket.write(&self.held[..n]) {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            // The server closed its end: what is left cannot arrive.
            Err(_) => {
                self.held.clear();
                return 0;
            }
        };
        self.held.drain(..written);
        self.passed += written;
        written
    }
}

/// What the client saw of one connection.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    handshake_done: bool,
    /// Plaintext the client received.
    answer: Vec<u8>,
}

fn converse(
    worker: &mut Worker,
    client: &Arc<ClientConfig>,
    mut wire: Wire,
    sent: &[u8],
) -> Outcome {
    let world = world();
    let (server_socket, mut client_socket) = UnixStream::pair().expect("socket pair");
    server_socket.set_nonblocking(true).unwrap();
    client_socket.set_nonblocking(true).unwrap();
    let session = rustls::ServerConnection::new(world.settings.config.clone()).unwrap();
    let mut io = Tls::new(server_socket, session, world.site.stats.clone());
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let now = Instant::now();
    let ticket = Ticket { key: 0, id: 0 };
    let mut conn = Connection::open(peer, ListenerKind::Tls, ticket, now, worker.stats());

    let mut tls = ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap())
        .expect("client connection");
    // Written before the handshake, sent as soon as it completes.
    tls.writer().write_all(sent).unwrap();
    let mut client_failed = false;
    let mut client_closed = false;
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut closed = false;
    for _ in 0..MAX_TURNS {
        let mut moved = 0;
        if !client_failed {
            while tls.wants_write() {
                tls.write_tls(&mut wire.held).unwrap();
            }
        }
        if !client_closed {
            moved += wire.pass(&mut client_socket);
        }
        match pump(&mut conn, &mut io, worker, now, Input::Ready) {
            Step::Close => {
                closed = true;
                break;
            }
            Step::Yield => moved += 1,
            Step::Continue => {}
        }
        // The client reads everything the server wrote (after a failure, only to make room).
        loop {
            match client_socket.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    moved += n;
                    if !client_failed {
                        client_failed = !take_in(&mut tls, &buf[..n], &mut answer);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        if moved == 0 && !(tls.wants_write() && !client_failed) {
            if client_closed {
                // Nothing comes any more: only the deadline can end it now.
                let late = now + Duration::from_secs(3600);
                assert_eq!(
                    expire(&mut conn, &mut io, worker, late),
                    Step::Close,
                    "the connection outlives its deadline"
                );
                closed = true;
                break;
            }
            let _ = client_socket.shutdown(Shutdown::Write);
            client_closed = true;
        }
    }
    assert!(closed, "the connection makes no progress and never ends");
    conn.close(worker);
    Outcome {
        handshake_done: !tls.is_handshaking(),
        answer,
    }
}

/// Feeds the server's ciphertext to the client and collects the plaintext; false once the
/// client has failed (an alert, a broken record).
fn take_in(tls: &mut ClientConnection, mut ciphertext: &[u8], answer: &mut Vec<u8>) -> bool {
    while !ciphertext.is_empty() {
        if tls.read_tls(&mut ciphertext).is_err() || tls.process_new_packets().is_err() {
            return false;
        }
        let mut reader = tls.reader();
        let mut plain = [0u8; 16 * 1024];
        loop {
            match reader.read(&mut plain) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&plain[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
    }
    true
}

fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let cut_count = usize::from(flags & 15);
    let flipping = flags & 16 != 0;
    let header = cut_count * 2 + if flipping { 3 } else { 0 };
    if rest.len() < header {
        return;
    }
    let (header, sent) = rest.split_at(header);
    let offset = |b: &[u8]| usize::from(u16::from_le_bytes([b[0], b[1]])) % REACH;
    let mut cuts: Vec<usize> = header[..cut_count * 2]
        .chunks_exact(2)
        .map(offset)
        .collect();
    cuts.sort_unstable();
    let flip = flipping.then(|| {
        let at = &header[cut_count * 2..];
        (offset(at), at[2].max(1))
    });
    let world = world();
    let client = if flags & 32 != 0 {
        &world.tls12
    } else {
        &world.tls13
    };
    let mut worker = Worker::new(world.site.clone(), 0, world.files.clone());
    let wire = |cuts: Vec<usize>, flip| Wire {
        held: Vec::new(),
        passed: 0,
        cuts,
        flip,
    };

    let split = converse(&mut worker, client, wire(cuts, flip), sent);
    if flip.is_some() {
        return;
    }
    let whole = converse(&mut worker, client, wire(Vec::new(), None), sent);
    assert!(whole.handshake_done, "the handshake did not complete");
    assert_eq!(
        String::from_utf8_lossy(&whole.answer),
        String::from_utf8_lossy(&split.answer),
        "cutting the records changed the answer"
    );
    assert_eq!(whole, split);
}
