//! Seeded random walks for the reductions' tests: each judges what the
//! checker would do in a state against the model without it, step by step.

use super::{SysAction, SysState, TwopcModel};
use stateright::Model;

/// `walks` seeded walks of at most `steps` steps each through `model`'s
/// actions, from `start`. `visit` sees each state before its step; `step`
/// takes the randomly chosen action from it and gives the next state
/// (`None`: the action changes nothing, and the walk stays where it is).
/// A walk ends early in a state without actions.
pub(crate) fn random_walks(
    model: &TwopcModel,
    walks: u64,
    steps: usize,
    start: impl Fn() -> SysState,
    mut visit: impl FnMut(&SysState),
    mut step: impl FnMut(&SysState, SysAction) -> Option<SysState>,
) {
    for walk in 0..walks {
        let mut rng = walk.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut state = start();
        for _ in 0..steps {
            visit(&state);
            let mut actions = Vec::new();
            model.actions(&state, &mut actions);
            if actions.is_empty() {
                break;
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let action = actions.swap_remove((rng % actions.len() as u64) as usize);
            if let Some(next) = step(&state, action) {
                state = next;
            }
        }
    }
}
