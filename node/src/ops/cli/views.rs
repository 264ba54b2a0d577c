//! `twopc account` and `twopc sku`: one user's balance or one sku's stock,
//! with what prepared purchases hold of it, asked of the wallet or the
//! order service (the node of that role in the cluster file) over the same
//! authenticated admin datagrams `twopc status` uses (`crate::ops::views`).

use super::commands::Exit;
use crate::ops::views::{self, Answer, Kind};
use crate::runtime::cluster::Cluster;
use crate::runtime::error::Result;
use crate::runtime::wire::{check_name, ClusterKey, Format};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// What held and available mean (both commands' long help).
const MEANING: &str = "\n\n\
The balance (stock) is the committed level: what committed purchases left. `held` is what \
prepared purchases, not decided yet, have set aside of it (escrow: each is released when its \
purchase aborts, or taken when it commits); `available` is balance (stock) minus held: what a new \
purchase can still take. Each hold is listed with its transaction and request id (the first 200; \
`holds_total` counts them all).\n\n\
`credited` is what prepared top-ups (restocks), not decided yet, will add at their commit: counted \
in neither the balance (stock) nor available until then, and listed as `credits` like the holds. \
A user (sku) that exists only as a prepared credit is still unknown (exit 7; the message says what \
is pending): it exists from that commit on.\n\n\
A sku's `price` is what a purchase must name to commit (none: any price).\n\n\
The last operations are the key's last committed changes from the participant's journal, newest \
first: at most 10, looked for among the journal's newest 1,000 entries only (so that asking costs \
the same however long the journal is; a key with no change among them lists none: `twopc journal` \
reads further back). Each: journal position, operation (purchase, topup or restock, refund), id, \
signed amount, level after.";

/// `twopc account --help`'s description.
pub const ACCOUNT_ABOUT: &str = "One user's balance at the wallet: balance, held, available and \
the holds of prepared purchases, the last operations. Asking changes nothing";

/// `twopc sku --help`'s description.
pub const SKU_ABOUT: &str = "One sku's stock at the order service: stock, held, available, \
price, the holds of prepared purchases, the last operations. Asking changes nothing";

/// `twopc account --help`'s long description.
pub fn account_long() -> String {
    format!("{ACCOUNT_ABOUT}.{MEANING}")
}

/// `twopc sku --help`'s long description.
pub fn sku_long() -> String {
    format!("{SKU_ABOUT}.{MEANING}")
}

/// The exit status both commands share.
pub const EXIT_STATUS: &str = "Exit status: 0 found, 7 no such user (sku) at the wallet (order \
service), 4 no answer before --timeout, 2 bad usage or input (a --user or --sku longer than 64 \
bytes: nothing is sent), 1 any other error.";

/// `twopc account`.
#[derive(Args)]
pub struct AccountArgs {
    /// The cluster file (the wallet is the node whose role is `wallet`).
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    /// The user.
    #[arg(long)]
    user: String,
    /// Print JSON: {"user","balance","held","available","holds":[...],"holds_total",
    /// "credited","credits":[...],"credits_total","last":[...]}.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the wallet's answer.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    timeout: f64,
}

/// `twopc sku`.
#[derive(Args)]
pub struct SkuArgs {
    /// The cluster file (the order service is the node whose role is `order`).
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    /// The sku.
    #[arg(long)]
    sku: String,
    /// Print JSON: {"sku","stock","held","available","holds":[...],"holds_total",
    /// "credited","credits":[...],"credits_total","price","repricing":[...],
    /// "repricing_total","last":[...]}.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the order service's answer.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    timeout: f64,
}

/// Runs `twopc account`.
pub async fn account(args: AccountArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let AccountArgs {
        cluster,
        user,
        json,
        timeout,
    } = args;
    run(Kind::Account, cluster, &user, json, timeout, key).await
}

/// Runs `twopc sku`.
pub async fn sku(args: SkuArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let SkuArgs {
        cluster,
        sku,
        json,
        timeout,
    } = args;
    run(Kind::Sku, cluster, &sku, json, timeout, key).await
}

async fn run(
    kind: Kind,
    cluster: PathBuf,
    key_name: &str,
    json: bool,
    timeout: f64,
    key: Option<ClusterKey>,
) -> Result<Exit> {
    let deadline = Instant::now()
        + Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(86400));
    let flag = format!("--{}", kind.key_field());
    if let Err(msg) = check_name(&flag, key_name) {
        eprintln!("twopc: {msg}");
        return Ok(Exit::Usage);
    }
    let cluster = Cluster::load(&cluster)?;
    let node = cluster.with_role(kind.role());
    let codec = cluster.codec(key, Format::Bincode);
    match views::ask(node.address, &codec, key_name, deadline).await? {
        Answer::View(view) if view.level.is_some() => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&kind.json(&view)).expect("serializes")
                );
            } else {
                print!("{}", kind.render(&view));
            }
            Ok(Exit::Ok)
        }
        Answer::View(view) => {
            let node = format!("{} ({})", node.name, node.address);
            eprintln!("twopc: {}", kind.unknown(&view, &node));
            Ok(Exit::Unknown)
        }
        Answer::NotParticipant => {
            eprintln!(
                "twopc: {} ({}) answered that it is not a {}: is the cluster file the one the \
                 nodes run with?",
                node.name,
                node.address,
                kind.role()
            );
            Ok(Exit::Error)
        }
        Answer::NoAnswer => {
            eprintln!(
                "twopc: {} ({}): no answer within {timeout}s (down, unreachable, or a different \
                 cluster key?)",
                node.name, node.address
            );
            Ok(Exit::NoAnswer)
        }
    }
}
