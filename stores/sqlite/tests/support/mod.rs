//! Two people with one phone each, every phone persisted in its own database through the
//! store; the other person stands in for the relay (device lists, prekey bundles).

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed step fails the test"
)]

use std::path::{Path, PathBuf};

use ratchetry::devices::{PRIMARY_DEVICE, Primary, PrimaryPolicy};
use ratchetry::fanout::{Device, DeviceConfig, Outbox, Outgoing, Received};
use ratchetry::persist::StorageKey;
use ratchetry::testing::SeededRng;
use ratchetry::{Error, FanoutError, IdentityKeyPair, Timestamp};
use ratchetry_sqlite::{SqliteStore, StoreError};
use rusqlite::{Connection, params};

pub const T0: Timestamp = Timestamp(1_790_000_000_000);

/// Alice and Bob, each with a phone persisted in its own database, after Alice wrote once and
/// Bob read it: the generator, both, and the directory holding their databases.
pub fn two(label: &str) -> (SeededRng, Person, Person, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::from_label(label);
    let mut alice = Person::new(&mut rng, dir.path(), "alice");
    let mut bob = Person::new(&mut rng, dir.path(), "bob");
    let outbox = alice.send(&mut rng, T0, &bob, b"hi Bob");
    assert_eq!(bob.receive(T0, &alice, &envelope(&outbox)), b"hi Bob");
    (rng, alice, bob, dir)
}

/// One account with one phone, its database, and what its app keeps outside the database.
pub struct Person {
    pub primary: Primary,
    pub device: Device,
    pub store: SqliteStore,
    pub path: PathBuf,
    pub key: StorageKey,
    /// The epoch of the last unit written, kept outside the database.
    pub last_epoch: u64,
    /// The epoch of the last primary written, kept outside the database.
    pub primary_epoch: u64,
}

impl Person {
    /// A new account; its phone's first unit and its primary are written.
    pub fn new(rng: &mut SeededRng, dir: &Path, name: &str) -> Self {
        Self::with_key(rng, dir, name, None)
    }

    /// A new account whose database is under `key` (drawn after the device's keys if `None`).
    pub fn with_key(rng: &mut SeededRng, dir: &Path, name: &str, key: Option<StorageKey>) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let primary = Primary::new(rng, &identity, T0, PrimaryPolicy::default());
        let list = primary.device_list().clone();
        let (device, _) = Device::new(
            rng,
            T0,
            identity,
            PRIMARY_DEVICE,
            list,
            5,
            DeviceConfig::default(),
        )
        .unwrap();
        let key = key.unwrap_or_else(|| StorageKey::generate(rng));
        let path = dir.join(format!("{name}.db"));
        let store = SqliteStore::open(&path, key.clone()).unwrap();
        let mut person = Self {
            primary,
            device,
            store,
            path,
            key,
            last_epoch: 0,
            primary_epoch: 0,
        };
        person.persist_primary();
        person.persist();
        person
    }

    /// Writes the primary's pending changes.
    pub fn persist_primary(&mut self) {
        let unit = self.primary.take_changes(&mut ratchetry::os_rng());
        self.primary_epoch = self.store.write_primary(&unit).unwrap().epoch;
    }

    /// Writes the device's pending changes.
    pub fn persist(&mut self) {
        let unit = self.device.take_changes(&mut ratchetry::os_rng());
        self.last_epoch = self.store.write(&unit).unwrap().epoch;
    }

    /// The app restarts: the database is opened again and the device loaded from it.
    pub fn restart(&mut self) {
        self.store = SqliteStore::open(&self.path, self.key.clone()).unwrap();
        self.device = self.store.load(self.last_epoch).unwrap().expect("a device");
    }

    /// The app restarts, and reports what the load says.
    pub fn reload(&self) -> Result<Option<Device>, StoreError> {
        SqliteStore::open(&self.path, self.key.clone())?.load(self.last_epoch)
    }

    /// A raw connection to the database, as someone who can write the file holds it.
    pub fn raw(&self) -> Connection {
        Connection::open(&self.path).unwrap()
    }

    /// Sends `body` to `to`'s account, fetching lists and bundles from `to`, and writes the
    /// unit before the envelopes leave.
    pub fn send(
        &mut self,
        rng: &mut SeededRng,
        now: Timestamp,
        to: &Person,
        body: &[u8],
    ) -> Outbox {
        loop {
            match self
                .device
                .send(rng, now, &to.primary.account(), body)
                .unwrap()
            {
                Outgoing::Ready(outbox) => {
                    self.persist();
                    return outbox;
                }
                Outgoing::NeedDeviceLists(_) => {
                    let list = to.primary.device_list().signed().clone();
                    self.device
                        .update_device_list(now, &to.primary.account(), list)
                        .unwrap();
                }
                Outgoing::NeedBundles(missing) => {
                    let bundles: Vec<_> = missing
                        .into_iter()
                        .map(|a| (a, to.device.bundle(None, None)))
                        .collect();
                    self.device.start_sessions(rng, now, &bundles).unwrap();
                }
            }
        }
    }

    /// Reads an envelope from `from` (following its list if needed), without writing.
    pub fn read(
        &mut self,
        now: Timestamp,
        from: &Person,
        envelope: &[u8],
    ) -> Result<Received, Error> {
        match self.device.receive(now, envelope) {
            Err(Error::Fanout(FanoutError::UnknownAccount(_))) => {
                let list = from.primary.device_list().signed().clone();
                self.device
                    .update_device_list(now, &from.primary.account(), list)?;
                self.device.receive(now, envelope)
            }
            other => other,
        }
    }

    /// Reads an envelope and writes the unit; returns the body.
    pub fn receive(&mut self, now: Timestamp, from: &Person, envelope: &[u8]) -> Vec<u8> {
        let received = self.read(now, from, envelope).unwrap();
        self.persist();
        body(&received)
    }
}

/// The body of a direct message.
pub fn body(received: &Received) -> Vec<u8> {
    match received {
        Received::Direct { body, .. } => body.clone(),
        other => panic!("not a direct message: {other:?}"),
    }
}

/// The single envelope of an outbox (one recipient device, no other own device).
pub fn envelope(outbox: &Outbox) -> Vec<u8> {
    assert_eq!(outbox.envelopes.len(), 1);
    outbox.envelopes[0].1.clone()
}

/// The sealed value stored for a device record.
pub fn stored(db: &Connection, slot: &str, key: &[u8]) -> Option<Vec<u8>> {
    db.query_row(
        "SELECT value FROM ratchetry_rows WHERE slot = ?1 AND key = ?2",
        params![slot, key],
        |row| row.get(0),
    )
    .ok()
}

/// Puts a row's value (as someone who can write the file).
pub fn put(db: &Connection, slot: &str, key: &[u8], value: &[u8]) {
    db.execute(
        "INSERT OR REPLACE INTO ratchetry_rows VALUES (?1, ?2, ?3)",
        params![slot, key, value],
    )
    .unwrap();
}

/// Every row of the store's table.
pub fn all_rows(db: &Connection) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut query = db
        .prepare("SELECT slot, key, value FROM ratchetry_rows")
        .unwrap();
    query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Replaces the whole table with `rows`: the database put back to an earlier copy.
pub fn put_back(db: &Connection, rows: &[(String, Vec<u8>, Vec<u8>)]) {
    db.execute("DELETE FROM ratchetry_rows", []).unwrap();
    for (slot, key, value) in rows {
        put(db, slot, key, value);
    }
}

/// Alice seals `text` to Bob (her unit written); the envelope to Bob's phone.
pub fn from_alice(rng: &mut SeededRng, alice: &mut Person, bob: &Person, text: &[u8]) -> Vec<u8> {
    envelope(&alice.send(rng, T0, bob, text))
}

/// `device` reads `envelope` (a direct message from `from`), following `from`'s list if asked.
pub fn read_with(device: &mut Device, from: &Person, envelope: &[u8]) -> Result<Vec<u8>, Error> {
    let received = match device.receive(T0, envelope) {
        Err(Error::Fanout(ratchetry::FanoutError::UnknownAccount(_))) => {
            let list = from.primary.device_list().signed().clone();
            device.update_device_list(T0, &from.primary.account(), list)?;
            device.receive(T0, envelope)?
        }
        other => other?,
    };
    Ok(body(&received))
}
