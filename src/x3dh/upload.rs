//! One-time prekeys as a device uploads them: a compact list of (id, public key), with no
//! signatures, since one-time prekeys do not depend on the signed prekey (rotating it does not
//! force a new upload).

use alloc::vec::Vec;

use super::{OneTimePreKeyId, OneTimePreKeyPublic};
use crate::error::DecodeError;
use crate::primitives::DhPublicKey;
use crate::wire::{Reader, Writer, bounded_count, kind};

/// One-time prekeys per upload at most: the decoding bound.
const MAX_UPLOAD: u32 = 10_000;

/// New one-time prekeys for the server to hand out, one per bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OneTimePreKeys(Vec<OneTimePreKeyPublic>);

impl OneTimePreKeys {
    pub(crate) fn new(keys: Vec<OneTimePreKeyPublic>) -> Self {
        Self(keys)
    }

    /// The keys, in id order.
    pub fn keys(&self) -> &[OneTimePreKeyPublic] {
        &self.0
    }

    /// Wire bytes (PROTOCOL.md, "One-time prekey upload"): `u32(n) ‖ n × (u32(id) ‖ key)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 4 + 36 * self.0.len());
        out.header(kind::ONE_TIME_PREKEYS);
        out.u32(self.0.len() as u32);
        for k in &self.0 {
            out.u32(k.id.0);
            out.put(k.key.as_bytes());
        }
        out
    }

    /// Parses wire bytes; ids must be strictly ascending.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::ONE_TIME_PREKEYS)?;
        let n = bounded_count(&mut r, MAX_UPLOAD)?;
        let mut keys: Vec<OneTimePreKeyPublic> = Vec::with_capacity(r.capacity(n, 36));
        for _ in 0..n {
            let k = OneTimePreKeyPublic {
                id: OneTimePreKeyId(r.u32()?),
                key: DhPublicKey::from_bytes(r.array()?),
            };
            if keys.last().is_some_and(|l| l.id >= k.id) {
                return Err(DecodeError::InvalidValue);
            }
            keys.push(k);
        }
        r.finish()?;
        Ok(Self(keys))
    }
}
