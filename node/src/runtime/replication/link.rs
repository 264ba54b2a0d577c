//! The outgoing side of the replicas' TCP links: [`PeerLink`], the handle a
//! replica's runtime holds, and a writer task per peer that connects (from
//! the address [`Sources`] says), coalesces its queue and writes frames.
//! Uses `frame` (the codec), `coalesce`, `accept` (the incoming side it
//! starts) and `crate::runtime::wire` (the envelope).

use super::accept::{accept, Limits, Sources};
use super::coalesce::worth_sending;
use super::frame::{AcceptFrames, Encoded, Encoder, SharedAccept};
use super::LinkStats;
use crate::runtime::wire::Codec;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use twopc_model::Msg;

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Messages waiting for one peer's connection; more are dropped.
const QUEUE: usize = 256;

/// The TCP links of one replica to the others: a listener, and a writer
/// task per peer. Dropped, its tasks stop.
#[derive(Debug)]
pub struct PeerLink {
    me: SocketAddrV4,
    codec: Codec,
    accepts: AcceptFrames,
    writers: HashMap<SocketAddrV4, mpsc::Sender<Outbound>>,
    incoming: mpsc::Receiver<(SocketAddrV4, Msg, u8)>,
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
    /// Its frame says it waited for `waited` durable writes.
    pub fn send(&mut self, to: SocketAddr, msg: Msg, waited: u8) {
        let SocketAddr::V4(to) = to else { return };
        match self.writers.get(&to) {
            Some(w) => {
                let out = Outbound::new(self.me, msg, waited, &mut self.accepts, &self.codec);
                if w.try_send(out).is_err() {
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

    /// The next message from a peer, and the durable writes it waited for.
    pub async fn recv(&mut self) -> Option<(SocketAddrV4, Msg, u8)> {
        self.incoming.recv().await
    }

    /// A message from a peer if one is waiting.
    pub fn try_recv(&mut self) -> Option<(SocketAddrV4, Msg, u8)> {
        self.incoming.try_recv().ok()
    }
}

/// A message waiting for a peer's connection (with, for an `Accept`, its
/// shared frame).
#[derive(Debug)]
pub struct Outbound {
    msg: Msg,
    shared: Option<Arc<SharedAccept>>,
    /// The durable writes it waited for (`core/waited.rs`).
    waited: u8,
}

impl Outbound {
    /// `msg`, handed by replica `me` to one of its links, having waited
    /// for `waited` durable writes; an `Accept` with its frame encoded once
    /// for all connections (`accepts`).
    pub fn new(
        me: SocketAddrV4,
        msg: Msg,
        waited: u8,
        accepts: &mut AcceptFrames,
        codec: &Codec,
    ) -> Self {
        let shared = match &msg {
            Msg::Accept {
                term,
                version,
                storage,
            } => Some(accepts.frame(me, *term, *version, storage, waited, codec)),
            _ => None,
        };
        Outbound {
            msg,
            shared,
            waited,
        }
    }

    /// The message.
    pub fn msg(&self) -> &Msg {
        &self.msg
    }
}

/// What a connection's writer writes for the messages waiting for it at
/// once: `queue` coalesced ([`worth_sending`]) and encoded as the next
/// frames of the connection whose sending side is `encoder`, appended to
/// `bytes` (each behind its 4-byte length). `Ok`: how many messages the
/// bytes carry. `Err`: a frame could not be encoded (the encoder counted
/// it as sent: the connection must start over), with how many were lost.
/// The link's writer task and the simulator (the harness's `sim`) both write
/// through this.
pub fn encode_queue(
    me: SocketAddrV4,
    encoder: &mut Encoder,
    codec: &Codec,
    queue: Vec<Outbound>,
    bytes: &mut Vec<u8>,
) -> Result<u64, (u64, String)> {
    let keep = worth_sending(&queue.iter().map(|o| &o.msg).collect::<Vec<_>>());
    let written = keep.iter().filter(|k| **k).count() as u64;
    let waits = superseded_waits(&queue, &keep);
    let queue = (queue.into_iter().zip(waits).zip(keep)).filter_map(|(o, k)| k.then_some(o));
    for (
        Outbound {
            msg,
            shared,
            waited: _,
        },
        waited,
    ) in queue
    {
        // A shared frame says another count: this one encodes its own.
        let shared = shared.filter(|s| s.waited() == waited);
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
        let b = (codec.encode_frame_waited(&frame, waited)).map_err(|e| (written, e))?;
        bytes.extend_from_slice(&(b.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&b);
    }
    Ok(written)
}

/// Each message's count of durable writes waited for; an `Accept`'s
/// raised to the highest of the `Accept`s it supersedes: coalescing drops
/// them, and the state it carries holds theirs, so their causes ride on it
/// (a leader's decision and its forgetting of an acknowledged commit, saved
/// in one batch, go as one `Accept`). An `Accepted` coalesced away is lost,
/// as the protocol takes it: its count with it (the later one is the
/// answer to a later `Accept`, and raising it would charge a new purchase
/// with an earlier one's chain; `core/waited.rs`).
fn superseded_waits(queue: &[Outbound], keep: &[bool]) -> Vec<u8> {
    let mut waits: Vec<u8> = queue.iter().map(|o| o.waited).collect();
    for i in 0..queue.len() {
        if keep[i] || !matches!(queue[i].msg, Msg::Accept { .. }) {
            continue;
        }
        let later = (i + 1..queue.len()).find(|&j| supersedes(&queue[j].msg, &queue[i].msg));
        if let Some(j) = later {
            waits[j] = waits[j].max(waits[i]);
        }
    }
    waits
}

/// Whether `later` says all `earlier` did (as [`worth_sending`] judges).
fn supersedes(later: &Msg, earlier: &Msg) -> bool {
    worth_sending(&[earlier, later]) == [false, true]
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
        let written = match encode_queue(me, encoder, &codec, queue, &mut bytes) {
            Ok(written) => written,
            Err((written, e)) => {
                stats.dropped("unencodable", written, || {
                    format!("{me}: cannot encode a frame to replica {peer} ({e}): messages dropped")
                });
                conn = None;
                continue;
            }
        };
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
