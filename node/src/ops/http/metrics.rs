//! `GET /metrics`: the node's counters and gauges in the Prometheus text
//! format, encoded by `prometheus-client`.
//!
//! The counters are the ones `twopc status` shows: on each scrape the
//! handler asks the node's loop for its view (answered between two
//! batches), and a [`Collector`] encodes it. Histograms are recorded as
//! things happen: batch sizes and decision latencies by the loop, purchase
//! latencies by `POST /purchases`.

use super::{ApiError, AppState};
use crate::runtime::admin::{NodeView, ReplicaView, Standing};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::time::Duration;
use tokio::sync::oneshot;

pub use crate::runtime::shell::{RuntimeHistograms, ViewAsk};

/// How long a scrape waits for the loop (which may be inside an fsync).
const VIEW_PATIENCE: Duration = Duration::from_secs(5);

/// Histograms recorded as things happen: the node loop's, and the HTTP
/// server's own.
#[derive(Debug)]
pub struct Telemetry {
    /// Recorded by the node's loop (`shell.rs`).
    pub runtime: std::sync::Arc<RuntimeHistograms>,
    /// `POST /purchases` answered with an outcome: seconds from the request
    /// to the answer.
    pub http_purchase_seconds: Histogram,
    /// The HTTP server's connections: open, closed and refused by reason.
    pub connections: std::sync::Arc<super::server::Connections>,
    /// `POST /purchases`, `/topups`, `/restocks`, `/refunds`: answers and refusals by
    /// operation.
    pub ops: super::shop::OpCounters,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            runtime: Default::default(),
            http_purchase_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            connections: Default::default(),
            ops: Default::default(),
        }
    }
}

/// `GET /metrics`.
pub async fn scrape(State(app): State<AppState>) -> Result<Response, ApiError> {
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_unavailable",
            "the node's loop did not answer in time (stopping, or stuck in storage)",
        )
    };
    let (tx, rx) = oneshot::channel();
    app.views.send(tx).await.map_err(|_| busy())?;
    let view = tokio::time::timeout(VIEW_PATIENCE, rx)
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let text = encode(view, &app.telemetry).map_err(|_| busy())?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The text of one scrape.
pub fn encode(view: NodeView, telemetry: &Telemetry) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("twopc");
    registry.register(
        "batch_size",
        "Datagrams handled per batch (a batch shares one fsync)",
        telemetry.runtime.batch_size.clone(),
    );
    registry.register(
        "purchase_decision_seconds",
        "Coordinator: seconds from an attempt's prepares to its decision",
        telemetry.runtime.decision_seconds.clone(),
    );
    registry.register(
        "http_purchase_seconds",
        "POST /purchases answered with an outcome: seconds from request to answer",
        telemetry.http_purchase_seconds.clone(),
    );
    let connections = &telemetry.connections;
    registry.register(
        "http_connections_open",
        "HTTP connections open now",
        connections.open.clone(),
    );
    registry.register(
        "http_connections_closed",
        "HTTP connections the server closed, by reason (header_timeout, idle_timeout, evicted)",
        connections.closed.clone(),
    );
    registry.register(
        "http_connections_refused",
        "HTTP connections refused, by reason (too_many_connections, accept_error)",
        connections.refused.clone(),
    );
    registry.register(
        "http_operations",
        "POST /purchases, /topups, /restocks, /refunds answered, by op (purchase, topup, restock, refund) and \
         outcome (committed, aborted, refused, try_again, in_progress)",
        telemetry.ops.answered.clone(),
    );
    registry.register(
        "http_operations_rejected",
        "POST /purchases, /topups, /restocks, /refunds refused before anything was sent, by op and \
         error code",
        telemetry.ops.rejected.clone(),
    );
    registry.register_collector(Box::new(ViewCollector(view)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Encodes one view: what `twopc status` shows, as counters and gauges.
#[derive(Debug)]
struct ViewCollector(NodeView);

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn as_gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for ViewCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let v = &self.0;
        let c = &v.counters;
        let info = [("node", v.name.as_str()), ("role", &v.role.to_string())];
        let mut m = e.encode_descriptor("node", "This node", None, MetricType::Info)?;
        m.encode_info(&info)?;
        for (name, help, value) in [
            (
                "datagrams_in",
                "Datagrams received, accepted or not",
                c.datagrams_in,
            ),
            ("datagrams_out", "Datagrams sent", c.datagrams_out),
            ("send_errors", "Sends the OS refused", c.send_errors),
            ("receive_errors", "Receives the OS failed", c.receive_errors),
            (
                "msgs_handled",
                "Protocol messages handed to the actor",
                c.msgs_handled,
            ),
            ("timers_fired", "Timers fired", c.timers_fired),
            (
                "fault_dropped",
                "Messages dropped on purpose by --fault-*",
                c.fault_dropped,
            ),
            ("saves", "Save commands run", c.saves),
            (
                "fsyncs",
                "fsyncs (data and directory) done by storage",
                c.fsyncs,
            ),
            ("bytes_written", "Bytes written to storage", c.bytes_written),
            (
                "compactions",
                "Snapshots written by log compaction",
                c.compactions,
            ),
            (
                "batches",
                "Loop iterations that ended in a flush",
                c.batches,
            ),
            (
                "unknown_decisions",
                "Commits for transactions this node has no record of (an alarm)",
                c.unknown_decisions,
            ),
        ] {
            counter(&mut e, name, help, value)?;
        }
        let mut m = e.encode_descriptor(
            "datagrams_rejected",
            "Datagrams dropped, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &c.rejected {
            ConstCounter::new(*n).encode(m.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let mut m = e.encode_descriptor(
            "purchases_decided",
            "Coordinator: operations of every kind decided by this incarnation, by outcome \
             (the name is older than top-ups; operations_decided has them by kind)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in &c.decided {
            ConstCounter::new(*n).encode(m.encode_family(&[("outcome", outcome.name())])?)?;
        }
        let mut m = e.encode_descriptor(
            "operations_decided",
            "Coordinator: operations decided by this incarnation, by operation (purchase, topup, \
             restock, refund) and outcome",
            None,
            MetricType::Counter,
        )?;
        for (op, outcomes) in &c.decided_by_op {
            for (outcome, n) in outcomes {
                ConstCounter::new(*n).encode(
                    m.encode_family(&[("op", op.as_str()), ("outcome", outcome.name())])?,
                )?;
            }
        }
        let mut m = e.encode_descriptor(
            "outcome_waited",
            "Coordinator: operations decided by this incarnation, by the durable writes their \
             outcome waited for on its way to the client (2 under two-phase commit, 1 under one \
             write)",
            None,
            MetricType::Counter,
        )?;
        for (writes, n) in &v.outcome_waited {
            let writes = writes.to_string();
            ConstCounter::new(*n).encode(m.encode_family(&[("writes", writes.as_str())])?)?;
        }
        gauge(
            &mut e,
            "one_write",
            "Coordinator or participant: 1 if it runs the one-write protocol (the coordinator \
             tells a decision before it saves it), 0 if not",
            i64::from(v.one_write),
        )?;
        gauge(
            &mut e,
            "in_doubt",
            "Participant: prepared transactions awaiting a decision (holds)",
            as_gauge(v.holds_total),
        )?;
        gauge(
            &mut e,
            "coordinator_in_doubt",
            "Coordinator: transactions of a lost log that both participants hold, kept in doubt \
             until an operator decides them (twopc decide)",
            as_gauge(v.doubts.total),
        )?;
        let mut m = e.encode_descriptor(
            "heuristic_decisions",
            "Coordinator: transactions in doubt decided by an operator (heuristic), by decision",
            None,
            MetricType::Counter,
        )?;
        for (decision, n) in &c.heuristic_decisions {
            ConstCounter::new(*n).encode(m.encode_family(&[("decision", decision.as_str())])?)?;
        }
        gauge(
            &mut e,
            "voting",
            "Coordinator: transactions collecting votes",
            as_gauge(v.voting),
        )?;
        gauge(
            &mut e,
            "unacked_commits",
            "Coordinator: commit decisions not yet acknowledged by every participant",
            as_gauge(v.unacked_commits.len()),
        )?;
        gauge(
            &mut e,
            "epoch",
            "Coordinator: current incarnation",
            i64::try_from(v.epoch).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            "levels",
            "Participant: accounts or skus held",
            as_gauge(v.levels_total),
        )?;
        if let Some(r) = &v.replica {
            encode_replica(&mut e, r)?;
        }
        encode_peers(&mut e, v)?;
        Ok(())
    }
}

/// What this node sees of the others and of itself going wrong: alarms,
/// each peer's last word and what was dropped from it, the replica links'
/// drops, a replica group's quorum.
fn encode_peers(e: &mut DescriptorEncoder, v: &NodeView) -> std::fmt::Result {
    gauge(
        e,
        "alarms",
        "Alarms raised (twopc status lists them): 0 when all is well",
        as_gauge(v.alarms.len()),
    )?;
    let mut m = e.encode_descriptor(
        "peer_heard_seconds_ago",
        "Seconds since a valid message from each node of the cluster file was handled \
         (absent: never since this node started)",
        None,
        MetricType::Gauge,
    )?;
    for p in &v.peers {
        if let Some(ms) = p.heard_ms_ago {
            let labels = [("peer", p.name.as_str())];
            ConstGauge::new(ms as f64 / 1000.0).encode(m.encode_family(&labels)?)?;
        }
    }
    let mut m = e.encode_descriptor(
        "peer_unanswered",
        "Requests (prepares, commits) sent to each node since it was last heard from",
        None,
        MetricType::Gauge,
    )?;
    for p in &v.peers {
        let labels = [("peer", p.name.as_str())];
        ConstGauge::new(i64::try_from(p.unanswered).unwrap_or(i64::MAX))
            .encode(m.encode_family(&labels)?)?;
    }
    let mut m = e.encode_descriptor(
        "peer_rejected",
        "Datagrams from each node of the cluster file dropped, by reason",
        None,
        MetricType::Counter,
    )?;
    for p in &v.peers {
        for (reason, n) in &p.rejected {
            let labels = [("peer", p.name.as_str()), ("reason", reason.as_str())];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
    }
    let mut m = e.encode_descriptor(
        "replica_link_dropped",
        "Replica: messages and connections the TCP links to the other replicas dropped, by reason",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in &v.counters.link_dropped {
        ConstCounter::new(*n).encode(m.encode_family(&[("reason", reason.as_str())])?)?;
    }
    if let Some(g) = v.replica.as_ref().and_then(|r| r.group.as_ref()) {
        gauge(
            e,
            "replica_heard",
            "Replica: replicas heard from lately, itself included",
            as_gauge(g.heard),
        )?;
        gauge(
            e,
            "replica_quorum",
            "Replica: 1 if the replicas it heard from lately are a majority (or, a follower, \
             it hears its leader), 0 if not: then nothing can be decided",
            i64::from(g.has_quorum()),
        )?;
    }
    Ok(())
}

/// A coordinator replica's gauges: where it stands, what it promised and
/// accepted, and as leader what a majority accepted and what waits for it.
fn encode_replica(e: &mut DescriptorEncoder, r: &ReplicaView) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        "replica_standing",
        "Replica: 1 for what it does now (follower, pre-candidate, candidate, leader or recovering), 0 for the others",
        None,
        MetricType::Gauge,
    )?;
    for standing in [
        Standing::Follower,
        Standing::PreCandidate,
        Standing::Candidate,
        Standing::Leader,
        Standing::Recovering,
    ] {
        let now = i64::from(r.standing == standing);
        let name = standing.to_string();
        ConstGauge::new(now).encode(m.encode_family(&[("standing", name.as_str())])?)?;
    }
    let number = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    gauge(
        e,
        "replica_promised_term",
        "Replica: the number of the highest term it promised",
        number(r.promised_number),
    )?;
    if let Some((_, version)) = &r.accepted {
        gauge(
            e,
            "replica_accepted_version",
            "Replica: the version (within its term) of the state it accepted last",
            number(*version),
        )?;
    }
    if let (Some(chosen), Some(written), Some(held)) = (r.chosen, r.version, r.held) {
        gauge(
            e,
            "replica_chosen_version",
            "Leader: the highest version of its term a majority accepted",
            number(chosen),
        )?;
        gauge(
            e,
            "replica_written_version",
            "Leader: the latest version of its term it wrote",
            number(written),
        )?;
        gauge(
            e,
            "replica_held",
            "Leader: outputs waiting for their version to be accepted by a majority",
            as_gauge(held),
        )?;
    }
    Ok(())
}
