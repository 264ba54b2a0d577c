//! Traces checked against the model (`twopc-check replay`, here as the
//! library `twopc_checks::replay`):
//!
//! - a real in-process cluster (UDP, fsync'd storage) records its steps while
//!   clients buy; the replay accepts the trace;
//! - the same trace, edited as a broken runtime would have written it (a
//!   save not durable before its send, a timer firing after its cancel, a
//!   changed command), is rejected for that very reason;
//! - the sans-IO core driven by a deliberately broken shell (one that sends
//!   before it fsyncs, one that restarts from an older snapshot) records a
//!   trace the replay rejects, while the same harness run correctly is
//!   accepted.

use stateright::actor::Id;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;
use twopc_checks::replay::{self, Accepted, NodeTrace, Options, Rejection, Why};
use twopc_model::client::{Mode, Request};
use twopc_model::trace::{Cmd, Event, Record};
use twopc_model::*;
use twopc_node::ops::client;
use twopc_node::ops::local::LocalCluster;
use twopc_node::runtime::core::{Config, Core, Event as CoreEvent};
use twopc_node::runtime::faults::Faults;
use twopc_node::runtime::trace::MemTracer;
use twopc_node::runtime::wire::{Codec, Format};

fn levels(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The traces of a real in-process cluster after a few purchases (one runs
/// short of money, two race for the last unit), and how many purchases.
fn recorded() -> &'static (Vec<NodeTrace>, usize, u64) {
    static TRACES: OnceLock<(Vec<NodeTrace>, usize, u64)> = OnceLock::new();
    TRACES.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let traces = dir.path().join("traces");
            std::fs::create_dir(&traces).unwrap();
            let cluster = LocalCluster::start_traced(
                dir.path(),
                levels(&[("alice", 100), ("bob", 30)]),
                levels(&[("widget", 10), ("gadget", 1)]),
                Some(&traces),
            )
            .await
            .unwrap();
            let coordinators = cluster.cluster.coordinator_addresses();
            let buy = |user: &str, sku: &str, qty, price| Purchase {
                user: user.into(),
                sku: sku.into(),
                qty,
                price,
            };
            let run = |ps: Vec<Purchase>| {
                client::run_client(
                    &coordinators,
                    ps,
                    cluster.codec.clone(),
                    Duration::from_secs(30),
                    |_| {},
                )
            };
            let mut purchases = 0;
            for p in [
                buy("alice", "widget", 2, 10),
                buy("bob", "widget", 1, 40), // insufficient funds
                buy("alice", "widget", 1, 5),
            ] {
                assert_eq!(run(vec![p]).await.unwrap().len(), 1);
                purchases += 1;
            }
            let (a, b) = tokio::join!(
                run(vec![buy("alice", "gadget", 1, 1)]),
                run(vec![buy("bob", "gadget", 1, 1)])
            );
            assert_eq!(a.unwrap().len() + b.unwrap().len(), 2);
            purchases += 2;
            assert!(cluster.settle(Duration::from_secs(30)).await.unwrap());
            cluster.stop().await.unwrap();
            let bytes: u64 = std::fs::read_dir(&traces)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum();
            (replay::read(&traces).unwrap(), purchases, bytes)
        })
    })
}

fn accept(traces: Vec<NodeTrace>) -> Accepted {
    match replay::replay(traces, &Options::default()) {
        Ok(a) => a,
        Err(r) => panic!("rejected: {r}"),
    }
}

fn reason(traces: Vec<NodeTrace>) -> (String, Why) {
    match replay::replay(traces, &Options::default()) {
        Ok(a) => panic!("accepted: {a:?}"),
        Err(Rejection::Step { node, why, .. }) => (node, *why),
        Err(r) => panic!("rejected for another reason: {r}"),
    }
}

fn of<'a>(traces: &'a mut [NodeTrace], name: &str) -> &'a mut Vec<Record> {
    let t = traces
        .iter_mut()
        .find(|t| t.source.ends_with(&format!("{name}.jsonl")))
        .unwrap_or_else(|| panic!("no trace of {name}"));
    &mut t.records
}

#[test]
fn a_real_clusters_trace_is_accepted() {
    let (traces, purchases, bytes) = recorded();
    let a = accept(traces.clone());
    eprintln!(
        "trace: {bytes} bytes for {purchases} purchases ({} per purchase); {a:?}",
        bytes / *purchases as u64
    );
    assert_eq!(a.nodes.len(), 3);
    assert!(a.delivered > 0 && a.external > 0 && a.durables > 0);
    assert!(a.judged > 0);
    assert!(a.properties.contains(&"atomic"));
}

#[test]
fn a_send_before_its_save_is_durable_is_rejected() {
    let mut traces = recorded().0.clone();
    let wallet = of(&mut traces, "wallet");
    // The durable record after the wallet's first yes vote: without it, the
    // vote left before the hold it promises was on disk.
    let vote = wallet
        .iter()
        .position(|r| {
            matches!(r, Record::Step(s) if s.cmds.iter().any(|c| matches!(c,
                Cmd::Send { msg: Msg::Vote { ballot: Ballot::Yes, .. }, .. })))
        })
        .expect("a yes vote");
    let durable = vote
        + wallet[vote..]
            .iter()
            .position(|r| matches!(r, Record::Durable { .. }))
            .expect("made durable");
    wallet.remove(durable);
    let (node, why) = reason(traces);
    assert_eq!(node, "coordinator");
    assert!(
        matches!(&why, Why::SentBeforeDurable { from, msg, .. } if from == "wallet" && msg.contains("Vote")),
        "{why}"
    );
}

#[test]
fn a_timer_firing_after_its_cancel_is_rejected() {
    let mut traces = recorded().0.clone();
    let coordinator = of(&mut traces, "coordinator");
    let (at, step) = coordinator
        .iter()
        .enumerate()
        .find_map(|(i, r)| match r {
            Record::Step(s) if s.cmds.iter().any(|c| matches!(c, Cmd::CancelTimer { .. })) => {
                Some((i, s.clone()))
            }
            _ => None,
        })
        .expect("a cancelled timer");
    let timer = step
        .cmds
        .iter()
        .find_map(|c| match c {
            Cmd::CancelTimer { timer } => Some(timer.clone()),
            _ => None,
        })
        .unwrap();
    let mut fired = step.clone();
    fired.event = Event::Timer {
        timer: timer.clone(),
    };
    coordinator.insert(at + 1, Record::Step(fired));
    let (node, why) = reason(traces);
    assert_eq!(node, "coordinator");
    assert_eq!(why, Why::TimerNotSet(format!("{timer:?}")));
}

#[test]
fn a_changed_command_is_rejected() {
    let mut traces = recorded().0.clone();
    let order = of(&mut traces, "order");
    let vote = order
        .iter_mut()
        .find_map(|r| match r {
            Record::Step(s) => s.cmds.iter_mut().find_map(|c| match c {
                Cmd::Send {
                    msg: Msg::Vote { ballot, .. },
                    ..
                } if *ballot == Ballot::Yes => Some(ballot),
                _ => None,
            }),
            _ => None,
        })
        .expect("a yes vote");
    *vote = Ballot::No(Refusal::Insufficient);
    let (node, why) = reason(traces);
    assert_eq!(node, "order");
    assert!(
        matches!(&why, Why::Commands { recorded: Some(r), replayed: Some(p), .. }
            if r.contains("No(") && p.contains("Yes")),
        "{why}"
    );
}

// ---- The sans-IO core under a harness shell, correct or broken. ----

/// How the harness shell misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Shell {
    /// Fsyncs (reports `synced`) before it sends what `ready` holds back.
    Correct,
    /// Sends first and fsyncs only at the end of the run.
    SendsBeforeFsync,
    /// Correct, then restarts the wallet from its first durable save
    /// instead of its last.
    RestartsFromOldSnapshot,
    /// Correct, but the coordinator and the wallet start (their first start
    /// in the trace, which the replay takes as given) from storage that
    /// claims a commit nobody voted for: every step is one the actors take,
    /// and only the properties can tell.
    ForgedStorage,
}

fn addr(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([127, 0, 0, 1].into(), port)
}

/// Runs one purchase through a coordinator, a wallet, an order service and
/// a client, each a [`Core`], with an in-memory lossless network; returns
/// the traces.
fn harness(shell: Shell) -> Vec<NodeTrace> {
    let origin = Instant::now();
    let (c, w, o, cl) = (addr(1), addr(2), addr(3), addr(4));
    let participant = |resource, key: &str| {
        Node::Participant(Participant {
            resource,
            coordinators: vec![Id::from(c)],
            initial: [(key.to_string(), 100)].into(),
            prices: Default::default(),
            one_write: false,
        })
    };
    let wallet = participant(Resource::Wallet, "alice");
    let actors = [
        (
            "coordinator",
            c,
            Node::Coordinator(Coordinator {
                wallet: Id::from(w),
                order: Id::from(o),
                retention: 100,
                prices: false,
                one_write: false,
            }),
        ),
        ("wallet", w, wallet.clone()),
        ("order", o, participant(Resource::Order, "widget")),
        (
            "client",
            cl,
            Node::Client(Client {
                coordinators: vec![Id::from(c)],
                id: 7,
                requests: vec![Request {
                    req: RequestId::new("order-1"),
                    op: Purchase {
                        user: "alice".into(),
                        sku: "widget".into(),
                        qty: 1,
                        price: 10,
                    }
                    .into(),
                    mode: Mode::New,
                }],
                keep_ticket: Default::default(),
            }),
        ),
    ];
    let cfg = |name: &str| Config {
        name: name.into(),
        codec: Codec::new(None, Format::Bincode),
        faults: Faults::default(),
        batch_max: 64,
    };
    let mut tracers = Vec::new();
    let mut cores: HashMap<SocketAddrV4, Core> = HashMap::new();
    let mut saves: HashMap<SocketAddrV4, Vec<Storage>> = HashMap::new();
    let mut net: VecDeque<(SocketAddrV4, SocketAddrV4, Vec<u8>)> = VecDeque::new();
    let mut owed_sync: Vec<SocketAddrV4> = Vec::new();
    let mut t = origin;
    // Ends a batch of `at` as the shell under test does.
    let flush = |core: &mut Core,
                 at: SocketAddrV4,
                 now: Instant,
                 net: &mut VecDeque<_>,
                 saves: &mut HashMap<SocketAddrV4, Vec<Storage>>,
                 owed: &mut Vec<SocketAddrV4>| {
        let ready = core.ready(now);
        if let Some(s) = ready.save {
            saves.entry(at).or_default().push(s);
        }
        if ready.sync {
            match shell {
                Shell::SendsBeforeFsync => owed.push(at),
                _ => core.synced(now),
            }
        }
        for out in ready.sends.into_iter().chain(ready.sends_after_sync) {
            let SocketAddr::V4(to) = out.to() else {
                panic!("v4")
            };
            net.push_back((at, to, out.datagram().expect("a datagram").to_vec()));
        }
    };
    let forged = TxnId { epoch: 9, n: 0 };
    let req = RequestId::new("order-8");
    let forged_storage = |a: SocketAddrV4| match shell {
        Shell::ForgedStorage if a == c => Some(Storage::Coordinator(CoordStorage {
            epoch: 9,
            outcomes: Default::default(),
            commits: [(forged, req.clone())].into_iter().collect(),
            doubts: Default::default(),
            flows: Default::default(),
            partial: Default::default(),
            refunded: Default::default(),
        })),
        Shell::ForgedStorage if a == w => Some(Storage::Participant(PartStorage {
            levels: [("alice".to_string(), 100u64)].into_iter().collect(),
            holds: [(
                forged,
                Hold {
                    req: req.clone(),
                    op: Op {
                        key: "alice".into(),
                        amount: 50,
                    },
                },
            )]
            .into_iter()
            .collect(),
            ..PartStorage::default()
        })),
        _ => None,
    };
    // The client starts once the others have settled: the coordinator first
    // learns the participants' epoch, and no timer fires here to re-send a
    // purchase it ignored meanwhile.
    for clients in [false, true] {
        for (name, a, actor) in actors.iter().filter(|x| (x.0 == "client") == clients) {
            let mut core = Core::new(actor.clone(), Id::from(*a), &cfg(name));
            let tracer = MemTracer::new(origin);
            core.set_tracer(Box::new(tracer.clone()));
            tracers.push((*name, tracer));
            t += Duration::from_millis(1);
            core.handle(t, CoreEvent::Start(forged_storage(*a)));
            flush(&mut core, *a, t, &mut net, &mut saves, &mut owed_sync);
            cores.insert(*a, core);
        }
        while let Some((from, to, bytes)) = net.pop_front() {
            t += Duration::from_millis(1);
            let core = cores.get_mut(&to).expect("a node");
            core.handle(
                t,
                CoreEvent::Datagram {
                    from: SocketAddr::V4(from),
                    bytes: &bytes,
                },
            );
            flush(core, to, t, &mut net, &mut saves, &mut owed_sync);
        }
    }
    for a in owed_sync {
        t += Duration::from_millis(1);
        cores.get_mut(&a).unwrap().synced(t);
    }
    if shell == Shell::RestartsFromOldSnapshot {
        let first = saves[&w].first().cloned();
        let (_, tracer) = &tracers[1];
        let mut core = Core::new(wallet.clone(), Id::from(w), &cfg("wallet"));
        core.set_tracer(Box::new(tracer.clone()));
        t += Duration::from_millis(1);
        core.handle(t, CoreEvent::Start(first));
    }
    tracers
        .into_iter()
        .map(|(name, tracer)| NodeTrace {
            source: format!("{name}.jsonl"),
            records: tracer.records(),
        })
        .collect()
}

#[test]
fn a_correct_shell_over_the_core_is_accepted() {
    let traces = harness(Shell::Correct);
    // `TWOPC_TRACE_FIXTURE=DIR` writes these traces as files (the fixture of
    // `checks/tests/replay.rs` was made so).
    if let Ok(dir) = std::env::var("TWOPC_TRACE_FIXTURE") {
        for t in &traces {
            let lines: Vec<String> = t
                .records
                .iter()
                .map(|r| serde_json::to_string(r).unwrap() + "\n")
                .collect();
            std::fs::write(std::path::Path::new(&dir).join(&t.source), lines.concat()).unwrap();
        }
    }
    let a = accept(traces);
    assert_eq!(a.nodes.len(), 4);
    assert!(a.delivered >= 8, "{a:?}");
}

#[test]
fn a_shell_that_sends_before_fsync_is_rejected() {
    let (node, why) = reason(harness(Shell::SendsBeforeFsync));
    assert!(
        matches!(why, Why::SentBeforeDurable { .. }),
        "{node}: {why}"
    );
}

#[test]
fn a_restart_from_an_older_snapshot_is_rejected() {
    let (node, why) = reason(harness(Shell::RestartsFromOldSnapshot));
    assert_eq!(node, "wallet");
    assert!(matches!(why, Why::StartNotFromDurable { .. }), "{why}");
}

#[test]
fn a_property_violated_by_steps_the_actors_allow_is_rejected() {
    let result = replay::replay(harness(Shell::ForgedStorage), &Options::default());
    eprintln!("{}", twopc_checks::replay::report(&result));
    match result {
        Err(Rejection::Property { name, .. }) => {
            // The replay takes a trace's first start as given (docs/trace.md):
            // the forged commit then implies the order service's yes vote,
            // which its storage does not hold (`durable`).
            assert!(
                ["atomic", "commit needs every yes", "durable"].contains(&name),
                "{name}"
            )
        }
        other => panic!("not rejected by a property: {other:?}"),
    }
}
