//! The simulated world: nodes, a network, a clock and crashes, driven by one
//! seeded RNG through one queue of timed events. Nothing here reads a real
//! clock or touches a socket; the nodes are the runtime's own [`Core`]s.

use super::disk::{DiskKind, LogDisk, MemDisk, SimDisk};
use super::{SimConfig, SimReport};
use crate::harness::promises::Seen;
use crate::runtime::core::{Core, Event};
use crate::runtime::storage::{Heard, Store};
use crate::runtime::trace::MemTracer;
use crate::runtime::wire::{ClusterKey, Codec, Format};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::{Client, Node, Purchase, Storage, Timer};

/// The users and their money (dan's runs out early, so purchases compete).
pub const USERS: &[(&str, u64)] = &[
    ("ann", 20_000),
    ("ben", 10_000),
    ("cat", 5_000),
    ("dan", 60),
];
/// The skus and their stock (the pears run out early).
pub const SKUS: &[(&str, u64)] = &[("apple", 4_000), ("pear", 30), ("plum", 10_000)];

pub(super) use twopc_model::slots::{COORDINATOR, ORDER, WALLET};

/// Simulated time in microseconds since the start.
pub(super) type Micros = u64;

pub(super) fn us(d: Duration) -> Micros {
    d.as_micros() as Micros
}

/// What happens at an instant.
#[derive(Debug)]
pub(super) enum Ev {
    /// A datagram arrives at `to`.
    Deliver {
        to: usize,
        from: SocketAddr,
        bytes: Bytes,
    },
    /// `node` reads what is waiting and runs one batch.
    Process { node: usize, inc: u64 },
    /// `node`'s earliest timer may be due.
    Wake { node: usize, inc: u64 },
    /// Some node crashes (chaos phase only).
    Chaos,
    /// `node` starts again from its disk.
    Restart { node: usize },
    /// Some server is cut off from everyone for a while.
    Partition,
    /// A write on a link between replicas arrives (`links.rs`).
    Frames { gen: u64, bytes: Bytes },
}

/// What a client slot is doing.
#[derive(Debug)]
pub(super) struct ClientRun {
    pub(super) id: u64,
    pub(super) purchases: Vec<Purchase>,
}

/// One node: its address, its actor, its runtime (when up) and its disk.
pub(super) struct Slot {
    /// A coordinator's `DIR/heard` (`crate::runtime::history`): what it last kept
    /// of the positions heard from participants; survives its crashes.
    pub(super) heard: Heard,
    pub(super) name: String,
    pub(super) addr: SocketAddrV4,
    pub(super) actor: Node,
    pub(super) core: Option<Core>,
    pub(super) store: Option<Box<dyn Store>>,
    pub(super) disk: Box<dyn SimDisk>,
    /// Bumped at every crash: events of an older incarnation are ignored.
    pub(super) inc: u64,
    pub(super) inbox: VecDeque<(SocketAddr, Bytes)>,
    /// Messages from other replicas' links, decoded.
    pub(super) peer_inbox: VecDeque<(SocketAddrV4, twopc_model::Msg, u8)>,
    pub(super) process_at: Option<Micros>,
    pub(super) wake_at: Option<Micros>,
    /// The timers the actor has set and not cancelled, as the model sees
    /// them (from the batch's timer commands, not from the runtime's own
    /// bookkeeping): a timer may fire only if it is here.
    pub(super) armed: BTreeSet<Timer>,
    /// Cut off from the network until then.
    pub(super) cut_until: Micros,
    /// The newest save handed to the store and not yet synced.
    pub(super) staged: Option<Storage>,
    /// The newest save a completed sync made durable: what a restart must
    /// find (a save staged but never synced may be lost: nothing that
    /// depends on it was sent).
    pub(super) durable: Option<Storage>,
    /// A save whose sync a power cut interrupted: a restart may find it
    /// instead (its record was written whole before the power failed).
    pub(super) torn: Option<Storage>,
    pub(super) client: Option<ClientRun>,
    /// Every step of every incarnation, when the run records traces.
    pub(super) tracer: Option<MemTracer>,
}

impl Slot {
    pub(super) fn up(&self) -> bool {
        self.core.is_some()
    }
}

/// Which phase the run is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Faults on, clients buying.
    Chaos,
    /// Every purchase asked; faults off; waiting until nothing is in doubt.
    Settle,
    /// After the final power cut of every node: settle once more.
    Final,
}

/// The world of one run.
pub struct World<'c> {
    pub(super) cfg: &'c SimConfig,
    pub(super) rng: StdRng,
    pub(super) now: Micros,
    pub(super) base: Instant,
    pub(super) seq: u64,
    pub(super) queue: BTreeMap<(Micros, u64), Ev>,
    pub(super) slots: Vec<Slot>,
    /// The coordinator's slot, or its replicas' (`replicas.rs`).
    pub(super) replicas: Vec<usize>,
    /// How many slots are servers (clients follow).
    pub(super) servers: usize,
    /// The replicas' TCP links.
    pub(super) links: super::links::Links,
    /// The terms some replica has led.
    pub(super) terms: BTreeSet<twopc_model::Term>,
    pub(super) by_addr: HashMap<SocketAddr, usize>,
    pub(super) codec: Codec,
    pub(super) phase: Phase,
    pub(super) issued: u64,
    pub(super) seen: Vec<Seen>,
    pub(super) report: SimReport,
    /// FNV-1a over every event: two runs of one seed must agree on it.
    pub(super) digest: u64,
    pub(super) reported: BTreeSet<String>,
    /// A node refused to start: nothing more can happen.
    pub(super) halted: bool,
}

impl<'c> World<'c> {
    /// A world for `cfg`, its nodes started.
    pub fn new(cfg: &'c SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let key: [u8; 32] = rng.random();
        let key = ClusterKey::new(&hex::encode(key)).expect("a valid key");
        let addr = |i: usize| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1 + i as u8), 7000);
        let (servers, replicas) = super::replicas::servers(cfg, addr);
        let coordinators: Vec<Id> = replicas.iter().map(|&i| Id::from(addr(i))).collect();
        let n_servers = servers.len();
        let mut slots = Vec::new();
        for (i, (name, actor, role)) in servers.into_iter().enumerate() {
            let disk: Box<dyn SimDisk> = match cfg.disk {
                DiskKind::Log => Box::new(LogDisk::new(&name, role, cfg.mutant)),
                DiskKind::Mem => Box::new(MemDisk::new(cfg.mutant)),
            };
            slots.push(Slot::new(name, addr(i), actor, disk));
        }
        for c in 0..cfg.clients {
            let i = n_servers + c;
            // A placeholder until the slot's first client is chosen.
            let actor = Node::Client(Client {
                coordinators: coordinators.clone(),
                id: 0,
                requests: Vec::new(),
                keep_ticket: true,
            });
            // A client's outcomes are whole states in memory (`twopc
            // purchase` keeps them in memory too).
            let disk = Box::new(MemDisk::new(None));
            slots.push(Slot::new(format!("client{c}"), addr(i), actor, disk));
        }
        let by_addr = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (SocketAddr::V4(s.addr), i))
            .collect();
        if cfg.traces {
            // Servers only: a client slot runs one client after another
            // at the same address, which is not one node's history.
            let origin = Instant::now();
            for slot in &mut slots[..n_servers] {
                slot.tracer = Some(MemTracer::new(origin));
            }
        }
        let base = slots[0]
            .tracer
            .as_ref()
            .map_or_else(Instant::now, |t| t.origin);
        let mut world = World {
            cfg,
            rng,
            now: 0,
            base,
            seq: 0,
            queue: BTreeMap::new(),
            slots,
            replicas,
            servers: n_servers,
            links: Default::default(),
            terms: BTreeSet::new(),
            by_addr,
            codec: Codec::new(Some(key), Format::Bincode),
            phase: Phase::Chaos,
            issued: 0,
            seen: Vec::new(),
            report: SimReport {
                seed: cfg.seed,
                ..SimReport::default()
            },
            digest: 0xcbf2_9ce4_8422_2325,
            reported: BTreeSet::new(),
            halted: false,
        };
        for i in 0..n_servers {
            world.start(i);
        }
        for c in 0..cfg.clients {
            world.next_client(n_servers + c);
        }
        if !cfg.crash_every.is_zero() {
            let at = world.exp(cfg.crash_every);
            world.at(at, Ev::Chaos);
        }
        if !cfg.partition_every.is_zero() {
            let at = world.exp(cfg.partition_every);
            world.at(at, Ev::Partition);
        }
        world
    }

    /// Each server's name and trace (empty unless `SimConfig::traces`).
    pub fn traces(&self) -> Vec<super::ServerTrace> {
        self.slots
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.tracer.as_ref()?.records())))
            .collect()
    }

    /// Runs to the end and judges the run.
    pub fn run(self) -> SimReport {
        self.run_traced().0
    }

    /// Runs to the end, judges the run, and returns the servers' traces.
    pub fn run_traced(mut self) -> (SimReport, Vec<super::ServerTrace>) {
        let deadline = us(self.cfg.max_time);
        while let Some(((t, _), ev)) = self.queue.pop_first() {
            if t > deadline {
                self.violation(format!(
                    "the run did not settle within {:?} of simulated time ({:?} phase)",
                    self.cfg.max_time, self.phase
                ));
                break;
            }
            self.now = t;
            self.report.events += 1;
            self.step(ev);
            if self.halted {
                break;
            }
            if self.phase != Phase::Chaos && self.quiescent() {
                if self.phase == Phase::Settle {
                    self.final_power_cut();
                } else {
                    break;
                }
            }
        }
        self.judge();
        self.report.sim_time = Duration::from_micros(self.now);
        self.report.digest = self.digest;
        let traces = self.traces();
        (self.report, traces)
    }

    pub(super) fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, from, bytes } => {
                self.mix(&[1, to as u64, bytes.len() as u64]);
                self.mix_bytes(&bytes);
                let slot = &mut self.slots[to];
                if !slot.up() || slot.cut_until > self.now {
                    self.report.dropped += 1;
                    return;
                }
                slot.inbox.push_back((from, bytes));
                self.schedule_process(to);
            }
            Ev::Process { node, inc } => {
                self.mix(&[2, node as u64]);
                if self.slots[node].inc != inc || !self.slots[node].up() {
                    return;
                }
                self.slots[node].process_at = None;
                let now = self.instant();
                // A replica's peer messages first, as the shell takes them
                // when its links wake it.
                for _ in 0..self.cfg.batch_max.max(1) {
                    let Some((from, msg, waited)) = self.slots[node].peer_inbox.pop_front() else {
                        break;
                    };
                    let core = self.slots[node].core.as_mut().expect("up");
                    core.handle(now, Event::Peer { from, msg, waited });
                }
                for _ in 0..self.cfg.batch_max.max(1) {
                    let Some((from, bytes)) = self.slots[node].inbox.pop_front() else {
                        break;
                    };
                    if self.cfg.trace {
                        self.trace_in(node, from, &bytes);
                    }
                    let core = self.slots[node].core.as_mut().expect("up");
                    core.handle(
                        now,
                        Event::Datagram {
                            from,
                            bytes: &bytes,
                        },
                    );
                }
                self.flush(node);
                let slot = &self.slots[node];
                let waiting = !slot.inbox.is_empty() || !slot.peer_inbox.is_empty();
                if slot.up() && waiting && slot.process_at.is_none() {
                    let (inc, at) = (slot.inc, self.now + 5);
                    self.slots[node].process_at = Some(at);
                    self.at(at, Ev::Process { node, inc });
                }
            }
            Ev::Wake { node, inc } => {
                self.mix(&[3, node as u64]);
                if self.slots[node].inc != inc || !self.slots[node].up() {
                    return;
                }
                self.slots[node].wake_at = None;
                let now = self.instant();
                let core = self.slots[node].core.as_mut().expect("up");
                core.handle(now, Event::TimerDue);
                self.flush(node);
            }
            Ev::Chaos => {
                self.mix(&[4]);
                if self.phase != Phase::Chaos {
                    return;
                }
                // Servers mostly; a client now and then.
                let victim = if self.rng.random_bool(0.9) || self.cfg.clients == 0 {
                    // Replicated: the leader a third of the time.
                    match self.leader() {
                        Some(l) if self.rng.random_bool(0.33) => l,
                        _ => self.rng.random_range(0..self.servers),
                    }
                } else {
                    self.servers + self.rng.random_range(0..self.cfg.clients)
                };
                if self.slots[victim].up() {
                    let kind = self.crash_kind();
                    self.crash(victim, kind);
                }
                let at = self.now + self.exp(self.cfg.crash_every);
                self.at(at, Ev::Chaos);
            }
            Ev::Restart { node } => {
                self.mix(&[5, node as u64]);
                let idle_client = node >= self.servers && self.slots[node].client.is_none();
                if !self.slots[node].up() && !idle_client {
                    self.start(node);
                }
            }
            Ev::Partition => {
                self.mix(&[6]);
                if self.phase != Phase::Chaos {
                    return;
                }
                let victim = self.rng.random_range(0..self.servers);
                let length = self.rng.random_range(10_000..2_000_000);
                self.slots[victim].cut_until = self.now + length;
                self.report.partitions += 1;
                if self.cfg.trace {
                    self.trace(victim, &format!("cut off for {} ms", length / 1000));
                }
                let at = self.now + self.exp(self.cfg.partition_every);
                self.at(at, Ev::Partition);
            }
            Ev::Frames { gen, bytes } => {
                self.mix(&[7, gen, bytes.len() as u64]);
                self.mix_bytes(&bytes);
                self.deliver_frames(gen, bytes);
            }
        }
    }

    /// `node` reads what waits for it shortly.
    pub(super) fn schedule_process(&mut self, node: usize) {
        let slot = &self.slots[node];
        if slot.process_at.is_none() {
            let (inc, at) = (slot.inc, self.now + self.rng.random_range(5..50));
            self.slots[node].process_at = Some(at);
            self.at(at, Ev::Process { node, inc });
        }
    }

    pub(super) fn at(&mut self, t: Micros, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    pub(super) fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    /// An exponentially distributed wait with the given mean.
    pub(super) fn exp(&mut self, mean: Duration) -> Micros {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        (-u.ln() * us(mean) as f64) as Micros + 1
    }
}

impl Slot {
    pub(super) fn new(
        name: String,
        addr: SocketAddrV4,
        actor: Node,
        disk: Box<dyn SimDisk>,
    ) -> Self {
        Slot {
            name,
            addr,
            actor,
            core: None,
            store: None,
            disk,
            inc: 0,
            inbox: VecDeque::new(),
            peer_inbox: VecDeque::new(),
            process_at: None,
            wake_at: None,
            armed: BTreeSet::new(),
            cut_until: 0,
            staged: None,
            durable: None,
            torn: None,
            client: None,
            tracer: None,
            heard: Heard::default(),
        }
    }
}
