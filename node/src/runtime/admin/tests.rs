//! Tests of `admin/`: what `twopc status` shows.

use super::*;
use twopc_model::{ReplicaState, State};

/// `twopc status --json` and the text rendering name reject reasons and
/// roles in snake_case, as they did when they were strings.
#[test]
fn reasons_and_roles_keep_their_names_in_json_and_text() {
    let counters = Counters {
        rejected: [(RejectReason::BadMac, 3), (RejectReason::MissingMac, 1)].into(),
        ..Counters::default()
    };
    let view = NodeView::of(
        "wallet",
        &State::Participant(twopc_model::PartState {
            data: Default::default(),
            recovered_holds: false,
            acks_after_save: Default::default(),
        }),
        &counters,
    );
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["role"], "participant");
    assert_eq!(json["counters"]["rejected"]["bad_mac"], 3);
    assert_eq!(serde_json::from_value::<NodeView>(json).unwrap(), view);
    use RejectReason::*;
    let reasons = [
        BadFormat,
        BadMac,
        BadMagic,
        BadVersion,
        MissingMac,
        Oversized,
        RolledBack,
        Undecodable,
        UnexpectedMac,
        UnknownSender,
    ];
    for (i, why) in reasons.into_iter().enumerate() {
        let name = serde_json::to_value(why).unwrap();
        assert_eq!(name, why.as_str(), "serde and as_str agree");
        assert!(reasons[..i].iter().all(|r| r.as_str() < why.as_str()));
    }
    for kind in [
        ActorKind::Coordinator,
        ActorKind::Participant,
        ActorKind::Client,
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.to_string());
    }
    let text = view.render();
    assert!(text.starts_with("wallet (participant)\n"), "{text}");
    assert!(
        text.contains(r#"rejected {"bad_mac": 3, "missing_mac": 1} send errors 0"#),
        "{text}"
    );
}

/// More in-doubt transactions than a reply lists: the view says how
/// many there are, and the text says how many it left out, as it does
/// for balances.
#[test]
fn in_doubt_beyond_the_listed_ones_are_counted() {
    use twopc_model::{Hold, Op, PartStorage, RequestId, TxnId};
    let mut data = PartStorage::default();
    data.levels.insert("alice".into(), 1_000);
    for n in 0..250 {
        let hold = Hold {
            req: RequestId::new(format!("1#{n}")),
            op: Op {
                key: "alice".into(),
                amount: 1,
            },
        };
        data.holds.insert(TxnId { epoch: 1, n }, hold);
    }
    let state = State::Participant(twopc_model::PartState {
        data,
        recovered_holds: false,
        acks_after_save: Default::default(),
    });
    let view = NodeView::of("wallet", &state, &Counters::default());
    assert_eq!(view.holds.len(), MAX_LISTED);
    assert_eq!(view.holds_total, 250);
    let text = view.render();
    assert!(
        text.contains("txn 1.199 holds 1 of alice (+50 more, 250 in all)\n"),
        "{text}"
    );
    assert_eq!(serde_json::to_value(&view).unwrap()["holds_total"], 250);
}

/// A replica's view says where it stands and what it accepted; the
/// leader's adds its chosen version and held outputs; `who_leads`
/// names the leader of the highest term.
#[test]
fn replicas_show_their_standing_and_who_leads() {
    use stateright::actor::{Id, Out};
    use twopc_model::{Coordinator, Node, Replica};
    let peers: Vec<Id> = (0..3).map(Id::from).collect();
    let view = |s: ReplicaState| NodeView::of("c", &State::Replica(s), &Counters::default());
    let recovering_line = |v: &NodeView| v.render();
    let replica = |index| Replica {
        coordinator: Coordinator {
            wallet: Id::from(7),
            order: Id::from(8),
            retention: 10,
            prices: false,
            one_write: false,
        },
        peers: peers.clone(),
        index,
        incarnation: 0,
    };
    let mut o: Out<Node> = Out::new();
    // A new cluster: each hears from the two others that they hold nothing.
    let started = |i: usize, o: &mut Out<Node>| {
        let r = replica(i);
        let mut s: std::borrow::Cow<ReplicaState> =
            std::borrow::Cow::Owned(r.on_start(peers[i], None, o));
        let recovering = view(s.clone().into_owned());
        assert_eq!(
            recovering.replica.as_ref().unwrap().standing,
            Standing::Recovering
        );
        assert!(recovering_line(&recovering).contains("recovering"));
        for j in (0..3).filter(|j| *j != i) {
            let nothing = twopc_model::Msg::RecoverReply {
                nonce: 0,
                acceptor: None,
            };
            r.on_msg(peers[i], &mut s, peers[j], nothing, o);
        }
        s.into_owned()
    };
    let leader = started(0, &mut o);
    let follower = started(1, &mut o);
    let (l, f) = (view(leader), view(follower));
    let (lr, fr) = (l.replica.clone().unwrap(), f.replica.clone().unwrap());
    assert_eq!(l.role, ActorKind::Replica);
    assert_eq!(lr.standing, Standing::Leader);
    // Its first save (the epoch) waits for a majority.
    assert_eq!(
        (lr.version, lr.chosen, lr.held),
        (Some(1), Some(0), Some(0))
    );
    assert_eq!(lr.accepted.as_ref().map(|a| a.1), Some(1));
    assert_eq!(l.epoch, 1, "the leader shows its coordinator");
    assert_eq!(fr.standing, Standing::Follower);
    assert_eq!((fr.accepted.clone(), fr.chosen), (None, None));
    assert!(l.render().contains("leader of term 0/"), "{}", l.render());
    assert!(
        f.render().contains("follower, promised 0/"),
        "{}",
        f.render()
    );
    assert!(!f.render().contains("epoch"), "{}", f.render());
    let line = who_leads(&[("c-2".into(), fr.clone()), ("c-1".into(), lr.clone())]);
    assert!(line.starts_with("leader: c-1 (term 0/"), "{line}");
    // A replica's view travels in a status reply, in either format.
    for format in [
        crate::runtime::wire::Format::Bincode,
        crate::runtime::wire::Format::Json,
    ] {
        let codec = crate::runtime::wire::Codec::new(None, format);
        for view in [&l, &f] {
            let reply = crate::runtime::wire::Payload::StatusReply {
                nonce: 1,
                view: Box::new(view.clone()),
            };
            assert_eq!(codec.decode(&codec.encode(&reply).unwrap()), Ok(reply));
        }
    }
    let line = who_leads(&[("c-2".into(), fr)]);
    assert!(line.starts_with("no replica leads"), "{line}");
}

/// A node that lists a peer at another address than the asking client's
/// cluster file, or a peer that file does not name, runs with another
/// cluster file: `twopc status` says so. The same addresses say nothing.
#[test]
fn a_node_with_another_cluster_file_is_named() {
    let peer = |name: &str, address: &str| PeerView {
        name: name.into(),
        address: address.into(),
        heard_ms_ago: Some(10),
        unanswered: 0,
        rejected: Default::default(),
        says_unauthenticated: 0,
    };
    let file: Vec<(String, String)> = [
        ("coordinator", "10.0.0.6:7000"),
        ("wallet", "10.0.0.2:7000"),
    ]
    .map(|(n, a)| (n.to_string(), a.to_string()))
    .into();
    let peers = [
        peer("coordinator", "10.0.0.1:7000"),
        peer("wallet", "10.0.0.2:7000"),
        peer("coordinator-1", "10.0.0.1:7000"),
    ];
    assert_eq!(
        file_disagreements(&peers, &file),
        vec![
            "it has coordinator at 10.0.0.1:7000, this cluster file at 10.0.0.6:7000: it runs \
             with another cluster file (a node moved?); give it this one and restart it"
                .to_string(),
            "it has coordinator-1 at 10.0.0.1:7000, which this cluster file does not name: it \
             runs with another cluster file (a node moved?); give it this one and restart it"
                .to_string(),
        ]
    );
    assert!(file_disagreements(&peers[1..2], &file).is_empty());
}

/// `decided` is keyed by what the purchase became, and reads and writes as
/// its name: the JSON of `twopc status --json` keeps the keys it had when
/// they were strings, and a name nobody knows is refused, not miscounted.
#[test]
fn decided_outcomes_are_keyed_by_name_in_json() {
    use crate::runtime::admin::DecidedAs;
    use twopc_model::AbortReason;
    let counters = Counters {
        decided: [
            (DecidedAs::Committed, 3),
            (DecidedAs::Aborted(AbortReason::VoteTimeout), 1),
        ]
        .into(),
        ..Counters::default()
    };
    let json = serde_json::to_value(&counters).unwrap();
    assert_eq!(
        json["decided"],
        serde_json::json!({"committed": 3, "vote_timeout": 1})
    );
    let back: Counters = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, counters);
    let mut bad = json;
    bad["decided"] = serde_json::json!({"comitted": 3});
    let err = serde_json::from_value::<Counters>(bad).unwrap_err();
    assert!(err.to_string().contains("unknown outcome"), "{err}");
    for r in AbortReason::ALL {
        assert_eq!(AbortReason::from_name(r.name()), Some(r));
    }
}

#[test]
fn a_sku_shows_its_price_and_its_pending_price_changes_only() {
    use twopc_model::{Credit, Op, PartStorage, RequestId, TxnId};
    let txn = |n| TxnId { epoch: 1, n };
    let credit = |sku: &str, qty| Credit {
        req: RequestId::new(format!("r-{sku}-{qty}")),
        op: Op {
            key: sku.into(),
            amount: qty,
        },
        parties: vec![],
    };
    let mut data = PartStorage::default();
    data.levels.insert("gizmo".into(), 3);
    data.prices.insert("gizmo".into(), 7);
    data.credits.insert(txn(1), credit("gizmo", 0));
    data.credits.insert(txn(2), credit("gizmo", 4));
    data.credits.insert(txn(3), credit("widget", 0));
    data.repricing.insert(txn(1), 9);
    data.repricing.insert(txn(3), 5);
    let view = KeyView::of("order", "gizmo", &data);
    assert_eq!(view.price, Some(7));
    assert_eq!(
        view.repricing,
        vec![PriceChangeView {
            txn: "1.1".into(),
            price: 9
        }],
        "the price change of another sku is not this one's"
    );
    assert_eq!((view.repricing_total, view.credits_total), (1, 2));
    assert_eq!(KeyView::of("order", "widget", &data).price, None);
}
