//! Tests of the log records: every diff applies to the new state.

use super::*;
use twopc_model::{Op, Purchase, RequestId, Verdict};

/// The diff of persistent maps finds every change, wherever it sits
/// among shared subtrees. imbl 6.1's `OrdMap::diff` (and its `==`)
/// skipped the entry right after a run of shared nodes (imbl #161,
/// fixed in 7.0.2): a coordinator's changed outcome was then missing
/// from its log record, and a restart brought back the older outcome.
/// The simulation (`twopc-sim`, seed 103023 with 500 purchases) found
/// it as "coordinator restarted from another state".
#[test]
fn a_change_after_a_shared_run_of_nodes_is_in_the_record() {
    for n in [10u64, 100, 1000, 5000] {
        let mut old = PartStorage::default();
        for i in 0..n {
            old.levels.insert(format!("k{i:05}"), i);
        }
        for i in 0..n {
            let mut new = old.clone();
            new.levels.insert(format!("k{i:05}"), i + 1);
            let (a, b) = (Storage::Participant(old.clone()), Storage::Participant(new));
            assert_ne!(a, b, "{n} keys, key {i} changed");
            let delta = diff(&a, &b).expect("a change");
            assert_eq!(apply(Some(a), delta).unwrap(), b, "{n} keys, key {i}");
        }
    }
}

fn part(seed: u64) -> PartStorage {
    let mut s = PartStorage::default();
    for i in 0..20u64 {
        let x = (i * 7919 + seed * 104_729) % 13;
        if x < 9 {
            s.levels.insert(format!("k{i}"), x * 10);
        }
        let txn = TxnId { epoch: 1, n: i };
        let req = RequestId::new(format!("order-{i}"));
        let op = Op {
            key: format!("k{i}"),
            amount: x,
        };
        match x % 3 {
            0 => {
                s.holds.insert(txn, Hold { req, op });
            }
            1 => {
                s.finished.insert(
                    txn,
                    Finished {
                        req: Some(req),
                        op: Some(op),
                        committed: x.is_multiple_of(2),
                    },
                );
            }
            _ => {}
        }
    }
    s
}

#[test]
fn apply_of_diff_gives_the_new_state() {
    let outcome = |seq| Outcome {
        req: RequestId::new(format!("order-{seq}")),
        txn: None,
        verdict: Verdict::Committed,
    };
    let contents = Purchase {
        user: "alice".into(),
        sku: "widget".into(),
        qty: 1,
        price: 6,
    };
    let mut states = Vec::new();
    for seed in 0..6 {
        states.push(Storage::Participant(part(seed)));
        let mut c = CoordStorage {
            epoch: seed,
            ..Default::default()
        };
        for i in 0..seed {
            // Retention 3: the later seeds forget their first outcomes.
            let o = outcome(i + seed);
            c.outcomes
                .record(o.req, contents.clone(), None, o.verdict, 3);
            c.commits.insert(
                TxnId { epoch: seed, n: i },
                RequestId::new(format!("order-{i}")),
            );
            // Refunded counts, raised and forgotten from seed to seed.
            if (i + seed) % 2 == 0 {
                c.refunded.insert(outcome(i + seed).req, i + 1);
            }
        }
        // Replicas: promised terms, with and without an accepted state
        // (the coordinator's, diffed against the previous one's).
        let term = Term {
            n: seed / 2,
            leader: stateright::actor::Id::from(seed as usize % 3),
        };
        states.push(Storage::Replica(ReplicaStorage {
            promised: term,
            accepted: (seed > 0).then(|| Accepted {
                term,
                version: seed % 4,
                storage: c.clone(),
            }),
        }));
        states.push(Storage::Coordinator(c));
        states.push(Storage::Client(ClientState {
            seen: (0..seed).map(outcome).collect(),
            ticket: seed.checked_sub(3),
        }));
    }
    for old in &states {
        for new in &states {
            let next = match diff(old, new) {
                None => old.clone(),
                Some(d) => apply(Some(old.clone()), d).unwrap(),
            };
            assert_eq!(&next, new);
            assert_eq!(diff(old, new).is_none(), old == new);
            if let (Storage::Replica(_), Storage::Replica(b)) = (old, new) {
                // Between replicas, only the accepted state's changes
                // are written, never a whole state.
                let whole = matches!(diff(old, new), Some(Delta::Full(_)));
                assert!(!whole || b.accepted.is_none(), "{old:?} -> {new:?}");
            }
        }
    }
}

/// A replica that accepted a coordinator's state of many outcomes, then
/// the next version with one more: the record is that one outcome (and
/// the numbers), not the state.
#[test]
fn a_replicas_record_is_what_its_accepted_state_gained() {
    let contents = Purchase {
        user: "alice".into(),
        sku: "widget".into(),
        qty: 1,
        price: 6,
    };
    let mut c = CoordStorage::default();
    for i in 0..20_000 {
        let req = RequestId::new(format!("order-{i}"));
        c.outcomes
            .record(req, contents.clone(), None, Verdict::Committed, 100_000);
    }
    let term = Term {
        n: 3,
        leader: stateright::actor::Id::from(1),
    };
    let replica = |version, storage: &CoordStorage| {
        Storage::Replica(ReplicaStorage {
            promised: term,
            accepted: Some(Accepted {
                term,
                version,
                storage: storage.clone(),
            }),
        })
    };
    let old = replica(7, &c);
    let mut next = c.clone();
    let req = RequestId::new("order-new");
    next.outcomes
        .record(req, contents, None, Verdict::Committed, 100_000);
    let new = replica(8, &next);
    let delta = diff(&old, &new).expect("a change");
    let mut bytes = Vec::new();
    super::super::record::encode_record(&delta, &mut bytes);
    assert!(bytes.len() < 300, "{} bytes", bytes.len());
    assert_eq!(apply(Some(old), delta).unwrap(), new);
}
