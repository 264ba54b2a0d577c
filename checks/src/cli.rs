//! The command line of `twopc-check` (a module of the binary, not of the
//! library): the subcommands, the flags that describe the system to check,
//! and how they make a [`Config`] on top of a mutant's demonstration
//! configuration (a flag given explicitly wins).

use clap::{Args, Parser, Subcommand};
use twopc_checks::config::{Config, NetworkKind, Protocol, Reuse, Role};
use twopc_checks::mutants::Mutant;
use twopc_checks::Strategy;

pub(crate) const FURTHER: &str = "\
Go further:
  twopc-check check --clients 1 --max-crashes 1      # one purchase, any actor may crash
  twopc-check check --mutant presume-commit          # watch the checker catch a bug
  twopc-check liveness --clients 1 --max-crashes 1 --crashable coordinator --never-recover coordinator
  twopc-check explore                                # browse the state space at http://127.0.0.1:3000
  twopc-check simulate --seed 7 --clients 3 --purchases 2
  twopc-check replay traces/                         # check a run's traces (twopc node --trace)
  twopc-check --help";

/// Model-check twopc, the two-phase-commit purchase protocol.
///
/// With no arguments: exhaustively checks the default configuration (two
/// clients competing for one balance that covers only one purchase, over a
/// lossy, duplicating, reordering network) and its liveness.
#[derive(Parser)]
#[command(version, after_help = FURTHER)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Exhaustive breadth-first check of every property.
    ///
    /// Prints progress while it runs, then unique/total states, depth, time
    /// and each property's verdict. A violated property prints the path that
    /// breaks it, step by step, and the exit code is 1.
    #[command(
        after_help = "Examples:\n  twopc-check check\n  twopc-check check --clients 1 --purchases 2 --max-crashes 1\n  twopc-check check --mutant unsaved-decision"
    )]
    Check {
        #[command(flatten)]
        sys: SysArgs,
        /// Checker threads (unique state counts do not depend on it).
        #[arg(long, default_value_t = default_threads())]
        threads: usize,
        /// bfs (shortest counterexamples) or dfs (far less memory).
        #[arg(long, value_enum, default_value = "bfs")]
        strategy: Strategy,
    },
    /// Serve stateright's web explorer for a configuration (never returns).
    ///
    /// Open a counterexample printed by `check` at http://ADDR/#/steps/<path>.
    Explore {
        #[command(flatten)]
        sys: SysArgs,
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: String,
    },
    /// Random walks (seeded, reproducible) for configurations too large to exhaust.
    ///
    /// Each walk starts from the initial state and takes random steps that
    /// lead somewhere new, judging every property at every state, until the
    /// state budget is spent or every property is decided. A violated
    /// `always` prints the walk that broke it, step by step, with the action
    /// index path the explorer opens (walks record only the steps they took,
    /// so the path rebuilds exactly); the exit code is then 1. An unreached
    /// `sometimes` proves nothing and does not fail the run. The same seed
    /// takes the same walks on every machine.
    #[command(
        after_help = "Examples:\n  twopc-check simulate --seed 7 --clients 3 --purchases 2\n  twopc-check simulate --protocol replicated --clients 1 --elections 2 --states 3000000 --max-depth 80\n  twopc-check simulate --clients 1 --max-crashes 1 --states 2000000 --max-depth 80"
    )]
    Simulate {
        #[command(flatten)]
        sys: SysArgs,
        /// Seed of the random walks.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many states.
        #[arg(long, default_value_t = 200_000)]
        states: usize,
        /// Longest walk.
        #[arg(long, default_value_t = 200)]
        max_depth: usize,
    },
    /// Check every configuration of the CI matrix and print its figures.
    ///
    /// Exits 1 if a property fails or a unique state count differs from the
    /// pinned one (a protocol change that must be explained in review).
    Matrix {
        /// Checker threads.
        #[arg(long, default_value_t = default_threads())]
        threads: usize,
    },
    /// AG EF done: from every reachable state, can every request still get
    /// an outcome and every hold be released?
    ///
    /// Explores the whole graph and walks back from the done states. Prints a
    /// shortest path to a state from which done is unreachable, if any.
    #[command(
        after_help = "Examples:\n  twopc-check liveness\n  twopc-check liveness --clients 1 --max-crashes 1\n  # 2PC blocks while a coordinator that decided stays down:\n  twopc-check liveness --clients 1 --max-crashes 1 --crashable coordinator --never-recover coordinator\n  # ... the replicated coordinator does not (its first leader never recovers):\n  twopc-check liveness --clients 1 --max-crashes 1 --crashable coordinator --never-recover coordinator --elections 0 --compare"
    )]
    Liveness {
        #[command(flatten)]
        sys: SysArgs,
        /// Analyse the same configuration under both protocols (2pc and
        /// replicated) and print the two verdicts side by side. Exits 0 when
        /// the replicated protocol's holds.
        #[arg(long)]
        compare: bool,
    },
    /// Check traces recorded by running nodes (`twopc node --trace FILE`)
    /// against the model.
    ///
    /// Replays every node's steps, in one global order, through the same
    /// actors the checker explores: each start must be from the node's last
    /// durable save (or a later one), each step must emit the recorded
    /// commands and reach the recorded state, a timer that fires must be
    /// set, and a message must have been sent earlier, after the sender's
    /// saves it follows were durable. The safety properties are judged on
    /// the rebuilt global state. Exit 0 when accepted, 1 with the first
    /// step or property rejected, 2 when a file is not a trace.
    #[command(
        after_help = "Examples:\n  twopc-check replay traces/coordinator.jsonl traces/wallet.jsonl traces/order.jsonl\n  twopc-check replay traces/          # every *.jsonl in it\n  twopc-check replay --every 100 traces/"
    )]
    Replay {
        /// Trace files, or directories of `*.jsonl` trace files.
        #[arg(required = true, value_name = "TRACE")]
        traces: Vec<std::path::PathBuf>,
        /// Judge the properties after every N steps (and after the last);
        /// 0: only after the last.
        #[arg(long, default_value_t = 1, value_name = "N")]
        every: usize,
    },
}

pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The system to check.
#[derive(Args, Clone)]
pub(crate) struct SysArgs {
    /// Number of clients (all buy as the same user, the same sku).
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Purchases per client, one after another.
    #[arg(long, default_value_t = 1)]
    purchases: usize,
    /// The user's initial balance at the wallet.
    #[arg(long, default_value_t = 10)]
    balance: u64,
    /// The sku's initial stock at the order service.
    #[arg(long, default_value_t = 2)]
    stock: u64,
    /// Units per purchase.
    #[arg(long, default_value_t = 1)]
    qty: u64,
    /// Price per unit.
    #[arg(long, default_value_t = 6)]
    price: u64,
    /// ordered, unordered (no loss, no duplicates), or udp (loses, duplicates, reorders).
    #[arg(long, value_enum, default_value = "udp")]
    network: NetworkKind,
    /// How many actors may be down at the same time.
    #[arg(long, default_value_t = 0)]
    max_crashes: usize,
    /// Which roles may crash (comma-separated). With --protocol replicated,
    /// "coordinator" is the first replica (the first leader) and "backup"
    /// the others.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "coordinator,backup,wallet,order,client"
    )]
    crashable: Vec<Role>,
    /// Roles that never recover once crashed (shows 2PC blocking).
    #[arg(long, value_enum, value_delimiter = ',')]
    never_recover: Vec<Role>,
    /// Coordinator restarts allowed (each bumps its durable epoch). A budget
    /// on the environment: once spent, the coordinator no longer crashes, so
    /// every reachable state is still explored and judged.
    #[arg(long, default_value_t = 1)]
    max_restarts: u64,
    /// On ordered/unordered networks: most messages in flight to explore.
    #[arg(long, default_value_t = 10)]
    max_in_flight: usize,
    /// How many outcomes the coordinator remembers (it forgets the oldest).
    #[arg(long, default_value_t = 4)]
    retention: usize,
    /// Extra clients re-using the first request's id (comma-separated):
    /// same (a fresh incarnation retries it), different (other contents),
    /// lookup (only asks), new (makes the same purchase as a new one).
    #[arg(long, value_enum, value_delimiter = ',')]
    reuse: Vec<Reuse>,
    /// Requests the first client makes after its purchases, re-using its
    /// first id as a caller that forgot it (comma-separated, same kinds).
    #[arg(long, value_enum, value_delimiter = ',')]
    afterwards: Vec<Reuse>,
    /// Check a deliberately broken protocol variant instead.
    #[arg(long, value_enum)]
    mutant: Option<Mutant>,
    /// Every coordinator crash loses its disk: the coordinator restarts on
    /// an empty data directory (2pc; while it owes no commit) and must learn
    /// the epoch the participants granted. Needs --max-crashes and a
    /// crashable coordinator.
    #[arg(long)]
    lose_disk: bool,
    /// With --protocol replicated: the first replica crash loses that
    /// replica's disk (its data directory replaced by an empty one), and no
    /// replica crashes again. It restarts without storage and must catch up
    /// from every other replica before it votes. Needs --max-crashes and a
    /// crashable coordinator or backup.
    #[arg(long)]
    lose_replica_disk: bool,
    /// The first client, after its purchases, tops up a new user's wallet
    /// and then restocks the sku: one-participant transactions of credits
    /// (docs/shop.md), checked with conservation with flows.
    #[arg(long)]
    flows: bool,
    /// Prices: the order service prices the sku at --price, purchases carry
    /// the buyer's price, and the first client, after its purchases (and
    /// flows), restocks the sku at a new price, then buys at the old price
    /// (price_changed) and at the new one (docs/shop.md, "Prices").
    #[arg(long)]
    prices: bool,
    /// Refunds: the first client, after its purchases (and flows), makes
    /// the first N (at most 4) of: a refund of one unit of its first
    /// purchase, a refund of the whole purchase (exceeds it once the first
    /// committed), a retry of the first refund (same id), a refund of a
    /// purchase never made (docs/shop.md, "Refund").
    #[arg(long, default_value_t = 0)]
    refunds: usize,
    /// One durable write on the commit path (docs/one-write.md): the
    /// coordinator tells a decision before saving it (the participants'
    /// saved votes are the decision), fences late votes instead of
    /// aborting on a timer, and resolves from the participants at every
    /// start and every change of leader.
    #[arg(long)]
    one_write: bool,
    /// Clients keep their latest ticket for each next new purchase instead
    /// of asking for one first (one round trip fewer per purchase; see
    /// `Client::keep_ticket`).
    #[arg(long)]
    keep_ticket: bool,
    /// The commit protocol: 2pc (one coordinator; blocks while it is down)
    /// or replicated (the coordinator on --replicas replicas, Paxos ballots
    /// on its durable state; losing a minority of them blocks nothing).
    #[arg(long, value_enum, default_value = "2pc")]
    protocol: Protocol,
    /// With --protocol replicated: how many coordinator replicas (odd, 3 or more).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// With --protocol replicated: campaigns the environment may start while
    /// the leader is up (competing leaders); campaigns against a leader that
    /// is down are always possible.
    #[arg(long, default_value_t = 1)]
    elections: u64,
    /// With --protocol replicated: check the protocol before pre-vote (a
    /// follower whose timer fires campaigns at once). Its behaviours include
    /// every behaviour with pre-vote, so its safety is pre-vote's; the
    /// competing-leaders entry of the matrix is checked this way (with
    /// pre-vote its graph is too large for CI).
    #[arg(long)]
    no_pre_vote: bool,
}

impl SysArgs {
    /// The configuration: the mutant's demonstration configuration (or the
    /// default one), with every flag given on the command line applied on top.
    pub(crate) fn config(&self) -> Result<Config, String> {
        let given = |id: &str| GIVEN.with(|g| g.borrow().iter().any(|x| x == id));
        let base = self.mutant.map(Mutant::demo_config).unwrap_or_default();
        // A flag given on the command line wins over the base configuration.
        macro_rules! pick {
            ($field:ident) => {
                if given(stringify!($field)) {
                    self.$field
                } else {
                    base.$field
                }
            };
        }
        let cfg = Config {
            clients: pick!(clients),
            purchases: pick!(purchases),
            balance: pick!(balance),
            stock: pick!(stock),
            qty: pick!(qty),
            price: pick!(price),
            network: pick!(network),
            max_crashes: pick!(max_crashes),
            crashable: if given("crashable") {
                self.crashable.iter().copied().collect()
            } else {
                base.crashable.clone()
            },
            never_recover: self.never_recover.iter().copied().collect(),
            max_restarts: pick!(max_restarts),
            max_in_flight: pick!(max_in_flight),
            retention: pick!(retention),
            reuse: if given("reuse") {
                self.reuse.clone()
            } else {
                base.reuse.clone()
            },
            afterwards: if given("afterwards") {
                self.afterwards.clone()
            } else {
                base.afterwards.clone()
            },
            mutant: self.mutant,
            lose_disk: pick!(lose_disk),
            lose_replica_disk: pick!(lose_replica_disk),
            flows: pick!(flows),
            prices: pick!(prices),
            refunds: pick!(refunds),
            one_write: pick!(one_write),
            keep_ticket: pick!(keep_ticket),
            protocol: pick!(protocol),
            replicas: pick!(replicas),
            elections: pick!(elections),
            pre_vote: if given("no_pre_vote") {
                !self.no_pre_vote
            } else {
                base.pre_vote
            },
        };
        Self::validate(&cfg)?;
        Ok(cfg)
    }

    fn validate(cfg: &Config) -> Result<(), String> {
        if cfg.clients == 0 || cfg.purchases == 0 {
            return Err("--clients and --purchases must be at least 1".into());
        }
        if cfg.clients > 6 || cfg.purchases > 6 {
            return Err(
                "more than 6 clients or purchases cannot be exhausted; use `simulate`".into(),
            );
        }
        if cfg.retention == 0 {
            return Err("--retention must be at least 1".into());
        }
        if cfg.protocol == Protocol::Replicated
            && (cfg.replicas < 3 || cfg.replicas.is_multiple_of(2))
        {
            return Err("--replicas must be odd and at least 3 (2F+1 survives F down)".into());
        }
        if cfg.replicas > 5 {
            return Err("more than 5 replicas cannot be exhausted".into());
        }
        if cfg.reuse.len() > 3 || cfg.afterwards.len() > 3 {
            return Err("at most 3 --reuse clients and 3 --afterwards requests".into());
        }
        if cfg.refunds > twopc_checks::config::REFUNDS_MAX {
            return Err(format!(
                "at most {} --refunds",
                twopc_checks::config::REFUNDS_MAX
            ));
        }
        if cfg.qty.checked_mul(cfg.price).is_none() {
            return Err("--qty times --price overflows".into());
        }
        if cfg.lose_disk
            && (cfg.protocol != Protocol::TwoPc
                || cfg.network != NetworkKind::Udp
                || cfg.max_crashes == 0
                || !cfg.crashable.contains(&Role::Coordinator))
        {
            return Err(
                "--lose-disk needs --protocol 2pc, the udp network, --max-crashes at least 1 and a crashable coordinator".into(),
            );
        }
        if cfg.lose_replica_disk
            && (cfg.protocol != Protocol::Replicated
                || cfg.network != NetworkKind::Udp
                || cfg.max_crashes == 0
                || !(cfg.crashable.contains(&Role::Coordinator)
                    || cfg.crashable.contains(&Role::Backup))
                || !cfg.never_recover.is_empty())
        {
            return Err(
                "--lose-replica-disk needs --protocol replicated, the udp network, --max-crashes at least 1, a crashable coordinator or backup, and no --never-recover".into(),
            );
        }
        if !cfg.never_recover.is_subset(&cfg.crashable)
            || (!cfg.never_recover.is_empty() && cfg.max_crashes == 0)
        {
            return Err(
                "--never-recover roles must be crashable, with --max-crashes at least 1".into(),
            );
        }
        Ok(())
    }
}

thread_local! {
    /// The ids of the system flags given explicitly on the command line.
    pub(crate) static GIVEN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}
