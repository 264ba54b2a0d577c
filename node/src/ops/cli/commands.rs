//! One function per subcommand, and what they share: the cluster key,
//! logging, the shutdown signal, exit codes.

use super::{BenchProtocol, Cli, Command, NodeArgs, OutcomeArgs, PurchaseArgs, StatusArgs};
use crate::ops::client::{self, PurchaseOutcome};
use crate::ops::{bench, demo, http};
use crate::runtime::cluster::{Cluster, Protocol};
use crate::runtime::core::Config;
use crate::runtime::error::{Error, Result};
use crate::runtime::faults::Faults;
use crate::runtime::node::{self, Socket};
use crate::runtime::trace::FileTracer;
use crate::runtime::wire::{check_name, ClusterKey, Codec, Format, MsgKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How `twopc` exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; a purchase committed; every node asked answered.
    Ok,
    /// An error (printed on stderr).
    Error,
    /// Bad usage or input: an unknown flag, a missing argument (clap's
    /// convention), a user name or sku too long for a datagram.
    Usage,
    /// The purchase aborted.
    Aborted,
    /// No outcome (purchase) or not every answer (status) before the timeout.
    NoAnswer,
    /// `inspect`: a node would repair the data directory at start.
    Repair,
    /// The id was used for a different purchase (or is invalid): refused.
    Refused,
    /// The coordinator never saw the id, or its outcome expired.
    Unknown,
    /// `outcome`: an attempt is still deciding or being delivered.
    InProgress,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        match exit {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Error => ExitCode::FAILURE,
            Exit::Usage => ExitCode::from(2),
            Exit::Aborted => ExitCode::from(3),
            Exit::NoAnswer => ExitCode::from(4),
            Exit::Repair => ExitCode::from(5),
            Exit::Refused => ExitCode::from(6),
            Exit::Unknown => ExitCode::from(7),
            Exit::InProgress => ExitCode::from(8),
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default`).
pub(super) fn init_logging(json: bool, default: &str) {
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
        return ClusterKey::new(&text).map(Some).map_err(|e| {
            Error::Key(format!(
                "key file {}: {e}; make one with `twopc keygen > FILE`",
                path.display()
            ))
        });
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

async fn node(args: NodeArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let kinds = |flag: &'static str, names: &[String]| -> Result<Vec<MsgKind>> {
        names
            .iter()
            .map(|k| k.parse().map_err(|why| Error::BadFlag { flag, why }))
            .collect()
    };
    let drop_in = kinds("--fault-drop-in", &args.fault_drop_in)?;
    let drop_out = kinds("--fault-drop-out", &args.fault_drop_out)?;
    for (flag, p) in [
        ("--fault-loss", args.fault_loss),
        ("--fault-duplicate", args.fault_duplicate),
        ("--fault-delay", args.fault_delay),
        ("--fault-reorder", args.fault_reorder),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Probability { flag, got: p });
        }
    }
    let cluster = Cluster::load(&args.cluster)?;
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from("twopc-data").join(&args.name));
    let cfg = Config {
        name: args.name.clone(),
        codec: cluster.codec(key, args.wire),
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
            // Runtime mutants exist for the simulation only.
            mutant: None,
        },
        batch_max: args.batch_max,
    };
    // The HTTP API's settings are checked before the node starts.
    let http = match args.http {
        Some(addr) => {
            let token_file = args.http_token_file.as_deref().expect("clap requires it");
            let cfg = http::HttpConfig {
                addr,
                public: args.http_public,
                token: http::Token::load(token_file).map_err(Error::HttpToken)?,
                metrics_public: args.http_metrics_public,
                wait: Duration::from_millis(args.http_wait_ms),
                limits: http::server::Limits {
                    max_connections: args.http_max_connections,
                    header_timeout: Duration::from_millis(args.http_header_timeout_ms),
                    idle_timeout: Duration::from_millis(args.http_idle_timeout_ms),
                },
            };
            cfg.check().map_err(Error::HttpConfig)?;
            Some(cfg)
        }
        None => None,
    };
    let codec = cfg.codec.clone();
    let mut started = node::start(&cluster, &args.name, &data_dir, cfg, Socket::Bind).await?;
    let mut server = None;
    if let Some(http_cfg) = http {
        let listener = tokio::net::TcpListener::bind(http_cfg.addr)
            .await
            .map_err(|source| Error::HttpListen {
                addr: http_cfg.addr,
                source,
            })?;
        let (views, asks) = tokio::sync::mpsc::channel(16);
        let telemetry = std::sync::Arc::new(http::metrics::Telemetry::default());
        started = started.serve_views(asks, telemetry.runtime.clone());
        let state = http::AppState {
            views,
            telemetry: telemetry.clone(),
            purchases: Default::default(),
            coordinators: cluster.coordinator_addresses(),
            wallet: cluster
                .with_role(crate::runtime::role::Role::Wallet)
                .address,
            order: cluster.with_role(crate::runtime::role::Role::Order).address,
            nodes: std::sync::Arc::new(cluster.nodes.clone()),
            codec,
            wait: http_cfg.wait,
        };
        let router = http::router(state, http_cfg.token, http_cfg.metrics_public);
        let limits = http_cfg.limits;
        tracing::info!(
            node = args.name,
            http = %http_cfg.addr,
            metrics_public = http_cfg.metrics_public,
            max_connections = limits.max_connections,
            header_timeout_ms = limits.header_timeout.as_millis(),
            idle_timeout_ms = limits.idle_timeout.as_millis(),
            "HTTP API listening"
        );
        server = Some(tokio::spawn(http::serve(
            listener, router, limits, telemetry,
        )));
    }
    if let Some(path) = &args.trace {
        let tracer = FileTracer::open(path).map_err(|source| Error::TraceOpen {
            path: path.clone(),
            source,
        })?;
        started = started.trace(Box::new(tracer));
    }
    // `twopc bench --timeline` sets it for the nodes it starts.
    let me = cluster.node(&args.name)?.address;
    let timeline = crate::runtime::timeline::Timeline::from_env(&args.name, me);
    let flag = crate::runtime::timeline::ENV;
    if let Some(t) = timeline.map_err(|why| Error::BadFlag { flag, why })? {
        started = started.timeline(t);
    }
    let result = node::run(started, args.name, shutdown_signal()).await;
    if let Some(server) = server {
        server.abort();
    }
    result?;
    Ok(Exit::Ok)
}

/// The bound `--timeout SECONDS` sets on a whole command, from its start:
/// waiting for an outcome, finding out why none came, printing.
pub(super) struct Deadline {
    started: std::time::Instant,
    at: tokio::time::Instant,
}

impl Deadline {
    pub(super) fn after(seconds: f64) -> Deadline {
        let timeout = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX);
        let now = tokio::time::Instant::now();
        Deadline {
            started: std::time::Instant::now(),
            at: now
                .checked_add(timeout)
                .unwrap_or(now + Duration::from_secs(86400 * 365)),
        }
    }

    /// What is left of the bound.
    pub(super) fn left(&self) -> Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// When a command still waiting should start asking the coordinator
    /// whether it answers at all (for the hint of a timeout): halfway, and
    /// at most a second in (the ask is one round trip).
    fn probe_from(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        now + (self.left() / 2).min(Duration::from_secs(1))
    }
}

async fn purchase(args: PurchaseArgs, key: Option<ClusterKey>) -> Result<Exit> {
    for (what, name) in [("--user", &args.user), ("--sku", &args.sku)] {
        if let Err(msg) = check_name(what, name) {
            eprintln!("twopc: {msg}");
            return Ok(Exit::Usage);
        }
    }
    let p = twopc_model::Purchase {
        user: args.user,
        sku: args.sku,
        qty: args.qty,
        price: args.price,
    };
    let how = super::shop::Outgoing {
        cluster: &args.cluster,
        id: args.id.as_deref(),
        retry: args.retry,
        timeout: args.timeout,
        json: args.json,
    };
    super::shop::make(how, p.into(), key).await
}

/// Asks the coordinator whether it answers at all, beside a purchase or a
/// lookup, so that a timeout's hint is ready at the deadline.
pub(super) struct Probe {
    task: tokio::task::JoinHandle<Result<bool>>,
    authenticated: bool,
}

impl Probe {
    pub(super) fn start(
        coordinators: &[std::net::SocketAddrV4],
        codec: &Codec,
        deadline: &Deadline,
    ) -> Probe {
        Probe {
            task: tokio::spawn(client::probe(
                coordinators.to_vec(),
                codec.clone(),
                deadline.probe_from(),
                deadline.at,
            )),
            authenticated: codec.is_authenticated(),
        }
    }
}

/// Names the id, explains a timeout, prints the report (`purchase` and
/// `outcome` alike) with the seconds the command took, and gives its exit
/// status. Returns by the deadline (plus printing).
pub(super) async fn finish(
    mut report: client::PurchaseReport,
    req: &twopc_model::RequestId,
    coordinators: &[std::net::SocketAddrV4],
    probe: Probe,
    deadline: &Deadline,
    json: bool,
) -> Result<Exit> {
    report.req = Some(req.to_string());
    if report.outcome == PurchaseOutcome::Timeout {
        // The probe ends by the deadline; never wait past it for the hint.
        let answered = match tokio::time::timeout_at(deadline.at, probe.task).await {
            Ok(Ok(answered)) => answered?,
            Ok(Err(source)) => {
                let task = "status probe".to_string();
                return Err(Error::TaskFailed { task, source });
            }
            Err(_) => false,
        };
        report.hint = Some(client::timeout_hint(
            coordinators,
            answered,
            probe.authenticated,
        ));
    } else {
        probe.task.abort();
    }
    report.seconds = deadline.started.elapsed().as_secs_f64();
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        println!("{}", report.render());
    }
    Ok(exit_of(report.outcome))
}

/// The exit status of an outcome (`purchase` and `outcome` agree).
fn exit_of(outcome: PurchaseOutcome) -> Exit {
    match outcome {
        PurchaseOutcome::Committed => Exit::Ok,
        PurchaseOutcome::Aborted => Exit::Aborted,
        PurchaseOutcome::Refused => Exit::Refused,
        PurchaseOutcome::Unknown => Exit::Unknown,
        PurchaseOutcome::InProgress => Exit::InProgress,
        PurchaseOutcome::Timeout => Exit::NoAnswer,
    }
}

/// A caller's id, or `None` after saying why it is not one.
pub(super) fn request_id(id: &str) -> Option<twopc_model::RequestId> {
    let req = twopc_model::RequestId::new(id);
    if req.is_valid() {
        Some(req)
    } else {
        eprintln!(
            "twopc: --id must be 1 to {} bytes, this one is {} bytes",
            twopc_model::RequestId::MAX_LEN,
            id.len()
        );
        None
    }
}

async fn outcome(args: OutcomeArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let deadline = Deadline::after(args.timeout);
    let Some(req) = request_id(&args.id) else {
        return Ok(Exit::Usage);
    };
    let cluster = Cluster::load(&args.cluster)?;
    let coordinators = cluster.coordinator_addresses();
    let codec = cluster.codec(key, Format::Bincode);
    let probe = Probe::start(&coordinators, &codec, &deadline);
    let answer = client::lookup(&coordinators, &req, &codec, deadline.left()).await?;
    let mut report = match &answer {
        Some(client::Lookup::Decided(o)) => client::PurchaseReport::of(Some(o), 0.0),
        _ => client::PurchaseReport::of(None, 0.0),
    };
    report.outcome = match answer {
        Some(client::Lookup::Decided(_)) => report.outcome,
        Some(client::Lookup::InProgress) => PurchaseOutcome::InProgress,
        Some(client::Lookup::Unknown) => PurchaseOutcome::Unknown,
        None => PurchaseOutcome::Timeout,
    };
    finish(report, &req, &coordinators, probe, &deadline, args.json).await
}

async fn status(args: StatusArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let deadline = Deadline::after(args.timeout);
    let cluster = Cluster::load(&args.cluster)?;
    let codec = cluster.codec(key, Format::Bincode);
    let nodes: Vec<_> = match &args.name {
        Some(name) => vec![cluster.node(name)?.clone()],
        None => cluster.nodes.clone(),
    };
    let mut all = true;
    let mut views = serde_json::Map::new();
    let mut replicas = Vec::new();
    // Every node is asked at once: --timeout bounds the whole command.
    let addrs: Vec<_> = nodes.iter().map(|n| n.address).collect();
    let answers = client::status_all(&addrs, &codec, deadline.at, false).await?;
    let file: Vec<(String, String)> = (cluster.nodes.iter())
        .map(|n| (n.name.clone(), n.address.to_string()))
        .collect();
    for (n, view) in nodes.into_iter().zip(answers) {
        match view {
            Some(mut v) => {
                // Asked here, not by the node: it cannot know this file.
                let differs = crate::runtime::admin::file_disagreements(&v.peers, &file);
                v.alarms.extend(differs);
                if let Some(r) = &v.replica {
                    replicas.push((n.name.clone(), r.clone()));
                }
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
    } else if cluster.protocol == crate::runtime::cluster::Protocol::Replicated
        && args.name.is_none()
    {
        println!("{}", crate::runtime::admin::who_leads(&replicas));
    }
    Ok(if all { Exit::Ok } else { Exit::NoAnswer })
}

/// Runs one subcommand.
pub(super) async fn run(cli: Cli) -> Result<Exit> {
    let key = || load_key(cli.key_file.as_deref());
    match cli.command {
        Command::Node(args) => node(*args, key()?).await,
        Command::Purchase(args) => purchase(args, key()?).await,
        Command::Topup(args) => super::shop::topup(args, key()?).await,
        Command::Restock(args) => super::shop::restock(args, key()?).await,
        Command::Refund(args) => super::shop::refund(args, key()?).await,
        Command::Outcome(args) => outcome(args, key()?).await,
        Command::Status(args) => status(args, key()?).await,
        Command::Account(args) => super::views::account(args, key()?).await,
        Command::Sku(args) => super::views::sku(args, key()?).await,
        Command::Journal(args) => super::journal::journal(args, key()?).await,
        Command::Decide(args) => super::decide::run(args, key()?).await,
        Command::Demo => demo::run().await.map(|()| Exit::Ok),
        Command::Bench(args) => {
            let opts = bench::Options {
                purchases: args.purchases,
                clients: args.clients,
                accounts: args.accounts,
                hot: args.hot,
                tenths: args.tenths,
                dir: args.dir,
                processes: match args.processes {
                    true => Some(bench::this_executable()?),
                    false => None,
                },
                json: args.json,
                trace_dir: args.trace_dir,
                mix: args.mix.unwrap_or_default(),
                one_write: args.one_write,
                timeline: args.timeline,
                protocols: match args.protocol {
                    BenchProtocol::TwoPc => vec![Protocol::TwoPc],
                    BenchProtocol::Replicated => vec![Protocol::Replicated],
                    BenchProtocol::Both => vec![Protocol::TwoPc, Protocol::Replicated],
                },
            };
            bench::run(&opts).await.map(|_| Exit::Ok)
        }
        Command::Inspect { data_dir } => super::inspect::run(&data_dir),
        Command::AcceptRollback { data_dir, position } => {
            super::rollback::accept(&data_dir, position)
        }
        Command::Keygen => {
            println!("{}", ClusterKey::generate());
            Ok(Exit::Ok)
        }
    }
}
