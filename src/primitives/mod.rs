//! Typed wrappers over the crypto crates. This is the only module that names x25519-dalek,
//! ed25519-dalek, libcrux-ml-kem, aes-gcm, hkdf, hmac and sha2.
//!
//! It owns: key types (secret ones zeroize on drop and print redacted), the contributory X25519
//! check, Ed25519 signing with strict verification, ML-KEM-1024, AES-256-GCM, HKDF-SHA256 and
//! HMAC-SHA256.
//! It must not know any protocol state: no sessions, chains, bundles or labels' meanings.

mod aead;
mod dh;
mod identity;
mod kdf;
mod kem;
pub(crate) mod kem768;
mod secret;
mod sig;
mod signing;

pub use dh::{DhKeyPair, DhPublicKey};
pub use identity::{IdentityKey, IdentityKeyPair};
pub use kem::{KEM_CIPHERTEXT_LEN, KEM_PUBLIC_KEY_LEN, KemCiphertext, KemKeyPair, KemPublicKey};
pub use sig::Signature;
pub use signing::{SigningKeyPair, SigningPublicKey};

pub(crate) use aead::{AeadKey, GmacKey, StreamKey, TAG_LEN};
pub(crate) use kdf::{derive, hmac_sha256, sha256, sha512};
pub(crate) use secret::{Secret, take_bytes, wipe, wipe_secret};

/// Low-level wrappers for the published-vector tests and the benches' floors, re-exported by
/// the `test-support` feature's `testing::raw`.
#[cfg(feature = "test-support")]
pub(crate) mod raw {
    pub use super::aead::{open as aes256gcm_open, seal as aes256gcm_seal};
    pub use super::dh::{x25519, x25519_public};
    pub use super::kdf::hkdf_sha256;

    /// HMAC-SHA256 of `data` under `key`.
    pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
        super::kdf::hmac_sha256(key, data)
    }
    pub use super::kem::raw::{
        mlkem1024_decapsulate, mlkem1024_decapsulate_expanded, mlkem1024_encapsulate,
        mlkem1024_keygen,
    };
    pub use super::kem768::raw::mlkem768_exchange;
    pub use super::signing::raw::{Ed25519Signer, Ed25519Verifier, ed25519_sign, ed25519_verify};
}

/// Whether a little-endian field element, bit 255 ignored, is below p = 2^255 - 19: the
/// canonical-encoding rule shared by X25519 u-coordinates and Ed25519 y-coordinates.
fn below_p(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    let all_ones = top == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff);
    !(all_ones && bytes[0] >= 0xed)
}

/// `Name(0011223344556677…)`: enough of a public value to tell keys apart in logs.
fn short_hex(f: &mut core::fmt::Formatter<'_>, name: &str, bytes: &[u8]) -> core::fmt::Result {
    write!(f, "{name}(")?;
    for b in bytes.iter().take(8) {
        write!(f, "{b:02x}")?;
    }
    write!(f, "…)")
}
