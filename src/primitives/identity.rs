//! Ed25519 identity keys and their X25519 form.
//!
//! One key pair signs (Ed25519) and agrees (X25519): the X25519 secret is the first half of
//! SHA-512(seed) (the same scalar Ed25519 signs with, clamped on use), the X25519 public key is
//! the Edwards point mapped to Montgomery form by the birational map u = (1 + y) / (1 - y).
//!
//! A public [`IdentityKey`] is held as its 32 checked bytes: it is checked once, where it comes
//! from the wire, and state restores it without any curve work. Its point is decompressed only
//! where it is used (signature checks, the X3DH agreement).

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::Signature;
use super::dh::{DhPublicKey, agree};
use super::signing::{SigningKeyPair, SigningPublicKey};
use crate::error::{CryptoError, DecodeError};
use crate::wire::{Reader, SecretBuf, Writer, kind};

/// The identity state format (unchanged since the first).
const IDENTITY_STATE_VERSION: u8 = 1;

/// A device's public identity key: the 32-byte Ed25519 encoding of a point that decoded
/// canonically and is not of small order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityKey([u8; 32]);

impl IdentityKey {
    /// Parses a 32-byte Ed25519 public key (see [`SigningPublicKey::from_bytes`]).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        SigningPublicKey::from_bytes(bytes).map(|_| Self(*bytes))
    }

    /// A key read back from this crate's own state, checked when it was first received.
    pub(crate) fn from_trusted(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32-byte Ed25519 encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The X25519 form used in Diffie-Hellman. Decompresses the point: call it once per use.
    pub fn dh_public(&self) -> DhPublicKey {
        // A key that does not decode (possible only in tampered state) maps to the all-zero
        // u-coordinate, which every agreement refuses as non-contributory.
        SigningPublicKey::from_bytes(&self.0).map_or(DhPublicKey::from_computed([0; 32]), |k| {
            DhPublicKey::from_computed(k.0.to_montgomery().to_bytes())
        })
    }

    /// Verifies `signature` over `prefix ‖ message`.
    pub(crate) fn verify(
        &self,
        prefix: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        SigningPublicKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::BadSignature)?
            .verify(prefix, message, signature)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::short_hex(f, "IdentityKey", &self.0)
    }
}

/// A device's identity key pair. Zeroized on drop; `Debug` shows only the public key.
#[derive(Clone)]
pub struct IdentityKeyPair {
    signing: SigningKeyPair,
    dh: StaticSecret,
    public: IdentityKey,
}

impl IdentityKeyPair {
    /// A fresh identity from 32 bytes of `rng` output (the Ed25519 seed).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *seed);
        Self::from_seed(&seed)
    }

    /// The identity whose RFC 8032 seed (private key) is `seed`.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKeyPair::from_seed(seed);
        let dh = StaticSecret::from(signing.secret.to_scalar_bytes());
        let public = IdentityKey(signing.public().to_bytes());
        Self {
            signing,
            dh,
            public,
        }
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        self.signing.seed()
    }

    /// Versioned state bytes (PROTOCOL.md, "Identity state"): they hold the secret seed.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = SecretBuf::with_capacity(34);
        out.versioned_header(IDENTITY_STATE_VERSION, kind::IDENTITY_STATE);
        out.put(self.signing.seed());
        out.into_inner()
    }

    /// Restores an identity from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, _) =
            Reader::versioned_header(bytes, kind::IDENTITY_STATE, &[IDENTITY_STATE_VERSION])?;
        let seed = Zeroizing::new(r.array::<32>()?);
        r.finish()?;
        Ok(Self::from_seed(&seed))
    }

    /// The public identity key.
    pub fn public(&self) -> IdentityKey {
        self.public
    }

    /// Signs `prefix ‖ message`. Every caller passes a distinct domain prefix.
    pub(crate) fn sign(&self, prefix: &[u8], message: &[u8]) -> Signature {
        self.signing.sign(prefix, message)
    }

    /// X25519 between this identity's X25519 form and `their`.
    pub(crate) fn agree(&self, their: &DhPublicKey) -> Result<super::Secret<32>, CryptoError> {
        agree(&self.dh, their)
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .field("secret", &"redacted")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_form_matches_the_secret() {
        let pair = IdentityKeyPair::from_seed(&[7; 32]);
        let dh_public = x25519_dalek::PublicKey::from(&pair.dh);
        assert_eq!(dh_public.to_bytes(), pair.public().dh_public().to_bytes());
        let restored = IdentityKey::from_bytes(&pair.public().to_bytes());
        assert_eq!(restored, Ok(pair.public()));
    }

    #[test]
    fn an_undecodable_trusted_key_agrees_with_nobody() {
        let mut bad = [0u8; 32];
        bad[0] = 1; // the identity point: small order
        let key = IdentityKey::from_trusted(bad);
        let pair = IdentityKeyPair::from_seed(&[7; 32]);
        assert_eq!(
            pair.agree(&key.dh_public()).map(|_| ()),
            Err(CryptoError::NonContributory)
        );
        assert_eq!(
            key.verify(b"p", b"m", &Signature::from_bytes([0; 64])),
            Err(CryptoError::BadSignature)
        );
    }
}
