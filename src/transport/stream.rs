//! A client's transport as the shells hold it: plain TCP, or TLS over TCP, chosen by the
//! listener that accepted it.

use super::pipe::Pipe;
use super::tls::settings::TlsSettings;
use super::{Plain, Tls, Transport};
use crate::listener::ListenerKind;
use crate::stats::Stats;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;

/// Plain or TLS over a socket `S`. TLS state is boxed: a plain connection stays small.
pub enum Stream<S: Read + Write + AsFd> {
    /// Bytes as they are.
    Plain(Plain<S>),
    /// rustls between the socket and the core.
    Tls(Box<Tls<S>>),
}

impl<S: Read + Write + AsFd> Stream<S> {
    /// The transport for a socket a listener of `kind` accepted.
    pub fn accept(
        socket: S,
        kind: ListenerKind,
        tls: Option<&TlsSettings>,
        stats: &Arc<Stats>,
    ) -> io::Result<Stream<S>> {
        match (kind, tls) {
            (ListenerKind::Plain | ListenerKind::Admin, _) => Ok(Stream::Plain(Plain(socket))),
            (ListenerKind::Tls, Some(tls)) => {
                let session =
                    rustls::ServerConnection::new(tls.config.clone()).map_err(io::Error::other)?;
                Ok(Stream::Tls(Box::new(Tls::new(
                    socket,
                    session,
                    stats.clone(),
                ))))
            }
            (ListenerKind::Tls, None) => {
                Err(io::Error::other("a TLS listener without TLS settings"))
            }
        }
    }

    /// The socket, for (de)registration with the poller.
    pub fn socket_mut(&mut self) -> &mut S {
        match self {
            Stream::Plain(plain) => &mut plain.0,
            Stream::Tls(tls) => tls.socket_mut(),
        }
    }
}

impl<S: Read + Write + AsFd> Transport for Stream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    fn write(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.write(bufs, more),
            Stream::Tls(t) => t.write(bufs, more),
        }
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.send_file(file, offset, len),
            Stream::Tls(t) => t.send_file(file, offset, len),
        }
    }

    fn splices(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    fn send_piped(&mut self, pipe: &mut Pipe, len: usize, more: bool) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.send_piped(pipe, len, more),
            Stream::Tls(t) => t.send_piped(pipe, len, more),
        }
    }

    fn recv_piped(&mut self, pipe: &mut Pipe, len: usize) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.recv_piped(pipe, len),
            Stream::Tls(t) => t.recv_piped(pipe, len),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(t) => t.shutdown_write(),
            Stream::Tls(t) => t.shutdown_write(),
        }
    }

    fn has_pending(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.has_pending(),
        }
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.flush_pending(),
        }
    }

    fn end_output(&mut self, whole: bool) {
        if let Stream::Tls(t) = self {
            t.end_output(whole);
        }
    }

    fn short_read_empties(&self) -> bool {
        match self {
            Stream::Plain(_) => true,
            Stream::Tls(t) => t.short_read_empties(),
        }
    }

    fn tls_session(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => t.tls_session(),
        }
    }
}
