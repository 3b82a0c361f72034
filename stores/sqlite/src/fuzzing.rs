//! Fuzz entry points (feature `fuzzing`; not part of the supported API): they feed arbitrary
//! plaintext to the decoders that only ever see what opened under the storage key, which
//! random database bytes never reach.
//!
//! - [`meta`]: the meta row's plaintext, to the summary decoder. What decodes re-encodes to
//!   the same bytes (a format-1 row as format 2 with both tags `NONE`), and checks against an
//!   empty store both ways with a typed answer.
//! - [`store`]: a store built from the input (rows sealed correctly under a fixed storage key,
//!   the digest key row and the meta row as a write makes them, unless the input says
//!   otherwise), then loaded every way: the row check and the records decoders
//!   (`Device::from_records`, `Primary::from_records`, the format-1 primary blob and the
//!   restores) are reached. Loading returns a typed [`StoreError`]; a store built consistently
//!   never reports tampering, and one whose rows the meta row miscounts always does.
//!
//! The input of [`store`] ([`StoreInput::to_bytes`] writes it, [`StoreInput::from_bytes`] reads
//! it leniently: a truncated row ends the input):
//!
//! ```text
//! input = flags:u8 device_epoch:u64 primary_epoch:u64 last_epoch:u64
//!         [digest_key:field if flags & 4] [meta:field if flags & 8] row*
//! flags   1: the meta row holds device_epoch   2: the meta row holds primary_epoch
//!         4: the digest key row's plaintext is `digest_key` (else 0x01 ‖ a fixed key)
//!         8: the meta row's plaintext is `meta` (else the summary of the rows)
//!        16: no meta row
//! field = len:u16 bytes
//! row   = flags:u8 key:field value_len:u32 value [sequence:u64 if flags & 8]
//! flags   1: the primary's row (else the device's; the primary's with an empty key is the
//!            format-1 blob)
//!         2: stored but not counted in the meta row      4: counted but not stored
//!         8: sealed at `sequence` (else at its role's epoch, 0 if none)
//!        16: sealed under the other role's name for the key (it does not open)
//!        32: stored as another copy, sealed again one sequence earlier (0 stays 0) than
//!            the copy counted
//! ```
//!
//! Integers are big-endian. A later row of the same role and key replaces an earlier one.

use std::collections::BTreeMap;
use std::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};
use ratchetry::Timestamp;
use ratchetry::persist::{StorageKey, UnitTag, seal_state};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::error::{RecordId, Role, StoreError};
use crate::rows::{self, DIGEST_KEY_NAME, DIGEST_KEY_ROW, META_NAME, META_ROW, STORE, seal_name};
use crate::store::FORMAT_VERSION;
use crate::store::SqliteStore;
use crate::summary::{DigestKey, META_V1, META_VERSION, Summary};

/// The storage key every fuzzed store is sealed under.
pub const STORAGE_KEY: [u8; 32] = [0x5e; 32];
/// The digest key of every fuzzed store (unless the input gives its row's plaintext).
pub const DIGEST_KEY: [u8; 32] = [0x3d; 32];
/// The time the restores are made at.
const NOW: Timestamp = Timestamp(1_790_000_000_000);

const DEVICE_EPOCH: u8 = 1;
const PRIMARY_EPOCH: u8 = 2;
const RAW_DIGEST_KEY: u8 = 4;
const RAW_META: u8 = 8;
const NO_META: u8 = 16;

const ROW_PRIMARY: u8 = 1;
const ROW_UNCOUNTED: u8 = 2;
const ROW_UNSTORED: u8 = 4;
const ROW_SEQUENCE: u8 = 8;
const ROW_MISNAMED: u8 = 16;
const ROW_RESEALED: u8 = 32;

/// A store to build: what the meta row holds, and its rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreInput {
    /// The device's epoch in the meta row.
    pub device_epoch: Option<u64>,
    /// The primary's epoch in the meta row.
    pub primary_epoch: Option<u64>,
    /// The last epoch the restoring loads are given.
    pub last_epoch: u64,
    /// The digest key row's plaintext, if not the fixed key's.
    pub digest_key: Option<Vec<u8>>,
    /// The meta row's plaintext, if not the rows' summary.
    pub meta: Option<Vec<u8>>,
    /// No meta row at all.
    pub no_meta: bool,
    /// The rows, in order (a later one replaces an earlier one of the same role and key).
    pub rows: Vec<Row>,
}

/// A row of a [`StoreInput`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The device's or the primary's (with an empty key, the primary's format-1 blob).
    pub role: Role,
    /// The record key.
    pub key: Vec<u8>,
    /// The record value (sealed as a write seals it).
    pub value: Vec<u8>,
    /// `ROW_*` flags but the role's.
    flags: u8,
    /// The sequence it is sealed at, if not its role's epoch.
    pub sequence: Option<u64>,
}

impl Row {
    /// A row as a write stores it.
    pub fn new(role: Role, key: &[u8], value: &[u8]) -> Self {
        Self {
            role,
            key: key.to_vec(),
            value: value.to_vec(),
            flags: 0,
            sequence: None,
        }
    }

    /// The row stored but not counted in the meta row (as if inserted behind the store).
    pub fn uncounted(mut self) -> Self {
        self.flags |= ROW_UNCOUNTED;
        self
    }

    /// The row counted in the meta row but not stored (as if deleted behind the store).
    pub fn unstored(mut self) -> Self {
        self.flags |= ROW_UNSTORED;
        self
    }

    /// The row sealed under the other role's name for its key.
    pub fn misnamed(mut self) -> Self {
        self.flags |= ROW_MISNAMED;
        self
    }

    /// The row stored as an older copy than the one counted (as if put back behind the store).
    pub fn replaced(mut self) -> Self {
        self.flags |= ROW_RESEALED;
        self
    }

    fn record(&self) -> RecordId {
        record_id(self.role, &self.key)
    }
}

fn record_id(role: Role, key: &[u8]) -> RecordId {
    match role {
        Role::Device => RecordId::Device(key.to_vec()),
        Role::Primary if key.is_empty() => RecordId::PrimaryBlob,
        Role::Primary => RecordId::Primary(key.to_vec()),
    }
}

impl StoreInput {
    /// The fuzz input that builds this store.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = 0;
        for (set, bit) in [
            (self.device_epoch.is_some(), DEVICE_EPOCH),
            (self.primary_epoch.is_some(), PRIMARY_EPOCH),
            (self.digest_key.is_some(), RAW_DIGEST_KEY),
            (self.meta.is_some(), RAW_META),
            (self.no_meta, NO_META),
        ] {
            if set {
                flags |= bit;
            }
        }
        let mut out = vec![flags];
        for epoch in [self.device_epoch, self.primary_epoch] {
            out.extend_from_slice(&epoch.unwrap_or(0).to_be_bytes());
        }
        out.extend_from_slice(&self.last_epoch.to_be_bytes());
        for field in [&self.digest_key, &self.meta].into_iter().flatten() {
            out.extend_from_slice(&(field.len() as u16).to_be_bytes());
            out.extend_from_slice(field);
        }
        for row in &self.rows {
            let mut flags = row.flags;
            if row.role == Role::Primary {
                flags |= ROW_PRIMARY;
            }
            if row.sequence.is_some() {
                flags |= ROW_SEQUENCE;
            }
            out.push(flags);
            out.extend_from_slice(&(row.key.len() as u16).to_be_bytes());
            out.extend_from_slice(&row.key);
            out.extend_from_slice(&(row.value.len() as u32).to_be_bytes());
            out.extend_from_slice(&row.value);
            if let Some(sequence) = row.sequence {
                out.extend_from_slice(&sequence.to_be_bytes());
            }
        }
        out
    }

    /// Reads a fuzz input; `None` if its header is short. A truncated row ends the rows.
    pub fn from_bytes(data: &[u8]) -> Option<Self> {
        let mut r = Input(data);
        let flags = r.u8()?;
        let device_epoch = r.u64()?;
        let primary_epoch = r.u64()?;
        let last_epoch = r.u64()?;
        let mut field = |bit: u8| match flags & bit {
            0 => Some(None),
            _ => r.field().map(|f| Some(f.to_vec())),
        };
        let digest_key = field(RAW_DIGEST_KEY)?;
        let meta = field(RAW_META)?;
        let mut rows = Vec::new();
        while let Some(row) = r.row() {
            rows.push(row);
        }
        Some(Self {
            device_epoch: (flags & DEVICE_EPOCH != 0).then_some(device_epoch),
            primary_epoch: (flags & PRIMARY_EPOCH != 0).then_some(primary_epoch),
            last_epoch,
            digest_key,
            meta,
            no_meta: flags & NO_META != 0,
            rows,
        })
    }

    /// The rows that stand: a later row of the same role and key replaces an earlier one.
    fn standing(&self) -> BTreeMap<RecordId, &Row> {
        self.rows.iter().map(|row| (row.record(), row)).collect()
    }

    fn epoch(&self, role: Role) -> Option<u64> {
        match role {
            Role::Device => self.device_epoch,
            Role::Primary => self.primary_epoch,
        }
    }

    fn sequence(&self, row: &Row) -> u64 {
        row.sequence
            .unwrap_or_else(|| self.epoch(row.role).unwrap_or(0))
    }

    /// Builds the store: the rows sealed under [`STORAGE_KEY`], the digest key row and the meta
    /// row as the input says. Returns the connection and the meta row's plaintext.
    fn build(&self) -> Result<(Connection, Vec<u8>), StoreError> {
        let storage_key = StorageKey::from_bytes(STORAGE_KEY);
        let digest_key = DigestKey::from_bytes(DIGEST_KEY);
        let rng = &mut FixedRng::default();
        let db = Connection::open_in_memory()?;
        db.execute_batch(rows::SCHEMA)?;
        let mut key_row = vec![FORMAT_VERSION];
        key_row.extend_from_slice(&DIGEST_KEY);
        let key_row = self.digest_key.as_deref().unwrap_or(&key_row);
        let sealed = seal_state(rng, &storage_key, DIGEST_KEY_NAME, 0, key_row);
        rows::put(&db, STORE, DIGEST_KEY_ROW, &sealed)?;
        let mut summary = Summary::default();
        summary.device_epoch = self.device_epoch;
        summary.primary_epoch = self.primary_epoch;
        summary.device_tag = tag(self.device_epoch, 1);
        summary.primary_tag = tag(self.primary_epoch, 2);
        for (record, row) in self.standing() {
            let name = match (row.flags & ROW_MISNAMED, row.role) {
                (0, _) => seal_name(&record),
                (_, Role::Device) => seal_name(&record_id(Role::Primary, &row.key)),
                (_, Role::Primary) => seal_name(&record_id(Role::Device, &row.key)),
            };
            let sequence = self.sequence(row);
            let sealed = seal_state(rng, &storage_key, &name, sequence, &row.value);
            if row.flags & ROW_UNSTORED == 0 {
                let (slot, key) = rows::location(&record);
                let stored = match row.flags & ROW_RESEALED {
                    0 => sealed.clone(),
                    _ => seal_state(
                        rng,
                        &storage_key,
                        &name,
                        sequence.saturating_sub(1),
                        &row.value,
                    ),
                };
                rows::put(&db, slot, key, &stored)?;
            }
            if row.flags & ROW_UNCOUNTED == 0 {
                summary.add(&digest_key.entry(&record, sequence, &sealed));
            }
        }
        let meta = match &self.meta {
            Some(meta) => meta.clone(),
            None => summary.to_bytes().to_vec(),
        };
        if !self.no_meta {
            // Sealed at the device's epoch, as a write seals it.
            let sequence = self.device_epoch.unwrap_or(0);
            let sealed = seal_state(rng, &storage_key, META_NAME, sequence, &meta);
            rows::put(&db, STORE, META_ROW, &sealed)?;
        }
        Ok((db, meta))
    }

    /// Whether the store is what writes make: the digest key and meta row its own, every row
    /// stored, counted, under its name and sealed no later than its role's epoch.
    fn consistent(&self) -> bool {
        let standing = self.standing();
        self.digest_key.is_none()
            && self.meta.is_none()
            && (!self.no_meta || standing.is_empty())
            && standing.values().all(|row| {
                row.flags & (ROW_UNCOUNTED | ROW_UNSTORED | ROW_MISNAMED | ROW_RESEALED) == 0
                    && self
                        .epoch(row.role)
                        .is_none_or(|epoch| self.sequence(row) <= epoch)
            })
    }

    /// Whether the meta row miscounts the rows: its own digest key and summary, a meta row
    /// stored, and a row stored but not counted, counted but not stored (not both: that row is
    /// not there at all), or stored as another copy than the one counted.
    fn miscounted(&self) -> bool {
        let one_way = |row: &&Row| {
            let (uncounted, unstored) = (
                row.flags & ROW_UNCOUNTED != 0,
                row.flags & ROW_UNSTORED != 0,
            );
            uncounted != unstored || (row.flags & ROW_RESEALED != 0 && !uncounted)
        };
        self.digest_key.is_none()
            && self.meta.is_none()
            && !self.no_meta
            && self.standing().values().any(one_way)
    }

    /// Whether the primary is stored both ways, its format-1 blob beside its records (the store
    /// never writes that, and refuses it).
    fn blob_beside_records(&self) -> bool {
        let stored = |row: &&&Row| row.role == Role::Primary && row.flags & ROW_UNSTORED == 0;
        let standing = self.standing();
        let mut primary = standing.values().filter(stored);
        primary.clone().any(|row| row.key.is_empty()) && primary.any(|row| !row.key.is_empty())
    }
}

fn tag(epoch: Option<u64>, byte: u8) -> UnitTag {
    match epoch {
        Some(_) => UnitTag::from_bytes([byte; 16]),
        None => UnitTag::NONE,
    }
}

/// The database the store target builds from `input` (to open with [`STORAGE_KEY`]), or
/// `None` if the input is short.
pub fn build(input: &[u8]) -> Option<Connection> {
    let input = StoreInput::from_bytes(input)?;
    Some(input.build().ok()?.0)
}

/// The meta row's plaintext the store built from `input` holds (the summary of its rows, unless
/// the input gives it): a seed of [`meta`]. `None` if the input is short.
pub fn meta_plaintext(input: &[u8]) -> Option<Vec<u8>> {
    let input = StoreInput::from_bytes(input)?;
    Some(input.build().ok()?.1)
}

/// The meta row's plaintext, to the summary decoder.
pub fn meta(data: &[u8]) {
    let Ok(summary) = Summary::from_bytes(data) else {
        return;
    };
    // Canonical: the bytes decoded are the bytes encoded (format 1 is read as format 2 with no
    // tags, and rewritten so).
    let bytes = summary.to_bytes();
    let mut expected = data.to_vec();
    if data.first() == Some(&META_V1) {
        expected[0] = META_VERSION;
        expected.extend_from_slice(&[0; 32]);
    }
    assert!(
        *bytes == expected,
        "the meta row does not re-encode as read"
    );
    assert!(
        Summary::from_bytes(&bytes).is_ok_and(|back| back == summary),
        "the meta row re-encoded does not decode as itself"
    );
    // Checked against an empty store and the other way, whatever its sums: a typed answer
    // (the naming of one row missing or added reads the ids field).
    assert!(summary.check(&summary, &[]).is_ok());
    for result in [
        summary.check(&Summary::default(), &[]),
        Summary::default().check(&summary, &[]),
    ] {
        if let Err(e) = result {
            let _ = e.to_string();
        }
    }
}

/// A store built from the input, loaded every way.
pub fn store(data: &[u8]) {
    let Some(input) = StoreInput::from_bytes(data) else {
        return;
    };
    let built = input.build();
    assert!(built.is_ok(), "building the store failed: {built:?}");
    let Ok((db, _)) = built else { return };
    let store = match SqliteStore::from_connection(db, StorageKey::from_bytes(STORAGE_KEY)) {
        Ok(store) => store,
        Err(e) => {
            assert!(
                input.digest_key.is_some(),
                "the store's own digest key row refused: {e}"
            );
            return;
        }
    };
    let results = [
        store.load(0).map(|d| d.map(|d| d.to_bytes().len())),
        store.load_primary(0).map(|p| p.map(|p| p.to_bytes().len())),
        store
            .load_restored(input.last_epoch, NOW)
            .map(|d| Some(d.to_bytes().len())),
        store
            .load_primary_restored(input.last_epoch)
            .map(|p| Some(p.to_bytes().len())),
    ];
    let consistent = input.consistent();
    let miscounted = input.miscounted();
    let blob_beside_records = input.blob_beside_records();
    for result in results {
        let Err(e) = result else {
            assert!(!miscounted, "a miscounted store loaded");
            continue;
        };
        let _ = e.to_string();
        let integrity = matches!(
            e,
            StoreError::MetaMissing
                | StoreError::RecordDoesNotOpen(_)
                | StoreError::MetaRolledBack { .. }
                | StoreError::RecordReplaced { .. }
                | StoreError::RecordMissing(_)
                | StoreError::RecordAdded(_)
                | StoreError::RecordsMismatch
        );
        if consistent {
            let blob = blob_beside_records && matches!(e, StoreError::RecordsMismatch);
            assert!(
                blob || !integrity,
                "a store built as writes build it reports tampering: {e}"
            );
        }
        if miscounted {
            assert!(integrity, "a miscounted store is not refused as such: {e}");
        }
    }
}

/// Reads the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn field(&mut self) -> Option<&[u8]> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        self.take(usize::from(len))
    }

    fn row(&mut self) -> Option<Row> {
        let flags = self.u8()?;
        let key = self.field()?.to_vec();
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        let value = self.take(usize::try_from(len).ok()?)?.to_vec();
        let sequence = match flags & ROW_SEQUENCE {
            0 => None,
            _ => Some(self.u64()?),
        };
        Some(Row {
            role: match flags & ROW_PRIMARY {
                0 => Role::Device,
                _ => Role::Primary,
            },
            key,
            value,
            flags: flags & (ROW_UNCOUNTED | ROW_UNSTORED | ROW_MISNAMED | ROW_RESEALED),
            sequence,
        })
    }
}

/// The seals' nonces: SHA-256 of a counter, so a fuzz input always builds the same bytes.
#[derive(Default)]
struct FixedRng(u64);

impl TryRng for FixedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(32) {
            self.0 += 1;
            let block = Sha256::new_with_prefix(b"ratchetry-sqlite fuzz nonces")
                .chain_update(self.0.to_be_bytes())
                .finalize();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

impl TryCryptoRng for FixedRng {}
