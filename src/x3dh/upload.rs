//! One-time prekeys as a device uploads them: its X25519 one-time prekeys, (id, public key)
//! with no signature, and its ML-KEM one-time prekeys, each signed by the identity key. None
//! depends on the signed prekey: rotating it does not force a new upload.

use alloc::vec::Vec;

use super::{KemPreKeyPublic, OneTimePreKeyId, OneTimePreKeyPublic};
use crate::error::DecodeError;
use crate::primitives::{DhPublicKey, KEM_PUBLIC_KEY_LEN};
use crate::wire::{Reader, Writer, bounded_count, kind};

/// Keys per list in one upload at most: the decoding bound.
const MAX_UPLOAD: u32 = 10_000;

/// New one-time prekeys for the server to hand out, one of each kind per bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OneTimePreKeys {
    keys: Vec<OneTimePreKeyPublic>,
    kem: Vec<KemPreKeyPublic>,
}

impl OneTimePreKeys {
    pub(crate) fn new(keys: Vec<OneTimePreKeyPublic>, kem: Vec<KemPreKeyPublic>) -> Self {
        Self { keys, kem }
    }

    /// The X25519 one-time prekeys, in id order.
    pub fn keys(&self) -> &[OneTimePreKeyPublic] {
        &self.keys
    }

    /// The signed ML-KEM one-time prekeys, in id order.
    pub fn kem_keys(&self) -> &[KemPreKeyPublic] {
        &self.kem
    }

    /// Wire bytes (PROTOCOL.md, "One-time prekey upload"):
    /// `u32(n) ‖ n × (u32(id) ‖ key) ‖ u32(m) ‖ m × (u32(id) ‖ KEM key ‖ signature)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            2 + 8 + 36 * self.keys.len() + (68 + KEM_PUBLIC_KEY_LEN) * self.kem.len(),
        );
        out.header(kind::ONE_TIME_PREKEYS);
        out.u32(self.keys.len() as u32);
        for k in &self.keys {
            out.u32(k.id.0);
            out.put(k.key.as_bytes());
        }
        out.u32(self.kem.len() as u32);
        for k in &self.kem {
            k.write(&mut out);
        }
        out
    }

    /// Parses wire bytes; ids must be strictly ascending in each list, and every KEM key
    /// passes the FIPS 203 check (signatures are for the recipient of a bundle to check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::ONE_TIME_PREKEYS)?;
        let n = bounded_count(&mut r, MAX_UPLOAD)?;
        let mut keys: Vec<OneTimePreKeyPublic> = Vec::with_capacity(r.capacity(n, 36));
        for _ in 0..n {
            let k = OneTimePreKeyPublic {
                id: OneTimePreKeyId(r.u32()?),
                key: DhPublicKey::from_bytes(r.array()?)?,
            };
            if keys.last().is_some_and(|l| l.id >= k.id) {
                return Err(DecodeError::InvalidValue);
            }
            keys.push(k);
        }
        let m = bounded_count(&mut r, MAX_UPLOAD)?;
        let mut kem: Vec<KemPreKeyPublic> = Vec::with_capacity(r.capacity(m, 1636));
        for _ in 0..m {
            let k = KemPreKeyPublic::read(&mut r)?;
            if kem.last().is_some_and(|l| l.id >= k.id) {
                return Err(DecodeError::InvalidValue);
            }
            kem.push(k);
        }
        r.finish()?;
        Ok(Self { keys, kem })
    }
}
