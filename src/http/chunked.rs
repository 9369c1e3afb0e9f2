//! The chunked transfer coding (RFC 9112 section 7.1), decoded incrementally and strictly:
//! hex sizes without overflow, CRLF line ends, bounded extensions and trailers.

use super::error::RequestError;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_SIZE_LINE: usize = 1024;
/// Most trailer bytes accepted; trailers are read and ignored.
const MAX_TRAILERS: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { value: u64, digits: usize },
    /// After the size: optional whitespace and extensions up to CR.
    Extension { value: u64 },
    /// Expecting the LF of the size line.
    SizeLf { value: u64 },
    /// Inside chunk data, this many bytes left.
    Data { left: u64 },
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// Reading trailer lines; `line` counts bytes of the current one.
    Trailer { line: usize },
    /// Expecting the LF that ends a trailer line (or the whole message when `line` is 0).
    TrailerLf { line: usize },
    /// The last chunk and trailers are read.
    Done,
}

/// Incremental decoder for one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    line_len: usize,
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
                digits: 0,
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
            self.state = self.step(input[i])?;
            i += 1;
        }
        Ok(i)
    }

    fn step(&mut self, byte: u8) -> Result<State, RequestError> {
        use State::*;
        let bad = Err(RequestError::BadChunk);
        Ok(match self.state {
            Size { value, digits } => {
                self.line_len += 1;
                match (byte as char).to_digit(16) {
                    Some(d) if digits < 15 => Size {
                        value: value * 16 + u64::from(d),
                        digits: digits + 1,
                    },
                    Some(_) => return bad,
                    None if digits == 0 => return bad,
                    None => return self.after_size(value, byte),
                }
            }
            Extension { value } => {
                self.line_len += 1;
                if self.line_len > MAX_SIZE_LINE {
                    return bad;
                }
                self.after_size(value, byte)?
            }
            SizeLf { value } if byte == b'\n' => {
                self.line_len = 0;
                if value == 0 {
                    Trailer { line: 0 }
                } else {
                    Data { left: value }
                }
            }
            DataCr if byte == b'\r' => DataLf,
            DataLf if byte == b'\n' => Size {
                value: 0,
                digits: 0,
            },
            Trailer { line } => {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILERS {
                    return bad;
                }
                match byte {
                    b'\r' => TrailerLf { line },
                    b'\n' => return bad,
                    _ => Trailer { line: line + 1 },
                }
            }
            TrailerLf { line: 0 } if byte == b'\n' => Done,
            TrailerLf { .. } if byte == b'\n' => Trailer { line: 0 },
            _ => return bad,
        })
    }

    /// The byte after a chunk size: extensions (`;name=value`, with optional whitespace before
    /// the `;`) or the CR that ends the line.
    fn after_size(&mut self, value: u64, byte: u8) -> Result<State, RequestError> {
        match (self.state, byte) {
            (_, b'\r') => Ok(State::SizeLf { value }),
            (_, b'\n') | (_, 0..=8) | (_, 10..=31) | (_, 127) => Err(RequestError::BadChunk),
            (State::Size { .. }, b';' | b' ' | b'\t') => Ok(State::Extension { value }),
            (State::Size { .. }, _) => Err(RequestError::BadChunk),
            _ => Ok(State::Extension { value }),
        }
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
        ];
        for body in rows {
            assert_eq!(
                decode_all(body.as_bytes()).err(),
                Some(RequestError::BadChunk),
                "{body:?}"
            );
        }
        let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(2000));
        assert!(decode_all(long_extension.as_bytes()).is_err());
    }

    #[test]
    fn any_split_gives_the_same_body() {
        let body = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: 1\r\n\r\n";
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
