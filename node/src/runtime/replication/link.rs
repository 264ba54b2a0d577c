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
                let out = Outbound::new(self.me, msg, &mut self.accepts, &self.codec);
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
pub struct Outbound {
    msg: Msg,
    shared: Option<Arc<SharedAccept>>,
}

impl Outbound {
    /// `msg`, handed by replica `me` to one of its links; an `Accept` with
    /// its frame encoded once for all connections (`accepts`).
    pub fn new(me: SocketAddrV4, msg: Msg, accepts: &mut AcceptFrames, codec: &Codec) -> Self {
        let shared = match &msg {
            Msg::Accept {
                term,
                version,
                storage,
            } => Some(accepts.frame(me, *term, *version, storage, codec)),
            _ => None,
        };
        Outbound { msg, shared }
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
        let b = codec.encode_frame(&frame).map_err(|e| (written, e))?;
        bytes.extend_from_slice(&(b.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&b);
    }
    Ok(written)
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
