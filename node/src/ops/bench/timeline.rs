//! `twopc bench --timeline`: where a purchase's time goes.
//!
//! Every node of the run, and every bench client, marks its steps into a
//! timeline (`crate::runtime::timeline`), one file each. After the run
//! [`stitch`] follows each purchase a client started through the files:
//!
//! ```text
//! client      outcome of the previous purchase in → handled → purchase (no ticket) sent
//! coordinator purchase in → handled → Unknown{ticket} sent
//! client      Unknown in → purchase with the ticket sent
//!             (or at once with the ticket kept from the previous purchase,
//!             `Client::keep_ticket`: these three segments are then empty)
//! coordinator purchase in → handled → Prepare sent (to each participant)
//! participant Prepare in → handled → fsync start → fsync end → Vote sent
//! coordinator the later Vote in → handled → [fsync] → Outcome sent
//! client      Outcome in
//! ```
//!
//! and cuts the path from the previous outcome's arrival to this one's
//! into [`SEGMENTS`], consecutive, so that they add up to the purchase's
//! time as its client saw it (outcome to outcome, as the bench measures
//! latency at one client). The participant on the path is the one whose
//! vote reached the coordinator last. A hop from one node to the next (from
//! the call to `send` to the receiver's loop holding the datagram: the
//! send itself, the kernel, and the receiver waking) is split in two: the time the receiver
//! was still busy with its previous batch (it could not read the datagram
//! then), and the rest.
//!
//! A purchase whose path misses a mark is not stitched: it is counted
//! under what was missing, never filled in.

use crate::runtime::timeline::{Mark, NodeMarks, Step};
use crate::runtime::wire::MsgKind;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use twopc_model::TxnId;

pub use super::timeline_report::Report;

/// The segments of a purchase's path, in order (see the module doc).
pub const SEGMENTS: [&str; 23] = [
    "client: handles the previous outcome",
    "client: saves, sends the purchase",
    "hop client → coordinator (no ticket)",
    "coordinator: handles it",
    "coordinator: until Unknown{ticket} is sent",
    "hop coordinator → client (Unknown)",
    "client: handles it, sends with the ticket",
    "hop client → coordinator (ticket)",
    "coordinator: handles it, starts the attempt",
    "coordinator: until the Prepare is sent",
    "participant busy with its previous batch",
    "hop coordinator → participant (Prepare)",
    "participant: handles the Prepare",
    "participant: until its fsync starts",
    "participant: fsync (the hold)",
    "participant: until the Vote is sent",
    "coordinator busy with its previous batch",
    "hop participant → coordinator (Vote)",
    "coordinator: handles the last Vote",
    "coordinator: until its fsync starts",
    "coordinator: fsync (the decision)",
    "coordinator: until the Outcome is sent",
    "hop coordinator → client (Outcome)",
];

/// One purchase's path, cut into [`SEGMENTS`] (nanoseconds each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchasePath {
    /// Each segment's length, in [`SEGMENTS`]' order.
    pub segments: [i64; SEGMENTS.len()],
    /// From the previous outcome's arrival at the client to this one's.
    pub total: i64,
    /// The coordinator fsynced between the last vote and the outcome.
    pub coordinator_fsynced: bool,
    /// The participant on the path was still in its previous batch when
    /// the Prepare was sent, and that batch fsynced a commit.
    pub behind_commit: bool,
}

/// A timeline file's role in the run, told by its name.
fn is_client(name: &str) -> bool {
    name.starts_with("client")
}

/// The kind a message is looked up as: the order service's prepare is a
/// `PreparePriced` (it carries the sku's price), a credit's a
/// `PrepareCredit`; an operation may come as a `Request`.
fn same_step(kind: MsgKind) -> MsgKind {
    match kind {
        MsgKind::PrepareCredit | MsgKind::PreparePriced => MsgKind::Prepare,
        MsgKind::Request => MsgKind::Purchase,
        k => k,
    }
}

/// What a mark is looked up by: a request (and whether the message had a
/// ticket), or a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Req(u64, bool),
    Txn(TxnId),
}

/// One node's marks, indexed by step, kind and key.
struct Indexed<'a> {
    me: Option<SocketAddrV4>,
    marks: &'a [Mark],
    by: HashMap<(Step, MsgKind, Key), Vec<usize>>,
}

impl<'a> Indexed<'a> {
    fn new(n: &'a NodeMarks) -> Self {
        let mut by: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, m) in n.marks.iter().enumerate() {
            let Some(l) = m.label else { continue };
            let kind = same_step(l.kind);
            if l.req != 0 {
                by.entry((m.step, kind, Key::Req(l.req, l.ticket)))
                    .or_default()
                    .push(i);
            }
            if let Some(t) = l.txn {
                by.entry((m.step, kind, Key::Txn(t))).or_default().push(i);
            }
        }
        Indexed {
            me: n.me,
            marks: &n.marks,
            by,
        }
    }

    /// The first mark of `step`, `kind`, `key` after index `after` (if
    /// given), from or to `peer` (if given).
    fn find(
        &self,
        step: Step,
        kind: MsgKind,
        key: Key,
        after: Option<usize>,
        peer: Option<SocketAddrV4>,
    ) -> Option<(usize, &'a Mark)> {
        let marks = self.marks;
        self.by
            .get(&(step, kind, key))?
            .iter()
            .copied()
            .filter(|&i| after.is_none_or(|a| i > a))
            .find(|&i| peer.is_none() || marks[i].peer == peer)
            .map(|i| (i, &marks[i]))
    }

    /// The first mark of `step` (no message) in the batch of mark `i`,
    /// after it.
    fn in_batch(&self, i: usize, step: Step) -> Option<(usize, &'a Mark)> {
        let batch = self.marks[i].batch;
        (i + 1..self.marks.len())
            .take_while(|&j| self.marks[j].batch == batch)
            .find(|&j| self.marks[j].step == step)
            .map(|j| (j, &self.marks[j]))
    }

    /// The node's previous batch before mark `i`: when its last mark was
    /// taken, and whether it fsynced a commit.
    fn previous_batch(&self, i: usize) -> Option<(u64, bool)> {
        let batch = self.marks[i].batch;
        let last = (0..i).rev().find(|&j| self.marks[j].batch < batch)?;
        let prev = self.marks[last].batch;
        let in_prev = (0..=last)
            .rev()
            .take_while(|&j| self.marks[j].batch == prev)
            .map(|j| &self.marks[j]);
        let (mut commit, mut synced) = (false, false);
        for m in in_prev {
            commit |= m.step == Step::In && m.label.is_some_and(|l| l.kind == MsgKind::Commit);
            synced |= m.step == Step::SyncEnd;
        }
        Some((self.marks[last].ns, commit && synced))
    }
}

/// What [`stitch`] found.
#[derive(Clone, Debug, Default)]
pub struct Stitched {
    /// The purchases whose every mark was found.
    pub paths: Vec<PurchasePath>,
    /// Purchases not stitched, by the first mark missing.
    pub missing: BTreeMap<&'static str, usize>,
    /// Marks the nodes' buffers had no room for.
    pub lost: u64,
    /// The participants' commit fsyncs (nanoseconds), every one marked.
    pub commit_fsyncs: Vec<i64>,
}

/// Stitches the purchases of a run from its timeline files, `(name,
/// marks)`: `coordinator`, the participants, and clients (`client…`).
pub fn stitch(files: &[(String, NodeMarks)]) -> Stitched {
    let mut out = Stitched {
        lost: files.iter().map(|(_, f)| f.lost).sum(),
        ..Stitched::default()
    };
    let Some((_, coordinator)) = files.iter().find(|(n, _)| n == "coordinator") else {
        out.missing.insert("no coordinator timeline", 1);
        return out;
    };
    let k = Indexed::new(coordinator);
    let participants: Vec<Indexed> = files
        .iter()
        .filter(|(n, _)| n != "coordinator" && !is_client(n))
        .map(|(_, f)| Indexed::new(f))
        .collect();
    for p in &participants {
        out.commit_fsyncs.extend(commit_fsyncs(p));
    }
    for (_, file) in files.iter().filter(|(n, _)| is_client(n)) {
        let c = Indexed::new(file);
        for (i, m) in file.marks.iter().enumerate() {
            let Some(l) = m.label else { continue };
            if m.step != Step::Sent || l.kind != MsgKind::Purchase {
                continue;
            }
            // Its first send: without a ticket, or with the one the client
            // kept from its previous purchase (`Client::keep_ticket`).
            let first = [false, true]
                .into_iter()
                .filter_map(|t| c.find(Step::Sent, l.kind, Key::Req(l.req, t), None, None))
                .map(|(j, _)| j)
                .min();
            if first != Some(i) {
                continue; // A retry: the purchase started at its first send.
            }
            match path(&c, i, &k, &participants) {
                Ok(p) => out.paths.push(p),
                Err(why) => *out.missing.entry(why).or_default() += 1,
            }
        }
    }
    out
}

/// Every commit fsync of a participant: a batch that took a `Commit` in
/// and fsynced.
fn commit_fsyncs(p: &Indexed) -> Vec<i64> {
    let mut out = Vec::new();
    let mut last_batch = None;
    for (i, m) in p.marks.iter().enumerate() {
        let commit = m.step == Step::In && m.label.is_some_and(|l| l.kind == MsgKind::Commit);
        if !commit || last_batch == Some(m.batch) {
            continue;
        }
        last_batch = Some(m.batch);
        if let Some((s, start)) = p.in_batch(i, Step::SyncStart) {
            if let Some((_, end)) = p.in_batch(s, Step::SyncEnd) {
                out.push(end.ns as i64 - start.ns as i64);
            }
        }
    }
    out
}

/// The path of the purchase whose first send is client mark `i1`.
fn path(
    c: &Indexed,
    i1: usize,
    k: &Indexed,
    participants: &[Indexed],
) -> Result<PurchasePath, &'static str> {
    use MsgKind::{Outcome, Prepare, Purchase, Status, Vote};
    use Step::{Handled, In, Sent, SyncEnd, SyncStart};
    let c1 = &c.marks[i1];
    let req = c1.label.expect("a purchase's send has a label").req;
    let (plain, ticket) = (Key::Req(req, false), Key::Req(req, true));
    let i0 = (0..i1)
        .rev()
        .find(|&j| c.marks[j].step == In && c.marks[j].label.is_some_and(|l| l.kind == Outcome))
        .ok_or("client: no outcome before it (a client's first purchase)")?;
    let c0 = &c.marks[i0];
    let prev = Key::Req(c0.label.expect("an In has a label").req, false);
    let (_, c0h) = c
        .find(Handled, Outcome, prev, Some(i0), None)
        .ok_or("client: the previous outcome not handled")?;
    // The round trip for a ticket, unless the first send carried the one
    // kept from the previous purchase: then its segments are empty.
    let (k1, k2, k3, c2, c3) = if c1.label.is_some_and(|l| l.ticket) {
        (c1, c1, c1, c1, c1)
    } else {
        let (k1i, k1) = k
            .find(In, Purchase, plain, None, None)
            .ok_or("coordinator: the purchase without a ticket not in")?;
        let (_, k2) = k
            .find(Handled, Purchase, plain, Some(k1i), None)
            .ok_or("coordinator: the purchase without a ticket not handled")?;
        let (_, k3) = k
            .find(Sent, Status, plain, Some(k1i), c.me)
            .ok_or("coordinator: Unknown{ticket} not sent")?;
        let (c2i, c2) = c
            .find(In, Status, plain, Some(i1), None)
            .ok_or("client: Unknown{ticket} not in")?;
        let (_, c3) = c
            .find(Sent, Purchase, ticket, Some(c2i), None)
            .ok_or("client: the purchase with the ticket not sent")?;
        (k1, k2, k3, c2, c3)
    };
    let (k4i, k4) = k
        .find(In, Purchase, ticket, None, None)
        .ok_or("coordinator: the purchase with the ticket not in")?;
    let (_, k5) = k
        .find(Handled, Purchase, ticket, Some(k4i), None)
        .ok_or("coordinator: the purchase with the ticket not handled")?;
    let (_, first_prepare) = k
        .find(Sent, Prepare, plain, Some(k4i), None)
        .ok_or("coordinator: no Prepare sent")?;
    let txn = first_prepare
        .label
        .and_then(|l| l.txn)
        .ok_or("coordinator: a Prepare without its transaction")?;
    let t = Key::Txn(txn);
    // Each participant the Prepare went to; the one on the path is the
    // one whose vote came in last.
    let mut legs = Vec::new();
    for p in participants {
        let Some((_, k6)) = k.find(Sent, Prepare, t, Some(k4i), p.me) else {
            continue;
        };
        let (p1i, p1) = p
            .find(In, Prepare, t, None, None)
            .ok_or("participant: the Prepare not in")?;
        let (p2i, p2) = p
            .find(Handled, Prepare, t, Some(p1i), None)
            .ok_or("participant: the Prepare not handled")?;
        let (p3i, p3) = p
            .in_batch(p2i, SyncStart)
            .ok_or("participant: no fsync before its vote")?;
        let (_, p4) = p
            .in_batch(p3i, SyncEnd)
            .ok_or("participant: its fsync did not end")?;
        let (_, p5) = p
            .find(Sent, Vote, t, Some(p1i), None)
            .ok_or("participant: no Vote sent")?;
        let (k7i, k7) = k
            .find(In, Vote, t, None, p.me)
            .ok_or("coordinator: a Vote not in")?;
        legs.push((p, p1i, [k6, p1, p2, p3, p4, p5, k7], k7i));
    }
    if legs.len() < 2 {
        return Err("coordinator: a Prepare not sent to two participants");
    }
    let (p, p1i, [k6, p1, p2, p3, p4, p5, k7], k7i) = legs
        .into_iter()
        .max_by_key(|(_, _, m, _)| m[6].ns)
        .expect("two legs");
    let (k8i, k8) = k
        .find(Handled, Vote, t, Some(k7i), p.me)
        .ok_or("coordinator: the last Vote not handled")?;
    let (k11i, k11) = k
        .find(Sent, Outcome, plain, Some(k8i), c.me)
        .ok_or("coordinator: no Outcome sent")?;
    let (_, c4) = c
        .find(In, Outcome, plain, Some(i1), None)
        .ok_or("client: the Outcome not in")?;
    // The coordinator's fsync, if the batch of the last vote had one
    // before the outcome left.
    let sync = k
        .in_batch(k8i, SyncStart)
        .filter(|&(s, _)| s < k11i)
        .and_then(|(s, start)| k.in_batch(s, SyncEnd).map(|(_, end)| (start, end)));
    let (k9, k10) = sync.unwrap_or((k8, k8));
    let ns = |a: &Mark, b: &Mark| b.ns as i64 - a.ns as i64;
    // The receiver's loop busy with its previous batch while the datagram
    // waited: from the send to that batch's last mark (none if it ended
    // before the send), within the hop.
    let busy = |sent: &Mark, got: &Mark, prev: Option<(u64, bool)>| -> i64 {
        let end = prev.map_or(0, |(end, _)| end as i64);
        (end - sent.ns as i64).clamp(0, ns(sent, got).max(0))
    };
    let p_prev = p.previous_batch(p1i);
    let p_busy = busy(k6, p1, p_prev);
    let k_busy = busy(p5, k7, k.previous_batch(k7i));
    let segments = [
        ns(c0, c0h),
        ns(c0h, c1),
        ns(c1, k1),
        ns(k1, k2),
        ns(k2, k3),
        ns(k3, c2),
        ns(c2, c3),
        ns(c3, k4),
        ns(k4, k5),
        ns(k5, k6),
        p_busy,
        ns(k6, p1) - p_busy,
        ns(p1, p2),
        ns(p2, p3),
        ns(p3, p4),
        ns(p4, p5),
        k_busy,
        ns(p5, k7) - k_busy,
        ns(k7, k8),
        ns(k8, k9),
        ns(k9, k10),
        ns(k10, k11),
        ns(k11, c4),
    ];
    Ok(PurchasePath {
        segments,
        total: ns(c0, c4),
        coordinator_fsynced: sync.is_some(),
        behind_commit: p_busy > 0 && p_prev.is_some_and(|(_, commit)| commit),
    })
}

/// Reads every `*.timeline` file of `dir`, named by its stem.
pub fn read_dir(dir: &std::path::Path) -> Result<Vec<(String, NodeMarks)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "timeline") {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, crate::runtime::timeline::read(&path)?));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}
