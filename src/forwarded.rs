//! Who the client is behind trusted proxies: `X-Forwarded-For`, or else `Forwarded: for=`
//! (RFC 7239), believed only as far as a chain of trusted hops vouches for it.
//!
//! The connection's peer is asked first: if it is not a trusted proxy, it is the client, and
//! nothing it sent changes that. Otherwise the list is walked from the right (the hop the
//! peer itself added) past every trusted address; the first untrusted one is the client.

use crate::http::RequestHead;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address as text, on the stack: IPv4 (the usual peer) digit by digit, without the
/// formatting machinery; IPv6 through its `Display` (RFC 5952). For the access log and the
/// forwarded fields, which write the client's address once per request.
pub struct IpText {
    text: [u8; 47],
    len: usize,
}

impl IpText {
    /// `ip` as text.
    pub fn new(ip: IpAddr) -> IpText {
        let mut text = [0u8; 47];
        let mut len = 0;
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text[len] = b'.';
                        len += 1;
                    }
                    if octet >= 100 {
                        text[len] = b'0' + octet / 100;
                        len += 1;
                    }
                    if octet >= 10 {
                        text[len] = b'0' + octet / 10 % 10;
                        len += 1;
                    }
                    text[len] = b'0' + octet % 10;
                    len += 1;
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut text[..]);
                // 45 bytes hold the longest form (with an embedded IPv4 address), 47 with
                // the brackets of `bracketed`.
                let _ = write!(cursor, "{v6}");
                len = cursor.position() as usize;
            }
        }
        IpText { text, len }
    }

    /// `ip` as the host part of an address with a port: an IPv6 address in brackets
    /// (`[2001:db8::1]`, RFC 3986 and RFC 7239's node), an IPv4 address as it is.
    pub fn bracketed(ip: IpAddr) -> IpText {
        let mut ip_text = IpText::new(ip);
        if ip.is_ipv6() {
            let len = ip_text.len;
            ip_text.text.copy_within(..len, 1);
            ip_text.text[0] = b'[';
            ip_text.text[len + 1] = b']';
            ip_text.len = len + 2;
        }
        ip_text
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).unwrap_or("")
    }
}

/// An address block in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address
/// (`192.0.2.1`, taken as `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` lies in the block. An IPv4 address written as IPv6 (`::ffff:a.b.c.d`)
    /// counts as the IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text}: not an IP address or CIDR block"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text}: prefix length over {max}"))?,
            Some(_) => return Err(format!("{text}: bad prefix length")),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    /// Whether `addr` is one of the trusted proxies.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(addr))
    }

    /// The client of a request that arrived from `peer`.
    pub fn client(&self, peer: IpAddr, head: Option<&RequestHead>) -> IpAddr {
        let peer = peer.to_canonical();
        let Some(head) = head else { return peer };
        if !self.trusts(peer) {
            return peer;
        }
        let mut forwarded_for = head.headers_named("x-forwarded-for").peekable();
        if forwarded_for.peek().is_some() {
            let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
            return self.walk(peer, hops.into_iter().rev());
        }
        let hops: Vec<&str> = head
            .headers_named("forwarded")
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for_param)
            .collect();
        self.walk(peer, hops.into_iter().rev())
    }

    /// Walks hops from the nearest: each trusted one hands over to the hop before it; an
    /// unreadable entry stops the walk at the last hop that could be read.
    fn walk<'a>(&self, peer: IpAddr, hops: impl Iterator<Item = &'a str>) -> IpAddr {
        let mut client = peer;
        for hop in hops {
            let Some(addr) = parse_hop(hop) else {
                return client;
            };
            client = addr;
            if !self.trusts(addr) {
                return addr;
            }
        }
        client
    }
}

/// The `for=` value of one `Forwarded` element, quotes removed.
fn forwarded_for_param(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`. `None` for `unknown`, obfuscated names and junk.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Some(rest) = hop.strip_prefix('[') {
        let (addr, _) = rest.split_once(']')?;
        return addr.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    }
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(addr.to_canonical());
    }
    let (addr, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_request;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "10.0.255.1",
            "255.255.255.255",
            "198.51.100.7",
            "::",
            "2001:db8::7",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string(), "{text}");
            // As the host of an address with a port, the way SocketAddr writes it.
            let with_port = std::net::SocketAddr::new(ip, 80).to_string();
            assert_eq!(
                format!("{}:80", IpText::bracketed(ip).as_str()),
                with_port,
                "{text}"
            );
        }
    }

    #[test]
    fn cidr_blocks() {
        // (block, address, contained)
        let rows: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.0", false),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "::1", true),
            ("::1", "::1", true),
            ("10.0.0.0/8", "::1", false),
        ];
        for (block, addr, expected) in rows {
            let cidr: Cidr = block.parse().unwrap();
            assert_eq!(
                cidr.contains(addr.parse().unwrap()),
                *expected,
                "{block} {addr}"
            );
        }
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "x",
            "1.2.3.4/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.1.0.0/16".parse::<Cidr>().unwrap().to_string(),
            "10.1.0.0/16"
        );
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = TrustedProxies(vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        // (peer, header lines, client)
        let rows: &[(&str, &str, &str)] = &[
            // An untrusted peer is the client, whatever it claims.
            (
                "203.0.113.5",
                "X-Forwarded-For: 198.51.100.1\r\n",
                "203.0.113.5",
            ),
            (
                "203.0.113.5",
                "Forwarded: for=198.51.100.1\r\n",
                "203.0.113.5",
            ),
            // A trusted proxy with no header: the proxy.
            ("10.0.0.1", "", "10.0.0.1"),
            (
                "10.0.0.1",
                "X-Forwarded-For: 198.51.100.1\r\n",
                "198.51.100.1",
            ),
            // A client's forged entry on the left is skipped past the real one.
            (
                "10.0.0.1",
                "X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\n",
                "198.51.100.1",
            ),
            (
                "10.0.0.1",
                "X-Forwarded-For: 198.51.100.1, 10.0.0.2\r\n",
                "198.51.100.1",
            ),
            (
                "10.0.0.1",
                "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 198.51.100.1, 10.9.9.9\r\n",
                "198.51.100.1",
            ),
            // Every hop trusted: the leftmost.
            (
                "10.0.0.1",
                "X-Forwarded-For: 10.0.0.3, 10.0.0.2\r\n",
                "10.0.0.3",
            ),
            // Junk stops the walk at the last readable hop.
            (
                "10.0.0.1",
                "X-Forwarded-For: 198.51.100.1, junk\r\n",
                "10.0.0.1",
            ),
            (
                "10.0.0.1",
                "X-Forwarded-For: junk, 10.0.0.2\r\n",
                "10.0.0.2",
            ),
            (
                "10.0.0.1",
                "X-Forwarded-For: 198.51.100.1:4711\r\n",
                "198.51.100.1",
            ),
            (
                "10.0.0.1",
                "X-Forwarded-For: [2001:db9::7]:4711\r\n",
                "2001:db9::7",
            ),
            (
                "::ffff:10.0.0.1",
                "X-Forwarded-For: 198.51.100.1\r\n",
                "198.51.100.1",
            ),
            // Forwarded, when there is no X-Forwarded-For.
            (
                "10.0.0.1",
                "Forwarded: for=198.51.100.1;proto=https, for=10.0.0.2\r\n",
                "198.51.100.1",
            ),
            (
                "2001:db8::1",
                "Forwarded: For=\"[2001:db9::8]:4711\"\r\n",
                "2001:db9::8",
            ),
            ("10.0.0.1", "Forwarded: for=unknown\r\n", "10.0.0.1"),
            (
                "10.0.0.1",
                "Forwarded: for=_hidden, for=10.0.0.2\r\n",
                "10.0.0.2",
            ),
            // X-Forwarded-For wins over Forwarded.
            (
                "10.0.0.1",
                "Forwarded: for=6.6.6.6\r\nX-Forwarded-For: 198.51.100.1\r\n",
                "198.51.100.1",
            ),
        ];
        for (peer, lines, expected) in rows {
            let head = test_request("GET", "/", lines);
            let client = trusted.client(peer.parse().unwrap(), Some(&head));
            assert_eq!(client.to_string(), *expected, "peer {peer}, {lines:?}");
        }
        let nobody = TrustedProxies::default();
        let head = test_request("GET", "/", "X-Forwarded-For: 198.51.100.1\r\n");
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(nobody.client(peer, Some(&head)), peer);
    }
}
