//! Nothing a core drops is silent: strangers and datagrams that fail
//! authentication are counted by reason and by sender, named in `status`,
//! and a node of the cluster whose datagram fails authentication is told;
//! requests a peer leaves unanswered and a replica group without a
//! majority raise alarms.

use super::fixtures::{members, prepare, v4, wallet, COORD, ME};
use super::peers::{Peers, HEARD_WITHIN, NOTICE_EVERY};
use super::*;
use crate::runtime::admin::{
    peer_alarms, who_leads, Counters, RejectReason, ReplicaView, Standing,
};
use crate::runtime::wire::{ClusterKey, Format};
use twopc_model::{Op, RequestId, TxnId};

const STRANGER: &str = "127.0.0.1:9999";

fn receive(core: &mut Core, now: Instant, from: &str, bytes: &[u8]) -> Ready {
    let from = SocketAddr::V4(v4(from));
    core.handle(now, Event::Datagram { from, bytes });
    core.ready(now)
}

/// A prepare, authenticated, from an address that is not in the cluster
/// file (the coordinator moved, and only it was restarted with the new
/// file): the actor would ignore it without a trace; the runtime drops it
/// as `unknown_sender`, and `status` says what an operator does about it.
#[test]
fn a_message_only_the_cluster_sends_from_an_address_not_in_it_is_counted_and_named() {
    let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let mut core = wallet(&codec);
    let bytes = codec.encode(&Payload::Protocol(prepare())).unwrap();
    let ready = receive(&mut core, Instant::now(), STRANGER, &bytes);
    assert!(
        ready.save.is_none() && ready.sends_after_sync.is_empty(),
        "{ready:?}"
    );
    let c = core.counters();
    assert_eq!(c.rejected.get(&RejectReason::UnknownSender), Some(&1));
    assert_eq!(c.msgs_handled, 0, "not handed to the actor");
    assert_eq!(c.unknown_senders, vec![STRANGER.to_string()]);
    let view = core.view(Instant::now());
    let alarm = view.alarms.join("\n");
    assert!(
        alarm.contains(
            "(last: 127.0.0.1:9999): if a node moved, restart every node with the new cluster file"
        ),
        "{alarm}"
    );
    // The same prepare from the coordinator's address is handled.
    let ready = receive(&mut core, Instant::now(), COORD, &bytes);
    assert!(ready.save.is_some(), "{ready:?}");
    assert_eq!(core.counters().msgs_handled, 1);
    let view = core.view(Instant::now());
    assert_eq!(view.peers.len(), 1, "{:?}", view.peers);
    assert_eq!(view.peers[0].name, "coordinator");
    assert!(view.peers[0].heard_ms_ago.is_some());
    // Anyone may send a purchase or a lookup.
    let peers = Peers::new(members());
    let lookup = Msg::Lookup {
        req: RequestId::new("1#1"),
    };
    assert!(!peers.is_stranger(v4(STRANGER), &lookup));
    // And a top-up or a restock, as a purchase (`twopc topup`, HTTP).
    let topup = Msg::Request {
        req: RequestId::new("top-1"),
        op: twopc_model::Operation::TopUp {
            user: "newcomer".into(),
            amount: 5,
        },
        ticket: None,
    };
    assert!(!peers.is_stranger(v4(STRANGER), &topup));
    assert!(peers.is_stranger(v4(STRANGER), &prepare()));
    assert!(
        !Peers::default().is_stranger(v4(STRANGER), &prepare()),
        "no cluster file, no strangers"
    );
}

/// A coordinator with another key: its prepare fails authentication at the
/// wallet, which names it, counts it against it, and tells it (once per
/// `NOTICE_EVERY`) with a notice MAC'd with the wallet's key, which the
/// coordinator in turn cannot authenticate: so its own `status` names the
/// wallet as a node whose datagrams fail authentication.
#[test]
fn a_cluster_node_whose_datagram_fails_authentication_is_named_and_told() {
    let mine = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let theirs = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let mut core = wallet(&mine);
    let bytes = theirs.encode(&Payload::Protocol(prepare())).unwrap();
    let t0 = Instant::now();
    let ready = receive(&mut core, t0, COORD, &bytes);
    let [notice] = ready.sends_after_sync.as_slice() else {
        panic!("one notice: {ready:?}")
    };
    assert_eq!(notice.to(), SocketAddr::V4(v4(COORD)));
    assert_eq!(
        mine.decode(notice.datagram().unwrap()),
        Ok(Payload::Unauthenticated {
            reason: RejectReason::BadMac
        })
    );
    assert_eq!(
        theirs.decode(notice.datagram().unwrap()),
        Err(crate::runtime::wire::Reject::BadMac)
    );
    // More within the period: counted, not told again.
    for _ in 0..3 {
        let ready = receive(&mut core, t0 + Duration::from_millis(10), COORD, &bytes);
        assert!(ready.sends_after_sync.is_empty(), "{ready:?}");
    }
    let ready = receive(&mut core, t0 + NOTICE_EVERY, COORD, &bytes);
    assert_eq!(ready.sends_after_sync.len(), 1, "told again: {ready:?}");
    let view = core.view(t0 + NOTICE_EVERY);
    assert_eq!(view.counters.rejected.get(&RejectReason::BadMac), Some(&5));
    assert_eq!(view.peers[0].rejected.get(&RejectReason::BadMac), Some(&5));
    assert_eq!(view.peers[0].heard_ms_ago, None);
    assert!(
        view.alarms.iter().any(|a| a
            == "from coordinator (127.0.0.1:7001): 5 datagram(s) failed authentication \
                (bad_mac); does it have the cluster key?"),
        "{:?}",
        view.alarms
    );
    let text = view.render();
    assert!(
        text.contains(
            "peer coordinator (127.0.0.1:7001): never heard from, dropped from it: bad_mac 5"
        ),
        "{text}"
    );
    // A stranger's bad MAC is counted, never answered.
    let ready = receive(&mut core, t0 + NOTICE_EVERY * 3, STRANGER, &bytes);
    assert!(ready.sends_after_sync.is_empty(), "{ready:?}");
    // An authenticated notice from a node of the cluster: counted, alarmed.
    let notice = mine
        .encode(&Payload::Unauthenticated {
            reason: RejectReason::BadMac,
        })
        .unwrap();
    let ready = receive(&mut core, t0, COORD, &notice);
    assert!(ready.sends_after_sync.is_empty() && ready.save.is_none());
    let view = core.view(t0);
    assert_eq!(view.peers[0].says_unauthenticated, 1);
    assert!(
        view.alarms
            .iter()
            .any(|a| a.contains("says it could not authenticate 1 datagram(s) of ours")),
        "{:?}",
        view.alarms
    );
}

/// Requests a node leaves unanswered: after `UNANSWERED_ALARM` of them
/// since it was last heard from, an alarm names it; anything heard from it
/// clears it. Only requests that ask for an answer count.
#[test]
fn requests_a_peer_leaves_unanswered_raise_an_alarm_until_it_is_heard() {
    let mut peers = Peers::new(Members {
        me: Some(v4(COORD)),
        nodes: vec![(v4(COORD), "coordinator".into()), (v4(ME), "wallet".into())],
        replicas: Vec::new(),
    });
    let t0 = Instant::now();
    let abort = Msg::Abort {
        txn: TxnId { epoch: 1, n: 1 },
    };
    peers.sent(v4(ME), &abort);
    for _ in 0..2 {
        peers.sent(v4(ME), &prepare());
    }
    let alarms = |peers: &Peers| peer_alarms(&Counters::default(), &peers.view(t0), None);
    assert!(
        alarms(&peers).is_empty(),
        "two unanswered: {:?}",
        alarms(&peers)
    );
    peers.sent(v4(ME), &prepare());
    let view = peers.view(t0);
    assert_eq!(view[0].unanswered, 3);
    assert_eq!(
        alarms(&peers),
        vec![
            "wallet (127.0.0.1:7002): never heard from since this node started, 3 request(s) \
              to it unanswered: is it running, reachable at that address, with the cluster key \
              and the same cluster file? (its own status and log say what it drops)"
                .to_string()
        ]
    );
    peers.heard(v4(ME), t0);
    assert!(alarms(&peers).is_empty());
}

/// A replica group, as one replica sees it: a leader that hears its
/// followers has a quorum; once it has heard from none of them within
/// `HEARD_WITHIN`, it says it has none, and `who_leads` no longer names it
/// as the leader. A follower that hears its leader defers to the leader's
/// view; one that hears nobody says there is no quorum.
#[test]
fn a_replica_that_hears_no_majority_says_there_is_no_quorum() {
    let (a, b, c) = (
        v4("127.0.0.1:7001"),
        v4("127.0.0.1:7002"),
        v4("127.0.0.1:7003"),
    );
    let group = |me| {
        Peers::new(Members {
            me: Some(me),
            nodes: vec![(a, "c-1".into()), (b, "c-2".into()), (c, "c-3".into())],
            replicas: vec![a, b, c],
        })
    };
    let t0 = Instant::now();
    let mut leader = group(a);
    leader.heard(b, t0);
    leader.heard(c, t0);
    let g = leader.group(t0, 2, None).unwrap();
    assert!(g.has_quorum());
    assert_eq!(
        g.render(),
        "quorum: 3 of 3 replicas heard from within 1.2 s"
    );
    let later = t0 + HEARD_WITHIN + Duration::from_millis(1);
    let g = leader.group(later, 2, None).unwrap();
    assert!(!g.has_quorum());
    assert_eq!(
        g.render(),
        "NO QUORUM: 1 of 3 replicas heard from within 1.2 s (silent: c-2, c-3), 2 needed: \
         nothing can be decided until a majority is back"
    );
    let alarms = peer_alarms(&Counters::default(), &[], Some(&g));
    assert_eq!(alarms, vec![g.render()]);
    let view = ReplicaView {
        standing: Standing::Leader,
        promised: "1/x".into(),
        promised_number: 1,
        term: Some("1/x".into()),
        accepted: None,
        chosen: Some(1),
        version: Some(1),
        held: Some(0),
        answered: None,
        group: Some(g),
    };
    let line = who_leads(&[("c-1".into(), view.clone())]);
    assert!(!line.starts_with("leader:"), "{line}");
    assert!(
        line.contains("c-1 says it leads term 1/x, but it has NO QUORUM: 1 of 3"),
        "{line}"
    );
    assert!(
        line.ends_with("only 1 of 3 replicas answered, 2 needed for a quorum"),
        "{line}"
    );
    // A follower that hears its leader defers to it; one that hears
    // nobody says so.
    let mut follower = group(b);
    follower.heard(a, t0);
    let g = follower.group(t0, 2, Some(a)).unwrap();
    assert!(g.has_quorum(), "{}", g.render());
    let g = follower.group(later, 2, Some(a)).unwrap();
    assert!(!g.has_quorum(), "{}", g.render());
}

/// A status reply that would not fit in a datagram (the largest listing
/// the names allow, in JSON, and a node with much to say about its peers)
/// still answers: with fewer balances and holds listed, all still counted.
#[test]
fn a_status_reply_too_big_for_a_datagram_lists_less_and_still_answers() {
    use crate::runtime::admin::{HoldView, NodeView, PeerView, MAX_LISTED};
    let mut view = NodeView::of(
        "wallet",
        &State::Participant(twopc_model::PartState {
            data: Default::default(),
            recovered_holds: false,
            acks_after_save: Default::default(),
        }),
        &Counters::default(),
    );
    let name = |i: usize| format!("{i:0>64}");
    for i in 0..MAX_LISTED {
        view.levels.insert(name(i), u64::MAX);
        view.holds.push(HoldView {
            txn: format!("{}.{}", u64::MAX, u64::MAX),
            req: format!("{}#{}", u64::MAX, u64::MAX),
            key: name(i),
            amount: u64::MAX,
        });
    }
    view.levels_total = MAX_LISTED;
    view.holds_total = MAX_LISTED;
    for i in 0..8 {
        view.peers.push(PeerView {
            name: name(i),
            address: "255.255.255.255:65535".into(),
            heard_ms_ago: Some(u64::MAX),
            unanswered: u64::MAX,
            rejected: [
                (RejectReason::BadMac, u64::MAX),
                (RejectReason::MissingMac, u64::MAX),
            ]
            .into(),
            says_unauthenticated: u64::MAX,
        });
    }
    view.alarms = peer_alarms(&view.counters, &view.peers, None);
    let codec = Codec::new(Some(ClusterKey::random()), Format::Json);
    let whole = Payload::StatusReply {
        nonce: 1,
        view: Box::new(view.clone()),
    };
    assert!(codec.encode(&whole).is_err(), "too big as it is");
    let reply = status::fit(&codec, 1, view);
    assert!(codec.encode(&reply).is_ok());
    let Payload::StatusReply { view: fitted, .. } = reply else {
        panic!()
    };
    assert!(fitted.levels.len() < MAX_LISTED && !fitted.levels.is_empty());
    assert_eq!(
        (fitted.levels_total, fitted.holds_total),
        (MAX_LISTED, MAX_LISTED)
    );
    assert_eq!(fitted.peers.len(), 8, "what it says of its peers is kept");
}

/// A node without a key that gets authenticated datagrams from a node of
/// the cluster: the question is the other way round.
#[test]
fn a_node_without_the_key_says_the_other_one_has_it() {
    let none = Codec::new(None, Format::Bincode);
    let keyed = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let mut core = wallet(&none);
    let bytes = keyed.encode(&Payload::Protocol(prepare())).unwrap();
    let ready = receive(&mut core, Instant::now(), COORD, &bytes);
    let [notice] = ready.sends_after_sync.as_slice() else {
        panic!("one notice: {ready:?}")
    };
    // Unauthenticated, as this node has no key: a missing MAC there.
    assert_eq!(
        keyed.decode(notice.datagram().unwrap()),
        Err(crate::runtime::wire::Reject::MissingMac)
    );
    let view = core.view(Instant::now());
    assert!(
        view.alarms.iter().any(|a| a.ends_with(
            "(unexpected_mac); it has a cluster key and this node has none: give every node \
             the same key"
        )),
        "{:?}",
        view.alarms
    );
}

/// A prepare below the participant's floor (its coordinator settled that
/// epoch since: a late duplicate) is counted as `below_floor`, never handed
/// to the actor; a prepare at the floor still is.
#[test]
fn a_prepare_below_the_floor_is_counted_not_silently_ignored() {
    let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let mut core = wallet(&codec);
    let prepare_at = |epoch: u64, n: u64| Msg::Prepare {
        txn: TxnId { epoch, n },
        req: RequestId::new(format!("{epoch}#{n}")),
        op: Op {
            key: "alice".into(),
            amount: 5,
        },
        floor: twopc_model::Floor {
            below: TxnId { epoch, n },
            owed: vec![],
        },
    };
    let now = Instant::now();
    let bytes = |m: Msg| codec.encode(&Payload::Protocol(m)).unwrap();
    let ready = receive(&mut core, now, COORD, &bytes(prepare_at(3, 0)));
    assert!(ready.save.is_some(), "held: {ready:?}");
    assert_eq!(core.counters().msgs_handled, 1);
    // An attempt of epoch 2: below the floor of epoch 3.
    let ready = receive(&mut core, now, COORD, &bytes(prepare_at(2, 7)));
    assert!(ready.save.is_none() && ready.sends_after_sync.is_empty());
    let c = core.counters();
    assert_eq!(c.rejected.get(&RejectReason::BelowFloor), Some(&1));
    assert_eq!(c.msgs_handled, 1, "not handed to the actor");
    // The same attempt again (a duplicate of one it holds) is handled.
    let _ = receive(&mut core, now, COORD, &bytes(prepare_at(3, 0)));
    assert_eq!(core.counters().msgs_handled, 2);
}
