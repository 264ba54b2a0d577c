//! What the shell tells a core besides events (the store's counters and
//! durable position, each send's result) and reads from it between
//! batches (the counters, decision latencies, positions heard to keep).

use super::*;

impl Core {
    /// The shell reports the store's durable history position (after it
    /// opened and after every sync).
    pub fn durable_position(&mut self, position: Option<u64>) {
        self.history.durable(position);
    }

    /// A coordinator's positions heard from participants, when they are due
    /// to be written to `DIR/heard` (see [`History::to_keep`]).
    pub fn heard_to_keep(&mut self, now: Instant, at_shutdown: bool) -> Option<Heard> {
        self.history.to_keep(now, at_shutdown)
    }

    /// Measures, from now on, how long each purchase takes from its
    /// prepares to its decision (a coordinator's; see [`Core::take_latencies`]).
    pub fn measure_latency(&mut self) {
        self.started.get_or_insert_with(Default::default);
    }

    /// The decision latencies measured since the last call (empty unless
    /// [`Core::measure_latency`] was called).
    pub fn take_latencies(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.latencies)
    }

    /// The counters `twopc status` reports.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The shell reports storage's counters (after opening and every sync).
    pub fn storage_stats(&mut self, stats: StoreStats) {
        self.counters.fsyncs = stats.fsyncs;
        self.counters.bytes_written = stats.bytes_written;
        self.counters.compactions = stats.compactions;
    }

    /// The shell reports one send; returns how many sends failed so far.
    pub fn sent(&mut self, ok: bool) -> u64 {
        if ok {
            self.counters.datagrams_out += 1;
        } else {
            self.counters.send_errors += 1;
        }
        self.counters.send_errors
    }
}
