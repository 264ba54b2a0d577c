//! Running the exhaustive checker: the verdict on every property, with the
//! counts and the time, whatever the search strategy.

use crate::system::{SysAction, SysState, TwopcModel};
use stateright::{Checker, Expectation, HasDiscoveries, Model, Path};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The outcome of an exhaustive check.
pub struct CheckRun {
    /// Unique states visited.
    pub unique: usize,
    /// States generated, repeats included.
    pub total: usize,
    /// Longest path explored.
    pub depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Each property with its expectation and, if found, its discovery path.
    pub verdicts: Vec<Verdict>,
}

/// One property's result.
pub struct Verdict {
    /// The property's name.
    pub name: &'static str,
    /// `always` or `sometimes`.
    pub expectation: Expectation,
    /// A counterexample (for `always`) or an example (for `sometimes`).
    pub discovery: Option<Path<SysState, SysAction>>,
}

impl Verdict {
    /// Whether the property holds: an `always` with no counterexample, or a
    /// `sometimes` with an example.
    pub fn holds(&self) -> bool {
        match self.expectation {
            Expectation::Always => self.discovery.is_none(),
            Expectation::Sometimes => self.discovery.is_some(),
            Expectation::Eventually => self.discovery.is_none(),
        }
    }
}

impl CheckRun {
    /// Whether every property holds.
    pub fn all_hold(&self) -> bool {
        self.verdicts.iter().all(Verdict::holds)
    }

    /// The names of the properties that do not hold.
    pub fn failing(&self) -> Vec<&'static str> {
        self.verdicts
            .iter()
            .filter(|v| !v.holds())
            .map(|v| v.name)
            .collect()
    }

    /// The verdict on one property.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.name == name)
    }

    /// Whether `property` does not hold, shown by a real path (one that
    /// takes at least two steps from the initial state): how a mutant counts
    /// as caught.
    pub fn caught_by(&self, property: &str) -> bool {
        self.verdict(property).is_some_and(|v| {
            !v.holds()
                && v.discovery
                    .as_ref()
                    .is_some_and(|path| path.clone().into_actions().len() > 1)
        })
    }

    /// States per second.
    pub fn rate(&self) -> f64 {
        self.unique as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How the state space is searched. Both visit every reachable state, so the
/// unique state count is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Breadth-first: counterexamples are shortest paths (single-threaded),
    /// but the whole frontier of full states is held in memory.
    Bfs,
    /// Depth-first: keeps only fingerprints and the current path, so it fits
    /// state spaces several times larger; counterexamples may be longer.
    Dfs,
}

/// Exhaustive breadth-first check with `threads` threads. `progress` is called
/// about every `every` with (unique, total, depth) while the check runs.
pub fn check(
    model: TwopcModel,
    threads: usize,
    every: Duration,
    progress: impl FnMut(usize, usize, usize),
) -> CheckRun {
    check_with(model, Strategy::Bfs, threads, every, progress)
}

/// Exhaustive check with the given search strategy; see [`check`].
pub fn check_with(
    model: TwopcModel,
    strategy: Strategy,
    threads: usize,
    every: Duration,
    progress: impl FnMut(usize, usize, usize),
) -> CheckRun {
    let builder = model.clone().checker().threads(threads);
    match strategy {
        Strategy::Bfs => finish(model, builder.spawn_bfs(), every, progress),
        Strategy::Dfs => finish(model, builder.spawn_dfs(), every, progress),
    }
}

/// Breadth-first search that stops as soon as `property` has a discovery (a
/// counterexample to an `always`, an example of a `sometimes`), or when the
/// space is exhausted. Shows a bug is caught without exploring everything
/// after it; the verdicts of the other properties are then incomplete.
pub fn find(model: TwopcModel, threads: usize, property: &'static str) -> CheckRun {
    find_with(model, threads, property, Strategy::Bfs)
}

/// [`find`], searching with `strategy` (depth-first finds a deep
/// counterexample long before breadth-first has finished the levels above).
pub fn find_with(
    model: TwopcModel,
    threads: usize,
    property: &'static str,
    strategy: Strategy,
) -> CheckRun {
    let until = HasDiscoveries::AnyOf([property].into());
    let builder = model.clone().checker().threads(threads).finish_when(until);
    let every = Duration::from_secs(3600);
    match strategy {
        Strategy::Bfs => finish(model, builder.spawn_bfs(), every, |_, _, _| {}),
        Strategy::Dfs => finish(model, builder.spawn_dfs(), every, |_, _, _| {}),
    }
}

/// Seeded random walks ([`crate::walk`]), for configurations too big to
/// exhaust: up to `states` states in walks of at most `depth` steps. A
/// violation found is real, and its path is the one the walk took; "holds"
/// only means these walks found none.
pub fn walk(model: TwopcModel, seed: u64, states: usize, depth: usize) -> CheckRun {
    let limits = crate::walk::Limits {
        seed,
        states,
        max_depth: depth,
    };
    let run = crate::walk::simulate(&model, limits, Duration::from_secs(3600), |_| {});
    walk_verdicts(&model, &run)
}

/// The verdicts of a run of walks, each discovery rebuilt into its path.
/// Panics if a walk does not rebuild: that would be a bug in the walker,
/// and a counterexample printed from it would be false.
pub fn walk_verdicts(model: &TwopcModel, run: &crate::walk::WalkRun) -> CheckRun {
    CheckRun {
        unique: run.states,
        total: run.states,
        depth: run.depth,
        elapsed: run.elapsed,
        verdicts: model
            .properties()
            .iter()
            .map(|p| Verdict {
                name: p.name,
                expectation: p.expectation.clone(),
                discovery: run.discoveries.get(p.name).map(|w| {
                    crate::walk::rebuild(model, w).unwrap_or_else(|m| {
                        panic!("the walk that found \"{}\" does not rebuild: {m:?}", p.name)
                    })
                }),
            })
            .collect(),
    }
}

fn finish(
    model: TwopcModel,
    checker: impl Checker<TwopcModel>,
    every: Duration,
    mut progress: impl FnMut(usize, usize, usize),
) -> CheckRun {
    let start = Instant::now();
    let props = model.properties();
    let mut last = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(20));
        if last.elapsed() >= every {
            progress(
                checker.unique_state_count(),
                checker.state_count(),
                checker.max_depth(),
            );
            last = Instant::now();
        }
    }
    let checker = checker.join();
    let elapsed = start.elapsed();
    let mut discoveries: BTreeMap<&'static str, _> = checker.discoveries().into_iter().collect();
    CheckRun {
        unique: checker.unique_state_count(),
        total: checker.state_count(),
        depth: checker.max_depth(),
        elapsed,
        verdicts: props
            .iter()
            .map(|p| Verdict {
                name: p.name,
                expectation: p.expectation.clone(),
                discovery: discoveries.remove(p.name),
            })
            .collect(),
    }
}
