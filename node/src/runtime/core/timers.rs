//! Deadlines of the timers an actor has set: pure bookkeeping, the clock is
//! read by the shell and handed in.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::Timer;

/// Deadlines of set timers, earliest first.
#[derive(Debug, Default)]
pub struct Timers {
    deadlines: HashMap<Timer, Instant>,
    order: BTreeSet<(Instant, Timer)>,
}

impl Timers {
    /// Sets `timer` to fire at `at`, replacing an earlier setting.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(old) = self.deadlines.insert(timer.clone(), at) {
            self.order.remove(&(old, timer.clone()));
        }
        self.order.insert((at, timer));
    }

    /// Forgets `timer` (nothing if it is not set).
    pub fn cancel(&mut self, timer: &Timer) {
        if let Some(at) = self.deadlines.remove(timer) {
            self.order.remove(&(at, timer.clone()));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    /// The earliest timer due at `now`, removed.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (at, _) = self.order.first()?;
        if *at > now {
            return None;
        }
        let (_, timer) = self.order.pop_first()?;
        self.deadlines.remove(&timer);
        Some(timer)
    }
}

/// A random duration in `range` (its start if it is empty): the model lets
/// any set timer fire at any time, so a runtime may pick anywhere in it.
/// The RNG is the core's, seeded by `Faults::seed` when one is given (the
/// simulation), so a seed picks the same durations every time.
pub fn pick(rng: &mut impl rand::Rng, range: &Range<Duration>) -> Duration {
    if range.is_empty() {
        range.start
    } else {
        rng.random_range(range.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twopc_model::TxnId;

    #[test]
    fn timers_reset_cancel_and_pop_in_deadline_order() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = Timer::Votes(TxnId { epoch: 1, n: 1 });
        let b = Timer::Retry;
        t.set(a.clone(), now + Duration::from_secs(5));
        t.set(b.clone(), now + Duration::from_secs(1));
        t.set(a.clone(), now + Duration::from_millis(10)); // reset
        assert_eq!(t.next(), Some(now + Duration::from_millis(10)));
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.pop_due(now + Duration::from_secs(2)), Some(a));
        t.cancel(&b);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn an_empty_range_picks_its_start() {
        let mut rng = rand::rng();
        let d = Duration::from_millis(7);
        assert_eq!(pick(&mut rng, &(d..d)), d);
        let r = Duration::from_millis(1)..Duration::from_millis(3);
        assert!(r.contains(&pick(&mut rng, &r)));
    }
}
