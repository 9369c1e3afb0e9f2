//! The chunked transfer coding (RFC 9112 section 7.1), decoded incrementally and strictly by
//! its grammar:
//!
//! ```text
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-name = token
//! chunk-ext-val  = token / quoted-string
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! with two limits: a size below 16^15 (leading zeros aside) and a chunk line (size and
//! extensions) of at most [`MAX_CHUNK_LINE`] bytes; trailers are read, checked and dropped.

use super::error::RequestError;
use super::fields::{is_escapable, is_qdtext, is_tchar};

/// Longest chunk line accepted, size and extensions, CRLF not counted.
pub const MAX_CHUNK_LINE: usize = 1024;
/// Most bytes the trailer field lines may take, their CRLFs counted, the final CRLF not.
pub const MAX_TRAILERS: usize = 8 * 1024;
/// A chunk size must stay below 16^15: it never overflows, and no body is that large.
const SIZE_LIMIT: u64 = 1 << 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size (at least one read when `digits`).
    Size { value: u64, digits: bool },
    /// In the rest of a chunk line, at `at`.
    Line { value: u64, at: Ext },
    /// Expecting the LF of a chunk line.
    LineLf { value: u64 },
    /// Inside chunk data, this many bytes left.
    Data { left: u64 },
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// In a trailer field's name.
    TrailerName,
    /// After a trailer field's colon, up to CR.
    TrailerValue,
    /// Expecting the LF that ends a trailer line.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    FinalLf,
    /// The last chunk and trailers are read.
    Done,
}

/// Where a chunk line is after its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After the size, an extension name or an extension value; `spaced` once BWS followed
    /// it (then only `;`, or `=` after a name, may come); `named` after a name.
    Gap { spaced: bool, named: bool },
    /// After `;`, before the name.
    NameStart,
    /// In an extension name.
    Name,
    /// After `=`, before the value.
    ValueStart,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted-string.
    Escape,
}

/// A chunk's size line (`1a2b` CR LF), formatted on the stack: the encoder writes one per
/// piece of a streamed or forwarded body.
pub(crate) struct SizeLine {
    buf: [u8; 18],
    len: usize,
}

impl SizeLine {
    /// The size line of a chunk of `size` bytes.
    pub(crate) fn new(size: usize) -> SizeLine {
        let mut buf = [0u8; 18];
        let digits = (usize::BITS - size.leading_zeros()).div_ceil(4).max(1) as usize;
        for (i, slot) in buf[..digits].iter_mut().enumerate() {
            let shift = 4 * (digits - 1 - i);
            *slot = b"0123456789abcdef"[(size >> shift) & 15];
        }
        buf[digits..digits + 2].copy_from_slice(b"\r\n");
        SizeLine {
            buf,
            len: digits + 2,
        }
    }

    /// The line's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Incremental decoder for one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current chunk line so far.
    line_len: usize,
    /// Bytes of trailer field lines so far.
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: false,
            },
            line_len: 0,
            trailer_len: 0,
        }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending data to `out` (or dropping it when `out` is `None`).
    /// Returns how many input bytes were used; stops at the end of the body.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<usize, RequestError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { left } = self.state {
                let take = left.min((input.len() - i) as u64) as usize;
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(&input[i..i + take]);
                }
                i += take;
                self.state = if left == take as u64 {
                    State::DataCr
                } else {
                    State::Data {
                        left: left - take as u64,
                    }
                };
                continue;
            }
            self.state = self.step(input[i]).ok_or(RequestError::BadChunk)?;
            i += 1;
        }
        Ok(i)
    }

    /// The state after `byte`; `None` when the byte breaks the grammar or a limit.
    fn step(&mut self, byte: u8) -> Option<State> {
        use State::*;
        Some(match self.state {
            Size { value, digits } if byte != b'\r' => {
                self.count_line_byte()?;
                size_digit(value, digits, byte)?
            }
            Line { value, at } if byte != b'\r' => {
                self.count_line_byte()?;
                Line {
                    value,
                    at: extension(at, byte)?,
                }
            }
            Size {
                value,
                digits: true,
            }
            | Line {
                value,
                at: Ext::Gap { spaced: false, .. } | Ext::Name | Ext::Token,
            } => LineLf { value },
            LineLf { value } if byte == b'\n' => {
                self.line_len = 0;
                match value {
                    0 => TrailerStart,
                    left => Data { left },
                }
            }
            DataCr if byte == b'\r' => DataLf,
            DataLf if byte == b'\n' => Size {
                value: 0,
                digits: false,
            },
            TrailerStart if byte == b'\r' => FinalLf,
            FinalLf if byte == b'\n' => Done,
            TrailerStart | TrailerName | TrailerValue | TrailerLf => {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILERS {
                    return None;
                }
                trailer_byte(self.state, byte)?
            }
            _ => return None,
        })
    }

    /// Counts one byte of the chunk line against its limit.
    fn count_line_byte(&mut self) -> Option<()> {
        self.line_len += 1;
        (self.line_len <= MAX_CHUNK_LINE).then_some(())
    }
}

/// Where a chunk line's extensions are after `byte` (not CR, which ends the line).
fn extension(at: Ext, byte: u8) -> Option<Ext> {
    let is_bws = byte == b' ' || byte == b'\t';
    Some(match at {
        Ext::NameStart | Ext::ValueStart if is_bws => at,
        Ext::NameStart if is_tchar(byte) => Ext::Name,
        Ext::ValueStart if is_tchar(byte) => Ext::Token,
        Ext::ValueStart if byte == b'"' => Ext::Quoted,
        Ext::Name | Ext::Token if is_tchar(byte) => at,
        Ext::Quoted if byte == b'"' => Ext::Gap {
            spaced: false,
            named: false,
        },
        Ext::Quoted if byte == b'\\' => Ext::Escape,
        Ext::Quoted if is_qdtext(byte) => Ext::Quoted,
        Ext::Escape if is_escapable(byte) => Ext::Quoted,
        Ext::Name => gap(byte, true)?,
        Ext::Token => gap(byte, false)?,
        Ext::Gap { named, .. } => gap(byte, named)?,
        _ => return None,
    })
}

/// A byte of a chunk size, or the first byte after it.
fn size_digit(value: u64, digits: bool, byte: u8) -> Option<State> {
    match (byte as char).to_digit(16) {
        Some(d) => {
            let value = value * 16 + u64::from(d);
            (value < SIZE_LIMIT).then_some(State::Size {
                value,
                digits: true,
            })
        }
        None if digits => Some(State::Line {
            value,
            at: gap(byte, false)?,
        }),
        None => None,
    }
}

/// A byte between the parts of a chunk line (not CR, which ends it).
fn gap(byte: u8, named: bool) -> Option<Ext> {
    match byte {
        b' ' | b'\t' => Some(Ext::Gap {
            spaced: true,
            named,
        }),
        b';' => Some(Ext::NameStart),
        b'=' if named => Some(Ext::ValueStart),
        _ => None,
    }
}

/// A byte of a trailer field line: `field-name ":" OWS field-value OWS` with a token for the
/// name, and `SP / HTAB / VCHAR / obs-text` in the value (obs-fold is refused: a line cannot
/// start with whitespace).
fn trailer_byte(state: State, byte: u8) -> Option<State> {
    use State::*;
    match (state, byte) {
        (TrailerStart | TrailerName, b) if is_tchar(b) => Some(TrailerName),
        (TrailerName, b':') => Some(TrailerValue),
        (TrailerValue, b'\r') => Some(TrailerLf),
        (TrailerValue, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => Some(TrailerValue),
        (TrailerLf, b'\n') => Some(TrailerStart),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), RequestError> {
        let mut decoder = ChunkedDecoder::new();
        let mut out = Vec::new();
        let used = decoder.decode(input, Some(&mut out))?;
        Ok((out, used, decoder.is_done()))
    }

    #[test]
    fn a_size_line_is_lowercase_hex_and_crlf() {
        for size in [0usize, 1, 9, 10, 15, 16, 255, 4096, 0x1a2b, usize::MAX] {
            let line = SizeLine::new(size);
            assert_eq!(
                line.as_bytes(),
                format!("{size:x}\r\n").as_bytes(),
                "{size}"
            );
        }
    }

    #[test]
    fn valid_bodies() {
        // (encoded body, decoded bytes); every body is complete and followed by "NEXT".
        let rows: &[(&str, &str)] = &[
            ("0\r\n\r\n", ""),
            ("5\r\nhello\r\n0\r\n\r\n", "hello"),
            ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
            ("A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
            ("a;name=value\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
            ("5 ;ext\r\nhello\r\n0\r\n\r\n", "hello"),
            ("5\r\nhello\r\n0\r\nExpires: never\r\nX: y\r\n\r\n", "hello"),
            ("000005\r\nhello\r\n0\r\n\r\n", "hello"),
            ("00000000000000000005\r\nhello\r\n00\r\n\r\n", "hello"),
            ("5 ; a = b ;c\t;d=\"\"\r\nhello\r\n0;e\r\n\r\n", "hello"),
            ("5;a=\"q \\\" ;x\"\r\nhello\r\n0\r\n\r\n", "hello"),
            ("5\r\nhello\r\n0\r\nX:\r\nY:\t a b \r\n\r\n", "hello"),
        ];
        for (body, expected) in rows {
            let input = format!("{body}NEXT");
            let (out, used, done) = decode_all(input.as_bytes()).unwrap();
            assert!(done, "{body:?}");
            assert_eq!(out, expected.as_bytes(), "{body:?}");
            assert_eq!(used, body.len(), "{body:?}");
        }
    }

    #[test]
    fn invalid_bodies() {
        let rows: &[&str] = &[
            "x\r\n",
            "\r\n",
            "-5\r\nhello\r\n",
            "0x5\r\nhello\r\n",
            "5\nhello\r\n0\r\n\r\n",
            "5\r\nhelloX\r\n",
            "5\r\nhello\n0\r\n\r\n",
            "1000000000000000\r\n",
            "ffffffffffffffff\r\n",
            "5\r\nhello\r\n0\r\n\n",
            "5\0\r\nhello\r\n",
            // Something after the size that is not `;` and an extension: a proxy could take
            // it for part of the size, or the start of the data.
            "5 \r\nhello\r\n",
            "5 5\r\nhello\r\n",
            "5\t00\r\nhello\r\n",
            "5 x\r\nhello\r\n",
            "5,ext\r\nhello\r\n",
            "5=x\r\nhello\r\n",
            "5;\r\nhello\r\n",
            "5; \r\nhello\r\n",
            "5;a \r\nhello\r\n",
            "5;a=\r\nhello\r\n",
            "5;a=b c\r\nhello\r\n",
            "5;a=b=c\r\nhello\r\n",
            "5;a=\"x\r\nhello\r\n",
            "5;a=\"x\"y\r\nhello\r\n",
            "5;a@b\r\nhello\r\n",
            "5;a=\"\x01\"\r\nhello\r\n",
            "5;a=\"\\\x7f\"\r\nhello\r\n",
            "1000000000000000\r\n",
            "5\r\nhello\r\n0\r\nX\r\n\r\n",
            "5\r\nhello\r\n0\r\n: x\r\n\r\n",
            "5\r\nhello\r\n0\r\nX : x\r\n\r\n",
            "5\r\nhello\r\n0\r\nX: a\r\n folded\r\n\r\n",
            "5\r\nhello\r\n0\r\nX: a\x01\r\n\r\n",
            "5\r\nhello\r\n0\r\nX: a\n\r\n",
        ];
        for body in rows {
            assert_eq!(
                decode_all(body.as_bytes()).err(),
                Some(RequestError::BadChunk),
                "{body:?}"
            );
        }
        // The line limit counts the size and extensions, leading zeros included.
        for (line, fits) in [
            (format!("5;{}", "e".repeat(MAX_CHUNK_LINE - 2)), true),
            (format!("5;{}", "e".repeat(MAX_CHUNK_LINE - 1)), false),
            (format!("{}5", "0".repeat(MAX_CHUNK_LINE - 1)), true),
            (format!("{}5", "0".repeat(MAX_CHUNK_LINE)), false),
        ] {
            let body = format!("{line}\r\nhello\r\n0\r\n\r\n");
            assert_eq!(decode_all(body.as_bytes()).is_ok(), fits, "{}", line.len());
        }
        let trailer = |n: usize| format!("0\r\nX:{}\r\n\r\n", "t".repeat(n));
        assert!(decode_all(trailer(MAX_TRAILERS - 4).as_bytes()).is_ok());
        assert!(decode_all(trailer(MAX_TRAILERS - 3).as_bytes()).is_err());
    }

    #[test]
    fn any_split_gives_the_same_body() {
        let body = b"5\r\nhello\r\n6 ; x = \"y\\\"\"\r\n world\r\n0\r\nT: 1\r\n\r\n";
        for cut in 0..body.len() {
            let mut decoder = ChunkedDecoder::new();
            let mut out = Vec::new();
            let first = decoder.decode(&body[..cut], Some(&mut out)).unwrap();
            assert_eq!(first, cut);
            let second = decoder.decode(&body[cut..], Some(&mut out)).unwrap();
            assert_eq!(first + second, body.len());
            assert!(decoder.is_done());
            assert_eq!(out, b"hello world");
        }
    }
}
