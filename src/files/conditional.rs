//! Validators for a file (`ETag`, `Last-Modified`) and the preconditions of RFC 9110
//! section 13, evaluated in the order of section 13.2.2.

use super::resolve::FileIdentity;
use crate::http::date::parse_http_date;
use crate::http::{Method, RequestHead};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators sent with a file and compared against a request's conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The strong entity-tag, quotes included.
    pub etag: String,
    /// `Last-Modified` in whole seconds since the epoch, never later than when it was made.
    pub last_modified: u64,
    /// `Last-Modified` as an IMF-fixdate.
    pub last_modified_text: String,
}

impl Validators {
    /// Validators for a file with this identity; `now` caps `Last-Modified` (RFC 9110 8.8.2.1).
    pub fn new(identity: &FileIdentity, now: SystemTime) -> Validators {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last_modified = u64::try_from(identity.modified_secs).unwrap_or(0).min(now);
        // Hex of size, mtime (to the nanosecond) and inode: any rewrite or replacement of the
        // file changes the tag, so it is safe as a strong validator.
        let etag = format!(
            "\"{:x}-{:x}.{:x}-{:x}\"",
            identity.len, identity.modified_secs as u64, identity.modified_nanos, identity.inode
        );
        Validators {
            etag,
            last_modified,
            last_modified_text: httpdate::fmt_http_date(
                UNIX_EPOCH + Duration::from_secs(last_modified),
            ),
        }
    }
}

/// The outcome of a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No condition stops the request: go on to ranges and the body.
    Proceed,
    /// Answer 304 Not Modified.
    NotModified,
    /// Answer 412 Precondition Failed.
    Failed,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` in
/// the order RFC 9110 section 13.2.2 prescribes.
pub fn evaluate(head: &RequestHead, validators: &Validators) -> Precondition {
    if !head.has_preconditions() {
        return Precondition::Proceed;
    }
    let safe = matches!(head.method, Method::Get | Method::Head);
    if has_field(head, "if-match") {
        if !any_tag_matches(head, "if-match", &validators.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = single_date(head, "if-unmodified-since")
        && validators.last_modified as i64 > date
    {
        return Precondition::Failed;
    }
    if has_field(head, "if-none-match") {
        if any_tag_matches(head, "if-none-match", &validators.etag, Comparison::Weak) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe
        && let Some(date) = single_date(head, "if-modified-since")
        && validators.last_modified as i64 <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// How two entity-tags are compared (RFC 9110 section 8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Both strong and identical.
    Strong,
    /// Identical opaque tags, either or both may be weak.
    Weak,
}

fn has_field(head: &RequestHead, name: &str) -> bool {
    head.header_values(name).next().is_some()
}

/// Whether the fields called `name` list a tag matching `current`.
fn any_tag_matches(head: &RequestHead, name: &str, current: &str, how: Comparison) -> bool {
    lines_match(head.header_values(name), current, how)
}

/// The date in the only field called `name`, in seconds since the epoch; `None` when the
/// field is absent, repeated or not an HTTP-date (such fields are ignored, RFC 9110 13.1).
fn single_date(head: &RequestHead, name: &str) -> Option<i64> {
    let mut values = head.header_values(name);
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    parse_date(value)
}

/// Parses an HTTP-date (any of the three forms RFC 9110 section 5.6.7 accepts) into seconds
/// since the epoch.
pub(crate) fn parse_date(value: &[u8]) -> Option<i64> {
    parse_http_date(value, this_year)
}

/// The current year, which an rfc850 date's two-digit year is read against.
fn this_year() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Close enough for choosing a century: 365.2425 days a year.
    1970 + (now / 31_556_952) as i64
}

/// Whether the lines of an `If-Match` or `If-None-Match` field (RFC 9110 section 13.1.1 and
/// 13.1.2: `"*" / #entity-tag`) hold a tag matching `current`, a strong tag with its quotes.
/// The lines make one list (section 5.3), so `*` stands only alone. A value that does not
/// follow the grammar matches nothing: for `If-Match` the request fails, for
/// `If-None-Match` it goes on, the conservative reading either way.
pub fn lines_match<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    current: &str,
    how: Comparison,
) -> bool {
    let (mut count, mut star, mut matched) = (0, false, false);
    for line in lines {
        count += 1;
        if line == b"*" {
            star = true;
            continue;
        }
        let listed = each_tag(line, |tag, weak| {
            matched |= tag == current.as_bytes() && (how == Comparison::Weak || !weak);
        });
        if !listed {
            return false;
        }
    }
    if star { count == 1 } else { matched }
}

/// Calls `each` with every entity-tag of a `#entity-tag` list (its quotes included, and
/// whether it is weak), by the recipient rule `[ element ] *( OWS "," OWS [ element ] )`.
/// Returns false when the list does not follow the grammar.
fn each_tag(list: &[u8], mut each: impl FnMut(&[u8], bool)) -> bool {
    let mut rest = list;
    loop {
        match rest {
            [] => return true,
            [b',', after @ ..] => {
                rest = trim_start_ows(after);
                continue;
            }
            _ => {}
        }
        let Some((tag, weak, after)) = split_tag(rest) else {
            return false;
        };
        each(tag, weak);
        rest = match trim_start_ows(after) {
            [] => return true,
            [b',', after @ ..] => trim_start_ows(after),
            _ => return false,
        };
    }
}

fn trim_start_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Splits one `entity-tag = [ %s"W/" ] DQUOTE *etagc DQUOTE` off the front: (the quoted
/// opaque tag, whether weak, the rest).
fn split_tag(bytes: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let (weak, quoted) = match bytes.strip_prefix(b"W/") {
        Some(quoted) => (true, quoted),
        None => (false, bytes),
    };
    let [b'"', inner @ ..] = quoted else {
        return None;
    };
    // etagc = %x21 / %x23-7E / obs-text
    let len = inner
        .iter()
        .take_while(|&&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        .count();
    if inner.get(len) != Some(&b'"') {
        return None;
    }
    let (tag, rest) = quoted.split_at(len + 2);
    Some((tag, weak, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_request;

    const ETAG: &str = "\"a-1\"";
    // Sun, 06 Nov 1994 08:49:37 GMT
    const LAST_MODIFIED: u64 = 784111777;

    fn validators() -> Validators {
        Validators {
            etag: ETAG.to_string(),
            last_modified: LAST_MODIFIED,
            last_modified_text: "Sun, 06 Nov 1994 08:49:37 GMT".to_string(),
        }
    }

    /// [`lines_match`] for a field of one line.
    fn list_matches(list: &[u8], current: &str, how: Comparison) -> bool {
        lines_match(std::iter::once(list), current, how)
    }

    #[test]
    fn entity_tag_lists() {
        // (list, strong match, weak match)
        let rows: &[(&str, bool, bool)] = &[
            ("\"a-1\"", true, true),
            ("W/\"a-1\"", false, true),
            ("\"b\", \"a-1\"", true, true),
            ("\"b\",W/\"a-1\"", false, true),
            ("\"b\" ,\t\"a-1\" ", true, true),
            (",,\"a-1\",", true, true),
            ("*", true, true),
            ("\"b\"", false, false),
            ("\"a-1", false, false),
            ("a-1", false, false),
            ("w/\"a-1\"", false, false),
            ("\"a-1\"x", false, false),
            ("\"a-\", 1\"", false, false),
            ("\"x,\"a-1\"\"", false, false),
            ("\"b,c\", \"a-1\"", true, true),
            ("", false, false),
            ("*x", false, false),
            // A list that breaks the grammar anywhere matches nothing, even before the break.
            ("\"a-1\", junk", false, false),
            ("\"a-1\" \"b\"", false, false),
            ("\"a-1\", *", false, false),
            ("*, \"a-1\"", false, false),
            ("\"a-1\",\"b c\"", false, false),
            ("\"a-1\",\"b\x01\"", false, false),
            ("W/ \"a-1\"", false, false),
            (" \"a-1\"", false, false),
            ("\"\", \"a-1\"", true, true),
            ("\"\u{e9}\", \"a-1\"", true, true),
        ];
        for (list, strong, weak) in rows {
            let got = (
                list_matches(list.as_bytes(), ETAG, Comparison::Strong),
                list_matches(list.as_bytes(), ETAG, Comparison::Weak),
            );
            assert_eq!(got, (*strong, *weak), "list {list:?}");
        }
    }

    #[test]
    fn entity_tag_lines_make_one_list() {
        // (field lines, strong match)
        let rows: &[(&[&str], bool)] = &[
            (&["\"b\"", "\"a-1\""], true),
            (&["\"b\"", ""], false),
            (&["*"], true),
            (&["*", "\"a-1\""], false),
            (&["*", "*"], false),
            (&["\"a-1\"", "junk"], false),
        ];
        for (lines, expected) in rows {
            let values = lines.iter().map(|line| line.as_bytes());
            assert_eq!(
                lines_match(values, ETAG, Comparison::Strong),
                *expected,
                "{lines:?}"
            );
        }
    }

    #[test]
    fn precondition_order() {
        use Precondition::*;
        const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
        const SAME: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
        const AFTER: &str = "Sunday, 06-Nov-94 08:49:38 GMT";
        // (method, header lines, expected)
        let rows: Vec<(&str, String, Precondition)> = vec![
            ("GET", String::new(), Proceed),
            ("GET", "If-Match: \"a-1\"\r\n".into(), Proceed),
            ("GET", "If-Match: *\r\n".into(), Proceed),
            ("GET", "If-Match: \"b\"\r\n".into(), Failed),
            ("GET", "If-Match: W/\"a-1\"\r\n".into(), Failed),
            (
                "GET",
                "If-Match: \"b\"\r\nIf-Match: \"a-1\"\r\n".into(),
                Proceed,
            ),
            ("GET", format!("If-Unmodified-Since: {SAME}\r\n"), Proceed),
            ("GET", format!("If-Unmodified-Since: {BEFORE}\r\n"), Failed),
            ("GET", "If-Unmodified-Since: yesterday\r\n".into(), Proceed),
            // If-Match wins over If-Unmodified-Since.
            (
                "GET",
                format!("If-Match: \"a-1\"\r\nIf-Unmodified-Since: {BEFORE}\r\n"),
                Proceed,
            ),
            ("GET", "If-None-Match: \"a-1\"\r\n".into(), NotModified),
            ("HEAD", "If-None-Match: W/\"a-1\"\r\n".into(), NotModified),
            (
                "GET",
                "If-None-Match: \"x\", \"a-1\"\r\n".into(),
                NotModified,
            ),
            ("GET", "If-None-Match: *\r\n".into(), NotModified),
            ("GET", "If-None-Match: \"x\"\r\n".into(), Proceed),
            ("POST", "If-None-Match: \"a-1\"\r\n".into(), Failed),
            ("GET", format!("If-Modified-Since: {SAME}\r\n"), NotModified),
            (
                "GET",
                format!("If-Modified-Since: {AFTER}\r\n"),
                NotModified,
            ),
            (
                "GET",
                "If-Modified-Since: Sun Nov  6 08:49:37 1994\r\n".into(),
                NotModified,
            ),
            ("GET", format!("If-Modified-Since: {BEFORE}\r\n"), Proceed),
            ("GET", "If-Modified-Since: not a date\r\n".into(), Proceed),
            (
                "GET",
                format!("If-Modified-Since: {SAME}\r\nIf-Modified-Since: {SAME}\r\n"),
                Proceed,
            ),
            ("POST", format!("If-Modified-Since: {SAME}\r\n"), Proceed),
            // If-None-Match present: If-Modified-Since is not looked at.
            (
                "GET",
                format!("If-None-Match: \"x\"\r\nIf-Modified-Since: {SAME}\r\n"),
                Proceed,
            ),
            // A failed If-Match beats a matching If-None-Match.
            (
                "GET",
                "If-Match: \"b\"\r\nIf-None-Match: \"a-1\"\r\n".into(),
                Failed,
            ),
        ];
        for (method, lines, expected) in rows {
            let head = test_request(method, "/f", &lines);
            assert_eq!(
                evaluate(&head, &validators()),
                expected,
                "{method} {lines:?}"
            );
        }
    }

    #[test]
    fn validators_from_identity() {
        let identity = FileIdentity {
            len: 255,
            modified_secs: LAST_MODIFIED as i64,
            modified_nanos: 16,
            changed_nanos: 0,
            device: 1,
            inode: 4096,
        };
        let later = UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED + 10);
        let v = Validators::new(&identity, later);
        assert_eq!(v.etag, "\"ff-2ebc98a1.10-1000\"");
        assert_eq!(v.last_modified, LAST_MODIFIED);
        assert_eq!(v.last_modified_text, "Sun, 06 Nov 1994 08:49:37 GMT");
        // A modification time in the future is sent as the current time.
        let earlier = UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED - 1);
        assert_eq!(
            Validators::new(&identity, earlier).last_modified,
            LAST_MODIFIED - 1
        );
        let mut touched = identity;
        touched.modified_nanos += 1;
        assert_ne!(Validators::new(&touched, later).etag, v.etag);
    }
}
