//! A unit that was never written (its transaction failed, and the app went on with the state in
//! memory) leaves a gap: the next unit starts from an epoch the store does not hold, and is
//! refused as `UnitGap` with the database untouched. Loading from the store again continues.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod support;

use ratchetry::testing::SeededRng;
use ratchetry_sqlite::{Role, SqliteStore, StoreError};
use support::{Person, T0, all_rows, body, envelope, two};

#[test]
fn a_device_unit_after_one_never_written_is_refused_and_a_reload_continues() {
    let (mut rng, mut alice, mut bob, _dir) = two("store gap: device");
    // Op 1: read, unit written.
    let first = envelope(&alice.send(&mut rng, T0, &bob, b"one"));
    assert_eq!(bob.receive(T0, &alice, &first), b"one");
    let stored = all_rows(&bob.raw());

    // Op 2: read; its transaction fails, so its unit is never written (nor the envelope
    // acknowledged). The app carries on with the device in memory.
    let second = envelope(&alice.send(&mut rng, T0, &bob, b"two"));
    assert_eq!(body(&bob.read(T0, &alice, &second).unwrap()), b"two");
    let lost = bob.device.take_changes(&mut ratchetry::os_rng());
    assert_eq!(lost.base_epoch(), Some(bob.last_epoch));

    // Op 3: its unit starts where the lost one ended, not where the store is.
    let third = envelope(&alice.send(&mut rng, T0, &bob, b"three"));
    assert_eq!(body(&bob.read(T0, &alice, &third).unwrap()), b"three");
    let unit = bob.device.take_changes(&mut ratchetry::os_rng());
    assert_eq!(unit.base_epoch(), Some(lost.epoch()));
    let refused = bob.store.write(&unit);
    match &refused {
        Err(StoreError::UnitGap {
            role: Role::Device,
            stored_epoch,
            base_epoch,
        }) => assert_eq!((*stored_epoch, *base_epoch), (bob.last_epoch, lost.epoch())),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refused.unwrap_err().to_string(),
        format!(
            "the device unit starts from epoch {}, but the store holds epoch {}: reload the state from the store",
            lost.epoch(),
            bob.last_epoch
        )
    );
    // Nor does an empty unit pass for written: the store still lacks the lost one.
    let empty = bob.device.take_changes(&mut ratchetry::os_rng());
    assert!(empty.is_empty());
    assert!(matches!(
        bob.store.write(&empty),
        Err(StoreError::UnitGap { .. })
    ));
    assert_eq!(all_rows(&bob.raw()), stored, "the database is untouched");

    // The way on: load from the store and redo. The relay delivers both again.
    bob.restart();
    assert_eq!(bob.device.state_epoch(), bob.last_epoch);
    assert_eq!(bob.receive(T0, &alice, &second), b"two");
    assert_eq!(bob.receive(T0, &alice, &third), b"three");
    // Both are recorded now: read again, they are duplicates.
    assert!(bob.read(T0, &alice, &second).is_err());
    bob.restart();
    assert!(bob.read(T0, &alice, &third).is_err());
    let answer = envelope(&bob.send(&mut rng, T0, &alice, b"after the gap"));
    assert_eq!(alice.receive(T0, &bob, &answer), b"after the gap");
}

#[test]
fn the_unit_that_failed_written_again_closes_the_gap() {
    let (mut rng, mut alice, mut bob, _dir) = two("store gap: written again");
    let first = envelope(&alice.send(&mut rng, T0, &bob, b"one"));
    bob.read(T0, &alice, &first).unwrap();
    let failed = bob.device.take_changes(&mut ratchetry::os_rng());
    let second = envelope(&alice.send(&mut rng, T0, &bob, b"two"));
    bob.read(T0, &alice, &second).unwrap();
    let next = bob.device.take_changes(&mut ratchetry::os_rng());
    // The app still holds the failed unit: writing it first, then the next, is the chain.
    bob.last_epoch = bob.store.write(&failed).unwrap().epoch;
    bob.last_epoch = bob.store.write(&next).unwrap().epoch;
    let memory = bob.device.to_bytes();
    bob.restart();
    assert_eq!(*bob.device.to_bytes(), *memory);
    // A unit written twice no longer starts from the stored epoch: the store holds it already.
    match bob.store.write(&next) {
        Err(StoreError::UnitGap {
            stored_epoch,
            base_epoch,
            ..
        }) => assert!(base_epoch < stored_epoch),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_primary_unit_after_one_never_written_is_refused_and_a_reload_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label("store gap: primary");
    let mut bob = Person::new(&mut rng, dir.path(), "bob");
    // Op 1: an invitation, written.
    bob.primary.invite(&mut rng, T0).unwrap();
    bob.persist_primary();
    let stored = all_rows(&bob.raw());
    let written = bob.primary.to_bytes();

    // Op 2: another invitation, whose unit is lost.
    bob.primary.invite(&mut rng, T0).unwrap();
    let lost = bob.primary.take_changes(&mut ratchetry::os_rng());
    assert_eq!(lost.base_epoch(), Some(bob.primary_epoch));

    // Op 3: a renewal, written on top: refused.
    bob.primary.renew(T0).unwrap();
    let unit = bob.primary.take_changes(&mut ratchetry::os_rng());
    assert_eq!(unit.base_epoch(), Some(lost.epoch()));
    match bob.store.write_primary(&unit) {
        Err(StoreError::UnitGap {
            role: Role::Primary,
            stored_epoch,
            base_epoch,
        }) => assert_eq!(
            (stored_epoch, base_epoch),
            (bob.primary_epoch, lost.epoch())
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bob.store
            .write_primary(&bob.primary.take_changes(&mut ratchetry::os_rng())),
        Err(StoreError::UnitGap { .. })
    ));
    assert_eq!(all_rows(&bob.raw()), stored, "the database is untouched");

    // Reloaded, the primary is the one written, and goes on.
    let store = SqliteStore::open(&bob.path, bob.key.clone()).unwrap();
    bob.primary = store.load_primary(bob.primary_epoch).unwrap().unwrap();
    assert_eq!(*bob.primary.to_bytes(), *written);
    bob.primary.renew(T0).unwrap();
    bob.persist_primary();
    let loaded = store.load_primary(bob.primary_epoch).unwrap().unwrap();
    assert_eq!(*loaded.to_bytes(), *bob.primary.to_bytes());
    // And the device of the same database was never in question.
    assert!(matches!(
        store.load(bob.last_epoch),
        Ok(Some(d)) if *d.to_bytes() == *bob.device.to_bytes()
    ));
}

#[test]
fn a_stale_primary_loaded_as_restored_writes_from_the_stored_epoch() {
    // Restored as stale from its records, the primary's epoch jumps above the one the app
    // kept; its unit (the meta record) still starts from the epoch it was loaded at, which
    // is the one stored.
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label("store gap: stale primary");
    let mut bob = Person::new(&mut rng, dir.path(), "bob");
    let raw = bob.raw();
    let copy = all_rows(&raw);
    let copy_epoch = bob.primary_epoch;
    bob.primary.renew(T0).unwrap();
    bob.persist_primary();
    support::put_back(&raw, &copy);
    let mut store = SqliteStore::open(&bob.path, bob.key.clone()).unwrap();
    let mut restored = store.load_primary_restored(bob.primary_epoch).unwrap();
    let unit = restored.take_changes(&mut ratchetry::os_rng());
    assert!(!unit.replaces_all());
    assert_eq!(unit.base_epoch(), Some(copy_epoch));
    assert!(unit.epoch() > bob.primary_epoch);
    let epoch = store.write_primary(&unit).unwrap().epoch;
    assert_eq!(
        *store.load_primary(epoch).unwrap().unwrap().to_bytes(),
        *restored.to_bytes()
    );
}

#[test]
fn a_unit_that_replaces_all_needs_no_base() {
    // A device restored from its store as from a backup: its unit replaces every row, whatever
    // the store held.
    let (mut rng, mut alice, mut bob, _dir) = two("store gap: replaces all");
    let second = envelope(&alice.send(&mut rng, T0, &bob, b"lost"));
    bob.read(T0, &alice, &second).unwrap();
    let _lost = bob.device.take_changes(&mut ratchetry::os_rng());
    let mut restored = bob.store.load_restored(bob.last_epoch, T0).unwrap();
    let unit = restored.take_changes(&mut ratchetry::os_rng());
    assert_eq!(unit.base_epoch(), None);
    bob.last_epoch = bob.store.write(&unit).unwrap().epoch;
    bob.device = restored;
    // The next unit starts from it.
    let next = bob.device.take_changes(&mut ratchetry::os_rng());
    assert_eq!(next.base_epoch(), Some(bob.last_epoch));
    assert_eq!(bob.store.write(&next).unwrap().bytes, 0);
    assert_eq!(
        *bob.store.load(bob.last_epoch).unwrap().unwrap().to_bytes(),
        *bob.device.to_bytes()
    );
}
