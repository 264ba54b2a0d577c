//! The chaos run shared by `chaos` (2PC, and 2PC under one write) and
//! `chaos_replicated`: a real
//! cluster under injected loss, duplication, delay and reordering, client
//! tasks making competing purchases, nodes killed with SIGKILL at random
//! instants and restarted, again and again; then the cluster settles and
//! every promise is checked from the participants' own durable state and the
//! outcomes the clients saw, and the traces are replayed
//! ([`super::chaos_replay`]).

use super::chaos_replay::{replay_traces, replica_traces_tampered};
use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twopc_model::{Protocol, Purchase};
use twopc_node::harness::promises::{verify, Initial, Seen, Verified};
use twopc_node::runtime::storage::{as_coordinator, as_participant, inspect};
use twopc_node::runtime::wire::{ClusterKey, Codec, Format};

pub const REPLICAS: [&str; 3] = ["coordinator-1", "coordinator-2", "coordinator-3"];

/// The coordinator's nodes under `protocol`.
fn coordinator_nodes(protocol: Protocol) -> &'static [&'static str] {
    match protocol {
        Protocol::TwoPc => &["coordinator"],
        Protocol::Replicated => &REPLICAS,
    }
}

/// Every node of the cluster, coordinators first.
fn nodes(protocol: Protocol) -> Vec<&'static str> {
    let mut nodes = coordinator_nodes(protocol).to_vec();
    nodes.extend(["wallet", "order"]);
    nodes
}

// Enough to go on committing for minutes, except dan's money and the pears,
// which run out early: then purchases compete for the last of them.
const USERS: [(&str, u64); 4] = [
    ("ann", 20_000),
    ("ben", 10_000),
    ("cat", 5_000),
    ("dan", 60),
];
const SKUS: [(&str, u64); 3] = [("apple", 4_000), ("pear", 30), ("plum", 10_000)];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The fault flags of one node incarnation.
fn fault_flags(seed: u64) -> Vec<String> {
    [
        "--fault-loss",
        "0.05",
        "--fault-duplicate",
        "0.10",
        "--fault-delay",
        "0.10",
        "--fault-delay-max-ms",
        "150",
        "--fault-reorder",
        "0.05",
        "--fault-seed",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([seed.to_string()])
    .collect()
}

/// Fault counters summed over every incarnation of every node (read just
/// before each kill and at the end: a lower bound, as a node may count a few
/// more between the read and the kill).
#[derive(Default, Debug)]
struct FaultTotals {
    dropped: u64,
    duplicated: u64,
    delayed: u64,
    reordered: u64,
    /// Datagrams a participant dropped as behind its coordinator's record
    /// of its history: a false alarm here (no directory is ever rolled back).
    rolled_back: u64,
}

impl FaultTotals {
    fn add(&mut self, view: &Value) {
        let c = &view["counters"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        self.dropped += n("fault_dropped");
        self.duplicated += n("fault_duplicated");
        self.delayed += n("fault_delayed");
        self.reordered += n("fault_reordered");
        self.rolled_back += c["rejected"]["rolled_back"].as_u64().unwrap_or(0);
    }
}

fn random_purchase(rng: &mut StdRng) -> Purchase {
    let (user, _) = USERS[rng.random_range(0..USERS.len())];
    let (sku, _) = SKUS[rng.random_range(0..SKUS.len())];
    Purchase {
        user: user.into(),
        sku: sku.into(),
        qty: rng.random_range(1..=3),
        price: rng.random_range(1..=9),
    }
}

/// Runs client tasks until `stop_at`: each makes a few purchases in order
/// (request numbers 1, 2, ...) and waits for every outcome.
fn run_clients(
    coordinators: Vec<std::net::SocketAddrV4>,
    codec: Codec,
    clients: usize,
    seed: u64,
    stop_at: Instant,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for c in 0..clients {
                let codec = codec.clone();
                let seen = seen.clone();
                let coordinators = coordinators.clone();
                let mut rng = StdRng::seed_from_u64(seed ^ (0xC11E_u64 << 16) ^ c as u64);
                tasks.push(tokio::spawn(async move {
                    let mut round = 0u64;
                    while Instant::now() < stop_at {
                        round += 1;
                        let purchases: Vec<Purchase> = (0..rng.random_range(1..=4))
                            .map(|_| random_purchase(&mut rng))
                            .collect();
                        let outcomes = twopc_node::ops::client::run_client(
                            &coordinators,
                            purchases.clone(),
                            codec.clone(),
                            // Generous: the coordinator may be down and back
                            // several times meanwhile, and a starved machine
                            // (other builds on two cores) can stall for minutes.
                            Duration::from_secs(600),
                            |_| {},
                        )
                        .await
                        .expect("client runs");
                        let client = ((c as u64) << 32) | round;
                        let mut seen = seen.lock().unwrap();
                        for (i, purchase) in purchases.into_iter().enumerate() {
                            seen.push(Seen {
                                purchase,
                                outcome: outcomes.get(i).cloned(),
                                client,
                                seq: i as u64 + 1,
                            });
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    })
}

/// What the kills of one run did.
#[derive(Default, Debug)]
struct Kills {
    /// SIGKILLs sent, in all.
    kills: u64,
    /// Of which aimed at the replica leading at that moment (a random kill
    /// may hit it too, uncounted).
    leader_kills: u64,
    restarts: u64,
    /// Leaders killed and kept down until another replica led.
    outages: u64,
    /// Purchases that completed while a killed leader was down.
    during_outages: usize,
    /// SIGKILLs aimed at the (2PC) coordinator.
    coordinator_kills: u64,
}

/// One chaos run against a cluster under `protocol`: the knobs are the
/// environment variables `TWOPC_CHAOS_SECS`, `TWOPC_CHAOS_SEED` and
/// `TWOPC_CHAOS_CLIENTS` (see `chaos.rs`).
pub fn chaos(protocol: Protocol) {
    run(protocol, false)
}

/// The 2PC run with `one_write = true` (docs/one-write.md): every second
/// round of kills aims at the coordinator, so it is killed while purchases
/// are in flight, with its last outcomes told and not yet saved. Judged as
/// two-phase commit is: a restart records again, from the participants'
/// debits, every purchase its predecessor told, so no purchase may be
/// answered "unknown"; the traces are replayed as one write's.
pub fn chaos_one_write() {
    run(Protocol::TwoPc, true)
}

/// The replicated run with `one_write = true`: a leader tells a
/// purchase's commit before its group accepts a save, and the leaders it
/// kills take what they told and did not save with them; each new leader
/// resolves from the participants. Judged as the replicated run is.
pub fn chaos_replicated_one_write() {
    run(Protocol::Replicated, true)
}

fn run(protocol: Protocol, one_write: bool) {
    let secs = env_u64("TWOPC_CHAOS_SECS").unwrap_or(40);
    let seed = env_u64("TWOPC_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            % 1_000_000
    });
    let clients = env_u64("TWOPC_CHAOS_CLIENTS").unwrap_or(4) as usize;
    let mode = if one_write { ", one write" } else { "" };
    println!(
        "chaos ({protocol:?}{mode}): seed {seed}, {secs}s of chaos, {clients} clients (TWOPC_CHAOS_SEED={seed} to repeat)"
    );
    let nodes = nodes(protocol);
    let replicated = protocol == Protocol::Replicated;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = match protocol {
        Protocol::TwoPc if one_write => {
            let nodes: Vec<(&str, &str, &str, u16)> = (nodes.iter())
                .map(|n| (*n, *n, "127.0.0.1", free_port()))
                .collect();
            let header = "protocol = \"2pc\"\none_write = true\n\n";
            TestCluster::with_nodes(header, &nodes, &USERS, &SKUS)
        }
        Protocol::TwoPc => TestCluster::new(&USERS, &SKUS),
        Protocol::Replicated if one_write => TestCluster::replicated_with(
            "protocol = \"replicated\"\none_write = true\n\n",
            REPLICAS.len(),
            &USERS,
            &SKUS,
        ),
        Protocol::Replicated => TestCluster::replicated(REPLICAS.len(), &USERS, &SKUS),
    };
    let mut incarnation = 0u64;
    let mut next_seed = |name: usize| {
        incarnation += 1;
        seed.wrapping_mul(1000)
            .wrapping_add(incarnation * 10 + name as u64)
    };
    let traces = c.dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let flags_for = |name: usize, seed: u64| {
        let mut flags = fault_flags(seed);
        let file = traces.join(format!("{}.jsonl", nodes[name]));
        flags.extend(["--trace".to_string(), file.display().to_string()]);
        flags
    };
    for (i, n) in nodes.iter().enumerate() {
        let flags = flags_for(i, next_seed(i));
        c.start(n, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let key = ClusterKey::new(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap();
    let codec = Codec::new(Some(key), Format::Bincode);
    let coordinators = coordinator_nodes(protocol)
        .iter()
        .map(|n| std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, c.ports[*n]))
        .collect();
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(secs);
    // The leader's long outage: a third of the way through.
    let outage_at = started + Duration::from_secs(secs / 3);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client_thread = run_clients(coordinators, codec, clients, seed, stop_at, seen.clone());

    let mut k = Kills::default();
    let mut faults = FaultTotals::default();
    while Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2500)));
        if replicated && k.outages == 0 && Instant::now() >= outage_at {
            let leader = leader_outage(&mut c, &mut rng, &seen, &mut k, &mut faults);
            let v = nodes.iter().position(|n| *n == leader).unwrap();
            let flags = flags_for(v, next_seed(v));
            c.start(
                nodes[v],
                &flags.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            k.restarts += 1;
            continue;
        }
        // Usually one node, sometimes two at once; with replicas, now and
        // then whichever leads.
        let n = nodes.len();
        // One write: every second round, the coordinator (the leader).
        let aim = one_write && k.kills % 2 == 0;
        let leading = (replicated && (aim || rng.random_bool(0.3)))
            .then(|| c.leader(&REPLICAS))
            .flatten()
            .map(|l| nodes.iter().position(|n| *n == l).unwrap());
        let first = match leading {
            Some(l) => l,
            None if aim && !replicated => 0,
            None => rng.random_range(0..n),
        };
        let victims: Vec<usize> = if rng.random_bool(0.2) {
            vec![first, (first + rng.random_range(1..n)) % n]
        } else {
            vec![first]
        };
        k.leader_kills += u64::from(leading.is_some());
        for &v in &victims {
            if let Some(view) = c.status(nodes[v]) {
                faults.add(&view);
            }
            c.kill9(nodes[v]);
            k.kills += 1;
            k.coordinator_kills += u64::from(nodes[v] == "coordinator");
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1000)));
        for &v in &victims {
            let flags = flags_for(v, next_seed(v));
            c.start(
                nodes[v],
                &flags.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            k.restarts += 1;
        }
    }
    let chaos_done = Instant::now();
    client_thread.join().expect("clients finish");
    let clients_done = Instant::now();
    // Which node's saved coordinator state to judge: the coordinator's, or
    // the leader's once every replica caught up with it.
    let coordinator = if replicated {
        settle_replicated(&c)
    } else {
        c.settle();
        "coordinator".to_string()
    };
    let settled = Instant::now();
    for n in &nodes {
        if let Some(view) = c.status(n) {
            faults.add(&view);
            // Every node of a one-write cluster says so.
            assert_eq!(view["one_write"], one_write, "{n}: {view}");
        }
    }
    for n in &nodes {
        assert!(c.terminate(n).success(), "{n} stops cleanly");
    }
    let part = |n: &str| {
        let s = inspect(&c.data_dir(n)).unwrap().expect("saved state");
        as_participant(&s).expect("a participant").clone()
    };
    let (wallet, order) = (part("wallet"), part("order"));
    let coord = |n: &str| {
        let s = inspect(&c.data_dir(n)).unwrap().expect("saved state");
        as_coordinator(&s).expect("a coordinator's state").clone()
    };
    // Every replica holds the leader's state (they caught up): none may
    // keep a commit decision that is not acknowledged.
    let unacked = coordinator_nodes(protocol)
        .iter()
        .map(|n| coord(n).commits.len())
        .max()
        .unwrap();
    let coord = coord(&coordinator);
    let seen = seen.lock().unwrap().clone();
    let initial = Initial {
        wallet: &USERS,
        order: &SKUS,
    };
    let Verified {
        violations: bad,
        commits,
        aborts,
    } = verify(&seen, &wallet, &order, initial, unacked);
    let leaders = if replicated {
        format!(
            " ({} of the leading replica; {} leader outages with {} purchases completed meanwhile)",
            k.leader_kills, k.outages, k.during_outages
        )
    } else {
        String::new()
    };
    assert_eq!(
        faults.rolled_back, 0,
        "seed {seed}: a participant alarmed as rolled back, but no directory was"
    );
    println!(
        "chaos summary ({protocol:?}{mode}, seed {seed}): {} purchases by {} clients: {commits} committed, {} aborted {aborts:?}, \
         {} kills by SIGKILL ({} of the coordinator){leaders}, {} restarts, coordinator epoch {}; injected faults: \
         {} datagrams dropped, {} duplicated, {} delayed, {} reordered; clients finished {:.1}s after the \
         chaos, cluster settled {:.1}s after that; {} violations",
        seen.len(),
        seen.iter().map(|s| s.client).collect::<BTreeSet<_>>().len(),
        aborts.values().sum::<u64>(),
        k.kills,
        k.coordinator_kills,
        k.restarts,
        coord.epoch,
        faults.dropped,
        faults.duplicated,
        faults.delayed,
        faults.reordered,
        (clients_done - chaos_done).as_secs_f64(),
        (settled - clients_done).as_secs_f64(),
        bad.len(),
    );
    if !bad.is_empty() {
        // Keep the evidence: logs, data directories, cluster file.
        let keep = std::env::temp_dir().join(format!(
            "twopc-chaos-failed-seed{seed}-{}",
            std::process::id()
        ));
        let _ = std::process::Command::new("cp")
            .arg("-a")
            .arg(c.dir.path())
            .arg(&keep)
            .status();
        println!(
            "chaos: logs and data directories kept in {}",
            keep.display()
        );
    }
    assert!(
        bad.is_empty(),
        "seed {seed}: {} violations:\n{}",
        bad.len(),
        bad.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(commits > 0, "seed {seed}: nothing committed");
    assert!(k.kills > 0, "seed {seed}: nothing killed");
    if one_write && !replicated {
        assert!(
            k.coordinator_kills > 0,
            "seed {seed}: the coordinator was never killed"
        );
    }
    if replicated {
        assert!(k.outages > 0, "seed {seed}: the leader was never kept down");
    }
    // No participant ever got a commit it had no record of: the alarm for
    // lost acknowledged data stays silent through kill -9, loss, duplication,
    // delay and reordering (the logs span every incarnation).
    for n in &nodes {
        let log = std::fs::read_to_string(c.log_file(n)).unwrap_or_default();
        let alarm = log.lines().find(|l| l.contains("ALARM"));
        assert!(alarm.is_none(), "seed {seed}: {n} alarmed: {alarm:?}");
    }
    replay_traces(&traces, seed, seen.len());
    if replicated {
        replica_traces_tampered(&traces, seed);
    }
}

/// Kills the leading replica and keeps it down until another replica
/// leads, a purchase completed without it, and a few seconds passed;
/// returns its name (the caller restarts it).
fn leader_outage(
    c: &mut TestCluster,
    rng: &mut StdRng,
    seen: &Mutex<Vec<Seen>>,
    k: &mut Kills,
    faults: &mut FaultTotals,
) -> String {
    let leader = wait_for("a leader to kill", || c.leader(&REPLICAS));
    if let Some(view) = c.status(&leader) {
        faults.add(&view);
    }
    c.kill9(&leader);
    let down = Instant::now();
    let before = seen.lock().unwrap().len();
    k.kills += 1;
    k.leader_kills += 1;
    let others: Vec<&str> = REPLICAS.into_iter().filter(|r| *r != leader).collect();
    let next = wait_for("another replica to take over", || c.leader(&others));
    wait_for("a purchase to complete without the old leader", || {
        (seen.lock().unwrap().len() > before).then_some(())
    });
    let hold = Duration::from_millis(rng.random_range(3000..6000));
    std::thread::sleep(hold.saturating_sub(down.elapsed()));
    let during = seen.lock().unwrap().len() - before;
    k.outages += 1;
    k.during_outages += during;
    println!(
        "chaos: leader {leader} down for {:.1}s; {next} took over; {during} purchases completed meanwhile",
        down.elapsed().as_secs_f64()
    );
    leader
}

/// Waits until a replica leads, nothing is in doubt (no vote collection,
/// no unacknowledged commit, no hold) and every replica accepted the
/// leader's latest version; returns the leader.
fn settle_replicated(c: &TestCluster) -> String {
    wait_for("the replicated cluster to settle", || {
        let leader = c.leader(&REPLICAS)?;
        let l = c.status(&leader)?;
        let (w, o) = (c.status("wallet")?, c.status("order")?);
        if !settled(&l, &w, &o) {
            return None;
        }
        for r in REPLICAS.iter().filter(|r| **r != leader) {
            if !caught_up(&l, &c.status(r)?) {
                return None;
            }
        }
        Some(leader)
    })
}
