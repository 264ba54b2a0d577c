//! The count of durable writes waited for (`waited.rs`): what each send
//! adds, fed through the core with the exact counts its inputs carried.

use super::replica_fixtures::{accepted_counting, leader_deciding, msgs};
use super::tests::{codec, prepare, wallet, yes, COORD};
use super::*;
use crate::runtime::wire::waited_of;

/// `msg` from the coordinator, its envelope saying it waited for `waited`.
fn from_coordinator_waited(core: &mut Core, msg: Msg, waited: u8) {
    let bytes = (codec().encode_waited(&Payload::Protocol(msg), None, waited)).unwrap();
    let from = COORD.parse().unwrap();
    core.handle(
        Instant::now(),
        Event::Datagram {
            from,
            bytes: &bytes,
        },
    );
}

/// The count each datagram of `outs` carries.
fn counts(outs: &[Outgoing]) -> Vec<u8> {
    outs.iter()
        .map(|o| match o {
            Outgoing::Peer { waited, .. } => *waited,
            _ => waited_of(o.datagram().expect("a datagram")),
        })
        .collect()
}

/// A vote leaves after the save of its hold: one more than its prepare.
/// A vote re-sent for a duplicate prepare saves nothing and waits for no
/// fsync: exactly its prepare's count.
#[test]
fn a_send_after_its_batchs_fsync_adds_one_and_a_send_without_one_adds_nothing() {
    let mut core = wallet(10);
    from_coordinator_waited(&mut core, prepare(1), 3);
    let ready = core.ready(Instant::now());
    assert!(ready.sync, "{ready:?}");
    assert_eq!(msgs(&ready.sends_after_sync), [yes(1)]);
    assert_eq!(counts(&ready.sends_after_sync), [4]);
    from_coordinator_waited(&mut core, prepare(1), 3);
    let ready = core.ready(Instant::now());
    assert!(!ready.sync, "{ready:?}");
    assert_eq!(counts(&ready.sends_after_sync), [3]);
}

/// Each send starts from its own step's input, not its batch's highest:
/// two prepares in one batch, one fsync, each vote one more than its own.
#[test]
fn a_send_starts_from_its_own_steps_input_and_one_fsync_adds_one() {
    let mut core = wallet(10);
    from_coordinator_waited(&mut core, prepare(1), 5);
    from_coordinator_waited(&mut core, prepare(2), 0);
    let ready = core.ready(Instant::now());
    assert_eq!(msgs(&ready.sends_after_sync), [yes(1), yes(2)]);
    assert_eq!(counts(&ready.sends_after_sync), [6, 1]);
}

/// A save of an earlier batch that sent nothing rides on the next batch's
/// fsync: one fsync, one more (the shell never runs a batch while an fsync
/// of its node is in flight, so there is never a second to wait behind).
#[test]
fn a_staged_save_of_an_earlier_batch_shares_the_one_fsync() {
    let mut core = wallet(10);
    from_coordinator_waited(
        &mut core,
        Msg::Abort {
            txn: prepare_txn(7),
        },
        2,
    );
    let ready = core.ready(Instant::now());
    assert!(ready.save.is_some() && !ready.sync && ready.sends_after_sync.is_empty());
    from_coordinator_waited(&mut core, prepare(8), 0);
    let ready = core.ready(Instant::now());
    assert!(ready.sync);
    assert_eq!(counts(&ready.sends_after_sync), [1]);
}

fn prepare_txn(n: u64) -> twopc_model::TxnId {
    twopc_model::TxnId { epoch: 1, n }
}

/// A leader's `Accept` leaves before its own fsync: it carries its step's
/// count (the last vote's), no more. The outcome it releases once a backup
/// accepts counts the higher of the backup's `Accepted` and the leader's
/// own acceptance of that version (the `Accept`'s count plus its fsync).
#[test]
fn a_leaders_early_accept_adds_nothing_and_its_release_takes_the_higher_cause() {
    let now = Instant::now();
    // The votes come from a test helper as datagrams of count 0.
    let mut leader = leader_deciding(now);
    let ready = leader.ready(now);
    assert!(ready.sync);
    let accepts: Vec<u8> = counts(&ready.sends);
    assert_eq!(msgs(&ready.sends).len(), 2);
    assert_eq!(
        accepts,
        [0, 0],
        "an Accept does not wait for the leader's fsync"
    );
    // A backup's `Accepted` of version 2 that says 0 (a node that does not
    // count): the leader's own acceptance (0 + its fsync) is the higher.
    accepted_counting(&mut leader, now, 1, 2, 0);
    let ready = leader.ready(now);
    let outcome = outcome_count(&ready);
    assert_eq!(outcome, Some(1), "{ready:?}");
    // The outcome released is the decision of the votes' step: counted
    // once, by what it waited for.
    use crate::runtime::admin::DecidedAs;
    assert_eq!(
        leader.counters().decided,
        [(DecidedAs::Committed, 1)].into()
    );
    assert_eq!(*leader.outcome_waited(), [(1, 1)].into());
}

/// The same release after a backup's `Accepted` that waited for more: the
/// backup's count wins.
#[test]
fn a_leaders_release_counts_the_backups_accepted_when_it_is_higher() {
    let now = Instant::now();
    let mut leader = leader_deciding(now);
    let _ = leader.ready(now);
    accepted_counting(&mut leader, now, 1, 2, 2);
    let ready = leader.ready(now);
    assert_eq!(outcome_count(&ready), Some(2), "{ready:?}");
}

/// The count on the outcome a batch releases, if it releases one.
fn outcome_count(ready: &Ready) -> Option<u8> {
    let all: Vec<&Outgoing> = ready.sends.iter().chain(&ready.sends_after_sync).collect();
    all.into_iter().find_map(|o| {
        let bytes = o.datagram()?;
        match codec().decode(bytes) {
            Ok(Payload::Protocol(Msg::Outcome(_))) => Some(waited_of(bytes)),
            _ => None,
        }
    })
}
