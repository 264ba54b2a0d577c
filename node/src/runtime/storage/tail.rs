//! Where the records of a preallocated log end (`TPCLOG04`, `prealloc.rs`).
//! Pure, like `record.rs`.
//!
//! A preallocated log is its header, its records, then zeros to the end of
//! the file: space written once with zeros and synced, that the records
//! are written into later, so that the `fdatasync` of a record never
//! changes the file's length. A record starts with `0xA7`, never zero,
//! so a zero byte where the next record would start is the end.
//!
//! A write into that space whose `fdatasync` never returned may have
//! landed in any part: none, all, or some of its sectors, in any order, so
//! holes of zeros inside it and bytes after a zero are possible. Only the
//! last write can be unfinished (each waits for the previous one's
//! `fdatasync`, and carries one record: `sync` encodes one delta, and a
//! failed sync is fatal). So when the next record is not a complete,
//! valid one, the bytes from there to the last non-zero byte are either
//! that unfinished write (a torn tail, cut at open as in an appended log)
//! or damage in the middle of the log. A first byte other than `0xA7` or
//! zero, or an impossible length, is damage at once: a write lands in
//! pieces, each all written or still zeros, so the first byte of a torn
//! record is `0xA7` or 0, and a length read through lost pieces is only
//! smaller. Otherwise they are told apart by what follows:
//! if a complete record with a good checksum starts anywhere in them after
//! their first byte, the failed record is in the middle, and that is
//! corruption, as it is in an appended log; if none does, they are the
//! torn tail. A damaged *last* record thus reads as torn where an appended
//! log would call a complete one with a bad checksum corrupt; the
//! synced-length marker still refuses it if it was acknowledged and the
//! marker on disk says so (`synced.rs`).

/// What the bytes from a failed record's start to the end of the file are.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// All zeros: the records end here.
    Zeros,
    /// An unfinished write: `len` bytes (to the last non-zero one), no
    /// complete record after their start.
    Torn { len: usize },
    /// A complete, valid record starts `at` bytes after the failed one:
    /// the failed one is damage in the middle.
    Followed { at: usize },
}

/// Judges `rest`, the bytes from where the next record should start.
pub fn judge(rest: &[u8]) -> Tail {
    let Some(last) = rest.iter().rposition(|b| *b != 0) else {
        return Tail::Zeros;
    };
    let span = &rest[..=last];
    for at in 1..span.len() {
        if span[at] == super::record::REC_MAGIC && whole_record(&rest[at..]) {
            return Tail::Followed { at };
        }
    }
    Tail::Torn { len: span.len() }
}

/// Whether `b` starts with a complete record whose checksum holds. An
/// empty payload never does (every record holds a value of at least one
/// byte; an `0xA7` followed by eight zeros would otherwise pass, the crc32
/// of nothing being 0).
fn whole_record(b: &[u8]) -> bool {
    let Some(head) = b.get(..9) else {
        return false;
    };
    let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[5..9].try_into().expect("4 bytes"));
    len > 0 && b.get(9..9 + len).is_some_and(|p| crc32fast::hash(p) == crc)
}

#[cfg(test)]
#[path = "tail_tests.rs"]
mod tests;
