//! A coordinator replica's core: its messages to the other replicas leave
//! through the same `Ready` as datagrams (after the fsync, through the
//! same injected faults), and a follower's campaign waits while it hears
//! from its leader.

use super::*;
use crate::wire::Format;
use twopc_model::{timeouts, Coordinator, Replica, Term};

const R: [&str; 3] = ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"];

fn id(s: &str) -> Id {
    Id::from(s.parse::<SocketAddrV4>().unwrap())
}

/// Replica `index` of three, started on an empty disk at `now`.
fn replica(index: usize, faults: Faults, now: Instant) -> Core {
    let actor = Node::Replica(Replica {
        coordinator: Coordinator {
            wallet: id("127.0.0.1:7201"),
            order: id("127.0.0.1:7202"),
            retention: 100,
        },
        peers: R.iter().map(|r| id(r)).collect(),
        index,
    });
    let cfg = Config {
        name: format!("coordinator-{}", index + 1),
        codec: Codec::new(None, Format::Bincode),
        faults,
        batch_max: 64,
    };
    let mut core = Core::new(actor, id(R[index]), &cfg);
    core.handle(now, Event::Start(None));
    core
}

fn first_term() -> Term {
    Term {
        n: 0,
        leader: id(R[0]),
    }
}

/// The first replica leads the first term at once: its coordinator's first
/// save (the epoch) is accepted here, staged, made durable, and only then
/// do the `Accept`s leave, as whole messages for the TCP links.
#[test]
fn a_leaders_accepts_leave_after_the_sync_as_messages_for_the_links() {
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
    assert!(ready.sync, "persist before send");
    assert!(ready.sends.is_empty());
    let to: Vec<SocketAddr> = ready.sends_after_sync.iter().map(|o| o.to).collect();
    assert_eq!(to, [R[1], R[2]].map(|r| r.parse().unwrap()));
    for out in &ready.sends_after_sync {
        assert!(out.bytes.is_empty() && out.protocol);
        assert_eq!(
            out.peer.as_deref(),
            Some(&Msg::Accept {
                term: first_term(),
                version: 1,
                storage: accepted.storage.clone(),
            })
        );
    }
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
    assert!(ready.sends_after_sync.is_empty(), "{ready:?}");
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
    follower.handle(t1, Event::Peer { from, msg: accept });
    let pushed = follower.next_timer().unwrap();
    assert!(pushed >= t1 + timeouts::ELECTION.start, "pushed back");
    let ready = follower.ready(t1);
    assert!(ready.save.is_some() && ready.sync, "accepted durably");
    assert!(matches!(
        ready.sends_after_sync[0].peer.as_deref(),
        Some(Msg::Accepted { version: 1, .. })
    ));
    // Another replica's message leaves the deadline where it is.
    let t2 = t1 + Duration::from_millis(100);
    let nack = Msg::Nack {
        promised: first_term(),
    };
    let from = R[2].parse().unwrap();
    follower.handle(t2, Event::Peer { from, msg: nack });
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
            .get(&crate::admin::RejectReason::Undecodable),
        Some(&1)
    );
    assert_eq!(follower.next_timer(), Some(pushed));
}

/// A follower that hears nothing campaigns; with a majority of promises it
/// leads, and its heartbeat is brought forward from the campaign period it
/// had set to a heartbeat period.
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
    let campaigns: Vec<_> = ready
        .sends_after_sync
        .iter()
        .map(|o| o.peer.as_deref().cloned())
        .collect();
    assert_eq!(campaigns, vec![Some(Msg::Campaign { term }); 2]);
    assert!(r.next_timer().unwrap() >= t1 + timeouts::ELECTION.start);
    let t2 = t1 + Duration::from_millis(10);
    let promise = Msg::Promise {
        term,
        accepted: None,
    };
    let from = R[2].parse().unwrap();
    r.handle(t2, Event::Peer { from, msg: promise });
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
