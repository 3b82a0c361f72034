//! A ready SQLite store for [ratchetry]: a device's records and its account's
//! [`Primary`](ratchetry::devices::Primary)'s records in one database, one transaction per unit, every
//! value sealed at rest, and every row checked on load against a sealed summary, so that a
//! single record put back, deleted, added or moved is caught and named.
//!
//! ratchetry does no I/O; this crate does the storage part of the app's loop:
//!
//! ```text
//!  app ── operation(now, rng, bytes) ──▶ Device ──▶ output (envelopes, messages)
//!   │                                      │
//!   │                     take_changes(&mut rng) ──┘  (one unit: keyed records, the epoch)
//!   ▼
//!  SqliteStore::write(&unit) ── one transaction ──▶ ratchetry_rows (slot, key, sealed value)
//!   │                                                + the meta row (epochs, summary)
//!   └─ then act on the output; keep Written::epoch outside the database
//!
//!  restart: SqliteStore::load(last_epoch) ── open + check every row ──▶ Device::from_records
//!
//!  the primary likewise: Primary::take_changes(&mut rng) ──▶ SqliteStore::write_primary(&unit),
//!  then publish the list it signed; SqliteStore::load_primary(last) ──▶ Primary::from_records
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
//! let mut primary = Primary::new(&mut rng, &identity, now, PrimaryPolicy::default());
//! let list = primary.device_list().clone();
//! let (mut phone, _upload) =
//!     Device::new(&mut rng, now, identity, PRIMARY_DEVICE, list, 10, DeviceConfig::default())?;
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("phone.db");
//! let key = StorageKey::generate(&mut rng); // kept in the platform keystore
//! let mut store = SqliteStore::open(&path, key.clone())?;
//! let primary_epoch = store.write_primary(&primary.take_changes(&mut rng))?.epoch;
//! let written = store.write(&phone.take_changes(&mut rng))?;
//! let last_epoch = written.epoch; // kept outside the database, beside the key
//!
//! // Each later unit holds only what its operation changed: an invitation's record and the
//! // counters, not the list.
//! let _qr = primary.invite(&mut rng, now)?.to_bytes();
//! let primary_epoch = store.write_primary(&primary.take_changes(&mut rng))?.epoch;
//!
//! // After a restart:
//! let store = SqliteStore::open(&path, key)?;
//! let loaded = store.load(last_epoch)?.expect("a device is stored");
//! assert_eq!(*loaded.to_bytes(), *phone.to_bytes());
//! let loaded = store.load_primary(primary_epoch)?.expect("a primary is stored");
//! assert_eq!(*loaded.to_bytes(), *primary.to_bytes());
//! # Ok(())
//! # }
//! ```
//!
//! # What is stored
//!
//! One table, `ratchetry_rows (slot, key, value)`, keyed by (slot, key): slot `device` holds the
//! device's records under their record keys, `primary` the primary's records under theirs
//! (PROTOCOL.md 15.4; their kinds never collide with the device's), `store` the store's own two
//! rows. The app may keep its own tables in the same database, and write them in the
//! same transaction as a unit ([`SqliteStore::transaction`]).
//!
//! Every value is sealed with [`ratchetry::persist::seal_state`] under the app's
//! [`StorageKey`](ratchetry::persist::StorageKey): a device record under the name
//! `"ratchetry-sqlite v1 device record " ‖ key` at the unit's epoch (so a value copied or moved
//! to another key does not open), a primary record under `"ratchetry-sqlite v1 primary record "
//! ‖ key` at its unit's epoch. Both are written the same way, counted in the same summary and
//! checked the same way on load.
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
//! # Gaps
//!
//! Units chain: each starts from the epoch the unit taken before it ended at
//! ([`base_epoch`](ratchetry::persist::Changes::base_epoch)), or from the epoch the state was
//! loaded at. The meta row holds the epoch stored, and a unit that does not start from it is
//! refused as [`StoreError::UnitGap`] (or [`StoreError::EpochWentBack`] if it ends below the
//! stored epoch), with nothing written (an empty unit too). Usually a
//! unit taken before it was never written: its transaction failed and the app went on with
//! the state in memory, which is now ahead of the store. Written on top, this unit would
//! leave the store with records that never existed together (a one-time prekey the lost unit
//! consumed still stored, the replay record of a message it read missing), and after a
//! restart the device could accept a replayed message. Write the missing unit first if the
//! app still holds it; else load the state again from the store and redo the operations since
//! (the relay delivers again what was not acknowledged). A unit that
//! [replaces all](ratchetry::persist::Changes::replaces_all) of a new or restored state has no
//! base and is written whole, whatever is stored; one of a state loaded from whole-state bytes
//! starts from the epoch and tag they hold, and is checked as any other where the state is
//! stored (two copies loaded from the same bytes: the second's is refused once the first
//! wrote).
//!
//! Units also chain by tag: each unit with records carries a random
//! [`tag`](ratchetry::persist::Changes::tag) and names the tag of the unit it starts from
//! ([`base_tag`](ratchetry::persist::Changes::base_tag)). The meta row keeps the tag of each
//! state's last unit, and a unit that starts from the stored epoch but not from the stored tag
//! is refused as [`StoreError::AnotherCopy`], nothing written: another live copy of the state
//! (an app extension beside the app, a second process) wrote since this copy loaded. Load the
//! state again and redo. Epochs alone cannot tell the two copies' units apart.
//!
//! # Migration
//!
//! The previous version stored the primary as one blob (slot `primary`, empty key, sealed under
//! `"ratchetry-sqlite v1 primary"`). Such a database opens and checks as before (that row's
//! summary entry is the same), [`SqliteStore::load_primary`] loads the primary from the blob,
//! and that primary's first unit holds every record and
//! [replaces all](ratchetry::devices::PrimaryChanges::replaces_all): writing it deletes the blob.
//! Until then a unit that replaces less is refused ([`StoreError::NotStored`]), so the blob and
//! records never stand side by side.
//!
//! # One device per database, bound by the storage key
//!
//! A database holds one device and its primary, and its digest key row opens only under the
//! storage key it was created with. So a device that links again (a new identity, its epochs
//! from the start), or another account, starts under a **new** storage key, in a database of
//! its own or after [`SqliteStore::reset`]: never reuse a key for another device, whose
//! database would then load in this one's place (nothing else in the file names the device).
//! After a reset the old device's rows are deleted, and
//! neither a database of another device nor this one put back to a copy from before the reset
//! opens under the new key ([`StoreError::WrongStorageKey`]). The same key is refused
//! ([`StoreError::SameStorageKey`]).
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
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod rows;
mod store;
mod summary;

pub use error::{RecordId, Role, StoreError};
pub use store::{SqliteStore, StoreTransaction, Written};
