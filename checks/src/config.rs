//! The configuration people pass on the command line: how many clients and
//! purchases, the balance and stock, the network, which roles may crash.
//!
//! Actor layout: 0 = coordinator (with the replicated protocol: the first
//! replica), 1 = wallet, 2 = order, 3.. = clients, then the other replicas.

use crate::mutants::Mutant;
use serde::Serialize;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};
use twopc_model::*;

pub use twopc_model::slots::{COORDINATOR, ORDER, WALLET};

mod demos;
mod shop;
pub use shop::{prices, refunds, REFUNDS_MAX};
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

pub use twopc_model::Protocol;

/// A role, for choosing which actors may crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
pub enum Role {
    /// The coordinator (with the replicated protocol: the first replica,
    /// which leads the first term).
    Coordinator,
    /// With the replicated protocol: the other coordinator replicas.
    Backup,
    /// The wallet participant.
    Wallet,
    /// The order participant.
    Order,
    /// Every client.
    Client,
}

/// A client that re-uses the first client's first request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
pub enum Reuse {
    /// A fresh incarnation of the caller (it lost its memory) re-sends the
    /// purchase, same contents, from another client: it must get the first
    /// attempt's outcome, or "unknown", and never start it again.
    Same,
    /// The id re-sent with other contents (one more unit): refused.
    Different,
    /// Asks what became of the id, without purchasing.
    Lookup,
    /// A second caller makes the same purchase under the same id as a new
    /// purchase (it may start it, with a ticket, if the id is unknown): what
    /// a caller that re-runs its purchase with its own id after a crash does.
    New,
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
    /// How many outcomes the coordinator remembers.
    pub retention: usize,
    /// Extra clients, one per entry, that re-use the first request's id
    /// while the first client makes its purchases.
    pub reuse: Vec<Reuse>,
    /// Requests the first client makes after its own purchases, re-using its
    /// first id as a caller that forgot it would (never with a ticket): a
    /// fresh incarnation, without the interleavings of another actor.
    pub afterwards: Vec<Reuse>,
    /// A deliberately broken protocol variant to check instead.
    pub mutant: Option<Mutant>,
    /// Every coordinator crash loses its disk (an operator replacing a
    /// dead machine's data directory by an empty one). Two-phase commit
    /// only, and only while the coordinator owes no commit: a log lost
    /// with a decision still owed is not handled yet (see *Epochs are
    /// learned* in the crate docs of twopc-model).
    pub lose_disk: bool,
    /// A replica's crash loses its disk (an operator replacing a dead
    /// replica's data directory by an empty one): it restarts without
    /// storage and recovers from the others. The replicated protocol only;
    /// one crash in all, the one that loses the disk.
    pub lose_replica_disk: bool,
    /// The commit protocol.
    pub protocol: Protocol,
    /// Coordinator replicas (the replicated protocol only; odd, at least 3).
    pub replicas: usize,
    /// Campaigns the environment may start while the leader is up and
    /// leading (a timer that fires early: competing leaders). Campaigns when
    /// a follower's leader is down or not leading are always possible. Each
    /// campaign raises the term, so without a bound the space is infinite.
    pub elections: u64,
    /// Whether a replica asks the others before it campaigns (pre-vote,
    /// `twopc_model::replica`). `false` checks the protocol before pre-vote,
    /// where a follower whose timer fires campaigns at once: every behaviour
    /// with pre-vote is one of those (erase the pre-candidates, which are
    /// followers whose next timer step is a campaign, and the `PreVote` and
    /// `PreVoteGrant` messages, which change nothing durable: each step of
    /// the model with pre-vote is a step or a stutter of the one without),
    /// so every `always` property that holds without it holds with it. The
    /// `competing-leaders` entry uses this: with pre-vote its graph does not
    /// fit in the CI budget (docs/checking.md).
    pub pre_vote: bool,
    /// The first client, after its purchases (and before its `afterwards`
    /// requests), tops up a new user's wallet and then restocks the sku:
    /// the general transaction's credits (docs/shop.md), each a
    /// one-participant transaction. (Made by the first client rather than
    /// an extra one: an extra concurrent client took the one-purchase
    /// configuration past 10 million states.) Off, the configuration is
    /// what it was.
    pub flows: bool,
    /// Prices (docs/shop.md, "Prices"): the order service's catalogue
    /// prices the sku at [`Config::catalogue_price`], the coordinator
    /// sends every purchase's order hold with the buyer's price, and the
    /// first client, before its purchases, restocks the sku at `price`
    /// (see [`Config::price_requests`]). Off, the configuration is what
    /// it was.
    pub prices: bool,
    /// Refunds (docs/shop.md, "Refund"): the first client, after its
    /// purchases and flows, makes the first `refunds` of the refund
    /// requests of [`Config::refund_requests`]. 0: the configuration is
    /// what it was.
    pub refunds: usize,
    /// One durable write on the commit path (docs/one-write.md): the
    /// coordinator tells a decision before it saves it, fences late votes
    /// and resolves from the participants at every start. Two-phase commit
    /// only. Off, the configuration is what it was.
    pub one_write: bool,
    /// Clients keep their latest ticket for each next new purchase
    /// (`Client::keep_ticket`) instead of asking for one first. Off, the
    /// configuration is what it was.
    pub keep_ticket: bool,
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
            crashable: [
                Role::Coordinator,
                Role::Backup,
                Role::Wallet,
                Role::Order,
                Role::Client,
            ]
            .into(),
            never_recover: BTreeSet::new(),
            max_restarts: 1,
            max_in_flight: 10,
            retention: 4,
            reuse: Vec::new(),
            afterwards: Vec::new(),
            mutant: None,
            lose_disk: false,
            lose_replica_disk: false,
            protocol: Protocol::TwoPc,
            replicas: 3,
            elections: 1,
            pre_vote: true,
            flows: false,
            prices: false,
            refunds: 0,
            one_write: false,
            keep_ticket: false,
        }
    }
}

/// The wallet user and order sku every client buys.
pub const USER: &str = "alice";
/// See [`USER`].
pub const SKU: &str = "widget";
/// The new user the flows client tops up (`Config::flows`): not in the
/// wallet's initial levels, created by the commit of the top-up.
pub const NEW_USER: &str = "bob";
/// The flows client's top-up, and restock.
pub const TOP_UP: u64 = 1;
/// See [`TOP_UP`].
pub const RESTOCK: u64 = 1;

impl Config {
    /// The production actors of this configuration, in actor-index order.
    pub fn nodes(&self) -> Vec<Node> {
        let coordinators: Vec<Id> = self.replica_indices().into_iter().map(Id::from).collect();
        let participant = |resource, key: &str, level| {
            let priced = self.prices && resource == Resource::Order;
            Node::Participant(Participant {
                resource,
                coordinators: coordinators.clone(),
                initial: BTreeMap::from([(key.to_string(), level)]),
                prices: if priced {
                    BTreeMap::from([(key.to_string(), self.catalogue_price())])
                } else {
                    BTreeMap::new()
                },
                one_write: self.one_write,
            })
        };
        let coordinator = Coordinator {
            wallet: Id::from(WALLET),
            order: Id::from(ORDER),
            retention: self.retention,
            prices: self.prices,
            one_write: self.one_write,
        };
        let replica = |index| match self.protocol {
            Protocol::TwoPc => Node::Coordinator(coordinator.clone()),
            Protocol::Replicated => Node::Replica(Replica {
                coordinator: coordinator.clone(),
                peers: coordinators.clone(),
                index,
                incarnation: 0,
            }),
        };
        let mut nodes = vec![
            replica(0),
            participant(Resource::Wallet, USER, self.balance),
            participant(Resource::Order, SKU, self.stock),
        ];
        let purchase = |qty| Purchase {
            user: USER.into(),
            sku: SKU.into(),
            qty,
            price: self.price,
        };
        let reuse = |r: &Reuse| {
            let (qty, mode) = match r {
                Reuse::Same => (self.qty, Mode::Retry),
                Reuse::Different => (self.qty + 1, Mode::Retry),
                Reuse::Lookup => (self.qty, Mode::Lookup),
                Reuse::New => (self.qty, Mode::New),
            };
            Request {
                req: Self::req(0, 0),
                op: purchase(qty).into(),
                mode,
            }
        };
        for c in 0..self.clients {
            let mut requests: Vec<Request> = if c == 0 {
                self.price_requests()
            } else {
                Vec::new()
            };
            requests.extend((0..self.purchases).map(|i| Request {
                req: Self::req(c, i),
                op: purchase(self.qty).into(),
                mode: Mode::New,
            }));
            if c == 0 {
                requests.extend(self.flows_requests());
                requests.extend(self.refund_requests());
                requests.extend(self.afterwards.iter().map(reuse));
            }
            nodes.push(Node::Client(Client {
                coordinators: coordinators.clone(),
                id: (FIRST_CLIENT + c) as ClientId,
                requests,
                keep_ticket: self.keep_ticket,
            }));
        }
        for (k, r) in self.reuse.iter().enumerate() {
            nodes.push(Node::Client(Client {
                coordinators: coordinators.clone(),
                id: (FIRST_CLIENT + self.clients + k) as ClientId,
                requests: vec![reuse(r)],
                keep_ticket: self.keep_ticket,
            }));
        }
        for index in 1..coordinators.len() {
            nodes.push(replica(index));
        }
        nodes
    }

    /// The flows requests (`Config::flows`): a top-up of a new user, then a
    /// restock of the sku.
    fn flows_requests(&self) -> Vec<Request> {
        if !self.flows {
            return Vec::new();
        }
        vec![
            Request {
                req: RequestId::new("topup"),
                op: Operation::TopUp {
                    user: NEW_USER.into(),
                    amount: TOP_UP,
                },
                mode: Mode::New,
            },
            Request {
                req: RequestId::new("restock"),
                op: Operation::Restock {
                    sku: SKU.into(),
                    qty: RESTOCK,
                },
                mode: Mode::New,
            },
        ]
    }

    /// The flows client's requests (`Config::flows`): 2 or 0.
    pub fn flow_requests(&self) -> usize {
        if self.flows {
            2
        } else {
            0
        }
    }

    /// The clients' actor indices.
    pub fn client_indices(&self) -> std::ops::Range<usize> {
        FIRST_CLIENT..FIRST_CLIENT + self.clients + self.reuse.len()
    }

    /// The coordinator's actor indices: 0, and with the replicated protocol
    /// the other replicas after the clients.
    pub fn replica_indices(&self) -> Vec<usize> {
        match self.protocol {
            Protocol::TwoPc => vec![COORDINATOR],
            Protocol::Replicated => {
                let first_other = self.client_indices().end;
                std::iter::once(COORDINATOR)
                    .chain(first_other..first_other + self.replicas - 1)
                    .collect()
            }
        }
    }

    /// The id of client `c`'s `i`-th purchase (both from 0).
    pub fn req(c: usize, i: usize) -> RequestId {
        RequestId::new(format!("c{c}p{i}"))
    }

    /// How many distinct request ids the clients use.
    pub fn ids(&self) -> usize {
        self.clients * self.purchases
            + self.flow_requests()
            + self.price_requests().len()
            + self.refund_ids()
    }

    /// The role of actor `index`.
    pub fn role(&self, index: usize) -> Role {
        match index {
            WALLET => Role::Wallet,
            ORDER => Role::Order,
            COORDINATOR => Role::Coordinator,
            i if self.replica_indices().contains(&i) => Role::Backup,
            _ => Role::Client,
        }
    }

    /// The most coordinator epochs a run can reach beyond the first: one per
    /// restart, or with the replicated protocol one per leader, and every
    /// term can have one (the budget of restarts and early campaigns, plus a
    /// campaign by each replica after the last of them).
    pub fn max_epochs(&self) -> u64 {
        match self.protocol {
            Protocol::TwoPc => self.max_restarts,
            Protocol::Replicated => (self.max_restarts + self.elections + 2) * self.replicas as u64,
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
}

/// The replicated coordinator with one replica's disk lost: a backup
/// crashes once, and that crash loses its disk. (The leader's disk lost
/// as well took more than 5 million states, and did not fit in CI time.)
pub fn replica_disk_lost() -> Config {
    Config {
        max_crashes: 1,
        crashable: [Role::Backup].into(),
        lose_replica_disk: true,
        ..replicated()
    }
}

/// One client, one purchase, the replicated protocol, campaigns only when a
/// leader is down.
pub fn replicated() -> Config {
    Config {
        clients: 1,
        protocol: Protocol::Replicated,
        elections: 0,
        ..Config::default()
    }
}

/// The replicated coordinator with competing leaders and a change of
/// leader: one campaign may start early, while the first leader is up and
/// leading (by either backup), and the first leader may crash at any
/// moment and never recover (a backup then campaigns against it). Two
/// replicas can lead, one after or beside the other, and two candidates
/// can compete for the same term number.
pub fn competing_leaders() -> Config {
    Config {
        elections: 1,
        pre_vote: false,
        max_crashes: 1,
        crashable: [Role::Coordinator].into(),
        never_recover: [Role::Coordinator].into(),
        ..replicated()
    }
}

/// The `one-write` entry of the CI matrix: one purchase under the one-write
/// protocol, any actor may crash (one down at a time), the coordinator
/// restarts once: decisions told before they are saved, fences, and a
/// restart that resolves from the participants.
pub fn one_write() -> Config {
    Config {
        clients: 1,
        max_crashes: 1,
        one_write: true,
        ..Config::default()
    }
}

/// [`one_write`] with only `roles` crashing: how its liveness analysis is
/// split in CI. With every role crashable the graph is 22,573,517 states
/// (24 minutes); the coordinator alone is 1,477,857 and the others
/// together 321,572 (docs/one-write.md, *Outcomes recovered at a restart*).
pub fn one_write_crashing(roles: &[Role]) -> Config {
    Config {
        crashable: roles.iter().copied().collect(),
        ..one_write()
    }
}
