//! Tests of the bytes of records, logs and snapshots.
use super::super::journal::Journal;
use super::*;
use twopc_model::ClientState;

#[test]
fn records_scan_back_and_a_cut_record_is_a_torn_tail() {
    let path = Path::new("log.0");
    let state = Storage::Client(ClientState::default());
    let owner = Identity {
        name: "wallet".into(),
        role: crate::runtime::role::Role::Wallet,
    };
    let mut bytes = log_header(0, Some(&owner));
    encode_record(&Delta::Full(state.clone()), &mut bytes);
    let whole = bytes.len();
    encode_record(&Delta::Full(state.clone()), &mut bytes);
    let LogScan {
        owner: found,
        scan,
        preallocated,
    } = scan_log(&bytes, 0, path).unwrap();
    assert_eq!(found.as_ref(), Some(&owner));
    assert!(preallocated, "a new log is of the preallocated format");
    assert_eq!(scan.deltas.len(), 2);
    assert_eq!((scan.valid_len, scan.torn), (bytes.len() as u64, None));
    let cut = scan_log(&bytes[..bytes.len() - 1], 0, path).unwrap().scan;
    assert_eq!((cut.deltas.len(), cut.valid_len), (1, whole as u64));
    assert!(cut.torn.unwrap().contains("incomplete record"));
    let err = scan_log(&bytes, 1, path).unwrap_err().to_string();
    assert!(err.contains("expected 1"), "{err}");
    let err = scan_log(&bytes[..LOG_HEADER + 4], 0, path).unwrap_err();
    assert!(
        err.to_string().contains("owner record is cut short"),
        "{err}"
    );
    let snap = snapshot(4, 17, Some(&owner), &Journal::default(), &state);
    let expected = Snapshot {
        generation: 4,
        base: 17,
        owner: Some(owner),
        journal: Journal::default(),
        state,
    };
    assert_eq!(parse_snapshot(&snap, path).unwrap(), expected);
    // The format before the journal reads as an empty journal.
    let mut snap4 = SNAP_MAGIC_4.to_vec();
    snap4.extend_from_slice(&snap[8..24]);
    encode_value(&expected.owner, &mut snap4);
    encode_record(&Delta::Full(expected.state.clone()), &mut snap4);
    assert_eq!(parse_snapshot(&snap4, path).unwrap(), expected);
    // The previous format, without the base position, reads as base 0.
    let mut old = SNAP_MAGIC_3.to_vec();
    old.extend_from_slice(&snap4[8..16]);
    old.extend_from_slice(&snap4[24..]);
    let read = parse_snapshot(&old, path).unwrap();
    assert_eq!((read.generation, read.base), (4, 0));
    let err = parse_snapshot(&snap[..28], path).unwrap_err().to_string();
    assert!(
        err.contains("not exactly one complete owner record"),
        "{err}"
    );
}

/// A coordinator's unacknowledged commits are written as a list of
/// pairs (so that JSON can carry them): in the binary format that is the
/// very bytes the map was written as, so logs written before still read.
/// And records written before the transactions in doubt existed read as
/// having none.
#[test]
fn commits_as_pairs_are_the_bytes_the_map_was() {
    use bincode::Options;
    use twopc_model::{CoordStorage, Map, Outcomes, RequestId, TxnId};
    #[derive(serde::Serialize)]
    struct Before {
        epoch: u64,
        outcomes: Outcomes,
        commits: Map<TxnId, RequestId>,
    }
    let commits: Map<TxnId, RequestId> = [
        (TxnId { epoch: 2, n: 7 }, RequestId::new("order-1")),
        (TxnId { epoch: 3, n: 0 }, RequestId::new("order-2")),
    ]
    .into_iter()
    .collect();
    let now = CoordStorage {
        epoch: 3,
        outcomes: Outcomes::default(),
        commits: commits.clone(),
        doubts: Map::new(),
        flows: Map::new(),
        partial: Map::new(),
        refunded: Map::new(),
    };
    let before = Before {
        epoch: 3,
        outcomes: Outcomes::default(),
        commits,
    };
    // A whole state, as the record of the format before doubts.
    #[derive(serde::Serialize)]
    enum OldStorage {
        Coordinator(Before),
    }
    #[derive(serde::Serialize)]
    enum OldDelta {
        Full(OldStorage),
    }
    let old_bytes = bincode_opts()
        .serialize(&OldDelta::Full(OldStorage::Coordinator(before)))
        .unwrap();
    let mut rec = Vec::new();
    encode_value(
        &Delta::Full(twopc_model::Storage::Coordinator(now.clone())),
        &mut rec,
    );
    // Then the empty lists of doubts, flows, partial commits and refunded
    // counts.
    assert_eq!(
        &rec[REC_HEADER..],
        [old_bytes.as_slice(), &[0, 0, 0, 0]].concat()
    );
    let mut old_rec = Vec::new();
    encode_value(
        &OldDelta::Full(OldStorage::Coordinator(Before {
            epoch: 3,
            outcomes: Outcomes::default(),
            commits: now.commits.clone(),
        })),
        &mut old_rec,
    );
    let read = scan(&old_rec, Path::new("log")).unwrap().deltas;
    assert_eq!(
        read,
        vec![Delta::Full(twopc_model::Storage::Coordinator(now.clone()))]
    );
    let json = serde_json::to_string(&now).expect("JSON carries the commits");
    assert_eq!(serde_json::from_str::<CoordStorage>(&json).unwrap(), now);
}

/// A coordinator's change record of the format before doubts (the same
/// bytes without the trailing, empty changes of doubts, flows, partial
/// commits and refunded counts), or before flows, or before refunds,
/// reads as changing none; a record cut anywhere else is still
/// undecodable.
#[test]
fn a_change_record_from_before_doubts_reads_as_changing_none() {
    use super::super::delta::CoordDelta;
    use bincode::Options;
    use twopc_model::{CoordStorage, RequestId, TxnId};
    let a = CoordStorage::default();
    let mut b = a.clone();
    b.epoch = 2;
    b.commits
        .insert(TxnId { epoch: 1, n: 4 }, RequestId::new("order-9"));
    let delta = Delta::Coordinator(CoordDelta::diff(&a, &b).expect("a change"));
    let payload = bincode_opts().serialize(&delta).unwrap();
    assert_eq!(&payload[payload.len() - 8..], &[0; 8], "eight empty lists");
    for younger in [2, 6, 8] {
        let mut old = Vec::new();
        encode_value(&RawPayload(&payload[..payload.len() - younger]), &mut old);
        let read = scan(&old, Path::new("log")).unwrap().deltas;
        assert_eq!(read, vec![delta.clone()]);
    }
    // Eight bytes are the most a record can lack and still be read (this
    // record from before doubts: `decode_delta`); the ninth from the end is
    // the empty removals of commits, and the tenth is in the request id: a
    // record cut by nine or ten does not read.
    for cut_by in [9, 10] {
        let mut cut = Vec::new();
        encode_value(&RawPayload(&payload[..payload.len() - cut_by]), &mut cut);
        let err = scan(&cut, Path::new("log")).unwrap_err().to_string();
        assert!(err.contains("undecodable record"), "cut by {cut_by}: {err}");
    }
}

/// A participant's records of the formats before credits, before prices
/// and before the journal (a whole state without its trailing empty maps,
/// a change without its trailing empty changes of them and its empty list
/// of journal entries) read as having none.
#[test]
fn a_participant_record_from_before_credits_reads_as_having_none() {
    use bincode::Options;
    use twopc_model::{Hold, Op, PartStorage, RequestId, TxnId};
    let mut a = PartStorage::default();
    a.levels.insert("alice".into(), 10);
    let mut b = a.clone();
    let hold = Hold {
        req: RequestId::new("order-1"),
        op: Op {
            key: "alice".into(),
            amount: 6,
        },
    };
    b.holds.insert(TxnId { epoch: 1, n: 0 }, hold);
    let full = Delta::Full(twopc_model::Storage::Participant(b.clone()));
    let change = super::super::delta::diff(
        &twopc_model::Storage::Participant(a),
        &twopc_model::Storage::Participant(b),
    )
    .expect("a change");
    for (delta, younger) in [
        (full.clone(), 3),
        (full, 2),
        (change.clone(), 7),
        (change.clone(), 5),
        (change, 1),
    ] {
        let payload = bincode_opts().serialize(&delta).unwrap();
        assert!(payload.ends_with(&vec![0; younger]));
        let mut old = Vec::new();
        encode_value(&RawPayload(&payload[..payload.len() - younger]), &mut old);
        let read = scan(&old, Path::new("log")).unwrap().deltas;
        assert_eq!(read, vec![delta]);
    }
}

/// Bytes written as they are (serde's tuple of u8, which bincode writes
/// without a length).
struct RawPayload<'a>(&'a [u8]);

impl serde::Serialize for RawPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(self.0.len())?;
        for b in self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}
