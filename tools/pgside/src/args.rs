//! The command line: what to run, checked before anything starts.

use clap::Parser;
use std::path::{Path, PathBuf};

/// The most clients a run may have (each holds a connection to both servers).
pub const MAX_CLIENTS: usize = 1000;

/// twopc against PostgreSQL 15's own two-phase commit, side by side.
///
/// Starts two fresh PostgreSQL 15 servers (initdb in a temporary directory,
/// fsync on, synchronous_commit on, max_prepared_transactions at least the
/// clients): a "wallet" (users and balances) and an "order" service (skus
/// and stock). A purchase is, on both servers in parallel, `BEGIN`; a
/// conditional `UPDATE` (balance - qty*price where the balance covers it;
/// stock - qty where the stock covers it); `PREPARE TRANSACTION 'gid'`; then
/// `COMMIT PREPARED 'gid'` on both in parallel (`ROLLBACK PREPARED` on both
/// if either refused, and the purchase is tried again). For each client
/// count it measures purchases/s, p50 and p99 latency (until both commits
/// returned), checks that money and stock are conserved (every balance and
/// stock = initial - what committed purchases took, nothing left prepared),
/// and then runs `twopc bench --processes --json` with the same clients,
/// workload and purchases. It ends with one table: both sides, and twopc's
/// p50 and throughput as ratios to PostgreSQL's. Both servers are stopped and
/// their directory removed at the end, on error and on Ctrl-C.
#[derive(Parser, Debug, Clone)]
#[command(name = "pgside", version, verbatim_doc_comment)]
pub struct Args {
    /// Concurrent clients, one run each (comma-separated)
    #[arg(long, default_value = "1,16,64", value_parser = parse_clients)]
    pub clients: ClientCounts,
    /// Purchases per measured run, shared by its clients (each makes
    /// purchases/clients, as `twopc bench` does)
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub purchases: u64,
    /// Users and skus; purchases spread uniformly over them (the same
    /// pseudo-random sequence as `twopc bench --accounts N`)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub accounts: u64,
    /// Every purchase on one user and one sku (the first of --accounts), as
    /// `twopc bench --hot`
    #[arg(long)]
    pub hot: bool,
    /// twopc's binary (default: target/release/twopc of this repository)
    #[arg(long, value_name = "PATH")]
    pub twopc: Option<PathBuf>,
    /// twopc's protocol (`twopc bench --protocol`)
    #[arg(long, default_value = "2pc", value_parser = ["2pc", "replicated"])]
    pub protocol: String,
    /// twopc with one durable write on the commit path (`twopc bench
    /// --one-write`, docs/one-write.md; with either protocol)
    #[arg(long)]
    pub one_write: bool,
    /// Skip twopc's side: PostgreSQL only
    #[arg(long)]
    pub no_twopc: bool,
    /// PostgreSQL's `lock_timeout`, ms: two purchases that lock the same user
    /// and sku in opposite orders on the two servers wait for each other, a
    /// deadlock neither server can see; the timeout ends it and the purchase
    /// is tried again
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub lock_timeout_ms: u64,
    /// PostgreSQL 15's binaries (initdb, postgres)
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin", value_name = "DIR")]
    pub pg_bin: PathBuf,
    /// Where the servers' and twopc's data directories go (the disk measured)
    #[arg(long, default_value = "/tmp", value_name = "DIR")]
    pub dir: PathBuf,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

/// A comma-separated list of client counts, each 1..=MAX_CLIENTS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCounts(pub Vec<usize>);

/// Parses `1,16,64`.
pub fn parse_clients(text: &str) -> Result<ClientCounts, String> {
    let mut counts = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let n: usize = part
            .parse()
            .map_err(|_| format!("`{part}` is not a number of clients (expected e.g. 1,16,64)"))?;
        if n == 0 || n > MAX_CLIENTS {
            return Err(format!("{n} clients: must be 1 to {MAX_CLIENTS}"));
        }
        counts.push(n);
    }
    Ok(ClientCounts(counts))
}

impl Args {
    /// The most clients of any run.
    pub fn max_clients(&self) -> usize {
        self.clients.0.iter().copied().max().unwrap_or(1)
    }

    /// The twopc binary to run: `--twopc` or the repository's release build.
    pub fn twopc_binary(&self) -> PathBuf {
        self.twopc.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/twopc")
        })
    }

    /// Checks what can be checked before starting anything: the binaries
    /// exist and `--dir` is a directory.
    pub fn check_files(&self) -> Result<(), String> {
        for tool in ["initdb", "postgres"] {
            let p = self.pg_bin.join(tool);
            if !p.is_file() {
                return Err(format!(
                    "{} not found: install PostgreSQL 15 (`apt-get install -y postgresql-15`) or give --pg-bin",
                    p.display()
                ));
            }
        }
        if !self.no_twopc {
            let t = self.twopc_binary();
            if !t.is_file() {
                return Err(format!(
                    "twopc binary {} not found: build it (`cargo build --release -p twopc-node` at the repository's root) or give --twopc PATH",
                    t.display()
                ));
            }
        }
        if !self.dir.is_dir() {
            return Err(format!("--dir {}: not a directory", self.dir.display()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let all = std::iter::once("pgside").chain(args.iter().copied());
        Args::try_parse_from(all).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_issue_s_runs() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.clients, ClientCounts(vec![1, 16, 64]));
        assert_eq!((a.purchases, a.accounts, a.hot), (2000, 1000, false));
        assert_eq!(a.max_clients(), 64);
        assert!(a.twopc_binary().ends_with("target/release/twopc"));
    }

    #[test]
    fn bad_arguments_are_refused_with_what_is_wrong() {
        for (args, says) in [
            (&["--clients", "1,x"][..], "`x` is not a number of clients"),
            (&["--clients", "0"][..], "must be 1 to 1000"),
            (&["--clients", "1,2000"][..], "must be 1 to 1000"),
            (&["--clients", ""][..], "is not a number of clients"),
            (&["--purchases", "0"][..], "purchases"),
            (&["--accounts", "0"][..], "accounts"),
            (&["--accounts", "-3"][..], "-3"),
            (&["--protocol", "paxos"][..], "paxos"),
            (&["--lock-timeout-ms", "0"][..], "lock-timeout-ms"),
            (&["--frobnicate"][..], "frobnicate"),
        ] {
            let e = parse(args).expect_err(&format!("{args:?} accepted"));
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let a = parse(&[
            "--pg-bin",
            "/nonexistent/pg",
            "--twopc",
            "/nonexistent/twopc",
        ])
        .unwrap();
        let e = a.check_files().unwrap_err();
        assert!(e.contains("/nonexistent/pg/initdb not found"), "{e}");
        let a = parse(&["--pg-bin", "/bin", "--twopc", "/nonexistent/twopc"]).unwrap();
        // /bin has no initdb: the PostgreSQL check fires first either way.
        assert!(a.check_files().is_err());
    }
}
