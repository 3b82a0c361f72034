//! The table and its rows: where each row lives, the name its value is sealed under, and the
//! SQL that reads and writes them. Nothing here decides anything.

use ratchetry::persist::{StorageKey, open_state};
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::error::{RecordId, StoreError};

/// The one table the store uses; an app may keep its own tables in the same database.
pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS ratchetry_rows (
    slot TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (slot, key)
) WITHOUT ROWID;";

/// The `slot` column of the store's own rows (the digest key and the meta row), of the
/// device's records, and of the primary.
pub(crate) const STORE: &str = "store";
pub(crate) const DEVICE: &str = "device";
pub(crate) const PRIMARY: &str = "primary";

/// The store's rows, by key.
pub(crate) const DIGEST_KEY_ROW: &[u8] = b"digest-key";
pub(crate) const META_ROW: &[u8] = b"meta";

/// Names the values are sealed under (`persist::seal_state`'s slot): a value opens only under
/// the name it was sealed for. A device record's name ends with its key; no other name starts
/// with the device records' prefix.
pub(crate) const DIGEST_KEY_NAME: &[u8] = b"ratchetry-sqlite v1 digest key";
pub(crate) const META_NAME: &[u8] = b"ratchetry-sqlite v1 meta";
/// Names the probe that tells whether two storage keys are one; never stored.
pub(crate) const SAME_KEY_NAME: &[u8] = b"ratchetry-sqlite v1 same key probe";
/// The previous version's one primary row (key empty), read to migrate it.
const PRIMARY_BLOB_NAME: &[u8] = b"ratchetry-sqlite v1 primary";
const DEVICE_RECORD_PREFIX: &[u8] = b"ratchetry-sqlite v1 device record ";
const PRIMARY_RECORD_PREFIX: &[u8] = b"ratchetry-sqlite v1 primary record ";

/// The name a row's value is sealed under.
pub(crate) fn seal_name(record: &RecordId) -> Vec<u8> {
    match record {
        RecordId::Device(key) => [DEVICE_RECORD_PREFIX, key].concat(),
        RecordId::Primary(key) => [PRIMARY_RECORD_PREFIX, key].concat(),
        RecordId::PrimaryBlob => PRIMARY_BLOB_NAME.to_vec(),
    }
}

/// The table slot and key of a row. The primary's records and its previous blob share a slot:
/// record keys are never empty (they start with their kind), the blob's key is.
pub(crate) fn location(record: &RecordId) -> (&'static str, &[u8]) {
    match record {
        RecordId::Device(key) => (DEVICE, key),
        RecordId::Primary(key) => (PRIMARY, key),
        RecordId::PrimaryBlob => (PRIMARY, &[]),
    }
}

/// The row at a slot and key of the device's or the primary's.
fn record_at(slot: &str, key: Vec<u8>) -> RecordId {
    match slot {
        DEVICE => RecordId::Device(key),
        _ if key.is_empty() => RecordId::PrimaryBlob,
        _ => RecordId::Primary(key),
    }
}

/// One row's stored (sealed) value.
pub(crate) fn get(db: &Connection, slot: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let mut query =
        db.prepare_cached("SELECT value FROM ratchetry_rows WHERE slot = ?1 AND key = ?2")?;
    Ok(query
        .query_row(params![slot, key], |row| row.get(0))
        .optional()?)
}

/// Upserts a row.
pub(crate) fn put(db: &Connection, slot: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    let mut put = db.prepare_cached("INSERT OR REPLACE INTO ratchetry_rows VALUES (?1, ?2, ?3)")?;
    put.execute(params![slot, key, value])?;
    Ok(())
}

/// Deletes a row.
pub(crate) fn delete(db: &Connection, slot: &str, key: &[u8]) -> Result<(), StoreError> {
    let mut delete =
        db.prepare_cached("DELETE FROM ratchetry_rows WHERE slot = ?1 AND key = ?2")?;
    delete.execute(params![slot, key])?;
    Ok(())
}

/// Every row of the device and the primary, as (record, sealed value). (Rows under other slots
/// are not the store's: nothing reads them.)
pub(crate) fn all_records(db: &Connection) -> Result<Vec<(RecordId, Vec<u8>)>, StoreError> {
    let mut query = db.prepare_cached(
        "SELECT slot, key, value FROM ratchetry_rows
         WHERE slot = ?1 OR slot = ?2 ORDER BY slot, key",
    )?;
    let rows = query.query_map(params![DEVICE, PRIMARY], |row| {
        let slot: String = row.get(0)?;
        let value: Vec<u8> = row.get(2)?;
        Ok((record_at(&slot, row.get(1)?), value))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every row of one slot (the device's or the primary's), as (record, sealed value).
pub(crate) fn slot_records(
    db: &Connection,
    slot: &str,
) -> Result<Vec<(RecordId, Vec<u8>)>, StoreError> {
    let mut query = db.prepare_cached("SELECT key, value FROM ratchetry_rows WHERE slot = ?1")?;
    let rows = query.query_map(params![slot], |row| {
        let value: Vec<u8> = row.get(1)?;
        Ok((record_at(slot, row.get(0)?), value))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes every row of one slot.
pub(crate) fn delete_slot(db: &Connection, slot: &str) -> Result<(), StoreError> {
    db.execute("DELETE FROM ratchetry_rows WHERE slot = ?1", params![slot])?;
    Ok(())
}

/// Deletes every row of the table.
pub(crate) fn delete_all(db: &Connection) -> Result<(), StoreError> {
    db.execute("DELETE FROM ratchetry_rows", [])?;
    Ok(())
}

/// Whether any row of the device or the primary is stored.
pub(crate) fn any_record(db: &Connection) -> Result<bool, StoreError> {
    Ok(db.query_row(
        "SELECT EXISTS (SELECT 1 FROM ratchetry_rows WHERE slot = ?1 OR slot = ?2)",
        params![DEVICE, PRIMARY],
        |row| row.get(0),
    )?)
}

/// Whether the table holds any row at all.
pub(crate) fn any(db: &Connection) -> Result<bool, StoreError> {
    Ok(
        db.query_row("SELECT EXISTS (SELECT 1 FROM ratchetry_rows)", [], |row| {
            row.get(0)
        })?,
    )
}

/// Opens a row's value under its name (any sequence: the summary checks sequences).
pub(crate) fn open_record(
    key: &StorageKey,
    record: &RecordId,
    sealed: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, u64), StoreError> {
    match open_state(key, sealed, &seal_name(record), 0) {
        Ok(opened) => Ok((opened.state, opened.sequence)),
        Err(_) => Err(StoreError::RecordDoesNotOpen(record.clone())),
    }
}
