//! A coordinator replica's core: its messages to the other replicas leave
//! through the same `Ready` as datagrams (after the fsync, but a leader's
//! `Accept`s before it; through the same injected faults), and a
//! follower's campaign waits while it hears from its leader.

use super::replica_fixtures::*;
use super::*;
use crate::runtime::admin::RejectReason;
use crate::runtime::wire::Format;
use twopc_model::{timeouts, Coordinator, Replica, Term};

/// The first replica leads the first term at once: its coordinator's first
/// save (the epoch) is accepted here and staged, and the `Accept`s leave at
/// once, as whole messages for the TCP links, ahead of the fsync that the
/// batch still asks for (the leader's own acceptance is made durable before
/// the next batch, in which a backup's answer can first count).
#[test]
fn a_leaders_accepts_leave_before_its_fsync_as_messages_for_the_links() {
    let now = Instant::now();
    let mut leader = replica(0, Faults::default(), now);
    // Its heartbeat comes within a heartbeat period, not a campaign's.
    let heartbeat = leader.next_timer().expect("the replica timer");
    assert!(heartbeat <= now + timeouts::HEARTBEAT.end);
    let ready = leader.ready(now);
    let Some(Storage::Replica(saved)) = &ready.save else {
        panic!("a replica's save: {ready:?}")
    };
    let accepted = saved.accepted.clone().expect("version 1 accepted here");
    assert_eq!((accepted.term, accepted.version), (first_term(), 1));
    assert!(ready.sync, "the leader's own acceptance is still fsynced");
    // After the fsync: only its coordinator's question to the participants.
    let after = msgs(&ready.sends_after_sync);
    assert_eq!(after, vec![Msg::AskEpoch { epoch: 1 }; 2], "{ready:?}");
    // (Besides its question to the participants, a datagram each.)
    let peers: Vec<&Outgoing> = ready
        .sends
        .iter()
        .filter(|o| o.peer_msg().is_some())
        .collect();
    let to: Vec<SocketAddr> = peers.iter().map(|o| o.to()).collect();
    assert_eq!(to, [R[1], R[2]].map(|r| r.parse().unwrap()));
    for out in peers {
        assert!(out.datagram().is_none() && out.faults_apply());
        assert_eq!(
            out.peer_msg(),
            Some(&Msg::Accept {
                term: first_term(),
                version: 1,
                storage: accepted.storage.clone(),
            })
        );
    }
}

/// What the leader's coordinator reveals to participants and clients never
/// rides ahead of the fsync with the `Accept`s: a decision is held until a
/// backup has accepted it (in a later batch), and once released it leaves
/// after the fsync of the batch it is released in, like every datagram.
/// Were the split to move anything but `Accept`, or were the leader's own
/// acceptance to release anything in the batch that wrote it, this fails.
#[test]
fn a_leaders_decision_waits_for_a_backup_and_then_for_the_fsync() {
    let now = Instant::now();
    // The first purchase's decision: version 2. Its `Accept`s leave before
    // the fsync; its outcome and commits are held, in no list at all.
    let mut leader = leader_deciding(now);
    let ready = leader.ready(now);
    assert!(ready.sync && ready.save.is_some(), "{ready:?}");
    let early = msgs(&ready.sends);
    assert_eq!(early.len(), 2);
    assert!(early
        .iter()
        .all(|m| matches!(m, Msg::Accept { version: 2, .. })));
    let after = msgs(&ready.sends_after_sync);
    assert!(
        after.iter().all(|m| matches!(m, Msg::Prepare { .. })),
        "only the prepares, which were sent before the decision: {after:?}"
    );

    // One batch: a backup accepts version 2, and the second purchase is
    // decided (version 3). The first outcome and its commits are released
    // behind this batch's fsync; the second decision's are held.
    accepted_by(&mut leader, now, 2, 2);
    purchase_and_votes(&mut leader, now, 1);
    let ready = leader.ready(now);
    assert!(ready.sync);
    let early = msgs(&ready.sends);
    assert_eq!(early.len(), 2);
    assert!(early
        .iter()
        .all(|m| matches!(m, Msg::Accept { version: 3, .. })));
    let after = msgs(&ready.sends_after_sync);
    assert!(!after.iter().any(is_accept));
    let first = twopc_model::TxnId { epoch: 1, n: 0 };
    let second = twopc_model::TxnId { epoch: 1, n: 1 };
    assert_eq!(
        after
            .iter()
            .filter(|m| matches!(m, Msg::Commit { txn } if *txn == first))
            .count(),
        2
    );
    let outcomes: Vec<_> = after
        .iter()
        .filter_map(|m| match m {
            Msg::Outcome(o) => Some(o.txn),
            _ => None,
        })
        .collect();
    assert_eq!(outcomes, [Some(first)]);
    assert!(!after
        .iter()
        .any(|m| matches!(m, Msg::Commit { txn } if *txn == second)));
}

/// With one replica the leader's own acceptance is a majority: the outcome
/// is released in the very step that saves the decision, and so it must
/// wait for that batch's fsync (there is no `Accept` to send early).
#[test]
fn a_lone_leaders_own_acceptance_releases_nothing_before_the_fsync() {
    let now = Instant::now();
    let actor = Node::Replica(Replica {
        coordinator: Coordinator {
            wallet: id(WALLET),
            order: id(ORDER),
            retention: 100,
            prices: false,
            one_write: false,
        },
        peers: vec![id(R[0])],
        index: 0,
        incarnation: 0,
    });
    let cfg = Config {
        name: "coordinator-1".into(),
        codec: Codec::new(None, Format::Bincode),
        faults: Faults::default(),
        batch_max: 64,
    };
    let mut leader = Core::new(actor, id(R[0]), &cfg);
    leader.handle(now, Event::Start(None));
    let _ = leader.ready(now);
    purchase_and_votes(&mut leader, now, 0);
    let ready = leader.ready(now);
    assert!(ready.sync && ready.save.is_some());
    assert!(ready.sends.is_empty(), "{ready:?}");
    let after = msgs(&ready.sends_after_sync);
    assert!(after.iter().any(|m| matches!(m, Msg::Outcome(_))));
}

/// A datagram held back by an injected reorder leaves with the next one
/// routed; when that one is an early `Accept`, the held datagram still
/// waits for the fsync.
#[test]
fn a_reordered_datagram_never_rides_out_early_on_an_accept() {
    let now = Instant::now();
    let faults = Faults {
        reorder: 1.0,
        seed: Some(1),
        ..Faults::default()
    };
    let mut leader = replica(0, faults, now);
    // The start batch: the first `Accept` is held back, the second takes
    // it along; both leave early.
    let ready = leader.ready(now);
    assert_eq!(msgs(&ready.sends).len(), 2);
    accepted_by(&mut leader, now, 1, 1);
    let _ = leader.ready(now);
    // A lookup answered at once (nothing is waiting for a majority), then a
    // purchase and its decision: the reorder holds back every other message
    // queued (the status, a prepare, an `Accept`) and each leaves with the
    // next one; the prepare held back leaves with the decision's first
    // `Accept`, and still after the fsync.
    for p in [WALLET, ORDER] {
        let answer = Msg::Epoch {
            asked: 1,
            highest: 0,
            fates: vec![],
        };
        datagram(&mut leader, now, p, answer);
    }
    let lookup = Msg::Lookup {
        req: twopc_model::RequestId::new("order-9"),
    };
    datagram(&mut leader, now, CLIENT, lookup);
    purchase_and_votes(&mut leader, now, 0);
    let ready = leader.ready(now);
    assert!(ready.sync);
    // (How many `Accept`s go early depends on what the reorder held back
    // before: the participants' answers to the start's question too.)
    assert!(!msgs(&ready.sends).is_empty(), "{ready:?}");
    assert!(msgs(&ready.sends).iter().all(is_accept), "{ready:?}");
    let after = msgs(&ready.sends_after_sync);
    assert!(after.iter().any(|m| matches!(m, Msg::Status { .. })));
    assert_eq!(
        after
            .iter()
            .filter(|m| matches!(m, Msg::Prepare { .. }))
            .count(),
        2
    );
}

/// Injected faults act on replica messages too, whole, in the core: an
/// `Accept` dropped by `--fault-drop-out accept` never reaches a link, so
/// no delta chain is broken.
#[test]
fn injected_faults_drop_replica_messages_whole() {
    let now = Instant::now();
    let faults = Faults {
        drop_out: vec![MsgKind::Accept],
        ..Faults::default()
    };
    let mut leader = replica(0, faults, now);
    let ready = leader.ready(now);
    assert!(ready.save.is_some());
    // Nothing but its coordinator's question to the participants leaves.
    let all: Vec<Msg> = msgs(&ready.sends)
        .into_iter()
        .chain(msgs(&ready.sends_after_sync))
        .collect();
    assert_eq!(all, vec![Msg::AskEpoch { epoch: 1 }; 2], "{ready:?}");
    assert_eq!(leader.counters().fault_dropped, 2);
}

/// A follower's campaign timer is pushed a whole period past each message
/// from the leader of the term it promised; a message from another replica
/// does not push it. Replica messages by datagram are refused.
#[test]
fn a_follower_puts_off_its_campaign_while_it_hears_its_leader() {
    let t0 = Instant::now();
    let mut follower = replica(1, Faults::default(), t0);
    let _ = follower.ready(t0);
    let set = follower.next_timer().expect("the campaign timer");
    assert!(set < t0 + timeouts::ELECTION.end);
    // Long after that deadline (no `TimerDue` fed), the leader's heartbeat.
    let t1 = t0 + Duration::from_secs(2);
    let accept = Msg::Accept {
        term: first_term(),
        version: 1,
        storage: Default::default(),
    };
    let from = R[0].parse().unwrap();
    follower.handle(
        t1,
        Event::Peer {
            from,
            msg: accept,
            waited: 0,
        },
    );
    let pushed = follower.next_timer().unwrap();
    assert!(pushed >= t1 + timeouts::ELECTION.start, "pushed back");
    let ready = follower.ready(t1);
    assert!(ready.save.is_some() && ready.sync, "accepted durably");
    assert!(
        ready.sends.is_empty(),
        "a backup reports only after its fsync"
    );
    assert!(matches!(
        ready.sends_after_sync[0].peer_msg(),
        Some(Msg::Accepted { version: 1, .. })
    ));
    // Another replica's message leaves the deadline where it is.
    let t2 = t1 + Duration::from_millis(100);
    let nack = Msg::Nack {
        promised: first_term(),
    };
    let from = R[2].parse().unwrap();
    follower.handle(
        t2,
        Event::Peer {
            from,
            msg: nack,
            waited: 0,
        },
    );
    assert_eq!(follower.next_timer(), Some(pushed));
    // By datagram, a replica message is counted and dropped.
    let bytes = Codec::new(None, Format::Bincode)
        .encode(&Payload::Protocol(Msg::Accepted {
            term: first_term(),
            version: 1,
        }))
        .unwrap();
    let from = R[0].parse().unwrap();
    follower.handle(
        t2,
        Event::Datagram {
            from,
            bytes: &bytes,
        },
    );
    assert_eq!(
        follower
            .counters()
            .rejected
            .get(&crate::runtime::admin::RejectReason::Undecodable),
        Some(&1)
    );
    assert_eq!(follower.next_timer(), Some(pushed));
}

/// A follower that hears nothing asks for pre-votes, and with a grant (a
/// majority with its own) campaigns; with a majority of promises it leads,
/// and its heartbeat is brought forward from the campaign period it had set
/// to a heartbeat period.
#[test]
fn a_new_leader_sends_its_heartbeat_within_a_heartbeat_period() {
    let t0 = Instant::now();
    let mut r = replica(1, Faults::default(), t0);
    let _ = r.ready(t0);
    let t1 = t0 + Duration::from_secs(2);
    r.handle(t1, Event::TimerDue);
    let ready = r.ready(t1);
    let term = Term {
        n: 1,
        leader: id(R[1]),
    };
    let sent = |ready: &crate::runtime::core::Ready| -> Vec<_> {
        ready
            .sends_after_sync
            .iter()
            .map(|o| o.peer_msg().cloned())
            .collect()
    };
    assert_eq!(sent(&ready), vec![Some(Msg::PreVote { term }); 2]);
    let from = R[2].parse().unwrap();
    let grant = Msg::PreVoteGrant { term };
    r.handle(
        t1,
        Event::Peer {
            from,
            msg: grant,
            waited: 0,
        },
    );
    let ready = r.ready(t1);
    assert_eq!(sent(&ready), vec![Some(Msg::Campaign { term }); 2]);
    assert!(r.next_timer().unwrap() >= t1 + timeouts::ELECTION.start);
    let t2 = t1 + Duration::from_millis(10);
    let promise = Msg::Promise {
        term,
        accepted: None,
    };
    let from = R[2].parse().unwrap();
    r.handle(
        t2,
        Event::Peer {
            from,
            msg: promise,
            waited: 0,
        },
    );
    let State::Replica(s) = r.state() else {
        unreachable!()
    };
    assert!(s.leading().is_some(), "leads with two promises of three");
    assert!(r.next_timer().unwrap() <= t2 + timeouts::HEARTBEAT.end);
}

/// A participant's `Ack` waits for a batch that saves, or `ACK_DELAY`: the
/// leader's forgetting would otherwise cost an `Accept` round of its own
/// and hold the sends that follow it.
#[test]
fn a_leader_delivers_acks_with_a_batch_that_saves_or_after_a_short_delay() {
    let now = Instant::now();
    let mut leader = replica(0, Faults::default(), now);
    let _ = leader.ready(now);
    let wallet: SocketAddr = "127.0.0.1:7201".parse().unwrap();
    let ack = Codec::new(None, Format::Bincode)
        .encode(&Payload::Protocol(Msg::Ack {
            txn: twopc_model::TxnId { epoch: 1, n: 0 },
        }))
        .unwrap();
    let handled = leader.counters().msgs_handled;
    leader.handle(
        now,
        Event::Datagram {
            from: wallet,
            bytes: &ack,
        },
    );
    let _ = leader.ready(now);
    assert_eq!(leader.counters().msgs_handled, handled, "held");
    assert_eq!(leader.next_timer(), Some(now + ACK_DELAY));
    let later = now + ACK_DELAY;
    leader.handle(later, Event::TimerDue);
    let _ = leader.ready(later);
    assert_eq!(leader.counters().msgs_handled, handled + 1, "delivered");
    assert!(leader.next_timer().unwrap() > later);
}

/// A replica message over a link from an address the cluster file does not
/// name (a replica moved to a new port, and only it was given the new
/// file) is counted as `unknown_sender`, never handed to the actor.
#[test]
fn a_link_message_from_an_address_not_in_the_cluster_is_counted_and_dropped() {
    let t0 = Instant::now();
    let mut follower = replica(1, Faults::default(), t0);
    let replicas: Vec<SocketAddrV4> = R.iter().map(|r| r.parse().unwrap()).collect();
    follower.know(super::peers::Members {
        me: Some(replicas[1]),
        nodes: replicas
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, format!("coordinator-{}", i + 1)))
            .collect(),
        replicas: replicas.clone(),
    });
    let _ = follower.ready(t0);
    let accept = || Msg::Accept {
        term: first_term(),
        version: 1,
        storage: Default::default(),
    };
    // From the leader's address it is accepted.
    follower.handle(
        t0,
        Event::Peer {
            from: replicas[0],
            msg: accept(),
            waited: 0,
        },
    );
    assert!(follower.ready(t0).save.is_some(), "accepted from a member");
    let moved: SocketAddrV4 = "127.0.0.1:9999".parse().unwrap();
    follower.handle(
        t0,
        Event::Peer {
            from: moved,
            msg: accept(),
            waited: 0,
        },
    );
    let ready = follower.ready(t0);
    assert!(ready.save.is_none(), "not accepted: {ready:?}");
    let c = follower.counters();
    assert_eq!(c.rejected.get(&RejectReason::UnknownSender), Some(&1));
    assert_eq!(c.unknown_senders, vec![moved.to_string()]);
}
