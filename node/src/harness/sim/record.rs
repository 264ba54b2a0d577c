//! What a simulated run records as it goes: the digest of every event
//! (two runs of a seed must agree on it) and, with `--trace`, one line per
//! event.

use super::world::World;
use crate::runtime::wire::{msg_txn, MsgKind, Payload};
use std::net::SocketAddr;

impl World<'_> {
    pub(super) fn mix(&mut self, words: &[u64]) {
        for w in std::iter::once(self.now).chain(words.iter().copied()) {
            self.mix_bytes(&w.to_le_bytes());
        }
    }

    pub(super) fn mix_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.digest ^= u64::from(*b);
            self.digest = self.digest.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(super) fn trace(&self, node: usize, what: &str) {
        println!("{:>12} {} {what}", self.now, self.slots[node].name);
    }

    pub(super) fn describe(&self, bytes: &[u8]) -> String {
        match self.codec.decode(bytes) {
            Ok(Payload::Protocol(msg)) => match msg_txn(&msg) {
                Some(txn) => format!("{} {txn}", MsgKind::of(&msg)),
                None => format!("{}", MsgKind::of(&msg)),
            },
            Ok(_) => "admin".into(),
            Err(e) => format!("undecodable ({e})"),
        }
    }

    pub(super) fn trace_in(&self, node: usize, from: SocketAddr, bytes: &[u8]) {
        let from = self
            .by_addr
            .get(&from)
            .map_or("?", |&i| &self.slots[i].name);
        self.trace(node, &format!("<- {from}: {}", self.describe(bytes)));
    }

    pub(super) fn trace_out(&self, node: usize, to: usize, bytes: &[u8]) {
        let to = &self.slots[to].name;
        self.trace(node, &format!("-> {to}: {}", self.describe(bytes)));
    }
}
