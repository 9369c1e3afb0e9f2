//! One version of a file as it is served: where its bytes are, its type and validators, and
//! its header lines encoded once, so answering 200 or 304 costs no formatting.

use super::conditional::Validators;
use super::range::ByteRange;
use super::resolve::FileIdentity;
use crate::http::coding::Coding;
use crate::http::{Body, BodyPart, Response, StatusCode};
use std::borrow::Cow;
use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

/// Where a representation's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An open file, sent with `sendfile(2)`.
    File(Arc<File>),
    /// The whole file in memory (the small-file cache).
    Memory(Arc<[u8]>),
}

/// A file ready to answer requests.
#[derive(Debug, Clone)]
pub struct Representation {
    /// Where the bytes are.
    pub source: Source,
    /// The `Content-Type` value.
    pub content_type: Cow<'static, str>,
    /// `ETag` and `Last-Modified`.
    pub validators: Validators,
    /// The content coding of its bytes.
    pub coding: Coding,
    /// Whether the file has or may get other codings: every response then says
    /// `Vary: Accept-Encoding`.
    pub varies: bool,
    len: u64,
    /// `Content-Type`, `Last-Modified`, `ETag` and `Accept-Ranges` lines for 200 and 206.
    full_headers: Arc<[u8]>,
    /// `ETag` and `Last-Modified` lines for 304 and multipart 206.
    validator_headers: Arc<[u8]>,
}

impl Representation {
    /// A representation of the file with this identity, as it is; `now` caps its
    /// `Last-Modified`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn new(
        source: Source,
        identity: &FileIdentity,
        content_type: Cow<'static, str>,
        now: SystemTime,
    ) -> Representation {
        Representation::encoded(source, identity, content_type, now, Coding::Identity, false)
    }

    /// A representation whose bytes are in `coding`, of a file of `content_type`; `now` caps
    /// its `Last-Modified`. Its
    /// validators come from `identity` (the sidecar's own, or the original's for a copy
    /// compressed here), its entity-tag marked with the coding (`"...-br"`), so each coding
    /// is validated on its own. `varies` adds `Vary: Accept-Encoding` to every response.
    pub fn encoded(
        source: Source,
        identity: &FileIdentity,
        content_type: Cow<'static, str>,
        now: SystemTime,
        coding: Coding,
        varies: bool,
    ) -> Representation {
        let mut validators = Validators::new(identity, now);
        if coding != Coding::Identity {
            mark_etag(&mut validators.etag, coding);
        }
        Representation::build(
            source,
            identity.len,
            validators,
            content_type,
            coding,
            varies,
        )
    }

    /// This (identity) representation's bytes compressed with `coding` into `bytes`: the same
    /// validators, the entity-tag marked with the coding.
    pub fn compressed_copy(&self, coding: Coding, bytes: Arc<[u8]>) -> Representation {
        let mut validators = self.validators.clone();
        mark_etag(&mut validators.etag, coding);
        let len = bytes.len() as u64;
        Representation::build(
            Source::Memory(bytes),
            len,
            validators,
            self.content_type.clone(),
            coding,
            self.varies,
        )
    }

    /// Encodes the header lines once. `file_len` is the length of a [`Source::File`].
    fn build(
        source: Source,
        file_len: u64,
        validators: Validators,
        content_type: Cow<'static, str>,
        coding: Coding,
        varies: bool,
    ) -> Representation {
        let len = match &source {
            Source::File(_) => file_len,
            Source::Memory(bytes) => bytes.len() as u64,
        };
        let mut lines = Vec::with_capacity(192);
        for piece in [
            "Last-Modified: ",
            &validators.last_modified_text,
            "\r\nETag: ",
            &validators.etag,
            "\r\n",
        ] {
            lines.extend_from_slice(piece.as_bytes());
        }
        if varies {
            lines.extend_from_slice(b"Vary: Accept-Encoding\r\n");
        }
        let validator_headers: Arc<[u8]> = Arc::from(lines.as_slice());
        let mut full = Vec::with_capacity(lines.len() + 96);
        for piece in ["Content-Type: ", &content_type, "\r\n"] {
            full.extend_from_slice(piece.as_bytes());
        }
        if coding != Coding::Identity {
            for piece in ["Content-Encoding: ", coding.token(), "\r\n"] {
                full.extend_from_slice(piece.as_bytes());
            }
        }
        full.extend_from_slice(&lines);
        full.extend_from_slice(b"Accept-Ranges: bytes\r\n");
        Representation {
            source,
            content_type,
            validators,
            coding,
            varies,
            len,
            full_headers: Arc::from(full),
            validator_headers,
        }
    }

    /// The bytes held in memory (0 for an open file).
    pub fn memory_len(&self) -> usize {
        match &self.source {
            Source::Memory(bytes) => bytes.len(),
            Source::File(_) => 0,
        }
    }

    /// Appends header lines (each ending in CRLF) to those sent with 200, 206 and 304: the
    /// site's rules for this file, encoded once like the rest.
    pub fn with_extra_headers(mut self, lines: &[u8]) -> Representation {
        if lines.is_empty() {
            return self;
        }
        let append = |headers: &Arc<[u8]>| -> Arc<[u8]> { [&headers[..], lines].concat().into() };
        self.full_headers = append(&self.full_headers);
        self.validator_headers = append(&self.validator_headers);
        self
    }

    /// The whole file as the body of a response with `status` (an error page): its type and
    /// nothing else, since its validators describe the page, not what was asked for.
    pub fn page(&self, status: StatusCode) -> Response {
        Response::new(status)
            .header("Content-Type", self.content_type.clone())
            .with_body(self.body(0, self.len))
    }

    /// The size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// 200 with the whole file.
    pub fn full(&self) -> Response {
        self.with_headers(
            StatusCode::OK,
            self.full_headers.clone(),
            self.body(0, self.len),
        )
    }

    /// 206 with one range; `content_range` is the `Content-Range` value.
    pub fn single_range(&self, range: ByteRange, content_range: String) -> Response {
        let body = self.body(range.first, range.size());
        self.with_headers(StatusCode::PARTIAL_CONTENT, self.full_headers.clone(), body)
            .header("Content-Range", content_range)
    }

    /// 304 Not Modified: the validators and no body.
    pub fn not_modified(&self) -> Response {
        self.with_headers(
            StatusCode::NOT_MODIFIED,
            self.validator_headers.clone(),
            Body::Empty,
        )
    }

    /// 206 with a multipart body whose parts are already built.
    pub fn multipart(&self, content_type: String, parts: Vec<BodyPart>) -> Response {
        self.with_headers(
            StatusCode::PARTIAL_CONTENT,
            self.validator_headers.clone(),
            Body::Parts(parts),
        )
        .header("Content-Type", content_type)
    }

    /// One range of the file as a piece of a multipart body.
    pub fn part(&self, range: ByteRange) -> BodyPart {
        match &self.source {
            Source::File(file) => BodyPart::File {
                file: file.clone(),
                offset: range.first,
                len: range.size(),
            },
            Source::Memory(bytes) => {
                BodyPart::Bytes(slice(bytes, range.first, range.size()).to_vec())
            }
        }
    }

    fn body(&self, offset: u64, len: u64) -> Body {
        match &self.source {
            Source::File(file) => Body::File {
                file: file.clone(),
                offset,
                len,
            },
            Source::Memory(bytes) if offset == 0 && len == self.len => Body::Shared(bytes.clone()),
            Source::Memory(bytes) => Body::Bytes(slice(bytes, offset, len).to_vec()),
        }
    }

    fn with_headers(&self, status: StatusCode, encoded: Arc<[u8]>, body: Body) -> Response {
        let mut response = Response::new(status).with_body(body);
        response.encoded_headers = Some(encoded);
        response
    }
}

/// Marks a quoted entity-tag with a coding: `"abc"` becomes `"abc-br"`.
fn mark_etag(etag: &mut String, coding: Coding) {
    etag.pop();
    etag.push('-');
    etag.push_str(coding.suffix());
    etag.push('"');
}

/// `len` bytes of `bytes` from `offset`, cut short rather than panicking if out of bounds.
fn slice(bytes: &[u8], offset: u64, len: u64) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = usize::try_from(offset.saturating_add(len))
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_memory as memory;

    fn encoded(response: &Response) -> String {
        String::from_utf8(
            response
                .encoded_headers
                .as_deref()
                .unwrap_or_default()
                .to_vec(),
        )
        .expect("utf-8")
    }

    #[test]
    fn responses() {
        let rep = memory(b"hello world");
        let full = rep.full();
        assert_eq!(full.status, 200);
        assert!(matches!(full.body, Body::Shared(ref b) if &b[..] == b"hello world"));
        assert_eq!(
            encoded(&full),
            "Content-Type: text/plain; charset=utf-8\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             ETag: \"b-2ebc98a1.0-2\"\r\nAccept-Ranges: bytes\r\n"
        );
        let not_modified = rep.not_modified();
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
        assert_eq!(
            encoded(&not_modified),
            "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nETag: \"b-2ebc98a1.0-2\"\r\n"
        );
        let range = ByteRange { first: 6, last: 10 };
        let partial = rep.single_range(range, "bytes 6-10/11".to_string());
        assert_eq!(partial.status, 206);
        assert_eq!(partial.header_value("Content-Range"), Some("bytes 6-10/11"));
        assert!(matches!(partial.body, Body::Bytes(ref b) if b == b"world"));
        assert!(matches!(rep.part(range), BodyPart::Bytes(ref b) if b == b"world"));
    }

    #[test]
    fn slices_never_panic() {
        // (offset, len, expected)
        let rows: &[(u64, u64, &[u8])] = &[
            (0, 3, b"abc"),
            (1, 1, b"b"),
            (2, 10, b"c"),
            (5, 1, b""),
            (u64::MAX, u64::MAX, b""),
        ];
        for (offset, len, expected) in rows {
            assert_eq!(slice(b"abc", *offset, *len), *expected, "{offset} {len}");
        }
    }
}
