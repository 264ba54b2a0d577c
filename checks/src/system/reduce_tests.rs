//! The reduction judged against the unreduced model: what it drops is a
//! no-op in the state it is dropped from and in every state that follows.

use super::*;
use crate::config::{Config, Role};
use crate::system::random_walks::random_walks;
use std::collections::HashSet;

type Mail = stateright::actor::Envelope<Shared<Msg>>;

fn mail(state: &SysState) -> HashSet<Mail> {
    state
        .network
        .iter_all()
        .map(|e| e.to_cloned_msg())
        .collect()
}

/// What the reduction would drop from `state` (but mail to the dead).
fn droppable(model: &TwopcModel, state: &SysState) -> Vec<Mail> {
    let dead = model.buried(state);
    state
        .network
        .iter_all()
        .filter(|e| !dead.contains(&e.dst) && model.inert(state, &dead, e.src, e.dst, e.msg))
        .map(|e| e.to_cloned_msg())
        .collect()
}

/// Random walks through the model *without* the reduction. In every
/// state, each message the reduction would drop is delivered: it must
/// change nothing (the receiver's state, storage and timers, the
/// history) and send only to the dead. And it must still be judged
/// droppable in the next state if still in flight, so that it is a no-op
/// in every state that follows. Returns how many drops were judged.
fn judge_reduction(cfg: Config, walks: u64, steps: usize) -> usize {
    let model = cfg.into_model();
    let mut judged = 0;
    let visit = |state: &SysState| {
        let dead = model.buried(state);
        for e in droppable(&model, state) {
            let i = usize::from(e.dst);
            let deliver = ActorModelAction::Deliver {
                src: e.src,
                dst: e.dst,
                msg: e.msg.clone(),
            };
            if let Some(after) = model.next_unreduced(state, deliver) {
                let what = format!("{:?} to {i}", &*e.msg);
                assert!(after.actor_states[i] == state.actor_states[i], "{what}");
                assert!(after.actor_storages[i] == state.actor_storages[i], "{what}");
                assert!(after.timers_set[i] == state.timers_set[i], "{what}");
                assert!(after.history == state.history, "{what}");
                let before = mail(state);
                for sent in mail(&after).difference(&before) {
                    assert!(dead.contains(&sent.dst), "{what} sends {sent:?}");
                }
            }
            judged += 1;
        }
    };
    let step = |state: &SysState, action| {
        let next = model.next_unreduced(state, action)?;
        let still = droppable(&model, &next);
        let (in_flight, dead) = (mail(&next), model.buried(&next));
        for e in droppable(&model, state)
            .iter()
            .filter(|e| in_flight.contains(*e))
        {
            let gone = dead.contains(&e.dst) || still.contains(e);
            assert!(gone, "{:?} to {:?} became live", &*e.msg, e.dst);
        }
        Some(next)
    };
    let start = || model.init_states().swap_remove(0);
    random_walks(&model, walks, steps, start, visit, step);
    judged
}

fn replicated(dies: Role) -> Config {
    Config {
        clients: 1,
        protocol: Protocol::Replicated,
        elections: 0,
        max_crashes: 1,
        crashable: [dies].into(),
        never_recover: [dies].into(),
        ..Config::default()
    }
}

#[test]
fn what_the_reduction_drops_is_a_no_op_for_good_when_the_leader_dies() {
    assert!(judge_reduction(replicated(Role::Coordinator), 3000, 120) > 10_000);
}

#[test]
fn what_the_reduction_drops_is_a_no_op_for_good_when_a_backup_dies() {
    assert!(judge_reduction(replicated(Role::Backup), 3000, 120) > 10_000);
}

/// Competing leaders, nobody dead: a deposed leader keeps acting.
#[test]
fn what_the_reduction_drops_is_a_no_op_for_good_with_competing_leaders() {
    let cfg = Config {
        elections: 2,
        max_crashes: 0,
        crashable: Default::default(),
        never_recover: Default::default(),
        ..replicated(Role::Coordinator)
    };
    assert!(judge_reduction(cfg, 3000, 150) > 10_000);
}

/// Two clients, a purchase that cannot be paid for, elections early:
/// other messages and other states.
#[test]
fn what_the_reduction_drops_is_a_no_op_for_good_with_two_clients_and_early_elections() {
    let cfg = Config {
        clients: 2,
        elections: 2,
        balance: 6,
        ..replicated(Role::Coordinator)
    };
    assert!(judge_reduction(cfg, 3000, 150) > 10_000);
}

/// The competing-leaders entry of the CI matrix, where the rules apply
/// with nobody dead as well as with the first leader dead.
#[test]
fn what_the_reduction_drops_is_a_no_op_for_good_where_leaders_compete_and_one_dies() {
    assert!(judge_reduction(crate::config::competing_leaders(), 3000, 150) > 10_000);
}

/// The last delivered message, which stateright's duplicating network keeps
/// in the state, is read by nothing: along random walks of the
/// competing-leaders configuration (unreduced steps), a state with it and
/// the same state without it have the same actions, the same successors
/// and the same verdict on every property. Returns how many states had one.
#[test]
fn the_last_delivered_message_changes_no_action_successor_or_verdict() {
    use stateright::Model;
    let model = crate::config::competing_leaders().into_model();
    let properties = model.properties();
    let forgotten = |s: &SysState| {
        let mut s = s.clone();
        if let Network::UnorderedDuplicating(_, last) = &mut s.network {
            *last = None;
        }
        s
    };
    let mut compared = 0;
    let visit = |state: &SysState| {
        let plain = forgotten(state);
        if plain != *state {
            compared += 1;
            let (mut with, mut without) = (Vec::new(), Vec::new());
            model.actions(state, &mut with);
            model.actions(&plain, &mut without);
            assert_eq!(with, without);
            for a in &with {
                assert!(model.next_state(state, a.clone()) == model.next_state(&plain, a.clone()));
            }
            for p in &properties {
                assert_eq!((p.condition)(&model, state), (p.condition)(&model, &plain));
            }
        }
    };
    let start = || model.init_states().swap_remove(0);
    let step = |state: &SysState, action| model.next_unreduced(state, action);
    random_walks(&model, 300, 60, start, visit, step);
    assert!(compared > 1_000, "{compared} states with a last delivery");
}
