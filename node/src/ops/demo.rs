//! `twopc demo`: a newcomer's first command. Brings up a whole cluster on
//! loopback as twopc is deployed by default (three coordinator replicas, a
//! wallet and an order service, each a `twopc node` process), makes a few
//! purchases (commits and every kind of abort, and a race for the last
//! unit), kills the leader with SIGKILL while three clients buy (every
//! purchase completes), prints the final balances and stock and whether they
//! add up, and shuts down. Then the same shop with one coordinator (2PC).

use crate::ops::client::{self, PurchaseReport};
use crate::ops::local::LocalCluster;
use crate::runtime::cluster::{Protocol, Role};
use crate::runtime::error::{DemoError, Error, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use twopc_model::{Outcome, Purchase, Verdict};

fn levels(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints whether money and stock are conserved: the initial totals equal
/// the participants' levels plus what the committed purchases took.
fn conservation(
    indent: &str,
    initial: (&BTreeMap<String, u64>, &BTreeMap<String, u64>),
    now: (&BTreeMap<String, u64>, &BTreeMap<String, u64>),
    committed: &[Purchase],
) -> bool {
    let spent: u64 = committed.iter().map(|p| p.qty * p.price).sum();
    let sold: u64 = committed.iter().map(|p| p.qty).sum();
    let money = (initial.0.values().sum::<u64>(), now.0.values().sum::<u64>());
    let units = (initial.1.values().sum::<u64>(), now.1.values().sum::<u64>());
    let conserved = money.0 == money.1 + spent && units.0 == units.1 + sold;
    println!(
        "{indent}conserved:      money {} = {} + {} spent; stock {} = {} + {} sold: {}",
        money.0,
        money.1,
        spent,
        units.0,
        units.1,
        sold,
        if conserved { "yes" } else { "NO" }
    );
    conserved
}

fn buy(user: &str, sku: &str, qty: u64, price: u64) -> Purchase {
    Purchase {
        user: user.into(),
        sku: sku.into(),
        qty,
        price,
    }
}

fn describe(p: &Purchase) -> String {
    format!("{} buys {} {} at {}", p.user, p.qty, p.sku, p.price)
}

async fn one(cluster: &LocalCluster, p: Purchase) -> Result<Option<Outcome>> {
    let started = Instant::now();
    let seen = client::run_client(
        &cluster.cluster.coordinator_addresses(),
        vec![p.clone()],
        cluster.codec.clone(),
        Duration::from_secs(30),
        |_| {},
    )
    .await?;
    let outcome = seen.first().cloned();
    let report = PurchaseReport::of(outcome.as_ref(), started.elapsed().as_secs_f64());
    println!(
        "  {:<32} -> {}  [{:.1} ms]",
        describe(&p),
        report.render(),
        report.seconds * 1e3
    );
    Ok(outcome)
}

/// Runs the demo; prints to stdout.
/// The shop's initial balances and stock (both scenes).
fn shop() -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let accounts = [("alice", 100), ("bob", 60), ("carol", 15)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    let stock = [("widget", 30), ("gadget", 2)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    (accounts, stock)
}

/// Prints the cluster's nodes.
fn nodes(cluster: &LocalCluster) {
    for n in &cluster.cluster.nodes {
        println!(
            "  {:<14} {:<22} data {}",
            n.name,
            n.address.to_string(),
            cluster.dir.path().join(&n.name).display()
        );
    }
}

/// Purchases one after another (commits and each kind of abort), then two
/// buyers racing for the last gadget; returns those that committed.
async fn purchases(cluster: &LocalCluster) -> Result<Vec<Purchase>> {
    println!("purchases, one after another:");
    let mut committed: Vec<Purchase> = Vec::new();
    for p in [
        buy("alice", "widget", 3, 10),
        buy("bob", "gadget", 1, 40),
        buy("carol", "gadget", 1, 40),
        buy("alice", "gadget", 5, 1),
        buy("dave", "widget", 1, 5),
        buy("bob", "gizmo", 1, 5),
    ] {
        if let Some(o) = one(cluster, p.clone()).await? {
            if o.verdict == Verdict::Committed {
                committed.push(p);
            }
        }
    }
    println!();
    println!("alice and bob race for the last gadget, concurrently:");
    let race = [buy("alice", "gadget", 1, 10), buy("bob", "gadget", 1, 10)];
    let (a, b) = tokio::join!(one(cluster, race[0].clone()), one(cluster, race[1].clone()));
    for (p, o) in race.iter().zip([a?, b?]) {
        if o.is_some_and(|o| o.verdict == Verdict::Committed) {
            committed.push(p.clone());
        }
    }
    Ok(committed)
}

/// Waits until every transaction is decided, prints the final levels and
/// whether they add up; stops the cluster.
async fn finish(
    cluster: LocalCluster,
    name: &'static str,
    initial: (&BTreeMap<String, u64>, &BTreeMap<String, u64>),
    committed: &[Purchase],
) -> Result<()> {
    if !cluster.settle(Duration::from_secs(60)).await? {
        let secs = 60;
        return Err(DemoError::NotSettled {
            cluster: name,
            secs,
        }
        .into());
    }
    let wallet = cluster.status(Role::Wallet).await?;
    let order = cluster.status(Role::Order).await?;
    println!();
    println!(
        "final balances: {}   (as the wallet reports them)",
        levels(&wallet.levels)
    );
    println!(
        "final stock:    {}   (as the order service reports them)",
        levels(&order.levels)
    );
    let conserved = conservation("", initial, (&wallet.levels, &order.levels), committed);
    let holds = wallet.holds_total + order.holds_total;
    println!(
        "purchases committed: {}; holds left at the wallet or the order service: {holds}",
        committed.len()
    );
    cluster.stop().await?;
    println!("{name} stopped cleanly");
    if !conserved {
        return Err(DemoError::NotConserved.into());
    }
    Ok(())
}

/// The demo: the replicated coordinator (the default), its leader killed
/// mid-purchases; then the same shop with one coordinator (2PC).
pub async fn run() -> Result<()> {
    replicated().await?;
    println!();
    two_phase_commit().await
}

/// The first scene, as twopc is deployed by default: three coordinator
/// replicas, a wallet and an order service, each a `twopc node` process;
/// the shop's purchases, then the leader killed with SIGKILL while three
/// clients buy, and every purchase completes.
async fn replicated() -> Result<()> {
    let (accounts, stock) = shop();
    let exe = crate::ops::bench::this_executable()?;
    let cluster = LocalCluster::spawn_in(
        &std::env::temp_dir(),
        &exe,
        Protocol::Replicated,
        false,
        accounts.clone(),
        stock.clone(),
    )
    .await?;
    println!(
        "twopc demo: three coordinator replicas, a wallet and an order service, each a \
         `twopc node` process on loopback (protocol = \"replicated\", the default; UDP, \
         fsync'd storage, HMAC-authenticated)"
    );
    nodes(&cluster);
    println!();
    println!("initial balances: {}", levels(&accounts));
    println!("initial stock:    {}", levels(&stock));
    let first = wait_leader(&cluster).await?;
    println!("{first} leads.");
    println!();
    let mut committed = purchases(&cluster).await?;
    println!();
    println!("alice, bob and carol buy a widget each, four times, concurrently;");
    println!("the leader is killed with SIGKILL after the first three outcomes:");
    let done = AtomicUsize::new(0);
    let client = |user: &'static str| {
        let (cluster, done) = (&cluster, &done);
        async move {
            let mut committed = Vec::new();
            for _ in 0..4 {
                let p = buy(user, "widget", 1, 1);
                let Some(o) = one(cluster, p.clone()).await? else {
                    let purchase = describe(&p);
                    return Err(DemoError::NoOutcome { purchase }.into());
                };
                if o.verdict == Verdict::Committed {
                    committed.push(p);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, Error>(committed)
        }
    };
    let killer = async {
        while done.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cluster.kill9(&first)?;
        println!("  -- kill -9 {first} --");
        Ok::<_, Error>(())
    };
    let (a, b, c, killed) = tokio::join!(client("alice"), client("bob"), client("carol"), killer);
    killed?;
    committed.extend([a?, b?, c?].concat());
    let next = wait_leader(&cluster).await?;
    println!("{next} leads now; {first} stays down");
    finish(
        cluster,
        "replicated cluster",
        (&accounts, &stock),
        &committed,
    )
    .await
}

/// The second scene: the same shop with one coordinator (`protocol =
/// "2pc"`), the simpler choice that blocks while its coordinator is down.
async fn two_phase_commit() -> Result<()> {
    let (accounts, stock) = shop();
    let cluster = LocalCluster::start(accounts.clone(), stock.clone()).await?;
    println!(
        "protocol = \"2pc\": the same shop with one coordinator (fewer machines; while the \
         coordinator is down, prepared purchases wait for it)"
    );
    nodes(&cluster);
    println!();
    let committed = purchases(&cluster).await?;
    let fsyncs = cluster.status(Role::Coordinator).await?.counters.fsyncs;
    println!("fsyncs at the coordinator: {fsyncs}");
    finish(cluster, "2pc cluster", (&accounts, &stock), &committed).await
}

/// The replica that leads, once one does (an election takes under a second).
async fn wait_leader(cluster: &LocalCluster) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((name, _)) = cluster.leader().await? {
            return Ok(name);
        }
        if Instant::now() > deadline {
            return Err(DemoError::NoLeader { secs: 60 }.into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
