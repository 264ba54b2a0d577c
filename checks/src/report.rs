//! Counterexamples in plain words: each step says which actor did what, what it
//! sent and whether it saved.

use crate::system::*;
use stateright::actor::{Actor, ActorModelAction, Command, Id, Out};
use std::borrow::Cow;
use std::fmt::Write;
use twopc_model::*;

fn msg(m: &Msg) -> String {
    match m {
        Msg::Purchase { req, purchase } => format!(
            "Purchase {req} ({} x {} at {} for {})",
            purchase.qty, purchase.sku, purchase.price, purchase.user
        ),
        Msg::Outcome(o) => match (o.verdict, o.txn) {
            (Verdict::Committed, t) => format!("Outcome {} committed (txn {})", o.req, txn(t)),
            (Verdict::Aborted(r), t) => {
                format!("Outcome {} aborted: {r:?} (txn {})", o.req, txn(t))
            }
        },
        Msg::Prepare { txn, req, op } => {
            format!(
                "Prepare txn {txn} for {req}: hold {} of {}",
                op.amount, op.key
            )
        }
        Msg::Vote { txn, ballot } => format!("Vote {ballot:?} on txn {txn}"),
        Msg::Commit { txn } => format!("Commit txn {txn}"),
        Msg::Abort { txn } => format!("Abort txn {txn}"),
        Msg::Ack { txn } => format!("Ack txn {txn}"),
        Msg::QueryDecision { txn } => format!("QueryDecision txn {txn}"),
    }
}

fn txn(t: Option<TxnId>) -> String {
    t.map_or("none".into(), |t| t.to_string())
}

fn timer(t: &Timer) -> String {
    match t {
        Timer::Retry => "retry timer".into(),
        Timer::Votes(t) => format!("vote timer of txn {t}"),
        Timer::Resend(t) => format!("resend timer of txn {t}"),
        Timer::Query(t) => format!("query timer of txn {t}"),
    }
}

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

/// One step of a path: a stateright action, or (in the liveness analysis of a
/// lossy network) the loss of every message in flight.
#[derive(Clone, Debug)]
pub enum Step {
    /// An action of the model.
    Action(SysAction),
    /// The network loses every message in flight.
    LoseInFlight,
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
    let c = coordinator(state);
    let down = |i: usize| if state.crashed[i] { " (down)" } else { "" };
    let _ = writeln!(
        s,
        "    coordinator{}: epoch {}, voting {:?}, unacked commits {:?}",
        down(COORDINATOR),
        c.epoch,
        c.voting.keys().map(|t| t.to_string()).collect::<Vec<_>>(),
        c.commits.keys().map(|t| t.to_string()).collect::<Vec<_>>()
    );
    for (i, p) in participants(state) {
        let fin: Vec<String> = p
            .data
            .finished
            .iter()
            .map(|(t, f)| format!("{t}:{}", if f.committed { "committed" } else { "aborted" }))
            .collect();
        let _ = writeln!(
            s,
            "    {}{}: levels {:?}, holds {:?}, finished [{}]",
            m.actor_name(Id::from(i)),
            down(i),
            p.data.levels,
            p.data
                .holds
                .iter()
                .map(|(t, h)| format!("{t}:{}", h.op.amount))
                .collect::<Vec<_>>(),
            fin.join(", ")
        );
    }
    for (k, cl) in clients(state).enumerate() {
        let seen: Vec<String> = cl.seen.iter().map(|o| msg(&Msg::Outcome(*o))).collect();
        let _ = writeln!(
            s,
            "    {}{}: seen [{}]",
            m.actor_name(Id::from(FIRST_CLIENT + k)),
            down(FIRST_CLIENT + k),
            seen.join("; ")
        );
    }
    s
}
