//! Persisting a device in SQLite, one transaction per operation, and surviving a crash.
//!
//! The library does no I/O: after every operation the app takes the device's changes — a unit
//! of keyed records — and writes them in one transaction, before it acts on the operation's
//! output (ships envelopes, acknowledges a delivery). This demo does that with `rusqlite`:
//!
//! 1. Alice and Bob set up one device each; each device lives in its own database file.
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
use ratchetry::devices::{DeviceId, DevicePolicy, Primary};
use ratchetry::fanout::{Device, DeviceConfig, Outbox, Outgoing, Received, StateChanges};
use ratchetry::{Error, IdentityKeyPair, Timestamp};
use rusqlite::{Connection, params};

type Rng = UnwrapErr<SysRng>;

/// One device's database: a table of records, keyed by the record key.
struct Store {
    db: Connection,
}

impl Store {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS records (
                 key BLOB PRIMARY KEY NOT NULL,
                 value BLOB NOT NULL
             ) WITHOUT ROWID;",
        )?;
        Ok(Self { db })
    }

    /// Writes one unit in one transaction: a record with a value is upserted, one without is
    /// deleted; a unit that replaces all (a new device, a restore) empties the table first.
    /// Returns the bytes written.
    fn write(&mut self, unit: StateChanges) -> rusqlite::Result<usize> {
        let bytes = unit.byte_len();
        let tx = self.db.transaction()?;
        if unit.replaces_all() {
            tx.execute("DELETE FROM records", [])?;
        }
        {
            let mut put = tx.prepare_cached("INSERT OR REPLACE INTO records VALUES (?1, ?2)")?;
            let mut delete = tx.prepare_cached("DELETE FROM records WHERE key = ?1")?;
            for record in unit.records() {
                match record.value() {
                    Some(value) => put.execute(params![record.key(), value])?,
                    None => delete.execute(params![record.key()])?,
                };
            }
        }
        tx.commit()?;
        Ok(bytes)
    }

    /// Loads the device from every record.
    fn load(&self) -> Result<Device, Box<dyn std::error::Error>> {
        let mut query = self.db.prepare("SELECT key, value FROM records")?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = query
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Device::from_records(
            rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
        )?)
    }

    /// (records, bytes) stored.
    fn size(&self) -> rusqlite::Result<(i64, i64)> {
        self.db.query_row(
            "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM records",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }
}

/// A one-device account: its primary state (which an app would store too) and its device.
struct Person {
    primary: Primary,
    device: Device,
    store: Store,
}

impl Person {
    fn new(rng: &mut Rng, now: Timestamp, path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let identity = IdentityKeyPair::generate(rng);
        let primary = Primary::new(rng, &identity, now, DevicePolicy::default());
        let (mut device, _one_time_prekeys_to_upload) = Device::new(
            rng,
            now,
            identity,
            DeviceId(1),
            primary.device_list().clone(),
            10,
            DeviceConfig::default(),
        )?;
        let mut store = Store::open(path)?;
        store.write(device.take_changes())?;
        Ok(Self {
            primary,
            device,
            store,
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
                    self.store.write(self.device.take_changes())?;
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

    /// Reads an envelope from `from`, whose device list is fetched if needed, and writes the
    /// unit. Returns the message and the bytes written.
    fn receive(
        &mut self,
        now: Timestamp,
        from: &Person,
        envelope: &[u8],
    ) -> Result<(Received, usize), Box<dyn std::error::Error>> {
        let received = match self.device.receive(now, envelope) {
            Err(Error::Fanout(ratchetry::FanoutError::UnknownAccount(_))) => {
                let list = from.primary.device_list().signed().clone();
                self.device
                    .update_device_list(now, &from.primary.account(), list)?;
                self.device.receive(now, envelope)?
            }
            other => other?,
        };
        let bytes = self.store.write(self.device.take_changes())?;
        Ok((received, bytes))
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

    let mut alice = Person::new(rng, now, &dir.0.join("alice.db"))?;
    let mut bob = Person::new(rng, now, &dir.0.join("bob.db"))?;
    let (records, bytes) = bob.store.size()?;
    println!("Bob's new device: {records} records, {bytes} bytes in bob.db");

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

    // Bob's app decrypts the third, then crashes before writing the unit: its changes are
    // lost with the process, and the relay keeps the envelope (never acknowledged).
    let crashed = bob.device.receive(now, &queue[0])?;
    println!(
        "Bob decrypts {:?}, then his app crashes before the transaction",
        text(&crashed)
    );
    let Person { primary, store, .. } = bob;
    drop(store);
    let store = Store::open(&dir.0.join("bob.db"))?;
    let device = store.load()?;
    let mut bob = Person {
        primary,
        device,
        store,
    };
    let (records, bytes) = bob.store.size()?;
    println!("Bob's app restarts: loaded {records} records ({bytes} bytes) from bob.db");

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
    let (records, bytes) = bob.store.size()?;
    println!(
        "bob.db holds {records} records, {bytes} bytes; the whole state (for backups) is {whole} bytes"
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
