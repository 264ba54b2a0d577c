//! Whose directory it is: the owner in the headers of logs and snapshots,
//! which survives a deleted `NODE` file.

use super::tests::{commit, files, prepare, wallet};
use super::*;
use crate::runtime::error::Error;
use crate::runtime::role::Role;
use std::fs;
use std::sync::Arc;

/// A wallet's directory, opened as node `name` in `role`.
fn open_as(
    dir: &std::path::Path,
    name: &str,
    role: Role,
) -> crate::runtime::error::Result<(LogStore, Option<Storage>)> {
    let fs = Arc::new(RealFs);
    open_store(fs, dir, name, role, 2_000, || Ok(None))
}

#[test]
fn a_wallets_directory_without_its_node_file_is_refused_to_order_and_opens_as_wallet() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(5);
    {
        let (mut store, _) = open_as(dir.path(), "wallet", Role::Wallet).unwrap();
        for n in 0..3 {
            prepare(&mut s, n);
            store.stage(Storage::Participant(s.clone())).unwrap();
            store.sync().unwrap();
        }
    }
    let node = dir.path().join("NODE");
    fs::remove_file(&node).unwrap();
    let before = files(dir.path());
    let err = open_as(dir.path(), "order", Role::Order).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::NotOwner { ref owner, ref name, ref file, .. }
            if owner == "wallet" && name == "order" && file.ends_with("log.0")),
        "{msg}"
    );
    assert!(
        msg.contains("\"wallet\"") && msg.contains("\"order\""),
        "{msg}"
    );
    assert!(msg.contains("log.0"), "names the file: {msg}");
    assert_eq!(files(dir.path()), before, "nothing changed on disk");
    // The same name in another role is refused too.
    let err = open_as(dir.path(), "wallet", Role::Order).unwrap_err();
    assert!(matches!(err, Error::WrongRole { .. }), "{err}");
    // Its owner opens it, and `NODE` is written again from the claim.
    let (_, loaded) = open_as(dir.path(), "wallet", Role::Wallet).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s)));
    let text = fs::read_to_string(&node).unwrap();
    assert_eq!(text, "name = \"wallet\"\nrole = \"wallet\"\n");
}

#[test]
fn after_a_compaction_the_snapshot_names_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(20);
    let (mut store, _) = open_as(dir.path(), "wallet", Role::Wallet).unwrap();
    while store.stats().compactions < 2 {
        let n = store.stats().bytes_written;
        prepare(&mut s, n);
        commit(&mut s, n);
        store.stage(Storage::Participant(s.clone())).unwrap();
        store.sync().unwrap();
    }
    drop(store);
    fs::remove_file(dir.path().join("NODE")).unwrap();
    let err = open_as(dir.path(), "order", Role::Order).unwrap_err();
    assert!(
        matches!(err, Error::NotOwner { ref file, .. } if file.ends_with("snapshot")),
        "{err}"
    );
    // An edited `NODE` does not override the headers either.
    fs::write(dir.path().join("NODE"), "order\n").unwrap();
    let err = open_as(dir.path(), "order", Role::Order).unwrap_err();
    assert!(
        matches!(err, Error::NotOwner { ref owner, .. } if owner == "wallet"),
        "{err}"
    );
    fs::remove_file(dir.path().join("NODE")).unwrap();
    let (_, loaded) = open_as(dir.path(), "wallet", Role::Wallet).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s)));
}

#[test]
fn a_log_of_the_previous_format_is_read_and_its_owner_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wallet(5);
    prepare(&mut s, 1);
    let mut bytes = b"TPCLOG02".to_vec();
    bytes.extend_from_slice(&0u64.to_le_bytes());
    record::encode_record(
        &super::delta::Delta::Full(Storage::Participant(s.clone())),
        &mut bytes,
    );
    fs::write(dir.path().join("log.0"), &bytes).unwrap();
    fs::write(dir.path().join("NODE"), "wallet\n").unwrap();
    let r = replay(dir.path()).unwrap();
    assert!(r.owner.is_none());
    // Only `NODE` to go by, as before.
    let err = open_as(dir.path(), "order", Role::Order).unwrap_err();
    assert!(matches!(err, Error::NotOwner { .. }), "{err}");
    let (mut store, loaded) = open_as(dir.path(), "wallet", Role::Wallet).unwrap();
    assert_eq!(loaded, Some(Storage::Participant(s.clone())));
    // Appended to as it is.
    prepare(&mut s, 2);
    store.stage(Storage::Participant(s.clone())).unwrap();
    store.sync().unwrap();
    drop(store);
    assert_eq!(inspect(dir.path()).unwrap(), Some(Storage::Participant(s)));
}
