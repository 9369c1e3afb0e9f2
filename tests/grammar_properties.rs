//! Property tests: margay's hand-written parsers against the reference recognisers in
//! `reference/abnf.rs`, on inputs generated from each grammar and on near misses (one byte
//! changed, inserted or dropped, whitespace or a control byte slipped in, a letter's case
//! flipped). For each input both must accept or both refuse, and agree on what it means.

mod reference;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use reference::differential as check;

// ---------------------------------------------------------------------------------------------
// Near misses.

/// Bytes a mutation puts in: the grammars' delimiters, digits and letters they treat apart,
/// whitespace, line ends, control bytes and bytes above ASCII.
const INTERESTING: &[u8] =
    b" \t;,=:\"\\[]%/?#@-._~*!()'+0189afAFgGvVxXWz\r\n\0\x01\x0b\x7f\x80\xff";

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    FlipCase(Index),
}

impl Mutation {
    fn apply(&self, s: &mut Vec<u8>) {
        match self {
            Mutation::Replace(at, b) if !s.is_empty() => {
                let i = at.index(s.len());
                s[i] = *b;
            }
            Mutation::Insert(at, b) => {
                let i = at.index(s.len() + 1);
                s.insert(i, *b);
            }
            Mutation::Delete(at) if !s.is_empty() => {
                let i = at.index(s.len());
                s.remove(i);
            }
            Mutation::FlipCase(at) if !s.is_empty() => {
                // The next letter from a random point, if any.
                let start = at.index(s.len());
                if let Some(i) = (start..s.len()).find(|&i| s[i].is_ascii_alphabetic()) {
                    s[i] ^= 0x20;
                }
            }
            _ => {}
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), select(INTERESTING)).prop_map(|(i, b)| Mutation::Replace(i, b)),
        3 => (any::<Index>(), select(INTERESTING)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<Index>(), select(&b" \t"[..])).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), select(&b"\0\x01\x1f\x7f"[..])).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        2 => any::<Index>().prop_map(Mutation::FlipCase),
    ]
}

/// Valid inputs from `valid`, a third as they are and the rest with one or two mutations.
fn near(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (valid, vec(mutation(), 0..3), 0..3).prop_map(|(mut s, mutations, keep)| {
        if keep != 0 {
            for m in &mutations {
                m.apply(&mut s);
            }
        }
        s
    })
}

fn concat(parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.concat()
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// Pieces shared by the grammars.

const TCHARS: &[u8] = b"!#$%&'*+-.^_`|~09azAZ";

fn token() -> impl Strategy<Value = Vec<u8>> {
    vec(select(TCHARS), 1..5)
}

fn ows() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => Just(vec![]), 1 => vec(select(&b" \t"[..]), 1..3)]
}

fn quoted_string() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        4 => select(&b"ab ,;=\t!#~\x80"[..]).prop_map(|b| vec![b]),
        1 => select(&b"\"\\a \t"[..]).prop_map(|b| vec![b'\\', b]),
    ];
    vec(part, 0..4).prop_map(|parts| concat(vec![text("\""), parts.concat(), text("\"")]))
}

fn word() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![token(), quoted_string()]
}

fn hex(max_digits: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(select(&b"0123456789abcdefABCDEF"[..]), 1..=max_digits)
}

/// Elements joined into a list the way senders and sloppy senders write them: commas with
/// optional whitespace, and now and then an empty element.
fn list_of(element: impl Strategy<Value = Vec<u8>>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![6 => element, 1 => Just(vec![])];
    (vec((item, ows(), ows()), 1..=max), any::<bool>()).prop_map(|(items, lead)| {
        let mut out = if lead { text(", ") } else { vec![] };
        for (n, (item, before, after)) in items.into_iter().enumerate() {
            if n > 0 {
                out.extend(before);
                out.push(b',');
                out.extend(after);
            }
            out.extend(item);
        }
        out
    })
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies.

fn chunk_ext() -> impl Strategy<Value = Vec<u8>> {
    let one = (
        ows(),
        ows(),
        token(),
        prop::option::of((ows(), ows(), word())),
    );
    vec(one, 0..3).prop_map(|exts| {
        let mut out = Vec::new();
        for (before, after, name, value) in exts {
            out.extend(before);
            out.push(b';');
            out.extend(after);
            out.extend(name);
            if let Some((before, after, value)) = value {
                out.extend(before);
                out.push(b'=');
                out.extend(after);
                out.extend(value);
            }
        }
        out
    })
}

fn chunk_line() -> impl Strategy<Value = Vec<u8>> {
    (0..3usize, hex(3), chunk_ext())
        .prop_map(|(zeros, size, ext)| concat(vec![vec![b'0'; zeros], size, ext]))
}

fn trailer() -> impl Strategy<Value = Vec<u8>> {
    (token(), ows(), vec(select(&b"ab \t:\x80"[..]), 0..4))
        .prop_map(|(name, ws, value)| concat(vec![name, text(":"), ws, value, text("\r\n")]))
}

fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (1..20usize, chunk_ext()).prop_map(|(size, ext)| {
        concat(vec![
            format!("{size:x}").into_bytes(),
            ext,
            text("\r\n"),
            vec![b'd'; size],
            text("\r\n"),
        ])
    });
    (
        vec(chunk, 0..3),
        chunk_ext(),
        vec(trailer(), 0..2),
        any::<bool>(),
    )
        .prop_map(|(chunks, last_ext, trailers, next)| {
            concat(vec![
                chunks.concat(),
                text("0"),
                last_ext,
                text("\r\n"),
                trailers.concat(),
                text("\r\n"),
                if next {
                    text("GET / HTTP/1.1\r\n\r\n")
                } else {
                    vec![]
                },
            ])
        })
}

// ---------------------------------------------------------------------------------------------
// Host.

fn reg_name() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        6 => select(&b"abzAZ09-._~!$&'()*+,;="[..]).prop_map(|b| vec![b]),
        1 => vec(select(&b"09afAF"[..]), 2).prop_map(|h| concat(vec![text("%"), h])),
    ];
    vec(part, 0..8).prop_map(|parts| parts.concat())
}

fn ipv4() -> impl Strategy<Value = Vec<u8>> {
    vec(0..=255u16, 4).prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]).into_bytes())
}

fn ipv6() -> impl Strategy<Value = Vec<u8>> {
    // Eight groups; maybe the last two as IPv4; maybe a run of them elided as `::`.
    (
        vec(hex(4), 8),
        prop::option::of(ipv4()),
        prop::option::of((0..8usize, 1..9usize)),
    )
        .prop_map(|(groups, v4, elide)| {
            let mut parts: Vec<Vec<u8>> = groups;
            if let Some(v4) = v4 {
                parts.truncate(6);
                parts.push(v4);
            }
            let width = |p: &Vec<u8>| if p.contains(&b'.') { 2 } else { 1 };
            match elide {
                Some((start, len)) if start < parts.len() => {
                    let mut end = start;
                    let mut covered = 0;
                    while end < parts.len() && covered < len {
                        covered += width(&parts[end]);
                        end += 1;
                    }
                    let head = parts[..start].join(&b':');
                    let tail = parts[end..].join(&b':');
                    concat(vec![head, text("::"), tail])
                }
                _ => parts.join(&b':'),
            }
        })
}

fn host_value() -> impl Strategy<Value = Vec<u8>> {
    let host = prop_oneof![
        3 => reg_name(),
        2 => ipv4(),
        3 => ipv6().prop_map(|a| concat(vec![text("["), a, text("]")])),
        1 => (hex(2), vec(select(&b"a:.~!"[..]), 1..4))
            .prop_map(|(v, a)| concat(vec![text("[v"), v, text("."), a, text("]")])),
    ];
    let port = prop_oneof![
        2 => Just(vec![]),
        1 => Just(text(":")),
        3 => (0..70_000u32).prop_map(|p| format!(":{p}").into_bytes()),
        1 => vec(select(&b"0123456789"[..]), 1..8).prop_map(|d| concat(vec![text(":"), d])),
    ];
    (host, port).prop_map(|(h, p)| concat(vec![h, p]))
}

// ---------------------------------------------------------------------------------------------
// Content-Length, Transfer-Encoding, Expect.

fn content_length_value() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        4 => (0..100_000u64).prop_map(|n| n.to_string()),
        1 => Just("18446744073709551615".to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => (0..3usize, 0..100u64).prop_map(|(z, n)| format!("{}{n}", "0".repeat(z))),
    ];
    (number, 1..3usize, ows(), ows(), any::<bool>()).prop_map(|(n, times, a, b, differ)| {
        let mut out = text(&n);
        for k in 1..times {
            out.extend(a.clone());
            out.push(b',');
            out.extend(b.clone());
            out.extend(text(&if differ {
                format!("{}", k + 7)
            } else {
                n.clone()
            }));
        }
        out
    })
}

fn transfer_coding() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        6 => select(&["chunked", "Chunked", "CHUNKED"][..]).prop_map(text),
        3 => select(&["gzip", "deflate", "identity", "xchunked", "chunked2"][..]).prop_map(text),
        1 => token(),
    ];
    let param = (ows(), ows(), token(), ows(), ows(), word())
        .prop_map(|(a, b, n, c, d, v)| concat(vec![a, text(";"), b, n, c, text("="), d, v]));
    (name, vec(param, 0..2)).prop_map(|(n, ps)| concat(vec![n, ps.concat()]))
}

fn expectation() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        4 => select(&["100-continue", "100-Continue"][..]).prop_map(text),
        1 => token(),
    ];
    let param = (ows(), ows(), token(), word())
        .prop_map(|(a, b, n, v)| concat(vec![a, text(";"), b, n, text("="), v]));
    (name, prop::option::of((word(), vec(param, 0..2)))).prop_map(|(n, value)| match value {
        None => n,
        Some((v, ps)) => concat(vec![n, text("="), v, ps.concat()]),
    })
}

/// One or two field lines, each with optional whitespace around its value.
fn lines(value: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec((ows(), near(value), ows()), 1..3).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(a, v, b)| concat(vec![a, v, b]))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Range, entity-tags, dates, targets.

fn range_value() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        5 => (0..1200u64).prop_map(|n| n.to_string()),
        1 => Just("99999999999999999999".to_string()),
        1 => Just("099999999999999999998".to_string()),
    ];
    let spec = prop_oneof![
        4 => (number.clone(), prop::option::of(number.clone()))
            .prop_map(|(f, l)| format!("{f}-{}", l.unwrap_or_default()).into_bytes()),
        2 => number.prop_map(|n| format!("-{n}").into_bytes()),
        1 => vec(select(&b"ax*\"!~"[..]), 1..3),
    ];
    let unit = prop_oneof![
        8 => select(&["bytes", "Bytes", "BYTES"][..]).prop_map(text),
        1 => token(),
    ];
    (unit, list_of(spec, 20)).prop_map(|(u, set)| concat(vec![u, text("="), set]))
}

fn entity_tag() -> impl Strategy<Value = Vec<u8>> {
    let opaque = prop_oneof![
        3 => Just(text("a-1")),
        2 => vec(select(&b"ab,!#~W/\x80"[..]), 0..4),
    ];
    (any::<bool>(), opaque).prop_map(|(weak, o)| {
        concat(vec![
            if weak { text("W/") } else { vec![] },
            text("\""),
            o,
            text("\""),
        ])
    })
}

fn tag_list_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![1 => Just(text("*")), 6 => list_of(entity_tag(), 4)]
}

fn http_date_value() -> impl Strategy<Value = Vec<u8>> {
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let long_days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    (
        0..7usize,
        0..=32u32,
        0..12usize,
        prop_oneof![3 => 1960..2080u32, 1 => 0..10_000u32],
        (0..=25u32, 0..=61u32, 0..=61u32),
        0..3u8,
    )
        .prop_map(move |(wd, day, month, year, (h, m, s), form)| {
            let time = format!("{h:02}:{m:02}:{s:02}");
            let month = months[month];
            match form {
                0 => format!("{}, {day:02} {month} {year:04} {time} GMT", days[wd]),
                1 => format!(
                    "{}, {day:02}-{month}-{:02} {time} GMT",
                    long_days[wd],
                    year % 100
                ),
                _ => format!("{} {month} {day:>2} {time} {year:04}", days[wd]),
            }
            .into_bytes()
        })
}

fn request_target() -> impl Strategy<Value = Vec<u8>> {
    let pchar = prop_oneof![
        8 => select(&b"azAZ09-._~!$&'()*+,;=:@"[..]).prop_map(|b| vec![b]),
        1 => select(&["%41", "%2e", "%2E", "%2f", "%00", "%c3%a9", "%ff", "%20"][..]).prop_map(text),
    ];
    let segment = prop_oneof![
        6 => vec(pchar.clone(), 0..4).prop_map(|p| p.concat()),
        1 => select(&[".", ".."][..]).prop_map(text),
    ];
    let path = vec(segment, 1..4).prop_map(|segments| {
        segments
            .into_iter()
            .flat_map(|s| concat(vec![text("/"), s]))
            .collect::<Vec<u8>>()
    });
    let query = prop::option::of(vec(
        prop_oneof![4 => pchar, 1 => select(&["/", "?"][..]).prop_map(text)],
        0..4,
    ));
    let origin = (path.clone(), query.clone()).prop_map(|(p, q)| match q {
        None => p,
        Some(q) => concat(vec![p, text("?"), q.concat()]),
    });
    let scheme = select(&["http://", "https://", "HTTP://", "ftp://", "http:/"][..]).prop_map(text);
    let userinfo = prop_oneof![6 => Just(vec![]), 1 => Just(text("u:p@"))];
    let absolute = (
        scheme,
        userinfo,
        host_value(),
        prop::option::of(path),
        query,
    )
        .prop_map(|(s, u, h, p, q)| {
            let mut out = concat(vec![s, u, h, p.unwrap_or_default()]);
            if let Some(q) = q {
                out.push(b'?');
                out.extend(q.concat());
            }
            out
        });
    prop_oneof![6 => origin, 3 => absolute, 1 => Just(text("*"))]
}

// ---------------------------------------------------------------------------------------------

fn agree(verdict: Result<(), String>) -> Result<(), TestCaseError> {
    verdict.map_err(TestCaseError::fail)
}

fn as_slices(lines: &[Vec<u8>]) -> Vec<&[u8]> {
    lines.iter().map(Vec::as_slice).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_field_value_shortcut_is_the_rule(value in near(vec(select(&b"ab \t\x80"[..]), 0..12))) {
        use reference::abnf::{matches, spaced_field_value, spaced_field_value_by_rule};
        prop_assert_eq!(
            matches(spaced_field_value, &value),
            matches(spaced_field_value_by_rule, &value)
        );
    }

    #[test]
    fn chunk_lines_agree(line in near(chunk_line())) {
        agree(check::chunk_line(&line))?;
    }

    #[test]
    fn chunked_bodies_agree(body in near(chunked_body())) {
        agree(check::chunked(&body))?;
    }

    #[test]
    fn host_values_agree(value in near(host_value())) {
        agree(check::host(&value))?;
    }

    #[test]
    fn content_lengths_agree(lines in lines(content_length_value())) {
        agree(check::content_length(&as_slices(&lines)))?;
    }

    #[test]
    fn transfer_encodings_agree(lines in lines(list_of(transfer_coding(), 3))) {
        agree(check::transfer_encoding(&as_slices(&lines)))?;
    }

    #[test]
    fn expectations_agree(lines in lines(list_of(expectation(), 2))) {
        agree(check::expect(&as_slices(&lines)))?;
    }

    #[test]
    fn ranges_agree(value in near(range_value())) {
        agree(check::range(&value))?;
    }

    #[test]
    fn entity_tag_lists_agree(lines in vec(near(tag_list_value()), 1..3)) {
        agree(check::tag_list(&as_slices(&lines)))?;
    }

    #[test]
    fn http_dates_agree(value in near(http_date_value())) {
        agree(check::http_date(&value))?;
    }

    #[test]
    fn request_targets_agree(target in near(request_target())) {
        agree(check::request_target(&target))?;
    }
}
