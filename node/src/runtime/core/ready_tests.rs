//! The one executor of a [`Ready`] (`ready.rs`), against effects that
//! record what they are asked to do: the order it runs a batch in, that no
//! send that needs the batch's fsync leaves before it, and that a stop at a
//! [`Point`] (the simulator's crash) ends the batch there. The shell
//! (`ready::run`, awaited) and the simulator (`ready::run_now`) call the
//! same function; the last test runs one batch through both doors.

use super::ready::{run, run_now, Command};
use super::tests::{from_coordinator, prepare, to_coordinator, to_coordinator_synced, wallet, yes};
use super::*;

/// What the executor asked for, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Did {
    Send(Outgoing),
    Stage(Storage),
    Sync,
    At(Point),
}

/// Effects that record, and stop at `stop_at` if given.
#[derive(Default)]
struct Recorder {
    did: Vec<Did>,
    stop_at: Option<Point>,
}

impl Effects for Recorder {
    type Stop = Point;

    async fn send(&mut self, out: Outgoing) {
        self.did.push(Did::Send(out));
    }

    fn stage(&mut self, save: Storage) -> Result<(), Point> {
        self.did.push(Did::Stage(save));
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), Point> {
        self.did.push(Did::Sync);
        Ok(())
    }

    fn at(&mut self, point: Point) -> Result<(), Point> {
        self.did.push(Did::At(point));
        match self.stop_at {
            Some(stop) if stop == point => Err(point),
            _ => Ok(()),
        }
    }
}

fn peer_accept() -> Outgoing {
    Outgoing::Peer {
        to: "127.0.0.1:7101".parse().unwrap(),
        msg: Box::new(Msg::AskEpoch { epoch: 1 }),
        waited: 0,
    }
}

/// A batch with something of every kind: an early send, a save, an fsync,
/// two sends that wait for it.
fn full_batch(save: Storage) -> Ready {
    Ready {
        sends: vec![peer_accept()],
        save: Some(save),
        sync: true,
        sends_after_sync: vec![to_coordinator(yes(1)), to_coordinator(yes(2))],
        ..Ready::default()
    }
}

fn some_storage() -> Storage {
    wallet(10).state().storage()
}

#[test]
fn a_batch_runs_in_the_one_legal_order() {
    let save = some_storage();
    let mut fx = Recorder::default();
    assert_eq!(run_now(full_batch(save.clone()), &mut fx), Ok(()));
    assert_eq!(
        fx.did,
        vec![
            Did::Send(peer_accept()),
            Did::Stage(save),
            Did::At(Point::BeforeSync),
            Did::Sync,
            Did::At(Point::AfterSync),
            Did::At(Point::BeforeSend(0)),
            Did::Send(to_coordinator(yes(1))),
            Did::At(Point::BeforeSend(1)),
            Did::Send(to_coordinator(yes(2))),
        ]
    );
}

/// A batch with nothing to do still passes its barrier: the simulator's
/// crash points between a stage and a sync exist in every batch.
#[test]
fn an_empty_batch_still_passes_the_barrier() {
    assert_eq!(
        Ready::default().commands(),
        vec![Command::Barrier { fsync: false }]
    );
    let mut fx = Recorder::default();
    assert_eq!(run_now(Ready::default(), &mut fx), Ok(()));
    assert_eq!(
        fx.did,
        vec![Did::At(Point::BeforeSync), Did::At(Point::AfterSync)]
    );
}

/// A wallet's vote reveals its hold: from a real core's batch, the vote
/// leaves only after the fsync that makes the hold durable. (Swap the
/// barrier and the late sends in `Ready::commands` and this fails.)
#[test]
fn a_send_that_needs_the_fsync_never_leaves_before_it() {
    let mut core = wallet(10);
    from_coordinator(&mut core, prepare(1));
    let ready = core.ready(Instant::now());
    assert!(ready.sync && ready.save.is_some(), "{ready:?}");
    let mut fx = Recorder::default();
    assert_eq!(run_now(ready, &mut fx), Ok(()));
    let stage = fx.did.iter().position(|d| matches!(d, Did::Stage(_)));
    let sync = fx.did.iter().position(|d| *d == Did::Sync);
    let vote = fx
        .did
        .iter()
        .position(|d| *d == Did::Send(to_coordinator_synced(yes(1))));
    let (Some(stage), Some(sync), Some(vote)) = (stage, sync, vote) else {
        panic!("a stage, a sync and the vote: {:?}", fx.did);
    };
    assert!(stage < sync && sync < vote, "{:?}", fx.did);
}

/// A stop at a point (the simulator's crash) ends the batch there: nothing
/// listed after it happens.
#[test]
fn a_stop_at_a_point_ends_the_batch_there() {
    let save = some_storage();
    for (stop, done) in [
        (Point::BeforeSync, 3),
        (Point::AfterSync, 5),
        (Point::BeforeSend(0), 6),
        (Point::BeforeSend(1), 8),
    ] {
        let mut fx = Recorder {
            stop_at: Some(stop),
            ..Recorder::default()
        };
        assert_eq!(run_now(full_batch(save.clone()), &mut fx), Err(stop));
        assert_eq!(fx.did.len(), done, "{stop:?}: {:?}", fx.did);
        assert_eq!(fx.did.last(), Some(&Did::At(stop)));
    }
}

/// The shell awaits [`run`] on tokio, the simulator calls [`run_now`]: one
/// walk, the same effects asked for in the same order.
#[tokio::test]
async fn the_shell_and_the_simulator_walk_a_batch_alike() {
    let save = some_storage();
    let mut shell = Recorder::default();
    run(full_batch(save.clone()), &mut shell).await.unwrap();
    let mut sim = Recorder::default();
    run_now(full_batch(save), &mut sim).unwrap();
    assert_eq!(shell.did, sim.did);
    assert_eq!(shell.did.len(), 9);
}
