//! Judging a simulated run: after every batch (timers, atomicity, alarms),
//! whether it has settled, and at the end by the promises
//! (`crate::harness::promises`).

use super::world::{Ev, Micros, Slot, World, ORDER, SKUS, USERS, WALLET};
use crate::harness::promises::{verify, Initial};
use crate::runtime::core::Core;
use twopc_model::{State, Storage};

impl World<'_> {
    /// After a batch: arm the wake-up, check what can be checked at once,
    /// and let a client slot move on.
    pub(super) fn after_batch(&mut self, node: usize) {
        let now = self.instant();
        let core = self.slots[node].core.as_mut().expect("up");
        if let Some(heard) = core.heard_to_keep(now, false) {
            self.slots[node].heard = heard;
        }
        if let Some(alarm) = self.slots[node]
            .core
            .as_ref()
            .expect("up")
            .counters()
            .rolled_back
            .clone()
        {
            let name = self.slots[node].name.clone();
            self.violation(format!("{name}: rollback alarm: {alarm}"));
        }
        let slot = &self.slots[node];
        let core = slot.core.as_ref().expect("up");
        if let Some(next) = core.next_timer() {
            // Rounded up: a deadline between two microseconds is due at the later.
            let at = (next
                .saturating_duration_since(self.base)
                .as_nanos()
                .div_ceil(1000) as Micros)
                .max(self.now);
            if slot.wake_at.is_none_or(|w| at < w) {
                let inc = slot.inc;
                self.slots[node].wake_at = Some(at);
                self.at(at, Ev::Wake { node, inc });
            }
        }
        if node == WALLET || node == ORDER {
            self.check_atomic();
            // The model proves a commit only reaches a participant that
            // knows the transaction: the alarm is never a false one.
            let counters = self.slots[node].core.as_ref().expect("up").counters();
            if let Some(d) = counters.recent_unknown_decisions.last() {
                let (name, d) = (self.slots[node].name.clone(), d.clone());
                self.violation(format!(
                    "{name} raised the unknown-decision alarm: a commit for {d:?}, which it has no record of"
                ));
            }
        }
        if self.replicas.len() > 1 && self.replicas.contains(&node) {
            self.check_chosen(node);
        }
        if node >= self.servers {
            let State::Client(c) = self.slots[node].core.as_ref().expect("up").state() else {
                unreachable!("a client slot runs a client");
            };
            let run = self.slots[node].client.as_ref().expect("a client");
            if c.seen.len() >= run.purchases.len() {
                let seen = c.seen.clone();
                self.record_client(node, &seen);
                self.next_client(node);
            }
        }
    }

    /// Atomic at every instant: no transaction is committed at one
    /// participant and aborted at the other.
    pub(super) fn check_atomic(&mut self) {
        let part = |s: &Slot| match s.core.as_ref().map(Core::state) {
            Some(State::Participant(p)) => Some(p.data.clone()),
            _ => None,
        };
        let (Some(w), Some(o)) = (part(&self.slots[WALLET]), part(&self.slots[ORDER])) else {
            return;
        };
        for (txn, f) in &w.finished {
            if let Some(g) = o.finished.get(txn) {
                if f.committed != g.committed {
                    self.violation(format!(
                        "txn {txn} is committed at one participant and aborted at the other (wallet {f:?}, order {g:?})"
                    ));
                }
            }
        }
    }

    /// Nothing in doubt: every client slot idle, every server up, no
    /// coordinator attempt or unacknowledged commit, no hold, nothing in
    /// flight.
    pub(super) fn quiescent(&self) -> bool {
        if self.slots.iter().any(|s| s.client.is_some()) {
            return false;
        }
        self.coordinators_quiescent()
            && self.slots[..self.servers].iter().all(|s| {
                s.inbox.is_empty()
                    && match s.core.as_ref().map(Core::state) {
                        Some(State::Coordinator(_) | State::Replica(_)) => true,
                        Some(State::Participant(p)) => p.data.holds.is_empty(),
                        _ => false,
                    }
            })
    }

    /// Judges the run by the promises (`crate::harness::promises`).
    pub(super) fn judge(&mut self) {
        // Clients still running never got (all) their outcomes.
        for node in self.servers..self.slots.len() {
            if self.slots[node].client.is_some() {
                let seen = match self.slots[node].core.as_ref().map(Core::state) {
                    Some(State::Client(c)) => c.seen.clone(),
                    _ => Vec::new(),
                };
                self.record_client(node, &seen);
            }
        }
        let storage = |s: &Slot| s.core.as_ref().map(|c| c.state().storage());
        let (Some(Storage::Participant(w)), Some(Storage::Participant(o))) =
            (storage(&self.slots[WALLET]), storage(&self.slots[ORDER]))
        else {
            return self.violation("a participant is down at the end".into());
        };
        let commits = match self.coordinator_commits() {
            Ok(commits) => commits,
            Err(e) => return self.violation(e),
        };
        let initial = Initial {
            wallet: USERS,
            order: SKUS,
        };
        let verified = verify(&self.seen, &w, &o, initial, commits);
        self.report.purchases = self.seen.len() as u64;
        self.report.commits = verified.commits;
        self.report.aborts = verified.aborts;
        self.report.fsyncs = self.slots.iter().map(|s| s.disk.fsyncs()).sum();
        for v in verified.violations {
            self.violation(v);
        }
    }

    pub(super) fn violation(&mut self, what: String) {
        // The same broken promise is seen again at every later instant.
        if !self.reported.insert(what.clone()) {
            return;
        }
        if self.cfg.trace {
            println!("{:>12} VIOLATION {what}", self.now);
        }
        self.report.violations.push(what);
    }
}
