//! X25519 (RFC 7748) with the contributory check: an all-zero shared secret, which a peer key of
//! small order forces, is an error rather than a key.

use core::fmt;
use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};

use super::Secret;
use crate::error::{CryptoError, DecodeError};

/// An X25519 public key: a signed prekey, one-time prekey, ephemeral or ratchet key.
#[derive(Clone, Copy)]
pub struct DhPublicKey(PublicKey);

/// Keys are equal when their bytes are. Every key has one encoding (refused otherwise at
/// [`DhPublicKey::from_bytes`]; computed ones are canonical), so this is equality of the keys;
/// x25519-dalek's own comparison decodes and re-encodes both field elements to allow for the
/// other encodings: 5% of the time of opening a message (perf), 1–2% of its instructions (a
/// ratchet key is compared with the receiving chain's). Public values: the comparison need not
/// be constant-time.
impl PartialEq for DhPublicKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for DhPublicKey {}

impl core::hash::Hash for DhPublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl DhPublicKey {
    /// Parses a Montgomery u-coordinate in its one canonical encoding: bit 255 clear and
    /// u < p = 2^255 - 19. X25519 ignores bit 255 and reduces u mod p, so each other encoding
    /// names the same key as a canonical one; a key remembered or compared as bytes (a base
    /// key against replay, a ratchet key) must have exactly one form, so the others are
    /// `InvalidKey`. A key of small order is refused when it is used, by the contributory check.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, DecodeError> {
        if bytes[31] & 0x80 != 0 || !super::below_p(&bytes) {
            return Err(DecodeError::InvalidKey);
        }
        Ok(Self(PublicKey::from(bytes)))
    }

    /// Wraps a u-coordinate this crate computed (always canonical): no check.
    pub(super) fn from_computed(bytes: [u8; 32]) -> Self {
        Self(PublicKey::from(bytes))
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for DhPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::short_hex(f, "DhPublicKey", self.0.as_bytes())
    }
}

/// An X25519 key pair. The secret zeroizes on drop and is never printed.
#[derive(Clone)]
pub struct DhKeyPair {
    secret: StaticSecret,
    public: DhPublicKey,
}

impl DhKeyPair {
    /// A fresh key pair from 32 bytes of `rng` output (clamped per RFC 7748 when used).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(bytes.as_mut_bytes());
        Self::from_secret(&bytes)
    }

    /// The key pair whose secret scalar (before clamping) is `bytes`.
    pub(crate) fn from_secret(bytes: &Secret<32>) -> Self {
        let secret = StaticSecret::from(*bytes.as_bytes());
        let public = DhPublicKey(PublicKey::from(&secret));
        Self { secret, public }
    }

    /// A key pair read back from this crate's own state, where the public half was stored
    /// beside the secret when the pair was made: no scalar multiplication on load.
    pub(crate) fn from_trusted_parts(secret: [u8; 32], public: DhPublicKey) -> Self {
        Self {
            secret: StaticSecret::from(secret),
            public,
        }
    }

    /// The public half.
    pub fn public(&self) -> DhPublicKey {
        self.public
    }

    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        self.secret.as_bytes()
    }

    /// X25519 with `their` key; refuses a non-contributory (all-zero) result.
    pub(crate) fn agree(&self, their: &DhPublicKey) -> Result<Secret<32>, CryptoError> {
        agree(&self.secret, their)
    }
}

pub(super) fn agree(secret: &StaticSecret, their: &DhPublicKey) -> Result<Secret<32>, CryptoError> {
    let shared = secret.diffie_hellman(&their.0);
    if shared.was_contributory() {
        Ok(Secret::from_bytes(shared.to_bytes()))
    } else {
        Err(CryptoError::NonContributory)
    }
}

impl fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("public", &self.public)
            .field("secret", &"redacted")
            .finish()
    }
}

/// RFC 7748 X25519 with the contributory check, for the published vectors and bench floors.
#[cfg(feature = "test-support")]
pub fn x25519(scalar: [u8; 32], u: [u8; 32]) -> Result<[u8; 32], CryptoError> {
    // RFC 7748 accepts every encoding (bit 255 masked, u reduced mod p); so does this wrapper,
    // which the published vectors exercise. Keys from the wire go through `from_bytes`.
    agree(&StaticSecret::from(scalar), &DhPublicKey::from_computed(u)).map(|s| *s.as_bytes())
}

/// RFC 7748 X25519 of `scalar` with the base point: the public key of a secret.
#[cfg(feature = "test-support")]
pub fn x25519_public(scalar: [u8; 32]) -> [u8; 32] {
    DhKeyPair::from_secret(&Secret::from_bytes(scalar))
        .public()
        .to_bytes()
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::error::DecodeError;

    /// p = 2^255 - 19, little-endian.
    const P: [u8; 32] = {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        p
    };

    #[test]
    fn a_u_coordinate_has_one_accepted_encoding() {
        let mut key = [9u8; 32];
        key[31] = 0x42;
        assert!(DhPublicKey::from_bytes(key).is_ok());
        // Bit 255 set: the same key to X25519, a second encoding, refused.
        key[31] |= 0x80;
        assert_eq!(DhPublicKey::from_bytes(key), Err(DecodeError::InvalidKey));
        // p - 1 is the largest canonical value; p .. 2^255 - 1 encode 0 .. 18 again.
        let mut below = P;
        below[0] -= 1;
        assert!(DhPublicKey::from_bytes(below).is_ok());
        for low in 0xed..=0xff {
            let mut above = P;
            above[0] = low;
            assert_eq!(DhPublicKey::from_bytes(above), Err(DecodeError::InvalidKey));
        }
        // A non-canonical value is refused whatever its other bytes: one below-0xff byte in
        // the middle makes it canonical again.
        let mut middle = P;
        middle[15] = 0xfe;
        assert!(DhPublicKey::from_bytes(middle).is_ok());
    }

    /// Public keys come from the fixed-base Edwards table (x25519-dalek maps the scalar times
    /// the Ed25519 base point to its Montgomery u), several times cheaper than the Montgomery
    /// ladder on u = 9 that RFC 7748 defines. Both must give the same bytes for every scalar:
    /// compared over 2,000 scalars from a seeded generator, clamping edge cases included (the
    /// RFC 7748 vectors go through the same path in `published_vectors::rfc7748_x25519`).
    #[test]
    fn the_fixed_base_public_key_equals_the_ladder_on_the_base_point() {
        let mut base = [0u8; 32];
        base[0] = 9;
        let mut scalars = alloc::vec![[0u8; 32], [0xff; 32], [0x80; 32], [1; 32]];
        let mut state = [7u8; 32];
        for _ in 0..2000 {
            state = crate::primitives::sha256(&[&state]);
            scalars.push(state);
        }
        for scalar in scalars {
            let table = DhKeyPair::from_secret(&Secret::from_bytes(scalar)).public();
            let ladder = x25519_dalek::x25519(scalar, base);
            assert_eq!(table.to_bytes(), ladder, "scalar {scalar:02x?}");
        }
    }

    #[test]
    fn keys_this_crate_computes_are_canonical() {
        for i in 0..=255u8 {
            let mut scalar = [i; 32];
            scalar[0] ^= 0x5a;
            let public = DhKeyPair::from_secret(&Secret::from_bytes(scalar)).public();
            assert_eq!(DhPublicKey::from_bytes(public.to_bytes()), Ok(public));
        }
    }

    #[test]
    fn keys_are_equal_exactly_when_their_bytes_are() {
        let mut key = [9u8; 32];
        key[31] = 0x42;
        let a = DhPublicKey::from_bytes(key).unwrap();
        assert_eq!(a, DhPublicKey::from_bytes(key).unwrap());
        for i in 0..32 {
            let mut other = key;
            other[i] ^= 1;
            assert_ne!(a, DhPublicKey::from_bytes(other).unwrap(), "byte {i}");
        }
        // Equal keys hash alike.
        let hash = |k: &DhPublicKey| {
            use core::hash::{Hash, Hasher};
            struct Bytes(alloc::vec::Vec<u8>);
            impl Hasher for Bytes {
                fn finish(&self) -> u64 {
                    0
                }
                fn write(&mut self, bytes: &[u8]) {
                    self.0.extend_from_slice(bytes);
                }
            }
            let mut h = Bytes(alloc::vec::Vec::new());
            k.hash(&mut h);
            h.0
        };
        assert_eq!(hash(&a), hash(&DhPublicKey::from_bytes(key).unwrap()));
        let mut other = key;
        other[0] ^= 1;
        assert_ne!(hash(&a), hash(&DhPublicKey::from_bytes(other).unwrap()));
    }
}
