//! Faults injected on purpose — **testing aids, off by default**. There is no
//! `tc netem` on the test machines, so a node can misbehave itself the way
//! the model checker already assumes UDP and disks may:
//!
//! - drop messages of chosen kinds, in or out (`--fault-drop-in/-out`), or
//!   any protocol message with a probability (`--fault-loss`);
//! - send a datagram twice (`--fault-duplicate`), hold it back for a random time
//!   (`--fault-delay`, up to `--fault-delay-max-ms`), or let the next
//!   datagram overtake it (`--fault-reorder`);
//! - record every datagram in and out to a file (`--fault-capture`), so a
//!   test can replay real, authentic traffic later;
//! - fail an fsync (`--fault-fsync-fail-after N`) or run out of disk space
//!   (`--fault-disk-full-after BYTES`); see `storage/faulty.rs`.
//!
//! Random choices come from one RNG per runtime seeded by `--fault-seed`, so
//! the same seed makes the same choices for the same sequence of messages
//! (timing still varies from run to run on a real machine).
//!
//! Every fault acts only *after* persist-before-send has been satisfied: a
//! delayed or duplicated datagram leaves later than it would have, never
//! earlier than the fsync of the `Save` it depends on.

use crate::admin::Counters;
use crate::core::Outgoing;
use crate::wire::MsgKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::Msg;

/// Faults to inject. The default injects nothing.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Kinds dropped when received.
    pub drop_in: Vec<MsgKind>,
    /// Kinds dropped instead of sent.
    pub drop_out: Vec<MsgKind>,
    /// Probability of dropping any protocol message, in or out.
    pub loss: f64,
    /// Probability that a protocol datagram sent is sent a second time (the
    /// copy is itself subject to delay).
    pub duplicate: f64,
    /// Probability that a protocol datagram sent is held back for a random
    /// time in `0..delay_max`.
    pub delay: f64,
    /// Longest injected delay (also how long a reordered datagram waits at
    /// most for another to overtake it).
    pub delay_max: Duration,
    /// Probability that a protocol datagram sent is held back until the next
    /// one has left (the two swap places).
    pub reorder: f64,
    /// Seed of the fault RNG; `None` picks one at random.
    pub seed: Option<u64>,
    /// Append every datagram received and sent to this file, one line each:
    /// `in|out ADDR HEX` (the peer's address and the datagram's bytes).
    pub capture: Option<PathBuf>,
    /// Storage: the first this-many log fsyncs succeed, the next one fails.
    pub fsync_fail_after: Option<u64>,
    /// Storage: writes fail with "no space left on device" once this many
    /// bytes have been appended to the log by this process.
    pub disk_full_after: Option<u64>,
    /// A deliberately broken runtime rule (the simulation's mutants; see
    /// `crate::mutant`). `None` in every deployment.
    pub mutant: Option<crate::mutant::RuntimeMutant>,
}

impl Faults {
    /// Whether any network fault is configured.
    pub fn any_network(&self) -> bool {
        !self.drop_in.is_empty()
            || !self.drop_out.is_empty()
            || self.loss > 0.0
            || self.duplicate > 0.0
            || self.delay > 0.0
            || self.reorder > 0.0
    }
}

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

    fn drops(&mut self, kinds_in: bool, msg: &Msg) -> bool {
        let kinds = if kinds_in {
            &self.faults.drop_in
        } else {
            &self.faults.drop_out
        };
        kinds.contains(&MsgKind::of(msg)) || p(&mut self.rng, self.faults.loss)
    }

    /// Whether to drop `msg` on receipt.
    pub fn drops_in(&mut self, msg: &Msg) -> bool {
        self.drops(true, msg)
    }

    /// Whether to drop `msg` instead of sending it.
    pub fn drops_out(&mut self, msg: &Msg) -> bool {
        self.drops(false, msg)
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

/// The capture file of `--fault-capture`: every datagram in and out, one
/// line each. File I/O, so the shell owns it, not the core.
#[derive(Debug, Default)]
pub struct Capture {
    file: Option<std::fs::File>,
}

impl Capture {
    /// Appends to `path` if given. A file that cannot be opened is logged as
    /// an error and not written (capturing is a testing aid).
    pub fn open(path: Option<&std::path::Path>) -> Self {
        let file = path.and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| tracing::error!("cannot open capture file {}: {e}", path.display()))
                .ok()
        });
        Capture { file }
    }

    /// Records a datagram (`dir` is `in` or `out`). A failed write only
    /// disables capturing (it is a testing aid, never fatal).
    pub fn record(&mut self, dir: &str, peer: SocketAddr, bytes: &[u8]) {
        if let Some(f) = &mut self.file {
            let line = format!("{dir} {peer} {}\n", hex::encode(bytes));
            if f.write_all(line.as_bytes()).is_err() {
                self.file = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(n: u8) -> Outgoing {
        Outgoing::Datagram {
            to: "127.0.0.1:9".parse().unwrap(),
            bytes: bytes::Bytes::from(vec![n]),
        }
    }

    #[tokio::test]
    async fn no_faults_sends_everything_at_once_in_order() {
        let mut inj = Injector::new(Faults::default());
        let mut c = Counters::default();
        for n in 0..50 {
            let sent = inj.route(out(n), &mut c, Instant::now());
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].datagram().unwrap()[0], n);
        }
        assert_eq!(inj.next_deadline(), None);
        assert_eq!(c, Counters::default());
    }

    /// Faults act on protocol messages, datagrams and peer replicas' alike,
    /// never on an operator's reply.
    #[tokio::test]
    async fn faults_apply_to_protocol_messages_not_to_replies() {
        let mut inj = Injector::new(Faults {
            duplicate: 1.0,
            seed: Some(1),
            ..Faults::default()
        });
        let mut c = Counters::default();
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let reply = Outgoing::Reply {
            to,
            bytes: bytes::Bytes::from_static(b"r"),
        };
        let peer = Outgoing::Peer {
            to,
            msg: Box::new(Msg::AskEpoch { epoch: 1 }),
        };
        assert_eq!(
            inj.route(reply.clone(), &mut c, Instant::now()),
            vec![reply]
        );
        assert_eq!(
            inj.route(out(1), &mut c, Instant::now()),
            vec![out(1), out(1)]
        );
        assert_eq!(
            inj.route(peer.clone(), &mut c, Instant::now()),
            vec![peer.clone(), peer]
        );
        assert_eq!(c.fault_duplicated, 2);
    }

    #[tokio::test]
    async fn every_datagram_leaves_exactly_as_often_as_chosen() {
        let faults = Faults {
            duplicate: 0.3,
            delay: 0.3,
            reorder: 0.3,
            delay_max: Duration::from_millis(5),
            seed: Some(7),
            ..Faults::default()
        };
        let mut inj = Injector::new(faults);
        let mut c = Counters::default();
        let mut sent = Vec::new();
        for n in 0..200 {
            sent.extend(
                inj.route(out(n), &mut c, Instant::now())
                    .into_iter()
                    .map(|o| o.datagram().unwrap()[0]),
            );
        }
        // Drain everything held back.
        let deadline = Instant::now() + Duration::from_secs(5);
        while inj.next_deadline().is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
            sent.extend(
                inj.due(Instant::now())
                    .into_iter()
                    .map(|o| o.datagram().unwrap()[0]),
            );
        }
        assert_eq!(inj.next_deadline(), None);
        assert_eq!(sent.len() as u64, 200 + c.fault_duplicated);
        for n in 0..200u8 {
            assert!(sent.contains(&n), "datagram {n} never left");
        }
        assert!(c.fault_duplicated > 0 && c.fault_delayed > 0 && c.fault_reordered > 0);
        // The same seed makes the same choices.
        let mut again = Injector::new(Faults {
            seed: Some(7),
            ..inj.faults.clone()
        });
        let mut c2 = Counters::default();
        for n in 0..200 {
            again.route(out(n), &mut c2, Instant::now());
        }
        assert_eq!(c, c2);
    }
}
