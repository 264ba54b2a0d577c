//! The runtime's core, without I/O: events in, a [`Ready`] out.
//!
//! One [`Core`] owns one actor — a `twopc_model::Node`, the very code the
//! model checker explores — and its state. The shell (`shell.rs`) reads the
//! socket and the clock and feeds [`Event`]s in; the core decodes datagrams
//! ([`crate::wire`]), calls `on_start`/`on_msg`/`on_timeout` exactly as the
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
//! set here. At the end of the batch the shell calls [`Core::ready`],
//! stages the save, fsyncs if told to, and sends.
//!
//! A coordinator replica's messages to the other replicas (`Campaign`,
//! `Promise`, `Accept`, `Accepted`, `Nack`) travel over TCP links instead
//! (`replication.rs`): they come in as [`Event::Peer`], already decoded, and
//! go out as an [`Outgoing`] carrying the message itself, in the same
//! batch, behind the same fsync and through the same injected faults as a
//! datagram. When a replica's timer fires is decided in
//! `Core::pace_replica`.
//!
//! ## Persist before send, with group commit
//!
//! A *batch* is every event the shell feeds between two calls of
//! [`Core::ready`]: the event that woke it plus every datagram already
//! waiting (up to `batch_max`). Commands run in the order the actor emitted
//! them; no datagram queued in a batch leaves before the end of the batch,
//! and [`Core::ready`] is **the one place the rule is decided**: if the batch
//! queued anything to send and any save — of this batch or of an earlier
//! batch that sent nothing — is not durable yet, `Ready::sync` is set and the
//! shell must make every staged save durable before any of
//! `Ready::sends_after_sync` leaves. So a `Send` never leaves before a `Save`
//! emitted before it (by the same handler or an earlier one, whose state it
//! may reveal) is on disk, and a whole batch shares one fsync. There is one
//! exception, a leading replica's `Accept` (below).
//!
//! A batch that sends nothing leaves its saves staged (the coordinator
//! forgetting an acknowledged commit, a participant recording an abort):
//! nothing anyone saw depends on them, so losing them in a crash is the same
//! as crashing before the batch, which the model checks. The next batch that
//! sends anything, or shutdown, makes them durable first.
//!
//! ## The one exception: a leader's `Accept` leaves before its own fsync
//!
//! A leading replica turns each save of its coordinator into a version of
//! the replicated register: it accepts the version itself (the save) and
//! sends `Accept` to the other replicas; what the coordinator sent after
//! that save is held (in the model's `Leading::held`) until a majority has
//! accepted. [`Core::ready`] puts those `Accept`s in `Ready::sends`, which
//! leave *before* the batch's fsync, so the leader's fsync and the
//! backups' run at the same time instead of one after the other. Every
//! other message still waits for the fsync. Why that is safe:
//!
//! - In Paxos the proposer and the acceptor are separate roles, and an
//!   acceptor must make its acceptance durable only before it *reports* it.
//!   The `Accept` reports nothing about the leader's disk: it is the
//!   proposer's request, and a backup that accepts it makes its own
//!   acceptance durable before answering `Accepted` (that answer still
//!   waits for the backup's fsync).
//! - The leader reports its own acceptance to nobody: it only counts in its
//!   volatile ack table (`Leading::acks`), and counts there only for a
//!   version that F other replicas of 2F+1 have also accepted. Their
//!   acceptances arrive as `Accepted`s, each an answer to an `Accept` that
//!   has left; this batch's `Accept`s leave in this batch's flush, so every
//!   `Accepted` the leader handles in a batch answers an `Accept` of an
//!   *earlier* batch. The shell handles a batch only after the previous
//!   flush returned, and a batch that queued an `Accept` always has `sync`
//!   set when anything is staged (it queued a message), so the earlier
//!   batch's save, the leader's acceptance of that version, is on disk
//!   before anything is released because of it. Within one batch the leader's own ack can
//!   complete no quorum (checked against `Replica::absorb` and `release`:
//!   the ack of a version just written is the only one at that version, and
//!   a backup's `Accepted` always names a version of the same term it has
//!   already received). A one-replica group (quorum one; the model allows
//!   it, `cluster.rs` refuses fewer than three) releases in the same step as
//!   the save; those outputs follow the save in the batch and wait for the
//!   fsync like any other send.
//! - If the leader dies before its fsync, the backups may hold version `v`
//!   while its disk holds `v - 1`: the state of a Paxos run in which the
//!   leader's acceptor had not yet taken its own proposal when the leader
//!   crashed. Nothing that depends on `v` was released (that needed a later
//!   batch), so whichever of `v - 1` or `v` the next leader adopts, no one
//!   saw anything the adopted state contradicts. (A first leader that dies
//!   before its very first fsync restarts with nothing and leads the first
//!   term again: it writes the same version 1, `Coordinator::on_start` from
//!   nothing being deterministic.)
//! - Only `Accept` moves. A heartbeat's `Accept` carries the leader's latest
//!   accepted state of its own term, the same request again. `Accepted`,
//!   `Promise` and `Nack` report the sender's acceptor state, `Campaign`
//!   follows the candidate's own promise, and datagrams to participants and
//!   clients may reveal any save: all of them wait for the fsync.
//!
//! The model checker does not explore this split: in the model the leader's
//! save and its `Accept`s are one step. The argument above is why it needs
//! not to; the replica tests beside this file pin the split itself
//! (`replica_tests.rs`).

mod doubts;
pub mod drops;
mod inbound;
mod outbound;
pub mod peers;
mod status;
mod timers;
mod traced;

#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod silent_tests;
#[cfg(test)]
mod tests;

use drops::DropLog;
pub use peers::Members;
use peers::Peers;
use timers::{pick, Timers};

use crate::admin::Counters;
use crate::faults::{Faults, Injector, Outgoing};
use crate::history::History;
use crate::mutant::RuntimeMutant;
use crate::storage::{Heard, StoreStats};
use crate::trace::Tracer;
use crate::wire::{msg_txn, Codec, MsgKind, Payload, Reject, MAX_DATAGRAM};
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

/// How long a replica may hold participants' `Ack`s waiting for a batch
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
    },
}

/// Whether `out` may leave before the fsync of its batch: only a leader's
/// `Accept` to another replica (only a leader sends `Accept`). See
/// [`Core::ready`] for why this keeps a leader's decisions safe, and why
/// nothing else moves: an `Accepted`, a `Promise` or a `Nack` reports what
/// its sender promised or accepted, and every datagram to a participant or
/// a client may reveal a save.
fn leaves_before_sync(out: &Outgoing) -> bool {
    out.peer.as_deref().is_some_and(Msg::may_leave_before_sync)
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

/// What one batch asks the shell to do, in this order: send `sends`; stage
/// `save`; if `sync`, make everything staged durable (fsync); then send
/// `sends_after_sync`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Messages that may leave at once: datagrams held back by an injected
    /// fault after the saves they depend on were already durable, and a
    /// leading replica's `Accept`s (see "the one exception" in this
    /// module's doc).
    pub sends: Vec<Outgoing>,
    /// The durable state to stage: the newest `Save` of the batch. Each is the actor's whole
    /// durable state, so it includes every earlier one, and nothing of the
    /// batch is sent before it is durable. Keeping one rather than one per
    /// message keeps a batch's memory at one copy of the state (a batch of
    /// 64 prepares at a participant with a long history held 64 copies).
    pub save: Option<Storage>,
    /// Whether everything staged must be durable before `sends_after_sync`
    /// leave: persist before send.
    pub sync: bool,
    /// Datagrams that may leave only once every save staged so far is
    /// durable, in the order the actor emitted them.
    pub sends_after_sync: Vec<Outgoing>,
    /// The timer commands of the batch, in emitted order.
    pub timers: Vec<TimerCmd>,
    /// The timers that fired in the batch, in order (the simulation checks
    /// each was set and not cancelled, as the model requires).
    pub fired: Vec<Timer>,
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
    /// Coordinator, when measured (`--http` metrics): when each attempt
    /// still collecting votes sent its prepares. Bounded by the attempts in
    /// flight: every attempt is decided (commit, no vote or vote timeout).
    started: Option<std::collections::HashMap<twopc_model::TxnId, Instant>>,
    /// Decision latencies measured since the shell last took them.
    latencies: Vec<Duration>,
    /// A replica's `Ack`s not delivered yet, and when they must be (see
    /// [`Core::ready`]).
    acks_held: Vec<(SocketAddrV4, Msg)>,
    acks_due: Option<Instant>,
    /// The last protocol message encoded, its history stamp and its
    /// datagram, so that the copies of a broadcast are encoded
    /// (serialized, MAC'd) once.
    encoded: Option<(Msg, Option<u64>, bytes::Bytes)>,
    /// This node's part in the rollback check (`crate::history`).
    history: History,
    /// The other nodes of the cluster file, as this one sees them.
    peers: Peers,
    /// Rate-limits the log lines of what is dropped.
    drop_log: DropLog<DropKey>,
    /// A replica's links' drop counters (`replication.rs`).
    link: Option<std::sync::Arc<drops::LinkStats>>,
    /// Transactions in doubt warned about, operators' decisions (`doubts.rs`).
    desk: doubts::Desk,
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
            started: None,
            latencies: Vec::new(),
            acks_held: Vec::new(),
            acks_due: None,
            encoded: None,
            history: History::Off,
            peers: Peers::default(),
            drop_log: DropLog::default(),
            link: None,
            desk: doubts::Desk::default(),
        }
    }

    /// Takes part in the rollback check (`crate::history`); set before
    /// [`Event::Start`].
    pub fn set_history(&mut self, history: History) {
        self.history = history;
    }

    /// The shell reports the store's durable history position (after it
    /// opened and after every sync).
    pub fn durable_position(&mut self, position: Option<u64>) {
        self.history.durable(position);
    }

    /// A coordinator's positions heard from participants, when they are due
    /// to be written to `DIR/heard` (see [`History::to_keep`]).
    pub fn heard_to_keep(&mut self, now: Instant, at_shutdown: bool) -> Option<Heard> {
        self.history.to_keep(now, at_shutdown)
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

    /// Measures, from now on, how long each purchase takes from its
    /// prepares to its decision (a coordinator's; see [`Core::take_latencies`]).
    pub fn measure_latency(&mut self) {
        self.started.get_or_insert_with(Default::default);
    }

    /// The decision latencies measured since the last call (empty unless
    /// [`Core::measure_latency`] was called).
    pub fn take_latencies(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.latencies)
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
                    let mut state = Cow::Borrowed(self.state());
                    self.actor.on_timeout(self.id, &mut state, &timer, &mut out);
                    if let Cow::Owned(s) = state {
                        self.state = Some(s);
                    }
                    self.trace_step(now, || trace::Event::Timer { timer }, &out);
                    self.apply(now, out);
                }
            }
            Event::StatusAsk { from, nonce } => self.on_status(now, from, nonce),
            Event::HeldBackDue => self.ready.sends.extend(self.injector.due(now)),
            Event::Peer { from, msg } => {
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
                self.deliver(now, from, msg)
            }
        }
    }

    /// Ends the batch: what to stage, whether to fsync, what to send.
    ///
    /// **Persist before send is decided here**: `sync` is set when the batch
    /// queued a datagram while any save (this batch's or an earlier one's)
    /// is not durable; the shell fsyncs before it sends `sends_after_sync`.
    /// A leader's `Accept`s go in `sends`, ahead of the fsync, and still
    /// count as queued, so the batch that sends them fsyncs before the
    /// shell runs the next one (why that is safe: this module's doc).
    ///
    /// A replica delivers participants' `Ack`s here, after every other
    /// message of the batch, and only in a batch that saved or once they
    /// have waited [`ACK_DELAY`]. The ack that completes a commit makes
    /// the leader forget it: a save, which costs a whole `Accept` round (an
    /// fsync at the leader, then at a backup), and the leader holds every
    /// later send until its latest save is chosen. Delivered at once, the
    /// acks of the last purchase would hold the next purchase's ticket and
    /// prepares, which do not depend on the forgetting, behind that round,
    /// and its fsyncs would compete for the disk with the participants'.
    /// Delivered with a batch that saves anyway (the next decision), the
    /// forgetting rides on that batch's fsync and `Accept`. Delaying or
    /// reordering a message is something the network may do (the model's
    /// network is unordered); a participant re-sends nothing before the
    /// coordinator's `Resend` timer (hundreds of ms), far above the delay.
    pub fn ready(&mut self, now: Instant) -> Ready {
        let saved = self.ready.save.is_some();
        if !self.acks_held.is_empty() && (saved || self.acks_due.is_some_and(|d| d <= now)) {
            self.acks_due = None;
            for (src, msg) in std::mem::take(&mut self.acks_held) {
                self.deliver(now, src, msg);
            }
        }
        self.note_doubts(now);
        let mut ready = std::mem::take(&mut self.ready);
        self.counters.batches += 1;
        self.unsynced |= ready.save.is_some();
        if !self.queued.is_empty() {
            ready.sync = self.unsynced;
            self.unsynced = false;
        }
        if self.mutant == Some(RuntimeMutant::SendBeforeFsync) {
            // Broken on purpose: everything leaves before the save is staged.
            ready.sends.append(&mut self.queued);
        }
        for out in std::mem::take(&mut self.queued) {
            // Injected faults (off by default) may hold a datagram back or
            // send it twice; never before the fsync it waits for. Each copy
            // that comes out is sorted by what it is, not by what was routed:
            // a datagram held back for reordering leaves with the next one
            // routed, and may not ride out early on a leader's `Accept`.
            for routed in self.injector.route(out, &mut self.counters, now) {
                if leaves_before_sync(&routed) {
                    ready.sends.push(routed);
                } else {
                    ready.sends_after_sync.push(routed);
                }
            }
        }
        ready
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

    /// The counters `twopc status` reports.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The shell reports storage's counters (after opening and every sync).
    pub fn storage_stats(&mut self, stats: StoreStats) {
        self.counters.fsyncs = stats.fsyncs;
        self.counters.bytes_written = stats.bytes_written;
        self.counters.compactions = stats.compactions;
    }

    /// The shell reports one send; returns how many sends failed so far.
    pub fn sent(&mut self, ok: bool) -> u64 {
        if ok {
            self.counters.datagrams_out += 1;
        } else {
            self.counters.send_errors += 1;
        }
        self.counters.send_errors
    }
}
