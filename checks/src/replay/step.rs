//! One node's steps, replayed through its actor and compared with the trace.

use super::{durable, saved, Accepted, NodeTrace, Rejection, Replayed, Sent, Why};
use crate::config::{COORDINATOR, FIRST_CLIENT, ORDER, WALLET};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use twopc_model::trace::{self, Cmd, Event, Record, Step};
use twopc_model::{Msg, Node, Storage};

/// Splits the traces into nodes, each record tagged with its run.
pub(super) fn nodes(traces: Vec<NodeTrace>) -> Result<Vec<Replayed>, Rejection> {
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
                } else {
                    // The first run's actor; each later run's is taken up
                    // when its `node` record is replayed (a replica draws
                    // a new incarnation number at every process start).
                    header = Some((name.clone(), *id, actor.clone()));
                }
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
    place(&mut nodes)?;
    Ok(nodes)
}

/// Gives every node its actor index as the checker lays the actors out
/// ([`crate::config::Config::nodes`]): coordinator (or the first replica),
/// wallet, order, the clients, then the other replicas (`Replica::index`
/// 1, 2, ...), so that the properties read each actor where they expect it.
fn place(nodes: &mut [Replayed]) -> Result<(), Rejection> {
    let clients = nodes
        .iter()
        .filter(|n| matches!(n.actor, Node::Client(_)))
        .count();
    let replicas = replica_group(nodes)?;
    let mut next_client = FIRST_CLIENT;
    for n in nodes.iter_mut() {
        n.index = match &n.actor {
            Node::Coordinator(_) => COORDINATOR,
            Node::Participant(p) if p.resource == twopc_model::Resource::Wallet => WALLET,
            Node::Participant(_) => ORDER,
            Node::Client(_) => {
                next_client += 1;
                next_client - 1
            }
            Node::Replica(r) if r.index == 0 => COORDINATOR,
            Node::Replica(r) => FIRST_CLIENT + clients + r.index - 1,
        };
    }
    if let Some(peers) = replicas {
        if nodes
            .iter()
            .any(|n| matches!(n.actor, Node::Coordinator(_)))
        {
            return Err(Rejection::Malformed(format!(
                "traces of a coordinator and of {peers} coordinator replicas: two clusters"
            )));
        }
    }
    let mut taken: HashMap<usize, &str> = HashMap::new();
    for n in nodes.iter() {
        if let Some(other) = taken.insert(n.index, &n.name) {
            return Err(Rejection::Malformed(format!(
                "{other} and {} play the same part (actor index {})",
                n.name, n.index
            )));
        }
    }
    Ok(())
}

/// The size of the replica group the replicas' traces describe (`None`: no
/// replica), after checking they describe one group: the same peers, and
/// each replica at its own place in them (its `Id` is `peers[index]`).
fn replica_group(nodes: &[Replayed]) -> Result<Option<usize>, Rejection> {
    let mut peers: Option<&Vec<Id>> = None;
    for n in nodes {
        let Node::Replica(r) = &n.actor else { continue };
        if r.peers.get(r.index) != Some(&n.id) {
            return Err(Rejection::Malformed(format!(
                "{}: replica {} of {:?}, but its id is {:?}",
                n.name, r.index, r.peers, n.id
            )));
        }
        match peers {
            Some(p) if p != &r.peers => {
                return Err(Rejection::Malformed(format!(
                    "{}: replicas of two groups ({:?} and {:?})",
                    n.name, p, r.peers
                )))
            }
            _ => peers = Some(&r.peers),
        }
    }
    Ok(peers.map(Vec::len))
}

pub(super) fn reject(n: &Replayed, seq: u64, step: &str, why: Why) -> Rejection {
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
pub(super) fn take_step(
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
                    Some(v) => {
                        acc.delivered += 1;
                        if !v.iter().any(|s| saved(&nodes[from], s)) {
                            acc.early_accepts += 1;
                        }
                    }
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
