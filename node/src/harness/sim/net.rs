//! The simulated network: a datagram that leaves a node is lost,
//! duplicated, delayed (hence reordered) or cut off by a partition; a
//! message to another replica goes to its link instead (`links.rs`).

use super::world::{us, Ev, Phase, World};
use crate::runtime::core::Outgoing;
use rand::Rng;
use std::net::SocketAddr;

impl World<'_> {
    /// A datagram leaves `from`: lost, duplicated, delayed or cut off.
    pub(super) fn send(&mut self, from: usize, out: Outgoing) {
        let (to, bytes) = match out {
            Outgoing::Datagram { to, bytes } | Outgoing::Reply { to, bytes } => (to, bytes),
            Outgoing::Peer { to, msg, waited } => return self.hand_to_link(from, to, *msg, waited),
        };
        self.report.datagrams += 1;
        let Some(&to) = self.by_addr.get(&to) else {
            self.report.dropped += 1;
            return;
        };
        if self.cfg.trace {
            self.trace_out(from, to, &bytes);
        }
        let chaos = self.phase == Phase::Chaos;
        if self.slots[from].cut_until > self.now || (chaos && self.rng.random_bool(self.cfg.loss)) {
            self.report.dropped += 1;
            return;
        }
        let copies = if chaos && self.rng.random_bool(self.cfg.duplicate) {
            self.report.duplicated += 1;
            2
        } else {
            1
        };
        let src = SocketAddr::V4(self.slots[from].addr);
        for _ in 0..copies {
            let delay = self.rng.random_range(50..=us(self.cfg.delay_max).max(51));
            self.at(
                self.now + delay,
                Ev::Deliver {
                    to,
                    from: src,
                    bytes: bytes.clone(),
                },
            );
        }
    }
}
