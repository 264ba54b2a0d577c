//! The journal on disk: records carry no entries, compaction writes each
//! entry once to a segment (the snapshot does not grow with the journal),
//! and a restart finds the same journal whatever a crash or an operator
//! left among the segments.

use super::*;
use crate::runtime::storage::journal::tests::{commit_through, journal_of, replay, start};
use crate::runtime::storage::record::scan_log;
use crate::runtime::storage::{Journal, LogStore, RealFs, Store};
use twopc_model::Storage;

fn reopen(dir: &Path) -> LogStore {
    LogStore::open_with(dir, u64::MAX).unwrap().0
}

#[test]
fn records_carry_no_entries_and_the_replay_derives_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 6);
    let before = journal_of(&store);
    assert_eq!(before.len(), 6);
    let bytes = std::fs::read(store.log_path()).unwrap();
    let scan = scan_log(&bytes, 0, store.log_path()).unwrap().scan;
    let carried: usize = scan
        .deltas
        .iter()
        .map(|d| match d {
            super::super::delta::Delta::Participant { journal, .. } => journal.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(carried, 0, "no record carries its entries");
    drop(store);
    assert_eq!(journal_of(&reopen(dir.path())), before);
}

#[test]
fn compaction_writes_each_entry_once_and_the_snapshot_does_not_grow_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 10);
    commit_through(&mut store, &mut s, 10, 200);
    let before = journal_of(&store);
    assert_eq!(before.first(), 1);
    assert!(before.end() > 100, "{before:?}");
    // The snapshot holds the state and where the journal resumes, no entry.
    let path = dir.path().join("snapshot");
    let snap =
        crate::runtime::storage::record::parse_snapshot(&std::fs::read(&path).unwrap(), &path)
            .unwrap();
    assert!(snap.journal.is_empty());
    let resumes = snap.journal.first();
    assert!(resumes > 100 && resumes <= before.end(), "{resumes}");
    let segs = segments(&RealFs, dir.path()).unwrap();
    assert!(segs.len() > 10, "{segs:?}");
    let mut positions = 0;
    for first in &segs {
        let (named, entries) =
            parse_segment(&std::fs::read(segment_path(dir.path(), *first)).unwrap()).unwrap();
        assert_eq!(named, *first);
        positions += entries.len();
    }
    assert!(
        positions < before.end() as usize,
        "each entry in one segment: {positions}"
    );
    drop(store);
    let j = journal_of(&reopen(dir.path()));
    assert_eq!(j, before);
    assert_eq!(replay(&start(), &j.page(1, 1000).entries), s.levels);
}

#[test]
fn a_segment_of_a_crashed_compaction_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 5);
    let before = journal_of(&store);
    drop(store);
    // A compaction wrote its segment, then crashed before its snapshot:
    // the segment starts at the snapshot's position, and (made up here)
    // says something else than the log.
    let mut wrong = before.page(1, 1).entries;
    wrong[0].amount += 1000;
    std::fs::write(
        segment_path(dir.path(), before.end()),
        segment(before.end(), &wrong),
    )
    .unwrap();
    std::fs::write(dir.path().join("journal.99.tmp"), b"half").unwrap();
    let store = reopen(dir.path());
    assert_eq!(journal_of(&store), before);
    assert!(!segment_path(dir.path(), before.end()).exists());
    assert!(!dir.path().join("journal.99.tmp").exists());
}

#[test]
fn a_lost_segment_starts_the_journal_after_it_and_leaves_the_levels() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 8);
    let before = journal_of(&store);
    drop(store);
    let segs = segments(&RealFs, dir.path()).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    // An operator deletes the second segment: what is before it is lost.
    std::fs::remove_file(segment_path(dir.path(), segs[1])).unwrap();
    let (store, state) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    assert_eq!(state, Some(Storage::Participant(s.clone())));
    let j = journal_of(&store);
    assert_eq!((j.first(), j.end()), (segs[2], before.end()));
    assert_eq!(j.page(1, 100).entries, before.page(segs[2], 100).entries);
}

#[test]
fn a_snapshot_from_before_segments_keeps_its_entries_and_moves_them_to_a_segment() {
    use crate::runtime::storage::record::{parse_snapshot, snapshot};
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 6);
    let before = journal_of(&store);
    drop(store);
    // Rewrite the directory as the format before segments left it: the
    // snapshot carries the retained entries, no segment exists.
    let path = dir.path().join("snapshot");
    let snap = parse_snapshot(&std::fs::read(&path).unwrap(), &path).unwrap();
    let end = snap.journal.first();
    let kept = Journal::from_entries(
        1,
        before.page(1, 100).entries[..(end - 1) as usize].to_vec(),
    );
    let old = snapshot(
        snap.generation,
        snap.base,
        snap.owner.as_ref(),
        &kept,
        &snap.state,
    );
    std::fs::write(&path, old).unwrap();
    for first in segments(&RealFs, dir.path()).unwrap() {
        std::fs::remove_file(segment_path(dir.path(), first)).unwrap();
    }
    let (mut store, _) = LogStore::open_with(dir.path(), 1).unwrap();
    assert_eq!(journal_of(&store), before);
    // The next compaction moves them to a segment (it waits until the log
    // is as long as the old, larger snapshot).
    let compactions = store.stats().compactions;
    let mut n = 6;
    while store.stats().compactions == compactions {
        commit_through(&mut store, &mut s, n, 1);
        n += 1;
    }
    let after = journal_of(&store);
    drop(store);
    assert!(!segments(&RealFs, dir.path()).unwrap().is_empty());
    assert_eq!(journal_of(&reopen(dir.path())), after);
}

#[test]
fn segments_past_the_retention_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LogStore::open_with(dir.path(), 1).unwrap();
    let mut store = store.with_journal_retention(5);
    let mut s = start();
    commit_through(&mut store, &mut s, 0, 60);
    let j = journal_of(&store);
    assert_eq!((j.first() + 5, j.len()), (j.end(), 5));
    assert!(j.end() > 40, "{j:?}");
    let segs = segments(&RealFs, dir.path()).unwrap();
    // Only segments holding a retained entry stay (one entry each here,
    // the compaction floor being one byte).
    assert!(segs.len() <= 6, "{segs:?}");
    drop(store);
    let (store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    let store = store.with_journal_retention(5);
    assert_eq!(journal_of(&store), j);
}
