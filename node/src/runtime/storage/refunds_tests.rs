//! The coordinator's refunded counts are durable: they are in its change
//! records and its snapshots, and a restart reads them back, after any
//! number of compactions.

use super::*;
use twopc_model::{CoordStorage, RequestId, Verdict};

/// A coordinator that remembers purchases `order-0..=n` (the last 8) and
/// has refunded some units of each of them.
fn coordinator(n: u64) -> CoordStorage {
    let mut c = CoordStorage {
        epoch: 2,
        ..Default::default()
    };
    for i in 0..=n {
        let req = RequestId::new(format!("order-{i}"));
        let purchase = twopc_model::Purchase {
            user: "alice".into(),
            sku: "widget".into(),
            qty: 3,
            price: 6,
        };
        let forgotten = c
            .outcomes
            .record_forgetting(req.clone(), purchase, None, Verdict::Committed, 8)
            .1;
        for f in forgotten {
            c.refunded.remove(&f);
        }
        c.refunded.insert(req, 1 + i % 3);
    }
    c
}

#[test]
fn refunded_counts_survive_a_restart_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, none) = LogStore::open_with(dir.path(), 2_000).unwrap();
    assert_eq!(none, None);
    let mut last = CoordStorage::default();
    for n in 0..200 {
        last = coordinator(n);
        // The count raised alone, as a refund's commit decision does.
        let mut raised = last.clone();
        raised
            .refunded
            .insert(RequestId::new(format!("order-{n}")), 3);
        store.stage(Storage::Coordinator(last.clone())).unwrap();
        store.stage(Storage::Coordinator(raised.clone())).unwrap();
        store.sync().unwrap();
        last = raised;
    }
    assert!(store.stats().compactions >= 2, "{:?}", store.stats());
    drop(store);
    let (_, loaded) = LogStore::open(dir.path()).unwrap();
    let Some(Storage::Coordinator(loaded)) = loaded else {
        panic!("a coordinator's state: {loaded:?}")
    };
    assert_eq!(loaded.refunded.len(), 8, "the last 8 purchases' counts");
    assert_eq!(loaded, last);
}
