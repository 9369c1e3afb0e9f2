//! The field grammars of RFC 9110 that framing depends on: tokens, quoted strings and lists
//! (section 5.6), `Content-Length` (8.6), `Transfer-Encoding` (RFC 9112 6.1) and `Expect`
//! (10.1.1). Each value is read by its ABNF, never as a set of allowed bytes, so no proxy in
//! front can read a value we accept in a different way.

use super::error::RequestError;

/// `tchar` (RFC 9110 section 5.6.2): the bytes of a token.
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let extra = b"!#$%&'*+-.^_`|~";
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// `qdtext`: a byte that may stand unescaped in a quoted string.
pub(crate) fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// A byte that may follow `\` in a quoted string (`HTAB / SP / VCHAR / obs-text`).
pub(crate) fn is_escapable(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `value` without the optional whitespace (`OWS`: spaces and tabs) at either end.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

/// A read position in one field value.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.pos += 1;
        }
    }

    /// `token`: one or more tchar.
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.bytes[start..self.pos])
    }

    /// `quoted-string`, quotes and escapes included.
    fn quoted_string(&mut self) -> Option<()> {
        if !self.eat(b'"') {
            return None;
        }
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\'
                    if self
                        .bytes
                        .get(self.pos + 1)
                        .is_some_and(|&b| is_escapable(b)) =>
                {
                    self.pos += 2
                }
                b if is_qdtext(b) => self.pos += 1,
                _ => return None,
            }
        }
    }

    /// `token / quoted-string`.
    fn word(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.quoted_string(),
            _ => self.token().map(drop),
        }
    }
}

/// Walks a list (`#element`) by the recipient rule of RFC 9110 section 5.6.1.2,
/// `[ element ] *( OWS "," OWS [ element ] )`: empty elements are skipped. `element` reads
/// one non-empty element and returns `None` when it does not follow its grammar. The value is
/// a field value, so it has no leading or trailing whitespace of its own.
fn for_each_element<'a>(
    value: &'a [u8],
    mut element: impl FnMut(&mut Cursor<'a>) -> Option<()>,
) -> Option<()> {
    let mut cursor = Cursor {
        bytes: value,
        pos: 0,
    };
    loop {
        match cursor.peek() {
            None => return Some(()),
            Some(b',') => {}
            Some(_) => {
                element(&mut cursor)?;
                cursor.skip_ows();
                if cursor.peek().is_none() {
                    return Some(());
                }
                if cursor.peek() != Some(b',') {
                    return None;
                }
            }
        }
        cursor.pos += 1; // the comma
        cursor.skip_ows();
    }
}

/// `parameters` after a transfer coding: `*( OWS ";" OWS transfer-parameter )` with
/// `transfer-parameter = token BWS "=" BWS ( token / quoted-string )` (RFC 9112 7.3 and
/// RFC 9110 5.6.6). Returns how many there were.
fn transfer_parameters(cursor: &mut Cursor) -> Option<u32> {
    let mut count = 0;
    loop {
        let before = cursor.pos;
        cursor.skip_ows();
        if !cursor.eat(b';') {
            cursor.pos = before;
            return Some(count);
        }
        cursor.skip_ows();
        cursor.token()?;
        cursor.skip_ows();
        if !cursor.eat(b'=') {
            return None;
        }
        cursor.skip_ows();
        cursor.word()?;
        count += 1;
    }
}

/// `parameters` after an expectation value: `*( OWS ";" OWS [ parameter ] )` with
/// `parameter = token "=" ( token / quoted-string )` (RFC 9110 5.6.6), no space around `=`.
fn parameters(cursor: &mut Cursor) -> Option<()> {
    loop {
        let before = cursor.pos;
        cursor.skip_ows();
        if !cursor.eat(b';') {
            cursor.pos = before;
            return Some(());
        }
        cursor.skip_ows();
        if cursor.peek().is_some_and(is_tchar) {
            cursor.token()?;
            if !cursor.eat(b'=') {
                return None;
            }
            cursor.word()?;
        }
    }
}

/// A `Content-Length` value (RFC 9110 section 8.6): `1*DIGIT`, or the same number repeated
/// as `1*DIGIT *( OWS "," OWS 1*DIGIT )`, which section 8.6 lets a recipient take as that one
/// number. `None` when it is neither, the numbers differ, or the number does not fit a u64.
/// Empty list elements are not skipped: this is a number, not a list field.
pub fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    let mut cursor = Cursor {
        bytes: value,
        pos: 0,
    };
    loop {
        let start = cursor.pos;
        while cursor.peek().is_some_and(|b| b.is_ascii_digit()) {
            cursor.pos += 1;
        }
        let n = decimal(&value[start..cursor.pos])?;
        if length.is_some_and(|seen| seen != n) {
            return None;
        }
        length = Some(n);
        cursor.skip_ows();
        if cursor.peek().is_none() {
            return length;
        }
        if !cursor.eat(b',') {
            return None;
        }
        cursor.skip_ows();
    }
}

/// `1*DIGIT` as a u64; `None` when empty, not digits, or too large.
pub(crate) fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The transfer codings of a request, gathered over all its `Transfer-Encoding` lines (the
/// lines of a list field make one list, RFC 9110 section 5.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferCodings {
    /// Codings listed, `chunked` included.
    codings: u32,
    /// How often `chunked` was listed.
    chunked: u32,
    /// Whether the last coding listed is a bare `chunked`.
    ends_chunked: bool,
    /// Whether some line is not a `#transfer-coding` list.
    malformed: bool,
}

impl TransferCodings {
    /// Adds one `Transfer-Encoding` field value: `#transfer-coding`, where
    /// `transfer-coding = token *( OWS ";" OWS transfer-parameter )`.
    pub fn add(&mut self, value: &[u8]) {
        let parsed = for_each_element(value, |cursor| {
            let name = cursor.token()?;
            let params = transfer_parameters(cursor)?;
            let chunked = name.eq_ignore_ascii_case(b"chunked");
            self.codings += 1;
            self.chunked += u32::from(chunked);
            // `chunked` defines no parameters: with some it is not the coding we decode.
            self.ends_chunked = chunked && params == 0;
            Some(())
        });
        self.malformed |= parsed.is_none();
    }

    /// Whether some line is not a `#transfer-coding` list.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// Whether the last coding is a bare `chunked`, named once: the message is framed by its
    /// chunks (RFC 9112 section 6.3).
    pub fn ends_in_chunked(&self) -> bool {
        self.ends_chunked && self.chunked == 1
    }

    /// Whether `chunked` is named but not as the one last coding (twice, or before another):
    /// a sender must not do that (RFC 9112 section 7).
    pub fn misuses_chunked(&self) -> bool {
        self.chunked > 1 || (self.chunked == 1 && !self.ends_chunked)
    }

    /// Whether `chunked` is the only coding.
    pub fn is_chunked_only(&self) -> bool {
        self.ends_in_chunked() && self.codings == 1
    }

    /// Whether the body is chunked and nothing else. A list that is malformed, or does not
    /// end in `chunked`, or names it twice, cannot be framed: 400 (RFC 9112 section 6.3).
    /// Another coding before `chunked` could be framed but not decoded: 501 (section 6.1).
    pub fn verdict(&self) -> Result<(), RequestError> {
        if self.malformed || !self.ends_chunked || self.chunked > 1 {
            return Err(RequestError::BadTransferEncoding);
        }
        if self.codings > 1 {
            return Err(RequestError::TransferCodingNotImplemented);
        }
        Ok(())
    }
}

/// What a request's `Expect` lines ask for (RFC 9110 section 10.1.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Some member is `100-continue`.
    pub continue_100: bool,
    /// Some member is anything else, or a line is not an `Expect` list: margay cannot meet it.
    pub unmet: bool,
}

impl Expectations {
    /// Adds one `Expect` field value: `#expectation`, where
    /// `expectation = token [ "=" ( token / quoted-string ) parameters ]`.
    pub fn add(&mut self, value: &[u8]) {
        let mut line = Expectations::default();
        let parsed = for_each_element(value, |cursor| {
            let name = cursor.token()?;
            let plain = !cursor.eat(b'=');
            if !plain {
                cursor.word()?;
                parameters(cursor)?;
            }
            if plain && name.eq_ignore_ascii_case(b"100-continue") {
                line.continue_100 = true;
            } else {
                line.unmet = true;
            }
            Some(())
        });
        // A line that is not a list asks for something unknown, and nothing else.
        self.continue_100 |= parsed.is_some() && line.continue_100;
        self.unmet |= parsed.is_none() || line.unmet;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths() {
        // (value, length or None when refused)
        let rows: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("5", Some(5)),
            ("005", Some(5)),
            ("5, 5", Some(5)),
            ("5,5 ,\t5", Some(5)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("5, 6", None),
            ("5,", None),
            (",5", None),
            ("5,,5", None),
            ("", None),
            ("+5", None),
            ("-5", None),
            ("0x5", None),
            ("5 5", None),
            ("5;a", None),
            ("\u{663}", None),
        ];
        for (value, expected) in rows {
            assert_eq!(content_length(value.as_bytes()), *expected, "{value:?}");
        }
    }

    #[test]
    fn transfer_coding_lists() {
        use RequestError::{BadTransferEncoding as Bad, TransferCodingNotImplemented as Unknown};
        // (field lines, verdict)
        let rows: &[(&[&str], Result<(), RequestError>)] = &[
            (&["chunked"], Ok(())),
            (&["Chunked"], Ok(())),
            (&[", chunked ,"], Ok(())),
            (&["", "chunked"], Ok(())),
            (&["gzip, chunked"], Err(Unknown)),
            (&["gzip;level=1 ; x=\"a,b\", chunked"], Err(Unknown)),
            (&["gzip", "chunked"], Err(Unknown)),
            (&["chunked, gzip"], Err(Bad)),
            (&["gzip"], Err(Bad)),
            (&["xchunked"], Err(Bad)),
            (&["chunked", "chunked"], Err(Bad)),
            (&["chunked, chunked"], Err(Bad)),
            (&["chunked;q=1"], Err(Bad)),
            (&[""], Err(Bad)),
            (&[","], Err(Bad)),
            (&["chunked x"], Err(Bad)),
            (&["chun ked"], Err(Bad)),
            (&["\"chunked\""], Err(Bad)),
            (&["gzip;level, chunked"], Err(Bad)),
            (&["gzip;level=\"1, chunked"], Err(Bad)),
            (&["chunked\u{b}"], Err(Bad)),
        ];
        for (lines, expected) in rows {
            let mut codings = TransferCodings::default();
            for line in *lines {
                codings.add(line.as_bytes());
            }
            assert_eq!(codings.verdict(), *expected, "{lines:?}");
        }
    }

    #[test]
    fn expectations() {
        // (field value, 100-continue asked, something unmet asked)
        let rows: &[(&str, bool, bool)] = &[
            ("100-continue", true, false),
            ("100-Continue", true, false),
            ("100-continue, ,", true, false),
            ("", false, false),
            ("100-continue=1", false, true),
            ("100-continue, foo", true, true),
            ("200-ok", false, true),
            ("foo=\"a,b\";x=y", false, true),
            ("100-continue;x=y", false, true),
            ("100 continue", false, true),
            ("\"100-continue\"", false, true),
        ];
        for (value, continue_100, unmet) in rows {
            let mut expect = Expectations::default();
            expect.add(value.as_bytes());
            assert_eq!(
                expect,
                Expectations {
                    continue_100: *continue_100,
                    unmet: *unmet
                },
                "{value:?}"
            );
        }
    }
}
