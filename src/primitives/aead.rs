//! AES-256-GCM (NIST SP 800-38D) with a 96-bit nonce and 128-bit tag.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use super::Secret;
use crate::error::CryptoError;

/// Length of the authentication tag appended to every ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// An AES-256-GCM key and the one nonce it will ever be used with. Derived per message from a
/// one-time message key, so the pair never repeats.
pub(crate) struct AeadKey {
    key_nonce: Secret<44>,
}

impl AeadKey {
    pub(crate) fn from_key_nonce(key_nonce: Secret<44>) -> Self {
        Self { key_nonce }
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn key_and_nonce(&self) -> ([u8; 32], [u8; 12]) {
        let (key, nonce) = self.parts();
        (*key, *nonce)
    }

    fn parts(&self) -> (&[u8; 32], &[u8; 12]) {
        let (key, nonce) = self.key_nonce.as_bytes().split_at(32);
        // Both slices have the fixed lengths of the 44-byte split.
        (
            key.try_into().unwrap_or(&[0; 32]),
            nonce.try_into().unwrap_or(&[0; 12]),
        )
    }

    /// Encrypts `buf[start..]` in place and appends the tag.
    pub(crate) fn seal_in_place(&self, aad: &[u8], buf: &mut alloc::vec::Vec<u8>, start: usize) {
        let (key, nonce) = self.parts();
        let tag = seal_detached(key, nonce, aad, &mut buf[start..]);
        buf.extend_from_slice(&tag);
    }

    /// Decrypts `ciphertext ‖ tag` into a new plaintext buffer.
    pub(crate) fn open(
        &self,
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<alloc::vec::Vec<u8>, CryptoError> {
        let (key, nonce) = self.parts();
        open_with(&Aes256Gcm::new(key.into()), nonce, aad, ciphertext_and_tag)
    }
}

fn seal_detached(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
    seal_with(&Aes256Gcm::new(key.into()), nonce, aad, data)
}

fn seal_with(cipher: &Aes256Gcm, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
    // Encryption fails only for inputs over 2^36 bytes, which no message or chunk of this
    // crate reaches; the fallback tag would then fail to open.
    match cipher.encrypt_inout_detached(&Nonce::from(*nonce), aad, data.into()) {
        Ok(tag) => tag.into(),
        Err(_) => [0; TAG_LEN],
    }
}

fn open_with(
    cipher: &Aes256Gcm,
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<alloc::vec::Vec<u8>, CryptoError> {
    let split = ciphertext_and_tag
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(CryptoError::AuthenticationFailed)?;
    let (ciphertext, tag) = ciphertext_and_tag.split_at(split);
    let tag = Tag::try_from(tag).map_err(|_| CryptoError::AuthenticationFailed)?;
    let mut out = ciphertext.to_vec();
    match cipher.decrypt_inout_detached(&Nonce::from(*nonce), aad, out.as_mut_slice().into(), &tag)
    {
        Ok(()) => Ok(out),
        Err(_) => {
            zeroize::Zeroize::zeroize(&mut out);
            Err(CryptoError::AuthenticationFailed)
        }
    }
}

/// A GMAC key: the AES-256-GCM tag of an empty plaintext with the data as its associated
/// data, under the key and an all-zero nonce. A universal-hash MAC: collisions need the key.
/// The key schedule and the hash key are computed once, where a key that MACs every message
/// sent would otherwise compute them every time. Its own type, not a [`StreamKey`]: a key that
/// tags under the all-zero nonce must never also encrypt under it.
#[derive(Clone)]
pub(crate) struct GmacKey {
    cipher: Aes256Gcm,
}

impl GmacKey {
    pub(crate) fn new(key: &Secret<32>) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.as_bytes().into()),
        }
    }

    pub(crate) fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        seal_with(&self.cipher, &[0; 12], data, &mut [])
    }
}

/// AES-256-GCM seal: returns `ciphertext ‖ tag`.
#[cfg(feature = "test-support")]
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::with_capacity(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = seal_detached(key, nonce, aad, &mut out);
    out.extend_from_slice(&tag);
    out
}

/// AES-256-GCM open of `ciphertext ‖ tag`.
#[cfg(feature = "test-support")]
pub fn open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<alloc::vec::Vec<u8>, CryptoError> {
    open_with(&Aes256Gcm::new(key.into()), nonce, aad, ciphertext_and_tag)
}

/// One AES-256-GCM key used for many nonces, with the key schedule computed once: for chunked
/// streams whose nonces are distinct by construction (counter and last-chunk flag).
#[derive(Clone)]
pub(crate) struct StreamKey {
    cipher: Aes256Gcm,
}

impl StreamKey {
    pub(crate) fn new(key: &Secret<32>) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.as_bytes().into()),
        }
    }

    /// Encrypts `buf[start..]` in place and appends the tag; returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut alloc::vec::Vec<u8>,
        start: usize,
    ) -> [u8; TAG_LEN] {
        let tag = seal_with(&self.cipher, nonce, aad, &mut buf[start..]);
        buf.extend_from_slice(&tag);
        tag
    }

    /// Decrypts `ciphertext ‖ tag` into a new buffer.
    pub(crate) fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<alloc::vec::Vec<u8>, CryptoError> {
        open_with(&self.cipher, nonce, aad, ciphertext_and_tag)
    }
}
