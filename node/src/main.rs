//! `twopc`: the command line. Parsing only; the work is in the library.

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use twopc_node::cluster::{Cluster, Role};
use twopc_node::core::Config;
use twopc_node::error::{Error, Result};
use twopc_node::faults::Faults;
use twopc_node::wire::MsgKind;
use twopc_node::wire::{ClusterKey, Codec, Format};
use twopc_node::{bench, client, demo, server};

// The model hands the runtime a fresh clone of an actor's state on every
// change and every save; a faster allocator pays off (see `twopc bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code of `twopc purchase` when the purchase aborted.
const EXIT_ABORTED: u8 = 3;
/// Exit code when no answer came before the timeout.
const EXIT_TIMEOUT: u8 = 4;

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
  twopc status --cluster cluster.toml --json
  twopc bench

Environment:
  TWOPC_KEY        the cluster key itself (or use --key-file / TWOPC_KEY_FILE)
  RUST_LOG         log filter, e.g. RUST_LOG=twopc_node=debug"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log as JSON lines (to stderr) instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    /// File holding the shared cluster key (HMAC-SHA256 on every datagram).
    /// Never pass the key itself on the command line; TWOPC_KEY also works.
    #[arg(long, global = true, env = "TWOPC_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a cluster (until SIGINT or SIGTERM).
    #[command(after_help = "Example:
  twopc node --cluster cluster.toml --name coordinator --data-dir /var/lib/twopc/coordinator")]
    Node(NodeArgs),
    /// Make one purchase and wait for its outcome.
    #[command(
        after_help = "Exit status: 0 committed, 3 aborted, 4 no outcome before --timeout, 1 error.

Example:
  twopc purchase --cluster cluster.toml --user alice --sku widget --qty 2 --price 10 --json"
    )]
    Purchase(PurchaseArgs),
    /// Show each node's balances or stock, in-doubt transactions and counters.
    #[command(
        after_help = "Exit status: 0 if every asked node answered, 4 otherwise.

Example:
  twopc status --cluster cluster.toml --name wallet"
    )]
    Status(StatusArgs),
    /// Run a whole cluster on loopback and make a few purchases: start here.
    Demo,
    /// Measure purchases/s and latency on loopback with fsync on.
    Bench(BenchArgs),
    /// Print a fresh random cluster key.
    Keygen,
    /// Print the last durable state in a data directory (read-only; checks
    /// every checksum, so it also tells whether a node could start from it).
    #[command(after_help = "Example:
  twopc inspect --data-dir /var/lib/twopc/wallet")]
    Inspect {
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct NodeArgs {
    /// The cluster file (TOML), the same on every machine.
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    /// Which node of the cluster file this process is.
    #[arg(long)]
    name: String,
    /// Where this node keeps its durable state [default: ./twopc-data/NAME].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Body format of datagrams sent (any format is accepted).
    #[arg(long, value_enum, default_value = "bincode")]
    wire: Format,
    /// Most datagrams sharing one fsync (group commit).
    #[arg(long, default_value_t = 64)]
    batch_max: usize,
    /// Testing: drop received messages of these kinds (comma-separated:
    /// purchase,outcome,prepare,vote,commit,abort,ack,query).
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    fault_drop_in: Vec<String>,
    /// Testing: drop sent messages of these kinds.
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    fault_drop_out: Vec<String>,
    /// Testing: drop each protocol message in or out with this probability.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    fault_loss: f64,
    /// Testing: send each protocol datagram twice with this probability.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    fault_duplicate: f64,
    /// Testing: hold each protocol datagram back with this probability, for
    /// a random time up to --fault-delay-max-ms.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    fault_delay: f64,
    /// Testing: longest injected delay, in milliseconds.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    fault_delay_max_ms: u64,
    /// Testing: let the next datagram overtake each protocol datagram with
    /// this probability.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    fault_reorder: f64,
    /// Testing: seed of the fault injection's random choices.
    #[arg(long, value_name = "N")]
    fault_seed: Option<u64>,
    /// Testing: append every datagram received and sent to FILE
    /// (`in|out ADDR HEX` per line), for replay tests.
    #[arg(long, value_name = "FILE")]
    fault_capture: Option<PathBuf>,
    /// Testing: let this many storage fsyncs succeed, then fail the next one
    /// (the node must stop without sending what depended on it).
    #[arg(long, value_name = "N")]
    fault_fsync_fail_after: Option<u64>,
    /// Testing: fail storage writes with "no space left on device" once this
    /// many bytes have been written to the log.
    #[arg(long, value_name = "BYTES")]
    fault_disk_full_after: Option<u64>,
}

#[derive(Args)]
struct PurchaseArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    /// The paying user (a wallet account).
    #[arg(long)]
    user: String,
    /// The product.
    #[arg(long)]
    sku: String,
    /// Units to buy.
    #[arg(long)]
    qty: u64,
    /// Price per unit.
    #[arg(long)]
    price: u64,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds (the purchase may still complete).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    timeout: f64,
}

#[derive(Args)]
struct StatusArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    /// Only this node.
    #[arg(long)]
    name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each node.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    timeout: f64,
}

#[derive(Args)]
struct BenchArgs {
    /// Purchases per measured run.
    #[arg(long, default_value_t = 2000)]
    purchases: usize,
    /// Concurrent clients per run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    clients: Vec<usize>,
    /// Put the data directories under this directory (the disk to measure).
    #[arg(long, value_name = "DIR", default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Run each node as its own `twopc node` process (default: tasks of
    /// the bench process; clients always run in the bench process).
    #[arg(long)]
    processes: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn init_logging(json: bool, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_key(key_file: Option<&Path>) -> Result<Option<ClusterKey>> {
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?;
        return ClusterKey::new(&text)
            .map(Some)
            .map_err(|e| Error::Key(format!("{}: {e}", path.display())));
    }
    match std::env::var("TWOPC_KEY") {
        Ok(text) => ClusterKey::new(&text)
            .map(Some)
            .map_err(|e| Error::Key(format!("TWOPC_KEY: {e}"))),
        Err(_) => Ok(None),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}

async fn node(args: NodeArgs, key: Option<ClusterKey>) -> Result<ExitCode> {
    let kinds = |names: &[String]| -> Result<Vec<MsgKind>> {
        names
            .iter()
            .map(|k| k.parse().map_err(Error::Other))
            .collect()
    };
    let drop_in = kinds(&args.fault_drop_in)?;
    let drop_out = kinds(&args.fault_drop_out)?;
    for (flag, p) in [
        ("--fault-loss", args.fault_loss),
        ("--fault-duplicate", args.fault_duplicate),
        ("--fault-delay", args.fault_delay),
        ("--fault-reorder", args.fault_reorder),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Other(format!(
                "{flag} is a probability between 0 and 1, got {p}"
            )));
        }
    }
    let cluster = Cluster::load(&args.cluster)?;
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from("twopc-data").join(&args.name));
    let cfg = Config {
        name: args.name.clone(),
        codec: Codec::new(key, args.wire),
        faults: Faults {
            drop_in,
            drop_out,
            loss: args.fault_loss,
            duplicate: args.fault_duplicate,
            delay: args.fault_delay,
            delay_max: Duration::from_millis(args.fault_delay_max_ms),
            reorder: args.fault_reorder,
            seed: args.fault_seed,
            capture: args.fault_capture,
            fsync_fail_after: args.fault_fsync_fail_after,
            disk_full_after: args.fault_disk_full_after,
        },
        batch_max: args.batch_max,
    };
    server::run_node(&cluster, &args.name, &data_dir, cfg, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn purchase(args: PurchaseArgs, key: Option<ClusterKey>) -> Result<ExitCode> {
    let cluster = Cluster::load(&args.cluster)?;
    let coordinator = cluster.with_role(Role::Coordinator).address;
    let p = twopc_model::Purchase {
        user: args.user,
        sku: args.sku,
        qty: args.qty,
        price: args.price,
    };
    let started = std::time::Instant::now();
    let seen = client::run_client(
        coordinator,
        vec![p],
        Codec::new(key, Format::Bincode),
        Duration::from_secs_f64(args.timeout.max(0.0)),
        |_| {},
    )
    .await?;
    let outcome = seen.first();
    let report = client::PurchaseReport::of(outcome, started.elapsed().as_secs_f64());
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        println!("{}", report.render());
    }
    Ok(match report.outcome.as_str() {
        "committed" => ExitCode::SUCCESS,
        "aborted" => ExitCode::from(EXIT_ABORTED),
        _ => ExitCode::from(EXIT_TIMEOUT),
    })
}

async fn status(args: StatusArgs, key: Option<ClusterKey>) -> Result<ExitCode> {
    let cluster = Cluster::load(&args.cluster)?;
    let codec = Codec::new(key, Format::Bincode);
    let nodes: Vec<_> = match &args.name {
        Some(name) => vec![cluster.node(name)?.clone()],
        None => cluster.nodes.clone(),
    };
    let mut all = true;
    let mut views = serde_json::Map::new();
    for n in nodes {
        let view = client::status(n.address, &codec, Duration::from_secs_f64(args.timeout)).await?;
        match view {
            Some(v) => {
                if args.json {
                    views.insert(
                        n.name.clone(),
                        serde_json::to_value(&v).expect("serializes"),
                    );
                } else {
                    print!("{}", v.render());
                }
            }
            None => {
                all = false;
                if args.json {
                    views.insert(n.name.clone(), serde_json::Value::Null);
                } else {
                    println!(
                        "{} ({}): no answer within {}s (down, unreachable, or a different cluster key?)",
                        n.name, n.address, args.timeout
                    );
                }
            }
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Object(views));
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_TIMEOUT)
    })
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let key = || load_key(cli.key_file.as_deref());
    match cli.command {
        Command::Node(args) => node(args, key()?).await,
        Command::Purchase(args) => purchase(args, key()?).await,
        Command::Status(args) => status(args, key()?).await,
        Command::Demo => demo::run().await.map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => {
            let exe = if args.processes {
                Some(std::env::current_exe().map_err(|e| {
                    Error::Other(format!("cannot find this executable to start nodes: {e}"))
                })?)
            } else {
                None
            };
            bench::run(
                args.purchases,
                &args.clients,
                &args.dir,
                exe.as_deref(),
                args.json,
            )
            .await
            .map(|_| ExitCode::SUCCESS)
        }
        Command::Inspect { data_dir } => {
            match twopc_node::storage::peek(&data_dir)? {
                Some(state) => println!("{state:#?}"),
                None => println!("{}: no saved state", data_dir.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen => {
            println!("{}", hex::encode(rand::random::<[u8; 32]>()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Node(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_json, default_log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twopc: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("twopc: {e}");
            ExitCode::FAILURE
        }
    }
}
