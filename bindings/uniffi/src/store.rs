//! The ready SQLite store (`ratchetry-sqlite`) for apps on Android, iOS and the desktop: a
//! device's and its primary's records in one database file, one transaction per unit, every
//! value sealed at rest under the app's storage key, and every row checked on load, so a
//! record put back, deleted, added or moved is caught and named. The app keeps the storage key
//! in the platform keystore and the last epoch written outside the database.

use std::sync::{Arc, Mutex};

use ratchetry_sqlite::{RecordId, StoreError, StoreTransaction, Written};
use zeroize::Zeroizing;

use crate::device::Device;
use crate::error::RatchetryError;
use crate::primary::Primary;
use crate::types::{rng, ts};

/// A SQLite database holding one device's records and, on the phone, its account's primary's.
///
/// The loop: after every operation on the device, `persist(device)` before acting on what it
/// returned (shipping envelopes, showing messages, acknowledging the relay), and keep the epoch
/// it returns outside the database (beside the storage key); the primary likewise with
/// `persist_primary`, before publishing what it signed. After a restart, `load(last_epoch)`.
///
/// `persist` takes the device's changes while it holds the database, so two threads
/// persisting one device write its units in order. A failed `persist` did change the device in
/// memory: its changes were taken and are not durable. Act on nothing the operation returned
/// (ship no envelope, show no message, acknowledge nothing) until a `persist` of that device
/// succeeds, then act on everything returned since the last one that did.
///
/// When SQLite cannot write for now (`store.sqlite` with `number` SQLITE_BUSY, SQLITE_LOCKED,
/// SQLITE_FULL or SQLITE_IOERR in its low byte: another process holds the database, the disk
/// is full), the units taken stay with the device object (`has_changes` stays true) and its
/// next `persist` writes them first, in the same transaction: call it again, even with nothing
/// new. Any other refusal drops them: another `store.sqlite` (a read-only, corrupt or
/// unopenable database), or `store.unit_gap`, `store.another_copy`, `store.epoch_went_back`
/// (this copy of the device does not follow the stored one). Then drop the device, `load` it
/// again and redo the operation (the relay delivers again what was not acknowledged). Keep one
/// `SqliteStore` per database file and process, and one live copy of a device per database,
/// and do not mix `persist` with the device's own `take_changes`. One database holds one
/// device (and its primary), bound to it by the storage key: a device linked anew (a new
/// identity, its epochs from the start: `store.epoch_went_back`) or another account starts
/// after `reset` under a new storage key (or in a database file of its own).
#[derive(uniffi::Object)]
pub struct SqliteStore {
    inner: Mutex<ratchetry_sqlite::SqliteStore>,
}

/// Writes `units` in order, in one transaction; returns the last one's epoch. When SQLite
/// cannot write for now they stay, to be written again; on any other refusal they are
/// dropped (they do not follow what is stored, or the database cannot take them).
fn write_units<U>(
    store: &mut ratchetry_sqlite::SqliteStore,
    units: &mut Vec<U>,
    write: impl Fn(&mut StoreTransaction<'_>, &U) -> Result<Written, StoreError>,
) -> Result<u64, StoreError> {
    let mut written = || {
        let mut tx = store.transaction()?;
        let mut epoch = 0;
        for unit in units.iter() {
            epoch = write(&mut tx, unit)?.epoch;
        }
        tx.commit()?;
        Ok(epoch)
    };
    let result = written();
    if !result.as_ref().is_err_and(transient) {
        units.clear();
    }
    result
}

/// Whether SQLite refused for now, and the same write may succeed later.
fn transient(e: &StoreError) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull, SystemIoFailure};
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure)
    )
}

#[uniffi::export]
impl SqliteStore {
    /// Opens (or creates) the database at `path`, an absolute file path, under `storage_key`
    /// (32 bytes, from the platform keystore). A database created under another key is
    /// `store.wrong_storage_key`; a path that is not absolute (an empty one, `:memory:`, a
    /// `file:` URI, a relative one) is `binding.bad_input`: it would not persist where the
    /// app expects.
    #[uniffi::constructor]
    pub fn open(path: String, storage_key: Vec<u8>) -> Result<Arc<Self>, RatchetryError> {
        if !std::path::Path::new(&path).is_absolute() {
            return Err(RatchetryError::binding(
                "binding.bad_input",
                "the database path must be absolute",
            ));
        }
        let storage_key = Zeroizing::new(storage_key);
        let key = crate::persist::storage_key(&storage_key)?;
        let store = ratchetry_sqlite::SqliteStore::open(path, key).map_err(store_error)?;
        Ok(Arc::new(Self {
            inner: Mutex::new(store),
        }))
    }

    /// Takes the device's changes and writes them, after any units a failed `persist` of
    /// this device left, in one transaction. Returns the epoch to keep outside the database.
    /// Nothing new and nothing left: nothing is written and the same epoch is returned.
    pub fn persist(&self, device: &Device) -> Result<u64, RatchetryError> {
        let mut store = self.inner.lock()?;
        let mut rng = rng()?;
        let mut inner = device.inner.lock()?;
        let mut units = device.unpersisted.lock()?;
        units.push(inner.take_changes(&mut rng));
        write_units(&mut store, &mut units, |tx, u| tx.write(u)).map_err(store_error)
    }

    /// The same for the primary's changes; returns the epoch to keep (a primary's epochs are
    /// its own, apart from the device's).
    pub fn persist_primary(&self, primary: &Primary) -> Result<u64, RatchetryError> {
        let mut store = self.inner.lock()?;
        let mut rng = rng()?;
        let mut inner = primary.inner.lock()?;
        let mut units = primary.unpersisted.lock()?;
        units.push(inner.take_changes(&mut rng));
        write_units(&mut store, &mut units, |tx, u| tx.write_primary(u)).map_err(store_error)
    }

    /// Empties the store and starts it anew under `storage_key` (32 bytes), in one
    /// transaction: for a device that links again (a new identity) or another account. Use a
    /// new key, keep it in the platform keystore in place of the old one, forget the old one,
    /// and start the epochs kept outside the database from 0: neither the old key nor a copy
    /// of the file from before the reset, put back, opens the database then
    /// (`store.wrong_storage_key`). The old key is `store.same_storage_key`, nothing deleted.
    /// The app's own tables are left as they are. Drop every device and primary object loaded
    /// from the old state (with any units a failed `persist` left on them).
    pub fn reset(&self, storage_key: Vec<u8>) -> Result<(), RatchetryError> {
        let storage_key = Zeroizing::new(storage_key);
        let key = crate::persist::storage_key(&storage_key)?;
        self.inner.lock()?.reset(key).map_err(store_error)
    }

    /// Loads the device, after checking every row. `last_epoch`: the epoch `persist` last
    /// returned (0 if the app keeps none). A database older than that (rolled back as a whole)
    /// is `store.stale_snapshot` (`number`: the stored epoch, none if nothing is stored):
    /// continue with `load_restored`. `None`: no device is stored. The loaded device is a new
    /// copy: drop the one it replaces (with any units a failed `persist` left on it).
    pub fn load(&self, last_epoch: u64) -> Result<Option<Arc<Device>>, RatchetryError> {
        let device = self.inner.lock()?.load(last_epoch).map_err(store_error)?;
        Ok(device.map(Device::wrap))
    }

    /// Loads the device as restored from a backup, for a database the app knows (or accepts)
    /// was rolled back as a whole (after `store.stale_snapshot`, or a file restored from a
    /// backup): it never reuses a key it may have used after the snapshot. Persist it at once.
    /// Nothing stored: `store.not_stored` (the device links again).
    pub fn load_restored(&self, last_epoch: u64, now: u64) -> Result<Arc<Device>, RatchetryError> {
        let device = self
            .inner
            .lock()?
            .load_restored(last_epoch, ts(now))
            .map_err(store_error)?;
        Ok(Device::wrap(device))
    }

    /// Loads the primary, after checking every row; `last_epoch` as `persist_primary` last
    /// returned it. `None`: no primary is stored. A new copy, as `load`'s.
    pub fn load_primary(&self, last_epoch: u64) -> Result<Option<Arc<Primary>>, RatchetryError> {
        let primary = self
            .inner
            .lock()?
            .load_primary(last_epoch)
            .map_err(store_error)?;
        Ok(primary.map(Primary::wrap))
    }

    /// Loads the primary as restored from a backup: it resyncs before it signs again
    /// (`Primary.needs_resync`). Persist it at once.
    pub fn load_primary_restored(&self, last_epoch: u64) -> Result<Arc<Primary>, RatchetryError> {
        let primary = self
            .inner
            .lock()?
            .load_primary_restored(last_epoch)
            .map_err(store_error)?;
        Ok(Primary::wrap(primary))
    }
}

/// A store refusal as a binding error: `store.<variant>`, with the stored epoch as `number`
/// where the refusal names one (SQLite's extended result code for `store.sqlite`), or the
/// library's own code for a record ratchetry refused.
fn store_error(e: StoreError) -> RatchetryError {
    let code = match e {
        StoreError::Ratchetry(inner) => return inner.into(),
        StoreError::Sqlite(_) => "store.sqlite",
        StoreError::WrongStorageKey => "store.wrong_storage_key",
        StoreError::UnsupportedFormat { .. } => "store.unsupported_format",
        StoreError::DigestKeyMissing => "store.digest_key_missing",
        StoreError::MetaMissing => "store.meta_missing",
        StoreError::MetaDoesNotOpen => "store.meta_does_not_open",
        StoreError::MetaMalformed => "store.meta_malformed",
        StoreError::RecordDoesNotOpen(_) => "store.record_does_not_open",
        StoreError::MetaRolledBack { .. } => "store.meta_rolled_back",
        StoreError::RecordReplaced { .. } => "store.record_replaced",
        StoreError::RecordMissing(_) => "store.record_missing",
        StoreError::RecordAdded(_) => "store.record_added",
        StoreError::RecordsMismatch => "store.records_mismatch",
        StoreError::StaleSnapshot { .. } => "store.stale_snapshot",
        StoreError::EpochWentBack { .. } => "store.epoch_went_back",
        StoreError::UnitGap { .. } => "store.unit_gap",
        StoreError::AnotherCopy { .. } => "store.another_copy",
        StoreError::NotStored(_) => "store.not_stored",
        StoreError::SameStorageKey => "store.same_storage_key",
        _ => "store.other",
    };
    let stored = match &e {
        // SQLite's extended result code: busy, full, corrupt, cannot open are apart.
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            u64::try_from(f.extended_code).ok()
        }
        StoreError::StaleSnapshot { stored_epoch, .. } => *stored_epoch,
        StoreError::EpochWentBack { stored_epoch, .. }
        | StoreError::UnitGap { stored_epoch, .. } => Some(*stored_epoch),
        StoreError::AnotherCopy { epoch, .. } => Some(*epoch),
        _ => None,
    };
    RatchetryError::store(code, detail(&e), stored)
}

/// The refusal's text without what an app's logs and crash reports should not carry: a record
/// is named by its kind alone (its key holds contacts' addresses and keys, group and envelope
/// ids), and SQLite's failure by its code alone (its message can hold the database's path).
fn detail(e: &StoreError) -> String {
    let record = match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => return format!("SQLite: {f}"),
        StoreError::Sqlite(_) => return "SQLite refused the store's use of the database".into(),
        StoreError::RecordDoesNotOpen(r)
        | StoreError::RecordMissing(r)
        | StoreError::RecordAdded(r)
        | StoreError::RecordReplaced { record: r, .. }
        | StoreError::MetaRolledBack { record: r, .. } => r,
        _ => return e.to_string(),
    };
    let named = match record {
        RecordId::Device(key) => {
            format!("device record of kind {:#04x}", key.first().unwrap_or(&0))
        }
        RecordId::Primary(key) => {
            format!("primary record of kind {:#04x}", key.first().unwrap_or(&0))
        }
        RecordId::PrimaryBlob => return e.to_string(),
    };
    e.to_string().replace(&record.to_string(), &named)
}
