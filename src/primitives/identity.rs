//! Ed25519 identity keys and their X25519 form.
//!
//! One key pair signs (Ed25519) and agrees (X25519): the X25519 secret is the first half of
//! SHA-512(seed) (the same scalar Ed25519 signs with, clamped on use), the X25519 public key is
//! the Edwards point mapped to Montgomery form by the birational map u = (1 + y) / (1 - y).
//! Both forms are computed once, when the key is built or parsed.

use alloc::vec::Vec;
use core::fmt;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;

use super::dh::{DhPublicKey, agree};
use super::{Secret, Signature};
use crate::error::{CryptoError, DecodeError};
use crate::wire::{Reader, Writer, kind};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

/// A device's public identity key: Ed25519, with its X25519 form cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityKey {
    ed: VerifyingKey,
    dh: DhPublicKey,
}

impl IdentityKey {
    /// Parses a 32-byte Ed25519 public key. A non-canonical point or a point of small order is
    /// refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        if !is_canonical_y(bytes) {
            return Err(DecodeError::InvalidKey);
        }
        let ed = VerifyingKey::from_bytes(bytes).map_err(|_| DecodeError::InvalidKey)?;
        if ed.is_weak() {
            return Err(DecodeError::InvalidKey);
        }
        Ok(Self::from_verifying(ed))
    }

    fn from_verifying(ed: VerifyingKey) -> Self {
        let dh = DhPublicKey::from_bytes(ed.to_montgomery().to_bytes());
        Self { ed, dh }
    }

    /// The 32-byte Ed25519 encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.ed.to_bytes()
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        self.ed.as_bytes()
    }

    /// The X25519 form used in Diffie-Hellman.
    pub fn dh_public(&self) -> DhPublicKey {
        self.dh
    }

    /// Verifies `signature` over `prefix ‖ message` (strict RFC 8032 verification: canonical
    /// encodings, no small-order components).
    pub(crate) fn verify(
        &self,
        prefix: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let mut signed = Vec::with_capacity(prefix.len() + message.len());
        signed.extend_from_slice(prefix);
        signed.extend_from_slice(message);
        self.verify_raw(&signed, signature)
    }

    pub(crate) fn verify_raw(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.ed
            .verify_strict(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// Whether the encoded y-coordinate (sign bit cleared) is below p = 2^255 - 19, so that each
/// key has exactly one accepted encoding. (The encodings with x = 0 and the sign bit set are
/// the small-order points y = ±1, refused separately.)
fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    let all_ones = top == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff);
    !(all_ones && bytes[0] >= 0xed)
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey(")?;
        for b in &self.ed.as_bytes()[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl core::hash::Hash for IdentityKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.ed.as_bytes().hash(state);
    }
}

/// A device's identity key pair. Zeroized on drop; `Debug` shows only the public key.
#[derive(Clone)]
pub struct IdentityKeyPair {
    signing: SigningKey,
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
        let signing = SigningKey::from_bytes(seed);
        let dh = StaticSecret::from(signing.to_scalar_bytes());
        let public = IdentityKey::from_verifying(signing.verifying_key());
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
        out.extend_from_slice(self.signing.as_bytes());
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
        let mut signed = Vec::with_capacity(prefix.len() + message.len());
        signed.extend_from_slice(prefix);
        signed.extend_from_slice(message);
        self.sign_raw(&signed)
    }

    pub(crate) fn sign_raw(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.signing.sign(message).to_bytes())
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

/// RFC 8032 Ed25519 through the identity wrappers, for the published vectors and bench floors.
pub(super) mod raw {
    use super::*;

    /// Signs `message` with the key whose seed is `seed`.
    pub fn ed25519_sign(seed: &[u8; 32], message: &[u8]) -> ([u8; 32], [u8; 64]) {
        let pair = IdentityKeyPair::from_seed(seed);
        (pair.public().to_bytes(), pair.sign_raw(message).to_bytes())
    }

    /// Strictly verifies `signature` over `message` under `public`.
    pub fn ed25519_verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        IdentityKey::from_bytes(public)
            .is_ok_and(|k| k.verify_raw(message, &Signature(*signature)).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_canonical_and_small_order_keys_are_refused() {
        // y = p + 2 (a non-canonical encoding of y = 2), then y = 1 (the identity point).
        let mut p_plus_2 = [0xff; 32];
        p_plus_2[0] = 0xef;
        p_plus_2[31] = 0x7f;
        assert_eq!(
            IdentityKey::from_bytes(&p_plus_2),
            Err(DecodeError::InvalidKey)
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(IdentityKey::from_bytes(&one), Err(DecodeError::InvalidKey));
        let mut p_minus_1 = p_plus_2;
        p_minus_1[0] = 0xec;
        assert!(is_canonical_y(&p_minus_1));
    }

    #[test]
    fn x25519_form_matches_the_secret() {
        let pair = IdentityKeyPair::from_seed(&[7; 32]);
        let dh_public = x25519_dalek::PublicKey::from(&pair.dh);
        assert_eq!(dh_public.to_bytes(), pair.public().dh_public().to_bytes());
        let restored = IdentityKey::from_bytes(&pair.public().to_bytes());
        assert_eq!(restored, Ok(pair.public()));
    }
}
