//! Tests of the frames and their delta codec (`frame.rs`), and of
//! coalescing (`coalesce.rs`); the helpers are shared with `link_tests.rs`.

use super::*;
use crate::runtime::wire::{ClusterKey, Codec, Format};
use std::net::SocketAddrV4;
use std::sync::Arc;
use twopc_model::{CoordStorage, Msg, Purchase, RequestId, Term, Verdict};

pub(super) fn state(outcomes: usize) -> CoordStorage {
    let mut c = CoordStorage::default();
    let contents = Purchase {
        user: "alice".into(),
        sku: "widget".into(),
        qty: 1,
        price: 6,
    };
    for i in 0..outcomes {
        let req = RequestId::new(format!("order-{i}"));
        c.outcomes
            .record(req, contents.clone(), None, Verdict::Committed, 100_000);
    }
    c
}

pub(super) fn accept(version: u64, storage: &CoordStorage) -> Msg {
    Msg::Accept {
        term: Term {
            n: 1,
            leader: stateright::actor::Id::from(0),
        },
        version,
        storage: storage.clone(),
    }
}

/// A stream of accepts of a growing state: the first frame is whole,
/// the others are the changes (small), and the receiver rebuilds every
/// message exactly; other kinds pass as they are.
#[test]
fn accepts_after_the_first_are_deltas_and_decode_to_the_same_messages() {
    let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
    let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
    let mut s = state(20_000);
    let mut sizes = Vec::new();
    for v in 1..=5u64 {
        let msgs = [
            accept(v, &s),
            accept(v, &s), // a heartbeat: nothing new
            Msg::Accepted {
                term: Term {
                    n: 1,
                    leader: stateright::actor::Id::from(0),
                },
                version: v,
            },
        ];
        for msg in msgs {
            let bytes = codec.encode_frame(&enc.encode(me, msg.clone())).unwrap();
            sizes.push(bytes.len());
            let frame = codec.decode_frame::<Frame>(&bytes).unwrap();
            assert_eq!(dec.decode(frame).unwrap(), (me, msg));
        }
        one_more_outcome(&mut s, v);
    }
    assert!(sizes[0] > 500_000, "the first accept is whole: {sizes:?}");
    assert!(
        sizes[1..].iter().all(|n| *n < 400),
        "later accepts are deltas: {sizes:?}"
    );
}

/// What one connection writes for `msg` (an `Accept` handed out as
/// `shared`), and what its receiver makes of it.
fn over(
    codec: &Codec,
    (enc, dec): (&mut Encoder, &mut Decoder),
    me: SocketAddrV4,
    msg: Msg,
    shared: &SharedAccept,
) -> (Vec<u8>, Msg) {
    let bytes = match enc.encode_accept(me, msg, shared) {
        Encoded::Shared(b) => b.to_vec(),
        Encoded::Own(frame) => {
            let b = codec.encode_frame(&frame).unwrap();
            [(b.len() as u32).to_be_bytes().to_vec(), b].concat()
        }
    };
    let frame = codec.decode_frame::<Frame>(&bytes[4..]).unwrap();
    let (from, got) = dec.decode(frame).unwrap();
    assert_eq!(from, me);
    (bytes, got)
}

/// An `Accept` handed to two connections is diffed and encoded once:
/// both write the same bytes, and each receiver rebuilds the very
/// message. A connection that missed an `Accept` (coalesced away, or
/// new) writes its own frame instead, and its receiver too rebuilds
/// every message exactly.
#[test]
fn an_accept_is_encoded_once_for_every_connection_that_had_the_one_before() {
    let codec = Codec::new(Some(ClusterKey::random()), Format::Bincode);
    let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
    let mut frames = AcceptFrames::default();
    let (mut enc_a, mut enc_b, mut enc_c) =
        (Encoder::default(), Encoder::default(), Encoder::default());
    let (mut da, mut db, mut dc) = (Decoder::default(), Decoder::default(), Decoder::default());
    let mut s = state(1_000);
    for v in 1..=6u64 {
        let msg = accept(v, &s);
        let shared = frames.frame(me, term1(), v, &s, 0, &codec);
        let again = frames.frame(me, term1(), v, &s, 0, &codec);
        assert!(Arc::ptr_eq(&shared, &again), "the copy for the next peer");
        let (bytes_a, got_a) = over(&codec, (&mut enc_a, &mut da), me, msg.clone(), &shared);
        assert_eq!(got_a, msg);
        if v != 3 {
            // Connection b missed version 3.
            let (bytes_b, got_b) = over(&codec, (&mut enc_b, &mut db), me, msg.clone(), &shared);
            assert_eq!(got_b, msg);
            // Version 1 goes whole on both; 4 is b's own delta from 2.
            assert_eq!(bytes_a == bytes_b, v != 4, "version {v}");
        }
        if v >= 4 {
            // Connection c starts at version 4: whole, then shared.
            let (bytes_c, got_c) = over(&codec, (&mut enc_c, &mut dc), me, msg.clone(), &shared);
            assert_eq!(got_c, msg);
            assert_eq!(bytes_a == bytes_c, v > 4, "version {v}");
        }
        // A heartbeat: the same version again, nothing new.
        let (_, got) = over(&codec, (&mut enc_a, &mut da), me, msg.clone(), &shared);
        assert_eq!(got, msg);
        one_more_outcome(&mut s, v);
    }
}

/// The state after one more purchase, named by `v`, was decided.
fn one_more_outcome(s: &mut CoordStorage, v: u64) {
    let purchase = Purchase {
        user: "bob".into(),
        sku: "gadget".into(),
        qty: 2,
        price: 3,
    };
    let req = RequestId::new(format!("new-{v}"));
    s.outcomes
        .record(req, purchase, None, Verdict::Committed, 100_000);
}

fn term1() -> Term {
    Term {
        n: 1,
        leader: stateright::actor::Id::from(0),
    }
}

/// A node started with `--wire json` still sends its frames in bincode
/// (whole coordinator states: compact in bincode).
#[test]
fn frames_are_bincode_whatever_the_wire_format() {
    let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
    let mut s = state(3);
    s.commits.insert(
        twopc_model::TxnId { epoch: 2, n: 7 },
        RequestId::new("order-1"),
    );
    let key = ClusterKey::random();
    let json = Codec::new(Some(key.clone()), Format::Json);
    let bin = Codec::new(Some(key), Format::Bincode);
    let frame = Encoder::default().encode(me, accept(1, &s));
    let bytes = json.encode_frame(&frame).unwrap();
    assert_eq!(bin.decode_frame::<Frame>(&bytes), Ok(frame.clone()));
    assert_eq!(json.decode_frame::<Frame>(&bytes), Ok(frame));
}

/// A delta with no whole accept before it on the connection (a
/// receiver that missed the start) is an error, never a wrong state.
#[test]
fn a_delta_without_its_base_is_refused() {
    let me: SocketAddrV4 = "127.0.0.1:7001".parse().unwrap();
    let mut enc = Encoder::default();
    let s = state(3);
    let _first = enc.encode(me, accept(1, &s));
    let second = enc.encode(me, accept(2, &s));
    assert!(matches!(second, Frame::AcceptDelta { .. }));
    let err = Decoder::default().decode(second).unwrap_err();
    assert!(err.contains("no accept before it"), "{err}");
    let purchase = Frame::Whole {
        from: me,
        msg: Msg::Lookup {
            req: RequestId::new("x"),
        },
    };
    assert!(Decoder::default().decode(purchase).is_err());
}

/// Of a queue for one peer, only the newest `Accept` and the highest
/// `Accepted` of a term go; other kinds and other terms stay, in order.
#[test]
fn a_queue_keeps_only_the_newest_accept_and_the_highest_ack_per_term() {
    let s = state(2);
    let term = |n| Term {
        n,
        leader: stateright::actor::Id::from(0),
    };
    let acc = |n, version| Msg::Accept {
        term: term(n),
        version,
        storage: s.clone(),
    };
    let ack = |n, version| Msg::Accepted {
        term: term(n),
        version,
    };
    let campaign = Msg::Campaign { term: term(2) };
    let queue = vec![
        acc(1, 1),
        ack(1, 4),
        acc(1, 2),
        campaign.clone(),
        ack(1, 5),
        acc(1, 3),
        acc(2, 1),
        ack(2, 1),
    ];
    assert_eq!(
        coalesce(queue),
        vec![campaign, ack(1, 5), acc(1, 3), acc(2, 1), ack(2, 1)]
    );
}
