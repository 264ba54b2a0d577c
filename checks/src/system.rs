//! A checkable twopc system: the configuration people pass on the command line,
//! and [`TwopcModel`], the stateright model built from it.
//!
//! Actor layout: 0 = coordinator, 1 = wallet, 2 = order, 3.. = clients.

use crate::history::{record_out, History};
use crate::mutants::{Checked, Mutant};
use crate::properties;
use serde::Serialize;
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Id, LossyNetwork, Network};
use stateright::{Model, Property};
use std::collections::{BTreeMap, BTreeSet};
use twopc_model::*;

/// The coordinator's actor index.
pub const COORDINATOR: usize = 0;
/// The wallet's actor index.
pub const WALLET: usize = 1;
/// The order service's actor index.
pub const ORDER: usize = 2;
/// The first client's actor index.
pub const FIRST_CLIENT: usize = 3;

/// The kind of network the checker assumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum NetworkKind {
    /// Per-channel FIFO, no loss, no duplication. Every retransmission adds
    /// a copy, so the state space is bounded by `max_in_flight`.
    Ordered,
    /// Any order, each message delivered at most once, no loss. Bounded by
    /// `max_in_flight` like `Ordered`.
    Unordered,
    /// UDP: any order, any message re-delivered any number of times, and lost.
    ///
    /// Loss is not a separate step here: the network is a set that keeps every
    /// message it carried, and a lost message is one that is never delivered,
    /// which every path already includes. Safety verdicts are therefore exact.
    /// For liveness, where a lost message matters, the analysis adds a "lose
    /// everything in flight" step (see `liveness`), which is sound and
    /// complete because more messages in flight never remove a path.
    Udp,
}

/// A role, for choosing which actors may crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
pub enum Role {
    /// The coordinator.
    Coordinator,
    /// The wallet participant.
    Wallet,
    /// The order participant.
    Order,
    /// Every client.
    Client,
}

/// Everything that defines one checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of clients.
    pub clients: usize,
    /// Purchases each client makes, one after another.
    pub purchases: usize,
    /// The one user's initial balance (every client buys as that user).
    pub balance: u64,
    /// The one sku's initial stock.
    pub stock: u64,
    /// Units per purchase.
    pub qty: u64,
    /// Price per unit.
    pub price: u64,
    /// The network.
    pub network: NetworkKind,
    /// How many actors may be down at the same time.
    pub max_crashes: usize,
    /// Which roles may crash.
    pub crashable: BTreeSet<Role>,
    /// Roles that, once crashed, never recover (shows 2PC's blocking).
    pub never_recover: BTreeSet<Role>,
    /// How many coordinator restarts the environment may cause (each bumps
    /// the epoch, so the state space is infinite without a bound). Once
    /// spent, the model offers no coordinator crash (see `TwopcModel::allowed`).
    pub max_restarts: u64,
    /// On the `ordered` and `unordered` networks, which keep one copy per
    /// send, the most messages in flight explored (timers re-send forever, so
    /// the space is infinite without a bound). `udp` needs no bound.
    pub max_in_flight: usize,
    /// A deliberately broken protocol variant to check instead.
    pub mutant: Option<Mutant>,
}

impl Default for Config {
    /// Two clients competing for one balance that covers only one purchase.
    fn default() -> Self {
        Config {
            clients: 2,
            purchases: 1,
            balance: 10,
            stock: 2,
            qty: 1,
            price: 6,
            network: NetworkKind::Udp,
            max_crashes: 0,
            crashable: [Role::Coordinator, Role::Wallet, Role::Order, Role::Client].into(),
            never_recover: BTreeSet::new(),
            max_restarts: 1,
            max_in_flight: 10,
            mutant: None,
        }
    }
}

/// The wallet user and order sku every client buys.
pub const USER: &str = "alice";
/// See [`USER`].
pub const SKU: &str = "widget";

/// One global state of the checked system.
pub type SysState = ActorModelState<Checked, History>;
/// One step of the checked system.
pub type SysAction = ActorModelAction<crate::shared::Shared<Msg>, Timer, ()>;

/// The checked system: stateright's actor model plus the configuration's crash
/// rules (which roles may crash, which never recover).
#[derive(Clone)]
pub struct TwopcModel {
    /// The configuration it was built from.
    pub cfg: Config,
    /// stateright's actor model.
    pub inner: ActorModel<Checked, Config, History>,
}

impl Config {
    /// The production actors of this configuration, in actor-index order.
    pub fn nodes(&self) -> Vec<Node> {
        let coordinator = Id::from(COORDINATOR);
        let participant = |resource, key: &str, level| {
            Node::Participant(Participant {
                resource,
                coordinator,
                initial: BTreeMap::from([(key.to_string(), level)]),
            })
        };
        let mut nodes = vec![
            Node::Coordinator(Coordinator {
                wallet: Id::from(WALLET),
                order: Id::from(ORDER),
            }),
            participant(Resource::Wallet, USER, self.balance),
            participant(Resource::Order, SKU, self.stock),
        ];
        for c in 0..self.clients {
            let purchase = Purchase {
                user: USER.into(),
                sku: SKU.into(),
                qty: self.qty,
                price: self.price,
            };
            nodes.push(Node::Client(Client {
                coordinator,
                id: (FIRST_CLIENT + c) as ClientId,
                purchases: vec![purchase; self.purchases],
            }));
        }
        nodes
    }

    /// The role of actor `index`.
    pub fn role(index: usize) -> Role {
        match index {
            COORDINATOR => Role::Coordinator,
            WALLET => Role::Wallet,
            ORDER => Role::Order,
            _ => Role::Client,
        }
    }

    /// Whether some purchase can fail for lack of funds or stock.
    pub fn can_run_short(&self) -> bool {
        let n = (self.clients * self.purchases) as u64;
        let (spend, take) = (self.qty * self.price, self.qty);
        spend > 0 && (n * spend > self.balance || n * take > self.stock)
    }

    /// Whether a single purchase can commit at all.
    pub fn can_commit(&self) -> bool {
        self.qty > 0 && self.qty * self.price <= self.balance && self.qty <= self.stock
    }

    /// Whether `role` may crash (and later recover) in this configuration.
    pub fn may_crash(&self, role: Role) -> bool {
        self.max_crashes > 0 && self.crashable.contains(&role)
    }

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
        let inner = ActorModel::new(self.clone(), History::default())
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
/// outcome per purchase; the coordinator makes at most one attempt per request
/// in an epoch, so its counter, its votes in progress and its unacknowledged
/// commits are bounded by the requests (times the epochs explored); a
/// participant records at most one hold or finished entry per attempt. A
/// variant whose memory grows past these (a client that files every
/// duplicate, a coordinator that re-attempts decided requests) fails the
/// `bounded` property instead of running until the machine runs out of memory.
pub fn exceeds_limits(cfg: &Config, state: &SysState) -> usize {
    let requests = cfg.clients * cfg.purchases;
    let epochs = 1 + cfg.max_restarts as usize;
    let over = |value: usize, limit: usize| value.saturating_sub(limit);
    let c = coordinator(state);
    let coord = over(c.next_txn as usize, requests)
        .max(over(c.voting.len(), requests))
        .max(over(c.commits.len(), requests * epochs))
        .max(over(c.clients.len(), cfg.clients))
        .max(over(c.epoch as usize, epochs));
    let parts = participants(state)
        .map(|(_, p)| {
            over(
                p.data.holds.len() + p.data.finished.len(),
                requests * epochs,
            )
        })
        .max()
        .unwrap_or(0);
    let clients = clients(state)
        .map(|c| over(c.seen.len(), cfg.purchases))
        .max()
        .unwrap_or(0);
    coord.max(parts).max(clients)
}

/// The coordinator's state in a system state.
pub fn coordinator(state: &SysState) -> &CoordState {
    match &**state.actor_states[COORDINATOR] {
        State::Coordinator(s) => s,
        _ => unreachable!("actor 0 is the coordinator"),
    }
}

/// The participants' states, with their actor indices.
pub fn participants(state: &SysState) -> impl Iterator<Item = (usize, &PartState)> {
    [WALLET, ORDER]
        .into_iter()
        .map(move |i| match &**state.actor_states[i] {
            State::Participant(s) => (i, s),
            _ => unreachable!("actors 1 and 2 are participants"),
        })
}

/// The clients' states.
pub fn clients(state: &SysState) -> impl Iterator<Item = &ClientState> {
    state.actor_states[FIRST_CLIENT..]
        .iter()
        .map(|s| match &***s {
            State::Client(c) => c,
            _ => unreachable!("actors from 3 on are clients"),
        })
}

impl TwopcModel {
    /// The "done" predicate of the liveness analysis: every client has all its
    /// outcomes, and no participant holds anything.
    ///
    /// "All its outcomes" means each of its requests has an outcome about
    /// that very request: a client that filed another request's outcome as
    /// an answer is not done.
    pub fn is_done(&self, state: &SysState) -> bool {
        self.client_configs().zip(clients(state)).all(|(cfg, c)| {
            (0..cfg.purchases.len()).all(|i| c.seen.iter().any(|o| o.req == cfg.req(i)))
        }) && participants(state).all(|(_, p)| p.data.holds.is_empty())
    }

    /// The clients' configurations, in actor order.
    pub fn client_configs(&self) -> impl Iterator<Item = &Client> {
        self.inner.actors[FIRST_CLIENT..]
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
    fn allowed(&self, state: &SysState, action: &SysAction) -> bool {
        match action {
            ActorModelAction::Crash(id) => {
                let role = Config::role((*id).into());
                self.cfg.crashable.contains(&role)
                    && (role != Role::Coordinator
                        || self.cfg.never_recover.contains(&role)
                        || coordinator(state).epoch <= self.cfg.max_restarts)
            }
            ActorModelAction::Recover(id) => {
                !self.cfg.never_recover.contains(&Config::role((*id).into()))
            }
            _ => true,
        }
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

impl Model for TwopcModel {
    type State = SysState;
    type Action = SysAction;

    fn init_states(&self) -> Vec<SysState> {
        self.inner.init_states()
    }

    fn actions(&self, state: &SysState, actions: &mut Vec<SysAction>) {
        self.inner.actions(state, actions);
        actions.retain(|a| self.allowed(state, a));
    }

    fn next_state(&self, state: &SysState, action: SysAction) -> Option<SysState> {
        self.inner.next_state(state, action)
    }

    fn format_action(&self, action: &SysAction) -> String {
        crate::report::format_action(self, action)
    }

    fn format_step(&self, last: &SysState, action: SysAction) -> Option<String> {
        self.inner.format_step(last, action)
    }

    fn as_svg(&self, path: stateright::Path<SysState, SysAction>) -> Option<String> {
        let steps = path.into_vec();
        let init = steps.first()?.0.clone();
        let actions: Vec<SysAction> = steps.into_iter().filter_map(|(_, a)| a).collect();
        self.inner
            .as_svg(stateright::Path::from_actions(&self.inner, init, &actions)?)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::for_config(&self.cfg)
    }

    fn within_boundary(&self, state: &SysState) -> bool {
        Model::within_boundary(&self.inner, state)
    }
}
