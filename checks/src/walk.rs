//! Seeded random walks whose paths rebuild exactly.
//!
//! Why twopc walks on its own: stateright 0.31's simulation checker records
//! the index of every action it *tries*, including one whose `next_state` is
//! `None` (an actor model returns that for a delivery that changes nothing),
//! and it picks each next try from a list it has `swap_remove`d, while
//! `Path::from_action_indices` replays every index against the full, fresh
//! list. A walk that met an ignored action therefore recorded a path that
//! panics when rebuilt ("no action has the next index") or, worse, rebuilds
//! as another path than the one judged. Random walks are the check of the
//! configurations too large to exhaust, so their counterexamples must be
//! the real ones.
//!
//! Here a walk records, for each step it *takes*, the action's index in the
//! full list `Model::actions` gives for that state (its first position, as
//! `Path::encode` and the explorer's `#/steps/` count), and a fingerprint of
//! every state it visits. An ignored try is counted, never recorded.
//! [`rebuild`] replays the indices from the initial state through the
//! model, as the explorer does, and compares every state's fingerprint with
//! the recorded one. The choices come from a fixed generator (SplitMix64),
//! so a seed gives the same walks in every build and on every machine.

use crate::system::{SysAction, SysState, TwopcModel};
use stateright::{Expectation, Model, Path};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// SplitMix64: a small generator whose output never changes between
/// versions of any crate (the walks a seed names stay the same).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: unbiased enough for walks, and deterministic.
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// A state's fingerprint (aHash with fixed seeds, as stateright's own).
pub fn fingerprint(state: &SysState) -> u64 {
    ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(state)
}

/// What one walk did, enough to rebuild it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Index of the initial state in `Model::init_states`.
    pub init: usize,
    /// For each step taken, the index of its action in the full list of
    /// the state it left (the first position of an equal action).
    pub steps: Vec<usize>,
    /// The fingerprint of every state visited, the initial one first
    /// (`steps.len() + 1` of them).
    pub fingerprints: Vec<u64>,
    /// Actions tried that changed nothing (`next_state` gave `None`).
    pub ignored: usize,
    /// Actions tried that led back to a state of this walk (a retry that
    /// re-sends what is already in flight, say): not taken.
    pub repeats: usize,
}

impl Walk {
    /// The path as the explorer opens it: `http://ADDR/#/steps/<this>`.
    pub fn encoded(&self) -> String {
        std::iter::once(self.init)
            .chain(self.steps.iter().copied())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Why a recorded walk did not rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The initial state's index is out of range.
    NoInitState(usize),
    /// Step `step` names an action the state it leaves does not have.
    NoAction { step: usize, index: usize },
    /// Step `step`'s action changes nothing in the rebuilt state.
    Ignored { step: usize },
    /// The state after `step` steps differs from the one recorded.
    OtherState { step: usize },
    /// The walk recorded a different number of fingerprints than steps + 1.
    Malformed,
}

/// Replays `walk` through the model from its initial state, comparing each
/// state with the recorded fingerprint; the rebuilt path on success.
pub fn rebuild(model: &TwopcModel, walk: &Walk) -> Result<Path<SysState, SysAction>, Mismatch> {
    if walk.fingerprints.len() != walk.steps.len() + 1 {
        return Err(Mismatch::Malformed);
    }
    let mut state = model
        .init_states()
        .get(walk.init)
        .cloned()
        .ok_or(Mismatch::NoInitState(walk.init))?;
    if fingerprint(&state) != walk.fingerprints[0] {
        return Err(Mismatch::OtherState { step: 0 });
    }
    let init = state.clone();
    let mut taken = Vec::with_capacity(walk.steps.len());
    for (i, &index) in walk.steps.iter().enumerate() {
        let step = i + 1;
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        let action = actions
            .get(index)
            .cloned()
            .ok_or(Mismatch::NoAction { step, index })?;
        state = model
            .next_state(&state, action.clone())
            .ok_or(Mismatch::Ignored { step })?;
        if fingerprint(&state) != walk.fingerprints[step] {
            return Err(Mismatch::OtherState { step });
        }
        taken.push(action);
    }
    // Built through `from_actions`, the public constructor, which checks
    // once more that each action leads from each state.
    Path::from_actions(model, init, &taken).ok_or(Mismatch::Ignored { step: 0 })
}

/// Limits of a run of walks.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Seed of the first walk (each walk's seed comes from the one before).
    pub seed: u64,
    /// Stop once this many states have been visited (repeats included).
    pub states: usize,
    /// No walk takes more steps than this.
    pub max_depth: usize,
}

/// The result of a run of walks: the properties' discoveries, as walks that
/// rebuild.
pub struct WalkRun {
    /// States visited (a state met again in another walk counts again).
    pub states: usize,
    /// Walks taken.
    pub walks: usize,
    /// Longest walk.
    pub depth: usize,
    /// Tries that changed nothing, over all walks.
    pub ignored: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// For each property discovered (an `always` violated, a `sometimes`
    /// reached): the walk up to the state that discovered it.
    pub discoveries: BTreeMap<&'static str, Walk>,
}

/// Takes one walk from a state chosen by `rng`, calling `visit` on each new
/// state with the walk so far; `visit` returns false to stop the walk.
/// A step never returns to a state the walk visited (an action that would
/// is tried and passed over, like one that changes nothing), so a walk is
/// a simple path, and it ends only at `max_depth` steps, at a state
/// outside the model's boundary, or where every action changes nothing or
/// leads back.
pub fn take(
    model: &TwopcModel,
    rng: &mut Rng,
    max_depth: usize,
    mut visit: impl FnMut(&SysState, &Walk) -> bool,
) -> Walk {
    let mut inits = model.init_states();
    let init = rng.below(inits.len());
    let mut state = inits.swap_remove(init);
    let mut walk = Walk {
        init,
        steps: Vec::new(),
        fingerprints: vec![fingerprint(&state)],
        ignored: 0,
        repeats: 0,
    };
    let mut seen = HashSet::new();
    let mut actions = Vec::new();
    loop {
        seen.insert(*walk.fingerprints.last().expect("a walk has a state"));
        if !model.within_boundary(&state) {
            return walk;
        }
        if !visit(&state, &walk) || walk.steps.len() >= max_depth {
            return walk;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        // The tries left, by their index in the full list.
        let mut left: Vec<usize> = (0..actions.len()).collect();
        let next = loop {
            if left.is_empty() {
                return walk;
            }
            let index = left.swap_remove(rng.below(left.len()));
            match model.next_state(&state, actions[index].clone()) {
                Some(next) => {
                    let print = fingerprint(&next);
                    if !seen.contains(&print) {
                        break (index, next, print);
                    }
                    walk.repeats += 1;
                }
                None => walk.ignored += 1,
            }
        };
        let (index, next, print) = next;
        let first = actions
            .iter()
            .position(|a| *a == actions[index])
            .expect("an action equals itself");
        walk.steps.push(first);
        walk.fingerprints.push(print);
        state = next;
    }
}

/// Seeded random walks, judging every property on every state visited,
/// until every property has a discovery or `limits.states` states were
/// visited. `progress` is called about every `every` with the run so far.
pub fn simulate(
    model: &TwopcModel,
    limits: Limits,
    every: Duration,
    mut progress: impl FnMut(&WalkRun),
) -> WalkRun {
    let props = model.properties();
    let start = Instant::now();
    let mut last = Instant::now();
    let mut run = WalkRun {
        states: 0,
        walks: 0,
        depth: 0,
        ignored: 0,
        elapsed: Duration::ZERO,
        discoveries: BTreeMap::new(),
    };
    let mut seeds = Rng::new(limits.seed);
    let judged = |run: &WalkRun| {
        props
            .iter()
            .filter(|p| p.expectation != Expectation::Eventually)
            .all(|p| run.discoveries.contains_key(p.name))
    };
    while run.states < limits.states && !judged(&run) {
        let mut rng = Rng::new(seeds.next_u64());
        let walk = take(model, &mut rng, limits.max_depth, |state, walk| {
            run.states += 1;
            for p in &props {
                if run.discoveries.contains_key(p.name) {
                    continue;
                }
                let found = match p.expectation {
                    Expectation::Always => !(p.condition)(model, state),
                    Expectation::Sometimes => (p.condition)(model, state),
                    // Judged by the AG EF analysis (`liveness`), not here.
                    Expectation::Eventually => false,
                };
                if found {
                    run.discoveries.insert(p.name, walk.clone());
                }
            }
            run.states < limits.states
        });
        run.walks += 1;
        run.depth = run.depth.max(walk.steps.len());
        run.ignored += walk.ignored;
        if last.elapsed() >= every {
            run.elapsed = start.elapsed();
            progress(&run);
            last = Instant::now();
        }
    }
    run.elapsed = start.elapsed();
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_fixed() {
        // SplitMix64's published first outputs for seed 0: a change of the
        // generator would silently change every seeded walk.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
