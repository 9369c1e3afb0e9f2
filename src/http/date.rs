//! The `Date` header value, formatted once per second rather than once per response.

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
}
