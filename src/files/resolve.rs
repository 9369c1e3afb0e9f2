//! Maps a decoded request path to a regular file under the root, refusing anything that
//! would leave the root, reveal a dotfile, or open something that is not a regular file.
//! The one dot-named directory served is `/.well-known/` at the root (RFC 8615: ACME
//! challenges, `security.txt`); dotfiles inside it stay refused.

use crate::http::StatusCode;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The file served for a directory requested with a trailing slash.
pub const INDEX_FILE: &str = "index.html";

/// The only dot-named segment served, and only as the first segment (RFC 8615).
pub const WELL_KNOWN: &str = ".well-known";

/// Where a request path leads.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file under the root.
    File {
        /// Its canonical path (no symlinks, no `..`).
        path: PathBuf,
        /// Its identity when it was resolved.
        identity: FileIdentity,
        /// Whether it is a directory's index file rather than the named path itself.
        index: bool,
    },
    /// A directory named without a trailing slash: redirect to the name with one.
    Redirect,
}

/// What tells one version of a file from another: when any of it changes, the bytes may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, seconds since the epoch.
    pub modified_secs: i64,
    /// Modification time, nanoseconds within the second.
    pub modified_nanos: i64,
    /// Status-change time in nanoseconds since the epoch: catches `chmod`, which can turn a
    /// servable file into a forbidden one without touching its bytes.
    pub changed_nanos: i128,
    /// Device holding the file.
    pub device: u64,
    /// Inode number: changes when a file is replaced by rename.
    pub inode: u64,
}

impl FileIdentity {
    /// The identity of the file `metadata` describes.
    pub fn of(metadata: &Metadata) -> FileIdentity {
        FileIdentity {
            len: metadata.size(),
            modified_secs: metadata.mtime(),
            modified_nanos: metadata.mtime_nsec(),
            changed_nanos: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// Why a path is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Missing, hidden, outside the root, or not a regular file: 404.
    NotFound,
    /// The file system denies access: 403.
    Forbidden,
    /// An unexpected I/O error (e.g. out of file descriptors): 500.
    Failed,
}

impl Refusal {
    /// The status code that answers this refusal.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Classifies an I/O error met while resolving or opening a path.
    pub fn from_io(error: &io::Error) -> Refusal {
        match error.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => Refusal::Forbidden,
            Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG | libc::ELOOP | libc::ENXIO) => {
                Refusal::NotFound
            }
            _ => {
                log::warn!("static file: {error}");
                Refusal::Failed
            }
        }
    }
}

/// Resolves `decoded_path` (starting with `/`) under `root`, which must be canonical.
///
/// The path is checked segment by segment, joined under the root and canonicalised; the real
/// path must still lie under the root and contain no dot-prefixed component, so symlinks that
/// stay inside the root are followed and those leading out are refused (404).
pub fn resolve_path(root: &Path, decoded_path: &str) -> Result<Resolved, Refusal> {
    let relative = decoded_path.strip_prefix('/').ok_or(Refusal::NotFound)?;
    let (named, wants_directory) = match relative.strip_suffix('/') {
        Some(named) => (named, true),
        None => (relative, relative.is_empty()),
    };
    let (path, metadata) = real_path_under(root, &join_checked(root, named)?)?;
    if metadata.is_dir() {
        if !wants_directory {
            return Ok(Resolved::Redirect);
        }
        let (path, metadata) = real_path_under(root, &path.join(INDEX_FILE))?;
        return regular_file(path, metadata, true);
    }
    if wants_directory {
        return Err(Refusal::NotFound);
    }
    regular_file(path, metadata, false)
}

/// Resolves a request path ending in `/` to a directory under the root, for a listing.
pub fn resolve_directory(root: &Path, decoded_path: &str) -> Result<PathBuf, Refusal> {
    let named = match decoded_path {
        "/" => "",
        path => path
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix('/'))
            .filter(|p| !p.is_empty())
            .ok_or(Refusal::NotFound)?,
    };
    let (path, metadata) = real_path_under(root, &join_checked(root, named)?)?;
    if !metadata.is_dir() {
        return Err(Refusal::NotFound);
    }
    Ok(path)
}

/// `root` joined with each segment of `named` (no leading or trailing `/`), each checked.
fn join_checked(root: &Path, named: &str) -> Result<PathBuf, Refusal> {
    let mut joined = root.to_path_buf();
    if !named.is_empty() {
        for (i, segment) in named.split('/').enumerate() {
            check_segment(i, segment)?;
            joined.push(segment);
        }
    }
    Ok(joined)
}

/// Opens a resolved file for reading without ever blocking or following a last-moment
/// symlink, and checks that what was opened is still a regular file.
pub fn open_file(path: &Path) -> Result<(File, FileIdentity), Refusal> {
    // O_NONBLOCK: if a FIFO was swapped in since the path was resolved, opening it must not
    // wait for a writer. It has no effect on reads of regular files.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Refusal::from_io(&e))?;
    let metadata = file.metadata().map_err(|e| Refusal::from_io(&e))?;
    if !metadata.is_file() {
        return Err(Refusal::NotFound);
    }
    Ok((file, FileIdentity::of(&metadata)))
}

/// A request segment may not be empty, name a dotfile (which covers `.` and `..`; the first
/// may be `.well-known`) or hold NUL.
fn check_segment(index: usize, segment: &str) -> Result<(), Refusal> {
    let dotted = segment.starts_with('.') && !(index == 0 && segment == WELL_KNOWN);
    if segment.is_empty() || dotted || segment.contains('\0') {
        return Err(Refusal::NotFound);
    }
    Ok(())
}

/// Whether `path` (say, a symbolic link found in a listed directory) leads to something
/// under `root` with no hidden component, as a request would have to.
pub fn is_servable(root: &Path, path: &Path) -> bool {
    real_path_under(root, path).is_ok()
}

/// Canonicalises `path` and checks the real path is under `root` with no hidden component.
fn real_path_under(root: &Path, path: &Path) -> Result<(PathBuf, Metadata), Refusal> {
    let real = fs::canonicalize(path).map_err(|e| Refusal::from_io(&e))?;
    let inside = real.strip_prefix(root).map_err(|_| Refusal::NotFound)?;
    let hidden = inside.components().enumerate().any(|(i, c)| match c {
        Component::Normal(name) => {
            name.as_encoded_bytes().starts_with(b".") && !(i == 0 && name == WELL_KNOWN)
        }
        _ => true,
    });
    if hidden {
        return Err(Refusal::NotFound);
    }
    let metadata = fs::metadata(&real).map_err(|e| Refusal::from_io(&e))?;
    Ok((real, metadata))
}

fn regular_file(path: PathBuf, metadata: Metadata, index: bool) -> Result<Resolved, Refusal> {
    if !metadata.is_file() {
        return Err(Refusal::NotFound);
    }
    Ok(Resolved::File {
        path,
        identity: FileIdentity::of(&metadata),
        index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// What a row expects: a file (path relative to the root), a redirect, or a refusal.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        File(&'static str),
        Redirect,
        Refused(Refusal),
    }

    fn site() -> (tempfile::TempDir, PathBuf) {
        let top = tempfile::tempdir().expect("temp dir");
        let base = top.path();
        let root = base.join("root");
        for dir in [
            "root/dir",
            "root/sub",
            "root/.git",
            "root/index_dir/index.html",
            "root/indexlink",
            "root/.well-known/acme-challenge",
            "root/sub/.well-known",
            "outside",
        ] {
            fs::create_dir_all(base.join(dir)).expect("mkdir");
        }
        for file in [
            "root/index.html",
            "root/a.txt",
            "root/sub/index.html",
            "root/sub/.hidden",
            "root/.hidden",
            "root/.git/config",
            "root/with space.txt",
            "root/..dots",
            "root/.well-known/security.txt",
            "root/.well-known/acme-challenge/token-1",
            "root/.well-known/.secret",
            "root/sub/.well-known/x",
            "outside/secret.txt",
        ] {
            fs::write(base.join(file), file).expect("write");
        }
        for (target, link) in [
            ("a.txt", "root/link_in"),
            ("sub", "root/sublink"),
            ("../outside/secret.txt", "root/link_out"),
            ("../outside", "root/dirlink_out"),
            (".hidden", "root/to_hidden"),
            ("../../outside/secret.txt", "root/indexlink/index.html"),
            ("missing", "root/dangling"),
            ("loop", "root/loop"),
            ("../.git", "root/.well-known/git"),
            ("../.git/config", "root/.well-known/config-link"),
        ] {
            symlink(target, base.join(link)).expect("symlink");
        }
        let fifo = std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes())
            .expect("path");
        // SAFETY: `fifo` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::os::unix::net::UnixListener::bind(root.join("socket")).expect("socket");
        let root = fs::canonicalize(root).expect("canonical root");
        (top, root)
    }

    #[test]
    fn resolution_table() {
        use Outcome::*;
        let (_top, root) = site();
        let rows: &[(&str, Outcome)] = &[
            ("/", File("index.html")),
            ("/a.txt", File("a.txt")),
            ("/with space.txt", File("with space.txt")),
            ("/a.txt/", Refused(Refusal::NotFound)),
            ("/dir", Redirect),
            ("/dir/", Refused(Refusal::NotFound)),
            ("/sub", Redirect),
            ("/sub/", File("sub/index.html")),
            ("/sub/index.html", File("sub/index.html")),
            ("/missing", Refused(Refusal::NotFound)),
            ("/missing/", Refused(Refusal::NotFound)),
            ("/link_in", File("a.txt")),
            ("/sublink", Redirect),
            ("/sublink/", File("sub/index.html")),
            // Traversal and hidden files.
            ("/..", Refused(Refusal::NotFound)),
            ("/../outside/secret.txt", Refused(Refusal::NotFound)),
            ("/sub/../../outside/secret.txt", Refused(Refusal::NotFound)),
            ("/./a.txt", Refused(Refusal::NotFound)),
            ("//a.txt", Refused(Refusal::NotFound)),
            ("/sub//index.html", Refused(Refusal::NotFound)),
            ("a.txt", Refused(Refusal::NotFound)),
            ("", Refused(Refusal::NotFound)),
            ("/a\0.txt", Refused(Refusal::NotFound)),
            ("/.hidden", Refused(Refusal::NotFound)),
            ("/.git/config", Refused(Refusal::NotFound)),
            ("/.git/", Refused(Refusal::NotFound)),
            ("/sub/.hidden", Refused(Refusal::NotFound)),
            ("/..dots", Refused(Refusal::NotFound)),
            // The one dot-named directory served.
            (
                "/.well-known/security.txt",
                File(".well-known/security.txt"),
            ),
            (
                "/.well-known/acme-challenge/token-1",
                File(".well-known/acme-challenge/token-1"),
            ),
            ("/.well-known", Redirect),
            ("/.well-known/", Refused(Refusal::NotFound)),
            ("/.well-known/.secret", Refused(Refusal::NotFound)),
            ("/.well-known/../.hidden", Refused(Refusal::NotFound)),
            ("/.well-known/git/config", Refused(Refusal::NotFound)),
            ("/.well-known/config-link", Refused(Refusal::NotFound)),
            ("/sub/.well-known/x", Refused(Refusal::NotFound)),
            ("/.WELL-KNOWN/security.txt", Refused(Refusal::NotFound)),
            // Symlinks leading out of the root or to hidden files.
            ("/link_out", Refused(Refusal::NotFound)),
            ("/dirlink_out", Refused(Refusal::NotFound)),
            ("/dirlink_out/secret.txt", Refused(Refusal::NotFound)),
            ("/to_hidden", Refused(Refusal::NotFound)),
            ("/indexlink/", Refused(Refusal::NotFound)),
            ("/dangling", Refused(Refusal::NotFound)),
            ("/loop", Refused(Refusal::NotFound)),
            // Not regular files.
            ("/index_dir/", Refused(Refusal::NotFound)),
            ("/fifo", Refused(Refusal::NotFound)),
            ("/socket", Refused(Refusal::NotFound)),
        ];
        for (path, expected) in rows {
            let got = match resolve_path(&root, path) {
                Ok(Resolved::File {
                    path: real, index, ..
                }) => {
                    let relative = real.strip_prefix(&root).expect("under root");
                    assert_eq!(index, path.ends_with('/'), "index flag for {path:?}");
                    let wanted = match expected {
                        File(name) => *name,
                        _ => "",
                    };
                    if relative == Path::new(wanted) {
                        File(wanted)
                    } else {
                        File("<other>")
                    }
                }
                Ok(Resolved::Redirect) => Redirect,
                Err(refusal) => Refused(refusal),
            };
            assert_eq!(&got, expected, "path {path:?}");
        }
    }

    #[test]
    fn directories_for_listings() {
        let (_top, root) = site();
        // (request path, directory relative to the root, or refused)
        let rows: &[(&str, Option<&str>)] = &[
            ("/", Some("")),
            ("/dir/", Some("dir")),
            ("/sublink/", Some("sub")),
            ("/.well-known/", Some(".well-known")),
            (
                "/.well-known/acme-challenge/",
                Some(".well-known/acme-challenge"),
            ),
            ("/.git/", None),
            ("/dirlink_out/", None),
            ("/a.txt/", None),
            ("/missing/", None),
            ("/dir", None),
            ("//", None),
            ("dir/", None),
        ];
        for (path, expected) in rows {
            let got = resolve_directory(&root, path);
            let got = got
                .as_ref()
                .ok()
                .map(|p| p.strip_prefix(&root).expect("under root"));
            assert_eq!(got, expected.map(Path::new), "{path:?}");
        }
    }

    #[test]
    fn opening_refuses_what_is_not_a_regular_file() {
        let (_top, root) = site();
        // (path under the root, expected outcome); the FIFO must not block.
        let rows: &[(&str, Result<u64, Refusal>)] = &[
            ("a.txt", Ok(10)),
            ("fifo", Err(Refusal::NotFound)),
            ("socket", Err(Refusal::NotFound)),
            ("link_in", Err(Refusal::NotFound)),
            ("dir", Err(Refusal::NotFound)),
            ("missing", Err(Refusal::NotFound)),
        ];
        for (name, expected) in rows {
            let got = open_file(&root.join(name)).map(|(_, identity)| identity.len);
            assert_eq!(&got, expected, "open {name:?}");
        }
    }

    #[test]
    fn io_errors_map_to_statuses() {
        // (errno, status); EACCES is mapped here because tests may run as root, which
        // bypasses file permissions.
        let rows: &[(i32, u16)] = &[
            (libc::EACCES, 403),
            (libc::EPERM, 403),
            (libc::ENOENT, 404),
            (libc::ENOTDIR, 404),
            (libc::ELOOP, 404),
            (libc::ENAMETOOLONG, 404),
            (libc::EMFILE, 500),
            (libc::EIO, 500),
        ];
        for (errno, status) in rows {
            let refusal = Refusal::from_io(&io::Error::from_raw_os_error(*errno));
            assert_eq!(refusal.status(), *status, "errno {errno}");
        }
    }
}
