//! A node's timeline: when each protocol step happened, for `twopc bench
//! --timeline` ("where a purchase's time goes", docs/performance.md).
//!
//! With a [`Timeline`] attached (`Shell::timeline`; `twopc node` attaches
//! one when [`ENV`] names a directory), the node marks, with a clock that
//! compares across processes ([`clock_ns`]: `CLOCK_MONOTONIC`):
//!
//! - [`Step::In`]: a protocol message came in: stamped when the loop had
//!   the datagram (the time the shell hands the core with it: right after
//!   `recv` returned, so the wake-up is before it);
//! - [`Step::Handled`]: the actor's step for it returned;
//! - [`Step::Staged`], [`Step::SyncStart`], [`Step::SyncEnd`]: the batch's
//!   save was written, its fsync began and returned;
//! - [`Step::Sent`]: a datagram is about to be sent (`send` called).
//!
//! Each mark carries the loop's batch number, and a message's mark its
//! [`Label`] (kind, request, transaction) and the peer, so that
//! `ops/bench/timeline.rs` can stitch one purchase's path across the
//! nodes' files. A datagram's label is noted when the core queues it (the
//! core knows the message) and found again by its bytes when the shell
//! sends it.
//!
//! Off by default: the core and the shell hold `Option<Box<Timeline>>`,
//! one branch per step. On, the marks go into a buffer allocated once
//! ([`CAPACITY`]; marks past it are counted as lost, never silently
//! dropped) and are written to `DIR/NAME.timeline` when the loop stops.

use crate::runtime::wire::{msg_txn, MsgKind};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use twopc_model::{Msg, TxnId};

/// The environment variable `twopc node` reads: the directory to write
/// `NAME.timeline` into at exit.
pub const ENV: &str = "TWOPC_TIMELINE_DIR";

/// Marks a timeline holds; later ones are counted as lost.
pub const CAPACITY: usize = 1 << 18;

/// The first line of a timeline file.
const HEADER: &str = "# twopc timeline v1";

/// Nanoseconds of `CLOCK_MONOTONIC`: the same clock for every process of
/// the machine (a run's nodes all run on one).
pub fn clock_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into; CLOCK_MONOTONIC
    // exists on every Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(r, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A step of a node's loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// A protocol message was in the loop's hands.
    In,
    /// The actor's step for it returned.
    Handled,
    /// The batch's save was written (not durable yet).
    Staged,
    /// The batch's fsync began.
    SyncStart,
    /// The batch's fsync returned.
    SyncEnd,
    /// A datagram is about to be sent (marked just before `send`).
    Sent,
}

impl Step {
    const ALL: [Step; 6] = [
        Step::In,
        Step::Handled,
        Step::Staged,
        Step::SyncStart,
        Step::SyncEnd,
        Step::Sent,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Step::In => "in",
            Step::Handled => "handled",
            Step::Staged => "staged",
            Step::SyncStart => "sync_start",
            Step::SyncEnd => "sync_end",
            Step::Sent => "sent",
        }
    }
}

/// What a message is, as far as stitching needs: its kind, its request
/// (hashed; 0 when it names none), its transaction, and `ticket`: a
/// purchase or request that carries a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    /// The message's kind.
    pub kind: MsgKind,
    /// The request it names, hashed ([`req_hash`]); 0: none.
    pub req: u64,
    /// The transaction it names.
    pub txn: Option<TxnId>,
    /// A purchase (or request) with a ticket.
    pub ticket: bool,
}

impl Label {
    /// The label of `msg`.
    pub fn of(msg: &Msg) -> Label {
        let (req, ticket) = match msg {
            Msg::Purchase { req, ticket, .. } | Msg::Request { req, ticket, .. } => {
                (Some(req), ticket.is_some())
            }
            Msg::Lookup { req } | Msg::Status { req, .. } => (Some(req), false),
            Msg::Outcome(o) => (Some(&o.req), false),
            Msg::Prepare { req, .. }
            | Msg::PrepareCredit { req, .. }
            | Msg::PreparePriced { req, .. } => (Some(req), false),
            _ => (None, false),
        };
        Label {
            kind: MsgKind::of(msg),
            req: req.map_or(0, |r| req_hash(&r.0)),
            txn: msg_txn(msg),
            ticket,
        }
    }
}

/// A request id's hash (FNV-1a; never 0): the same in every process.
pub fn req_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// One mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// When ([`clock_ns`]).
    pub ns: u64,
    /// The loop's batch (one per wake-up) it belongs to.
    pub batch: u32,
    /// What happened.
    pub step: Step,
    /// The message, for `In`, `Handled` and `Sent`.
    pub label: Option<Label>,
    /// Where it came from (`In`, `Handled`) or went (`Sent`).
    pub peer: Option<SocketAddrV4>,
}

/// A node's marks, recorded as it runs and written when it stops.
pub struct Timeline {
    path: PathBuf,
    me: Option<SocketAddrV4>,
    marks: Vec<Mark>,
    lost: u64,
    batch: u32,
    /// Datagrams queued in this batch: their bytes' address and label.
    queued: Vec<(usize, Label)>,
    /// An instant and the clock at it, to place the shell's instants.
    base: (std::time::Instant, u64),
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Timeline {{ marks: {}, lost: {} }}",
            self.marks.len(),
            self.lost
        )
    }
}

impl Timeline {
    /// A timeline of the node at `me`, written to `path` when it stops.
    pub fn new(path: PathBuf, me: Option<SocketAddrV4>) -> Timeline {
        Timeline {
            path,
            me,
            marks: Vec::with_capacity(CAPACITY),
            lost: 0,
            batch: 0,
            queued: Vec::new(),
            base: (std::time::Instant::now(), clock_ns()),
        }
    }

    /// The timeline of node `name` at `me` when [`ENV`] names a directory
    /// (`DIR/NAME.timeline`); an error when it names no directory.
    pub fn from_env(name: &str, me: SocketAddrV4) -> Result<Option<Timeline>, String> {
        let Some(dir) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(format!("{ENV}={} is not a directory", dir.display()));
        }
        Ok(Some(Timeline::new(
            dir.join(format!("{name}.timeline")),
            Some(me),
        )))
    }

    /// A new wake-up of the loop: a new batch.
    pub fn begin_batch(&mut self) {
        self.batch += 1;
        self.queued.clear();
    }

    /// Marks `step` now.
    pub fn mark(&mut self, step: Step, label: Option<Label>, peer: Option<SocketAddrV4>) {
        self.push(clock_ns(), step, label, peer)
    }

    /// Marks `step` at `at`, an instant the shell read.
    pub fn mark_at(
        &mut self,
        at: tokio::time::Instant,
        step: Step,
        label: Option<Label>,
        peer: Option<SocketAddrV4>,
    ) {
        let (instant, ns) = self.base;
        let at = at.into_std();
        let ns = match at.checked_duration_since(instant) {
            Some(d) => ns + d.as_nanos() as u64,
            None => ns.saturating_sub(instant.duration_since(at).as_nanos() as u64),
        };
        self.push(ns, step, label, peer)
    }

    fn push(&mut self, ns: u64, step: Step, label: Option<Label>, peer: Option<SocketAddrV4>) {
        if self.marks.len() == self.marks.capacity() {
            self.lost += 1;
            return;
        }
        self.marks.push(Mark {
            ns,
            batch: self.batch,
            step,
            label,
            peer,
        });
    }

    /// Notes that the datagram at `bytes` carries `label` (the core knows
    /// the message when it queues it; the shell only its bytes).
    pub fn queued(&mut self, bytes: &[u8], label: Label) {
        self.queued.push((bytes.as_ptr() as usize, label));
    }

    /// The label noted for the datagram at `bytes` (copies of a broadcast
    /// share their bytes, and their label). The latest note wins: a
    /// datagram re-encoded with its count (`core/waited.rs`) frees its old
    /// bytes, whose address the next one may take.
    pub fn label_of(&self, bytes: &[u8]) -> Option<Label> {
        let at = bytes.as_ptr() as usize;
        self.queued
            .iter()
            .rev()
            .find(|(p, _)| *p == at)
            .map(|(_, l)| *l)
    }

    /// The marks so far.
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// Writes the file: a header naming the node's address and the marks
    /// lost, then one line per mark.
    pub fn write(&self) -> std::io::Result<()> {
        let mut text = String::with_capacity(64 * (self.marks.len() + 1));
        let me = self.me.map_or("-".to_string(), |a| a.to_string());
        let _ = writeln!(text, "{HEADER} me={me} lost={}", self.lost);
        for m in &self.marks {
            let _ = writeln!(text, "{}", format_mark(m));
        }
        let mut file = std::fs::File::create(&self.path)?;
        file.write_all(text.as_bytes())
    }

    /// Where it is written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One line: `ns batch step kind req txn ticket peer` (`-` for none).
fn format_mark(m: &Mark) -> String {
    let (kind, req, txn, ticket) = match &m.label {
        Some(l) => (
            l.kind.as_str().to_string(),
            format!("{:x}", l.req),
            l.txn
                .map_or("-".to_string(), |t| format!("{}.{}", t.epoch, t.n)),
            if l.ticket { "t" } else { "-" },
        ),
        None => ("-".into(), "-".into(), "-".into(), "-"),
    };
    let peer = m.peer.map_or("-".to_string(), |p| p.to_string());
    format!(
        "{} {} {} {kind} {req} {txn} {ticket} {peer}",
        m.ns,
        m.batch,
        m.step.as_str()
    )
}

/// A timeline file as read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMarks {
    /// The node's address (`None`: not written).
    pub me: Option<SocketAddrV4>,
    /// Marks its buffer had no room for.
    pub lost: u64,
    /// Its marks, in the order taken.
    pub marks: Vec<Mark>,
}

/// Reads a timeline file; an error names the line that does not parse.
pub fn read(path: &Path) -> Result<NodeMarks, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a timeline file's text.
pub fn parse(text: &str) -> Result<NodeMarks, String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let rest = header
        .strip_prefix(HEADER)
        .ok_or_else(|| format!("not a timeline (first line {header:?})"))?;
    let mut out = NodeMarks::default();
    for word in rest.split_whitespace() {
        match word.split_once('=') {
            Some(("me", "-")) => {}
            Some(("me", a)) => out.me = Some(a.parse().map_err(|_| format!("bad me={a}"))?),
            Some(("lost", n)) => out.lost = n.parse().map_err(|_| format!("bad lost={n}"))?,
            _ => return Err(format!("bad header word {word:?}")),
        }
    }
    for (i, line) in lines.enumerate() {
        out.marks
            .push(parse_mark(line).map_err(|e| format!("line {}: {e}: {line:?}", i + 2))?);
    }
    Ok(out)
}

fn parse_mark(line: &str) -> Result<Mark, String> {
    let w: Vec<&str> = line.split(' ').collect();
    let [ns, batch, step, kind, req, txn, ticket, peer] = w[..] else {
        return Err("not 8 fields".into());
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| format!("bad number {s:?}"));
    let step = Step::ALL
        .into_iter()
        .find(|s| s.as_str() == step)
        .ok_or_else(|| format!("bad step {step:?}"))?;
    let label = match kind {
        "-" => None,
        k => Some(Label {
            kind: k.parse()?,
            req: u64::from_str_radix(req, 16).map_err(|_| format!("bad req {req:?}"))?,
            txn: match txn {
                "-" => None,
                t => {
                    let (e, n) = t.split_once('.').ok_or_else(|| format!("bad txn {t:?}"))?;
                    Some(TxnId {
                        epoch: num(e)?,
                        n: num(n)?,
                    })
                }
            },
            ticket: ticket == "t",
        }),
    };
    let peer = match peer {
        "-" => None,
        p => Some(p.parse().map_err(|_| format!("bad peer {p:?}"))?),
    };
    Ok(Mark {
        ns: num(ns)?,
        batch: u32::try_from(num(batch)?).map_err(|_| "bad batch".to_string())?,
        step,
        label,
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_timeline_reads_back_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let me: SocketAddrV4 = "127.0.0.1:4000".parse().unwrap();
        let mut t = Timeline::new(dir.path().join("n.timeline"), Some(me));
        t.begin_batch();
        let label = Label {
            kind: MsgKind::Prepare,
            req: req_hash("r1"),
            txn: Some(TxnId { epoch: 3, n: 9 }),
            ticket: false,
        };
        t.mark_at(tokio::time::Instant::now(), Step::In, Some(label), Some(me));
        t.mark(Step::SyncStart, None, None);
        t.write().unwrap();
        let back = read(t.path()).unwrap();
        assert_eq!(back.me, Some(me));
        assert_eq!(back.lost, 0);
        assert_eq!(back.marks, t.marks());
        assert!(back.marks[0].ns <= back.marks[1].ns, "{:?}", back.marks);
    }

    #[test]
    fn bytes_noted_again_carry_their_latest_label() {
        let mut t = Timeline::new(PathBuf::from("/nonexistent"), None);
        let bytes = [0u8; 8];
        let (ack, vote) = (MsgKind::Ack, MsgKind::Vote);
        let label = |kind| Label {
            kind,
            req: 0,
            txn: Some(TxnId { epoch: 1, n: 1 }),
            ticket: false,
        };
        // An `Ack`'s freed bytes' address, taken by a re-encoded `Vote`.
        t.queued(&bytes, label(ack));
        t.queued(&bytes, label(vote));
        assert_eq!(t.label_of(&bytes), Some(label(vote)));
        t.begin_batch();
        assert_eq!(t.label_of(&bytes), None);
    }

    #[test]
    fn a_full_buffer_counts_what_it_loses() {
        let mut t = Timeline::new(PathBuf::from("/nonexistent"), None);
        for _ in 0..CAPACITY + 3 {
            t.mark(Step::Staged, None, None);
        }
        assert_eq!((t.marks().len(), t.lost), (CAPACITY, 3));
    }

    #[test]
    fn a_broken_line_is_named() {
        let err = parse(&format!("{HEADER} me=- lost=0\n1 1 in purchase zz - - -\n")).unwrap_err();
        assert!(err.contains("line 2") && err.contains("bad req"), "{err}");
        assert!(parse("hello\n").unwrap_err().contains("not a timeline"));
    }
}
