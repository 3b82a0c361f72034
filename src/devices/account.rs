//! The account identity key: held by the primary device, it signs the device list (and so
//! every companion's membership). Its change is a safety-number change.

use core::fmt;
use rand_core::CryptoRng;

use crate::error::DecodeError;
use crate::primitives::{SigningKeyPair, SigningPublicKey};

/// An account's public identity key (Ed25519). Held as its 32 checked bytes, so addresses and
/// maps keyed by accounts stay small; it is parsed again only to verify a signature. Ordered
/// by its bytes, as the wire and the records sort accounts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountKey([u8; 32]);

impl Ord for AccountKey {
    /// The bytes' lexicographic order, compared as four big-endian words: the same order as
    /// comparing the bytes, inline, where a byte array's comparison is a `memcmp` call. Every
    /// map keyed by an account or a device address compares keys this way on each step of a
    /// search, and a send to 3,000 devices makes about six searches per device.
    #[inline]
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        words(&self.0).cmp(&words(&other.0))
    }
}

impl PartialOrd for AccountKey {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// `bytes` as four big-endian words, whose order is the bytes' order.
#[inline]
fn words(bytes: &[u8; 32]) -> [u64; 4] {
    core::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        u64::from_be_bytes(w)
    })
}

impl AccountKey {
    /// Parses a 32-byte Ed25519 key (strictly: canonical, not of small order).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        SigningPublicKey::from_bytes(bytes).map(|k| Self(k.to_bytes()))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key read back from this crate's own state, checked when it was first received.
    pub(crate) fn from_trusted(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads an account key field from the wire (checked).
    pub(crate) fn read(r: &mut crate::wire::Reader<'_>) -> Result<Self, DecodeError> {
        Self::from_bytes(&r.array()?)
    }

    /// Verifies an account signature over `prefix ‖ message`.
    pub(crate) fn verify(
        &self,
        prefix: &[u8],
        message: &[u8],
        signature: &crate::Signature,
    ) -> Result<(), crate::CryptoError> {
        // The bytes were checked when this key was built, so parsing cannot fail here; if it
        // did, the signature is simply refused.
        SigningPublicKey::from_bytes(&self.0)
            .map_err(|_| crate::CryptoError::BadSignature)?
            .verify(prefix, message, signature)
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountKey(")?;
        for b in &self.as_bytes()[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The account identity key pair. Zeroized on drop; `Debug` shows only the public key.
#[derive(Clone, Debug)]
pub struct AccountKeyPair(pub(crate) SigningKeyPair);

impl AccountKeyPair {
    /// A fresh account key from 32 bytes of `rng` output.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self(SigningKeyPair::generate(rng))
    }

    /// The public account key.
    pub fn public(&self) -> AccountKey {
        AccountKey(self.0.public().to_bytes())
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        self.0.seed()
    }

    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKeyPair::from_seed(seed))
    }

    pub(crate) fn sign(&self, prefix: &[u8], message: &[u8]) -> crate::Signature {
        self.0.sign(prefix, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::cmp::Ordering;

    /// The order is the bytes' order: keys that differ in any one byte, by any amount either
    /// way, and keys that differ in several, compare as their bytes do.
    #[test]
    fn accounts_are_ordered_by_their_bytes() {
        let base: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5c);
        let mut pairs = Vec::new();
        for at in 0..32 {
            for delta in [1u8, 0x7f, 0x80, 0xff] {
                let mut other = base;
                other[at] = other[at].wrapping_add(delta);
                pairs.push((base, other));
                // A later byte that would order the other way must not matter.
                let mut later = other;
                if at < 31 {
                    later[31] = base[31].wrapping_sub(delta);
                }
                pairs.push((base, later));
            }
        }
        pairs.push((base, base));
        for (a, b) in pairs {
            let (ka, kb) = (AccountKey::from_trusted(a), AccountKey::from_trusted(b));
            assert_eq!(ka.cmp(&kb), a.cmp(&b), "{a:?} against {b:?}");
            assert_eq!(kb.cmp(&ka), b.cmp(&a));
            assert_eq!(ka.partial_cmp(&kb), Some(a.cmp(&b)));
        }
        assert_eq!(
            AccountKey::from_trusted([0; 32]).cmp(&AccountKey::from_trusted([0xff; 32])),
            Ordering::Less
        );
    }
}
