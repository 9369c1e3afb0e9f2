//! How long the event loop polls before it sleeps, learned from how soon events came.
//!
//! A core that sleeps is slow to wake: deep idle states on bare metal, and in a virtual
//! machine the halt the host has to undo. When events follow each other closely (one client
//! in a tight request-response loop, a backend answering in microseconds) polling a little
//! before sleeping saves that wake-up; when they do not, polling only burns the core. So the
//! loop keeps a polling window that follows the waits it has seen, much as the kernel's
//! `haltpoll` idle governor does for a virtual CPU: once two waits in a row ended within the
//! limit, a wait that outlasted the window widens it, up to the limit; one wait past the limit
//! closes it. Traffic whose waits alternate (a backend that answers at once, a client that
//! takes a millisecond to ask again) never opens it. Under load the poll finds events at once
//! and the window never matters; an idle server never polls.

use std::time::Duration;

/// The polling window, between zero and the configured limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BusyPoll {
    limit: Duration,
    window: Duration,
    /// Waits in a row that ended within the limit.
    short: u32,
}

impl BusyPoll {
    /// Polling up to `limit` (zero: never). The window starts closed.
    pub(crate) fn new(limit: Duration) -> BusyPoll {
        BusyPoll {
            limit,
            window: Duration::ZERO,
            short: 0,
        }
    }

    /// How long to poll before sleeping now.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Takes note of a wait that lasted `waited` until events came, or of one that ended
    /// with none (`None`: a timer's wake-up, as long as any wait past the limit).
    pub(crate) fn waited(&mut self, waited: Option<Duration>) {
        match waited {
            Some(waited) if waited <= self.limit => {
                self.short = self.short.saturating_add(1);
                // Polling a little longer would have caught them, and not by chance once.
                if waited > self.window && self.short >= 2 {
                    self.window = (self.window * 2).clamp(self.limit / 4, self.limit);
                }
            }
            // They came too late for any polling to catch.
            _ => {
                self.short = 0;
                self.window = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_micros(40);

    fn us(n: u64) -> Option<Duration> {
        Some(Duration::from_micros(n))
    }

    #[test]
    fn it_opens_when_events_keep_coming_within_the_limit() {
        let mut poll = BusyPoll::new(LIMIT);
        assert_eq!(poll.window(), Duration::ZERO, "closed at first");
        poll.waited(us(30));
        assert_eq!(
            poll.window(),
            Duration::ZERO,
            "one short wait is not a pattern"
        );
        poll.waited(us(30));
        assert!(poll.window() > Duration::ZERO, "two in a row open it");
        for _ in 0..10 {
            poll.waited(us(30));
        }
        assert!(
            poll.window() >= Duration::from_micros(30),
            "it grows to cover the gap"
        );
        assert!(poll.window() <= LIMIT, "never past the limit");
    }

    #[test]
    fn it_stays_open_while_polling_finds_events() {
        let mut poll = BusyPoll::new(LIMIT);
        for _ in 0..10 {
            poll.waited(us(35));
        }
        let open = poll.window();
        for _ in 0..100 {
            poll.waited(us(3));
        }
        assert_eq!(poll.window(), open);
    }

    #[test]
    fn a_long_wait_closes_it() {
        for long in [us(5_000), None] {
            let mut poll = BusyPoll::new(LIMIT);
            for _ in 0..10 {
                poll.waited(us(35));
            }
            poll.waited(long);
            assert_eq!(poll.window(), Duration::ZERO, "after {long:?}");
        }
    }

    #[test]
    fn waits_that_alternate_never_open_it() {
        // A quick backend behind a client that asks once a millisecond: polling after the
        // answer would be spent for nothing every time.
        let mut poll = BusyPoll::new(LIMIT);
        for _ in 0..100 {
            poll.waited(us(15));
            assert_eq!(poll.window(), Duration::ZERO);
            poll.waited(us(1_000));
            assert_eq!(poll.window(), Duration::ZERO);
        }
    }

    #[test]
    fn a_zero_limit_never_polls() {
        let mut poll = BusyPoll::new(Duration::ZERO);
        for waited in [us(0), us(0), us(1), us(30), None, us(10_000)] {
            poll.waited(waited);
            assert_eq!(poll.window(), Duration::ZERO);
        }
    }
}
