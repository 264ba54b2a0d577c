//! The runtime's shell: the async loop around one [`Core`]. It owns what
//! the core must not touch — the socket, the store, the clock — and does
//! only this:
//!
//! 1. wait for the first of: shutdown, the next timer deadline, a datagram
//!    held back by an injected fault, a datagram, or (a coordinator
//!    replica) a message from another replica's TCP link
//!    (`replication.rs`);
//! 2. feed that event, and every datagram already waiting (up to
//!    `batch_max`), to the core: one batch;
//! 3. run the batch's [`Ready`](crate::runtime::core::Ready) through the one executor,
//!    [`crate::runtime::core::ready::run`], against this shell's [`Effects`]: send
//!    what may leave at once, stage the save, fsync if the core says so
//!    (persist before send is decided in [`Core::ready`]), then send the
//!    rest (a message to another replica is handed to its link, after the
//!    same fsync).
//!
//! At shutdown, saves that no send has forced to disk yet are made durable.
//!
//! With `--http`, the HTTP server may also ask for the node's view
//! (`/metrics`): answered at once between two batches, changing nothing;
//! and each batch's size and the coordinator's decision latencies are
//! recorded into its histograms ([`Shell::serve_views`]).

use crate::runtime::core::{ready, Config, Core, Effects, Event, Outgoing};
use crate::runtime::error::{Error, Result};
use crate::runtime::faults::Capture;
use crate::runtime::replication::PeerLink;
use crate::runtime::storage::Store;
use crate::runtime::timeline::Step;
use crate::runtime::transport::Transport;
use stateright::actor::Id;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use twopc_model::{Msg, Node, State, Storage};

/// An ask for the node's view (`twopc status`'s, `/metrics`'), answered by
/// the node's loop between batches.
pub type ViewAsk = tokio::sync::oneshot::Sender<crate::runtime::admin::NodeView>;

/// Histograms the node's loop records as things happen (read by `/metrics`).
#[derive(Debug)]
pub struct RuntimeHistograms {
    /// Datagrams handled per batch (one fsync at most per batch).
    pub batch_size: prometheus_client::metrics::histogram::Histogram,
    /// Coordinator: seconds from an attempt's prepares to its decision.
    pub decision_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for RuntimeHistograms {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        RuntimeHistograms {
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            decision_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        }
    }
}
/// Called with the state after every batch and, at a client, the durable
/// writes each outcome it took waited for (aligned with its `seen`; see
/// `core/waited.rs`); `Break` stops the runtime.
pub type Observer = Box<dyn FnMut(&State, &[u8]) -> ControlFlow<()> + Send>;

/// What woke the loop.
// (`Peer` carries a message, as large as a coordinator's durable state in
// an `Accept`, past clippy's limit since `refunded`; a wake lives for one
// turn of the loop: boxing it would only add an allocation.)
#[allow(clippy::large_enum_variant)]
enum Wake {
    Shutdown,
    Timer,
    HeldBack,
    Datagram(io::Result<(usize, SocketAddr)>),
    /// A peer replica's message (`replication.rs`).
    Peer(SocketAddrV4, Msg, u8),
    /// The HTTP server asks for this node's view (`/metrics`).
    View(ViewAsk),
}

/// The HTTP server's line to the loop: asks for views, and what to measure.
struct Served {
    asks: mpsc::Receiver<ViewAsk>,
    histograms: Arc<RuntimeHistograms>,
}

/// One actor, its socket and its storage.
pub struct Shell<T: Transport, S: Store> {
    core: Core,
    transport: T,
    store: S,
    stored: Option<Storage>,
    name: String,
    batch_max: usize,
    capture: Capture,
    observer: Option<Observer>,
    served: Option<Served>,
    /// A replica's links to the other replicas.
    peers: Option<PeerLink>,
}

impl<T: Transport, S: Store> Shell<T, S> {
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
        Shell {
            core: Core::new(actor, id, &cfg),
            transport,
            store,
            stored,
            name: cfg.name,
            batch_max: cfg.batch_max.max(1),
            capture: Capture::open(cfg.faults.capture.as_deref()),
            observer: None,
            served: None,
            peers: None,
        }
    }

    /// A replica's links to the other replicas: their messages come in
    /// through it, and the core's messages to them go out through it.
    pub fn with_peers(mut self, link: PeerLink) -> Self {
        self.core.attach_link(link.stats());
        self.peers = Some(link);
        self
    }

    /// The nodes of the cluster file: the core tells them from strangers
    /// and shows when it last heard from each (`core/peers.rs`).
    pub fn know(mut self, members: crate::runtime::core::Members) -> Self {
        self.core.know(members);
        self
    }

    /// Answers the HTTP server's asks for this node's view (between
    /// batches, like a status datagram) and records batch sizes and decision
    /// latencies into `telemetry`.
    pub fn serve_views(
        mut self,
        asks: mpsc::Receiver<ViewAsk>,
        histograms: Arc<RuntimeHistograms>,
    ) -> Self {
        self.core.measure_latency();
        self.served = Some(Served { asks, histograms });
        self
    }

    /// Takes part in the rollback check (`crate::runtime::history`): a participant
    /// reports its store's durable position, a coordinator keeps what it
    /// heard beside its store (`Store::keep_heard`), now and then and at
    /// shutdown.
    pub fn with_history(mut self, history: crate::runtime::history::History) -> Self {
        self.core.set_history(history);
        self
    }

    /// Marks when each step happens into `timeline`, written when the loop
    /// stops (see [`crate::runtime::timeline`]).
    pub fn timeline(mut self, timeline: crate::runtime::timeline::Timeline) -> Self {
        self.core.set_timeline(timeline);
        self
    }

    /// Calls `observer` after every batch; it may stop the runtime.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Records every actor step into `tracer` (see [`crate::runtime::trace`]).
    pub fn trace(mut self, tracer: Box<dyn crate::runtime::trace::Tracer>) -> Self {
        self.core.set_tracer(tracer);
        self
    }

    /// Runs until `shutdown` resolves, the observer says stop, or storage
    /// fails (fatal: the node stops rather than run with unknown durability).
    /// Returns the final state.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<State> {
        self.core.storage_stats(self.store.stats());
        self.core.durable_position(self.store.position());
        self.core.set_journal(self.store.journal());
        self.core.set_writes_durably(self.store.writes_durably());
        let stored = self.stored.take();
        self.core.handle(Instant::now(), Event::Start(stored));
        self.flush().await?;
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(observer) = &mut self.observer {
                if observer(self.core.state(), self.core.seen_waited()).is_break() {
                    break;
                }
            }
            let timer = self.core.next_timer();
            let held_back = self.core.next_held_back();
            let wake = tokio::select! {
                biased;
                _ = &mut shutdown => Wake::Shutdown,
                _ = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)),
                    if timer.is_some() => Wake::Timer,
                _ = tokio::time::sleep_until(held_back.unwrap_or_else(Instant::now)),
                    if held_back.is_some() => Wake::HeldBack,
                r = self.transport.recv(&mut buf) => Wake::Datagram(r),
                Some(ask) = next_ask(&mut self.served) => Wake::View(ask),
                Some((from, msg, waited)) = next_peer(&mut self.peers) => Wake::Peer(from, msg, waited),
            };
            if let Some(t) = self.core.timeline() {
                t.begin_batch();
            }
            let mut datagrams = 0;
            match wake {
                Wake::Shutdown => break,
                Wake::Timer => self.core.handle(Instant::now(), Event::TimerDue),
                Wake::HeldBack => self.core.handle(Instant::now(), Event::HeldBackDue),
                Wake::Datagram(Ok((n, from))) => {
                    datagrams += 1;
                    self.on_datagram(from, &buf[..n])
                }
                Wake::Peer(from, msg, waited) => {
                    let peer = Event::Peer { from, msg, waited };
                    self.core.handle(Instant::now(), peer);
                    // Peer messages already waiting join this batch.
                    for _ in 1..self.batch_max {
                        let Some((from, msg, waited)) =
                            self.peers.as_mut().and_then(|p| p.try_recv())
                        else {
                            break;
                        };
                        let peer = Event::Peer { from, msg, waited };
                        self.core.handle(Instant::now(), peer);
                    }
                }
                Wake::View(ask) => {
                    // The view may show staged state; it is only counted
                    // and measured, never a protocol answer.
                    let _ = ask.send(self.core.view(Instant::now()));
                    continue;
                }
                Wake::Datagram(Err(e)) => {
                    if let Some(since) = self.core.receive_failed(Instant::now()) {
                        tracing::warn!(node = %self.name, since, "receive failed: {e}");
                    }
                    // Never spin on a socket that keeps failing.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            // Group commit: datagrams already waiting join this batch.
            for _ in 1..self.batch_max {
                match self.transport.try_recv(&mut buf) {
                    Ok((n, from)) => {
                        datagrams += 1;
                        self.on_datagram(from, &buf[..n])
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        if let Some(since) = self.core.receive_failed(Instant::now()) {
                            tracing::warn!(node = %self.name, since, "receive failed: {e}");
                        }
                        break;
                    }
                }
            }
            self.flush().await?;
            self.keep_heard(false);
            if let Some(served) = &self.served {
                if datagrams > 0 {
                    served.histograms.batch_size.observe(datagrams as f64);
                }
                for latency in self.core.take_latencies() {
                    served
                        .histograms
                        .decision_seconds
                        .observe(latency.as_secs_f64());
                }
            }
        }
        // Saves left staged by batches that sent nothing become durable now.
        if self.store.needs_sync() {
            self.sync()?;
        }
        self.keep_heard(true);
        if let Some(t) = self.core.take_timeline() {
            // A measuring aid: losing it must not fail the node's stop.
            if let Err(e) = t.write() {
                tracing::error!(node = %self.name, path = %t.path().display(), "cannot write the timeline: {e}");
            }
        }
        tracing::debug!(node = %self.name, "runtime stopped");
        Ok(self.core.state().clone())
    }

    fn on_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.capture.record("in", from, bytes);
        self.core
            .handle(Instant::now(), Event::Datagram { from, bytes });
    }

    /// Ends the batch: its [`Ready`](crate::runtime::core::Ready) run by the one
    /// executor against this shell ([`Io`]). This is the only place
    /// datagrams leave.
    async fn flush(&mut self) -> Result<()> {
        let ready = self.core.ready(Instant::now());
        self.record_heuristics();
        ready::run(
            ready,
            &mut Io {
                shell: self,
                sent: false,
            },
        )
        .await
    }

    /// Appends the operators' decisions of the batch to `DIR/heuristic.log`
    /// before anything of the batch leaves (`crate::runtime::in_doubt`). A failure is
    /// logged: the decision itself is saved like any other, and the node's
    /// WARN line names it too.
    fn record_heuristics(&mut self) {
        for (txn, req, decision) in self.core.take_heuristics() {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let line =
                crate::runtime::in_doubt::audit_line(&self.name, txn, &req, decision, unix_ms);
            if let Err(e) = self.store.record_heuristic(&line) {
                tracing::error!(node = %self.name, %txn, "cannot record the heuristic decision: {e}");
            }
        }
    }

    /// Makes everything staged durable (fsync).
    fn sync(&mut self) -> Result<()> {
        if let Some(t) = self.core.timeline() {
            t.mark(Step::SyncStart, None, None);
        }
        let store = &mut self.store;
        // fsync blocks: tell a multi-threaded tokio so it can move other
        // tasks off this thread meanwhile.
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| store.sync())?
            }
            _ => store.sync()?,
        }
        if let Some(t) = self.core.timeline() {
            t.mark(Step::SyncEnd, None, None);
        }
        self.core.synced(Instant::now());
        self.core.storage_stats(self.store.stats());
        self.core.durable_position(self.store.position());
        Ok(())
    }

    /// Writes a coordinator's positions heard from participants when due
    /// (never on a purchase's path: every few seconds at most). A failure
    /// is only logged: a stale table weakens the rollback check and never
    /// raises a false alarm (`storage/position.rs`).
    fn keep_heard(&mut self, at_shutdown: bool) {
        if let Some(heard) = self.core.heard_to_keep(Instant::now(), at_shutdown) {
            let store = &mut self.store;
            // Its fsyncs block, as `sync`'s do.
            let kept = match tokio::runtime::Handle::current().runtime_flavor() {
                tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| store.keep_heard(&heard))
                }
                _ => store.keep_heard(&heard),
            };
            if let Err(e) = kept {
                tracing::warn!(node = %self.name, "cannot write the positions heard from participants: {e}");
            }
        }
    }

    /// Sends one datagram whose saves are durable (or hands a message to
    /// a peer replica's link).
    async fn send(&mut self, out: Outgoing) {
        let (to, bytes) = match out {
            Outgoing::Peer { to, msg, waited } => {
                match &mut self.peers {
                    Some(link) => link.send(to, *msg, waited),
                    None => {
                        tracing::error!(node = %self.name, %to, "a replica message with no link")
                    }
                }
                self.core.sent(true);
                return;
            }
            Outgoing::Datagram { to, bytes } | Outgoing::Reply { to, bytes } => (to, bytes),
        };
        self.capture.record("out", to, &bytes);
        if let Some(t) = self.core.timeline() {
            // Marked before the send: the datagram cannot be read before
            // this, whichever process reads it.
            let to4 = match to {
                SocketAddr::V4(a) => Some(a),
                SocketAddr::V6(_) => None,
            };
            t.mark(Step::Sent, t.label_of(&bytes), to4);
        }
        let result = self.transport.send(&bytes, to).await;
        let errors = self.core.sent(result.is_ok());
        if let Err(e) = result {
            if errors.is_power_of_two() {
                tracing::warn!(node = %self.name, %to, errors, "send failed: {e}");
            }
        }
    }
}

/// The shell's effects for one batch (see [`crate::runtime::core::ready`]).
struct Io<'s, T: Transport, S: Store> {
    shell: &'s mut Shell<T, S>,
    /// Whether anything of the batch was sent yet.
    sent: bool,
}

impl<T: Transport, S: Store> Effects for Io<'_, T, S> {
    type Stop = Error;

    async fn send(&mut self, out: Outgoing) {
        self.sent = true;
        self.shell.send(out).await
    }

    fn stage(&mut self, save: Storage) -> Result<()> {
        self.shell.store.stage(save)?;
        if let Some(t) = self.shell.core.timeline() {
            t.mark(Step::Staged, None, None);
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<()> {
        if self.sent && current_thread() {
            // Let the links' tasks write the `Accept`s sent before the
            // fsync before this thread blocks in it: on a one-thread
            // runtime they run only when this task yields.
            tokio::task::yield_now().await;
        }
        self.shell.sync()
    }
}

/// Whether this task runs on a one-thread runtime.
fn current_thread() -> bool {
    tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
}

/// The next message from a peer replica, or never when this node has none.
async fn next_peer(peers: &mut Option<PeerLink>) -> Option<(SocketAddrV4, Msg, u8)> {
    match peers {
        Some(link) => match link.recv().await {
            Some(m) => Some(m),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The next ask for a view, or never when no HTTP server is attached (or
/// it has gone).
async fn next_ask(served: &mut Option<Served>) -> Option<ViewAsk> {
    match served {
        Some(s) => match s.asks.recv().await {
            Some(ask) => Some(ask),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
