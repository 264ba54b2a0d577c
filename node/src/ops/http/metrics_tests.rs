//! Tests of `/metrics` (`metrics.rs`): a view encoded as Prometheus text,
//! and a real core's: what the core counts reaches the text Prometheus
//! scrapes.

use super::metrics::{encode, Telemetry};
use crate::runtime::admin::{Counters, DecidedAs, NodeView, RejectReason};
use crate::runtime::core::fixtures::{prepare, v4, wallet, COORD};
use crate::runtime::core::Event;
use crate::runtime::wire::{ClusterKey, Codec, Format, Payload};
use std::net::SocketAddr;
use tokio::time::Instant;

/// `/metrics` has each peer's last word, what was dropped from it and why,
/// the alarms, and a replica's quorum.
#[test]
fn metrics_name_peers_reasons_and_the_quorum() {
    let mine = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let theirs = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let mut core = wallet(&mine);
    let bytes = theirs.encode(&Payload::Protocol(prepare())).unwrap();
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

/// A coordinator of `epoch` with nothing in progress.
fn coordinator(epoch: u64) -> twopc_model::CoordState {
    twopc_model::CoordState {
        epoch,
        learning: twopc_model::Learning::Learned,
        next_txn: 0,
        outcomes: Default::default(),
        voting: Default::default(),
        commits: Default::default(),
        doubts: Default::default(),
        flows: Default::default(),
        partial: Default::default(),
        refunded: Default::default(),
        recovered_commits: false,
    }
}

#[test]
fn a_view_encodes_as_prometheus_text() {
    let counters = Counters {
        datagrams_in: 7,
        rejected: [(RejectReason::BadMac, 3)].into(),
        decided: [
            (DecidedAs::Committed, 2),
            (
                DecidedAs::Aborted(twopc_model::AbortReason::InsufficientFunds),
                1,
            ),
        ]
        .into(),
        decided_by_op: [("refund".to_string(), [(DecidedAs::Committed, 2)].into())].into(),
        ..Counters::default()
    };
    let view = NodeView::of(
        "coordinator",
        &twopc_model::State::Coordinator(coordinator(4)),
        &counters,
    );
    let telemetry = Telemetry::default();
    telemetry.runtime.batch_size.observe(3.0);
    let text = encode(view, &telemetry).unwrap();
    for line in [
        "twopc_datagrams_in_total 7",
        "twopc_datagrams_rejected_total{reason=\"bad_mac\"} 3",
        "twopc_purchases_decided_total{outcome=\"committed\"} 2",
        "twopc_purchases_decided_total{outcome=\"insufficient_funds\"} 1",
        "twopc_operations_decided_total{op=\"refund\",outcome=\"committed\"} 2",
        "twopc_epoch 4",
        "twopc_node_info{node=\"coordinator\",role=\"coordinator\"} 1",
        "twopc_batch_size_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}

/// A leading replica's gauges; a follower has no leader's gauges.
#[test]
fn a_replica_encodes_where_it_stands() {
    use stateright::actor::Id;
    use twopc_model::{Accepted, CoordStorage, Leading, ReplicaState, ReplicaStorage, Term};
    let term = Term {
        n: 3,
        leader: Id::from(0),
    };
    let leading = Leading {
        term,
        coord: coordinator(4),
        version: 9,
        acks: Default::default(),
        chosen: 7,
        held: vec![twopc_model::replica::Held {
            version: 9,
            dst: Id::from(1),
            msg: twopc_model::Msg::Abort {
                txn: Default::default(),
            },
        }],
    };
    let acceptor = ReplicaStorage {
        promised: term,
        accepted: Some(Accepted {
            term,
            version: 9,
            storage: CoordStorage::default(),
        }),
    };
    let encoded = |standing| {
        let state = twopc_model::State::Replica(ReplicaState {
            acceptor: acceptor.clone(),
            standing,
        });
        let view = NodeView::of("coordinator-1", &state, &Default::default());
        encode(view, &Telemetry::default()).unwrap()
    };
    let leader = encoded(twopc_model::Standing::Leader(Box::new(leading)));
    for line in [
        "twopc_replica_standing{standing=\"leader\"} 1",
        "twopc_replica_standing{standing=\"follower\"} 0",
        "twopc_replica_promised_term 3",
        "twopc_replica_accepted_version 9",
        "twopc_replica_chosen_version 7",
        "twopc_replica_written_version 9",
        "twopc_replica_held 1",
    ] {
        assert!(leader.lines().any(|l| l == line), "{line:?} in\n{leader}");
    }
    let follower = encoded(twopc_model::Standing::Follower);
    assert!(follower
        .lines()
        .any(|l| l == "twopc_replica_standing{standing=\"follower\"} 1"));
    assert!(
        !follower.contains("twopc_replica_chosen_version"),
        "{follower}"
    );
}
