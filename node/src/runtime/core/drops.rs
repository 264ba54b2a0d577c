//! How a node logs what it drops: at WARN, rate-limited per reason. The
//! first drop of each reason is logged at once; after it, at most one line
//! per reason every [`LOG_EVERY`], carrying how many were dropped since the
//! line before, so a flood (a stranger's, or a misconfigured node's
//! retransmissions) can neither fill the log nor hide: the counters in
//! `twopc status` and `/metrics` have every one. Pure bookkeeping: the time
//! comes with each call.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// At most one log line per reason this often (after the first).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Per reason (a key `K`: a reason, or a reason and the node it came
/// from): when its last line was logged, and drops since.
#[derive(Debug)]
pub struct DropLog<K> {
    reasons: HashMap<K, Line>,
}

impl<K> Default for DropLog<K> {
    fn default() -> Self {
        DropLog {
            reasons: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Line {
    logged: Instant,
    since: u64,
}

impl<K: Hash + Eq> DropLog<K> {
    /// Notes one drop for `reason` at `now`; returns `Some(n)` when a line
    /// should be logged now, `n` being the drops it stands for (this one and
    /// those not logged since the last line), `None` when it is suppressed.
    pub fn note(&mut self, reason: K, now: Instant) -> Option<u64> {
        match self.reasons.get_mut(&reason) {
            None => {
                self.reasons.insert(
                    reason,
                    Line {
                        logged: now,
                        since: 0,
                    },
                );
                Some(1)
            }
            Some(line) => {
                line.since += 1;
                if now.saturating_duration_since(line.logged) < LOG_EVERY {
                    return None;
                }
                let n = line.since;
                line.logged = now;
                line.since = 0;
                Some(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first drop of a reason is logged; a flood right after it is
    /// not, until `LOG_EVERY` has passed: then one line stands for all of
    /// them. Another reason has its own first line.
    #[test]
    fn the_first_drop_is_logged_then_one_line_per_period_with_the_count() {
        let mut log = DropLog::default();
        let t0 = Instant::now();
        assert_eq!(log.note("bad_mac", t0), Some(1));
        for i in 0..100 {
            let t = t0 + Duration::from_millis(i);
            assert_eq!(log.note("bad_mac", t), None);
        }
        assert_eq!(log.note("unknown_sender", t0), Some(1), "its own first");
        assert_eq!(log.note("bad_mac", t0 + LOG_EVERY), Some(101));
        assert_eq!(log.note("bad_mac", t0 + LOG_EVERY), None);
        assert_eq!(log.note("bad_mac", t0 + LOG_EVERY * 3), Some(2));
    }
}

/// What the links drop, by reason, for `twopc status` and `/metrics`
/// (`link_dropped`); each drop is also logged at WARN, rate-limited per
/// reason (the first at once, then one line per period with the count
/// since: `core/drops.rs`). Shared by the link's tasks.
#[derive(Debug, Default)]
pub struct LinkStats {
    inner: Mutex<(BTreeMap<&'static str, u64>, DropLog<&'static str>)>,
}

impl LinkStats {
    /// Counts `n` drops for `reason` and logs `what` (rate-limited).
    pub fn dropped(&self, reason: &'static str, n: u64, what: impl FnOnce() -> String) {
        let logged = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            *inner.0.entry(reason).or_default() += n;
            let count = inner.0[reason];
            inner
                .1
                .note(reason, tokio::time::Instant::now())
                .map(|since| (count, since))
        };
        if let Some((count, since)) = logged {
            tracing::warn!(reason, count, since, "replica link dropped: {}", what());
        }
    }

    /// The counts so far, by reason.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
}
