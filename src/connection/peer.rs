//! A peer's address in 20 bytes. `SocketAddr` takes 32 (an IPv6 address carries a flow label
//! and a scope id, which nothing here reads), and every idle connection keeps one.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// An IP address and port. An IPv4 address is kept as its IPv4-mapped IPv6 form and given
/// back as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    ip: [u8; 16],
    port: u16,
    v4: bool,
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        let (ip, v4) = match addr.ip() {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), true),
            IpAddr::V6(v6) => (v6.octets(), false),
        };
        Peer {
            ip,
            port: addr.port(),
            v4,
        }
    }
}

impl Peer {
    /// The address.
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.ip);
        match v6.to_ipv4_mapped() {
            Some(v4) if self.v4 => IpAddr::V4(v4),
            _ => IpAddr::V6(v6),
        }
    }

    /// The address and port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn an_address_comes_back_as_it_went_in() {
        let addrs: [SocketAddr; 4] = [
            "198.51.100.7:443".parse().unwrap(),
            "[2001:db8::1]:8080".parse().unwrap(),
            // An IPv4-mapped IPv6 peer (a dual-stack listener) stays IPv6.
            "[::ffff:192.0.2.1]:1".parse().unwrap(),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        ];
        for addr in addrs {
            let peer = Peer::from(addr);
            assert_eq!(peer.addr(), addr);
            assert_eq!(peer.ip(), addr.ip());
            assert_eq!(peer.to_string(), addr.to_string());
        }
        assert_eq!(std::mem::size_of::<Peer>(), 20);
    }
}
