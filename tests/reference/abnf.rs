//! Reference recognisers for the grammars margay parses by hand, written straight from the
//! ABNF of RFC 9110, RFC 9112 and RFC 3986, rule by rule, and deliberately simple: a rule is a
//! function from a start position to every position where it can end, so alternation and
//! repetition need no cleverness and no lookahead. Slow, and meant to be obviously right.
//!
//! Nothing here knows margay. Limits that are margay's own (a line length, a port below
//! 65536, a number that fits a u64) are not in here either; the differential checks add them.

#![allow(dead_code)]

use std::collections::BTreeSet;

/// Every position where a rule can end, when it starts at a given one (empty: no match).
pub type Ends = Vec<usize>;

/// A grammar rule: the input and a start position to the positions where it can end.
pub type Rule<'r> = &'r dyn Fn(&[u8], usize) -> Ends;

fn norm(mut ends: Ends) -> Ends {
    ends.sort_unstable();
    ends.dedup();
    ends
}

/// Whether `rule` matches the whole of `s`.
pub fn matches(rule: impl Fn(&[u8], usize) -> Ends, s: &[u8]) -> bool {
    rule(s, 0).contains(&s.len())
}

// ---------------------------------------------------------------------------------------------
// ABNF itself (RFC 5234): terminals, concatenation, alternation, repetition.

/// One byte for which `test` holds.
fn byte(s: &[u8], i: usize, test: impl Fn(u8) -> bool) -> Ends {
    match s.get(i) {
        Some(&b) if test(b) => vec![i + 1],
        _ => vec![],
    }
}

/// `"text"`: case-insensitive, as every ABNF quoted string.
fn lit(s: &[u8], i: usize, text: &str) -> Ends {
    match s.get(i..i + text.len()) {
        Some(window) if window.eq_ignore_ascii_case(text.as_bytes()) => vec![i + text.len()],
        _ => vec![],
    }
}

/// `%s"text"`: case-sensitive (RFC 7405).
fn lit_s(s: &[u8], i: usize, text: &str) -> Ends {
    match s.get(i..i + text.len()) {
        Some(window) if window == text.as_bytes() => vec![i + text.len()],
        _ => vec![],
    }
}

/// `a b c`.
fn seq(s: &[u8], i: usize, parts: &[Rule]) -> Ends {
    let mut at = vec![i];
    for part in parts {
        at = norm(at.iter().flat_map(|&j| part(s, j)).collect());
        if at.is_empty() {
            break;
        }
    }
    at
}

/// `a / b / c`.
fn alt(s: &[u8], i: usize, options: &[Rule]) -> Ends {
    norm(options.iter().flat_map(|option| option(s, i)).collect())
}

/// `min*max part` (`max` None: no upper bound).
fn rep(s: &[u8], i: usize, min: usize, max: Option<usize>, part: Rule) -> Ends {
    let mut out = Vec::new();
    let mut level = vec![i];
    // Positions already reached with at least `min` repetitions: reaching one again (with
    // more repetitions used) can add nothing new.
    let mut seen = BTreeSet::new();
    let mut count = 0;
    loop {
        if count >= min {
            level.retain(|&p| seen.insert(p));
            out.extend(&level);
        }
        if level.is_empty() || max.is_some_and(|max| count >= max) {
            break;
        }
        level = norm(level.iter().flat_map(|&j| part(s, j)).collect());
        count += 1;
    }
    norm(out)
}

/// `[ part ]`.
fn opt(s: &[u8], i: usize, part: Rule) -> Ends {
    rep(s, i, 0, Some(1), part)
}

/// `*part`.
fn star(s: &[u8], i: usize, part: Rule) -> Ends {
    rep(s, i, 0, None, part)
}

/// `1*part`.
fn plus(s: &[u8], i: usize, part: Rule) -> Ends {
    rep(s, i, 1, None, part)
}

// Core rules (RFC 5234 appendix B.1).

fn alpha(s: &[u8], i: usize) -> Ends {
    byte(s, i, |b| b.is_ascii_alphabetic())
}

fn digit(s: &[u8], i: usize) -> Ends {
    byte(s, i, |b| b.is_ascii_digit())
}

fn hexdig(s: &[u8], i: usize) -> Ends {
    alt(
        s,
        i,
        &[&digit, &|s, i| byte(s, i, |b| b"ABCDEFabcdef".contains(&b))],
    )
}

fn sp(s: &[u8], i: usize) -> Ends {
    lit(s, i, " ")
}

fn htab(s: &[u8], i: usize) -> Ends {
    lit(s, i, "\t")
}

fn dquote(s: &[u8], i: usize) -> Ends {
    lit(s, i, "\"")
}

fn vchar(s: &[u8], i: usize) -> Ends {
    byte(s, i, |b| (0x21..=0x7e).contains(&b))
}

// ---------------------------------------------------------------------------------------------
// RFC 9110 section 5: fields, tokens, quoted strings, lists.

/// `obs-text = %x80-FF`
fn obs_text(s: &[u8], i: usize) -> Ends {
    byte(s, i, |b| b >= 0x80)
}

/// `OWS = *( SP / HTAB )`
fn ows(s: &[u8], i: usize) -> Ends {
    star(s, i, &|s, i| alt(s, i, &[&sp, &htab]))
}

/// `BWS = OWS`
fn bws(s: &[u8], i: usize) -> Ends {
    ows(s, i)
}

/// `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" /
/// "|" / "~" / DIGIT / ALPHA`
fn tchar(s: &[u8], i: usize) -> Ends {
    alt(
        s,
        i,
        &[
            &|s, i| byte(s, i, |b| b"!#$%&'*+-.^_`|~".contains(&b)),
            &digit,
            &alpha,
        ],
    )
}

/// `token = 1*tchar`
pub fn token(s: &[u8], i: usize) -> Ends {
    plus(s, i, &tchar)
}

/// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`
pub fn quoted_string(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[
            &dquote,
            &|s, i| star(s, i, &|s, i| alt(s, i, &[&qdtext, &quoted_pair])),
            &dquote,
        ],
    )
}

/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text`
fn qdtext(s: &[u8], i: usize) -> Ends {
    alt(
        s,
        i,
        &[
            &htab,
            &sp,
            &|s, i| byte(s, i, |b| b == 0x21),
            &|s, i| byte(s, i, |b| (0x23..=0x5b).contains(&b)),
            &|s, i| byte(s, i, |b| (0x5d..=0x7e).contains(&b)),
            &obs_text,
        ],
    )
}

/// `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`
fn quoted_pair(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[&|s, i| lit(s, i, "\\"), &|s, i| {
            alt(s, i, &[&htab, &sp, &vchar, &obs_text])
        }],
    )
}

/// `#element` as a recipient reads it (RFC 9110 section 5.6.1.2):
/// `[ element ] *( OWS "," OWS [ element ] )`
fn list(s: &[u8], i: usize, element: Rule) -> Ends {
    seq(
        s,
        i,
        &[&|s, i| opt(s, i, element), &|s, i| {
            star(s, i, &|s, i| {
                seq(
                    s,
                    i,
                    &[&ows, &|s, i| lit(s, i, ","), &ows, &|s, i| {
                        opt(s, i, element)
                    }],
                )
            })
        }],
    )
}

/// `1#element` as a recipient reads it:
/// `*( "," OWS ) element *( OWS "," [ OWS element ] )`
fn list1(s: &[u8], i: usize, element: Rule) -> Ends {
    seq(
        s,
        i,
        &[
            &|s, i| star(s, i, &|s, i| seq(s, i, &[&|s, i| lit(s, i, ","), &ows])),
            element,
            &|s, i| {
                star(s, i, &|s, i| {
                    seq(
                        s,
                        i,
                        &[&ows, &|s, i| lit(s, i, ","), &|s, i| {
                            opt(s, i, &|s, i| seq(s, i, &[&ows, element]))
                        }],
                    )
                })
            },
        ],
    )
}

/// `field-vchar = VCHAR / obs-text`
fn field_vchar(s: &[u8], i: usize) -> Ends {
    alt(s, i, &[&vchar, &obs_text])
}

/// `field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]`
fn field_content(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[&field_vchar, &|s, i| {
            opt(s, i, &|s, i| {
                seq(
                    s,
                    i,
                    &[
                        &|s, i| plus(s, i, &|s, i| alt(s, i, &[&sp, &htab, &field_vchar])),
                        &field_vchar,
                    ],
                )
            })
        }],
    )
}

/// `field-value = *field-content`
fn field_value(s: &[u8], i: usize) -> Ends {
    star(s, i, &field_content)
}

/// `OWS field-value OWS` by the letter of the rules above. It takes time quadratic in the
/// length (every field-content can end anywhere), so the checks use the equivalent
/// [`spaced_field_value`], and a property test holds the two to each other.
pub fn spaced_field_value_by_rule(s: &[u8], i: usize) -> Ends {
    seq(s, i, &[&ows, &field_value, &ows])
}

/// `OWS field-value OWS`, which comes to `*( SP / HTAB / field-vchar )`: the whitespace inside
/// a field-content and the OWS around the value together allow any whitespace anywhere.
pub fn spaced_field_value(s: &[u8], i: usize) -> Ends {
    star(s, i, &|s, i| alt(s, i, &[&sp, &htab, &field_vchar]))
}

/// `field-line = field-name ":" OWS field-value OWS` (RFC 9112 section 5), `field-name =
/// token`.
pub fn field_line(s: &[u8], i: usize) -> Ends {
    seq(s, i, &[&token, &|s, i| lit(s, i, ":"), &spaced_field_value])
}

/// What a field line carries after its colon, `OWS field-value OWS`, with the whitespace
/// taken off; `None` if it is not that.
pub fn field_value_of(raw: &[u8]) -> Option<&[u8]> {
    if !matches(spaced_field_value, raw) {
        return None;
    }
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = raw.iter().position(|b| !is_ows(b)).unwrap_or(raw.len());
    let end = raw
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    Some(&raw[start..end])
}

/// How quotes work in a list's elements, for splitting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quotes {
    /// No quoted strings: every comma separates.
    None,
    /// Quoted without escapes (entity-tags).
    Plain,
    /// Quoted strings with backslash escapes.
    Escaped,
}

/// The elements of a list value whose grammar has been checked: split at the commas outside
/// quotes, whitespace around each taken off, empty ones dropped.
pub fn list_elements(value: &[u8], quotes: Quotes) -> Vec<&[u8]> {
    split_outside_quotes(value, b',', quotes)
        .into_iter()
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
        .collect()
}

/// Splits at `separator` outside quotes.
fn split_outside_quotes(value: &[u8], separator: u8, quotes: Quotes) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted && quotes == Quotes::Escaped => escaped = true,
            b'"' if quotes != Quotes::None => quoted = !quoted,
            _ if b == separator && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

// ---------------------------------------------------------------------------------------------
// RFC 9112 section 7.1: the chunked transfer coding.

/// `chunk-size = 1*HEXDIG`
fn chunk_size(s: &[u8], i: usize) -> Ends {
    plus(s, i, &hexdig)
}

/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`
fn chunk_ext(s: &[u8], i: usize) -> Ends {
    star(s, i, &|s, i| {
        seq(
            s,
            i,
            &[
                &bws,
                &|s, i| lit(s, i, ";"),
                &bws,
                &chunk_ext_name,
                &|s, i| {
                    opt(s, i, &|s, i| {
                        seq(s, i, &[&bws, &|s, i| lit(s, i, "="), &bws, &chunk_ext_val])
                    })
                },
            ],
        )
    })
}

/// `chunk-ext-name = token`
fn chunk_ext_name(s: &[u8], i: usize) -> Ends {
    token(s, i)
}

/// `chunk-ext-val = token / quoted-string`
fn chunk_ext_val(s: &[u8], i: usize) -> Ends {
    alt(s, i, &[&token, &quoted_string])
}

/// A chunk line without its CRLF: `chunk-size [ chunk-ext ]` (and `last-chunk` is the same
/// with a size of zeros).
pub fn chunk_line(s: &[u8], i: usize) -> Ends {
    seq(s, i, &[&chunk_size, &|s, i| opt(s, i, &chunk_ext)])
}

/// The size a valid chunk line gives, as its significant hex digits (leading zeros off).
pub fn chunk_line_size(line: &[u8]) -> &[u8] {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let zeros = line[..digits].iter().take_while(|&&b| b == b'0').count();
    &line[zeros..digits]
}

/// What a chunked body says, read from the start of an input that may go on past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// The body ends after `used` bytes and carries `data`.
    Complete { used: usize, data: Vec<u8> },
    /// All the input could be the start of a valid body.
    Incomplete,
    /// No continuation can make it a valid body.
    Invalid,
}

/// Limits added to the grammar of a chunked body.
#[derive(Debug, Clone, Copy)]
pub struct ChunkedLimits {
    /// Longest chunk line, CRLF not counted.
    pub max_line: usize,
    /// Most significant hex digits in a chunk size.
    pub max_size_digits: usize,
    /// Most bytes of trailer field lines, their CRLFs counted, the final CRLF not.
    pub max_trailers: usize,
}

/// Reads `chunked-body = *chunk last-chunk trailer-section CRLF` from the start of `input`.
pub fn chunked_body(input: &[u8], limits: ChunkedLimits) -> Chunked {
    let mut pos = 0;
    let mut data = Vec::new();
    loop {
        let rest = &input[pos..];
        let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
            return match viable_chunk_line(rest, limits) {
                true => Chunked::Incomplete,
                false => Chunked::Invalid,
            };
        };
        let line = &rest[..cr];
        let size = chunk_line_size(line);
        if !matches(chunk_line, line)
            || line.len() > limits.max_line
            || size.len() > limits.max_size_digits
        {
            return Chunked::Invalid;
        }
        match rest.get(cr + 1) {
            None => return Chunked::Incomplete,
            Some(b'\n') => {}
            Some(_) => return Chunked::Invalid,
        }
        pos += cr + 2;
        let size = size.iter().fold(0usize, |n, &d| {
            n * 16 + (d as char).to_digit(16).unwrap_or(0) as usize
        });
        if size == 0 {
            return trailer_section(input, pos, data, limits);
        }
        // chunk-data CRLF
        let Some(chunk) = input.get(pos..pos.saturating_add(size)) else {
            return Chunked::Incomplete;
        };
        data.extend_from_slice(chunk);
        pos += size;
        for expected in [b'\r', b'\n'] {
            match input.get(pos) {
                None => return Chunked::Incomplete,
                Some(&b) if b == expected => pos += 1,
                Some(_) => return Chunked::Invalid,
            }
        }
    }
}

/// Whether a chunk line not yet ended could still become valid: some short ending completes
/// it by the grammar, and the size limit is not already passed. The line may have reached
/// its length limit and still wait for CRLF.
fn viable_chunk_line(partial: &[u8], limits: ChunkedLimits) -> bool {
    // Each state inside a chunk line is completed by one of these.
    const ENDINGS: [&[u8]; 6] = [b"", b";a", b"a", b"=a", b"\"", b"a\""];
    partial.len() <= limits.max_line
        && ENDINGS.iter().any(|ending| {
            let line = [partial, ending].concat();
            matches(chunk_line, &line) && chunk_line_size(&line).len() <= limits.max_size_digits
        })
}

/// `trailer-section CRLF` from `pos`, every trailer line a field line.
fn trailer_section(input: &[u8], mut pos: usize, data: Vec<u8>, limits: ChunkedLimits) -> Chunked {
    let mut counted = 0;
    loop {
        let rest = &input[pos..];
        match rest {
            [] | [b'\r'] => return Chunked::Incomplete,
            [b'\r', b'\n', ..] => {
                return Chunked::Complete {
                    used: pos + 2,
                    data,
                };
            }
            [b'\r', ..] => return Chunked::Invalid,
            _ => {}
        }
        let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
            // Some ending completes every state of a field line.
            let viable = [&b""[..], b"a", b":", b"a:"]
                .iter()
                .any(|ending| matches(field_line, &[rest, ending].concat()));
            return match viable && counted + rest.len() <= limits.max_trailers {
                true => Chunked::Incomplete,
                false => Chunked::Invalid,
            };
        };
        if !matches(field_line, &rest[..cr]) || counted + cr + 1 > limits.max_trailers {
            return Chunked::Invalid;
        }
        match rest.get(cr + 1) {
            None => return Chunked::Incomplete,
            Some(b'\n') if counted + cr + 2 <= limits.max_trailers => {}
            Some(_) => return Chunked::Invalid,
        }
        counted += cr + 2;
        pos += cr + 2;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 3986 section 3.2: host and port.

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`
fn unreserved(s: &[u8], i: usize) -> Ends {
    alt(
        s,
        i,
        &[&alpha, &digit, &|s, i| byte(s, i, |b| b"-._~".contains(&b))],
    )
}

/// `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="`
fn sub_delims(s: &[u8], i: usize) -> Ends {
    byte(s, i, |b| b"!$&'()*+,;=".contains(&b))
}

/// `pct-encoded = "%" HEXDIG HEXDIG`
fn pct_encoded(s: &[u8], i: usize) -> Ends {
    seq(s, i, &[&|s, i| lit(s, i, "%"), &hexdig, &hexdig])
}

/// `host = IP-literal / IPv4address / reg-name`
pub fn uri_host(s: &[u8], i: usize) -> Ends {
    alt(s, i, &[&ip_literal, &ipv4address, &reg_name])
}

/// `IP-literal = "[" ( IPv6address / IPvFuture ) "]"`
fn ip_literal(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[
            &|s, i| lit(s, i, "["),
            &|s, i| alt(s, i, &[&ipv6address, &ipvfuture]),
            &|s, i| lit(s, i, "]"),
        ],
    )
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`
fn ipvfuture(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[
            &|s, i| lit(s, i, "v"),
            &|s, i| plus(s, i, &hexdig),
            &|s, i| lit(s, i, "."),
            &|s, i| {
                plus(s, i, &|s, i| {
                    alt(s, i, &[&unreserved, &sub_delims, &|s, i| lit(s, i, ":")])
                })
            },
        ],
    )
}

/// `h16 ":"`
fn h16_colon(s: &[u8], i: usize) -> Ends {
    seq(s, i, &[&h16, &|s, i| lit(s, i, ":")])
}

/// `[ *n( h16 ":" ) h16 ]`
fn h16_prefix(s: &[u8], i: usize, n: usize) -> Ends {
    opt(s, i, &|s, i| {
        seq(s, i, &[&|s, i| rep(s, i, 0, Some(n), &h16_colon), &h16])
    })
}

/// `n( h16 ":" )`
fn h16_colons(s: &[u8], i: usize, n: usize) -> Ends {
    rep(s, i, n, Some(n), &h16_colon)
}

fn double_colon(s: &[u8], i: usize) -> Ends {
    lit(s, i, "::")
}

/// ```text
/// IPv6address =                            6( h16 ":" ) ls32
///             /                       "::" 5( h16 ":" ) ls32
///             / [               h16 ] "::" 4( h16 ":" ) ls32
///             / [ *1( h16 ":" ) h16 ] "::" 3( h16 ":" ) ls32
///             / [ *2( h16 ":" ) h16 ] "::" 2( h16 ":" ) ls32
///             / [ *3( h16 ":" ) h16 ] "::"    h16 ":"   ls32
///             / [ *4( h16 ":" ) h16 ] "::"              ls32
///             / [ *5( h16 ":" ) h16 ] "::"              h16
///             / [ *6( h16 ":" ) h16 ] "::"
/// ```
fn ipv6address(s: &[u8], i: usize) -> Ends {
    alt(
        s,
        i,
        &[
            &|s, i| seq(s, i, &[&|s, i| h16_colons(s, i, 6), &ls32]),
            &|s, i| seq(s, i, &[&double_colon, &|s, i| h16_colons(s, i, 5), &ls32]),
            &|s, i| {
                seq(
                    s,
                    i,
                    &[
                        &|s, i| opt(s, i, &h16),
                        &double_colon,
                        &|s, i| h16_colons(s, i, 4),
                        &ls32,
                    ],
                )
            },
            &|s, i| {
                seq(
                    s,
                    i,
                    &[
                        &|s, i| h16_prefix(s, i, 1),
                        &double_colon,
                        &|s, i| h16_colons(s, i, 3),
                        &ls32,
                    ],
                )
            },
            &|s, i| {
                seq(
                    s,
                    i,
                    &[
                        &|s, i| h16_prefix(s, i, 2),
                        &double_colon,
                        &|s, i| h16_colons(s, i, 2),
                        &ls32,
                    ],
                )
            },
            &|s, i| {
                seq(
                    s,
                    i,
                    &[
                        &|s, i| h16_prefix(s, i, 3),
                        &double_colon,
                        &h16_colon,
                        &ls32,
                    ],
                )
            },
            &|s, i| seq(s, i, &[&|s, i| h16_prefix(s, i, 4), &double_colon, &ls32]),
            &|s, i| seq(s, i, &[&|s, i| h16_prefix(s, i, 5), &double_colon, &h16]),
            &|s, i| seq(s, i, &[&|s, i| h16_prefix(s, i, 6), &double_colon]),
        ],
    )
}

/// `h16 = 1*4HEXDIG`
fn h16(s: &[u8], i: usize) -> Ends {
    rep(s, i, 1, Some(4), &hexdig)
}

/// `ls32 = ( h16 ":" h16 ) / IPv4address`
fn ls32(s: &[u8], i: usize) -> Ends {
    alt(
        s,
        i,
        &[&|s, i| seq(s, i, &[&h16_colon, &h16]), &ipv4address],
    )
}

/// `IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet`
fn ipv4address(s: &[u8], i: usize) -> Ends {
    let dot = |s: &[u8], i| lit(s, i, ".");
    seq(
        s,
        i,
        &[
            &dec_octet, &dot, &dec_octet, &dot, &dec_octet, &dot, &dec_octet,
        ],
    )
}

/// ```text
/// dec-octet = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT / "25" %x30-35
/// ```
fn dec_octet(s: &[u8], i: usize) -> Ends {
    let range = |lo: u8, hi: u8| move |s: &[u8], i| byte(s, i, |b| (lo..=hi).contains(&b));
    alt(
        s,
        i,
        &[
            &digit,
            &|s, i| seq(s, i, &[&range(b'1', b'9'), &digit]),
            &|s, i| seq(s, i, &[&|s, i| lit(s, i, "1"), &digit, &digit]),
            &|s, i| seq(s, i, &[&|s, i| lit(s, i, "2"), &range(b'0', b'4'), &digit]),
            &|s, i| seq(s, i, &[&|s, i| lit(s, i, "25"), &range(b'0', b'5')]),
        ],
    )
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`
fn reg_name(s: &[u8], i: usize) -> Ends {
    star(s, i, &|s, i| {
        alt(s, i, &[&unreserved, &pct_encoded, &sub_delims])
    })
}

/// `port = *DIGIT`
fn port(s: &[u8], i: usize) -> Ends {
    star(s, i, &digit)
}

/// A `Host` value split by `Host = uri-host [ ":" port ]` (RFC 9112 section 3.2): the host
/// and the port's digits (`None` without a colon). `None` when it is not a Host value.
pub fn host(value: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut splits = Vec::new();
    for end in uri_host(value, 0) {
        if end == value.len() {
            splits.push((&value[..end], None));
        } else if value[end] == b':' && matches(port, &value[end + 1..]) {
            splits.push((&value[..end], Some(&value[end + 1..])));
        }
    }
    assert!(splits.len() <= 1, "a Host value splits one way at most");
    splits.pop()
}

// ---------------------------------------------------------------------------------------------
// RFC 9110: Content-Length, Transfer-Encoding, Expect, Range, If-Match, HTTP-date.

/// `Content-Length = 1*DIGIT`, and the list of one repeated number that section 8.6 lets a
/// recipient take as that number, `1*DIGIT *( OWS "," OWS 1*DIGIT )`: the numbers' digits
/// (all the same number) or `None`.
pub fn content_length(value: &[u8]) -> Option<Vec<&[u8]>> {
    let number = |s: &[u8], i| plus(s, i, &digit);
    let form = |s: &[u8], i| {
        seq(
            s,
            i,
            &[&number, &|s, i| {
                star(s, i, &|s, i| {
                    seq(s, i, &[&ows, &|s, i| lit(s, i, ","), &ows, &number])
                })
            }],
        )
    };
    if !matches(form, value) {
        return None;
    }
    let numbers: Vec<&[u8]> = value
        .split(|&b| b == b',')
        .map(|n| n.trim_ascii())
        .collect();
    let first = significant(numbers[0]);
    numbers
        .iter()
        .all(|n| significant(n) == first)
        .then_some(numbers)
}

/// Digits with leading zeros off.
pub fn significant(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    &digits[zeros..]
}

/// `transfer-coding = token *( OWS ";" OWS transfer-parameter )` (RFC 9112 section 7),
/// `transfer-parameter = token BWS "=" BWS ( token / quoted-string )`.
fn transfer_coding(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[&token, &|s, i| {
            star(s, i, &|s, i| {
                seq(
                    s,
                    i,
                    &[&ows, &|s, i| lit(s, i, ";"), &ows, &transfer_parameter],
                )
            })
        }],
    )
}

fn transfer_parameter(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[&token, &bws, &|s, i| lit(s, i, "="), &bws, &|s, i| {
            alt(s, i, &[&token, &quoted_string])
        }],
    )
}

/// A transfer coding as listed: its name and how many parameters it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coding<'a> {
    pub name: &'a [u8],
    pub parameters: usize,
}

/// `Transfer-Encoding = #transfer-coding` over all its lines, which make one list: the
/// codings, or `None` when some line is not such a list.
pub fn transfer_encoding<'a>(lines: &[&'a [u8]]) -> Option<Vec<Coding<'a>>> {
    let mut codings = Vec::new();
    for line in lines {
        if !matches(|s, i| list(s, i, &transfer_coding), line) {
            return None;
        }
        for element in list_elements(line, Quotes::Escaped) {
            let name_len = element.iter().take_while(|&&b| is_tchar(b)).count();
            codings.push(Coding {
                name: &element[..name_len],
                parameters: split_outside_quotes(element, b';', Quotes::Escaped).len() - 1,
            });
        }
    }
    Some(codings)
}

fn is_tchar(b: u8) -> bool {
    matches(tchar, &[b])
}

/// `expectation = token [ "=" ( token / quoted-string ) parameters ]` (RFC 9110 10.1.1).
fn expectation(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[&token, &|s, i| {
            opt(s, i, &|s, i| {
                seq(
                    s,
                    i,
                    &[
                        &|s, i| lit(s, i, "="),
                        &|s, i| alt(s, i, &[&token, &quoted_string]),
                        &parameters,
                    ],
                )
            })
        }],
    )
}

/// `parameters = *( OWS ";" OWS [ parameter ] )`, `parameter = parameter-name "="
/// parameter-value` (RFC 9110 section 5.6.6).
fn parameters(s: &[u8], i: usize) -> Ends {
    star(s, i, &|s, i| {
        seq(
            s,
            i,
            &[&ows, &|s, i| lit(s, i, ";"), &ows, &|s, i| {
                opt(s, i, &|s, i| {
                    seq(
                        s,
                        i,
                        &[&token, &|s, i| lit(s, i, "="), &|s, i| {
                            alt(s, i, &[&token, &quoted_string])
                        }],
                    )
                })
            }],
        )
    })
}

/// An expectation as listed: its name, and whether it has a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation<'a> {
    pub name: &'a [u8],
    pub valued: bool,
}

/// `Expect = #expectation` over all its lines; `None` when some line is not such a list.
pub fn expect<'a>(lines: &[&'a [u8]]) -> Option<Vec<Expectation<'a>>> {
    let mut expectations = Vec::new();
    for line in lines {
        if !matches(|s, i| list(s, i, &expectation), line) {
            return None;
        }
        for element in list_elements(line, Quotes::Escaped) {
            let name_len = element.iter().take_while(|&&b| is_tchar(b)).count();
            expectations.push(Expectation {
                name: &element[..name_len],
                valued: name_len < element.len(),
            });
        }
    }
    Some(expectations)
}

/// `ranges-specifier = range-unit "=" range-set` (RFC 9110 section 14.1.1),
/// `range-unit = token`, `range-set = 1#range-spec`.
fn ranges_specifier(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[&token, &|s, i| lit(s, i, "="), &|s, i| {
            list1(s, i, &range_spec)
        }],
    )
}

/// `range-spec = int-range / suffix-range / other-range`
fn range_spec(s: &[u8], i: usize) -> Ends {
    alt(s, i, &[&int_range, &suffix_range, &other_range])
}

/// `int-range = first-pos "-" [ last-pos ]`, both `1*DIGIT`
fn int_range(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[
            &|s, i| plus(s, i, &digit),
            &|s, i| lit(s, i, "-"),
            &|s, i| opt(s, i, &|s, i| plus(s, i, &digit)),
        ],
    )
}

/// `suffix-range = "-" suffix-length`, `suffix-length = 1*DIGIT`
fn suffix_range(s: &[u8], i: usize) -> Ends {
    seq(s, i, &[&|s, i| lit(s, i, "-"), &|s, i| plus(s, i, &digit)])
}

/// `other-range = 1*( %x21-2B / %x2D-7E )`
fn other_range(s: &[u8], i: usize) -> Ends {
    plus(s, i, &|s, i| {
        byte(s, i, |b| {
            (0x21..=0x2b).contains(&b) || (0x2d..=0x7e).contains(&b)
        })
    })
}

/// One byte-range spec: `first-last`, `first-` or `-suffix`, digits as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteSpec<'a> {
    /// `first-pos "-" [ last-pos ]`
    Int(&'a [u8], Option<&'a [u8]>),
    /// `"-" suffix-length`
    Suffix(&'a [u8]),
}

/// A `Range` value: `None` when it is not a ranges-specifier, `Some(None)` for a valid one
/// this reader does not apply (another unit, an other-range, or an int-range ending before
/// it starts, which section 14.1.1 calls invalid), else the byte-range specs.
pub fn range(value: &[u8]) -> Option<Option<Vec<ByteSpec<'_>>>> {
    if !matches(ranges_specifier, value) {
        return None;
    }
    let eq = value.iter().position(|&b| b == b'=')?;
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return Some(None);
    }
    let mut specs = Vec::new();
    for element in list_elements(&value[eq + 1..], Quotes::None) {
        let spec = if matches(suffix_range, element) {
            ByteSpec::Suffix(&element[1..])
        } else if matches(int_range, element) {
            let dash = element.iter().position(|&b| b == b'-')?;
            let (first, last) = (&element[..dash], &element[dash + 1..]);
            if !last.is_empty() && decimal_less(last, first) {
                return Some(None);
            }
            ByteSpec::Int(first, (!last.is_empty()).then_some(last))
        } else {
            return Some(None);
        };
        specs.push(spec);
    }
    Some(Some(specs))
}

/// Whether the digits `a` are a smaller number than the digits `b`.
pub fn decimal_less(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (significant(a), significant(b));
    a.len() < b.len() || (a.len() == b.len() && a < b)
}

/// `entity-tag = [ weak ] opaque-tag`, `weak = %s"W/"`, `opaque-tag = DQUOTE *etagc DQUOTE`,
/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 section 8.8.3).
fn entity_tag(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[&|s, i| opt(s, i, &|s, i| lit_s(s, i, "W/")), &opaque_tag],
    )
}

fn opaque_tag(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[
            &dquote,
            &|s, i| {
                star(s, i, &|s, i| {
                    byte(s, i, |b| {
                        b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
                    })
                })
            },
            &dquote,
        ],
    )
}

/// What an `If-Match` or `If-None-Match` field says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList<'a> {
    /// `*`
    Any,
    /// The tags listed: (weak, the opaque tag with its quotes).
    Tags(Vec<(bool, &'a [u8])>),
}

/// `If-Match = "*" / #entity-tag` (and If-None-Match alike) over all its lines, which make one
/// list: joined with `", "` they must follow the rule. `None` when they do not.
pub fn tag_list<'a>(lines: &[&'a [u8]]) -> Option<TagList<'a>> {
    let joined = lines.join(&b", "[..]);
    let field = |s: &[u8], i| {
        alt(
            s,
            i,
            &[&|s, i| lit(s, i, "*"), &|s, i| list(s, i, &entity_tag)],
        )
    };
    if !matches(field, &joined) {
        return None;
    }
    if joined == b"*" {
        return Some(TagList::Any);
    }
    let mut tags = Vec::new();
    for line in lines {
        for element in list_elements(line, Quotes::Plain) {
            tags.push(match element.strip_prefix(b"W/") {
                Some(tag) => (true, tag),
                None => (false, element),
            });
        }
    }
    Some(TagList::Tags(tags))
}

/// `HTTP-date = IMF-fixdate / obs-date` (RFC 9110 section 5.6.7), in seconds since the
/// epoch. The grammar, then its prose: the date must exist, the time lie within 00:00:00 to
/// 23:59:60, and an rfc850 two-digit year is the one within 50 years of `this_year`.
pub fn http_date(value: &[u8], this_year: i64) -> Option<i64> {
    let two = |s: &[u8], i| rep(s, i, 2, Some(2), &digit);
    let four = |s: &[u8], i| rep(s, i, 4, Some(4), &digit);
    let sp = |s: &[u8], i| lit(s, i, " ");
    let day_name = |s: &[u8], i| {
        alt(
            s,
            i,
            &[
                &|s, i| lit_s(s, i, "Mon"),
                &|s, i| lit_s(s, i, "Tue"),
                &|s, i| lit_s(s, i, "Wed"),
                &|s, i| lit_s(s, i, "Thu"),
                &|s, i| lit_s(s, i, "Fri"),
                &|s, i| lit_s(s, i, "Sat"),
                &|s, i| lit_s(s, i, "Sun"),
            ],
        )
    };
    let day_name_l = |s: &[u8], i| {
        alt(
            s,
            i,
            &[
                &|s, i| lit_s(s, i, "Monday"),
                &|s, i| lit_s(s, i, "Tuesday"),
                &|s, i| lit_s(s, i, "Wednesday"),
                &|s, i| lit_s(s, i, "Thursday"),
                &|s, i| lit_s(s, i, "Friday"),
                &|s, i| lit_s(s, i, "Saturday"),
                &|s, i| lit_s(s, i, "Sunday"),
            ],
        )
    };
    // month = %s"Jan" / %s"Feb" / ... / %s"Dec"
    let month = |s: &[u8], i| norm(MONTHS.iter().flat_map(|m| lit_s(s, i, m)).collect());
    let colon = |s: &[u8], i| lit(s, i, ":");
    let time_of_day = |s: &[u8], i| seq(s, i, &[&two, &colon, &two, &colon, &two]);
    let gmt = |s: &[u8], i| lit_s(s, i, "GMT");
    let comma = |s: &[u8], i| lit(s, i, ",");
    let dash = |s: &[u8], i| lit(s, i, "-");
    // IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT; date1 = day SP month SP year
    let imf_fixdate = |s: &[u8], i| {
        seq(
            s,
            i,
            &[
                &day_name,
                &comma,
                &sp,
                &two,
                &sp,
                &month,
                &sp,
                &four,
                &sp,
                &time_of_day,
                &sp,
                &gmt,
            ],
        )
    };
    // rfc850-date = day-name-l "," SP date2 SP time-of-day SP GMT; date2 = day "-" month "-" 2DIGIT
    let rfc850_date = |s: &[u8], i| {
        seq(
            s,
            i,
            &[
                &day_name_l,
                &comma,
                &sp,
                &two,
                &dash,
                &month,
                &dash,
                &two,
                &sp,
                &time_of_day,
                &sp,
                &gmt,
            ],
        )
    };
    // asctime-date = day-name SP date3 SP time-of-day SP year; date3 = month SP ( 2DIGIT / ( SP DIGIT ))
    let asctime_date = |s: &[u8], i| {
        seq(
            s,
            i,
            &[
                &day_name,
                &sp,
                &month,
                &sp,
                &|s, i| alt(s, i, &[&two, &|s, i| seq(s, i, &[&sp, &digit])]),
                &sp,
                &time_of_day,
                &sp,
                &four,
            ],
        )
    };
    let number = |text: &[u8]| -> i64 {
        text.iter()
            .filter(|b| b.is_ascii_digit())
            .fold(0, |n, d| n * 10 + i64::from(d - b'0'))
    };
    let month_of =
        |name: &[u8]| MONTHS.iter().position(|m| m.as_bytes() == name).unwrap() as i64 + 1;
    let text = std::str::from_utf8(value).ok()?;
    let (year, month, day, time) = if matches(imf_fixdate, value) {
        // Sun, 06 Nov 1994 08:49:37 GMT
        (
            number(&value[12..16]),
            month_of(&value[8..11]),
            number(&value[5..7]),
            &text[17..25],
        )
    } else if matches(rfc850_date, value) {
        // Sunday, 06-Nov-94 08:49:37 GMT
        let rest = &value[value.iter().position(|&b| b == b',')? + 2..];
        let yy = number(&rest[7..9]);
        let mut year = this_year / 100 * 100 + yy;
        while year > this_year + 50 {
            year -= 100;
        }
        while year <= this_year - 50 {
            year += 100;
        }
        let time = std::str::from_utf8(&rest[10..18]).ok()?;
        (year, month_of(&rest[3..6]), number(&rest[0..2]), time)
    } else if matches(asctime_date, value) {
        // Sun Nov  6 08:49:37 1994
        (
            number(&value[20..24]),
            month_of(&value[4..7]),
            number(&value[8..10]),
            &text[11..19],
        )
    } else {
        return None;
    };
    let (hour, minute, second) = (
        number(&time.as_bytes()[0..2]),
        number(&time.as_bytes()[3..5]),
        number(&time.as_bytes()[6..8]),
    );
    if day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Whole days counted one year and one month at a time.
    let mut days = 0;
    for y in year.min(1970)..year.max(1970) {
        let length = (1..=12).map(|m| days_in_month(y, m)).sum::<i64>();
        days += if year < 1970 { -length } else { length };
    }
    days += (1..month).map(|m| days_in_month(year, m)).sum::<i64>() + day - 1;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 9112 section 3.2 and RFC 9110 section 4.2: the request-target.

/// `pchar = unreserved / pct-encoded / sub-delims / ":" / "@"`
fn pchar(s: &[u8], i: usize) -> Ends {
    alt(
        s,
        i,
        &[&unreserved, &pct_encoded, &sub_delims, &|s, i| {
            byte(s, i, |b| b == b':' || b == b'@')
        }],
    )
}

/// `segment = *pchar`
fn segment(s: &[u8], i: usize) -> Ends {
    star(s, i, &pchar)
}

/// `absolute-path = 1*( "/" segment )`
fn absolute_path(s: &[u8], i: usize) -> Ends {
    plus(s, i, &|s, i| seq(s, i, &[&|s, i| lit(s, i, "/"), &segment]))
}

/// `path-abempty = *( "/" segment )`
fn path_abempty(s: &[u8], i: usize) -> Ends {
    star(s, i, &|s, i| seq(s, i, &[&|s, i| lit(s, i, "/"), &segment]))
}

/// `query = *( pchar / "/" / "?" )`, widened by the one deviation margay makes on purpose:
/// the bytes browsers leave unescaped in a query (WHATWG URL standard), `[ \ ] ^ ` { | }`.
fn query(s: &[u8], i: usize) -> Ends {
    star(s, i, &|s, i| {
        alt(
            s,
            i,
            &[&pchar, &|s, i| {
                byte(s, i, |b| {
                    matches!(
                        b,
                        b'/' | b'?' | b'[' | b'\\' | b']' | b'^' | b'`' | b'{' | b'|' | b'}'
                    )
                })
            }],
        )
    })
}

/// `[ "?" query ]`
fn opt_query(s: &[u8], i: usize) -> Ends {
    opt(s, i, &|s, i| seq(s, i, &[&|s, i| lit(s, i, "?"), &query]))
}

/// `origin-form = absolute-path [ "?" query ]`
fn origin_form(s: &[u8], i: usize) -> Ends {
    seq(s, i, &[&absolute_path, &opt_query])
}

/// `authority = [ userinfo "@" ] host [ ":" port ]`,
/// `userinfo = *( unreserved / pct-encoded / sub-delims / ":" )`
fn authority(s: &[u8], i: usize) -> Ends {
    let userinfo = |s: &[u8], i| {
        star(s, i, &|s, i| {
            alt(
                s,
                i,
                &[&unreserved, &pct_encoded, &sub_delims, &|s, i| {
                    lit(s, i, ":")
                }],
            )
        })
    };
    seq(
        s,
        i,
        &[
            &|s, i| {
                opt(s, i, &|s, i| {
                    seq(s, i, &[&userinfo, &|s, i| lit(s, i, "@")])
                })
            },
            &uri_host,
            &|s, i| opt(s, i, &|s, i| seq(s, i, &[&|s, i| lit(s, i, ":"), &port])),
        ],
    )
}

/// `http-URI = "http" "://" authority path-abempty [ "?" query ]` and the same for `https`
/// (RFC 9110 section 4.2.1 and 4.2.2): the only absolute-form targets an origin serves.
fn http_uri(s: &[u8], i: usize) -> Ends {
    seq(
        s,
        i,
        &[
            &|s, i| {
                alt(
                    s,
                    i,
                    &[&|s, i| lit(s, i, "http"), &|s, i| lit(s, i, "https")],
                )
            },
            &|s, i| lit(s, i, "://"),
            &authority,
            &path_abempty,
            &opt_query,
        ],
    )
}

/// Where a request-target's parts lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetForm {
    /// `*`
    Asterisk,
    /// origin-form or absolute-form: the path (may be empty in absolute form) and the query
    /// without its `?`.
    Path {
        path: std::ops::Range<usize>,
        query: Option<std::ops::Range<usize>>,
    },
}

/// A request-target in origin-form, absolute-form (an http or https URI, whose host must not
/// be empty and which must carry no userinfo: RFC 9110 sections 4.2.1 and 4.2.4) or
/// asterisk-form. `None` for anything else, authority-form included (CONNECT only).
pub fn request_target(target: &[u8]) -> Option<TargetForm> {
    if target == b"*" {
        return Some(TargetForm::Asterisk);
    }
    let path_start = if matches(origin_form, target) {
        0
    } else if matches(http_uri, target) {
        let authority_start = target.windows(3).position(|w| w == b"://")? + 3;
        let authority_len = target[authority_start..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(target.len() - authority_start);
        let authority = &target[authority_start..authority_start + authority_len];
        let (host, _) = self::host(authority)?;
        if authority.contains(&b'@') || host.is_empty() {
            return None;
        }
        authority_start + authority_len
    } else {
        return None;
    };
    let query_at = target[path_start..]
        .iter()
        .position(|&b| b == b'?')
        .map(|q| path_start + q);
    Some(TargetForm::Path {
        path: path_start..query_at.unwrap_or(target.len()),
        query: query_at.map(|q| q + 1..target.len()),
    })
}
