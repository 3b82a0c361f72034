//! The device's ML-KEM prekeys (PQXDH): one-time KEM prekeys, each consumed exactly once, and
//! a last-resort KEM prekey for when the server has no one-time one left. The last-resort key
//! is rotated together with the signed prekey (earlier ones stay accepted for a while), and
//! the sessions it may start are counted and bounded.
//!
//! Every KEM prekey is signed by the identity key and kept as its 64-byte seed.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::bundle::kem_prekey_message;
use super::{KemPreKeyId, KemPreKeyPublic};
use crate::error::{DecodeError, X3dhError};
use crate::labels;
use crate::primitives::{IdentityKeyPair, KemKeyPair, KemPublicKey, Secret, Signature};
use crate::time::Timestamp;
use crate::wire::{Reader, SecretBuf, Writer, bounded_count};

/// The first id a store assigns (bit 31, [`KemPreKeyId::PQ_RATCHET`], set).
const FIRST_ID: u32 = KemPreKeyId::PQ_RATCHET | 1;

/// A signed ML-KEM prekey as this device holds it.
#[derive(Clone, Debug)]
pub(crate) struct KemPreKey {
    pub(crate) id: KemPreKeyId,
    pub(crate) pair: KemKeyPair,
    pub(crate) signature: Signature,
    pub(crate) created_at: Timestamp,
    /// Sessions started with it (counted for the last-resort key only).
    pub(crate) uses: u32,
}

/// How a session used a KEM prekey, applied only on success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KemUse {
    /// A one-time KEM prekey: deleted.
    OneTime(KemPreKeyId),
    /// A last-resort KEM prekey: one more use.
    LastResort(KemPreKeyId),
}

#[derive(Clone, Debug)]
pub(crate) struct KemPreKeys {
    /// The last-resort key published now, and earlier ones still accepted, oldest first.
    pub(crate) last_resort: KemPreKey,
    pub(crate) retired: VecDeque<KemPreKey>,
    pub(crate) one_time: BTreeMap<KemPreKeyId, KemPreKey>,
    pub(crate) next_id: u32,
}

impl KemPreKey {
    /// `u32(id) ‖ seed (64) ‖ signature (64) ‖ u64(created_at) ‖ u32(uses)`.
    const MIN_ENCODED_LEN: usize = 4 + 64 + 64 + 8 + 4;

    /// A new signed key, and its public half (computed once, for the upload).
    fn generate(
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        id: KemPreKeyId,
        now: Timestamp,
    ) -> (Self, KemPreKeyPublic) {
        let pair = KemKeyPair::generate(rng);
        let key = pair.public();
        let signature = sign(identity, id, &key);
        let public = KemPreKeyPublic { id, key, signature };
        let prekey = Self {
            id,
            pair,
            signature,
            created_at: now,
            uses: 0,
        };
        (prekey, public)
    }

    pub(crate) fn public(&self) -> KemPreKeyPublic {
        KemPreKeyPublic {
            id: self.id,
            key: self.pair.public(),
            signature: self.signature,
        }
    }

    /// `u32(id) ‖ seed (64) ‖ signature (64) ‖ u64(created_at) ‖ u32(uses)`.
    pub(crate) fn write(&self, out: &mut SecretBuf) {
        out.u32(self.id.0);
        out.put(self.pair.seed().as_bytes());
        out.put(&self.signature.to_bytes());
        out.u64(self.created_at.0);
        out.u32(self.uses);
    }

    /// Reads a KEM prekey back; the key pair is expanded from its seed (ML-KEM key
    /// generation, no curve work).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = KemPreKeyId(r.u32()?);
        let seed = Secret::from_bytes(*Zeroizing::new(r.array::<64>()?));
        Ok(Self {
            id,
            pair: KemKeyPair::from_seed(seed),
            signature: Signature::from_bytes(r.array()?),
            created_at: Timestamp(r.u64()?),
            uses: r.u32()?,
        })
    }
}

/// The identity's signature over a KEM prekey's id and public key (PROTOCOL.md 5.3).
fn sign(identity: &IdentityKeyPair, id: KemPreKeyId, key: &KemPublicKey) -> Signature {
    identity.sign(labels::KEM_PREKEY, &kem_prekey_message(id, key))
}

impl KemPreKeys {
    /// A first last-resort key (id `0x8000_0001`: every key a store generates says that its
    /// device runs the post-quantum ratchet). Draws 64 bytes.
    pub(crate) fn new(
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
    ) -> Self {
        Self {
            last_resort: KemPreKey::generate(rng, identity, KemPreKeyId(FIRST_ID), now).0,
            retired: VecDeque::new(),
            one_time: BTreeMap::new(),
            next_id: FIRST_ID + 1,
        }
    }

    /// The same keys as a store of a release from before the post-quantum ratchet names
    /// them: ids from 1 (the last-resort key, then the one-time ones in order), without bit 31,
    /// each signed again; the counter continues after them, unmarked until the next rotation.
    /// Draws nothing, so a generator's stream stays what it was before the ratchet.
    /// Returns the one-time keys' public halves, in id order, as an upload carries them.
    #[cfg(feature = "test-support")]
    pub(crate) fn before_pq_ratchet(&mut self, identity: &IdentityKeyPair) -> Vec<KemPreKeyPublic> {
        let relabel = |key: &mut KemPreKey, id: u32| {
            key.id = KemPreKeyId(id);
            key.signature = sign(identity, key.id, &key.pair.public());
        };
        self.retired.clear();
        relabel(&mut self.last_resort, 1);
        let one_time = core::mem::take(&mut self.one_time);
        for (id, mut key) in (2..).zip(one_time.into_values()) {
            relabel(&mut key, id);
            self.one_time.insert(key.id, key);
        }
        self.next_id = self.one_time.len() as u32 + 2;
        self.one_time.values().map(KemPreKey::public).collect()
    }

    /// The next id, from the counter upwards: a current store's ids run from `0x8000_0001`,
    /// wrapping to it, so bit 31 marks every key; a store from before the ratchet (its
    /// counter below that) assigns unmarked ids from 1 until its next rotation.
    fn next_id(&mut self) -> KemPreKeyId {
        let id = self.next_id;
        self.skip_ids(1);
        KemPreKeyId(id)
    }

    /// The counter moves `skip` ids on (one per key, or a restore's skip), wrapping within the
    /// ids it assigns: a current store's stay marked; a store from before the ratchet stays
    /// unmarked unless it reaches the marked ones, which never name its old keys.
    pub(crate) fn skip_ids(&mut self, skip: u32) {
        self.next_id = if self.next_id >= FIRST_ID {
            let span = u64::from(u32::MAX - FIRST_ID) + 1;
            let offset = (u64::from(self.next_id - FIRST_ID) + u64::from(skip)) % span;
            FIRST_ID + offset as u32
        } else {
            self.next_id.saturating_add(skip)
        };
    }

    /// A new last-resort key; the oldest beyond `keep` (current included) is deleted.
    pub(crate) fn rotate(
        &mut self,
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
        keep: u32,
    ) {
        // A store from before the ratchet marks its keys from here on: its old keys keep
        // their ids, which the marked ones never reach.
        self.next_id = self.next_id.max(FIRST_ID);
        let id = self.next_id();
        let previous = core::mem::replace(
            &mut self.last_resort,
            KemPreKey::generate(rng, identity, id, now).0,
        );
        self.retired.push_back(previous);
        while self.retired.len() >= keep.max(1) as usize {
            self.retired.pop_front();
        }
    }

    /// Up to `count` one-time KEM prekeys, within `cap` held.
    pub(crate) fn generate_one_time(
        &mut self,
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
        count: u32,
        cap: u32,
    ) -> Vec<KemPreKeyPublic> {
        let room = (cap as usize).saturating_sub(self.one_time.len());
        let count = (count as usize).min(room);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.next_id();
            let (key, public) = KemPreKey::generate(rng, identity, id, now);
            out.push(public);
            self.one_time.insert(id, key);
        }
        out
    }

    /// The key pair `id` names, and how a session would use it; refused if unknown, or if it
    /// is a last-resort key that started `max_uses` sessions already.
    pub(crate) fn find(
        &self,
        id: KemPreKeyId,
        max_uses: u32,
    ) -> Result<(&KemKeyPair, KemUse), X3dhError> {
        if let Some(k) = self.one_time.get(&id) {
            return Ok((&k.pair, KemUse::OneTime(id)));
        }
        let k = core::iter::once(&self.last_resort)
            .chain(&self.retired)
            .find(|k| k.id == id)
            .ok_or(X3dhError::UnknownKemPreKey(id.0))?;
        if k.uses >= max_uses {
            return Err(X3dhError::LastResortExhausted(id.0));
        }
        Ok((&k.pair, KemUse::LastResort(id)))
    }

    pub(crate) fn consume(&mut self, used: KemUse) {
        match used {
            KemUse::OneTime(id) => {
                self.one_time.remove(&id);
            }
            KemUse::LastResort(id) => {
                if let Some(k) = core::iter::once(&mut self.last_resort)
                    .chain(&mut self.retired)
                    .find(|k| k.id == id)
                {
                    k.uses = k.uses.saturating_add(1);
                }
            }
        }
    }

    /// `u32(next id) ‖ last resort ‖ u32(r) ‖ r × retired`.
    pub(crate) fn write_core(&self, out: &mut SecretBuf) {
        out.u32(self.next_id);
        self.last_resort.write(out);
        out.u32(self.retired.len() as u32);
        for k in &self.retired {
            k.write(out);
        }
    }

    pub(crate) fn read_core(r: &mut Reader<'_>, keep: u32) -> Result<Self, DecodeError> {
        let next_id = r.u32()?;
        let last_resort = KemPreKey::read(r)?;
        let n = bounded_count(r, keep.saturating_sub(1))?;
        // `keep` comes from the same untrusted bytes: reserve only what the input can hold.
        let mut retired = VecDeque::with_capacity(r.capacity(n, KemPreKey::MIN_ENCODED_LEN));
        for _ in 0..n {
            retired.push_back(KemPreKey::read(r)?);
        }
        Ok(Self {
            last_resort,
            retired,
            one_time: BTreeMap::new(),
            next_id,
        })
    }

    /// Restores one one-time KEM prekey (its `uses` must be 0), within `cap`.
    pub(crate) fn insert_one_time(
        &mut self,
        r: &mut Reader<'_>,
        cap: u32,
    ) -> Result<KemPreKeyId, DecodeError> {
        let key = KemPreKey::read(r)?;
        let id = key.id;
        if key.uses != 0
            || self.one_time.len() >= cap as usize
            || self.one_time.insert(id, key).is_some()
        {
            return Err(DecodeError::InvalidValue);
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stored KEM prekey has one length, so the least an entry of the retired list can
    /// take is exactly that length: a smaller bound lets a hostile count reserve room for more
    /// entries than the input holds, a larger one reserves too little for honest state, which
    /// then grows while it is read (the heap check `hostile_counts` measures both).
    #[test]
    fn the_retired_list_reserves_by_the_length_of_a_stored_kem_prekey() {
        let identity = IdentityKeyPair::from_seed(&[7; 32]);
        let key = KemPreKey::generate(
            &mut crate::testing::SeededRng::from_label("kem prekey length"),
            &identity,
            KemPreKeyId(u32::MAX),
            Timestamp(u64::MAX),
        )
        .0;
        let mut out = SecretBuf::with_capacity(0);
        key.write(&mut out);
        assert_eq!(out.len(), KemPreKey::MIN_ENCODED_LEN);
        assert_eq!(
            KemPreKey::read(&mut Reader::new(&out)).map(|k| k.id),
            Ok(key.id)
        );
    }

    fn ids(keys: &KemPreKeys) -> Vec<u32> {
        keys.retired
            .iter()
            .chain([&keys.last_resort])
            .chain(keys.one_time.values())
            .map(|k| k.id.0)
            .collect()
    }

    /// A new store marks every key it generates; one from before the ratchet marks none until
    /// its next rotation, and from then on every one, never reaching an old id.
    #[test]
    fn every_key_is_marked_from_a_new_store_and_from_an_old_stores_rotation() {
        let rng = &mut crate::testing::SeededRng::from_label("kem prekey ids");
        let identity = IdentityKeyPair::from_seed(&[7; 32]);
        let (now, cap) = (Timestamp(0), 100);
        let mut new = KemPreKeys::new(rng, &identity, now);
        new.generate_one_time(rng, &identity, now, 2, cap);
        new.rotate(rng, &identity, now, 3);
        assert_eq!(
            ids(&new),
            [0x8000_0001, 0x8000_0004, 0x8000_0002, 0x8000_0003]
        );

        let mut old = KemPreKeys::new(rng, &identity, now);
        old.before_pq_ratchet(&identity);
        old.generate_one_time(rng, &identity, now, 2, cap);
        assert_eq!(ids(&old), [1, 2, 3]);
        old.rotate(rng, &identity, now, 3);
        old.generate_one_time(rng, &identity, now, 1, cap);
        assert_eq!(ids(&old), [1, 0x8000_0001, 2, 3, 0x8000_0002]);
    }

    /// A marked counter wraps to `0x8000_0001`, never to an unmarked id.
    #[test]
    fn marked_ids_wrap_to_the_first_marked_one() {
        let rng = &mut crate::testing::SeededRng::from_label("kem prekey wrap");
        let identity = IdentityKeyPair::from_seed(&[7; 32]);
        let mut keys = KemPreKeys::new(rng, &identity, Timestamp(0));
        keys.next_id = u32::MAX;
        assert_eq!(keys.next_id().0, u32::MAX);
        assert_eq!(keys.next_id().0, FIRST_ID);
        assert_eq!(keys.next_id().0, FIRST_ID + 1);
    }

    /// A restore's skip wraps as the counter does: a marked counter stays among the marked
    /// ids, landing where that many single steps would; an unmarked one adds the skip.
    #[test]
    fn a_skip_lands_where_as_many_steps_would() {
        let rng = &mut crate::testing::SeededRng::from_label("kem prekey skip");
        let identity = IdentityKeyPair::from_seed(&[7; 32]);
        let mut keys = KemPreKeys::new(rng, &identity, Timestamp(0));
        for (start, skip) in [
            (FIRST_ID + 1, 5),
            (u32::MAX - 2, 3),
            (u32::MAX - 2, 4),
            (u32::MAX, 1),
            (u32::MAX - 5, 100),
        ] {
            keys.next_id = start;
            for _ in 0..skip {
                keys.next_id();
            }
            let stepped = keys.next_id;
            keys.next_id = start;
            keys.skip_ids(skip);
            assert_eq!(keys.next_id, stepped, "from {start:#x} by {skip}");
        }
        keys.next_id = 7;
        keys.skip_ids(1 << 20);
        assert_eq!(keys.next_id, 7 + (1 << 20));
        keys.next_id = FIRST_ID - 1;
        keys.skip_ids(2);
        assert_eq!(
            keys.next_id,
            FIRST_ID + 1,
            "an unmarked counter may reach the marked ids"
        );
    }
}
