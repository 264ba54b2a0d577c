//! The bytes of storage files: records, log headers, snapshots. Pure (bytes
//! in, values out), like the wire format; the files live in `log.rs`.
//!
//! ```text
//! record     0xA7, payload length (u32 LE), crc32 of payload (u32 LE), payload
//!            (a bincode `Delta`)
//! log.<gen>  "TPCLOG02", generation (u64 LE), records
//! snapshot   "TPCSNAP2", generation (u64 LE), one record: `Delta::Full`
//! ```

use super::delta::Delta;
use crate::error::{Error, Result};
use std::path::Path;
use twopc_model::Storage;

/// A record's first byte.
pub const REC_MAGIC: u8 = 0xA7;
const REC_HEADER: usize = 9;
const MAX_RECORD: usize = 1 << 30;
const SNAP_MAGIC: &[u8; 8] = b"TPCSNAP2";
const LOG_MAGIC: &[u8; 8] = b"TPCLOG02";
/// Bytes of a log file's header: magic and generation.
pub const LOG_HEADER: usize = 16;

fn bincode_opts() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
}

/// Appends the record holding `delta` to `buf`.
pub fn encode_record(delta: &Delta, buf: &mut Vec<u8>) {
    use bincode::Options;
    let payload = bincode_opts()
        .serialize(delta)
        .expect("storage types always serialize");
    buf.push(REC_MAGIC);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
}

/// The header of the log of `generation`.
pub fn log_header(generation: u64) -> Vec<u8> {
    let mut header = LOG_MAGIC.to_vec();
    header.extend_from_slice(&generation.to_le_bytes());
    header
}

/// The bytes of a snapshot of `state` as `generation`.
pub fn snapshot(generation: u64, state: &Storage) -> Vec<u8> {
    let mut bytes = SNAP_MAGIC.to_vec();
    bytes.extend_from_slice(&generation.to_le_bytes());
    encode_record(&Delta::Full(state.clone()), &mut bytes);
    bytes
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
pub fn scan(bytes: &[u8], path: &Path) -> Result<Scan> {
    use bincode::Options;
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
        if rest.iter().all(|b| *b == 0) {
            torn = Some(format!("{} zero bytes at the end", rest.len()));
            break;
        }
        if rest.len() < REC_HEADER {
            torn = Some(format!(
                "an incomplete record header ({} bytes)",
                rest.len()
            ));
            break;
        }
        if rest[0] != REC_MAGIC {
            return Err(corrupt(off, format!("bad record marker {:#04x}", rest[0])));
        }
        let len = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[5..9].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return Err(corrupt(off, format!("impossible record length {len}")));
        }
        if rest.len() < REC_HEADER + len {
            torn = Some(format!(
                "an incomplete record ({} of {} payload bytes)",
                rest.len() - REC_HEADER,
                len
            ));
            break;
        }
        let payload = &rest[REC_HEADER..REC_HEADER + len];
        if crc32fast::hash(payload) != crc {
            return Err(corrupt(off, "checksum mismatch".into()));
        }
        let delta: Delta = bincode_opts()
            .deserialize(payload)
            .map_err(|e| corrupt(off, format!("undecodable record: {e}")))?;
        deltas.push(delta);
        off += REC_HEADER + len;
    }
    Ok(Scan {
        deltas,
        valid_len: off as u64,
        torn,
    })
}

/// Scans a whole log file: its header, then its records (offsets in errors
/// and `valid_len` count from the start of the file).
pub fn scan_log(bytes: &[u8], generation: u64, path: &Path) -> Result<Scan> {
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
    if &bytes[..8] != LOG_MAGIC {
        return Err(corrupt("not a twopc log (bad header)".into()));
    }
    let found = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if found != generation {
        return Err(corrupt(format!(
            "header says generation {found}, expected {generation}"
        )));
    }
    match scan(&bytes[LOG_HEADER..], path) {
        Ok(mut s) => {
            s.valid_len += LOG_HEADER as u64;
            Ok(s)
        }
        Err(Error::StorageCorrupt {
            path,
            offset,
            reason,
        }) => Err(Error::StorageCorrupt {
            path,
            offset: offset + LOG_HEADER as u64,
            reason,
        }),
        Err(e) => Err(e),
    }
}

/// The generation and state of a snapshot file's bytes.
pub fn parse_snapshot(bytes: &[u8], path: &Path) -> Result<(u64, Storage)> {
    let corrupt = |reason: &str| Error::StorageCorrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    if bytes.len() < 16 || &bytes[..8] != SNAP_MAGIC {
        return Err(corrupt("not a twopc snapshot"));
    }
    let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let mut scan = scan(&bytes[16..], path)?;
    // A snapshot is fsync'd before it is renamed into place: it is whole or
    // it is not there. Anything else is corruption, torn or not. (Moved
    // out, not cloned: a snapshot may hold a million balances.)
    match (scan.torn, scan.deltas.len(), scan.deltas.pop()) {
        (None, 1, Some(Delta::Full(s))) => Ok((generation, s)),
        _ => Err(corrupt(
            "snapshot is not exactly one complete full-state record",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twopc_model::ClientState;

    #[test]
    fn records_scan_back_and_a_cut_record_is_a_torn_tail() {
        let path = Path::new("log.0");
        let state = Storage::Client(ClientState::default());
        let mut bytes = log_header(0);
        encode_record(&Delta::Full(state.clone()), &mut bytes);
        let whole = bytes.len();
        encode_record(&Delta::Full(state.clone()), &mut bytes);
        let scan = scan_log(&bytes, 0, path).unwrap();
        assert_eq!(scan.deltas.len(), 2);
        assert_eq!((scan.valid_len, scan.torn), (bytes.len() as u64, None));
        let cut = scan_log(&bytes[..bytes.len() - 1], 0, path).unwrap();
        assert_eq!((cut.deltas.len(), cut.valid_len), (1, whole as u64));
        assert!(cut.torn.unwrap().contains("incomplete record"));
        let err = scan_log(&bytes, 1, path).unwrap_err().to_string();
        assert!(err.contains("expected 1"), "{err}");
        let snap = snapshot(4, &state);
        assert_eq!(parse_snapshot(&snap, path).unwrap(), (4, state));
    }
}
