//! HKDF-SHA256 (RFC 5869) and HMAC-SHA256 (RFC 2104).

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Secret;

/// HKDF-SHA256 extract-and-expand into `out`; `salt = None` is the RFC's all-zero salt.
/// Returns `None` when `out` is longer than HKDF allows (255 × 32 bytes).
#[cfg(feature = "test-support")]
pub fn hkdf_sha256(salt: Option<&[u8]>, ikm: &[u8], info: &[u8], out: &mut [u8]) -> Option<()> {
    Hkdf::<Sha256>::new(salt, ikm).expand(info, out).ok()
}

/// HKDF-SHA256 to a fixed-size secret. `N` is checked at compile time.
pub(crate) fn derive<const N: usize>(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> Secret<N> {
    const { assert!(N <= 255 * 32) };
    let mut okm = Secret::from_bytes([0u8; N]);
    // The length is within HKDF's bound (checked above), so expansion cannot fail.
    let _ = Hkdf::<Sha256>::new(salt, ikm).expand(info, okm.as_mut_bytes());
    okm
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => <Hmac<Sha256> as KeyInit>::new(&Default::default()),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SHA-256.
pub(crate) fn sha256(data: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    for d in data {
        h.update(d);
    }
    h.finalize().into()
}

/// SHA-512.
pub(crate) fn sha512(data: &[&[u8]]) -> [u8; 64] {
    use sha2::{Digest, Sha512};
    let mut h = Sha512::new();
    for d in data {
        h.update(d);
    }
    h.finalize().into()
}
