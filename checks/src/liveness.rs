//! Liveness as "from every reachable state, a done state is reachable" (AG EF
//! done), judged over the complete explored state graph.
//!
//! stateright's `eventually` only judges acyclic paths, and timers and retries
//! make cycles, so a livelock would go unreported. Instead this module explores
//! the graph itself (breadth-first, so the first stuck state found has a
//! shortest path; depth-first for the replicated protocol, whose graph is
//! too big for a breadth-first frontier, so its paths are not the shortest),
//! keeps every edge, walks backwards from the done states, and
//! reports any reachable state that cannot get there.
//!
//! The graph is the model's own: when an actor is down for good, its states
//! are already reduced by dropping messages that can change nothing now or
//! later (`TwopcModel::drop_mail_of_the_dead`), which merges states with the
//! same futures and leaves the verdict unchanged.
//!
//! Bounds: the restart budget restricts the environment (no coordinator crash
//! once it is spent, see `TwopcModel::allowed`), so the real protocol is
//! explored completely and nothing is cut off. Only variants whose memory
//! grows past the configuration's limits (or a non-duplicating network past
//! its in-flight bound) have successors outside the boundary. Such *cut-off*
//! states are counted and reported on their own, and never excuse a stuck
//! state: a state whose only way forward leaves the explored graph cannot
//! reach done *in* it, and fails the analysis.

use crate::config::{NetworkKind, COORDINATOR};
use crate::system::{participants, Step, SysState, TwopcModel};
use stateright::actor::Network;
use stateright::Model;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// The result of a liveness analysis.
pub struct Liveness {
    /// Reachable states within the boundary.
    pub states: usize,
    /// Edges between them.
    pub edges: usize,
    /// States where everything is done.
    pub done: usize,
    /// States with a successor outside the boundary (their future is not
    /// fully explored; they are not counted as live).
    pub cut_off: usize,
    /// Reachable states from which no done state is reachable in the graph.
    pub stuck: usize,
    /// Of the stuck states, those that can reach a cut-off one (whether they
    /// are truly stuck is not known, but they do not pass).
    pub stuck_beyond_bounds: usize,
    /// A shortest path to a stuck state, if any.
    pub stuck_path: Option<Vec<(SysState, Option<Step>)>>,
    /// A shortest path to a stuck state in which a participant holds a
    /// prepared transaction while the coordinator is down: 2PC's blocking.
    pub blocked_path: Option<Vec<(SysState, Option<Step>)>>,
    /// Time taken.
    pub elapsed: Duration,
}

impl Liveness {
    /// Whether every reachable state can reach done.
    pub fn holds(&self) -> bool {
        self.stuck == 0
    }
}

fn fingerprint(s: &SysState) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Explore `model` completely and judge AG EF done. `progress` is called about
/// once a second with the number of states found so far.
pub fn analyze(model: &TwopcModel, mut progress: impl FnMut(usize)) -> Liveness {
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut index: HashMap<u64, u32> = HashMap::new();
    // For each state: (parent, action index at parent), for path rebuilding.
    let mut parent: Vec<(u32, u32)> = Vec::new();
    let mut preds: Vec<Vec<u32>> = Vec::new();
    let mut live: Vec<bool> = Vec::new(); // done: seeds of the backward walk
    let mut cut: Vec<bool> = Vec::new(); // has a successor outside the boundary
    let mut queue: VecDeque<(u32, SysState)> = VecDeque::new();
    let (mut edges, mut done, mut cut_off) = (0usize, 0usize, 0usize);

    for (i, s) in model.init_states().into_iter().enumerate() {
        if !model.within_boundary(&s) {
            continue;
        }
        if let Entry::Vacant(e) = index.entry(fingerprint(&s)) {
            let id = parent.len() as u32;
            e.insert(id);
            parent.push((u32::MAX, i as u32));
            preds.push(Vec::new());
            live.push(false);
            cut.push(false);
            queue.push_back((id, s));
        }
    }
    let lossy = model.cfg.network == NetworkKind::Udp;
    let mut actions = Vec::new();
    // Breadth-first (shortest paths to report) unless the graph is too big to
    // hold its frontier in memory: then depth-first, whose frontier is the
    // current path's unexplored siblings (every state is still explored).
    let depth_first = model.cfg.protocol == crate::config::Protocol::Replicated;
    while let Some((id, state)) = if depth_first {
        queue.pop_back()
    } else {
        queue.pop_front()
    } {
        if model.is_done(&state) {
            live[id as usize] = true;
            done += 1;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        let mut was_cut = false;
        // Successors: every action, and on a lossy network the loss of
        // everything in flight (numbered after the actions).
        let lose_all = lossy && state.network.len() > 0;
        let lost = lose_all.then(|| lose_in_flight(&state));
        let successors = actions
            .iter()
            .map(|a| model.next_state(&state, a.clone()))
            .chain(lost.map(Some));
        for (ai, next) in successors.enumerate() {
            let Some(next) = next else {
                continue;
            };
            if !model.within_boundary(&next) {
                was_cut = true;
                continue;
            }
            let next_id = match index.entry(fingerprint(&next)) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    let nid = parent.len() as u32;
                    e.insert(nid);
                    parent.push((id, ai as u32));
                    preds.push(Vec::new());
                    live.push(false);
                    cut.push(false);
                    queue.push_back((nid, next));
                    nid
                }
            };
            if next_id != id {
                preds[next_id as usize].push(id);
                edges += 1;
            }
        }
        if was_cut {
            cut_off += 1;
            cut[id as usize] = true;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            progress(parent.len());
            last_report = Instant::now();
        }
    }

    // Backward reachability from the done states, and from the cut-off ones
    // (only to say which stuck states touch the boundary).
    let can_finish = backward(&preds, &live);
    let can_leave = backward(&preds, &cut);
    let stuck = can_finish.iter().filter(|x| !**x).count();
    let stuck_beyond_bounds = (0..can_finish.len())
        .filter(|i| !can_finish[*i] && can_leave[*i])
        .count();
    // States are numbered in BFS order, so the first stuck one is shallowest.
    let stuck_path = can_finish
        .iter()
        .position(|x| !*x)
        .map(|i| rebuild_path(model, &parent, i as u32));
    let blocked_path = (0..can_finish.len())
        .filter(|i| !can_finish[*i])
        .map(|i| rebuild_path(model, &parent, i as u32))
        .find(|path| {
            let last = &path.last().expect("a path has a state").0;
            last.crashed[COORDINATOR] && participants(last).any(|(_, p)| !p.data.holds.is_empty())
        });
    Liveness {
        states: parent.len(),
        edges,
        done,
        cut_off,
        stuck,
        stuck_beyond_bounds,
        stuck_path,
        blocked_path,
        elapsed: start.elapsed(),
    }
}

/// Marks every state from which a `seed` state is reachable.
fn backward(preds: &[Vec<u32>], seed: &[bool]) -> Vec<bool> {
    let mut reached = seed.to_vec();
    let mut work: Vec<u32> = (0..seed.len() as u32)
        .filter(|i| seed[*i as usize])
        .collect();
    while let Some(i) = work.pop() {
        for &p in &preds[i as usize] {
            if !reached[p as usize] {
                reached[p as usize] = true;
                work.push(p);
            }
        }
    }
    reached
}

/// The state after the network lost every message in flight.
fn lose_in_flight(state: &SysState) -> SysState {
    let mut next = state.clone();
    next.network = Network::new_unordered_duplicating([]);
    next
}

fn rebuild_path(
    model: &TwopcModel,
    parent: &[(u32, u32)],
    mut i: u32,
) -> Vec<(SysState, Option<Step>)> {
    let mut action_indices = Vec::new();
    while parent[i as usize].0 != u32::MAX {
        let (p, ai) = parent[i as usize];
        action_indices.push(ai as usize);
        i = p;
    }
    let init_index = parent[i as usize].1 as usize;
    action_indices.reverse();
    let mut state = model.init_states().swap_remove(init_index);
    let mut steps = Vec::new();
    let mut actions = Vec::new();
    for ai in action_indices {
        actions.clear();
        model.actions(&state, &mut actions);
        let (step, next) = match actions.get(ai) {
            Some(action) => {
                let next = model.next_state(&state, action.clone());
                (
                    Step::Action(action.clone()),
                    next.expect("a recorded step replays"),
                )
            }
            None => (Step::LoseInFlight, lose_in_flight(&state)),
        };
        steps.push((state, Some(step)));
        state = next;
    }
    steps.push((state, None));
    steps
}
