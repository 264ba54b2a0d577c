//! pgside: twopc against PostgreSQL 15's own two-phase commit, side by side
//! (issue 23, item 4). See `pgside --help` and docs/performance.md.
//!
//! | file | what |
//! | --- | --- |
//! | `args.rs` | the command line |
//! | `server.rs` | two fresh PostgreSQL servers, stopped and removed on drop |
//! | `pg.rs` | tables, a purchase with PREPARE TRANSACTION on both, a run |
//! | `check.rs` | conservation after a run |
//! | `disk.rs` | what an fdatasync costs on `--dir` now |
//! | `twopc.rs` | `twopc bench` with the same workload |
//! | `workload.rs` | who buys what (the bench's sequence) |
//! | `report.rs` | the side-by-side table and its ratios |

mod args;
mod check;
mod disk;
mod pg;
mod report;
mod server;
mod twopc;
mod workload;

use args::Args;
use clap::Parser;
use report::Row;
use server::{Servers, Settings};
use workload::{Workload, WARM_UP};

fn load() -> Vec<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report::load_1min(&text).into_iter().collect()
}

/// One run of PostgreSQL's side: fresh tables, warm-up, the measured
/// purchases, then the conservation check.
async fn postgres_run(
    servers: &Servers,
    w: &Workload,
    clients: usize,
    each: usize,
    run: &str,
) -> Result<report::Measured, String> {
    let (wi, oi) = (servers.servers[0].conninfo(), servers.servers[1].conninfo());
    let (wallet, order) = (pg::connect(&wi).await?, pg::connect(&oi).await?);
    pg::load(&wallet, &order, w).await?;
    let mut taken = check::Taken::default();
    pg::measure(
        &wi,
        &oi,
        w,
        1,
        WARM_UP.min(each * clients),
        &format!("{run}w"),
        &mut taken,
    )
    .await?;
    let m = pg::measure(&wi, &oi, w, clients, each, run, &mut taken).await?;
    let ((wn, wp), (on, op)) = (
        pg::levels(&wallet, "wallet", "user_id", "balance").await?,
        pg::levels(&order, "stock", "sku", "stock").await?,
    );
    let initial = (
        check::funded(workload::user, w.accounts, w.fund),
        check::funded(workload::sku, w.accounts, w.fund),
    );
    let c = check::conservation((&initial.0, &initial.1), &taken, (&wn, &on), (wp, op))
        .map_err(|e| format!("PostgreSQL at {clients} clients: {e}"))?;
    eprintln!(
        "pgside: PostgreSQL, {clients} clients: conserved: money {} = {} + {} spent; stock {} = {} + {} sold ({} committed, warm-up included); nothing left prepared",
        c.money_initial, c.money_now, c.money_spent, c.stock_initial, c.stock_now, c.stock_sold, taken.committed
    );
    Ok(m)
}

async fn run(args: Args) -> Result<(), String> {
    args.check_files()?;
    let w = Workload::new(args.accounts as usize, args.hot, args.purchases);
    let settings = Settings {
        max_prepared_transactions: args.max_clients() + 16,
        max_connections: args.max_clients() + 30,
        lock_timeout_ms: args.lock_timeout_ms,
    };
    let servers = Servers::start(&args.pg_bin, &args.dir, &["wallet", "order"], &settings).await?;
    let heading = format!(
        "pgside: PostgreSQL 15 two-phase commit (2 servers, PREPARE TRANSACTION + COMMIT PREPARED, fsync on, lock_timeout {} ms) against twopc bench --processes --protocol {}{}; {}; {} purchases per run",
        args.lock_timeout_ms,
        args.protocol,
        if args.one_write { " --one-write" } else { "" },
        w.describe(),
        args.purchases
    );
    eprintln!("{heading}");
    eprintln!(
        "pgside: servers under {}: wallet on port {}, order on port {}",
        servers.dir.display(),
        servers.servers[0].port,
        servers.servers[1].port
    );
    // twopc's data directories go beside the servers', so that whatever a
    // stopped bench leaves is removed with them.
    let twopc_dir = servers.dir.join("twopc");
    std::fs::create_dir(&twopc_dir).map_err(|e| format!("{}: {e}", twopc_dir.display()))?;
    let mut rows = Vec::new();
    for (i, &clients) in args.clients.0.iter().enumerate() {
        let each = (args.purchases as usize / clients).max(1);
        let fdatasync = disk::fdatasync_p50_ms(&args.dir)?;
        let mut loads = load();
        let pg = postgres_run(&servers, &w, clients, each, &format!("r{i}")).await?;
        let tw = match args.no_twopc {
            true => None,
            false => {
                loads.extend(load());
                let a = twopc::bench_args(
                    clients,
                    args.accounts,
                    args.hot,
                    args.purchases,
                    &args.protocol,
                    args.one_write,
                    &twopc_dir,
                );
                Some(twopc::bench(&args.twopc_binary(), &a).await?)
            }
        };
        let mut row = Row::new(clients, pg, tw, loads);
        row.fdatasync_ms = Some(fdatasync);
        if !args.json {
            eprint!(
                "{}",
                report::table(std::slice::from_ref(&row))
                    .lines()
                    .nth(1)
                    .map(|l| format!("{l}\n"))
                    .unwrap_or_default()
            );
        }
        rows.push(row);
    }
    drop(servers);
    if args.json {
        let out = serde_json::json!({
            "postgres": "15",
            "twopc_protocol": args.protocol,
            "workload": w.describe(),
            "accounts": args.accounts,
            "hot": args.hot,
            "purchases": args.purchases,
            "lock_timeout_ms": args.lock_timeout_ms,
            "runs": rows,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializes")
        );
    } else {
        println!("{heading}");
        print!("{}", report::table(&rows));
        println!("p50 ratio = twopc p50 / PostgreSQL p50 (below 1: twopc faster); /s ratio = twopc purchases/s / PostgreSQL's; retries = PostgreSQL attempts tried again (lock timeout, deadlock, serialization failure, cancel); fsync ms = median fdatasync of an 8 kB page on --dir before the run; load = 1-minute load average before each side's run");
    }
    let bad = report::incomplete(&rows);
    if !bad.is_empty() {
        return Err(bad.join("\n"));
    }
    Ok(())
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        unreachable!()
    };
    tokio::select! {
        _ = int.recv() => "interrupted (SIGINT)",
        _ = term.recv() => "terminated (SIGTERM)",
    }
}

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    // Servers are started from this (the main) thread, which lives until
    // exit: their parent-death signal is tied to it.
    let result = rt.block_on(async {
        tokio::select! {
            r = run(args) => r,
            why = interrupted() => Err(format!("{why}: servers stopped and removed")),
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        eprintln!("pgside: error: {e}");
        std::process::exit(1);
    }
}
