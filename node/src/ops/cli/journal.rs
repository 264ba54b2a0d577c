//! `twopc journal`: the committed changes a participant (the wallet or the
//! order service) applied, from a position, page by page over the same
//! authenticated admin datagrams `twopc account` uses
//! (`crate::ops::journal`), until its end or `--limit`.

use super::commands::Exit;
use crate::ops::journal::{ask_page, JournalJson, PageAnswer};
use crate::runtime::cluster::Cluster;
use crate::runtime::error::Result;
use crate::runtime::role::Role;
use crate::runtime::wire::{ClusterKey, Format, JOURNAL_PAGE};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// `twopc journal --help`'s description.
pub const ABOUT: &str = "A participant's journal: the committed changes it applied, in order, \
each with its resulting level. Asking changes nothing";

/// `twopc journal --help`'s long description.
pub fn long_about() -> String {
    format!(
        "{ABOUT}.\n\n\
Each entry has a position (from 1, never repeated, kept across restarts), the operation \
(`purchase`: a hold taken at commit, amount negative; `topup` at the wallet or `restock` at the \
order service: a credit, amount positive), the request id, the transaction, the user or sku, the \
signed amount and the level right after. An entry is written in the same durable record as the \
level change it records, so after any crash the journal, replayed from the initial levels (the \
cluster file's), gives the levels now: what a shop's accounting reconciles against. Aborted \
purchases change nothing and are not in it.\n\n\
A participant keeps the last `journal_retention` entries (the cluster file's; default 100000). \
Asking from a position it dropped already lists from the first one it keeps, and says so \
(`truncated` in --json, a warning on stderr). The node answers {JOURNAL_PAGE} entries at a time; \
this command asks page after page until the end (as it was when the last page was read) or \
--limit entries, then prints `next`: the position to ask from next time."
    )
}

/// The exit status.
pub const EXIT_STATUS: &str = "Exit status: 0 listed (also when --from was dropped already: \
see `truncated`), 4 no answer before --timeout, 2 bad usage or input (no node of that name, \
--from 0: positions count from 1; nothing is sent), 1 any other error (the node keeps no \
journal: it is not a participant).";

/// `twopc journal`.
#[derive(Args)]
pub struct JournalArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    /// The participant: the name of the wallet or the order service in the
    /// cluster file.
    #[arg(long)]
    name: String,
    /// The position to list from (positions count from 1).
    #[arg(long, default_value_t = 1, value_name = "N")]
    from: u64,
    /// List at most K entries (default: until the end).
    #[arg(long, value_name = "K")]
    limit: Option<u64>,
    /// Print JSON: {"node","first","from","truncated","next","end","entries":[{"position",
    /// "kind","operation","id","txn","key","amount","level"}]}.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each page.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    timeout: f64,
}

/// Runs `twopc journal`.
pub async fn journal(args: JournalArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let JournalArgs {
        cluster,
        name,
        from,
        limit,
        json,
        timeout,
    } = args;
    if from == 0 {
        eprintln!("twopc: --from 0: journal positions count from 1");
        return Ok(Exit::Usage);
    }
    let cluster = Cluster::load(&cluster)?;
    let Some(node) = cluster.nodes.iter().find(|n| n.name == name) else {
        let names: Vec<_> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        eprintln!(
            "twopc: no node {name:?} in the cluster file (its nodes: {})",
            names.join(", ")
        );
        return Ok(Exit::Usage);
    };
    if node.role == Role::Coordinator {
        eprintln!(
            "twopc: {name} is a coordinator: only participants (the wallet, the order service) \
             keep a journal"
        );
        return Ok(Exit::Error);
    }
    let codec = cluster.codec(key, Format::Bincode);
    let patience = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
    let mut out = JournalJson::new(&name, from);
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let deadline = Instant::now() + patience.min(Duration::from_secs(86400));
        let want = left.min(JOURNAL_PAGE as u64) as u32;
        match ask_page(node.address, &codec, out.next, want, deadline).await? {
            PageAnswer::Page(page) => {
                out.add(node.role, &page);
                left -= page.entries.len() as u64;
                if page.entries.is_empty() || page.next() >= page.end {
                    break;
                }
            }
            PageAnswer::NoJournal => {
                eprintln!(
                    "twopc: {name} ({}) keeps no journal: is the cluster file the one the nodes \
                     run with?",
                    node.address
                );
                return Ok(Exit::Error);
            }
            PageAnswer::NoAnswer => {
                eprintln!(
                    "twopc: {name} ({}): no answer within {timeout}s (down, unreachable, or a \
                     different cluster key?)",
                    node.address
                );
                return Ok(Exit::NoAnswer);
            }
        }
    }
    if out.truncated && !json {
        eprintln!(
            "twopc: {name} no longer keeps positions {from} to {} (journal_retention): listing \
             from {}",
            out.first.saturating_sub(1),
            out.first
        );
    }
    if json {
        println!("{}", serde_json::to_string(&out).expect("serializes"));
    } else {
        for e in &out.entries {
            println!("{}", e.render());
        }
        println!(
            "{} entries of {name}; next {}; first kept {}",
            out.entries.len(),
            out.next,
            out.first
        );
    }
    Ok(Exit::Ok)
}
