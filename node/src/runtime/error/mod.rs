//! Errors of the node. A bad datagram is not an error of the node: it is a
//! a wire `Reject`, counted and dropped. Everything here stops a command
//! (a storage failure stops the node rather than continue with unknown
//! durability) and says what failed and where.
//!
//! Every variant names one case, so a caller can match it; the errors of
//! the tools that run a whole cluster on this machine (local clusters,
//! `twopc demo`, `twopc bench`) are grouped in `local.rs`. Uses only
//! `crate::runtime::role` (a role or protocol in a message).

mod local;

pub use local::{BenchError, DemoError, LocalClusterError};

use crate::runtime::role::Role;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can stop a `twopc` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster file could not be read.
    #[error("cannot read cluster file {path}: {source}")]
    ClusterRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The cluster file is not a valid cluster description.
    #[error("invalid cluster file {path}: {msg}")]
    ClusterInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        msg: String,
    },
    /// `--name` names no node of the cluster file.
    #[error("no node named {name:?} in the cluster file (its nodes: {known})")]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The names the file has, comma-separated.
        known: String,
    },
    /// A participant's initial levels file could not be read.
    #[error(
        "cannot read {setting} {path}: {source}. The node did not start and changed nothing; \
         make the file readable (or fix {setting} in the cluster file) and start it again"
    )]
    LevelsRead {
        /// The cluster file's setting naming the file (`accounts_file`, `stock_file`).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The cluster file's `[prices]` name a sku that the initial stock
    /// (`[stock]` and `stock_file`) does not have.
    #[error(
        "the cluster file's [prices] names sku {sku:?}, which is in neither [stock] nor \
         stock_file. The node did not start and changed nothing; give the sku initial stock \
         (0 will do) or remove its price"
    )]
    PriceWithoutStock {
        /// The sku.
        sku: String,
    },
    /// A row of a participant's initial levels file is wrong.
    #[error(
        "{setting} {path}, line {line}: {msg}. The node did not start and changed nothing; \
         correct the file and start it again"
    )]
    LevelsInvalid {
        /// The cluster file's setting naming the file (`accounts_file`, `stock_file`).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        msg: String,
    },
    /// A levels file could not be written (local clusters write theirs).
    #[error("cannot write levels file {path}: {source}")]
    LevelsWrite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A trace file (`--trace`) could not be opened.
    #[error("cannot open trace file {path}: {source}")]
    TraceOpen {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A storage file could not be read, written or synced.
    #[error("storage I/O failed on {path}: {source}")]
    StorageIo {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A storage file holds bytes that cannot be trusted.
    #[error(
        "storage file {path} is corrupt at byte {offset}: {reason}. Refusing to start on state \
         that cannot be trusted: restore the data directory from a backup, or move it away to \
         start this node empty (which forgets its balances, stock or decisions)"
    )]
    StorageCorrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A storage log is shorter than what the store recorded as durable:
    /// acknowledged data is gone (not a torn tail, which is only ever the
    /// last, unsynced write).
    #[error(
        "storage file {path} lost data that was synced: {reason}; {synced} bytes of it were \
         durable (recorded in {marker}) but only {valid} bytes of whole records remain (the file \
         holds {len} bytes). A crash can only tear the last, unsynced write, so this is lost \
         acknowledged data, not a torn tail. Refusing to start and changing nothing: restore the \
         data directory from a backup, or move it away to start this node empty (which forgets \
         its balances, stock or decisions)"
    )]
    StorageLost {
        /// The log file.
        path: PathBuf,
        /// The synced-length marker (`DIR/synced`).
        marker: PathBuf,
        /// Bytes of the log the marker records as durable.
        synced: u64,
        /// Bytes of complete, valid records found.
        valid: u64,
        /// Bytes the file holds (0 if it is missing).
        len: u64,
        /// What was found, in words.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {dir} is in use by another process (the lock on {lock} is held); run one node per data directory")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// A socket could not be bound or used.
    #[error("network error on {addr}: {source}")]
    Net {
        /// The address.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The cluster key could not be loaded.
    #[error("cluster key: {0}")]
    Key(String),
    /// A datagram could not be encoded (too large for UDP, say).
    #[error("cannot encode datagram: {0}")]
    Encode(String),
    /// The data directory was claimed by another node (its `NODE` file, or
    /// the header of its log or snapshot).
    #[error("data directory {dir} belongs to node {owner:?}, not {name:?} (see {file})")]
    NotOwner {
        /// The data directory.
        dir: PathBuf,
        /// The node named in that file.
        owner: String,
        /// The node that tried to start on it.
        name: String,
        /// The file naming the owner: `NODE`, a log or the snapshot.
        file: PathBuf,
    },
    /// The data directory holds the state of another role.
    #[error("data directory {dir} holds the state of another role than {role:?}; refusing to overwrite it")]
    WrongRole {
        /// The data directory.
        dir: PathBuf,
        /// The role of the node that tried to start on it.
        role: Role,
    },
    /// A coordinator's data directory holds the state of the other
    /// protocol: a single coordinator's under a replicated cluster, or a
    /// replica's under a 2pc one.
    #[error(
        "data directory {dir} holds {found}, but the cluster file says protocol = \"{protocol}\"; \
         refusing to start (starting on it would ignore that state)"
    )]
    WrongProtocol {
        /// The data directory.
        dir: PathBuf,
        /// The cluster file's protocol.
        protocol: crate::runtime::role::Protocol,
        /// What the directory holds, in words.
        found: &'static str,
    },
    /// A coordinator directory that ran the one-write protocol started
    /// without it (`storage::mode`).
    #[error(
        "the coordinator's directory {} has run the one-write protocol (it holds ONE_WRITE): \
         its log may lack outcomes it told, which two-phase commit would presume aborted, \
         aborting at one participant what the other applied. Put one_write = true back in \
         the cluster file (turning it off is not supported yet; docs/one-write.md)",
        dir.display()
    )]
    OneWriteSwitchedOff {
        /// The data directory.
        dir: PathBuf,
    },
    /// A node stopped on an error it must not continue after: storage
    /// failed, so what is durable is unknown.
    #[error("node {node} stopped: {source}")]
    Fatal {
        /// The node.
        node: String,
        /// What failed.
        source: Box<Error>,
    },
    /// A local cluster (in tasks or child processes) failed to start,
    /// answer or stop.
    #[error(transparent)]
    LocalCluster(#[from] LocalClusterError),
    /// `twopc demo` found something wrong.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// `twopc bench` could not run.
    #[error(transparent)]
    Bench(#[from] BenchError),
    /// A task of this process (a node run in a task, a bench client, a
    /// status probe) panicked or was cancelled.
    #[error("{task} failed: {source}")]
    TaskFailed {
        /// The task, in words (`node wallet`, `status probe`).
        task: String,
        /// What became of it.
        source: tokio::task::JoinError,
    },
    /// This executable cannot be found, to start nodes as child processes.
    #[error("cannot find this executable to start nodes: {0}")]
    ThisExecutable(io::Error),
    /// A client was given no coordinator.
    #[error("no coordinator to {to}")]
    NoCoordinator {
        /// What it was to do: `send purchases to`, `ask`.
        to: &'static str,
    },
    /// A client's socket has no IPv4 address.
    #[error("client socket is not IPv4")]
    ClientNotIpv4,
    /// A coordinator replica was started without the cluster key.
    #[error(
        "{name} is a coordinator replica and needs the cluster key (TWOPC_KEY, \
         TWOPC_KEY_FILE or --key-file; `twopc keygen` makes one): replicas send each \
         other the coordinator's whole state over TCP, and only the key tells a \
         replica from a stranger"
    )]
    ReplicaNeedsKey {
        /// The replica.
        name: String,
    },
    /// A data directory's cluster stamp (`CLUSTER`) cannot be read as one.
    #[error(
        "{path} is not a cluster stamp (cluster_id = \"...\"): {source}; it records which \
         cluster this data directory belongs to: restore it, or delete it only if you know \
         this directory is this cluster's"
    )]
    StampInvalid {
        /// The stamp file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A data directory belongs to another cluster than the node's.
    #[error(
        "data directory {dir} belongs to cluster {found:?} (its CLUSTER file), but this \
         node's cluster is {id:?} ({id_from}); nothing in the directory was changed. A node \
         never runs on another cluster's data (its balances and its history would count \
         in this one). If you pointed --data-dir at the wrong directory, start with this \
         cluster's directory (or an empty one). If this directory really is this \
         cluster's and only the key changed (a key rotation), keep the cluster's identity \
         by adding `cluster_id = \"{found}\"` to the cluster file on every node."
    )]
    OtherCluster {
        /// The data directory.
        dir: PathBuf,
        /// The cluster it is stamped with.
        found: String,
        /// The node's cluster.
        id: String,
        /// Where the node's cluster id came from, in words.
        id_from: String,
    },
    /// A data directory cannot be listed.
    #[error("cannot read the data directory {dir}: {source}")]
    DataDirRead {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A command-line flag's value is wrong.
    #[error("{flag}: {why}")]
    BadFlag {
        /// The flag (`--fault-drop-in`).
        flag: &'static str,
        /// What is wrong with its value.
        why: String,
    },
    /// A probability flag outside [0, 1].
    #[error("{flag} is a probability between 0 and 1, got {got}")]
    Probability {
        /// The flag (`--fault-loss`).
        flag: &'static str,
        /// Its value.
        got: f64,
    },
    /// The HTTP API's token file cannot be used (the message names the
    /// file and why).
    #[error("{0}")]
    HttpToken(String),
    /// The HTTP API's settings do not hold together (the message names
    /// the flags).
    #[error("{0}")]
    HttpConfig(String),
    /// The HTTP API's address cannot be listened on.
    #[error("cannot listen on --http {addr}: {source}")]
    HttpListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// `twopc accept-rollback` was given something that is not a directory.
    #[error("{dir} is not a directory: give the participant's --data-dir")]
    RollbackNotADirectory {
        /// What it was given.
        dir: PathBuf,
    },
    /// `twopc accept-rollback` was given a directory without state.
    #[error(
        "{dir} holds no state: there is nothing to accept (a node starting on it starts \
         from its initial levels, and its alarm says so)"
    )]
    RollbackNoState {
        /// The directory.
        dir: PathBuf,
    },
    /// `twopc accept-rollback` was given another role's directory.
    #[error(
        "{dir} is not a participant's data directory: only a wallet or an order service \
         has a history its coordinator checks"
    )]
    RollbackNotParticipant {
        /// The directory.
        dir: PathBuf,
    },
}

/// The node's result type.
pub type Result<T> = std::result::Result<T, Error>;
