//! Random walks rebuild exactly: in every configuration of the CI matrix,
//! both protocols, each walk taken is replayed from what was recorded (the
//! initial state's index and each step's action index, as the explorer
//! opens a path) and compared state by state with the states the walk
//! judged. stateright 0.31's own simulation recorded the tries that changed
//! nothing as steps, so its paths did not rebuild; the walks here meet such
//! tries all the time (asserted below), so this test would see that bug.

use twopc_checks::config::{Config, Protocol};
use twopc_checks::matrix;
use twopc_checks::walk::{rebuild, take, Mismatch, Rng};

/// Walks per configuration and their longest length.
const WALKS: usize = 150;
const DEPTH: usize = 80;

#[test]
fn every_walk_in_every_matrix_configuration_rebuilds_state_by_state() {
    let mut protocols = std::collections::BTreeSet::new();
    for entry in matrix::entries() {
        let model = entry.config.clone().into_model();
        let mut rng = Rng::new(0x0077_700c);
        let (mut ignored, mut steps) = (0, 0);
        for _ in 0..WALKS {
            let walk = take(&model, &mut rng, DEPTH, |_, _| true);
            let path = rebuild(&model, &walk).unwrap_or_else(|m| {
                panic!(
                    "{}: walk {} does not rebuild: {m:?}",
                    entry.name,
                    walk.encoded()
                )
            });
            assert_eq!(path.encode(&model), walk.encoded(), "{}", entry.name);
            let states = path.into_states();
            assert_eq!(states.len(), walk.steps.len() + 1);
            ignored += walk.ignored;
            steps += walk.steps.len();
        }
        // The walks took real steps and met tries that changed nothing,
        // which is what broke stateright's recorded paths.
        assert!(steps > WALKS * 5, "{}: only {steps} steps", entry.name);
        assert!(ignored > 0, "{}: no ignored try met", entry.name);
        protocols.insert(format!("{:?}", entry.config.protocol));
    }
    assert_eq!(protocols.len(), 2, "both protocols walked: {protocols:?}");
}

#[test]
fn a_walk_recorded_wrongly_does_not_rebuild() {
    let model = Config {
        protocol: Protocol::Replicated,
        clients: 1,
        ..Config::default()
    }
    .into_model();
    let mut rng = Rng::new(3);
    let walk = loop {
        let w = take(&model, &mut rng, 40, |_, _| true);
        if w.steps.len() > 10 && w.ignored > 0 {
            break w;
        }
    };
    assert!(rebuild(&model, &walk).is_ok());

    // One step's action replaced by another action of the same state.
    let mut other = walk.clone();
    other.steps[5] = if walk.steps[5] == 0 { 1 } else { 0 };
    match rebuild(&model, &other) {
        Err(Mismatch::OtherState { step: 6 }) | Err(Mismatch::Ignored { step: 6 }) => {}
        r => panic!(
            "a changed step went unnoticed: {:?}",
            r.map(|p| p.encode(&model))
        ),
    }

    // An index past the end of the state's actions.
    let mut past = walk.clone();
    past.steps[3] = 10_000;
    assert_eq!(
        rebuild(&model, &past).err(),
        Some(Mismatch::NoAction {
            step: 4,
            index: 10_000
        })
    );

    // A state recorded that the model does not reach.
    let mut forged = walk.clone();
    forged.fingerprints[7] ^= 1;
    assert_eq!(
        rebuild(&model, &forged).err(),
        Some(Mismatch::OtherState { step: 7 })
    );
}

#[test]
fn the_same_seed_takes_the_same_walks() {
    let model = Config::default().into_model();
    let walks = |seed| {
        let mut rng = Rng::new(seed);
        (0..20)
            .map(|_| take(&model, &mut rng, 50, |_, _| true))
            .collect::<Vec<_>>()
    };
    assert_eq!(walks(9), walks(9));
    assert_ne!(walks(9), walks(10));
}
