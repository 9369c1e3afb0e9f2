//! Listening sockets: what each kind means for the connections it accepts, and how a socket
//! is bound with the options every accepted connection inherits.

use crate::config::Config;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What a listener's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// HTTP over plain TCP.
    Plain,
    /// HTTP over TLS.
    Tls,
    /// Plain HTTP for monitoring only: `/metrics`, `/healthz`, `/api/status` and
    /// `/api/events`, which the other listeners then do not serve.
    Admin,
}

impl ListenerKind {
    /// The URI scheme of the requests it accepts.
    pub fn scheme(self) -> Scheme {
        match self {
            ListenerKind::Plain | ListenerKind::Admin => Scheme::Http,
            ListenerKind::Tls => Scheme::Https,
        }
    }
}

/// The scheme a request arrived under: what an absolute URL back to this server starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http`
    Http,
    /// `https`
    Https,
}

/// A bound listening socket and its kind.
#[derive(Debug)]
pub struct Listener {
    /// The socket, listening.
    pub socket: std::net::TcpListener,
    /// What its connections speak.
    pub kind: ListenerKind,
}

/// Binds a listening TCP socket with a deep backlog and the options every accepted
/// connection inherits.
pub(crate) fn bind(
    addr: SocketAddr,
    reuse_port: bool,
    config: &Config,
) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Accepted sockets inherit it: responses leave at once, with no syscall per connection.
    socket.set_tcp_nodelay(true)?;
    set_defer_accept(&socket, config.defer_accept)?;
    if let Some(bytes) = config.send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    // As deep as the system allows: the kernel caps it at `net.core.somaxconn` (4096 by
    // default), so raising that is all a site expecting large bursts of clients needs.
    socket.listen(i32::MAX)?;
    Ok(socket.into())
}

/// Sets `TCP_DEFER_ACCEPT` (whole seconds, rounded up); socket2 has no call for it.
#[cfg(target_os = "linux")]
fn set_defer_accept(socket: &socket2::Socket, wait: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let secs = libc::c_int::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        .unwrap_or(libc::c_int::MAX);
    // SAFETY: the descriptor is open for the duration of the call, and the option value is a
    // c_int passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Other systems accept at once.
#[cfg(not(target_os = "linux"))]
fn set_defer_accept(_socket: &socket2::Socket, _wait: Duration) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let config = Config::default()
            .defer_accept(Duration::ZERO)
            .send_buffer(Some(50_000));
        let listener = bind("127.0.0.1:0".parse().unwrap(), false, &config).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        let send_buffer = socket2::SockRef::from(&accepted)
            .send_buffer_size()
            .unwrap();
        // Linux reports twice the size asked for (it counts its bookkeeping too).
        assert!(
            (50_000..=100_000).contains(&send_buffer),
            "accepted socket's send buffer: {send_buffer}"
        );
    }
}
