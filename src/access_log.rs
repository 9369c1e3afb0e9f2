//! The access-log line written for each response under the `margay::access` target: Combined
//! Log Format (optionally followed by the request time, as nginx's `$request_time`), or one
//! JSON object per line for log pipelines.

use crate::forwarded::IpText;
use crate::http::status::StatusCode;
use crate::http::{RequestHead, Version};
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
    /// One JSON object per line: `time`, `client`, `method`, `target`, `protocol`, `status`,
    /// `bytes`, `duration_us`, `referer`, `user_agent`; `peer` when a trusted proxy named
    /// another client, `tls` on a TLS connection.
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
        let mut line = String::new();
        self.format_into(format, &mut line);
        line
    }

    /// The line in `format`, without a line ending, in `line` (emptied first, so that one
    /// buffer serves line after line without allocating).
    pub fn format_into(&self, format: AccessLogFormat, line: &mut String) {
        line.clear();
        // Room for a JSON line with a browser's User-Agent and Referer (about 360 bytes), so
        // that a typical line is built without growing its buffer.
        line.reserve(512);
        match format {
            AccessLogFormat::Combined => self.combined(line),
            AccessLogFormat::CombinedTime => {
                self.combined(line);
                let millis = self.elapsed.as_millis();
                line.push(' ');
                push_int(millis / 1000, line);
                line.push('.');
                let fraction = (millis % 1000) as u16;
                for digit in [fraction / 100, fraction / 10 % 10, fraction % 10] {
                    line.push(char::from(b'0' + digit as u8));
                }
            }
            AccessLogFormat::Json => self.json(line),
        }
    }

    /// The Referer and User-Agent fields, looked up the same way for every format.
    fn referer_and_agent(&self) -> [Option<&str>; 2] {
        ["referer", "user-agent"].map(|name| self.head.and_then(|h| h.header(name)))
    }

    fn combined(&self, line: &mut String) {
        line.push_str(IpText::new(self.client).as_str());
        line.push_str(" - - [");
        line.push_str(self.clf_time);
        line.push_str("] \"");
        match self.head {
            Some(head) => escape_clf(head.request_line(), line),
            None => line.push('-'),
        }
        line.push_str("\" ");
        push_status(self.status, line);
        line.push(' ');
        push_int(self.bytes, line);
        for value in self.referer_and_agent() {
            line.push_str(" \"");
            escape_clf(value.unwrap_or("-"), line);
            line.push('"');
        }
    }

    fn json(&self, line: &mut String) {
        line.push_str("{\"time\":\"");
        line.push_str(self.iso_time);
        line.push_str("\",\"client\":\"");
        line.push_str(IpText::new(self.client).as_str());
        line.push('"');
        // The connection's own address only when a trusted proxy named another client.
        let peer = self.peer.ip();
        if peer.to_canonical() != self.client {
            line.push_str(",\"peer\":\"");
            line.push_str(IpText::bracketed(peer).as_str());
            line.push(':');
            push_int(self.peer.port(), line);
            line.push('"');
        }
        match self.head {
            // The method is a token (the parser held it to tchar: nothing JSON escapes) and
            // the version one of ours: both written as they are, with the keys around them.
            Some(head) => {
                line.push_str(",\"method\":\"");
                line.push_str(head.method_token());
                line.push_str("\",\"target\":");
                json_string(Some(head.target()), line);
                line.push_str(match head.version {
                    Version::Http10 => ",\"protocol\":\"HTTP/1.0\",\"status\":",
                    Version::Http11 => ",\"protocol\":\"HTTP/1.1\",\"status\":",
                });
            }
            None => line.push_str(",\"method\":null,\"target\":null,\"protocol\":null,\"status\":"),
        }
        push_status(self.status, line);
        line.push_str(",\"bytes\":");
        push_int(self.bytes, line);
        line.push_str(",\"duration_us\":");
        push_int(
            u64::try_from(self.elapsed.as_micros()).unwrap_or(u64::MAX),
            line,
        );
        let [referer, agent] = self.referer_and_agent();
        line.push_str(",\"referer\":");
        json_string(referer, line);
        line.push_str(",\"user_agent\":");
        json_string(agent, line);
        if let Some((version, cipher)) = self.tls {
            line.push_str(",\"tls\":\"");
            line.push_str(version);
            line.push(' ');
            line.push_str(cipher);
            line.push('"');
        }
        line.push('}');
    }
}

/// A status code's three digits.
fn push_status(status: StatusCode, out: &mut String) {
    let code = status.as_u16();
    if (100..1000).contains(&code) {
        for digit in [code / 100, code / 10 % 10, code % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
    } else {
        push_int(code, out);
    }
}

fn push_int(n: impl itoa::Integer, out: &mut String) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Whether `bytes` are printable ASCII without a quote or a backslash: what both formats copy
/// as it is. Checked 16 bytes at a time (the last 16 overlapping the chunk before, a short
/// text padded), with no early exit inside a chunk, so that each compiles to vector compares.
fn is_plain(bytes: &[u8]) -> bool {
    fn plain(chunk: &[u8; 16]) -> bool {
        chunk.iter().fold(true, |ok, &b| {
            ok & (b.wrapping_sub(0x20) < 0x5f) & (b != b'"') & (b != b'\\')
        })
    }
    match bytes.last_chunk::<16>() {
        Some(last) => bytes.as_chunks::<16>().0.iter().all(plain) && plain(last),
        None => {
            let mut padded = [b' '; 16];
            padded[..bytes.len()].copy_from_slice(bytes);
            plain(&padded)
        }
    }
}

/// Escapes quotes, backslashes and non-printable bytes so a log line cannot be forged.
fn escape_clf(text: &str, out: &mut String) {
    if is_plain(text.as_bytes()) {
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
    if is_plain(text.as_bytes()) {
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
                r#"{"time":"2000-10-10T13:55:36Z","client":"198.51.100.1","peer":"10.0.0.1:40000","method":null,"target":null,"protocol":null,"status":200,"bytes":1234,"duration_us":2345,"referer":null,"user_agent":null}"#,
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
        v6.client = "2001:db8::2".parse().unwrap();
        let line = v6.format(AccessLogFormat::Json);
        assert!(
            line.contains(r#""client":"2001:db8::2","peer":"[2001:db8::1]:443""#),
            "{line}"
        );
        assert!(
            v6.format(AccessLogFormat::Combined)
                .starts_with("2001:db8::2 - - [")
        );
    }

    #[test]
    fn the_peer_is_left_out_when_it_is_the_client() {
        let mut direct = entry(None, None);
        for (peer, client) in [
            ("198.51.100.1:40000", "198.51.100.1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            // An IPv4 client on an IPv6 socket: the same client.
            ("[::ffff:198.51.100.1]:40000", "198.51.100.1"),
        ] {
            direct.peer = peer.parse().unwrap();
            direct.client = client.parse().unwrap();
            let line = direct.format(AccessLogFormat::Json);
            assert!(
                line.starts_with(&format!(
                    r#"{{"time":"2000-10-10T13:55:36Z","client":"{client}","method":null,"#
                )),
                "{line}"
            );
            let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
            assert!(
                value.get("peer").is_none() && value.get("tls").is_none(),
                "{line}"
            );
        }
    }

    #[test]
    fn a_byte_to_escape_is_found_wherever_it_is() {
        // Around the 16-byte chunks: short texts, whole chunks, the overlapping last chunk.
        for len in 0..50 {
            let plain = "a".repeat(len);
            assert!(is_plain(plain.as_bytes()), "{len}");
            for at in 0..len {
                for bad in [b'"', b'\\', 0x1f, 0x7f, 0xc3] {
                    let mut text = plain.clone().into_bytes();
                    text[at] = bad;
                    assert!(!is_plain(&text), "{len} bytes, {bad:#x} at {at}");
                }
            }
        }
        assert!(is_plain(b" !#[]~"));
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
