//! The known document root: every file the fixtures put under it, with its exact content,
//! and the secrets beside and inside it that no response may ever reveal.

use std::io;
use std::path::Path;
use std::sync::OnceLock;
use tempfile::TempDir;

pub const INDEX_HTML: &str = "<!DOCTYPE html>\n<html><head><title>root index</title></head><body>root index page</body></html>\n";
pub const STYLE_CSS: &str = "body { color: #333; background: white; }\n";
pub const APP_JS: &str = "console.log(\"margay test app\");\n";
pub const DATA_JSON: &str = "{\"name\":\"margay\",\"items\":[1,2,3]}\n";
/// The PNG signature followed by the start of an IHDR chunk.
pub const IMG_PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";
pub const SUB_INDEX_HTML: &str = "<!DOCTYPE html>\n<html><body>sub directory index</body></html>\n";
pub const NOINDEX_A_TXT: &str = "file a inside a directory without an index\n";
pub const SECRET: &str = "DOTFILE-SECRET-must-never-be-served\n";
pub const HIDDEN_X_TXT: &str = "HIDDEN-DIR-SECRET-must-never-be-served\n";
pub const WITH_SPACE_TXT: &str = "a file whose name has a space\n";
/// Served only if the server decodes percent-escapes twice would `/%41.txt` find it; its real
/// name contains a literal `%`.
pub const PERCENT_NAME_TXT: &str = "the file literally named %41.txt\n";
pub const RANGES_TXT: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
/// Content of the file that lives outside the document root; no response may ever contain it.
pub const OUTSIDE_SECRET: &str = "OUTSIDE-THE-ROOT-a7f3c9e1-must-never-be-served\n";
/// Name of the file inside the outside directory.
pub const OUTSIDE_FILE: &str = "outside-secret.txt";
/// Size of `big.bin`.
pub const BIG_LEN: usize = 10 * 1024 * 1024;

/// The deterministic pseudo-random content of `big.bin` (xorshift64).
pub fn big_bin() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut out = Vec::with_capacity(BIG_LEN);
        while out.len() < BIG_LEN {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(BIG_LEN);
        out
    })
}

/// Every regular file served from the root, as (URL path, content).
pub fn served_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("/index.html", INDEX_HTML.as_bytes()),
        ("/style.css", STYLE_CSS.as_bytes()),
        ("/app.js", APP_JS.as_bytes()),
        ("/data.json", DATA_JSON.as_bytes()),
        ("/img.png", IMG_PNG),
        ("/sub/index.html", SUB_INDEX_HTML.as_bytes()),
        ("/noindex/a.txt", NOINDEX_A_TXT.as_bytes()),
        ("/with%20space.txt", WITH_SPACE_TXT.as_bytes()),
        ("/ranges.txt", RANGES_TXT.as_bytes()),
        ("/empty.txt", b""),
    ]
}

/// Writes the known files into `root`, and into `outside` (a directory beside it) the secret
/// that symlinks in the root point at.
pub fn populate_root(root: &Path, outside: &Path) -> io::Result<()> {
    use std::fs;
    use std::os::unix::fs::symlink;

    fs::write(root.join("index.html"), INDEX_HTML)?;
    fs::write(root.join("style.css"), STYLE_CSS)?;
    fs::write(root.join("app.js"), APP_JS)?;
    fs::write(root.join("data.json"), DATA_JSON)?;
    fs::write(root.join("img.png"), IMG_PNG)?;
    fs::write(root.join("big.bin"), big_bin())?;
    fs::write(root.join("ranges.txt"), RANGES_TXT)?;
    fs::write(root.join("with space.txt"), WITH_SPACE_TXT)?;
    fs::write(root.join("%41.txt"), PERCENT_NAME_TXT)?;
    fs::write(root.join("empty.txt"), "")?;
    fs::write(root.join(".secret"), SECRET)?;

    fs::create_dir(root.join("sub"))?;
    fs::write(root.join("sub/index.html"), SUB_INDEX_HTML)?;
    fs::create_dir(root.join("noindex"))?;
    fs::write(root.join("noindex/a.txt"), NOINDEX_A_TXT)?;
    fs::create_dir(root.join(".hidden"))?;
    fs::write(root.join(".hidden/x.txt"), HIDDEN_X_TXT)?;

    let outside_file = outside.join(OUTSIDE_FILE);
    fs::write(&outside_file, OUTSIDE_SECRET)?;
    symlink(&outside_file, root.join("link-out"))?;
    symlink(outside, root.join("link-dir"))?;
    symlink("style.css", root.join("link-in"))?;
    Ok(())
}

/// A fresh temporary document root holding the known files, and the directory beside it;
/// both are removed on drop.
pub struct Site {
    root: TempDir,
    outside: TempDir,
}

impl Site {
    /// Creates and fills both directories.
    pub fn new() -> Site {
        let root = TempDir::new().expect("create temp root");
        let outside = TempDir::new().expect("create temp outside dir");
        populate_root(root.path(), outside.path()).expect("populate root");
        Site { root, outside }
    }

    /// The document root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory beside the root that holds [`OUTSIDE_FILE`].
    pub fn outside(&self) -> &Path {
        self.outside.path()
    }
}
