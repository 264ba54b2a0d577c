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
//!
//! The global order is a merge of the nodes' traces by time (each node's own
//! order kept), ties broken by step number; the message check above is the
//! sanity condition on that order.
//!
//! Then the safety properties of [`crate::properties`] are judged on the
//! global state rebuilt from the replayed actors: the same functions the
//! checker uses, on a [`SysState`] whose actor states are the replayed ones
//! (coordinator, wallet, order, clients at the checker's indices), whose
//! storages are the last saves, and whose history is built from the sends
//! by [`record_out`], as the checker builds it.

use crate::config::{Config, COORDINATOR, FIRST_CLIENT, ORDER, WALLET};
use crate::history::{record_out, History};
use crate::mutants::Checked;
use crate::properties::{self, BOUNDED};
use crate::shared::Shared;
use crate::system::{SysState, TwopcModel};
use stateright::actor::{Actor, ActorModel, Envelope, Id, Network, Out};
use stateright::{Expectation, Model};

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use twopc_model::trace::{self, Cmd, Event, Record, Step};
use twopc_model::{Msg, Node, State, Storage, Timer};

/// The records of one node, as one file holds them.
#[derive(Clone, Debug)]
pub struct NodeTrace {
    /// Where they came from (a file name), for messages.
    pub source: String,
    /// Its records, in the order written.
    pub records: Vec<Record>,
}

/// Reads a trace file (JSON lines), or every `*.jsonl` file of a directory.
pub fn read(path: &Path) -> Result<Vec<NodeTrace>, String> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot read directory {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        let mut all = Vec::new();
        for f in files {
            all.extend(read(&f)?);
        }
        return Ok(all);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read trace {}: {e}", path.display()))?;
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not a trace record: {e}", path.display(), i + 1))
        })
        .collect::<Result<Vec<Record>, String>>()?;
    Ok(vec![NodeTrace {
        source: path.display().to_string(),
        records,
    }])
}

/// Why a trace was rejected: the first step the model does not allow, or
/// the first property violated.
#[derive(Clone, Debug)]
pub enum Rejection {
    /// A file is not a trace of one node.
    Malformed(String),
    /// A step the model does not allow.
    Step {
        /// The node's name.
        node: String,
        /// Which run of the node (1 = the first `node` record of its trace).
        run: usize,
        /// The step's number within that run.
        seq: u64,
        /// What the step was.
        step: String,
        /// What differed.
        why: Box<Why>,
    },
    /// A safety property does not hold after a step.
    Property {
        /// The property.
        name: &'static str,
        /// The step after which it failed: node, run, seq.
        after: (String, usize, u64),
        /// The global state, as the checker's reports show one.
        state: String,
    },
}

/// What made a step one the model does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// A start from storage that is not the last durable save nor a later one.
    StartNotFromDurable {
        /// What it started from.
        started: String,
        /// The saves it could have started from.
        allowed: Vec<String>,
    },
    /// A step before the node's start.
    NotStarted,
    /// The commands differ (index of the first difference).
    Commands {
        /// The first index that differs.
        index: usize,
        /// What the trace says.
        recorded: Option<String>,
        /// What the actor emits.
        replayed: Option<String>,
    },
    /// The state after the step differs.
    State {
        /// What the trace says.
        recorded: String,
        /// What the actor reaches.
        replayed: String,
    },
    /// A timer fired that was not set, or was cancelled or fired since.
    TimerNotSet(String),
    /// A message from a traced node that it never sent to this node.
    NeverSent(String),
    /// A message received before the sender's save it follows was durable.
    SentBeforeDurable {
        /// The message.
        msg: String,
        /// The sender.
        from: String,
        /// The sender's step whose save was not durable.
        save_seq: u64,
    },
    /// A `durable` record for a step not taken.
    DurableAhead(u64),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::StartNotFromDurable { started, allowed } => write!(
                f,
                "started from storage {started}, but its last durable save (or a later save) is \
                 one of [{}]: acknowledged data was lost",
                allowed.join(", ")
            ),
            Why::NotStarted => write!(f, "a step before the node started"),
            Why::Commands {
                index,
                recorded,
                replayed,
            } => write!(
                f,
                "command {index} differs: recorded {}, the actor emits {}",
                recorded.as_deref().unwrap_or("nothing"),
                replayed.as_deref().unwrap_or("nothing")
            ),
            Why::State { recorded, replayed } => write!(
                f,
                "state after the step differs: recorded digest {recorded}, the actor reaches {replayed}"
            ),
            Why::TimerNotSet(t) => write!(
                f,
                "timer {t} fired, but it was not set (or was cancelled or fired since)"
            ),
            Why::NeverSent(m) => write!(f, "received {m}, which its sender never sent here"),
            Why::SentBeforeDurable {
                msg,
                from,
                save_seq,
            } => write!(
                f,
                "received {msg} before {from}'s save of step {save_seq} was durable: sent before fsync"
            ),
            Why::DurableAhead(seq) => write!(f, "durable record for step {seq}, not taken yet"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(m) => write!(f, "not a trace: {m}"),
            Rejection::Step {
                node,
                run,
                seq,
                step,
                why,
            } => write!(f, "{node} run {run} step {seq} ({step}): {why}"),
            Rejection::Property {
                name,
                after: (node, run, seq),
                state,
            } => write!(
                f,
                "property \"{name}\" fails after {node} run {run} step {seq}; the global state:\n{state}"
            ),
        }
    }
}

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
            Record::Node { .. } => {}
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
            }
            Record::Step(step) => {
                let sends = take_step(&mut nodes, i, &by_id, &sent, &step, &mut acc)?;
                let n = &nodes[i];
                for (dst, msg) in sends {
                    sent.entry((n.id, dst, msg)).or_default().push(Sent {
                        node: i,
                        run: n.run,
                        needs: n.last_save,
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

/// Whether every save the sender made up to send `s` is durable.
fn durable(sender: &Replayed, s: &Sent) -> bool {
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

/// Splits the traces into nodes, each record tagged with its run.
fn nodes(traces: Vec<NodeTrace>) -> Result<Vec<Replayed>, Rejection> {
    let mut nodes: Vec<Replayed> = Vec::new();
    for t in traces {
        let mut run = 0;
        let mut header: Option<(String, u64, Node)> = None;
        let mut records = Vec::new();
        for r in t.records {
            if let Record::Node {
                name, id, actor, ..
            } = &r
            {
                if let Some((n, i, _)) = &header {
                    if n != name || i != id {
                        return Err(Rejection::Malformed(format!(
                            "{}: records of two nodes ({n} and {name})",
                            t.source
                        )));
                    }
                }
                header = Some((name.clone(), *id, actor.clone()));
                run += 1;
            } else if run == 0 {
                return Err(Rejection::Malformed(format!(
                    "{}: a record before the first `node` record",
                    t.source
                )));
            }
            records.push((run, r));
        }
        let Some((name, id, actor)) = header else {
            continue; // an empty file: a node that never started tracing
        };
        if nodes.iter().any(|n| n.name == name) {
            return Err(Rejection::Malformed(format!(
                "{}: a second trace of node {name}",
                t.source
            )));
        }
        nodes.push(Replayed {
            name,
            actor,
            id: trace::id(id),
            index: 0,
            records,
            next: 0,
            run: 0,
            state: None,
            timers: BTreeSet::new(),
            durable: None,
            pending: Vec::new(),
            last_save: None,
            seq: 0,
            durable_by_run: Vec::new(),
            saved: None,
            started_once: false,
        });
    }
    // The checker's indices: coordinator, wallet, order, then clients.
    let mut clients = FIRST_CLIENT;
    for n in &mut nodes {
        n.index = match &n.actor {
            Node::Coordinator(_) => COORDINATOR,
            Node::Participant(p) if p.resource == twopc_model::Resource::Wallet => WALLET,
            Node::Participant(_) => ORDER,
            Node::Client(_) => {
                clients += 1;
                clients - 1
            }
        };
    }
    Ok(nodes)
}

fn reject(n: &Replayed, seq: u64, step: &str, why: Why) -> Rejection {
    Rejection::Step {
        node: n.name.clone(),
        run: n.run,
        seq,
        step: step.into(),
        why: Box::new(why),
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Start { storage } => format!(
            "start from {}",
            if storage.is_some() {
                "storage"
            } else {
                "nothing"
            }
        ),
        Event::Msg { src, msg } => format!("{msg:?} from {}", trace::id(*src)),
        Event::Timer { timer } => format!("timer {timer:?}"),
    }
}

/// Replays one step of node `i`; returns the sends it made.
fn take_step(
    nodes: &mut [Replayed],
    i: usize,
    by_id: &HashMap<Id, usize>,
    sent: &HashMap<(Id, Id, Msg), Vec<Sent>>,
    step: &Step,
    acc: &mut Accepted,
) -> Result<Vec<(Id, Msg)>, Rejection> {
    let what = describe(&step.event);
    let mut out = Out::new();
    // The causal check looks at the sender, so it runs before `n` is borrowed.
    if let Event::Msg { src, msg } = &step.event {
        let src = trace::id(*src);
        match by_id.get(&src) {
            None => acc.external += 1,
            Some(&from) => {
                let dst = nodes[i].id;
                let sends = sent.get(&(src, dst, msg.clone()));
                let ok = |s: &Sent| durable(&nodes[from], s);
                match sends {
                    None => {
                        return Err(reject(
                            &nodes[i],
                            step.seq,
                            &what,
                            Why::NeverSent(format!("{msg:?}")),
                        ))
                    }
                    Some(v) if !v.iter().any(ok) => {
                        let s = &v[0];
                        return Err(reject(
                            &nodes[i],
                            step.seq,
                            &what,
                            Why::SentBeforeDurable {
                                msg: format!("{msg:?}"),
                                from: nodes[s.node].name.clone(),
                                save_seq: s.needs.unwrap_or(0),
                            },
                        ));
                    }
                    Some(_) => acc.delivered += 1,
                }
            }
        }
    }
    let n = &mut nodes[i];
    n.seq = step.seq;
    match &step.event {
        Event::Start { storage } => {
            let storage: Option<Storage> = storage.clone().map(Into::into);
            if n.started_once {
                let mut allowed: Vec<Option<Storage>> = Vec::new();
                if let Some((_, d)) = &n.durable {
                    allowed.push(d.clone());
                } else {
                    allowed.push(None);
                }
                allowed.extend(n.pending.iter().map(|(_, s)| Some(s.clone())));
                if !allowed.contains(&storage) {
                    let show =
                        |s: &Option<Storage>| s.as_ref().map_or("none".into(), trace::digest);
                    return Err(reject(
                        n,
                        step.seq,
                        &what,
                        Why::StartNotFromDurable {
                            started: show(&storage),
                            allowed: allowed.iter().map(show).collect(),
                        },
                    ));
                }
                acc.starts += 1;
            } else {
                // The trace's first start: whatever was durable before it.
                n.durable = Some((0, storage.clone()));
                n.started_once = true;
            }
            // What survived the crash is durable from now on.
            n.durable = Some((0, storage.clone()));
            n.pending.clear();
            n.timers.clear();
            n.saved = storage.clone();
            n.state = Some(n.actor.on_start(n.id, &storage, &mut out));
        }
        Event::Msg { src, msg } => {
            let Some(state) = &n.state else {
                return Err(reject(n, step.seq, &what, Why::NotStarted));
            };
            let mut cow = Cow::Borrowed(state);
            n.actor
                .on_msg(n.id, &mut cow, trace::id(*src), msg.clone(), &mut out);
            n.state = Some(cow.into_owned());
        }
        Event::Timer { timer } => {
            let Some(state) = &n.state else {
                return Err(reject(n, step.seq, &what, Why::NotStarted));
            };
            if !n.timers.remove(timer) {
                return Err(reject(
                    n,
                    step.seq,
                    &what,
                    Why::TimerNotSet(format!("{timer:?}")),
                ));
            }
            acc.timers += 1;
            let mut cow = Cow::Borrowed(state);
            n.actor.on_timeout(n.id, &mut cow, timer, &mut out);
            n.state = Some(cow.into_owned());
        }
    }
    let replayed = trace::cmds(&out);
    if replayed != step.cmds {
        let index = replayed
            .iter()
            .zip(&step.cmds)
            .position(|(a, b)| a != b)
            .unwrap_or(replayed.len().min(step.cmds.len()));
        let show = |c: Option<&Cmd>| c.map(|c| format!("{c:?}"));
        return Err(reject(
            n,
            step.seq,
            &what,
            Why::Commands {
                index,
                recorded: show(step.cmds.get(index)),
                replayed: show(replayed.get(index)),
            },
        ));
    }
    let digest = trace::digest(n.state.as_ref().expect("set above"));
    if digest != step.state {
        return Err(reject(
            n,
            step.seq,
            &what,
            Why::State {
                recorded: step.state.clone(),
                replayed: digest,
            },
        ));
    }
    let mut sends = Vec::new();
    for c in out {
        match c {
            stateright::actor::Command::Send(dst, msg) => sends.push((dst, msg)),
            stateright::actor::Command::SetTimer(t, _) => {
                n.timers.insert(t);
            }
            stateright::actor::Command::CancelTimer(t) => {
                n.timers.remove(&t);
            }
            stateright::actor::Command::ChooseRandom(..) => {}
            stateright::actor::Command::Save(s) => {
                n.pending.push((step.seq, s.clone()));
                n.last_save = Some(step.seq);
                n.saved = Some(s);
            }
        }
    }
    Ok(sends)
}

/// The global state the properties are judged on, kept up to date step by
/// step, and the model they are judged against.
struct Judge {
    /// `None` when the traces lack a coordinator, wallet or order.
    model: Option<TwopcModel>,
    state: Option<SysState>,
    /// Runtime `Id`s as the checker's indices; others (clients without a
    /// trace) get indices past every actor.
    index: HashMap<Id, usize>,
    props: Vec<stateright::Property<TwopcModel>>,
}

impl Judge {
    fn new(nodes: &[Replayed], acc: &mut Accepted) -> Judge {
        let index: HashMap<Id, usize> = nodes.iter().map(|n| (n.id, n.index)).collect();
        let roles = [COORDINATOR, WALLET, ORDER];
        if !roles.iter().all(|r| nodes.iter().any(|n| n.index == *r)) {
            acc.notes.push(
                "properties not judged: the traces lack the coordinator, the wallet or the order service"
                    .into(),
            );
            return Judge {
                model: None,
                state: None,
                index,
                props: Vec::new(),
            };
        }
        let count = nodes.len();
        let mut actors: Vec<Option<Node>> = vec![None; count];
        let mut conserved = true;
        for n in nodes {
            let mut actor = n.actor.clone();
            // The runtime writes a participant's initial levels as its first
            // save; a trace that starts from a fresh storage gives them.
            if let Node::Participant(p) = &mut actor {
                match n.records.iter().find_map(|(_, r)| match r {
                    Record::Step(Step {
                        event: Event::Start { storage },
                        ..
                    }) => Some(storage.clone().map(Storage::from)),
                    _ => None,
                }) {
                    Some(Some(Storage::Participant(s)))
                        if s.holds.is_empty()
                            && s.finished.is_empty()
                            && s.floor == Default::default() =>
                    {
                        p.initial = s.levels.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    }
                    Some(None) | None => {}
                    Some(Some(_)) => conserved = false,
                }
            }
            actors[n.index] = Some(actor);
        }
        let model = Config {
            clients: count - FIRST_CLIENT,
            ..Config::default()
        };
        let mut m = model.into_model();
        m.inner = ActorModel::new(m.cfg.clone(), Shared::new(History::default()))
            .actors(actors.into_iter().map(|a| Checked {
                node: a.expect("every index is filled"),
                mutant: None,
            }))
            .init_network(Network::new_unordered_duplicating([]))
            .record_msg_out(record_out);
        let mut state = m.inner.init_states().remove(0);
        state.history = Shared::new(History::default());
        state.network = Network::new_unordered_duplicating([]);
        state.actor_storages = vec![None; count];
        let props: Vec<_> = properties::for_config(&m.cfg)
            .into_iter()
            .filter(|p| p.expectation == Expectation::Always && p.name != BOUNDED)
            .filter(|p| conserved || p.name != properties::CONSERVED)
            .collect();
        if !conserved {
            acc.notes.push(format!(
                "\"{}\" not judged: a participant's trace begins after it had committed (its initial levels are unknown)",
                properties::CONSERVED
            ));
        }
        acc.notes.push(format!(
            "\"{BOUNDED}\" not judged: its bounds are those of a checker configuration"
        ));
        acc.properties = props.iter().map(|p| p.name).collect();
        Judge {
            model: Some(m),
            state: Some(state),
            index,
            props,
        }
    }

    /// Brings the global state up to date after node `i` took `step`.
    fn after(&mut self, nodes: &[Replayed], i: usize, step: &Step) {
        let Judge {
            model: Some(m),
            state: Some(state),
            index,
            ..
        } = self
        else {
            return;
        };
        let n = &nodes[i];
        let me = Id::from(n.index);
        let prepare = matches!(
            &step.event,
            Event::Msg {
                msg: Msg::Prepare { .. },
                ..
            }
        );
        // Only a prepare's refusal is judged against the state before it.
        let last = prepare.then(|| state.clone());
        let mut history = state.history.clone();
        for c in &step.cmds {
            if let Cmd::Send { dst, msg } = c {
                let others = index.len();
                let dst = Id::from(*index.entry(trace::id(*dst)).or_insert(1000 + others));
                let msg = Shared::new(msg.clone());
                if let Some(h) = record_out(
                    &m.cfg,
                    &history,
                    Envelope {
                        src: me,
                        dst,
                        msg: &msg,
                    },
                ) {
                    history = h;
                }
            }
        }
        state.history = history;
        state.actor_states[n.index] = Arc::new(Shared::new(n.state.clone().expect("started")));
        state.actor_storages[n.index] = n.saved.clone().map(Shared::new);
        if let Event::Msg {
            msg: Msg::Prepare { txn, op, .. },
            ..
        } = &step.event
        {
            if let Some(last) = &last {
                m.judge_refusal(last, (me, *txn, &op.key), state);
            }
        }
    }

    fn judge(&self, n: &Replayed, seq: u64, acc: &mut Accepted) -> Result<(), Rejection> {
        let (Some(m), Some(state)) = (&self.model, &self.state) else {
            return Ok(());
        };
        acc.judged += 1;
        for p in &self.props {
            if !(p.condition)(m, state) {
                return Err(Rejection::Property {
                    name: p.name,
                    after: (n.name.clone(), n.run, seq),
                    state: crate::report::summarize(m, state),
                });
            }
        }
        Ok(())
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
