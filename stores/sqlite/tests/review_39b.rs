//! Review 39b: the store's gap check (`Changes::base_epoch`, `StoreError::UnitGap`) attacked
//! with sequences of writes: units lost, written twice, written out of order, two in-memory
//! copies of one device writing, restores, a saturated epoch, a stale `last_epoch`, and app
//! transactions. Passing tests pin what holds; the two tests once ignored as known limits (two
//! copies, the saturated epoch) pass since units chain by tags as well as epochs (stop 40).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod support;

use ratchetry::Timestamp;
use ratchetry::devices::PrimaryChanges;
use ratchetry::fanout::{Device, StateChanges};
use ratchetry::testing::SeededRng;
use ratchetry_sqlite::{Role, SqliteStore, StoreError};
use support::{Person, T0, all_rows, from_alice, read_with, two};

/// Whether `result` is a `UnitGap` refusal of `role` naming these epochs.
fn is_gap(
    result: &Result<ratchetry_sqlite::Written, StoreError>,
    role: Role,
    stored: u64,
    base: u64,
) -> bool {
    matches!(
        result,
        Err(StoreError::UnitGap { role: r, stored_epoch, base_epoch })
            if *r == role && (*stored_epoch, *base_epoch) == (stored, base)
    )
}

// ---------------------------------------------------------------------------------------------
// Bugs
// ---------------------------------------------------------------------------------------------

/// FIXED (stop 40; was a known limit, medium): two live copies of one device, loaded from one
/// database, went apart once their epochs lined up, and a unit of one copy was written on top
/// of the other copy's, leaving records that never existed together.
///
/// Sequence: the app holds Bob's device `A` (stored at epoch `E`) and a second copy `B` loaded
/// from the same database (a notification extension, a second process, a reload while the old
/// object lives on). `A` reads m1 and writes its unit (`E → E+1`). `B` reads m2; its unit
/// (`E → E+1`) is refused (`UnitGap`) and the error is not acted on. `B` reads m3: its unit
/// starts from `E+1`, the epoch the store holds (from `A`). Units now chain by random tags as
/// well as epochs, so the store, which holds `A`'s tag, refuses it as `AnotherCopy`, writing
/// nothing; `B` reloads, redoes its reads, and nothing is lost.
#[test]
fn a_second_copy_that_lost_a_unit_cannot_chain_onto_the_other_copys_unit() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: two copies interleave");
    let e = bob.last_epoch;
    // Copy B: the same device, loaded again from the database.
    let mut copy = bob.store.load(bob.last_epoch).unwrap().unwrap();
    assert_eq!(*copy.to_bytes(), *bob.device.to_bytes());

    // A reads m1 and writes it.
    let m1 = from_alice(&mut rng, &mut alice, &bob, b"m1");
    assert_eq!(bob.receive(T0, &alice, &m1), b"m1");
    assert_eq!(bob.last_epoch, e + 1);

    // B reads m2; its unit is never written.
    let m2 = from_alice(&mut rng, &mut alice, &bob, b"m2");
    assert_eq!(read_with(&mut copy, &alice, &m2).unwrap(), b"m2");
    let lost = copy.take_changes(&mut ratchetry::os_rng());
    assert_eq!((lost.base_epoch(), lost.epoch()), (Some(e), e + 1));
    assert!(is_gap(&bob.store.write(&lost), Role::Device, e + 1, e));

    // B reads m3: its unit starts from e + 1, the epoch A's unit left in the store.
    let m3 = from_alice(&mut rng, &mut alice, &bob, b"m3");
    assert_eq!(read_with(&mut copy, &alice, &m3).unwrap(), b"m3");
    let next = copy.take_changes(&mut ratchetry::os_rng());
    assert_eq!((next.base_epoch(), next.epoch()), (Some(e + 1), e + 2));
    let before = all_rows(&bob.raw());
    let written = bob.store.write(&next);
    assert!(
        matches!(written, Err(StoreError::AnotherCopy { role: Role::Device, epoch }) if epoch == e + 1),
        "{written:?}"
    );
    assert_eq!(all_rows(&bob.raw()), before, "nothing written");

    // B reloads: the store holds A's state, and B redoes its reads.
    let mut copy = bob.store.load(bob.last_epoch).unwrap().unwrap();
    assert_eq!(*copy.to_bytes(), *bob.device.to_bytes());
    assert_eq!(read_with(&mut copy, &alice, &m2).unwrap(), b"m2");
    assert_eq!(read_with(&mut copy, &alice, &m3).unwrap(), b"m3");
    assert!(
        read_with(&mut copy, &alice, &m1).is_err(),
        "m1 is a duplicate"
    );
    let redo = copy.take_changes(&mut ratchetry::os_rng());
    bob.last_epoch = bob.store.write(&redo).unwrap().epoch;
    // A is now the stale copy: its next unit is refused in turn.
    let m4 = from_alice(&mut rng, &mut alice, &bob, b"m4");
    assert_eq!(read_with(&mut bob.device, &alice, &m4).unwrap(), b"m4");
    let stale = bob.device.take_changes(&mut ratchetry::os_rng());
    assert!(bob.store.write(&stale).is_err());
    bob.restart();
    assert_eq!(*bob.device.to_bytes(), *copy.to_bytes());
    for m in [&m1, &m2, &m3] {
        assert!(bob.read(T0, &alice, m).is_err(), "each read once");
    }
}

/// FIXED (stop 40; was BUG (low)): at the top of the epoch range the epochs stop moving, and a
/// lost unit was no longer detected. The unit's tag still moves, so it is (`AnotherCopy`: the
/// store's tag is not the unit's base tag).
///
/// Sequence: `Device::restore(bytes, u64::MAX, now)` (a `last_epoch` read back as `u64::MAX`,
/// e.g. from a damaged or hostile keystore value, or `u64::MAX - 1` honestly kept) gives a
/// device at epoch `u64::MAX`; its replace-all unit is written. Every later operation bumps
/// with `saturating_add`, so each unit starts *and ends* at `u64::MAX` while holding records.
/// A unit lost in between leaves the store at `u64::MAX`, the next unit's base: it is written,
/// `EpochWentBack` cannot fire either, and the store holds a state that never existed (here:
/// prekeys generated — and uploaded — by the lost unit are missing, beside the later unit's
/// records).
///
/// Impact: the gap check (and the epoch's monotonicity guarantee) is silently void for a
/// device at the saturated epoch. Reaching it needs an absurd `last_epoch`, so the severity is
/// low, but nothing refuses it.
///
/// Fix: never let a non-empty unit end at its base: make `bump` fail (an operation returns an
/// error such as `EpochExhausted` instead of saturating), and have `restore` /
/// `restore_from_records` refuse a `last_epoch` that leaves no room (`u64::MAX - 1` or above);
/// the store could also refuse a non-empty unit whose epoch equals its base once the library
/// guarantees it never makes one.
#[test]
fn at_the_saturated_epoch_a_lost_unit_is_still_detected() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: saturated epoch");
    let (mut top, stale) = Device::restore(&bob.device.to_bytes(), u64::MAX, T0).unwrap();
    assert!(stale);
    assert_eq!(top.state_epoch(), u64::MAX);
    let whole = top.take_changes(&mut ratchetry::os_rng());
    assert!(whole.replaces_all());
    assert_eq!(bob.store.write(&whole).unwrap().epoch, u64::MAX);

    // A unit with records, never written: one-time prekeys made (and uploaded by the app).
    let keys = top.generate_one_time_prekeys(&mut rng, T0, 3);
    drop(keys);
    let lost = top.take_changes(&mut ratchetry::os_rng());
    assert!(!lost.is_empty());
    assert_eq!(
        (lost.base_epoch(), lost.epoch()),
        (Some(u64::MAX), u64::MAX)
    );

    // The next unit starts from u64::MAX, which is what the store holds.
    let m = from_alice(&mut rng, &mut alice, &bob, b"after the top");
    assert_eq!(read_with(&mut top, &alice, &m).unwrap(), b"after the top");
    let next = top.take_changes(&mut ratchetry::os_rng());
    assert!(!next.is_empty());
    let written = bob.store.write(&next);
    assert!(
        matches!(
            written,
            Err(StoreError::AnotherCopy {
                role: Role::Device,
                epoch: u64::MAX
            })
        ),
        "written on top of a lost unit: {written:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties that hold
// ---------------------------------------------------------------------------------------------

/// Units written out of order, twice, or after a later one are each refused with a typed
/// error and the database untouched; writing them in chain order then succeeds and loads the
/// state in memory. Pins which error each case gets: a unit whose epoch is below the stored
/// one is `EpochWentBack` (checked first), one that ends at or above it but starts elsewhere
/// is `UnitGap` — the `UnitGap` docs' "below it ... written twice" case is split between the
/// two variants.
#[test]
fn units_out_of_order_or_twice_are_refused_and_leave_the_database_untouched() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: out of order");
    let e = bob.last_epoch;
    let m1 = from_alice(&mut rng, &mut alice, &bob, b"one");
    bob.read(T0, &alice, &m1).unwrap();
    let u1 = bob.device.take_changes(&mut ratchetry::os_rng());
    let m2 = from_alice(&mut rng, &mut alice, &bob, b"two");
    bob.read(T0, &alice, &m2).unwrap();
    let u2 = bob.device.take_changes(&mut ratchetry::os_rng());
    let empty = bob.device.take_changes(&mut ratchetry::os_rng());
    assert!(empty.is_empty());
    assert_eq!((u1.base_epoch(), u1.epoch()), (Some(e), e + 1));
    assert_eq!((u2.base_epoch(), u2.epoch()), (Some(e + 1), e + 2));
    assert_eq!((empty.base_epoch(), empty.epoch()), (Some(e + 2), e + 2));

    let rows = all_rows(&bob.raw());
    // The second before the first, and the empty unit after both: gaps.
    assert!(is_gap(&bob.store.write(&u2), Role::Device, e, e + 1));
    assert!(is_gap(&bob.store.write(&empty), Role::Device, e, e + 2));
    assert_eq!(all_rows(&bob.raw()), rows);

    bob.store.write(&u1).unwrap();
    let rows = all_rows(&bob.raw());
    // The first written twice: it ends at the stored epoch, starts below it.
    assert!(is_gap(&bob.store.write(&u1), Role::Device, e + 1, e));
    assert_eq!(all_rows(&bob.raw()), rows);

    bob.last_epoch = bob.store.write(&u2).unwrap().epoch;
    let rows = all_rows(&bob.raw());
    // The first after the second: its epoch is below the stored one.
    assert!(matches!(
        bob.store.write(&u1),
        Err(StoreError::EpochWentBack { role: Role::Device, stored_epoch, epoch })
            if (stored_epoch, epoch) == (e + 2, e + 1)
    ));
    assert!(is_gap(&bob.store.write(&u2), Role::Device, e + 2, e + 1));
    assert_eq!(all_rows(&bob.raw()), rows);
    // The empty unit now starts at the stored epoch: written (nothing).
    assert_eq!(bob.store.write(&empty).unwrap().bytes, 0);
    assert_eq!(all_rows(&bob.raw()), rows);

    let memory = bob.device.to_bytes();
    bob.restart();
    assert_eq!(*bob.device.to_bytes(), *memory);
}

/// An empty unit taken before a unit that was written is `EpochWentBack`, not `UnitGap`: its
/// epoch is below the stored one. An empty unit written to a store that holds no device is
/// `NotStored` (before the change it wrote nothing and returned `Ok`): the crate docs' "an
/// empty unit writes nothing" holds only when it chains. Both are typed and write nothing.
#[test]
fn an_empty_unit_that_does_not_chain_is_refused_by_its_own_variant() {
    let (mut rng, mut alice, mut bob, dir) = two("review 39b: empty units");
    let e = bob.last_epoch;
    let stale_empty = bob.device.take_changes(&mut ratchetry::os_rng());
    assert_eq!(
        (stale_empty.base_epoch(), stale_empty.epoch()),
        (Some(e), e)
    );
    let m = from_alice(&mut rng, &mut alice, &bob, b"one");
    bob.receive(T0, &alice, &m);
    let rows = all_rows(&bob.raw());
    assert!(matches!(
        bob.store.write(&stale_empty),
        Err(StoreError::EpochWentBack { .. })
    ));
    assert_eq!(all_rows(&bob.raw()), rows);

    // A fresh database: the default unit (empty, starting from 0) is not stored.
    let key = ratchetry::persist::StorageKey::generate(&mut rng);
    let mut fresh = SqliteStore::open(dir.path().join("fresh.db"), key).unwrap();
    assert!(matches!(
        fresh.write(&StateChanges::default()),
        Err(StoreError::NotStored(Role::Device))
    ));
    assert!(matches!(
        fresh.write_primary(&PrimaryChanges::default()),
        Err(StoreError::NotStored(Role::Primary))
    ));
    assert!(fresh.load(0).unwrap().is_none());
    assert!(fresh.load_primary(0).unwrap().is_none());
}

/// Two copies loaded from the store, the honest way: the copy whose unit is refused
/// (`UnitGap`, the other copy's unit stored) is dropped and loaded again, redoes its
/// operation (the relay delivers again what it did not acknowledge), and both messages are
/// read once, with the store and memory agreeing. Also: a clone taken before a take writes
/// the same unit, and the second write of it is refused.
#[test]
fn a_second_copy_refused_reloads_and_nothing_is_lost() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: two copies honest");
    let e = bob.last_epoch;
    let mut copy = bob.store.load(e).unwrap().unwrap();
    let m1 = from_alice(&mut rng, &mut alice, &bob, b"m1");
    let m2 = from_alice(&mut rng, &mut alice, &bob, b"m2");
    assert_eq!(bob.receive(T0, &alice, &m1), b"m1");
    assert_eq!(read_with(&mut copy, &alice, &m2).unwrap(), b"m2");
    let refused = bob
        .store
        .write(&copy.take_changes(&mut ratchetry::os_rng()));
    assert!(is_gap(&refused, Role::Device, e + 1, e));
    // The app drops the copy, loads again, and redoes.
    let mut copy = bob.store.load(bob.last_epoch).unwrap().unwrap();
    assert_eq!(read_with(&mut copy, &alice, &m2).unwrap(), b"m2");
    bob.last_epoch = bob
        .store
        .write(&copy.take_changes(&mut ratchetry::os_rng()))
        .unwrap()
        .epoch;
    assert!(
        read_with(&mut copy, &alice, &m1).is_err(),
        "m1 is a duplicate"
    );
    bob.restart();
    assert_eq!(*bob.device.to_bytes(), *copy.to_bytes());
    assert!(bob.read(T0, &alice, &m1).is_err());
    assert!(bob.read(T0, &alice, &m2).is_err());

    // A clone taken with changes pending yields the same records under another tag: only the
    // first of the two units is written.
    let m3 = from_alice(&mut rng, &mut alice, &bob, b"m3");
    bob.read(T0, &alice, &m3).unwrap();
    let mut clone = bob.device.clone();
    let unit = bob.device.take_changes(&mut ratchetry::os_rng());
    let cloned = clone.take_changes(&mut ratchetry::os_rng());
    assert_ne!(cloned.tag(), unit.tag());
    bob.last_epoch = bob.store.write(&unit).unwrap().epoch;
    assert!(is_gap(
        &bob.store.write(&cloned),
        Role::Device,
        bob.last_epoch,
        bob.last_epoch - 1
    ));
    assert!(is_gap(
        &bob.store.write(&unit),
        Role::Device,
        bob.last_epoch,
        bob.last_epoch - 1
    ));
}

/// Units taken one after the other can be written in one app transaction (the transaction
/// sees the epoch its first write left); a unit refused inside the transaction wrote nothing,
/// the transaction goes on, and after the right order it commits; a transaction dropped after
/// a write leaves the database as it was and the next write is refused as the gap it is.
#[test]
fn units_chain_inside_one_transaction_and_a_refusal_there_writes_nothing() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: transaction");
    let e = bob.last_epoch;
    let m1 = from_alice(&mut rng, &mut alice, &bob, b"one");
    bob.read(T0, &alice, &m1).unwrap();
    let u1 = bob.device.take_changes(&mut ratchetry::os_rng());
    let m2 = from_alice(&mut rng, &mut alice, &bob, b"two");
    bob.read(T0, &alice, &m2).unwrap();
    let u2 = bob.device.take_changes(&mut ratchetry::os_rng());
    let rows = all_rows(&bob.raw());

    // Written in a transaction that is then dropped: nothing stays.
    {
        let mut tx = bob.store.transaction().unwrap();
        tx.write(&u1).unwrap();
    }
    assert_eq!(all_rows(&bob.raw()), rows);
    assert!(is_gap(&bob.store.write(&u2), Role::Device, e, e + 1));

    let mut tx = bob.store.transaction().unwrap();
    assert!(is_gap(&tx.write(&u2), Role::Device, e, e + 1));
    tx.write(&u1).unwrap();
    assert!(is_gap(&tx.write(&u1), Role::Device, e + 1, e));
    bob.last_epoch = tx.write(&u2).unwrap().epoch;
    tx.commit().unwrap();
    let memory = bob.device.to_bytes();
    bob.restart();
    assert_eq!(*bob.device.to_bytes(), *memory);
}

/// The restores of the store: `load_restored` (stored epoch current or stale) yields a unit
/// that replaces all and is written whatever the store holds; a device restored that way whose
/// first unit is lost has its next unit refused (the whole-state unit's epoch is the base).
/// A store reopened with a stale `last_epoch` (lower than the stored one) loads, and its next
/// unit chains from the stored epoch, not from `last_epoch`.
#[test]
fn restores_of_the_store_and_a_stale_last_epoch_chain_from_what_is_stored() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: restores");
    let e = bob.last_epoch;
    // A stale last_epoch: the app kept an older one.
    let mut loaded = bob.store.load(e - 1).unwrap().unwrap();
    let m = from_alice(&mut rng, &mut alice, &bob, b"one");
    read_with(&mut loaded, &alice, &m).unwrap();
    let unit = loaded.take_changes(&mut ratchetry::os_rng());
    assert_eq!(unit.base_epoch(), Some(e));
    bob.last_epoch = bob.store.write(&unit).unwrap().epoch;
    bob.device = loaded;

    // Current store, restored as from a backup: replaces all.
    let mut restored = bob.store.load_restored(bob.last_epoch, T0).unwrap();
    let whole = restored.take_changes(&mut ratchetry::os_rng());
    assert!(whole.replaces_all());
    assert_eq!(whole.epoch(), bob.last_epoch + 1);
    // Its whole unit lost, its next is refused as a gap.
    let m = from_alice(&mut rng, &mut alice, &bob, b"two");
    read_with(&mut restored, &alice, &m).unwrap();
    let next = restored.take_changes(&mut ratchetry::os_rng());
    let rows = all_rows(&bob.raw());
    assert!(is_gap(
        &bob.store.write(&next),
        Role::Device,
        bob.last_epoch,
        whole.epoch()
    ));
    assert_eq!(all_rows(&bob.raw()), rows);
    // Written in order, both pass.
    bob.store.write(&whole).unwrap();
    bob.last_epoch = bob.store.write(&next).unwrap().epoch;
    assert_eq!(
        *bob.store.load(bob.last_epoch).unwrap().unwrap().to_bytes(),
        *restored.to_bytes()
    );

    // Stale store (the app kept a later epoch): restored above it, replaces all.
    let mut stale = bob.store.load_restored(bob.last_epoch + 10, T0).unwrap();
    let whole = stale.take_changes(&mut ratchetry::os_rng());
    assert!(whole.replaces_all());
    assert_eq!(whole.epoch(), bob.last_epoch + 11);
    bob.last_epoch = bob.store.write(&whole).unwrap().epoch;
    let empty = stale.take_changes(&mut ratchetry::os_rng());
    assert_eq!(empty.base_epoch(), Some(bob.last_epoch));
    assert_eq!(bob.store.write(&empty).unwrap().bytes, 0);
}

/// Was a documented limit (a whole-state unit was written whatever was stored, unless its
/// epoch was below): a unit that replaces all of a state loaded from bytes now starts from the
/// epoch and tag they hold. So a whole-state copy (`Device::from_bytes` of a backup,
/// `Device::restore` of a snapshot it judged current) that made one operation after another
/// copy wrote is refused, nothing written, and the other copy's acknowledged message stays
/// recorded as read. Loaded again from the store, the copy goes on; a whole-state copy that
/// is behind the store by a unit is `EpochWentBack`.
#[test]
fn a_whole_state_unit_of_another_copy_is_refused_once_the_store_moved_on() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: whole copy");
    let e = bob.last_epoch;
    let mut whole_copy = Device::from_bytes(&bob.device.to_bytes()).unwrap();
    let m1 = from_alice(&mut rng, &mut alice, &bob, b"m1");
    assert_eq!(bob.receive(T0, &alice, &m1), b"m1");
    let m2 = from_alice(&mut rng, &mut alice, &bob, b"m2");
    read_with(&mut whole_copy, &alice, &m2).unwrap();
    let unit = whole_copy.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    assert_eq!((unit.base_epoch(), unit.epoch()), (Some(e), e + 1));
    // Equal epochs, but it starts from e: refused, nothing written.
    let rows = all_rows(&bob.raw());
    assert!(matches!(
        bob.store.write(&unit),
        Err(StoreError::UnitGap { role: Role::Device, stored_epoch, base_epoch })
            if (stored_epoch, base_epoch) == (e + 1, e)
    ));
    assert_eq!(all_rows(&bob.raw()), rows);
    // m1, which A read and acknowledged, is still recorded as read in the store.
    let mut stored = bob.store.load(e + 1).unwrap().unwrap();
    assert_eq!(*stored.to_bytes(), *bob.device.to_bytes());
    assert!(read_with(&mut stored, &alice, &m1).is_err());

    // The refused copy loads again from the store and redoes its read; a whole-state copy of
    // A (still at e + 1) is then behind by a unit.
    let mut a_whole = Device::from_bytes(&bob.device.to_bytes()).unwrap();
    let mut whole_copy = bob.store.load(e + 1).unwrap().unwrap();
    assert_eq!(read_with(&mut whole_copy, &alice, &m2).unwrap(), b"m2");
    let further = whole_copy.take_changes(&mut ratchetry::os_rng());
    assert_eq!(further.base_epoch(), Some(e + 1));
    assert_eq!(bob.store.write(&further).unwrap().epoch, e + 2);
    let rows = all_rows(&bob.raw());
    assert!(matches!(
        bob.store.write(&a_whole.take_changes(&mut ratchetry::os_rng())),
        Err(StoreError::EpochWentBack { role: Role::Device, stored_epoch, epoch })
            if (stored_epoch, epoch) == (e + 2, e + 1)
    ));
    assert_eq!(all_rows(&bob.raw()), rows);
}

/// The primary: a unit written twice, or after a lost one, is refused with the database
/// untouched; a primary restored from the store's current records (`load_primary_restored`)
/// writes its meta record from the stored epoch, and a lost restore unit makes the next one a
/// gap; the device's chain is independent of the primary's.
#[test]
fn the_primarys_units_chain_through_restores_and_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label("review 39b: primary");
    let mut bob = Person::new(&mut rng, dir.path(), "bob");
    let p = bob.primary_epoch;
    bob.primary.invite(&mut rng, T0).unwrap();
    let u1 = bob.primary.take_changes(&mut ratchetry::os_rng());
    bob.primary.renew(T0).unwrap();
    let u2 = bob.primary.take_changes(&mut ratchetry::os_rng());
    assert_eq!((u1.base_epoch(), u2.base_epoch()), (Some(p), Some(p + 1)));
    let rows = all_rows(&bob.raw());
    assert!(is_gap(
        &bob.store.write_primary(&u2),
        Role::Primary,
        p,
        p + 1
    ));
    assert_eq!(all_rows(&bob.raw()), rows);
    bob.store.write_primary(&u1).unwrap();
    bob.primary_epoch = bob.store.write_primary(&u2).unwrap().epoch;
    let rows = all_rows(&bob.raw());
    assert!(is_gap(
        &bob.store.write_primary(&u2),
        Role::Primary,
        p + 2,
        p + 1
    ));
    assert!(matches!(
        bob.store.write_primary(&u1),
        Err(StoreError::EpochWentBack {
            role: Role::Primary,
            ..
        })
    ));
    assert_eq!(all_rows(&bob.raw()), rows);
    // The device's chain did not move.
    let empty = bob.device.take_changes(&mut ratchetry::os_rng());
    assert_eq!(empty.base_epoch(), Some(bob.last_epoch));
    bob.store.write(&empty).unwrap();

    // Restored from the current records: the unit starts at the stored epoch.
    let mut restored = bob.store.load_primary_restored(bob.primary_epoch).unwrap();
    assert!(restored.needs_resync());
    let meta = restored.take_changes(&mut ratchetry::os_rng());
    assert_eq!(
        (meta.base_epoch(), meta.epoch()),
        (Some(bob.primary_epoch), bob.primary_epoch + 1)
    );
    assert!(!meta.is_empty());
    // Lost; the next unit (resync) starts from it and is refused.
    let list = bob.primary.device_list().signed().clone();
    restored.resync(T0, list).unwrap();
    let next = restored.take_changes(&mut ratchetry::os_rng());
    assert!(is_gap(
        &bob.store.write_primary(&next),
        Role::Primary,
        bob.primary_epoch,
        meta.epoch()
    ));
    assert_eq!(all_rows(&bob.raw()), rows);
    bob.store.write_primary(&meta).unwrap();
    bob.primary_epoch = bob.store.write_primary(&next).unwrap().epoch;
    let store = SqliteStore::open(&bob.path, bob.key.clone()).unwrap();
    assert_eq!(
        *store
            .load_primary(bob.primary_epoch)
            .unwrap()
            .unwrap()
            .to_bytes(),
        *restored.to_bytes()
    );
}

/// A unit refused by one database does not move that database; the same unit is accepted by
/// the database it chains onto. (The check is per database: a second database holding an
/// older copy of the device, e.g. a backup database file, refuses the live device's units.)
#[test]
fn a_database_put_back_refuses_units_that_do_not_chain_onto_it() {
    let (mut rng, mut alice, mut bob, _dir) = two("review 39b: database put back");
    let raw = bob.raw();
    let copy = all_rows(&raw);
    let m = from_alice(&mut rng, &mut alice, &bob, b"one");
    bob.receive(T0, &alice, &m);
    let m = from_alice(&mut rng, &mut alice, &bob, b"two");
    bob.read(T0, &alice, &m).unwrap();
    let unit = bob.device.take_changes(&mut ratchetry::os_rng());
    // The whole database put back under the running app (a file restored).
    support::put_back(&raw, &copy);
    let mut store = SqliteStore::open(&bob.path, bob.key.clone()).unwrap();
    let refused = store.write(&unit);
    assert!(matches!(refused, Err(StoreError::UnitGap { .. })));
    assert_eq!(all_rows(&raw), copy);
    // The way on for a rolled-back store: load it as restored, knowing the later epoch.
    assert!(matches!(
        store.load(bob.last_epoch),
        Err(StoreError::StaleSnapshot { .. })
    ));
    let mut restored = store
        .load_restored(unit.epoch(), Timestamp(T0.0 + 1))
        .unwrap();
    let whole = restored.take_changes(&mut ratchetry::os_rng());
    assert!(whole.replaces_all() && whole.epoch() > unit.epoch());
    store.write(&whole).unwrap();
}
