//! The Double Ratchet's symmetric keys and their KDFs (PROTOCOL.md, "Key derivation").
//!
//! KDF_RK: HKDF-SHA256(salt = RK, ikm = DH output, info = "ratchetry v1 root") → RK' ‖ CK.
//! KDF_CK: MK = HMAC-SHA256(CK, 0x01), CK' = HMAC-SHA256(CK, 0x02).
//! MK → AES-256-GCM key ‖ nonce: HKDF-SHA256(salt = the header's 16 random bytes, ikm = MK,
//! info = "ratchetry v1 message keys") → 44 bytes. Sender-key chains reuse [`ChainKey`].
//!
//! The per-message salt means a chain counter used twice (state restored from a stale snapshot
//! without `restore`) still never repeats a key and nonce: the two messages share a message key
//! but not a keystream.

use crate::labels;
use crate::primitives::{AeadKey, Secret, derive, hmac_sha256};

/// The root key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RootKey(pub(crate) Secret<32>);

/// A sending or receiving chain key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainKey(pub(crate) Secret<32>);

/// A one-time message key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MessageKey(pub(crate) Secret<32>);

impl RootKey {
    /// KDF_RK.
    pub(crate) fn ratchet(&self, dh_output: &Secret<32>) -> (RootKey, ChainKey) {
        self.ratchet_pq(dh_output, None)
    }

    /// KDF_RK with a post-quantum ratchet epoch's secret after the DH output in the input key
    /// material (none before the first epoch: the same keys as [`Self::ratchet`]).
    pub(crate) fn ratchet_pq(
        &self,
        dh_output: &Secret<32>,
        pq: Option<&Secret<32>>,
    ) -> (RootKey, ChainKey) {
        let mut ikm = Secret::from_bytes([0u8; 64]);
        ikm.as_mut_bytes()[..32].copy_from_slice(dh_output.as_bytes());
        let len = match pq {
            Some(s) => {
                ikm.as_mut_bytes()[32..].copy_from_slice(s.as_bytes());
                64
            }
            None => 32,
        };
        let okm: Secret<64> = derive(
            Some(self.0.as_bytes()),
            &ikm.as_bytes()[..len],
            labels::ROOT,
        );
        let (rk, ck) = okm.as_bytes().split_at(32);
        (RootKey(secret32(rk)), ChainKey(secret32(ck)))
    }
}

impl ChainKey {
    /// KDF_CK: the message key for this position and the next chain key.
    pub(crate) fn step(&self) -> (MessageKey, ChainKey) {
        let key = self.0.as_bytes();
        (
            MessageKey(Secret::from_bytes(hmac_sha256(key, &[0x01]))),
            ChainKey(Secret::from_bytes(hmac_sha256(key, &[0x02]))),
        )
    }
}

/// Random bytes carried in every message header and folded into its key derivation.
pub(crate) const SALT_LEN: usize = 16;

impl MessageKey {
    /// The AES-256-GCM key and nonce for this message key and header salt, under `label`.
    pub(crate) fn aead_key(&self, salt: &[u8; SALT_LEN], label: &[u8]) -> AeadKey {
        AeadKey::from_key_nonce(derive(Some(salt), self.0.as_bytes(), label))
    }

    /// The pairwise-session AEAD key.
    pub(crate) fn pairwise(&self, salt: &[u8; SALT_LEN]) -> AeadKey {
        self.aead_key(salt, labels::MESSAGE_KEYS)
    }
}

fn secret32(bytes: &[u8]) -> Secret<32> {
    let mut out = Secret::from_bytes([0u8; 32]);
    out.as_mut_bytes().copy_from_slice(bytes);
    out
}
