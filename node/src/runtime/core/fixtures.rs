//! Cores for tests (here and in the layers above): a started wallet that
//! knows its cluster file.

use super::{Config, Core, Event, Members};
use crate::runtime::faults::Faults;
use crate::runtime::wire::Codec;
use stateright::actor::Id;
use std::net::SocketAddrV4;
use tokio::time::Instant;
use twopc_model::{Msg, Node, Op, Participant, RequestId, Resource, TxnId};

/// The wallet's address.
pub const ME: &str = "127.0.0.1:7002";
/// The coordinator's address.
pub const COORD: &str = "127.0.0.1:7001";

/// `s` as an address.
pub fn v4(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

/// The cluster file the wallet knows: the coordinator and itself.
pub fn members() -> Members {
    Members {
        me: Some(v4(ME)),
        nodes: vec![(v4(COORD), "coordinator".into()), (v4(ME), "wallet".into())],
        replicas: Vec::new(),
    }
}

/// A started wallet (alice has 100) that knows its cluster file, with
/// `codec`.
pub fn wallet(codec: &Codec) -> Core {
    let actor = Node::Participant(Participant {
        resource: Resource::Wallet,
        coordinators: vec![Id::from(v4(COORD))],
        initial: [("alice".into(), 100)].into(),
        prices: Default::default(),
        one_write: false,
    });
    let cfg = Config {
        name: "wallet".into(),
        codec: codec.clone(),
        faults: Faults::default(),
        batch_max: 64,
    };
    let mut core = Core::new(actor, Id::from(v4(ME)), &cfg);
    core.know(members());
    core.handle(Instant::now(), Event::Start(None));
    let _ = core.ready(Instant::now());
    core
}

/// A coordinator's prepare of 5 from alice (txn 1.1).
pub fn prepare() -> Msg {
    Msg::Prepare {
        txn: TxnId { epoch: 1, n: 1 },
        req: RequestId::new("1#1"),
        op: Op {
            key: "alice".into(),
            amount: 5,
        },
        floor: Default::default(),
    }
}
