//! The runtime's core, without I/O: events in, a [`Ready`] out.
//!
//! One [`Core`] owns one actor — a `twopc_model::Node`, the very code the
//! model checker explores — and its state. The shell (`shell.rs`) reads the
//! socket and the clock and feeds [`Event`]s in; the core decodes datagrams
//! ([`crate::runtime::wire`]), calls `on_start`/`on_msg`/`on_timeout` exactly as the
//! checker does, and interprets every `Command` they emit. It touches no
//! socket, file or clock (the time comes with each call), so its tests feed
//! events and assert the exact [`Ready`] out (see `tests.rs` beside this file).
//!
//! ## A datagram's way through
//!
//! [`Event::Datagram`] → `Core::on_datagram`: counted, checked against
//! [`MAX_DATAGRAM`], decoded by the [`Codec`] (a failure is a rejection:
//! counted by reason and dropped); a protocol message goes to the actor
//! (`on_msg`), a status request to `Core::on_status`. The actor's commands
//! go through `Core::apply`: `Save` becomes `Ready::save` (replacing an
//! earlier save of the batch), `Send` is encoded and queued, timers are
//! set here. At the end of the batch the shell calls [`Core::ready`] and
//! hands the [`Ready`] to [`ready::run`]: send what may go, stage the
//! save, fsync if told to, send the rest.
//!
//! A coordinator replica's messages to the other replicas (`Campaign`,
//! `Promise`, `Accept`, `Accepted`, `Nack`) travel over TCP links instead
//! (`replication.rs`): they come in as [`Event::Peer`], already decoded, and
//! go out as an [`Outgoing`] carrying the message itself, in the same
//! batch, behind the same fsync and through the same injected faults as a
//! datagram. When a replica's timer fires is decided in
//! `Core::pace_replica`.
//!
//! ## Persist before send
//!
//! When a batch's messages may leave, relative to its save and fsync, is
//! decided in [`Core::ready`] (`batch.rs`, whose doc gives the rule and
//! its one exception, a leader's `Accept`); the order in which the
//! shell or the simulator then carries the batch out is [`Ready::commands`],
//! run by [`ready::run`] (`ready.rs`).

mod batch;
mod doubts;
pub mod drops;
mod inbound;
pub mod inject;
mod journal;
mod keys;
mod outbound;
mod outgoing;
pub mod peers;
pub mod ready;
mod reports;
mod status;
mod timers;
mod traced;
mod waited;

#[cfg(test)]
mod bookkeeping_tests;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod ready_tests;
#[cfg(test)]
mod replica_fixtures;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod silent_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod waited_tests;

use drops::DropLog;
pub use outgoing::Outgoing;
pub use peers::Members;
use peers::Peers;
pub use ready::{Effects, Point, Ready};
use timers::{pick, Timers};

use crate::runtime::admin::Counters;
use crate::runtime::faults::Faults;
use crate::runtime::history::History;
use crate::runtime::mutant::RuntimeMutant;
use crate::runtime::storage::{Heard, StoreStats};
use crate::runtime::timeline::{Label, Step, Timeline};
use crate::runtime::trace::Tracer;
use crate::runtime::wire::{msg_txn, Codec, MsgKind, Payload, Reject, MAX_DATAGRAM};
use inject::Injector;
use rand::rngs::StdRng;
use rand::SeedableRng;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::trace::{self, Record};
use twopc_model::{Msg, Node, State, Storage, Timer};

/// What the log of drops is rate-limited by: the reason, and the sender
/// when it is a node of the cluster file.
type DropKey = (&'static str, Option<SocketAddrV4>);

/// How long a coordinator may hold participants' `Ack`s waiting for a batch
/// that saves (see [`Core::ready`]).
pub const ACK_DELAY: Duration = Duration::from_millis(5);

/// How a runtime behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node's name (logs and status).
    pub name: String,
    /// Wire format and key.
    pub codec: Codec,
    /// Injected faults (testing aids, off by default).
    pub faults: Faults,
    /// Most datagrams handled per fsync (read by the shell).
    pub batch_max: usize,
}

/// What the shell feeds the core.
#[derive(Debug)]
pub enum Event<'a> {
    /// The node starts from its last durable state (`None`: never saved).
    Start(Option<Storage>),
    /// A datagram arrived.
    Datagram {
        /// Its source address.
        from: SocketAddr,
        /// Its bytes, as received.
        bytes: &'a [u8],
    },
    /// Every timer whose deadline is at or before the time given fires.
    TimerDue,
    /// `twopc status` asked for this node's view (decoded from a datagram).
    StatusAsk {
        /// Where to answer.
        from: SocketAddr,
        /// Echoed in the answer.
        nonce: u64,
    },
    /// Datagrams held back by an injected fault whose time has come leave.
    HeldBackDue,
    /// A peer replica's message, decoded and authenticated by the TCP link
    /// (`replication.rs`).
    Peer {
        /// The sending replica (its UDP address: its `Id`).
        from: SocketAddrV4,
        /// The message.
        msg: Msg,
        /// The durable writes it waited for along its causal chain
        /// (`waited.rs`), as its frame said.
        waited: u8,
    },
}

/// A timer command as the actor emitted it (already applied to the core's
/// deadlines; listed for tests and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerCmd {
    /// Set (or reset) to fire after a duration in the range.
    Set(Timer, Range<Duration>),
    /// Cancelled.
    Cancel(Timer),
}

/// One actor, its state, its timers and its counters.
#[derive(Debug)]
pub struct Core {
    actor: Node,
    id: Id,
    name: String,
    codec: Codec,
    state: Option<State>,
    timers: Timers,
    /// Picks timer durations (seeded by `Faults::seed` when given).
    rng: StdRng,
    mutant: Option<RuntimeMutant>,
    injector: Injector,
    counters: Counters,
    /// The batch in progress.
    ready: Ready,
    /// Datagrams queued by this batch, held back until `ready`.
    queued: Vec<Outgoing>,
    /// Saves handed out by an earlier batch that sent nothing, not durable yet.
    unsynced: bool,
    /// Where steps are recorded (`None`, the default: nothing is built).
    trace: Option<Trace>,
    /// When each step happened (`None`, the default: one branch per step;
    /// `crate::runtime::timeline`).
    timeline: Option<Box<Timeline>>,
    /// Coordinator, when measured (`--http` metrics): when each attempt
    /// still collecting votes sent its prepares. Bounded by the attempts in
    /// flight: every attempt is decided (commit, no vote or vote timeout).
    started: Option<std::collections::HashMap<twopc_model::TxnId, Instant>>,
    /// Decision latencies measured since the shell last took them.
    latencies: Vec<Duration>,
    /// A replica's `Ack`s not delivered yet, and when they must be (see
    /// [`Core::ready`]).
    acks_held: Vec<(SocketAddrV4, Msg, u8)>,
    acks_due: Option<Instant>,
    /// The durable writes waited for by the input of the step running now
    /// (0 outside a message's step), and, for a leader's latest versions,
    /// what its own acceptance of each waited for once durable (`waited.rs`).
    step_waited: u8,
    own_accepted_waited: std::collections::VecDeque<(u64, u8)>,
    /// A replica: the count of the latest input about each transaction or
    /// request, and, in a step handling an `Accepted`, the replication
    /// round's own durable writes (`waited.rs`).
    about_waited: std::collections::HashMap<waited::About, u8>,
    round_waited: Option<u8>,
    /// Whether this node's fsync is a durable write (not a client's
    /// memory store): only then does waiting for it count.
    writes_durably: bool,
    /// A client: the durable writes each outcome it took waited for, in
    /// the order of its `seen` (`waited.rs`).
    seen_waited: Vec<u8>,
    /// A coordinator or a leader: the attempts a step decided (a vote or
    /// a vote timer ended their collecting) whose outcome has not left yet
    /// (`outbound.rs`, `Core::measure`).
    deciding: std::collections::HashSet<twopc_model::TxnId>,
    /// Where in `queued` this batch's decided outcomes are, and the
    /// decided outcomes by the durable writes each waited for as it left
    /// (`waited.rs`; `twopc status`, `/metrics`).
    decisions_queued: Vec<usize>,
    outcome_waited: std::collections::BTreeMap<u8, u64>,
    /// The last protocol message encoded, its history stamp and its
    /// datagram, so that the copies of a broadcast are encoded
    /// (serialized, MAC'd) once.
    encoded: Option<(Msg, Option<u64>, u8, bytes::Bytes)>,
    /// This node's part in the rollback check (`crate::runtime::history`).
    history: History,
    /// The other nodes of the cluster file, as this one sees them.
    peers: Peers,
    /// Rate-limits the log lines of what is dropped.
    drop_log: DropLog<DropKey>,
    /// A replica's links' drop counters (`replication.rs`).
    link: Option<std::sync::Arc<drops::LinkStats>>,
    /// Transactions in doubt warned about, operators' decisions (`doubts.rs`).
    desk: doubts::Desk,
    /// A participant's journal, as its store keeps it (`journal.rs`).
    journal: Option<crate::runtime::storage::SharedJournal>,
}

/// A tracer and the number of the last step it recorded.
struct Trace {
    tracer: Box<dyn Tracer>,
    seq: u64,
    /// The last step recorded durable.
    durable: u64,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trace {{ seq: {} }}", self.seq)
    }
}

impl Core {
    /// The core of `actor`, known to peers as `id`. Nothing happens before
    /// [`Event::Start`].
    pub fn new(actor: Node, id: Id, cfg: &Config) -> Self {
        Core {
            actor,
            id,
            name: cfg.name.clone(),
            codec: cfg.codec.clone(),
            state: None,
            timers: Timers::default(),
            // Its own stream, apart from the fault injector's.
            rng: match cfg.faults.seed {
                Some(seed) => StdRng::seed_from_u64(seed ^ 0x7143_5eed),
                None => StdRng::from_rng(&mut rand::rng()),
            },
            mutant: cfg.faults.mutant,
            injector: Injector::new(cfg.faults.clone()),
            counters: Counters::default(),
            ready: Ready::default(),
            queued: Vec::new(),
            unsynced: false,
            trace: None,
            timeline: None,
            started: None,
            latencies: Vec::new(),
            acks_held: Vec::new(),
            acks_due: None,
            step_waited: 0,
            own_accepted_waited: Default::default(),
            about_waited: Default::default(),
            round_waited: None,
            writes_durably: true,
            seen_waited: Vec::new(),
            deciding: Default::default(),
            decisions_queued: Vec::new(),
            outcome_waited: Default::default(),
            encoded: None,
            history: History::Off,
            peers: Peers::default(),
            drop_log: DropLog::default(),
            link: None,
            desk: doubts::Desk::default(),
            journal: None,
        }
    }

    /// Takes part in the rollback check (`crate::runtime::history`); set before
    /// [`Event::Start`].
    pub fn set_history(&mut self, history: History) {
        self.history = history;
    }

    /// Tells the core the nodes of its cluster file (`node::start` does):
    /// from then on a message only a node of the cluster sends, from an
    /// address not in it, is dropped as `unknown_sender`, and `status`
    /// shows when each node was last heard from (see `peers.rs`).
    pub fn know(&mut self, members: Members) {
        self.peers = Peers::new(members);
    }

    /// A replica's links count what they drop in `stats`; `status` shows it.
    pub fn attach_link(&mut self, stats: std::sync::Arc<drops::LinkStats>) {
        self.link = Some(stats);
    }

    /// Handles one event at time `now`; its outputs join the batch.
    pub fn handle(&mut self, now: Instant, event: Event<'_>) {
        match event {
            Event::Start(stored) => {
                let mut out = Out::new();
                self.state = Some(self.actor.on_start(self.id, &stored, &mut out));
                self.trace_step(
                    now,
                    || trace::Event::Start {
                        storage: stored.as_ref().map(Into::into),
                    },
                    &out,
                );
                self.apply(now, out);
            }
            Event::Datagram { from, bytes } => self.on_datagram(now, from, bytes),
            Event::TimerDue => {
                while let Some(timer) = self.timers.pop_due(now) {
                    self.counters.timers_fired += 1;
                    tracing::debug!(node = %self.name, ?timer, "timer");
                    self.ready.fired.push(timer.clone());
                    let mut out = Out::new();
                    let voting = self.voting(match &timer {
                        Timer::Votes(txn) => Some(txn),
                        _ => None,
                    });
                    let mut state = Cow::Borrowed(self.state());
                    self.actor.on_timeout(self.id, &mut state, &timer, &mut out);
                    if let Cow::Owned(s) = state {
                        self.state = Some(s);
                    }
                    self.note_deciding(voting);
                    self.trace_step(now, || trace::Event::Timer { timer }, &out);
                    self.apply(now, out);
                }
            }
            Event::StatusAsk { from, nonce } => self.on_status(now, from, nonce),
            Event::HeldBackDue => self.ready.sends.extend(self.injector.due(now)),
            Event::Peer { from, msg, waited } => {
                self.counters.peer_msgs_in += 1;
                if !msg.between_replicas() {
                    // The link lets only replica messages through.
                    return self.reject(
                        now,
                        SocketAddr::V4(from),
                        Reject::Undecodable("not a replica message".into()),
                    );
                }
                if self.peers.is_stranger(from, &msg) {
                    // A replica at an address the cluster file does not
                    // name (moved, and only it restarted with a new file):
                    // counted and named, as a datagram from it would be.
                    let kind = MsgKind::of(&msg);
                    return self.reject(now, SocketAddr::V4(from), Reject::UnknownSender(kind));
                }
                self.deliver(now, from, msg, waited)
            }
        }
    }

    /// The actor's state (after [`Event::Start`]).
    pub fn state(&self) -> &State {
        self.state
            .as_ref()
            .expect("the shell starts the core first")
    }

    /// The earliest timer deadline (or held acks' delivery, see `ready`).
    pub fn next_timer(&self) -> Option<Instant> {
        match (self.timers.next(), self.acks_due) {
            (Some(t), Some(a)) => Some(t.min(a)),
            (t, a) => t.or(a),
        }
    }

    /// When the next datagram held back by an injected fault is due.
    pub fn next_held_back(&self) -> Option<Instant> {
        self.injector.next_deadline()
    }
}
