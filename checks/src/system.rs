//! [`TwopcModel`]: the stateright model of a configuration, its crash rules,
//! and how to read a global state (which actor is which, what is "done").
//! The `stateright::Model` impl that ties it to the properties and the
//! readable reports is in the crate root.

pub mod recovery;

use crate::config::{Config, NetworkKind, Protocol, Role, COORDINATOR, ORDER, WALLET};
use crate::history::{record_out, History};
use crate::mutants::Checked;
use crate::shared::Shared;
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Id, LossyNetwork, Network};
use stateright::Model;
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
                // (Counted within its generation: see `move_past`.)
                .max(over(
                    (c.outcomes.next % (1 << TICKET_GENERATION_BITS)) as usize,
                    requests,
                ))
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
            .any(|t| t.epoch < txn.epoch && !owed(next, t));
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
                    .all(|t| doubts.iter().any(|(d, _)| *d == t))
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

    /// The system once the first epoch is learned: every `AskEpoch` and
    /// `Epoch` in flight delivered, in a fixed order, until delivering them
    /// changes nothing. The checker starts here rather than at the very
    /// first step: on a fresh cluster every participant answers 0 and the
    /// coordinator keeps epoch 1, so the interleavings of that first
    /// question with the rest (purchases ignored until it is answered) only
    /// multiply the states without a behaviour of their own. Every later
    /// start (a restart, a new leader, a coordinator on an empty disk) asks
    /// under every interleaving. Likewise the replicas of a new cluster,
    /// which all start without storage, recover from one another
    /// (`Recover`, `RecoverReply`) before the first one leads the first term;
    /// a replica whose disk is lost later recovers under every interleaving.
    pub(crate) fn bootstrapped(&self, mut state: SysState) -> SysState {
        let handshake = |a: &SysAction| {
            matches!(a, ActorModelAction::Deliver { msg, .. }
                if matches!(&**msg, Msg::AskEpoch { .. } | Msg::Epoch { .. }
                    | Msg::Recover { .. } | Msg::RecoverReply { .. }))
        };
        loop {
            let mut actions = Vec::new();
            self.inner.actions(&state, &mut actions);
            // (The duplicating network also remembers the last message it
            // delivered: a delivery that changed nothing else is no change.)
            let changed = |n: &SysState| {
                n.actor_states != state.actor_states
                    || n.actor_storages != state.actor_storages
                    || n.network.len() != state.network.len()
            };
            let next = actions
                .into_iter()
                .filter(handshake)
                .find_map(|a| self.inner.next_state(&state, a).filter(changed));
            match next {
                Some(n) => state = n,
                None => return state,
            }
        }
    }

    /// Two-phase commit: once the coordinator has learned its epoch, the
    /// questions about it (`AskEpoch`) and their answers (`Epoch`) still in
    /// flight can change nothing, now or ever: this incarnation ignores
    /// answers (it has learned), every later one starts from the log this
    /// one saved and asks nothing, and a lost disk drains the network of
    /// the coordinator's datagrams (see [`TwopcModel::lose_disk`]) before an
    /// incarnation that asks again starts. Dropping them merges states that
    /// differ only by which answers a participant gave as its floor rose
    /// (four times the states of one purchase, measured, otherwise).
    pub(crate) fn drop_spent_questions(&self, state: &mut SysState) {
        if self.cfg.network != NetworkKind::Udp {
            return;
        }
        let spent = match self.cfg.protocol {
            Protocol::TwoPc => coordinator(state).learning == Learning::Learned,
            // Replicas: a new leader starts from the highest state its
            // majority accepted, and asks only if there is none; once a
            // majority has accepted a state, none ever will (what a replica
            // accepted only grows), so no incarnation asks again once every
            // leading one has learned.
            Protocol::Replicated => {
                let accepted = replicas(&self.cfg, state)
                    .filter(|(_, r)| r.acceptor.accepted.is_some())
                    .count();
                accepted > self.cfg.replicas / 2
                    && coordinators(&self.cfg, state).all(|(_, c)| c.learning == Learning::Learned)
            }
        };
        if !spent {
            return;
        }
        let spent = |m: &Msg| matches!(m, Msg::AskEpoch { .. } | Msg::Epoch { .. });
        if !state.network.iter_all().any(|e| spent(e.msg)) {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| !spent(e.msg))
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
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
                            Protocol::TwoPc if self.cfg.lose_disk => {
                                u64::from(state.history.disk_losses) < self.cfg.max_restarts
                            }
                            Protocol::TwoPc => coordinator(state).epoch <= self.cfg.max_restarts,
                            // One crash, which loses the disk.
                            Protocol::Replicated if self.cfg.lose_replica_disk => {
                                self.may_lose_replica_disk(state, (*id).into())
                            }
                            Protocol::Replicated => {
                                self.highest_term(state) <= self.cfg.max_restarts
                            }
                        })
            }
            ActorModelAction::Recover(id) => !self
                .cfg
                .never_recover
                .contains(&self.cfg.role((*id).into())),
            ActorModelAction::Timeout(id, Timer::Replica) => {
                self.may_campaign(state, (*id).into()) && self.may_ask_again(state, *id)
            }
            _ => true,
        }
    }

    /// The state after `action`, before [`TwopcModel::drop_mail_of_the_dead`]
    /// drops what can no longer matter (`Model::next_state` does both).
    pub(crate) fn next_unreduced(&self, state: &SysState, action: SysAction) -> Option<SysState> {
        // A prepare delivered to a participant may be refused: judge the
        // refusal on this very step (see `TwopcModel::judge_refusal`).
        let prepare = match &action {
            ActorModelAction::Deliver { dst, msg, .. } => match &**msg {
                Msg::Prepare { txn, op, .. } => Some((*dst, *txn, op.key.clone())),
                _ => None,
            },
            _ => None,
        };
        let crash = match &action {
            ActorModelAction::Crash(id) => Some(*id),
            _ => None,
        };
        let mut next = self.inner.next_state(state, action)?;
        if let Some((dst, txn, key)) = &prepare {
            self.judge_refusal(state, (*dst, *txn, key), &mut next);
        }
        if let Some(id) = crash {
            self.bury(id, &mut next);
            if self.cfg.lose_disk && self.cfg.role(id.into()) == Role::Coordinator {
                self.lose_disk(id, &mut next);
            }
            if self.cfg.lose_replica_disk
                && matches!(self.cfg.role(id.into()), Role::Coordinator | Role::Backup)
            {
                // Replaced, restarted and answered in the same step (see
                // there).
                next = self.lose_replica_disk(id, next)?;
            }
        }
        Some(next)
    }

    /// The crashed coordinator's disk is replaced by an empty one: it will
    /// restart from no storage. What it had revealed is gone with it, and so
    /// is every datagram to or from it still in flight: replacing a machine
    /// takes longer than a datagram lives (an assumption, see *Epochs are
    /// learned* in the crate docs of twopc-model; the node does not enforce
    /// it).
    /// Without it, an answer the participants gave the lost incarnation
    /// could pass for an answer to the new one, which would then reuse an
    /// epoch whose prepares are still in flight.
    fn lose_disk(&self, id: Id, state: &mut SysState) {
        state.actor_storages[usize::from(id)] = None;
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| e.src != id && e.dst != id)
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
        let mut h = (*state.history).clone();
        let revealed = std::mem::take(&mut h.outcomes_sent);
        h.outcomes_lost.extend(revealed);
        // The commits it revealed are no longer durable there: what is
        // left of them is at the participants, and the new coordinator
        // recovers them from there (a commit it re-sends is revealed anew,
        // and must then be durable in its own log).
        h.commits_sent = Default::default();
        h.disk_losses += 1;
        state.history = Shared::new(h);
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
    /// So are the messages whose delivery changes nothing, now or ever (see
    /// [`TwopcModel::inert`]): a state with such a message in flight and the
    /// same state without it have the same futures, so dropping it merges
    /// states without losing any behaviour. (Only where an actor may die
    /// for good: that is where the graphs outgrew the machine. Elsewhere the
    /// pinned counts of the CI matrix stay those of the plain model; with
    /// the rules on everywhere, `replicated` would have 18,350 states
    /// instead of 75,302 and `replicated-backup-crash` 55,050 instead of
    /// 225,906.)
    pub(crate) fn drop_mail_of_the_dead(&self, state: &mut SysState) {
        if self.cfg.protocol != Protocol::Replicated
            || self.cfg.never_recover.is_empty()
            || self.cfg.network != NetworkKind::Udp
        {
            return;
        }
        let dead = self.buried(state);
        let inert = |e: &stateright::actor::Envelope<&Shared<Msg>>| {
            dead.contains(&e.dst) || self.inert(state, &dead, e.src, e.dst, e.msg)
        };
        if !state.network.iter_all().any(|e| inert(&e)) {
            return;
        }
        let kept: Vec<_> = state
            .network
            .iter_all()
            .filter(|e| !inert(e))
            .map(|e| e.to_cloned_msg())
            .collect();
        state.network = Network::new_unordered_duplicating(kept);
    }

    /// The actors down for good.
    fn buried(&self, state: &SysState) -> Vec<Id> {
        (0..state.crashed.len())
            .filter(|i| state.crashed[*i] && self.cfg.never_recover.contains(&self.cfg.role(*i)))
            .map(Id::from)
            .collect()
    }

    /// Whether delivering `msg` from `src` to replica `dst` is a no-op in
    /// this state and in every state that follows (so the message can be
    /// dropped). Each rule rests on what only grows: a replica's promised
    /// term and accepted (term, version) (durable), a leader's chosen version
    /// and acknowledgements; and on a replica never campaigning for, or
    /// leading, a term again once it stopped (its next campaign is for a
    /// higher term, and a restart follows). `dead` are the buried replicas:
    /// what is sent to them is dropped.
    fn inert(&self, state: &SysState, dead: &[Id], src: Id, dst: Id, msg: &Msg) -> bool {
        let i = usize::from(dst);
        let r = match state.actor_states.get(i).map(|a| &***a) {
            Some(State::Replica(r)) => r,
            Some(State::Participant(p)) => return part_inert(p, dead.contains(&src), msg),
            // A client that has every outcome ignores everything (what it
            // has seen only grows).
            Some(State::Client(c)) => {
                let cfg = self
                    .client_configs()
                    .nth(i - self.cfg.client_indices().start);
                return cfg.is_some_and(|cfg| cfg.is_done(c));
            }
            _ => return false,
        };
        let down = state.crashed[i];
        let promised = r.acceptor.promised;
        match msg {
            // Followed only if higher than what it promised.
            Msg::Nack { promised: p } => *p <= promised,
            // Counted only by the candidate for that term that lacks it.
            Msg::Promise { term, .. } => {
                down || !matches!(&r.standing, Standing::Candidate { term: t, promises }
                    if t == term && !promises.contains_key(&src))
            }
            // Counted only by the leader of that term, above what is chosen
            // and what that replica acknowledged before.
            Msg::Accepted { term, version } => {
                down || !r.leading().is_some_and(|l| {
                    l.term == *term
                        && *version > l.chosen
                        && l.acks.get(&src).is_none_or(|v| v < version)
                })
            }
            // From a buried replica, a campaign it already promised (or
            // refused) only answers the dead.
            Msg::Campaign { term } => dead.contains(&src) && *term <= promised,
            // From a buried leader, an accept that neither raises the
            // promise nor is newer than what was accepted only answers the
            // dead.
            Msg::Accept { term, version, .. } => {
                dead.contains(&src)
                    && (*term < promised
                        || (*term == promised
                            && r.acceptor
                                .accepted
                                .as_ref()
                                .is_some_and(|a| (a.term, a.version) >= (*term, *version))))
            }
            _ => false,
        }
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
                    Standing::Follower | Standing::Recovering { .. } => false,
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

/// Whether delivering `msg` to a participant (from a buried replica if
/// `from_dead`: its answer goes nowhere) changes nothing now or ever. What a
/// participant decided stays decided: a transaction leaves `holds` only for
/// `finished`, and leaves `finished` only when its floor passes it, after
/// which no prepare holds it again; and the floor only rises.
fn part_inert(p: &PartState, from_dead: bool, msg: &Msg) -> bool {
    let data = &p.data;
    let decided = |txn: &TxnId| *txn < data.floor || data.finished.contains_key(txn);
    match msg {
        // Ignored once decided (no answer at all).
        Msg::Abort { txn } => decided(txn),
        // Answered with an ack (to nobody, from the dead) unless it is held.
        Msg::Commit { txn } => from_dead && decided(txn) && !data.holds.contains_key(txn),
        // From the dead: a floor that settles nothing here now (so nothing
        // later either: every later hold or decision is at or above this
        // participant's floor), for an attempt already held or decided (a
        // vote again, to nobody).
        Msg::Prepare { txn, floor, .. } => {
            from_dead
                && floor.below <= data.floor
                && data.holds.range(..floor.below).next().is_none()
                && data.finished.range(..floor.below).next().is_none()
                && (decided(txn) || data.holds.contains_key(txn))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    type Mail = stateright::actor::Envelope<Shared<Msg>>;

    fn mail(state: &SysState) -> HashSet<Mail> {
        state
            .network
            .iter_all()
            .map(|e| e.to_cloned_msg())
            .collect()
    }

    /// What the reduction would drop from `state` (but mail to the dead).
    fn droppable(model: &TwopcModel, state: &SysState) -> Vec<Mail> {
        let dead = model.buried(state);
        state
            .network
            .iter_all()
            .filter(|e| !dead.contains(&e.dst) && model.inert(state, &dead, e.src, e.dst, e.msg))
            .map(|e| e.to_cloned_msg())
            .collect()
    }

    /// Random walks through the model *without* the reduction. In every
    /// state, each message the reduction would drop is delivered: it must
    /// change nothing (the receiver's state, storage and timers, the
    /// history) and send only to the dead. And it must still be judged
    /// droppable in the next state if still in flight, so that it is a no-op
    /// in every state that follows. Returns how many drops were judged.
    fn judge_reduction(cfg: Config, walks: u64, steps: usize) -> usize {
        let model = cfg.into_model();
        let mut judged = 0;
        for walk in 0..walks {
            let mut rng = walk.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut state = model.init_states().swap_remove(0);
            for _ in 0..steps {
                let dead = model.buried(&state);
                let drops = droppable(&model, &state);
                for e in &drops {
                    let i = usize::from(e.dst);
                    let deliver = ActorModelAction::Deliver {
                        src: e.src,
                        dst: e.dst,
                        msg: e.msg.clone(),
                    };
                    if let Some(after) = model.next_unreduced(&state, deliver) {
                        let what = format!("{:?} to {i}", &*e.msg);
                        assert!(after.actor_states[i] == state.actor_states[i], "{what}");
                        assert!(after.actor_storages[i] == state.actor_storages[i], "{what}");
                        assert!(after.timers_set[i] == state.timers_set[i], "{what}");
                        assert!(after.history == state.history, "{what}");
                        let before = mail(&state);
                        for sent in mail(&after).difference(&before) {
                            assert!(dead.contains(&sent.dst), "{what} sends {sent:?}");
                        }
                    }
                    judged += 1;
                }
                let mut actions = Vec::new();
                model.actions(&state, &mut actions);
                if actions.is_empty() {
                    break;
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let action = actions.swap_remove((rng % actions.len() as u64) as usize);
                let Some(next) = model.next_unreduced(&state, action) else {
                    continue;
                };
                let still = droppable(&model, &next);
                let (in_flight, dead) = (mail(&next), model.buried(&next));
                for e in drops.iter().filter(|e| in_flight.contains(*e)) {
                    let gone = dead.contains(&e.dst) || still.contains(e);
                    assert!(gone, "{:?} to {:?} became live", &*e.msg, e.dst);
                }
                state = next;
            }
        }
        judged
    }

    fn replicated(dies: Role) -> Config {
        Config {
            clients: 1,
            protocol: Protocol::Replicated,
            elections: 0,
            max_crashes: 1,
            crashable: [dies].into(),
            never_recover: [dies].into(),
            ..Config::default()
        }
    }

    #[test]
    fn what_the_reduction_drops_is_a_no_op_for_good_when_the_leader_dies() {
        assert!(judge_reduction(replicated(Role::Coordinator), 3000, 120) > 10_000);
    }

    #[test]
    fn what_the_reduction_drops_is_a_no_op_for_good_when_a_backup_dies() {
        assert!(judge_reduction(replicated(Role::Backup), 3000, 120) > 10_000);
    }

    /// Competing leaders, nobody dead: a deposed leader keeps acting.
    #[test]
    fn what_the_reduction_drops_is_a_no_op_for_good_with_competing_leaders() {
        let cfg = Config {
            elections: 2,
            max_crashes: 0,
            crashable: Default::default(),
            never_recover: Default::default(),
            ..replicated(Role::Coordinator)
        };
        assert!(judge_reduction(cfg, 3000, 150) > 10_000);
    }

    /// Two clients, a purchase that cannot be paid for, elections early:
    /// other messages and other states.
    #[test]
    fn what_the_reduction_drops_is_a_no_op_for_good_with_two_clients_and_early_elections() {
        let cfg = Config {
            clients: 2,
            elections: 2,
            balance: 6,
            ..replicated(Role::Coordinator)
        };
        assert!(judge_reduction(cfg, 3000, 150) > 10_000);
    }
}
