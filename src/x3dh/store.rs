//! The device's own prekeys: signed prekeys (current and a few retired ones, for messages in
//! flight across a rotation) and one-time prekeys, each consumed exactly once.
//!
//! The store changes only through methods that take `&mut self`; the responder computes with
//! `&self` and hands back a [`Consumption`] that is applied only once the whole receive succeeded.
//!
//! Every signed prekey remembers the base keys of the sessions accepted under it for as long as
//! it is kept, so a pre-key message is accepted at most once whether or not it used a one-time
//! prekey; a message naming a deleted signed prekey is refused anyway.
//!
//! The ML-KEM prekeys (last-resort and one-time) are kept beside them
//! ([`KemPreKeys`](super::kem_prekeys)); the last-resort one rotates with the signed prekey.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::bundle::signed_prekey_message;
use super::kem_prekeys::{KemPreKeys, KemUse};
use super::{
    KemPreKeyId, KemPreKeyPublic, OneTimePreKeyId, OneTimePreKeyPublic, PreKeyBundle,
    SignedPreKeyId, SignedPreKeyPublic,
};
use crate::error::{DecodeError, X3dhError};
use crate::labels;
use crate::primitives::{DhKeyPair, DhPublicKey, IdentityKeyPair, KemKeyPair, Signature, sha256};
use crate::time::Timestamp;
use crate::wire::{Reader, SecretBuf, Writer, bounded_count, kind};

/// Signed prekeys kept, the current one included, by default.
pub const DEFAULT_MAX_SIGNED_PREKEYS: u32 = 3;
/// One-time prekeys held at most, by default; generation beyond it is capped.
pub const DEFAULT_MAX_ONE_TIME_PREKEYS: u32 = 1000;
/// Sessions one signed prekey accepts, by default: past it, pre-key messages naming it are
/// refused (`SignedPreKeyExhausted`) until it is rotated out.
pub const DEFAULT_MAX_SESSIONS_PER_SIGNED_PREKEY: u32 = 100_000;
/// One-time ML-KEM prekeys held at most, by default.
pub const DEFAULT_MAX_ONE_TIME_KEM_PREKEYS: u32 = 100;
/// Sessions one last-resort ML-KEM prekey may start, by default: past it, pre-key messages
/// naming it are refused (`LastResortExhausted`) until it is rotated out.
pub const DEFAULT_MAX_LAST_RESORT_USES: u32 = 10_000;

/// The prekey store format this build writes. Version 1 (classical only: no ML-KEM prekeys)
/// is read by [`PreKeyStore::migrate`].
const PREKEY_STORE_VERSION: u8 = 2;

/// Limits of a [`PreKeyStore`]; stored with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreKeyStoreConfig {
    /// Signed prekeys kept (at least 1): rotating past this retires the oldest, and initial
    /// messages naming a retired one fail with `UnknownSignedPreKey`.
    pub max_signed_prekeys: u32,
    /// One-time prekeys held at most.
    pub max_one_time_prekeys: u32,
    /// Sessions accepted under one signed prekey (each remembered, to refuse a replayed
    /// pre-key message, until that signed prekey is deleted). Rotate well before it is
    /// reached: [`PreKeyStore::signed_prekey_sessions`] tells how many the current one took.
    pub max_sessions_per_signed_prekey: u32,
    /// One-time ML-KEM prekeys held at most.
    pub max_one_time_kem_prekeys: u32,
    /// Sessions one last-resort ML-KEM prekey may start
    /// ([`PreKeyStore::last_resort_uses`] tells how many the current one did).
    pub max_last_resort_uses: u32,
}

impl Default for PreKeyStoreConfig {
    fn default() -> Self {
        Self {
            max_signed_prekeys: DEFAULT_MAX_SIGNED_PREKEYS,
            max_one_time_prekeys: DEFAULT_MAX_ONE_TIME_PREKEYS,
            max_sessions_per_signed_prekey: DEFAULT_MAX_SESSIONS_PER_SIGNED_PREKEY,
            max_one_time_kem_prekeys: DEFAULT_MAX_ONE_TIME_KEM_PREKEYS,
            max_last_resort_uses: DEFAULT_MAX_LAST_RESORT_USES,
        }
    }
}

#[derive(Clone, Debug)]
struct SignedPreKey {
    id: SignedPreKeyId,
    pair: DhKeyPair,
    signature: Signature,
    created_at: Timestamp,
    /// Base keys of the sessions accepted under this prekey.
    seen: BTreeSet<[u8; 32]>,
}

/// The fewest ids each prekey counter (signed, one-time, one-time ML-KEM) skips when its
/// device is restored from a backup: more than the lost state can have issued after the
/// backup (keys are uploaded tens at a time, signed prekeys rotate weekly), so no id it
/// issued, which the server may still hand out, ever names another key. A restore skips this
/// plus a spread below [`RESTORE_PREKEY_ID_SPREAD`] drawn from its time
/// ([`restore_prekey_skip`]). A counter's space holds hundreds of such skips.
pub const RESTORE_PREKEY_ID_SKIP: u32 = 1 << 20;

/// A restore's skip is [`RESTORE_PREKEY_ID_SKIP`] plus a number below this, drawn from the
/// restore's time: two restores from one backup (the first restored device lost before a
/// newer backup), at different times, start their ids at different places, and the second
/// issues an id the first issued only if the two places lie fewer ids apart than the first
/// issued (for a hundred ids, about one chance in 84,000).
pub const RESTORE_PREKEY_ID_SPREAD: u32 = 1 << 24;

/// The ids a device restored from a backup at `restored_at` skips on each prekey counter
/// (PROTOCOL.md 19.4): [`RESTORE_PREKEY_ID_SKIP`] plus
/// `BE32(SHA-256("ratchetry v1 restore spread" ‖ u64(restored_at))[0..4]) mod 2^24`, where
/// `restored_at` is the `now` the restore is given, in milliseconds. Public
/// (the time is all it takes), so a server can tell where a restored device's ids resume.
pub fn restore_prekey_skip(restored_at: Timestamp) -> u32 {
    let digest = restore_spread(restored_at);
    let spread = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    RESTORE_PREKEY_ID_SKIP + spread % RESTORE_PREKEY_ID_SPREAD
}

/// `SHA-256("ratchetry v1 restore spread" ‖ u64(restored_at))`: the spreads a restore at
/// `restored_at` draws from its time, a device's prekey skip from bytes 0..4 and a primary's
/// device id skip from bytes 4..8 (PROTOCOL.md 15.3, 19.4).
pub(crate) fn restore_spread(restored_at: Timestamp) -> [u8; 32] {
    sha256(&[
        labels::RESTORE_SPREAD,
        &restored_at.as_millis().to_be_bytes(),
    ])
}

/// A signed or one-time prekey counter moved `by` ids on: ids run from 1 and wrap past 0 to 1,
/// one step or a restore's skip alike.
fn advanced(id: u32, by: u32) -> u32 {
    id.wrapping_add(by).max(1)
}

/// A device's prekey secrets. Serialize with [`to_bytes`](Self::to_bytes) after every change.
#[derive(Clone, Debug)]
pub struct PreKeyStore {
    config: PreKeyStoreConfig,
    /// The signed prekey published in bundles.
    current: SignedPreKey,
    /// Earlier signed prekeys still accepted, oldest first.
    retired: VecDeque<SignedPreKey>,
    one_time: BTreeMap<OneTimePreKeyId, DhKeyPair>,
    next_signed_id: u32,
    next_one_time_id: u32,
    kem: KemPreKeys,
}

/// What accepting an initial message takes from the store, applied only on success.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Consumption {
    pub(crate) signed: SignedPreKeyId,
    pub(crate) one_time: Option<OneTimePreKeyId>,
    pub(crate) base_key: DhPublicKey,
    pub(crate) kem: KemUse,
}

impl PreKeyStore {
    /// A store with one fresh signed prekey (id 1), one last-resort ML-KEM prekey (id 1), and
    /// no one-time prekeys. Draws 32 bytes (the signed prekey) then 64 (the KEM prekey's seed).
    pub fn new(
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
        config: PreKeyStoreConfig,
    ) -> Self {
        Self {
            config: PreKeyStoreConfig {
                max_signed_prekeys: config.max_signed_prekeys.max(1),
                ..config
            },
            current: SignedPreKey::generate(rng, identity, SignedPreKeyId(1), now),
            retired: VecDeque::new(),
            one_time: BTreeMap::new(),
            next_signed_id: 2,
            next_one_time_id: 1,
            kem: KemPreKeys::new(rng, identity, now),
        }
    }

    /// After a restore from backup at `restored_at`: every id counter skips
    /// [`restore_prekey_skip`] ids (wrapping as it does, past 0 to 1).
    pub(crate) fn skip_ids_after_restore(&mut self, restored_at: Timestamp) {
        let skip = restore_prekey_skip(restored_at);
        self.next_signed_id = advanced(self.next_signed_id, skip);
        self.next_one_time_id = advanced(self.next_one_time_id, skip);
        self.kem.skip_ids(skip);
    }

    /// Makes a new signed prekey and a new last-resort ML-KEM prekey current (32, then 64
    /// bytes from `rng`); the oldest beyond the configured count are deleted, the signed
    /// prekey with the base keys it remembered. One-time prekeys are independent of them: they
    /// stay valid and need no new upload. A store from a release before the post-quantum
    /// ratchet marks its ML-KEM prekeys ([`KemPreKeyId::pq_ratchet`]) from its first rotation
    /// on, so rotate once after upgrading from one.
    pub fn rotate_signed_prekey(
        &mut self,
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
    ) -> SignedPreKeyPublic {
        let id = SignedPreKeyId(self.next_signed_id);
        self.next_signed_id = advanced(self.next_signed_id, 1);
        let previous = core::mem::replace(
            &mut self.current,
            SignedPreKey::generate(rng, identity, id, now),
        );
        self.retired.push_back(previous);
        while self.retired.len() >= self.config.max_signed_prekeys as usize {
            self.retired.pop_front();
        }
        self.kem
            .rotate(rng, identity, now, self.config.max_signed_prekeys);
        self.signed_prekey()
    }

    /// Names the ML-KEM prekeys as a release from before the post-quantum ratchet did
    /// (`testing::hooks::before_pq_ratchet`).
    #[cfg(feature = "test-support")]
    pub(crate) fn before_pq_ratchet(&mut self, identity: &IdentityKeyPair) -> Vec<KemPreKeyPublic> {
        self.kem.before_pq_ratchet(identity)
    }

    /// The current last-resort ML-KEM prekey's public half, as bundles carry it when no
    /// one-time one is left; computed from its seed at each call (one ML-KEM key generation).
    pub fn last_resort_kem_prekey(&self) -> KemPreKeyPublic {
        self.kem.last_resort.public()
    }

    /// Sessions the current last-resort ML-KEM prekey started: rotate well before
    /// `max_last_resort_uses`.
    pub fn last_resort_uses(&self) -> u32 {
        self.kem.last_resort.uses
    }

    /// Generates up to `count` signed one-time ML-KEM prekeys (fewer if the store would exceed
    /// its cap; 64 bytes from `rng` each) and returns their public halves for upload.
    pub fn generate_one_time_kem_prekeys(
        &mut self,
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
        count: u32,
    ) -> Vec<KemPreKeyPublic> {
        self.generate_one_time_kem_prekeys_beyond(rng, identity, now, count, 0)
    }

    /// The same, with room for `extra` keys beyond the cap: keys a layer above holds outside
    /// the uploaded pool (the fanout layer's retry requests) must not crowd it out.
    pub(crate) fn generate_one_time_kem_prekeys_beyond(
        &mut self,
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
        count: u32,
        extra: u32,
    ) -> Vec<KemPreKeyPublic> {
        let cap = self.config.max_one_time_kem_prekeys.saturating_add(extra);
        self.kem.generate_one_time(rng, identity, now, count, cap)
    }

    /// How many one-time ML-KEM prekeys remain unconsumed.
    pub fn one_time_kem_prekeys_remaining(&self) -> usize {
        self.kem.one_time.len()
    }

    /// The public half of one unconsumed one-time ML-KEM prekey, computed from its seed.
    pub fn one_time_kem_prekey(&self, id: KemPreKeyId) -> Option<KemPreKeyPublic> {
        self.kem.one_time.get(&id).map(|k| k.public())
    }

    /// The current signed prekey's public half.
    pub fn signed_prekey(&self) -> SignedPreKeyPublic {
        self.current.public()
    }

    /// When the current signed prekey was made, to decide when to rotate.
    pub fn signed_prekey_created_at(&self) -> Timestamp {
        self.current.created_at
    }

    /// Sessions accepted under the current signed prekey: rotate it well before
    /// `max_sessions_per_signed_prekey`.
    pub fn signed_prekey_sessions(&self) -> usize {
        self.current.seen.len()
    }

    /// Generates up to `count` one-time prekeys (fewer if the store would exceed its cap) and
    /// returns their public halves for upload.
    pub fn generate_one_time_prekeys(
        &mut self,
        rng: &mut impl CryptoRng,
        count: u32,
    ) -> Vec<OneTimePreKeyPublic> {
        self.generate_one_time_prekeys_beyond(rng, count, 0)
    }

    /// The same, with room for `extra` keys beyond the cap (see
    /// `generate_one_time_kem_prekeys_beyond`).
    pub(crate) fn generate_one_time_prekeys_beyond(
        &mut self,
        rng: &mut impl CryptoRng,
        count: u32,
        extra: u32,
    ) -> Vec<OneTimePreKeyPublic> {
        let cap = self.config.max_one_time_prekeys.saturating_add(extra);
        let room = (cap as usize).saturating_sub(self.one_time.len());
        let count = (count as usize).min(room);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let id = OneTimePreKeyId(self.next_one_time_id);
            self.next_one_time_id = advanced(self.next_one_time_id, 1);
            let pair = DhKeyPair::generate(rng);
            out.push(OneTimePreKeyPublic {
                id,
                key: pair.public(),
            });
            self.one_time.insert(id, pair);
        }
        out
    }

    /// How many one-time prekeys remain unconsumed.
    pub fn one_time_prekeys_remaining(&self) -> usize {
        self.one_time.len()
    }

    /// The public half of one unconsumed one-time prekey.
    pub fn one_time_prekey(&self, id: OneTimePreKeyId) -> Option<OneTimePreKeyPublic> {
        self.one_time.get(&id).map(|pair| OneTimePreKeyPublic {
            id,
            key: pair.public(),
        })
    }

    /// A bundle with the current signed prekey, if given and still held one one-time prekey,
    /// and the one-time ML-KEM prekey `kem` if given and still held (else the last-resort
    /// one). Normally the server assembles bundles from uploads; this serves tests and direct
    /// exchanges. The ML-KEM prekey is held as its seed: its public key is computed here (one
    /// ML-KEM key generation).
    pub fn bundle(
        &self,
        identity: &IdentityKeyPair,
        one_time: Option<OneTimePreKeyId>,
        kem: Option<KemPreKeyId>,
    ) -> PreKeyBundle {
        PreKeyBundle::new(
            identity.public(),
            self.signed_prekey(),
            one_time.and_then(|id| self.one_time_prekey(id)),
            kem.and_then(|id| self.one_time_kem_prekey(id))
                .unwrap_or_else(|| self.last_resort_kem_prekey()),
        )
    }

    fn signed(&self, id: SignedPreKeyId) -> Option<&SignedPreKey> {
        core::iter::once(&self.current)
            .chain(&self.retired)
            .find(|s| s.id == id)
    }

    /// The signed prekey pair `id`, if it may still accept the session with `base_key`.
    pub(crate) fn signed_pair(
        &self,
        id: SignedPreKeyId,
        base_key: &DhPublicKey,
    ) -> Result<&DhKeyPair, X3dhError> {
        let spk = self
            .signed(id)
            .ok_or(X3dhError::UnknownSignedPreKey(id.0))?;
        if spk.seen.contains(base_key.as_bytes()) {
            return Err(X3dhError::Replayed);
        }
        if spk.seen.len() >= self.config.max_sessions_per_signed_prekey as usize {
            return Err(X3dhError::SignedPreKeyExhausted(id.0));
        }
        Ok(&spk.pair)
    }

    pub(crate) fn one_time_pair(&self, id: OneTimePreKeyId) -> Option<&DhKeyPair> {
        self.one_time.get(&id)
    }

    /// The ML-KEM key pair `id` names and how a session would use it.
    pub(crate) fn kem_pair(&self, id: KemPreKeyId) -> Result<(&KemKeyPair, KemUse), X3dhError> {
        self.kem.find(id, self.config.max_last_resort_uses)
    }

    /// Deletes one-time prekeys that were never handed out for upload (a retry request's, once
    /// the retry ended); returns which of the two were still held.
    pub(crate) fn release(
        &mut self,
        one_time: Option<OneTimePreKeyId>,
        kem: Option<KemPreKeyId>,
    ) -> (bool, bool) {
        let one_time = one_time.is_some_and(|id| self.one_time.remove(&id).is_some());
        let kem = kem.is_some_and(|id| self.kem.one_time.remove(&id).is_some());
        (one_time, kem)
    }

    /// Applies a successful acceptance: the one-time prekey is gone for good and the base key
    /// is remembered under its signed prekey.
    pub(crate) fn consume(&mut self, c: Consumption) {
        if let Some(id) = c.one_time {
            self.one_time.remove(&id);
        }
        self.kem.consume(c.kem);
        let spk = core::iter::once(&mut self.current)
            .chain(&mut self.retired)
            .find(|s| s.id == c.signed);
        if let Some(spk) = spk {
            spk.seen.insert(c.base_key.to_bytes());
        }
    }

    /// Versioned state bytes (PROTOCOL.md, "Prekey store state"). They hold secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = SecretBuf::with_capacity(
            64 + 360 * (1 + self.retired.len())
                + 68 * self.one_time.len()
                + 148 * self.kem.one_time.len(),
        );
        out.versioned_header(PREKEY_STORE_VERSION, kind::PREKEY_STORE_STATE);
        self.write_core(&mut out);
        out.u32(self.one_time.len() as u32);
        for id in self.one_time.keys() {
            self.write_one_time(&mut out, *id);
        }
        out.u32(self.kem.one_time.len() as u32);
        for k in self.kem.one_time.values() {
            k.write(&mut out);
        }
        for spk in core::iter::once(&self.current).chain(&self.retired) {
            out.u32(spk.seen.len() as u32);
            for k in &spk.seen {
                out.put(k);
            }
        }
        out.into_inner()
    }

    /// Restores a store from [`to_bytes`](Self::to_bytes). State of the first format
    /// (classical prekeys only) is refused as `UnknownVersion(1)`: load it with
    /// [`migrate`](Self::migrate).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, _) =
            Reader::versioned_header(bytes, kind::PREKEY_STORE_STATE, &[PREKEY_STORE_VERSION])?;
        let mut store = Self::read_core(&mut r)?;
        let n = bounded_count(&mut r, store.config.max_one_time_prekeys)?;
        for _ in 0..n {
            let (id, pair) = read_one_time(&mut r)?;
            // Strictly ascending ids: the one canonical order, and no duplicates.
            if store
                .one_time
                .last_key_value()
                .is_some_and(|(last, _)| *last >= id)
            {
                return Err(DecodeError::InvalidValue);
            }
            store.one_time.insert(id, pair);
        }
        let n = bounded_count(&mut r, store.config.max_one_time_kem_prekeys)?;
        for _ in 0..n {
            let last = store.kem.one_time.last_key_value().map(|(id, _)| *id);
            let id = store.insert_one_time_kem(&mut r, 0)?;
            if last.is_some_and(|l| l >= id) {
                return Err(DecodeError::InvalidValue);
            }
        }
        let limit = store.config.max_sessions_per_signed_prekey;
        for spk in core::iter::once(&mut store.current).chain(&mut store.retired) {
            let n = bounded_count(&mut r, limit)?;
            let mut last: Option<[u8; 32]> = None;
            for _ in 0..n {
                let k: [u8; 32] = r.array()?;
                if last.is_some_and(|l| l >= k) {
                    return Err(DecodeError::InvalidValue);
                }
                last = Some(k);
                spk.seen.insert(k);
            }
        }
        r.finish()?;
        Ok(store)
    }

    /// Loads a store of either format: the current one as [`from_bytes`](Self::from_bytes)
    /// does, and the first (classical only), to which it adds a last-resort ML-KEM prekey
    /// (64 bytes from `rng`, signed by `identity`, the store's own identity) so that the
    /// device can publish post-quantum bundles again.
    pub fn migrate(
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
        bytes: &[u8],
    ) -> Result<Self, DecodeError> {
        let (r, version) =
            Reader::versioned_header(bytes, kind::PREKEY_STORE_STATE, &[1, PREKEY_STORE_VERSION])?;
        if version == PREKEY_STORE_VERSION {
            return Self::from_bytes(bytes);
        }
        Self::read_version_1(r, KemPreKeys::new(rng, identity, now))
    }

    /// Config, counters, signed prekeys and last-resort ML-KEM prekeys (with their secrets,
    /// not their base keys).
    pub(crate) fn write_core(&self, out: &mut SecretBuf) {
        out.u32(self.config.max_signed_prekeys);
        out.u32(self.config.max_one_time_prekeys);
        out.u32(self.config.max_sessions_per_signed_prekey);
        out.u32(self.config.max_one_time_kem_prekeys);
        out.u32(self.config.max_last_resort_uses);
        out.u32(self.next_signed_id);
        out.u32(self.next_one_time_id);
        self.current.write(out);
        out.u32(self.retired.len() as u32);
        for s in &self.retired {
            s.write(out);
        }
        self.kem.write_core(out);
    }

    pub(crate) fn read_core(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let config = PreKeyStoreConfig {
            max_signed_prekeys: r.u32()?,
            max_one_time_prekeys: r.u32()?,
            max_sessions_per_signed_prekey: r.u32()?,
            max_one_time_kem_prekeys: r.u32()?,
            max_last_resort_uses: r.u32()?,
        };
        let next_signed_id = r.u32()?;
        let next_one_time_id = r.u32()?;
        if config.max_signed_prekeys == 0 {
            return Err(DecodeError::InvalidValue);
        }
        let current = SignedPreKey::read(r)?;
        let n = bounded_count(r, config.max_signed_prekeys - 1)?;
        let mut retired = VecDeque::with_capacity(r.capacity(n, 140));
        for _ in 0..n {
            retired.push_back(SignedPreKey::read(r)?);
        }
        let kem = KemPreKeys::read_core(r, config.max_signed_prekeys)?;
        Ok(Self {
            config,
            current,
            retired,
            one_time: BTreeMap::new(),
            next_signed_id,
            next_one_time_id,
            kem,
        })
    }

    /// One one-time ML-KEM prekey, as [`KemPreKey::write`](super::kem_prekeys) encodes it.
    pub(crate) fn write_one_time_kem(&self, out: &mut SecretBuf, id: KemPreKeyId) {
        if let Some(k) = self.kem.one_time.get(&id) {
            k.write(out);
        }
    }

    /// Restores one one-time ML-KEM prekey; refused beyond the cap plus `extra` (room a layer
    /// above keeps for keys it holds outside the uploaded pool).
    pub(crate) fn insert_one_time_kem(
        &mut self,
        r: &mut Reader<'_>,
        extra: u32,
    ) -> Result<KemPreKeyId, DecodeError> {
        let cap = self.config.max_one_time_kem_prekeys.saturating_add(extra);
        self.kem.insert_one_time(r, cap)
    }

    /// The ids of the one-time ML-KEM prekeys held.
    pub(crate) fn one_time_kem_ids(&self) -> impl Iterator<Item = KemPreKeyId> + '_ {
        self.kem.one_time.keys().copied()
    }

    /// One one-time prekey: `u32(id) ‖ secret ‖ public`.
    pub(crate) fn write_one_time(&self, out: &mut SecretBuf, id: OneTimePreKeyId) {
        if let Some(pair) = self.one_time.get(&id) {
            out.u32(id.0);
            out.put(pair.secret_bytes());
            out.put(pair.public().as_bytes());
        }
    }

    /// Restores one one-time prekey; refused beyond the cap plus `extra`.
    pub(crate) fn insert_one_time(
        &mut self,
        r: &mut Reader<'_>,
        extra: u32,
    ) -> Result<(), DecodeError> {
        let (id, pair) = read_one_time(r)?;
        let cap = self.config.max_one_time_prekeys.saturating_add(extra);
        if self.one_time.len() >= cap as usize || self.one_time.insert(id, pair).is_some() {
            return Err(DecodeError::InvalidValue);
        }
        Ok(())
    }

    /// The base keys remembered under each signed prekey, as `(spk id, base key)`.
    pub(crate) fn seen_base_keys(&self) -> impl Iterator<Item = (SignedPreKeyId, &[u8; 32])> {
        core::iter::once(&self.current)
            .chain(&self.retired)
            .flat_map(|s| s.seen.iter().map(move |k| (s.id, k)))
    }

    /// Restores one remembered base key; refused if its signed prekey is not held or full.
    pub(crate) fn insert_seen(
        &mut self,
        spk: SignedPreKeyId,
        base_key: [u8; 32],
    ) -> Result<(), DecodeError> {
        let limit = self.config.max_sessions_per_signed_prekey as usize;
        let s = core::iter::once(&mut self.current)
            .chain(&mut self.retired)
            .find(|s| s.id == spk)
            .ok_or(DecodeError::InvalidValue)?;
        if s.seen.len() >= limit || !s.seen.insert(base_key) {
            return Err(DecodeError::InvalidValue);
        }
        Ok(())
    }

    /// The ids of the signed prekeys held, current first.
    pub(crate) fn signed_ids(&self) -> impl Iterator<Item = SignedPreKeyId> + '_ {
        core::iter::once(&self.current)
            .chain(&self.retired)
            .map(|s| s.id)
    }

    /// The ids of the one-time prekeys held.
    pub(crate) fn one_time_ids(&self) -> impl Iterator<Item = OneTimePreKeyId> + '_ {
        self.one_time.keys().copied()
    }

    fn read_version_1(mut r: Reader<'_>, kem: KemPreKeys) -> Result<Self, DecodeError> {
        let config = PreKeyStoreConfig {
            max_signed_prekeys: r.u32()?,
            max_one_time_prekeys: r.u32()?,
            ..PreKeyStoreConfig::default()
        };
        let max_remembered = r.u32()?;
        let next_signed_id = r.u32()?;
        let next_one_time_id = r.u32()?;
        if config.max_signed_prekeys == 0 {
            return Err(DecodeError::InvalidValue);
        }
        let mut current = SignedPreKey::read_version_1(&mut r)?;
        let n = bounded_count(&mut r, config.max_signed_prekeys - 1)?;
        let mut retired = VecDeque::with_capacity(r.capacity(n, 108));
        for _ in 0..n {
            retired.push_back(SignedPreKey::read_version_1(&mut r)?);
        }
        let n = bounded_count(&mut r, config.max_one_time_prekeys)?;
        let mut one_time = BTreeMap::new();
        for _ in 0..n {
            let id = OneTimePreKeyId(r.u32()?);
            if one_time
                .last_key_value()
                .is_some_and(|(last, _)| *last >= id)
            {
                return Err(DecodeError::InvalidValue);
            }
            let secret = crate::primitives::Secret::from_bytes(r.array()?);
            one_time.insert(id, DhKeyPair::from_secret(&secret));
        }
        // Version 1 remembered base keys for all signed prekeys together; which one each was
        // accepted under is unknown, so the current one keeps them all (refusing more, never
        // fewer, replays than before).
        let n = bounded_count(&mut r, max_remembered)?;
        for _ in 0..n {
            current.seen.insert(r.array()?);
        }
        r.finish()?;
        Ok(Self {
            config,
            current,
            retired,
            one_time,
            next_signed_id,
            next_one_time_id,
            kem,
        })
    }
}

fn read_one_time(r: &mut Reader<'_>) -> Result<(OneTimePreKeyId, DhKeyPair), DecodeError> {
    let id = OneTimePreKeyId(r.u32()?);
    let secret = Zeroizing::new(r.array()?);
    let public = DhPublicKey::from_bytes(r.array()?)?;
    Ok((id, DhKeyPair::from_trusted_parts(*secret, public)))
}

impl SignedPreKey {
    fn generate(
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        id: SignedPreKeyId,
        now: Timestamp,
    ) -> Self {
        let pair = DhKeyPair::generate(rng);
        let signature = identity.sign(
            labels::SIGNED_PREKEY,
            &signed_prekey_message(id, &pair.public()),
        );
        Self {
            id,
            pair,
            signature,
            created_at: now,
            seen: BTreeSet::new(),
        }
    }

    fn public(&self) -> SignedPreKeyPublic {
        SignedPreKeyPublic {
            id: self.id,
            key: self.pair.public(),
            signature: self.signature,
        }
    }

    fn write(&self, out: &mut SecretBuf) {
        out.u32(self.id.0);
        out.put(self.pair.secret_bytes());
        out.put(self.pair.public().as_bytes());
        out.put(&self.signature.to_bytes());
        out.u64(self.created_at.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = SignedPreKeyId(r.u32()?);
        let secret = Zeroizing::new(r.array()?);
        let public = DhPublicKey::from_bytes(r.array()?)?;
        Ok(Self {
            id,
            pair: DhKeyPair::from_trusted_parts(*secret, public),
            signature: Signature::from_bytes(r.array()?),
            created_at: Timestamp(r.u64()?),
            seen: BTreeSet::new(),
        })
    }

    fn read_version_1(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = SignedPreKeyId(r.u32()?);
        let secret = crate::primitives::Secret::from_bytes(r.array()?);
        Ok(Self {
            id,
            pair: DhKeyPair::from_secret(&secret),
            signature: Signature::from_bytes(r.array()?),
            created_at: Timestamp(r.u64()?),
            seen: BTreeSet::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restore's skip moves both counters on by [`restore_prekey_skip`] of its time,
    /// wrapping past 0 to 1 as single steps do.
    #[test]
    fn a_restore_skips_the_counters_and_wraps_past_zero() {
        let rng = &mut crate::testing::SeededRng::from_label("prekey store skip");
        let identity = IdentityKeyPair::from_seed(&[9; 32]);
        let mut store =
            PreKeyStore::new(rng, &identity, Timestamp(0), PreKeyStoreConfig::default());
        let at = Timestamp(1_790_000_000_000);
        let skip = restore_prekey_skip(at);
        store.skip_ids_after_restore(at);
        assert_eq!(store.next_signed_id, 2 + skip);
        assert_eq!(store.next_one_time_id, 1 + skip);
        store.next_signed_id = 0u32.wrapping_sub(skip);
        store.next_one_time_id = 0u32.wrapping_sub(skip) + 1;
        store.skip_ids_after_restore(at);
        assert_eq!((store.next_signed_id, store.next_one_time_id), (1, 1));
    }

    /// The skip is the fixed part plus the spread of the restore's time: the spread differs
    /// from one millisecond to the next and stays below its bound (the first of the digest's
    /// bits only), so restores at different times start apart.
    #[test]
    fn the_skip_spreads_restores_by_their_time() {
        let skips: Vec<u32> = (0..64)
            .map(|ms| restore_prekey_skip(Timestamp(1_790_000_000_000 + ms)))
            .collect();
        let spreads: BTreeSet<u32> = skips.iter().map(|s| s - RESTORE_PREKEY_ID_SKIP).collect();
        assert_eq!(spreads.len(), 64);
        assert!(spreads.iter().all(|s| *s < RESTORE_PREKEY_ID_SPREAD));
        // Some spread uses the bound's top bit: the modulus keeps 24 bits, not fewer.
        assert!(spreads.iter().any(|s| *s >= RESTORE_PREKEY_ID_SPREAD / 2));
        let digest = sha256(&[labels::RESTORE_SPREAD, &0u64.to_be_bytes()]);
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        assert_eq!(
            restore_prekey_skip(Timestamp(0)),
            RESTORE_PREKEY_ID_SKIP + (first & 0x00ff_ffff)
        );
    }
}
