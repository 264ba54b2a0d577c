//! docs/node.md's runbooks, rehearsed with real `twopc node` processes: the
//! `$ ` and `10.0.0.N$ ` lines of each runbook's console blocks run as
//! written (see `common/rehearsal.rs` for the machines, `systemctl`, `scp`
//! and `ssh`), and each command must print what the page shows, numbers
//! aside. The move, written for the coordinator, is also run for the wallet
//! and for a coordinator replica, "the same way" as the page says.
//!
//! The mistakes the page describes are made, and must show as it says: a
//! restored copy that is behind; a move with a node forgotten (the wallet,
//! the coordinator, a replica not given the file or not restarted); a
//! switch to the replicated coordinator without restarting a participant.
//! A page that drifts from the program fails here.

mod common;

use common::docs::{console_blocks, node_md, Step};
use common::rehearsal::{purchase, start, stop, Rehearsal};
use common::{caught_up, leader_among, wait_for};
use serde_json::Value;

const RESTORE: &str = "### Runbook: restore from a backup";
const REPLACE: &str = "### Runbook: replace a dead coordinator";
const SWITCH: &str = "### Runbook: switch to the replicated coordinator";
const MOVE: &str = "### Runbook: move a node to a new address";
const REPLICA: &str = "### Runbook: replace a coordinator replica's disk";

const SHOP: [&str; 3] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];

/// The console blocks of the runbook under `heading`.
fn runbook(heading: &str) -> Vec<Vec<Step>> {
    console_blocks(&node_md(), heading)
}

/// A purchase that must commit (within `timeout` seconds).
fn committing(timeout: u64) -> Step {
    let mut s = purchase(timeout);
    s.expected = vec!["committed (txn 1.0)".to_string()];
    s
}

/// `n` purchases, each committed. (Not the page's: an abort by vote
/// timeout, a vote slower than a second on a starved machine, changes
/// nothing and is tried again.)
fn committed(r: &Rehearsal, n: usize) {
    for _ in 0..n {
        let step = committing(10);
        let mut tries = 0;
        let got = loop {
            let got = r.run(std::slice::from_ref(&step));
            tries += 1;
            if tries == 5 || !got[0].concat().starts_with("aborted: vote timeout") {
                break got;
            }
        };
        r.expect(&step, &got[0], &step.expected);
    }
}

/// Three runs of the 2PC shop, one purchase each (the coordinator's epoch,
/// and the participants' floors, go up with each start); left running.
fn three_runs(r: &Rehearsal) {
    for _ in 0..3 {
        committed(r, 1);
        r.ok(&stop(&SHOP));
        r.ok(&start(&SHOP));
    }
}

/// The node on `host` dies (SIGKILL); `systemctl stop` then finds it gone.
fn kill9(host: &str) -> Step {
    Step::on(host, "kill -KILL $(cat pid)")
}

/// `steps` without those whose command contains `text` on `host`.
fn leaving_out(steps: &[Step], host: Option<&str>, text: &str) -> Vec<Step> {
    let left: Vec<Step> = steps
        .iter()
        .filter(|s| !(s.host.as_deref() == host && s.cmd.contains(text)))
        .cloned()
        .collect();
    assert!(left.len() < steps.len(), "a step {text:?} to leave out");
    left
}

/// The epoch of a `committed (txn E.C)` line.
fn epoch(line: &str) -> u64 {
    let txn = line.split("(txn ").nth(1).expect("a txn");
    txn.split('.').next().unwrap().parse().unwrap()
}

/// A node's balance or stock of `key`, from its status.
fn level(r: &Rehearsal, name: &str, key: &str) -> u64 {
    let v = wait_for(&format!("{name}'s status"), || r.status(name));
    v["levels"][key].as_u64().unwrap()
}

/// Which replica of the rehearsal's replicated shop leads, of `alive`.
fn leader(r: &Rehearsal, alive: &[&str]) -> String {
    wait_for("a leader", || leader_among(alive, |n| r.status(n)))
}

#[test]
fn restore_from_a_backup_alarms_with_a_copy_ten_commits_old_and_not_with_the_newest() {
    let blocks = runbook(RESTORE);
    let [backup, restore, behind] = &blocks[..] else {
        panic!("the restore runbook has three console blocks: {blocks:?}")
    };
    // Stock for the fourteen purchases (the example has ten widgets).
    let r = Rehearsal::shop_with(|t| t.replace("widget = 10", "widget = 100"));
    committed(&r, 3);
    r.ok(backup);
    committed(&r, 10);
    // The copy is ten commits old: the page's second block shows what the
    // last two commands print then.
    let checks = restore.len() - behind.len();
    let got = r.run(restore);
    for (i, step) in restore.iter().enumerate() {
        let expected = match i.checked_sub(checks) {
            None => &step.expected,
            Some(j) => {
                assert_eq!(step.cmd, behind[j].cmd, "the same commands");
                &behind[j].expected
            }
        };
        r.expect(step, &got[i], expected);
    }
    assert_eq!(level(&r, "wallet", "alice"), 100 - 3 * 5, "the backup's");
    let log = r.log("10.0.0.2");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("ROLLED BACK")),
        "an ERROR in the wallet's log:\n{log}"
    );
    // The newest copy: the directory moved aside, which lost nothing.
    r.ok(&[Step::on(
        "10.0.0.2",
        "mkdir /tmp/newest && cp -a /var/lib/twopc/wallet.damaged-* /tmp/newest/wallet \
         && tar -C /tmp/newest -czf /backup/wallet.tar.gz wallet",
    )]);
    r.ok(restore);
    assert_eq!(level(&r, "wallet", "alice"), 100 - 14 * 5);
}

/// What the restore runbook says of a coordinator: its own directory
/// restored from a copy (here taken four runs and five commits earlier)
/// needs nothing more. It asks the participants at its start, as a replaced
/// one does, moves past the epoch they saw, and the first purchase commits
/// within a second. (Before epochs were learned, every purchase aborted by
/// vote timeout: the participants ignored its prepares as below their
/// floor.)
#[test]
fn restore_the_coordinator_from_a_copy_five_commits_old_commits_the_first_purchase_at_once() {
    assert!(
        node_md().contains("A coordinator's own directory restored from a copy needs nothing"),
        "the restore runbook says what a coordinator's restore needs"
    );
    let coordinator = |cmd: &str| Step::on("10.0.0.1", cmd);
    let r = Rehearsal::shop_with(|t| t.replace("widget = 10", "widget = 100"));
    committed(&r, 1);
    r.ok(&[
        coordinator("systemctl stop twopc"),
        coordinator("tar -C /var/lib/twopc -czf /backup/coordinator.tar.gz coordinator"),
    ]);
    r.ok(&start(&SHOP[..1]));
    three_runs(&r);
    let got = r.ok(&[committing(10)]);
    let before = epoch(&got[0][0]);
    r.ok(&[
        coordinator("systemctl stop twopc"),
        coordinator("mv /var/lib/twopc/coordinator /var/lib/twopc/coordinator.damaged"),
        coordinator("tar -C /var/lib/twopc -xzf /backup/coordinator.tar.gz"),
    ]);
    r.ok(&start(&SHOP[..1]));
    let got = r.ok(&[committing(1)]);
    let line = &got[0][0];
    assert!(
        epoch(line) > before,
        "past the epoch {before} the participants saw: {line}"
    );
    assert_eq!(level(&r, "wallet", "alice"), 100 - 6 * 5);
}

#[test]
fn replace_a_dead_coordinator_commits_the_first_purchase_within_a_second() {
    let blocks = runbook(REPLACE);
    let [replace] = &blocks[..] else {
        panic!("one console block: {blocks:?}")
    };
    assert!(
        replace[replace.len() - 2].cmd.contains("--timeout 1"),
        "the purchase is bounded by a second"
    );
    let r = Rehearsal::shop();
    three_runs(&r);
    // A fourth run's purchase, and the coordinator dies.
    committed(&r, 1);
    r.ok(&[kill9("10.0.0.1")]);
    let got = r.ok(replace);
    let line = &got[got.len() - 2][0];
    assert!(
        epoch(line) > 4,
        "past the epochs the participants saw: {line}"
    );
    assert_eq!(level(&r, "wallet", "alice"), 100 - 5 * 5);
}

#[test]
fn switch_to_the_replicated_coordinator_commits_the_first_purchase_within_a_second() {
    let blocks = runbook(SWITCH);
    let [switch] = &blocks[..] else {
        panic!("one console block: {blocks:?}")
    };
    let r = Rehearsal::shop();
    three_runs(&r);
    let got = r.ok(switch);
    let line = &got[got.len() - 2][0];
    assert!(
        epoch(line) > 3,
        "past the epochs the participants saw: {line}"
    );
    assert_eq!(level(&r, "wallet", "alice"), 100 - 4 * 5);
    assert_eq!(level(&r, "order", "widget"), 10 - 4);
}

/// The order service left on the old cluster file: purchases commit while
/// coordinator-1 (at the old coordinator's address) leads, and abort once
/// another replica leads, with the order service naming its address.
#[test]
fn switch_to_the_replicated_coordinator_without_restarting_a_participant_shows() {
    let blocks = runbook(SWITCH);
    let switch = leaving_out(&blocks[0], Some("10.0.0.3"), "systemctl restart");
    let r = Rehearsal::shop();
    committed(&r, 1);
    // Named at once, by the runbook's last check, as running with another
    // cluster file.
    let (check, switch) = switch.split_last().unwrap();
    r.ok(switch);
    let got = r.run(std::slice::from_ref(check));
    let alarm = "  ALARM: it has coordinator at 10.0.0.1:7000, which this cluster file does not \
                 name: it runs with another cluster file (a node moved?); give it this one and \
                 restart it";
    assert_eq!(got[0], vec![alarm.to_string()]);
    r.ok(&[Step::on("10.0.0.1", "systemctl stop twopc")]);
    let new = leader(&r, &["coordinator-2", "coordinator-3"]);
    let got = r.run(&[purchase(5)]);
    assert!(
        got[0][0].starts_with("aborted: vote timeout"),
        "{new} leads: {got:?}"
    );
    let order = wait_for("the order service's status", || r.status("order"));
    let alarms = order["alarms"].to_string();
    assert!(
        alarms.contains("not in the cluster file (last: 10.0.0.4:7000)")
            || alarms.contains("not in the cluster file (last: 10.0.0.5:7000)"),
        "{alarms}\n{}",
        r.log("10.0.0.3")
    );
    assert!(order["counters"]["rejected"]["unknown_sender"].as_u64() > Some(0));
    // Restarted with the new file (it has it): purchases commit again.
    r.ok(&[
        Step::on("10.0.0.3", "systemctl restart twopc"),
        Step::op("twopc status --cluster cluster.toml --timeout 10 > /dev/null"),
        committing(5),
    ]);
}

#[test]
fn move_the_coordinator_to_a_new_address() {
    let blocks = runbook(MOVE);
    let [moving, _forgot] = &blocks[..] else {
        panic!("the move runbook has two console blocks: {blocks:?}")
    };
    let r = Rehearsal::shop();
    committed(&r, 1);
    r.ok(moving);
    // Every node has the new file: no node counts a stranger.
    for name in ["coordinator", "wallet", "order"] {
        let v = wait_for(&format!("{name}'s status"), || r.status(name));
        assert_eq!(v["counters"]["rejected"], serde_json::json!({}), "{name}");
    }
    assert_eq!(level(&r, "wallet", "alice"), 100 - 2 * 5);
}

/// The move runbook for another node: the page's coordinator (10.0.0.1)
/// is `name` on `from`, and what it does for the other nodes (10.0.0.2,
/// 10.0.0.3) it does for each of `others`. The last check, every node and
/// its alarms, is the test's: there must be no alarm.
fn moving(block: &[Step], from: &str, name: &str, others: &[&str]) -> Vec<Step> {
    let on = |s: &Step, h: &str| s.host.as_deref() == Some(h) || s.cmd.contains(&format!("{h}:/"));
    let mut steps = Vec::new();
    for s in block {
        if on(s, "10.0.0.3") {
            continue; // One of the others: 10.0.0.2's steps stand for them all.
        } else if on(s, "10.0.0.2") {
            for other in others {
                let mut t = s.clone();
                t.host = s.host.as_ref().map(|_| other.to_string());
                t.cmd = s.cmd.replace("10.0.0.2", other);
                steps.push(t);
            }
        } else if s.cmd.starts_with("for h in 10.0.0.2 10.0.0.3 ") {
            // The check of every machine's file: the others' and the new.
            let mut t = s.clone();
            t.cmd = s.cmd.replace("10.0.0.2 10.0.0.3", &others.join(" "));
            steps.push(t);
        } else {
            let mut t = s.clone();
            if t.host.as_deref() == Some("10.0.0.1") {
                t.host = Some(from.to_string());
            }
            t.cmd = t.cmd.replace("10.0.0.1", from).replace("coordinator", name);
            steps.push(t);
        }
    }
    let last = steps.last_mut().unwrap();
    assert!(last.cmd.contains("grep -e '^[a-z]' -e ALARM"), "{last:?}");
    last.cmd = "twopc status --cluster cluster.toml | grep ALARM".into();
    last.expected = Vec::new();
    steps
}

/// The wallet moves from 10.0.0.2 to 10.0.0.6, as the runbook says a
/// participant does.
#[test]
fn move_the_wallet_to_a_new_address() {
    let blocks = runbook(MOVE);
    let steps = moving(&blocks[0], "10.0.0.2", "wallet", &["10.0.0.1", "10.0.0.3"]);
    let r = Rehearsal::shop();
    committed(&r, 1);
    r.ok(&steps);
    assert_eq!(level(&r, "wallet", "alice"), 100 - 2 * 5);
}

/// coordinator-2 moves from 10.0.0.4 to 10.0.0.6, as the runbook says a
/// coordinator replica does; then it is needed for a majority.
#[test]
fn move_a_coordinator_replica_to_a_new_address() {
    let blocks = runbook(MOVE);
    let others = ["10.0.0.1", "10.0.0.5", "10.0.0.2", "10.0.0.3"];
    let steps = moving(&blocks[0], "10.0.0.4", "coordinator-2", &others);
    let r = Rehearsal::replicated_shop();
    committed(&r, 1);
    r.ok(&steps);
    let all = ["coordinator-1", "coordinator-2", "coordinator-3"];
    let leading = leader(&r, &all);
    wait_for("the moved replica to follow", || {
        let l = r.status(&leading)?;
        let f = r.status("coordinator-2")?;
        (leading == "coordinator-2" || caught_up(&l, &f)).then_some(())
    });
    // The other two, one after the other, down: the moved one is in each
    // majority left.
    for host in ["10.0.0.1", "10.0.0.5"] {
        r.ok(&[Step::on(host, "systemctl stop twopc"), committing(10)]);
        r.ok(&[Step::on(host, "systemctl start twopc")]);
    }
    assert_eq!(level(&r, "wallet", "alice"), 100 - 4 * 5);
}

/// The move with the wallet forgotten (neither given the new file nor
/// restarted): purchases abort, and the wallet's status, counters and log
/// say why, as the page shows; given the file and restarted, it works.
#[test]
fn move_the_coordinator_forgetting_a_node_shows_as_the_page_says() {
    let blocks = runbook(MOVE);
    let [moving, forgot] = &blocks[..] else {
        panic!("the move runbook has two console blocks: {blocks:?}")
    };
    let scp = leaving_out(moving, None, "scp cluster.toml 10.0.0.2:");
    let moving = leaving_out(&scp, Some("10.0.0.2"), "systemctl restart");
    // Up to the check of the files: the checks are the second block's.
    let upto = moving
        .iter()
        .position(|s| s.cmd.starts_with("for h in"))
        .unwrap();
    let r = Rehearsal::shop();
    committed(&r, 1);
    r.ok(&moving[..upto]);
    r.ok(forgot);
    let wallet = wait_for("the wallet's status", || r.status("wallet"));
    assert!(
        wallet["counters"]["rejected"]["unknown_sender"].as_u64() > Some(0),
        "{wallet}"
    );
    let log = r.log("10.0.0.2");
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("dropped datagram from 10.0.0.6:7000, which is not in the cluster file")),
        "a WARN naming the address in the wallet's log:\n{log}"
    );
    assert_eq!(level(&r, "wallet", "alice"), 100 - 5, "nothing bought");
    // The forgotten steps: then the next purchase commits.
    r.ok(&[
        Step::op("scp cluster.toml 10.0.0.2:/etc/twopc/"),
        Step::on("10.0.0.2", "systemctl restart twopc"),
        Step::op("twopc status --cluster cluster.toml --timeout 10 > /dev/null"),
        committing(5),
    ]);
}

/// The wallet moves, and the coordinator is forgotten: the runbook's last
/// check names it, before any purchase fails.
#[test]
fn move_the_wallet_forgetting_the_coordinator_shows_at_the_last_check() {
    let blocks = runbook(MOVE);
    let steps = moving(&blocks[0], "10.0.0.2", "wallet", &["10.0.0.1", "10.0.0.3"]);
    let steps = leaving_out(&steps, None, "scp cluster.toml 10.0.0.1:");
    let mut steps = leaving_out(&steps, Some("10.0.0.1"), "systemctl restart");
    let purchase = steps
        .iter()
        .position(|s| s.cmd.starts_with("twopc purchase"))
        .unwrap();
    steps.remove(purchase);
    let r = Rehearsal::shop();
    committed(&r, 1);
    let got = r.run(&steps);
    let alarm = "ALARM: it has wallet at 10.0.0.2:7000, this cluster file at 10.0.0.6:7000: it \
                 runs with another cluster file (a node moved?); give it this one and restart it";
    assert_eq!(got.last().unwrap(), &vec![format!("  {alarm}")], "{got:?}");
}

#[test]
fn replace_a_replica_disk_and_it_carries_the_groups_state() {
    let blocks = runbook(REPLICA);
    let [replace] = &blocks[..] else {
        panic!("one console block: {blocks:?}")
    };
    let r = Rehearsal::replicated_shop();
    committed(&r, 3);
    // Dead: killed, its disk lost.
    r.ok(&[kill9("10.0.0.5")]);
    committed(&r, 2);
    r.ok(replace);
    let leading = leader(&r, &["coordinator-1", "coordinator-2", "coordinator-3"]);
    wait_for("the replaced replica to catch up", || {
        let l = r.status(&leading)?;
        let f = r.status("coordinator-3")?;
        caught_up(&l, &f).then_some(())
    });
    // The replaced replica now holds what the group decided: with
    // coordinator-2 down, a purchase is chosen by coordinator-1 and it;
    // then coordinator-1 down and coordinator-2 back, the group's state is
    // what coordinator-3 holds, the last purchase's outcome included.
    r.ok(&[Step::on("10.0.0.4", "systemctl stop twopc")]);
    let last = Step::op(
        "twopc purchase --cluster cluster.toml --id last-before --user alice --sku widget --qty 1 --price 5 --timeout 10",
    );
    let got = r.run(std::slice::from_ref(&last));
    assert!(got[0][0].starts_with("committed"), "{got:?}");
    r.ok(&[
        Step::on("10.0.0.1", "systemctl stop twopc"),
        Step::on("10.0.0.4", "systemctl start twopc"),
    ]);
    leader(&r, &["coordinator-2", "coordinator-3"]);
    let outcome = r.run(&[Step::op(
        "twopc outcome --cluster cluster.toml --id last-before --timeout 10",
    )]);
    assert!(outcome[0][0].starts_with("committed"), "{outcome:?}");
    let v: Value = wait_for("the wallet's status", || r.status("wallet"));
    assert_eq!(v["levels"]["alice"], 100 - 6 * 5);
}

/// coordinator-2 moves, and coordinator-3 is forgotten: not given the
/// new file, the runbook's check of every machine's file names it.
#[test]
fn move_a_replica_forgetting_another_shows_at_the_check_of_the_files() {
    let blocks = runbook(MOVE);
    let others = ["10.0.0.1", "10.0.0.5", "10.0.0.2", "10.0.0.3"];
    let steps = moving(&blocks[0], "10.0.0.4", "coordinator-2", &others);
    let steps = leaving_out(&steps, None, "scp cluster.toml 10.0.0.5:");
    let steps = leaving_out(&steps, Some("10.0.0.5"), "systemctl restart");
    let r = Rehearsal::replicated_shop();
    committed(&r, 1);
    let got = r.run(&steps);
    let check = steps
        .iter()
        .position(|s| s.cmd.starts_with("for h in"))
        .unwrap();
    assert_eq!(
        got[check],
        vec!["10.0.0.5 has another cluster file"],
        "{got:?}"
    );
}

/// coordinator-2 moves, and coordinator-3 is given the file but not
/// restarted: the file check passes, and no alarm but the ones naming the
/// old address and the new one (its link messages, dropped) shows (if an election made coordinator-3 look for
/// coordinator-2); once coordinator-1 stops, the two cannot elect a
/// leader, and `status` says so and names the file.
#[test]
fn move_a_replica_not_restarting_another_shows_at_the_next_election() {
    let blocks = runbook(MOVE);
    let others = ["10.0.0.1", "10.0.0.5", "10.0.0.2", "10.0.0.3"];
    let steps = moving(&blocks[0], "10.0.0.4", "coordinator-2", &others);
    let steps = leaving_out(&steps, Some("10.0.0.5"), "systemctl restart");
    let r = Rehearsal::replicated_shop();
    committed(&r, 1);
    let got = r.run(&steps);
    let named = "ALARM: it has coordinator-2 at 10.0.0.4:7000, this cluster file at 10.0.0.6:7000";
    // What the moved replica sends over its link is dropped by the one
    // still on the old file, and counted as from an unknown address.
    let stranger = "from addresses that are not in the cluster file (last: 10.0.0.6:7000)";
    assert!(
        got.iter()
            .flatten()
            .all(|line| !line.contains("ALARM") || line.contains(named) || line.contains(stranger)),
        "{got:?}"
    );
    r.ok(&[Step::on("10.0.0.1", "systemctl stop twopc")]);
    let got = r.run(&[purchase(3)]);
    assert!(got[0].concat().starts_with("timeout"), "{got:?}");
    let c3 = wait_for("coordinator-3 to say it lost the majority", || {
        let v = r.status("coordinator-3")?;
        v["alarms"].to_string().contains("NO QUORUM").then_some(v)
    });
    let alarms = c3["alarms"].to_string();
    assert!(
        alarms
            .contains("it has coordinator-2 at 10.0.0.4:7000, this cluster file at 10.0.0.6:7000"),
        "{alarms}"
    );
    // Restarted with its file: the two elect a leader, purchases commit.
    r.ok(&[Step::on("10.0.0.5", "systemctl restart twopc")]);
    leader(&r, &["coordinator-2", "coordinator-3"]);
    r.ok(&[committing(10)]);
}
