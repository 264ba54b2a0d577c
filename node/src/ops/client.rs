//! Talking to a cluster from outside: purchases (the model's client actor,
//! run by the same runtime as the nodes) and status requests.

use crate::runtime::admin::NodeView;
use crate::runtime::core::Config;
use crate::runtime::error::{Error, Result};
use crate::runtime::faults::Faults;
use crate::runtime::shell::{Observer, Shell};
use crate::runtime::storage::MemStore;
use crate::runtime::transport::UdpTransport;
use crate::runtime::wire::{Codec, Payload};
use serde::Serialize;
use stateright::actor::Id;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::time::Duration;
use twopc_model::{
    AbortReason, Client, Mode, Msg, Node, Outcome, Purchase, Rejection, Request, RequestId, State,
    Status, Verdict,
};

/// How a purchase ended, as `twopc purchase` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PurchaseOutcome {
    /// Both participants applied it.
    Committed,
    /// Nothing changed (see the reason).
    Aborted,
    /// Not made: the id belongs to a different purchase, or is invalid.
    Refused,
    /// The coordinator does not know the id (never seen, or its outcome
    /// expired) and did not start it.
    Unknown,
    /// `twopc outcome`: an attempt is still deciding, or its commit is
    /// being delivered.
    #[serde(rename = "in_progress")]
    InProgress,
    /// No outcome arrived in time (the purchase may still complete).
    Timeout,
}

impl std::fmt::Display for PurchaseOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PurchaseOutcome::Committed => "committed",
            PurchaseOutcome::Aborted => "aborted",
            PurchaseOutcome::Refused => "refused",
            PurchaseOutcome::Unknown => "unknown",
            PurchaseOutcome::InProgress => "in progress",
            PurchaseOutcome::Timeout => "timeout",
        })
    }
}

/// A purchase's result as `twopc purchase --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct PurchaseReport {
    /// `committed`, `aborted` or `timeout`.
    pub outcome: PurchaseOutcome,
    /// Why it aborted (`insufficient_funds`, ...), if it did.
    #[serde(serialize_with = "serialize_reason")]
    pub reason: Option<AbortReason>,
    /// Why it was refused (`key_reused`, `invalid_id`), if it was.
    #[serde(
        serialize_with = "serialize_refusal",
        skip_serializing_if = "Option::is_none"
    )]
    pub refusal: Option<Rejection>,
    /// The transaction, `epoch.n`, if one was attempted.
    pub txn: Option<String>,
    /// The request's id.
    pub req: Option<String>,
    /// Seconds from start to outcome.
    pub seconds: f64,
    /// On a timeout: what the client could tell about why (see
    /// [`timeout_hint`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn serialize_refusal<S: serde::Serializer>(
    refusal: &Option<Rejection>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match refusal {
        Some(r) => s.serialize_some(r.name()),
        None => s.serialize_none(),
    }
}

fn serialize_reason<S: serde::Serializer>(
    reason: &Option<AbortReason>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match reason {
        Some(r) => s.serialize_some(r.name()),
        None => s.serialize_none(),
    }
}

impl PurchaseReport {
    /// The report of `outcome` (`None`: timed out).
    pub fn of(outcome: Option<&Outcome>, seconds: f64) -> Self {
        match outcome {
            None => PurchaseReport {
                outcome: PurchaseOutcome::Timeout,
                reason: None,
                refusal: None,
                txn: None,
                req: None,
                seconds,
                hint: None,
            },
            Some(o) => PurchaseReport {
                outcome: match o.verdict {
                    Verdict::Committed => PurchaseOutcome::Committed,
                    Verdict::Aborted(_) => PurchaseOutcome::Aborted,
                    Verdict::Refused(_) => PurchaseOutcome::Refused,
                    Verdict::Unknown => PurchaseOutcome::Unknown,
                },
                reason: match o.verdict {
                    Verdict::Aborted(r) => Some(r),
                    Verdict::Committed | Verdict::Refused(_) | Verdict::Unknown => None,
                },
                refusal: match o.verdict {
                    Verdict::Refused(r) => Some(r),
                    _ => None,
                },
                txn: o.txn.map(|t| t.to_string()),
                req: Some(o.req.to_string()),
                seconds,
                hint: None,
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
        match (self.outcome, self.reason, self.refusal) {
            (PurchaseOutcome::Aborted, Some(r), _) => {
                format!("aborted: {}{txn}", r.name().replace('_', " "))
            }
            (PurchaseOutcome::Refused, _, Some(r)) => {
                format!("refused: {}", r.name().replace('_', " "))
            }
            (PurchaseOutcome::Unknown, _, _) => {
                "unknown: the coordinator never saw this id, or its outcome expired".into()
            }
            (o, _, _) => match &self.hint {
                Some(hint) => format!("{o}{txn}: {hint}"),
                None => format!("{o}{txn}"),
            },
        }
    }
}

/// Why a purchase may have had no outcome, as far as a client can tell:
/// `answered` says whether the coordinator (any replica of a replicated
/// one) answered a status request ([`probe`]), which a node answers only to
/// a datagram signed with its own key (a node answers a wrong or missing
/// key with nothing, so that a stranger learns nothing and changes nothing).
/// An answer means the coordinator runs and shares our key: the purchase is
/// merely slow and may still complete. No answer leaves the likely causes.
pub fn timeout_hint(coordinators: &[SocketAddrV4], answered: bool, authenticated: bool) -> String {
    let coordinator = addresses(coordinators);
    match (answered, authenticated) {
        (true, _) => "the coordinator answers (same key) but no outcome came in time; \
             the purchase may still complete"
            .to_string(),
        (false, true) => format!(
            "no authenticated reply from the coordinator at {coordinator}: is it running and \
             reachable, and is this client's cluster key (--key-file, TWOPC_KEY_FILE, \
             TWOPC_KEY) the same as the nodes'? A node silently drops datagrams signed with \
             another key. The purchase may still complete if the coordinator got it"
        ),
        (false, false) => format!(
            "no reply from the coordinator at {coordinator}: is it running and reachable, and \
             does the cluster use a key? This client has none (--key-file, TWOPC_KEY_FILE, \
             TWOPC_KEY), and a node with a key silently drops unsigned datagrams"
        ),
    }
}

/// Whether any of `coordinators` answers a status request before
/// `deadline`, asking from `start` on (not before: a command that gets its
/// outcome at once never asks). Runs beside a purchase or a lookup, so that
/// a command that times out can say why at its deadline rather than after
/// it: `--timeout` bounds the whole command.
pub async fn probe(
    coordinators: Vec<SocketAddrV4>,
    codec: Codec,
    start: tokio::time::Instant,
    deadline: tokio::time::Instant,
) -> Result<bool> {
    tokio::time::sleep_until(start.min(deadline)).await;
    let views = status_all(&coordinators, &codec, deadline, true).await?;
    Ok(views.iter().any(Option::is_some))
}

/// `a`, or `a, b and c`: the coordinator's addresses in a sentence.
fn addresses(addrs: &[SocketAddrV4]) -> String {
    let all: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    match all.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => all.join(""),
    }
}

/// A socket for talking to `peer`: bound to the unspecified address, or to
/// loopback when the peer is on loopback.
pub(crate) async fn socket_towards(peer: SocketAddrV4) -> Result<UdpTransport> {
    let ip = if peer.ip().is_loopback() {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        std::net::Ipv4Addr::UNSPECIFIED
    };
    UdpTransport::bind(SocketAddr::V4(SocketAddrV4::new(ip, 0))).await
}

/// A fresh random request id (128 random bits, 32 hex digits): what a
/// purchase gets when its caller chose none.
pub fn random_request_id() -> RequestId {
    RequestId::new(format!("{:032x}", rand::random::<u128>()))
}

/// Runs the model's client actor making `purchases` in order against the
/// coordinator at `coordinators` (every replica of a replicated one), each a new purchase under a fresh random id,
/// until all have an outcome or `timeout` passes. `on_outcome` sees each
/// outcome as it arrives. Returns the outcomes.
pub async fn run_client(
    coordinators: &[SocketAddrV4],
    purchases: Vec<Purchase>,
    codec: Codec,
    timeout: Duration,
    on_outcome: impl FnMut(&Outcome) + Send + 'static,
) -> Result<Vec<Outcome>> {
    let requests = purchases
        .into_iter()
        .map(|purchase| Request {
            req: random_request_id(),
            op: purchase.into(),
            mode: Mode::New,
        })
        .collect();
    run_requests(coordinators, requests, codec, timeout, on_outcome).await
}

/// Runs the model's client actor making `requests` (ids and modes as the
/// caller chose) in order, until all have an outcome or `timeout` passes.
/// Each request goes to every address in `coordinators`; any may answer.
pub async fn run_requests(
    coordinators: &[SocketAddrV4],
    requests: Vec<Request>,
    codec: Codec,
    timeout: Duration,
    mut on_outcome: impl FnMut(&Outcome) + Send + 'static,
) -> Result<Vec<Outcome>> {
    run_requests_waited(coordinators, requests, codec, timeout, move |o, _| {
        on_outcome(o)
    })
    .await
}

/// [`run_requests`], with `on_outcome` told also how many durable writes
/// each outcome waited for along its causal chain (its envelope's count,
/// `runtime/core/waited.rs`; 0 from a coordinator that does not count).
pub async fn run_requests_waited(
    coordinators: &[SocketAddrV4],
    requests: Vec<Request>,
    codec: Codec,
    timeout: Duration,
    on_outcome: impl FnMut(&Outcome, u8) + Send + 'static,
) -> Result<Vec<Outcome>> {
    run_requests_timed(coordinators, requests, codec, timeout, None, on_outcome).await
}

/// [`run_requests_waited`], marking the client's steps into a timeline
/// written to `timeline` when it stops (`crate::runtime::timeline`; `twopc
/// bench --timeline`).
pub async fn run_requests_timed(
    coordinators: &[SocketAddrV4],
    requests: Vec<Request>,
    codec: Codec,
    timeout: Duration,
    timeline: Option<std::path::PathBuf>,
    mut on_outcome: impl FnMut(&Outcome, u8) + Send + 'static,
) -> Result<Vec<Outcome>> {
    let Some(first) = coordinators.first() else {
        return Err(Error::NoCoordinator {
            to: "send purchases to",
        });
    };
    let transport = socket_towards(*first).await?;
    let me = match transport.local_addr_v4() {
        Some(a) => a,
        None => return Err(Error::ClientNotIpv4),
    };
    let wanted = requests.len();
    let actor = Node::Client(Client {
        coordinators: coordinators.iter().map(|a| Id::from(*a)).collect(),
        id: rand::random(),
        requests,
        // Each next new purchase goes out with the ticket of the one
        // before: no round trip for a ticket but the first's (issue 23).
        keep_ticket: true,
    });
    let cfg = Config {
        name: "client".into(),
        codec,
        faults: Faults::default(),
        batch_max: 16,
    };
    let mut reported = 0;
    let observer: Observer = Box::new(move |state: &State, waited: &[u8]| {
        let State::Client(c) = state else {
            return ControlFlow::Break(());
        };
        for (i, o) in c.seen.iter().enumerate().skip(reported) {
            on_outcome(o, waited.get(i).copied().unwrap_or(0));
        }
        reported = c.seen.len();
        if c.seen.len() >= wanted {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    let mut client = Shell::new(
        actor,
        Id::from(me),
        transport,
        MemStore::default(),
        None,
        cfg,
    )
    .observe(observer);
    if let Some(path) = timeline {
        client = client.timeline(crate::runtime::timeline::Timeline::new(path, Some(me)));
    }
    let state = client.run(tokio::time::sleep(timeout)).await?;
    match state {
        State::Client(c) => Ok(c.seen),
        _ => unreachable!("a client runtime has client state"),
    }
}

/// What the coordinator says of a request id (`twopc outcome`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Decided (committed, aborted) or refused: the outcome it keeps.
    Decided(Outcome),
    /// An attempt is collecting votes, or its commit is being delivered.
    InProgress,
    /// Never seen, or its outcome expired (retention).
    Unknown,
}

/// Asks the coordinator at `coordinators` (every replica; the leader
/// answers) what became of `req`, retrying until `timeout` (`None`: no
/// answer). Asking changes nothing.
pub async fn lookup(
    coordinators: &[SocketAddrV4],
    req: &RequestId,
    codec: &Codec,
    timeout: Duration,
) -> Result<Option<Lookup>> {
    use crate::runtime::transport::Transport;
    let Some(first) = coordinators.first() else {
        return Err(Error::NoCoordinator { to: "ask" });
    };
    let transport = socket_towards(*first).await?;
    let ask = codec
        .encode(&Payload::Protocol(Msg::Lookup { req: req.clone() }))
        .map_err(Error::Encode)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    while tokio::time::Instant::now() < deadline {
        for coordinator in coordinators {
            let _ = transport.send(&ask, SocketAddr::V4(*coordinator)).await;
        }
        let retry = (tokio::time::Instant::now() + Duration::from_millis(300)).min(deadline);
        while let Ok(received) = tokio::time::timeout_at(retry, transport.recv(&mut buf)).await {
            let Ok((n, from)) = received else {
                let pause = tokio::time::Instant::now() + Duration::from_millis(50);
                tokio::time::sleep_until(pause.min(retry)).await;
                break;
            };
            let SocketAddr::V4(from) = from else { continue };
            if !coordinators.contains(&from) {
                continue;
            }
            match codec.decode(&buf[..n]) {
                Ok(Payload::Protocol(Msg::Outcome(o))) if &o.req == req => {
                    return Ok(Some(Lookup::Decided(o)))
                }
                Ok(Payload::Protocol(Msg::Status { req: r, status })) if &r == req => {
                    return Ok(Some(match status {
                        Status::InProgress => Lookup::InProgress,
                        Status::Unknown { .. } => Lookup::Unknown,
                    }))
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

/// Asks the node at `addr` for its view, retrying until `timeout`.
pub async fn status(
    addr: SocketAddrV4,
    codec: &Codec,
    timeout: Duration,
) -> Result<Option<NodeView>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut views = status_all(&[addr], codec, deadline, false).await?;
    Ok(views.pop().flatten())
}

/// Asks every node at `addrs` for its view at once, retrying those that
/// have not answered every 300 ms until all have, or until `deadline` (so
/// that asking many nodes takes no longer than asking one). With `any`,
/// the first answer ends the asking. The views, in the order of `addrs`
/// (`None`: no answer).
pub async fn status_all(
    addrs: &[SocketAddrV4],
    codec: &Codec,
    deadline: tokio::time::Instant,
    any: bool,
) -> Result<Vec<Option<NodeView>>> {
    use crate::runtime::transport::Transport;
    let mut views: Vec<Option<NodeView>> = vec![None; addrs.len()];
    let Some(first) = addrs
        .iter()
        .find(|a| !a.ip().is_loopback())
        .or(addrs.first())
    else {
        return Ok(views);
    };
    let transport = socket_towards(*first).await?;
    // One nonce per node: a reply names its request, whatever address it
    // comes from.
    let nonces: Vec<u64> = addrs.iter().map(|_| rand::random()).collect();
    let mut requests = Vec::with_capacity(addrs.len());
    for nonce in &nonces {
        let request = codec
            .encode(&Payload::StatusRequest { nonce: *nonce })
            .map_err(Error::Encode)?;
        requests.push(request);
    }
    let mut buf = vec![0u8; 65536];
    let done = |views: &[Option<NodeView>]| match any {
        true => views.iter().any(Option::is_some),
        false => views.iter().all(Option::is_some),
    };
    while tokio::time::Instant::now() < deadline && !done(&views) {
        for (i, addr) in addrs.iter().enumerate() {
            if views[i].is_none() {
                let _ = transport.send(&requests[i], SocketAddr::V4(*addr)).await;
            }
        }
        let retry = (tokio::time::Instant::now() + Duration::from_millis(300)).min(deadline);
        while !done(&views) {
            match tokio::time::timeout_at(retry, transport.recv(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    if let Ok(Payload::StatusReply { nonce, view }) = codec.decode(&buf[..n]) {
                        if let Some(i) = nonces.iter().position(|&m| m == nonce) {
                            views[i] = Some(*view);
                        }
                    }
                }
                Ok(Err(_)) => {
                    // An ICMP "port unreachable" from a stopped node: wait a
                    // little (within the deadline) before asking again.
                    let pause = tokio::time::Instant::now() + Duration::from_millis(50);
                    tokio::time::sleep_until(pause.min(retry)).await;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twopc_model::TxnId;

    #[test]
    fn reports_print_as_they_did_when_outcomes_were_strings() {
        let o = Outcome {
            req: RequestId::new("7#1"),
            txn: Some(TxnId { epoch: 1, n: 1 }),
            verdict: Verdict::Aborted(AbortReason::InsufficientFunds),
        };
        let r = PurchaseReport::of(Some(&o), 0.5);
        assert_eq!(r.render(), "aborted: insufficient funds (txn 1.1)");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"outcome":"aborted","reason":"insufficient_funds","txn":"1.1","req":"7#1","seconds":0.5}"#
        );
        let refused = Outcome {
            req: RequestId::new("order-1"),
            txn: None,
            verdict: Verdict::Refused(Rejection::KeyReused),
        };
        let r = PurchaseReport::of(Some(&refused), 0.5);
        assert_eq!(r.render(), "refused: key reused");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"outcome":"refused","reason":null,"refusal":"key_reused","txn":null,"req":"order-1","seconds":0.5}"#
        );
        let t = PurchaseReport::of(None, 2.0);
        assert_eq!(t.render(), "timeout");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"outcome":"timeout","reason":null,"txn":null,"req":null,"seconds":2.0}"#
        );
    }
}
