//! Transactions in doubt, as a node shows them and an operator decides them.
//!
//! A coordinator that starts without its log (an empty data directory, a
//! replaced disk) learns from the participants what the lost log may have
//! decided (*A lost log is never presumed* in `twopc-model`'s docs). A
//! transaction that both participants hold, with no decision anyone knows,
//! stays *in doubt*: durably, never presumed, its holds kept, its request
//! reported in progress, until an operator decides it with `twopc decide`.
//! That decision is *heuristic*, as XA's heuristic commit and rollback are:
//! the lost log may have decided the other way and told the caller so.
//!
//! Here: what `twopc status` and `/metrics` show of them ([`DoubtsView`],
//! the alarm and the line that names the command), the admin request and
//! its answers ([`Decision`], [`DecideAnswer`], carried by
//! `Payload::DecideRequest` and `Payload::DecideReply`), and the line
//! appended to `DIR/heuristic.log` for each decision ([`audit_line`]). The
//! core takes the decision (`core/doubts.rs`), the command asks for it
//! (`cli/decide.rs`).

use serde::{Deserialize, Serialize};
use twopc_model::{RequestId, TxnId};

/// The file beside a coordinator's log where each heuristic decision is
/// appended (and fsynced) as one line, for an auditor.
pub const HEURISTIC_LOG: &str = "heuristic.log";

/// At most this many transactions in doubt are listed in a status reply
/// (`total` counts them all).
pub const MAX_LISTED_DOUBTS: usize = 64;

/// One transaction in doubt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubtView {
    /// The transaction, `epoch.n`.
    pub txn: String,
    /// The request (purchase id) it attempted.
    pub req: String,
}

/// A coordinator's transactions in doubt, as `twopc status` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubtsView {
    /// How many there are.
    pub total: usize,
    /// The first [`MAX_LISTED_DOUBTS`] of them.
    pub listed: Vec<DoubtView>,
}

impl DoubtsView {
    /// The view of a coordinator's `doubts`.
    pub fn of<'a>(doubts: impl ExactSizeIterator<Item = (&'a TxnId, &'a RequestId)>) -> Self {
        let total = doubts.len();
        let listed = doubts
            .take(MAX_LISTED_DOUBTS)
            .map(|(t, r)| DoubtView {
                txn: t.to_string(),
                req: r.to_string(),
            })
            .collect();
        DoubtsView { total, listed }
    }

    /// `3.1 (request ORDER-1), 3.2 (request ORDER-2) (+5 more)`.
    pub fn names(&self) -> String {
        let names: Vec<String> = self
            .listed
            .iter()
            .map(|d| format!("{} (request {})", d.txn, d.req))
            .collect();
        let more = self.total.saturating_sub(self.listed.len());
        match more {
            0 => names.join(", "),
            n => format!("{} (+{n} more)", names.join(", ")),
        }
    }

    /// The alarm `twopc status` shows first (`None` when nothing is in doubt).
    pub fn alarm(&self) -> Option<String> {
        (self.total > 0).then(|| {
            format!(
                "{} transaction(s) in doubt, both participants holding them since this \
                 coordinator's log was lost: {}; see the line `in doubt` below",
                self.total,
                self.names()
            )
        })
    }

    /// The lines `twopc status` shows for a coordinator.
    pub fn render(&self) -> String {
        if self.total == 0 {
            return "  in doubt: none\n".to_string();
        }
        format!(
            "  in doubt: {}\n    (a lost log may have decided these either way and told the \
             buyer: both participants hold them, and they wait for an operator. Look at both \
             participants (`twopc status --name wallet`, `--name order`), then decide each one: \
             `twopc decide --cluster FILE --txn TXN --commit` or `--abort`, a heuristic \
             decision; see `twopc decide --help`)\n",
            self.names()
        )
    }
}

/// What an operator decides for a transaction in doubt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Apply it at both participants.
    Commit,
    /// Release both participants' holds.
    Abort,
}

impl Decision {
    /// Whether it commits.
    pub fn commits(self) -> bool {
        self == Decision::Commit
    }

    /// `commit` or `abort` (the counter's label).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A coordinator's answer to `twopc decide` (externally tagged: bincode,
/// the datagrams' format, cannot read an internally tagged enum).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecideAnswer {
    /// Decided, durably (a replicated coordinator: chosen by a majority);
    /// the decision is on its way to both participants.
    Decided {
        /// The request the transaction attempted.
        req: String,
    },
    /// The transaction is not in doubt here; nothing changed. Lists what is.
    NotInDoubt {
        /// The transactions in doubt at this coordinator.
        in_doubt: DoubtsView,
    },
    /// The coordinator is still asking the participants what its lost log
    /// decided: what is in doubt is not known yet. Ask again.
    Learning,
    /// A replica that does not lead: only the leader decides.
    NotLeader {
        /// The leader it follows, if it knows one (`name (address)`).
        leader: Option<String>,
    },
    /// A leader that lost its leadership before its decision was chosen:
    /// the next leader may or may not have it. Look again with `status`.
    Unsure {
        /// The replica it now follows, if it knows one.
        leader: Option<String>,
    },
    /// Not a coordinator (a participant or client): nothing is in doubt here.
    NotCoordinator,
}

/// The line appended to `DIR/heuristic.log` for a decision, at `unix_ms`.
pub fn audit_line(
    node: &str,
    txn: TxnId,
    req: &RequestId,
    decision: Decision,
    unix_ms: u128,
) -> String {
    let json = serde_json::json!({
        "unix_ms": unix_ms as u64,
        "node": node,
        "txn": txn.to_string(),
        "req": req.to_string(),
        "decision": decision.as_str(),
        "heuristic": true,
    });
    format!("{json}\n")
}

/// Parses a transaction id as `status` shows it: `EPOCH.N`.
pub fn parse_txn(s: &str) -> Result<TxnId, String> {
    let bad = || {
        format!(
            "{s:?} is not a transaction id: expected EPOCH.N, two whole numbers, as `twopc \
             status` lists them under `in doubt` (e.g. 3.1)"
        )
    };
    let (epoch, n) = s.split_once('.').ok_or_else(bad)?;
    let number = |p: &str| {
        p.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse::<u64>().ok())
            .flatten()
    };
    match (number(epoch), number(n)) {
        (Some(epoch), Some(n)) => Ok(TxnId { epoch, n }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_crosses_the_wire() {
        let codec = crate::runtime::wire::Codec::new(None, crate::runtime::wire::Format::Bincode);
        let answers = [
            DecideAnswer::Decided { req: "r".into() },
            DecideAnswer::NotInDoubt {
                in_doubt: DoubtsView::default(),
            },
            DecideAnswer::Learning,
            DecideAnswer::NotLeader { leader: None },
            DecideAnswer::Unsure {
                leader: Some("c".into()),
            },
            DecideAnswer::NotCoordinator,
        ];
        for answer in answers {
            let reply = crate::runtime::wire::Payload::DecideReply { nonce: 1, answer };
            let bytes = codec.encode(&reply).unwrap();
            assert_eq!(codec.decode(&bytes), Ok(reply));
        }
    }

    #[test]
    fn transaction_ids_parse_as_status_shows_them() {
        assert_eq!(parse_txn("3.1"), Ok(TxnId { epoch: 3, n: 1 }));
        for bad in [
            "",
            "3",
            "3.",
            ".1",
            "3.1.2",
            "-3.1",
            "3.+1",
            "a.b",
            " 3.1",
            "99999999999999999999.1",
        ] {
            assert!(parse_txn(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_coordinator_with_doubts_raises_an_alarm_naming_them() {
        let txn = TxnId { epoch: 3, n: 1 };
        let req = RequestId::new("ORDER-1");
        let doubts = [(txn, req)];
        let view = DoubtsView::of(doubts.iter().map(|(t, r)| (t, r)));
        assert_eq!(view.total, 1);
        let alarm = view.alarm().unwrap();
        assert!(alarm.contains("3.1 (request ORDER-1)"), "{alarm}");
        assert!(view.render().contains("twopc decide"));
        assert_eq!(DoubtsView::default().alarm(), None);
    }
}
