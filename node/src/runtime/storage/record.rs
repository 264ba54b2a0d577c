//! The bytes of storage files: records, log headers, snapshots. Pure (bytes
//! in, values out), like the wire format; the files live in `log.rs`.
//!
//! ```text
//! record     0xA7, payload length (u32 LE), crc32 of payload (u32 LE), payload
//!            (a bincode `Delta`)
//! log.<gen>  "TPCLOG04", generation (u64 LE), one record: the owner (a
//!            bincode `Option<Identity>`), then records, then zeros to the
//!            end of the file (space preallocated ahead of the records:
//!            `prealloc.rs`; where the records end: `tail.rs`)
//! snapshot   "TPCSNAP5", generation (u64 LE), base position (u64 LE), one
//!            record: the owner, one record: the journal (`journal.rs`:
//!            empty, at the position the log's entries start; the entries
//!            before it are in segments, `journal_files.rs`), one record:
//!            `Delta::Full`
//! ```
//!
//! The owner in every header is what makes a directory's identity survive
//! a deleted `NODE` file (`dir.rs`). Files of the previous formats
//! (`TPCLOG02`, `TPCSNAP2`: the same without the owner record; `TPCSNAP3`:
//! without the base position; `TPCSNAP4`: without the journal; `TPCLOG03`:
//! appended to, not preallocated, so a tail of zeros is torn) are read,
//! their owner unknown, their base position 0 or their journal empty; new
//! logs and snapshots are written in the new one.
//!
//! The base position is the history's position (`super::position`) the
//! snapshot folds in: every record ever synced before its log began.

use super::delta::Delta;
use super::dir::Identity;
use super::journal::Journal;
use super::tail::{judge, Tail};
use crate::runtime::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use twopc_model::Storage;

/// A record's first byte.
pub const REC_MAGIC: u8 = 0xA7;
const REC_HEADER: usize = 9;
const MAX_RECORD: usize = 1 << 30;
const SNAP_MAGIC: &[u8; 8] = b"TPCSNAP5";
/// Snapshots without the journal, read still (an empty journal).
const SNAP_MAGIC_4: &[u8; 8] = b"TPCSNAP4";
/// Snapshots without the base position, read still (base 0).
const SNAP_MAGIC_3: &[u8; 8] = b"TPCSNAP3";
const LOG_MAGIC: &[u8; 8] = b"TPCLOG04";
/// Logs appended to, not preallocated: read still, and appended to until
/// the next compaction (a tail of zeros in them is torn).
const LOG_MAGIC_3: &[u8; 8] = b"TPCLOG03";
/// The magics of the previous format, read still (owner unknown).
const SNAP_MAGIC_2: &[u8; 8] = b"TPCSNAP2";
const LOG_MAGIC_2: &[u8; 8] = b"TPCLOG02";
/// Bytes of a log file's fixed header: magic and generation (the owner's
/// record follows it).
pub const LOG_HEADER: usize = 16;

fn bincode_opts() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
}

/// Appends the record holding `delta` to `buf`.
pub fn encode_record(delta: &Delta, buf: &mut Vec<u8>) {
    encode_value(delta, buf);
}

/// Appends a record holding `value` to `buf`.
pub(super) fn encode_value(value: &impl Serialize, buf: &mut Vec<u8>) {
    use bincode::Options;
    let payload = bincode_opts()
        .serialize(value)
        .expect("storage types always serialize");
    buf.push(REC_MAGIC);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
}

/// The header of the log of `generation` of the node `owner` (`None`: a
/// store opened without an owner, by tests and tools).
pub fn log_header(generation: u64, owner: Option<&Identity>) -> Vec<u8> {
    let mut header = LOG_MAGIC.to_vec();
    header.extend_from_slice(&generation.to_le_bytes());
    encode_value(&owner, &mut header);
    header
}

/// The bytes of a snapshot of `state` and `journal` as `generation`, of
/// node `owner`, folding in a history of `base` records.
pub fn snapshot(
    generation: u64,
    base: u64,
    owner: Option<&Identity>,
    journal: &Journal,
    state: &Storage,
) -> Vec<u8> {
    let mut bytes = SNAP_MAGIC.to_vec();
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes.extend_from_slice(&base.to_le_bytes());
    encode_value(&owner, &mut bytes);
    encode_value(journal, &mut bytes);
    encode_record(&Delta::Full(state.clone()), &mut bytes);
    bytes
}

/// Reads the owner's record at the start of `bytes` (after a header's
/// magic and generation): the owner and the record's length. A header is
/// written whole and fsynced before it is renamed into place, so anything
/// but one complete, valid record is corruption (the error says why).
fn read_owner(bytes: &[u8]) -> std::result::Result<(Option<Identity>, usize), String> {
    read_value(bytes)
}

/// Reads one record holding a `T` at the start of `bytes`: the value and
/// the record's length (the owner's, or a snapshot's journal).
pub(super) fn read_value<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), String> {
    use bincode::Options;
    let Some(head) = bytes.get(..REC_HEADER) else {
        return Err("is cut short".into());
    };
    if head[0] != REC_MAGIC {
        return Err(format!("has a bad record marker {:#04x}", head[0]));
    }
    let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[5..9].try_into().expect("4 bytes"));
    let Some(payload) = bytes.get(REC_HEADER..REC_HEADER.saturating_add(len)) else {
        return Err("is cut short".into());
    };
    if crc32fast::hash(payload) != crc {
        return Err("fails its checksum".into());
    }
    let value = bincode_opts()
        .deserialize(payload)
        .map_err(|e| format!("is undecodable: {e}"))?;
    Ok((value, REC_HEADER + len))
}

/// Decodes a record's payload. A coordinator's state (and its changes) is
/// always the last thing in a record, and its last fields, the
/// transactions in doubt, then the operations that are not purchases, the
/// participants of partial transactions and the refunded counts
/// (docs/shop.md), are younger than the format; so are a participant's last fields, its pending
/// credits, its prices and its pending price changes (and, in a change, the
/// journal's entries). A record written before them ends where they would
/// begin. Such a record reads as having none (one empty list per field in
/// a state, two per map in a change and one for the journal, each one
/// zero byte: at most 8 bytes, a coordinator's change from before
/// doubts); the
/// decoder takes a padded payload only if it reads it whole, and the crc
/// has already vouched for the bytes.
fn decode_delta(payload: &[u8]) -> std::result::Result<Delta, bincode::Error> {
    use bincode::Options;
    let first = match bincode_opts().deserialize(payload) {
        Ok(delta) => return Ok(delta),
        Err(e) => e,
    };
    for pad in 1..=8 {
        let mut padded = payload.to_vec();
        padded.resize(payload.len() + pad, 0);
        if let Ok(delta) = bincode_opts().deserialize(&padded) {
            return Ok(delta);
        }
    }
    Err(first)
}

/// The result of scanning records.
#[derive(Debug)]
pub struct Scan {
    /// The complete, valid records.
    pub deltas: Vec<Delta>,
    /// Bytes of the file they occupy.
    pub valid_len: u64,
    /// Why the tail after `valid_len` is torn, if it is.
    pub torn: Option<String>,
}

/// Reads records from `bytes`; corrupt records are errors naming `path`.
/// The rules of an appended log and of a snapshot: a tail of zeros is torn.
pub fn scan(bytes: &[u8], path: &Path) -> Result<Scan> {
    scan_in(bytes, path, false)
}

/// [`scan`], or with `preallocated` the rules of a preallocated log
/// (`tail.rs`): zeros where a record would start are the end, not a torn
/// tail, and a record that fails is torn unless a valid one follows it.
pub fn scan_in(bytes: &[u8], path: &Path, preallocated: bool) -> Result<Scan> {
    let corrupt = |offset: usize, reason: String| Error::StorageCorrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut deltas = Vec::new();
    let mut off = 0;
    let mut torn = None;
    while off < bytes.len() {
        let rest = &bytes[off..];
        let failed = match check_record(rest) {
            Ok(len) => {
                let payload = &rest[REC_HEADER..REC_HEADER + len];
                let delta = decode_delta(payload)
                    .map_err(|e| corrupt(off, format!("undecodable record: {e}")))?;
                deltas.push(delta);
                off += REC_HEADER + len;
                continue;
            }
            Err(failed) => failed,
        };
        // A write into the zeros lands in pieces, each all written or all
        // zeros: a record's first byte is 0xA7 or still 0, and a length
        // read through lost pieces is only smaller. Anything else at a
        // record's start is damage, in either format.
        let damage =
            matches!(failed, Failed::Length(_)) || matches!(failed, Failed::Marker(b) if b != 0);
        if preallocated && !damage {
            match judge(rest) {
                Tail::Zeros => {}
                Tail::Torn { len } => {
                    torn = Some(format!(
                        "an unfinished write ({len} bytes, {}) before the preallocated zeros",
                        failed.why()
                    ));
                }
                Tail::Followed { at } => {
                    return Err(corrupt(
                        off,
                        format!(
                            "{}, and a valid record follows {at} bytes later",
                            failed.why()
                        ),
                    ))
                }
            }
            break;
        }
        match failed {
            Failed::Zeros => torn = Some(format!("{} zero bytes at the end", rest.len())),
            Failed::ShortHeader(_) | Failed::ShortRecord { .. } => torn = Some(failed.why()),
            Failed::Marker(_) | Failed::Length(_) | Failed::Empty | Failed::Checksum => {
                return Err(corrupt(off, failed.why()))
            }
        }
        break;
    }
    Ok(Scan {
        deltas,
        valid_len: off as u64,
        torn,
    })
}

/// Why the bytes at a record's start are not a complete, valid record.
enum Failed {
    /// Nothing but zeros from here on.
    Zeros,
    /// Fewer bytes than a record's header.
    ShortHeader(usize),
    /// A first byte other than [`REC_MAGIC`].
    Marker(u8),
    /// A length no record has.
    Length(usize),
    /// No payload: every record holds a value of at least one byte, and
    /// `0xA7` then eight zeros (the crc32 of nothing is 0) is a write torn
    /// after its first byte in a preallocated log.
    Empty,
    /// The file ends inside the payload.
    ShortRecord { have: usize, len: usize },
    /// The payload fails its checksum.
    Checksum,
}

impl Failed {
    fn why(&self) -> String {
        match self {
            Failed::Zeros => "zero bytes".into(),
            Failed::ShortHeader(n) => format!("an incomplete record header ({n} bytes)"),
            Failed::Marker(b) => format!("bad record marker {b:#04x}"),
            Failed::Length(len) => format!("impossible record length {len}"),
            Failed::Empty => "an empty record".into(),
            Failed::ShortRecord { have, len } => {
                format!("an incomplete record ({have} of {len} payload bytes)")
            }
            Failed::Checksum => "checksum mismatch".into(),
        }
    }
}

/// The payload length of the complete record with a good checksum at the
/// start of `rest` (not empty), or why there is none.
fn check_record(rest: &[u8]) -> std::result::Result<usize, Failed> {
    if rest.iter().all(|b| *b == 0) {
        return Err(Failed::Zeros);
    }
    if rest.len() < REC_HEADER {
        return Err(Failed::ShortHeader(rest.len()));
    }
    if rest[0] != REC_MAGIC {
        return Err(Failed::Marker(rest[0]));
    }
    let len = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[5..9].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return Err(Failed::Length(len));
    }
    if len == 0 {
        return Err(Failed::Empty);
    }
    if rest.len() < REC_HEADER + len {
        return Err(Failed::ShortRecord {
            have: rest.len() - REC_HEADER,
            len,
        });
    }
    if crc32fast::hash(&rest[REC_HEADER..REC_HEADER + len]) != crc {
        return Err(Failed::Checksum);
    }
    Ok(len)
}

/// A scanned log file.
#[derive(Debug)]
pub struct LogScan {
    /// The node its header names (`None`: none was recorded, or the file
    /// is of the previous format).
    pub owner: Option<Identity>,
    /// Its records (offsets count from the start of the file).
    pub scan: Scan,
    /// Whether it is of the preallocated format (`TPCLOG04`, `tail.rs`):
    /// written in place into zeros, not appended to.
    pub preallocated: bool,
}

/// Scans a whole log file: its header, then its records (offsets in errors
/// and `valid_len` count from the start of the file).
pub fn scan_log(bytes: &[u8], generation: u64, path: &Path) -> Result<LogScan> {
    let corrupt = |reason: String| Error::StorageCorrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    };
    if bytes.len() < LOG_HEADER {
        return Err(corrupt(format!(
            "truncated: {} bytes, shorter than the {LOG_HEADER}-byte header every log is created with",
            bytes.len()
        )));
    }
    let preallocated = &bytes[..8] == LOG_MAGIC;
    let (owner, header) = match &bytes[..8] {
        m if m == LOG_MAGIC || m == LOG_MAGIC_3 => {
            let (owner, len) =
                read_owner(&bytes[LOG_HEADER..]).map_err(|why| Error::StorageCorrupt {
                    path: path.to_path_buf(),
                    offset: LOG_HEADER as u64,
                    reason: format!("the header's owner record {why}"),
                })?;
            (owner, LOG_HEADER + len)
        }
        m if m == LOG_MAGIC_2 => (None, LOG_HEADER),
        _ => return Err(corrupt("not a twopc log (bad header)".into())),
    };
    let found = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if found != generation {
        return Err(corrupt(format!(
            "header says generation {found}, expected {generation}"
        )));
    }
    match scan_in(&bytes[header..], path, preallocated) {
        Ok(mut scan) => {
            scan.valid_len += header as u64;
            Ok(LogScan {
                owner,
                scan,
                preallocated,
            })
        }
        Err(Error::StorageCorrupt {
            path,
            offset,
            reason,
        }) => Err(Error::StorageCorrupt {
            path,
            offset: offset + header as u64,
            reason,
        }),
        Err(e) => Err(e),
    }
}

/// A snapshot file's contents.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Its generation.
    pub generation: u64,
    /// The history's position it folds in (0 in older formats).
    pub base: u64,
    /// The node it names (`None`: unrecorded, or the previous format).
    pub owner: Option<Identity>,
    /// A participant's journal (empty in older formats and other roles).
    pub journal: Journal,
    /// The full state.
    pub state: Storage,
}

/// The contents of a snapshot file's bytes.
pub fn parse_snapshot(bytes: &[u8], path: &Path) -> Result<Snapshot> {
    let corrupt = |reason: &str| Error::StorageCorrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    let owned = |at: usize| {
        read_owner(&bytes[at..]).map_err(|why| {
            corrupt(&format!(
                "snapshot is not exactly one complete owner record and one complete \
                 full-state record: the owner record {why}"
            ))
        })
    };
    let (owner, mut header, base) = match bytes.get(..8) {
        Some(m) if (m == SNAP_MAGIC || m == SNAP_MAGIC_4) && bytes.len() >= 24 => {
            let (owner, len) = owned(24)?;
            let base = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
            (owner, 24 + len, base)
        }
        Some(m) if m == SNAP_MAGIC_3 && bytes.len() >= 16 => {
            let (owner, len) = owned(16)?;
            (owner, 16 + len, 0)
        }
        Some(m) if m == SNAP_MAGIC_2 && bytes.len() >= 16 => (None, 16, 0),
        _ => return Err(corrupt("not a twopc snapshot")),
    };
    let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let mut journal = Journal::default();
    if bytes.get(..8) == Some(SNAP_MAGIC) {
        let (read, len) = read_value::<Journal>(&bytes[header..]).map_err(|why| {
            corrupt(&format!(
                "snapshot is not exactly one complete owner record, one complete journal \
                 record and one complete full-state record: the journal record {why}"
            ))
        })?;
        journal = read;
        header += len;
    }
    let mut scan = scan(&bytes[header..], path)?;
    // A snapshot is fsync'd before it is renamed into place: it is whole or
    // it is not there. Anything else is corruption, torn or not. (Moved
    // out, not cloned: a snapshot may hold a million balances.)
    match (scan.torn, scan.deltas.len(), scan.deltas.pop()) {
        (None, 1, Some(Delta::Full(state))) => Ok(Snapshot {
            generation,
            base,
            owner,
            journal,
            state,
        }),
        _ => Err(corrupt(
            "snapshot is not exactly one complete full-state record",
        )),
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
