//! Differential checks: each gives one input to margay's parser and to the reference in
//! `abnf`, and returns `Err` with a description when they disagree, on whether the input is
//! accepted or on what it means. Where margay adds a limit to a grammar (a line length, a
//! port below 65536, a number that fits a u64), the check adds the same limit to the
//! reference's answer, in plain sight below.

#![allow(dead_code)]

use super::abnf::{self, ByteSpec, Chunked, ChunkedLimits, TagList, TargetForm};
// margay's parsers, all reached from here (one place to repoint when they move).
use margay::internals::{
    ByteRange, ChunkedDecoder, Comparison, Framing, Limits, MAX_CHUNK_LINE, MAX_RANGES,
    MAX_TRAILERS, RangePlan, RequestError, RequestHead, lines_match, parse_head, parse_host_port,
    parse_http_date, parse_ranges, parse_target,
};

/// `Ok` when margay and the reference agree, else what differs.
pub type Verdict = Result<(), String>;

fn differ(
    what: &str,
    input: &[u8],
    margay: impl std::fmt::Debug,
    reference: impl std::fmt::Debug,
) -> Verdict {
    Err(format!(
        "{what} {:?}: margay says {margay:?}, the reference {reference:?}",
        String::from_utf8_lossy(input)
    ))
}

/// The chunk-size limit margay adds: at most 15 significant hex digits (below 16^15).
const MAX_SIZE_DIGITS: usize = 15;

// ---------------------------------------------------------------------------------------------
// Chunked bodies.

/// A chunked body from the start of `input`: accepted, waiting or refused alike, the same data
/// and the same end, whether it arrives whole or cut in two anywhere.
pub fn chunked(input: &[u8]) -> Verdict {
    let limits = ChunkedLimits {
        max_line: MAX_CHUNK_LINE,
        max_size_digits: MAX_SIZE_DIGITS,
        max_trailers: MAX_TRAILERS,
    };
    let expected = abnf::chunked_body(input, limits);
    let whole = decode_in_pieces(input, None);
    if whole != expected {
        return differ("chunked body", input, whole, expected);
    }
    // Cut points near the start and the end, and a spread in between.
    let cuts = (0..=input.len()).filter(|&c| c < 8 || input.len() - c < 8 || c % 13 == 0);
    for cut in cuts {
        let split = decode_in_pieces(input, Some(cut));
        if split != whole {
            return differ(&format!("chunked body cut at {cut}"), input, split, whole);
        }
    }
    Ok(())
}

/// One chunk line (without its CRLF), followed by as much data as it announces (when that is
/// small), CRLF and a last chunk: the same size, and so the same data, by both.
pub fn chunk_line(line: &[u8]) -> Verdict {
    let size = abnf::chunk_line_size(line);
    let size = match size.len() {
        0..=3 => size.iter().fold(0, |n, &d| {
            n * 16 + (d as char).to_digit(16).unwrap_or(0) as usize
        }),
        _ => 0,
    };
    let body = [line, b"\r\n", &vec![b'x'; size], b"\r\n0\r\n\r\n"].concat();
    chunked(&body)
}

fn decode_in_pieces(input: &[u8], cut: Option<usize>) -> Chunked {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let pieces = match cut {
        Some(cut) => vec![&input[..cut], &input[cut..]],
        None => vec![input],
    };
    let mut used = 0;
    for piece in pieces {
        if decoder.is_done() {
            break;
        }
        match decoder.decode(piece, Some(&mut data)) {
            Ok(n) => used += n,
            Err(_) => return Chunked::Invalid,
        }
    }
    match decoder.is_done() {
        true => Chunked::Complete { used, data },
        false => Chunked::Incomplete,
    }
}

// ---------------------------------------------------------------------------------------------
// Fields of a request head.

/// Most field lines a check puts in one head, well below the head's limit on fields (431).
const MAX_FIELDS: usize = 50;

/// Parses a request whose head carries `fields` (name, raw value after the colon) after a
/// valid Host; `None` when a value holds CR or LF, and so is not one field line, or there
/// are more than [`MAX_FIELDS`].
fn head_with(
    request_line: &str,
    fields: &[(&str, &[u8])],
) -> Option<Result<RequestHead, RequestError>> {
    if fields.len() > MAX_FIELDS {
        return None;
    }
    let mut raw = format!("{request_line}\r\n").into_bytes();
    for (name, value) in fields {
        if value.contains(&b'\r') || value.contains(&b'\n') {
            return None;
        }
        raw.extend_from_slice(format!("{name}:").as_bytes());
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    let parsed = parse_head(&raw, &Limits::default()).map(|head| head.expect("a whole head").0);
    Some(parsed)
}

/// A port's digits as margay takes them: `Some(None)` when empty, `None` above 65535.
fn port_number(digits: Option<&[u8]>) -> Option<Option<u16>> {
    match digits {
        None | Some([]) => Some(None),
        Some(digits) => {
            let digits = abnf::significant(digits);
            if digits.len() > 5 {
                return None;
            }
            let n: u32 = std::str::from_utf8(digits).ok()?.parse().unwrap_or(0);
            u16::try_from(n).ok().map(Some)
        }
    }
}

/// A `Host` value (what follows the colon): accepted alike, split alike into host and port,
/// directly and in a request head.
pub fn host(raw: &[u8]) -> Verdict {
    let value = abnf::field_value_of(raw);
    let expected = value
        .and_then(abnf::host)
        .and_then(|(host, port)| Some((host.len(), port_number(port)?)));
    if let Some(value) = value {
        let split = parse_host_port(value).map(|hp| (hp.host_len, hp.port));
        if split != expected {
            return differ("Host", value, split, expected);
        }
    }
    let Some(parsed) = head_with("GET / HTTP/1.1", &[("Host", raw)]) else {
        return Ok(());
    };
    let accepted = matches!(&parsed, Ok(head) if head.error.is_none());
    let refused_as_host = matches!(&parsed, Ok(head) if head.error == Some(RequestError::BadHost));
    match (
        expected.is_some(),
        accepted,
        refused_as_host || parsed.is_err(),
    ) {
        (true, true, _) | (false, false, true) => Ok(()),
        _ => differ("Host in a head", raw, parsed.map(|h| h.error), expected),
    }
}

/// `Content-Length` lines: the same length, or refused alike.
pub fn content_length(lines: &[&[u8]]) -> Verdict {
    let mut expected: Option<u64> = None;
    let mut valid = true;
    for line in lines {
        let value = abnf::field_value_of(line).and_then(abnf::content_length);
        let Some(numbers) = value else {
            valid = false;
            break;
        };
        let digits = abnf::significant(numbers[0]);
        let n = std::str::from_utf8(digits).ok().and_then(|d| match d {
            "" => Some(0),
            d => d.parse::<u64>().ok(),
        });
        match (n, expected) {
            (Some(n), Some(seen)) if n != seen => valid = false,
            (Some(n), _) => expected = Some(n),
            (None, _) => valid = false,
        }
    }
    let expected = match (valid, expected) {
        (false, _) => Err(RequestError::BadContentLength),
        (true, Some(0) | None) => Ok(Framing::None),
        (true, Some(n)) => Ok(Framing::Length(n)),
    };
    let fields: Vec<(&str, &[u8])> = lines.iter().map(|l| ("Content-Length", *l)).collect();
    let Some(parsed) = head_with("POST / HTTP/1.1\r\nHost: a", &fields) else {
        return Ok(());
    };
    let got = parsed.map(|head| head.framing);
    let agree = match (&got, &expected) {
        (Ok(g), Ok(e)) => g == e,
        // A value that is not a field value at all is refused by the head parser first.
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if agree {
        Ok(())
    } else {
        differ("Content-Length", &lines.join(&b"\n"[..]), got, expected)
    }
}

/// `Transfer-Encoding` lines: the same framing, or refused with the same status.
pub fn transfer_encoding(lines: &[&[u8]]) -> Verdict {
    let values: Option<Vec<&[u8]>> = lines.iter().map(|l| abnf::field_value_of(l)).collect();
    let expected = match values.as_deref().and_then(abnf::transfer_encoding) {
        None => Err(400),
        Some(codings) => {
            let is_chunked = |c: &abnf::Coding| c.name.eq_ignore_ascii_case(b"chunked");
            let chunked = codings.iter().filter(|c| is_chunked(c)).count();
            match codings.last() {
                Some(last) if is_chunked(last) && last.parameters == 0 && chunked == 1 => {
                    match codings.len() {
                        1 => Ok(Framing::Chunked),
                        _ => Err(501),
                    }
                }
                _ => Err(400),
            }
        }
    };
    let fields: Vec<(&str, &[u8])> = lines.iter().map(|l| ("Transfer-Encoding", *l)).collect();
    let Some(parsed) = head_with("POST / HTTP/1.1\r\nHost: a", &fields) else {
        return Ok(());
    };
    let got = parsed
        .map(|head| head.framing)
        .map_err(|e| e.status().as_u16());
    if got == expected {
        Ok(())
    } else {
        differ("Transfer-Encoding", &lines.join(&b"\n"[..]), got, expected)
    }
}

/// `Expect` lines: 100-continue noticed alike, anything else refused alike with 417.
pub fn expect(lines: &[&[u8]]) -> Verdict {
    let (mut continue_100, mut unmet) = (false, false);
    for line in lines {
        let listed = abnf::field_value_of(line).and_then(|v| abnf::expect(&[v]));
        match listed {
            None => unmet = true,
            Some(expectations) => {
                for e in expectations {
                    if e.name.eq_ignore_ascii_case(b"100-continue") && !e.valued {
                        continue_100 = true;
                    } else {
                        unmet = true;
                    }
                }
            }
        }
    }
    let fields: Vec<(&str, &[u8])> = lines.iter().map(|l| ("Expect", *l)).collect();
    let Some(parsed) = head_with("GET / HTTP/1.1\r\nHost: a", &fields) else {
        return Ok(());
    };
    let values_ok = lines.iter().all(|l| abnf::field_value_of(l).is_some());
    let got = parsed.map(|h| {
        (
            h.expect_continue,
            h.error == Some(RequestError::ExpectationFailed),
        )
    });
    let agree = match &got {
        Ok(got) => values_ok && *got == (continue_100, unmet),
        Err(_) => !values_ok,
    };
    if agree {
        Ok(())
    } else {
        differ(
            "Expect",
            &lines.join(&b"\n"[..]),
            got,
            (continue_100, unmet),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Range, If-Match / If-None-Match, HTTP-date.

/// File lengths a `Range` is judged against.
const LENGTHS: [u64; 5] = [0, 1, 10, 1000, u64::MAX];

/// A `Range` value: the same plan (ignore, these ranges, or 416) for files of several
/// lengths.
pub fn range(raw: &[u8]) -> Verdict {
    // As a request head hands it over: without the whitespace around it.
    let Some(value) = abnf::field_value_of(raw) else {
        return Ok(());
    };
    for len in LENGTHS {
        let got = parse_ranges(value, len);
        let expected = reference_plan(value, len);
        if got != expected {
            return differ(&format!("Range against {len} bytes"), value, got, expected);
        }
    }
    Ok(())
}

/// margay's policy over the reference's specs: more than MAX_RANGES of them, or ranges adding
/// up to more than the file, send it whole; none overlapping it is 416.
fn reference_plan(value: &[u8], len: u64) -> RangePlan {
    let Some(Some(specs)) = abnf::range(value) else {
        return RangePlan::Full;
    };
    if specs.len() > MAX_RANGES {
        return RangePlan::Full;
    }
    let number = |digits: &[u8]| -> u128 {
        let digits = abnf::significant(digits);
        match digits.len() {
            0 => 0,
            1..=38 => std::str::from_utf8(digits).unwrap().parse().unwrap(),
            _ => u128::MAX,
        }
    };
    let len128 = u128::from(len);
    let ranges: Vec<ByteRange> = specs
        .iter()
        .filter_map(|spec| {
            let (first, last) = match *spec {
                ByteSpec::Int(first, last) => {
                    let first = number(first);
                    if first >= len128 {
                        return None;
                    }
                    (
                        first,
                        last.map_or(len128 - 1, |l| number(l).min(len128 - 1)),
                    )
                }
                ByteSpec::Suffix(n) => {
                    let n = number(n);
                    if n == 0 || len == 0 {
                        return None;
                    }
                    (len128 - n.min(len128), len128 - 1)
                }
            };
            Some(ByteRange {
                first: first as u64,
                last: last as u64,
            })
        })
        .collect();
    let total: u128 = ranges
        .iter()
        .map(|r| u128::from(r.last - r.first) + 1)
        .sum();
    match ranges.is_empty() {
        true => RangePlan::Unsatisfiable,
        false if total > len128 => RangePlan::Full,
        false => RangePlan::Partial(ranges),
    }
}

/// `If-Match` / `If-None-Match` lines: for every tag they list and one they do not, the same
/// answer to "does it match?", strongly and weakly.
pub fn tag_list(raw_lines: &[&[u8]]) -> Verdict {
    // A request head hands over each value without the whitespace around it; a line that is
    // no field value at all never gets that far.
    let Some(lines) = raw_lines
        .iter()
        .map(|l| abnf::field_value_of(l))
        .collect::<Option<Vec<&[u8]>>>()
    else {
        return Ok(());
    };
    let lines = &lines[..];
    let expected = abnf::tag_list(lines);
    let mut currents: Vec<&[u8]> = vec![b"\"a-1\"", b"\"\""];
    if let Some(TagList::Tags(tags)) = &expected {
        currents.extend(tags.iter().map(|(_, tag)| *tag));
    }
    for current in currents {
        let Ok(current) = std::str::from_utf8(current) else {
            continue;
        };
        for how in [Comparison::Strong, Comparison::Weak] {
            let want = match &expected {
                None => false,
                Some(TagList::Any) => true,
                Some(TagList::Tags(tags)) => tags.iter().any(|(weak, tag)| {
                    *tag == current.as_bytes() && (how == Comparison::Weak || !weak)
                }),
            };
            let got = lines_match(lines.iter().copied(), current, how);
            if got != want {
                return differ(
                    &format!("entity-tag list, {how:?} match of {current}"),
                    &lines.join(&b"\n"[..]),
                    got,
                    want,
                );
            }
        }
    }
    Ok(())
}

/// The year two-digit rfc850 years are read against in these checks.
const THIS_YEAR: i64 = 2026;

/// An HTTP-date: the same instant, or refused alike.
pub fn http_date(value: &[u8]) -> Verdict {
    let got = parse_http_date(value, || THIS_YEAR);
    let expected = abnf::http_date(value, THIS_YEAR);
    if got == expected {
        Ok(())
    } else {
        differ("HTTP-date", value, got, expected)
    }
}

// ---------------------------------------------------------------------------------------------
// The request-target.

/// What margay makes of a target the grammar accepts: its path decoded once and dot-segments
/// resolved, or `None` when the decoded path holds NUL, is not UTF-8, or climbs above `/`.
fn decoded_path(raw: &[u8]) -> Option<String> {
    let raw = if raw.is_empty() { &b"/"[..] } else { raw };
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    if text.contains('\0') {
        return None;
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut ends_in_slash = false;
    for segment in text[1..].split('/') {
        ends_in_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop()?;
            }
            name => kept.push(name),
        }
    }
    let mut path = String::new();
    for segment in &kept {
        path.push('/');
        path.push_str(segment);
    }
    if ends_in_slash || kept.is_empty() {
        path.push('/');
    }
    Some(path)
}

/// A request-target: accepted alike, with the same path and query, directly and on a
/// request line (where CR, LF and spaces cannot stand in it).
pub fn request_target(target: &[u8]) -> Verdict {
    let form = abnf::request_target(target);
    let expected = form.clone().and_then(|form| match form {
        TargetForm::Asterisk => Some(("*".to_string(), None)),
        TargetForm::Path { path, query } => {
            // An absolute-form authority's port must be one margay takes in Host, too.
            if path.start > 0 {
                let authority = target.windows(3).position(|w| w == b"://")? + 3;
                let (_, port) = abnf::host(&target[authority..path.start])?;
                port_number(port)?;
            }
            let decoded = decoded_path(&target[path])?;
            Some((decoded, query))
        }
    });
    if let Ok(text) = std::str::from_utf8(target) {
        let got = parse_target(text).map(|t| (t.path, t.query)).ok();
        if got != expected {
            return differ("request-target", target, got, expected);
        }
    }
    if target.is_empty() || target.iter().any(|b| matches!(b, b' ' | b'\r' | b'\n')) {
        return Ok(());
    }
    let method = if target == b"*" { "OPTIONS" } else { "GET" };
    let mut line = format!("{method} ").into_bytes();
    line.extend_from_slice(target);
    line.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let parsed = parse_head(&line, &Limits::default());
    let got = match &parsed {
        Ok(Some((head, _))) if head.error.is_none() => {
            let query = head.query().map(str::to_string);
            Some((head.path().to_string(), query))
        }
        _ => None,
    };
    let expected = expected.map(|(path, query)| {
        let query = query.map(|q| String::from_utf8_lossy(&target[q]).into_owned());
        (path, query)
    });
    if got == expected {
        Ok(())
    } else {
        let got = parsed.map(|p| p.map(|(head, _)| head.error));
        differ("request-target on a request line", target, got, expected)
    }
}
