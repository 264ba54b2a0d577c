//! Where the records of a preallocated log end: zeros are the end, a torn
//! write into them is a torn tail whatever part of it landed, and damage
//! followed by a valid record is corruption.

use super::super::delta::Delta;
use super::super::record::{encode_record, log_header, scan_log};
use super::*;
use crate::runtime::error::Error;
use std::path::Path;
use twopc_model::{PartStorage, Storage};

/// A record of a participant's whole state of `accounts` accounts (long
/// enough to span several 64-byte pieces).
fn record(accounts: u64) -> Vec<u8> {
    let state = PartStorage {
        levels: (0..accounts)
            .map(|i| (format!("user{i:03}"), 1000 + i))
            .collect(),
        ..PartStorage::default()
    };
    let mut rec = Vec::new();
    encode_record(&Delta::Full(Storage::Participant(state)), &mut rec);
    rec
}

/// A preallocated log: its header, `records`, then zeros to 4096 bytes.
fn log(records: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = log_header(0, None);
    let mut starts = Vec::new();
    for r in records {
        starts.push(bytes.len());
        bytes.extend_from_slice(r);
    }
    starts.push(bytes.len());
    bytes.resize(4096, 0);
    (bytes, starts)
}

const PATH: &str = "log.0";

#[test]
fn zeros_after_the_records_end_a_preallocated_log_and_are_torn_in_an_appended_one() {
    let (r1, r2) = (record(3), record(4));
    let (bytes, at) = log(&[&r1, &r2]);
    let read = scan_log(&bytes, 0, Path::new(PATH)).unwrap();
    assert!(read.preallocated);
    let scan = read.scan;
    assert_eq!(scan.deltas.len(), 2);
    assert_eq!((scan.valid_len, scan.torn), (at[2] as u64, None));
    // The same bytes under the header of the appended format: the zeros
    // are a torn tail there, as they always were.
    let mut old = bytes.clone();
    old[..8].copy_from_slice(b"TPCLOG03");
    let read = scan_log(&old, 0, Path::new(PATH)).unwrap();
    assert!(!read.preallocated);
    assert_eq!(read.scan.valid_len, at[2] as u64);
    let why = read.scan.torn.expect("zeros are torn in an appended log");
    assert!(why.contains("zero bytes at the end"), "{why}");
}

#[test]
fn a_write_torn_into_the_zeros_is_a_torn_tail_whatever_part_of_it_landed() {
    let (r1, r2) = (record(3), record(30));
    let (whole, at) = log(&[&r1, &r2]);
    let pieces = (at[1] / 64..at[2].div_ceil(64)).collect::<Vec<_>>();
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    let (mut torn, mut holes) = (0, 0);
    for mask in 0u32..(1 << pieces.len()) {
        // The second record's 64-byte pieces in `mask` landed, the others
        // are still zeros.
        let mut bytes = whole.clone();
        for (i, p) in pieces.iter().enumerate() {
            if mask & (1 << i) == 0 {
                for b in &mut bytes[(p * 64).max(at[1])..((p + 1) * 64).min(at[2])] {
                    *b = 0;
                }
            }
        }
        let scan = scan_log(&bytes, 0, Path::new(PATH)).unwrap().scan;
        let all = (1 << pieces.len()) - 1;
        let expected = match mask {
            m if m == all => 2,
            _ => 1,
        };
        assert_eq!(scan.deltas.len(), expected, "mask {mask:b}");
        match mask {
            0 => assert_eq!(scan.torn, None, "nothing landed: the zeros"),
            m if m == all => assert_eq!(scan.torn, None),
            m => {
                assert_eq!(scan.valid_len, at[1] as u64, "mask {m:b}");
                let why = scan.torn.expect("a torn write");
                assert!(why.contains("an unfinished write"), "{why}");
                torn += 1;
                holes += u32::from(m & 1 == 0);
            }
        }
    }
    assert!(
        torn > 10 && holes > 5,
        "{torn} torn, {holes} with the start lost"
    );
}

#[test]
fn a_write_torn_after_its_first_byte_is_torn_not_an_empty_record() {
    // Only the record's first byte landed (the end of a sector or piece):
    // `0xA7` then zeros reads as a header of length 0 and crc 0, which is
    // the crc32 of nothing. (Found by the simulator, seed 214.)
    let (r1, r2) = (record(3), record(4));
    let (mut bytes, at) = log(&[&r1, &r2]);
    bytes[at[1] + 1..at[2]].fill(0);
    let scan = scan_log(&bytes, 0, Path::new(PATH)).unwrap().scan;
    assert_eq!((scan.deltas.len(), scan.valid_len), (1, at[1] as u64));
    let why = scan.torn.expect("a torn write");
    assert!(why.contains("an empty record"), "{why}");
}

#[test]
fn damage_followed_by_a_valid_record_is_corruption_not_a_torn_tail() {
    let (r1, r2, r3) = (record(3), record(5), record(4));
    let (whole, at) = log(&[&r1, &r2, &r3]);
    type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: [(&str, Damage<'_>, &str); 3] = [
        (
            "a flipped payload byte",
            Box::new(|b| b[at[1] + 20] ^= 0x10),
            "checksum mismatch",
        ),
        (
            "a zeroed header",
            Box::new(|b| b[at[1]..at[1] + 9].fill(0)),
            "bad record marker 0x00",
        ),
        (
            "a zeroed record",
            Box::new(|b| b[at[1]..at[2]].fill(0)),
            "bad record marker 0x00",
        ),
    ];
    for (what, damage, why) in cases {
        let mut bytes = whole.clone();
        damage(&mut bytes);
        let err = scan_log(&bytes, 0, Path::new(PATH)).unwrap_err();
        let Error::StorageCorrupt { offset, reason, .. } = err else {
            panic!("{what}: {err}");
        };
        assert_eq!(offset, at[1] as u64, "{what}");
        assert!(reason.contains(why), "{what}: {reason}");
        assert!(
            reason.contains("a valid record follows"),
            "{what}: {reason}"
        );
    }
    // Bytes no torn write leaves at a record's start (not 0xA7, not zero),
    // with nothing after them: damage all the same.
    let mut bytes = whole.clone();
    bytes[at[3]..at[3] + 40].fill(0x55);
    let err = scan_log(&bytes, 0, Path::new(PATH))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad record marker 0x55"), "{err}");
    // The same damage to the last record: nothing valid follows, torn.
    let mut bytes = whole.clone();
    bytes[at[2] + 20] ^= 0x10;
    let scan = scan_log(&bytes, 0, Path::new(PATH)).unwrap().scan;
    assert_eq!((scan.deltas.len(), scan.valid_len), (2, at[2] as u64));
    assert!(scan.torn.unwrap().contains("checksum mismatch"));
}

#[test]
fn only_a_complete_record_with_a_payload_counts_as_following() {
    // A torn write whose bytes hold 0xA7 then eight zeros: the crc32 of
    // an empty payload is 0, so without the rule it would read as a valid
    // empty record following, and the torn tail as corruption.
    let mut rest = vec![
        REC_MAGIC_FOR_TESTS,
        40,
        0,
        0,
        0,
        1,
        2,
        3,
        4,
        9,
        9,
        REC_MAGIC_FOR_TESTS,
    ];
    rest.resize(64, 0);
    assert_eq!(judge(&rest), Tail::Torn { len: 12 });
    assert_eq!(judge(&[0; 64]), Tail::Zeros);
    assert_eq!(judge(&[]), Tail::Zeros);
    let rec = record(2);
    let mut rest = vec![0; 64];
    rest.extend_from_slice(&rec);
    rest.resize(rest.len() + 64, 0);
    assert_eq!(judge(&rest), Tail::Followed { at: 64 });
}

const REC_MAGIC_FOR_TESTS: u8 = super::super::record::REC_MAGIC;
