//! Several hosts (`common/netns.rs`) with a replicated coordinator: three
//! coordinator replicas, a wallet and an order service, each on a host of
//! its own; the leading replica's cable is pulled while purchases run:
//! another replica takes over and purchases complete without it; once
//! plugged back in, the old leader follows and catches up with the new
//! leader's latest version. Then the same with a follower's cable.
//!
//! Clients (purchases, `twopc status`) run on a host of their own.
//!
//! Needs root and `ip` (iproute2; CI runs as root). Where namespaces cannot
//! be created the test prints why and passes without running. Everything it
//! creates is named `tp<pid>...` and removed at the end, even on failure.
//! The addresses (10.213.0.1-6) exist only inside these namespaces.

mod common;

use common::netns::{check_promises, hosts_or_skip, outcome, wait_for, Bought, Hosts, REPLICATED};
use common::{caught_up, leader_among};
use serde_json::Value;
use std::process::Child;
use std::time::{Duration, Instant};

/// A replicated coordinator, each node on a host of its own. First the
/// leading replica's cable is pulled while purchases run: another replica
/// takes over and purchases made meanwhile complete (the cable stays out
/// until they have, and at least five seconds). Plugged back in, the old
/// leader follows and accepts the latest version. Then the same with a
/// follower's cable: the leader and the other follower go on. At the end
/// every purchase has an outcome, nothing is held, money and stock add up.
///
/// The follower's cut deposes nobody: the replica that led before it leads
/// the same term after it heals. Cut off, the follower's timer fires again
/// and again, but it only asks for pre-votes, which raise no term; back, the
/// others refuse it (they hear their leader) and the leader's heartbeat
/// makes it follow (pre-vote, `twopc_model::replica`, *A leader that is not
/// deposed for nothing*). Without pre-vote it came back with a higher term
/// and the leader stepped down.
#[test]
fn partitioned_replicas_are_replaced_and_catch_up() {
    let Some(mut hosts) = hosts_or_skip(&REPLICATED) else {
        return;
    };
    let users = [("ann", 1_000u64), ("ben", 1_000), ("cat", 1_000)];
    let stock = ("widget", 500u64);
    let roles = REPLICATED.map(|n| match n {
        "wallet" | "order" => (n, n),
        _ => (n, "coordinator"),
    });
    hosts.write_cluster("protocol = \"replicated\"\n\n", &roles, &users, stock);
    hosts.start_all();
    let leader = wait_for("a leader", 60, || {
        leader_among(&REPLICAS, |n| hosts.status(n))
    });
    let mut seen = Vec::new();
    let mut buyers: Vec<_> = (0..6).map(|i| buy(&hosts, &users, stock.0, i)).collect();
    wait_for("purchases to reach the leader", 60, || {
        let v = hosts.status(&leader)?;
        (v["counters"]["msgs_handled"].as_u64()? > 2).then_some(())
    });
    let cut = cut_off(&hosts, &leader, &users, stock.0, 6, &mut seen);
    buyers.extend((12..18).map(|i| buy(&hosts, &users, stock.0, i)));
    for (user, qty, price, child) in buyers {
        seen.push((user, qty, price, answered(child)));
    }
    let (second, led) = caught_up_and_settled(&hosts);
    // Now a follower (one not cut off yet, if one follows): whoever leads
    // goes on with the other one.
    let follower = REPLICAS
        .into_iter()
        .filter(|r| *r != second)
        .min_by_key(|r| *r == leader)
        .unwrap();
    let follower_cut = cut_off(&hosts, follower, &users, stock.0, 18, &mut seen);
    let (last, view) = caught_up_and_settled(&hosts);
    let old = hosts.status(&leader).expect("the old leader answers");
    hosts.stop_all();
    assert_eq!(
        (&last, &view["replica"]["term"]),
        (&second, &led["replica"]["term"]),
        "the leader before {follower}'s cut leads the same term after it"
    );
    let (commits, aborts) = check_promises(&hosts, &users, stock, &seen, &REPLICAS);
    println!(
        "netns replicated: {} purchases across 6 hosts; leader {leader} cut off for {:.1}s \
         ({} of the 6 purchases made meanwhile committed), then follower {follower} for {:.1}s \
         ({} committed); {last} leads at the end (accepted {}), the first leader accepted {}; \
         {commits} committed, aborted {aborts:?}; atomic, conserved, nothing in doubt",
        seen.len(),
        cut.down.as_secs_f64(),
        cut.committed,
        follower_cut.down.as_secs_f64(),
        follower_cut.committed,
        view["replica"]["accepted"],
        old["replica"]["accepted"],
    );
    assert!(commits > 0);
}

const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];

/// Starts a purchase (number `i`: user, quantity and price vary with it).
fn buy<'a>(
    hosts: &Hosts,
    users: &[(&'a str, u64)],
    sku: &str,
    i: usize,
) -> (&'a str, u64, u64, Child) {
    let (user, _) = users[i % users.len()];
    let (qty, price) = (1 + i as u64 % 2, 3 + i as u64 % 5);
    (user, qty, price, hosts.purchase(user, sku, qty, price))
}

/// A purchase's report, which must be an outcome.
fn answered(child: Child) -> Value {
    let r = outcome(child);
    assert!(
        r["outcome"] == "committed" || r["outcome"] == "aborted",
        "every purchase gets an outcome: {r}"
    );
    r
}

/// What one cut did.
struct Cut {
    /// How long the cable was out.
    down: Duration,
    /// Purchases made while it was out that committed.
    committed: usize,
}

/// Pulls `replica`'s cable; once a replica of the others leads, makes six
/// purchases (numbers `first`..) and waits for their outcomes (pushed to
/// `seen`; at least one must commit), keeps the cable out for at least
/// five seconds, then plugs it back in. The replica must have accepted a
/// later version when it caught up (see [`caught_up_and_settled`]).
fn cut_off<'a>(
    hosts: &Hosts,
    replica: &str,
    users: &[(&'a str, u64)],
    sku: &str,
    first: usize,
    seen: &mut Vec<Bought<'a>>,
) -> Cut {
    let before = hosts.status(replica).expect("it answers")["replica"]["accepted"].clone();
    hosts.set_cable(replica, false);
    let cut = Instant::now();
    println!("{replica} cut off (it accepted {before})");
    let others: Vec<&str> = REPLICAS.into_iter().filter(|r| *r != replica).collect();
    let leader = wait_for("a leader among the others", 120, || {
        leader_among(&others, |n| hosts.status(n))
    });
    println!("{leader} leads");
    let during: Vec<Bought> = (first..first + 6)
        .map(|i| buy(hosts, users, sku, i))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(u, q, p, child)| (u, q, p, answered(child)))
        .collect();
    let committed = during
        .iter()
        .filter(|(_, _, _, r)| r["outcome"] == "committed")
        .count();
    assert!(
        committed > 0,
        "purchases commit without {replica}: {during:?}"
    );
    seen.extend(during);
    std::thread::sleep(Duration::from_secs(5).saturating_sub(cut.elapsed()));
    assert!(hosts.status(replica).is_none(), "{replica} is unreachable");
    hosts.set_cable(replica, true);
    let down = cut.elapsed();
    println!(
        "cable of {replica} back in after {:.1}s",
        down.as_secs_f64()
    );
    wait_for(&format!("{replica} to accept a later version"), 120, || {
        let now = hosts.status(replica)?["replica"]["accepted"].clone();
        (now != before).then_some(())
    });
    Cut { down, committed }
}

/// Waits until a replica leads, every other replica accepted its latest
/// version, and nothing is in doubt (no vote collection, no unacknowledged
/// commit, no hold); returns the leader and its view.
fn caught_up_and_settled(hosts: &Hosts) -> (String, Value) {
    wait_for("the replicas to catch up and settle", 120, || {
        let l = leader_among(&REPLICAS, |n| hosts.status(n))?;
        let lv = hosts.status(&l)?;
        for r in REPLICAS.iter().filter(|r| **r != l) {
            if !caught_up(&lv, &hosts.status(r)?) {
                return None;
            }
        }
        let (w, o) = (hosts.status("wallet")?, hosts.status("order")?);
        common::settled(&lv, &w, &o).then_some((l, lv))
    })
}
