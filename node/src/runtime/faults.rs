//! Faults injected on purpose — **testing aids, off by default**. There is no
//! `tc netem` on the test machines, so a node can misbehave itself the way
//! the model checker already assumes UDP and disks may:
//!
//! - drop messages of chosen kinds, in or out (`--fault-drop-in/-out`), or
//!   any protocol message with a probability (`--fault-loss`);
//! - send a datagram twice (`--fault-duplicate`), hold it back for a random time
//!   (`--fault-delay`, up to `--fault-delay-max-ms`), or let the next
//!   datagram overtake it (`--fault-reorder`);
//! - record every datagram in and out to a file (`--fault-capture`), so a
//!   test can replay real, authentic traffic later;
//! - fail an fsync (`--fault-fsync-fail-after N`) or run out of disk space
//!   (`--fault-disk-full-after BYTES`); see `storage/faulty.rs`.
//!
//! Random choices come from one RNG per runtime seeded by `--fault-seed`, so
//! the same seed makes the same choices for the same sequence of messages
//! (timing still varies from run to run on a real machine).
//!
//! Every fault acts only *after* persist-before-send has been satisfied: a
//! delayed or duplicated datagram leaves later than it would have, never
//! earlier than the fsync of the `Save` it depends on.

use crate::runtime::wire::MsgKind;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Faults to inject. The default injects nothing.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Kinds dropped when received.
    pub drop_in: Vec<MsgKind>,
    /// Kinds dropped instead of sent.
    pub drop_out: Vec<MsgKind>,
    /// Probability of dropping any protocol message, in or out.
    pub loss: f64,
    /// Probability that a protocol datagram sent is sent a second time (the
    /// copy is itself subject to delay).
    pub duplicate: f64,
    /// Probability that a protocol datagram sent is held back for a random
    /// time in `0..delay_max`.
    pub delay: f64,
    /// Longest injected delay (also how long a reordered datagram waits at
    /// most for another to overtake it).
    pub delay_max: Duration,
    /// Probability that a protocol datagram sent is held back until the next
    /// one has left (the two swap places).
    pub reorder: f64,
    /// Seed of the fault RNG; `None` picks one at random.
    pub seed: Option<u64>,
    /// Append every datagram received and sent to this file, one line each:
    /// `in|out ADDR HEX` (the peer's address and the datagram's bytes).
    pub capture: Option<PathBuf>,
    /// Storage: the first this-many log fsyncs succeed, the next one fails.
    pub fsync_fail_after: Option<u64>,
    /// Storage: writes fail with "no space left on device" once this many
    /// bytes have been appended to the log by this process.
    pub disk_full_after: Option<u64>,
    /// A deliberately broken runtime rule (the simulation's mutants; see
    /// `crate::runtime::mutant`). `None` in every deployment.
    pub mutant: Option<crate::runtime::mutant::RuntimeMutant>,
}

impl Faults {
    /// Whether any network fault is configured.
    pub fn any_network(&self) -> bool {
        !self.drop_in.is_empty()
            || !self.drop_out.is_empty()
            || self.loss > 0.0
            || self.duplicate > 0.0
            || self.delay > 0.0
            || self.reorder > 0.0
    }
}

/// The capture file of `--fault-capture`: every datagram in and out, one
/// line each. File I/O, so the shell owns it, not the core.
#[derive(Debug, Default)]
pub struct Capture {
    file: Option<std::fs::File>,
}

impl Capture {
    /// Appends to `path` if given. A file that cannot be opened is logged as
    /// an error and not written (capturing is a testing aid).
    pub fn open(path: Option<&std::path::Path>) -> Self {
        let file = path.and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| tracing::error!("cannot open capture file {}: {e}", path.display()))
                .ok()
        });
        Capture { file }
    }

    /// Records a datagram (`dir` is `in` or `out`). A failed write only
    /// disables capturing (it is a testing aid, never fatal).
    pub fn record(&mut self, dir: &str, peer: SocketAddr, bytes: &[u8]) {
        if let Some(f) = &mut self.file {
            let line = format!("{dir} {peer} {}\n", hex::encode(bytes));
            if f.write_all(line.as_bytes()).is_err() {
                self.file = None;
            }
        }
    }
}
