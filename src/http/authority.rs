//! `uri-host [ ":" port ]` (RFC 3986 section 3.2.2 and 3.2.3), the grammar of the `Host`
//! field (RFC 9112 section 3.2) and of an absolute-form target's authority: a reg-name or
//! IPv4 address, or an IPv6 or IPvFuture literal in brackets, and a port of digits only.

/// Where the host ends and which port follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    /// The host is the value's first `host_len` bytes (brackets included for an IP literal).
    pub host_len: usize,
    /// The port, `None` when there is none or it is empty (`host:`, which RFC 3986 allows).
    pub port: Option<u16>,
}

/// Parses `uri-host [ ":" port ]` in one pass; `None` when the value does not follow it or
/// the port is above 65535. An empty host is a valid (empty) reg-name.
pub fn parse_host_port(value: &[u8]) -> Option<HostPort> {
    let host_len = match value.first() {
        Some(b'[') => {
            let close = value.iter().position(|&b| b == b']')?;
            let literal = &value[1..close];
            if !(is_ipv6(literal) || is_ipv_future(literal)) {
                return None;
            }
            close + 1
        }
        _ => reg_name_len(value)?,
    };
    let port = match &value[host_len..] {
        [] | [b':'] => None,
        [b':', digits @ ..] => Some(port(digits)?),
        _ => return None,
    };
    Some(HostPort { host_len, port })
}

/// The length of the reg-name (`*( unreserved / pct-encoded / sub-delims )`) at the start of
/// `value`; `None` at a `%` not followed by two hex digits. An IPv4 address is a reg-name.
fn reg_name_len(value: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        if REG_NAME[b as usize] {
            i += 1;
        } else if b == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            i += 3;
        } else {
            break;
        }
    }
    Some(i)
}

/// `unreserved / sub-delims`: the bytes a reg-name holds without escaping.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let others = b"-._~!$&'()*+,;=";
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// `port = *DIGIT`, read as a TCP port: at most 65535 (leading zeros allowed).
fn port(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u16::from(d - b'0'))
    })
}

/// `IPv6address`: eight groups of one to four hex digits, the last two of which may be an
/// IPv4 address, with one `::` standing for one or more zero groups.
fn is_ipv6(text: &[u8]) -> bool {
    let mut groups = 0;
    let mut elided = false;
    let mut i = 0;
    if text.starts_with(b"::") {
        elided = true;
        i = 2;
    }
    while i < text.len() {
        let hex = text[i..]
            .iter()
            .take(5)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if text.get(i + hex) == Some(&b'.') {
            // ls32 as an IPv4 address: only at the very end.
            if !is_ipv4(&text[i..]) {
                return false;
            }
            groups += 2;
            break;
        }
        if hex == 0 || hex > 4 {
            return false;
        }
        groups += 1;
        i += hex;
        match &text[i..] {
            [] => break,
            [b':', b':', ..] if !elided => {
                elided = true;
                i += 2;
            }
            [b':', next, ..] if *next != b':' => i += 1,
            _ => return false,
        }
    }
    if elided { groups <= 7 } else { groups == 8 }
}

/// `IPv4address`: four dec-octets (0 to 255, no leading zeros) separated by dots.
fn is_ipv4(text: &[u8]) -> bool {
    let mut octets = 0;
    for part in text.split(|&b| b == b'.') {
        octets += 1;
        let fits = match part {
            [d] => d.is_ascii_digit(),
            [b'1'..=b'9', d] => d.is_ascii_digit(),
            [b'1', d, e] => d.is_ascii_digit() && e.is_ascii_digit(),
            [b'2', b'0'..=b'4', d] => d.is_ascii_digit(),
            [b'2', b'5', b'0'..=b'5'] => true,
            _ => false,
        };
        if !fits || octets > 4 {
            return false;
        }
    }
    octets == 4
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn is_ipv_future(text: &[u8]) -> bool {
    let [b'v' | b'V', rest @ ..] = text else {
        return false;
    };
    let version = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    match &rest[version..] {
        [b'.', address @ ..] if version > 0 && !address.is_empty() => {
            address.iter().all(|&b| b == b':' || (REG_NAME[b as usize]))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a value splits into: the host and the port.
    type Split<'a> = Option<(&'a str, Option<u16>)>;

    #[test]
    fn host_values() {
        // (Host value, (host, port) or None when invalid)
        let rows: &[(&str, Split)] = &[
            ("example.com", Some(("example.com", None))),
            ("example.com:8080", Some(("example.com", Some(8080)))),
            (
                "Sub.Example-1.com:80",
                Some(("Sub.Example-1.com", Some(80))),
            ),
            ("a~b_c!$&'()*+,;=%41", Some(("a~b_c!$&'()*+,;=%41", None))),
            ("", Some(("", None))),
            (":80", Some(("", Some(80)))),
            ("a:", Some(("a", None))),
            ("a:0", Some(("a", Some(0)))),
            ("a:00080", Some(("a", Some(80)))),
            ("a:65535", Some(("a", Some(65535)))),
            ("127.0.0.1:80", Some(("127.0.0.1", Some(80)))),
            ("999.1.1.1", Some(("999.1.1.1", None))),
            ("[::1]", Some(("[::1]", None))),
            ("[::1]:8080", Some(("[::1]", Some(8080)))),
            ("[::]", Some(("[::]", None))),
            ("[1:2:3:4:5:6:7:8]", Some(("[1:2:3:4:5:6:7:8]", None))),
            ("[1::2:3:4:5:6:7]", Some(("[1::2:3:4:5:6:7]", None))),
            ("[1:2:3:4:5:6:7::]", Some(("[1:2:3:4:5:6:7::]", None))),
            ("[::ffff:192.0.2.1]", Some(("[::ffff:192.0.2.1]", None))),
            (
                "[1:2:3:4:5:6:1.2.3.4]",
                Some(("[1:2:3:4:5:6:1.2.3.4]", None)),
            ),
            ("[fe80::ABCD:1]", Some(("[fe80::ABCD:1]", None))),
            ("[v1.a:b]", Some(("[v1.a:b]", None))),
            ("[VF.x]:1", Some(("[VF.x]", Some(1)))),
            // Invalid.
            ("a:65536", None),
            ("a:99999999999999999999", None),
            ("a:8o", None),
            ("a:http", None),
            ("a:-1", None),
            ("a:+1", None),
            ("a: 80", None),
            ("a:80:81", None),
            ("a b", None),
            ("a/b", None),
            ("a\\b", None),
            ("a\"b", None),
            ("user@a", None),
            ("a%4", None),
            ("a%zz", None),
            ("a#b", None),
            ("a?b", None),
            ("[::1", None),
            ("[::1:80", None),
            ("::1", None),
            ("[::1]x", None),
            ("[::1]:", Some(("[::1]", None))),
            ("[]", None),
            ("[1:2:3:4:5:6:7:8:9]", None),
            ("[1:2:3:4:5:6:7]", None),
            ("[1:2:3:4:5:6:7:8::]", None),
            ("[1::2::3]", None),
            ("[:::]", None),
            ("[:1::]", None),
            ("[1:]", None),
            ("[12345::]", None),
            ("[::1.2.3.4.5]", None),
            ("[::1.2.3]", None),
            ("[::01.2.3.4]", None),
            ("[::256.2.3.4]", None),
            ("[::1.2.3.4:1]", None),
            ("[1.2.3.4]", None),
            ("[1:2:3:4:5:6:7:1.2.3.4]", None),
            ("[v1.]", None),
            ("[v.a]", None),
            ("[v1.a/b]", None),
            ("[x1.a]", None),
            ("a[b]", None),
            ("é", None),
        ];
        for (value, expected) in rows {
            let got = parse_host_port(value.as_bytes()).map(|hp| (&value[..hp.host_len], hp.port));
            assert_eq!(got, *expected, "{value:?}");
        }
    }
}
