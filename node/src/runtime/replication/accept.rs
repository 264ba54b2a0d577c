//! The incoming side of the replicas' TCP links: which connections are
//! taken ([`Limits`] on unproven ones, [`Sources`] for where replicas
//! connect from), and the reader task of each, which decodes its frames and
//! hands the messages on. Uses `frame` (the codec) and `crate::runtime::wire` (the
//! envelope and its limits).

use super::frame::Decoder;
use super::LinkStats;
use crate::runtime::wire::{Codec, Reject, MAX_FRAME};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use twopc_model::Msg;

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

/// Accepts peers' connections, one reader task each, within [`Limits`]:
/// only from where replicas connect from (`None`: anywhere), and only
/// `unproven` at once that have not yet delivered a valid frame.
pub(super) async fn accept(
    listener: TcpListener,
    replicas: Option<Vec<Ipv4Addr>>,
    limits: Limits,
    codec: Codec,
    deliver: mpsc::Sender<(SocketAddrV4, Msg, u8)>,
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
    deliver: mpsc::Sender<(SocketAddrV4, Msg, u8)>,
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
        let decoded = decoder.read(&codec, &bytes);
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
