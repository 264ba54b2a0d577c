//! The errors of the tools that run a whole cluster on this machine: a
//! local cluster (the operator tools' `local`, in tasks or child processes), `twopc
//! demo` and `twopc bench`. Uses nothing of the crate.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// A local cluster failed to start, answer or stop.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// Its cluster file could not be written.
    #[error("cannot write {path}: {source}")]
    WriteClusterFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A node process could not be started.
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A node process exited while the cluster was starting.
    #[error("node {name} exited with {status} at its start")]
    ExitedAtStart {
        /// The node.
        name: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// A node did not answer status in time after its start.
    #[error("{name} did not answer status within {secs}s of its start")]
    SilentAtStart {
        /// The node.
        name: String,
        /// How long it was given, in seconds.
        secs: u64,
    },
    /// No coordinator replica leads.
    #[error("no coordinator replica leads")]
    NoLeader,
    /// A node did not answer status.
    #[error("{name} did not answer status")]
    NoStatus {
        /// The node.
        name: String,
    },
    /// No node process has this name (or the nodes run in tasks).
    #[error("no node process named {name}")]
    NoSuchProcess {
        /// The name asked for.
        name: String,
    },
    /// A node process could not be killed.
    #[error("cannot kill {name} (pid {pid})")]
    Kill {
        /// The node.
        name: String,
        /// Its process id.
        pid: u32,
    },
    /// A node process exited with a failure when told to stop.
    #[error("node {name} exited with {status}")]
    Exited {
        /// The node.
        name: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// A node process did not stop on SIGTERM in time (it was killed).
    #[error("node {name} did not stop on SIGTERM")]
    DidNotStop {
        /// The node.
        name: String,
    },
    /// No loopback port was free for a node.
    #[error("no free IPv4 loopback port")]
    NoFreePort,
    /// The cluster's temporary directory could not be made.
    #[error("cannot create a temporary directory in {parent}: {source}")]
    TempDir {
        /// Where it was to be made.
        parent: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// `twopc demo` found something wrong.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The cluster did not settle (every transaction decided) in time.
    #[error("{cluster} did not settle within {secs}s")]
    NotSettled {
        /// Which cluster: `the cluster`, `the replicated cluster`.
        cluster: &'static str,
        /// How long it was given, in seconds.
        secs: u64,
    },
    /// The final balances and stock do not add up.
    #[error("money or stock not conserved")]
    NotConserved,
    /// A purchase got no outcome.
    #[error("{purchase} got no outcome")]
    NoOutcome {
        /// The purchase, described.
        purchase: String,
    },
    /// No coordinator replica led in time.
    #[error("no coordinator replica leads after {secs}s")]
    NoLeader {
        /// How long it was given, in seconds.
        secs: u64,
    },
}

/// `twopc bench` could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The cluster did not settle before the measured run.
    #[error("cluster did not settle before the run")]
    NotSettled,
    /// A run's directory could not be made.
    #[error("cannot create {path}: {source}")]
    CreateRunDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `--timeline` without `--processes`.
    #[error("--timeline needs --processes: each node writes its timeline when its process stops")]
    TimelineNeedsProcesses,
    /// A run's timeline files could not be read.
    #[error("cannot read the run's timeline: {0}")]
    Timeline(String),
}
