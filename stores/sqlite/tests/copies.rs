//! Two live copies of one state (a notification extension beside the app, a second process, a
//! clone): their units can line up in epoch, but each carries its own random tag, and the store
//! keeps the tag of the last unit written. A unit of the other copy is refused as
//! `AnotherCopy`, the database untouched, and loading again continues.

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

/// The app and its extension each load the device; the extension writes first, so the app's
/// unit at the same epochs is refused, and the app, loaded again, reads what it missed.
#[test]
fn a_device_copy_whose_unit_lines_up_with_the_other_copys_is_refused() {
    let (mut rng, mut alice, mut bob, _dir) = two("store copies: device");
    let mut extension = bob.store.load(bob.last_epoch).unwrap().unwrap();
    let m1 = envelope(&alice.send(&mut rng, T0, &bob, b"m1"));
    let m2 = envelope(&alice.send(&mut rng, T0, &bob, b"m2"));

    // The extension reads m1 and writes.
    let read = extension.receive(T0, &m1).unwrap();
    assert_eq!(body(&read), b"m1");
    let unit = extension.take_changes(&mut ratchetry::os_rng());
    let epoch = unit.epoch();
    bob.last_epoch = bob.store.write(&unit).unwrap().epoch;
    let stored = all_rows(&bob.raw());

    // The app read m2 at the same epochs: its unit is the other copy's.
    assert_eq!(body(&bob.read(T0, &alice, &m2).unwrap()), b"m2");
    let app_unit = bob.device.take_changes(&mut ratchetry::os_rng());
    assert_eq!(app_unit.base_epoch(), Some(epoch - 1));
    // Its base epoch is behind the store: a gap, as before tags.
    assert!(matches!(
        bob.store.write(&app_unit),
        Err(StoreError::UnitGap {
            role: Role::Device,
            ..
        })
    ));
    // Its next unit lines up in epoch with the store, but not in tag.
    let m3 = envelope(&alice.send(&mut rng, T0, &bob, b"m3"));
    assert_eq!(body(&bob.read(T0, &alice, &m3).unwrap()), b"m3");
    let lined_up = bob.device.take_changes(&mut ratchetry::os_rng());
    assert_eq!(lined_up.base_epoch(), Some(epoch));
    assert_ne!(lined_up.base_tag(), Some(unit.tag()));
    match bob.store.write(&lined_up) {
        Err(
            e @ StoreError::AnotherCopy {
                role: Role::Device,
                epoch: at,
            },
        ) => {
            assert_eq!(at, epoch);
            assert!(e.to_string().contains("another copy"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The copy's next unit, even an empty one, starts past the store's epoch: refused too.
    assert!(matches!(
        bob.store
            .write(&bob.device.take_changes(&mut ratchetry::os_rng())),
        Err(StoreError::UnitGap { .. })
    ));
    assert_eq!(all_rows(&bob.raw()), stored, "the database is untouched");

    // The app loads again: m1 is read, m2 and m3 are read anew.
    bob.restart();
    assert!(
        bob.read(T0, &alice, &m1).is_err(),
        "m1 was read by the extension"
    );
    assert_eq!(body(&bob.read(T0, &alice, &m2).unwrap()), b"m2");
    assert_eq!(body(&bob.read(T0, &alice, &m3).unwrap()), b"m3");
    bob.persist();
    let loaded = bob.store.load(bob.last_epoch).unwrap().unwrap();
    assert_eq!(*loaded.to_bytes(), *bob.device.to_bytes());
}

/// The same for the primary: two copies of the phone's primary, each inviting, at the same
/// epochs.
#[test]
fn a_primary_copy_whose_unit_lines_up_with_the_other_copys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label("store copies: primary");
    let mut bob = Person::new(&mut rng, dir.path(), "bob");
    let mut other = bob.store.load_primary(bob.primary_epoch).unwrap().unwrap();
    bob.primary.invite(&mut rng, T0).unwrap();
    bob.persist_primary();
    let stored = all_rows(&bob.raw());
    other.invite(&mut rng, T0).unwrap();
    let unit = other.take_changes(&mut ratchetry::os_rng());
    assert_eq!(unit.base_epoch(), Some(bob.primary_epoch - 1));
    assert!(matches!(
        bob.store.write_primary(&unit),
        Err(StoreError::UnitGap {
            role: Role::Primary,
            ..
        })
    ));
    other.renew(T0).unwrap();
    let lined_up = other.take_changes(&mut ratchetry::os_rng());
    assert_eq!(lined_up.base_epoch(), Some(bob.primary_epoch));
    assert!(matches!(
        bob.store.write_primary(&lined_up),
        Err(StoreError::AnotherCopy { role: Role::Primary, epoch }) if epoch == bob.primary_epoch
    ));
    assert_eq!(all_rows(&bob.raw()), stored, "the database is untouched");
    // The copy that wrote goes on.
    bob.primary.renew(T0).unwrap();
    bob.persist_primary();
    let store = SqliteStore::open(&bob.path, bob.key.clone()).unwrap();
    let loaded = store.load_primary(bob.primary_epoch).unwrap().unwrap();
    assert_eq!(*loaded.to_bytes(), *bob.primary.to_bytes());
}

/// A unit that replaces all, of a device loaded from bytes of what the store holds, is written
/// (it starts from the stored epoch and tag), and the next unit chains from its tag.
#[test]
fn a_unit_that_replaces_all_sets_the_tag_the_next_unit_chains_from() {
    let (mut rng, mut alice, mut bob, _dir) = two("store copies: replace all");
    let mut whole = ratchetry::fanout::Device::from_bytes(&bob.device.to_bytes()).unwrap();
    let unit = whole.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    bob.last_epoch = bob.store.write(&unit).unwrap().epoch;
    // The device held before is now the other copy.
    let m = envelope(&alice.send(&mut rng, T0, &bob, b"m"));
    assert_eq!(body(&bob.read(T0, &alice, &m).unwrap()), b"m");
    assert!(matches!(
        bob.store
            .write(&bob.device.take_changes(&mut ratchetry::os_rng())),
        Err(StoreError::AnotherCopy { .. })
    ));
    // The copy that replaced all goes on from its tag.
    assert_eq!(body(&whole.receive(T0, &m).unwrap()), b"m");
    let next = whole.take_changes(&mut ratchetry::os_rng());
    assert_eq!(next.base_tag(), Some(unit.tag()));
    bob.last_epoch = bob.store.write(&next).unwrap().epoch;
}

/// Into a store that holds no device, a device loaded from bytes is written whole; a second
/// copy loaded from the same bytes then no longer starts from what is stored, and is refused
/// with nothing written. A device restored from a backup names no base: it is written over
/// whatever is stored.
#[test]
fn copies_loaded_from_bytes_into_an_empty_store_the_first_wins_and_a_restore_replaces() {
    let (_, _, bob, dir) = two("store copies: loaded into an empty store");
    let bytes = bob.device.to_bytes();
    let mut fresh = SqliteStore::open(
        dir.path().join("fresh.db"),
        ratchetry::persist::StorageKey::from_bytes([0x42; 32]),
    )
    .unwrap();
    let mut first = ratchetry::fanout::Device::from_bytes(&bytes).unwrap();
    let mut second = ratchetry::fanout::Device::from_bytes(&bytes).unwrap();
    let unit = first.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    assert_eq!(unit.base_epoch(), Some(bob.device.state_epoch()));
    assert_eq!(fresh.write(&unit).unwrap().epoch, bob.device.state_epoch());
    let rows = all_rows(fresh.connection());
    assert!(matches!(
        fresh.write(&second.take_changes(&mut ratchetry::os_rng())),
        Err(StoreError::AnotherCopy { role: Role::Device, epoch }) if epoch == unit.epoch()
    ));
    assert_eq!(all_rows(fresh.connection()), rows);
    let loaded = fresh.load(unit.epoch()).unwrap().unwrap();
    assert_eq!(*loaded.to_bytes(), *first.to_bytes());
    // Restored from the same bytes: no base, written over the first copy's state.
    let mut restored = ratchetry::fanout::Device::restore_from_backup(&bytes, T0).unwrap();
    let whole = restored.take_changes(&mut ratchetry::os_rng());
    assert_eq!((whole.base_epoch(), whole.base_tag()), (None, None));
    fresh.write(&whole).unwrap();
    let loaded = fresh.load(whole.epoch()).unwrap().unwrap();
    assert_eq!(*loaded.to_bytes(), *restored.to_bytes());
}
