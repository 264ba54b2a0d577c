//! Chaos: a real cluster (three `twopc node` processes on 127.0.0.1) under
//! injected loss, duplication, delay and reordering, while several clients
//! make purchases that compete for the same balances and stock, and nodes —
//! the coordinator included — are killed with SIGKILL at random instants and
//! restarted from their data directories, again and again. Then the cluster
//! settles and every promise is checked from the participants' own durable
//! state and the outcomes the clients saw.
//!
//! Short form (the normal test suite): `cargo test --release -p twopc-node
//! --test chaos`. Long form: `TWOPC_CHAOS_SECS=600 TWOPC_CHAOS_SEED=7 cargo
//! test --release -p twopc-node --test chaos -- --nocapture`. The seed drives
//! the purchases, the kill schedule and every node's fault RNG; a failing run
//! prints it (timing on a real machine still varies, so a seed makes a
//! failure likely to recur, not certain).

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twopc_model::participant::Finished;
use twopc_model::{Outcome, PartStorage, Purchase, RequestId, TxnId, Verdict};
use twopc_node::storage::{as_coordinator, as_participant, inspect};
use twopc_node::wire::{ClusterKey, Codec, Format};

const NODES: [&str; 3] = ["coordinator", "wallet", "order"];
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
}

impl FaultTotals {
    fn add(&mut self, view: &Value) {
        let c = &view["counters"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        self.dropped += n("fault_dropped");
        self.duplicated += n("fault_duplicated");
        self.delayed += n("fault_delayed");
        self.reordered += n("fault_reordered");
    }
}

/// What one client asked for and what it was told.
#[derive(Clone, Debug)]
struct Seen {
    purchase: Purchase,
    outcome: Option<Outcome>,
    client: u64,
    seq: u64,
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
    coordinator: std::net::SocketAddrV4,
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
                let mut rng = StdRng::seed_from_u64(seed ^ (0xC11E_u64 << 16) ^ c as u64);
                tasks.push(tokio::spawn(async move {
                    // One number per `run_client` call (one client each).
                    let mut round = 0u64;
                    while Instant::now() < stop_at {
                        round += 1;
                        let purchases: Vec<Purchase> = (0..rng.random_range(1..=4))
                            .map(|_| random_purchase(&mut rng))
                            .collect();
                        let outcomes = twopc_node::client::run_client(
                            coordinator,
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

/// Every violation of the promises, in words.
fn verify(
    seen: &[Seen],
    wallet: &PartStorage,
    order: &PartStorage,
    coordinator_commits: usize,
) -> (Vec<String>, u64, BTreeMap<String, u64>) {
    let mut bad = Vec::new();
    let mut commits = 0;
    let mut aborts = BTreeMap::new();
    // Committed finished entries per request, per participant.
    let committed = |p: &PartStorage| {
        let mut by_req: BTreeMap<RequestId, Vec<(TxnId, Finished)>> = BTreeMap::new();
        for (txn, f) in &p.finished {
            if f.committed {
                by_req
                    .entry(f.req.clone().expect("a committed txn knows its request"))
                    .or_default()
                    .push((*txn, f.clone()));
            }
        }
        by_req
    };
    let (wc, oc) = (committed(wallet), committed(order));
    let mut known = BTreeSet::new();
    for s in seen {
        let Some(o) = &s.outcome else {
            bad.push(format!(
                "request {}#{} ({:?}) got no outcome within the client's 600 s",
                s.client, s.seq, s.purchase
            ));
            continue;
        };
        known.insert(o.req.clone());
        let w = wc.get(&o.req).map(Vec::as_slice).unwrap_or(&[]);
        let r = oc.get(&o.req).map(Vec::as_slice).unwrap_or(&[]);
        if w.len() > 1 || r.len() > 1 {
            bad.push(format!(
                "request {} applied more than once: wallet {w:?}, order {r:?}",
                o.req
            ));
        }
        match o.verdict {
            Verdict::Committed => {
                commits += 1;
                let p = &s.purchase;
                // A participant forgets what the coordinator's floor settled:
                // a commit below its floor is no longer listed (the levels
                // below still account for it).
                let forgotten = |part: &PartStorage| o.txn.is_some_and(|t| t < part.floor);
                let wallet_ok = forgotten(wallet)
                    || w.iter().any(|(t, f)| {
                        Some(*t) == o.txn
                            && f.op
                                .as_ref()
                                .is_some_and(|op| op.key == p.user && op.amount == p.qty * p.price)
                    });
                let order_ok = forgotten(order)
                    || r.iter().any(|(t, f)| {
                        Some(*t) == o.txn
                            && f.op
                                .as_ref()
                                .is_some_and(|op| op.key == p.sku && op.amount == p.qty)
                    });
                if !wallet_ok || !order_ok {
                    bad.push(format!(
                        "client saw {} committed as txn {:?} but wallet has {w:?} and order has {r:?}",
                        o.req, o.txn
                    ));
                }
            }
            Verdict::Aborted(reason) => {
                *aborts.entry(format!("{reason:?}")).or_insert(0u64) += 1;
                if !w.is_empty() || !r.is_empty() {
                    bad.push(format!(
                        "client saw {} aborted ({reason:?}) but wallet committed {w:?}, order committed {r:?}",
                        o.req
                    ));
                }
            }
            // Every purchase here has a fresh random id and the default
            // retention: neither can happen.
            Verdict::Refused(_) | Verdict::Unknown => {
                bad.push(format!("client saw {} {:?}", o.req, o.verdict))
            }
        }
    }
    // Atomic: a transaction committed at one participant is committed at the
    // other (or settled there by the floor and forgotten).
    for (name, a, b) in [("wallet", wallet, order), ("order", order, wallet)] {
        for (txn, f) in &a.finished {
            let forgotten = *txn < b.floor && !b.finished.contains_key(txn);
            if f.committed && !forgotten && !b.finished.get(txn).is_some_and(|g| g.committed) {
                bad.push(format!(
                    "txn {txn} committed at the {name} but not at the other participant ({:?})",
                    b.finished.get(txn)
                ));
            }
        }
    }
    // Nothing committed that no client asked for (the clients are the only requesters).
    for req in wc.keys().chain(oc.keys()) {
        if !known.contains(req) {
            bad.push(format!("request {req} committed but no client saw it"));
        }
    }
    // Conserved, never negative, nothing left in doubt.
    for (name, p, initial) in [
        ("wallet", wallet, USERS.as_slice()),
        ("order", order, SKUS.as_slice()),
    ] {
        for (key, start) in initial {
            // What the purchases the clients saw committed took of this key:
            // participants forget settled transactions, clients do not.
            let spent: u64 = seen
                .iter()
                .filter(|s| {
                    s.outcome
                        .as_ref()
                        .is_some_and(|o| o.verdict == Verdict::Committed)
                })
                .map(|s| match name {
                    "wallet" if s.purchase.user == *key => s.purchase.qty * s.purchase.price,
                    "order" if s.purchase.sku == *key => s.purchase.qty,
                    _ => 0,
                })
                .sum();
            let level = p.levels.get(*key).copied();
            if level.map(|l| l + spent) != Some(*start) {
                bad.push(format!(
                    "{name}: {key} started at {start}, committed purchases took {spent}, but the level is {level:?}"
                ));
            }
        }
        if !p.holds.is_empty() {
            bad.push(format!("{name} still holds {:?}", p.holds));
        }
    }
    if coordinator_commits != 0 {
        bad.push(format!(
            "coordinator still has {coordinator_commits} unacknowledged commit decisions"
        ));
    }
    (bad, commits, aborts)
}

#[test]
fn chaos_kill9_and_lossy_network_keep_every_promise() {
    let secs = env_u64("TWOPC_CHAOS_SECS").unwrap_or(40);
    let seed = env_u64("TWOPC_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            % 1_000_000
    });
    let clients = env_u64("TWOPC_CHAOS_CLIENTS").unwrap_or(4) as usize;
    println!("chaos: seed {seed}, {secs}s of chaos, {clients} clients (TWOPC_CHAOS_SEED={seed} to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = TestCluster::new(&USERS, &SKUS);
    let mut incarnation = 0u64;
    let mut next_seed = |name: usize| {
        incarnation += 1;
        seed.wrapping_mul(1000)
            .wrapping_add(incarnation * 10 + name as u64)
    };
    for (i, n) in NODES.iter().enumerate() {
        let flags = fault_flags(next_seed(i));
        c.start(n, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let key = ClusterKey::new(&std::fs::read_to_string(&c.key_file).unwrap()).unwrap();
    let codec = Codec::new(Some(key), Format::Bincode);
    let coordinator =
        std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, c.ports["coordinator"]);
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(secs);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client_thread = run_clients(coordinator, codec, clients, seed, stop_at, seen.clone());

    let (mut kills, mut restarts) = (0u64, 0u64);
    let mut faults = FaultTotals::default();
    while Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2500)));
        // Usually one node, sometimes two at once.
        let victims: Vec<usize> = if rng.random_bool(0.2) {
            let first = rng.random_range(0..3);
            vec![first, (first + rng.random_range(1..3)) % 3]
        } else {
            vec![rng.random_range(0..3)]
        };
        for &v in &victims {
            if let Some(view) = c.status(NODES[v]) {
                faults.add(&view);
            }
            c.kill9(NODES[v]);
            kills += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1000)));
        for &v in &victims {
            let flags = fault_flags(next_seed(v));
            c.start(
                NODES[v],
                &flags.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            restarts += 1;
        }
    }
    let chaos_done = Instant::now();
    client_thread.join().expect("clients finish");
    let clients_done = Instant::now();
    c.settle();
    let settled = Instant::now();
    for n in NODES {
        if let Some(view) = c.status(n) {
            faults.add(&view);
        }
    }
    for n in NODES {
        assert!(c.terminate(n).success(), "{n} stops cleanly");
    }
    let part = |n: &str| {
        let s = inspect(&c.data_dir(n)).unwrap().expect("saved state");
        as_participant(&s).expect("a participant").clone()
    };
    let (wallet, order) = (part("wallet"), part("order"));
    let coord = inspect(&c.data_dir("coordinator"))
        .unwrap()
        .expect("saved state");
    let coord = as_coordinator(&coord).expect("a coordinator").clone();
    let seen = seen.lock().unwrap().clone();
    let (bad, commits, aborts) = verify(&seen, &wallet, &order, coord.commits.len());
    println!(
        "chaos summary (seed {seed}): {} purchases by {} clients: {commits} committed, {} aborted {aborts:?}; \
         {kills} kills (SIGKILL), {restarts} restarts, coordinator epoch {}; injected faults: \
         {} datagrams dropped, {} duplicated, {} delayed, {} reordered; clients finished {:.1}s after the \
         chaos, cluster settled {:.1}s after that; {} violations",
        seen.len(),
        seen.iter().map(|s| s.client).collect::<BTreeSet<_>>().len(),
        aborts.values().sum::<u64>(),
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
    assert!(kills > 0, "seed {seed}: nothing killed");
}

/// The checks above are not vacuous: fabricated violations are reported.
#[test]
fn verify_reports_each_kind_of_violation() {
    use twopc_model::{AbortReason, Hold, Op};
    let purchase = Purchase {
        user: "ann".into(),
        sku: "apple".into(),
        qty: 2,
        price: 3,
    };
    let req = |seq| RequestId::new(format!("{}#{}", 7, seq));
    let txn = |n| TxnId { epoch: 1, n };
    let fin = |seq, key: &str, amount, committed| Finished {
        req: Some(req(seq)),
        op: Some(Op {
            key: key.into(),
            amount,
        }),
        committed,
    };
    let start = |pairs: &[(&str, u64)]| PartStorage {
        levels: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..PartStorage::default()
    };
    let seen = |seq, verdict| Seen {
        purchase: purchase.clone(),
        outcome: Some(Outcome {
            req: req(seq),
            txn: Some(txn(seq)),
            verdict,
        }),
        client: 7,
        seq,
    };
    // A consistent history: one commit, one abort.
    let mut wallet = start(&USERS);
    let mut order = start(&SKUS);
    *wallet.levels.get_mut("ann").unwrap() -= 6;
    *order.levels.get_mut("apple").unwrap() -= 2;
    wallet.finished.insert(txn(1), fin(1, "ann", 6, true));
    order.finished.insert(txn(1), fin(1, "apple", 2, true));
    wallet.finished.insert(txn(2), fin(2, "ann", 6, false));
    let ok = [
        seen(1, Verdict::Committed),
        seen(2, Verdict::Aborted(AbortReason::VoteTimeout)),
    ];
    assert_eq!(verify(&ok, &wallet, &order, 0).0, Vec::<String>::new());
    // Each corruption is caught.
    let mut w = wallet.clone();
    w.finished.get_mut(&txn(2)).unwrap().committed = true;
    assert!(
        !verify(&ok, &w, &order, 0).0.is_empty(),
        "told aborted, committed"
    );
    let mut o = order.clone();
    o.finished.remove(&txn(1));
    *o.levels.get_mut("apple").unwrap() += 2;
    assert!(!verify(&ok, &wallet, &o, 0).0.is_empty(), "not atomic");
    let mut w = wallet.clone();
    *w.levels.get_mut("ann").unwrap() += 1;
    assert!(
        !verify(&ok, &w, &order, 0).0.is_empty(),
        "money not conserved"
    );
    let mut w = wallet.clone();
    w.holds.insert(
        txn(3),
        Hold {
            req: req(3),
            op: Op {
                key: "ann".into(),
                amount: 1,
            },
        },
    );
    assert!(!verify(&ok, &w, &order, 0).0.is_empty(), "hold left");
    assert!(!verify(&ok, &wallet, &order, 1).0.is_empty(), "commit left");
    let mut lost = ok.to_vec();
    lost[1].outcome = None;
    assert!(
        !verify(&lost, &wallet, &order, 0).0.is_empty(),
        "no outcome"
    );
    let mut w = wallet.clone();
    let mut o = order.clone();
    w.finished.insert(txn(9), fin(1, "ann", 6, true));
    o.finished.insert(txn(9), fin(1, "apple", 2, true));
    *w.levels.get_mut("ann").unwrap() -= 6;
    *o.levels.get_mut("apple").unwrap() -= 2;
    assert!(!verify(&ok, &w, &o, 0).0.is_empty(), "charged twice");
}
