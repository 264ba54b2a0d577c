//! Counterexamples in plain words: each step says which actor did what, what it
//! sent and whether it saved.

use crate::config::{Config, Protocol, Role, COORDINATOR};
use crate::liveness::Liveness;
use crate::matrix::Entry;
use crate::run::{self, CheckRun};
use crate::system::*;
use stateright::actor::{Actor, ActorModelAction, Command, Id, Out};
use stateright::Expectation;
use std::borrow::Cow;
use std::fmt::Write;
use twopc_model::*;

mod words;
use words::{msg, timer};

/// One action, as a short phrase (used by the explorer too).
pub fn format_action(m: &TwopcModel, action: &SysAction) -> String {
    let name = |id: &Id| m.actor_name(*id);
    match action {
        ActorModelAction::Deliver { src, dst, msg: x } => {
            format!("{} receives {} from {}", name(dst), msg(x), name(src))
        }
        ActorModelAction::Drop(env) => {
            format!(
                "network loses {} from {} to {}",
                msg(&env.msg),
                name(&env.src),
                name(&env.dst)
            )
        }
        ActorModelAction::Timeout(id, t) => format!("{}: {} fires", name(id), timer(t)),
        ActorModelAction::Crash(id)
            if m.cfg.lose_replica_disk
                && matches!(m.cfg.role((*id).into()), Role::Coordinator | Role::Backup) =>
        {
            format!(
                "{} crashes, restarts on an empty disk and asks the others what they hold (they answer)",
                name(id)
            )
        }
        ActorModelAction::Crash(id) => format!("{} crashes", name(id)),
        ActorModelAction::Recover(id) => format!("{} restarts from storage", name(id)),
        ActorModelAction::SelectRandom { actor, .. } => format!("{}: random choice", name(actor)),
    }
}

/// What the actor emitted in this step, re-run on the state before it.
fn effects(m: &TwopcModel, last: &SysState, action: &SysAction) -> Vec<String> {
    let mut out = Out::new();
    match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            let i = usize::from(*dst);
            let mut state = Cow::Borrowed(&*last.actor_states[i]);
            m.inner.actors[i].on_msg(*dst, &mut state, *src, msg.clone(), &mut out);
        }
        ActorModelAction::Timeout(id, t) => {
            let i = usize::from(*id);
            let mut state = Cow::Borrowed(&*last.actor_states[i]);
            m.inner.actors[i].on_timeout(*id, &mut state, t, &mut out);
        }
        ActorModelAction::Recover(id) => {
            let i = usize::from(*id);
            m.inner.actors[i].on_start(*id, &last.actor_storages[i], &mut out);
        }
        _ => return vec![],
    }
    out.iter()
        .filter_map(|c| match c {
            Command::Send(dst, x) => Some(format!("sends {} to {}", msg(x), m.actor_name(*dst))),
            Command::Save(_) => Some("saves its durable state".into()),
            Command::SetTimer(..) | Command::CancelTimer(_) | Command::ChooseRandom(..) => None,
        })
        .collect()
}

/// A stateright path as steps.
pub fn steps(path: &stateright::Path<SysState, SysAction>) -> Vec<(SysState, Option<Step>)> {
    path.clone()
        .into_vec()
        .into_iter()
        .map(|(s, a)| (s, a.map(Step::Action)))
        .collect()
}

/// A path, one numbered step per line with its effects indented below.
pub fn format_path(m: &TwopcModel, path: &stateright::Path<SysState, SysAction>) -> String {
    format_steps(m, &steps(path))
}

/// Steps, one numbered per line with their effects indented below, then a
/// summary of the final state.
pub fn format_steps(m: &TwopcModel, steps: &[(SysState, Option<Step>)]) -> String {
    let mut s = String::new();
    let mut n = 0;
    for (state, step) in steps {
        let Some(step) = step else { continue };
        n += 1;
        let action = match step {
            Step::Action(a) => a,
            Step::LoseInFlight => {
                let _ = writeln!(s, "  {n:>3}. network loses every message in flight");
                continue;
            }
        };
        let _ = writeln!(s, "  {n:>3}. {}", format_action(m, action));
        for e in effects(m, state, action) {
            let _ = writeln!(s, "         {e}");
        }
    }
    if let Some((last, _)) = steps.last() {
        let _ = writeln!(s, "  final state:");
        s.push_str(&summarize(m, last));
    }
    s
}

/// The interesting part of a state: levels, holds, decisions, what clients saw.
pub fn summarize(m: &TwopcModel, state: &SysState) -> String {
    let mut s = String::new();
    let down = |i: usize| if state.crashed[i] { " (down)" } else { "" };
    let coord = |c: &CoordState| {
        let ids =
            |m: &mut dyn Iterator<Item = &TxnId>| m.map(|t| t.to_string()).collect::<Vec<_>>();
        let mut line = format!(
            "epoch {}, voting {:?}, unacked commits {:?}",
            c.epoch,
            ids(&mut c.voting.keys()),
            ids(&mut c.commits.keys())
        );
        if !c.doubts.is_empty() {
            let _ = write!(line, ", in doubt {:?}", ids(&mut c.doubts.keys()));
        }
        line
    };
    if let State::Coordinator(c) = &**state.actor_states[COORDINATOR] {
        let _ = writeln!(s, "    coordinator{}: {}", down(COORDINATOR), coord(c));
    }
    for (i, r) in replicas(&m.cfg, state) {
        let accepted = r.acceptor.accepted.as_ref().map_or("nothing".into(), |a| {
            format!(
                "v{} of term {} (epoch {})",
                a.version, a.term, a.storage.epoch
            )
        });
        let standing = match &r.standing {
            Standing::Follower => "follower".to_string(),
            Standing::PreCandidate { term, grants } => {
                format!("pre-candidate for term {term} ({} granted)", grants.len())
            }
            Standing::Recovering { answered, .. } => {
                format!("recovering ({} answered)", answered.len())
            }
            Standing::Candidate { term, .. } => format!("candidate for term {term}"),
            Standing::Leader(l) => format!(
                "leader of term {}, chosen v{} of v{}, {} held, {}",
                l.term,
                l.chosen,
                l.version,
                l.held.len(),
                coord(&l.coord)
            ),
        };
        let _ = writeln!(
            s,
            "    {}{}: promised {}, accepted {accepted}; {standing}",
            m.actor_name(Id::from(i)),
            down(i),
            r.acceptor.promised
        );
    }
    for (i, p) in participants(state) {
        let fin: Vec<String> = p
            .data
            .finished
            .iter()
            .map(|(t, f)| format!("{t}:{}", if f.committed { "committed" } else { "aborted" }))
            .collect();
        let _ = writeln!(
            s,
            "    {}{}: floor {}, levels {:?}, holds {:?}, finished [{}]",
            m.actor_name(Id::from(i)),
            down(i),
            p.data.floor,
            p.data.levels,
            p.data
                .holds
                .iter()
                .map(|(t, h)| format!("{t}:{}", h.op.amount))
                .collect::<Vec<_>>(),
            fin.join(", ")
        );
    }
    for (k, cl) in clients(&m.cfg, state).enumerate() {
        let seen: Vec<String> = cl
            .seen
            .iter()
            .map(|o| msg(&Msg::Outcome(o.clone())))
            .collect();
        let _ = writeln!(
            s,
            "    {}{}: seen [{}]",
            m.actor_name(Id::from(m.cfg.client_indices().start + k)),
            down(m.cfg.client_indices().start + k),
            seen.join("; ")
        );
    }
    s
}

// ---- Summaries of whole runs, as `twopc-check` prints them. ----

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line saying what configuration is being checked.
pub fn describe(cfg: &Config) -> String {
    let lower = |x: &dyn std::fmt::Debug| format!("{x:?}").to_lowercase();
    let crashes = if cfg.max_crashes == 0 {
        "no crashes".to_string()
    } else {
        let roles: Vec<String> = cfg.crashable.iter().map(|r| lower(r)).collect();
        let never: Vec<String> = cfg.never_recover.iter().map(|r| lower(r)).collect();
        let never = if never.is_empty() {
            String::new()
        } else {
            format!(", never recovering: [{}]", never.join(", "))
        };
        format!(
            "up to {} down at once among [{}]{never}, {} coordinator restart(s)",
            cfg.max_crashes,
            roles.join(", "),
            cfg.max_restarts
        )
    };
    let reuse = if cfg.reuse.is_empty() {
        String::new()
    } else {
        let r: Vec<String> = cfg.reuse.iter().map(|r| lower(r)).collect();
        format!(", the first id re-used: [{}]", r.join(", "))
    };
    let reuse = if cfg.afterwards.is_empty() {
        reuse
    } else {
        let r: Vec<String> = cfg.afterwards.iter().map(|r| lower(r)).collect();
        format!("{reuse}, then by the first client: [{}]", r.join(", "))
    };
    let protocol = match cfg.protocol {
        Protocol::TwoPc => String::new(),
        Protocol::Replicated => format!(
            "replicated coordinator ({} replicas, {} early campaign(s)), ",
            cfg.replicas, cfg.elections
        ),
    };
    format!(
        "{protocol}{} client(s) x {} purchase(s) of {} x widget at {} (balance {}, stock {}){reuse}, {} outcome(s) remembered, {} network, {}{}",
        cfg.clients,
        cfg.purchases,
        cfg.qty,
        cfg.price,
        cfg.balance,
        cfg.stock,
        cfg.retention,
        lower(&cfg.network),
        crashes,
        cfg.mutant
            .map(|m| format!(", MUTANT {}", m.name()))
            .unwrap_or_default()
    )
}

/// How a search that cannot exhaust the space (random walks) reads an
/// unreached `sometimes` and an unviolated `always`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// Every reachable state was visited: verdicts are final.
    Exhaustive,
    /// Random walks: only what they found is known.
    Walks,
}

/// Each property's verdict on a line, then a readable counterexample for
/// every `always` that fails (with the explorer path that opens it).
pub fn verdicts(m: &TwopcModel, verdicts: &[run::Verdict], search: Search) -> String {
    let mut s = String::new();
    for v in verdicts {
        let found = v.discovery.is_some();
        let (mark, what) = match (&v.expectation, found, search) {
            (Expectation::Sometimes, true, _) => ("ok  ", "sometimes: reached"),
            (Expectation::Sometimes, false, Search::Exhaustive) => {
                ("FAIL", "sometimes: never reached")
            }
            (Expectation::Sometimes, false, Search::Walks) => {
                ("--  ", "sometimes: not reached by these walks")
            }
            (_, false, Search::Exhaustive) => ("ok  ", "always: holds"),
            (_, false, Search::Walks) => ("ok  ", "always: no violation found"),
            (_, true, _) => ("FAIL", "always: VIOLATED"),
        };
        let _ = writeln!(s, "  {mark} {:<66} {what}", v.name);
    }
    for v in verdicts
        .iter()
        .filter(|v| v.expectation != Expectation::Sometimes)
    {
        if let Some(path) = &v.discovery {
            let _ = writeln!(s, "\nCounterexample for \"{}\":", v.name);
            s.push_str(&format_path(m, path));
            let encoded = path.encode(m);
            let _ = writeln!(s, "  action index path: {encoded}");
            let _ = writeln!(
                s,
                "  open it: twopc-check explore <same flags>, then http://127.0.0.1:3000/#/steps/{encoded}"
            );
        }
    }
    s
}

/// A progress line of an exhaustive check.
pub fn check_progress(unique: usize, total: usize, depth: usize, rate: f64) -> String {
    format!(
        "  ... {} unique states, {} total, depth {depth}, {rate:.0} states/s",
        thousands(unique),
        thousands(total)
    )
}

/// The whole report of an exhaustive check: counts, verdicts, counterexamples.
pub fn check_run(m: &TwopcModel, run: &CheckRun) -> String {
    let mut s = format!(
        "Explored {} unique states ({} total), depth {}, in {:.2}s ({:.0} states/s)\n",
        thousands(run.unique),
        thousands(run.total),
        run.depth,
        run.elapsed.as_secs_f64(),
        run.rate()
    );
    s.push_str(&verdicts(m, &run.verdicts, Search::Exhaustive));
    s.push_str(if run.all_hold() {
        "All properties hold.\n"
    } else {
        "Some properties FAIL.\n"
    });
    s
}

/// The whole report of a liveness analysis: counts, what was cut off, and a
/// shortest path to a stuck state (and to 2PC's blocking, if one is stuck).
pub fn liveness(m: &TwopcModel, result: &Liveness) -> String {
    let mut s = format!(
        "Explored {} states, {} edges in {:.2}s: {} done, {} stuck\n",
        thousands(result.states),
        thousands(result.edges),
        result.elapsed.as_secs_f64(),
        thousands(result.done),
        thousands(result.stuck)
    );
    if result.cut_off > 0 {
        let _ = writeln!(
            s,
            "  {} states have successors beyond the limits of the configuration (not explored, never counted as live); {} of the stuck states can reach them",
            thousands(result.cut_off),
            thousands(result.stuck_beyond_bounds)
        );
    } else {
        s.push_str("  nothing cut off: every reachable state was explored\n");
    }
    let Some(path) = &result.stuck_path else {
        s.push_str("  ok   every reachable state can reach one where every request has its outcome and no hold remains\n");
        if m.cfg.lose_disk {
            s.push_str("       (but for what a lost log left in doubt: an operator decides those, and their client waits)\n");
        }
        return s;
    };
    let _ = writeln!(
        s,
        "  FAIL {} states cannot reach done. Shortest path to one:",
        thousands(result.stuck)
    );
    s.push_str(&format_steps(m, path));
    if let Some(blocked) = &result.blocked_path {
        s.push_str("\n  Shortest path to 2PC blocking (a participant holds a prepared transaction, the coordinator is down):\n");
        s.push_str(&format_steps(m, blocked));
    }
    s
}

/// The header of the CI matrix table (Markdown).
pub const MATRIX_HEADER: &str = "| configuration | unique states | total states | wall time | states/s | pinned |\n|---|---:|---:|---:|---:|---|";

/// One row of the CI matrix table, and a line per failing property.
pub fn matrix_row(entry: &Entry, run: &CheckRun) -> String {
    let pinned = if run.unique == entry.unique_states {
        "yes".to_string()
    } else {
        format!("NO (pinned {})", thousands(entry.unique_states))
    };
    let mut s = format!(
        "| {} ({}) | {} | {} | {:.1}s | {:.0} | {pinned} |",
        entry.name,
        entry.about,
        thousands(run.unique),
        thousands(run.total),
        run.elapsed.as_secs_f64(),
        run.rate(),
    );
    for name in run.failing() {
        let _ = write!(s, "\n  FAIL {}: {name}", entry.name);
    }
    s
}
