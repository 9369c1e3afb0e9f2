//! Reading `Accept` (RFC 9110 section 12.5.1) as far as the server needs: the weight a client
//! gives a media type by naming it or its `type/*`. A bare `*/*` does not count: it is what
//! clients send when they did not choose.

use super::coding::parse_weight;
use super::fields::trim_ows;

/// The weight (`q`, 0 to 1) that the `Accept` values give `media_type` (lowercase
/// `type/subtype`) by name or by `type/*`, the more specific winning; `None` if neither is
/// listed.
pub fn named_quality<'a>(values: impl Iterator<Item = &'a str>, media_type: &str) -> Option<f32> {
    let family = media_type.split('/').next().unwrap_or_default();
    let mut best: Option<(bool, f32)> = None;
    for element in values.flat_map(|v| v.split(',')) {
        let mut params = element.split(';');
        let range = params.next().unwrap_or_default().trim();
        let Some((kind, sub)) = range.split_once('/') else {
            continue;
        };
        let exact = range.eq_ignore_ascii_case(media_type);
        let by_family = sub == "*" && kind.eq_ignore_ascii_case(family);
        if !(exact || by_family) {
            continue;
        }
        let Some(q) = weight(params) else {
            continue;
        };
        // An exact range beats `type/*`; among equals, the first stays.
        if best.is_none_or(|(was_exact, _)| exact && !was_exact) {
            best = Some((exact, q));
        }
    }
    best.map(|(_, q)| q)
}

/// The `q` parameter among `params` (1 without one), read by the same qvalue grammar as
/// `Accept-Encoding`'s; `None` if it is not a weight.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<f32> {
    for param in params {
        let param = trim_ows(param.as_bytes());
        if param.len() >= 2 && param[..2].eq_ignore_ascii_case(b"q=") {
            return parse_weight(param).map(|thousandths| f32::from(thousandths) / 1000.0);
        }
    }
    Some(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_weights() {
        // (Accept, media type, weight)
        let rows: &[(&str, &str, Option<f32>)] = &[
            (
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                "text/html",
                Some(1.0),
            ),
            ("*/*", "text/html", None),
            ("", "text/html", None),
            ("application/json", "text/html", None),
            ("text/*;q=0.3", "text/html", Some(0.3)),
            ("text/*;q=0.3, text/html;q=0.7", "text/html", Some(0.7)),
            ("text/html;q=0", "text/html", Some(0.0)),
            ("TEXT/HTML; Q=0.5", "text/html", Some(0.5)),
            ("text/html;level=1;q=0.4", "text/html", Some(0.4)),
            // The qvalue grammar, as for Accept-Encoding: at most three decimals, at most 1.
            ("text/html;q=0.12345", "text/html", None),
            ("text/html;q=1.5", "text/html", None),
            ("text/html;q=.5", "text/html", None),
            ("text/html;q=2", "text/html", None),
            ("text/html;q=x", "text/html", None),
            (
                "application/json, text/html;q=0.9",
                "application/json",
                Some(1.0),
            ),
            ("text/htmlx", "text/html", None),
        ];
        for (accept, media_type, expected) in rows {
            assert_eq!(
                named_quality(std::iter::once(*accept), media_type),
                *expected,
                "{accept:?} {media_type}"
            );
        }
    }
}
