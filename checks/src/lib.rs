//! twopc-checks: model-checking runs of the twopc protocol.
//!
//! - [`config`]: the configurations people check.
//! - [`system`]: the stateright model built from one, and how to read its states.
//! - [`history`]: promises made on the wire, as compact bit sets.
//! - [`properties`]: safety (`always`) and reachability (`sometimes`) properties.
//! - [`liveness`]: the AG EF done analysis over the explored graph.
//! - [`mutants`]: deliberately broken protocol variants the checker must catch.
//! - [`shared`]: messages, states and storage shared and hashed once.
//! - [`report`]: counterexamples in plain words.
//! - [`run`]: exhaustive runs and their verdicts.
//! - [`replay`]: traces of running nodes checked step by step against the model.
//! - [`matrix`]: the configurations CI checks exhaustively, with pinned counts.
//! - [`walk`]: seeded random walks whose paths rebuild exactly.

/// mimalloc for every binary that links the checks: an exhaustive search
/// clones and drops states by the million, and with the system allocator
/// `malloc` and `free` took about a quarter of its time
/// (`docs/checking.md`, "How the checker stays fast").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod config;
pub mod history;
pub mod liveness;
pub mod matrix;
pub mod mutants;
pub mod properties;
pub mod replay;
pub mod report;
pub mod run;
pub mod shared;
pub mod system;
pub mod walk;

pub use run::{check, check_with, CheckRun, Strategy, Verdict};

use stateright::{Model, Property};
use system::{SysAction, SysState, TwopcModel};

/// The checked system as stateright sees it: the actor model, filtered by the
/// configuration's crash rules, judged by [`properties`], shown by [`report`].
/// (Written here, above `system`, `properties` and `report`, so that none of
/// them depends on another in a circle.)
impl Model for TwopcModel {
    type State = SysState;
    type Action = SysAction;

    fn init_states(&self) -> Vec<SysState> {
        self.inner
            .init_states()
            .into_iter()
            .map(|s| {
                let mut s = self.bootstrapped(s);
                self.drop_spent_questions(&mut s);
                self.drop_spent_recovery(&mut s);
                self.forget_last_delivery(&mut s);
                s
            })
            .collect()
    }

    fn actions(&self, state: &SysState, actions: &mut Vec<SysAction>) {
        self.inner.actions(state, actions);
        actions.retain(|a| self.allowed(state, a));
    }

    fn next_state(&self, state: &SysState, action: SysAction) -> Option<SysState> {
        let delivered = crate::system::recovery::delivered_recovery(&action);
        let mut next = self.next_unreduced(state, action)?;
        self.consume_recovery(delivered, &mut next);
        self.drop_mail_of_the_dead(&mut next);
        self.drop_spent_questions(&mut next);
        self.drop_spent_recovery(&mut next);
        self.forget_last_delivery(&mut next);
        Some(next)
    }

    fn format_action(&self, action: &SysAction) -> String {
        crate::report::format_action(self, action)
    }

    fn format_step(&self, last: &SysState, action: SysAction) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn as_svg(&self, path: stateright::Path<SysState, SysAction>) -> Option<String> {
        let steps = path.into_vec();
        let init = steps.first()?.0.clone();
        let actions: Vec<SysAction> = steps.into_iter().filter_map(|(_, a)| a).collect();
        self.inner
            .as_svg(stateright::Path::from_actions(&self.inner, init, &actions)?)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::for_config(&self.cfg)
    }

    fn within_boundary(&self, state: &SysState) -> bool {
        Model::within_boundary(&self.inner, state)
    }
}
