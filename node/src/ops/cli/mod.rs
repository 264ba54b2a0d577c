//! The command line: what `twopc` accepts ([`Cli`]), and one function per
//! subcommand (`commands.rs`). `main.rs` only parses and calls [`main`].

mod commands;
mod decide;
mod inspect;
mod journal;
mod rollback;
mod shop;
mod views;

use crate::runtime::wire::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use commands::Exit;

#[derive(Parser)]
#[command(
    name = "twopc",
    version,
    about = "Two-phase commit for purchases: run a node, buy something, inspect a cluster",
    long_about = "Two-phase commit for purchases: a coordinator, a wallet (balances) and an order \
service (stock) run the model-checked twopc-model actors over UDP, with fsync'd storage.\n\n\
Start here:  twopc demo",
    after_help = "Examples:
  twopc demo                                   # a whole cluster on loopback, a few purchases
  twopc keygen > /etc/twopc/key                # a shared cluster key
  twopc node --cluster cluster.toml --name wallet --data-dir /var/lib/twopc
  twopc purchase --cluster cluster.toml --user alice --sku widget --qty 2 --price 10
  twopc topup --cluster cluster.toml --user carol --amount 500 --id PAY-7   # money in
  twopc restock --cluster cluster.toml --sku gadget --qty 40 --id DELIVERY-3   # stock in
  twopc refund --cluster cluster.toml --purchase ORDER-123 --qty 1 --id RMA-9   # money and stock back
  twopc status --cluster cluster.toml --json
  twopc account --cluster cluster.toml --user alice   # balance, held, available
  twopc sku --cluster cluster.toml --sku widget        # stock, held, available
  twopc journal --cluster cluster.toml --name wallet  # committed changes, with levels
  twopc decide --cluster cluster.toml --txn 3.1 --commit   # a transaction in doubt (see --help)
  twopc bench
  twopc bench --processes --clients 32 --purchases 200000 --tenths
  twopc bench --processes --clients 1 --accounts 1000,1000000
  twopc bench --mix purchase=80,topup=10,refund=5,restock=5

Environment:
  TWOPC_KEY        the cluster key itself (or use --key-file / TWOPC_KEY_FILE)
  RUST_LOG         log filter, e.g. RUST_LOG=twopc_node=debug

Exit status: 0 success, 1 error (on stderr), 2 bad usage or input (every command); `purchase`,
`topup`, `restock`, `refund`, `outcome`, `status`, `account`, `sku`, `journal`, `decide` and `inspect` add their own (see their --help). A command whose output pipe closes
(`twopc status | head -1`) stops quietly, as `cat` does."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log as JSON lines (to stderr) instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    /// File holding the shared cluster key (HMAC-SHA256 on every datagram):
    /// exactly 64 hexadecimal characters, as `twopc keygen` prints them.
    /// Never pass the key itself on the command line; TWOPC_KEY also works.
    #[arg(long, global = true, env = "TWOPC_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run one node of a cluster (until SIGINT or SIGTERM).
    #[command(after_help = "Examples:
  twopc node --cluster cluster.toml --name coordinator --data-dir /var/lib/twopc/coordinator
  twopc node --cluster cluster.toml --name coordinator --http 127.0.0.1:8080 --http-token-file /etc/twopc/http-token
    # also serve the HTTP API (POST /purchases, GET /purchases/ID, /accounts/USER, /skus/SKU,
    # /metrics): docs/node.md")]
    Node(Box<NodeArgs>),
    /// Make one purchase and wait for its outcome.
    #[command(
        after_help = "Exit status: 0 committed, 3 aborted, 4 no outcome before --timeout (with what \
the client can tell about why), 6 refused (the id was used for a different purchase), 7 unknown \
(--retry: the coordinator never saw the id, or its outcome expired), 2 bad usage or input (a \
missing or unknown flag, a --user or --sku longer than 64 bytes, an --id empty or longer than 64 \
bytes), 1 any other error.

A retry that can never buy twice: send the same --id again until an outcome comes (exit 0, 3, 6);
after a crash of the caller, `--retry` only asks and never starts the purchase.

Example:
  twopc purchase --cluster cluster.toml --user alice --sku widget --qty 2 --price 10 --id ORDER-123 --json"
    )]
    Purchase(PurchaseArgs),
    /// Credit money to a user's wallet (a new user is created by their
    /// first top-up), under an id: applied once, however often it is sent.
    #[command(after_help = format!("{}\n\nExamples:
  twopc topup --cluster cluster.toml --user carol --amount 500 --id PAY-7
  twopc topup --cluster cluster.toml --user carol --amount 500 --id PAY-7 --json   # a retry: same answer, applied once
  twopc outcome --cluster cluster.toml --id PAY-7", shop::EXIT_STATUS))]
    Topup(shop::TopupArgs),
    /// Add units to a sku's stock (a new sku is created by its first
    /// restock), under an id: applied once, however often it is sent.
    #[command(after_help = format!("{}\n\nExamples:
  twopc restock --cluster cluster.toml --sku gadget --qty 40 --id DELIVERY-3
  twopc restock --cluster cluster.toml --sku gadget --qty 40 --id DELIVERY-3 --json", shop::EXIT_STATUS))]
    Restock(shop::RestockArgs),
    /// Give back a committed purchase, in full or in part: money to its
    /// user, units to its sku, atomically, under an id: applied once,
    /// however often it is sent.
    #[command(after_help = format!("{}\n\n{}\n\nExamples:
  twopc refund --cluster cluster.toml --purchase ORDER-123 --qty 1 --id RMA-9
  twopc refund --cluster cluster.toml --purchase ORDER-123 --qty 1 --id RMA-9 --json   # a retry: same answer, applied once
  twopc refund --cluster cluster.toml --purchase ORDER-124 --id RMA-10   # the whole purchase", shop::REFUND_ABOUT, shop::EXIT_STATUS))]
    Refund(shop::RefundArgs),
    /// What became of the purchase with this id: committed, aborted (with
    /// the reason), refused, in progress, or unknown (never seen, or its
    /// outcome expired). Asking changes nothing.
    #[command(
        after_help = "Exit status: 0 committed, 3 aborted, 4 no answer before --timeout, 6 refused, \
7 unknown (never seen, or expired), 8 in progress, 2 bad usage or input, 1 any other error.

Example:
  twopc outcome --cluster cluster.toml --id ORDER-123 --json"
    )]
    Outcome(OutcomeArgs),
    /// Show each node's balances or stock, in-doubt transactions and counters.
    #[command(
        after_help = "Exit status: 0 if every asked node answered, 4 otherwise, 2 bad usage, 1 any \
other error. A node that got a commit for a transaction it has no record of (lost acknowledged \
data, or a bug) shows an ALARM line (`alarms` in --json).

Example:
  twopc status --cluster cluster.toml --name wallet"
    )]
    Status(StatusArgs),
    /// One user's balance at the wallet: balance, held, available, holds.
    #[command(
        about = views::ACCOUNT_ABOUT,
        long_about = views::account_long(),
        after_help = format!("{}\n\nExamples:
  twopc account --cluster cluster.toml --user alice
  twopc account --cluster cluster.toml --user alice --json", views::EXIT_STATUS)
    )]
    Account(views::AccountArgs),
    /// One sku's stock at the order service: stock, held, available, holds.
    #[command(
        about = views::SKU_ABOUT,
        long_about = views::sku_long(),
        after_help = format!("{}\n\nExamples:
  twopc sku --cluster cluster.toml --sku widget
  twopc sku --cluster cluster.toml --sku widget --json", views::EXIT_STATUS)
    )]
    Sku(views::SkuArgs),
    /// A participant's journal: its committed changes, in order, each with
    /// the level after it.
    #[command(
        about = journal::ABOUT,
        long_about = journal::long_about(),
        after_help = format!("{}\n\nExamples:
  twopc journal --cluster cluster.toml --name wallet
  twopc journal --cluster cluster.toml --name order --from 1200 --limit 50 --json", journal::EXIT_STATUS)
    )]
    Journal(journal::JournalArgs),
    /// Decide by hand a transaction in doubt: one that both participants
    /// hold after the coordinator lost its log, which nobody knows the
    /// decision of. A heuristic decision: read --help before using it.
    #[command(after_help = decide::AFTER_HELP)]
    Decide(decide::DecideArgs),
    /// Run a whole cluster on loopback and make a few purchases: start here.
    Demo,
    /// Measure purchases/s and latency on loopback with fsync on.
    Bench(BenchArgs),
    /// Print a fresh random cluster key: 64 hexadecimal characters (32
    /// bytes). A key file holds exactly that (a trailing newline is fine);
    /// anything else is refused.
    Keygen,
    /// Print the last durable state in a data directory (read-only; checks
    /// every checksum, so it also tells whether a node could start from it).
    #[command(
        after_help = "Exit status: 0 if the directory is clean (a node would start on it \
changing nothing); 1 if a node would refuse it (damage, or lost data that was synced: the log \
is shorter than the synced length recorded in DIR/synced), the error on stderr; 5 if a node \
would repair it at start (cut a torn tail beyond the synced length, delete what a crashed \
compaction left), each repair on stderr naming the file; 2 bad usage.

Example:
  twopc inspect --data-dir /var/lib/twopc/wallet"
    )]
    Inspect {
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Accept that a participant's data directory lost history its
    /// coordinator had heard (its ROLLED BACK alarm), so that it votes
    /// again on what the directory holds. Run with the node stopped.
    #[command(
        after_help = "Only when no newer copy of the directory exists: restoring the newest \
backup (or the lost files) loses nothing, this loses what the missing records held: balances and \
stock go back to what the directory holds (see docs/hostile.md). The position is the one the \
alarm names (what the coordinator heard).

Example:
  twopc accept-rollback --data-dir /var/lib/twopc/wallet --position 1234"
    )]
    AcceptRollback {
        /// The participant's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The position its coordinator heard, as the alarm names it.
        #[arg(long)]
        position: u64,
    },
}

#[derive(Args)]
pub struct NodeArgs {
    /// The cluster file (TOML), the same on every machine.
    #[arg(long, value_name = "FILE")]
    pub(super) cluster: PathBuf,
    /// Which node of the cluster file this process is.
    #[arg(long)]
    pub(super) name: String,
    /// Where this node keeps its durable state [default: ./twopc-data/NAME].
    #[arg(long, value_name = "DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// Body format of datagrams sent (any format is accepted).
    #[arg(long, value_enum, default_value = "bincode")]
    pub(super) wire: Format,
    /// Most datagrams sharing one fsync (group commit).
    #[arg(long, default_value_t = 64)]
    pub(super) batch_max: usize,
    /// Record every actor step to FILE as JSON lines (appended across
    /// restarts), for `twopc-check replay`. Off by default.
    #[arg(long, value_name = "FILE")]
    pub(super) trace: Option<PathBuf>,
    /// Serve the HTTP/JSON API (purchases, /metrics) on ADDR, e.g.
    /// 127.0.0.1:8080. Off by default. Needs --http-token-file; a
    /// non-loopback ADDR also needs --http-public. See docs/node.md.
    #[arg(long, value_name = "ADDR", requires = "http_token_file")]
    pub(super) http: Option<std::net::SocketAddr>,
    /// Let --http listen on a non-loopback address (put TLS in front: the
    /// API speaks plain HTTP).
    #[arg(long, requires = "http")]
    pub(super) http_public: bool,
    /// File holding the HTTP API's bearer token: exactly 64 hexadecimal
    /// characters (`twopc keygen > FILE`), like a cluster key file. Use a
    /// token of its own, not the cluster key.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub(super) http_token_file: Option<PathBuf>,
    /// Serve /metrics without the token (the purchase endpoints still need it).
    #[arg(long, requires = "http")]
    pub(super) http_metrics_public: bool,
    /// How long POST /purchases waits for an outcome before it answers 202
    /// (the purchase goes on; GET its Location, or POST again with the same key).
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub(super) http_wait_ms: u64,
    /// Most HTTP connections open at once. Beyond it a new connection takes
    /// the place of the oldest one waiting for a request (open over a
    /// second, nothing unread); if none can give its place, it gets 503
    /// `too_many_connections` and is closed. Must fit
    /// in the process's file descriptor limit (`ulimit -n`, LimitNOFILE)
    /// with 128 to spare, or the node refuses to start.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub(super) http_max_connections: usize,
    /// How long a request's headers may take to arrive (from the connection's
    /// start, or from the first byte of a later request) before the
    /// connection is closed.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub(super) http_header_timeout_ms: u64,
    /// How long a kept-alive HTTP connection may wait for its next request
    /// before it is closed.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    pub(super) http_idle_timeout_ms: u64,
    /// Testing: drop received messages of these kinds (comma-separated:
    /// purchase,outcome,lookup,status,prepare,vote,commit,abort,ack,query).
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    pub(super) fault_drop_in: Vec<String>,
    /// Testing: drop sent messages of these kinds.
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    pub(super) fault_drop_out: Vec<String>,
    /// Testing: drop each protocol message in or out with this probability.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub(super) fault_loss: f64,
    /// Testing: send each protocol datagram twice with this probability.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub(super) fault_duplicate: f64,
    /// Testing: hold each protocol datagram back with this probability, for
    /// a random time up to --fault-delay-max-ms.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub(super) fault_delay: f64,
    /// Testing: longest injected delay, in milliseconds.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    pub(super) fault_delay_max_ms: u64,
    /// Testing: let the next datagram overtake each protocol datagram with
    /// this probability.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub(super) fault_reorder: f64,
    /// Testing: seed of the fault injection's random choices.
    #[arg(long, value_name = "N")]
    pub(super) fault_seed: Option<u64>,
    /// Testing: append every datagram received and sent to FILE
    /// (`in|out ADDR HEX` per line), for replay tests.
    #[arg(long, value_name = "FILE")]
    pub(super) fault_capture: Option<PathBuf>,
    /// Testing: let this many storage fsyncs succeed, then fail the next one
    /// (the node must stop without sending what depended on it).
    #[arg(long, value_name = "N")]
    pub(super) fault_fsync_fail_after: Option<u64>,
    /// Testing: fail storage writes with "no space left on device" once this
    /// many bytes have been written to the log.
    #[arg(long, value_name = "BYTES")]
    pub(super) fault_disk_full_after: Option<u64>,
}

#[derive(Args)]
pub struct PurchaseArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    pub(super) cluster: PathBuf,
    /// The paying user (a wallet account).
    #[arg(long)]
    pub(super) user: String,
    /// The product.
    #[arg(long)]
    pub(super) sku: String,
    /// Units to buy.
    #[arg(long)]
    pub(super) qty: u64,
    /// Price per unit.
    #[arg(long)]
    pub(super) price: u64,
    /// The purchase's id, chosen by the caller (e.g. the shop's order
    /// number; 1 to 64 bytes). Sending the same id again, from this process
    /// or another, never buys twice: it gets the first purchase's outcome,
    /// or "refused: key reused" if the contents differ. Without --id a
    /// fresh random id is used (and printed).
    #[arg(long, value_name = "ID")]
    pub(super) id: Option<String>,
    /// Only learn what became of a purchase made before under --id: never
    /// start it. Answers its outcome, or "unknown" if the coordinator never
    /// saw the id or its outcome expired (see the cluster file's retention).
    #[arg(long, requires = "id")]
    pub(super) retry: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// Give up after this many seconds (the purchase may still complete:
    /// ask `twopc outcome --id ID`, or send it again with the same id). A
    /// bound on the whole command, its explanation of a timeout included;
    /// the printed seconds are the ones it took.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub(super) timeout: f64,
}

#[derive(Args)]
pub struct OutcomeArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    pub(super) cluster: PathBuf,
    /// The purchase's id.
    #[arg(long, value_name = "ID")]
    pub(super) id: String,
    /// Print JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// Seconds to wait for the coordinator's answer: a bound on the whole
    /// command, its explanation of a timeout included.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub(super) timeout: f64,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    pub(super) cluster: PathBuf,
    /// Only this node.
    #[arg(long)]
    pub(super) name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// Seconds to wait for the answers: every node is asked at once, and
    /// the whole command takes no longer.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub(super) timeout: f64,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Purchases per measured run.
    #[arg(long, default_value_t = 2000)]
    pub(super) purchases: usize,
    /// Concurrent clients per run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub(super) clients: Vec<usize>,
    /// Put the data directories under this directory (the disk to measure).
    #[arg(long, value_name = "DIR", default_value_os_t = std::env::temp_dir())]
    pub(super) dir: PathBuf,
    /// Run each node as its own `twopc node` process (default: tasks of
    /// the bench process; clients always run in the bench process).
    #[arg(long)]
    pub(super) processes: bool,
    /// Spread purchases uniformly over N users and N skus, each funded so
    /// every purchase commits (comma-separated: one run per count, with
    /// ratios to the first). Default: each client buys as its own user.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub(super) accounts: Vec<usize>,
    /// Make every purchase on one user and one sku (of the --accounts
    /// there are), funded enough for all of them.
    #[arg(long)]
    pub(super) hot: bool,
    /// Run with one durable write on the commit path (docs/one-write.md):
    /// the coordinator (or the replicas' leader) tells a purchase's commit
    /// before it saves it; the participants' saved votes are the decision.
    /// Applies to every protocol run.
    #[arg(long)]
    pub(super) one_write: bool,
    /// Also print purchases/s and latency per tenth of each run, and each
    /// node's resident memory (VmRSS) after the first tenth and at the end.
    #[arg(long)]
    pub(super) tenths: bool,
    /// Print JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// Which operations, in what proportions: KIND=WEIGHT,... over
    /// `purchase`, `topup` (1 credited to the user a purchase would
    /// charge), `restock` (1 unit to its sku), `refund` (of a purchase the
    /// same client made earlier, its 1 unit), e.g.
    /// `purchase=80,topup=10,refund=5,restock=5`; each run then reports what became
    /// of each kind. Default: purchases only.
    #[arg(long, value_name = "MIX", value_parser = crate::ops::bench::Mix::parse)]
    pub(super) mix: Option<crate::ops::bench::Mix>,
    /// Record every node's steps (see `twopc-check replay`) under
    /// DIR/run-N/NAME.jsonl, one directory per measured run (in-process
    /// nodes only).
    #[arg(long, value_name = "DIR", conflicts_with = "processes")]
    pub(super) trace_dir: Option<PathBuf>,
    /// Every node and client marks when each step of a purchase happens;
    /// each run then prints where a purchase's time goes, segment by
    /// segment, median and p90 (with --processes; docs/performance.md).
    #[arg(long, requires = "processes")]
    pub(super) timeline: bool,
    /// One coordinator (`2pc`), three coordinator replicas (`replicated`),
    /// or each in turn with their commit latency and throughput side by
    /// side (`both`).
    #[arg(long, value_enum, default_value = "2pc")]
    pub(super) protocol: BenchProtocol,
}

/// `twopc bench --protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum BenchProtocol {
    /// One coordinator.
    #[value(name = "2pc")]
    TwoPc,
    /// Three coordinator replicas.
    Replicated,
    /// Each in turn.
    Both,
}

/// Runs the parsed command line: logging, a tokio runtime, the subcommand.
pub fn main(cli: Cli) -> ExitCode {
    let default_log = match cli.command {
        Command::Node(_) => "info",
        _ => "warn",
    };
    if !matches!(cli.command, Command::Node(_)) {
        exit_quietly_on_broken_pipe();
    }
    commands::init_logging(cli.log_json, default_log);
    // A node runs on one thread. On the multi-threaded runtime its loop ran
    // on this thread (`block_on`'s) while a worker polled the sockets and
    // ran the replica links' tasks: every datagram and every link message
    // cost a wake-up of another thread and two thread switches. On one
    // thread the loop polls the sockets itself, and a node used 35-50% less
    // CPU per purchase (README, "Replicated coordinator"). Its fsync then
    // blocks that thread, which is what the loop waits for anyway
    // (`Shell::flush` yields to the links first).
    let mut builder = match cli.command {
        Command::Node(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twopc: cannot start the tokio runtime: {e}");
            return Exit::Error.into();
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("twopc: {e}");
            Exit::Error.into()
        }
    }
}

/// Lets a command that prints (`status`, `purchase`, `keygen`, `inspect`,
/// `bench`, `demo`) stop quietly when its reader goes away (`twopc status |
/// head -1`), as `cat` does, rather than panic in `println!` on EPIPE: Rust
/// programs ignore SIGPIPE unless told otherwise, and this restores the
/// default action. A node keeps ignoring it: a closed log pipe must not stop
/// a node (its sockets are UDP, which never raise SIGPIPE).
fn exit_quietly_on_broken_pipe() {
    // SAFETY: sets SIGPIPE's disposition back to the default, installing no
    // handler; called from `main` before the runtime starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
