//! A ready SQLite store for [ratchetry]: a device's records and its account's
//! [`Primary`](ratchetry::devices::Primary) in one database, one transaction per unit, every
//! value sealed at rest, and every row checked on load against a sealed summary, so that a
//! single record put back, deleted, added or moved is caught and named.
//!
//! ratchetry does no I/O; this crate does the storage part of the app's loop:
//!
//! ```text
//!  app ── operation(now, rng, bytes) ──▶ Device ──▶ output (envelopes, messages)
//!   │                                      │
//!   │                     take_changes() ──┘  (one unit: keyed records, the epoch)
//!   ▼
//!  SqliteStore::write(&unit) ── one transaction ──▶ ratchetry_rows (slot, key, sealed value)
//!   │                                                + the meta row (epochs, summary)
//!   └─ then act on the output; keep Written::epoch outside the database
//!
//!  restart: SqliteStore::load(last_epoch) ── open + check every row ──▶ Device::from_records
//! ```
//!
//! # Example
//!
//! ```
//! use getrandom::{SysRng, rand_core::UnwrapErr};
//! use ratchetry::devices::{PRIMARY_DEVICE, Primary, PrimaryPolicy};
//! use ratchetry::fanout::{Device, DeviceConfig};
//! use ratchetry::persist::StorageKey;
//! use ratchetry::{IdentityKeyPair, Timestamp};
//! use ratchetry_sqlite::SqliteStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = UnwrapErr(SysRng);
//! let now = Timestamp(1_790_000_000_000);
//! let identity = IdentityKeyPair::generate(&mut rng);
//! let primary = Primary::new(&mut rng, &identity, now, PrimaryPolicy::default());
//! let list = primary.device_list().clone();
//! let (mut phone, _upload) =
//!     Device::new(&mut rng, now, identity, PRIMARY_DEVICE, list, 10, DeviceConfig::default())?;
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("phone.db");
//! let key = StorageKey::generate(&mut rng); // kept in the platform keystore
//! let mut store = SqliteStore::open(&path, key.clone())?;
//! store.write_primary(&primary)?;
//! let written = store.write(&phone.take_changes())?;
//! let last_epoch = written.epoch; // kept outside the database, beside the key
//!
//! // After a restart:
//! let store = SqliteStore::open(&path, key)?;
//! let loaded = store.load(last_epoch)?.expect("a device is stored");
//! assert_eq!(*loaded.to_bytes(), *phone.to_bytes());
//! assert!(store.load_primary(primary.state_epoch())?.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! # What is stored
//!
//! One table, `ratchetry_rows (slot, key, value)`, keyed by (slot, key): slot `device` holds the
//! device's records under their record keys, `primary` the primary's blob, `store` the store's
//! own two rows. The app may keep its own tables in the same database, and write them in the
//! same transaction as a unit ([`SqliteStore::transaction`]).
//!
//! Every value is sealed with [`ratchetry::persist::seal_state`] under the app's
//! [`StorageKey`](ratchetry::persist::StorageKey): a device record under the name
//! `"ratchetry-sqlite v1 device record " ‖ key` at the unit's epoch (so a value copied or moved
//! to another key does not open), the primary under its own name at its state epoch.
//!
//! # Rollback detection
//!
//! Sealing alone does not stop someone who can write the file (another app, a backup tool, a
//! thief with the phone's storage) from putting back an *older* sealed copy of a record, which
//! opens fine: an old session record is an old ratchet state, whose message keys would be used
//! again. So the store keeps, in a sealed **meta row** written in every transaction, the epochs
//! stored (the device's, the primary's) and a summary of the set of live rows:
//!
//! - for each row an entry `HMAC-SHA256(digest key, role ‖ key ‖ sealed sequence ‖
//!   SHA-256(sealed value))`, under a random **digest key** made when the database is created
//!   and kept in it sealed under the storage key;
//! - the XOR of all entries, with the row count and two sums that locate a single changed row.
//!
//! A write updates the summary for the rows it writes only: it takes each old row's entry out
//! and the new one in. Writing a unit costs O(records in the unit) whatever the size of the
//! state. On load, every row is opened under its own name, the summary is recomputed and
//! compared with the meta row's (in constant time). The entries are unpredictable without the
//! storage key and the meta row cannot be forged, so no set of changes cancels out.
//!
//! What that detects, each with its error:
//!
//! | Change to the database | Error |
//! | --- | --- |
//! | wrong storage key | [`StoreError::WrongStorageKey`] at open |
//! | a value copied or moved under another key or slot, or damaged | [`StoreError::RecordDoesNotOpen`] |
//! | one record replaced by an older sealed copy of itself | [`StoreError::RecordReplaced`] |
//! | one record deleted | [`StoreError::RecordMissing`] |
//! | one record added (a copy of a deleted one) | [`StoreError::RecordAdded`] |
//! | the meta row put back alone | [`StoreError::MetaRolledBack`] (a row is newer than it) |
//! | several rows changed | [`StoreError::RecordsMismatch`] |
//! | the whole database rolled back, the app keeping `last_epoch` outside | [`StoreError::StaleSnapshot`] |
//!
//! The errors name the record (its key in hex; keys are not secret, values never appear).
//!
//! What it cannot detect: **the whole database put back** to an earlier consistent copy (the
//! file from a backup, or from a snapshot of the disk) when the app keeps nothing outside it.
//! Every row and the meta row are then as they were, and nothing inside the database can tell.
//! Keep the last [`Written::epoch`] of the device and of the primary where a restore of the
//! database does not reach (next to the storage key in the platform keystore) and pass them to
//! [`SqliteStore::load`] and [`SqliteStore::load_primary`]. A snapshot older than that is
//! refused; [`SqliteStore::load_restored`] then continues as from a backup (no key reused, the
//! device awaiting its account's next list), as `Device::restore` does.
//!
//! The primary is one blob: `Primary` has no records yet. If it gains some, it can be stored
//! under its own slot in the same way, one row per record.
//!
//! # Crashes
//!
//! Every write is one SQLite transaction in WAL mode with `synchronous = FULL`: after a crash or
//! a power loss the database holds the last committed unit, and the rows and meta row agree.
//! The relay keeps every envelope the app did not acknowledge (it acknowledges after the unit is
//! committed), so a message read but not committed is read again after the restart, and no key
//! was used twice.

#![forbid(unsafe_code)]

mod error;
mod rows;
mod store;
mod summary;

pub use error::{RecordId, Role, StoreError};
pub use store::{SqliteStore, StoreTransaction, Written};
