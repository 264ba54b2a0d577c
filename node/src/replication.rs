//! How the replicas of a replicated coordinator talk among themselves: TCP,
//! not UDP, because an `Accept` or a `Promise` carries the coordinator's
//! whole durable state (`retention` outcomes: megabytes), far beyond a
//! datagram.
//!
//! - **Frames.** Each replica listens on TCP at the same address (port) as
//!   its UDP socket. A frame is a 4-byte big-endian length, then the same
//!   envelope as a datagram (`wire.rs`: version, format, HMAC with the
//!   cluster key) around a [`Frame`]. The frame names its sender: a TCP
//!   source port says nothing, the MAC vouches for the name.
//! - **Deltas.** A leader sends `Accept` for every save and again as its
//!   heartbeat (every 50-100 ms), each with the whole state. On a
//!   connection, the stream is ordered and the receiver has every earlier
//!   frame, so an `Accept` goes as the changes from the previous `Accept`
//!   on the same connection ([`CoordDelta`], the diff the log writes), and
//!   only the first on a new connection goes whole. A heartbeat with nothing
//!   new is a few dozen bytes; a save, what it changed. The leader hands
//!   the same `Accept` to every other replica's connection, so the delta
//!   from the previous `Accept` is diffed and encoded once, when it is
//!   handed over ([`AcceptFrames`]); a connection that did not send that
//!   previous one (new, or it was dropped) encodes its own.
//! - **Loss.** Connections are made lazily and remade after an error; a
//!   message that cannot be written is dropped (with its connection, so the
//!   next `Accept` goes whole on a new one). The protocol tolerates loss:
//!   the leader re-sends its latest state as its heartbeat, candidates
//!   re-send their campaigns.
//! - **Faults.** The node's injected faults (`faults.rs`: loss, drops by
//!   kind, duplicates, delays, reordering) act on these messages too, in the
//!   core, on whole messages: before delta encoding, so a dropped message
//!   never breaks the chain of deltas.
//!
//! The model is unchanged: what leaves and arrives is the very `Msg`; this
//! file is only its encoding. [`Encoder`] and [`Decoder`] are pure; the
//! tasks at the bottom own the sockets.

use crate::core::drops::DropLog;
use crate::storage::CoordDelta;
use crate::wire::{Codec, Reject, MAX_FRAME};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use twopc_model::{CoordStorage, Msg, Term};

/// Whether `msg` is one the replicas exchange among themselves (sent over
/// TCP by a replica; every other message is a datagram).
pub fn between_replicas(msg: &Msg) -> bool {
    match msg {
        Msg::Campaign { .. }
        | Msg::Promise { .. }
        | Msg::Accept { .. }
        | Msg::Accepted { .. }
        | Msg::Nack { .. }
        | Msg::Recover { .. }
        | Msg::RecoverReply { .. } => true,
        Msg::Purchase { .. }
        | Msg::Lookup { .. }
        | Msg::Outcome(_)
        | Msg::Status { .. }
        | Msg::Prepare { .. }
        | Msg::Vote { .. }
        | Msg::Commit { .. }
        | Msg::Abort { .. }
        | Msg::Ack { .. }
        | Msg::QueryDecision { .. }
        | Msg::AskEpoch { .. }
        | Msg::Epoch { .. } => false,
    }
}

/// What one frame carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// A message as it is: every kind but a delta-encoded `Accept`.
    Whole {
        /// The sender's (UDP) address: its `Id`.
        from: SocketAddrV4,
        /// The message.
        msg: Msg,
    },
    /// An `Accept` whose state is the previous `Accept`'s on this
    /// connection with `changes` applied (`None`: the same state).
    AcceptDelta {
        /// The sender.
        from: SocketAddrV4,
        /// The leader's term.
        term: Term,
        /// The version.
        version: u64,
        /// The changes from the previous `Accept`'s state.
        changes: Option<CoordDelta>,
    },
}

/// One `Accept` as handed to the links, numbered, with its delta frame
/// from the `Accept` handed to them before it, encoded once for every
/// connection (see [`AcceptFrames`]).
#[derive(Debug)]
pub struct SharedAccept {
    /// This `Accept`'s number among those handed to the links.
    id: u64,
    /// The number of the `Accept` its delta starts from, and the frame
    /// (length prefix, envelope, MAC), ready to write; `None` for the first.
    delta: Option<(u64, Vec<u8>)>,
}

/// Encodes each `Accept` once for all connections. A leader hands the same
/// `Accept` to the link of every other replica, and each connection's
/// [`Encoder`] would diff it against the previous one and encode the result,
/// the same work each time: here it is done once, on the handing side, and
/// a connection whose last `Accept` was that previous one writes the shared
/// bytes. A connection that is not there (new, or an `Accept` dropped by
/// coalescing or an error) encodes its own frame, as before.
#[derive(Debug, Default)]
pub struct AcceptFrames {
    next_id: u64,
    /// The last `Accept` handed out: its term, version, number and state.
    last: Option<(Term, u64, u64, CoordStorage)>,
    current: Option<Arc<SharedAccept>>,
}

impl AcceptFrames {
    /// The shared frame of the `Accept` of `version` in `term`. A version is
    /// written once per term, so the same term and version (the copy for the
    /// next replica, a heartbeat repeating the latest) is the same state.
    pub fn frame(
        &mut self,
        from: SocketAddrV4,
        term: Term,
        version: u64,
        storage: &CoordStorage,
        codec: &Codec,
    ) -> Arc<SharedAccept> {
        if let (Some((t, v, ..)), Some(current)) = (&self.last, &self.current) {
            if (*t, *v) == (term, version) {
                return current.clone();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let delta = self.last.as_ref().and_then(|(_, _, base, last)| {
            let frame = Frame::AcceptDelta {
                from,
                term,
                version,
                changes: CoordDelta::diff(last, storage),
            };
            let body = codec.encode_frame(&frame).ok()?;
            let mut bytes = Vec::with_capacity(4 + body.len());
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
            Some((*base, bytes))
        });
        self.last = Some((term, version, id, storage.clone()));
        let shared = Arc::new(SharedAccept { id, delta });
        self.current = Some(shared.clone());
        shared
    }
}

/// What a connection writes for one message: bytes shared with the other
/// connections (length prefix included), or a frame of its own.
#[derive(Debug)]
pub enum Encoded<'a> {
    /// A shared `Accept` frame, ready to write.
    Shared(&'a [u8]),
    /// This connection's own frame.
    Own(Frame),
}

/// One connection's sending side: remembers the state of the last `Accept`
/// it encoded (and its number, if it was handed out as a [`SharedAccept`]).
/// Start a new one with each connection.
#[derive(Debug, Default)]
pub struct Encoder {
    last: Option<CoordStorage>,
    last_id: Option<u64>,
}

impl Encoder {
    /// `msg`, an `Accept` handed out as `shared`, as the next on this
    /// connection: the shared bytes if this connection's last `Accept` is
    /// the one they are a delta from, else its own frame.
    pub fn encode_accept<'a>(
        &mut self,
        from: SocketAddrV4,
        msg: Msg,
        shared: &'a SharedAccept,
    ) -> Encoded<'a> {
        if let (Msg::Accept { storage, .. }, Some((base, bytes))) = (&msg, &shared.delta) {
            if self.last.is_some() && self.last_id == Some(*base) {
                self.last = Some(storage.clone());
                self.last_id = Some(shared.id);
                return Encoded::Shared(bytes);
            }
        }
        let frame = self.encode(from, msg);
        self.last_id = Some(shared.id);
        Encoded::Own(frame)
    }

    /// The frame for `msg` from `from`, as the next on this connection.
    pub fn encode(&mut self, from: SocketAddrV4, msg: Msg) -> Frame {
        match msg {
            Msg::Accept {
                term,
                version,
                storage,
            } => {
                let frame = match &self.last {
                    Some(last) => Frame::AcceptDelta {
                        from,
                        term,
                        version,
                        changes: CoordDelta::diff(last, &storage),
                    },
                    None => Frame::Whole {
                        from,
                        msg: Msg::Accept {
                            term,
                            version,
                            storage: storage.clone(),
                        },
                    },
                };
                self.last = Some(storage);
                self.last_id = None;
                frame
            }
            msg => Frame::Whole { from, msg },
        }
    }
}

/// One connection's receiving side: remembers the state of the last
/// `Accept` it decoded.
#[derive(Debug, Default)]
pub struct Decoder {
    last: Option<CoordStorage>,
}

impl Decoder {
    /// The sender and message of `frame`, the next on this connection; an
    /// error if it is not a replica's message or a delta has no base (the
    /// connection is then closed).
    pub fn decode(&mut self, frame: Frame) -> Result<(SocketAddrV4, Msg), String> {
        match frame {
            Frame::Whole { from, msg } => {
                if !between_replicas(&msg) {
                    return Err(format!(
                        "{} from {from} on a replica connection",
                        crate::wire::MsgKind::of(&msg)
                    ));
                }
                if let Msg::Accept { storage, .. } = &msg {
                    self.last = Some(storage.clone());
                }
                Ok((from, msg))
            }
            Frame::AcceptDelta {
                from,
                term,
                version,
                changes,
            } => {
                let Some(last) = &self.last else {
                    return Err(format!(
                        "an accept delta from {from} with no accept before it"
                    ));
                };
                let storage = match changes {
                    Some(d) => d.apply(last.clone()),
                    None => last.clone(),
                };
                self.last = Some(storage.clone());
                Ok((
                    from,
                    Msg::Accept {
                        term,
                        version,
                        storage,
                    },
                ))
            }
        }
    }
}

/// What the links drop, by reason, for `twopc status` and `/metrics`
/// (`link_dropped`); each drop is also logged at WARN, rate-limited per
/// reason (the first at once, then one line per period with the count
/// since: `core/drops.rs`). Shared by the link's tasks.
#[derive(Debug, Default)]
pub struct LinkStats {
    inner: Mutex<(BTreeMap<&'static str, u64>, DropLog<&'static str>)>,
}

impl LinkStats {
    /// Counts `n` drops for `reason` and logs `what` (rate-limited).
    pub fn dropped(&self, reason: &'static str, n: u64, what: impl FnOnce() -> String) {
        let logged = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            *inner.0.entry(reason).or_default() += n;
            let count = inner.0[reason];
            inner
                .1
                .note(reason, tokio::time::Instant::now())
                .map(|since| (count, since))
        };
        if let Some((count, since)) = logged {
            tracing::warn!(reason, count, since, "replica link dropped: {}", what());
        }
    }

    /// The counts so far, by reason.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
}

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Messages waiting for one peer's connection; more are dropped.
const QUEUE: usize = 256;
/// Bytes a replica connection's reader takes from the socket at a time.
const READ_BUFFER: usize = 64 * 1024;

/// What an incoming connection must prove, and how many may be proving it
/// at once. A peer writes its first frame as soon as it has connected, so
/// a connection that has not delivered a valid frame (the cluster key's MAC
/// over a peer's name) is a stranger's, or broken: it is closed after
/// `first_frame`, and at most `unproven` such connections are open at once
/// (more are closed as they arrive). A connection from an address no
/// replica connects from is closed at once (see [`Sources`]). Without these, idle connections from a stranger would each hold a task,
/// a buffer and a file descriptor for as long as the stranger liked, until
/// the node could accept no more, its peers' included.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a new connection has to deliver its first valid frame.
    pub first_frame: Duration,
    /// Connections without a valid frame yet, at most.
    pub unproven: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_frame: Duration::from_secs(5),
            unproven: 16,
        }
    }
}

/// Where replicas connect from. Each replica connects from the address it
/// listens on (its `bind` in the cluster file, which is its `address`
/// unless that is a public address translated to it). So the others know
/// where its connections come from, and close any other at once. A replica
/// that listens on every address (`0.0.0.0`) connects from whichever the
/// system picks: then nobody can know, and connections from anywhere are
/// taken (within [`Limits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    /// The address this replica connects from (`None`: the system picks).
    pub own: Option<Ipv4Addr>,
    /// The addresses the other replicas may connect from (`None`: any).
    pub peers: Option<Vec<Ipv4Addr>>,
}

impl Sources {
    /// From every replica's `(address, bind)`, this one's `own_bind`
    /// included: each connects from its bind address, and a peer whose
    /// traffic is translated may also appear from its public address.
    pub fn of(own_bind: Ipv4Addr, replicas: &[(SocketAddrV4, SocketAddrV4)]) -> Sources {
        let known = |ip: &Ipv4Addr| !ip.is_unspecified();
        let peers = replicas.iter().all(|(_, bind)| known(bind.ip())).then(|| {
            let mut ips: Vec<Ipv4Addr> = replicas
                .iter()
                .flat_map(|(address, bind)| [*address.ip(), *bind.ip()])
                .collect();
            ips.sort_unstable();
            ips.dedup();
            ips
        });
        Sources {
            own: known(&own_bind).then_some(own_bind),
            peers,
        }
    }
}

/// The TCP links of one replica to the others: a listener, and a writer
/// task per peer. Dropped, its tasks stop.
#[derive(Debug)]
pub struct PeerLink {
    me: SocketAddrV4,
    codec: Codec,
    accepts: AcceptFrames,
    writers: HashMap<SocketAddrV4, mpsc::Sender<Outbound>>,
    incoming: mpsc::Receiver<(SocketAddrV4, Msg)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stats: Arc<LinkStats>,
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl PeerLink {
    /// Links replica `me` (its UDP address, which names it) to `peers`,
    /// accepting their connections on `listener`, connecting and accepting
    /// connections as `sources` says, with `limits` on incoming ones.
    pub fn start(
        listener: TcpListener,
        me: SocketAddrV4,
        peers: &[SocketAddrV4],
        codec: Codec,
        sources: Sources,
        limits: Limits,
    ) -> PeerLink {
        let (deliver, incoming) = mpsc::channel(QUEUE);
        let stats = Arc::new(LinkStats::default());
        let incoming_side = accept(
            listener,
            sources.peers,
            limits,
            codec.clone(),
            deliver,
            stats.clone(),
        );
        let mut tasks = vec![tokio::spawn(incoming_side)];
        let mut writers = HashMap::new();
        for &peer in peers.iter().filter(|p| **p != me) {
            let (tx, rx) = mpsc::channel(QUEUE);
            writers.insert(peer, tx);
            let writer = write(me, sources.own, peer, codec.clone(), rx, stats.clone());
            tasks.push(tokio::spawn(writer));
        }
        PeerLink {
            me,
            codec,
            accepts: AcceptFrames::default(),
            writers,
            incoming,
            tasks,
            stats,
        }
    }

    /// What the links dropped so far (shared with their tasks).
    pub fn stats(&self) -> Arc<LinkStats> {
        self.stats.clone()
    }

    /// Hands `msg` to the connection to `to`; dropped if `to` is not a peer
    /// or its queue is full (the protocol tolerates loss). An `Accept` goes
    /// with its frame encoded once for all connections ([`AcceptFrames`]).
    pub fn send(&mut self, to: SocketAddr, msg: Msg) {
        let SocketAddr::V4(to) = to else { return };
        match self.writers.get(&to) {
            Some(w) => {
                let shared = match &msg {
                    Msg::Accept {
                        term,
                        version,
                        storage,
                    } => Some(
                        self.accepts
                            .frame(self.me, *term, *version, storage, &self.codec),
                    ),
                    _ => None,
                };
                if w.try_send(Outbound { msg, shared }).is_err() {
                    let me = self.me;
                    self.stats.dropped("queue_full", 1, || {
                        format!("{me}: the queue to replica {to} is full: message dropped")
                    });
                }
            }
            None => {
                let me = self.me;
                self.stats.dropped("not_a_peer", 1, || {
                    format!("{me}: {to} is not a peer replica: message dropped")
                });
            }
        }
    }

    /// The next message from a peer.
    pub async fn recv(&mut self) -> Option<(SocketAddrV4, Msg)> {
        self.incoming.recv().await
    }

    /// A message from a peer if one is waiting.
    pub fn try_recv(&mut self) -> Option<(SocketAddrV4, Msg)> {
        self.incoming.try_recv().ok()
    }
}

/// A message waiting for a peer's connection (with, for an `Accept`, its
/// shared frame).
#[derive(Debug)]
struct Outbound {
    msg: Msg,
    shared: Option<Arc<SharedAccept>>,
}

/// Of messages waiting for one peer, those worth sending, in order: an
/// `Accept` followed in the queue by an `Accept` of the same term and a
/// version at least as high is dropped, and so is an `Accepted` followed by
/// a higher one of the same term. Each `Accept` carries the whole state and
/// an acknowledgement of version v counts for every version below it, so
/// the later message says all the earlier one did; dropping the earlier one
/// is a message loss, which the protocol tolerates (and the encoder diffs
/// the next `Accept` against the last one it *sent*, so deltas stay whole).
pub fn coalesce(queue: Vec<Msg>) -> Vec<Msg> {
    let keep = worth_sending(&queue.iter().collect::<Vec<_>>());
    queue
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect()
}

/// Which of `queue` [`coalesce`] keeps.
fn worth_sending(queue: &[&Msg]) -> Vec<bool> {
    let superseded = |i: usize, msg: &Msg| {
        queue[i + 1..].iter().any(|later| match (msg, later) {
            (
                Msg::Accept { term, version, .. },
                Msg::Accept {
                    term: t,
                    version: v,
                    ..
                },
            )
            | (
                Msg::Accepted { term, version },
                Msg::Accepted {
                    term: t,
                    version: v,
                },
            ) => t == term && v >= version,
            _ => false,
        })
    };
    queue
        .iter()
        .enumerate()
        .map(|(i, m)| !superseded(i, m))
        .collect()
}

/// Writes `peer`'s messages, connecting when needed: every message waiting
/// is taken at once, coalesced ([`coalesce`]) and written with one write
/// (the frames back to back). On an error the messages and the connection
/// are dropped.
async fn write(
    me: SocketAddrV4,
    source: Option<Ipv4Addr>,
    peer: SocketAddrV4,
    codec: Codec,
    mut rx: mpsc::Receiver<Outbound>,
    stats: Arc<LinkStats>,
) {
    let mut conn: Option<(TcpStream, Encoder)> = None;
    let mut bytes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut queue = vec![first];
        while let Ok(msg) = rx.try_recv() {
            queue.push(msg);
        }
        if conn.is_none() {
            match tokio::time::timeout(CONNECT_TIMEOUT, connect(source, peer)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    conn = Some((stream, Encoder::default()));
                }
                Ok(Err(e)) => {
                    stats.dropped("unsent", queue.len() as u64, || {
                        format!("{me}: cannot connect to replica {peer} ({e}): messages dropped")
                    });
                    continue;
                }
                Err(_) => {
                    stats.dropped("unsent", queue.len() as u64, || {
                        format!("{me}: connecting to replica {peer} timed out: messages dropped")
                    });
                    continue;
                }
            }
        }
        let Some((stream, encoder)) = &mut conn else {
            continue;
        };
        bytes.clear();
        let mut broken = false;
        let keep = worth_sending(&queue.iter().map(|o| &o.msg).collect::<Vec<_>>());
        let written = keep.iter().filter(|k| **k).count() as u64;
        let queue = queue
            .into_iter()
            .zip(keep)
            .filter_map(|(o, k)| k.then_some(o));
        for Outbound { msg, shared } in queue {
            let frame = match &shared {
                Some(shared) => match encoder.encode_accept(me, msg, shared) {
                    Encoded::Shared(b) => {
                        bytes.extend_from_slice(b);
                        continue;
                    }
                    Encoded::Own(frame) => frame,
                },
                None => encoder.encode(me, msg),
            };
            match codec.encode_frame(&frame) {
                Ok(b) => {
                    bytes.extend_from_slice(&(b.len() as u32).to_be_bytes());
                    bytes.extend_from_slice(&b);
                }
                Err(e) => {
                    stats.dropped("unencodable", written, || {
                        format!(
                            "{me}: cannot encode a frame to replica {peer} ({e}): messages dropped"
                        )
                    });
                    broken = true; // The encoder counted it as sent: start over.
                    break;
                }
            }
        }
        if broken {
            conn = None;
            continue;
        }
        if let Err(e) = stream.write_all(&bytes).await {
            stats.dropped("unsent", written, || {
                format!("{me}: connection to replica {peer} lost ({e}): messages dropped")
            });
            conn = None;
        }
    }
}

/// Connects to `peer` from `source`, if given, so that the peer sees a
/// connection from an address it knows (see [`Sources`]).
async fn connect(source: Option<Ipv4Addr>, peer: SocketAddrV4) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::V4(SocketAddrV4::new(ip, 0)))?;
    }
    socket.connect(SocketAddr::V4(peer)).await
}

/// Accepts peers' connections, one reader task each, within [`Limits`]:
/// only from where replicas connect from (`None`: anywhere), and only
/// `unproven` at once that have not yet delivered a valid frame.
async fn accept(
    listener: TcpListener,
    replicas: Option<Vec<Ipv4Addr>>,
    limits: Limits,
    codec: Codec,
    deliver: mpsc::Sender<(SocketAddrV4, Msg)>,
    stats: Arc<LinkStats>,
) {
    let unproven = Arc::new(Semaphore::new(limits.unproven));
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let known = match (from.ip(), &replicas) {
                    (_, None) => true,
                    (IpAddr::V4(ip), Some(replicas)) => replicas.contains(&ip),
                    (IpAddr::V6(_), Some(_)) => false,
                };
                if !known {
                    // Rate-limited: a stranger must not be able to fill the log.
                    stats.dropped("stranger", 1, || {
                        format!("a connection from {from}, not a replica's address: closed")
                    });
                    continue;
                }
                let Ok(permit) = unproven.clone().try_acquire_owned() else {
                    stats.dropped("unproven_limit", 1, || {
                        format!(
                            "a connection from {from}: too many connections still unproven: closed"
                        )
                    });
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let deadline = tokio::time::Instant::now() + limits.first_frame;
                let proving = Some((permit, deadline));
                let stats = stats.clone();
                tokio::spawn(read(
                    stream,
                    from,
                    proving,
                    codec.clone(),
                    deliver.clone(),
                    stats,
                ));
            }
            Err(e) => {
                tracing::warn!("accepting a replica connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one connection's frames until it ends or a frame is bad (then it
/// is closed: the sender starts a new one, whole). While `proving`, the
/// connection holds one of the unproven places until its first valid
/// frame, which must be whole by the deadline.
async fn read(
    stream: TcpStream,
    from: SocketAddr,
    mut proving: Option<(OwnedSemaphorePermit, tokio::time::Instant)>,
    codec: Codec,
    deliver: mpsc::Sender<(SocketAddrV4, Msg)>,
    stats: Arc<LinkStats>,
) {
    let mut decoder = Decoder::default();
    // Buffered: a frame's length and body (and the frames written with it)
    // come in with one read, not one per field.
    let mut stream = tokio::io::BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let bytes = match &proving {
            Some((_, deadline)) => {
                match tokio::time::timeout_at(*deadline, read_frame(&mut stream, from, &stats))
                    .await
                {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        stats.dropped("no_frame_in_time", 1, || {
                            format!("a connection from {from}: no valid frame in time: closed")
                        });
                        return;
                    }
                }
            }
            None => read_frame(&mut stream, from, &stats).await,
        };
        let Some(bytes) = bytes else { return };
        let decoded = match codec.decode_frame::<Frame>(&bytes) {
            Ok(frame) => decoder.decode(frame).map_err(|e| ("bad_frame", e)),
            Err(e) => Err((e.reason().as_str(), e.to_string())),
        };
        match decoded {
            Ok(m) => {
                proving = None; // A peer's: its place goes to the next.
                if deliver.send(m).await.is_err() {
                    return; // The node stopped.
                }
            }
            Err((reason, why)) => {
                let hint = if reason.ends_with("_mac") {
                    "; does every replica have the cluster key?"
                } else {
                    ""
                };
                stats.dropped(reason, 1, || {
                    format!("replica connection from {from} closed: {why}{hint}")
                });
                return;
            }
        }
    }
}

/// One frame's bytes, or `None` when the connection ended or announced a
/// frame too big.
async fn read_frame(
    stream: &mut tokio::io::BufReader<TcpStream>,
    from: SocketAddr,
    stats: &LinkStats,
) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        let why = Reject::Oversized(len);
        stats.dropped("oversized", 1, || {
            format!("replica connection from {from} closed: {why}")
        });
        return None;
    }
    // Grown as bytes arrive: a stranger's huge length allocates nothing.
    let mut bytes = Vec::new();
    match stream.take(len as u64).read_to_end(&mut bytes).await {
        Ok(n) if n == len => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ClusterKey, Format};
    use twopc_model::{Purchase, RequestId, Verdict};

    fn state(outcomes: usize) -> CoordStorage {
        let mut c = CoordStorage::default();
        let contents = Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 1,
            price: 6,
        };
        for i in 0..outcomes {
            let req = RequestId::new(format!("order-{i}"));
            c.outcomes
                .record(req, contents.clone(), None, Verdict::Committed, 100_000);
        }
        c
    }

    fn accept(version: u64, storage: &CoordStorage) -> Msg {
        Msg::Accept {
            term: Term {
                n: 1,
                leader: stateright::actor::Id::from(0),
            },
            version,
            storage: storage.clone(),
        }
    }

    /// A stream of accepts of a growing state: the first frame is whole,
    /// the others are the changes (small), and the receiver rebuilds every
    /// message exactly; other kinds pass as they are.
    #[test]
    fn accepts_after_the_first_are_deltas_and_decode_to_the_same_messages() {
        let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
        let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
        let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
        let mut s = state(20_000);
        let mut sizes = Vec::new();
        for v in 1..=5u64 {
            let msgs = [
                accept(v, &s),
                accept(v, &s), // a heartbeat: nothing new
                Msg::Accepted {
                    term: Term {
                        n: 1,
                        leader: stateright::actor::Id::from(0),
                    },
                    version: v,
                },
            ];
            for msg in msgs {
                let bytes = codec.encode_frame(&enc.encode(me, msg.clone())).unwrap();
                sizes.push(bytes.len());
                let frame = codec.decode_frame::<Frame>(&bytes).unwrap();
                assert_eq!(dec.decode(frame).unwrap(), (me, msg));
            }
            one_more_outcome(&mut s, v);
        }
        assert!(sizes[0] > 500_000, "the first accept is whole: {sizes:?}");
        assert!(
            sizes[1..].iter().all(|n| *n < 400),
            "later accepts are deltas: {sizes:?}"
        );
    }

    /// What one connection writes for `msg` (an `Accept` handed out as
    /// `shared`), and what its receiver makes of it.
    fn over(
        codec: &Codec,
        (enc, dec): (&mut Encoder, &mut Decoder),
        me: SocketAddrV4,
        msg: Msg,
        shared: &SharedAccept,
    ) -> (Vec<u8>, Msg) {
        let bytes = match enc.encode_accept(me, msg, shared) {
            Encoded::Shared(b) => b.to_vec(),
            Encoded::Own(frame) => {
                let b = codec.encode_frame(&frame).unwrap();
                [(b.len() as u32).to_be_bytes().to_vec(), b].concat()
            }
        };
        let frame = codec.decode_frame::<Frame>(&bytes[4..]).unwrap();
        let (from, got) = dec.decode(frame).unwrap();
        assert_eq!(from, me);
        (bytes, got)
    }

    /// An `Accept` handed to two connections is diffed and encoded once:
    /// both write the same bytes, and each receiver rebuilds the very
    /// message. A connection that missed an `Accept` (coalesced away, or
    /// new) writes its own frame instead, and its receiver too rebuilds
    /// every message exactly.
    #[test]
    fn an_accept_is_encoded_once_for_every_connection_that_had_the_one_before() {
        let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
        let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
        let mut frames = AcceptFrames::default();
        let (mut enc_a, mut enc_b, mut enc_c) =
            (Encoder::default(), Encoder::default(), Encoder::default());
        let (mut da, mut db, mut dc) = (Decoder::default(), Decoder::default(), Decoder::default());
        let mut s = state(1_000);
        for v in 1..=6u64 {
            let msg = accept(v, &s);
            let shared = frames.frame(me, term1(), v, &s, &codec);
            let again = frames.frame(me, term1(), v, &s, &codec);
            assert!(Arc::ptr_eq(&shared, &again), "the copy for the next peer");
            let (bytes_a, got_a) = over(&codec, (&mut enc_a, &mut da), me, msg.clone(), &shared);
            assert_eq!(got_a, msg);
            if v != 3 {
                // Connection b missed version 3.
                let (bytes_b, got_b) =
                    over(&codec, (&mut enc_b, &mut db), me, msg.clone(), &shared);
                assert_eq!(got_b, msg);
                // Version 1 goes whole on both; 4 is b's own delta from 2.
                assert_eq!(bytes_a == bytes_b, v != 4, "version {v}");
            }
            if v >= 4 {
                // Connection c starts at version 4: whole, then shared.
                let (bytes_c, got_c) =
                    over(&codec, (&mut enc_c, &mut dc), me, msg.clone(), &shared);
                assert_eq!(got_c, msg);
                assert_eq!(bytes_a == bytes_c, v > 4, "version {v}");
            }
            // A heartbeat: the same version again, nothing new.
            let (_, got) = over(&codec, (&mut enc_a, &mut da), me, msg.clone(), &shared);
            assert_eq!(got, msg);
            one_more_outcome(&mut s, v);
        }
    }

    /// The state after one more purchase, named by `v`, was decided.
    fn one_more_outcome(s: &mut CoordStorage, v: u64) {
        let purchase = Purchase {
            user: "bob".into(),
            sku: "gadget".into(),
            qty: 2,
            price: 3,
        };
        let req = RequestId::new(format!("new-{v}"));
        s.outcomes
            .record(req, purchase, None, Verdict::Committed, 100_000);
    }

    fn term1() -> Term {
        Term {
            n: 1,
            leader: stateright::actor::Id::from(0),
        }
    }

    /// Of a queue for one peer, only the newest `Accept` and the highest
    /// `Accepted` of a term go; other kinds and other terms stay, in order.
    #[test]
    fn a_queue_keeps_only_the_newest_accept_and_the_highest_ack_per_term() {
        let s = state(2);
        let term = |n| Term {
            n,
            leader: stateright::actor::Id::from(0),
        };
        let acc = |n, version| Msg::Accept {
            term: term(n),
            version,
            storage: s.clone(),
        };
        let ack = |n, version| Msg::Accepted {
            term: term(n),
            version,
        };
        let campaign = Msg::Campaign { term: term(2) };
        let queue = vec![
            acc(1, 1),
            ack(1, 4),
            acc(1, 2),
            campaign.clone(),
            ack(1, 5),
            acc(1, 3),
            acc(2, 1),
            ack(2, 1),
        ];
        assert_eq!(
            coalesce(queue),
            vec![campaign, ack(1, 5), acc(1, 3), acc(2, 1), ack(2, 1)]
        );
    }

    /// A node started with `--wire json` still sends its frames in bincode
    /// (whole coordinator states: compact in bincode).
    #[test]
    fn frames_are_bincode_whatever_the_wire_format() {
        let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
        let mut s = state(3);
        s.commits.insert(
            twopc_model::TxnId { epoch: 2, n: 7 },
            RequestId::new("order-1"),
        );
        let key = ClusterKey::random();
        let json = Codec::new(Some(key.clone()), Format::Json);
        let bin = Codec::new(Some(key), Format::Bincode);
        let frame = Encoder::default().encode(me, accept(1, &s));
        let bytes = json.encode_frame(&frame).unwrap();
        assert_eq!(bin.decode_frame::<Frame>(&bytes), Ok(frame.clone()));
        assert_eq!(json.decode_frame::<Frame>(&bytes), Ok(frame));
    }

    /// A delta with no whole accept before it on the connection (a
    /// receiver that missed the start) is an error, never a wrong state.
    #[test]
    fn a_delta_without_its_base_is_refused() {
        let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
        let mut enc = Encoder::default();
        let s = state(3);
        let _first = enc.encode(me, accept(1, &s));
        let second = enc.encode(me, accept(2, &s));
        assert!(matches!(second, Frame::AcceptDelta { .. }));
        let err = Decoder::default().decode(second).unwrap_err();
        assert!(err.contains("no accept before it"), "{err}");
        let purchase = Frame::Whole {
            from: me,
            msg: Msg::Lookup {
                req: RequestId::new("x"),
            },
        };
        assert!(Decoder::default().decode(purchase).is_err());
    }

    /// Three links on loopback: a message to a peer arrives, named by its
    /// sender; a stranger's key is refused (its connection closed).
    #[tokio::test]
    async fn peers_exchange_messages_over_tcp() {
        let (mut links, addrs) = linked(Limits::default()).await;
        let s = state(1_000);
        for v in 1..=3 {
            links[0].send(SocketAddr::V4(addrs[2]), accept(v, &s));
        }
        // In order, ending with the last; earlier ones may have been
        // coalesced away while queued behind the connection.
        let mut last = 0;
        while last < 3 {
            let (from, got) = links[2].recv().await.unwrap();
            let Msg::Accept { version, .. } = got else {
                panic!("{got:?}")
            };
            assert_eq!((from, &got), (addrs[0], &accept(version, &s)));
            assert!(version > last, "{version} after {last}");
            last = version;
        }
        let stranger = Codec::new(Some(ClusterKey::random()), Format::Bincode);
        let bytes = stranger
            .encode_frame(&Encoder::default().encode(addrs[0], accept(9, &s)))
            .unwrap();
        let mut conn = TcpStream::connect(addrs[1]).await.unwrap();
        conn.write_all(&(bytes.len() as u32).to_be_bytes())
            .await
            .unwrap();
        conn.write_all(&bytes).await.unwrap();
        let mut rest = Vec::new();
        // Closed by the receiver, nothing delivered; counted by reason.
        let _ = conn.read_to_end(&mut rest).await;
        assert!(links[1].try_recv().is_none());
        assert_eq!(links[1].stats().snapshot().get("bad_mac"), Some(&1));
    }

    /// Where replicas connect from, read off the cluster file's addresses.
    #[test]
    fn sources_follow_the_bind_addresses() {
        let at = |s: &str| -> SocketAddrV4 { s.parse().unwrap() };
        let ip = |s: &str| -> Ipv4Addr { s.parse().unwrap() };
        // Each listens on its address: connections come from those.
        let plain = [
            (at("10.0.0.1:7000"), at("10.0.0.1:7000")),
            (at("10.0.0.2:7000"), at("10.0.0.2:7000")),
            (at("10.0.0.3:7000"), at("10.0.0.3:7000")),
        ];
        let s = Sources::of(ip("10.0.0.1"), &plain);
        assert_eq!(s.own, Some(ip("10.0.0.1")));
        let peers = vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")];
        assert_eq!(s.peers, Some(peers));
        // A public address translated to a private one: both are taken,
        // and it connects from the private one it can bind.
        let mut nat = plain;
        nat[1] = (at("203.0.113.5:7000"), at("10.0.0.2:7000"));
        let s = Sources::of(ip("10.0.0.2"), &nat);
        assert_eq!(s.own, Some(ip("10.0.0.2")));
        let peers = s.peers.unwrap();
        assert!(peers.contains(&ip("203.0.113.5")) && peers.contains(&ip("10.0.0.2")));
        // One listens everywhere: nobody can know where it connects from.
        let mut any = plain;
        any[2] = (at("10.0.0.3:7000"), at("0.0.0.0:7000"));
        assert_eq!(Sources::of(ip("10.0.0.1"), &any).peers, None);
        assert_eq!(Sources::of(ip("0.0.0.0"), &any).own, None);
    }

    /// Three linked replicas on loopback, with `limits`.
    async fn linked(limits: Limits) -> (Vec<PeerLink>, Vec<SocketAddrV4>) {
        let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let SocketAddr::V4(a) = l.local_addr().unwrap() else {
                unreachable!()
            };
            addrs.push(a);
            listeners.push(l);
        }
        let links = listeners
            .into_iter()
            .zip(&addrs)
            .map(|(l, a)| {
                let sources = Sources {
                    own: Some(*a.ip()),
                    peers: Some(vec![*a.ip()]),
                };
                PeerLink::start(l, *a, &addrs, codec.clone(), sources, limits)
            })
            .collect();
        (links, addrs)
    }

    /// Whether the other side closes `conn` within `within`.
    async fn closed(conn: &mut TcpStream, within: Duration) -> bool {
        let mut rest = Vec::new();
        tokio::time::timeout(within, conn.read_to_end(&mut rest))
            .await
            .is_ok()
    }

    /// Idle connections cannot crowd the peers out. With a deadline far
    /// away: one from an address that is no replica's is closed at once;
    /// from a replica's address at most `unproven` are kept, the others are
    /// closed at once.
    #[tokio::test]
    async fn strangers_are_refused_beyond_the_unproven_places() {
        let limits = Limits {
            first_frame: Duration::from_secs(120),
            unproven: 4,
        };
        let (links, addrs) = linked(limits).await;
        let soon = Duration::from_secs(20);
        // Not a replica's address (127.0.0.2 is loopback too).
        let elsewhere = tokio::net::TcpSocket::new_v4().unwrap();
        elsewhere.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut conn = elsewhere.connect(SocketAddr::V4(addrs[1])).await.unwrap();
        assert!(
            closed(&mut conn, soon).await,
            "a stranger's address is refused"
        );
        let mut idle = Vec::new();
        for _ in 0..10 {
            idle.push(TcpStream::connect(addrs[1]).await.unwrap());
        }
        for conn in &mut idle[4..] {
            assert!(closed(conn, soon).await, "beyond the places: closed");
        }
        for conn in &mut idle[..4] {
            let kept = !closed(conn, Duration::from_millis(200)).await;
            assert!(kept, "the first four wait for their deadline");
        }
        // Every refusal is counted, by reason.
        let dropped = links[1].stats().snapshot();
        assert_eq!(dropped.get("stranger"), Some(&1), "{dropped:?}");
        assert_eq!(dropped.get("unproven_limit"), Some(&6), "{dropped:?}");
    }

    /// With a near deadline: idle connections are closed at it, then a peer
    /// gets through, and its connection, proven by its first frame, stays
    /// open past the deadline.
    #[tokio::test]
    async fn idle_connections_are_closed_at_the_deadline_and_peers_get_through() {
        let limits = Limits {
            first_frame: Duration::from_millis(300),
            unproven: 4,
        };
        let (mut links, addrs) = linked(limits).await;
        let soon = Duration::from_secs(20);
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(TcpStream::connect(addrs[1]).await.unwrap());
        }
        for conn in &mut idle {
            assert!(closed(conn, soon).await, "closed at the deadline");
        }
        let s = state(10);
        for v in [1, 2] {
            if v == 2 {
                tokio::time::sleep(limits.first_frame * 3).await;
            }
            links[0].send(SocketAddr::V4(addrs[1]), accept(v, &s));
            let got = tokio::time::timeout(soon, links[1].recv()).await;
            let (from, msg) = got.expect("delivered").unwrap();
            assert_eq!((from, msg), (addrs[0], accept(v, &s)));
        }
    }
}
