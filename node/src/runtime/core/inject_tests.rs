//! Tests of [`super`]: the faults a core applies to what it sends.

use super::*;
use std::net::SocketAddr;

fn out(n: u8) -> Outgoing {
    Outgoing::Datagram {
        to: "127.0.0.1:9".parse().unwrap(),
        bytes: bytes::Bytes::from(vec![n]),
    }
}

#[tokio::test]
async fn no_faults_sends_everything_at_once_in_order() {
    let mut inj = Injector::new(Faults::default());
    let mut c = Counters::default();
    for n in 0..50 {
        let sent = inj.route(out(n), &mut c, Instant::now());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].datagram().unwrap()[0], n);
    }
    assert_eq!(inj.next_deadline(), None);
    assert_eq!(c, Counters::default());
}

/// Faults act on protocol messages, datagrams and peer replicas' alike,
/// never on an operator's reply.
#[tokio::test]
async fn faults_apply_to_protocol_messages_not_to_replies() {
    let mut inj = Injector::new(Faults {
        duplicate: 1.0,
        seed: Some(1),
        ..Faults::default()
    });
    let mut c = Counters::default();
    let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let reply = Outgoing::Reply {
        to,
        bytes: bytes::Bytes::from_static(b"r"),
    };
    let peer = Outgoing::Peer {
        to,
        msg: Box::new(Msg::AskEpoch { epoch: 1 }),
        waited: 0,
    };
    assert_eq!(
        inj.route(reply.clone(), &mut c, Instant::now()),
        vec![reply]
    );
    assert_eq!(
        inj.route(out(1), &mut c, Instant::now()),
        vec![out(1), out(1)]
    );
    assert_eq!(
        inj.route(peer.clone(), &mut c, Instant::now()),
        vec![peer.clone(), peer]
    );
    assert_eq!(c.fault_duplicated, 2);
}

#[tokio::test]
async fn every_datagram_leaves_exactly_as_often_as_chosen() {
    let faults = Faults {
        duplicate: 0.3,
        delay: 0.3,
        reorder: 0.3,
        delay_max: Duration::from_millis(5),
        seed: Some(7),
        ..Faults::default()
    };
    let mut inj = Injector::new(faults);
    let mut c = Counters::default();
    let mut sent = Vec::new();
    for n in 0..200 {
        sent.extend(
            inj.route(out(n), &mut c, Instant::now())
                .into_iter()
                .map(|o| o.datagram().unwrap()[0]),
        );
    }
    // Drain everything held back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while inj.next_deadline().is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
        sent.extend(
            inj.due(Instant::now())
                .into_iter()
                .map(|o| o.datagram().unwrap()[0]),
        );
    }
    assert_eq!(inj.next_deadline(), None);
    assert_eq!(sent.len() as u64, 200 + c.fault_duplicated);
    for n in 0..200u8 {
        assert!(sent.contains(&n), "datagram {n} never left");
    }
    assert!(c.fault_duplicated > 0 && c.fault_delayed > 0 && c.fault_reordered > 0);
    // The same seed makes the same choices.
    let mut again = Injector::new(Faults {
        seed: Some(7),
        ..inj.faults.clone()
    });
    let mut c2 = Counters::default();
    for n in 0..200 {
        again.route(out(n), &mut c2, Instant::now());
    }
    assert_eq!(c, c2);
}
