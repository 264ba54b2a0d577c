//! The AG EF done analysis: it passes the normal configurations (crashes with
//! recovery included) and finds 2PC's blocking when the coordinator never
//! recovers.

use twopc_checks::config::{Config, NetworkKind, Reuse, Role, COORDINATOR};
use twopc_checks::liveness::analyze;
use twopc_checks::system::participants;

fn one_client() -> Config {
    Config {
        clients: 1,
        ..Config::default()
    }
}

#[test]
fn live_without_crashes() {
    let result = analyze(&one_client().into_model(), |_| {});
    assert!(result.holds(), "{} stuck states", result.stuck);
    assert!(result.done > 0 && result.states > result.done);
}

#[test]
fn live_when_crashed_actors_recover() {
    let cfg = Config {
        max_crashes: 1,
        ..one_client()
    };
    let model = cfg.into_model();
    let result = analyze(&model, |_| {});
    assert!(result.holds(), "{} stuck states", result.stuck);
    // The restart budget restricts the environment: nothing is cut off, so
    // nothing is excused (a stuck state could not hide behind the bound).
    assert_eq!(result.cut_off, 0);
    assert_eq!(result.stuck_beyond_bounds, 0);
    assert!(result.done > 0 && result.states > result.done);
}

/// One write (the `one-write` matrix configuration): every request still
/// gets its outcome and no hold is left, whichever actor crashes and
/// recovers: a late vote is fenced, not waited for for ever, and a restart
/// resolves what its predecessor told. (`FenceNotResent` shows this
/// analysis failing there: tests/mutants.rs.)
/// Split in two (the coordinator crashing and restarting; the
/// participants and the client crashing), since the graph with every role
/// crashable is 22.6 million states (see `one_write_crashing`).
#[test]
fn live_under_one_write_when_crashed_actors_recover() {
    use twopc_checks::config::one_write_crashing;
    for roles in [
        &[Role::Coordinator][..],
        &[Role::Wallet, Role::Order, Role::Client],
    ] {
        let result = analyze(&one_write_crashing(roles).into_model(), |_| {});
        assert!(result.holds(), "{roles:?}: {} stuck states", result.stuck);
        assert_eq!(result.cut_off, 0);
        assert_eq!(result.stuck_beyond_bounds, 0);
        assert!(result.done > 0 && result.states > result.done);
    }
}

/// A fresh incarnation retrying the id, and a lookup after the purchase,
/// each get an answer: a retry that is told "unknown" is done, and nothing
/// waits on an id that will never start.
#[test]
fn live_with_a_retried_and_looked_up_id() {
    let cfg = Config {
        reuse: vec![Reuse::Same],
        afterwards: vec![Reuse::Lookup],
        ..one_client()
    };
    let result = analyze(&cfg.into_model(), |_| {});
    assert!(result.holds(), "{} stuck states", result.stuck);
    assert_eq!(result.cut_off, 0);
}

/// The coordinator's restarts are explored up to the budget, and no further:
/// once spent, the model offers no coordinator crash.
#[test]
fn the_restart_budget_removes_coordinator_crashes_once_spent() {
    use stateright::actor::{ActorModelAction, Id};
    use stateright::Model;
    use twopc_checks::system::coordinator;
    let cfg = Config {
        max_crashes: 1,
        crashable: [Role::Coordinator].into(),
        ..one_client()
    };
    let model = cfg.into_model();
    let crash = ActorModelAction::Crash(Id::from(COORDINATOR));
    let recover = ActorModelAction::Recover(Id::from(COORDINATOR));
    let init = model.init_states().remove(0);
    let mut actions = Vec::new();
    model.actions(&init, &mut actions);
    assert!(
        actions.contains(&crash),
        "epoch 1: the coordinator may crash"
    );
    let down = model.next_state(&init, crash.clone()).unwrap();
    let up = model.next_state(&down, recover).unwrap();
    assert_eq!(coordinator(&up).epoch, 2);
    actions.clear();
    model.actions(&up, &mut actions);
    assert!(!actions.contains(&crash), "budget spent: no more crashes");
    assert!(!actions.is_empty());
}

#[test]
fn coordinator_that_never_recovers_blocks_prepared_participants() {
    let cfg = Config {
        max_crashes: 1,
        crashable: [Role::Coordinator].into(),
        never_recover: [Role::Coordinator].into(),
        ..one_client()
    };
    let model = cfg.into_model();
    let result = analyze(&model, |_| {});
    assert!(!result.holds());
    let path = result
        .blocked_path
        .expect("a path to prepared participants waiting forever");
    let last = &path.last().unwrap().0;
    assert!(last.crashed[COORDINATOR]);
    assert!(participants(last).any(|(_, p)| !p.data.holds.is_empty()));
    assert!(!model.is_done(last));
}

/// A lossy network matters to liveness: the analysis explores the loss of
/// everything in flight, so it sees more states than the safety check, which
/// does not need to (a lost message is one never delivered).
#[test]
fn loss_is_explored() {
    let lossy = analyze(&one_client().into_model(), |_| {});
    let safety = twopc_checks::check(
        one_client().into_model(),
        1,
        std::time::Duration::from_secs(3600),
        |_, _, _| {},
    );
    assert!(lossy.holds());
    assert!(
        lossy.states > safety.unique,
        "{} vs {}",
        lossy.states,
        safety.unique
    );
    // A non-duplicating network keeps one copy per send, so retransmissions
    // fill it up to the in-flight bound. States cut off there are reported,
    // and never counted as live: the analysis does not pass on them (which
    // is why `twopc-check liveness` accepts only the udp network).
    // (Four in flight, not the default ten: at ten the analysis needs
    // more than the 24 GB of the CI machine; four already cuts off.)
    let reliable = Config {
        network: NetworkKind::Unordered,
        max_in_flight: 4,
        ..one_client()
    };
    let bounded = analyze(&reliable.into_model(), |_| {});
    assert!(bounded.cut_off > 0);
    assert!(bounded.stuck_beyond_bounds > 0);
    assert!(!bounded.holds());
}

/// The coordinator's disk replaced by an empty one, whatever it owed: every
/// request still gets its outcome, a purchase after the loss included, and
/// no hold is left, but for what both participants held when the log was
/// lost: in doubt, it waits for an operator (and so does its client). (`learn-not-retried` shows this analysis
/// failing in this very configuration: tests/mutants.rs.)
#[test]
fn live_when_the_coordinator_disk_is_replaced() {
    let cfg = twopc_checks::matrix::entries()
        .into_iter()
        .find(|e| e.name == "coordinator-disk-lost")
        .expect("the matrix entry")
        .config;
    let result = twopc_checks::liveness::analyze(&cfg.into_model(), |_| {});
    assert!(result.holds(), "stuck: {}", result.stuck);
    assert_eq!(result.cut_off, 0);
}
