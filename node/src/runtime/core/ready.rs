//! A batch's output and its one executor.
//!
//! [`Core::ready`](super::Core::ready) ends a batch with a [`Ready`]: what
//! may leave at once, the save to stage, whether to fsync, what may leave
//! only after the fsync. [`Ready::commands`] is the one place that puts
//! these in the one legal order (persist before send), and [`run`] the one
//! function that carries them out, against [`Effects`]: the tokio shell
//! (`shell.rs`: a socket, the store, the replicas' links) and the
//! deterministic simulator (`sim/flush.rs`: a simulated network and disk)
//! each implement them, and neither walks a `Ready` itself — as openraft's
//! engine emits `Command`s that one `run_command` runs.
//!
//! The simulator crashes a node in the middle of a batch: [`run`] stops at
//! every [`Point`] between two commands where a crash can happen and asks
//! [`Effects::at`] whether to go on.
//!
//! **Why `async`**: the shell's sends wait for the socket (and it lets the
//! replicas' links write before it blocks in an fsync), so the executor
//! awaits each effect. The simulator's effects never wait: it runs the same
//! function to completion in one poll ([`run_now`]). A cursor that the
//! caller drives step by step would need both callers to match on the
//! commands again — two walks, which is what this module replaces.

use super::{Outgoing, TimerCmd};
use std::future::Future;
use twopc_model::{Storage, Timer};

/// What one batch asks the shell to do. The parts are here for tests and
/// logs; the order in which they happen is [`Ready::commands`]'s, and
/// [`run`] is the only thing that carries them out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Messages that may leave at once: datagrams held back by an injected
    /// fault after the saves they depend on were already durable, and a
    /// leading replica's `Accept`s (see "the one exception" in the doc of
    /// `core/batch.rs`).
    pub sends: Vec<Outgoing>,
    /// The durable state to stage: the newest `Save` of the batch. Each is the actor's whole
    /// durable state, so it includes every earlier one, and nothing of the
    /// batch is sent before it is durable. Keeping one rather than one per
    /// message keeps a batch's memory at one copy of the state (a batch of
    /// 64 prepares at a participant with a long history held 64 copies).
    pub save: Option<Storage>,
    /// Whether everything staged must be durable before `sends_after_sync`
    /// leave: persist before send.
    pub sync: bool,
    /// Datagrams that may leave only once every save staged so far is
    /// durable, in the order the actor emitted them.
    pub sends_after_sync: Vec<Outgoing>,
    /// The timer commands of the batch, in emitted order (already applied
    /// to the core's deadlines: not commands to run).
    pub timers: Vec<TimerCmd>,
    /// The timers that fired in the batch, in order (the simulation checks
    /// each was set and not cancelled, as the model requires).
    pub fired: Vec<Timer>,
}

/// One thing a batch does, in the order [`Ready::commands`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send a message (to the network, or to a peer replica's link).
    Send(Outgoing),
    /// Append the batch's save to the log: written, not durable yet.
    Stage(Storage),
    /// Persist before send, listed once per batch after its `Stage`: no
    /// `Send` listed after the barrier leaves before every save staged so
    /// far is durable. `fsync` says whether that takes an fsync now; when
    /// not, every save a later `Send` can depend on is durable already (an
    /// earlier batch's fsync), or nothing is sent after it.
    Barrier {
        /// Make everything staged durable now.
        fsync: bool,
    },
}

/// An instant between two commands where [`run`] asks [`Effects::at`]
/// whether to go on (the simulator crashes a node there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// The barrier is reached: the early sends have left and the save is
    /// staged; the fsync (if any) comes next.
    BeforeSync,
    /// The barrier is passed: the fsync (if any) returned.
    AfterSync,
    /// Before the `k`-th send after the barrier (from 0).
    BeforeSend(usize),
}

impl Ready {
    /// The batch's commands in the one legal order: the sends that may
    /// leave at once; the save staged; the barrier (fsync if `sync`); the
    /// sends that depend on it, in emitted order.
    pub fn commands(self) -> Vec<Command> {
        let Ready {
            sends,
            save,
            sync,
            sends_after_sync,
            timers: _, // applied to the deadlines by the core already
            fired: _,
        } = self;
        let mut commands = Vec::with_capacity(sends.len() + sends_after_sync.len() + 2);
        commands.extend(sends.into_iter().map(Command::Send));
        commands.extend(save.map(Command::Stage));
        commands.push(Command::Barrier { fsync: sync });
        commands.extend(sends_after_sync.into_iter().map(Command::Send));
        commands
    }
}

/// What running a batch's commands does to the world: a socket and a store
/// in the shell, a simulated network and disk in the simulator.
pub trait Effects {
    /// Why a batch stops before its end: a storage failure (the shell), or
    /// a crash the simulator chose.
    type Stop;

    /// Sends one message.
    fn send(&mut self, out: Outgoing) -> impl Future<Output = ()>;

    /// Appends a save to the log (not durable yet).
    fn stage(&mut self, save: Storage) -> Result<(), Self::Stop>;

    /// Makes everything staged durable (fsync).
    fn sync(&mut self) -> impl Future<Output = Result<(), Self::Stop>>;

    /// Whether to go on at `point` (the shell always does).
    fn at(&mut self, point: Point) -> Result<(), Self::Stop> {
        let _ = point;
        Ok(())
    }
}

/// Runs a batch's commands against `fx`, in [`Ready::commands`]' order:
/// the one executor of a [`Ready`]. Stops at the first `Err`.
pub async fn run<E: Effects>(ready: Ready, fx: &mut E) -> Result<(), E::Stop> {
    // Counts the sends after the barrier once it is passed.
    let mut after_barrier: Option<usize> = None;
    for command in ready.commands() {
        match command {
            Command::Send(out) => {
                if let Some(k) = &mut after_barrier {
                    fx.at(Point::BeforeSend(*k))?;
                    *k += 1;
                }
                fx.send(out).await;
            }
            Command::Stage(save) => fx.stage(save)?,
            Command::Barrier { fsync } => {
                fx.at(Point::BeforeSync)?;
                if fsync {
                    fx.sync().await?;
                }
                fx.at(Point::AfterSync)?;
                after_barrier = Some(0);
            }
        }
    }
    Ok(())
}

/// [`run`] for effects that never wait (the simulator's): to completion,
/// in one poll.
///
/// # Panics
/// If an effect waits.
pub fn run_now<E: Effects>(ready: Ready, fx: &mut E) -> Result<(), E::Stop> {
    use std::task::{Context, Poll, Waker};
    let running = std::pin::pin!(run(ready, fx));
    match running.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("run_now: an effect waited"),
    }
}
