//! The simulated cluster's coordinator: one 2PC coordinator, or (with
//! `--protocol replicated`) three replicas of it, each the runtime's own
//! `Core` around the model's `Replica` on its own disk, talking over the
//! simulated links (`links.rs`); and the checks that only replicas need.
//!
//! Slots: the coordinator (or the first replica, which leads the first
//! term) is slot 0, the wallet 1, the order service 2, the other replicas
//! 3 and 4; clients follow the servers.
//!
//! Besides the judge's promises, two rules the replicated path rests on are
//! checked as they are relied upon, against what each replica's disk
//! holds durably (what a power cut leaves):
//!
//! - **An acknowledgement is durable.** When a replica's `Accepted` for
//!   (term, version) reaches the leader, the sender's disk holds that
//!   version or a later one (an acceptor answers only after its fsync).
//! - **What a leader releases is chosen.** After every batch of a leader,
//!   the version it counts as chosen is on the disks of a majority of the
//!   replicas (its own acceptance counts only once its fsync returned).

use super::world::{World, COORDINATOR, ORDER, WALLET};
use super::SimConfig;
use crate::runtime::cluster::Protocol;
use crate::runtime::core::{Core, Members};
use crate::runtime::role::Role;
use stateright::actor::Id;
use std::net::SocketAddrV4;
use twopc_model::{
    Coordinator, Node, Participant, Replica, ReplicaState, Resource, Standing, State, Storage, Term,
};

/// The servers of a run in slot order (name, actor, role), and the slots of
/// the coordinator or its replicas.
pub(super) fn servers(
    cfg: &SimConfig,
    addr: impl Fn(usize) -> SocketAddrV4,
) -> (Vec<(String, Node, Role)>, Vec<usize>) {
    let replicas: Vec<usize> = match cfg.protocol {
        Protocol::TwoPc => vec![COORDINATOR],
        Protocol::Replicated => vec![COORDINATOR, 3, 4],
    };
    let ids: Vec<Id> = replicas.iter().map(|&i| Id::from(addr(i))).collect();
    let coordinator = Coordinator {
        wallet: Id::from(addr(WALLET)),
        order: Id::from(addr(ORDER)),
        retention: cfg.retention,
        prices: true,
        one_write: cfg.one_write,
    };
    let participant = |resource, initial: &[(&str, u64)]| {
        Node::Participant(Participant {
            resource,
            coordinators: ids.clone(),
            initial: initial.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            prices: Default::default(),
            one_write: cfg.one_write,
        })
    };
    let replica = |index| {
        Node::Replica(Replica {
            coordinator: coordinator.clone(),
            peers: ids.clone(),
            index,
            // Drawn at every start (`lifecycle.rs`), as `node.rs` does.
            incarnation: 0,
        })
    };
    let mut servers = vec![
        match cfg.protocol {
            Protocol::TwoPc => (
                "coordinator".to_string(),
                Node::Coordinator(coordinator.clone()),
                Role::Coordinator,
            ),
            Protocol::Replicated => ("replica0".to_string(), replica(0), Role::Coordinator),
        },
        (
            "wallet".into(),
            participant(Resource::Wallet, super::USERS),
            Role::Wallet,
        ),
        (
            "order".into(),
            participant(Resource::Order, super::SKUS),
            Role::Order,
        ),
    ];
    if cfg.protocol == Protocol::Replicated {
        for index in 1..replicas.len() {
            servers.push((format!("replica{index}"), replica(index), Role::Coordinator));
        }
    }
    (servers, replicas)
}

/// A replica's state, if `core` runs one.
fn replica(core: Option<&Core>) -> Option<&ReplicaState> {
    match core.map(Core::state) {
        Some(State::Replica(r)) => Some(r),
        _ => None,
    }
}

impl World<'_> {
    /// The coordinators' `Id`s, as clients and participants know them.
    pub(super) fn coordinator_ids(&self) -> Vec<Id> {
        self.replicas
            .iter()
            .map(|&i| Id::from(self.slots[i].addr))
            .collect()
    }

    /// The nodes of the cluster file as server `node` knows them (what
    /// `node.rs` hands its core).
    pub(super) fn members(&self, node: usize) -> Members {
        let is_replica = matches!(self.slots[node].actor, Node::Replica(_));
        Members {
            me: Some(self.slots[node].addr),
            nodes: self.slots[..self.servers]
                .iter()
                .map(|s| (s.addr, s.name.clone()))
                .collect(),
            replicas: match is_replica {
                true => self.replicas.iter().map(|&i| self.slots[i].addr).collect(),
                false => Vec::new(),
            },
        }
    }

    /// The (term, version) a replica's disk holds durably.
    fn durable_rank(&self, node: usize) -> Option<(Term, u64)> {
        match &self.slots[node].durable {
            Some(Storage::Replica(r)) => r.accepted.as_ref().map(|a| (a.term, a.version)),
            _ => None,
        }
    }

    /// The leader that is up, of the highest term.
    pub(super) fn leader(&self) -> Option<usize> {
        self.replicas
            .iter()
            .filter_map(|&i| Some((replica(self.slots[i].core.as_ref())?.leading()?.term, i)))
            .max()
            .map(|(_, i)| i)
    }

    /// An `Accepted` from `from` reaches the leader: `from`'s disk holds
    /// what it acknowledges.
    pub(super) fn check_acknowledged(&mut self, from: usize, term: Term, version: u64) {
        if version == 0 || self.durable_rank(from) >= Some((term, version)) {
            return;
        }
        let name = self.slots[from].name.clone();
        let held = match self.durable_rank(from) {
            Some((t, v)) => format!("version {v} of term {t}"),
            None => "no version".into(),
        };
        self.violation(format!(
            "{name} acknowledged version {version} of term {term} that its disk does not hold durably (it holds {held})"
        ));
    }

    /// After a replica's batch: if it leads, what it counts as chosen is
    /// durable at a majority.
    pub(super) fn check_chosen(&mut self, node: usize) {
        let Some(l) = replica(self.slots[node].core.as_ref()).and_then(ReplicaState::leading)
        else {
            return;
        };
        let (term, chosen) = (l.term, l.chosen);
        if self.terms.insert(term) {
            self.report.leaders += 1;
        }
        if chosen == 0 {
            return;
        }
        let holding = self
            .replicas
            .iter()
            .filter(|&&i| self.durable_rank(i) >= Some((term, chosen)))
            .count();
        if holding < self.replicas.len() / 2 + 1 {
            let name = self.slots[node].name.clone();
            self.violation(format!(
                "{name} leads term {term} and counts version {chosen} as chosen, but only {holding} of {} replicas hold it durably",
                self.replicas.len()
            ));
        }
    }

    /// Nothing in doubt at the coordinators: every one up, none recovering,
    /// some replica leads, and every leader has no attempt collecting
    /// votes, no unacknowledged commit and nothing held for a majority.
    pub(super) fn coordinators_quiescent(&self) -> bool {
        let mut leads = false;
        for &i in &self.replicas {
            let slot = &self.slots[i];
            if !slot.peer_inbox.is_empty() || self.links_waiting(i) {
                return false;
            }
            match slot.core.as_ref().map(Core::state) {
                Some(State::Coordinator(c)) => {
                    return c.voting.is_empty() && c.commits.is_empty();
                }
                Some(State::Replica(r)) => match &r.standing {
                    Standing::Leader(l) => {
                        if !(l.coord.voting.is_empty()
                            && l.coord.commits.is_empty()
                            && l.held.is_empty())
                        {
                            return false;
                        }
                        leads = true;
                    }
                    Standing::Recovering { .. } => return false,
                    Standing::Follower
                    | Standing::PreCandidate { .. }
                    | Standing::Candidate { .. } => {}
                },
                _ => return false,
            }
        }
        leads
    }

    /// The coordinator's commit decisions not yet acknowledged, at the end
    /// (the leader's, for replicas); `Err` if there is no coordinator.
    pub(super) fn coordinator_commits(&self) -> Result<usize, String> {
        if self.replicas.len() == 1 {
            return match self.slots[COORDINATOR]
                .core
                .as_ref()
                .map(|c| c.state().storage())
            {
                Some(Storage::Coordinator(c)) => Ok(c.commits.len()),
                _ => Err("the coordinator is down at the end".into()),
            };
        }
        let leader = self
            .leader()
            .ok_or("no coordinator replica leads at the end")?;
        let l = replica(self.slots[leader].core.as_ref())
            .and_then(ReplicaState::leading)
            .expect("a leader");
        Ok(l.coord.commits.len())
    }
}
