//! The store's error: what SQLite, the seal, the integrity check or the library refused.

use core::fmt;

/// A stored row the store names in its errors: one of the device's or the primary's records (by
/// its record key; keys are not secret, values are and never appear in errors), or the
/// primary's one blob as the previous version of this crate stored it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordId {
    /// The device's record under this key.
    Device(Vec<u8>),
    /// The account's `Primary`'s record under this key.
    Primary(Vec<u8>),
    /// The account's `Primary` as one blob (a database written by the previous version of this
    /// crate, until the primary's first unit replaces it).
    PrimaryBlob,
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(key) => {
                f.write_str("device record ")?;
                hex(f, key)
            }
            Self::Primary(key) => {
                f.write_str("primary record ")?;
                hex(f, key)
            }
            Self::PrimaryBlob => f.write_str("primary blob"),
        }
    }
}

fn hex(f: &mut fmt::Formatter<'_>, key: &[u8]) -> fmt::Result {
    key.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a stored state's epoch is compared with: the device's or the primary's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The device (its records).
    Device,
    /// The account's `Primary`.
    Primary,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Device => "device",
            Self::Primary => "primary",
        })
    }
}

/// Why the store refused.
///
/// The integrity variants ([`RecordDoesNotOpen`](Self::RecordDoesNotOpen) to
/// [`RecordsMismatch`](Self::RecordsMismatch)) mean that the database holds rows this store did
/// not write together: a crash cannot cause them (every write is one transaction), so treat
/// them as tampering or corruption. Nothing was loaded; the database is left as found.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (I/O, a locked or corrupt file, a schema the app changed).
    Sqlite(rusqlite::Error),
    /// The store's own key row does not open: the storage key is not the one this database was
    /// created with (or that row was damaged).
    WrongStorageKey,
    /// The database was written by a newer version of this crate.
    UnsupportedFormat {
        /// The format version found.
        version: u8,
    },
    /// The store's key row is missing from a database that holds other rows.
    DigestKeyMissing,
    /// Rows are stored but the meta row that vouches for them is missing.
    MetaMissing,
    /// The meta row does not open under the storage key (damaged or forged).
    MetaDoesNotOpen,
    /// The meta row opened but is not in this version's format.
    MetaMalformed,
    /// A row does not open under its own name: it was copied or moved from another key or
    /// slot, or damaged.
    RecordDoesNotOpen(RecordId),
    /// A row was sealed after the epoch the meta row vouches for: the meta row was put back
    /// (an older copy of it replaced the current one).
    MetaRolledBack {
        /// The newer row.
        record: RecordId,
        /// The epoch that row was sealed at.
        sealed_at: u64,
        /// The epoch the meta row holds for its role.
        meta_epoch: u64,
    },
    /// One row holds another sealed copy of itself than the last one written (an older copy
    /// put back).
    RecordReplaced {
        /// The row.
        record: RecordId,
        /// The epoch the copy found was sealed at.
        sealed_at: u64,
    },
    /// One row the meta row vouches for is missing (deleted).
    RecordMissing(RecordId),
    /// One row is present that the meta row does not vouch for (inserted).
    RecordAdded(RecordId),
    /// The rows do not match the meta row, and not by one row alone.
    RecordsMismatch,
    /// The stored state is older than the one the app last wrote: the database was rolled back
    /// as a whole (restored from a backup, or by an attacker). Load it with
    /// [`SqliteStore::load_restored`](crate::SqliteStore::load_restored) or
    /// [`load_primary_restored`](crate::SqliteStore::load_primary_restored) to continue as
    /// from a backup.
    StaleSnapshot {
        /// Whose state.
        role: Role,
        /// The stored state's epoch (`None`: nothing stored).
        stored_epoch: Option<u64>,
        /// The epoch the app last wrote (kept outside the database).
        last_epoch: u64,
    },
    /// A write would put the stored state back to an older epoch than the one stored (a device
    /// restored from a backup without its last epoch: restore it with
    /// `Device::restore(bytes, last_epoch, now)`, which continues above it).
    EpochWentBack {
        /// Whose state.
        role: Role,
        /// The epoch stored.
        stored_epoch: u64,
        /// The epoch of the state being written.
        epoch: u64,
    },
    /// The unit does not start from the state stored: its
    /// [`base_epoch`](ratchetry::persist::Changes::base_epoch) is not the epoch stored.
    /// Above it, a unit taken before this one was never written (its transaction failed and
    /// the app went on with the state in memory): the state in memory is ahead of the store,
    /// and this unit on top would store records that never existed together (a consumed
    /// one-time prekey still there, a message's replay record missing). Below it (the unit
    /// ending at or above the stored epoch; one ending below it is
    /// [`EpochWentBack`](Self::EpochWentBack)), the store already holds a later unit (this
    /// one written twice, say). Nothing was written. Write the missing unit first if the app still holds it;
    /// else drop the state in memory, load it again
    /// ([`load`](crate::SqliteStore::load), [`load_primary`](crate::SqliteStore::load_primary))
    /// and redo the operations since: the relay delivers again what was not acknowledged.
    UnitGap {
        /// Whose state.
        role: Role,
        /// The epoch stored.
        stored_epoch: u64,
        /// The epoch the unit starts from.
        base_epoch: u64,
    },
    /// The unit starts from the epoch stored, but not from the unit stored: its
    /// [`base_tag`](ratchetry::persist::Changes::base_tag) is not the tag of the last unit
    /// written. Another live copy of the state (loaded twice, say by a notification extension
    /// and the app, or cloned) wrote a unit since this copy loaded or last wrote, and the two
    /// copies went apart; written on top, this unit would leave records that never existed
    /// together. Nothing was written. Drop this copy, load the state again
    /// ([`load`](crate::SqliteStore::load), [`load_primary`](crate::SqliteStore::load_primary))
    /// and redo its operations since; keep one live copy of a state at a time.
    AnotherCopy {
        /// Whose state.
        role: Role,
        /// The epoch stored, where the unit starts.
        epoch: u64,
    },
    /// [`SqliteStore::reset`](crate::SqliteStore::reset) was given the storage key the store
    /// already has: a copy of the file from before the reset, put back, would open under it.
    /// Nothing was deleted. Reset under a new key.
    SameStorageKey,
    /// Nothing of this role is stored: a unit that does not replace the whole state was
    /// written to a store that holds no such state (write its first unit, its whole state,
    /// first), or to one that holds the primary as the previous version's blob (load it with
    /// [`load_primary`](crate::SqliteStore::load_primary): its first unit replaces the blob),
    /// or there is nothing to load as restored.
    NotStored(Role),
    /// The rows opened and match, but ratchetry refused their contents (a bug, or state written
    /// by an incompatible version of the library).
    Ratchetry(ratchetry::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "sqlite: {e}"),
            Self::WrongStorageKey => f.write_str("the storage key does not open this database"),
            Self::UnsupportedFormat { version } => {
                write!(f, "store format version {version} is not supported")
            }
            Self::DigestKeyMissing => f.write_str("the store's key row is missing"),
            Self::MetaMissing => f.write_str("rows are stored without their meta row"),
            Self::MetaDoesNotOpen => f.write_str("the meta row does not open"),
            Self::MetaMalformed => f.write_str("the meta row is malformed"),
            Self::RecordDoesNotOpen(r) => write!(f, "{r} does not open under its own name"),
            Self::MetaRolledBack {
                record,
                sealed_at,
                meta_epoch,
            } => write!(
                f,
                "the meta row was rolled back: {record} was sealed at epoch {sealed_at}, after the meta row's {meta_epoch}"
            ),
            Self::RecordReplaced { record, sealed_at } => write!(
                f,
                "{record} was replaced by another sealed copy (sealed at epoch {sealed_at})"
            ),
            Self::RecordMissing(r) => write!(f, "{r} was deleted"),
            Self::RecordAdded(r) => write!(f, "{r} was added"),
            Self::RecordsMismatch => f.write_str("the rows do not match the meta row"),
            Self::StaleSnapshot {
                role,
                stored_epoch: Some(stored),
                last_epoch,
            } => write!(
                f,
                "the stored {role} state is at epoch {stored}, older than the last written ({last_epoch})"
            ),
            Self::StaleSnapshot {
                role,
                stored_epoch: None,
                last_epoch,
            } => write!(
                f,
                "no {role} state is stored, but one was written at epoch {last_epoch}"
            ),
            Self::EpochWentBack {
                role,
                stored_epoch,
                epoch,
            } => write!(
                f,
                "writing {role} state at epoch {epoch} would go back from the stored {stored_epoch}"
            ),
            Self::UnitGap {
                role,
                stored_epoch,
                base_epoch,
            } => write!(
                f,
                "the {role} unit starts from epoch {base_epoch}, but the store holds epoch {stored_epoch}: reload the state from the store"
            ),
            Self::AnotherCopy { role, epoch } => write!(
                f,
                "the {role} unit starts from another copy's state at epoch {epoch}: reload the state from the store"
            ),
            Self::SameStorageKey => f.write_str("a reset needs a new storage key"),
            Self::NotStored(role) => write!(f, "no {role} state is stored"),
            Self::Ratchetry(e) => write!(f, "ratchetry refused the stored state: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlite(e) => Some(e),
            Self::Ratchetry(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<ratchetry::Error> for StoreError {
    fn from(e: ratchetry::Error) -> Self {
        Self::Ratchetry(e)
    }
}

impl From<ratchetry::DecodeError> for StoreError {
    fn from(e: ratchetry::DecodeError) -> Self {
        Self::Ratchetry(e.into())
    }
}
