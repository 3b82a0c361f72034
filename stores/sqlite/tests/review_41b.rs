//! Review 41b: whole-state loads that now chain (`UnitChain` with a base for a load from
//! bytes, none for a restore), through `ratchetry-sqlite`, over a device's life: legacy
//! migrations run by two copies, backups taken at the wrong moment, restores beside loads.
//! Passing tests pin what holds; ignored tests assert the correct behaviour of a finding.
//!
//! Finding here: a state migrated from a format before records (`Primary::migrate`,
//! `Device::migrate`) names no base, so two copies migrating the same old state (the app and
//! its extension after the upgrade) both write, the second over the first: two lists signed at
//! one version by the primary, or a device's reads and prekeys undone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod support;

use std::path::Path;

use ratchetry::Timestamp;
use ratchetry::devices::{Primary, SignedDeviceList};
use ratchetry::fanout::{Device, Outgoing};
use ratchetry::persist::StorageKey;
use ratchetry::testing::SeededRng;
use ratchetry_sqlite::{Role, SqliteStore, StoreError};
use support::{T0, all_rows, from_alice, two};

/// The release before PQXDH's state files (the library's `tests/data/legacy`).
fn legacy(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/legacy")
            .join(name),
    )
    .unwrap()
}

/// When the legacy fixtures' lists are valid.
const NOW: Timestamp = Timestamp(1_790_000_100_000);

fn refused(written: &Result<ratchetry_sqlite::Written, StoreError>) -> bool {
    matches!(
        written,
        Err(StoreError::AnotherCopy { .. }
            | StoreError::UnitGap { .. }
            | StoreError::EpochWentBack { .. })
    )
}

/// The app and its extension both start after the upgrade and both find the primary's state of
/// the first format (kept by the app, as that release did). Each migrates it (`Primary::migrate`
/// re-signs the list at the next version, issued `now`: publish it). The first writes its unit
/// and publishes its list; the second, a minute later, signs another list at the same version,
/// and its whole-state unit, which names no base, is written over the first's. The store now
/// holds a list at version `v` other than the one published: the next list the primary signs
/// builds on it, and a device that took the published one sees two lists of one version
/// (`Equivocation`), an honest primary looking like a forking one. The review 40b fix (a base
/// for the previous store's blob) did not reach the migration path.
///
/// Fixed at stop 41 (`src/devices/primary.rs` `from_migration`, `src/fanout/legacy.rs` `migrate`,
/// PROTOCOL.md 19/23): a migrated state's first unit names a base the store holds only when
/// nothing was written since: `(0, UnitTag::NONE)` (or the old state's epoch), so it is written
/// where the role holds nothing and checked as any other otherwise; the second copy's is then
/// `AnotherCopy`/`UnitGap` and it loads what the first wrote.
#[test]
fn two_copies_migrating_one_old_primary_cannot_both_write() {
    let dir = tempfile::tempdir().unwrap();
    let old_device = legacy("device-v2-alice.bin");
    let identity = Device::legacy_identity(&old_device).unwrap();
    let old = legacy("primary-v1-alice.bin");
    let mut store =
        SqliteStore::open(dir.path().join("m.db"), StorageKey::from_bytes([7; 32])).unwrap();
    let mut app = Primary::migrate(&old, &identity, NOW).unwrap();
    let mut extension = Primary::migrate(&old, &identity, Timestamp(NOW.0 + 60_000)).unwrap();
    assert_eq!(
        app.device_list().version(),
        extension.device_list().version()
    );
    assert_ne!(
        app.device_list().to_bytes(),
        extension.device_list().to_bytes()
    );
    store
        .write_primary(&app.take_changes(&mut ratchetry::os_rng()))
        .unwrap();
    let published = app.device_list().to_bytes();
    let rows = all_rows(store.connection());
    let written = store.write_primary(&extension.take_changes(&mut ratchetry::os_rng()));
    let held = store
        .load_primary(0)
        .unwrap()
        .unwrap()
        .device_list()
        .to_bytes();
    assert!(
        refused(&written),
        "the second migration was written ({written:?}); the store's list is the published one: {}",
        held == published
    );
    assert_eq!(all_rows(store.connection()), rows);
}

/// Two copies migrate one device state of the previous format, each drawing its own
/// last-resort ML-KEM prekey and signed prekey. Fresh devices of the same old state at the same
/// epoch: the first writes its whole-state unit and uploads its keys (what follows a migration);
/// the second's whole-state unit, which names no base, is written over it. The store now holds
/// keys other than those the server hands out: every PQXDH session started from the uploaded
/// bundle fails at the stored device (a retry answers it, at the cost of a round trip per
/// peer), and the first copy, refused at its next unit, loads a state that is not the one it
/// acted on.
///
/// Fixed at stop 41: as for the primary above (a migrated state's first unit names the base the store holds
/// when nothing was written since).
#[test]
fn two_copies_migrating_one_old_device_cannot_both_write() {
    let mut m = migrated_twice("once");
    m.store.write(&m.app.take_changes(&mut m.rng_app)).unwrap();
    let uploaded = m.app.bundle(None, None);
    let rows = all_rows(m.store.connection());
    let written = m.store.write(&m.extension.take_changes(&mut m.rng_ext));
    let held = m.store.load(0).unwrap().unwrap().bundle(None, None);
    assert!(
        refused(&written),
        "the second migration was written over the first ({written:?}); the stored device's \
         bundle is the uploaded one: {}",
        held == uploaded
    );
    assert_eq!(all_rows(m.store.connection()), rows);
}

/// What holds beside it: once the first copy has written a unit after its migration, the
/// second copy's whole-state unit ends below the stored epoch and is refused
/// (`EpochWentBack`), nothing written.
#[test]
fn a_second_migration_after_the_first_copy_moved_on_is_refused() {
    let mut m = migrated_twice("moved");
    m.store.write(&m.app.take_changes(&mut m.rng_app)).unwrap();
    m.app.rotate_signed_prekey(&mut m.rng_app, NOW);
    m.store.write(&m.app.take_changes(&mut m.rng_app)).unwrap();
    let rows = all_rows(m.store.connection());
    let written = m.store.write(&m.extension.take_changes(&mut m.rng_ext));
    assert!(
        matches!(
            written,
            Err(StoreError::EpochWentBack {
                role: Role::Device,
                ..
            })
        ),
        "{written:?}"
    );
    assert_eq!(all_rows(m.store.connection()), rows);
}

/// A new store, and two copies of Alice's old phone migrated with her primary's new list, each
/// with its own RNG.
struct Migrated {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    app: Device,
    extension: Device,
    rng_app: SeededRng,
    rng_ext: SeededRng,
}

fn migrated_twice(label: &str) -> Migrated {
    let dir = tempfile::tempdir().unwrap();
    let old_device = legacy("device-v2-alice.bin");
    let identity = Device::legacy_identity(&old_device).unwrap();
    let primary = Primary::migrate(&legacy("primary-v1-alice.bin"), &identity, NOW).unwrap();
    let list = SignedDeviceList::from_bytes(&primary.device_list().to_bytes()).unwrap();
    let store =
        SqliteStore::open(dir.path().join("d.db"), StorageKey::from_bytes([8; 32])).unwrap();
    let mut rng_app = SeededRng::from_label(&format!("review41b migrate app {label}"));
    let mut rng_ext = SeededRng::from_label(&format!("review41b migrate extension {label}"));
    let app = Device::migrate(&mut rng_app, NOW, &old_device, list.clone()).unwrap();
    let extension = Device::migrate(&mut rng_ext, NOW, &old_device, list).unwrap();
    assert_ne!(
        app.bundle(None, None).kem_prekey(),
        extension.bundle(None, None).kem_prekey()
    );
    Migrated {
        _dir: dir,
        store,
        app,
        extension,
        rng_app,
        rng_ext,
    }
}

/// An honest single-copy app backs its device up with `to_bytes`. Taken after the unit was
/// written, a current backup restored with `Device::restore` (not stale) writes over the store
/// it came from, and the device goes on. Taken between an operation and its `take_changes`, the
/// bytes hold the operation's epoch with the tag of the unit before it, a pair no store ever
/// holds: restored onto the store, the unit is refused (`UnitGap` if the operation's unit was
/// not written, `AnotherCopy` if it was), nothing written, and the store still loads: the app
/// loads from it (or restores as from a backup). A false alarm only for an app that both takes
/// backups mid-operation and restores them over a live store; nothing is lost or stuck.
#[test]
fn a_backup_restores_over_its_store_and_one_taken_mid_operation_is_refused_harmlessly() {
    let (mut rng, mut alice, bob, _dir) = two("review41b backups");
    // A backup taken after the write restores over the store, and the device goes on.
    let backup = alice.device.to_bytes();
    let (device, stale) = Device::restore(&backup, alice.last_epoch, T0).unwrap();
    assert!(!stale);
    alice.device = device;
    alice.persist();
    let m = from_alice(&mut rng, &mut alice, &bob, b"after the restore");
    assert!(!m.is_empty());
    alice.restart();

    // A backup taken between an operation and its take_changes.
    let Outgoing::Ready(_) = alice
        .device
        .send(&mut rng, T0, &bob.primary.account(), b"mid")
        .unwrap()
    else {
        panic!("a session is held")
    };
    let mid = alice.device.to_bytes();
    let rows = all_rows(alice.store.connection());
    let (mut early, _) = Device::restore(&mid, alice.last_epoch, T0).unwrap();
    let written = alice.store.write(&early.take_changes(&mut rng));
    assert!(
        matches!(
            written,
            Err(StoreError::UnitGap {
                role: Role::Device,
                ..
            })
        ),
        "{written:?}"
    );
    alice.persist();
    let rows_after = all_rows(alice.store.connection());
    assert_ne!(rows, rows_after);
    let (mut late, stale) = Device::restore(&mid, alice.last_epoch, T0).unwrap();
    assert!(!stale);
    let written = alice.store.write(&late.take_changes(&mut rng));
    assert!(
        matches!(
            written,
            Err(StoreError::AnotherCopy {
                role: Role::Device,
                ..
            })
        ),
        "{written:?}"
    );
    assert_eq!(all_rows(alice.store.connection()), rows_after);
    assert!(alice.reload().unwrap().is_some());
    // Restored as from a backup instead, it is written.
    let mut restored = Device::restore_from_backup(&mid, T0).unwrap();
    alice.store.write(&restored.take_changes(&mut rng)).unwrap();
}

/// One copy restores from a backup (its first unit names no base) while another loads the same
/// bytes with `from_bytes` (its first unit names theirs): whichever writes first, the loaded
/// copy never writes after the restore, and the restored copy's units chain on.
#[test]
fn a_restore_beside_a_load_of_the_same_bytes_leaves_one_writer() {
    let (mut rng, mut alice, bob, _dir) = two("review41b restore beside load");
    let backup = alice.device.to_bytes();
    let e = from_alice(&mut rng, &mut alice, &bob, b"after the backup");
    assert!(!e.is_empty());
    // The loaded copy first: refused, the store moved on since the backup.
    let mut loaded = Device::from_bytes(&backup).unwrap();
    let written = alice.store.write(&loaded.take_changes(&mut rng));
    assert!(refused(&written), "{written:?}");
    // The restore, with the kept epoch: written over the store.
    let (mut restored, stale) = Device::restore(&backup, alice.last_epoch, T0).unwrap();
    assert!(stale);
    alice.last_epoch = alice
        .store
        .write(&restored.take_changes(&mut rng))
        .unwrap()
        .epoch;
    // Another copy loaded from the backup bytes is refused after it too.
    let mut late = Device::from_bytes(&backup).unwrap();
    let written = alice.store.write(&late.take_changes(&mut rng));
    assert!(refused(&written), "{written:?}");
    // The restored copy chains on.
    restored.rotate_signed_prekey(&mut rng, T0);
    alice.store.write(&restored.take_changes(&mut rng)).unwrap();
    alice.device = alice.reload().unwrap().unwrap();
    assert_eq!(*alice.device.to_bytes(), *restored.to_bytes());
}
