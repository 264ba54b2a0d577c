//! The log store end to end: replay, compaction, torn and corrupt tails,
//! bytes per save.

use super::record::{self, REC_MAGIC};
use super::synced;
use super::*;
use crate::runtime::error::Error;
use std::fs;
use twopc_model::participant::Finished;
use twopc_model::{AbortReason, Hold, Op, Outcome, RequestId, TxnId, Verdict};
use twopc_model::{ClientState, CoordStorage, PartStorage};

pub(super) fn wallet(accounts: usize) -> PartStorage {
    PartStorage {
        levels: (0..accounts)
            .map(|i| (format!("user{i:07}"), 1_000_000u64))
            .collect(),
        ..PartStorage::default()
    }
}

pub(super) fn prepare(s: &mut PartStorage, n: u64) {
    let txn = TxnId { epoch: 1, n };
    let req = RequestId::new(format!("{}#{}", 9, n));
    let op = Op {
        key: "user0000003".into(),
        amount: 5,
    };
    s.holds.insert(txn, Hold { req, op });
}

pub(super) fn commit(s: &mut PartStorage, n: u64) {
    let txn = TxnId { epoch: 1, n };
    let hold = s.holds.remove(&txn).unwrap();
    *s.levels.get_mut(&hold.op.key).unwrap() -= hold.op.amount;
    s.finished.insert(
        txn,
        Finished {
            req: Some(hold.req),
            op: Some(hold.op),
            committed: true,
        },
    );
}

/// Bytes written by the record of one save, for a wallet of `accounts`
/// accounts that has finished `history` transactions already.
fn bytes_per_save(accounts: usize, history: u64) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    let mut s = wallet(accounts);
    for n in 0..history {
        prepare(&mut s, n);
        commit(&mut s, n);
    }
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    let before = store.stats().bytes_written;
    prepare(&mut s, history);
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    let prepare_bytes = store.stats().bytes_written - before;
    let before = store.stats().bytes_written;
    commit(&mut s, history);
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    (prepare_bytes, store.stats().bytes_written - before)
}

#[test]
fn bytes_per_save_do_not_grow_with_accounts_or_history() {
    // Varint encoding makes bigger numbers (txn 2000, seq 2000) a few
    // bytes longer; nothing else may grow.
    let small = bytes_per_save(10, 0);
    for big in [bytes_per_save(20_000, 0), bytes_per_save(10, 2_000)] {
        assert!(
            big.0 <= small.0 + 8 && big.1 <= small.1 + 12,
            "{small:?} vs {big:?}"
        );
    }
    assert!(small.0 < 100 && small.1 < 150, "{small:?}");
}

#[test]
fn replay_returns_exactly_the_last_saved_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(50);
    {
        let (mut store, none) = LogStore::open(dir.path()).unwrap();
        assert_eq!(none, None);
        for n in 0..20 {
            prepare(&mut s, n);
            store.stage(Storage::Participant(s.clone())).unwrap();
            if n % 3 == 0 {
                commit(&mut s, n);
                store.stage(Storage::Participant(s.clone())).unwrap();
            }
            store.sync().unwrap();
        }
        // Staged but never synced: as if the process died before fsync.
        s.levels.clear();
        store.stage(Storage::Participant(s.clone())).unwrap();
    }
    let (_, loaded) = LogStore::open(dir.path()).unwrap();
    let mut expected = wallet(50);
    for n in 0..20 {
        prepare(&mut expected, n);
        if n % 3 == 0 {
            commit(&mut expected, n);
        }
    }
    assert_eq!(loaded, Some(Storage::Participant(expected)));
}

#[test]
fn coordinator_and_client_deltas_replay() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = |client, seq| Outcome {
        req: RequestId::new(format!("{}#{}", client, seq)),
        txn: None,
        verdict: Verdict::Aborted(AbortReason::InvalidRequest),
    };
    let mut c = CoordStorage::default();
    let (mut store, _) = LogStore::open(dir.path()).unwrap();
    for i in 0..10 {
        c.epoch = i / 3;
        let o = outcome(i % 4, i);
        let contents = twopc_model::Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: i,
            price: 1,
        };
        // Retention 3: the later ones forget the first.
        c.outcomes.record(o.req, contents, None, o.verdict, 3);
        c.commits.insert(
            TxnId { epoch: 0, n: i },
            RequestId::new(format!("{}#{}", 1, i)),
        );
        if i > 2 {
            c.commits.remove(&TxnId { epoch: 0, n: i - 2 });
        }
        store.stage(Storage::Coordinator(c.clone())).unwrap();
        store.sync().unwrap();
    }
    drop(store);
    let (mut store, loaded) = LogStore::open(dir.path()).unwrap();
    assert_eq!(loaded, Some(Storage::Coordinator(c)));
    // A change of role writes a full record.
    let client = ClientState {
        seen: vec![outcome(1, 1), outcome(1, 2)],
        ticket: Some(7),
    };
    store.stage(Storage::Client(client.clone())).unwrap();
    let mut more = client.clone();
    more.seen.push(outcome(1, 3));
    more.ticket = None;
    store.stage(Storage::Client(more.clone())).unwrap();
    store.sync().unwrap();
    drop(store);
    assert_eq!(inspect(dir.path()).unwrap(), Some(Storage::Client(more)));
}

#[test]
fn compaction_keeps_state_and_bounds_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(100);
    let (mut store, _) = LogStore::open_with(dir.path(), 2_000).unwrap();
    for n in 0..300 {
        prepare(&mut s, n);
        store.stage(Storage::Participant(s.clone())).unwrap();
        commit(&mut s, n);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
    }
    assert!(store.stats().compactions >= 2, "{:?}", store.stats());
    let live = store.log_path().to_path_buf();
    drop(store);
    let logs: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("log.").then_some(name)
        })
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(live.ends_with(&logs[0]));
    let (_, loaded) = LogStore::open_with(dir.path(), 2_000).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s)));
}

#[test]
fn torn_tail_is_cut_and_corruption_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(5);
    {
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        for n in 0..3 {
            prepare(&mut s, n);
            store.stage(Storage::Participant(s.clone())).unwrap();
            store.sync().unwrap();
        }
    }
    let log = dir.path().join("log.0");
    let preallocated = fs::read(&log).unwrap();
    let good = records(dir.path(), &log);
    assert!(preallocated.len() > good.len(), "zeros after the records");
    // Torn: half of a new record, written into the zeros.
    let mut torn = preallocated.clone();
    let half = [REC_MAGIC, 50, 0, 0, 0, 1, 2, 3, 4, 5, 6];
    torn[good.len()..good.len() + half.len()].copy_from_slice(&half);
    fs::write(&log, &torn).unwrap();
    let (_, loaded) = LogStore::open(dir.path()).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s.clone())));
    assert_eq!(fs::read(&log).unwrap(), good, "torn tail truncated");
    // The zeros, or more of them: the end, nothing torn.
    let mut zeros = good.clone();
    zeros.resize(good.len() + 64, 0);
    fs::write(&log, &zeros).unwrap();
    assert_eq!(
        LogStore::open(dir.path()).unwrap().1,
        Some(Storage::Participant(s))
    );
    assert_eq!(fs::read(&log).unwrap(), zeros, "zeros are not a torn tail");
    // Corrupt: a flipped byte inside the first record, others after it.
    let first_end = {
        let mut header = record::log_header(0, None).len();
        header += 9 + u32::from_le_bytes(good[header + 1..header + 5].try_into().unwrap()) as usize;
        header
    };
    let mut bad = preallocated.clone();
    bad[first_end - 3] ^= 0x10;
    fs::write(&log, &bad).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::StorageCorrupt { .. }), "{msg}");
    assert!(msg.contains("log.0") && msg.contains("checksum"), "{msg}");
    assert!(msg.contains("a valid record follows"), "{msg}");
    // And the corrupt file is left as it was, for inspection.
    assert_eq!(fs::read(&log).unwrap(), bad);
    // The last record damaged: in a preallocated log that reads as a torn
    // write, but the synced-length marker knows it was acknowledged.
    let mut bad = preallocated.clone();
    bad[good.len() - 3] ^= 0x10;
    fs::write(&log, &bad).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::StorageLost { .. }), "{msg}");
    assert!(msg.contains("log.0") && msg.contains("checksum"), "{msg}");
    assert_eq!(fs::read(&log).unwrap(), bad);
}

#[test]
fn a_data_dir_is_locked_by_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _) = LogStore::open(dir.path()).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
}

/// Three prepares synced in `dir`; returns the state and the log's bytes.
fn three_synced(dir: &std::path::Path) -> (PartStorage, Vec<u8>) {
    let mut s = wallet(5);
    let (mut store, _) = LogStore::open(dir).unwrap();
    for n in 0..3 {
        prepare(&mut s, n);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        // The marker follows every sync, and never claims more than the
        // log's records; the file's length does not change (preallocated).
        let m = synced::read(&RealFs, dir).unwrap().unwrap();
        assert_eq!((m.generation, m.len), (0, records_end(dir)));
        let len = fs::metadata(store.log_path()).unwrap().len();
        assert_eq!(len, prealloc::MAX_CHUNK, "one chunk, never extended");
    }
    drop(store);
    (s, records(dir, &dir.join("log.0")))
}

/// Where the records of `dir`'s log end (its zeros after them are
/// preallocated space, `prealloc.rs`).
pub(super) fn records_end(dir: &std::path::Path) -> u64 {
    replay(dir).unwrap().log.unwrap().valid_len
}

/// The bytes of `dir`'s log up to the end of its records.
pub(super) fn records(dir: &std::path::Path, log: &std::path::Path) -> Vec<u8> {
    let mut bytes = fs::read(log).unwrap();
    bytes.truncate(records_end(dir) as usize);
    bytes
}

pub(super) fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| (p.display().to_string(), fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_log_cut_inside_synced_records_is_lost_data_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = three_synced(dir.path());
    let log = dir.path().join("log.0");
    // Cut in the middle of the synced records: not a torn tail.
    let cut = good.len() / 2;
    fs::write(&log, &good[..cut]).unwrap();
    let before = files(dir.path());
    for err in [
        LogStore::open(dir.path()).unwrap_err(),
        replay(dir.path()).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(
            matches!(err, Error::StorageLost { synced, len, .. }
                if synced == good.len() as u64 && len == cut as u64),
            "{msg}"
        );
        assert!(msg.contains("log.0") && msg.contains("synced"), "{msg}");
    }
    assert_eq!(files(dir.path()), before, "nothing changed on disk");
    // Cut to a record boundary before the end: the same.
    let (_, first) = {
        let d2 = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(d2.path()).unwrap();
        let mut s = wallet(5);
        prepare(&mut s, 0);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        drop(store);
        ((), records(d2.path(), &d2.path().join("log.0")))
    };
    assert_eq!(&good[..first.len()], &first[..]);
    fs::write(&log, &first).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::StorageLost { .. }), "{err}");
    // Zeros in place of the last synced records (a filesystem kept the
    // length but lost their data, or a copy of the preallocated log taken
    // earlier): the same, not the end of the records.
    let mut zeroed = first.clone();
    zeroed.resize(prealloc::MAX_CHUNK as usize, 0);
    fs::write(&log, &zeroed).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::StorageLost { .. }), "{err}");
    assert!(err.to_string().contains("the records end at byte"), "{err}");
    // The log deleted (no snapshot): lost too, not a fresh start.
    fs::remove_file(&log).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::StorageLost { len: 0, .. }), "{err}");
    assert!(!log.exists(), "not recreated");
}

#[test]
fn a_torn_tail_beyond_the_synced_length_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (s, good) = three_synced(dir.path());
    let log = dir.path().join("log.0");
    let mut torn = good.clone();
    torn.extend_from_slice(&[REC_MAGIC, 50, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
    fs::write(&log, &torn).unwrap();
    let r = replay(dir.path()).unwrap();
    assert_eq!(repairs(dir.path(), &r).unwrap().len(), 1);
    let (_, loaded) = LogStore::open(dir.path()).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s)));
    assert_eq!(fs::read(&log).unwrap(), good);
    let r = replay(dir.path()).unwrap();
    assert_eq!(repairs(dir.path(), &r).unwrap(), Vec::<String>::new());
}

#[test]
fn without_a_marker_a_cut_log_is_a_torn_tail_as_before() {
    // A directory written before the marker existed: nothing is known
    // synced, so a cut record is cut (the behaviour of older versions).
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = three_synced(dir.path());
    fs::remove_file(dir.path().join("synced")).unwrap();
    let log = dir.path().join("log.0");
    fs::write(&log, &good[..good.len() - 3]).unwrap();
    let (mut store, loaded) = LogStore::open(dir.path()).unwrap();
    assert!(loaded.is_some());
    // The marker is back from the next sync on.
    let mut s = wallet(5);
    prepare(&mut s, 9);
    store.stage(Storage::Participant(s)).unwrap();
    store.sync().unwrap();
    let m = synced::read(&RealFs, dir.path()).unwrap().unwrap();
    assert_eq!(m.len, records_end(dir.path()));
}

#[test]
fn compaction_moves_the_marker_to_the_new_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(10);
    let (mut store, _) = LogStore::open_with(dir.path(), 500).unwrap();
    while store.stats().compactions < 2 {
        let n = store.stats().bytes_written;
        prepare(&mut s, n);
        commit(&mut s, n);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
    }
    // One more save into the new log, then a clean stop.
    prepare(&mut s, u64::MAX);
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    let live = store.log_path().to_path_buf();
    drop(store);
    let generation: u64 = live.extension().unwrap().to_str().unwrap().parse().unwrap();
    let m = synced::read(&RealFs, dir.path()).unwrap().unwrap();
    assert_eq!(m.generation, generation);
    assert_eq!(m.len, records_end(dir.path()));
    let header = record::log_header(generation, None).len();
    assert!(m.len > header as u64);
    let good = fs::read(&live).unwrap();
    fs::write(&live, &good[..header]).unwrap();
    let err = LogStore::open_with(dir.path(), 500).unwrap_err();
    assert!(matches!(err, Error::StorageLost { .. }), "{err}");
    // A marker of an older generation (a compaction crashed before it
    // moved the marker) says nothing about this log.
    let mut stale = synced::Marker::open(&RealFs, dir.path(), Some(m))
        .unwrap()
        .0;
    stale.write(generation - 1, 1 << 20, true).unwrap();
    let (_, loaded) = LogStore::open_with(dir.path(), 500).unwrap();
    assert!(loaded.is_some());
    // One of a later generation than the snapshot: the snapshot it followed is gone.
    fs::write(&live, &good).unwrap();
    let m = synced::read(&RealFs, dir.path()).unwrap();
    let mut later = synced::Marker::open(&RealFs, dir.path(), m).unwrap().0;
    later.write(generation + 1, 16, true).unwrap();
    let err = replay(dir.path()).unwrap_err();
    assert!(matches!(err, Error::StorageLost { .. }), "{err}");
}

#[test]
fn the_marker_is_written_every_batch_and_synced_every_marker_sync_every() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    let before = store.stats().fsyncs;
    let mut s = wallet(5);
    for n in 0..MARKER_SYNC_EVERY {
        prepare(&mut s, n);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        // Written (if not yet synced) after every batch: what a restart reads.
        let m = synced::read(&RealFs, dir.path()).unwrap().unwrap();
        assert_eq!(m.len, records_end(dir.path()));
    }
    // One fdatasync of the log per batch, one of the marker per MARKER_SYNC_EVERY.
    assert_eq!(store.stats().fsyncs - before, MARKER_SYNC_EVERY + 1);
}
