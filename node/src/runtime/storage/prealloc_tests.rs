//! A log's space preallocated ahead of its records (`prealloc.rs`): the
//! length changes only when the log is extended by whole chunks; logs of
//! the appended format are appended to until the next compaction; a
//! simulated power cut tears an overwrite into the zeros piece by piece.

use super::record::log_header;
use super::tests::{prepare, records, records_end, wallet};
use super::*;
use std::fs;
use std::path::Path;

#[test]
fn a_log_grows_by_whole_chunks_ahead_of_its_records_never_in_a_record_sync() {
    let dir = tempfile::tempdir().unwrap();
    // A floor of 16 KiB: chunks of 4 KiB, and no compaction in 200 syncs.
    let (mut store, _) = LogStore::open_with(dir.path(), 16 << 10).unwrap();
    let chunk = prealloc::chunk_for(16 << 10);
    assert_eq!(chunk, 4096);
    let log = store.log_path().to_path_buf();
    let mut len = fs::metadata(&log).unwrap().len();
    assert_eq!(len, chunk, "created with a whole chunk");
    let fsyncs = store.stats().fsyncs;
    let (mut s, mut extended) = (wallet(5), 0);
    for n in 0..200 {
        prepare(&mut s, n);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        let (end, now) = (records_end(dir.path()), fs::metadata(&log).unwrap().len());
        assert!(end <= now, "the records fit in the file");
        if end <= len {
            assert_eq!(now, len, "sync {n}: the length changed in a record's sync");
        } else {
            assert_eq!(now, prealloc::extent(end, chunk), "sync {n}");
            extended += 1;
        }
        len = now;
    }
    assert_eq!(store.stats().compactions, 0);
    assert!(extended >= 1, "the records outgrew a chunk");
    // One fdatasync per sync, one fsync per extension, the marker's.
    let marker = 200 / MARKER_SYNC_EVERY;
    assert_eq!(store.stats().fsyncs - fsyncs, 200 + extended + marker);
    drop(store);
    let (_, loaded) = LogStore::open_with(dir.path(), 16 << 10).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s)));
}

#[test]
fn a_log_of_the_appended_format_is_appended_to_until_the_next_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(5);
    let (mut store, _) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    prepare(&mut s, 0);
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    let log = store.log_path().to_path_buf();
    drop(store);
    // The same log as a version before preallocation wrote it.
    let mut old = records(dir.path(), &log);
    assert_eq!(&old[..8], b"TPCLOG04");
    old[..8].copy_from_slice(b"TPCLOG03");
    fs::write(&log, &old).unwrap();
    let (mut store, loaded) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s.clone())));
    prepare(&mut s, 1);
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    let now = fs::read(&log).unwrap();
    assert_eq!(&now[..old.len()], &old[..], "appended to");
    assert_eq!(now.len() as u64, records_end(dir.path()), "no zeros after");
    assert!(replay(dir.path()).unwrap().log.unwrap().torn.is_none());
    // A compaction writes the new format, preallocated.
    store.restamp(0).unwrap();
    let live = store.log_path().to_path_buf();
    assert_ne!(live, log);
    let new = fs::read(&live).unwrap();
    assert_eq!(&new[..8], b"TPCLOG04");
    assert_eq!(new.len() as u64, prealloc::MAX_CHUNK);
    assert_eq!(records_end(dir.path()), log_header(1, None).len() as u64);
    prepare(&mut s, 2);
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    assert_eq!(fs::metadata(&live).unwrap().len(), prealloc::MAX_CHUNK);
    drop(store);
    let (_, loaded) = LogStore::open_with(dir.path(), u64::MAX).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s)));
}

#[test]
fn simfs_tears_an_unsynced_overwrite_piece_by_piece() {
    let cut = |seed: u64| {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let path = dir.join("f");
        let mut f = fs.create(&path).unwrap();
        f.write_all(&[0; 512]).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(dir).unwrap();
        let f = fs.open_write(&path, false).unwrap();
        f.write_all_at(&[0xff; 256], 32).unwrap(); // pieces 32..64, 64..128, ..
        fs.power_cut(seed);
        fs.read(&path).unwrap()
    };
    let (mut none, mut all, mut holes) = (0, 0, 0);
    for seed in 0..200 {
        let got = cut(seed);
        assert_eq!(got, cut(seed), "deterministic");
        assert_eq!(got.len(), 512, "an overwrite does not change the length");
        let landed: Vec<bool> = [32, 64, 128, 192, 256]
            .iter()
            .map(|&at| got[at] == 0xff)
            .collect();
        // Each piece lands whole or not at all.
        for (i, (from, to)) in [(32, 64), (64, 128), (128, 192), (192, 256), (256, 288)]
            .iter()
            .enumerate()
        {
            let want = if landed[i] { 0xff } else { 0 };
            assert!(got[*from..*to].iter().all(|b| *b == want), "seed {seed}");
        }
        match landed.iter().filter(|l| **l).count() {
            0 => none += 1,
            5 => all += 1,
            _ => holes += u32::from(landed.windows(2).any(|w| !w[0] && w[1])),
        }
    }
    assert!(none > 40 && all > 40 && holes > 10, "{none} {all} {holes}");
}
