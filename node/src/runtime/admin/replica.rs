//! [`ReplicaView`]: where a coordinator replica stands (following,
//! campaigning, leading, recovering), for `twopc status`. Uses `peers`
//! (its group).

use super::GroupView;
use serde::{Deserialize, Serialize};
use twopc_model::ReplicaState;

/// Where a replica stands, for `twopc status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// Following, campaigning or leading.
    pub standing: Standing,
    /// The highest term it promised, `n/leader`.
    pub promised: String,
    /// Its number `n` (for `/metrics`).
    #[serde(default)]
    pub promised_number: u64,
    /// The term it campaigns for or leads, `n/leader`.
    pub term: Option<String>,
    /// The state it accepted last: its term and version.
    pub accepted: Option<(String, u64)>,
    /// Leader: the highest version a majority accepted.
    pub chosen: Option<u64>,
    /// Leader: the latest version it wrote.
    pub version: Option<u64>,
    /// Leader: outputs of its coordinator waiting for their version to be
    /// chosen.
    pub held: Option<usize>,
    /// Recovering: how many of the other replicas have answered its
    /// recovery question (it votes once every one has).
    #[serde(default)]
    pub answered: Option<usize>,
    /// Which replicas it heard from lately, and whether that is a majority
    /// (`None` when the runtime does not know the group).
    #[serde(default)]
    pub group: Option<GroupView>,
}

/// A replica's standing, as `twopc status` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// Follows the leader of its promised term.
    Follower,
    /// Heard nothing from its leader for a whole period: asks the others
    /// whether they would promise the next term before it campaigns
    /// (pre-vote).
    #[serde(rename = "pre-candidate")]
    PreCandidate,
    /// Campaigns for a term.
    Candidate,
    /// Leads: runs the coordinator.
    Leader,
    /// Started on an empty data directory: catching up from the other
    /// replicas before it votes (`twopc_model::replica`, *A replica that
    /// lost its disk*).
    Recovering,
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Standing::Follower => "follower",
            Standing::PreCandidate => "pre-candidate",
            Standing::Candidate => "candidate",
            Standing::Leader => "leader",
            Standing::Recovering => "recovering",
        })
    }
}

impl ReplicaView {
    /// The view of replica state `r`.
    pub fn of(r: &ReplicaState) -> ReplicaView {
        let mut view = ReplicaView {
            standing: Standing::Follower,
            promised: r.acceptor.promised.to_string(),
            promised_number: r.acceptor.promised.n,
            term: None,
            accepted: r
                .acceptor
                .accepted
                .as_ref()
                .map(|a| (a.term.to_string(), a.version)),
            chosen: None,
            version: None,
            held: None,
            answered: None,
            group: None,
        };
        match &r.standing {
            twopc_model::Standing::Follower => {}
            twopc_model::Standing::Recovering { answered, .. } => {
                view.standing = Standing::Recovering;
                view.answered = Some(answered.len());
            }
            twopc_model::Standing::PreCandidate { term, .. } => {
                view.standing = Standing::PreCandidate;
                view.term = Some(term.to_string());
            }
            twopc_model::Standing::Candidate { term, .. } => {
                view.standing = Standing::Candidate;
                view.term = Some(term.to_string());
            }
            twopc_model::Standing::Leader(l) => {
                view.standing = Standing::Leader;
                view.term = Some(l.term.to_string());
                view.chosen = Some(l.chosen);
                view.version = Some(l.version);
                view.held = Some(l.held.len());
            }
        }
        view
    }
}

impl ReplicaView {
    /// One line: `leader of term 2/127.0.0.1:7001, promised 2/..., accepted
    /// 2/...#14, chosen 14, held 0`.
    pub fn render(&self) -> String {
        if self.standing == Standing::Recovering {
            return format!(
                "recovering (empty data directory): {} other replica(s) answered; it votes once every other replica has",
                self.answered.unwrap_or(0)
            );
        }
        let mut s = match &self.term {
            Some(t) => format!("{} of term {t}", self.standing),
            None => self.standing.to_string(),
        };
        s += &format!(", promised {}", self.promised);
        match &self.accepted {
            Some((t, v)) => s += &format!(", accepted {t} version {v}"),
            None => s += ", accepted nothing",
        }
        if let (Some(chosen), Some(held)) = (self.chosen, self.held) {
            s += &format!(", chosen version {chosen}, held outputs {held}");
        }
        s
    }
}
