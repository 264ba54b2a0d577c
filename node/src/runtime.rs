//! The runtime: one task owns one actor (a `twopc_model::Node`, the very code
//! the model checker explores) and loops over datagrams in, the next timer
//! deadline, and shutdown, calling `on_start`/`on_msg`/`on_timeout` exactly
//! as the checker does and interpreting every `Command` they emit.
//!
//! ## Persist before send, with group commit
//!
//! Each loop iteration is a *batch*: the event that woke the loop, plus every
//! datagram already waiting in the socket (up to `batch_max`). Commands are
//! run in the order the actor emitted them: `Save` is *staged* in the store,
//! `Send` is *queued* behind it, timers are set at once. When the batch is
//! handled, `Runtime::flush` makes everything staged durable with one fsync
//! and only then sends the queued datagrams, in order. So a `Send` never
//! leaves before any `Save` emitted before it — by the same handler or an
//! earlier one in the batch, whose state it may reveal — is on disk, and
//! several purchases share one fsync under load. That is the one place the
//! rule is enforced; `tests::persist_before_send` checks it.

use crate::admin::{Counters, NodeView};
use crate::error::{Error, Result};
use crate::faults::{Injector, Outgoing};
use crate::storage::Store;
use crate::transport::Transport;
use crate::wire::{Codec, Payload, Reject, MAX_DATAGRAM};
use rand::Rng;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::{Msg, Node, State, Storage, Timer, TxnId};

/// The name of a message's kind, as used by logs and `--fault-*` flags.
pub fn msg_kind(msg: &Msg) -> &'static str {
    match msg {
        Msg::Purchase { .. } => "purchase",
        Msg::Outcome(_) => "outcome",
        Msg::Prepare { .. } => "prepare",
        Msg::Vote { .. } => "vote",
        Msg::Commit { .. } => "commit",
        Msg::Abort { .. } => "abort",
        Msg::Ack { .. } => "ack",
        Msg::QueryDecision { .. } => "query",
    }
}

/// Every message kind, for `--help` and validation.
pub const MSG_KINDS: [&str; 8] = [
    "purchase", "outcome", "prepare", "vote", "commit", "abort", "ack", "query",
];

/// The transaction a message is about, if any.
pub fn msg_txn(msg: &Msg) -> Option<TxnId> {
    match msg {
        Msg::Purchase { .. } => None,
        Msg::Outcome(o) => o.txn,
        Msg::Prepare { txn, .. }
        | Msg::Vote { txn, .. }
        | Msg::Commit { txn }
        | Msg::Abort { txn }
        | Msg::Ack { txn }
        | Msg::QueryDecision { txn } => Some(*txn),
    }
}

pub use crate::faults::Faults;

/// How a runtime behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node's name (logs and status).
    pub name: String,
    /// Wire format and key.
    pub codec: Codec,
    /// Injected faults.
    pub faults: Faults,
    /// Most datagrams handled per fsync.
    pub batch_max: usize,
}

/// Called with the state after every batch; `Break` stops the runtime.
pub type Observer = Box<dyn FnMut(&State) -> ControlFlow<()> + Send>;

/// Deadlines of set timers, earliest first.
#[derive(Debug, Default)]
struct Timers {
    deadlines: HashMap<Timer, Instant>,
    order: BTreeSet<(Instant, Timer)>,
}

impl Timers {
    fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(old) = self.deadlines.insert(timer.clone(), at) {
            self.order.remove(&(old, timer.clone()));
        }
        self.order.insert((at, timer));
    }

    fn cancel(&mut self, timer: &Timer) {
        if let Some(at) = self.deadlines.remove(timer) {
            self.order.remove(&(at, timer.clone()));
        }
    }

    fn next(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (at, _) = self.order.first()?;
        if *at > now {
            return None;
        }
        let (_, timer) = self.order.pop_first()?;
        self.deadlines.remove(&timer);
        Some(timer)
    }
}

/// A random duration in `range` (its start if it is empty).
fn pick(range: &std::ops::Range<Duration>) -> Duration {
    if range.is_empty() {
        range.start
    } else {
        rand::rng().random_range(range.clone())
    }
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Timer,
    /// A datagram held back by an injected fault is due.
    Deferred,
    Datagram(std::io::Result<(usize, SocketAddr)>),
}

/// One actor, its socket and its storage.
pub struct Runtime<T: Transport, S: Store> {
    actor: Node,
    id: Id,
    transport: T,
    store: S,
    stored: Option<Storage>,
    cfg: Config,
    timers: Timers,
    pending: Vec<Outgoing>,
    counters: Counters,
    observer: Option<Observer>,
    injector: Injector,
}

impl<T: Transport, S: Store> Runtime<T, S> {
    /// A runtime for `actor` known to peers as `id`, starting from `stored`
    /// (the last durable state of `store`).
    pub fn new(
        actor: Node,
        id: Id,
        transport: T,
        store: S,
        stored: Option<Storage>,
        cfg: Config,
    ) -> Self {
        let injector = Injector::new(cfg.faults.clone());
        Runtime {
            injector,
            actor,
            id,
            transport,
            store,
            stored,
            cfg,
            timers: Timers::default(),
            pending: Vec::new(),
            counters: Counters::default(),
            observer: None,
        }
    }

    /// Calls `observer` after every batch; it may stop the runtime.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs until `shutdown` resolves, the observer says stop, or storage
    /// fails (fatal: the node stops rather than run with unknown durability).
    /// Returns the final state.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<State> {
        let mut out = Out::new();
        let stored = self.stored.take();
        let mut state = self.actor.on_start(self.id, &stored, &mut out);
        self.apply(out)?;
        self.flush().await?;
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(observer) = &mut self.observer {
                if observer(&state).is_break() {
                    break;
                }
            }
            let deadline = self.timers.next();
            let deferred = self.injector.next_deadline();
            let wake = tokio::select! {
                biased;
                _ = &mut shutdown => Wake::Shutdown,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => Wake::Timer,
                _ = tokio::time::sleep_until(deferred.unwrap_or_else(Instant::now)),
                    if deferred.is_some() => Wake::Deferred,
                r = self.transport.recv(&mut buf) => Wake::Datagram(r),
            };
            match wake {
                Wake::Shutdown => break,
                Wake::Timer => self.on_timers(&mut state)?,
                Wake::Deferred => {
                    // Already past their fsync when they were held back.
                    for o in self.injector.due(Instant::now()) {
                        self.send_now(o).await;
                    }
                }
                Wake::Datagram(Ok((n, src))) => self.on_datagram(&mut state, &buf[..n], src)?,
                Wake::Datagram(Err(e)) => {
                    tracing::warn!(node = %self.cfg.name, "receive failed: {e}");
                    // Never spin on a socket that keeps failing.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            // Group commit: datagrams already waiting join this batch.
            for _ in 1..self.cfg.batch_max.max(1) {
                match self.transport.try_recv(&mut buf) {
                    Ok((n, src)) => self.on_datagram(&mut state, &buf[..n], src)?,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::warn!(node = %self.cfg.name, "receive failed: {e}");
                        break;
                    }
                }
            }
            self.flush().await?;
        }
        // Saves left staged by batches that sent nothing become durable now.
        if self.store.needs_sync() {
            self.sync().await?;
        }
        tracing::debug!(node = %self.cfg.name, "runtime stopped");
        Ok(state)
    }

    /// Interprets the actor's commands, in emitted order. Every variant is
    /// named: a new one in stateright must be decided on here.
    fn apply(&mut self, out: Out<Node>) -> Result<()> {
        for command in out {
            match command {
                // Queued, not sent: `flush` sends after the batch's fsync.
                Command::Send(dst, msg) => self.queue(dst, msg),
                Command::SetTimer(timer, range) => {
                    self.timers.set(timer, Instant::now() + pick(&range));
                }
                Command::CancelTimer(timer) => self.timers.cancel(&timer),
                Command::ChooseRandom(key, _) => {
                    // The protocol never chooses randomly; log in case it starts to.
                    tracing::warn!(node = %self.cfg.name, key, "ChooseRandom is not used by twopc; ignored");
                }
                Command::Save(storage) => {
                    self.counters.saves += 1;
                    self.store.stage(storage)?;
                }
            }
        }
        Ok(())
    }

    /// Queues a protocol message to `dst`.
    fn queue(&mut self, dst: Id, msg: Msg) {
        let kind = msg_kind(&msg);
        let txn = msg_txn(&msg).map(|t| t.to_string());
        let to = SocketAddr::V4(SocketAddrV4::from(dst));
        if self.injector.drops_out(&msg) {
            self.counters.fault_dropped += 1;
            tracing::debug!(node = %self.cfg.name, kind, txn, %to, "fault: dropped outgoing");
            return;
        }
        match &msg {
            Msg::Outcome(o) => {
                tracing::info!(node = %self.cfg.name, txn, req = %o.req, verdict = ?o.verdict, %to, "outcome")
            }
            Msg::Vote { ballot, .. } => {
                tracing::info!(node = %self.cfg.name, txn, ?ballot, "vote")
            }
            _ => tracing::debug!(node = %self.cfg.name, kind, txn, %to, "send"),
        }
        // Duplication, delay and reordering (testing aids) happen in `flush`,
        // after the fsync: see `faults.rs`.
        self.queue_payload(to, &Payload::Protocol(msg));
    }

    fn queue_payload(&mut self, to: SocketAddr, payload: &Payload) {
        let protocol = matches!(payload, Payload::Protocol(_));
        match self.cfg.codec.encode(payload) {
            Ok(bytes) => self.pending.push(Outgoing {
                to,
                bytes,
                protocol,
            }),
            Err(e) => tracing::error!(node = %self.cfg.name, %to, "cannot encode: {e}"),
        }
    }

    /// Persist before send: this is the only place datagrams leave. If any
    /// `Save` is not durable yet, fsync first; then send every queued
    /// datagram in the order the actors emitted them.
    ///
    /// A batch that sends nothing leaves its saves staged (e.g. the
    /// coordinator forgetting an acknowledged commit, a participant recording
    /// an abort): nothing anyone saw depends on them, so losing them in a
    /// crash is the same as crashing before the batch, which the model checks.
    /// The next batch that sends anything, or shutdown, makes them durable
    /// first: no datagram ever leaves while any earlier save is not durable.
    async fn flush(&mut self) -> Result<()> {
        if self.store.needs_sync() && !self.pending.is_empty() {
            self.sync().await?;
        }
        self.counters.batches += 1;
        for out in std::mem::take(&mut self.pending) {
            // Injected faults (off by default) may hold a datagram back or
            // send it twice; never earlier than now, after the fsync.
            for o in self.injector.route(out, &mut self.counters) {
                self.send_now(o).await;
            }
        }
        Ok(())
    }

    /// fsync everything staged.
    async fn sync(&mut self) -> Result<()> {
        {
            let store = &mut self.store;
            // fsync blocks: tell a multi-threaded tokio so it can move other
            // tasks off this thread meanwhile.
            match tokio::runtime::Handle::current().runtime_flavor() {
                tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| store.sync())?
                }
                _ => store.sync()?,
            }
        }
        Ok(())
    }

    /// Sends one datagram whose `Save`s are durable.
    async fn send_now(&mut self, Outgoing { to, bytes, .. }: Outgoing) {
        self.injector.capture("out", to, &bytes);
        match self.transport.send(&bytes, to).await {
            Ok(()) => self.counters.datagrams_out += 1,
            Err(e) => {
                self.counters.send_errors += 1;
                if self.counters.send_errors.is_power_of_two() {
                    tracing::warn!(node = %self.cfg.name, %to, errors = self.counters.send_errors, "send failed: {e}");
                }
            }
        }
    }

    fn on_timers(&mut self, state: &mut State) -> Result<()> {
        while let Some(timer) = self.timers.pop_due(Instant::now()) {
            self.counters.timers_fired += 1;
            tracing::debug!(node = %self.cfg.name, ?timer, "timer");
            let mut out = Out::new();
            let mut cow = Cow::Borrowed(&*state);
            self.actor.on_timeout(self.id, &mut cow, &timer, &mut out);
            if let Cow::Owned(s) = cow {
                *state = s;
            }
            self.apply(out)?;
        }
        Ok(())
    }

    fn reject(&mut self, src: SocketAddr, why: Reject) {
        let count = self
            .counters
            .rejected
            .entry(why.reason().to_string())
            .or_default();
        *count += 1;
        // Every rejection is counted; the log shows the first few of each
        // reason and then every power of two, so a flood cannot drown it.
        if *count <= 8 || count.is_power_of_two() {
            tracing::warn!(node = %self.cfg.name, %src, reason = why.reason(), count = *count, "dropped datagram: {why}");
        }
    }

    fn on_datagram(&mut self, state: &mut State, bytes: &[u8], src: SocketAddr) -> Result<()> {
        self.counters.datagrams_in += 1;
        self.injector.capture("in", src, bytes);
        if bytes.len() > MAX_DATAGRAM {
            self.reject(src, Reject::Oversized(bytes.len()));
            return Ok(());
        }
        let payload = match self.cfg.codec.decode(bytes) {
            Ok(p) => p,
            Err(why) => {
                self.reject(src, why);
                return Ok(());
            }
        };
        match payload {
            Payload::Protocol(msg) => {
                let SocketAddr::V4(src4) = src else {
                    self.reject(src, Reject::Undecodable("IPv6 source".into()));
                    return Ok(());
                };
                let kind = msg_kind(&msg);
                let txn = msg_txn(&msg).map(|t| t.to_string());
                let span = tracing::debug_span!("msg", kind, txn, from = %src);
                let _enter = span.enter();
                if self.injector.drops_in(&msg) {
                    self.counters.fault_dropped += 1;
                    tracing::debug!(node = %self.cfg.name, "fault: dropped incoming");
                    return Ok(());
                }
                match kind {
                    "commit" | "abort" => {
                        tracing::info!(node = %self.cfg.name, txn, kind, "decision received")
                    }
                    _ => tracing::debug!(node = %self.cfg.name, "received"),
                }
                self.counters.msgs_handled += 1;
                let mut out = Out::new();
                let mut cow = Cow::Borrowed(&*state);
                self.actor
                    .on_msg(self.id, &mut cow, Id::from(src4), msg, &mut out);
                if let Cow::Owned(s) = cow {
                    *state = s;
                }
                self.apply(out)
            }
            Payload::StatusRequest { nonce } => {
                let stats = self.store.stats();
                let mut counters = self.counters.clone();
                counters.fsyncs = stats.fsyncs;
                counters.bytes_written = stats.bytes_written;
                counters.compactions = stats.compactions;
                let view = NodeView::of(&self.cfg.name, state, &counters);
                // Queued like any send: the view may reveal staged state.
                self.queue_payload(
                    src,
                    &Payload::StatusReply {
                        nonce,
                        view: Box::new(view),
                    },
                );
                Ok(())
            }
            Payload::StatusReply { .. } => {
                self.reject(src, Reject::Undecodable("unsolicited status reply".into()));
                Ok(())
            }
        }
    }
}

/// A storage failure is fatal; this names it for the operator.
pub fn fatal(name: &str, e: &Error) -> String {
    format!("node {name} stopped: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemStore, StoreStats};
    use crate::transport::UdpTransport;
    use crate::wire::Format;
    use std::sync::{Arc, Mutex};
    use twopc_model::{Ballot, Coordinator, Participant, Purchase, RequestId, Resource};

    type Log = Arc<Mutex<Vec<String>>>;

    /// A store that records when saves become durable.
    struct RecordingStore {
        log: Log,
        staged: usize,
        stats: StoreStats,
    }

    impl Store for RecordingStore {
        fn stage(&mut self, _: Storage) -> Result<()> {
            self.staged += 1;
            self.log.lock().unwrap().push("staged".into());
            Ok(())
        }
        fn needs_sync(&self) -> bool {
            self.staged > 0
        }
        fn sync(&mut self) -> Result<()> {
            self.log
                .lock()
                .unwrap()
                .push(format!("durable({})", self.staged));
            self.staged = 0;
            self.stats.fsyncs += 1;
            Ok(())
        }
        fn stats(&self) -> StoreStats {
            self.stats
        }
    }

    /// A UDP transport that records what it sends.
    struct RecordingTransport {
        inner: UdpTransport,
        log: Log,
        codec: Codec,
    }

    impl Transport for RecordingTransport {
        fn recv(
            &self,
            buf: &mut [u8],
        ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send {
            self.inner.recv(buf)
        }
        fn try_recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
            self.inner.try_recv(buf)
        }
        async fn send(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<()> {
            if let Ok(Payload::Protocol(msg)) = self.codec.decode(bytes) {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("sent({})", msg_kind(&msg)));
            }
            self.inner.send(bytes, to).await
        }
        fn local_addr(&self) -> std::io::Result<SocketAddr> {
            self.inner.local_addr()
        }
    }

    fn v4(s: &std::net::UdpSocket) -> SocketAddrV4 {
        match s.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        }
    }

    async fn recv_msg(s: &tokio::net::UdpSocket, codec: &Codec) -> Msg {
        let mut buf = vec![0; 65536];
        loop {
            let (n, _) = tokio::time::timeout(Duration::from_secs(30), s.recv_from(&mut buf))
                .await
                .expect("a message within 30s")
                .unwrap();
            if let Ok(Payload::Protocol(m)) = codec.decode(&buf[..n]) {
                return m;
            }
        }
    }

    /// Spawns `actor` on `sock` with a recording transport and store that
    /// write to `log`. Returns its id, the shutdown trigger and the task.
    fn spawn_recorded(
        actor: Node,
        name: &str,
        sock: std::net::UdpSocket,
        codec: &Codec,
        log: &Log,
    ) -> (
        Id,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<State>>,
    ) {
        let id = Id::from(v4(&sock));
        let transport = RecordingTransport {
            inner: UdpTransport::from_std(sock).unwrap(),
            log: log.clone(),
            codec: codec.clone(),
        };
        let store = RecordingStore {
            log: log.clone(),
            staged: 0,
            stats: StoreStats::default(),
        };
        let cfg = Config {
            name: name.into(),
            codec: codec.clone(),
            faults: Faults::default(),
            batch_max: 64,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let rt = Runtime::new(actor, id, transport, store, None, cfg);
        let task = tokio::spawn(rt.run(async {
            let _ = stop_rx.await;
        }));
        (id, stop_tx, task)
    }

    /// The coordinator's commit decision is durable before Commit or the
    /// client's Outcome leave, and a participant's hold before its vote.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn persist_before_send() {
        let codec = Codec::new(None, Format::Bincode);
        let log: Log = Arc::default();
        let coord_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peers: Vec<tokio::net::UdpSocket> = (0..3)
            .map(|_| {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_nonblocking(true).unwrap();
                tokio::net::UdpSocket::from_std(s).unwrap()
            })
            .collect();
        let addr = |s: &tokio::net::UdpSocket| match s.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        };
        let (wallet, order, client) = (&peers[0], &peers[1], &peers[2]);
        let actor = Node::Coordinator(Coordinator {
            wallet: Id::from(addr(wallet)),
            order: Id::from(addr(order)),
        });
        let (coord_id, stop_tx, task) =
            spawn_recorded(actor, "coordinator", coord_sock, &codec, &log);
        let coord_addr = SocketAddr::V4(SocketAddrV4::from(coord_id));
        async fn send(s: &tokio::net::UdpSocket, codec: &Codec, to: SocketAddr, msg: Msg) {
            let bytes = codec.encode(&Payload::Protocol(msg)).unwrap();
            s.send_to(&bytes, to).await.unwrap();
        }
        let req = RequestId { client: 1, seq: 1 };
        let purchase = Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 5,
        };
        send(client, &codec, coord_addr, Msg::Purchase { req, purchase }).await;
        let Msg::Prepare { txn, .. } = recv_msg(wallet, &codec).await else {
            panic!("expected a prepare")
        };
        recv_msg(order, &codec).await;
        for p in [wallet, order] {
            let ballot = Ballot::Yes;
            send(p, &codec, coord_addr, Msg::Vote { txn, ballot }).await;
        }
        assert!(matches!(recv_msg(client, &codec).await, Msg::Outcome(_)));
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();

        let log = log.lock().unwrap().clone();
        let pos = |what: &str| log.iter().position(|e| e == what);
        let durable_after = |i: usize| log[..i].iter().rposition(|e| e.starts_with("durable"));
        let staged_before = |i: usize| log[..i].iter().rposition(|e| e == "staged");
        // Every send is preceded by a durable point after the last staged save.
        for (i, e) in log.iter().enumerate() {
            if e.starts_with("sent") {
                if let Some(s) = staged_before(i) {
                    assert!(
                        durable_after(i).is_some_and(|d| d > s),
                        "{e} at {i} overtook the save at {s}: {log:?}"
                    );
                }
            }
        }
        let commit = pos("sent(commit)").expect("commit sent");
        let outcome = pos("sent(outcome)").expect("outcome sent");
        assert!(staged_before(commit).is_some() && staged_before(outcome).is_some());
        assert!(log.iter().any(|e| e.starts_with("durable")), "{log:?}");
    }

    /// A participant's hold is durable before its yes vote leaves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hold_is_durable_before_the_vote() {
        let codec = Codec::new(None, Format::Bincode);
        let log: Log = Arc::default();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let coord = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        coord.set_nonblocking(true).unwrap();
        let coord = tokio::net::UdpSocket::from_std(coord).unwrap();
        let coord_id = Id::from(match coord.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        });
        let actor = Node::Participant(Participant {
            resource: Resource::Wallet,
            coordinator: coord_id,
            initial: [("alice".to_string(), 10)].into(),
        });
        let (my_id, stop_tx, task) = spawn_recorded(actor, "wallet", sock, &codec, &log);
        let txn = TxnId { epoch: 1, n: 0 };
        let req = RequestId { client: 1, seq: 1 };
        let op = twopc_model::Op {
            key: "alice".into(),
            amount: 4,
        };
        let bytes = codec
            .encode(&Payload::Protocol(Msg::Prepare { txn, req, op }))
            .unwrap();
        coord
            .send_to(&bytes, SocketAddr::V4(SocketAddrV4::from(my_id)))
            .await
            .unwrap();
        let vote = recv_msg(&coord, &codec).await;
        assert_eq!(
            vote,
            Msg::Vote {
                txn,
                ballot: Ballot::Yes
            }
        );
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(log, ["staged", "durable(1)", "sent(vote)"]);
    }

    /// Prepares already waiting when the runtime wakes form one batch: one
    /// fsync for all their holds, and not one vote leaves before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_shares_one_fsync_and_holds_back_every_vote() {
        const N: u64 = 10;
        let codec = Codec::new(None, Format::Bincode);
        let log: Log = Arc::default();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let coord = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let coord_id = Id::from(v4(&coord));
        // Every prepare is in the participant's socket before it starts.
        for n in 0..N {
            let msg = Msg::Prepare {
                txn: TxnId { epoch: 1, n },
                req: RequestId { client: 1, seq: n },
                op: twopc_model::Op {
                    key: "alice".into(),
                    amount: 1,
                },
            };
            let bytes = codec.encode(&Payload::Protocol(msg)).unwrap();
            coord.send_to(&bytes, v4(&sock)).unwrap();
        }
        let actor = Node::Participant(Participant {
            resource: Resource::Wallet,
            coordinator: coord_id,
            initial: [("alice".to_string(), 100)].into(),
        });
        coord.set_nonblocking(true).unwrap();
        let coord = tokio::net::UdpSocket::from_std(coord).unwrap();
        let (_, stop_tx, task) = spawn_recorded(actor, "wallet", sock, &codec, &log);
        for _ in 0..N {
            assert!(matches!(recv_msg(&coord, &codec).await, Msg::Vote { .. }));
        }
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        let log = log.lock().unwrap().clone();
        let mut expected = vec!["staged".to_string(); N as usize];
        expected.push(format!("durable({N})"));
        expected.extend(std::iter::repeat_n("sent(vote)".to_string(), N as usize));
        assert_eq!(log, expected);
    }

    /// A batch that sends nothing (an abort recorded by a participant) does
    /// not fsync; the next batch that sends makes it durable before sending,
    /// and shutdown makes anything still staged durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saves_nobody_depends_on_wait_for_the_next_send() {
        let codec = Codec::new(None, Format::Bincode);
        let log: Log = Arc::default();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let coord = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let coord_id = Id::from(v4(&coord));
        coord.set_nonblocking(true).unwrap();
        let coord = tokio::net::UdpSocket::from_std(coord).unwrap();
        let actor = Node::Participant(Participant {
            resource: Resource::Wallet,
            coordinator: coord_id,
            initial: [("alice".to_string(), 10)].into(),
        });
        let (my_id, stop_tx, task) = spawn_recorded(actor, "wallet", sock, &codec, &log);
        let to = SocketAddr::V4(SocketAddrV4::from(my_id));
        let send = |msg: Msg| codec.encode(&Payload::Protocol(msg)).unwrap();
        // An abort for a transaction never prepared: recorded, nothing sent.
        let abort = send(Msg::Abort {
            txn: TxnId { epoch: 1, n: 7 },
        });
        coord.send_to(&abort, to).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.lock().unwrap().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(log.lock().unwrap().clone(), ["staged"]);
        // A prepare: its vote leaves only after both saves are durable.
        let prepare = send(Msg::Prepare {
            txn: TxnId { epoch: 1, n: 8 },
            req: RequestId { client: 1, seq: 1 },
            op: twopc_model::Op {
                key: "alice".into(),
                amount: 4,
            },
        });
        coord.send_to(&prepare, to).await.unwrap();
        assert!(matches!(recv_msg(&coord, &codec).await, Msg::Vote { .. }));
        coord.send_to(&abort, to).await.unwrap(); // a duplicate: no save
        let abort8 = send(Msg::Abort {
            txn: TxnId { epoch: 1, n: 8 },
        });
        coord.send_to(&abort8, to).await.unwrap(); // releases the hold: staged
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.lock().unwrap().len() < 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(
            log,
            [
                "staged",
                "staged",
                "durable(2)",
                "sent(vote)",
                "staged",
                "durable(1)"
            ]
        );
    }

    #[test]
    fn timers_reset_cancel_and_pop_in_deadline_order() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = Timer::Votes(TxnId { epoch: 1, n: 1 });
        let b = Timer::Retry;
        t.set(a.clone(), now + Duration::from_secs(5));
        t.set(b.clone(), now + Duration::from_secs(1));
        t.set(a.clone(), now + Duration::from_millis(10)); // reset
        assert_eq!(t.next(), Some(now + Duration::from_millis(10)));
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.pop_due(now + Duration::from_secs(2)), Some(a));
        t.cancel(&b);
        assert_eq!(t.next(), None);
        let _ = MemStore::default();
    }
}
