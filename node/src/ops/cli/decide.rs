//! `twopc decide`: an operator's heuristic decision on a transaction in
//! doubt (`crate::runtime::in_doubt`), asked of the running coordinator (every
//! replica of a replicated one: only the leader decides) over the same
//! authenticated admin datagrams `twopc status` uses.

use super::commands::Exit;
use crate::ops::client::socket_towards;
use crate::runtime::cluster::Cluster;
use crate::runtime::error::{Error, Result};
use crate::runtime::in_doubt::{parse_txn, DecideAnswer, Decision};
use crate::runtime::role::Role;
use crate::runtime::transport::Transport;
use crate::runtime::wire::{ClusterKey, Format, Payload};
use clap::{ArgGroup, Args};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;
use twopc_model::TxnId;

/// What `twopc decide --help` teaches.
pub const AFTER_HELP: &str = "\
What this is: a coordinator that lost its log (an empty or replaced data directory) learns from \
the participants what the lost log decided. A transaction that one participant committed is \
committed everywhere, one that a participant aborted or never prepared is aborted, both without \
you. A transaction that BOTH participants hold, with no decision anyone knows, stays IN DOUBT: \
its holds stay, its purchase is reported in progress, and nothing is presumed, because the lost \
log may have decided either way and told the buyer so. `twopc status` lists it (ALARM, `in \
doubt`), /metrics counts it (twopc_coordinator_in_doubt).

This command decides it by hand: a HEURISTIC decision, as XA's heuristic commit and rollback. \
You may pick the side the lost log did not pick: the buyer may have been told \"committed\" and \
you abort, or told nothing and you commit. Each decision is logged at WARN, appended to \
DIR/heuristic.log in the coordinator's data directory (the leader's, for a replicated one), and \
counted (twopc_heuristic_decisions_total{decision=...}).

Before deciding, look:
  twopc status --cluster cluster.toml                  # the coordinator's `in doubt` line
  twopc status --cluster cluster.toml --name wallet    # the holds: txn, amount, account
  twopc status --cluster cluster.toml --name order
  twopc outcome --cluster cluster.toml --id ID         # says `in progress` while in doubt
and find out what the buyer was told (the shop's own records, the caller's logs).

Do NOT use it:
  - when the transaction is not listed `in doubt` by the coordinator: a hold the coordinator does \
not list is still being decided or delivered, and is resolved without you;
  - while the old coordinator's data directory may still come back (a disk being repaired, a \
backup being restored): its log knows the answer; restore it instead;
  - to release a hold quickly: abort only what you know was never told committed.

Exit status: 0 decided (durably, and on its way to both participants), 7 not in doubt there \
(nothing changed; the transactions in doubt are listed), 4 no decision taken before --timeout \
(no answer, only followers answered, the coordinator is still learning, or a leader lost its \
leadership before the decision was chosen: look with `twopc status`), 2 bad usage or input (a \
malformed --txn, both or neither of --commit and --abort, a --name that is not a coordinator), \
1 any other error.

Examples:
  twopc decide --cluster cluster.toml --txn 3.1 --commit
  twopc decide --cluster cluster.toml --txn 3.2 --abort --json";

#[derive(Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["commit", "abort"])))]
pub struct DecideArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    cluster: PathBuf,
    /// The transaction in doubt, as `twopc status` lists it (EPOCH.N, e.g. 3.1).
    #[arg(long, value_name = "EPOCH.N", value_parser = parse_txn)]
    txn: TxnId,
    /// Commit it: apply it at both participants.
    #[arg(long)]
    commit: bool,
    /// Abort it: release both participants' holds.
    #[arg(long)]
    abort: bool,
    /// Ask only this coordinator (or replica) of the cluster file
    /// [default: every coordinator node; only the leader decides].
    #[arg(long)]
    name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the decision: a bound on the whole command.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    timeout: f64,
}

/// Runs `twopc decide`.
pub async fn run(args: DecideArgs, key: Option<ClusterKey>) -> Result<Exit> {
    let cluster = Cluster::load(&args.cluster)?;
    let targets: Vec<(String, SocketAddrV4)> = match &args.name {
        Some(name) => {
            let node = cluster.node(name)?;
            if node.role != Role::Coordinator {
                eprintln!(
                    "twopc: --name {name} is a {} node: transactions in doubt are decided at the \
                     coordinator (leave --name out to ask every coordinator node)",
                    node.role
                );
                return Ok(Exit::Usage);
            }
            vec![(node.name.clone(), node.address)]
        }
        None => cluster
            .coordinators()
            .iter()
            .map(|n| (n.name.clone(), n.address))
            .collect(),
    };
    let decision = match args.commit {
        true => Decision::Commit,
        false => Decision::Abort,
    };
    let codec = cluster.codec(key, Format::Bincode);
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.max(0.0));
    let answers = ask(&targets, &codec, args.txn, decision, deadline).await?;
    report(&args, decision, &targets, &answers)
}

/// Whether an answer ends the asking: a coordinator that knows decided or
/// said no.
fn settles(a: &DecideAnswer) -> bool {
    matches!(
        a,
        DecideAnswer::Decided { .. }
            | DecideAnswer::NotInDoubt { .. }
            | DecideAnswer::Unsure { .. }
    )
}

/// Asks every target at once, again every 300 ms (the same nonce: a node
/// answers a re-sent request again and decides nothing twice), until one
/// settles it, every target gave a final answer, or the deadline.
async fn ask(
    targets: &[(String, SocketAddrV4)],
    codec: &crate::runtime::wire::Codec,
    txn: TxnId,
    decision: Decision,
    deadline: Instant,
) -> Result<Vec<Option<DecideAnswer>>> {
    let mut answers: Vec<Option<DecideAnswer>> = vec![None; targets.len()];
    let Some((_, first)) = targets.first() else {
        return Ok(answers);
    };
    let transport = socket_towards(*first).await?;
    let nonces: Vec<u64> = targets.iter().map(|_| rand::random()).collect();
    let mut requests = Vec::new();
    for nonce in &nonces {
        let request = Payload::DecideRequest {
            nonce: *nonce,
            txn,
            decision,
        };
        requests.push(codec.encode(&request).map_err(Error::Encode)?);
    }
    let mut buf = vec![0u8; 65536];
    let last = |a: &Option<DecideAnswer>| {
        a.as_ref()
            .is_some_and(|a| !matches!(a, DecideAnswer::Learning))
    };
    let done = |answers: &[Option<DecideAnswer>]| {
        answers.iter().flatten().any(settles) || answers.iter().all(last)
    };
    while Instant::now() < deadline && !done(&answers) {
        for (i, (_, addr)) in targets.iter().enumerate() {
            if !last(&answers[i]) {
                let _ = transport.send(&requests[i], SocketAddr::V4(*addr)).await;
            }
        }
        let retry = (Instant::now() + Duration::from_millis(300)).min(deadline);
        while !done(&answers) {
            match tokio::time::timeout_at(retry, transport.recv(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    if let Ok(Payload::DecideReply { nonce, answer }) = codec.decode(&buf[..n]) {
                        if let Some(i) = nonces.iter().position(|&m| m == nonce) {
                            answers[i] = Some(answer);
                        }
                    }
                }
                Ok(Err(_)) => {
                    let pause = Instant::now() + Duration::from_millis(50);
                    tokio::time::sleep_until(pause.min(retry)).await;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    Ok(answers)
}

/// Prints what came back and picks the exit status.
fn report(
    args: &DecideArgs,
    decision: Decision,
    targets: &[(String, SocketAddrV4)],
    answers: &[Option<DecideAnswer>],
) -> Result<Exit> {
    let txn = args.txn;
    let settled = targets
        .iter()
        .zip(answers)
        .find(|(_, a)| a.as_ref().is_some_and(settles));
    let (exit, text) = match settled {
        Some(((name, _), Some(DecideAnswer::Decided { req }))) => (
            Exit::Ok,
            format!(
                "decided: transaction {txn} (request {req}) {} by hand at {name}, a heuristic \
                 decision (recorded in its heuristic.log); both participants {} it now",
                match decision {
                    Decision::Commit => "committed",
                    Decision::Abort => "aborted",
                },
                match decision {
                    Decision::Commit => "apply",
                    Decision::Abort => "release",
                }
            ),
        ),
        Some(((name, _), Some(DecideAnswer::NotInDoubt { in_doubt }))) => (
            Exit::Unknown,
            format!(
                "not decided: transaction {txn} is not in doubt at {name}; nothing changed. In \
                 doubt there: {}",
                match in_doubt.total {
                    0 => "none".to_string(),
                    _ => in_doubt.names(),
                }
            ),
        ),
        Some(((name, _), Some(DecideAnswer::Unsure { leader }))) => (
            Exit::NoAnswer,
            format!(
                "unsure: {name} decided but stopped leading before a majority accepted it \
                 (it now follows {}); the decision may or may not stand: look with `twopc \
                 status`, and decide again if {txn} is still in doubt",
                leader.as_deref().unwrap_or("no known leader")
            ),
        ),
        _ => (
            Exit::NoAnswer,
            not_decided(txn, targets, answers, args.timeout),
        ),
    };
    if args.json {
        let mut by_node = serde_json::Map::new();
        for ((name, _), a) in targets.iter().zip(answers) {
            by_node.insert(name.clone(), serde_json::to_value(a).expect("serializes"));
        }
        let json = serde_json::json!({
            "txn": txn.to_string(),
            "decision": decision.as_str(),
            "decided": exit == Exit::Ok,
            "message": text,
            "answers": by_node,
        });
        println!("{json}");
    } else if exit == Exit::Ok {
        println!("{text}");
    } else {
        println!("{text}");
        eprintln!("twopc: {txn} was not decided");
    }
    Ok(exit)
}

/// Why nothing settled it: the answers that came, one clause each.
fn not_decided(
    txn: TxnId,
    targets: &[(String, SocketAddrV4)],
    answers: &[Option<DecideAnswer>],
    timeout: f64,
) -> String {
    let clauses: Vec<String> = targets
        .iter()
        .zip(answers)
        .map(|((name, addr), a)| match a {
            None => format!("{name} ({addr}) did not answer (down, or another cluster key?)"),
            Some(DecideAnswer::Learning) => format!(
                "{name} is still asking the participants what its lost log decided (are both \
                 up?); ask again"
            ),
            Some(DecideAnswer::NotLeader { leader }) => format!(
                "{name} does not lead (it follows {})",
                leader.as_deref().unwrap_or("no known leader")
            ),
            Some(DecideAnswer::NotCoordinator) => format!("{name} is not a coordinator"),
            Some(other) => format!("{name}: {other:?}"),
        })
        .collect();
    format!(
        "not decided: no coordinator decided {txn} within {timeout}s: {}",
        clauses.join("; ")
    )
}
