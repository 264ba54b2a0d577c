//! Stitching a purchase's path from hand-made timelines (`timeline.rs`):
//! the segments come out as the marks say, the participant on the path is
//! the later voter, a busy receiver's wait is told apart, and a purchase
//! with a mark missing is counted as such, never filled in.

use super::timeline::{stitch, Report, Stitched, SEGMENTS};
use crate::runtime::timeline::{req_hash, Label, Mark, NodeMarks, Step};
use crate::runtime::wire::MsgKind;
use std::net::SocketAddrV4;
use twopc_model::TxnId;

const TXN: TxnId = TxnId { epoch: 1, n: 1 };
const OLD: TxnId = TxnId { epoch: 1, n: 0 };

fn addr(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([127, 0, 0, 1].into(), port)
}
fn client() -> SocketAddrV4 {
    addr(1)
}
fn coordinator() -> SocketAddrV4 {
    addr(2)
}
fn wallet() -> SocketAddrV4 {
    addr(3)
}
fn order() -> SocketAddrV4 {
    addr(4)
}

fn label(kind: MsgKind, req: &str, txn: Option<TxnId>, ticket: bool) -> Option<Label> {
    Some(Label {
        kind,
        req: if req.is_empty() { 0 } else { req_hash(req) },
        txn,
        ticket,
    })
}

/// A node's marks, built batch by batch; times in microseconds.
struct Node {
    me: SocketAddrV4,
    marks: Vec<Mark>,
    batch: u32,
}

impl Node {
    fn new(me: SocketAddrV4) -> Node {
        Node {
            me,
            marks: Vec::new(),
            batch: 0,
        }
    }
    fn batch(&mut self) -> &mut Self {
        self.batch += 1;
        self
    }
    fn at(
        &mut self,
        us: u64,
        step: Step,
        l: Option<Label>,
        peer: Option<SocketAddrV4>,
    ) -> &mut Self {
        self.marks.push(Mark {
            ns: us * 1000,
            batch: self.batch,
            step,
            label: l,
            peer,
        });
        self
    }
    fn bare(&mut self, us: u64, step: Step) -> &mut Self {
        self.at(us, step, None, None)
    }
    fn done(&self) -> NodeMarks {
        NodeMarks {
            me: Some(self.me),
            lost: 0,
            marks: self.marks.clone(),
        }
    }
}

/// A participant's prepare (of `kind`), fsync and Vote, at `t` (µs).
fn participant(p: &mut Node, kind: MsgKind, t: [u64; 6]) {
    let prepare = label(kind, "r1", Some(TXN), false);
    let vote = label(MsgKind::Vote, "", Some(TXN), false);
    let k = Some(coordinator());
    p.batch()
        .at(t[0], Step::In, prepare, k)
        .at(t[1], Step::Handled, prepare, k)
        .bare(t[2], Step::Staged)
        .bare(t[3], Step::SyncStart)
        .bare(t[4], Step::SyncEnd)
        .at(t[5], Step::Sent, vote, k);
}

/// One purchase, `r1`, after `r0`'s outcome: the wallet votes last. With
/// `busy_wallet`, the wallet is still fsyncing an earlier commit when the
/// Prepare is sent (its batch ends at 285 µs, the Prepare left at 260).
fn run(busy_wallet: bool, coordinator_fsyncs: bool) -> Vec<(String, NodeMarks)> {
    let (c, k) = (Some(client()), Some(coordinator()));
    let plain = label(MsgKind::Purchase, "r1", None, false);
    let ticketed = label(MsgKind::Purchase, "r1", None, true);
    let unknown = label(MsgKind::Status, "r1", None, false);
    let outcome = label(MsgKind::Outcome, "r1", Some(TXN), false);
    let prepare = label(MsgKind::Prepare, "r1", Some(TXN), false);
    // The order service's prepare carries the sku's price.
    let priced = label(MsgKind::PreparePriced, "r1", Some(TXN), false);
    let vote = label(MsgKind::Vote, "", Some(TXN), false);
    let commit = label(MsgKind::Commit, "", Some(TXN), false);

    let mut cl = Node::new(client());
    let prev = label(MsgKind::Outcome, "r0", Some(OLD), false);
    cl.batch()
        .at(100, Step::In, prev, k)
        .at(110, Step::Handled, prev, k)
        .bare(115, Step::Staged)
        .at(130, Step::Sent, plain, k);
    cl.batch()
        .at(200, Step::In, unknown, k)
        .at(205, Step::Handled, unknown, k)
        .at(215, Step::Sent, ticketed, k);
    cl.batch().at(600, Step::In, outcome, k);

    let mut co = Node::new(coordinator());
    co.batch()
        .at(150, Step::In, plain, c)
        .at(160, Step::Handled, plain, c)
        .at(170, Step::Sent, unknown, c);
    co.batch()
        .at(240, Step::In, ticketed, c)
        .at(250, Step::Handled, ticketed, c)
        .bare(252, Step::Staged)
        .at(260, Step::Sent, prepare, Some(wallet()))
        .at(265, Step::Sent, priced, Some(order()));
    co.batch()
        .at(410, Step::In, vote, Some(order()))
        .at(415, Step::Handled, vote, Some(order()));
    co.batch()
        .at(445, Step::In, vote, Some(wallet()))
        .at(450, Step::Handled, vote, Some(wallet()))
        .bare(452, Step::Staged);
    if coordinator_fsyncs {
        co.bare(455, Step::SyncStart).bare(570, Step::SyncEnd);
    }
    co.at(580, Step::Sent, outcome, c)
        .at(585, Step::Sent, commit, Some(wallet()))
        .at(590, Step::Sent, commit, Some(order()));

    let mut w = Node::new(wallet());
    if busy_wallet {
        let old_commit = label(MsgKind::Commit, "", Some(OLD), false);
        w.batch()
            .at(240, Step::In, old_commit, k)
            .at(245, Step::Handled, old_commit, k)
            .bare(246, Step::Staged)
            .bare(250, Step::SyncStart)
            .bare(280, Step::SyncEnd)
            .at(
                285,
                Step::Sent,
                label(MsgKind::Ack, "", Some(OLD), false),
                k,
            );
    }
    participant(&mut w, MsgKind::Prepare, [290, 300, 305, 306, 420, 430]);
    let mut o = Node::new(order());
    participant(
        &mut o,
        MsgKind::PreparePriced,
        [280, 290, 292, 295, 400, 405],
    );
    vec![
        ("client-0-0".to_string(), cl.done()),
        ("coordinator".to_string(), co.done()),
        ("order".to_string(), o.done()),
        ("wallet".to_string(), w.done()),
    ]
}

fn us(v: [i64; SEGMENTS.len()]) -> [i64; SEGMENTS.len()] {
    v.map(|x| x * 1000)
}

#[test]
fn a_purchase_is_cut_into_its_segments_along_the_later_voter() {
    let s = stitch(&run(false, true));
    assert!(s.missing.is_empty(), "{:?}", s.missing);
    assert_eq!(s.paths.len(), 1);
    let p = &s.paths[0];
    // The wallet voted last (445 > 410 µs): its leg is the path.
    #[rustfmt::skip]
    let want = us([
        10, 20, 20, 10, 10, 30, 15, 25, 10, 10,
        0, 30, 10, 6, 114, 10,
        0, 15, 5, 5, 115, 10, 20,
    ]);
    assert_eq!(p.segments, want);
    assert_eq!(p.total, 500_000);
    assert_eq!(p.segments.iter().sum::<i64>(), p.total);
    assert!(p.coordinator_fsynced && !p.behind_commit);
    let r = Report::of(&s);
    assert_eq!(r.stitched, 1);
    assert_eq!(r.segments[14].p50_us, 114.0);
    assert_eq!(r.sum_of_medians_us, 500.0);
    assert_eq!(
        (r.at_p50_total_us, r.segments[14].at_p50_us),
        (500.0, 114.0)
    );
}

#[test]
fn a_prepare_waiting_for_the_previous_commit_is_told_apart_from_the_hop() {
    let s = stitch(&run(true, true));
    let p = &s.paths[0];
    // Sent at 260, the wallet's commit batch ended at 285, read at 290.
    assert_eq!((p.segments[10], p.segments[11]), (25_000, 5_000));
    assert!(p.behind_commit);
    assert_eq!(p.segments.iter().sum::<i64>(), p.total);
    assert_eq!(s.commit_fsyncs, vec![30_000]);
    let r = Report::of(&s);
    assert_eq!((r.prepare_waited, r.behind_commit), (1, 1));
}

#[test]
fn without_the_coordinators_fsync_its_segments_are_zero_not_invented() {
    let s = stitch(&run(false, false));
    let p = &s.paths[0];
    assert!(!p.coordinator_fsynced);
    assert_eq!((p.segments[19], p.segments[20]), (0, 0));
    assert_eq!(p.segments[21], 130_000); // handled at 450, outcome sent at 580
    assert_eq!(p.segments.iter().sum::<i64>(), p.total);
}

/// Removes the first mark of `node` that `pick` selects.
fn without(
    mut files: Vec<(String, NodeMarks)>,
    node: &str,
    pick: impl Fn(&Mark) -> bool,
) -> Stitched {
    let (_, f) = files.iter_mut().find(|(n, _)| n == node).unwrap();
    let i = f.marks.iter().position(pick).expect("the mark is there");
    f.marks.remove(i);
    stitch(&files)
}

/// Which mark to remove.
type Pick = Box<dyn Fn(&Mark) -> bool>;

#[test]
fn a_missing_mark_is_reported_not_invented() {
    let kind = |k: MsgKind| move |m: &Mark| m.label.is_some_and(|l| l.kind == k);
    let cases: [(&str, Pick, &str); 5] = [
        (
            "wallet",
            Box::new(|m: &Mark| m.step == Step::SyncEnd),
            "participant: its fsync did not end",
        ),
        (
            "coordinator",
            Box::new(move |m: &Mark| m.step == Step::In && kind(MsgKind::Vote)(m)),
            "coordinator: a Vote not in",
        ),
        (
            "client-0-0",
            Box::new(move |m: &Mark| m.step == Step::In && kind(MsgKind::Status)(m)),
            "client: Unknown{ticket} not in",
        ),
        (
            "client-0-0",
            Box::new(move |m: &Mark| m.step == Step::In && kind(MsgKind::Outcome)(m)),
            "client: no outcome before it (a client's first purchase)",
        ),
        (
            "coordinator",
            Box::new(move |m: &Mark| m.step == Step::Sent && kind(MsgKind::Outcome)(m)),
            "coordinator: no Outcome sent",
        ),
    ];
    for (node, pick, why) in cases {
        let s = without(run(false, true), node, pick);
        assert!(s.paths.is_empty(), "{why}: stitched anyway");
        assert_eq!(s.missing.get(why), Some(&1), "{why}: {:?}", s.missing);
    }
    // Without the coordinator's file nothing can be stitched, and it says so.
    let mut files = run(false, true);
    files.retain(|(n, _)| n != "coordinator");
    assert_eq!(
        stitch(&files).missing.get("no coordinator timeline"),
        Some(&1)
    );
}

#[test]
fn a_retried_purchase_is_one_purchase() {
    let mut files = run(false, true);
    let (_, c) = files.iter_mut().find(|(n, _)| n == "client-0-0").unwrap();
    let mut again = c.marks[3];
    again.ns += 1000;
    c.marks.insert(4, again);
    let s = stitch(&files);
    assert_eq!((s.paths.len(), s.missing.len()), (1, 0));
}

#[test]
fn the_order_services_priced_prepare_is_its_prepare() {
    let mut files = run(false, true);
    // The order service's vote now comes in last (after the wallet's).
    let (_, k) = files.iter_mut().find(|(n, _)| n == "coordinator").unwrap();
    for m in &mut k.marks {
        if m.peer == Some(order()) && m.label.is_some_and(|l| l.kind == MsgKind::Vote) {
            m.ns += 100_000; // 410 → 510, 415 → 515 µs
        }
    }
    let s = stitch(&files);
    let p = &s.paths[0];
    // Its leg: Prepare sent at 265, in at 280; vote sent at 405, in at 510.
    assert_eq!((p.segments[9], p.segments[11]), (15_000, 15_000));
    assert_eq!((p.segments[14], p.segments[17]), (105_000, 105_000));
    assert_eq!(p.segments.iter().sum::<i64>(), p.total);
}
