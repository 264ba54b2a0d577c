//! The replay on traces of a replicated coordinator written here, by a
//! small deterministic driver of the model's actors (the checker's smallest
//! replicated configuration: three replicas, wallet, order, one client).
//! The driver plays a runtime's shell: each step's saves become durable in
//! a `durable` record that travels in the same queue as the messages, so
//! what it sends before that record can arrive before the fsync. A correct
//! shell sends only a replica's `Accept` ahead of it (as the node does);
//! a broken one sends everything ahead.
//!
//! The real runtime's replica traces are replayed by the replicated chaos
//! test (`node/tests/chaos_replicated.rs`, its run in
//! `node/tests/common/chaos.rs`), tampered with there too.

use super::{replay, Accepted, NodeTrace, Options, Rejection, Why};
use crate::config::{Config, Protocol};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::VecDeque;
use twopc_model::trace::{self, Event, Record, Step, StorageJson};
use twopc_model::{Msg, Node, State, Storage};

/// What the driver's shell sends before a step's saves are durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shell {
    /// A replica's `Accept` only: the runtime's one exception.
    AcceptEarly,
    /// Everything (persist before send broken).
    SendsEarly,
}

#[allow(clippy::large_enum_variant)] // A test's script: size is no matter.
enum Item {
    Msg { src: Id, dst: Id, msg: Msg },
    Durable { node: usize, seq: u64 },
}

struct Driver {
    actors: Vec<Node>,
    states: Vec<State>,
    seqs: Vec<u64>,
    records: Vec<Vec<Record>>,
    queue: VecDeque<Item>,
    t: u64,
    shell: Shell,
}

impl Driver {
    fn new(shell: Shell) -> Driver {
        Driver::starting_from(shell, None)
    }

    /// A driver whose nodes start from `storages` (one per node; `None`:
    /// fresh ones), as nodes restarted on existing data directories.
    fn starting_from(shell: Shell, storages: Option<Vec<Option<Storage>>>) -> Driver {
        let cfg = Config {
            protocol: Protocol::Replicated,
            clients: 1,
            ..Config::default()
        };
        let actors = cfg.nodes();
        let n = actors.len();
        let mut d = Driver {
            records: (0..n)
                .map(|i| {
                    vec![Record::Node {
                        name: format!("node{i}"),
                        role: "test".into(),
                        id: i as u64,
                        actor: actors[i].clone(),
                    }]
                })
                .collect(),
            states: Vec::new(),
            seqs: vec![0; n],
            actors,
            queue: VecDeque::new(),
            t: 0,
            shell,
        };
        let storages = storages.unwrap_or_else(|| vec![None; n]);
        // The clients start once the others have settled (the leader has
        // learned the participants' epoch: no timer fires here, and a
        // purchase it ignored while asking would never be re-sent).
        let clients: Vec<usize> = (0..n)
            .filter(|i| matches!(d.actors[*i], Node::Client(_)))
            .collect();
        let mut later = Vec::new();
        for (i, storage) in storages.into_iter().enumerate() {
            let mut out = Out::new();
            let state = d.actors[i].on_start(Id::from(i), &storage, &mut out);
            d.states.push(state);
            let storage = storage.as_ref().map(StorageJson::from);
            if clients.contains(&i) {
                later.push((i, storage, out));
            } else {
                d.record(i, Event::Start { storage }, out);
            }
        }
        d.drain();
        for (i, storage, out) in later {
            d.record(i, Event::Start { storage }, out);
        }
        d
    }

    /// Records node `i`'s step and queues what it sent and its fsync.
    fn record(&mut self, i: usize, event: Event, out: Out<Node>) {
        self.seqs[i] += 1;
        self.t += 1;
        let seq = self.seqs[i];
        self.records[i].push(Record::Step(Step {
            seq,
            t: self.t,
            event,
            cmds: trace::cmds(&out),
            state: trace::digest(&self.states[i]),
        }));
        let saved = out.iter().any(|c| matches!(c, Command::Save(_)));
        let mut after = Vec::new();
        for c in out {
            if let Command::Send(dst, msg) = c {
                let early = self.shell == Shell::SendsEarly
                    || matches!(
                        (&self.actors[i], &msg),
                        (Node::Replica(_), Msg::Accept { .. })
                    );
                let item = Item::Msg {
                    src: Id::from(i),
                    dst,
                    msg,
                };
                if early {
                    self.queue.push_back(item);
                } else {
                    after.push(item);
                }
            }
        }
        if saved {
            self.queue.push_back(Item::Durable { node: i, seq });
        }
        self.queue.extend(after);
    }

    /// Delivers everything in order (no timer fires: none is needed).
    fn run(self) -> Vec<NodeTrace> {
        self.run_keeping().0
    }

    /// [`Driver::run`], also giving what each node last saved.
    fn run_keeping(mut self) -> (Vec<NodeTrace>, Vec<Option<Storage>>) {
        self.drain();
        let saved = self.states.iter().map(|s| Some(s.storage())).collect();
        let traces = self
            .records
            .into_iter()
            .enumerate()
            .map(|(i, records)| NodeTrace {
                source: format!("node{i}"),
                records,
            })
            .collect();
        (traces, saved)
    }

    /// Delivers everything queued, and what that sends, in order.
    fn drain(&mut self) {
        while let Some(item) = self.queue.pop_front() {
            match item {
                Item::Durable { node, seq } => {
                    self.t += 1;
                    self.records[node].push(Record::Durable { seq, t: self.t });
                }
                Item::Msg { src, dst, msg } => {
                    let i = usize::from(dst);
                    let mut out = Out::new();
                    let mut state = Cow::Borrowed(&self.states[i]);
                    self.actors[i].on_msg(dst, &mut state, src, msg.clone(), &mut out);
                    self.states[i] = state.into_owned();
                    let event = Event::Msg {
                        src: usize::from(src) as u64,
                        msg,
                    };
                    self.record(i, event, out);
                }
            }
        }
    }
}

fn accepted(traces: Vec<NodeTrace>) -> Accepted {
    replay(traces, &Options::default()).unwrap_or_else(|r| panic!("rejected: {r}"))
}

fn step_rejected(traces: Vec<NodeTrace>) -> (String, u64, Why) {
    match replay(traces, &Options::default()) {
        Err(Rejection::Step { node, seq, why, .. }) => (node, seq, *why),
        other => panic!("expected a rejected step, got {other:?}"),
    }
}

/// Node 0 leads the first term; 4 and 5 are the other replicas.
const LEADER: usize = 0;
const BACKUP: usize = 4;

#[test]
fn a_leaders_accept_before_its_fsync_is_accepted_and_the_properties_judged() {
    let a = accepted(Driver::new(Shell::AcceptEarly).run());
    assert!(a.early_accepts > 0, "{a:?}");
    let said = super::report(&Ok(a.clone()));
    assert!(
        said.contains("Accepts arrived before their sender's fsync"),
        "{said}"
    );
    assert!(a.delivered > 20, "{a:?}");
    // Judged on the replicated layout, `durable` among them.
    assert!(a.judged > 20, "{a:?}");
    assert!(a.properties.contains(&crate::properties::DURABLE), "{a:?}");
    assert!(
        !a.notes
            .iter()
            .any(|n| n.starts_with("properties not judged")),
        "{a:?}"
    );
}

#[test]
fn any_other_message_before_its_senders_fsync_is_rejected() {
    let (node, _, why) = step_rejected(Driver::new(Shell::SendsEarly).run());
    // The first message that may not arrive early: the leader's question
    // to the wallet, sent in the step that saved its first state.
    assert_eq!(node, "node1", "{why}");
    match &why {
        Why::SentBeforeDurable { msg, from, .. } => {
            assert!(msg.starts_with("AskEpoch {"), "{why}");
            assert_eq!(from, &format!("node{LEADER}"), "{why}");
        }
        _ => panic!("{why}"),
    }
}

#[test]
fn a_replica_restarting_without_what_it_accepted_is_rejected() {
    let mut traces = Driver::new(Shell::AcceptEarly).run();
    let backup = &traces[BACKUP];
    let Some(Record::Node { actor, .. }) = backup.records.first().cloned() else {
        unreachable!("the driver writes a node record first")
    };
    // It restarts from a fresh storage: what it accepted is gone.
    let mut out = Out::new();
    let state = actor.on_start(Id::from(BACKUP), &None, &mut out);
    let record = Record::Step(Step {
        seq: 1,
        t: u64::MAX,
        event: Event::Start { storage: None },
        cmds: trace::cmds(&out),
        state: trace::digest(&state),
    });
    traces[BACKUP].records.push(Record::Node {
        name: format!("node{BACKUP}"),
        role: "test".into(),
        id: BACKUP as u64,
        actor,
    });
    traces[BACKUP].records.push(record);
    let (node, seq, why) = step_rejected(traces);
    assert_eq!((node.as_str(), seq), ("node4", 1), "{why}");
    assert!(matches!(why, Why::StartNotFromDurable { .. }), "{why}");
}

#[test]
fn a_replica_restarting_from_a_durable_save_is_accepted() {
    // The control for the test above: the same restart from its last save.
    let mut traces = Driver::new(Shell::AcceptEarly).run();
    let Some(Record::Node { actor, .. }) = traces[BACKUP].records.first().cloned() else {
        unreachable!("the driver writes a node record first")
    };
    let last: Storage = replayed_storage(&traces[BACKUP], &actor);
    let mut out = Out::new();
    let state = actor.on_start(Id::from(BACKUP), &Some(last.clone()), &mut out);
    traces[BACKUP].records.push(Record::Node {
        name: format!("node{BACKUP}"),
        role: "test".into(),
        id: BACKUP as u64,
        actor,
    });
    traces[BACKUP].records.push(Record::Step(Step {
        seq: 1,
        t: u64::MAX,
        event: Event::Start {
            storage: Some(StorageJson::from(&last)),
        },
        cmds: trace::cmds(&out),
        state: trace::digest(&state),
    }));
    let a = accepted(traces);
    assert_eq!(a.starts, 1, "{a:?}");
}

/// The last storage node `trace`'s steps saved (replayed through `actor`).
fn replayed_storage(trace: &NodeTrace, actor: &Node) -> Storage {
    let me = Id::from(BACKUP);
    let mut state = None;
    let mut last = None;
    for r in &trace.records {
        let Record::Step(s) = r else { continue };
        let mut out = Out::new();
        match &s.event {
            Event::Start { .. } => state = Some(actor.on_start(me, &None, &mut out)),
            Event::Msg { src, msg } => {
                let mut cow = Cow::Borrowed(state.as_ref().expect("started"));
                actor.on_msg(me, &mut cow, trace::id(*src), msg.clone(), &mut out);
                state = Some(cow.into_owned());
            }
            Event::Timer { .. } => unreachable!("the driver fires no timer"),
        }
        for c in out {
            if let Command::Save(s) = c {
                last = Some(s);
            }
        }
    }
    last.expect("the backup accepted something")
}

#[test]
fn an_accept_from_a_follower_is_rejected() {
    // A backup that passes on an `Accept` it received, as if it led: the
    // model's follower never sends one, so its step is not the model's.
    let mut traces = Driver::new(Shell::AcceptEarly).run();
    let step = traces[BACKUP]
        .records
        .iter_mut()
        .find_map(|r| match r {
            Record::Step(s)
                if matches!(
                    &s.event,
                    Event::Msg {
                        msg: Msg::Accept { .. },
                        ..
                    }
                ) =>
            {
                Some(s)
            }
            _ => None,
        })
        .expect("the backup received an Accept");
    let Event::Msg { msg, .. } = &step.event else {
        unreachable!("matched above")
    };
    step.cmds.push(trace::Cmd::Send {
        dst: 5,
        msg: msg.clone(),
    });
    let seq = step.seq;
    let (node, at, why) = step_rejected(traces);
    assert_eq!((node.as_str(), at), ("node4", seq), "{why}");
    match &why {
        Why::Commands {
            recorded: Some(r),
            replayed: None,
            ..
        } => assert!(r.contains("Accept {"), "{why}"),
        _ => panic!("{why}"),
    }
}

/// A cluster restarted on its existing data directories, traced from then
/// on: its participants start with a commit applied before the trace, and
/// the replay takes that start as given (docs/trace.md) rather than reading
/// it as a commit nobody voted for.
#[test]
fn traces_that_begin_on_existing_data_directories_are_accepted() {
    let (_, saved) = Driver::new(Shell::AcceptEarly).run_keeping();
    let committed = |s: &Option<Storage>| matches!(s, Some(Storage::Participant(p)) if p.finished.values().any(|f| f.committed));
    assert!(saved.iter().any(committed), "the first run committed");
    let a = accepted(Driver::starting_from(Shell::AcceptEarly, Some(saved)).run());
    assert!(a.judged > 0, "{a:?}");
    assert!(
        a.properties
            .contains(&crate::properties::COMMIT_NEEDS_EVERY_YES),
        "{a:?}"
    );
}
