//! A rule's path pattern: a glob over the decoded request path, compiled with globset, and,
//! for redirect targets, a small matcher that also says what each wildcard matched.

use globset::{Glob, GlobBuilder};

/// A path pattern as written, and the globs it stands for.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    text: String,
    /// The pattern itself, and for `/x/**` also `/x`: "everything under /x" includes `/x`.
    globs: Vec<Glob>,
    /// Its pieces for capturing, when it is made of literals, `*`, `?` and `**` only.
    pieces: Option<Vec<Piece>>,
}

/// One piece of a pattern, for capturing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `*`: any run of characters within a segment.
    Star,
    /// `?`: one character within a segment.
    Question,
    /// `/**/` inside: zero or more whole directories; captures them without the slashes.
    AnyDirs,
    /// `/**` at the end: everything below, or nothing at all.
    Rest,
    /// `**/` at the start: any leading directories.
    LeadingDirs,
    /// `**` alone: any path.
    Everything,
}

impl Pattern {
    /// Compiles `text`, which must start with `/` or `**`.
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        if !(text.starts_with('/') || text.starts_with("**")) {
            return Err(format!(
                "{text:?} does not start with / or **: patterns match the whole request path"
            ));
        }
        let mut globs = vec![glob(text)?];
        if let Some(base) = text.strip_suffix("/**")
            && !base.is_empty()
        {
            globs.push(glob(base)?);
        }
        Ok(Pattern {
            text: text.to_string(),
            globs,
            pieces: pieces(text),
        })
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The globs to add to the rule set's matcher.
    pub(crate) fn globs(&self) -> &[Glob] {
        &self.globs
    }

    /// How many wildcards can be captured (`{1}`..`{n}`), or `None` if the pattern uses
    /// classes or alternatives, which cannot be.
    pub(crate) fn captures_available(&self) -> Option<usize> {
        let pieces = self.pieces.as_ref()?;
        Some(
            pieces
                .iter()
                .filter(|p| !matches!(p, Piece::Literal(_)))
                .count(),
        )
    }

    /// What each wildcard matched in `path`, in order; `None` if it does not match.
    pub(crate) fn captures<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        let pieces = self.pieces.as_ref()?;
        let mut captures = Vec::new();
        match_pieces(pieces, path, &mut captures).then_some(captures)
    }
}

fn glob(text: &str) -> Result<Glob, String> {
    GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("{text:?} is not a valid pattern: {}", e.kind()))
}

/// Splits a pattern into pieces, or `None` if it uses syntax the capturing matcher does not
/// know (classes, alternatives, escapes, `**` inside a segment).
fn pieces(text: &str) -> Option<Vec<Piece>> {
    if text.contains(['[', ']', '{', '}', '\\']) {
        return None;
    }
    if text == "**" {
        return Some(vec![Piece::Everything]);
    }
    let mut out = Vec::new();
    let mut rest = text;
    if let Some(after) = rest.strip_prefix("**/") {
        out.push(Piece::LeadingDirs);
        rest = after;
    }
    let mut literal = String::new();
    while !rest.is_empty() {
        let (piece, len) = if rest == "/**" {
            (Some(Piece::Rest), 3)
        } else if rest.starts_with("/**/") {
            (Some(Piece::AnyDirs), 4)
        } else if rest.starts_with("**") {
            return None;
        } else if rest.starts_with('*') {
            (Some(Piece::Star), 1)
        } else if rest.starts_with('?') {
            (Some(Piece::Question), 1)
        } else {
            let c = rest.chars().next()?;
            literal.push(c);
            (None, c.len_utf8())
        };
        if let Some(piece) = piece {
            if !literal.is_empty() {
                out.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            // `/**/` ends in a slash that the next piece's text would otherwise repeat.
            out.push(piece);
        }
        rest = &rest[len..];
    }
    if !literal.is_empty() {
        out.push(Piece::Literal(literal));
    }
    Some(out)
}

/// Matches `pieces` against all of `path`, pushing each wildcard's text; backtracks, trying
/// the longest match of each wildcard first (as the glob's regular expression would).
fn match_pieces<'p>(pieces: &[Piece], path: &'p str, captures: &mut Vec<&'p str>) -> bool {
    let Some((piece, rest)) = pieces.split_first() else {
        return path.is_empty();
    };
    let depth = captures.len();
    let mut attempt = |taken: usize, capture: &'p str| {
        captures.truncate(depth);
        captures.push(capture);
        match_pieces(rest, &path[taken..], captures)
    };
    let matched = match piece {
        Piece::Literal(literal) => {
            return path.starts_with(literal.as_str())
                && match_pieces(rest, &path[literal.len()..], captures);
        }
        Piece::Everything => attempt(path.len(), path),
        Piece::Star => {
            let end = path.find('/').unwrap_or(path.len());
            char_ends(&path[..end])
                .rev()
                .any(|len| attempt(len, &path[..len]))
        }
        Piece::Question => match path.chars().next() {
            Some(c) if c != '/' => attempt(c.len_utf8(), &path[..c.len_utf8()]),
            _ => false,
        },
        Piece::Rest => match path.strip_prefix('/') {
            Some(below) => attempt(path.len(), below),
            None => path.is_empty() && attempt(0, ""),
        },
        Piece::AnyDirs => {
            // `/` then any directories each ending in `/`: the longest first.
            path.starts_with('/')
                && (slashes(path)
                    .rev()
                    .filter(|&at| at > 0)
                    .any(|at| attempt(at + 1, &path[1..at]))
                    || attempt(1, ""))
        }
        Piece::LeadingDirs => {
            slashes(path).rev().any(|at| attempt(at + 1, &path[..at])) || attempt(0, "")
        }
    };
    if !matched {
        captures.truncate(depth);
    }
    matched
}

/// The byte lengths of every prefix of `text` that ends on a character boundary, from 0.
fn char_ends(text: &str) -> impl DoubleEndedIterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.char_indices().map(|(i, c)| i + c.len_utf8()))
}

/// The positions of every `/` in `text`.
fn slashes(text: &str) -> impl DoubleEndedIterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'/')
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::GlobSetBuilder;

    #[test]
    fn patterns_match_like_their_globs_and_capture_each_wildcard() {
        // (pattern, path, captures if it matches)
        let rows: &[(&str, &str, Option<&[&str]>)] = &[
            ("/old/*", "/old/page", Some(&["page"])),
            ("/old/*", "/old/", Some(&[""])),
            ("/old/*", "/old/a/b", None),
            ("/old/*", "/older/x", None),
            ("/old/*.html", "/old/a.b.html", Some(&["a.b"])),
            ("/a/*/b/*", "/a/x/b/y", Some(&["x", "y"])),
            ("/p?ge", "/page", Some(&["a"])),
            ("/p?ge", "/p/ge", None),
            ("/docs/**", "/docs/a/b/c.txt", Some(&["a/b/c.txt"])),
            ("/docs/**", "/docs/", Some(&[""])),
            ("/docs/**", "/docs", Some(&[""])),
            ("/docs/**", "/docsx", None),
            ("/a/**/z", "/a/z", Some(&[""])),
            ("/a/**/z", "/a/b/c/z", Some(&["b/c"])),
            ("/a/**/z", "/a/bz", None),
            ("**/*.css", "/x/y/s.css", Some(&["/x/y", "s"])),
            ("**/*.css", "/s.css", Some(&["", "s"])),
            ("**", "/any/thing", Some(&["/any/thing"])),
            ("/**/*.css", "/s.css", Some(&["", "s"])),
            ("/**/*.css", "/x/y/s.css", Some(&["x/y", "s"])),
            ("/**/*.css", "/s.css.map", None),
            (
                "/caf\u{e9}/*",
                "/caf\u{e9}/\u{e9}t\u{e9}",
                Some(&["\u{e9}t\u{e9}"]),
            ),
            ("/exact", "/exact", Some(&[])),
            ("/exact", "/exact/", None),
        ];
        for (text, path, expected) in rows {
            let pattern = Pattern::parse(text).expect("valid");
            let mut set = GlobSetBuilder::new();
            for glob in pattern.globs() {
                set.add(glob.clone());
            }
            let set = set.build().expect("set");
            assert_eq!(
                set.is_match(path),
                expected.is_some(),
                "globset: {text} on {path}"
            );
            let got = pattern.captures(path);
            assert_eq!(got.as_deref(), *expected, "captures: {text} on {path}");
        }
    }

    #[test]
    fn classes_and_alternatives_match_without_captures() {
        // (pattern, path, matches)
        let rows: &[(&str, &str, bool)] = &[
            ("/img/*.{png,jpg}", "/img/a.png", true),
            ("/img/*.{png,jpg}", "/img/a.gif", false),
            ("/v[0-9]/*", "/v1/x", true),
            ("/v[0-9]/*", "/vx/x", false),
            ("/p?ge", "/pxge", true),
            ("/CASE", "/case", false),
        ];
        for (text, path, matches) in rows {
            let pattern = Pattern::parse(text).expect("valid");
            let set = globset::GlobSet::new(pattern.globs().iter().cloned()).expect("set");
            assert_eq!(set.is_match(path), *matches, "{text} on {path}");
        }
    }

    #[test]
    fn bad_and_uncapturable_patterns() {
        // (pattern, valid, wildcards that can be captured)
        let rows: &[(&str, bool, Option<usize>)] = &[
            ("/a/*", true, Some(1)),
            ("/a/**", true, Some(1)),
            ("/**/*.{css,js}", true, None),
            ("/[ab]/*", true, None),
            ("/a**b", true, None),
            ("relative/*", false, None),
            ("", false, None),
            ("/a/[", false, None),
            ("/a/{b", false, None),
        ];
        for (text, valid, captures) in rows {
            let parsed = Pattern::parse(text);
            assert_eq!(parsed.is_ok(), *valid, "{text}: {parsed:?}");
            if let Ok(pattern) = parsed {
                assert_eq!(pattern.captures_available(), *captures, "{text}");
            }
        }
    }
}
