//! Disk faults, with real `twopc node` processes: damaged storage files are
//! refused at start with an error naming the file (never a fresh start as
//! if the node were new), and a failed fsync or a full disk stops the node
//! before it acknowledges anything that is not durable.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use twopc_model::{Hold, Msg, Op, PartStorage, RequestId, Storage, TxnId};
use twopc_node::runtime::storage::{LogStore, Store};
use twopc_node::runtime::wire::{ClusterKey, Codec, Format, Payload};

/// Starts `name` and expects it to exit with an error; returns its log.
fn refuses(c: &TestCluster, name: &str, what: &str) -> String {
    let out = c.node_command(name, &[]).output().unwrap();
    assert!(
        !out.status.success(),
        "{what}: the node must refuse to start"
    );
    std::fs::read_to_string(c.log_file(name)).unwrap()
}

fn last_line_with<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines().rev().find(|l| l.contains(needle)).unwrap_or("")
}

/// Fills the wallet's data directory through the storage API with a small
/// compaction floor, so it holds a snapshot and a later log, as a long-lived
/// node's would.
fn wallet_with_snapshot(c: &TestCluster) -> (PathBuf, u64) {
    let dir = c.data_dir("wallet");
    let (mut store, _) = LogStore::open_with(&dir, 64).unwrap();
    let mut s = PartStorage {
        levels: [("alice".to_string(), 100u64)].into_iter().collect(),
        ..PartStorage::default()
    };
    for n in 0..20 {
        let txn = TxnId { epoch: 1, n };
        let req = RequestId::new(format!("{}#{}", 1, n));
        let op = Op {
            key: "alice".into(),
            amount: 1,
        };
        s.holds.insert(txn, Hold { req, op });
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
        s.holds.remove(&txn);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
    }
    assert!(store.stats().compactions > 0);
    let generation: u64 = store
        .log_path()
        .extension()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (dir, generation)
}

fn backup(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn restore(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("LOCK") {
            std::fs::remove_file(p).unwrap();
        }
    }
    for (p, b) in files {
        std::fs::write(p, b).unwrap();
    }
}

#[test]
fn damaged_storage_files_are_refused_by_name_never_started_empty() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    let (dir, generation) = wallet_with_snapshot(&c);
    let snapshot = dir.join("snapshot");
    let log = dir.join(format!("log.{generation}"));
    let good = backup(&dir);
    // The intact directory starts, with its state (not the cluster file's).
    c.start("wallet", &[]);
    assert_eq!(c.levels("wallet")["alice"], 100);
    assert!(c.terminate("wallet").success());

    type Damage = fn(&Path, &Path);
    let cases: [(&str, Damage, &str, &str); 7] = [
        (
            "a flipped bit in the snapshot",
            |snap, _| {
                let mut b = std::fs::read(snap).unwrap();
                let n = b.len() - 3;
                b[n] ^= 0x04;
                std::fs::write(snap, b).unwrap();
            },
            "snapshot",
            "checksum",
        ),
        (
            "a truncated snapshot",
            |snap, _| {
                let b = std::fs::read(snap).unwrap();
                std::fs::write(snap, &b[..b.len() / 2]).unwrap();
            },
            "snapshot",
            "not exactly one complete",
        ),
        (
            "a deleted snapshot (a later log remains)",
            |snap, _| std::fs::remove_file(snap).unwrap(),
            "log.",
            "snapshot",
        ),
        (
            "a log truncated to nothing",
            |_, log| std::fs::write(log, b"").unwrap(),
            "log.",
            "truncated",
        ),
        (
            "a log with a damaged header",
            |_, log| {
                let mut b = std::fs::read(log).unwrap();
                b[9] ^= 0xff;
                std::fs::write(log, b).unwrap();
            },
            "log.",
            "generation",
        ),
        (
            "a deleted log",
            |_, log| std::fs::remove_file(log).unwrap(),
            "log.",
            "missing",
        ),
        (
            "garbage in place of a log record",
            |_, log| {
                // Where the next record would start, in the preallocated
                // zeros: no torn write leaves 0x55 there.
                let end = records(log.parent().unwrap()).len();
                let mut b = std::fs::read(log).unwrap();
                b[end..end + 40].fill(0x55);
                std::fs::write(log, b).unwrap();
            },
            "log.",
            "bad record marker",
        ),
    ];
    for (what, damage, file, why) in cases {
        restore(&dir, &good);
        damage(&snapshot, &log);
        let log_text = refuses(&c, "wallet", what);
        let line = last_line_with(&log_text, "twopc:");
        assert!(line.contains("corrupt"), "{what}: {line}");
        assert!(
            line.contains(&dir.display().to_string()) && line.contains(file),
            "{what}: names the file: {line}"
        );
        assert!(line.contains(why), "{what}: says why ({why}): {line}");
        println!("{what}: {line}");
    }
    // Repaired, it starts again with its own state.
    restore(&dir, &good);
    c.start("wallet", &[]);
    assert_eq!(c.levels("wallet")["alice"], 100);
}

/// The protocol messages in a capture file's lines starting with `dir`
/// (status replies left out).
fn protocol_msgs(c: &TestCluster, capture: &Path, dir: &str) -> Vec<Msg> {
    let key = ClusterKey::new(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap();
    let codec = Codec::new(Some(key), Format::Bincode);
    std::fs::read_to_string(capture)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(dir))
        .filter_map(|l| hex::decode(l.split(' ').nth(1)?).ok())
        .filter_map(|b| match codec.decode(&b) {
            Ok(Payload::Protocol(m)) => Some(m),
            _ => None,
        })
        .collect()
}

/// Spawns `name` with `extra` flags and waits until it answers status.
fn spawn(c: &TestCluster, name: &str, extra: &[&str]) -> Child {
    let child = c.node_command(name, extra).spawn().unwrap();
    wait_for(&format!("{name} to answer"), || c.status(name));
    child
}

fn exits_with_error(child: &mut Child, name: &str) {
    let status = wait_for(&format!("{name} to stop"), || child.try_wait().unwrap());
    assert!(!status.success(), "{name} must exit with an error");
}

#[test]
fn a_failed_fsync_at_a_participant_stops_it_before_it_votes() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("coordinator", &[]);
    c.start("order", &[]);
    // The wallet's first fsync (its first hold) fails.
    let capture = c.dir.path().join("wallet.capture");
    let cap = capture.to_str().unwrap();
    let mut wallet = spawn(
        &c,
        "wallet",
        &["--fault-fsync-fail-after", "0", "--fault-capture", cap],
    );
    let (r, code) = c.purchase_once("alice", "widget", 2, 10);
    assert_eq!(
        (r["reason"].as_str(), code),
        (Some("vote_timeout"), 3),
        "{r}"
    );
    exits_with_error(&mut wallet, "wallet");
    let log = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    let line = last_line_with(&log, "twopc:");
    assert!(
        line.contains("storage I/O failed") && line.contains("fsync failed"),
        "{line}"
    );
    // It received the prepare and sent no vote (its answer to the new
    // coordinator's question about epochs, a read, is all that left).
    let got = protocol_msgs(&c, &capture, "in ");
    assert!(
        got.iter().any(|m| matches!(m, Msg::Prepare { .. })),
        "{got:?}"
    );
    let out = protocol_msgs(&c, &capture, "out ");
    assert!(
        out.iter().all(|m| matches!(m, Msg::Epoch { .. })),
        "no vote: {out:?}"
    );
    // Restarted: whatever reached the file is settled by presumed abort.
    c.start("wallet", &[]);
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 100);
    assert_eq!(c.levels("order")["widget"], 10);
}

#[test]
fn a_failed_fsync_at_the_coordinator_stops_it_before_anyone_hears_the_decision() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("wallet", &[]);
    c.start("order", &[]);
    // The first fsync (the epoch at start) succeeds; the next, the commit
    // decision, fails.
    let capture = c.dir.path().join("coordinator.capture");
    let cap = capture.to_str().unwrap();
    let mut coordinator = spawn(
        &c,
        "coordinator",
        &["--fault-fsync-fail-after", "1", "--fault-capture", cap],
    );
    let mut buyer = c
        .purchase_command("alice", "widget", 2, 10)
        .spawn()
        .unwrap();
    exits_with_error(&mut coordinator, "coordinator");
    let log = std::fs::read_to_string(c.log_file("coordinator")).unwrap();
    let line = last_line_with(&log, "twopc:");
    assert!(
        line.contains("storage I/O failed") && line.contains("fsync failed"),
        "{line}"
    );
    // It answered the client's first ask (the id is unknown: here is a
    // ticket), sent its prepares, got the votes, and nothing after: neither
    // a commit nor the client's outcome left.
    // (Before that, started without a log, it asked both participants
    // their epoch.)
    let mut sent = protocol_msgs(&c, &capture, "out ");
    let asked = sent
        .iter()
        .take_while(|m| matches!(m, Msg::AskEpoch { .. }))
        .count();
    assert_eq!(asked, 2, "{sent:?}");
    sent.drain(..asked);
    assert!(
        matches!(sent.first(), Some(Msg::Status { .. })),
        "the ticket first: {sent:?}"
    );
    sent.remove(0);
    assert!(
        sent.len() == 2
            && sent
                .iter()
                .all(|m| matches!(m, Msg::Prepare { .. } | Msg::PreparePriced { .. })),
        "only the two prepares left: {sent:?}"
    );
    // The client has heard nothing and keeps asking.
    assert!(
        buyer.try_wait().unwrap().is_none(),
        "the client got no outcome"
    );
    assert_eq!(c.holds("wallet"), 1);
    // Restarted, the coordinator finishes the purchase one way or the other
    // (the decision's record reached the file or not), and everyone agrees.
    c.start("coordinator", &[]);
    let (r, _) = parse_purchase(buyer.wait_with_output().unwrap());
    c.settle();
    let (alice, widget) = match r["outcome"].as_str() {
        Some("committed") => (80, 8),
        Some("aborted") => (100, 10),
        _ => panic!("an outcome: {r}"),
    };
    assert_eq!(c.levels("wallet")["alice"], alice, "{r}");
    assert_eq!(c.levels("order")["widget"], widget, "{r}");
}

#[test]
fn a_full_disk_stops_the_node_and_the_partial_record_is_cut_at_restart() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("coordinator", &[]);
    c.start("wallet", &[]);
    // Room for a few bytes only: the order service's first hold is cut
    // short by "no space left on device".
    let mut order = spawn(&c, "order", &["--fault-disk-full-after", "20"]);
    let (r, code) = c.purchase_once("alice", "widget", 2, 10);
    assert_eq!(
        (r["reason"].as_str(), code),
        (Some("vote_timeout"), 3),
        "{r}"
    );
    exits_with_error(&mut order, "order");
    let log = std::fs::read_to_string(c.log_file("order")).unwrap();
    let line = last_line_with(&log, "twopc:");
    assert!(
        line.contains("No space left on device") && line.contains("log."),
        "{line}"
    );
    // Space again: the half-written record is a torn tail, cut with a warning.
    c.start("order", &[]);
    let log = std::fs::read_to_string(c.log_file("order")).unwrap();
    assert!(log.contains("torn tail"), "{log}");
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 100);
    assert_eq!(c.levels("order")["widget"], 10);
    let (r, _) = c.purchase("alice", "widget", 1, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    c.settle();
    assert_eq!(c.levels("order")["widget"], 9);
    std::thread::sleep(Duration::from_millis(10));
}

/// `twopc inspect` of `dir`: its exit code and what it printed.
fn inspect_dir(dir: &Path) -> (i32, String) {
    let out = std::process::Command::new(BIN)
        .arg("inspect")
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

fn sorted(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = backup(dir);
    files.sort();
    files
}

#[test]
fn a_log_cut_inside_synced_records_is_refused_and_a_torn_tail_beyond_them_is_cut() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    for _ in 0..3 {
        let (r, _) = c.purchase("alice", "widget", 1, 10);
        assert_eq!(r["outcome"], "committed", "{r}");
    }
    c.settle();
    assert!(c.terminate("wallet").success(), "a clean stop");
    let dir = c.data_dir("wallet");
    let log = log_in(&dir);
    let good = backup(&dir);
    let whole = records(&dir);
    assert_eq!(inspect_dir(&dir).0, 0, "clean after a clean stop");

    // Cut in the middle of synced records: acknowledged purchases are gone.
    let cut = whole.len() / 2;
    std::fs::write(&log, &whole[..cut]).unwrap();
    let before = sorted(&dir);
    let text = refuses(&c, "wallet", "a log cut inside its synced records");
    let line = last_line_with(&text, "twopc:");
    assert!(
        line.contains("lost data that was synced") && line.contains(&log.display().to_string()),
        "names the file: {line}"
    );
    assert!(
        line.contains(&format!("{} bytes", whole.len())) && line.contains(&format!("{cut} bytes")),
        "says the lengths: {line}"
    );
    assert!(
        !text.contains("truncating"),
        "not cut as a torn tail: {text}"
    );
    assert_eq!(sorted(&dir), before, "every file left byte-identical");
    let (code, out) = inspect_dir(&dir);
    assert_eq!(code, 1, "inspect reports what a node would refuse: {out}");
    assert!(out.contains("lost data that was synced"), "{out}");
    assert_eq!(sorted(&dir), before, "inspect changes nothing");
    println!("cut at {cut} of {}: {line}", whole.len());

    // A torn tail after the synced records (a crash during an unsynced
    // write into the preallocated zeros, its start landed or not): inspect
    // says a node would cut it, and the node does and starts.
    let tails: [&[u8]; 2] = [&[0xA7, 40, 0, 0, 0, 9, 9, 9, 9, 1, 2], &[0, 0, 0, 0, 7, 7]];
    for tail in tails {
        restore(&dir, &good);
        let mut torn = whole.clone();
        torn.extend_from_slice(tail);
        std::fs::write(&log, &torn).unwrap();
        let (code, out) = inspect_dir(&dir);
        assert_eq!(code, 5, "a repair to make: {out}");
        assert!(
            out.contains("torn tail") && out.contains(&log.display().to_string()),
            "{out}"
        );
        c.start("wallet", &[]);
        assert_eq!(c.levels("wallet")["alice"], 70);
        assert!(c.terminate("wallet").success());
        assert_eq!(read(&log), whole, "the torn tail cut");
        assert_eq!(inspect_dir(&dir).0, 0, "clean again");
    }
    let warn = std::fs::read_to_string(c.log_file("wallet")).unwrap();
    assert!(warn.contains("torn tail"), "{warn}");
    // And it goes on committing.
    c.start("wallet", &[]);
    let (r, _) = c.purchase("alice", "widget", 1, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 60);
}
