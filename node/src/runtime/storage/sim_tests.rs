//! Storage on a simulated disk ([`SimFs`]): what survives a power cut, at
//! any point of a sync, a compaction or a repair at open.

use super::*;
use crate::runtime::error::Error;
use crate::runtime::role::Role;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::Arc;
use twopc_model::{Hold, Op, PartStorage, RequestId, TxnId};

const DIR: &str = "/data/wallet";

fn open(
    fs: &SimFs,
    compact_min: u64,
) -> crate::runtime::error::Result<(LogStore, Option<Storage>)> {
    open_store(
        Arc::new(fs.clone()),
        Path::new(DIR),
        "wallet",
        Role::Wallet,
        compact_min,
        || Ok(None),
    )
}

/// A wallet's state after `n` steps: every step changes it.
fn state(n: u64) -> Storage {
    let mut s = PartStorage {
        levels: (0..20).map(|i| (format!("user{i:02}"), 1_000u64)).collect(),
        ..PartStorage::default()
    };
    for k in 0..n {
        if k % 2 == 0 {
            let txn = TxnId { epoch: 1, n: k };
            let req = RequestId::new(format!("1#{k}"));
            let op = Op {
                key: format!("user{:02}", k % 20),
                amount: 1,
            };
            s.holds.insert(txn, Hold { req, op });
        } else {
            s.holds.remove(&TxnId { epoch: 1, n: k - 1 });
            *s.levels
                .get_mut(&format!("user{:02}", (k - 1) % 20))
                .unwrap() -= 1;
        }
    }
    Storage::Participant(s)
}

#[test]
fn a_power_cut_after_sync_loses_nothing_synced() {
    for seed in 0..50 {
        let fs = SimFs::new();
        let (mut store, none) = open(&fs, 600).unwrap();
        assert_eq!(none, None);
        for n in 0..=(seed % 40) {
            store.stage(state(n)).unwrap();
            store.sync().unwrap();
        }
        // Staged after the last sync: may go.
        store.stage(state(1000)).unwrap();
        fs.power_cut(seed);
        drop(store);
        let (_, loaded) = open(&fs, 600).unwrap();
        assert_eq!(loaded, Some(state(seed % 40)), "seed {seed}");
    }
}

/// The position in `history` of the state `got` (`None`: nothing saved).
fn position(got: &Option<Storage>, history: &[Storage]) -> Option<u64> {
    got.as_ref().map(|g| {
        let at = history.iter().position(|h| h == g);
        at.expect("a state that was staged") as u64
    })
}

#[test]
fn a_power_cut_anywhere_leaves_a_state_between_the_last_sync_and_the_last_stage() {
    let history: Vec<Storage> = (0..150).map(state).collect();
    let (mut compactions, mut torn, mut refused_opens) = (0, 0, 0);
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let fs = SimFs::new();
        let (mut store, _) = open(&fs, 600).unwrap();
        fs.cut_power_after(rng.random_range(1..300), seed);
        let (mut synced, mut staged) = (None, None);
        let mut n = 0;
        while n < 150 {
            store.stage(history[n as usize].clone()).unwrap();
            staged = Some(n);
            n += 1;
            if rng.random_bool(0.5) {
                match store.sync() {
                    Ok(()) => synced = staged,
                    Err(_) => break, // The power was cut during it.
                }
            }
        }
        compactions += store.stats().compactions;
        if fs.disarm() {
            fs.power_cut(seed);
        }
        drop(store);
        let try_open = || match open(&fs, 600) {
            Ok((store, got)) => (store, got),
            Err(e) => panic!("seed {seed}: refused after a power cut: {e}"),
        };
        let replayed = replay_in(&fs, Path::new(DIR)).unwrap();
        torn += u64::from(replayed.log.is_some_and(|l| l.torn.is_some()));
        let (store, got) = try_open();
        let at = position(&got, &history);
        assert!(
            synced <= at && at <= staged,
            "seed {seed}: recovered {at:?}, synced {synced:?}, staged {staged:?}"
        );
        drop(store);
        // A cut during the repairs at open changes nothing either.
        fs.cut_power_after(rng.random_range(1..12), seed + 1);
        if let Ok((store, again)) = open(&fs, 600) {
            assert_eq!(again, got, "seed {seed}");
            drop(store);
        } else {
            refused_opens += 1;
        }
        fs.disarm();
        let (mut store, again) = try_open();
        assert_eq!(again, got, "seed {seed}: a cut during open");
        // And the store goes on from there.
        store.stage(state(999)).unwrap();
        store.sync().unwrap();
        fs.power_cut(seed + 2);
        drop(store);
        assert_eq!(try_open().1, Some(state(999)), "seed {seed}");
    }
    // The seeds reach what they are meant to reach.
    eprintln!("300 seeds: {compactions} compactions, {torn} torn tails cut, {refused_opens} opens cut short");
    assert!(compactions > 100, "{compactions} compactions");
    assert!(torn > 10, "{torn} torn tails cut at open");
    assert!(refused_opens > 10, "{refused_opens} opens cut short");
}

#[test]
fn a_log_that_is_never_fsynced_loses_acknowledged_data_and_it_is_detected() {
    // Exactly MARKER_SYNC_EVERY syncs: the last marker write is fsynced,
    // so the marker on disk claims every acknowledged byte.
    let run = |skip_fsync: bool, seed: u64| {
        let fs = SimFs::new();
        let (store, _) = open(&fs, u64::MAX).unwrap();
        let mut store = store.with_faults(DiskFaults::default().with_skip_fsync(skip_fsync));
        for n in 0..MARKER_SYNC_EVERY {
            store.stage(state(n)).unwrap();
            store.sync().unwrap(); // Acknowledged: the runtime sends now.
        }
        fs.power_cut(seed);
        drop(store);
        open(&fs, u64::MAX).map(|(_, got)| got)
    };
    let acknowledged = Some(state(MARKER_SYNC_EVERY - 1));
    let mut lost = 0;
    for seed in 0..30 {
        assert_eq!(run(false, seed).unwrap(), acknowledged, "seed {seed}");
        match run(true, seed) {
            // The disk happened to write everything back before the cut.
            Ok(got) => assert_eq!(got, acknowledged, "seed {seed}: silently older"),
            Err(Error::StorageLost { synced, valid, .. }) => {
                assert!(valid < synced, "seed {seed}");
                lost += 1;
            }
            // Unsynced records written in place into the zeros: a power
            // cut keeps some of them and not others, so a hole may be
            // followed by a valid record, which is corruption.
            Err(Error::StorageCorrupt { reason, .. }) => {
                assert!(
                    reason.contains("a valid record follows"),
                    "seed {seed}: {reason}"
                );
                lost += 1;
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    assert!(
        lost >= 10,
        "lost acknowledged data detected in {lost} of 30 runs"
    );
}

#[test]
fn simfs_keeps_what_was_synced_and_loses_the_rest() {
    let fs = SimFs::new();
    let dir = Path::new("/d");
    fs.create_dir_all(dir).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let file = |name: &str| dir.join(name);
    // Synced file, synced entry: stays.
    let mut f = fs.create(&file("kept")).unwrap();
    f.write_all(b"kept").unwrap();
    f.sync_all().unwrap();
    // A rename made durable, and one not.
    let mut h = fs.create(&file("a.tmp")).unwrap();
    h.write_all(b"a").unwrap();
    h.sync_all().unwrap();
    fs.sync_dir(dir).unwrap();
    fs.rename(&file("a.tmp"), &file("a")).unwrap();
    fs.sync_dir(dir).unwrap();
    fs.rename(&file("a"), &file("b")).unwrap();
    // Synced file, entry never synced: vanishes.
    let mut g = fs.create(&file("unlisted")).unwrap();
    g.write_all(b"data").unwrap();
    g.sync_all().unwrap();
    // Removed without a directory sync: back after the cut.
    fs.remove_file(&file("kept")).unwrap();
    assert!(!fs.exists(&file("kept")) && fs.exists(&file("b")));
    let lock = fs.lock(&file("LOCK")).unwrap();
    assert!(fs.lock(&file("LOCK")).is_err(), "held");
    let before = fs.stats().power_cuts;
    fs.power_cut(7);
    assert_eq!(fs.stats().power_cuts, before + 1);
    let mut names = fs.read_dir(dir).unwrap();
    names.sort();
    assert_eq!(names, ["a", "kept"]);
    assert_eq!(fs.read(&file("kept")).unwrap(), b"kept");
    assert_eq!(fs.read(&file("a")).unwrap(), b"a");
    assert!(
        f.write_all(b"x").is_err(),
        "a handle of before the cut is dead"
    );
    drop((f, g, h, lock));
    drop(fs.lock(&file("LOCK")).unwrap()); // released by the cut
}

#[test]
fn simfs_tears_unsynced_appends_by_seed_and_replays_the_same_seed_exactly() {
    let cut = |seed: u64| {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let path = Path::new("/d/f");
        let mut f = fs.create(path).unwrap();
        f.write_all(b"durable;").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        let mut f = fs.open_append(path).unwrap();
        f.write_all(b"0123456789").unwrap();
        f.write_all(b"abcdefghij").unwrap();
        let m = fs.open_write(path, false).unwrap();
        m.write_all_at(b"D", 0).unwrap(); // an unsynced pwrite: kept or not
        fs.power_cut(seed);
        fs.read(path).unwrap()
    };
    let (mut none, mut all, mut part, mut pwrite) = (0, 0, 0, 0);
    for seed in 0..200 {
        let got = cut(seed);
        assert_eq!(got, cut(seed), "seed {seed}: deterministic");
        let whole = b"durable;0123456789abcdefghij";
        assert!(
            whole[1..].starts_with(&got[1..]) && got.len() >= 8,
            "{got:?}"
        );
        pwrite += u64::from(got[0] == b'D');
        match got.len() {
            8 => none += 1,
            28 => all += 1,
            _ => part += 1,
        }
    }
    assert!(none > 20 && all > 20 && part > 20, "{none} {all} {part}");
    assert!(pwrite > 50 && pwrite < 150, "{pwrite}");
}

#[test]
fn a_latent_sector_error_stops_the_open_naming_the_file() {
    let fs = SimFs::new();
    let (mut store, _) = open(&fs, u64::MAX).unwrap();
    store.stage(state(3)).unwrap();
    store.sync().unwrap();
    drop(store);
    fs.latent_read_errors(1_000_000, 1);
    let err = open(&fs, u64::MAX).unwrap_err();
    assert!(matches!(err, Error::StorageIo { .. }), "{err}");
    assert!(err.to_string().contains("latent sector error"), "{err}");
    assert!(fs.stats().read_errors >= 1);
    // Nothing on the disk changed: with the errors gone, it opens.
    fs.latent_read_errors(0, 0);
    assert_eq!(open(&fs, u64::MAX).unwrap().1, Some(state(3)));
}
