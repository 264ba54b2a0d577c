//! The HTTP server's bounds (`--http-max-connections`,
//! `--http-header-timeout-ms`, `--http-idle-timeout-ms`), checked at start,
//! and how the connections it closes or refuses are counted (`/metrics`)
//! and logged (WARN, rate-limited). `server.rs` enforces them.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// At most one WARN per reason this often.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Descriptors a node needs beside its HTTP connections (storage, sockets,
/// replica links, refusals being written).
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// The server's bounds (`--http-max-connections`,
/// `--http-header-timeout-ms`, `--http-idle-timeout-ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Refuses bounds that cannot hold: no connection at all, a zero
    /// timeout, or more connections than this process may open descriptors
    /// (`ulimit -n`, systemd's `LimitNOFILE`) with room for the rest.
    pub fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("--http-max-connections must be at least 1".into());
        }
        if self.header_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(
                "--http-header-timeout-ms and --http-idle-timeout-ms must be at least 1".into(),
            );
        }
        let needed = self.max_connections as u64 + RESERVED_DESCRIPTORS;
        match open_files_limit() {
            Some(limit) if limit < needed => Err(format!(
                "--http-max-connections {} needs about {needed} file descriptors, but this \
                 process may open {limit} (`ulimit -n`; systemd: LimitNOFILE=); raise the \
                 limit or lower --http-max-connections",
                self.max_connections
            )),
            _ => Ok(()),
        }
    }
}

/// This process's limit on open files (`RLIMIT_NOFILE`, soft), if known.
pub(super) fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// A label set of one `reason`.
pub type Reason = [(&'static str, &'static str); 1];

/// Why a connection was closed or refused (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Close {
    /// Its request's headers did not arrive within the header timeout.
    HeaderTimeout,
    /// Kept alive with no request for the idle timeout.
    IdleTimeout,
    /// Waiting for a request when the cap was reached: a new connection
    /// took its place.
    Evicted,
    /// Refused: the cap was reached and every connection was busy (503).
    TooManyConnections,
    /// The OS refused to accept one (e.g. out of file descriptors).
    AcceptError,
}

impl Close {
    /// The `reason` label.
    pub fn name(self) -> &'static str {
        match self {
            Close::HeaderTimeout => "header_timeout",
            Close::IdleTimeout => "idle_timeout",
            Close::Evicted => "evicted",
            Close::TooManyConnections => "too_many_connections",
            Close::AcceptError => "accept_error",
        }
    }

    fn label(self) -> Reason {
        [("reason", self.name())]
    }
}

/// The server's counters, encoded by `/metrics`.
#[derive(Debug)]
pub struct Connections {
    /// Connections open now.
    pub open: Gauge,
    /// Connections the server closed, by reason.
    pub closed: Family<Reason, Counter>,
    /// Connections refused, by reason.
    pub refused: Family<Reason, Counter>,
    warned: Mutex<BTreeMap<Close, (Instant, u64)>>,
}

impl Default for Connections {
    /// Counters with every reason at 0 (so that a scrape shows them).
    fn default() -> Self {
        let c = Connections {
            open: Gauge::default(),
            closed: Family::default(),
            refused: Family::default(),
            warned: Mutex::default(),
        };
        for r in [Close::HeaderTimeout, Close::IdleTimeout, Close::Evicted] {
            let _ = c.closed.get_or_create(&r.label());
        }
        for r in [Close::TooManyConnections, Close::AcceptError] {
            let _ = c.refused.get_or_create(&r.label());
        }
        c
    }
}

impl Connections {
    /// Counts `why`, and logs it (rate-limited).
    pub(super) fn count(&self, why: Close, detail: &str) {
        match why {
            Close::TooManyConnections | Close::AcceptError => {
                self.refused.get_or_create(&why.label()).inc();
            }
            Close::HeaderTimeout | Close::IdleTimeout | Close::Evicted => {
                self.closed.get_or_create(&why.label()).inc();
            }
        }
        let now = Instant::now();
        let mut warned = self.warned.lock().expect("not poisoned");
        let (last, suppressed) = warned
            .entry(why)
            .or_insert((now - WARN_EVERY - WARN_EVERY, 0));
        if now.duration_since(*last) < WARN_EVERY {
            *suppressed += 1;
            return;
        }
        let more = std::mem::take(suppressed);
        *last = now;
        drop(warned);
        let reason = why.name();
        if why == Close::IdleTimeout {
            tracing::debug!(reason, more, "HTTP: closed an idle connection");
        } else {
            tracing::warn!(
                reason,
                more_since_last_warning = more,
                "HTTP: {detail} (counted in twopc_http_connections_*_total)"
            );
        }
    }
}
