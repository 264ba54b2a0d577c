//! The simulated clients: each slot runs one client after another, each
//! with a few random purchases, and what each saw is noted for the judge.

use super::disk::MemDisk;
use super::world::{ClientRun, Phase, World, SKUS, USERS};
use crate::harness::promises::Seen;
use rand::Rng;
use twopc_model::client::{Mode, Request};
use twopc_model::{Client, Node, Purchase, RequestId};

impl World<'_> {
    /// A client finished its purchases: note what it saw.
    pub(super) fn record_client(&mut self, node: usize, seen: &[twopc_model::Outcome]) {
        let run = self.slots[node].client.take().expect("a client");
        for (i, purchase) in run.purchases.into_iter().enumerate() {
            self.seen.push(Seen {
                purchase,
                outcome: seen.get(i).cloned(),
                client: run.id,
                seq: i as u64 + 1,
            });
        }
    }

    /// Starts the slot's next client (a new process with a new id), if any
    /// purchases are left to ask for; else the slot stays idle.
    pub(super) fn next_client(&mut self, node: usize) {
        let left = self.cfg.purchases.saturating_sub(self.issued);
        if let Some(core) = self.slots[node].core.take() {
            drop(core);
            self.slots[node].store = None;
            self.slots[node].inc += 1;
        }
        if left == 0 {
            self.slots[node].client = None;
            if self.phase == Phase::Chaos && self.slots.iter().all(|s| s.client.is_none()) {
                self.settle();
            }
            return;
        }
        let n = self.rng.random_range(1..=4).min(left);
        self.issued += n;
        let purchases: Vec<Purchase> = (0..n).map(|_| self.random_purchase()).collect();
        let id = self.rng.random();
        self.slots[node].actor = Node::Client(Client {
            coordinators: self.coordinator_ids(),
            id,
            requests: purchases
                .iter()
                .map(|purchase| Request {
                    // A fresh id per purchase, as `twopc purchase` makes.
                    req: RequestId::new(format!("sim-{:016x}", self.rng.random::<u64>())),
                    op: purchase.clone().into(),
                    mode: Mode::New,
                })
                .collect(),
            // As `twopc bench`'s and the CLI's clients do.
            keep_ticket: true,
        });
        self.slots[node].client = Some(ClientRun { id, purchases });
        self.slots[node].disk = Box::new(MemDisk::new(None));
        self.slots[node].durable = None;
        self.slots[node].torn = None;
        self.start(node);
    }

    pub(super) fn random_purchase(&mut self) -> Purchase {
        let (user, _) = USERS[self.rng.random_range(0..USERS.len())];
        let (sku, _) = SKUS[self.rng.random_range(0..SKUS.len())];
        Purchase {
            user: user.into(),
            sku: sku.into(),
            qty: self.rng.random_range(1..=3),
            price: self.rng.random_range(1..=9),
        }
    }
}
