//! [`TwopcModel`]: the stateright model of a configuration, its crash rules,
//! and how to read a global state (which actor is which, what is "done").
//! The `stateright::Model` impl that ties it to the properties and the
//! readable reports is in the crate root.

use crate::config::{Config, NetworkKind, Protocol, Role, COORDINATOR, ORDER, WALLET};
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
                .max(over(c.outcomes.next as usize, requests))
                .max(over(c.epoch as usize, epochs))
        })
        .max()
        .unwrap_or(0);
    let parts = participants(state)
        .map(|(_, p)| {
            over(
                p.data.holds.len() + p.data.finished.len(),
                requests * epochs,
            )
        })
        .max()
        .unwrap_or(0);
    let clients = clients(cfg, state)
        .map(|c| over(c.seen.len(), cfg.purchases + cfg.afterwards.len()))
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
            let accepted: Vec<Option<&Accepted>> = cfg
                .replica_indices()
                .into_iter()
                .map(|i| match stored(i) {
                    Some(Storage::Replica(r)) => r.accepted.as_ref(),
                    _ => None,
                })
                .collect();
            let n = accepted.len();
            let quorum = n / 2 + 1;
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

/// Whether `txn` is a commit the coordinator still owes: in its durable log
/// (what survives a crash), not yet acknowledged by every participant.
pub fn owed_commit(state: &SysState, txn: &TxnId) -> bool {
    state.actor_storages.iter().any(|s| match s.as_deref() {
        Some(Storage::Coordinator(c)) => c.commits.contains_key(txn),
        Some(Storage::Replica(r)) => r
            .accepted
            .as_ref()
            .is_some_and(|a| a.storage.commits.contains_key(txn)),
        _ => false,
    })
}

fn part(state: &SysState, i: usize) -> &PartState {
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
    /// Judges a refusal where it happens: if `action` delivered a prepare of
    /// epoch e that participant `dst` refused for want of funds or stock,
    /// every hold it counted against the amount must be live: of epoch e or
    /// newer, or a commit the coordinator still owes (in its durable log). A
    /// hold of an older epoch that is not owed is dead by presumed abort, and
    /// the prepare itself says a newer epoch exists, so counting it is a
    /// refusal that is not true. The verdict goes into the history (a later
    /// state no longer shows what was counted).
    pub(crate) fn judge_refusal(
        &self,
        last: &SysState,
        refused: (Id, TxnId, &str),
        next: &mut SysState,
    ) {
        let (dst, txn, key) = refused;
        let i = usize::from(dst);
        if i != WALLET && i != ORDER {
            return;
        }
        let (before, after) = (part(last, i), part(next, i));
        let was_refused = !before.data.finished.contains_key(&txn)
            && after.data.finished.get(&txn).is_some_and(|f| !f.committed)
            && after.data.levels.contains_key(key);
        if !was_refused {
            return;
        }
        let counted: Vec<&TxnId> = after
            .data
            .holds
            .iter()
            .filter(|(_, h)| h.op.key == key)
            .map(|(t, _)| t)
            .collect();
        let dead = counted
            .iter()
            .any(|t| t.epoch < txn.epoch && !owed_commit(next, t));
        let h = &next.history;
        let (false_refusal, live) = (
            h.false_refusal || dead,
            h.live_hold_refusal || (!dead && !counted.is_empty()),
        );
        if (false_refusal, live) != (h.false_refusal, h.live_hold_refusal) {
            let mut changed = (**h).clone();
            changed.false_refusal = false_refusal;
            changed.live_hold_refusal = live;
            next.history = Shared::new(changed);
        }
    }

    /// The "done" predicate of the liveness analysis: every client has all its
    /// outcomes, and no participant holds anything.
    ///
    /// "All its outcomes" means each of its requests has an outcome about
    /// that very request: a client that filed another request's outcome as
    /// an answer is not done.
    pub fn is_done(&self, state: &SysState) -> bool {
        self.client_configs()
            .zip(clients(&self.cfg, state))
            .all(|(cfg, c)| {
                (0..cfg.requests.len()).all(|i| c.seen.iter().any(|o| &o.req == cfg.req(i)))
            })
            && participants(state).all(|(_, p)| p.data.holds.is_empty())
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

    /// Whether an action is allowed by the crash rules of the configuration.
    ///
    /// The restart budget restricts the *environment*: once the coordinator
    /// has restarted `max_restarts` times (each restart bumps its durable
    /// epoch, so unbounded restarts make an infinite state space), the model
    /// offers no further coordinator crash. Every reachable state is then
    /// explored and judged; nothing is cut off and counted as a success.
    /// (A coordinator that never recovers may always crash: it never restarts.)
    ///
    /// With the replicated protocol the budget counts terms instead (a
    /// leader that goes down makes the others campaign), and a follower's
    /// campaign timer fires only when it should: its leader (the owner of the
    /// term it promised) is down, or is not leading or campaigning for that
    /// term and it is the first replica up, or early, while the highest term
    /// is below the `elections` budget. This is the eventual leader detector
    /// (Ω) every consensus protocol
    /// needs to make progress (none can without some timing assumption); the
    /// safety properties are checked with early campaigns too.
    pub(crate) fn allowed(&self, state: &SysState, action: &SysAction) -> bool {
        match action {
            ActorModelAction::Crash(id) => {
                let role = self.cfg.role((*id).into());
                self.cfg.crashable.contains(&role)
                    && (!matches!(role, Role::Coordinator | Role::Backup)
                        || self.cfg.never_recover.contains(&role)
                        || match self.cfg.protocol {
                            Protocol::TwoPc => coordinator(state).epoch <= self.cfg.max_restarts,
                            Protocol::Replicated => {
                                self.highest_term(state) <= self.cfg.max_restarts
                            }
                        })
            }
            ActorModelAction::Recover(id) => !self
                .cfg
                .never_recover
                .contains(&self.cfg.role((*id).into())),
            ActorModelAction::Timeout(id, Timer::Replica) => self.may_campaign(state, (*id).into()),
            _ => true,
        }
    }

    /// A replica that crashed never to recover no longer matters to the
    /// future: forget the volatile state it crashed in (it is rebuilt from
    /// its storage, as if it had restarted and stopped); the messages on
    /// their way to it can never be delivered either (see
    /// [`TwopcModel::drop_mail_of_the_dead`], applied after every step). Sound, since nothing
    /// reads them again, and it folds together the many states that differ
    /// only in what a dead replica was doing when it died. (Replicated
    /// protocol only: two-phase commit's reports show the dead coordinator's
    /// last state, which explains why it blocks.)
    pub(crate) fn bury(&self, id: Id, state: &mut SysState) {
        let i = usize::from(id);
        if self.cfg.protocol != Protocol::Replicated
            || !self.cfg.never_recover.contains(&self.cfg.role(i))
            || !matches!(self.cfg.role(i), Role::Coordinator | Role::Backup)
        {
            return;
        }
        let mut out = stateright::actor::Out::new();
        let fresh = stateright::actor::Actor::on_start(
            &self.inner.actors[i],
            id,
            &state.actor_storages[i],
            &mut out,
        );
        state.actor_states[i] = std::sync::Arc::new(fresh);
        // Its mail goes in the same step: `drop_mail_of_the_dead`.
    }

    /// Messages to a buried replica (see [`TwopcModel::bury`]) can never be
    /// delivered: those in flight when it died and those sent since are
    /// dropped, so that states do not differ by which of them were sent.
    pub(crate) fn drop_mail_of_the_dead(&self, state: &mut SysState) {
        if self.cfg.protocol != Protocol::Replicated
            || self.cfg.never_recover.is_empty()
            || self.cfg.network != NetworkKind::Udp
        {
            return;
        }
        let dead: Vec<Id> = (0..state.crashed.len())
            .filter(|i| state.crashed[*i] && self.cfg.never_recover.contains(&self.cfg.role(*i)))
            .map(Id::from)
            .collect();
        if dead.is_empty() || !state.network.iter_all().any(|e| dead.contains(&e.dst)) {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| !dead.contains(&e.dst))
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
    }

    /// The highest term any replica promised.
    fn highest_term(&self, state: &SysState) -> u64 {
        replicas(&self.cfg, state)
            .map(|(_, r)| r.acceptor.promised.n)
            .max()
            .unwrap_or(0)
    }

    /// Whether replica `i`'s timer may fire (see [`TwopcModel::allowed`]):
    /// always, unless it would start a campaign. A campaign may start early
    /// while the highest term is within the `elections` budget; after that
    /// only when the follower's leader is down or not leading its term, and
    /// only by the replica an eventual leader detector (Ω) trusts: the first
    /// one that is up.
    fn may_campaign(&self, state: &SysState, i: usize) -> bool {
        let State::Replica(r) = &**state.actor_states[i] else {
            return true;
        };
        if !matches!(r.standing, Standing::Follower) {
            return true;
        }
        if self.highest_term(state) < self.cfg.elections {
            return true; // An early campaign, within the budget.
        }
        let term = r.acceptor.promised;
        let leader = usize::from(term.leader);
        let leads = !state.crashed[leader]
            && match &**state.actor_states[leader] {
                State::Replica(l) => match &l.standing {
                    Standing::Leader(x) => x.term == term,
                    Standing::Candidate { term: t, .. } => *t == term,
                    Standing::Follower => false,
                },
                _ => false,
            };
        // The trusted one: the first replica that is up (the detector
        // eventually points every replica at the same live one).
        let trusted = self
            .cfg
            .replica_indices()
            .into_iter()
            .find(|j| !state.crashed[*j]);
        !leads && trusted == Some(i)
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
