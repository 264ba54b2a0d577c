//! The safety properties of [`crate::properties`], judged on the global state
//! rebuilt from the replayed nodes.

use super::{leaves_before_fsync, Accepted, Rejection, Replayed};
use crate::config::{Config, Protocol, ORDER, WALLET};
use crate::history::{record_out, ByParticipant, History};
use crate::mutants::Checked;
use crate::properties::{self, BOUNDED};
use crate::shared::Shared;
use crate::system::{SysState, TwopcModel};
use stateright::actor::{ActorModel, Envelope, Id, Network};
use stateright::{Expectation, Model};
use std::collections::HashMap;
use std::sync::Arc;
use twopc_model::trace::{self, Cmd, Event, Record, Step};
use twopc_model::{Change, Msg, Node, Storage, TxnId};

/// The global state the properties are judged on, kept up to date step by
/// step, and the model they are judged against.
pub(super) struct Judge {
    /// `None` when the traces lack a coordinator, wallet or order.
    model: Option<TwopcModel>,
    state: Option<SysState>,
    /// Runtime `Id`s as the checker's indices; others (clients without a
    /// trace) get indices past every actor.
    index: HashMap<Id, usize>,
    props: Vec<stateright::Property<TwopcModel>>,
    /// Sends that cannot have left yet: the runtime holds a datagram back
    /// until every save before it is durable, and a crash first means it
    /// never left. (node, run, the save it waits for, destination, message)
    held: Vec<Held>,
}

/// A send recorded in a step whose saves were not durable yet.
struct Held {
    node: usize,
    run: usize,
    needs: u64,
    dst: Id,
    msg: Shared<Msg>,
}

impl Judge {
    pub(super) fn new(nodes: &[Replayed], acc: &mut Accepted) -> Judge {
        let index: HashMap<Id, usize> = nodes.iter().map(|n| (n.id, n.index)).collect();
        let cfg = layout(nodes);
        // Every actor of the layout must be there: the properties read the
        // coordinator's state (with replicas, every majority's), both
        // participants' and every client's.
        let missing: Vec<&str> = (0..cfg.client_indices().start)
            .chain(cfg.replica_indices())
            .filter(|i| !nodes.iter().any(|n| n.index == *i))
            .map(|i| match i {
                WALLET => "the wallet",
                ORDER => "the order service",
                _ if cfg.protocol == Protocol::Replicated => "a coordinator replica",
                _ => "the coordinator",
            })
            .collect();
        if let Some(what) = missing.first() {
            acc.notes.push(format!(
                "properties not judged: the traces lack {what} (the global state is incomplete)"
            ));
            return Judge {
                model: None,
                state: None,
                index,
                props: Vec::new(),
                held: Vec::new(),
            };
        }
        let count = cfg.nodes().len();
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
        let mut m = cfg.into_model();
        m.inner = ActorModel::new(m.cfg.clone(), Shared::new(History::default()))
            .actors(actors.into_iter().map(|a| Checked {
                node: a.expect("every index is filled"),
                mutant: None,
                pre_vote: true,
            }))
            .init_network(Network::new_unordered_duplicating([]))
            .record_msg_out(record_out);
        let mut state = m.inner.init_states().remove(0);
        state.history = Shared::new(given(nodes));
        state.network = Network::new_unordered_duplicating([]);
        state.actor_storages = vec![None; count];
        // Every node as its trace begins: a node restarted on an existing
        // data directory is judged from that directory's state, not from a
        // fresh one, even before its first step is replayed.
        for n in nodes {
            if let Some(stored) = first_start(n) {
                let mut out = stateright::actor::Out::new();
                let began = stateright::actor::Actor::on_start(&n.actor, n.id, &stored, &mut out);
                state.actor_states[n.index] = Arc::new(Shared::new(began));
                state.actor_storages[n.index] = stored.map(Shared::new);
            }
        }
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
            held: Vec::new(),
        }
    }

    /// Node `i` declared its saves durable: what it held back leaves now
    /// (into the history the properties read); what an earlier run of it
    /// held back never left.
    pub(super) fn durable(&mut self, nodes: &[Replayed], i: usize) {
        let (Some(m), Some(state)) = (&self.model, &mut self.state) else {
            return;
        };
        let n = &nodes[i];
        let done = n.durable_by_run.last().copied().unwrap_or(0);
        let me = Id::from(n.index);
        let mut history = state.history.clone();
        self.held.retain(|h| {
            if h.node != i {
                return true;
            }
            if h.run == n.run && h.needs > done {
                return true;
            }
            if h.run == n.run {
                let env = Envelope {
                    src: me,
                    dst: h.dst,
                    msg: &h.msg,
                };
                if let Some(next) = record_out(&m.cfg, &history, env) {
                    history = next;
                }
            }
            false
        });
        state.history = history;
    }

    /// Brings the global state up to date after node `i` took `step`.
    pub(super) fn after(&mut self, nodes: &[Replayed], i: usize, step: &Step) {
        let Judge {
            model: Some(m),
            state: Some(state),
            index,
            held,
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
                // Held back until the saves before it are durable, except
                // a replica's `Accept` (see `leaves_before_fsync`).
                let early = leaves_before_fsync(&n.actor, trace::id(*dst), msg);
                let others = index.len();
                let dst = Id::from(*index.entry(trace::id(*dst)).or_insert(1000 + others));
                let msg = Shared::new(msg.clone());
                let durable = n.durable_by_run.last().copied().unwrap_or(0);
                if let Some(needs) = n.last_save.filter(|s| *s > durable && !early) {
                    held.push(Held {
                        node: i,
                        run: n.run,
                        needs,
                        dst,
                        msg,
                    });
                    continue;
                }
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
        if let Event::Start {
            storage: Some(stored),
        } = &step.event
        {
            // A hold found at a start is its participant's yes vote, even
            // one whose message never left: a save may reach the disk
            // without its fsync (the runtime may start from it, see
            // `step.rs`), and one write resolves a transaction every
            // participant holds as committed.
            if let Storage::Participant(d) = Storage::from(stored.clone()) {
                for txn in d.holds.keys().chain(d.credits.keys()) {
                    let yes = ByParticipant(me, *txn);
                    if !history.yes_votes.contains(&yes) {
                        let mut h = (*history).clone();
                        h.yes_votes.insert(yes);
                        history = Shared::new(h);
                    }
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
        if let Event::Msg {
            msg:
                Msg::PreparePriced {
                    txn,
                    change: Change::Hold(op),
                    price,
                    ..
                },
            ..
        } = &step.event
        {
            if let Some(last) = &last {
                // A shortage refusal of a hold at the right price is judged
                // as one of a plain `Prepare` (as the checker does).
                let at_price = usize::from(me) == ORDER
                    && crate::system::part(last, ORDER)
                        .data
                        .price_holds(&op.key, *price);
                if at_price {
                    m.judge_refusal(last, (me, *txn, &op.key), state);
                }
                m.judge_price(last, (me, *txn, &op.key, *price), state);
            }
        }
    }

    pub(super) fn judge(
        &self,
        n: &Replayed,
        seq: u64,
        acc: &mut Accepted,
    ) -> Result<(), Rejection> {
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

/// The checker's configuration whose actor layout the traced nodes take
/// (see `step::place`): its clients are the traced ones; with replicas, the
/// replicated protocol with their group's size, so that `durable` judges
/// the state every majority of them would hand a new leader
/// (`durable_coordinator`), as the checker does.
fn layout(nodes: &[Replayed]) -> Config {
    let clients = nodes
        .iter()
        .filter(|n| matches!(n.actor, Node::Client(_)))
        .count();
    let replicas = nodes.iter().find_map(|n| match &n.actor {
        Node::Replica(r) => Some(r.peers.len()),
        _ => None,
    });
    // Prices are judged when the coordinator sent priced holds.
    let prices = nodes.iter().any(|n| match &n.actor {
        Node::Coordinator(c) => c.prices,
        Node::Replica(r) => r.coordinator.prices,
        _ => false,
    });
    // One write is judged when the coordinator ran it (docs/one-write.md).
    let one_write = nodes.iter().any(|n| match &n.actor {
        Node::Coordinator(c) => c.one_write,
        Node::Replica(r) => r.coordinator.one_write,
        _ => false,
    });
    Config {
        clients,
        prices,
        one_write,
        protocol: replicas.map_or(Protocol::TwoPc, |_| Protocol::Replicated),
        replicas: replicas.unwrap_or(Config::default().replicas),
        ..Config::default()
    }
}

/// What the nodes had promised before their traces began, as far as the
/// storage each trace first starts from shows it (a node restarted on an
/// existing data directory: its first start is taken as given, see
/// docs/trace.md). A hold is there only after its yes vote was due; a
/// commit a participant applied, or a commit decision the coordinator (or
/// a replica's accepted state) still owes, was decided on every
/// participant's yes. Without these, a run that resumes a cluster's life
/// would read as a commit nobody voted for.
fn given(nodes: &[Replayed]) -> History {
    let mut h = History::default();
    let both = |h: &mut History, txn: TxnId| {
        for p in [WALLET, ORDER] {
            h.yes_votes.insert(ByParticipant(Id::from(p), txn));
        }
    };
    for n in nodes {
        match first_start(n).flatten() {
            Some(Storage::Participant(d)) => {
                for (txn, hold) in &d.holds {
                    let me = ByParticipant(Id::from(n.index), *txn);
                    h.yes_votes.insert(me);
                    let change = Change::Hold(hold.op.clone());
                    h.prepared.insert(me, (hold.req.clone(), change));
                }
                for (txn, credit) in &d.credits {
                    let me = ByParticipant(Id::from(n.index), *txn);
                    h.yes_votes.insert(me);
                    let change = Change::Credit(credit.op.clone());
                    h.prepared.insert(me, (credit.req.clone(), change));
                }
                // (A finished record does not say whether it was a hold
                // or a credit: the node makes no credits yet, so it is
                // read as a hold. The journal step of issue 22 adds it.)
                for (txn, f) in d.finished.iter().filter(|(_, f)| f.committed) {
                    both(&mut h, *txn);
                    if let (Some(req), Some(op)) = (&f.req, &f.op) {
                        let me = ByParticipant(Id::from(n.index), *txn);
                        h.prepared
                            .insert(me, (req.clone(), Change::Hold(op.clone())));
                    }
                }
            }
            Some(Storage::Coordinator(c)) => c.commits.keys().for_each(|t| both(&mut h, *t)),
            Some(Storage::Replica(r)) => {
                if let Some(a) = &r.accepted {
                    a.storage.commits.keys().for_each(|t| both(&mut h, *t));
                }
            }
            Some(Storage::Client(_)) | None => {}
        }
    }
    h
}

/// The storage node `n`'s trace first starts from (`Some(None)`: a fresh
/// one), if its trace has a start.
fn first_start(n: &Replayed) -> Option<Option<Storage>> {
    n.records.iter().find_map(|(_, r)| match r {
        Record::Step(Step {
            event: Event::Start { storage },
            ..
        }) => Some(storage.clone().map(Storage::from)),
        _ => None,
    })
}
