//! `/metrics` of a real core: what the core counts about its peers reaches
//! the text Prometheus scrapes.

use super::metrics::{encode, Telemetry};
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
