//! The device's own prekeys: signed prekeys (current and a few retired ones, for messages in
//! flight across a rotation) and one-time prekeys, each consumed exactly once.
//!
//! The store changes only through methods that take `&mut self`; the responder computes with
//! `&self` and hands back a [`Consumption`] that is applied only once the whole receive succeeded.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::bundle::signed_prekey_message;
use super::{OneTimePreKeyId, PreKeyBundle, SignedPreKeyId};
use crate::error::DecodeError;
use crate::labels;
use crate::primitives::{DhKeyPair, DhPublicKey, IdentityKeyPair, Signature};
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, kind};
use rand_core::CryptoRng;

/// Signed prekeys kept, the current one included, by default.
pub const DEFAULT_MAX_SIGNED_PREKEYS: u32 = 3;
/// One-time prekeys held at most, by default; generation beyond it is capped.
pub const DEFAULT_MAX_ONE_TIME_PREKEYS: u32 = 1000;
/// Base keys of accepted initial messages remembered to refuse replays, by default.
pub const DEFAULT_MAX_REMEMBERED_BASE_KEYS: u32 = 1000;

/// Limits of a [`PreKeyStore`]; stored with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreKeyStoreConfig {
    /// Signed prekeys kept (at least 1): rotating past this retires the oldest, and initial
    /// messages naming a retired one fail with `UnknownSignedPreKey`.
    pub max_signed_prekeys: u32,
    /// One-time prekeys held at most.
    pub max_one_time_prekeys: u32,
    /// Accepted base keys remembered for replay detection (oldest forgotten first).
    pub max_remembered_base_keys: u32,
}

impl Default for PreKeyStoreConfig {
    fn default() -> Self {
        Self {
            max_signed_prekeys: DEFAULT_MAX_SIGNED_PREKEYS,
            max_one_time_prekeys: DEFAULT_MAX_ONE_TIME_PREKEYS,
            max_remembered_base_keys: DEFAULT_MAX_REMEMBERED_BASE_KEYS,
        }
    }
}

/// The public half of a signed prekey, as published in bundles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedPreKeyPublic {
    /// Its id.
    pub id: SignedPreKeyId,
    /// The X25519 key.
    pub key: DhPublicKey,
    /// The identity key's signature over it.
    pub signature: Signature,
}

/// The public half of a one-time prekey, as uploaded for the server to hand out once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneTimePreKeyPublic {
    /// Its id.
    pub id: OneTimePreKeyId,
    /// The X25519 key.
    pub key: DhPublicKey,
}

#[derive(Clone, Debug)]
struct SignedPreKey {
    id: SignedPreKeyId,
    pair: DhKeyPair,
    signature: Signature,
    created_at: Timestamp,
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
    /// Base keys of accepted initial messages, oldest first.
    seen_base_keys: VecDeque<DhPublicKey>,
}

/// What accepting an initial message takes from the store, applied only on success.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Consumption {
    pub(crate) one_time: Option<OneTimePreKeyId>,
    pub(crate) base_key: DhPublicKey,
}

impl PreKeyStore {
    /// A store with one fresh signed prekey (id 1) and no one-time prekeys.
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
            seen_base_keys: VecDeque::new(),
        }
    }

    /// Makes a new signed prekey current; the oldest beyond the configured count is deleted.
    pub fn rotate_signed_prekey(
        &mut self,
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
    ) -> SignedPreKeyPublic {
        let id = SignedPreKeyId(self.next_signed_id);
        self.next_signed_id = self.next_signed_id.wrapping_add(1).max(1);
        let previous = core::mem::replace(
            &mut self.current,
            SignedPreKey::generate(rng, identity, id, now),
        );
        self.retired.push_back(previous);
        while self.retired.len() >= self.config.max_signed_prekeys as usize {
            self.retired.pop_front();
        }
        self.signed_prekey()
    }

    /// The current signed prekey's public half.
    pub fn signed_prekey(&self) -> SignedPreKeyPublic {
        SignedPreKeyPublic {
            id: self.current.id,
            key: self.current.pair.public(),
            signature: self.current.signature,
        }
    }

    /// When the current signed prekey was made, to decide when to rotate.
    pub fn signed_prekey_created_at(&self) -> Timestamp {
        self.current.created_at
    }

    /// Generates up to `count` one-time prekeys (fewer if the store would exceed its cap) and
    /// returns their public halves for upload.
    pub fn generate_one_time_prekeys(
        &mut self,
        rng: &mut impl CryptoRng,
        count: u32,
    ) -> Vec<OneTimePreKeyPublic> {
        let room = (self.config.max_one_time_prekeys as usize).saturating_sub(self.one_time.len());
        let count = (count as usize).min(room);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let id = OneTimePreKeyId(self.next_one_time_id);
            self.next_one_time_id = self.next_one_time_id.wrapping_add(1).max(1);
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

    /// A bundle with the current signed prekey and, if given and still held, one one-time
    /// prekey. Normally the server assembles bundles from uploads; this serves tests and
    /// direct exchanges.
    pub fn bundle(
        &self,
        identity: &IdentityKeyPair,
        one_time: Option<OneTimePreKeyId>,
    ) -> PreKeyBundle {
        PreKeyBundle::new(
            identity.public(),
            self.signed_prekey(),
            one_time.and_then(|id| self.one_time_prekey(id)),
        )
    }

    pub(crate) fn signed_pair(&self, id: SignedPreKeyId) -> Option<&DhKeyPair> {
        core::iter::once(&self.current)
            .chain(&self.retired)
            .find(|s| s.id == id)
            .map(|s| &s.pair)
    }

    pub(crate) fn one_time_pair(&self, id: OneTimePreKeyId) -> Option<&DhKeyPair> {
        self.one_time.get(&id)
    }

    pub(crate) fn has_seen(&self, base_key: &DhPublicKey) -> bool {
        self.seen_base_keys.contains(base_key)
    }

    /// Applies a successful acceptance: the one-time prekey is gone for good.
    pub(crate) fn consume(&mut self, c: Consumption) {
        if let Some(id) = c.one_time {
            self.one_time.remove(&id);
        }
        self.seen_base_keys.push_back(c.base_key);
        while self.seen_base_keys.len() > self.config.max_remembered_base_keys as usize {
            self.seen_base_keys.pop_front();
        }
    }

    /// Versioned state bytes (PROTOCOL.md, "Prekey store state"). They hold secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.header(kind::PREKEY_STORE_STATE);
        out.u32(self.config.max_signed_prekeys);
        out.u32(self.config.max_one_time_prekeys);
        out.u32(self.config.max_remembered_base_keys);
        out.u32(self.next_signed_id);
        out.u32(self.next_one_time_id);
        self.current.write(&mut out);
        out.u32(self.retired.len() as u32);
        for s in &self.retired {
            s.write(&mut out);
        }
        out.u32(self.one_time.len() as u32);
        for (id, pair) in &self.one_time {
            out.u32(id.0);
            out.extend_from_slice(pair.secret_bytes());
        }
        out.u32(self.seen_base_keys.len() as u32);
        for k in &self.seen_base_keys {
            out.extend_from_slice(&k.to_bytes());
        }
        out
    }

    /// Restores a store from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::PREKEY_STORE_STATE)?;
        let config = PreKeyStoreConfig {
            max_signed_prekeys: r.u32()?,
            max_one_time_prekeys: r.u32()?,
            max_remembered_base_keys: r.u32()?,
        };
        let next_signed_id = r.u32()?;
        let next_one_time_id = r.u32()?;
        if config.max_signed_prekeys == 0 {
            return Err(DecodeError::InvalidValue);
        }
        let current = SignedPreKey::read(&mut r)?;
        let n = bounded_count(&mut r, config.max_signed_prekeys - 1)?;
        let mut retired = VecDeque::with_capacity(r.capacity(n, 108));
        for _ in 0..n {
            retired.push_back(SignedPreKey::read(&mut r)?);
        }
        let n = bounded_count(&mut r, config.max_one_time_prekeys)?;
        let mut one_time = BTreeMap::new();
        for _ in 0..n {
            let id = OneTimePreKeyId(r.u32()?);
            // Strictly ascending ids: the one canonical order, and no duplicates.
            if one_time
                .last_key_value()
                .is_some_and(|(last, _)| *last >= id)
            {
                return Err(DecodeError::InvalidValue);
            }
            one_time.insert(
                id,
                DhKeyPair::from_secret_bytes(*Zeroizing::new(r.array()?)),
            );
        }
        let n = bounded_count(&mut r, config.max_remembered_base_keys)?;
        let mut seen_base_keys = VecDeque::with_capacity(r.capacity(n, 32));
        for _ in 0..n {
            seen_base_keys.push_back(DhPublicKey::from_bytes(r.array()?));
        }
        r.finish()?;
        Ok(Self {
            config,
            current,
            retired,
            one_time,
            next_signed_id,
            next_one_time_id,
            seen_base_keys,
        })
    }
}

/// A count field that may not exceed its configured limit (so hostile state cannot make us
/// allocate without bound).
pub(crate) fn bounded_count(r: &mut Reader<'_>, limit: u32) -> Result<usize, DecodeError> {
    let n = r.u32()?;
    if n > limit {
        return Err(DecodeError::InvalidValue);
    }
    Ok(n as usize)
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
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.u32(self.id.0);
        out.extend_from_slice(self.pair.secret_bytes());
        out.extend_from_slice(&self.signature.to_bytes());
        out.u64(self.created_at.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: SignedPreKeyId(r.u32()?),
            pair: DhKeyPair::from_secret_bytes(*Zeroizing::new(r.array()?)),
            signature: Signature::from_bytes(r.array()?),
            created_at: Timestamp(r.u64()?),
        })
    }
}
