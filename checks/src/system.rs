//! [`TwopcModel`]: the stateright model of a configuration, and how to read
//! a global state (which actor is which, what is "done", what exceeds the
//! limits). The `stateright::Model` impl that ties it to the properties and
//! the readable reports is in the crate root.
//!
//! - `step`: what one step does beyond stateright's actor model (crashes
//!   that bury a replica or lose a disk, a refusal judged where it happens).
//! - `rules`: which crashes, restarts and timeouts the environment allows.
//! - `reduce`: reductions that drop what can change nothing, now or later.
//! - [`recovery`]: a replica that loses its disk.

#[cfg(test)]
mod random_walks;
pub mod recovery;
mod reduce;
mod rules;
mod step;

use crate::config::{Config, NetworkKind, Protocol, COORDINATOR, ORDER, WALLET};
use crate::history::{record_out, History};
use crate::mutants::Checked;
use crate::shared::Shared;
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Id, LossyNetwork, Network};
use twopc_model::*;

/// One global state of the checked system.
pub type SysState = ActorModelState<Checked, Shared<History>>;
/// One step of the checked system.
pub type SysAction = ActorModelAction<crate::shared::Shared<Msg>, Timer, ()>;

/// One step of a path: a stateright action, or (in the liveness analysis of a
/// lossy network) the loss of every message in flight.
#[derive(Clone, Debug)]
pub enum Step {
    /// An action of the model.
    Action(SysAction),
    /// The network loses every message in flight.
    LoseInFlight,
}

/// The checked system: stateright's actor model plus the configuration's crash
/// rules (which roles may crash, which never recover).
#[derive(Clone)]
pub struct TwopcModel {
    /// The configuration it was built from.
    pub cfg: Config,
    /// stateright's actor model.
    pub inner: ActorModel<Checked, Config, Shared<History>>,
}

impl Config {
    /// Build the model.
    pub fn into_model(self) -> TwopcModel {
        let network = match self.network {
            NetworkKind::Ordered => Network::new_ordered([]),
            NetworkKind::Unordered => Network::new_unordered_nonduplicating([]),
            NetworkKind::Udp => Network::new_unordered_duplicating([]),
        };
        let actors = self.nodes().into_iter().map(|node| Checked {
            node,
            mutant: self.mutant,
            pre_vote: self.pre_vote,
        });
        let inner = ActorModel::new(self.clone(), Shared::new(History::default()))
            .actors(actors)
            .init_network(network)
            .lossy_network(LossyNetwork::No)
            .max_crashes(self.max_crashes)
            .record_msg_out(record_out)
            .within_boundary(|cfg, state| {
                // Only broken variants reach past the limits (the `bounded`
                // property fails one step inside, so every excess is reported
                // before the search stops growing). On the non-duplicating
                // networks every re-send adds a copy: bound messages in flight.
                exceeds_limits(cfg, state) <= 1
                    && (cfg.network == NetworkKind::Udp || state.network.len() <= cfg.max_in_flight)
            });
        TwopcModel { cfg: self, inner }
    }
}

/// How far the state goes past the limits the configuration implies for the
/// protocol's memory, as the largest excess over any one limit (0: within).
///
/// Every actor's memory is bounded by the configuration: a client holds one
/// outcome per request; the coordinator makes at most one attempt per request
/// id in an epoch, so its counter, its votes in progress and its unacknowledged
/// commits are bounded by the ids (times the epochs explored); it records an
/// outcome at most once per id and remembers at most `retention` of them; a
/// participant records at most one hold or finished entry per attempt. A
/// variant whose memory grows past these (a client that files every
/// duplicate, a coordinator that re-attempts decided requests) fails the
/// `bounded` property instead of running until the machine runs out of memory.
pub fn exceeds_limits(cfg: &Config, state: &SysState) -> usize {
    let requests = cfg.ids();
    let epochs = 1 + cfg.max_epochs() as usize;
    let over = |value: usize, limit: usize| value.saturating_sub(limit);
    let coord = coordinators(cfg, state)
        .map(|(_, c)| {
            over(c.next_txn as usize, requests)
                .max(over(c.voting.len(), requests))
                .max(over(c.commits.len(), requests * epochs))
                .max(over(c.outcomes.by_id.len(), cfg.retention.min(requests)))
                .max(over(c.outcomes.by_age.len(), cfg.retention.min(requests)))
                // (Counted within its generation: see `move_past`.)
                .max(over(
                    (c.outcomes.next % (1 << TICKET_GENERATION_BITS)) as usize,
                    requests,
                ))
                .max(over(c.epoch as usize, epochs))
                // A refunded count per remembered purchase.
                .max(over(c.refunded.len(), cfg.retention.min(requests)))
        })
        .max()
        .unwrap_or(0);
    let parts = participants(state)
        .map(|(_, p)| {
            over(
                p.data.holds.len() + p.data.credits.len() + p.data.finished.len(),
                requests * epochs,
            )
            // A price change is pending only with its credit.
            .max(over(p.data.repricing.len(), p.data.credits.len()))
        })
        .max()
        .unwrap_or(0);
    let clients = clients(cfg, state)
        .map(|c| {
            let most = cfg.purchases
                + cfg.afterwards.len()
                + cfg.flow_requests()
                + cfg.price_requests().len()
                + cfg.refund_requests().len();
            over(c.seen.len(), most)
        })
        .max()
        .unwrap_or(0);
    coord.max(parts).max(clients)
}

/// The coordinator's state in a system state (two-phase commit: there is
/// exactly one; see [`coordinators`] for either protocol).
pub fn coordinator(state: &SysState) -> &CoordState {
    match &**state.actor_states[COORDINATOR] {
        State::Coordinator(s) => s,
        _ => unreachable!("actor 0 is the coordinator"),
    }
}

/// Every running coordinator, with its actor index: the one of two-phase
/// commit; with the replicated protocol, that of each replica that believes
/// it leads (a deposed one included, until it learns) and is not down.
pub fn coordinators<'a>(
    cfg: &Config,
    state: &'a SysState,
) -> impl Iterator<Item = (usize, &'a CoordState)> + 'a {
    cfg.replica_indices()
        .into_iter()
        .filter_map(move |i| match &**state.actor_states[i] {
            State::Coordinator(c) => Some((i, c)),
            State::Replica(r) if !state.crashed[i] => r.leading().map(|l| (i, &l.coord)),
            _ => None,
        })
}

/// The replicas' states, with their actor indices (replicated protocol).
pub fn replicas<'a>(
    cfg: &Config,
    state: &'a SysState,
) -> impl Iterator<Item = (usize, &'a ReplicaState)> + 'a {
    cfg.replica_indices()
        .into_iter()
        .filter_map(move |i| match &**state.actor_states[i] {
            State::Replica(r) => Some((i, r)),
            _ => None,
        })
}

/// The coordinator's durable state as a restart would find it, for every
/// way a restart can find it: two-phase commit, the coordinator's storage;
/// replicated, for each majority of replicas, the highest state its members
/// durably accepted (what a leader elected by that majority adopts). What
/// is durable must be in all of them.
pub fn durable_coordinator(cfg: &Config, state: &SysState) -> Vec<Option<CoordStorage>> {
    let stored = |i: usize| state.actor_storages[i].as_deref();
    match cfg.protocol {
        Protocol::TwoPc => vec![match stored(COORDINATOR) {
            Some(Storage::Coordinator(c)) => Some(c.clone()),
            _ => None,
        }],
        Protocol::Replicated => {
            // (A recovering replica is in no majority: it promises nothing.)
            let accepted: Vec<Option<&Accepted>> = cfg
                .replica_indices()
                .into_iter()
                .filter(|i| recovery::votes(state, *i))
                .map(|i| match stored(i) {
                    Some(Storage::Replica(r)) => r.accepted.as_ref(),
                    _ => None,
                })
                .collect();
            let n = accepted.len();
            let quorum = cfg.replicas / 2 + 1;
            (0u32..1 << n)
                .filter(|set| set.count_ones() as usize == quorum)
                .map(|set| {
                    (0..n)
                        .filter(|i| set & (1 << i) != 0)
                        .filter_map(|i| accepted[i])
                        .max_by_key(|a| (a.term, a.version))
                        .map(|a| a.storage.clone())
                })
                .collect()
        }
    }
}

/// The participants' states, with their actor indices.
pub fn participants(state: &SysState) -> impl Iterator<Item = (usize, &PartState)> {
    [WALLET, ORDER]
        .into_iter()
        .map(move |i| (i, part(state, i)))
}

/// Whether the coordinator's durable log (what survives a crash) keeps
/// `txn` unsettled: a commit not yet acknowledged by every participant, or
/// a transaction of a lost log in doubt.
pub fn owed(state: &SysState, txn: &TxnId) -> bool {
    let keeps = |c: &CoordStorage| c.commits.contains_key(txn) || c.doubts.contains_key(txn);
    state.actor_storages.iter().any(|s| match s.as_deref() {
        Some(Storage::Coordinator(c)) => keeps(c),
        Some(Storage::Replica(r)) => r.accepted.as_ref().is_some_and(|a| keeps(&a.storage)),
        _ => false,
    })
}

/// Participant `i`'s state (actors 1 and 2).
pub(crate) fn part(state: &SysState, i: usize) -> &PartState {
    match &**state.actor_states[i] {
        State::Participant(s) => s,
        _ => unreachable!("actors 1 and 2 are participants"),
    }
}

/// The clients' states.
pub fn clients<'a>(cfg: &Config, state: &'a SysState) -> impl Iterator<Item = &'a ClientState> {
    state.actor_states[cfg.client_indices()]
        .iter()
        .map(|s| match &***s {
            State::Client(c) => c,
            _ => unreachable!("actors from 3 on are clients"),
        })
}

impl TwopcModel {
    /// The "done" predicate of the liveness analysis: every client has all its
    /// outcomes, and no participant holds anything, but for what a
    /// coordinator that lost its log holds in doubt: an operator decides
    /// those (see *A lost log is never presumed* in twopc-model's docs), and
    /// a client whose request is in doubt waits for that decision (its
    /// later requests with it: a client asks one at a time).
    ///
    /// "All its outcomes" means each of its requests has an outcome about
    /// that very request: a client that filed another request's outcome as
    /// an answer is not done.
    pub fn is_done(&self, state: &SysState) -> bool {
        let doubts: Vec<(&TxnId, &RequestId)> = coordinators(&self.cfg, state)
            .flat_map(|(_, c)| c.doubts.iter())
            .collect();
        let in_doubt = |req: &RequestId| doubts.iter().any(|(_, r)| *r == req);
        self.client_configs()
            .zip(clients(&self.cfg, state))
            .all(|(cfg, c)| {
                let answered = |i: usize| c.seen.iter().any(|o| &o.req == cfg.req(i));
                match (0..cfg.requests.len()).find(|&i| !answered(i)) {
                    None => true,
                    Some(i) => in_doubt(cfg.req(i)),
                }
            })
            && participants(state).all(|(_, p)| {
                p.data
                    .holds
                    .keys()
                    .chain(p.data.credits.keys())
                    .all(|t| doubts.iter().any(|(d, _)| *d == t))
                    // One write: every commit applied in memory is saved
                    // (its ack sent) in the end.
                    && p.acks_after_save.is_empty()
            })
    }

    /// The clients' configurations, in actor order.
    pub fn client_configs(&self) -> impl Iterator<Item = &Client> {
        self.inner.actors[self.cfg.client_indices()]
            .iter()
            .map(|a| match &a.node {
                Node::Client(c) => c,
                _ => unreachable!("actors from 3 on are clients"),
            })
    }

    /// A one-line name for actor `id`.
    pub fn actor_name(&self, id: Id) -> String {
        let index = usize::from(id);
        match self.inner.actors.get(index) {
            Some(a) => stateright::actor::Actor::name(a),
            None => format!("{id:?}"),
        }
    }
}
