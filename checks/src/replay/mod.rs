//! `twopc-check replay`: checks traces recorded by running nodes (see
//! `twopc_model::trace` and `docs/trace.md`) against the model.
//!
//! Every node's steps are replayed, in one global order, through the very
//! actor the node ran (`twopc_model::Node`, from the trace's own `node`
//! record), and each must be a step the model allows:
//!
//! - **start**: the storage it started from is its last durable save, or a
//!   save made after it (`kill -9` keeps writes the kernel accepted, synced
//!   or not); a restart from anything older lost acknowledged data;
//! - **commands and state**: the commands the actor emits now equal the
//!   recorded ones, and the digest of the state after the step equals the
//!   recorded digest;
//! - **timer**: a timer that fires was set and not cancelled (or fired) since;
//! - **message**: a message received from a traced node was sent by it to
//!   this node earlier (or is a duplicate of such a send), and **after every
//!   save the sender made up to that send was durable**: persist before send.
//!   One message is exempt, as in the runtime: a coordinator replica's
//!   `Accept` to another replica (see [`leaves_before_fsync`]).
//!
//! The global order is a merge of the nodes' traces by time (each node's own
//! order kept), ties taken in causal order; the message check above is the sanity
//! condition on that order.
//!
//! Then the safety properties of [`crate::properties`] are judged on the
//! global state rebuilt from the replayed actors: the same functions the
//! checker uses, on a [`SysState`] whose actor states are the replayed ones
//! (coordinator, wallet, order, clients at the checker's indices; a
//! replicated coordinator's replicas where `--protocol replicated` puts
//! them, the first at the coordinator's index and the others after the
//! clients), whose storages are the last saves, and whose history is built
//! from the sends by [`record_out`], as the checker builds it. With
//! replicas the judge's configuration is the replicated protocol with the
//! group's size, so `durable` reads the state every majority of replicas
//! would hand a new leader, as in the checker.
//!
//! Files: [`read`] (trace files), [`step`] (one node's steps), [`judge`]
//! (the properties), [`verdict`] (what is reported).

mod judge;
mod read;
mod step;
#[cfg(test)]
mod tests;
mod verdict;

pub use read::{read, NodeTrace};
pub use verdict::{report, Rejection, Why};

use judge::Judge;
use stateright::actor::Id;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use step::{nodes, reject, take_step};

use twopc_model::trace::{self, Event, Record, Step};
use twopc_model::{Msg, Node, State, Storage, Timer};

/// What an accepted replay covered.
#[derive(Clone, Debug, Default)]
pub struct Accepted {
    /// Nodes replayed, by name.
    pub nodes: Vec<String>,
    /// Steps replayed.
    pub steps: usize,
    /// Starts among them (a restart after the first).
    pub starts: usize,
    /// Messages received from a traced node.
    pub delivered: usize,
    /// Messages received from a node without a trace (a client).
    pub external: usize,
    /// Of the messages from traced nodes, replicas' `Accept`s received
    /// before the sender's save was durable (the one message allowed to be).
    pub early_accepts: usize,
    /// Timers fired.
    pub timers: usize,
    /// Durable records.
    pub durables: usize,
    /// Global states the properties were judged on.
    pub judged: usize,
    /// The properties judged.
    pub properties: Vec<&'static str>,
    /// What was not checked, and why.
    pub notes: Vec<String>,
}

/// How a replay runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Judge the properties after every `every` steps (and after the last);
    /// 0 judges only the final state.
    pub every: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { every: 1 }
    }
}

/// One send, as the receiver's check needs it.
struct Sent {
    node: usize,
    run: usize,
    /// The sender's last save at or before the send (its step number).
    needs: Option<u64>,
    /// It may be received before that save is durable (a replica's
    /// `Accept`, see [`leaves_before_fsync`]).
    early: bool,
}

/// A node during the replay.
struct Replayed {
    name: String,
    actor: Node,
    id: Id,
    index: usize,
    records: Vec<(usize, Record)>,
    next: usize,
    run: usize,
    state: Option<State>,
    timers: BTreeSet<Timer>,
    /// The storage of the last durable save (`None`: none yet), with its step.
    durable: Option<(u64, Option<Storage>)>,
    /// Saves since the last durable one, with their steps, in this run.
    pending: Vec<(u64, Storage)>,
    /// The last save of this run (its step).
    last_save: Option<u64>,
    /// The last step taken in this run.
    seq: u64,
    /// Per run: the last step declared durable.
    durable_by_run: Vec<u64>,
    /// The last save, in the model's sense (what a crash restarts from).
    saved: Option<Storage>,
    started_once: bool,
}

/// Replays `traces` (one per node) and judges every step and the properties.
pub fn replay(traces: Vec<NodeTrace>, opts: &Options) -> Result<Accepted, Rejection> {
    let mut nodes = nodes(traces)?;
    let mut acc = Accepted {
        nodes: nodes.iter().map(|n| n.name.clone()).collect(),
        ..Accepted::default()
    };
    let by_id: HashMap<Id, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut judge = Judge::new(&nodes, &mut acc);
    let mut sent: HashMap<(Id, Id, Msg), Vec<Sent>> = HashMap::new();
    let mut since = 0;
    let mut last = None;
    while let Some(i) = pick(&nodes, &by_id, &sent) {
        last = Some(i);
        let (run, record) = {
            let n = &mut nodes[i];
            n.next += 1;
            n.records[n.next - 1].clone()
        };
        if run != nodes[i].run {
            // A new process: step numbers count from 1 again. Saves after
            // the last durable one stay candidates for its start (`kill -9`
            // keeps what the kernel accepted).
            let n = &mut nodes[i];
            n.run = run;
            n.seq = 0;
            n.last_save = None;
            n.durable_by_run.push(0);
        }
        match record {
            // This run's actor, as the process configured it.
            Record::Node { actor, .. } => nodes[i].actor = actor,
            Record::Durable { seq, .. } => {
                let n = &mut nodes[i];
                if seq > n.seq {
                    return Err(reject(n, seq, "durable", Why::DurableAhead(seq)));
                }
                *n.durable_by_run.last_mut().expect("a run") = seq;
                if let Some(pos) = n.pending.iter().rposition(|(s, _)| *s <= seq) {
                    let (s, storage) = n.pending[pos].clone();
                    n.durable = Some((s, Some(storage)));
                    n.pending.drain(..=pos);
                }
                acc.durables += 1;
                judge.durable(&nodes, i);
            }
            Record::Step(step) => {
                let sends = take_step(&mut nodes, i, &by_id, &sent, &step, &mut acc)?;
                let n = &nodes[i];
                for (dst, msg) in sends {
                    let early = leaves_before_fsync(&n.actor, dst, &msg);
                    sent.entry((n.id, dst, msg)).or_default().push(Sent {
                        node: i,
                        run: n.run,
                        needs: n.last_save,
                        early,
                    });
                }
                judge.after(&nodes, i, &step);
                acc.steps += 1;
                since += 1;
                if opts.every > 0 && since >= opts.every {
                    since = 0;
                    judge.judge(&nodes[i], step.seq, &mut acc)?;
                }
            }
        }
    }
    if let Some(last) = last {
        judge.judge(&nodes[last], nodes[last].seq, &mut acc)?;
    }
    Ok(acc)
}

/// The node whose next record comes first: by time, then step number. Among
/// records of the same time (a simulation's clock may not advance between
/// a send, its fsync and its delivery) one that can be taken now goes
/// first: a receive waits for its send and the sender's fsync.
fn pick(
    nodes: &[Replayed],
    by_id: &HashMap<Id, usize>,
    sent: &HashMap<(Id, Id, Msg), Vec<Sent>>,
) -> Option<usize> {
    let mut next: Vec<((u64, u64), usize)> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.records.get(n.next).map(|(_, r)| (key(r), i)))
        .collect();
    next.sort();
    let first = next.first()?;
    let now = first.0 .0;
    next.iter()
        .take_while(|(k, _)| k.0 == now)
        .find(|(_, i)| can_take(nodes, *i, by_id, sent))
        .or(Some(first))
        .map(|(_, i)| *i)
}

/// Whether node `i`'s next record, if a receive from a traced node, has a
/// matching send whose saves are durable.
fn can_take(
    nodes: &[Replayed],
    i: usize,
    by_id: &HashMap<Id, usize>,
    sent: &HashMap<(Id, Id, Msg), Vec<Sent>>,
) -> bool {
    let n = &nodes[i];
    let Some((
        _,
        Record::Step(Step {
            event: Event::Msg { src, msg },
            ..
        }),
    )) = n.records.get(n.next)
    else {
        return true;
    };
    let src = trace::id(*src);
    let Some(&from) = by_id.get(&src) else {
        return true;
    };
    sent.get(&(src, n.id, msg.clone()))
        .is_some_and(|v| v.iter().any(|s| durable(&nodes[from], s)))
}

/// Whether `msg`, sent by `sender` to `dst`, may leave before the saves
/// `sender` made up to that send are durable: a coordinator replica's
/// message to another replica that the model says may
/// ([`Msg::may_leave_before_sync`]: a leader's `Accept`, and why). Every
/// other message needs the sender's saves durable.
pub(super) fn leaves_before_fsync(sender: &Node, dst: Id, msg: &Msg) -> bool {
    match (sender, msg) {
        (Node::Replica(r), msg) => r.peers.contains(&dst) && msg.may_leave_before_sync(),
        _ => false,
    }
}

/// Whether send `s` may be received now: every save the sender made up to
/// it is durable, or it need not be.
fn durable(sender: &Replayed, s: &Sent) -> bool {
    s.early || saved(sender, s)
}

/// Whether every save the sender made up to send `s` is durable.
fn saved(sender: &Replayed, s: &Sent) -> bool {
    s.needs.is_none_or(|need| {
        sender
            .durable_by_run
            .get(s.run - 1)
            .is_some_and(|d| *d >= need)
    })
}

/// The merge key of a record: its time and step number (a `node` record
/// sorts with the step after it, a `durable` record after its step).
fn key(r: &Record) -> (u64, u64) {
    match r {
        Record::Node { .. } => (0, 0),
        Record::Step(s) => (s.t, s.seq),
        Record::Durable { seq, t } => (*t, *seq),
    }
}

/// Replays the traces in `paths` (files, or directories of `*.jsonl`).
pub fn replay_paths(paths: &[PathBuf], opts: &Options) -> Result<Accepted, Rejection> {
    let mut traces = Vec::new();
    for p in paths {
        traces.extend(read(p).map_err(Rejection::Malformed)?);
    }
    replay(traces, opts)
}
