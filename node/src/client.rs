//! Talking to a cluster from outside: purchases (the model's client actor,
//! run by the same runtime as the nodes) and status requests.

use crate::admin::NodeView;
use crate::core::Config;
use crate::error::{Error, Result};
use crate::faults::Faults;
use crate::shell::{Observer, Shell};
use crate::storage::MemStore;
use crate::transport::UdpTransport;
use crate::wire::{Codec, Payload};
use serde::Serialize;
use stateright::actor::Id;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::time::Duration;
use twopc_model::{AbortReason, Client, Node, Outcome, Purchase, State, Verdict};

/// A purchase's result as `twopc purchase --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct PurchaseReport {
    /// `committed`, `aborted` or `timeout`.
    pub outcome: String,
    /// Why it aborted (`insufficient_funds`, ...), if it did.
    pub reason: Option<String>,
    /// The transaction, `epoch.n`, if one was attempted.
    pub txn: Option<String>,
    /// The request, `client#seq`.
    pub req: Option<String>,
    /// Seconds from start to outcome.
    pub seconds: f64,
}

/// The snake_case name of an abort reason.
pub fn reason_name(r: AbortReason) -> &'static str {
    match r {
        AbortReason::InsufficientFunds => "insufficient_funds",
        AbortReason::InsufficientStock => "insufficient_stock",
        AbortReason::UnknownUser => "unknown_user",
        AbortReason::UnknownSku => "unknown_sku",
        AbortReason::VoteTimeout => "vote_timeout",
        AbortReason::InvalidRequest => "invalid_request",
    }
}

impl PurchaseReport {
    /// The report of `outcome` (`None`: timed out).
    pub fn of(outcome: Option<&Outcome>, seconds: f64) -> Self {
        match outcome {
            None => PurchaseReport {
                outcome: "timeout".into(),
                reason: None,
                txn: None,
                req: None,
                seconds,
            },
            Some(o) => PurchaseReport {
                outcome: match o.verdict {
                    Verdict::Committed => "committed".into(),
                    Verdict::Aborted(_) => "aborted".into(),
                },
                reason: match o.verdict {
                    Verdict::Committed => None,
                    Verdict::Aborted(r) => Some(reason_name(r).into()),
                },
                txn: o.txn.map(|t| t.to_string()),
                req: Some(o.req.to_string()),
                seconds,
            },
        }
    }

    /// One line for people.
    pub fn render(&self) -> String {
        let txn = self
            .txn
            .as_ref()
            .map(|t| format!(" (txn {t})"))
            .unwrap_or_default();
        match (&*self.outcome, &self.reason) {
            ("aborted", Some(r)) => format!("aborted: {}{txn}", r.replace('_', " ")),
            (o, _) => format!("{o}{txn}"),
        }
    }
}

/// A socket for talking to `peer`: bound to the unspecified address, or to
/// loopback when the peer is on loopback.
async fn socket_towards(peer: SocketAddrV4) -> Result<UdpTransport> {
    let ip = if peer.ip().is_loopback() {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        std::net::Ipv4Addr::UNSPECIFIED
    };
    UdpTransport::bind(SocketAddr::V4(SocketAddrV4::new(ip, 0))).await
}

/// Runs the model's client actor making `purchases` in order against the
/// coordinator at `coordinator`, until all have an outcome or `timeout`
/// passes. `on_outcome` sees each outcome as it arrives. Returns the outcomes.
pub async fn run_client(
    coordinator: SocketAddrV4,
    purchases: Vec<Purchase>,
    codec: Codec,
    timeout: Duration,
    mut on_outcome: impl FnMut(&Outcome) + Send + 'static,
) -> Result<Vec<Outcome>> {
    let transport = socket_towards(coordinator).await?;
    let me = match transport.local_addr_v4() {
        Some(a) => a,
        None => return Err(Error::Other("client socket is not IPv4".into())),
    };
    let wanted = purchases.len();
    let actor = Node::Client(Client {
        coordinator: Id::from(coordinator),
        id: rand::random(),
        purchases,
    });
    let cfg = Config {
        name: "client".into(),
        codec,
        faults: Faults::default(),
        batch_max: 16,
    };
    let mut reported = 0;
    let observer: Observer = Box::new(move |state: &State| {
        let State::Client(c) = state else {
            return ControlFlow::Break(());
        };
        for o in &c.seen[reported..] {
            on_outcome(o);
        }
        reported = c.seen.len();
        if c.seen.len() >= wanted {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    let rt = Shell::new(
        actor,
        Id::from(me),
        transport,
        MemStore::default(),
        None,
        cfg,
    )
    .observe(observer);
    let state = rt.run(tokio::time::sleep(timeout)).await?;
    match state {
        State::Client(c) => Ok(c.seen),
        _ => unreachable!("a client runtime has client state"),
    }
}

/// Asks the node at `addr` for its view, retrying until `timeout`.
pub async fn status(
    addr: SocketAddrV4,
    codec: &Codec,
    timeout: Duration,
) -> Result<Option<NodeView>> {
    use crate::transport::Transport;
    let transport = socket_towards(addr).await?;
    let nonce: u64 = rand::random();
    let request = codec
        .encode(&Payload::StatusRequest { nonce })
        .map_err(Error::Encode)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    while tokio::time::Instant::now() < deadline {
        let _ = transport.send(&request, SocketAddr::V4(addr)).await;
        let retry = tokio::time::Instant::now() + Duration::from_millis(300);
        while tokio::time::Instant::now() < retry.min(deadline) {
            match tokio::time::timeout_at(retry.min(deadline), transport.recv(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    if let Ok(Payload::StatusReply { nonce: got, view }) = codec.decode(&buf[..n]) {
                        if got == nonce {
                            return Ok(Some(*view));
                        }
                    }
                }
                Ok(Err(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    Ok(None)
}
