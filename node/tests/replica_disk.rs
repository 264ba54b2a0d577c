//! A coordinator replica whose data directory is replaced by an empty one,
//! as real processes: three `twopc node` replicas, a wallet and an order
//! service on loopback. The replica comes back *recovering*: it votes for
//! nothing until every other replica has told it what it holds
//! (`twopc_model::replica`, *A replica that lost its disk*), the two others
//! keep committing meanwhile, and once it has heard from both it follows
//! and catches up with the leader.
//!
//! Nothing here asserts on timing: every wait polls with a generous
//! deadline (`common::PATIENCE`).

mod common;

use common::{caught_up, wait_for, TestCluster};

const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];

fn buy(c: &TestCluster, i: u64) {
    let (r, _) = c.purchase("alice", "widget", 1, 1 + i % 3);
    assert_eq!(r["outcome"], "committed", "{r}");
}

#[test]
fn a_replica_on_an_empty_directory_recovers_from_the_others_before_it_votes() {
    let mut c = TestCluster::replicated(3, &[("alice", 1000)], &[("widget", 1000)]);
    for name in REPLICAS.iter().chain(&["wallet", "order"]) {
        c.start(name, &[]);
    }
    for i in 0..3 {
        buy(&c, i);
    }
    let leader = wait_for("a leader", || c.leader(&REPLICAS));
    let others: Vec<&str> = REPLICAS.iter().copied().filter(|r| *r != leader).collect();
    let (lost, other) = (others[0], others[1]);
    wait_for("the follower to accept the purchases", || {
        let l = c.status(&leader)?;
        let f = c.status(lost)?;
        caught_up(&l, &f).then_some(())
    });

    // Its disk is replaced: the directory moved away, an empty one in its
    // place. The other two are a majority and go on committing.
    c.kill9(lost);
    let dir = c.data_dir(lost);
    std::fs::rename(&dir, dir.with_extension("lost")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    for i in 3..6 {
        buy(&c, i);
    }

    // With the other follower down too, it cannot finish recovering (it
    // waits for every other replica), and it votes for nothing: the leader
    // alone with it has no majority, so nothing commits.
    c.kill9(other);
    c.start(lost, &[]);
    wait_for("the replica to answer", || c.status(lost));
    let out = c
        .twopc(&["purchase", "--user", "alice", "--sku", "widget"])
        .args(["--qty", "1", "--price", "1", "--json", "--timeout", "3"])
        .output()
        .unwrap();
    let (r, _) = common::parse_purchase(out);
    assert_ne!(
        r["outcome"], "committed",
        "a majority counted the recovering replica: {r}"
    );
    let status = wait_for("the replica to say it is recovering", || {
        let s = c.status(lost)?;
        (s["replica"]["standing"] == "recovering").then_some(s)
    });
    assert_eq!(status["replica"]["answered"], 1, "{status}");
    let text = c.twopc(&["status", "--name", lost]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("recovering"), "{text}");

    // The other follower is back: the replica hears from it, adopts what
    // the others hold, follows and catches up; the group commits again.
    c.start(other, &[]);
    wait_for("the replica to catch up", || {
        let l = c.status(&c.leader(&REPLICAS)?)?;
        let f = c.status(lost)?;
        caught_up(&l, &f).then_some(())
    });
    for i in 6..9 {
        buy(&c, i);
    }
    wait_for("the replica to hold the latest purchases", || {
        let l = c.status(&c.leader(&REPLICAS)?)?;
        let f = c.status(lost)?;
        caught_up(&l, &f).then_some(())
    });
    // It saved what it adopted: a restart finds it on disk, no recovery.
    c.kill9(lost);
    c.start(lost, &[]);
    wait_for("the restarted replica to follow from its log", || {
        let s = c.status(lost)?;
        (s["replica"]["standing"] == "follower").then_some(())
    });
}
