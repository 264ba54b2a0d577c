//! The network faults of one runtime core (see [`crate::runtime::faults`] for what
//! they are and how they are chosen): one seeded RNG and the datagrams held
//! back. It is the one seam through which faults reach a message, and a
//! message meets it three times: on receipt ([`Injector::drops_in`]), when
//! the actor sends it ([`Injector::drops_out`]), and as an [`Outgoing`]
//! after persist-before-send ([`Injector::route`]: duplicated, delayed,
//! reordered; [`Injector::due`] releases what it held back). Every fault it
//! injects is counted. Core owns it, so the faults never see a datagram
//! before the batch allows it to leave; `crate::runtime::faults` keeps only
//! their configuration and the capture.

use super::Outgoing;
use crate::runtime::admin::Counters;
use crate::runtime::faults::Faults;
use crate::runtime::wire::MsgKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::Msg;

/// The network faults of one runtime core: its RNG and the datagrams it
/// holds back. Pure: the time is handed in.
#[derive(Debug)]
pub struct Injector {
    faults: Faults,
    rng: StdRng,
    /// Delayed datagrams by release time (the u64 keeps keys unique).
    deferred: BTreeMap<(Instant, u64), Outgoing>,
    seq: u64,
    /// A datagram waiting for the next one to overtake it, and its deadline.
    held: Option<(Instant, Outgoing)>,
}

fn p(rng: &mut StdRng, prob: f64) -> bool {
    prob > 0.0 && rng.random_bool(prob.min(1.0))
}

impl Injector {
    /// The injector for `faults`.
    pub fn new(faults: Faults) -> Self {
        let rng = match faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        Injector {
            faults,
            rng,
            deferred: BTreeMap::new(),
            seq: 0,
            held: None,
        }
    }

    /// Whether to drop `msg` on receipt (`incoming`) or instead of sending
    /// it; a drop is counted (`fault_dropped`) and logged.
    fn drops(&mut self, incoming: bool, msg: &Msg, counters: &mut Counters) -> bool {
        let kinds = if incoming {
            &self.faults.drop_in
        } else {
            &self.faults.drop_out
        };
        let kind = MsgKind::of(msg);
        let dropped = kinds.contains(&kind) || p(&mut self.rng, self.faults.loss);
        if dropped {
            counters.fault_dropped += 1;
            let way = if incoming { "incoming" } else { "outgoing" };
            tracing::debug!(%kind, "fault: dropped {way}");
        }
        dropped
    }

    /// Whether to drop `msg` on receipt (counted and logged if so).
    pub fn drops_in(&mut self, msg: &Msg, counters: &mut Counters) -> bool {
        self.drops(true, msg, counters)
    }

    /// Whether to drop `msg` instead of sending it (counted and logged if
    /// so).
    pub fn drops_out(&mut self, msg: &Msg, counters: &mut Counters) -> bool {
        self.drops(false, msg, counters)
    }

    fn delay_for(&mut self) -> Duration {
        let max = self.faults.delay_max.max(Duration::from_millis(1));
        self.rng.random_range(Duration::ZERO..max)
    }

    /// What to send now, in order, for `out` (which may be dropped into the
    /// delay queue, duplicated, or held back for the next datagram to pass).
    pub fn route(&mut self, out: Outgoing, counters: &mut Counters, now: Instant) -> Vec<Outgoing> {
        if !out.faults_apply() {
            return vec![out];
        }
        let mut copies = vec![out];
        if p(&mut self.rng, self.faults.duplicate) {
            counters.fault_duplicated += 1;
            copies.push(copies[0].clone());
        }
        let mut now_list = Vec::new();
        for o in copies {
            if p(&mut self.rng, self.faults.delay) {
                counters.fault_delayed += 1;
                let at = now + self.delay_for();
                self.seq += 1;
                self.deferred.insert((at, self.seq), o);
            } else if self.held.is_none() && p(&mut self.rng, self.faults.reorder) {
                counters.fault_reordered += 1;
                let wait = self.faults.delay_max.max(Duration::from_millis(20));
                self.held = Some((now + wait, o));
            } else {
                now_list.push(o);
                // The held datagram follows the first one sent after it.
                if let Some((_, h)) = self.held.take() {
                    now_list.push(h);
                }
            }
        }
        now_list
    }

    /// When the next held-back datagram is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let d = self.deferred.keys().next().map(|(at, _)| *at);
        let h = self.held.as_ref().map(|(at, _)| *at);
        match (d, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Held-back datagrams whose time has come, in release order.
    pub fn due(&mut self, now: Instant) -> Vec<Outgoing> {
        let mut out = Vec::new();
        while let Some(entry) = self.deferred.first_entry() {
            if entry.key().0 > now {
                break;
            }
            out.push(entry.remove());
        }
        if self.held.as_ref().is_some_and(|(at, _)| *at <= now) {
            out.extend(self.held.take().map(|(_, o)| o));
        }
        out
    }
}

#[cfg(test)]
#[path = "inject_tests.rs"]
mod tests;
