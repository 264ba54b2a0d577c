//! Tests of the wire: every format and key, garbage, strangers, key texts,
//! message kinds, and the largest status reply in one datagram.

use super::*;
use twopc_model::{Ballot, Floor, Msg, Op, RequestId, TxnId};

fn msgs() -> Vec<Payload> {
    let txn = TxnId { epoch: 3, n: 9 };
    let req = RequestId::new(format!("{}#{}", 42, 1));
    vec![
        Payload::Protocol(Msg::Prepare {
            txn,
            req,
            op: Op {
                key: "alice".into(),
                amount: 30,
            },
            floor: Floor {
                below: TxnId { epoch: 3, n: 2 },
                owed: vec![TxnId { epoch: 2, n: 7 }],
            },
        }),
        Payload::Protocol(Msg::Vote {
            txn,
            ballot: Ballot::Yes,
        }),
        Payload::Protocol(Msg::Commit { txn }),
        Payload::StatusRequest { nonce: 7 },
        Payload::KeyRequest {
            nonce: 8,
            key: "alice".into(),
        },
    ]
}

#[test]
fn round_trips_in_every_format_with_and_without_key() {
    let key = ClusterKey::new("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        .unwrap();
    for format in [Format::Bincode, Format::Json] {
        for key in [None, Some(key.clone())] {
            let codec = Codec::new(key, format);
            for payload in msgs() {
                let bytes = codec.encode(&payload).unwrap();
                assert_eq!(codec.decode(&bytes), Ok(payload));
            }
        }
    }
}

#[test]
fn message_kinds_parse_from_their_names_and_nothing_else() {
    for kind in MsgKind::ALL {
        assert_eq!(kind.as_str().parse::<MsgKind>(), Ok(kind));
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{kind}\""));
    }
    let err = "commits".parse::<MsgKind>().unwrap_err();
    assert_eq!(
        err,
        "unknown message kind \"commits\" (kinds: purchase,outcome,lookup,status,prepare,vote,commit,abort,ack,query,ask_epoch,epoch,pre_vote,pre_vote_grant,campaign,promise,accept,accepted,nack,recover,recover_reply,request,prepare_credit,prepare_priced,fence)"
    );
    assert_eq!(
        MsgKind::of(&Msg::QueryDecision {
            txn: TxnId { epoch: 1, n: 2 }
        }),
        MsgKind::Query
    );
}

#[test]
fn a_json_sender_is_understood_by_a_bincode_node() {
    let json = Codec::new(None, Format::Json);
    let bin = Codec::new(None, Format::Bincode);
    for payload in msgs() {
        assert_eq!(bin.decode(&json.encode(&payload).unwrap()), Ok(payload));
    }
}

#[test]
fn garbage_is_rejected_with_a_reason_never_a_panic() {
    let codec = Codec::new(None, Format::Bincode);
    assert_eq!(codec.decode(b""), Err(Reject::BadMagic));
    assert_eq!(codec.decode(b"hello world"), Err(Reject::BadMagic));
    assert_eq!(
        codec.decode(&vec![0u8; MAX_DATAGRAM + 1]),
        Err(Reject::Oversized(MAX_DATAGRAM + 1))
    );
    let mut good = codec.encode(&msgs()[0]).unwrap().to_vec();
    good[2] = 99;
    assert_eq!(codec.decode(&good), Err(Reject::BadVersion(99)));
    assert!(matches!(
        codec.decode(&[b"2P".as_slice(), &[VERSION, 0, 0], &[0xff; 8]].concat()),
        Err(Reject::Undecodable(_))
    ));
    // Every truncation and every single-byte corruption: no panic.
    let good = codec.encode(&msgs()[0]).unwrap();
    for n in 0..good.len() {
        let _ = codec.decode(&good[..n]);
        let mut bad = good.to_vec();
        bad[n] ^= 0x5a;
        let _ = codec.decode(&bad);
    }
    // A huge length prefix does not allocate or panic.
    let mut huge = [b"2P".as_slice(), &[VERSION, 0, 0, 0]].concat();
    huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff]);
    assert!(codec.decode(&huge).is_err());
}

/// A datagram holding a replica's state (`Accept`, `Promise`) is
/// refused before it is deserialized: its maps' forged lengths would
/// reserve terabytes. (The decoder fuzz test found it.)
#[test]
fn a_replica_state_by_datagram_is_refused_unread() {
    let codec = Codec::new(None, Format::Bincode);
    let term = twopc_model::Term {
        n: 1,
        leader: stateright::actor::Id::from(3),
    };
    let accept = Payload::Protocol(Msg::Accept {
        term,
        version: 2,
        storage: Default::default(),
    });
    let mut bytes = codec.encode(&accept).unwrap().to_vec();
    assert!(matches!(codec.decode(&bytes), Err(Reject::Undecodable(_))));
    // A length of 2^40 entries in place of the first map's.
    bytes.truncate(bytes.len() - 1);
    bytes.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert!(matches!(codec.decode(&bytes), Err(Reject::Undecodable(_))));
    let promise = Payload::Protocol(Msg::Promise {
        term,
        accepted: None,
    });
    let bytes = codec.encode(&promise).unwrap();
    assert!(matches!(codec.decode(&bytes), Err(Reject::Undecodable(_))));
    // Other replica messages carry no map, and decode.
    let accepted = Payload::Protocol(Msg::Accepted { term, version: 2 });
    let bytes = codec.encode(&accepted).unwrap();
    assert_eq!(codec.decode(&bytes), Ok(accepted));
}

#[test]
fn authentication_rejects_strangers_and_tampering() {
    let key = ClusterKey::new(&"ab".repeat(32)).unwrap();
    let other = ClusterKey::new(&"cd".repeat(32)).unwrap();
    let node = Codec::new(Some(key.clone()), Format::Bincode);
    let stranger = Codec::new(Some(other), Format::Bincode);
    let open = Codec::new(None, Format::Bincode);
    let payload = msgs()[2].clone();
    assert_eq!(
        node.decode(&stranger.encode(&payload).unwrap()),
        Err(Reject::BadMac)
    );
    assert_eq!(
        node.decode(&open.encode(&payload).unwrap()),
        Err(Reject::MissingMac)
    );
    assert_eq!(
        open.decode(&node.encode(&payload).unwrap()),
        Err(Reject::UnexpectedMac)
    );
    let mut tampered = node.encode(&payload).unwrap().to_vec();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(node.decode(&tampered), Err(Reject::BadMac));
    assert!(ClusterKey::new("short").is_err());
    assert_eq!(format!("{key:?}"), "ClusterKey(<redacted>)");
}

/// A key is 64 hex digits and nothing else: a trailing newline or
/// spaces are ignored, case does not matter, and anything else — any
/// 16-character string, a comment line, a key one digit short — is
/// refused, with an error that does not quote the text.
#[test]
fn a_key_is_64_hex_digits_and_nothing_else() {
    let hex = "0123456789abcdef".repeat(4);
    let same = |text: &str| {
        let a = Codec::new(Some(ClusterKey::new(&hex).unwrap()), Format::Bincode);
        let b = Codec::new(Some(ClusterKey::new(text).unwrap()), Format::Bincode);
        let payload = msgs()[0].clone();
        assert_eq!(
            a.decode(&b.encode(&payload).unwrap()),
            Ok(payload),
            "{text:?}"
        );
    };
    same(&format!("{hex}\n"));
    same(&format!("  {hex}\r\n\n"));
    same(&hex.to_uppercase());
    for bad in [
        "0123456789abcdef".to_string(),
        "sixteen chars!!!".to_string(),
        format!("{hex}\n# the production key"),
        format!("# the production key\n{hex}"),
        hex[1..].to_string(),
        format!("{hex}0"),
        format!("{}g", &hex[1..]),
        format!("{} {}", &hex[..32], &hex[32..]),
        String::new(),
    ] {
        let err = ClusterKey::new(&bad).unwrap_err();
        assert!(
            err.starts_with("a cluster key is exactly 64 hexadecimal"),
            "{err}"
        );
        assert!(bad.is_empty() || !err.contains(bad.trim()), "{err}");
    }
    assert_eq!(ClusterKey::generate().len(), KEY_HEX_LEN);
    assert!(ClusterKey::new(&ClusterKey::generate()).is_ok());
}

/// The largest status reply the names allow — [`crate::runtime::admin::MAX_LISTED`]
/// balances and as many holds, every name [`MAX_NAME`] bytes, every
/// number its largest — fits in one datagram in either format; names
/// one byte longer are refused.
#[test]
fn the_largest_status_reply_fits_in_a_datagram() {
    use crate::runtime::admin::{Counters, HoldView, NodeView, MAX_LISTED};
    let mut view = NodeView::of(
        "wallet",
        &twopc_model::State::Participant(twopc_model::PartState {
            data: Default::default(),
            recovered_holds: false,
            acks_after_save: Default::default(),
        }),
        &Counters::default(),
    );
    let name = |i: usize| format!("{i:0>width$}", width = MAX_NAME);
    for i in 0..MAX_LISTED {
        view.levels.insert(name(i), u64::MAX);
        view.holds.push(HoldView {
            txn: format!("{}.{}", u64::MAX, u64::MAX),
            req: format!("{}#{}", u64::MAX, u64::MAX),
            key: name(i),
            amount: u64::MAX,
        });
    }
    for format in [Format::Bincode, Format::Json] {
        let codec = Codec::new(Some(ClusterKey::random()), format);
        let reply = Payload::StatusReply {
            nonce: u64::MAX,
            view: Box::new(view.clone()),
        };
        let bytes = codec.encode(&reply);
        assert!(bytes.is_ok(), "{format:?}: {bytes:?}");
    }
    assert!(check_name("--user", &name(0)).is_ok());
    let err = check_name("--user", &"x".repeat(70_000)).unwrap_err();
    assert!(
        err.contains("--user") && err.contains("70000 bytes"),
        "{err}"
    );
    assert!(err.contains("at most 64 bytes") && err.len() < 300, "{err}");
    assert!(
        check_name("--sku", &"é".repeat(33)).is_err(),
        "bytes, not chars"
    );
}

/// The largest key reply — [`crate::runtime::admin::MAX_LISTED`] holds of
/// one key, the key [`MAX_NAME`] bytes, every request id its longest, every
/// number its largest — fits in one datagram in either format.
#[test]
fn the_largest_key_reply_fits_in_a_datagram() {
    use crate::runtime::admin::{HoldView, KeyView, MAX_LISTED};
    let key = "k".repeat(MAX_NAME);
    let hold = HoldView {
        txn: format!("{}.{}", u64::MAX, u64::MAX),
        req: "r".repeat(twopc_model::RequestId::MAX_LEN),
        key: key.clone(),
        amount: u64::MAX,
    };
    let view = KeyView {
        node: "n".repeat(MAX_NAME),
        key,
        level: Some(u64::MAX),
        held: u64::MAX,
        available: u64::MAX,
        holds: vec![hold.clone(); MAX_LISTED - 2],
        holds_total: usize::MAX,
        credited: u64::MAX,
        credits: vec![hold],
        credits_total: usize::MAX,
        price: Some(u64::MAX),
        repricing: vec![crate::runtime::admin::PriceChangeView {
            txn: format!("{}.{}", u64::MAX, u64::MAX),
            price: u64::MAX,
        }],
        repricing_total: usize::MAX,
        last: vec![
            (
                u64::MAX,
                crate::runtime::storage::Change {
                    kind: crate::runtime::storage::ChangeKind::Refund,
                    req: twopc_model::RequestId::new("r".repeat(twopc_model::RequestId::MAX_LEN)),
                    txn: twopc_model::TxnId {
                        epoch: u64::MAX,
                        n: u64::MAX
                    },
                    key: "k".repeat(MAX_NAME),
                    amount: u64::MAX,
                    level: u64::MAX,
                }
            );
            crate::runtime::admin::LAST_LISTED
        ],
    };
    for format in [Format::Bincode, Format::Json] {
        let codec = Codec::new(Some(ClusterKey::random()), format);
        let reply = Payload::KeyReply {
            nonce: u64::MAX,
            view: Some(view.clone()),
        };
        let bytes = codec.encode(&reply);
        assert!(bytes.is_ok(), "{format:?}: {bytes:?}");
        assert_eq!(codec.decode(&bytes.unwrap()), Ok(reply));
    }
}

/// The largest journal page — [`JOURNAL_PAGE`] entries, every name and id
/// its longest, every number its largest — fits in one datagram in either
/// format.
#[test]
fn the_largest_journal_page_fits_in_a_datagram() {
    use crate::runtime::storage::{Change, ChangeKind, Page};
    use crate::runtime::wire::JOURNAL_PAGE;
    let entry = Change {
        kind: ChangeKind::Credit,
        req: twopc_model::RequestId::new("r".repeat(twopc_model::RequestId::MAX_LEN)),
        txn: twopc_model::TxnId {
            epoch: u64::MAX,
            n: u64::MAX,
        },
        key: "k".repeat(MAX_NAME),
        amount: u64::MAX,
        level: u64::MAX,
    };
    let page = Page {
        first: u64::MAX,
        start: u64::MAX,
        end: u64::MAX,
        truncated: true,
        entries: vec![entry; JOURNAL_PAGE as usize],
    };
    for format in [Format::Bincode, Format::Json] {
        let codec = Codec::new(Some(ClusterKey::random()), format);
        let reply = Payload::JournalReply {
            nonce: u64::MAX,
            page: Some(page.clone()),
        };
        let bytes = codec.encode(&reply);
        assert!(bytes.is_ok(), "{format:?}: {bytes:?}");
        assert_eq!(codec.decode(&bytes.unwrap()), Ok(reply));
    }
}

/// The durable writes waited for ride in the flags' high bits, under the
/// MAC: counted again after encoding (`rewait`), with or without a key, in
/// either format, with a history field; an envelope without them reads 0;
/// a tampered count fails the MAC; a count above the most saturates.
#[test]
fn the_count_of_durable_writes_waited_for_rides_under_the_mac() {
    let key = ClusterKey::new("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        .unwrap();
    for format in [Format::Bincode, Format::Json] {
        for codec in [
            Codec::new(None, format),
            Codec::new(Some(key.clone()), format),
        ] {
            for payload in msgs() {
                let plain = codec.encode_stamped(&payload, Some(5)).unwrap();
                assert_eq!(
                    codec.decode_waited(&plain).unwrap(),
                    (payload.clone(), Some(5), 0)
                );
                let once = codec.encode_waited(&payload, Some(5), 1).unwrap();
                let twice = codec.rewait(&once, 2);
                assert_eq!(waited_of(&twice), 2);
                assert_eq!(
                    codec.decode_waited(&twice).unwrap(),
                    (payload.clone(), Some(5), 2)
                );
                // The payload and history read as before.
                assert_eq!(
                    codec.decode_stamped(&twice).unwrap(),
                    (payload.clone(), Some(5))
                );
                let most = codec.rewait(&once, 200);
                assert_eq!(waited_of(&most), WAITED_MAX);
                if codec.is_authenticated() {
                    let mut forged = twice.to_vec();
                    forged[4] ^= 0x10;
                    assert_eq!(codec.decode_waited(&forged), Err(Reject::BadMac));
                }
            }
        }
    }
}

/// A status reply as a node of the build before `one_write` and
/// `outcome_waited` encodes it (the same envelope version): its view ends
/// after `doubts`. Its payload is `Payload`'s first three variants.
mod before_one_write {
    use crate::runtime::admin::{ActorKind, Counters, HoldView, PeerView, ReplicaView};
    use crate::runtime::in_doubt::DoubtsView;
    use serde::Serialize;
    use std::collections::BTreeMap;

    // Only the positions of the first two matter: never built.
    #[allow(dead_code)]
    #[derive(Serialize)]
    pub enum Payload {
        Protocol(()),
        StatusRequest { nonce: u64 },
        StatusReply { nonce: u64, view: Box<NodeView> },
    }

    #[derive(Serialize)]
    pub struct NodeView {
        pub name: String,
        pub role: ActorKind,
        pub levels: BTreeMap<String, u64>,
        pub levels_total: usize,
        pub holds: Vec<HoldView>,
        pub holds_total: usize,
        pub finished: usize,
        pub epoch: u64,
        pub voting: usize,
        pub unacked_commits: Vec<String>,
        pub clients: usize,
        pub counters: Counters,
        pub alarms: Vec<String>,
        pub replica: Option<ReplicaView>,
        pub peers: Vec<PeerView>,
        pub doubts: DoubtsView,
    }

    impl NodeView {
        /// `view` as the older build had it.
        pub fn of(v: &crate::runtime::admin::NodeView) -> NodeView {
            let v = v.clone();
            NodeView {
                name: v.name,
                role: v.role,
                levels: v.levels,
                levels_total: v.levels_total,
                holds: v.holds,
                holds_total: v.holds_total,
                finished: v.finished,
                epoch: v.epoch,
                voting: v.voting,
                unacked_commits: v.unacked_commits,
                clients: v.clients,
                counters: v.counters,
                alarms: v.alarms,
                replica: v.replica,
                peers: v.peers,
                doubts: v.doubts,
            }
        }
    }
}

/// A node of an older build (the same envelope version, so its replies
/// reach a newer `twopc status`) writes no `one_write`, `outcome_waited`
/// or `asking`: its reply still decodes, in either format, and reads
/// them as off and empty. A newer reply keeps them. A byte after the old
/// view that is not a `bool` is still refused, and so is a JSON field of
/// the wrong type.
#[test]
fn a_status_reply_of_an_older_build_still_decodes() {
    use crate::runtime::admin::{Counters, NodeView};
    let mut view = NodeView::of(
        "coordinator",
        &twopc_model::State::Participant(twopc_model::PartState {
            data: Default::default(),
            recovered_holds: false,
            acks_after_save: Default::default(),
        }),
        &Counters::default(),
    );
    view.levels.insert("alice".into(), 7);
    view.one_write = true;
    view.outcome_waited = [(1, 40), (2, 2)].into();
    view.asking = true;
    let old = before_one_write::Payload::StatusReply {
        nonce: 9,
        view: Box::new(before_one_write::NodeView::of(&view)),
    };
    let mut as_old = view.clone();
    as_old.one_write = false;
    as_old.outcome_waited.clear();
    as_old.asking = false;
    let reply = |view: NodeView| Payload::StatusReply {
        nonce: 9,
        view: Box::new(view),
    };
    use bincode::Options;
    let old_bincode = bincode::DefaultOptions::new().serialize(&old).unwrap();
    let old_json = serde_json::to_vec(&old).unwrap();
    for (format, old_body) in [(Format::Bincode, &old_bincode), (Format::Json, &old_json)] {
        let codec = Codec::new(Some(ClusterKey::random()), format);
        let decoded = codec.decode(&codec.seal(old_body, None, 0));
        assert_eq!(decoded, Ok(reply(as_old.clone())), "{format:?}");
        let new = codec.encode(&reply(view.clone())).unwrap();
        assert_eq!(codec.decode(&new), Ok(reply(view.clone())), "{format:?}");
    }
    let codec = Codec::new(None, Format::Bincode);
    let mut damaged = old_bincode.clone();
    damaged.push(7);
    assert!(codec.decode(&codec.seal(&damaged, None, 0)).is_err());
    let codec = Codec::new(None, Format::Json);
    let text = String::from_utf8(codec_json(&view)).unwrap();
    let wrong = text.replace("\"one_write\":true", "\"one_write\":\"yes\"");
    assert_ne!(wrong, text);
    assert!(codec
        .decode(&codec.seal(wrong.as_bytes(), None, 0))
        .is_err());
}

fn codec_json(view: &crate::runtime::admin::NodeView) -> Vec<u8> {
    serde_json::to_vec(&Payload::StatusReply {
        nonce: 9,
        view: Box::new(view.clone()),
    })
    .unwrap()
}
