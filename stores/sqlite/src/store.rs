//! [`SqliteStore`]: opening the database, writing units and the primary in transactions, and
//! loading them back after checking every row against the meta row.

use std::path::Path;

use ratchetry::devices::{Primary, PrimaryChanges};
use ratchetry::fanout::{Device, Record, StateChanges};
use ratchetry::persist::{StorageKey, UnitTag, open_state, seal_state};
use ratchetry::{OsRng, Timestamp};
use rusqlite::{Connection, TransactionBehavior};
use zeroize::Zeroizing;

use crate::error::{RecordId, Role, StoreError};
use crate::rows::{
    self, DEVICE, DIGEST_KEY_NAME, DIGEST_KEY_ROW, META_NAME, META_ROW, PRIMARY, SAME_KEY_NAME,
    STORE, open_record, seal_name,
};
use crate::summary::{DigestKey, Summary};

/// The store's format: the first byte of its key row.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// A device's records and its account's [`Primary`], in one SQLite database, every value sealed
/// under the app's [`StorageKey`] and every row checked on load (see the [crate](crate) docs).
///
/// Randomness (the nonces of the seals, the store's digest key) comes from the operating
/// system's RNG ([`ratchetry::OsRng`], which panics if the operating system has none).
pub struct SqliteStore {
    db: Connection,
    storage_key: StorageKey,
    digest_key: DigestKey,
    rng: OsRng,
}

/// What a write stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The epoch of the state written (the device's or the primary's): keep the latest outside
    /// the database, and pass it to the next load.
    pub epoch: u64,
    /// Bytes written: the keys and sealed values of the rows put, the keys of the rows
    /// deleted, and the meta row.
    pub bytes: usize,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`. See [`from_connection`](Self::from_connection).
    pub fn open(path: impl AsRef<Path>, storage_key: StorageKey) -> Result<Self, StoreError> {
        Self::from_connection(Connection::open(path)?, storage_key)
    }

    /// Uses an open connection: sets WAL mode and `synchronous = FULL` (a committed unit
    /// survives a power loss), creates the store's table (`ratchetry_rows`) if missing, and
    /// checks the storage key against the database ([`StoreError::WrongStorageKey`]). The
    /// app may keep its own tables in the same database.
    pub fn from_connection(
        mut db: Connection,
        storage_key: StorageKey,
    ) -> Result<Self, StoreError> {
        // Whatever mode SQLite settles on (an in-memory database answers "memory"), each
        // transaction stays atomic.
        db.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(rows::SCHEMA)?;
        let mut rng = ratchetry::os_rng();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let digest_key = match rows::get(&tx, STORE, DIGEST_KEY_ROW)? {
            Some(sealed) => read_digest_key(&storage_key, &sealed)?,
            None if rows::any(&tx)? => return Err(StoreError::DigestKeyMissing),
            None => new_digest_key(&tx, &mut rng, &storage_key)?,
        };
        tx.commit()?;
        Ok(Self {
            db,
            storage_key,
            digest_key,
            rng,
        })
    }

    /// Writes one unit of the device's changes in one transaction: every record value sealed
    /// under its own record key at the unit's epoch, deletions applied, a unit that
    /// [`replaces_all`](StateChanges::replaces_all) emptying the device's rows first, and the
    /// meta row updated for these rows only. Write the unit before acting on the operation's
    /// output; an empty unit writes nothing, but is checked as any other.
    ///
    /// A unit that does not replace all needs a device stored ([`StoreError::NotStored`]). No
    /// unit may end below the epoch stored ([`StoreError::EpochWentBack`]), and a unit with a
    /// base ([`base_epoch`](StateChanges::base_epoch)) must start from it: else a unit before
    /// it was not written (a gap), and it is refused as [`StoreError::UnitGap`], nothing
    /// written, an empty unit included. Starting from the stored epoch, it must also start
    /// from the stored unit ([`base_tag`](StateChanges::base_tag)): else another live copy of
    /// the device wrote it, and it is refused as [`StoreError::AnotherCopy`]. A unit that
    /// replaces all with a base (a device loaded from bytes) is checked so where a device is
    /// stored; one without (a new or restored device) is written whatever is stored.
    pub fn write(&mut self, unit: &StateChanges) -> Result<Written, StoreError> {
        let mut tx = self.transaction()?;
        let written = tx.write(unit)?;
        tx.commit()?;
        Ok(written)
    }

    /// Writes one unit of the primary's changes ([`Primary::take_changes`], after every change
    /// to it, before publishing what it signed) in one transaction, as [`write`](Self::write)
    /// writes the device's: each record sealed under its own key at the unit's epoch, checked
    /// on load the same way. A unit that [`replaces_all`](PrimaryChanges::replaces_all) deletes
    /// the primary's rows first (the previous version's blob included: that is its migration).
    /// A unit that does not start from the stored epoch is [`StoreError::UnitGap`], and one
    /// that starts from it but not from the stored tag [`StoreError::AnotherCopy`], as for the
    /// device.
    pub fn write_primary(&mut self, unit: &PrimaryChanges) -> Result<Written, StoreError> {
        let mut tx = self.transaction()?;
        let written = tx.write_primary(unit)?;
        tx.commit()?;
        Ok(written)
    }

    /// A transaction to write several things at once: units, the primary, and the app's own
    /// rows (the body of a message just read, beside the unit that read it). Nothing is written
    /// unless it is [committed](StoreTransaction::commit); dropping it rolls it back.
    pub fn transaction(&mut self) -> Result<StoreTransaction<'_>, StoreError> {
        Ok(StoreTransaction {
            tx: self
                .db
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            storage_key: &self.storage_key,
            digest_key: &self.digest_key,
            rng: &mut self.rng,
        })
    }

    /// Loads the device, after checking every row (see the [crate](crate) docs). `last_epoch`
    /// is the epoch of the last unit written ([`Written::epoch`]), kept outside the database
    /// (0 if the app keeps none); a stored state older than that is
    /// [`StoreError::StaleSnapshot`]. `None`: no device is stored (and none was written).
    pub fn load(&self, last_epoch: u64) -> Result<Option<Device>, StoreError> {
        let snapshot = self.snapshot()?;
        let Some(epoch) = snapshot.device_epoch else {
            return match last_epoch {
                0 => Ok(None),
                _ => Err(stale(Role::Device, None, last_epoch)),
            };
        };
        if epoch < last_epoch {
            return Err(stale(Role::Device, Some(epoch), last_epoch));
        }
        Ok(Some(snapshot.device()?))
    }

    /// Loads the device as restored from a backup, for an app that knows (or accepts) that the
    /// database was rolled back as a whole: after [`StoreError::StaleSnapshot`], or when it
    /// restored the database file from a backup. The rows are checked as by
    /// [`load`](Self::load); the device is then restored as
    /// `Device::restore(bytes, last_epoch, now)` restores a stale snapshot, so it never reuses
    /// a key it may have used after the snapshot, and its epoch continues above `last_epoch`.
    /// Write its next unit (the whole state) at once.
    pub fn load_restored(&self, last_epoch: u64, now: Timestamp) -> Result<Device, StoreError> {
        let snapshot = self.snapshot()?;
        let epoch = snapshot
            .device_epoch
            .ok_or(StoreError::NotStored(Role::Device))?;
        let device = snapshot.device()?;
        if epoch >= last_epoch {
            return Ok(device.into_restored(now));
        }
        let (device, _) = Device::restore(&device.to_bytes(), last_epoch, now)?;
        Ok(device)
    }

    /// Loads the primary from its records, after checking every row. `last_epoch` is the epoch
    /// of the last primary unit written ([`Written::epoch`]), kept outside the database (0 if
    /// none); an older stored primary is [`StoreError::StaleSnapshot`]. `None`: no primary is
    /// stored.
    ///
    /// A database of the previous version holds the primary as one blob: it loads from that,
    /// and the primary's next [`take_changes`](Primary::take_changes) holds every record and
    /// replaces the blob. Write it at once.
    pub fn load_primary(&self, last_epoch: u64) -> Result<Option<Primary>, StoreError> {
        let snapshot = self.snapshot()?;
        let Some(epoch) = snapshot.primary_epoch else {
            return match last_epoch {
                0 => Ok(None),
                _ => Err(stale(Role::Primary, None, last_epoch)),
            };
        };
        if epoch < last_epoch {
            return Err(stale(Role::Primary, Some(epoch), last_epoch));
        }
        Ok(Some(match snapshot.primary()? {
            PrimaryRows::Blob(bytes) => Primary::from_bytes(bytes)?,
            PrimaryRows::Records(records) => Primary::from_records(pairs(records))?,
        }))
    }

    /// Loads the primary as restored from a backup (it must resync before it signs again; see
    /// `Primary::restore_from_records`), for an app that knows or accepts that the database was
    /// rolled back. Write its next unit at once.
    pub fn load_primary_restored(&self, last_epoch: u64) -> Result<Primary, StoreError> {
        let snapshot = self.snapshot()?;
        let epoch = snapshot
            .primary_epoch
            .ok_or(StoreError::NotStored(Role::Primary))?;
        let stale = epoch < last_epoch;
        Ok(match snapshot.primary()? {
            PrimaryRows::Blob(bytes) if stale => Primary::restore(bytes, last_epoch)?.0,
            PrimaryRows::Blob(bytes) => Primary::restore_from_backup(bytes)?,
            PrimaryRows::Records(records) if stale => {
                Primary::restore_from_records(pairs(records), last_epoch)?.0
            }
            PrimaryRows::Records(records) => Primary::from_records(pairs(records))?.into_restored(),
        })
    }

    /// Empties the store and starts it anew under `storage_key`, in one transaction: every
    /// row of `ratchetry_rows` (the device's, the primary's, the store's own) is deleted, and a
    /// new digest key is
    /// sealed under the new key. For a device that links again (a new identity), or another
    /// account, in this database: the storage key is what binds a database to one device, so
    /// a copy of the file from before the reset, put back, does not open under the new key
    /// ([`StoreError::WrongStorageKey`]), and a database of another device does not either.
    /// Keep the new key in place of the old one, forget the old one (the deleted values,
    /// sealed under it, may stay in SQLite's free pages until they are overwritten), and
    /// start the epochs kept outside the database from 0 again. Close every other handle on
    /// the database first: one opened before the reset still holds the old keys, and a write
    /// through it blocks the new key (`MetaDoesNotOpen`) until another reset.
    ///
    /// The old key is [`StoreError::SameStorageKey`], nothing deleted. The app's own tables
    /// are left as they are: delete what of them belonged to the old device in the same
    /// transaction, after this returns, through [`connection`](Self::connection) (or reset
    /// in [`transaction`](Self::transaction)'s place, then write them).
    pub fn reset(&mut self, storage_key: StorageKey) -> Result<(), StoreError> {
        // The key this store holds, and the key the file's digest key row opens under: the
        // row alone would let a reset under the current key through once the row is gone
        // (review 48), and a copy from before the reset would then open.
        if same_key(&mut self.rng, &self.storage_key, &storage_key) {
            return Err(StoreError::SameStorageKey);
        }
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(sealed) = rows::get(&tx, STORE, DIGEST_KEY_ROW)?
            && read_digest_key(&storage_key, &sealed).is_ok()
        {
            return Err(StoreError::SameStorageKey);
        }
        rows::delete_all(&tx)?;
        let digest_key = new_digest_key(&tx, &mut self.rng, &storage_key)?;
        tx.commit()?;
        self.storage_key = storage_key;
        self.digest_key = digest_key;
        Ok(())
    }

    /// The connection, for the app's own queries. Do not write to `ratchetry_rows`.
    pub fn connection(&self) -> &Connection {
        &self.db
    }

    /// Reads every row in one read transaction, opens each under its own name, and checks them
    /// against the meta row.
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.unchecked_transaction()?;
        let meta = rows::get(&tx, STORE, META_ROW)?;
        let records = rows::all_records(&tx)?;
        tx.finish()?;
        let Some(meta) = meta else {
            if records.is_empty() {
                return Ok(Snapshot::default());
            }
            return Err(StoreError::MetaMissing);
        };
        let vouched = open_meta(&self.storage_key, &meta)?;
        let mut found = Summary::default();
        let mut entries = Vec::with_capacity(records.len());
        let mut snapshot = Snapshot {
            device_epoch: vouched.device_epoch,
            primary_epoch: vouched.primary_epoch,
            ..Snapshot::default()
        };
        for (record, sealed) in records {
            let (value, sealed_at) = open_record(&self.storage_key, &record, &sealed)?;
            let meta_epoch = match record {
                RecordId::Device(_) => vouched.device_epoch,
                RecordId::Primary(_) | RecordId::PrimaryBlob => vouched.primary_epoch,
            };
            if let Some(meta_epoch) = meta_epoch
                && sealed_at > meta_epoch
            {
                return Err(StoreError::MetaRolledBack {
                    record,
                    sealed_at,
                    meta_epoch,
                });
            }
            let entry = self.digest_key.entry(&record, sealed_at, &sealed);
            found.add(&entry);
            match &record {
                RecordId::Device(key) => snapshot.device.push((key.clone(), value)),
                RecordId::Primary(key) => snapshot.primary.push((key.clone(), value)),
                RecordId::PrimaryBlob => snapshot.primary_blob = Some(value),
            }
            entries.push((record, sealed_at, entry));
        }
        vouched.check(&found, &entries)?;
        Ok(snapshot)
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

/// An open write transaction of a [`SqliteStore`]: commit it, or drop it to roll it back.
pub struct StoreTransaction<'s> {
    tx: rusqlite::Transaction<'s>,
    storage_key: &'s StorageKey,
    digest_key: &'s DigestKey,
    rng: &'s mut OsRng,
}

impl StoreTransaction<'_> {
    /// Writes one unit of the device's changes (see [`SqliteStore::write`]).
    pub fn write(&mut self, unit: &StateChanges) -> Result<Written, StoreError> {
        self.write_unit(Role::Device, Link::of(unit), unit.records())
    }

    /// Writes one unit of the primary's changes (see [`SqliteStore::write_primary`]).
    pub fn write_primary(&mut self, unit: &PrimaryChanges) -> Result<Written, StoreError> {
        // A unit of changes to records the blob holds would leave the blob and records side by
        // side: only a unit of the whole state replaces the blob.
        if !unit.replaces_all() && !unit.is_empty() && rows::get(&self.tx, PRIMARY, &[])?.is_some()
        {
            return Err(StoreError::NotStored(Role::Primary));
        }
        self.write_unit(Role::Primary, Link::of(unit), unit.records())
    }

    /// Writes one unit of a role's records, linked to the stored state by `link`: the rows it
    /// puts and deletes, the role's rows all deleted first if it replaces all, and the meta
    /// row updated for these rows only. A unit with a base must start from the stored epoch
    /// and tag, an empty one too (it writes nothing then); one that replaces all may also
    /// write a role where none is stored.
    fn write_unit(
        &mut self,
        role: Role,
        link: Link,
        records: &[Record],
    ) -> Result<Written, StoreError> {
        let Link {
            base,
            replaces_all,
            epoch,
            tag,
        } = link;
        let (slot, record_id): (&str, fn(Vec<u8>) -> RecordId) = match role {
            Role::Device => (DEVICE, RecordId::Device),
            Role::Primary => (PRIMARY, RecordId::Primary),
        };
        let mut summary = self.vouched()?;
        let (stored, stored_tag) = match role {
            Role::Device => (&mut summary.device_epoch, &mut summary.device_tag),
            Role::Primary => (&mut summary.primary_epoch, &mut summary.primary_tag),
        };
        match (*stored, base) {
            // Only a unit of the whole state writes a state where none is.
            (None, Some(_)) if !replaces_all => return Err(StoreError::NotStored(role)),
            (Some(stored_epoch), _) if epoch < stored_epoch => {
                return Err(StoreError::EpochWentBack {
                    role,
                    stored_epoch,
                    epoch,
                });
            }
            (Some(stored_epoch), Some((base_epoch, _))) if base_epoch != stored_epoch => {
                return Err(StoreError::UnitGap {
                    role,
                    stored_epoch,
                    base_epoch,
                });
            }
            (Some(stored_epoch), Some((_, base_tag))) if base_tag != *stored_tag => {
                return Err(StoreError::AnotherCopy {
                    role,
                    epoch: stored_epoch,
                });
            }
            _ if records.is_empty() && !replaces_all => return Ok(Written { epoch, bytes: 0 }),
            _ => (*stored, *stored_tag) = (Some(epoch), tag),
        }
        if replaces_all {
            for (record, sealed) in rows::slot_records(&self.tx, slot)? {
                self.count_out(&mut summary, &record, &sealed)?;
            }
            rows::delete_slot(&self.tx, slot)?;
        }
        let mut bytes = 0;
        for r in records {
            let record = record_id(r.key().to_vec());
            if let Some(old) = rows::get(&self.tx, slot, r.key())? {
                self.count_out(&mut summary, &record, &old)?;
            }
            bytes += r.key().len();
            match r.value() {
                Some(value) => bytes += self.put(&mut summary, &record, epoch, value)?,
                None => rows::delete(&self.tx, slot, r.key())?,
            }
        }
        bytes += self.put_meta(&summary)?;
        Ok(Written { epoch, bytes })
    }

    /// The transaction's connection, for the app's own rows in the same transaction. Do not
    /// write to `ratchetry_rows`.
    pub fn connection(&self) -> &Connection {
        &self.tx
    }

    /// Commits everything written in this transaction.
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }

    /// The summary the meta row holds; an empty one for an empty store.
    fn vouched(&self) -> Result<Summary, StoreError> {
        match rows::get(&self.tx, STORE, META_ROW)? {
            Some(meta) => open_meta(self.storage_key, &meta),
            None if !rows::any_record(&self.tx)? => Ok(Summary::default()),
            None => Err(StoreError::MetaMissing),
        }
    }

    /// Takes a stored row out of the summary (it must open under its name).
    fn count_out(
        &self,
        summary: &mut Summary,
        record: &RecordId,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let (_, sealed_at) = open_record(self.storage_key, record, sealed)?;
        summary.remove(&self.digest_key.entry(record, sealed_at, sealed));
        Ok(())
    }

    /// Seals and stores a row's value at `epoch`, and counts it in. Returns the bytes stored.
    fn put(
        &mut self,
        summary: &mut Summary,
        record: &RecordId,
        epoch: u64,
        value: &[u8],
    ) -> Result<usize, StoreError> {
        let sealed = seal_state(self.rng, self.storage_key, &seal_name(record), epoch, value);
        let (slot, key) = rows::location(record);
        rows::put(&self.tx, slot, key, &sealed)?;
        summary.add(&self.digest_key.entry(record, epoch, &sealed));
        Ok(sealed.len())
    }

    /// Seals and stores the meta row. Returns the bytes stored.
    fn put_meta(&mut self, summary: &Summary) -> Result<usize, StoreError> {
        let sequence = summary.device_epoch.unwrap_or(0);
        let sealed = seal_state(
            self.rng,
            self.storage_key,
            META_NAME,
            sequence,
            &summary.to_bytes(),
        );
        rows::put(&self.tx, STORE, META_ROW, &sealed)?;
        Ok(META_ROW.len() + sealed.len())
    }
}

impl std::fmt::Debug for StoreTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTransaction").finish_non_exhaustive()
    }
}

/// What a unit says of its place in the chain (PROTOCOL.md 19): the epoch and tag it starts
/// from (`None`: it replaces all of a new or restored state, whatever is stored), whether it
/// replaces all, and the epoch and tag it ends at.
struct Link {
    base: Option<(u64, UnitTag)>,
    replaces_all: bool,
    epoch: u64,
    tag: UnitTag,
}

impl Link {
    fn of<S>(unit: &ratchetry::persist::Changes<S>) -> Self {
        Self {
            base: unit.base_epoch().zip(unit.base_tag()),
            replaces_all: unit.replaces_all(),
            epoch: unit.epoch(),
            tag: unit.tag(),
        }
    }
}

/// What the rows hold, checked.
#[derive(Default)]
struct Snapshot {
    device_epoch: Option<u64>,
    device: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    primary_epoch: Option<u64>,
    primary: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    /// The primary as the previous version stored it.
    primary_blob: Option<Zeroizing<Vec<u8>>>,
}

/// The primary's rows: its records, or the previous version's blob.
enum PrimaryRows<'a> {
    Blob(&'a [u8]),
    Records(&'a [(Vec<u8>, Zeroizing<Vec<u8>>)]),
}

impl Snapshot {
    fn device(&self) -> Result<Device, StoreError> {
        Ok(Device::from_records(pairs(&self.device))?)
    }

    fn primary(&self) -> Result<PrimaryRows<'_>, StoreError> {
        match &self.primary_blob {
            // The store never writes both (a unit replacing the blob deletes it first).
            Some(_) if !self.primary.is_empty() => Err(StoreError::RecordsMismatch),
            Some(blob) => Ok(PrimaryRows::Blob(blob)),
            None => Ok(PrimaryRows::Records(&self.primary)),
        }
    }
}

fn pairs(rows: &[(Vec<u8>, Zeroizing<Vec<u8>>)]) -> impl Iterator<Item = (&[u8], &[u8])> {
    rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
}

fn stale(role: Role, stored_epoch: Option<u64>, last_epoch: u64) -> StoreError {
    StoreError::StaleSnapshot {
        role,
        stored_epoch,
        last_epoch,
    }
}

/// Makes the store's random digest key and stores it sealed under the storage key.
fn new_digest_key(
    db: &Connection,
    rng: &mut OsRng,
    storage_key: &StorageKey,
) -> Result<DigestKey, StoreError> {
    let mut row = Zeroizing::new([0u8; 33]);
    row[0] = FORMAT_VERSION;
    rand_fill(rng, &mut row[1..]);
    let sealed = seal_state(rng, storage_key, DIGEST_KEY_NAME, 0, &row[..]);
    rows::put(db, STORE, DIGEST_KEY_ROW, &sealed)?;
    read_digest_key(storage_key, &sealed)
}

/// Whether `a` and `b` are one key, in constant time: a probe sealed under `a` opens under
/// `b` only then (the keys' bytes are not exposed to compare).
fn same_key(rng: &mut OsRng, a: &StorageKey, b: &StorageKey) -> bool {
    let probe = seal_state(rng, a, SAME_KEY_NAME, 0, &[]);
    open_state(b, &probe, SAME_KEY_NAME, 0).is_ok()
}

fn read_digest_key(storage_key: &StorageKey, sealed: &[u8]) -> Result<DigestKey, StoreError> {
    let opened = open_state(storage_key, sealed, DIGEST_KEY_NAME, 0)
        .map_err(|_| StoreError::WrongStorageKey)?;
    match opened.state.split_first() {
        Some((&FORMAT_VERSION, key)) => {
            let key: [u8; 32] = key.try_into().map_err(|_| StoreError::MetaMalformed)?;
            Ok(DigestKey::from_bytes(key))
        }
        Some((&version, _)) => Err(StoreError::UnsupportedFormat { version }),
        None => Err(StoreError::MetaMalformed),
    }
}

fn open_meta(storage_key: &StorageKey, sealed: &[u8]) -> Result<Summary, StoreError> {
    let opened =
        open_state(storage_key, sealed, META_NAME, 0).map_err(|_| StoreError::MetaDoesNotOpen)?;
    Summary::from_bytes(&opened.state)
}

fn rand_fill(rng: &mut OsRng, bytes: &mut [u8]) {
    rand_core::Rng::fill_bytes(rng, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The primary's blob and records side by side are not a state the store wrote.
    #[test]
    fn a_blob_beside_records_is_refused() {
        let row = || (vec![0x82], Zeroizing::new(vec![1]));
        let both = Snapshot {
            primary: vec![row()],
            primary_blob: Some(Zeroizing::new(vec![2])),
            ..Snapshot::default()
        };
        assert!(matches!(both.primary(), Err(StoreError::RecordsMismatch)));
        let blob = Snapshot {
            primary_blob: Some(Zeroizing::new(vec![2])),
            ..Snapshot::default()
        };
        assert!(matches!(blob.primary(), Ok(PrimaryRows::Blob([2]))));
        let records = Snapshot {
            primary: vec![row()],
            ..Snapshot::default()
        };
        assert!(matches!(records.primary(), Ok(PrimaryRows::Records([_]))));
    }
}
