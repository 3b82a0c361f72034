//! Ed25519 identity keys and their X25519 form.
//!
//! One key pair signs (Ed25519) and agrees (X25519): the X25519 secret is the first half of
//! SHA-512(seed) (the same scalar Ed25519 signs with, clamped on use), the X25519 public key is
//! the Edwards point mapped to Montgomery form by the birational map u = (1 + y) / (1 - y).
//! Both forms are computed once, when the key is built or parsed.

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::dh::{DhPublicKey, agree};
use super::signing::{SigningKeyPair, SigningPublicKey};
use super::{Secret, Signature};
use crate::error::{CryptoError, DecodeError};
use crate::wire::{Reader, Writer, kind};

/// A device's public identity key: Ed25519, with its X25519 form cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityKey {
    signing: SigningPublicKey,
    dh: DhPublicKey,
}

impl IdentityKey {
    /// Parses a 32-byte Ed25519 public key (see [`SigningPublicKey::from_bytes`]).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        SigningPublicKey::from_bytes(bytes).map(Self::from_signing)
    }

    fn from_signing(signing: SigningPublicKey) -> Self {
        let dh = DhPublicKey::from_bytes(signing.0.to_montgomery().to_bytes());
        Self { signing, dh }
    }

    /// The 32-byte Ed25519 encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        self.signing.as_bytes()
    }

    /// The X25519 form used in Diffie-Hellman.
    pub fn dh_public(&self) -> DhPublicKey {
        self.dh
    }

    /// The Ed25519 form used to verify signatures.
    pub fn signing_key(&self) -> SigningPublicKey {
        self.signing
    }

    /// Verifies `signature` over `prefix ‖ message`.
    pub(crate) fn verify(
        &self,
        prefix: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        self.signing.verify(prefix, message, signature)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::short_hex(f, "IdentityKey", self.as_bytes())
    }
}

impl core::hash::Hash for IdentityKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
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
        let mut seed = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(seed.as_mut_bytes());
        Self::from_seed(seed.as_bytes())
    }

    /// The identity whose RFC 8032 seed (private key) is `seed`.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKeyPair::from_seed(seed);
        let dh = StaticSecret::from(signing.secret.to_scalar_bytes());
        let public = IdentityKey::from_signing(signing.public());
        Self {
            signing,
            dh,
            public,
        }
    }

    /// Versioned state bytes (PROTOCOL.md, "Identity state"): they hold the secret seed.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(34));
        out.header(kind::IDENTITY_STATE);
        out.extend_from_slice(self.signing.seed());
        out
    }

    /// Restores an identity from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::IDENTITY_STATE)?;
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
    pub(crate) fn agree(&self, their: &DhPublicKey) -> Result<Secret<32>, CryptoError> {
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
}
