//! A randomized property test of the wire decoder (hand-rolled, seeded: no
//! extra dependency): random bytes, random bodies behind a valid header, and
//! mutations of real datagrams of every kind — flipped bits, truncation,
//! extension, splices, huge length prefixes — in both body formats, with and
//! without a cluster key. Properties: decoding never panics; whatever
//! decodes re-encodes to a datagram that decodes to the same payload; every
//! payload round-trips. The coverage-guided fuzzer over the same decoder is
//! `node/fuzz` (see docs/hostile.md).
//!
//! `TWOPC_DECODER_SEED=N` repeats a run; `TWOPC_DECODER_CASES=N` runs longer.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use twopc_model::{
    AbortReason, Ballot, Msg, Op, Outcome, Purchase, Refusal, Rejection, RequestId, Status, TxnId,
    Verdict,
};
use twopc_node::runtime::admin::{Counters, NodeView};
use twopc_node::runtime::wire::{ClusterKey, Codec, Format, Payload, MAX_DATAGRAM};

fn text(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..12);
    (0..len)
        .map(|_| match rng.random_range(0..4) {
            0 => char::from_u32(rng.random_range(0x20..0x2FFF)).unwrap_or('?'),
            _ => rng.random_range(b'a'..=b'z') as char,
        })
        .collect()
}

fn num(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..4) {
        0 => rng.random(),
        1 => u64::MAX - rng.random_range(0..3),
        _ => rng.random_range(0..1000),
    }
}

fn txn(rng: &mut StdRng) -> TxnId {
    TxnId {
        epoch: num(rng),
        n: num(rng),
    }
}

fn req(rng: &mut StdRng) -> RequestId {
    RequestId::new(text(rng))
}

fn verdict(rng: &mut StdRng) -> Verdict {
    let reasons = [
        AbortReason::InsufficientFunds,
        AbortReason::InsufficientStock,
        AbortReason::UnknownUser,
        AbortReason::UnknownSku,
        AbortReason::VoteTimeout,
        AbortReason::InvalidRequest,
    ];
    match rng.random_range(0..10) {
        0..=2 => Verdict::Committed,
        3 => Verdict::Refused(Rejection::KeyReused),
        4 => Verdict::Unknown,
        _ => Verdict::Aborted(reasons[rng.random_range(0..reasons.len())]),
    }
}

/// A random payload of any kind.
fn payload(rng: &mut StdRng) -> Payload {
    let msg = match rng.random_range(0..12) {
        0 => Msg::Purchase {
            req: req(rng),
            purchase: Purchase {
                user: text(rng),
                sku: text(rng),
                qty: num(rng),
                price: num(rng),
            },
            ticket: rng.random_bool(0.5).then(|| num(rng)),
        },
        10 => Msg::Lookup { req: req(rng) },
        11 => Msg::Status {
            req: req(rng),
            status: if rng.random_bool(0.5) {
                Status::InProgress
            } else {
                Status::Unknown { ticket: num(rng) }
            },
        },
        1 => Msg::Outcome(Outcome {
            req: req(rng),
            txn: rng.random_bool(0.5).then(|| txn(rng)),
            verdict: verdict(rng),
        }),
        2 => Msg::Prepare {
            txn: txn(rng),
            req: req(rng),
            op: Op {
                key: text(rng),
                amount: num(rng),
            },
            floor: twopc_model::Floor {
                below: txn(rng),
                owed: (0..rng.random_range(0..4)).map(|_| txn(rng)).collect(),
            },
        },
        3 => Msg::Vote {
            txn: txn(rng),
            ballot: match rng.random_range(0..3) {
                0 => Ballot::Yes,
                1 => Ballot::No(Refusal::Insufficient),
                _ => Ballot::No(Refusal::UnknownKey),
            },
        },
        4 => Msg::Commit { txn: txn(rng) },
        5 => Msg::Abort { txn: txn(rng) },
        6 => Msg::Ack { txn: txn(rng) },
        7 => Msg::QueryDecision { txn: txn(rng) },
        8 => return Payload::StatusRequest { nonce: num(rng) },
        _ => {
            let mut view = NodeView::of(
                &text(rng),
                &twopc_model::State::Client(Default::default()),
                &Counters::default(),
            );
            view.levels.insert(text(rng), num(rng));
            return Payload::StatusReply {
                nonce: num(rng),
                view: Box::new(view),
            };
        }
    };
    Payload::Protocol(msg)
}

/// A mutation of `good`.
fn mutate(rng: &mut StdRng, good: &[u8]) -> Vec<u8> {
    let mut d = good.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..8) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] = rng.random();
            }
            2 => d.truncate(rng.random_range(0..=d.len())),
            3 => d.extend((0..rng.random_range(1..40)).map(|_| rng.random::<u8>())),
            4 if !d.is_empty() => {
                // A huge little-endian length or varint where a length may be.
                let i = rng.random_range(0..d.len());
                for (k, b) in [0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
                    .iter()
                    .enumerate()
                {
                    if let Some(x) = d.get_mut(i + k) {
                        *x = *b;
                    }
                }
            }
            5 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d.remove(i);
            }
            6 => {
                let i = rng.random_range(0..=d.len());
                d.insert(i, rng.random());
            }
            _ => {
                let i = rng.random_range(0..=d.len());
                let j = rng.random_range(i..=d.len());
                d.drain(i..j);
            }
        }
    }
    d
}

#[test]
fn random_and_mutated_datagrams_never_panic_the_decoder() {
    let seed = std::env::var("TWOPC_DECODER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let cases: usize = std::env::var("TWOPC_DECODER_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150_000);
    println!("decoder: seed {seed}, {cases} cases (TWOPC_DECODER_SEED={seed} to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let key = ClusterKey::new(&"dec0de00".repeat(8)).unwrap();
    let codecs = [
        Codec::new(None, Format::Bincode),
        Codec::new(None, Format::Json),
        Codec::new(Some(key.clone()), Format::Bincode),
        Codec::new(Some(key), Format::Json),
    ];
    let (mut ok, mut rejected) = (0u64, std::collections::BTreeMap::new());
    for case in 0..cases {
        let sender = &codecs[rng.random_range(0..codecs.len())];
        let p = payload(&mut rng);
        let good = sender.encode(&p).expect("a payload encodes");
        let datagram: Vec<u8> = match case % 4 {
            // Random bytes, sometimes behind valid magic and version.
            0 => {
                let len = if rng.random_bool(0.01) {
                    rng.random_range(0..MAX_DATAGRAM + 100)
                } else {
                    rng.random_range(0..300)
                };
                let mut d: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                if rng.random_bool(0.7) && d.len() >= 5 {
                    d[..5].copy_from_slice(&[
                        b'2',
                        b'P',
                        twopc_node::runtime::wire::VERSION,
                        rng.random_range(0..2),
                        0,
                    ]);
                }
                d
            }
            // A mutated real datagram.
            _ => mutate(&mut rng, &good),
        };
        for codec in &codecs {
            // Round trip of the intact datagram whenever keys agree.
            if codec.is_authenticated() == sender.is_authenticated() {
                assert_eq!(
                    codec.decode(&good).as_ref(),
                    Ok(&p),
                    "seed {seed} case {case}"
                );
            }
            match codec.decode(&datagram) {
                Ok(decoded) => {
                    ok += 1;
                    let again = codec.encode(&decoded).expect("decoded payloads encode");
                    assert_eq!(
                        codec.decode(&again).as_ref(),
                        Ok(&decoded),
                        "seed {seed} case {case}: {datagram:?}"
                    );
                }
                Err(why) => *rejected.entry(why.reason().as_str()).or_insert(0u64) += 1,
            }
        }
    }
    println!(
        "decoder: {ok} mutated datagrams still decoded (and round-tripped), rejected {rejected:?}"
    );
    for reason in [
        "bad_magic",
        "bad_version",
        "bad_format",
        "bad_mac",
        "undecodable",
    ] {
        assert!(
            rejected.get(reason).is_some_and(|n| *n > 0),
            "{reason} exercised: {rejected:?}"
        );
    }
}
