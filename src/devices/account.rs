//! The account identity key: held by the primary device, it signs the device list (and so
//! every companion's membership). Its change is a safety-number change.

use core::fmt;
use rand_core::CryptoRng;

use crate::error::DecodeError;
use crate::primitives::{SigningKeyPair, SigningPublicKey};

/// An account's public identity key (Ed25519). Held as its 32 checked bytes, so addresses and
/// maps keyed by accounts stay small; it is parsed again only to verify a signature.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountKey([u8; 32]);

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
