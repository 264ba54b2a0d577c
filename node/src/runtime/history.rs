//! Whether a participant came back *behind* what it had told its
//! coordinator — a restored backup, a log cut short with its `synced`
//! marker deleted, an empty directory — caught before it votes.
//!
//! A participant's data directory has a history position: the count of
//! records ever synced to it, compactions included (`storage/position.rs`).
//! Every datagram a participant sends carries its *durable* position (the
//! one as of its last completed fsync: a crash can never take it back).
//! A coordinator (or each coordinator replica) keeps the highest position
//! it heard from each participant, by name, and stamps every datagram it
//! sends to that participant with it ("the highest I heard from you").
//!
//! A participant whose durable position is *lower* than the stamp on a
//! datagram from its coordinator has lost history it had acknowledged: its
//! balances may be older than what the shop has already sold against. From
//! then on it hands nothing from the network to its actor — no vote on old
//! balances, no presumed-abort answer applied to holds that were long
//! committed — counts each such datagram as rejected `rolled_back`, logs
//! an ERROR once (then the usual rate-limited WARNs) saying what happened
//! and what to do, and `twopc status` shows the alarm. It stays so until
//! the node is restarted on a directory that is not behind (the newest
//! backup), or the operator accepts the loss with `twopc accept-rollback`
//! (docs/hostile.md).
//!
//! No false alarm: a participant reports only durable positions, and
//! nothing but lost files lowers its position; the coordinator's table is
//! written to disk off the commit path (`DIR/heard`), so after a crash it
//! may be stale, and a coordinator on an empty directory knows nothing:
//! both only make the stamp lower, which weakens the check and never
//! raises it. A node without a position to report (a store that keeps
//! none) stamps nothing and checks nothing.

use crate::runtime::storage::Heard;
use crate::runtime::wire::Reject;
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::Duration;
use tokio::time::Instant;

/// How often, at most, a coordinator writes what it heard to `DIR/heard`
/// (and once more at shutdown).
pub const KEEP_EVERY: Duration = Duration::from_secs(2);

/// One node's part in the check.
#[derive(Debug, Default)]
pub enum History {
    /// Takes no part (clients; runtimes that keep no position).
    #[default]
    Off,
    /// A participant: reports its position, checks what it is told.
    Participant {
        /// Its name (logs).
        name: String,
        /// Its data directory, as the command to accept a loss names it.
        data_dir: String,
        /// Its durable position (`None`: its store keeps none).
        durable: Option<u64>,
        /// (what the coordinator heard, what this node holds), once raised.
        alarm: Option<(u64, u64)>,
    },
    /// A coordinator or a coordinator replica: remembers what it heard.
    Coordinator {
        /// The participants, by address.
        names: HashMap<SocketAddrV4, String>,
        /// The highest position heard from each, by name.
        heard: Heard,
        /// Whether `heard` changed since it was last kept.
        dirty: bool,
        /// When it was last kept.
        kept: Option<Instant>,
    },
}

impl History {
    /// A participant's part: `data_dir` is named in the alarm's advice.
    pub fn participant(name: &str, data_dir: &str) -> History {
        History::Participant {
            name: name.to_string(),
            data_dir: data_dir.to_string(),
            durable: None,
            alarm: None,
        }
    }

    /// A coordinator's part: `names` maps each participant's address to its
    /// name; `heard` is what was kept (`DIR/heard`; empty if nothing was).
    pub fn coordinator(names: HashMap<SocketAddrV4, String>, heard: Heard) -> History {
        History::Coordinator {
            names,
            heard,
            dirty: false,
            kept: None,
        }
    }

    /// The store's durable position, after it opened and after every sync.
    pub fn durable(&mut self, position: Option<u64>) {
        if let History::Participant { durable, .. } = self {
            *durable = position;
        }
    }

    /// The history field of a datagram to `to`.
    pub fn stamp(&self, to: SocketAddrV4) -> Option<u64> {
        match self {
            History::Off => None,
            History::Participant { durable, .. } => *durable,
            History::Coordinator { names, heard, .. } => {
                names.get(&to).and_then(|n| heard.0.get(n)).copied()
            }
        }
    }

    /// A datagram from `from` whose history field is `stamp`: whether its
    /// message may reach the actor (else the rejection to count).
    pub fn heard(&mut self, from: SocketAddrV4, stamp: Option<u64>) -> Result<(), Reject> {
        match self {
            History::Off => Ok(()),
            History::Coordinator {
                names,
                heard,
                dirty,
                ..
            } => {
                if let (Some(name), Some(p)) = (names.get(&from), stamp) {
                    let known = heard.0.entry(name.clone()).or_default();
                    if p > *known {
                        *known = p;
                        *dirty = true;
                    }
                }
                Ok(())
            }
            History::Participant {
                name,
                data_dir,
                durable,
                alarm,
            } => {
                if let Some((heard, durable)) = *alarm {
                    return Err(Reject::RolledBack { heard, durable });
                }
                let (Some(heard), Some(durable)) = (stamp, *durable) else {
                    return Ok(());
                };
                if heard <= durable {
                    return Ok(());
                }
                *alarm = Some((heard, durable));
                tracing::error!(
                    node = %name, %from, heard, durable,
                    "{}", advice(name, data_dir, heard, durable)
                );
                Err(Reject::RolledBack { heard, durable })
            }
        }
    }

    /// The alarm `twopc status` shows, once raised.
    pub fn alarm(&self) -> Option<String> {
        match self {
            History::Participant {
                name,
                data_dir,
                alarm: Some((heard, durable)),
                ..
            } => Some(advice(name, data_dir, *heard, *durable)),
            _ => None,
        }
    }

    /// What a coordinator should write to `DIR/heard` now: something new,
    /// and [`KEEP_EVERY`] since the last write (or `at_shutdown`).
    pub fn to_keep(&mut self, now: Instant, at_shutdown: bool) -> Option<Heard> {
        let History::Coordinator {
            heard, dirty, kept, ..
        } = self
        else {
            return None;
        };
        let due = at_shutdown || kept.is_none_or(|k| now.duration_since(k) >= KEEP_EVERY);
        if !*dirty || !due {
            return None;
        }
        *dirty = false;
        *kept = Some(now);
        Some(heard.clone())
    }
}

/// What the alarm says: what happened, and what to do.
fn advice(name: &str, data_dir: &str, heard: u64, durable: u64) -> String {
    format!(
        "ROLLED BACK: participant {name}'s data directory holds history up to position \
         {durable}, but its coordinator heard position {heard} from it: {} records it had \
         already made durable and reported are missing (a restored backup, a log cut short, \
         an emptied directory). It hands nothing to the protocol (no vote on old balances) \
         until this is resolved. Stop it, then either restore the newest copy of its data \
         directory (or the missing files) and start it again, or accept the loss — balances \
         and stock go back to what this directory holds, purchases recorded only in the lost \
         records are forgotten here — with `twopc accept-rollback --data-dir {data_dir} \
         --position {heard}` and start it again (docs/hostile.md)",
        heard - durable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::admin::RejectReason;

    fn addr(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new([127, 0, 0, 1].into(), port)
    }

    #[test]
    fn a_coordinator_keeps_the_highest_position_per_participant() {
        let names = [(addr(2), "wallet".to_string())].into();
        let mut c = History::coordinator(names, Heard::default());
        assert_eq!(c.stamp(addr(2)), None, "nothing heard: no stamp");
        c.heard(addr(2), Some(7)).unwrap();
        c.heard(addr(2), Some(5)).unwrap(); // a late, reordered datagram
        c.heard(addr(9), Some(99)).unwrap(); // not a participant
        assert_eq!((c.stamp(addr(2)), c.stamp(addr(9))), (Some(7), None));
        let now = Instant::now();
        let kept = c.to_keep(now, false).unwrap();
        assert_eq!(kept.0, [("wallet".to_string(), 7)].into());
        assert_eq!(c.to_keep(now, true), None, "nothing new");
        c.heard(addr(2), Some(8)).unwrap();
        assert_eq!(c.to_keep(now, false), None, "not yet due");
        assert!(c.to_keep(now, true).is_some(), "at shutdown");
    }

    #[test]
    fn a_participant_behind_its_stamp_stops_and_says_why() {
        let mut p = History::participant("wallet", "/var/lib/twopc/wallet");
        p.heard(addr(1), Some(10)).unwrap(); // no position yet: no check
        p.durable(Some(10));
        assert_eq!(p.stamp(addr(1)), Some(10));
        p.heard(addr(1), Some(10)).unwrap();
        p.heard(addr(1), None).unwrap();
        let why = p.heard(addr(1), Some(12)).unwrap_err();
        assert_eq!(why.reason(), RejectReason::RolledBack);
        // Latched: even a datagram without a stamp is refused now.
        assert!(p.heard(addr(1), None).is_err());
        let alarm = p.alarm().unwrap();
        assert!(alarm.contains("position 10"), "{alarm}");
        assert!(
            alarm.contains("accept-rollback --data-dir /var/lib/twopc/wallet --position 12"),
            "{alarm}"
        );
    }
}
