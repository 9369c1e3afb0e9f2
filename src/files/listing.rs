//! Directory listings: the visible entries of a directory under the root, as an HTML page
//! or as JSON. Dotfiles, special files and symbolic links that lead out of the root or to a
//! dotfile are left out, and there is no way up from the root.

use super::resolve::is_servable;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// Escaped in a name used as a link: everything but unreserved characters, so no name can
/// be read as a scheme (`javascript:`), a query or another path.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: String,
    /// Whether it is a directory.
    pub directory: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification, whole seconds since the epoch.
    pub modified: u64,
}

/// The entries of `dir` (a canonical directory under the canonical `root`) that the server
/// would serve: directories first, then files, each by name.
pub fn read_entries(root: &Path, dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = item.path();
        if item.file_type()?.is_symlink() && !is_servable(root, &path) {
            continue;
        }
        let Ok(metadata) = fs::metadata(&path) else {
            continue;
        };
        if !(metadata.is_file() || metadata.is_dir()) {
            continue;
        }
        let modified = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        entries.push(Entry {
            name,
            directory: metadata.is_dir(),
            size: if metadata.is_dir() { 0 } else { metadata.len() },
            modified,
        });
    }
    entries.sort_by(|a, b| {
        b.directory
            .cmp(&a.directory)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(entries)
}

/// The HTML page listing `entries` of the directory at request path `url_path` (ending in
/// `/`).
pub fn html(url_path: &str, entries: &[Entry]) -> Vec<u8> {
    let title = escape(url_path);
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title>\n\
         <style>body{{font-family:sans-serif}}td{{padding:0 1em 0 0}}td.size{{text-align:right}}</style>\n\
         </head>\n<body><h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if url_path != "/" {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in entries {
        let slash = if entry.directory { "/" } else { "" };
        let size = if entry.directory {
            "-".to_string()
        } else {
            entry.size.to_string()
        };
        page.push_str(&format!(
            "<tr><td><a href=\"./{}{slash}\">{}{slash}</a></td><td class=\"size\">{size}</td><td>{}</td></tr>\n",
            utf8_percent_encode(&entry.name, SEGMENT),
            escape(&entry.name),
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(entry.modified)),
        ));
    }
    page.push_str("</table><hr><p>margay</p></body></html>\n");
    page.into_bytes()
}

/// The listing as JSON: `{"path": ..., "entries": [{"name", "type", "size", "modified"}]}`,
/// `type` being `"file"` or `"directory"` and `modified` seconds since the epoch.
pub fn json(url_path: &str, entries: &[Entry]) -> Vec<u8> {
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "type": if e.directory { "directory" } else { "file" },
                "size": e.size,
                "modified": e.modified,
            })
        })
        .collect();
    let mut body = serde_json::to_vec(&serde_json::json!({ "path": url_path, "entries": entries }))
        .unwrap_or_default();
    body.push(b'\n');
    body
}

/// `text` safe as HTML text and inside a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn entries_are_visible_sorted_and_measured() {
        let top = tempfile::tempdir().expect("dir");
        let root = top.path().join("root");
        for dir in ["root/b-dir", "root/a-dir", "root/.hidden-dir", "outside"] {
            fs::create_dir_all(top.path().join(dir)).expect("mkdir");
        }
        for (file, bytes) in [
            ("root/zeta.txt", 3),
            ("root/Alpha.txt", 10),
            ("root/.env", 1),
            ("root/<script>alert(1)", 5),
            ("root/.hidden-dir/x", 1),
            ("outside/secret", 1),
        ] {
            fs::write(top.path().join(file), vec![b'x'; bytes]).expect("write");
        }
        symlink("zeta.txt", root.join("link-in")).expect("symlink");
        symlink("../outside/secret", root.join("link-out")).expect("symlink");
        symlink(".env", root.join("link-hidden")).expect("symlink");
        let root = fs::canonicalize(root).expect("canonical");
        let before = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            - 5;
        let entries = read_entries(&root, &root).expect("read");
        let names: Vec<(&str, bool, u64)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.directory, e.size))
            .collect();
        assert_eq!(
            names,
            [
                ("a-dir", true, 0),
                ("b-dir", true, 0),
                ("<script>alert(1)", false, 5),
                ("Alpha.txt", false, 10),
                ("link-in", false, 3),
                ("zeta.txt", false, 3),
            ]
        );
        assert!(entries.iter().all(|e| e.modified >= before), "{entries:?}");
    }

    #[test]
    fn pages_escape_every_name() {
        let entries = vec![
            Entry {
                name: "docs".into(),
                directory: true,
                size: 0,
                modified: 784111777,
            },
            Entry {
                name: "<script>alert(\"x\")</script>".into(),
                directory: false,
                size: 1234,
                modified: 784111777,
            },
            Entry {
                name: "javascript:alert(1)".into(),
                directory: false,
                size: 1,
                modified: 0,
            },
            Entry {
                name: "a&b c'.txt".into(),
                directory: false,
                size: 2,
                modified: 0,
            },
        ];
        let page = String::from_utf8(html("/sub/<x>/", &entries)).expect("utf-8");
        for wanted in [
            "<title>Index of /sub/&lt;x&gt;/</title>",
            "<a href=\"../\">../</a>",
            "<a href=\"./docs/\">docs/</a></td><td class=\"size\">-</td><td>Sun, 06 Nov 1994 08:49:37 GMT</td>",
            "<a href=\"./%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E\">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</a></td><td class=\"size\">1234</td>",
            "<a href=\"./javascript%3Aalert%281%29\">",
            "<a href=\"./a%26b%20c%27.txt\">a&amp;b c&#39;.txt</a>",
        ] {
            assert!(page.contains(wanted), "{wanted} in\n{page}");
        }
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<x>"), "{page}");
        let root_page = String::from_utf8(html("/", &entries)).expect("utf-8");
        assert!(!root_page.contains("../"), "no way up from the root");

        let json: serde_json::Value =
            serde_json::from_slice(&json("/sub/", &entries)).expect("json");
        assert_eq!(json["path"], "/sub/");
        assert_eq!(json["entries"][0]["type"], "directory");
        assert_eq!(json["entries"][1]["name"], "<script>alert(\"x\")</script>");
        assert_eq!(json["entries"][1]["size"], 1234);
        assert_eq!(json["entries"][1]["modified"], 784111777);
    }
}
