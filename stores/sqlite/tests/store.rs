//! The store end to end: a conversation persisted and reloaded, a crash between units, and
//! every change someone who can write the database file can make, each refused by name.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod support;

use ratchetry::fanout::Device;
use ratchetry::persist::StorageKey;
use ratchetry::testing::SeededRng;
use ratchetry_sqlite::{RecordId, Role, SqliteStore, StoreError};
use support::{Person, T0, all_rows, body, envelope, put, put_back, stored};

/// The record key kind of a remote device's sessions (PROTOCOL.md, "Device records").
const SESSIONS: u8 = 0x08;

struct Two {
    rng: SeededRng,
    alice: Person,
    bob: Person,
    _dir: tempfile::TempDir,
}

/// Alice and Bob, each with a phone persisted in its own database, after Alice wrote once and
/// Bob read it.
fn two(label: &str) -> Two {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label(label);
    let mut alice = Person::new(&mut rng, dir.path(), "alice");
    let mut bob = Person::new(&mut rng, dir.path(), "bob");
    let outbox = alice.send(&mut rng, T0, &bob, b"hi Bob");
    assert_eq!(bob.receive(T0, &alice, &envelope(&outbox)), b"hi Bob");
    Two {
        rng,
        alice,
        bob,
        _dir: dir,
    }
}

impl Two {
    /// Alice writes `body`; Bob reads it and writes the unit.
    fn alice_to_bob(&mut self, body: &[u8]) {
        let outbox = self.alice.send(&mut self.rng, T0, &self.bob, body);
        assert_eq!(self.bob.receive(T0, &self.alice, &envelope(&outbox)), body);
    }

    /// Bob writes `body`; Alice reads it and writes the unit.
    fn bob_to_alice(&mut self, body: &[u8]) {
        let outbox = self.bob.send(&mut self.rng, T0, &self.alice, body);
        assert_eq!(self.alice.receive(T0, &self.bob, &envelope(&outbox)), body);
    }
}

/// The key of Bob's sessions record with Alice's phone.
fn sessions_key(db: &rusqlite::Connection) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = all_rows(db)
        .into_iter()
        .filter(|(slot, key, _)| slot == "device" && key.first() == Some(&SESSIONS))
        .map(|(_, key, _)| key)
        .collect();
    assert_eq!(keys.len(), 1, "one session record");
    keys[0].clone()
}

#[test]
fn a_conversation_goes_on_across_reloads_from_the_database() {
    let mut t = two("store: conversation");
    for i in 0..3 {
        t.alice_to_bob(format!("alice {i}").as_bytes());
        t.bob_to_alice(format!("bob {i}").as_bytes());
        // Both apps restart from their databases after every exchange.
        let (alice, bob) = (t.alice.device.to_bytes(), t.bob.device.to_bytes());
        t.alice.restart();
        t.bob.restart();
        assert_eq!(*t.alice.device.to_bytes(), *alice);
        assert_eq!(*t.bob.device.to_bytes(), *bob);
    }
    t.alice_to_bob(b"after the restarts");
    t.bob_to_alice(b"still here");
    // The primaries come back too, at the epoch the app kept.
    let primary = t
        .bob
        .store
        .load_primary(t.bob.primary_epoch)
        .unwrap()
        .unwrap();
    assert_eq!(*primary.to_bytes(), *t.bob.primary.to_bytes());
}

#[test]
fn a_unit_not_committed_leaves_the_previous_state_and_the_envelope_reads_again() {
    let mut t = two("store: crash");
    let outbox = t.alice.send(&mut t.rng, T0, &t.bob, b"read during a crash");
    let lost = envelope(&outbox);
    let before = t.bob.device.to_bytes();

    // Bob's app reads the message and starts its transaction: the unit and the body in its own
    // table. It dies before the commit.
    let received = t.bob.read(T0, &t.alice, &lost).unwrap();
    let unit = t.bob.device.take_changes(&mut t.rng);
    {
        let mut tx = t.bob.store.transaction().unwrap();
        tx.connection()
            .execute_batch("CREATE TABLE IF NOT EXISTS messages (body BLOB)")
            .unwrap();
        tx.connection()
            .execute("INSERT INTO messages VALUES (?1)", [body(&received)])
            .unwrap();
        tx.write(&unit).unwrap();
        // Dropped, not committed: the process ends here.
    }

    // The restart loads the state before the message; the relay delivers it again.
    t.bob.restart();
    assert_eq!(*t.bob.device.to_bytes(), *before);
    let messages: i64 = t
        .bob
        .store
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'messages'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(messages, 0, "nothing of the transaction was written");
    assert_eq!(t.bob.receive(T0, &t.alice, &lost), b"read during a crash");
    t.bob.restart();
    t.bob_to_alice(b"answered after the crash");
}

#[test]
fn a_transaction_writes_the_unit_and_the_apps_rows_together() {
    let mut t = two("store: transaction");
    let outbox = t.alice.send(&mut t.rng, T0, &t.bob, b"kept with its unit");
    let received = t.bob.read(T0, &t.alice, &envelope(&outbox)).unwrap();
    let unit = t.bob.device.take_changes(&mut t.rng);
    let mut tx = t.bob.store.transaction().unwrap();
    tx.connection()
        .execute_batch("CREATE TABLE messages (body BLOB)")
        .unwrap();
    tx.connection()
        .execute("INSERT INTO messages VALUES (?1)", [body(&received)])
        .unwrap();
    t.bob.last_epoch = tx.write(&unit).unwrap().epoch;
    tx.commit().unwrap();
    t.bob.restart();
    let kept: Vec<u8> = t
        .bob
        .store
        .connection()
        .query_row("SELECT body FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, b"kept with its unit");
}

#[test]
fn a_record_put_back_to_an_older_sealed_copy_is_named() {
    let mut t = two("store: record rolled back");
    let raw = t.bob.raw();
    let key = sessions_key(&raw);
    let old = stored(&raw, "device", &key).unwrap();
    let old_epoch = t.bob.last_epoch;
    t.alice_to_bob(b"moves Bob's receiving chain");
    assert_ne!(stored(&raw, "device", &key).unwrap(), old);

    // Someone puts the older session back: its message keys would be used again.
    put(&raw, "device", &key, &old);
    match t.bob.reload() {
        Err(StoreError::RecordReplaced { record, sealed_at }) => {
            assert_eq!(record, RecordId::Device(key.clone()));
            assert_eq!(sealed_at, old_epoch);
        }
        other => panic!("{other:?}"),
    }
    // Even an app that keeps no epoch outside the database is told.
    let store = SqliteStore::open(&t.bob.path, t.bob.key.clone()).unwrap();
    assert!(matches!(
        store.load(0),
        Err(StoreError::RecordReplaced { .. })
    ));
}

#[test]
fn a_deleted_record_is_named() {
    let t = two("store: record deleted");
    let raw = t.bob.raw();
    let key = sessions_key(&raw);
    raw.execute(
        "DELETE FROM ratchetry_rows WHERE slot = 'device' AND key = ?1",
        [&key],
    )
    .unwrap();
    match t.bob.reload() {
        Err(StoreError::RecordMissing(record)) => assert_eq!(record, RecordId::Device(key)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_record_put_back_after_its_deletion_is_named() {
    let mut t = two("store: record added");
    let raw = t.bob.raw();
    let key = sessions_key(&raw);
    let old = stored(&raw, "device", &key).unwrap();
    // Bob forgets Alice's account: the unit deletes his sessions with her.
    let alice = t.alice.primary.account();
    t.bob.device.forget_account(&alice);
    t.bob.persist();
    assert_eq!(stored(&raw, "device", &key), None);

    put(&raw, "device", &key, &old);
    match t.bob.reload() {
        Err(StoreError::RecordAdded(record)) => assert_eq!(record, RecordId::Device(key)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_value_copied_under_another_key_does_not_open() {
    let t = two("store: record moved");
    let raw = t.bob.raw();
    let key = sessions_key(&raw);
    let value = stored(&raw, "device", &key).unwrap();
    // The session's value, under the key of another record (the device's meta record).
    let other = vec![0x02];
    assert!(stored(&raw, "device", &other).is_some());
    put(&raw, "device", &other, &value);
    match t.bob.reload() {
        Err(StoreError::RecordDoesNotOpen(record)) => {
            assert_eq!(record, RecordId::Device(other));
        }
        other => panic!("{other:?}"),
    }
    // Nor as the primary.
    let raw = t.bob.raw();
    put(
        &raw,
        "device",
        &[0x02],
        &stored(&raw, "device", &[0x02]).unwrap(),
    );
    put(&raw, "primary", b"", &value);
    assert!(matches!(
        t.bob.reload(),
        Err(StoreError::RecordDoesNotOpen(_))
    ));
}

#[test]
fn the_meta_row_put_back_alone_is_detected() {
    let mut t = two("store: meta rolled back");
    let raw = t.bob.raw();
    let meta = stored(&raw, "store", b"meta").unwrap();
    let meta_epoch = t.bob.last_epoch;
    t.alice_to_bob(b"a newer unit");

    put(&raw, "store", b"meta", &meta);
    let store = SqliteStore::open(&t.bob.path, t.bob.key.clone()).unwrap();
    match store.load(0) {
        Err(StoreError::MetaRolledBack {
            meta_epoch: at,
            sealed_at,
            ..
        }) => {
            assert_eq!(at, meta_epoch);
            assert_eq!(sealed_at, t.bob.last_epoch);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_meta_row_deleted_or_damaged_is_refused() {
    let t = two("store: meta deleted");
    let raw = t.bob.raw();
    let meta = stored(&raw, "store", b"meta").unwrap();
    raw.execute(
        "DELETE FROM ratchetry_rows WHERE slot = 'store' AND key = x'6d657461'",
        [],
    )
    .unwrap();
    assert!(matches!(t.bob.reload(), Err(StoreError::MetaMissing)));
    put(&raw, "store", b"meta", &meta[..meta.len() - 1]);
    assert!(matches!(t.bob.reload(), Err(StoreError::MetaDoesNotOpen)));
}

#[test]
fn the_whole_database_rolled_back_is_stale_when_the_app_kept_its_epoch() {
    let mut t = two("store: whole database rolled back");
    let raw = t.bob.raw();
    let copy = all_rows(&raw);
    let copy_epoch = t.bob.last_epoch;
    t.alice_to_bob(b"read after the copy");
    t.bob_to_alice(b"sent after the copy");

    // The database file is put back to the copy: every row consistent with the meta row.
    put_back(&raw, &copy);
    match t.bob.reload() {
        Err(StoreError::StaleSnapshot {
            role: Role::Device,
            stored_epoch,
            last_epoch,
        }) => assert_eq!(
            (stored_epoch, last_epoch),
            (Some(copy_epoch), t.bob.last_epoch)
        ),
        other => panic!("{other:?}"),
    }
    // What the store cannot see: an app that keeps nothing outside loads the copy as current.
    let store = SqliteStore::open(&t.bob.path, t.bob.key.clone()).unwrap();
    assert_eq!(store.load(0).unwrap().unwrap().state_epoch(), copy_epoch);

    // The way on: load it as restored from a backup, above the epoch the app kept.
    let mut restored = store.load_restored(t.bob.last_epoch, T0).unwrap();
    assert!(restored.awaiting_own_list());
    assert!(restored.state_epoch() > t.bob.last_epoch);
    let mut store = store;
    let unit = restored.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    let epoch = store.write(&unit).unwrap().epoch;
    assert_eq!(
        *store.load(epoch).unwrap().unwrap().to_bytes(),
        *restored.to_bytes()
    );
}

/// Bob's phone links again as a new device (its old identity unlinked): the app resets the
/// store under a new storage key. Nothing of the old device or primary loads, the new device
/// is written and loads, the app's own table is kept, and neither the old key nor the
/// database put back to a copy from before the reset opens under the new key. The old key
/// itself is refused, nothing deleted.
#[test]
fn a_reset_under_a_new_key_starts_the_store_anew() {
    let mut t = two("store: reset");
    let raw = t.bob.raw();
    raw.execute_batch("CREATE TABLE app (x); INSERT INTO app VALUES (1);")
        .unwrap();
    let before = all_rows(&raw);
    assert!(matches!(
        t.bob.store.reset(t.bob.key.clone()),
        Err(StoreError::SameStorageKey)
    ));
    assert_eq!(all_rows(&raw), before);

    let new_key = StorageKey::generate(&mut t.rng);
    t.bob.store.reset(new_key.clone()).unwrap();
    assert!(t.bob.store.load(0).unwrap().is_none());
    assert!(t.bob.store.load_primary(0).unwrap().is_none());
    let app: i64 = raw
        .query_row("SELECT count(*) FROM app", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, 1);
    assert!(matches!(
        SqliteStore::open(&t.bob.path, t.bob.key.clone()),
        Err(StoreError::WrongStorageKey)
    ));

    // The new device, written and loaded after a restart. (`Person::new` wrote its first unit
    // to a file of its own; loaded from its whole-state bytes, its next unit holds it all.)
    let fresh = Person::new(&mut t.rng, t._dir.path(), "bob again");
    let mut device = Device::from_bytes(&fresh.device.to_bytes()).unwrap();
    let unit = device.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    let epoch = t.bob.store.write(&unit).unwrap().epoch;
    let store = SqliteStore::open(&t.bob.path, new_key.clone()).unwrap();
    assert_eq!(
        *store.load(epoch).unwrap().unwrap().to_bytes(),
        *device.to_bytes()
    );

    // The database put back to its rows from before the reset: the new key does not open it.
    drop(store);
    put_back(&raw, &before);
    assert!(matches!(
        SqliteStore::open(&t.bob.path, new_key),
        Err(StoreError::WrongStorageKey)
    ));
}

#[test]
fn an_empty_database_is_stale_when_the_app_wrote_before() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(dir.path().join("new.db"), StorageKey::from_bytes([1; 32])).unwrap();
    assert!(store.load(0).unwrap().is_none());
    assert!(store.load_primary(0).unwrap().is_none());
    assert!(matches!(
        store.load_restored(0, T0),
        Err(StoreError::NotStored(Role::Device))
    ));
    assert!(matches!(
        store.load_primary_restored(0),
        Err(StoreError::NotStored(Role::Primary))
    ));
    assert!(matches!(
        store.load(3),
        Err(StoreError::StaleSnapshot {
            role: Role::Device,
            stored_epoch: None,
            last_epoch: 3
        })
    ));
    assert!(matches!(
        store.load_primary(2),
        Err(StoreError::StaleSnapshot {
            role: Role::Primary,
            stored_epoch: None,
            last_epoch: 2
        })
    ));
}

#[test]
fn the_wrong_storage_key_does_not_open_the_database() {
    let t = two("store: wrong key");
    let wrong = StorageKey::from_bytes([0x55; 32]);
    assert!(matches!(
        SqliteStore::open(&t.bob.path, wrong),
        Err(StoreError::WrongStorageKey)
    ));
    // Alice's key does not open Bob's database either.
    assert!(matches!(
        SqliteStore::open(&t.bob.path, t.alice.key.clone()),
        Err(StoreError::WrongStorageKey)
    ));
}

#[test]
fn the_stores_key_row_deleted_is_refused() {
    let t = two("store: digest key deleted");
    t.bob
        .raw()
        .execute(
            "DELETE FROM ratchetry_rows WHERE slot = 'store' AND key = CAST('digest-key' AS BLOB)",
            [],
        )
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&t.bob.path, t.bob.key.clone()),
        Err(StoreError::DigestKeyMissing)
    ));
}

#[test]
fn an_older_primary_put_back_is_named() {
    let mut t = two("store: primary rolled back");
    let raw = t.bob.raw();
    // The list record: it changes with every list signed.
    let old = stored(&raw, "primary", &[0x83]).unwrap();
    let old_epoch = t.bob.primary_epoch;
    t.bob.primary.renew(T0).unwrap();
    t.bob.persist_primary();
    assert!(t.bob.primary_epoch > old_epoch);

    put(&raw, "primary", &[0x83], &old);
    let store = SqliteStore::open(&t.bob.path, t.bob.key.clone()).unwrap();
    match store.load_primary(0) {
        Err(StoreError::RecordReplaced { record, sealed_at }) => {
            assert_eq!(
                (record, sealed_at),
                (RecordId::Primary(vec![0x83]), old_epoch)
            );
        }
        other => panic!("{other:?}"),
    }
    // The device is loaded only from a database whose rows all check, the primary's included.
    assert!(matches!(
        store.load(0),
        Err(StoreError::RecordReplaced { .. })
    ));
}

#[test]
fn a_stale_primary_is_refused_and_loads_as_restored() {
    let mut t = two("store: primary stale");
    let raw = t.bob.raw();
    let copy = all_rows(&raw);
    let copy_epoch = t.bob.primary_epoch;
    t.bob.primary.renew(T0).unwrap();
    t.bob.persist_primary();

    put_back(&raw, &copy);
    let store = SqliteStore::open(&t.bob.path, t.bob.key.clone()).unwrap();
    match store.load_primary(t.bob.primary_epoch) {
        Err(StoreError::StaleSnapshot {
            role: Role::Primary,
            stored_epoch,
            last_epoch,
        }) => assert_eq!(
            (stored_epoch, last_epoch),
            (Some(copy_epoch), t.bob.primary_epoch)
        ),
        other => panic!("{other:?}"),
    }
    let restored = store.load_primary_restored(t.bob.primary_epoch).unwrap();
    assert!(restored.needs_resync());
    assert!(restored.state_epoch() > t.bob.primary_epoch);
}

#[test]
fn a_write_that_goes_back_in_epoch_is_refused() {
    let mut t = two("store: epoch back");
    let backup = t.bob.device.to_bytes();
    t.alice_to_bob(b"after the backup");
    t.alice_to_bob(b"and again");
    // A device restored from an old backup without its last epoch starts below the stored one.
    let mut old = Device::restore_from_backup(&backup, T0).unwrap();
    let unit = old.take_changes(&mut ratchetry::os_rng());
    match t.bob.store.write(&unit) {
        Err(StoreError::EpochWentBack {
            role: Role::Device,
            stored_epoch,
            epoch,
        }) => assert_eq!((stored_epoch, epoch), (t.bob.last_epoch, unit.epoch())),
        other => panic!("{other:?}"),
    }
    // Nor does an older primary overwrite a newer one.
    let mut primary = ratchetry::devices::Primary::from_bytes(&t.bob.primary.to_bytes()).unwrap();
    t.bob.primary.renew(T0).unwrap();
    t.bob.persist_primary();
    assert!(matches!(
        t.bob
            .store
            .write_primary(&primary.take_changes(&mut ratchetry::os_rng())),
        Err(StoreError::EpochWentBack {
            role: Role::Primary,
            ..
        })
    ));
    // Restored with the epoch kept, it continues above it and replaces every row.
    let (mut restored, stale) = Device::restore(&backup, t.bob.last_epoch, T0).unwrap();
    assert!(stale);
    let unit = restored.take_changes(&mut ratchetry::os_rng());
    t.bob.last_epoch = t.bob.store.write(&unit).unwrap().epoch;
    assert_eq!(
        *t.bob.reload().unwrap().unwrap().to_bytes(),
        *restored.to_bytes()
    );
}

#[test]
fn a_unit_that_replaces_all_removes_the_rows_the_state_no_longer_has() {
    let mut t = two("store: replace all");
    let raw = t.bob.raw();
    let sessions = sessions_key(&raw);
    // Bob's device as the app restores it from its own bytes: every record in one unit.
    let (mut restored, _) =
        Device::restore(&t.bob.device.to_bytes(), t.bob.last_epoch, T0).unwrap();
    let alice = t.alice.device.address();
    assert!(restored.has_session(&alice));
    // Forget Alice on the restored device: its whole state no longer holds the session.
    restored.forget_account(&t.alice.primary.account());
    let unit = restored.take_changes(&mut ratchetry::os_rng());
    assert!(unit.replaces_all());
    assert!(
        unit.records()
            .iter()
            .all(|r| r.key() != sessions.as_slice())
    );
    t.bob.last_epoch = t.bob.store.write(&unit).unwrap().epoch;
    assert_eq!(stored(&raw, "device", &sessions), None);
    let loaded = t.bob.reload().unwrap().unwrap();
    assert!(!loaded.has_session(&alice));
    assert_eq!(*loaded.to_bytes(), *restored.to_bytes());
}

#[test]
fn a_partial_unit_on_an_empty_store_is_refused() {
    let mut t = two("store: no device");
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        SqliteStore::open(dir.path().join("empty.db"), StorageKey::from_bytes([2; 32])).unwrap();
    t.alice_to_bob(b"a unit that is not the whole state");
    let outbox = t.alice.send(&mut t.rng, T0, &t.bob, b"one more");
    t.bob.read(T0, &t.alice, &envelope(&outbox)).unwrap();
    let unit = t.bob.device.take_changes(&mut t.rng);
    assert!(!unit.replaces_all());
    assert!(matches!(
        store.write(&unit),
        Err(StoreError::NotStored(Role::Device))
    ));
    assert!(matches!(
        store.load_restored(0, T0),
        Err(StoreError::NotStored(Role::Device))
    ));
}

#[test]
fn an_empty_unit_writes_nothing() {
    let mut t = two("store: empty unit");
    let unit = t.bob.device.take_changes(&mut t.rng);
    assert!(unit.is_empty());
    let before = all_rows(&t.bob.raw());
    assert_eq!(t.bob.store.write(&unit).unwrap().bytes, 0);
    assert_eq!(all_rows(&t.bob.raw()), before);
}

#[test]
fn a_write_reads_only_the_rows_it_writes() {
    // Writing a unit costs the unit's records, not the whole state: a damaged row the unit does
    // not touch is not read (and the next load names it).
    let mut t = two("store: write cost");
    let raw = t.bob.raw();
    let one_time: Vec<u8> = all_rows(&raw)
        .into_iter()
        .map(|(_, key, _)| key)
        .find(|key| key.first() == Some(&0x04))
        .expect("a one-time prekey record");
    put(&raw, "device", &one_time, b"damaged");
    t.alice_to_bob(b"a unit that does not touch the damaged row");
    match t.bob.reload() {
        Err(StoreError::RecordDoesNotOpen(record)) => {
            assert_eq!(record, RecordId::Device(one_time));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_in_any_row_is_a_typed_error() {
    let t = two("store: garbage");
    let raw = t.bob.raw();
    let rows = all_rows(&raw);
    for (slot, key, value) in &rows {
        for garbage in [Vec::new(), vec![0xff; 3], value[..value.len() / 2].to_vec()] {
            put(&raw, slot, key, &garbage);
            let result = SqliteStore::open(&t.bob.path, t.bob.key.clone())
                .and_then(|store| store.load(0).map(|_| ()));
            assert!(result.is_err(), "{slot} {key:02x?}");
            put(&raw, slot, key, value);
        }
    }
    assert!(t.bob.reload().is_ok());
    // Rows the store does not own are not read.
    put(&raw, "elsewhere", b"x", b"y");
    assert!(t.bob.reload().is_ok());
    // Every row under the primary's slot is the store's: one it did not write is refused.
    put(&raw, "primary", b"x", b"y");
    assert!(matches!(
        t.bob.reload(),
        Err(StoreError::RecordDoesNotOpen(RecordId::Primary(key))) if key == b"x"
    ));
}

#[test]
fn errors_name_the_record_and_never_its_value() {
    let key = vec![0x08, 0xab, 0x01];
    let error = StoreError::RecordReplaced {
        record: RecordId::Device(key),
        sealed_at: 4,
    };
    assert_eq!(
        error.to_string(),
        "device record 08ab01 was replaced by another sealed copy (sealed at epoch 4)"
    );
    assert_eq!(
        StoreError::RecordMissing(RecordId::Primary(vec![0x84, 0, 0, 0, 0, 0, 0, 0, 7]))
            .to_string(),
        "primary record 840000000000000007 was deleted"
    );
    assert_eq!(
        StoreError::RecordMissing(RecordId::PrimaryBlob).to_string(),
        "primary blob was deleted"
    );
}
