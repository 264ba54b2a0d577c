//! `twopc bench`'s table: a heading, a row per run (with what a purchase
//! cost each node), ratios between sizes and between protocols.

use super::{age, BenchResult, Options, Spread};
use crate::runtime::cluster::{Protocol, Role};
use std::collections::BTreeMap;

/// Prints the table's heading.
pub fn print_heading(opts: &Options, spreads: &[Spread]) {
    println!(
        "twopc bench: {} {}, loopback UDP, fsync on, data under {}",
        if opts.protocols == [Protocol::TwoPc] {
            "3 nodes"
        } else {
            "the cluster's nodes (a replicated one: 3 coordinator replicas, wallet, order)"
        },
        if opts.processes.is_some() {
            "as separate processes"
        } else {
            "in this process"
        },
        opts.dir.display()
    );
    if spreads != [Spread::PerClient] {
        let all: Vec<String> = spreads.iter().map(|s| s.describe()).collect();
        println!("purchases: {}", all.join("; "));
    }
    if !opts.mix.is_purchases_only() {
        println!(
            "mix {}: top-ups credit 1 to the user a purchase would charge, restocks 1 unit \
             to its sku, refunds give back a purchase the same client made earlier (1 unit); \
             the columns count every operation",
            opts.mix
        );
    }
    println!(
        "{}{:>8} {:>10} {:>12} {:>9} {:>9} {:>10}   per purchase at coordinator{} / wallet / order",
        accounts_cell(opts, Some("accounts")),
        "clients",
        "purchases",
        "purchases/s",
        "p50 ms",
        "p99 ms",
        "waited",
        if opts.protocols == [Protocol::TwoPc] {
            ""
        } else {
            " (each replica)"
        }
    );
}

/// The table's first column, shown only with `--accounts`.
fn accounts_cell(opts: &Options, text: Option<&str>) -> String {
    if opts.accounts.is_empty() {
        String::new()
    } else {
        format!("{:>9} ", text.unwrap_or(""))
    }
}

pub fn print_row(opts: &Options, r: &BenchResult) {
    // Per node: the coordinator (each replica's, space-separated), wallet, order.
    let cells = |m: &BTreeMap<String, f64>, digits: usize| {
        let coordinators: Vec<String> = m
            .iter()
            .filter(|(name, _)| name.starts_with(Role::Coordinator.as_str()))
            .map(|(_, v)| format!("{v:.digits$}"))
            .collect();
        let mut all = vec![coordinators.join(" ")];
        for role in [Role::Wallet, Role::Order] {
            all.push(format!("{:.digits$}", m[role.as_str()]));
        }
        all.join(" / ")
    };
    let accounts = r.accounts.map(|a| a.to_string());
    println!(
        "{}{:>8} {:>10} {:>12.0} {:>9.2} {:>9.2} {:>10}   fsyncs {}, bytes written {}, msgs sent {}{}{}",
        accounts_cell(opts, accounts.as_deref()),
        r.clients,
        r.purchases,
        r.per_second,
        r.p50_ms,
        r.p99_ms,
        r.durable_writes_waited.cell(),
        cells(&r.fsyncs_per_purchase, 2),
        cells(&r.bytes_per_purchase, 0),
        cells(&r.msgs_per_purchase, 1),
        r.cpu_ms_per_purchase
            .as_ref()
            .map_or(String::new(), |cpu| format!(", cpu ms {}", cells(cpu, 3))),
        if r.not_committed > 0 {
            format!("   ({} did not commit)", r.not_committed)
        } else {
            String::new()
        }
    );
    if let Some(mix) = &r.mix {
        let kinds: Vec<String> = (mix.iter())
            .map(|(kind, k)| {
                let aborted: Vec<String> = (k.aborted.iter())
                    .map(|(why, n)| format!(", {n} {why}"))
                    .collect();
                format!(
                    "{} {} ({} committed{})",
                    kind.name(),
                    k.made,
                    k.committed,
                    aborted.concat()
                )
            })
            .collect();
        println!(
            "{}   by kind: {}",
            accounts_cell(opts, None),
            kinds.join("; ")
        );
    }
}

/// With several `--accounts`, each run against the run with the first
/// count and as many clients: the cost of size, as ratios of one invocation.
pub fn print_ratios(results: &[BenchResult]) {
    let Some(base) = results.first().and_then(|r| r.accounts) else {
        return;
    };
    let mut printed = false;
    for r in results.iter().filter(|r| r.accounts != Some(base)) {
        let Some(b) = results
            .iter()
            .find(|b| b.accounts == Some(base) && b.clients == r.clients)
        else {
            continue;
        };
        if !printed {
            println!("ratios to the run with {base} accounts and as many clients:");
            printed = true;
        }
        println!(
            "{:>9} accounts, {:>3} clients: purchases/s {}, p50 {}, p99 {}",
            r.accounts.unwrap_or(0),
            r.clients,
            age::ratio(r.per_second, b.per_second),
            age::ratio(r.p50_ms, b.p50_ms),
            age::ratio(r.p99_ms, b.p99_ms),
        );
    }
}

/// Each protocol's commit latency (p50) with the fewest clients and
/// throughput with the most, side by side.
pub fn print_protocols(results: &[BenchResult]) {
    let (Some(few), Some(many)) = (
        results.iter().map(|r| r.clients).min(),
        results.iter().map(|r| r.clients).max(),
    ) else {
        return;
    };
    println!();
    println!(
        "{:<12} {:>22} {:>26} {:>28}",
        "protocol",
        format!("p50 ms @ {few} client(s)"),
        format!("purchases/s @ {many} clients"),
        format!("durable writes waited @ {few}"),
    );
    let mut protocols: Vec<Protocol> = results.iter().map(|r| r.protocol).collect();
    protocols.dedup();
    for p in protocols {
        let of = |clients| {
            results
                .iter()
                .find(|r| r.protocol == p && r.clients == clients)
        };
        let p50 = of(few).map_or("-".to_string(), |r| format!("{:.2}", r.p50_ms));
        let rate = of(many).map_or("-".to_string(), |r| format!("{:.0}", r.per_second));
        let waited = of(few).map_or("-".to_string(), |r| r.durable_writes_waited.cell());
        println!("{:<12} {p50:>22} {rate:>26} {waited:>28}", p.to_string());
    }
}
