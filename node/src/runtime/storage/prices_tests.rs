//! The order service's catalogue is durable: prices and pending price
//! changes are in its records, and a restart reads them back.

use super::*;
use twopc_model::participant::Credit;
use twopc_model::{Op, PartStorage, RequestId, TxnId};

#[test]
fn prices_and_pending_price_changes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let txn = TxnId { epoch: 1, n: 0 };
    let mut s = PartStorage::default();
    s.levels.insert("widget".into(), 5);
    s.prices.insert("widget".into(), 6);
    let pending = {
        let mut p = s.clone();
        let op = Op {
            key: "widget".into(),
            amount: 1,
        };
        let req = RequestId::new("reprice");
        p.credits.insert(
            txn,
            Credit {
                req,
                op,
                parties: vec![],
            },
        );
        p.repricing.insert(txn, 4);
        p
    };
    let committed = {
        let mut c = s.clone();
        c.levels.insert("widget".into(), 6);
        c.prices.insert("widget".into(), 4);
        c.prices.insert("gadget".into(), 9);
        c
    };
    {
        let (mut store, none) = LogStore::open(dir.path()).unwrap();
        assert_eq!(none, None);
        for state in [&s, &pending] {
            store.stage(Storage::Participant(state.clone())).unwrap();
            store.sync().unwrap();
        }
    }
    let (mut store, loaded) = LogStore::open(dir.path()).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(pending)), "pending kept");
    store
        .stage(Storage::Participant(committed.clone()))
        .unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, loaded) = LogStore::open(dir.path()).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(committed)), "prices kept");
}
