//! `twopc topup`, `twopc restock` and `twopc refund`: money into a wallet,
//! units into a sku's stock, a committed purchase given back, each a
//! transaction of the protocol under a caller's id with the same retries,
//! lookups and exit codes as `twopc purchase` (docs/shop.md: a top-up or a
//! restock is a credit at one participant, a refund a credit at both). A
//! user or a sku that does not exist yet is created by the commit of its
//! first top-up or restock.

use super::commands::{finish, request_id, Deadline, Exit, Probe};
use crate::ops::client;
use crate::runtime::cluster::Cluster;
use crate::runtime::error::Result;
use crate::runtime::wire::{check_name, ClusterKey, Format};
use clap::Args;
use std::path::Path;
use std::path::PathBuf;
use twopc_model::Operation;

/// What `--id` and `--retry` mean (both commands' help, as `purchase`'s).
const ID_HELP: &str = "The operation's id, chosen by the caller (1 to 64 bytes; e.g. the \
payment's or the delivery's number). Sending the same id again, from this process or another, \
never applies it twice: it gets the first one's outcome, or \"refused: key reused\" if the \
contents differ. Ids are shared with purchases: one id names one operation. Without --id a \
fresh random id is used (and printed)";

/// The exit status `topup`, `restock` and `refund` share (those of
/// `purchase`).
pub const EXIT_STATUS: &str = "Exit status: 0 committed, 3 aborted (with the reason, e.g. \
overflow: the level would pass 2^64-1; a refund's unknown_purchase, not_committed or \
refund_exceeds_purchase), 4 no outcome before --timeout (with what the client can tell about \
why; it may still complete: send the same --id again, or `twopc outcome --id ID`), 6 refused \
(the id was used for a different operation), 7 unknown (--retry: the coordinator never saw the \
id, or its outcome expired), 2 bad usage or input (nothing is sent: a missing or unknown flag, an \
amount or quantity of 0 (a restock's --qty may be 0 with --price), a --price of 0, an amount, \
quantity or price negative, fractional or above 2^64-1, a name longer than 64 bytes, an --id or \
--purchase empty or longer than 64 bytes), 1 any other error.";

/// The flags `topup`, `restock` and `refund` share.
#[derive(Args)]
pub struct OpFlags {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    #[arg(long, value_name = "ID", help = ID_HELP)]
    id: Option<String>,
    /// Only learn what became of the operation made before under --id:
    /// never start it.
    #[arg(long, requires = "id")]
    retry: bool,
    /// Print the outcome as JSON (as `twopc purchase --json`).
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds (the operation may still complete).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    timeout: f64,
}

impl OpFlags {
    /// How to send the operation.
    fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            cluster: &self.cluster,
            id: self.id.as_deref(),
            retry: self.retry,
            timeout: self.timeout,
            json: self.json,
        }
    }
}

/// `twopc topup`.
#[derive(Args)]
pub struct TopupArgs {
    /// The user whose wallet is credited (created by its first top-up).
    #[arg(long)]
    user: String,
    /// How much money to add: a whole number from 1 to 2^64-1.
    #[arg(long, value_name = "N")]
    amount: u64,
    #[command(flatten)]
    flags: OpFlags,
}

/// `twopc restock`.
#[derive(Args)]
pub struct RestockArgs {
    /// The sku whose stock grows (created by its first restock).
    #[arg(long)]
    sku: String,
    /// How many units to add: a whole number from 1 to 2^64-1 (0 allowed
    /// with --price: a price change alone).
    #[arg(long, value_name = "N")]
    qty: u64,
    /// Also set the sku's price per unit, at commit: a whole number from 1
    /// to 2^64-1. From then on a purchase of the sku commits only at this
    /// price (another aborts `price_changed`).
    #[arg(long, value_name = "P")]
    price: Option<u64>,
    #[command(flatten)]
    flags: OpFlags,
}

/// `twopc refund`.
#[derive(Args)]
pub struct RefundArgs {
    /// The id of the purchase to give back (its --id, or its HTTP
    /// Idempotency-Key). It must have committed, and be among the
    /// coordinator's remembered outcomes (the last `retention`).
    #[arg(long, value_name = "ID")]
    purchase: String,
    /// How many of the purchase's units to give back: a whole number from 1
    /// to 2^64-1; without it, the purchase's whole quantity. The user gets
    /// N times the price the purchase paid, the sku N units. Several
    /// refunds of one purchase never give back more than it bought.
    #[arg(long, value_name = "N")]
    qty: Option<u64>,
    #[command(flatten)]
    flags: OpFlags,
}

/// What `twopc refund --help` says after the flags: what a refund does and
/// why one is refused.
pub const REFUND_ABOUT: &str = "A refund of purchase P is one transaction at both participants: the wallet credits qty*price back to P's user and the order service qty units back to P's sku, both or neither. The coordinator looks P up in its remembered outcomes and aborts the refund, with its reason, if P is unknown (never made, or expired past the coordinator's retention: unknown_purchase), did not commit (not_committed), or if this refund with the earlier ones of P would give back more units than P bought (refund_exceeds_purchase). The refund's own --id makes it apply once: sent again it gets the first answer.";

/// The refund `args` ask for, or why it is refused (exit 2, nothing sent).
fn refund_of(args: &RefundArgs) -> std::result::Result<Operation, String> {
    let purchase = twopc_model::RequestId::new(args.purchase.clone());
    if !purchase.is_valid() {
        return Err(format!(
            "--purchase must be 1 to {} bytes, this one is {} bytes",
            twopc_model::RequestId::MAX_LEN,
            args.purchase.len()
        ));
    }
    if args.qty == Some(0) {
        return Err(
            "--qty is 0; it must be at least 1 (or leave it out: the whole \
                    purchase)"
                .to_string(),
        );
    }
    Ok(Operation::Refund {
        purchase,
        qty: args.qty,
    })
}

/// `twopc refund`: gives back `--qty` units (all) of the committed purchase
/// `--purchase`: money to its user, stock to its sku.
pub async fn refund(args: RefundArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let op = match refund_of(&args) {
        Ok(op) => op,
        Err(msg) => {
            eprintln!("twopc: {msg}");
            return Ok(Exit::Usage);
        }
    };
    make(args.flags.outgoing(), op, key).await
}

/// Refuses a name too long or an amount of 0, saying why (exit 2, nothing
/// sent).
fn checked(name_flag: &str, name: &str, amount_flag: &str, amount: u64) -> bool {
    if let Err(msg) = check_name(name_flag, name) {
        eprintln!("twopc: {msg}");
        return false;
    }
    if name.is_empty() {
        eprintln!("twopc: {name_flag} is empty");
        return false;
    }
    if amount == 0 {
        eprintln!("twopc: {amount_flag} is 0; it must be at least 1");
        return false;
    }
    true
}

/// `twopc topup`: credits `--amount` to `--user`'s wallet.
pub async fn topup(args: TopupArgs, key: Option<ClusterKey>) -> Result<Exit> {
    if !checked("--user", &args.user, "--amount", args.amount) {
        return Ok(Exit::Usage);
    }
    let how = args.flags.outgoing();
    let op = Operation::TopUp {
        user: args.user.clone(),
        amount: args.amount,
    };
    make(how, op, key).await
}

/// `twopc restock`: credits `--qty` units to `--sku`'s stock (and sets its
/// price with `--price`).
pub async fn restock(args: RestockArgs, key: Option<ClusterKey>) -> Result<Exit> {
    // With a price, a quantity of 0 is a price change alone; the price
    // itself must be at least 1.
    let (amount_flag, amount) = match args.price {
        Some(price) => ("--price", price),
        None => ("--qty", args.qty),
    };
    if !checked("--sku", &args.sku, amount_flag, amount) {
        return Ok(Exit::Usage);
    }
    let how = args.flags.outgoing();
    let op = match args.price {
        Some(price) => Operation::PricedRestock {
            sku: args.sku.clone(),
            qty: args.qty,
            price,
        },
        None => Operation::Restock {
            sku: args.sku.clone(),
            qty: args.qty,
        },
    };
    make(how, op, key).await
}

/// How `purchase`, `topup`, `restock` and `refund` send their operation.
pub(super) struct Outgoing<'a> {
    /// The cluster file.
    pub cluster: &'a Path,
    /// The caller's id (`None`: a fresh random one).
    pub id: Option<&'a str>,
    /// Only ask what became of `id`: never start it.
    pub retry: bool,
    /// `--timeout`, seconds.
    pub timeout: f64,
    /// `--json`.
    pub json: bool,
}

/// Makes one operation under its id (the same ids, retries, tickets and
/// answers for a purchase, a top-up and a restock: the coordinator keeps
/// one outcome per id, whatever the operation), waits for its outcome and
/// prints it. Checked input only: an invalid id is said and nothing sent.
pub(super) async fn make(
    how: Outgoing<'_>,
    op: twopc_model::Operation,
    key: Option<ClusterKey>,
) -> Result<Exit> {
    let deadline = Deadline::after(how.timeout);
    let req = match how.id {
        Some(id) => match request_id(id) {
            Some(req) => req,
            None => return Ok(Exit::Usage),
        },
        None => client::random_request_id(),
    };
    let cluster = Cluster::load(how.cluster)?;
    let coordinators = cluster.coordinator_addresses();
    let codec = cluster.codec(key, Format::Bincode);
    let request = twopc_model::Request {
        req: req.clone(),
        op,
        mode: match how.retry {
            true => twopc_model::Mode::Retry,
            false => twopc_model::Mode::New,
        },
    };
    let probe = Probe::start(&coordinators, &codec, &deadline);
    let seen = client::run_requests(
        &coordinators,
        vec![request],
        codec.clone(),
        deadline.left(),
        |_| {},
    )
    .await?;
    let outcome = seen.first();
    let report = client::PurchaseReport::of(outcome, 0.0);
    finish(report, &req, &coordinators, probe, &deadline, how.json).await
}

#[cfg(test)]
mod tests {
    use super::super::Cli;
    use super::*;
    use clap::Parser;

    /// `twopc refund ARGS...`, parsed as the binary parses it.
    fn parse(args: &[&str]) -> std::result::Result<RefundArgs, clap::Error> {
        let argv = ["twopc", "refund", "--cluster", "c.toml"]
            .iter()
            .chain(args);
        match Cli::try_parse_from(argv)?.command {
            super::super::Command::Refund(a) => Ok(a),
            _ => unreachable!("parsed as refund"),
        }
    }

    #[test]
    fn a_refund_names_its_purchase_and_maybe_a_quantity() {
        let whole = parse(&["--purchase", "order-1", "--id", "r-1"]).unwrap();
        assert_eq!(
            refund_of(&whole),
            Ok(Operation::Refund {
                purchase: twopc_model::RequestId::new("order-1"),
                qty: None
            })
        );
        assert_eq!(whole.flags.id.as_deref(), Some("r-1"));
        let part = parse(&["--purchase", "order-1", "--qty", "2", "--json"]).unwrap();
        assert_eq!(
            refund_of(&part),
            Ok(Operation::Refund {
                purchase: twopc_model::RequestId::new("order-1"),
                qty: Some(2)
            })
        );
        assert!(part.flags.json);
    }

    #[test]
    fn bad_refund_input_is_refused_before_anything_is_sent() {
        // clap refuses what is not a u64 (exit 2, as every usage error).
        for qty in ["-1", "1.5", "18446744073709551616", "two"] {
            let e = parse(&["--purchase", "p", "--qty", qty]).err();
            assert!(e.is_some(), "--qty {qty} parsed");
            assert_eq!(e.unwrap().exit_code(), 2);
        }
        assert!(parse(&["--qty", "1"]).is_err(), "--purchase is required");
        let zero = parse(&["--purchase", "p", "--qty", "0"]).unwrap();
        assert!(refund_of(&zero).unwrap_err().contains("--qty is 0"));
        let long = "x".repeat(twopc_model::RequestId::MAX_LEN + 1);
        for id in ["", long.as_str()] {
            let a = parse(&["--purchase", id]).unwrap();
            let msg = refund_of(&a).unwrap_err();
            assert!(msg.starts_with("--purchase must be 1 to 64 bytes"), "{msg}");
        }
    }
}
