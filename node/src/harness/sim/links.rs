//! The replicas' TCP links in the simulated world: what TCP gives, and the
//! real link's encoding.
//!
//! In the node, a replica hands each message for another replica to that
//! peer's link (`crate::runtime::replication`): a queue that a writer task drains,
//! coalescing what waits and writing it as length-prefixed frames, each
//! `Accept` a delta from the previous one on the connection. Here the same
//! functions encode and decode ([`encode_queue`], [`Outbound::new`] with
//! its shared `Accept` frames, [`Decoder::read`]); only the connection is
//! simulated, as TCP behaves:
//!
//! - **In order, no loss, no duplicates** while the connection lives: its
//!   writes arrive after a random delay, never before an earlier write.
//! - **Broken** by a partition of either end (at a write or an arrival:
//!   what is in flight is lost, and nothing after it arrives) and by a
//!   restart of the receiver (a write into the dead connection is lost).
//!   A write from a replica's new incarnation, or after a break, opens a
//!   new connection (a new encoder and decoder: its first `Accept` goes
//!   whole) if the peer is up and reachable; else its messages are lost,
//!   as the link drops what it cannot connect for.
//! - **The sender's crash** loses what waits in its queues (process
//!   memory); what was written is on its way and still arrives, so a
//!   leader's early `Accept` can reach the followers while the leader's
//!   own disk loses the save (the instant the simulator crashes at).
//! - **When the writer runs.** The shell yields before it blocks in an
//!   fsync so that the links write the early `Accept`s first; here the
//!   queues are written at the executor's [`Point::BeforeSync`] (most of
//!   the time: now and then the crash comes first) and after every batch.
//!
//! [`Point::BeforeSync`]: crate::runtime::core::Point::BeforeSync

use super::world::{us, Micros, World};
use crate::runtime::replication::{encode_queue, AcceptFrames, Decoder, Encoder, Outbound};
use bytes::Bytes;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use twopc_model::Msg;

/// One TCP connection from one replica to another.
struct Conn {
    from: usize,
    to: usize,
    /// The incarnations of both ends when it was made.
    from_inc: u64,
    to_inc: u64,
    encoder: Encoder,
    decoder: Decoder,
    /// When its latest write arrives (a later one arrives no earlier).
    last_at: Micros,
    /// Nothing more arrives.
    broken: bool,
    /// Writes on their way.
    in_flight: usize,
}

/// A replica process's side of its links, lost when it crashes: the
/// `Accept` frames it shares among its connections, and what waits for
/// each peer's writer.
#[derive(Default)]
struct LinkOut {
    accepts: AcceptFrames,
    queues: BTreeMap<usize, Vec<Outbound>>,
}

/// Every link of the simulated cluster.
#[derive(Default)]
pub(super) struct Links {
    /// Connections by number, while they may still deliver.
    conns: BTreeMap<u64, Conn>,
    /// The connection each (sender, receiver) writes to.
    current: BTreeMap<(usize, usize), u64>,
    next: u64,
    /// Each up replica's queues.
    out: BTreeMap<usize, LinkOut>,
}

impl World<'_> {
    /// A replica hands `msg` to its link to `to` (`Outgoing::Peer`).
    pub(super) fn hand_to_link(&mut self, from: usize, to: SocketAddr, msg: Msg, waited: u8) {
        let Some(&to) = self.by_addr.get(&to).filter(|i| self.replicas.contains(i)) else {
            self.report.link_lost += 1;
            return self.violation(format!(
                "{}: a replica message to {to}, not a replica",
                self.slots[from].name
            ));
        };
        if self.cfg.trace {
            let kind = crate::runtime::wire::MsgKind::of(&msg);
            self.trace(from, &format!("=> {}: {kind}", self.slots[to].name));
        }
        let me = self.slots[from].addr;
        let out = self.links.out.entry(from).or_default();
        let msg = Outbound::new(me, msg, waited, &mut out.accepts, &self.codec);
        out.queues.entry(to).or_default().push(msg);
    }

    /// Whether `node` has messages waiting for its links' writers.
    pub(super) fn links_waiting(&self, node: usize) -> bool {
        self.links
            .out
            .get(&node)
            .is_some_and(|o| o.queues.values().any(|q| !q.is_empty()))
    }

    /// `node`'s writers write what waits: each queue coalesced and encoded
    /// as the next frames of its connection.
    pub(super) fn write_links(&mut self, from: usize) {
        let Some(out) = self.links.out.get_mut(&from) else {
            return;
        };
        let queues = std::mem::take(&mut out.queues);
        for (to, queue) in queues {
            if queue.is_empty() {
                continue;
            }
            let n = queue.len() as u64;
            let Some(gen) = self.connection(from, to) else {
                self.report.link_lost += n;
                continue;
            };
            let me = self.slots[from].addr;
            let conn = self.links.conns.get_mut(&gen).expect("current");
            let mut bytes = Vec::new();
            let written = match encode_queue(me, &mut conn.encoder, &self.codec, queue, &mut bytes)
            {
                Ok(written) => written,
                Err((_, e)) => {
                    conn.broken = true;
                    self.report.link_lost += n;
                    let name = self.slots[from].name.clone();
                    return self.violation(format!("{name}: cannot encode a frame: {e}"));
                }
            };
            self.report.link_msgs += written;
            self.report.link_lost += n - written; // coalesced away
            if self.slots[to].inc != conn.to_inc {
                // The peer restarted: this write goes into a dead
                // connection, which breaks.
                conn.broken = true;
                self.report.link_lost += written;
                self.report.link_breaks += 1;
                self.forget_conn(gen);
                continue;
            }
            let delay = self.rng.random_range(50..=us(self.cfg.delay_max).max(51));
            let at = (self.now + delay).max(conn.last_at);
            conn.last_at = at;
            conn.in_flight += 1;
            let bytes = Bytes::from(bytes);
            self.at(at, super::world::Ev::Frames { gen, bytes });
        }
    }

    /// The connection `from` writes to `to` on, made anew if there is none
    /// for this incarnation or it broke; `None` if `to` cannot be reached.
    fn connection(&mut self, from: usize, to: usize) -> Option<u64> {
        let cut = |w: &World, n: usize| w.slots[n].cut_until > w.now;
        let unreachable = cut(self, from) || cut(self, to);
        if let Some(&gen) = self.links.current.get(&(from, to)) {
            let conn = self.links.conns.get_mut(&gen).expect("current");
            if unreachable && !conn.broken {
                conn.broken = true;
                self.report.link_breaks += 1;
            }
            if !conn.broken && conn.from_inc == self.slots[from].inc {
                return Some(gen);
            }
        }
        if unreachable || !self.slots[to].up() {
            return None;
        }
        let gen = self.links.next;
        self.links.next += 1;
        let conn = Conn {
            from,
            to,
            from_inc: self.slots[from].inc,
            to_inc: self.slots[to].inc,
            encoder: Encoder::default(),
            decoder: Decoder::default(),
            last_at: self.now,
            broken: false,
            in_flight: 0,
        };
        self.links.conns.insert(gen, conn);
        if let Some(old) = self.links.current.insert((from, to), gen) {
            self.forget_conn(old);
        }
        Some(gen)
    }

    /// A write arrives: its frames are decoded by the connection's decoder
    /// and wait in the receiver's inbox, unless the connection broke.
    pub(super) fn deliver_frames(&mut self, gen: u64, bytes: Bytes) {
        let conn = self.links.conns.get(&gen).expect("in flight");
        let (from, to, to_inc) = (conn.from, conn.to, conn.to_inc);
        let cut = |n: usize| self.slots[n].cut_until > self.now;
        let dead = !self.slots[to].up() || self.slots[to].inc != to_inc || cut(from) || cut(to);
        let conn = self.links.conns.get_mut(&gen).expect("in flight");
        conn.in_flight -= 1;
        if conn.broken || dead {
            if !conn.broken {
                conn.broken = true;
                self.report.link_breaks += 1;
            }
            self.report.link_lost += 1;
            return self.forget_conn(gen);
        }
        let mut rest = &bytes[..];
        let mut msgs = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let frame = &rest[4..4 + len];
            rest = &rest[4 + len..];
            match conn.decoder.read(&self.codec, frame) {
                Ok(m) => msgs.push(m),
                Err((reason, why)) => {
                    conn.broken = true;
                    let name = self.slots[to].name.clone();
                    return self.violation(format!(
                        "{name}: a replica frame was refused ({reason}: {why})"
                    ));
                }
            }
        }
        for (addr, msg, waited) in msgs {
            if self.cfg.trace {
                let kind = crate::runtime::wire::MsgKind::of(&msg);
                self.trace(to, &format!("<= {}: {kind}", self.slots[from].name));
            }
            if let Msg::Accepted { term, version } = &msg {
                self.check_acknowledged(from, *term, *version);
            }
            self.slots[to].peer_inbox.push_back((addr, msg, waited));
        }
        self.forget_conn(gen);
        self.schedule_process(to);
    }

    /// Drops a connection that is no longer written to once nothing of it
    /// is on its way.
    fn forget_conn(&mut self, gen: u64) {
        let Some(conn) = self.links.conns.get(&gen) else {
            return;
        };
        let current = self.links.current.get(&(conn.from, conn.to)) == Some(&gen);
        if conn.in_flight == 0 && (!current || conn.broken) {
            if current {
                self.links.current.remove(&(conn.from, conn.to));
            }
            self.links.conns.remove(&gen);
        }
    }

    /// `node` crashed: what waited in its links' queues is lost.
    pub(super) fn links_crashed(&mut self, node: usize) {
        if let Some(out) = self.links.out.remove(&node) {
            self.report.link_lost += out.queues.values().map(|q| q.len() as u64).sum::<u64>();
        }
    }
}
