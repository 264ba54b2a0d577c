//! PostgreSQL's side: tables, purchases with PREPARE TRANSACTION on both
//! servers, one measured run, and what the tables hold after it.

use crate::check::{Levels, Taken};
use crate::report::Measured;
use crate::workload::{sku, user, Purchase, Workload};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// SQLSTATEs after which the purchase is tried again: `lock_timeout` fired
/// (lock_not_available; or query_canceled, which a lock timeout that fires
/// as the lock is granted reports instead: the harness sends no cancel
/// requests), and PostgreSQL's own "try again" answers (deadlock_detected,
/// serialization_failure).
const TRY_AGAIN: [&str; 4] = ["55P03", "57014", "40P01", "40001"];

/// An error with what the server said (tokio-postgres's own text for a
/// server error is only "db error").
pub fn said(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Connects, with the connection driven by its own task.
pub async fn connect(conninfo: &str) -> Result<Client, String> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .map_err(|e| format!("connect {conninfo}: {}", said(&e)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Fresh tables: every user funded on the wallet, every sku on the order
/// service; then a checkpoint, so a run starts as on a fresh cluster.
pub async fn load(wallet: &Client, order: &Client, w: &Workload) -> Result<(), String> {
    let n = w.accounts as i64 - 1;
    let fund = w.fund;
    let q = |table: &str, key: &str, level: &str, prefix: &str| {
        format!(
            "DROP TABLE IF EXISTS {table}; \
             CREATE TABLE {table} ({key} text PRIMARY KEY, {level} bigint NOT NULL); \
             INSERT INTO {table} SELECT '{prefix}' || g, {fund} FROM generate_series(0, {n}) g; \
             CHECKPOINT"
        )
    };
    let (wq, oq) = (
        q("wallet", "user_id", "balance", "user"),
        q("stock", "sku", "stock", "sku"),
    );
    let (a, b) = tokio::join!(wallet.batch_execute(&wq), order.batch_execute(&oq));
    a.map_err(|e| format!("wallet: loading the table: {}", said(&e)))?;
    b.map_err(|e| format!("order: loading the table: {}", said(&e)))?;
    Ok(())
}

/// What one server said to `BEGIN; UPDATE ...; PREPARE TRANSACTION`.
#[derive(Debug)]
enum Vote {
    /// Prepared, the update changed one row.
    Yes,
    /// Prepared, but the update changed nothing (not enough money or stock):
    /// an empty prepared transaction to roll back.
    No,
    /// The update hit `lock_timeout` (or a deadlock or serialization
    /// failure); nothing is prepared.
    Timeout,
}

/// One round trip: the conditional update and the prepare in one simple
/// query, so PostgreSQL's side pays no extra trip for the shape.
async fn prepare(c: &Client, update: String, gid: &str, side: &str) -> Result<Vote, String> {
    let sql = format!("BEGIN; {update}; PREPARE TRANSACTION '{gid}'");
    match c.simple_query(&sql).await {
        Ok(msgs) => {
            let rows: Vec<u64> = msgs
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .collect();
            // BEGIN, UPDATE n, PREPARE TRANSACTION.
            match rows.get(1) {
                Some(1) => Ok(Vote::Yes),
                Some(_) => Ok(Vote::No),
                None => Err(format!("{side}: unexpected answer to `{sql}`: {rows:?}")),
            }
        }
        Err(e) if e.code().is_some_and(|c| TRY_AGAIN.contains(&c.code())) => {
            c.batch_execute("ROLLBACK")
                .await
                .map_err(|e| format!("{side}: ROLLBACK after a lock timeout: {}", said(&e)))?;
            Ok(Vote::Timeout)
        }
        Err(e) => Err(format!("{side}: `{sql}`: {}", said(&e))),
    }
}

/// `COMMIT PREPARED` or `ROLLBACK PREPARED` of a transaction that prepared.
async fn finish(
    c: &Client,
    vote: &Vote,
    commit: bool,
    gid: &str,
    side: &str,
) -> Result<(), String> {
    if matches!(vote, Vote::Timeout) {
        return Ok(());
    }
    let sql = match commit {
        true => format!("COMMIT PREPARED '{gid}'"),
        false => format!("ROLLBACK PREPARED '{gid}'"),
    };
    c.batch_execute(&sql)
        .await
        .map_err(|e| format!("{side}: `{sql}`: {}", said(&e)))
}

/// How one purchase ended.
pub enum Ended {
    Committed {
        attempts: u64,
    },
    /// A server refused it (no money or stock): never expected here.
    Refused,
}

/// One purchase: both prepares in parallel, then both commits (or both
/// rollbacks) in parallel; tried again with a fresh gid after a lock
/// timeout, after a short pause that grows with the attempts.
pub async fn purchase(
    wallet: &Client,
    order: &Client,
    p: &Purchase,
    gid: &str,
) -> Result<Ended, String> {
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let gid = format!("{gid}-{attempts}");
        let debit = p.qty * p.price;
        let (w, o) = tokio::join!(
            prepare(
                wallet,
                format!(
                    "UPDATE wallet SET balance = balance - {debit} WHERE user_id = '{}' AND balance >= {debit}",
                    user(p.user)
                ),
                &gid,
                "wallet",
            ),
            prepare(
                order,
                format!(
                    "UPDATE stock SET stock = stock - {q} WHERE sku = '{}' AND stock >= {q}",
                    sku(p.sku),
                    q = p.qty
                ),
                &gid,
                "order",
            ),
        );
        let (w, o) = (w?, o?);
        let commit = matches!((&w, &o), (Vote::Yes, Vote::Yes));
        let (a, b) = tokio::join!(
            finish(wallet, &w, commit, &gid, "wallet"),
            finish(order, &o, commit, &gid, "order"),
        );
        a?;
        b?;
        if commit {
            return Ok(Ended::Committed { attempts });
        }
        if matches!(w, Vote::No) || matches!(o, Vote::No) {
            return Ok(Ended::Refused);
        }
        if attempts >= 10_000 {
            return Err(format!("purchase {gid}: 10,000 lock timeouts in a row"));
        }
        // Two purchases that time out on each other's locks would otherwise
        // meet again at once; a pause that differs per client parts them.
        let jitter = (gid.bytes().map(u64::from).sum::<u64>() * 7 + attempts * 13) % 20;
        tokio::time::sleep(Duration::from_millis(jitter.min(attempts * 2))).await;
    }
}

/// What a run recorded.
#[derive(Default)]
struct Record {
    latencies: Vec<Duration>,
    attempts: u64,
    refused: u64,
    taken: Taken,
}

/// `clients` clients, each with a connection to each server, each making
/// its `each` purchases one after another; `run` names the gids. Latency
/// per purchase is from the previous one's end (or the start) to both
/// commits' return, as `twopc bench` counts it.
pub async fn measure(
    wallet: &str,
    order: &str,
    w: &Workload,
    clients: usize,
    each: usize,
    run: &str,
    taken: &mut Taken,
) -> Result<Measured, String> {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push((connect(wallet).await?, connect(order).await?));
    }
    let record = Arc::new(Mutex::new(Record::default()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, (wc, oc)) in conns.into_iter().enumerate() {
        let (record, purchases, run) = (record.clone(), w.purchases(c, each), run.to_string());
        tasks.push(tokio::spawn(async move {
            let mut last = Instant::now();
            for (i, p) in purchases.iter().enumerate() {
                let ended = purchase(&wc, &oc, p, &format!("{run}-{c}-{i}")).await?;
                let now = Instant::now();
                let mut r = record.lock().unwrap();
                r.latencies.push(now - last);
                last = now;
                match ended {
                    Ended::Committed { attempts } => {
                        r.attempts += attempts;
                        r.taken.add(p);
                    }
                    Ended::Refused => r.refused += 1,
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| format!("a client task failed: {e}"))??;
    }
    let elapsed = started.elapsed();
    let r = std::mem::take(&mut *record.lock().unwrap());
    taken.merge(&r.taken);
    let mut lat = r.latencies;
    lat.sort();
    let n = lat.len();
    Ok(Measured {
        purchases: n,
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        not_committed: r.refused as usize,
        retries: Some(r.attempts.saturating_sub(n as u64 - r.refused)),
    })
}

/// The bench's percentile: the nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Every key's level in `table`, and how many transactions are still
/// prepared on that server.
pub async fn levels(
    c: &Client,
    table: &str,
    key: &str,
    level: &str,
) -> Result<(Levels, i64), String> {
    let rows = c
        .query(&format!("SELECT {key}, {level} FROM {table}"), &[])
        .await
        .map_err(|e| format!("reading {table}: {}", said(&e)))?;
    let levels = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let prepared: i64 = c
        .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
        .await
        .map_err(|e| format!("reading pg_prepared_xacts: {}", said(&e)))?
        .get(0);
    Ok((levels, prepared))
}
