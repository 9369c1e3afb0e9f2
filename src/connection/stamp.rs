//! Instants in eight bytes. An `Instant` takes sixteen, and a connection keeps several; an
//! idle kept-alive connection is mostly its slab slot, so every field counts.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An instant as nanoseconds since a process-wide origin, plus one so that it is never zero
/// and `Option<Stamp>` takes eight bytes as well. Good for 584 years of uptime; an instant
/// from before the origin (the first stamp taken) counts as the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(NonZeroU64);

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

thread_local! {
    /// The instant this thread converted last, and its stamp. A shell hands one turn's `now`
    /// to several calls per request; comparing two instants is cheaper than converting
    /// again (a checked subtraction and a 128-bit multiply).
    static LAST: Cell<Option<(Instant, Stamp)>> = const { Cell::new(None) };
}

impl Stamp {
    /// The stamp of `at`.
    pub fn of(at: Instant) -> Stamp {
        LAST.with(|last| match last.get() {
            Some((seen, stamp)) if seen == at => stamp,
            _ => {
                let stamp = Stamp::convert(at);
                last.set(Some((at, stamp)));
                stamp
            }
        })
    }

    fn convert(at: Instant) -> Stamp {
        let nanos = at.saturating_duration_since(origin()).as_nanos();
        Stamp(NonZeroU64::MIN.saturating_add(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// The stamp `by` later (saturating), in integer arithmetic: cheaper than going through
    /// `Instant`.
    pub fn after(self, by: Duration) -> Stamp {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        Stamp(self.0.saturating_add(by))
    }

    /// How long ago it was.
    pub fn elapsed(self) -> Duration {
        // A fresh instant: converted without the memo, which it would only evict.
        let now = Stamp::convert(Instant::now());
        Duration::from_nanos(now.0.get().saturating_sub(self.0.get()))
    }

    /// The instant it stands for.
    pub fn instant(self) -> Instant {
        origin() + Duration::from_nanos(self.0.get() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_comes_back_to_the_nanosecond() {
        let start = Stamp::of(Instant::now()).instant();
        let later = start + Duration::from_nanos(123_456_789);
        assert_eq!(Stamp::of(later).instant(), later);
        assert_eq!(Stamp::of(start).instant(), start);
        assert!(Stamp::of(start) < Stamp::of(later));
        let by = Duration::from_millis(1500);
        assert_eq!(Stamp::of(start).after(by).instant(), start + by);
    }

    #[test]
    fn the_memo_never_hands_back_another_instants_stamp() {
        let a = Instant::now();
        let b = a + Duration::from_micros(7);
        for at in [a, a, b, b, a, b] {
            assert_eq!(Stamp::of(at), Stamp::convert(at));
        }
    }

    #[test]
    fn a_stamp_and_an_optional_stamp_take_eight_bytes() {
        assert_eq!(std::mem::size_of::<Stamp>(), 8);
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
    }
}
