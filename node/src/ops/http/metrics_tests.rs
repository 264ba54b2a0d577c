//! `/metrics` of a real core: what the core counts about its peers reaches
//! the text Prometheus scrapes.

use super::metrics::{encode, Telemetry};
use crate::runtime::core::{Config, Core, Event, Members};
use crate::runtime::faults::Faults;
use crate::runtime::wire::{ClusterKey, Codec, Format, Payload};
use stateright::actor::Id;
use std::net::{SocketAddr, SocketAddrV4};
use tokio::time::Instant;
use twopc_model::{Msg, Node, Op, Participant, RequestId, Resource, TxnId};

const ME: &str = "127.0.0.1:7002";
const COORD: &str = "127.0.0.1:7001";

fn v4(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

/// A started wallet that knows its cluster file, with `codec`.
fn wallet(codec: &Codec) -> Core {
    let actor = Node::Participant(Participant {
        resource: Resource::Wallet,
        coordinators: vec![Id::from(v4(COORD))],
        initial: [("alice".into(), 100)].into(),
    });
    let cfg = Config {
        name: "wallet".into(),
        codec: codec.clone(),
        faults: Faults::default(),
        batch_max: 64,
    };
    let mut core = Core::new(actor, Id::from(v4(ME)), &cfg);
    core.know(Members {
        me: Some(v4(ME)),
        nodes: vec![(v4(COORD), "coordinator".into()), (v4(ME), "wallet".into())],
        replicas: Vec::new(),
    });
    core.handle(Instant::now(), Event::Start(None));
    let _ = core.ready(Instant::now());
    core
}

/// `/metrics` has each peer's last word, what was dropped from it and why,
/// the alarms, and a replica's quorum.
#[test]
fn metrics_name_peers_reasons_and_the_quorum() {
    let mine = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let theirs = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let mut core = wallet(&mine);
    let prepare = Msg::Prepare {
        txn: TxnId { epoch: 1, n: 1 },
        req: RequestId::new("1#1"),
        op: Op {
            key: "alice".into(),
            amount: 5,
        },
        floor: Default::default(),
    };
    let bytes = theirs.encode(&Payload::Protocol(prepare)).unwrap();
    let from = SocketAddr::V4(v4(COORD));
    core.handle(
        Instant::now(),
        Event::Datagram {
            from,
            bytes: &bytes,
        },
    );
    let _ = core.ready(Instant::now());
    let text = encode(core.view(Instant::now()), &Telemetry::default()).unwrap();
    for line in [
        "twopc_peer_rejected_total{peer=\"coordinator\",reason=\"bad_mac\"} 1",
        "twopc_datagrams_rejected_total{reason=\"bad_mac\"} 1",
        "twopc_alarms 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
