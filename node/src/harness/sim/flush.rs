//! A batch's end in the simulated world: the core's [`Ready`] run by the
//! runtime's one executor ([`ready::run_now`]) against a simulated network
//! and disk, cut short now and then by a crash at one of the executor's
//! [`Point`]s.

use super::disk::Crash;
use super::world::{Phase, World};
use crate::runtime::core::ready::{self, Effects, Point};
use crate::runtime::core::{Outgoing, TimerCmd};
use rand::Rng;
use std::collections::BTreeSet;
use twopc_model::{Storage, Timer};

/// Where a flush may be cut short by a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CutAt {
    /// At [`Point::BeforeSync`].
    AfterStage,
    /// The power fails in the middle of the sync's writes (armed at
    /// [`Point::BeforeSync`]; the node is down at [`Point::AfterSync`]
    /// at the latest).
    DuringSync,
    /// At [`Point::AfterSync`].
    AfterSync,
    /// At [`Point::BeforeSend`].
    BeforeSend(usize),
}

/// The simulated world's effects for one batch of one node.
struct Flush<'w, 'c> {
    world: &'w mut World<'c>,
    node: usize,
    cut: Option<CutAt>,
    /// Some message to a replica leaves before the fsync.
    early: bool,
}

/// The node crashed or its storage failed: the batch ends here (the world
/// has already taken the node down).
struct Down;

impl Effects for Flush<'_, '_> {
    type Stop = Down;

    async fn send(&mut self, out: Outgoing) {
        self.world.send(self.node, out)
    }

    fn stage(&mut self, save: Storage) -> Result<(), Down> {
        let slot = &mut self.world.slots[self.node];
        slot.staged = Some(save.clone());
        let store = slot.store.as_mut().expect("up");
        if let Err(e) = store.stage(save) {
            self.world.storage_failed(self.node, e);
            return Err(Down);
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), Down> {
        let (world, node) = (&mut *self.world, self.node);
        let store = world.slots[node].store.as_mut().expect("up");
        if let Err(e) = store.sync() {
            if self.cut == Some(CutAt::DuringSync) {
                world.slots[node].torn = world.slots[node].staged.take();
                world.crash_in_flush(node, Crash::PowerCut);
            } else {
                world.storage_failed(node, e);
            }
            return Err(Down);
        }
        if let Some(saved) = world.slots[node].staged.take() {
            world.slots[node].durable = Some(saved);
        }
        let now = world.instant();
        let position = world.slots[node].store.as_ref().expect("up").position();
        let core = world.slots[node].core.as_mut().expect("up");
        core.synced(now);
        core.durable_position(position);
        Ok(())
    }

    fn at(&mut self, point: Point) -> Result<(), Down> {
        let (world, node) = (&mut *self.world, self.node);
        // The shell yields before its fsync so that the links' writers
        // write the `Accept`s that leave before it; mostly they have by the
        // time a crash comes (`links.rs`).
        if point == Point::BeforeSync && world.links_waiting(node) && world.rng.random_bool(0.8) {
            world.write_links(node);
        }
        if matches!(self.cut, Some(CutAt::AfterStage | CutAt::DuringSync))
            && point == Point::BeforeSync
            && self.early
        {
            world.report.crashes_after_early_send += 1;
        }
        let crash = match (point, self.cut) {
            (Point::BeforeSync, Some(CutAt::AfterStage))
            | (Point::AfterSync, Some(CutAt::AfterSync)) => world.crash_kind(),
            (Point::BeforeSend(k), Some(CutAt::BeforeSend(cut))) if k == cut => world.crash_kind(),
            (Point::BeforeSync, Some(CutAt::DuringSync)) => {
                world.slots[node]
                    .disk
                    .cut_power_during_next_sync(&mut world.rng);
                return Ok(());
            }
            (Point::AfterSync, Some(CutAt::DuringSync)) => Crash::PowerCut,
            _ => return Ok(()),
        };
        world.crash_in_flush(node, crash);
        Err(Down)
    }
}

impl World<'_> {
    /// Ends a batch at `node` exactly as the shell does — the runtime's one
    /// executor runs its commands — with a small chance of a crash at any
    /// point in between.
    pub(super) fn flush(&mut self, node: usize) {
        let now = self.instant();
        let ready = self.slots[node].core.as_mut().expect("up").ready(now);
        self.check_timers(node, &ready.timers, &ready.fired);
        let early = ready.sends.iter().any(|o| o.peer_msg().is_some());
        let cut = self.cut_point(node, ready.sends_after_sync.len(), early);
        let mut effects = Flush {
            world: self,
            node,
            cut,
            early,
        };
        if ready::run_now(ready, &mut effects).is_ok() {
            self.write_links(node);
            self.after_batch(node);
        }
    }

    /// The model fires only timers that are set: one set earlier and not
    /// cancelled since, or set in this very batch.
    fn check_timers(&mut self, node: usize, timers: &[TimerCmd], fired: &[Timer]) {
        let set_now: BTreeSet<&Timer> = timers
            .iter()
            .filter_map(|c| match c {
                TimerCmd::Set(t, _) => Some(t),
                TimerCmd::Cancel(_) => None,
            })
            .collect();
        for timer in fired {
            if !self.slots[node].armed.remove(timer) && !set_now.contains(timer) {
                let name = self.slots[node].name.clone();
                self.violation(format!(
                    "{name}: timer {timer:?} fired at {} µs but was not set (cancelled or never set): no model step allows it",
                    self.now
                ));
            }
        }
        for cmd in timers {
            match cmd {
                TimerCmd::Set(t, _) => self.slots[node].armed.insert(t.clone()),
                TimerCmd::Cancel(t) => self.slots[node].armed.remove(t),
            };
        }
    }

    /// Whether (and where) this flush is cut short by a crash. A flush
    /// whose messages to replicas leave before its fsync (a leader's
    /// `Accept`s) is cut five times as often: the instant between those
    /// and the fsync is what the replicated path rests on.
    fn cut_point(&mut self, node: usize, sends: usize, early: bool) -> Option<CutAt> {
        let p = if early {
            (self.cfg.crash_in_flush * 5.0).min(1.0)
        } else {
            self.cfg.crash_in_flush
        };
        if self.phase != Phase::Chaos || node >= self.servers || !self.rng.random_bool(p) {
            return None;
        }
        Some(match self.rng.random_range(0..sends + 3) {
            0 => CutAt::AfterStage,
            1 => CutAt::DuringSync,
            2 => CutAt::AfterSync,
            k => CutAt::BeforeSend(k - 3),
        })
    }

    pub(super) fn crash_in_flush(&mut self, node: usize, kind: Crash) {
        self.report.crashes_in_flush += 1;
        self.crash(node, kind);
    }

    pub(super) fn storage_failed(&mut self, node: usize, e: crate::runtime::error::Error) {
        let name = self.slots[node].name.clone();
        self.violation(format!("{name}: storage failed: {e}"));
        self.crash(node, Crash::Kill);
    }
}
