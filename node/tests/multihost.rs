//! Several hosts: each node in its own network namespace, joined by veth
//! pairs to a bridge in a hub namespace, clients in a namespace of their own.
//! Nothing is configured in the host's namespace: every address below exists
//! only inside namespaces this test creates and deletes. Needs root and
//! iproute2 (`.ci/run` installs it); skipped, with a message, without them.
//!
//! A network partition is a link set down; a healed partition, set up.

mod common;

use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const SUBNET: &str = "10.123.0";
const PORT: u16 = 7000;

/// A hub namespace with a bridge and one namespace per host; deleted on drop.
struct Hosts {
    hub: String,
    hosts: Vec<(String, String)>, // (role name, namespace)
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn must(args: &[&str]) {
    assert!(ip(args), "ip {}", args.join(" "));
}

impl Hosts {
    /// Creates the namespaces, or `None` if this machine cannot.
    fn create(names: &[&str]) -> Option<Hosts> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "tpc{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let hub = format!("{tag}hub");
        if !ip(&["netns", "add", &hub]) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run this test, but network namespaces cannot be made"
            );
            eprintln!("skipped: cannot create network namespaces (needs root and iproute2)");
            return None;
        }
        let mut hosts = Hosts {
            hub: hub.clone(),
            hosts: Vec::new(),
        };
        must(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &hub, "link", "set", "br0", "up"]);
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{tag}{i}");
            must(&["netns", "add", &ns]);
            hosts.hosts.push((name.to_string(), ns.clone()));
            let port = format!("p{i}");
            // Both ends are created inside namespaces: the veth's hub end in
            // the hub, its other end (eth0) moved straight into the host.
            must(&[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            must(&["-n", &hub, "link", "set", &port, "master", "br0"]);
            must(&["-n", &hub, "link", "set", &port, "up"]);
            let addr = format!("{}/24", hosts.ip_of(name));
            must(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            must(&["-n", &ns, "link", "set", "eth0", "up"]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Some(hosts)
    }

    fn ns(&self, name: &str) -> &str {
        &self.hosts.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn ip_of(&self, name: &str) -> String {
        let i = match name {
            "coordinator" => 1,
            "wallet" => 2,
            "order" => 3,
            _ => 9,
        };
        format!("{SUBNET}.{i}")
    }

    /// Cuts `name` off the network (or reconnects it).
    fn link(&self, name: &str, up: bool) {
        must(&[
            "-n",
            self.ns(name),
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }

    fn cluster(&self, accounts: &[(&str, u64)], stock: &[(&str, u64)]) -> TestCluster {
        let ips: Vec<(String, String)> = ["coordinator", "wallet", "order"]
            .iter()
            .map(|n| (n.to_string(), self.ip_of(n)))
            .collect();
        let hosts: Vec<(&str, &str, u16)> = ips
            .iter()
            .map(|(n, ip)| (n.as_str(), ip.as_str(), PORT))
            .collect();
        let mut c = TestCluster::with_hosts(&hosts, accounts, stock);
        for (name, ns) in &self.hosts {
            c.netns.insert(name.clone(), ns.clone());
        }
        c
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (_, ns) in &self.hosts {
            ip(&["netns", "del", ns]);
        }
        ip(&["netns", "del", &self.hub]);
    }
}

const ROLES: [&str; 4] = ["coordinator", "wallet", "order", "client"];

#[test]
fn purchases_across_hosts_commit_and_abort() {
    let Some(hosts) = Hosts::create(&ROLES) else {
        return;
    };
    let mut c = hosts.cluster(&[("alice", 100), ("carol", 15)], &[("widget", 10)]);
    c.start_all();
    let (r, code) = c.purchase("alice", "widget", 3, 10);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    let (r, _) = c.purchase("carol", "widget", 1, 40);
    assert_eq!(r["reason"], "insufficient_funds", "{r}");
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 70);
    assert_eq!(c.levels("wallet")["carol"], 15);
    assert_eq!(c.levels("order")["widget"], 7);
}

#[test]
fn a_partitioned_participant_aborts_purchases_then_catches_up() {
    let Some(hosts) = Hosts::create(&ROLES) else {
        return;
    };
    let mut c = hosts.cluster(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    // A first purchase: once it commits, the coordinator has learned the
    // participants' epoch (it asks at every start; cut off before the order
    // service answered, it would go on asking, and answer no purchase).
    let (r, _) = c.purchase("alice", "widget", 1, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    // The order service is cut off: the coordinator hears no vote and aborts;
    // the wallet, which voted yes, is told abort.
    hosts.link("order", false);
    let (r, code) = c.purchase_once("alice", "widget", 1, 10);
    assert_eq!(
        (r["reason"].as_str(), code),
        (Some("vote_timeout"), 3),
        "{r}"
    );
    hosts.link("order", true);
    // Healed: the order service gets the stale prepare and abort (they were
    // lost, not queued) or nothing at all; either way purchases work again.
    let (r, _) = c.purchase("alice", "widget", 2, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 70);
    assert_eq!(c.levels("order")["widget"], 7);
}

#[test]
fn a_coordinator_partitioned_after_deciding_finishes_when_healed() {
    let Some(hosts) = Hosts::create(&ROLES) else {
        return;
    };
    let mut c = hosts.cluster(&[("alice", 100)], &[("widget", 10)]);
    c.start("wallet", &[]);
    c.start("order", &[]);
    // The coordinator decides but its commits never leave; then it is cut
    // off and killed, and comes back only after the partition heals.
    c.start("coordinator", &["--fault-drop-out", "commit"]);
    let (r, _) = c.purchase("alice", "widget", 4, 10);
    assert_eq!(r["outcome"], "committed", "{r}");
    assert!(c.holds("wallet") >= 1 && c.holds("order") >= 1);
    hosts.link("coordinator", false);
    c.kill9("coordinator");
    hosts.link("coordinator", true);
    c.start("coordinator", &[]);
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 60);
    assert_eq!(c.levels("order")["widget"], 6);
}
