//! Recording what the actor did, step by step, for `twopc-check replay`
//! (the format is `twopc_model::trace`, described in `docs/trace.md`).
//!
//! The runtime's core hands every record to a [`Tracer`]: the
//! sink decides where records go and stamps their time. [`FileTracer`]
//! appends JSON lines to a file (`twopc node --trace FILE`); a simulator
//! plugs in its own sink with simulated time. With no tracer set (the
//! default) the core builds no record at all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use twopc_model::trace::Record;

/// Where a core's trace records go.
pub trait Tracer: Send {
    /// The time to stamp on a record taken at `now`, in microseconds. Real
    /// runs use the wall clock (so several processes' traces interleave);
    /// a simulation its own clock.
    fn time(&mut self, now: Instant) -> u64;
    /// Takes one record.
    fn record(&mut self, record: &Record);
}

/// Appends one JSON line per record to a file, with one `write` each: a
/// record is in the kernel before any datagram of its step leaves, so it
/// survives `kill -9` (not a power cut: trace files are not fsync'd).
pub struct FileTracer {
    path: PathBuf,
    file: Option<File>,
    line: Vec<u8>,
}

impl FileTracer {
    /// Opens (creates, or appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<FileTracer> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileTracer {
            path: path.to_path_buf(),
            file: Some(file),
            line: Vec::new(),
        })
    }
}

impl Tracer for FileTracer {
    fn time(&mut self, _now: Instant) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }

    fn record(&mut self, record: &Record) {
        let Some(file) = &mut self.file else { return };
        self.line.clear();
        let written = serde_json::to_writer(&mut self.line, record)
            .map_err(std::io::Error::from)
            .and_then(|()| {
                self.line.push(b'\n');
                file.write_all(&self.line)
            });
        if let Err(e) = written {
            // A trace is a testing aid: losing it must not stop the node,
            // but a partial trace must not pass for a whole one either.
            tracing::error!(path = %self.path.display(), "trace stopped, cannot write: {e}");
            self.file = None;
        }
    }
}

/// Keeps every record in memory (tests, simulations). Give every node's
/// tracer the same `origin`, so their times compare.
#[derive(Clone)]
pub struct MemTracer {
    /// The records so far, shared with whoever reads them.
    pub records: std::sync::Arc<std::sync::Mutex<Vec<Record>>>,
    /// The time stamped on records: microseconds since this instant.
    pub origin: Instant,
}

impl MemTracer {
    /// An empty trace whose times count from `origin`.
    pub fn new(origin: Instant) -> MemTracer {
        MemTracer {
            records: Default::default(),
            origin,
        }
    }

    /// The records so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().expect("no panics").clone()
    }
}

impl Tracer for MemTracer {
    fn time(&mut self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_micros() as u64
    }

    fn record(&mut self, record: &Record) {
        self.records.lock().expect("no panics").push(record.clone());
    }
}
