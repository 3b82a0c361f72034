//! The meta row: the epochs and unit tags stored and an authenticated summary of every live row, updated by
//! each write for the rows it writes (O(rows in the unit)), recomputed from every row on load.
//!
//! Each row contributes one entry:
//!
//! ```text
//! mac    = HMAC-SHA256(digest key, "ratchetry-sqlite v1 entry" ‖ u8(role) ‖ u32(len(key)) ‖ key
//!                                  ‖ u64(sealed sequence) ‖ SHA-256(sealed value))
//! id     = u8(role) ‖ u8(len(key)) ‖ key ‖ zeros            (KEY_FIELD bytes; see `id_field`)
//! weight = u64_le(mac[0..8]) mod p,  fingerprint = u64_le(SHA-256(label ‖ id)[0..8]) mod p
//! ```
//!
//! and the summary holds, over all live rows: their count, the XOR of the macs (the check: the
//! digest key is secret and the meta row sealed, so no one without the storage key can predict
//! an entry or make a set of changes cancel out), and three sums that only serve to name the row
//! when exactly one differs: the XOR of the ids (a row deleted or added is the difference), and
//! Σ weight and Σ weight·fingerprint in GF(p), p = 2^61 − 1 (a row replaced by another copy of
//! itself changes only its weight, so the quotient of the two differences is its fingerprint).

use hmac::{Hmac, KeyInit, Mac};
use ratchetry::persist::UnitTag;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{RecordId, StoreError};

/// Labels: every MAC and hash input starts with one; none is a prefix of another.
const ENTRY_LABEL: &[u8] = b"ratchetry-sqlite v1 entry";
const FINGERPRINT_LABEL: &[u8] = b"ratchetry-sqlite v1 fingerprint";

/// Bytes of the XOR-of-ids field: a role byte, a length byte and the key, zero-padded.
const KEY_FIELD: usize = 80;
/// The longest record key a deletion or insertion of can be named by (longer keys are still
/// checked; their id field holds a hash, and a change to them alone is `RecordsMismatch`).
pub(crate) const MAX_NAMED_KEY_LEN: usize = KEY_FIELD - 2;
/// The length byte of an id that holds a hash of the key instead of the key.
const HASHED_KEY: u8 = 0xff;

/// The meta row's format: 2 adds the tag of each role's last unit; 1 (before tags) is read with
/// both tags `UnitTag::NONE`, the tag a state of that release loads with.
pub(crate) const META_VERSION: u8 = 2;
pub(crate) const META_V1: u8 = 1;
/// The meta row's exact length: written into a buffer of that capacity, it never reallocates
/// (which would leave an unwiped copy behind).
const META_LEN: usize = 1 + 9 + 9 + 8 + 32 + KEY_FIELD + 8 + 8 + 16 + 16;

const ROLE_DEVICE: u8 = 1;
const ROLE_PRIMARY: u8 = 2;

/// The store's secret key for entry MACs: 32 random bytes made when the database is created,
/// kept sealed in it.
pub(crate) struct DigestKey(Zeroizing<[u8; 32]>);

impl DigestKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// This row's entry. `sealed` is the stored value, `sequence` the sequence it was sealed at.
    pub(crate) fn entry(&self, record: &RecordId, sequence: u64, sealed: &[u8]) -> Entry {
        let (role, key): (u8, &[u8]) = match record {
            RecordId::Device(key) => (ROLE_DEVICE, key),
            // The previous blob is the primary's row with the empty key, as that version
            // counted it: its summaries still check.
            RecordId::Primary(key) => (ROLE_PRIMARY, key),
            RecordId::PrimaryBlob => (ROLE_PRIMARY, &[]),
        };
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0[..]) {
            Ok(mac) => mac,
            // HMAC takes keys of any length.
            Err(_) => <Hmac<Sha256> as KeyInit>::new(&Default::default()),
        };
        mac.update(ENTRY_LABEL);
        mac.update(&[role]);
        mac.update(&(key.len() as u32).to_be_bytes());
        mac.update(key);
        mac.update(&sequence.to_be_bytes());
        mac.update(&Sha256::digest(sealed));
        let mac: [u8; 32] = mac.finalize().into_bytes().into();
        let id = id_field(role, key);
        let fingerprint = field_from(
            &Sha256::new_with_prefix(FINGERPRINT_LABEL)
                .chain_update(id)
                .finalize(),
        );
        Entry {
            weight: field_from(&mac),
            mac,
            id,
            fingerprint,
        }
    }
}

/// One row's contribution to the summary.
pub(crate) struct Entry {
    mac: [u8; 32],
    id: [u8; KEY_FIELD],
    weight: u64,
    fingerprint: u64,
}

fn id_field(role: u8, key: &[u8]) -> [u8; KEY_FIELD] {
    let mut id = [0u8; KEY_FIELD];
    id[0] = role;
    if key.len() <= MAX_NAMED_KEY_LEN {
        id[1] = key.len() as u8;
        id[2..2 + key.len()].copy_from_slice(key);
    } else {
        id[1] = HASHED_KEY;
        id[2..34].copy_from_slice(&Sha256::digest(key));
    }
    id
}

/// The row an id field names, if it is one a single row can have.
fn record_of(id: &[u8; KEY_FIELD]) -> Option<RecordId> {
    let len = id[1] as usize;
    if len > MAX_NAMED_KEY_LEN || id[2 + len..].iter().any(|b| *b != 0) {
        return None;
    }
    match id[0] {
        ROLE_DEVICE => Some(RecordId::Device(id[2..2 + len].to_vec())),
        ROLE_PRIMARY if len == 0 => Some(RecordId::PrimaryBlob),
        ROLE_PRIMARY => Some(RecordId::Primary(id[2..2 + len].to_vec())),
        _ => None,
    }
}

/// What the meta row holds.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The device's epoch, if a device is stored.
    pub(crate) device_epoch: Option<u64>,
    /// The primary's epoch, if a primary is stored.
    pub(crate) primary_epoch: Option<u64>,
    /// The tag of the device's last unit written (`NONE` if none is stored).
    pub(crate) device_tag: UnitTag,
    /// The tag of the primary's last unit written (`NONE` if none is stored).
    pub(crate) primary_tag: UnitTag,
    count: u64,
    digest: [u8; 32],
    ids: [u8; KEY_FIELD],
    weights: u64,
    weighted: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            device_epoch: None,
            primary_epoch: None,
            device_tag: UnitTag::NONE,
            primary_tag: UnitTag::NONE,
            count: 0,
            digest: [0; 32],
            ids: [0; KEY_FIELD],
            weights: 0,
            weighted: 0,
        }
    }
}

impl Summary {
    /// Counts a row in.
    pub(crate) fn add(&mut self, e: &Entry) {
        self.count = self.count.wrapping_add(1);
        self.toggle(e);
        self.weights = gf::add(self.weights, e.weight);
        self.weighted = gf::add(self.weighted, gf::mul(e.weight, e.fingerprint));
    }

    /// Counts a row out.
    pub(crate) fn remove(&mut self, e: &Entry) {
        self.count = self.count.wrapping_sub(1);
        self.toggle(e);
        self.weights = gf::sub(self.weights, e.weight);
        self.weighted = gf::sub(self.weighted, gf::mul(e.weight, e.fingerprint));
    }

    fn toggle(&mut self, e: &Entry) {
        for (d, m) in self.digest.iter_mut().zip(e.mac) {
            *d ^= m;
        }
        for (d, m) in self.ids.iter_mut().zip(e.id) {
            *d ^= m;
        }
    }

    /// Checks the rows found (`found`, summed over `rows`) against this summary, the one the
    /// meta row vouches for. The digests are compared in constant time; on a mismatch, names
    /// the row if exactly one was deleted, added or replaced.
    pub(crate) fn check(
        &self,
        found: &Summary,
        rows: &[(RecordId, u64, Entry)],
    ) -> Result<(), StoreError> {
        let same_digest: bool = self.digest.ct_eq(&found.digest).into();
        if same_digest
            && self.count == found.count
            && self.ids == found.ids
            && self.weights == found.weights
            && self.weighted == found.weighted
        {
            return Ok(());
        }
        let mut ids = self.ids;
        for (d, f) in ids.iter_mut().zip(found.ids) {
            *d ^= f;
        }
        let d_weights = gf::sub(self.weights, found.weights);
        let d_weighted = gf::sub(self.weighted, found.weighted);
        let present = |r: &RecordId| rows.iter().find(|(id, _, _)| id == r);
        if self.count == found.count.wrapping_add(1) {
            // One row fewer than vouched for: the difference of the ids is its id, and the
            // quotient of the sums its fingerprint.
            if let Some(record) = record_of(&ids)
                && present(&record).is_none()
                && gf::div(d_weighted, d_weights) == Some(fingerprint_of(&ids))
            {
                return Err(StoreError::RecordMissing(record));
            }
        } else if found.count == self.count.wrapping_add(1) {
            // One row more: the difference of the ids is its id, and without it the rows match.
            if let Some(record) = record_of(&ids)
                && let Some((_, _, entry)) = present(&record)
            {
                let mut without = found.clone();
                without.remove(entry);
                if bool::from(without.digest.ct_eq(&self.digest)) {
                    return Err(StoreError::RecordAdded(record));
                }
            }
        } else if self.count == found.count && ids == [0; KEY_FIELD] {
            // The same rows, one of them another copy: only its weight changed.
            if let Some(fingerprint) = gf::div(d_weighted, d_weights) {
                let mut matching = rows.iter().filter(|(_, _, e)| e.fingerprint == fingerprint);
                if let (Some((record, sealed_at, _)), None) = (matching.next(), matching.next()) {
                    return Err(StoreError::RecordReplaced {
                        record: record.clone(),
                        sealed_at: *sealed_at,
                    });
                }
            }
        }
        Err(StoreError::RecordsMismatch)
    }

    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(META_LEN));
        out.push(META_VERSION);
        for epoch in [self.device_epoch, self.primary_epoch] {
            out.push(u8::from(epoch.is_some()));
            out.extend_from_slice(&epoch.unwrap_or(0).to_be_bytes());
        }
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.ids);
        out.extend_from_slice(&self.weights.to_be_bytes());
        out.extend_from_slice(&self.weighted.to_be_bytes());
        out.extend_from_slice(&self.device_tag.to_bytes());
        out.extend_from_slice(&self.primary_tag.to_bytes());
        debug_assert_eq!(out.len(), META_LEN);
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != META_VERSION && version != META_V1 {
            return Err(StoreError::MetaMalformed);
        }
        let device_epoch = r.optional_u64()?;
        let primary_epoch = r.optional_u64()?;
        let count = r.u64()?;
        let digest = r.array()?;
        let ids = r.array()?;
        let weights = r.u64()?;
        let weighted = r.u64()?;
        let (device_tag, primary_tag) = match version {
            META_V1 => (UnitTag::NONE, UnitTag::NONE),
            _ => (
                UnitTag::from_bytes(r.array()?),
                UnitTag::from_bytes(r.array()?),
            ),
        };
        if !r.0.is_empty() || weights >= gf::P || weighted >= gf::P {
            return Err(StoreError::MetaMalformed);
        }
        Ok(Self {
            device_epoch,
            primary_epoch,
            device_tag,
            primary_tag,
            count,
            digest,
            ids,
            weights,
            weighted,
        })
    }
}

fn fingerprint_of(id: &[u8; KEY_FIELD]) -> u64 {
    field_from(
        &Sha256::new_with_prefix(FINGERPRINT_LABEL)
            .chain_update(id)
            .finalize(),
    )
}

/// The first 8 bytes of a hash, little-endian, reduced mod p.
fn field_from(bytes: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    gf::reduce(u128::from(u64::from_le_bytes(first)))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(StoreError::MetaMalformed)?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn optional_u64(&mut self) -> Result<Option<u64>, StoreError> {
        let present = self.u8()?;
        let value = self.u64()?;
        match (present, value) {
            (0, 0) => Ok(None),
            (1, v) => Ok(Some(v)),
            _ => Err(StoreError::MetaMalformed),
        }
    }
}

/// Arithmetic in GF(p), p = 2^61 − 1 (a Mersenne prime: reduction is a shift and an add).
mod gf {
    pub(super) const P: u64 = (1 << 61) - 1;

    /// `x` mod p, for `x` < 2^122.
    pub(super) fn reduce(x: u128) -> u64 {
        let folded = (x & u128::from(P)) + (x >> 61);
        let folded = (folded & u128::from(P)) + (folded >> 61);
        let r = folded as u64;
        if r >= P { r - P } else { r }
    }

    pub(super) fn add(a: u64, b: u64) -> u64 {
        reduce(u128::from(a) + u128::from(b))
    }

    pub(super) fn sub(a: u64, b: u64) -> u64 {
        reduce(u128::from(a) + u128::from(P - b))
    }

    pub(super) fn mul(a: u64, b: u64) -> u64 {
        reduce(u128::from(a) * u128::from(b))
    }

    /// `a / b`, or `None` if `b` is zero.
    pub(super) fn div(a: u64, b: u64) -> Option<u64> {
        if b == 0 {
            return None;
        }
        // b^(p−2) = b^(−1) (Fermat).
        let (mut inverse, mut base, mut e) = (1, b, P - 2);
        while e > 0 {
            if e & 1 == 1 {
                inverse = mul(inverse, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        Some(mul(a, inverse))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reduction_and_inverse_agree_with_the_definitions() {
            assert_eq!(reduce(u128::from(P)), 0);
            assert_eq!(reduce(u128::from(P) + 5), 5);
            assert_eq!(reduce(u128::from(P - 1) * u128::from(P - 1)), 1);
            assert_eq!(reduce(u128::from(u64::MAX)), (u64::MAX % P));
            assert_eq!(sub(3, 5), P - 2);
            assert_eq!(add(P - 1, 2), 1);
            for b in [1, 2, 3, 12345, P - 1, 1 << 60] {
                assert_eq!(div(1, b).map(|i| mul(i, b)), Some(1));
                assert_eq!(div(mul(7, b), b), Some(7));
            }
            assert_eq!(div(1, 0), None);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;

    fn key() -> DigestKey {
        DigestKey::from_bytes([9; 32])
    }

    fn device(k: &[u8]) -> RecordId {
        RecordId::Device(k.to_vec())
    }

    /// Three rows, summed; returns the summary and the rows with their entries.
    fn three() -> (Summary, Vec<(RecordId, u64, Entry)>) {
        let k = key();
        let rows: Vec<_> = [
            (device(b"\x01"), 1),
            (device(b"\x02"), 2),
            (RecordId::PrimaryBlob, 3),
        ]
        .into_iter()
        .map(|(r, s)| {
            let e = k.entry(&r, s, &[s as u8; 40]);
            (r, s, e)
        })
        .collect();
        let mut sum = Summary::default();
        for (_, _, e) in &rows {
            sum.add(e);
        }
        (sum, rows)
    }

    #[test]
    fn the_same_rows_check() {
        let (sum, rows) = three();
        assert!(sum.check(&sum.clone(), &rows).is_ok());
    }

    #[test]
    fn removing_what_was_added_restores_the_summary() {
        let (mut sum, rows) = three();
        let before = sum.clone();
        let extra = key().entry(&device(b"\x07"), 9, b"x");
        sum.add(&extra);
        assert!(sum != before);
        sum.remove(&extra);
        assert!(sum == before);
        assert!(Summary::from_bytes(&sum.to_bytes()).unwrap() == sum);
        let _ = rows;
    }

    #[test]
    fn an_entry_covers_the_key_the_sequence_and_the_sealed_bytes() {
        let k = key();
        let base = k.entry(&device(b"\x01"), 5, b"sealed").mac;
        assert_ne!(base, k.entry(&device(b"\x02"), 5, b"sealed").mac);
        assert_ne!(base, k.entry(&device(b"\x01"), 6, b"sealed").mac);
        assert_ne!(base, k.entry(&device(b"\x01"), 5, b"sealeD").mac);
        assert_ne!(base, k.entry(&RecordId::PrimaryBlob, 5, b"sealed").mac);
        // A primary record under the same key bytes as a device record is another row.
        assert_ne!(
            base,
            k.entry(&RecordId::Primary(b"\x01".to_vec()), 5, b"sealed")
                .mac
        );
        assert_ne!(
            base,
            DigestKey::from_bytes([8; 32])
                .entry(&device(b"\x01"), 5, b"sealed")
                .mac
        );
    }

    #[test]
    fn one_row_deleted_added_or_replaced_is_named() {
        let (sum, rows) = three();
        let k = key();
        let recount = |rows: &[(RecordId, u64, Entry)]| {
            let mut s = Summary::default();
            for (_, _, e) in rows {
                s.add(e);
            }
            s
        };
        // Deleted.
        let fewer: Vec<_> = three().1.into_iter().skip(1).collect();
        match sum.check(&recount(&fewer), &fewer) {
            Err(StoreError::RecordMissing(r)) => assert_eq!(r, device(b"\x01")),
            other => panic!("{other:?}"),
        }
        // Added.
        let mut more = three().1;
        more.push((device(b"\x09"), 2, k.entry(&device(b"\x09"), 2, b"new")));
        match sum.check(&recount(&more), &more) {
            Err(StoreError::RecordAdded(r)) => assert_eq!(r, device(b"\x09")),
            other => panic!("{other:?}"),
        }
        // Replaced by an older copy.
        let mut replaced = three().1;
        replaced[1] = (device(b"\x02"), 1, k.entry(&device(b"\x02"), 1, b"old"));
        match sum.check(&recount(&replaced), &replaced) {
            Err(StoreError::RecordReplaced { record, sealed_at }) => {
                assert_eq!((record, sealed_at), (device(b"\x02"), 1));
            }
            other => panic!("{other:?}"),
        }
        // Two rows replaced: not one to name.
        replaced[0] = (device(b"\x01"), 0, k.entry(&device(b"\x01"), 0, b"old"));
        assert!(matches!(
            sum.check(&recount(&replaced), &replaced),
            Err(StoreError::RecordsMismatch)
        ));
        let _ = rows;
    }

    #[test]
    fn a_long_key_is_checked_though_not_named() {
        let k = key();
        let long = device(&[3; MAX_NAMED_KEY_LEN + 1]);
        let mut sum = Summary::default();
        sum.add(&k.entry(&long, 1, b"v"));
        assert!(matches!(
            sum.check(&Summary::default(), &[]),
            Err(StoreError::RecordsMismatch)
        ));
    }

    #[test]
    fn a_malformed_meta_row_is_refused() {
        let (sum, _) = three();
        let bytes = sum.to_bytes();
        assert!(Summary::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut flag = bytes.to_vec();
        flag[1] = 2;
        assert!(Summary::from_bytes(&flag).is_err());
        let mut version = bytes.to_vec();
        version[0] = 3;
        assert!(Summary::from_bytes(&version).is_err());
        // Version 1 ended before the tags: without them it reads as no tags, with them it is
        // too long; version 2 without them is too short.
        let mut v1 = bytes[..bytes.len() - 32].to_vec();
        assert!(Summary::from_bytes(&v1).is_err());
        v1[0] = 1;
        let old = Summary::from_bytes(&v1).unwrap();
        assert_eq!(
            (old.device_tag, old.primary_tag),
            (UnitTag::NONE, UnitTag::NONE)
        );
        assert_eq!(old.device_epoch, sum.device_epoch);
        let mut long = bytes.to_vec();
        long[0] = 1;
        assert!(Summary::from_bytes(&long).is_err());
    }

    /// The tags round-trip, each in its place.
    #[test]
    fn the_meta_row_keeps_each_roles_tag() {
        let (mut sum, _) = three();
        sum.device_tag = UnitTag::from_bytes([1; 16]);
        sum.primary_tag = UnitTag::from_bytes([2; 16]);
        let back = Summary::from_bytes(&sum.to_bytes()).unwrap();
        assert_eq!(back.device_tag, UnitTag::from_bytes([1; 16]));
        assert_eq!(back.primary_tag, UnitTag::from_bytes([2; 16]));
        assert!(back == sum);
    }
}
