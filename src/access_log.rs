//! The access-log line written for each response under the `margay::access` target: Combined
//! Log Format (optionally followed by the request time, as nginx's `$request_time`), or one
//! JSON object per line for log pipelines.

use crate::http::RequestHead;
use crate::http::status::StatusCode;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// How access-log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// Combined Log Format: `client - - [time] "request" status bytes "referer" "agent"`.
    #[default]
    Combined,
    /// Combined Log Format followed by the request time in seconds with millisecond
    /// resolution, as nginx's `$request_time` is appended to it (`... "curl/8.5.0" 0.002`).
    CombinedTime,
    /// One JSON object per line: `time`, `client`, `peer`, `method`, `target`, `protocol`,
    /// `status`, `bytes`, `duration_us`, `referer`, `user_agent`, `tls`.
    Json,
}

impl FromStr for AccessLogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<AccessLogFormat, String> {
        match text {
            "combined" => Ok(AccessLogFormat::Combined),
            "combined_time" => Ok(AccessLogFormat::CombinedTime),
            "json" => Ok(AccessLogFormat::Json),
            _ => Err("expected combined, combined_time or json".into()),
        }
    }
}

/// What one access-log line says about a response.
pub struct Entry<'a> {
    /// The client: the peer, or who trusted proxies say they forward for.
    pub client: IpAddr,
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The request's head (`None` when it could not be parsed).
    pub head: Option<&'a RequestHead>,
    /// The response's status.
    pub status: StatusCode,
    /// Body bytes sent (0 for HEAD, 304 and the like).
    pub bytes: u64,
    /// From the request's first byte read to its response queued.
    pub elapsed: Duration,
    /// Common Log Format time of this second (`10/Oct/2000:13:55:36 +0000`).
    pub clf_time: &'a str,
    /// RFC 3339 time of this second (`2000-10-10T13:55:36Z`).
    pub iso_time: &'a str,
    /// The TLS protocol version and cipher suite, on a TLS connection.
    pub tls: Option<(&'static str, &'static str)>,
}

impl Entry<'_> {
    /// The line in `format`, without a line ending.
    pub fn format(&self, format: AccessLogFormat) -> String {
        // Room for a JSON line with a browser's User-Agent and Referer (about 360 bytes), so
        // that a typical line is built without growing its buffer.
        let mut line = String::with_capacity(512);
        match format {
            AccessLogFormat::Combined => self.combined(&mut line),
            AccessLogFormat::CombinedTime => {
                self.combined(&mut line);
                let millis = self.elapsed.as_millis();
                line.push(' ');
                line.push_str(itoa::Buffer::new().format(millis / 1000));
                line.push('.');
                let fraction = (millis % 1000) as u16;
                for digit in [fraction / 100, fraction / 10 % 10, fraction % 10] {
                    line.push(char::from(b'0' + digit as u8));
                }
            }
            AccessLogFormat::Json => self.json(&mut line),
        }
        line
    }

    fn combined(&self, line: &mut String) {
        let mut ip = [0u8; 64];
        line.push_str(ip_text(self.client, &mut ip));
        line.push_str(" - - [");
        line.push_str(self.clf_time);
        line.push_str("] \"");
        match self.head {
            Some(head) => escape_clf(head.request_line(), line),
            None => line.push('-'),
        }
        line.push_str("\" ");
        line.push_str(itoa::Buffer::new().format(self.status.as_u16()));
        line.push(' ');
        line.push_str(itoa::Buffer::new().format(self.bytes));
        for name in ["referer", "user-agent"] {
            line.push_str(" \"");
            match self.head.and_then(|h| h.header(name)) {
                Some(value) => escape_clf(value, line),
                None => line.push('-'),
            }
            line.push('"');
        }
    }

    fn json(&self, line: &mut String) {
        let (mut ip, mut other) = ([0u8; 64], [0u8; 64]);
        line.push_str("{\"time\":\"");
        line.push_str(self.iso_time);
        line.push_str("\",\"client\":\"");
        let client = ip_text(self.client, &mut ip);
        line.push_str(client);
        line.push_str("\",\"peer\":\"");
        // Without a proxy in front the peer is the client: its address is formatted once.
        let peer_ip = if self.peer.ip().to_canonical() == self.client {
            client
        } else {
            ip_text(self.peer.ip(), &mut other)
        };
        if self.peer.is_ipv6() {
            line.push('[');
            line.push_str(peer_ip);
            line.push(']');
        } else {
            line.push_str(peer_ip);
        }
        line.push(':');
        line.push_str(itoa::Buffer::new().format(self.peer.port()));
        line.push_str("\",\"method\":");
        json_string(self.head.map(|h| h.method.as_str()), line);
        line.push_str(",\"target\":");
        json_string(self.head.map(|h| h.target()), line);
        line.push_str(",\"protocol\":");
        json_string(self.head.map(|h| h.version.as_str()), line);
        line.push_str(",\"status\":");
        line.push_str(itoa::Buffer::new().format(self.status.as_u16()));
        line.push_str(",\"bytes\":");
        line.push_str(itoa::Buffer::new().format(self.bytes));
        line.push_str(",\"duration_us\":");
        let micros = u64::try_from(self.elapsed.as_micros()).unwrap_or(u64::MAX);
        line.push_str(itoa::Buffer::new().format(micros));
        line.push_str(",\"referer\":");
        json_string(self.head.and_then(|h| h.header("referer")), line);
        line.push_str(",\"user_agent\":");
        json_string(self.head.and_then(|h| h.header("user-agent")), line);
        line.push_str(",\"tls\":");
        match self.tls {
            Some((version, cipher)) => {
                line.push('"');
                line.push_str(version);
                line.push(' ');
                line.push_str(cipher);
                line.push('"');
            }
            None => line.push_str("null"),
        }
        line.push('}');
    }
}

/// The address as text, without allocating.
fn ip_text(ip: IpAddr, buffer: &mut [u8; 64]) -> &str {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = write!(cursor, "{ip}");
    let len = cursor.position() as usize;
    std::str::from_utf8(&buffer[..len]).unwrap_or("-")
}

/// Escapes quotes, backslashes and non-printable bytes so a log line cannot be forged.
fn escape_clf(text: &str, out: &mut String) {
    let plain = |b: &u8| (b.is_ascii_graphic() || *b == b' ') && *b != b'"' && *b != b'\\';
    if text.bytes().all(|b| plain(&b)) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => {
                let mut bytes = [0u8; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str("\\x");
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 15)]));
                }
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A JSON string (RFC 8259), or `null`.
fn json_string(text: Option<&str>, out: &mut String) {
    let Some(text) = text else {
        out.push_str("null");
        return;
    };
    out.push('"');
    let plain = |b: u8| b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\';
    if text.bytes().all(plain) {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str("\\u00");
                out.push(char::from(HEX[(u32::from(c) >> 4) as usize & 15]));
                out.push(char::from(HEX[u32::from(c) as usize & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_request;

    fn entry<'a>(
        head: Option<&'a RequestHead>,
        tls: Option<(&'static str, &'static str)>,
    ) -> Entry<'a> {
        Entry {
            client: "198.51.100.1".parse().unwrap(),
            peer: "10.0.0.1:40000".parse().unwrap(),
            head,
            status: StatusCode::OK,
            bytes: 1234,
            elapsed: Duration::from_micros(2_345),
            clf_time: "10/Oct/2000:13:55:36 +0000",
            iso_time: "2000-10-10T13:55:36Z",
            tls,
        }
    }

    #[test]
    fn lines_by_format() {
        let head = test_request(
            "GET",
            "/a?b=%22c%22",
            "Referer: http://x/\r\nUser-Agent: agent \"quoted\" \\ ok\r\n",
        );
        let tls = Some(("TLSv1_3", "TLS13_AES_256_GCM_SHA384"));
        // (entry, format, line)
        let rows: Vec<(Entry, AccessLogFormat, &str)> = vec![
            (
                entry(Some(&head), None),
                AccessLogFormat::Combined,
                r#"198.51.100.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=%22c%22 HTTP/1.1" 200 1234 "http://x/" "agent \"quoted\" \\ ok""#,
            ),
            (
                entry(Some(&head), None),
                AccessLogFormat::CombinedTime,
                r#"198.51.100.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=%22c%22 HTTP/1.1" 200 1234 "http://x/" "agent \"quoted\" \\ ok" 0.002"#,
            ),
            (
                entry(None, None),
                AccessLogFormat::Combined,
                r#"198.51.100.1 - - [10/Oct/2000:13:55:36 +0000] "-" 200 1234 "-" "-""#,
            ),
            (
                entry(Some(&head), tls),
                AccessLogFormat::Json,
                r#"{"time":"2000-10-10T13:55:36Z","client":"198.51.100.1","peer":"10.0.0.1:40000","method":"GET","target":"/a?b=%22c%22","protocol":"HTTP/1.1","status":200,"bytes":1234,"duration_us":2345,"referer":"http://x/","user_agent":"agent \"quoted\" \\ ok","tls":"TLSv1_3 TLS13_AES_256_GCM_SHA384"}"#,
            ),
            (
                entry(None, None),
                AccessLogFormat::Json,
                r#"{"time":"2000-10-10T13:55:36Z","client":"198.51.100.1","peer":"10.0.0.1:40000","method":null,"target":null,"protocol":null,"status":200,"bytes":1234,"duration_us":2345,"referer":null,"user_agent":null,"tls":null}"#,
            ),
        ];
        for (entry, format, expected) in rows {
            let line = entry.format(format);
            assert_eq!(line, expected, "{format:?}");
            if format == AccessLogFormat::Json {
                let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
                assert_eq!(value["bytes"], 1234);
            }
        }
    }

    #[test]
    fn ipv6_peers_are_bracketed() {
        let mut v6 = entry(None, None);
        v6.peer = "[2001:db8::1]:443".parse().unwrap();
        v6.client = "2001:db8::1".parse().unwrap();
        let line = v6.format(AccessLogFormat::Json);
        assert!(
            line.contains(r#""client":"2001:db8::1","peer":"[2001:db8::1]:443""#),
            "{line}"
        );
        assert!(
            v6.format(AccessLogFormat::Combined)
                .starts_with("2001:db8::1 - - [")
        );
    }

    #[test]
    fn escapes_keep_one_line() {
        let mut clf = String::new();
        escape_clf("a\u{1}b\u{e9}", &mut clf);
        assert_eq!(clf, "a\\x01b\\xC3\\xA9");
        let mut json = String::new();
        json_string(Some("a\u{1}\n\u{e9}\u{7f}"), &mut json);
        assert_eq!(json, "\"a\\u0001\\u000A\u{e9}\\u007F\"");
        let parsed: String = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, "a\u{1}\n\u{e9}\u{7f}");
    }
}
