//! The primary in the store as records (PROTOCOL.md 15.4): each unit written in one
//! transaction, every record sealed and counted in the summary like the device's, so one
//! primary record rolled back, deleted or put back is named; and a database of the previous
//! version, which held the primary as one blob, migrates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod support;

use std::path::Path;

use ratchetry::devices::{LinkConfirmation, LinkRequest, ListLimits, Primary, complete_link};
use ratchetry::persist::StorageKey;
use ratchetry::testing::SeededRng;
use ratchetry_sqlite::{RecordId, Role, SqliteStore, StoreError};
use support::{Person, T0, all_rows, put, stored};

const LIST: u8 = 0x83;
const INVITATION: u8 = 0x84;
const CONFIRMED: u8 = 0x86;

fn invitation_key(n: u64) -> Vec<u8> {
    [&[INVITATION][..], &n.to_be_bytes()].concat()
}

/// Bob, with his phone's database.
fn bob(label: &str) -> (Person, SeededRng, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label(label);
    let bob = Person::new(&mut rng, dir.path(), "bob");
    (bob, rng, dir)
}

/// An invitation answered and approved; the companion's confirmation.
fn approve(person: &mut Person, rng: &mut SeededRng) -> LinkConfirmation {
    let laptop = ratchetry::IdentityKeyPair::generate(rng);
    let invitation = person.primary.invite(rng, T0).unwrap();
    let approval = person
        .primary
        .approve(T0, &LinkRequest::new(&laptop, &invitation))
        .unwrap();
    complete_link(&laptop, &invitation, &approval, &ListLimits::default())
        .unwrap()
        .1
}

fn open(person: &Person) -> SqliteStore {
    SqliteStore::open(&person.path, person.key.clone()).unwrap()
}

/// The primary's rows: (key, sealed value).
fn primary_rows(db: &rusqlite::Connection) -> Vec<(Vec<u8>, Vec<u8>)> {
    all_rows(db)
        .into_iter()
        .filter(|(slot, _, _)| slot == "primary")
        .map(|(_, k, v)| (k, v))
        .collect()
}

#[test]
fn the_primary_goes_on_across_reloads_one_record_per_row() {
    let (mut bob, mut rng, _dir) = bob("store primary: reloads");
    let raw = bob.raw();
    let keys: Vec<Vec<u8>> = primary_rows(&raw).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [vec![0x81], vec![0x82], vec![LIST], vec![CONFIRMED]]);
    let confirmation = approve(&mut bob, &mut rng);
    bob.persist_primary();
    bob.primary.confirm(&confirmation).unwrap();
    bob.persist_primary();
    bob.primary.invite(&mut rng, T0).unwrap();
    // The invitation's unit writes its record and the counters: the list's row is untouched.
    let list_before = stored(&raw, "primary", &[LIST]).unwrap();
    let account_before = stored(&raw, "primary", &[0x81]).unwrap();
    bob.persist_primary();
    assert_eq!(stored(&raw, "primary", &[LIST]).unwrap(), list_before);
    assert_eq!(stored(&raw, "primary", &[0x81]).unwrap(), account_before);
    assert!(stored(&raw, "primary", &invitation_key(1)).is_some());

    let loaded = open(&bob).load_primary(bob.primary_epoch).unwrap().unwrap();
    assert!(!loaded.has_changes());
    assert_eq!(*loaded.to_bytes(), *bob.primary.to_bytes());
    // The device loads beside it, and the device's rows are not the primary's.
    assert!(bob.reload().unwrap().is_some());
    // A unit that replaces all deletes the rows the state no longer has.
    let mut whole = Primary::from_bytes(&bob.primary.to_bytes()).unwrap();
    whole.renew(T0).unwrap();
    bob.primary = whole;
    bob.persist_primary();
    // (The blob keeps the invitations' order, not their numbers: they are numbered from 0.)
    assert!(stored(&raw, "primary", &invitation_key(1)).is_none());
    assert!(stored(&raw, "primary", &invitation_key(0)).is_some());
    let loaded = open(&bob).load_primary(bob.primary_epoch).unwrap().unwrap();
    assert_eq!(*loaded.to_bytes(), *bob.primary.to_bytes());
}

#[test]
fn an_older_list_record_put_back_is_named() {
    let (mut bob, _rng, _dir) = bob("store primary: list rolled back");
    let raw = bob.raw();
    let old = stored(&raw, "primary", &[LIST]).unwrap();
    let old_epoch = bob.primary_epoch;
    bob.primary.renew(T0).unwrap();
    bob.persist_primary();
    put(&raw, "primary", &[LIST], &old);
    match open(&bob).load_primary(bob.primary_epoch) {
        Err(StoreError::RecordReplaced { record, sealed_at }) => {
            assert_eq!(
                (record, sealed_at),
                (RecordId::Primary(vec![LIST]), old_epoch)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_deleted_invitation_put_back_is_named() {
    let (mut bob, mut rng, _dir) = bob("store primary: invitation put back");
    let raw = bob.raw();
    let tablet = ratchetry::IdentityKeyPair::generate(&mut rng);
    let invitation = bob.primary.invite(&mut rng, T0).unwrap();
    bob.persist_primary();
    let key = invitation_key(0);
    let aside = stored(&raw, "primary", &key).unwrap();
    // The approval uses the invitation: its record is deleted…
    bob.primary
        .approve(T0, &LinkRequest::new(&tablet, &invitation))
        .unwrap();
    bob.persist_primary();
    assert!(stored(&raw, "primary", &key).is_none());
    // …and put back, it would answer a second request.
    put(&raw, "primary", &key, &aside);
    match open(&bob).load_primary(bob.primary_epoch) {
        Err(StoreError::RecordAdded(record)) => assert_eq!(record, RecordId::Primary(key)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_confirmed_set_rolled_back_is_named() {
    let (mut bob, mut rng, _dir) = bob("store primary: confirmed rolled back");
    let raw = bob.raw();
    let confirmation = approve(&mut bob, &mut rng);
    bob.persist_primary();
    // The confirmed set as Primary::new wrote it (empty, at epoch 0).
    let before = stored(&raw, "primary", &[CONFIRMED]).unwrap();
    bob.primary.confirm(&confirmation).unwrap();
    bob.persist_primary();
    put(&raw, "primary", &[CONFIRMED], &before);
    match open(&bob).load_primary(0) {
        Err(StoreError::RecordReplaced { record, sealed_at }) => {
            assert_eq!((record, sealed_at), (RecordId::Primary(vec![CONFIRMED]), 0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_deleted_primary_record_is_named() {
    let (mut bob, mut rng, _dir) = bob("store primary: record deleted");
    bob.primary.invite(&mut rng, T0).unwrap();
    bob.persist_primary();
    let raw = bob.raw();
    for key in [invitation_key(0), vec![LIST]] {
        let value = stored(&raw, "primary", &key).unwrap();
        raw.execute(
            "DELETE FROM ratchetry_rows WHERE slot = 'primary' AND key = ?1",
            [&key],
        )
        .unwrap();
        match open(&bob).load_primary(bob.primary_epoch) {
            Err(StoreError::RecordMissing(record)) => {
                assert_eq!(record, RecordId::Primary(key.clone()));
            }
            other => panic!("{other:?}"),
        }
        put(&raw, "primary", &key, &value);
    }
    assert!(open(&bob).load_primary(bob.primary_epoch).is_ok());
    // A primary record moved to the device's slot does not open there.
    let value = stored(&raw, "primary", &[LIST]).unwrap();
    put(&raw, "device", &[LIST], &value);
    assert!(matches!(
        open(&bob).load(0),
        Err(StoreError::RecordDoesNotOpen(RecordId::Device(key))) if key == [LIST]
    ));
}

#[test]
fn a_stale_primary_loads_as_restored_and_writes_its_counters() {
    let (mut bob, _rng, _dir) = bob("store primary: stale");
    let raw = bob.raw();
    let copy = all_rows(&raw);
    bob.primary.renew(T0).unwrap();
    bob.persist_primary();
    support::put_back(&raw, &copy);
    let store = open(&bob);
    assert!(matches!(
        store.load_primary(bob.primary_epoch),
        Err(StoreError::StaleSnapshot {
            role: Role::Primary,
            ..
        })
    ));
    let mut restored = store.load_primary_restored(bob.primary_epoch).unwrap();
    assert!(restored.needs_resync());
    assert_eq!(restored.state_epoch(), bob.primary_epoch + 1);
    let unit = restored.take_changes(&mut ratchetry::os_rng());
    assert_eq!(unit.records().len(), 1);
    let mut store = store;
    let epoch = store.write_primary(&unit).unwrap().epoch;
    assert!(store.load_primary(epoch).unwrap().unwrap().needs_resync());
    // Not stale: restored as from a backup all the same.
    let again = store.load_primary_restored(epoch).unwrap();
    assert!(again.needs_resync());
    assert_eq!(again.state_epoch(), epoch + 1);
}

/// The database the previous version wrote (tests/data/make_previous_store.rs): its storage key
/// and the epochs its app kept.
const PREVIOUS_KEY: [u8; 32] = [0x42; 32];
const PREVIOUS_PRIMARY_EPOCH: u64 = 6;

fn previous_store(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("previous.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/previous-store.db"),
        &path,
    )
    .unwrap();
    path
}

#[test]
fn a_primary_stored_as_one_blob_by_the_previous_version_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let path = previous_store(dir.path());
    let expected = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/previous-store.primary"),
    )
    .unwrap();
    let key = StorageKey::from_bytes(PREVIOUS_KEY);
    let mut store = SqliteStore::open(&path, key.clone()).unwrap();
    let rows = primary_rows(store.connection());
    assert_eq!(rows.len(), 1);
    assert!(rows[0].0.is_empty(), "the previous version's one blob row");
    // It loads, with a pending invitation, an unconfirmed approval and a confirmed companion.
    let mut primary = store.load_primary(PREVIOUS_PRIMARY_EPOCH).unwrap().unwrap();
    // The blob is of the state format before tags (2): the same state, written as format 3
    // with the tag of 16 zero bytes, which its first unit starts from.
    let mut current = expected.clone();
    current[0] = 3;
    current.extend_from_slice(&[0; 16]);
    assert_eq!(*primary.to_bytes(), current);
    assert!(primary.is_confirmed(ratchetry::devices::DeviceId(2)));
    // A unit that changes only part of it is refused while the blob is there.
    let mut partial = Primary::from_bytes(&expected).unwrap();
    let _ = partial.take_changes(&mut ratchetry::os_rng());
    partial.renew(T0).unwrap();
    assert!(matches!(
        store.write_primary(&partial.take_changes(&mut ratchetry::os_rng())),
        Err(StoreError::NotStored(Role::Primary))
    ));
    // Its first unit holds every record and replaces the blob.
    let unit = primary.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    let epoch = store.write_primary(&unit).unwrap().epoch;
    assert_eq!(epoch, PREVIOUS_PRIMARY_EPOCH);
    let keys: Vec<Vec<u8>> = primary_rows(store.connection())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(keys.iter().all(|k| !k.is_empty()), "the blob row is gone");
    assert_eq!(keys.len(), unit.records().len());
    let store = SqliteStore::open(&path, key).unwrap();
    let loaded = store.load_primary(epoch).unwrap().unwrap();
    // The same state, at the tag of the unit that replaced the blob.
    let tag_at = current.len() - 16;
    current[tag_at..].copy_from_slice(&unit.tag().to_bytes());
    assert_eq!(*loaded.to_bytes(), current);
    assert!(!loaded.has_changes());
    // The device stored beside it loads as it was.
    assert!(store.load(0).unwrap().is_some());
}

#[test]
fn the_previous_blob_is_checked_like_any_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = previous_store(dir.path());
    let key = StorageKey::from_bytes(PREVIOUS_KEY);
    let store = SqliteStore::open(&path, key.clone()).unwrap();
    // Stale against the kept epoch, and restored from it as from a backup.
    assert!(matches!(
        store.load_primary(PREVIOUS_PRIMARY_EPOCH + 1),
        Err(StoreError::StaleSnapshot { .. })
    ));
    let restored = store
        .load_primary_restored(PREVIOUS_PRIMARY_EPOCH + 1)
        .unwrap();
    assert!(restored.needs_resync());
    assert_eq!(restored.state_epoch(), PREVIOUS_PRIMARY_EPOCH + 2);
    let restored = store.load_primary_restored(0).unwrap();
    assert!(restored.needs_resync());
    assert_eq!(restored.state_epoch(), PREVIOUS_PRIMARY_EPOCH + 1);
    // Deleted, it is named.
    store
        .connection()
        .execute(
            "DELETE FROM ratchetry_rows WHERE slot = 'primary' AND key = x''",
            [],
        )
        .unwrap();
    assert!(matches!(
        store.load_primary(0),
        Err(StoreError::RecordMissing(RecordId::PrimaryBlob))
    ));
}
