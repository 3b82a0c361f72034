//! Ed25519 (RFC 8032) key pairs and public keys: parsed strictly once, verified strictly.
//! Identity keys build on these; group sender keys use them directly.

use alloc::vec::Vec;
use core::fmt;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;

use super::{Secret, Signature};
use crate::error::{CryptoError, DecodeError};

/// An Ed25519 public key that decoded canonically and is not of small order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigningPublicKey(pub(super) VerifyingKey);

impl SigningPublicKey {
    /// Parses a 32-byte Ed25519 public key. A non-canonical encoding (y ≥ p), a byte string
    /// that is not a point, or a point of small order is refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        if !is_canonical_y(bytes) {
            return Err(DecodeError::InvalidKey);
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| DecodeError::InvalidKey)?;
        if key.is_weak() {
            return Err(DecodeError::InvalidKey);
        }
        Ok(Self(key))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Verifies `signature` over `prefix ‖ message`: canonical encodings and no small-order
    /// components (RFC 8032 strict verification).
    pub(crate) fn verify(
        &self,
        prefix: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        self.verify_raw(&concat(prefix, message), signature)
    }

    pub(crate) fn verify_raw(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

impl fmt::Debug for SigningPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::short_hex(f, "SigningPublicKey", self.0.as_bytes())
    }
}

/// An Ed25519 key pair. Zeroized on drop; `Debug` shows only the public key.
#[derive(Clone)]
pub struct SigningKeyPair {
    pub(super) secret: SigningKey,
    public: SigningPublicKey,
}

impl SigningKeyPair {
    /// A fresh key pair from 32 bytes of `rng` output (the RFC 8032 seed).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(seed.as_mut_bytes());
        Self::from_seed(seed.as_bytes())
    }

    /// The key pair whose RFC 8032 seed is `seed`.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        let secret = SigningKey::from_bytes(seed);
        let public = SigningPublicKey(secret.verifying_key());
        Self { secret, public }
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        self.secret.as_bytes()
    }

    /// The public key.
    pub fn public(&self) -> SigningPublicKey {
        self.public
    }

    /// Signs `prefix ‖ message`. Every caller passes a distinct domain prefix.
    pub(crate) fn sign(&self, prefix: &[u8], message: &[u8]) -> Signature {
        self.sign_raw(&concat(prefix, message))
    }

    pub(crate) fn sign_raw(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.secret.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("public", &self.public)
            .field("secret", &"redacted")
            .finish()
    }
}

fn concat(prefix: &[u8], message: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(prefix.len() + message.len());
    signed.extend_from_slice(prefix);
    signed.extend_from_slice(message);
    signed
}

/// Whether the encoded y-coordinate (sign bit cleared) is below p = 2^255 - 19, so that each
/// key has exactly one accepted encoding. (The encodings with x = 0 and the sign bit set are
/// the small-order points y = ±1, refused separately.)
fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    super::below_p(bytes)
}

/// RFC 8032 Ed25519 through these wrappers, for the published vectors and bench floors.
#[cfg(feature = "test-support")]
pub(super) mod raw {
    use super::*;

    /// Signs `message` with the key whose seed is `seed`; returns the public key too.
    pub fn ed25519_sign(seed: &[u8; 32], message: &[u8]) -> ([u8; 32], [u8; 64]) {
        let pair = SigningKeyPair::from_seed(seed);
        (pair.public().to_bytes(), pair.sign_raw(message).to_bytes())
    }

    /// A parsed Ed25519 key pair, to time signing without key expansion.
    pub struct Ed25519Signer(SigningKeyPair);

    impl Ed25519Signer {
        /// The key pair of `seed`.
        pub fn from_seed(seed: &[u8; 32]) -> Self {
            Self(SigningKeyPair::from_seed(seed))
        }

        /// Signs `message`.
        pub fn sign(&self, message: &[u8]) -> [u8; 64] {
            self.0.sign_raw(message).to_bytes()
        }

        /// The public key, parsed.
        pub fn verifier(&self) -> Ed25519Verifier {
            Ed25519Verifier(self.0.public())
        }
    }

    /// A parsed Ed25519 public key, to time verification without decompression.
    pub struct Ed25519Verifier(SigningPublicKey);

    impl Ed25519Verifier {
        /// Strictly verifies `signature` over `message`.
        pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
            self.0.verify_raw(message, &Signature(*signature)).is_ok()
        }
    }

    /// Strictly verifies `signature` over `message` under `public`.
    pub fn ed25519_verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        SigningPublicKey::from_bytes(public)
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
            SigningPublicKey::from_bytes(&p_plus_2),
            Err(DecodeError::InvalidKey)
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(
            SigningPublicKey::from_bytes(&one),
            Err(DecodeError::InvalidKey)
        );
        let mut p_minus_1 = p_plus_2;
        p_minus_1[0] = 0xec;
        assert!(is_canonical_y(&p_minus_1));
    }
}
