//! The simulated world: nodes, a network, a clock and crashes, driven by one
//! seeded RNG through one queue of timed events. Nothing here reads a real
//! clock or touches a socket; the nodes are the runtime's own [`Core`]s.

use super::disk::{Crash, DiskKind, LogDisk, MemDisk, SimDisk};
use super::{SimConfig, SimReport};
use crate::core::{Config as CoreConfig, Core, Event, TimerCmd};
use crate::faults::{Faults, Outgoing};
use crate::history::History;
use crate::promises::{verify, Initial, Seen};
use crate::role::Role;
use crate::storage::{Heard, Store};
use crate::trace::MemTracer;
use crate::wire::{msg_txn, ClusterKey, Codec, Format, MsgKind, Payload};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::client::{Mode, Request};
use twopc_model::{
    Client, Coordinator, Node, Participant, Purchase, RequestId, Resource, State, Storage, Timer,
};

/// The users and their money (dan's runs out early, so purchases compete).
pub const USERS: &[(&str, u64)] = &[
    ("ann", 20_000),
    ("ben", 10_000),
    ("cat", 5_000),
    ("dan", 60),
];
/// The skus and their stock (the pears run out early).
pub const SKUS: &[(&str, u64)] = &[("apple", 4_000), ("pear", 30), ("plum", 10_000)];

const COORDINATOR: usize = 0;
const WALLET: usize = 1;
const ORDER: usize = 2;
const SERVERS: usize = 3;

/// Simulated time in microseconds since the start.
type Micros = u64;

fn us(d: Duration) -> Micros {
    d.as_micros() as Micros
}

/// What happens at an instant.
#[derive(Debug)]
enum Ev {
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
}

/// Where a flush may be cut short by a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CutAt {
    AfterStage,
    /// The power fails in the middle of the sync's writes.
    DuringSync,
    AfterSync,
    BeforeSend(usize),
}

/// What a client slot is doing.
#[derive(Debug)]
struct ClientRun {
    id: u64,
    purchases: Vec<Purchase>,
}

/// One node: its address, its actor, its runtime (when up) and its disk.
struct Slot {
    /// A coordinator's `DIR/heard` (`crate::history`): what it last kept
    /// of the positions heard from participants; survives its crashes.
    heard: Heard,
    name: String,
    addr: SocketAddrV4,
    actor: Node,
    core: Option<Core>,
    store: Option<Box<dyn Store>>,
    disk: Box<dyn SimDisk>,
    /// Bumped at every crash: events of an older incarnation are ignored.
    inc: u64,
    inbox: VecDeque<(SocketAddr, Bytes)>,
    process_at: Option<Micros>,
    wake_at: Option<Micros>,
    /// The timers the actor has set and not cancelled, as the model sees
    /// them (from the batch's timer commands, not from the runtime's own
    /// bookkeeping): a timer may fire only if it is here.
    armed: BTreeSet<Timer>,
    /// Cut off from the network until then.
    cut_until: Micros,
    /// The newest save handed to the store and not yet synced.
    staged: Option<Storage>,
    /// The newest save a completed sync made durable: what a restart must
    /// find (a save staged but never synced may be lost: nothing that
    /// depends on it was sent).
    durable: Option<Storage>,
    /// A save whose sync a power cut interrupted: a restart may find it
    /// instead (its record was written whole before the power failed).
    torn: Option<Storage>,
    client: Option<ClientRun>,
    /// Every step of every incarnation, when the run records traces.
    tracer: Option<MemTracer>,
}

impl Slot {
    fn up(&self) -> bool {
        self.core.is_some()
    }
}

/// Which phase the run is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Faults on, clients buying.
    Chaos,
    /// Every purchase asked; faults off; waiting until nothing is in doubt.
    Settle,
    /// After the final power cut of every node: settle once more.
    Final,
}

/// The world of one run.
pub struct World<'c> {
    cfg: &'c SimConfig,
    rng: StdRng,
    now: Micros,
    base: Instant,
    seq: u64,
    queue: BTreeMap<(Micros, u64), Ev>,
    slots: Vec<Slot>,
    by_addr: HashMap<SocketAddr, usize>,
    codec: Codec,
    phase: Phase,
    issued: u64,
    seen: Vec<Seen>,
    report: SimReport,
    /// FNV-1a over every event: two runs of one seed must agree on it.
    digest: u64,
    reported: BTreeSet<String>,
    /// A node refused to start: nothing more can happen.
    halted: bool,
}

impl<'c> World<'c> {
    /// A world for `cfg`, its nodes started.
    pub fn new(cfg: &'c SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let key: [u8; 32] = rng.random();
        let key = ClusterKey::new(&hex::encode(key)).expect("a valid key");
        let addr = |i: usize| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1 + i as u8), 7000);
        let coordinator = Id::from(addr(COORDINATOR));
        let participant = |resource, initial: &[(&str, u64)]| {
            Node::Participant(Participant {
                resource,
                coordinators: vec![coordinator],
                initial: initial.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            })
        };
        let servers = [
            (
                "coordinator",
                Node::Coordinator(Coordinator {
                    wallet: Id::from(addr(WALLET)),
                    order: Id::from(addr(ORDER)),
                    retention: cfg.retention,
                }),
            ),
            ("wallet", participant(Resource::Wallet, USERS)),
            ("order", participant(Resource::Order, SKUS)),
        ];
        let mut slots = Vec::new();
        let roles = [Role::Coordinator, Role::Wallet, Role::Order];
        for (i, (name, actor)) in servers.into_iter().enumerate() {
            let disk: Box<dyn SimDisk> = match cfg.disk {
                DiskKind::Log => Box::new(LogDisk::new(name, roles[i], cfg.mutant)),
                DiskKind::Mem => Box::new(MemDisk::new(cfg.mutant)),
            };
            slots.push(Slot::new(name.to_string(), addr(i), actor, disk));
        }
        for c in 0..cfg.clients {
            let i = SERVERS + c;
            // A placeholder until the slot's first client is chosen.
            let actor = Node::Client(Client {
                coordinators: vec![coordinator],
                id: 0,
                requests: Vec::new(),
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
            for slot in &mut slots[..SERVERS] {
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
        for i in 0..SERVERS {
            world.start(i);
        }
        for c in 0..cfg.clients {
            world.next_client(SERVERS + c);
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

    fn step(&mut self, ev: Ev) {
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
                if slot.process_at.is_none() {
                    let (inc, at) = (slot.inc, self.now + self.rng.random_range(5..50));
                    self.slots[to].process_at = Some(at);
                    self.at(at, Ev::Process { node: to, inc });
                }
            }
            Ev::Process { node, inc } => {
                self.mix(&[2, node as u64]);
                if self.slots[node].inc != inc || !self.slots[node].up() {
                    return;
                }
                self.slots[node].process_at = None;
                let now = self.instant();
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
                if slot.up() && !slot.inbox.is_empty() && slot.process_at.is_none() {
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
                    self.rng.random_range(0..SERVERS)
                } else {
                    SERVERS + self.rng.random_range(0..self.cfg.clients)
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
                let idle_client = node >= SERVERS && self.slots[node].client.is_none();
                if !self.slots[node].up() && !idle_client {
                    self.start(node);
                }
            }
            Ev::Partition => {
                self.mix(&[6]);
                if self.phase != Phase::Chaos {
                    return;
                }
                let victim = self.rng.random_range(0..SERVERS);
                let length = self.rng.random_range(10_000..2_000_000);
                self.slots[victim].cut_until = self.now + length;
                self.report.partitions += 1;
                if self.cfg.trace {
                    self.trace(victim, &format!("cut off for {} ms", length / 1000));
                }
                let at = self.now + self.exp(self.cfg.partition_every);
                self.at(at, Ev::Partition);
            }
        }
    }

    /// Ends a batch at `node` exactly as the shell does — send what may go
    /// at once, stage the save, fsync if told to, send the rest — with a
    /// small chance of a crash at any point in between.
    fn flush(&mut self, node: usize) {
        let now = self.instant();
        let ready = self.slots[node].core.as_mut().expect("up").ready(now);
        // The model fires only timers that are set: one set earlier and not
        // cancelled since, or set in this very batch.
        let set_now: BTreeSet<&Timer> = ready
            .timers
            .iter()
            .filter_map(|c| match c {
                TimerCmd::Set(t, _) => Some(t),
                TimerCmd::Cancel(_) => None,
            })
            .collect();
        for timer in &ready.fired {
            if !self.slots[node].armed.remove(timer) && !set_now.contains(timer) {
                let name = self.slots[node].name.clone();
                self.violation(format!(
                    "{name}: timer {timer:?} fired at {} µs but was not set (cancelled or never set): no model step allows it",
                    self.now
                ));
            }
        }
        for cmd in &ready.timers {
            match cmd {
                TimerCmd::Set(t, _) => self.slots[node].armed.insert(t.clone()),
                TimerCmd::Cancel(t) => self.slots[node].armed.remove(t),
            };
        }
        let cut = self.cut_point(node, ready.sends_after_sync.len());
        for out in ready.sends {
            self.send(node, out);
        }
        if let Some(save) = ready.save {
            self.slots[node].staged = Some(save.clone());
            let store = self.slots[node].store.as_mut().expect("up");
            if let Err(e) = store.stage(save) {
                return self.storage_failed(node, e);
            }
        }
        if cut == Some(CutAt::AfterStage) {
            let kind = self.crash_kind();
            return self.crash_in_flush(node, kind);
        }
        if cut == Some(CutAt::DuringSync) {
            self.slots[node]
                .disk
                .cut_power_during_next_sync(&mut self.rng);
        }
        if ready.sync {
            let store = self.slots[node].store.as_mut().expect("up");
            if let Err(e) = store.sync() {
                if cut == Some(CutAt::DuringSync) {
                    self.slots[node].torn = self.slots[node].staged.take();
                    return self.crash_in_flush(node, Crash::PowerCut);
                }
                return self.storage_failed(node, e);
            }
            if let Some(saved) = self.slots[node].staged.take() {
                self.slots[node].durable = Some(saved);
            }
            let position = self.slots[node].store.as_ref().expect("up").position();
            let core = self.slots[node].core.as_mut().expect("up");
            core.synced(now);
            core.durable_position(position);
        }
        match cut {
            Some(CutAt::DuringSync) => return self.crash_in_flush(node, Crash::PowerCut),
            Some(CutAt::AfterSync) => {
                let kind = self.crash_kind();
                return self.crash_in_flush(node, kind);
            }
            _ => {}
        }
        for (k, out) in ready.sends_after_sync.into_iter().enumerate() {
            if cut == Some(CutAt::BeforeSend(k)) {
                let kind = self.crash_kind();
                return self.crash_in_flush(node, kind);
            }
            self.send(node, out);
        }
        self.after_batch(node);
    }

    /// Whether (and where) this flush is cut short by a crash.
    fn cut_point(&mut self, node: usize, sends: usize) -> Option<CutAt> {
        if self.phase != Phase::Chaos
            || node >= SERVERS
            || !self.rng.random_bool(self.cfg.crash_in_flush)
        {
            return None;
        }
        Some(match self.rng.random_range(0..sends + 3) {
            0 => CutAt::AfterStage,
            1 => CutAt::DuringSync,
            2 => CutAt::AfterSync,
            k => CutAt::BeforeSend(k - 3),
        })
    }

    fn crash_in_flush(&mut self, node: usize, kind: Crash) {
        self.report.crashes_in_flush += 1;
        self.crash(node, kind);
    }

    fn storage_failed(&mut self, node: usize, e: crate::error::Error) {
        let name = self.slots[node].name.clone();
        self.violation(format!("{name}: storage failed: {e}"));
        self.crash(node, Crash::Kill);
    }

    /// After a batch: arm the wake-up, check what can be checked at once,
    /// and let a client slot move on.
    fn after_batch(&mut self, node: usize) {
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
        if node >= SERVERS {
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
    fn check_atomic(&mut self) {
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

    /// A client finished its purchases: note what it saw.
    fn record_client(&mut self, node: usize, seen: &[twopc_model::Outcome]) {
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
    fn next_client(&mut self, node: usize) {
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
            coordinators: vec![Id::from(self.slots[COORDINATOR].addr)],
            id,
            requests: purchases
                .iter()
                .map(|purchase| Request {
                    // A fresh id per purchase, as `twopc purchase` makes.
                    req: RequestId::new(format!("sim-{:016x}", self.rng.random::<u64>())),
                    purchase: purchase.clone(),
                    mode: Mode::New,
                })
                .collect(),
        });
        self.slots[node].client = Some(ClientRun { id, purchases });
        self.slots[node].disk = Box::new(MemDisk::new(None));
        self.slots[node].durable = None;
        self.slots[node].torn = None;
        self.start(node);
    }

    fn random_purchase(&mut self) -> Purchase {
        let (user, _) = USERS[self.rng.random_range(0..USERS.len())];
        let (sku, _) = SKUS[self.rng.random_range(0..SKUS.len())];
        Purchase {
            user: user.into(),
            sku: sku.into(),
            qty: self.rng.random_range(1..=3),
            price: self.rng.random_range(1..=9),
        }
    }

    /// Starts `node` from its disk.
    fn start(&mut self, node: usize) {
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
        let mut core = Core::new(slot.actor.clone(), Id::from(slot.addr), &cfg);
        if let Some(tracer) = &slot.tracer {
            core.set_tracer(Box::new(tracer.clone()));
        }
        core.set_history(history);
        core.durable_position(store.position());
        let slot = &mut self.slots[node];
        core.handle(now, Event::Start(stored));
        slot.core = Some(core);
        slot.store = Some(store);
        slot.armed.clear();
        slot.wake_at = None;
        slot.process_at = None;
        if node < SERVERS {
            self.report.starts += 1;
        }
        if self.cfg.trace {
            self.trace(node, "start");
        }
        self.flush(node);
    }

    /// Ends `node`'s incarnation; it restarts after a while.
    fn crash(&mut self, node: usize, kind: Crash) {
        let slot = &mut self.slots[node];
        slot.core = None;
        slot.store = None;
        slot.staged = None;
        slot.inbox.clear();
        slot.inc += 1;
        slot.disk.crash(kind, &mut self.rng);
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

    fn crash_kind(&mut self) -> Crash {
        if self.rng.random_bool(self.cfg.power_cut_share) {
            Crash::PowerCut
        } else {
            Crash::Kill
        }
    }

    /// Every purchase has been asked for: faults off, everyone back up.
    fn settle(&mut self) {
        self.phase = Phase::Settle;
        self.report.chaos_time = Duration::from_micros(self.now);
        for slot in &mut self.slots {
            slot.cut_until = 0;
        }
        // Down nodes have a restart queued already.
    }

    /// Once settled: every node loses power at once and starts again; what
    /// was acknowledged must still be there, and the run settles again.
    fn final_power_cut(&mut self) {
        self.phase = Phase::Final;
        for node in 0..SERVERS {
            if self.slots[node].up() {
                self.crash(node, Crash::PowerCut);
            }
        }
    }

    /// Nothing in doubt: every client slot idle, every server up, no
    /// coordinator attempt or unacknowledged commit, no hold, nothing in
    /// flight.
    fn quiescent(&self) -> bool {
        if self.slots.iter().any(|s| s.client.is_some()) {
            return false;
        }
        self.slots[..SERVERS].iter().all(|s| {
            s.inbox.is_empty()
                && match s.core.as_ref().map(Core::state) {
                    Some(State::Coordinator(c)) => c.voting.is_empty() && c.commits.is_empty(),
                    Some(State::Participant(p)) => p.data.holds.is_empty(),
                    _ => false,
                }
        })
    }

    /// Judges the run by the promises (`crate::promises`).
    fn judge(&mut self) {
        // Clients still running never got (all) their outcomes.
        for node in SERVERS..self.slots.len() {
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
        let commits = match storage(&self.slots[COORDINATOR]) {
            Some(Storage::Coordinator(c)) => c.commits.len(),
            _ => return self.violation("the coordinator is down at the end".into()),
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

    /// A datagram leaves `from`: lost, duplicated, delayed or cut off.
    fn send(&mut self, from: usize, out: Outgoing) {
        debug_assert!(out.peer.is_none(), "the simulated cluster has no replicas");
        self.report.datagrams += 1;
        let Some(&to) = self.by_addr.get(&out.to) else {
            self.report.dropped += 1;
            return;
        };
        if self.cfg.trace {
            self.trace_out(from, to, &out.bytes);
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
                    bytes: out.bytes.clone(),
                },
            );
        }
    }

    fn violation(&mut self, what: String) {
        // The same broken promise is seen again at every later instant.
        if !self.reported.insert(what.clone()) {
            return;
        }
        if self.cfg.trace {
            println!("{:>12} VIOLATION {what}", self.now);
        }
        self.report.violations.push(what);
    }

    fn at(&mut self, t: Micros, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    /// An exponentially distributed wait with the given mean.
    fn exp(&mut self, mean: Duration) -> Micros {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        (-u.ln() * us(mean) as f64) as Micros + 1
    }

    fn mix(&mut self, words: &[u64]) {
        for w in std::iter::once(self.now).chain(words.iter().copied()) {
            self.mix_bytes(&w.to_le_bytes());
        }
    }

    fn mix_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.digest ^= u64::from(*b);
            self.digest = self.digest.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn trace(&self, node: usize, what: &str) {
        println!("{:>12} {} {what}", self.now, self.slots[node].name);
    }

    fn describe(&self, bytes: &[u8]) -> String {
        match self.codec.decode(bytes) {
            Ok(Payload::Protocol(msg)) => match msg_txn(&msg) {
                Some(txn) => format!("{} {txn}", MsgKind::of(&msg)),
                None => format!("{}", MsgKind::of(&msg)),
            },
            Ok(_) => "admin".into(),
            Err(e) => format!("undecodable ({e})"),
        }
    }

    fn trace_in(&self, node: usize, from: SocketAddr, bytes: &[u8]) {
        let from = self
            .by_addr
            .get(&from)
            .map_or("?", |&i| &self.slots[i].name);
        self.trace(node, &format!("<- {from}: {}", self.describe(bytes)));
    }

    fn trace_out(&self, node: usize, to: usize, bytes: &[u8]) {
        let to = &self.slots[to].name;
        self.trace(node, &format!("-> {to}: {}", self.describe(bytes)));
    }
}

impl Slot {
    fn new(name: String, addr: SocketAddrV4, actor: Node, disk: Box<dyn SimDisk>) -> Self {
        Slot {
            name,
            addr,
            actor,
            core: None,
            store: None,
            disk,
            inc: 0,
            inbox: VecDeque::new(),
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
