//! The `Content-Type` of a file, from its name's extension.

use std::borrow::Cow;
use std::path::Path;

/// The type sent when the extension says nothing (RFC 9110 section 8.3).
const UNKNOWN: &str = "application/octet-stream";

/// Types to use where `mime_guess` disagrees with current registrations.
const OVERRIDES: &[(&str, &str)] = &[
    // RFC 9239: JavaScript modules are text/javascript like scripts.
    ("mjs", "text/javascript"),
    // RFC 8081: the font top-level type.
    ("woff", "font/woff"),
];

/// The `Content-Type` value for a file called `name`, with `; charset=utf-8` for textual types.
pub fn content_type(name: &Path) -> Cow<'static, str> {
    let Some(extension) = name.extension().and_then(|e| e.to_str()) else {
        return Cow::Borrowed(UNKNOWN);
    };
    let essence = OVERRIDES
        .iter()
        .find(|(ext, _)| ext.eq_ignore_ascii_case(extension))
        .map(|(_, essence)| *essence)
        .or_else(|| mime_guess::from_ext(extension).first_raw())
        .unwrap_or(UNKNOWN);
    if is_textual(essence) {
        Cow::Owned(format!("{essence}; charset=utf-8"))
    } else {
        Cow::Borrowed(essence)
    }
}

/// Types whose bytes are text, so a charset tells the client how to decode them.
fn is_textual(essence: &str) -> bool {
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/javascript" | "application/json" | "application/xml"
        )
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        // (file name, Content-Type)
        let rows: &[(&str, &str)] = &[
            ("index.html", "text/html; charset=utf-8"),
            ("/a/b/page.HTM", "text/html; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("feed.xml", "text/xml; charset=utf-8"),
            ("logo.svg", "image/svg+xml; charset=utf-8"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("logo.png", "image/png"),
            ("photo.jpg", "image/jpeg"),
            ("photo.jpeg", "image/jpeg"),
            ("photo.webp", "image/webp"),
            ("favicon.ico", "image/x-icon"),
            ("app.wasm", "application/wasm"),
            ("font.woff2", "font/woff2"),
            ("font.woff", "font/woff"),
            ("paper.pdf", "application/pdf"),
            ("clip.mp4", "video/mp4"),
            ("archive.unknownext", UNKNOWN),
            ("Makefile", UNKNOWN),
            (".hidden", UNKNOWN),
            ("backup.tar.gz", "application/gzip"),
        ];
        for (name, expected) in rows {
            assert_eq!(content_type(Path::new(name)), *expected, "name {name:?}");
        }
    }
}
