//! A file's representations by content coding: the file as it is, precompressed sidecars
//! found beside it (`app.js.br`, `app.js.zst`, `app.js.gz`), and copies compressed here the
//! first time a client asks, kept until the file changes.

use super::cache::{MAX_FILE, read_whole};
use super::representation::{Representation, Source};
use super::resolve::{FileIdentity, open_file};
use crate::http::coding::{self, AcceptEncoding, Coding};
use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// One encoded representation's state.
#[derive(Debug)]
enum Encoded {
    /// Not available in this coding.
    Absent,
    /// Can be compressed from the file's bytes when first asked for.
    OnDemand,
    /// Ready to serve; `compressed_here` tells a copy made here from a sidecar's.
    Ready {
        rep: Representation,
        compressed_here: bool,
    },
}

/// Every representation of one file.
#[derive(Debug)]
pub struct Variants {
    /// The file as it is.
    pub identity: Representation,
    /// br, zstd and gzip, in [`Coding::ENCODED`] order.
    encoded: [Encoded; 3],
    /// Header lines the site's rules add to every representation of the file.
    extra_lines: Vec<u8>,
}

impl Variants {
    /// The representations of a file of `content_type` held by `source`: its sidecars
    /// (`sidecars`, in [`Coding::ENCODED`] order), and copies compressed on demand if its
    /// bytes are in memory, of a compressible type and at least [`coding::MIN_COMPRESS`]
    /// long.
    pub fn new(
        source: Source,
        identity: &FileIdentity,
        content_type: Cow<'static, str>,
        now: SystemTime,
        sidecars: [Option<(Source, FileIdentity)>; 3],
    ) -> Variants {
        let compressible = matches!(&source, Source::Memory(bytes)
            if bytes.len() >= coding::MIN_COMPRESS && coding::is_compressible(&content_type));
        let varies = compressible || sidecars.iter().any(Option::is_some);
        let identity_rep = Representation::encoded(
            source,
            identity,
            content_type.clone(),
            now,
            Coding::Identity,
            varies,
        );
        let encoded = std::array::from_fn(|i| {
            let coding = Coding::ENCODED[i];
            match &sidecars[i] {
                Some((source, sidecar)) => Encoded::Ready {
                    rep: Representation::encoded(
                        source.clone(),
                        sidecar,
                        content_type.clone(),
                        now,
                        coding,
                        true,
                    ),
                    compressed_here: false,
                },
                None if compressible && coding.can_compress() => Encoded::OnDemand,
                None => Encoded::Absent,
            }
        });
        Variants {
            identity: identity_rep,
            encoded,
            extra_lines: Vec::new(),
        }
    }

    /// Appends header lines (the site's rules for this file) to every representation, and
    /// to the copies compressed later.
    pub fn with_extra_headers(mut self, lines: &[u8]) -> Variants {
        if lines.is_empty() {
            return self;
        }
        self.identity = self.identity.clone().with_extra_headers(lines);
        for encoded in &mut self.encoded {
            if let Encoded::Ready { rep, .. } = encoded {
                *rep = rep.clone().with_extra_headers(lines);
            }
        }
        self.extra_lines = lines.to_vec();
        self
    }

    /// Whether responses carry `Vary: Accept-Encoding`.
    pub fn varies(&self) -> bool {
        self.identity.varies
    }

    /// The coding `accept` prefers among those this file has or can get.
    pub fn choose(&self, accept: &AcceptEncoding) -> Coding {
        accept.choose(|coding| match coding.index() {
            Some(i) => !matches!(self.encoded[i], Encoded::Absent),
            None => true,
        })
    }

    /// The representation in `coding`, if it is ready.
    pub fn ready(&self, coding: Coding) -> Option<&Representation> {
        match coding.index() {
            None => Some(&self.identity),
            Some(i) => match &self.encoded[i] {
                Encoded::Ready { rep, .. } => Some(rep),
                _ => None,
            },
        }
    }

    /// Compresses the file's bytes with `coding`. `None` when it cannot be (not in memory,
    /// or the result is not smaller: the coding is then marked absent for good).
    pub fn compress(&mut self, coding: Coding) -> Option<Representation> {
        let i = coding.index()?;
        let Source::Memory(bytes) = &self.identity.source else {
            return None;
        };
        match coding::compress(coding, bytes) {
            Some(out) => Some(
                self.identity
                    .compressed_copy(coding, Arc::from(out))
                    .with_extra_headers(&self.extra_lines),
            ),
            None => {
                self.encoded[i] = Encoded::Absent;
                None
            }
        }
    }

    /// Keeps a copy made by [`Variants::compress`].
    pub fn keep(&mut self, rep: Representation) {
        if let Some(i) = rep.coding.index() {
            self.encoded[i] = Encoded::Ready {
                rep,
                compressed_here: true,
            };
        }
    }

    /// Bytes held by copies compressed here.
    pub fn compressed_bytes(&self) -> usize {
        self.encoded
            .iter()
            .map(|e| match e {
                Encoded::Ready {
                    rep,
                    compressed_here: true,
                } => rep.memory_len(),
                _ => 0,
            })
            .sum()
    }

    /// Drops the copies compressed here (they can be made again); returns the bytes freed.
    pub fn drop_compressed(&mut self) -> usize {
        let freed = self.compressed_bytes();
        for e in &mut self.encoded {
            if matches!(
                e,
                Encoded::Ready {
                    compressed_here: true,
                    ..
                }
            ) {
                *e = Encoded::OnDemand;
            }
        }
        freed
    }

    /// Bytes held in memory by the file and its sidecars.
    pub fn held_bytes(&self) -> usize {
        self.identity.memory_len()
            + self
                .encoded
                .iter()
                .map(|e| match e {
                    Encoded::Ready {
                        rep,
                        compressed_here: false,
                    } => rep.memory_len(),
                    _ => 0,
                })
                .sum::<usize>()
    }

    /// How many sidecars are open files (each keeps a descriptor).
    pub fn open_files(&self) -> usize {
        std::iter::once(&self.identity)
            .chain(self.encoded.iter().filter_map(|e| match e {
                Encoded::Ready { rep, .. } => Some(rep),
                _ => None,
            }))
            .filter(|rep| matches!(rep.source, Source::File(_)))
            .count()
    }
}

/// The path of `original`'s sidecar in `coding` (`app.js` -> `app.js.br`).
pub fn sidecar_path(original: &Path, coding: Coding) -> PathBuf {
    let mut name = original.as_os_str().to_os_string();
    name.push(".");
    name.push(coding.suffix());
    PathBuf::from(name)
}

/// The original a changed path is the sidecar of, if its name ends like one.
pub fn original_of(path: &Path) -> Option<PathBuf> {
    let text = path.as_os_str().as_encoded_bytes();
    Coding::ENCODED.iter().find_map(|coding| {
        let suffix = coding.suffix().as_bytes();
        let cut = text.len().checked_sub(suffix.len() + 1)?;
        (text[cut] == b'.' && &text[cut + 1..] == suffix)
            .then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&text[..cut])))
    })
}

/// The sidecars of the file at `original` (its real path) that are regular files not older
/// than it, in [`Coding::ENCODED`] order: small ones read into memory, larger ones kept open.
/// A sidecar that is a symlink, or older than the file (left behind by an edit), is ignored.
pub fn find_sidecars(
    original: &Path,
    identity: &FileIdentity,
) -> [Option<(Source, FileIdentity)>; 3] {
    std::array::from_fn(|i| {
        let path = sidecar_path(original, Coding::ENCODED[i]);
        let (file, sidecar) = open_file(&path).ok()?;
        let older = (sidecar.modified_secs, sidecar.modified_nanos)
            < (identity.modified_secs, identity.modified_nanos);
        if older {
            log::debug!("{}: older than its original, ignored", path.display());
            return None;
        }
        let source = match (sidecar.len <= MAX_FILE)
            .then(|| read_whole(&file, sidecar.len))
            .flatten()
        {
            Some(bytes) => Source::Memory(bytes),
            None => Source::File(Arc::new(file)),
        };
        Some((source, sidecar))
    })
}

/// Parses a request's `Accept-Encoding` only for a file that has codings to choose from.
pub fn accept_of(head: &crate::http::RequestHead, variants: &Variants) -> AcceptEncoding {
    if variants.varies() {
        AcceptEncoding::parse(head.header_values("accept-encoding"))
    } else {
        AcceptEncoding::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names() {
        // (path, original it is a sidecar of)
        let rows: &[(&str, Option<&str>)] = &[
            ("/r/app.js.br", Some("/r/app.js")),
            ("/r/app.js.zst", Some("/r/app.js")),
            ("/r/app.js.gz", Some("/r/app.js")),
            ("/r/app.js", None),
            ("/r/appbr", None),
            ("br", None),
            (".gz", Some("")),
        ];
        for (path, expected) in rows {
            assert_eq!(
                original_of(Path::new(path)),
                expected.map(PathBuf::from),
                "{path}"
            );
        }
        assert_eq!(
            sidecar_path(Path::new("/r/app.js"), Coding::Zstd),
            PathBuf::from("/r/app.js.zst")
        );
    }
}
