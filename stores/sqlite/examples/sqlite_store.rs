//! Persisting a device in SQLite, one transaction per operation, and surviving a crash.
//!
//! The library does no I/O: after every operation the app takes the device's changes — a unit
//! of keyed records — and writes them in one transaction, before it acts on the operation's
//! output (ships envelopes, acknowledges a delivery). This demo does that with
//! `ratchetry_sqlite::SqliteStore`, which seals every record under the app's storage key and
//! checks every row when it loads them:
//!
//! 1. Alice and Bob set up one device each; each device and its account's primary live in their
//!    own database file.
//! 2. Alice sends; Bob receives and writes each unit (a few hundred bytes, whatever the size of
//!    his address book).
//! 3. Bob's app crashes after decrypting a message but before its transaction commits: the
//!    relay still holds the envelope (Bob never acknowledged it), Bob reloads from the
//!    database and reads it again — nothing lost, and no key was used twice.
//! 4. Bob replies after the restart, and the conversation goes on.
//!
//! Run with `cargo run --example sqlite_store`.

use std::path::{Path, PathBuf};

use getrandom::{SysRng, rand_core::UnwrapErr};
use ratchetry::devices::{DeviceId, Primary, PrimaryPolicy};
use ratchetry::fanout::{Device, DeviceConfig, Outbox, Outgoing, Received};
use ratchetry::persist::StorageKey;
use ratchetry::{Error, IdentityKeyPair, Timestamp};
use ratchetry_sqlite::{SqliteStore, Written};

type Rng = UnwrapErr<SysRng>;

/// What an app keeps outside its database, where a restore of the database does not reach
/// (the platform keystore): the storage key and the epochs last written.
struct Keystore {
    key: StorageKey,
    device_epoch: u64,
    primary_epoch: u64,
}

/// A one-device account: its primary, its device, its database.
struct Person {
    primary: Primary,
    device: Device,
    store: SqliteStore,
    keystore: Keystore,
}

impl Person {
    fn new(rng: &mut Rng, now: Timestamp, path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let identity = IdentityKeyPair::generate(rng);
        let mut primary = Primary::new(rng, &identity, now, PrimaryPolicy::default());
        let (device, _one_time_prekeys_to_upload) = Device::new(
            rng,
            now,
            identity,
            DeviceId(1),
            primary.device_list().clone(),
            10,
            DeviceConfig::default(),
        )?;
        let key = StorageKey::generate(rng);
        let mut store = SqliteStore::open(path, key.clone())?;
        // The primary's first unit holds all its records; later ones only what changed.
        let primary_epoch = store.write_primary(&primary.take_changes(rng))?.epoch;
        let mut person = Self {
            primary,
            device,
            store,
            keystore: Keystore {
                key,
                device_epoch: 0,
                primary_epoch,
            },
        };
        person.persist()?;
        Ok(person)
    }

    /// Writes the device's changes in one transaction, and keeps the epoch outside.
    fn persist(&mut self) -> Result<Written, Box<dyn std::error::Error>> {
        let written = self
            .store
            .write(&self.device.take_changes(&mut ratchetry::os_rng()))?;
        self.keystore.device_epoch = written.epoch;
        Ok(written)
    }

    /// The app starts again: opens its database and loads the device and the primary, checked
    /// against the epochs it kept.
    fn restart(keystore: Keystore, path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let store = SqliteStore::open(path, keystore.key.clone())?;
        let device = store
            .load(keystore.device_epoch)?
            .ok_or("no device stored")?;
        let primary = store
            .load_primary(keystore.primary_epoch)?
            .ok_or("no primary stored")?;
        Ok(Self {
            primary,
            device,
            store,
            keystore,
        })
    }

    /// Sends `body` to `to`'s account, fetching what is missing from `to` (the relay's job in
    /// a real app). The unit is written before the envelopes leave.
    fn send(
        &mut self,
        rng: &mut Rng,
        now: Timestamp,
        to: &Person,
        body: &[u8],
    ) -> Result<Outbox, Box<dyn std::error::Error>> {
        loop {
            match self.device.send(rng, now, &to.primary.account(), body)? {
                Outgoing::Ready(outbox) => {
                    self.persist()?;
                    return Ok(outbox);
                }
                Outgoing::NeedDeviceLists(_) => {
                    let list = to.primary.device_list().signed().clone();
                    self.device
                        .update_device_list(now, &to.primary.account(), list)?;
                }
                Outgoing::NeedBundles(missing) => {
                    let bundles: Vec<_> = missing
                        .into_iter()
                        .map(|a| (a, to.device.bundle(None, None)))
                        .collect();
                    self.device.start_sessions(rng, now, &bundles)?;
                }
            }
        }
    }

    /// Reads an envelope from `from`, whose device list is fetched if needed (nothing written).
    fn read(
        &mut self,
        now: Timestamp,
        from: &Person,
        envelope: &[u8],
    ) -> Result<Received, Box<dyn std::error::Error>> {
        Ok(match self.device.receive(now, envelope) {
            Err(Error::Fanout(ratchetry::FanoutError::UnknownAccount(_))) => {
                let list = from.primary.device_list().signed().clone();
                self.device
                    .update_device_list(now, &from.primary.account(), list)?;
                self.device.receive(now, envelope)?
            }
            other => other?,
        })
    }

    /// Reads an envelope and writes the unit. Returns the message and the bytes written.
    fn receive(
        &mut self,
        now: Timestamp,
        from: &Person,
        envelope: &[u8],
    ) -> Result<(Received, usize), Box<dyn std::error::Error>> {
        let received = self.read(now, from, envelope)?;
        let written = self.persist()?;
        Ok((received, written.bytes))
    }

    /// (rows, bytes) in the store's table.
    fn size(&self) -> rusqlite::Result<(i64, i64)> {
        self.store.connection().query_row(
            "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM ratchetry_rows",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }
}

fn text(received: &Received) -> String {
    match received {
        Received::Direct { body, .. } => String::from_utf8_lossy(body).into_owned(),
        other => format!("{other:?}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rng = &mut UnwrapErr(SysRng);
    let mut now = Timestamp(1_790_000_000_000);
    let dir = TempDir::new()?;
    let bob_db = dir.0.join("bob.db");

    let mut alice = Person::new(rng, now, &dir.0.join("alice.db"))?;
    let mut bob = Person::new(rng, now, &bob_db)?;
    let (rows, bytes) = bob.size()?;
    println!("Bob's new device and primary: {rows} rows, {bytes} bytes in bob.db");

    // Alice writes; the relay queues the envelopes for Bob's device.
    let mut queue: Vec<Vec<u8>> = Vec::new();
    for line in [
        "hi Bob",
        "are you there?",
        "this one arrives during a crash",
    ] {
        now = now.plus_millis(1_000);
        let outbox = alice.send(rng, now, &bob, line.as_bytes())?;
        queue.extend(outbox.envelopes.into_iter().map(|(_, e)| e));
    }

    // Bob reads the first two; each read is one transaction of a few hundred bytes.
    for envelope in queue.drain(..2) {
        let (received, bytes) = bob.receive(now, &alice, &envelope)?;
        println!("Bob reads {:?}: wrote {bytes} bytes", text(&received));
    }

    // Bob's app decrypts the third and starts its transaction, then crashes before the commit:
    // its changes are lost with the process, and the relay keeps the envelope (never
    // acknowledged).
    let crashed = bob.read(now, &alice, &queue[0])?;
    let unit = bob.device.take_changes(rng);
    let mut transaction = bob.store.transaction()?;
    transaction.write(&unit)?;
    println!(
        "Bob decrypts {:?}, then his app crashes before the commit",
        text(&crashed)
    );
    drop(transaction);
    let keystore = bob.keystore;
    let mut bob = Person::restart(keystore, &bob_db)?;
    let (rows, bytes) = bob.size()?;
    println!("Bob's app restarts: loaded and checked {rows} rows ({bytes} bytes) from bob.db");

    // The relay redelivers: the message reads again (its key was never written as used).
    for envelope in queue.drain(..) {
        let (received, bytes) = bob.receive(now, &alice, &envelope)?;
        println!(
            "Bob reads {:?} after the restart: wrote {bytes} bytes",
            text(&received)
        );
    }

    // Bob answers; Alice reads.
    now = now.plus_millis(1_000);
    let outbox = bob.send(rng, now, &alice, b"here, after a crash")?;
    for (_, envelope) in &outbox.envelopes {
        let (received, bytes) = alice.receive(now, &bob, envelope)?;
        println!("Alice reads {:?}: wrote {bytes} bytes", text(&received));
    }
    let whole = bob.device.to_bytes().len();
    let (rows, bytes) = bob.size()?;
    println!(
        "bob.db holds {rows} rows, {bytes} bytes; the whole state (for backups) is {whole} bytes"
    );
    Ok(())
}

/// A directory removed when the demo ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("ratchetry-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
