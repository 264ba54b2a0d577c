//! Nodes' lives in the simulated world: starts from disk, crashes (kills
//! and power cuts), and the end of the faults.

use super::disk::Crash;
use super::world::{Ev, Phase, World};
use crate::runtime::core::{Config as CoreConfig, Core, Event};
use crate::runtime::faults::Faults;
use crate::runtime::history::History;
use rand::Rng;
use stateright::actor::Id;
use std::time::Duration;
use twopc_model::Node;

impl World<'_> {
    /// Starts `node` from its disk.
    pub(super) fn start(&mut self, node: usize) {
        let seed = self.rng.random();
        let now = self.instant();
        let slot = &mut self.slots[node];
        slot.inc += 1;
        let (store, stored) = match slot.disk.open() {
            Ok(opened) => opened,
            Err(e) => {
                let name = slot.name.clone();
                self.report.refused_starts += 1;
                // It would stay down for good: the run ends here.
                self.halted = true;
                return self.violation(format!("{name} refused to start: {e}"));
            }
        };
        // Storage at a restart is the last durable save (or the one a power
        // cut interrupted), never older: a peer may have seen it.
        let torn = slot.torn.take();
        if stored != slot.durable && (torn.is_none() || stored != torn) {
            let name = slot.name.clone();
            let what = if stored.is_none() {
                "nothing"
            } else {
                "another state"
            };
            self.violation(format!(
                "{name} restarted from {what}, not from its last durable save"
            ));
            if self.cfg.trace {
                println!(
                    "    found   {stored:?}\n    durable {:?}",
                    self.slots[node].durable
                );
            }
            // Go on from what it found, so the run shows what follows.
        }
        // The rollback check, as `node.rs` wires it: a false alarm is a
        // violation (`after_batch`).
        let history = match &self.slots[node].actor {
            Node::Participant(_) => History::participant(&self.slots[node].name, "/data"),
            Node::Coordinator(_) | Node::Replica(_) => History::coordinator(
                self.slots
                    .iter()
                    .filter(|s| matches!(s.actor, Node::Participant(_)))
                    .map(|s| (s.addr, s.name.clone()))
                    .collect(),
                self.slots[node].heard.clone(),
            ),
            Node::Client(_) => History::Off,
        };
        let slot = &mut self.slots[node];
        slot.durable = stored.clone();
        let cfg = CoreConfig {
            name: slot.name.clone(),
            codec: self.codec.clone(),
            faults: Faults {
                seed: Some(seed),
                mutant: self.cfg.mutant,
                ..Faults::default()
            },
            batch_max: self.cfg.batch_max,
        };
        let mut actor = slot.actor.clone();
        if let Node::Replica(r) = &mut actor {
            // This process's incarnation, drawn at every start as
            // `node.rs` does.
            r.incarnation = self.rng.random();
        }
        let slot = &mut self.slots[node];
        let mut core = Core::new(actor, Id::from(slot.addr), &cfg);
        if let Some(tracer) = &slot.tracer {
            core.set_tracer(Box::new(tracer.clone()));
        }
        core.set_history(history);
        core.durable_position(store.position());
        if node < self.servers {
            // The cluster file, as `node.rs` tells each node of it.
            core.know(self.members(node));
        }
        let slot = &mut self.slots[node];
        core.handle(now, Event::Start(stored));
        slot.core = Some(core);
        slot.store = Some(store);
        slot.armed.clear();
        slot.wake_at = None;
        slot.process_at = None;
        if node < self.servers {
            self.report.starts += 1;
        }
        if self.cfg.trace {
            self.trace(node, "start");
        }
        self.flush(node);
    }

    /// Ends `node`'s incarnation; it restarts after a while.
    pub(super) fn crash(&mut self, node: usize, kind: Crash) {
        let slot = &mut self.slots[node];
        slot.core = None;
        slot.store = None;
        slot.staged = None;
        slot.inbox.clear();
        slot.peer_inbox.clear();
        slot.inc += 1;
        slot.disk.crash(kind, &mut self.rng);
        self.links_crashed(node);
        match kind {
            Crash::Kill => self.report.kills += 1,
            Crash::PowerCut => self.report.power_cuts += 1,
        }
        if self.cfg.trace {
            self.trace(node, &format!("crash ({kind:?})"));
        }
        let at = self.now + self.rng.random_range(1_000..500_000);
        self.at(at, Ev::Restart { node });
    }

    pub(super) fn crash_kind(&mut self) -> Crash {
        if self.rng.random_bool(self.cfg.power_cut_share) {
            Crash::PowerCut
        } else {
            Crash::Kill
        }
    }

    /// Every purchase has been asked for: faults off, everyone back up.
    pub(super) fn settle(&mut self) {
        self.phase = Phase::Settle;
        self.report.chaos_time = Duration::from_micros(self.now);
        for slot in &mut self.slots {
            slot.cut_until = 0;
        }
        // Down nodes have a restart queued already.
    }

    /// Once settled: every node loses power at once and starts again; what
    /// was acknowledged must still be there, and the run settles again.
    pub(super) fn final_power_cut(&mut self) {
        self.phase = Phase::Final;
        for node in 0..self.servers {
            if self.slots[node].up() {
                self.crash(node, Crash::PowerCut);
            }
        }
    }
}
