//! The journal: derived from what the model's own participant does (its
//! handlers, not states made up here), durable with its record, across
//! restarts, retention and compaction.

use super::*;
use crate::runtime::storage::{LogStore, Store};
use stateright::actor::{Id, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;
use twopc_model::{Floor, Msg, Op, Participant, Resource, Storage};

const COORD: u64 = 0;

fn wallet() -> Participant {
    Participant {
        resource: Resource::Wallet,
        coordinators: vec![Id::from(COORD as usize)],
        initial: BTreeMap::from([("alice".to_string(), 10), ("bob".to_string(), 3)]),
        prices: Default::default(),
        one_write: false,
    }
}

fn txn(n: u64) -> TxnId {
    TxnId { epoch: 1, n }
}

fn req(n: u64) -> RequestId {
    RequestId::new(format!("order-{n}"))
}

fn op(key: &str, amount: u64) -> Op {
    Op {
        key: key.into(),
        amount,
    }
}

fn hold(n: u64, key: &str, amount: u64) -> Msg {
    Msg::Prepare {
        txn: txn(n),
        req: req(n),
        op: op(key, amount),
        floor: Floor::default(),
    }
}

fn credit(n: u64, key: &str, amount: u64) -> Msg {
    Msg::PrepareCredit {
        txn: txn(n),
        req: req(n),
        op: op(key, amount),
        floor: Floor::default(),
        parties: vec![Id::from(1usize)],
    }
}

pub(crate) fn start() -> PartStorage {
    wallet().on_start(None, &mut Out::new()).data
}

/// The participant's state after `msg`, as the model's handler leaves it.
fn deliver(data: &PartStorage, msg: Msg) -> PartStorage {
    let state = twopc_model::PartState {
        data: data.clone(),
        recovered_holds: false,
        acks_after_save: Default::default(),
    };
    let mut cow = Cow::Borrowed(&state);
    let mut out: Out<twopc_model::Node> = Out::new();
    wallet().on_msg(&mut cow, Id::from(COORD as usize), msg, &mut out);
    cow.into_owned().data
}

#[test]
fn a_committed_hold_is_one_entry_with_minus_its_amount_and_the_level_after() {
    let s0 = start();
    let s1 = deliver(&s0, hold(0, "alice", 4));
    assert_eq!(derive(&s0, &s1), vec![], "a prepare applies nothing");
    let s2 = deliver(&s1, Msg::Commit { txn: txn(0) });
    let changes = derive(&s1, &s2);
    assert_eq!(
        changes,
        vec![Change {
            kind: ChangeKind::Hold,
            req: req(0),
            txn: txn(0),
            key: "alice".into(),
            amount: 4,
            level: 6,
        }]
    );
    assert_eq!(changes[0].signed(), -4);
    assert_eq!(s2.levels["alice"], 6);
    // A duplicate commit changes nothing and journals nothing.
    let s3 = deliver(&s2, Msg::Commit { txn: txn(0) });
    assert_eq!(s3, s2);
    assert_eq!(derive(&s2, &s3), vec![]);
}

#[test]
fn an_abort_is_no_entry() {
    let s0 = start();
    let s1 = deliver(&s0, hold(0, "alice", 4));
    let s2 = deliver(&s1, Msg::Abort { txn: txn(0) });
    assert!(s2.finished.contains_key(&txn(0)));
    assert_eq!(derive(&s1, &s2), vec![]);
    let s3 = deliver(&s2, credit(1, "carol", 5));
    let s4 = deliver(&s3, Msg::Abort { txn: txn(1) });
    assert_eq!(derive(&s3, &s4), vec![]);
}

#[test]
fn a_committed_credit_is_plus_its_amount_and_may_create_the_key() {
    let s0 = start();
    let s1 = deliver(&s0, credit(0, "carol", 5));
    let s2 = deliver(&s1, Msg::Commit { txn: txn(0) });
    let changes = derive(&s1, &s2);
    assert_eq!(
        changes,
        vec![Change {
            kind: ChangeKind::Credit,
            req: req(0),
            txn: txn(0),
            key: "carol".into(),
            amount: 5,
            level: 5,
        }]
    );
    assert_eq!(changes[0].signed(), 5);
}

/// A refund's credit is told from a top-up's by its transaction's parties
/// (the coordinator names both participants in a refund's prepares, one in
/// a top-up's): same amount, same level, operation `refund`.
#[test]
fn a_committed_credit_of_two_parties_is_a_refund() {
    let s0 = start();
    let refund = Msg::PrepareCredit {
        txn: txn(0),
        req: req(0),
        op: op("alice", 3),
        floor: Floor::default(),
        parties: vec![Id::from(1usize), Id::from(2usize)],
    };
    let s1 = deliver(&s0, refund);
    let s2 = deliver(&s1, Msg::Commit { txn: txn(0) });
    let changes = derive(&s1, &s2);
    assert_eq!(
        changes,
        vec![Change {
            kind: ChangeKind::Refund,
            req: req(0),
            txn: txn(0),
            key: "alice".into(),
            amount: 3,
            level: 13,
        }]
    );
    assert_eq!((changes[0].signed(), changes[0].kind.name()), (3, "credit"));
    // A one-party credit on the same state stays a plain credit.
    let s3 = deliver(&s2, credit(1, "alice", 2));
    let s4 = deliver(&s3, Msg::Commit { txn: txn(1) });
    assert_eq!(derive(&s3, &s4)[0].kind, ChangeKind::Credit);
    // And the refund's kind survives the bytes a snapshot writes.
    let bytes = bincode::serialize(&changes[0]).unwrap();
    let back: Change = bincode::deserialize(&bytes).unwrap();
    assert_eq!(back, changes[0]);
}

/// Several commits in one record (a batch) each get the level right after
/// them, so the entries replay to the levels.
#[test]
fn several_commits_in_one_record_each_get_their_running_level() {
    let mut s = start();
    for (n, m) in [
        hold(0, "alice", 4),
        hold(1, "alice", 3),
        credit(2, "alice", 7),
        hold(3, "bob", 1),
    ]
    .into_iter()
    .enumerate()
    {
        s = deliver(&s, m);
        assert!(s.prepared(&txn(n as u64)), "prepared {n}");
    }
    let before = s.clone();
    for n in 0..4 {
        s = deliver(&s, Msg::Commit { txn: txn(n) });
    }
    let changes = derive(&before, &s);
    let levels: Vec<_> = changes.iter().map(|c| (c.key.as_str(), c.level)).collect();
    assert_eq!(
        levels,
        vec![("alice", 6), ("alice", 3), ("alice", 10), ("bob", 2)]
    );
    assert_eq!(replay(&start(), &changes), s.levels);
}

/// The levels the entries give from the initial ones, checking each
/// entry's resulting level on the way.
pub(crate) fn replay(initial: &PartStorage, changes: &[Change]) -> twopc_model::Map<String, u64> {
    let mut levels = initial.levels.clone();
    for c in changes {
        let level = levels.entry(c.key.clone()).or_insert(0);
        *level = (*level as i128 + c.signed()) as u64;
        assert_eq!(*level, c.level, "{c:?}");
    }
    levels
}

/// A key's last changes: newest first, at most `n`, found only among the
/// newest `scan` entries (the bound on the work of `twopc account`).
#[test]
fn the_last_changes_of_a_key_are_found_newest_first_within_the_scan() {
    let entry = |n: u64, key: &str| Change {
        kind: ChangeKind::Credit,
        req: req(n),
        txn: txn(n),
        key: key.into(),
        amount: n,
        level: n,
    };
    let mut j = Journal::new(5);
    // Positions 1..=7; the ring keeps 3..=7.
    j.extend((1..=7).map(|n| entry(n, if n % 2 == 0 { "bob" } else { "alice" })));
    let found = |key, n, scan| -> Vec<u64> {
        j.last_of(key, n, scan)
            .iter()
            .map(|(p, c)| {
                assert_eq!(c.amount, *p, "the entry at its position");
                *p
            })
            .collect()
    };
    assert_eq!(found("alice", 10, 100), vec![7, 5, 3]);
    assert_eq!(found("alice", 2, 100), vec![7, 5]);
    assert_eq!(found("bob", 10, 100), vec![6, 4]);
    assert_eq!(found("bob", 10, 3), vec![6], "only 5..=7 scanned");
    assert_eq!(found("carol", 10, 100), Vec::<u64>::new());
}

#[test]
fn the_ring_keeps_the_last_entries_and_their_positions() {
    let entry = |n: u64| Change {
        kind: ChangeKind::Hold,
        req: req(n),
        txn: txn(n),
        key: "alice".into(),
        amount: 1,
        level: n,
    };
    let mut j = Journal::new(3);
    assert_eq!((j.first(), j.end()), (1, 1));
    j.extend((0..5).map(entry));
    assert_eq!((j.first(), j.end(), j.len()), (3, 6, 3));
    let page = j.page(1, 10);
    assert!(page.truncated);
    assert_eq!(
        (page.first, page.start, page.end, page.next()),
        (3, 3, 6, 6)
    );
    assert_eq!(page.entries[0], entry(2));
    let page = j.page(4, 1);
    assert!(!page.truncated);
    assert_eq!(
        (page.start, page.next(), page.entries.clone()),
        (4, 5, vec![entry(3)])
    );
    let page = j.page(9, 10);
    assert_eq!(
        (page.start, page.entries.len(), page.truncated),
        (6, 0, false)
    );
}

/// A purchase's hold and a credit, each committed through the store, one
/// sync each: `n` commits.
pub(crate) fn commit_through(store: &mut LogStore, s: &mut PartStorage, from: u64, n: u64) {
    for i in from..from + n {
        let m = if i % 4 == 3 {
            credit(i, "alice", 2)
        } else {
            hold(i, "alice", 1)
        };
        *s = deliver(s, m);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        *s = deliver(s, Msg::Commit { txn: txn(i) });
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
    }
}

pub(crate) fn journal_of(store: &LogStore) -> Journal {
    store.journal().unwrap().lock().unwrap().clone()
}

#[test]
fn a_restart_keeps_the_journal_and_its_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 6);
    let before = journal_of(&store);
    assert_eq!((before.first(), before.end()), (1, 7));
    drop(store);
    let (mut store, state) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    assert_eq!(state, Some(Storage::Participant(s.clone())));
    assert_eq!(journal_of(&store), before);
    commit_through(&mut store, &mut s, 6, 2);
    let j = journal_of(&store);
    assert_eq!((j.first(), j.end()), (1, 9));
    let all = j.page(1, 100).entries;
    assert_eq!(replay(&start(), &all), s.levels);
}

#[test]
fn retention_drops_the_oldest_and_keeps_positions_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    let mut store = store.with_journal_retention(5);
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 12);
    let j = journal_of(&store);
    assert_eq!((j.first(), j.end(), j.len()), (8, 13, 5));
    assert_eq!(j.page(8, 1).entries[0].txn, txn(7));
    drop(store);
    let (store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    let store = store.with_journal_retention(5);
    let j = journal_of(&store);
    assert_eq!((j.first(), j.end(), j.len()), (8, 13, 5));
}

#[test]
fn compaction_carries_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny compaction floor: the log is compacted every few records.
    let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 10);
    assert!(store.stats().compactions > 5, "{:?}", store.stats());
    let before = journal_of(&store);
    assert_eq!((before.first(), before.end()), (1, 11));
    drop(store);
    let (store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    assert_eq!(journal_of(&store), before);
    assert_eq!(replay(&start(), &before.page(1, 100).entries), s.levels);
}

/// A change record of the format before the journal (the same bytes
/// without its trailing empty list) reads as journaling nothing, and a
/// directory written before the journal opens with an empty journal
/// starting at position 1.
#[test]
fn a_record_from_before_the_journal_reads_as_an_empty_journal() {
    use bincode::Options;
    let s0 = start();
    let s1 = deliver(&s0, hold(0, "alice", 4));
    let delta = super::super::delta::diff(
        &Storage::Participant(s0.clone()),
        &Storage::Participant(s1.clone()),
    )
    .expect("a change");
    let payload = bincode::DefaultOptions::new().serialize(&delta).unwrap();
    assert_eq!(payload.last(), Some(&0), "an empty journal list");
    let old = &payload[..payload.len() - 1];
    let mut rec = vec![super::super::record::REC_MAGIC];
    rec.extend_from_slice(&(old.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(old).to_le_bytes());
    rec.extend_from_slice(old);
    let read = super::super::record::scan(&rec, std::path::Path::new("log"))
        .unwrap()
        .deltas;
    assert_eq!(read, vec![delta]);
    // A directory whose log holds records of that format.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    store.stage(Storage::Participant(s0)).unwrap();
    store.sync().unwrap();
    let log = store.log_path().to_path_buf();
    drop(store);
    let mut bytes = super::super::tests::records(dir.path(), &log);
    bytes.extend_from_slice(&rec);
    std::fs::write(&log, bytes).unwrap();
    let (store, state) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    assert_eq!(state, Some(Storage::Participant(s1)));
    let j = journal_of(&store);
    assert_eq!((j.first(), j.end(), j.is_empty()), (1, 1, true));
}

/// On a disk that loses unsynced writes at a power cut ([`SimFs`]), cut
/// anywhere (mid-sync, mid-compaction), with small compactions: the
/// directory reopens to a journal that replays from the initial levels to
/// the levels it reopened with, for hundreds of seeds.
#[test]
fn after_a_power_cut_anywhere_the_journal_replays_to_the_levels() {
    use crate::runtime::role::Role;
    use crate::runtime::storage::{open_store, SimFs};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::path::Path;
    use std::sync::Arc;
    let open = |fs: &SimFs| {
        let dir = Path::new("/data/wallet");
        // As a node does: the initial levels are the first durable state
        // (the journal counts from them).
        let initial = || Ok(Some(Storage::Participant(start())));
        open_store(
            Arc::new(fs.clone()),
            dir,
            "wallet",
            Role::Wallet,
            600,
            initial,
        )
    };
    let mut history = vec![start()];
    for n in 0..80u64 {
        let last = history.last().unwrap().clone();
        let prepare = match n % 3 {
            0 | 1 => hold(n, if n % 2 == 0 { "alice" } else { "bob" }, 1),
            _ => credit(n, "carol", 2),
        };
        let prepared = deliver(&last, prepare);
        let decide = if n % 7 == 5 {
            Msg::Abort { txn: txn(n) }
        } else {
            Msg::Commit { txn: txn(n) }
        };
        let decided = deliver(&prepared, decide);
        history.extend([prepared, decided]);
    }
    let (mut entries_seen, mut compactions) = (0, 0);
    for seed in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let fs = SimFs::new();
        let (mut store, _) = open(&fs).unwrap();
        fs.cut_power_after(rng.random_range(1..400), seed);
        for s in &history {
            store.stage(Storage::Participant(s.clone())).unwrap();
            if rng.random_bool(0.5) && store.sync().is_err() {
                break; // The power was cut during it.
            }
        }
        compactions += store.stats().compactions;
        if fs.disarm() {
            fs.power_cut(seed);
        }
        drop(store);
        let (store, got) = open(&fs).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let j = journal_of(&store);
        let levels = match got {
            Some(Storage::Participant(p)) => p.levels,
            None => start().levels,
            Some(other) => panic!("seed {seed}: {other:?}"),
        };
        assert_eq!(j.first(), 1, "seed {seed}");
        entries_seen += j.len();
        assert_eq!(
            replay(&start(), &j.page(1, usize::MAX).entries),
            levels,
            "seed {seed}"
        );
    }
    assert!(entries_seen > 1000, "{entries_seen} entries recovered");
    assert!(compactions > 50, "{compactions} compactions");
}

/// The order service's state after `msg` (as [`deliver`] for the wallet).
fn deliver_to_order(data: &PartStorage, msg: Msg) -> PartStorage {
    let order = Participant {
        resource: twopc_model::Resource::Order,
        ..wallet()
    };
    let state = twopc_model::PartState {
        data: data.clone(),
        recovered_holds: false,
        acks_after_save: Default::default(),
    };
    let mut cow = Cow::Borrowed(&state);
    let mut out: Out<twopc_model::Node> = Out::new();
    order.on_msg(&mut cow, Id::from(COORD as usize), msg, &mut out);
    cow.into_owned().data
}

#[test]
fn a_priced_restock_is_a_credit_of_its_qty_and_a_price_change_alone_a_credit_of_0() {
    let priced = |n: u64, sku: &str, qty: u64, price: u64| Msg::PreparePriced {
        txn: txn(n),
        req: req(n),
        change: twopc_model::Change::Credit(op(sku, qty)),
        price,
        floor: Floor::default(),
        parties: vec![Id::from(1usize)],
    };
    let s0 = start();
    let s1 = deliver_to_order(&s0, priced(0, "gadget", 5, 7));
    assert_eq!(derive(&s0, &s1), vec![], "a prepare applies nothing");
    let s2 = deliver_to_order(&s1, Msg::Commit { txn: txn(0) });
    assert_eq!(s2.prices.get("gadget"), Some(&7));
    let entry = |n: u64, amount: u64, level: u64| Change {
        kind: ChangeKind::Credit,
        req: req(n),
        txn: txn(n),
        key: "gadget".into(),
        amount,
        level,
    };
    assert_eq!(derive(&s1, &s2), vec![entry(0, 5, 5)]);
    // A price change alone: an entry of 0 names it; the level stays.
    let s3 = deliver_to_order(&s2, priced(1, "gadget", 0, 9));
    let s4 = deliver_to_order(&s3, Msg::Commit { txn: txn(1) });
    assert_eq!(s4.prices.get("gadget"), Some(&9));
    assert_eq!(derive(&s3, &s4), vec![entry(1, 0, 5)]);
}
