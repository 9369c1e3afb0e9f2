//! What every connection of a worker shares: the application (routes, limits, counters) and
//! the worker's own caches (files, `Date`, access-log time, read buffers).

use crate::app::Router;
use crate::files::StaticFiles;
use crate::http::Limits;
use crate::http::date::DateCache;
use crate::http::parse::HeadStorage;
use crate::readbuf::BufferPool;
use crate::stats::Stats;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The application as every worker sees it: immutable once the server runs.
pub struct App {
    /// Handler routes, consulted before the static files.
    pub router: Router,
    /// Request head limits.
    pub limits: Limits,
    /// Largest request body a handler accepts.
    pub max_body_size: u64,
    /// Requests served on one connection before it closes (0: no limit).
    pub max_requests_per_connection: u64,
    /// Whether to write an access-log line per response.
    pub access_log: bool,
    /// Server-wide counters.
    pub stats: Arc<Stats>,
}

/// A worker's view: the shared app plus caches only this worker touches.
pub struct Site {
    /// The shared application.
    pub app: Arc<App>,
    /// The static files, with this worker's small-file cache.
    pub files: StaticFiles,
    /// The `Date` value for this second.
    pub date: DateCache,
    /// The access-log timestamp for this second.
    pub log_time: LogTime,
    /// Read buffers for reuse.
    pub buffers: BufferPool,
    /// The allocations of the last answered request's head, for the next head.
    pub spare_head: HeadStorage,
    /// Set during a graceful shutdown: every response closes its connection.
    pub draining: bool,
}

impl Site {
    /// A worker's site over `app` and `files`.
    pub fn new(app: Arc<App>, files: StaticFiles) -> Site {
        Site {
            app,
            files,
            date: DateCache::new(),
            log_time: LogTime::default(),
            buffers: BufferPool::default(),
            spare_head: HeadStorage::default(),
            draining: false,
        }
    }

    /// Moves the cached clocks to `now`.
    pub fn tick(&mut self, now: SystemTime) {
        self.date.refresh(now);
        if self.app.access_log {
            self.log_time.refresh(now);
        }
    }
}

/// The Common Log Format time (`10/Oct/2000:13:55:36 +0000`), formatted once per second.
#[derive(Debug, Default)]
pub struct LogTime {
    second: u64,
    text: String,
}

impl LogTime {
    /// Updates the text if `now` is in a new second.
    pub fn refresh(&mut self, now: SystemTime) {
        let second = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if second == self.second && !self.text.is_empty() {
            return;
        }
        self.second = second;
        // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" rearranged to "06/Nov/1994:08:49:37 +0000".
        let imf = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
        let (day, month, year, time) = (&imf[5..7], &imf[8..11], &imf[12..16], &imf[17..25]);
        self.text = format!("{day}/{month}/{year}:{time} +0000");
    }

    /// The formatted time.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time_is_common_log_format() {
        let mut time = LogTime::default();
        time.refresh(UNIX_EPOCH + Duration::from_secs(971_185_736));
        assert_eq!(time.as_str(), "10/Oct/2000:13:48:56 +0000");
    }
}
