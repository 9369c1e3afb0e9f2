//! HTTP-dates: the `Date` header value, formatted once per second rather than once per
//! response, and the three forms a request may send (RFC 9110 section 5.6.7), parsed by
//! their grammar.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A cached IMF-fixdate string for the current second.
#[derive(Debug)]
pub struct DateCache {
    second: u64,
    text: [u8; 29],
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache::new()
    }
}

impl DateCache {
    /// A cache holding the current time.
    pub fn new() -> DateCache {
        let mut cache = DateCache {
            second: u64::MAX,
            text: [b' '; 29],
        };
        cache.refresh(SystemTime::now());
        cache
    }

    /// Updates the cached text if `now` is in a later second than the one held.
    pub fn refresh(&mut self, now: SystemTime) {
        let second = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if second != self.second {
            self.second = second;
            let formatted = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            self.text.copy_from_slice(&formatted.as_bytes()[..29]);
        }
    }

    /// The IMF-fixdate text, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }
}

/// Parses an HTTP-date into seconds since the epoch (negative before 1970):
///
/// ```text
/// IMF-fixdate  = day-name "," SP day SP month SP year SP time-of-day SP "GMT"
/// rfc850-date  = day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP "GMT"
/// asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year
/// ```
///
/// Names are case-sensitive; the date must exist; `23:59:60` (a leap second) is the next
/// second. The day name is not checked against the date: the grammar does not tie them. An
/// rfc850 two-digit year is the one within 50 years of `this_year` (asked only then).
pub fn parse_http_date(value: &[u8], this_year: impl FnOnce() -> i64) -> Option<i64> {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const LONG_DAYS: [&[u8]; 7] = [
        b"Monday",
        b"Tuesday",
        b"Wednesday",
        b"Thursday",
        b"Friday",
        b"Saturday",
        b"Sunday",
    ];
    if let [a, b, c, b',', b' ', rest @ ..] = value
        && DAYS.contains(&&[*a, *b, *c][..])
    {
        // IMF-fixdate: `06 Nov 1994 08:49:37 GMT`
        let [
            d1,
            d2,
            b' ',
            m1,
            m2,
            m3,
            b' ',
            y1,
            y2,
            y3,
            y4,
            b' ',
            time @ ..,
            b' ',
            b'G',
            b'M',
            b'T',
        ] = rest
        else {
            return None;
        };
        let year = digits(&[*y1, *y2, *y3, *y4])?;
        return timestamp(year, month(&[*m1, *m2, *m3])?, digits(&[*d1, *d2])?, time);
    }
    if let Some(comma) = value.iter().position(|&b| b == b',')
        && LONG_DAYS.contains(&&value[..comma])
    {
        // rfc850-date: `06-Nov-94 08:49:37 GMT`
        let [
            b',',
            b' ',
            d1,
            d2,
            b'-',
            m1,
            m2,
            m3,
            b'-',
            y1,
            y2,
            b' ',
            time @ ..,
            b' ',
            b'G',
            b'M',
            b'T',
        ] = &value[comma..]
        else {
            return None;
        };
        let year = two_digit_year(digits(&[*y1, *y2])?, this_year());
        return timestamp(year, month(&[*m1, *m2, *m3])?, digits(&[*d1, *d2])?, time);
    }
    // asctime-date: `Sun Nov  6 08:49:37 1994`
    let [
        a,
        b,
        c,
        b' ',
        m1,
        m2,
        m3,
        b' ',
        d1,
        d2,
        b' ',
        time @ ..,
        b' ',
        y1,
        y2,
        y3,
        y4,
    ] = value
    else {
        return None;
    };
    if !DAYS.contains(&&[*a, *b, *c][..]) {
        return None;
    }
    let day = match d1 {
        b' ' => digits(&[*d2])?,
        _ => digits(&[*d1, *d2])?,
    };
    let year = digits(&[*y1, *y2, *y3, *y4])?;
    timestamp(year, month(&[*m1, *m2, *m3])?, day, time)
}

/// `DIGIT`s as a number; `None` if any byte is not one.
fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

/// The month's number, 1 to 12.
fn month(name: &[u8; 3]) -> Option<i64> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as i64 + 1)
}

/// The year ending in `yy` that lies within 50 years of `this_year` (RFC 9110 5.6.7: one
/// more than 50 years ahead is taken as the past year with the same last two digits).
fn two_digit_year(yy: i64, this_year: i64) -> i64 {
    let year = this_year - this_year.rem_euclid(100) + yy;
    if year > this_year + 50 {
        year - 100
    } else if year <= this_year - 50 {
        year + 100
    } else {
        year
    }
}

/// Seconds since the epoch of a date and `hh:mm:ss`; `None` when the date does not exist or
/// the time is out of range.
fn timestamp(year: i64, month: i64, day: i64, time: &[u8]) -> Option<i64> {
    let [h1, h2, b':', m1, m2, b':', s1, s2] = time else {
        return None;
    };
    let (hour, minute, second) = (
        digits(&[*h1, *h2])?,
        digits(&[*m1, *m2])?,
        digits(&[*s1, *s2])?,
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        28 + i64::from(leap),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day < 1 || day > month_days[month as usize - 1] || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_imf_fixdate_and_changes_only_per_second() {
        let mut cache = DateCache::new();
        let t = UNIX_EPOCH + Duration::from_secs(784111777);
        cache.refresh(t);
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.refresh(t + Duration::from_millis(900));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.refresh(t + Duration::from_secs(1));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
    }

    #[test]
    fn http_dates() {
        const SUNDAY_1994: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        // (value, seconds since the epoch or None when not an HTTP-date)
        let rows: &[(&str, Option<i64>)] = &[
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(SUNDAY_1994)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(SUNDAY_1994)),
            ("Sun Nov  6 08:49:37 1994", Some(SUNDAY_1994)),
            ("Sun Nov 06 08:49:37 1994", Some(SUNDAY_1994)),
            // The grammar does not tie the day name to the date.
            ("Mon, 06 Nov 1994 08:49:37 GMT", Some(SUNDAY_1994)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Wed, 31 Dec 1969 23:59:59 GMT", Some(-1)),
            ("Sat, 31 Dec 2016 23:59:60 GMT", Some(1_483_228_800)),
            ("Tue, 29 Feb 2000 00:00:00 GMT", Some(951_782_400)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(253_402_300_799)),
            ("Mon, 01 Jan 0001 00:00:00 GMT", Some(-62_135_596_800)),
            // Two-digit years lie within 50 years of 2026.
            ("Thursday, 01-Jan-76 00:00:00 GMT", Some(3_345_062_400)),
            ("Thursday, 01-Jan-77 00:00:00 GMT", Some(220_924_800)),
            // Not HTTP-dates.
            ("sun, 06 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37 gmt", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 6 Nov 1994 08:49:37 GMT", None),
            ("Sun,  06 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 94 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 8:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37 GMT ", None),
            ("Sun, 06 Nov 1994 08:49:37", None),
            ("Sun, 00 Nov 1994 08:49:37 GMT", None),
            ("Sun, 31 Nov 1994 08:49:37 GMT", None),
            ("Tue, 29 Feb 1900 00:00:00 GMT", None),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
            ("Sun, 06 Nov 1994 08:60:00 GMT", None),
            ("Sun, 06 Nov 1994 08:49:61 GMT", None),
            ("Sun, 06 Nov 1994 08:49:3x GMT", None),
            ("Sun, 06 Nov +994 08:49:37 GMT", None),
            ("Sunday, 06-Nov-1994 08:49:37 GMT", None),
            ("Sun, 06-Nov-94 08:49:37 GMT", None),
            ("Sunday, 06 Nov 1994 08:49:37 GMT", None),
            ("Sun Nov 6 08:49:37 1994", None),
            ("Sun Nov  6 08:49:37 1994 GMT", None),
            ("Sun, Nov  6 08:49:37 1994", None),
            ("", None),
            ("yesterday", None),
        ];
        for (value, expected) in rows {
            assert_eq!(
                parse_http_date(value.as_bytes(), || 2026),
                *expected,
                "{value:?}"
            );
        }
    }
}
