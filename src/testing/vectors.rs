//! Internal values the protocol vectors need that the public API does not show: what the crate's
//! own code computes for values that no public type exposes, so that the vector files record the
//! code's result (and the vector tests recompute it from PROTOCOL.md independently).

use alloc::vec::Vec;

/// PQXDH on the initiator's side as the session code runs it (PROTOCOL.md 7.1, 7.3): the shared
/// secret SK and the ML-KEM ciphertext. Draws what [`Session::initiate`](crate::Session::initiate)
/// draws first (`ek`, then `m`): pass a clone of the generator to leave it untouched.
pub fn pqxdh_initiate(
    rng: &mut impl rand_core::CryptoRng,
    identity: &crate::IdentityKeyPair,
    bundle: &crate::VerifiedBundle,
) -> crate::Result<([u8; 32], Vec<u8>)> {
    let initiated = crate::x3dh::initiate(rng, identity, bundle)?;
    Ok((
        *initiated.shared_secret.as_bytes(),
        initiated.kem_ciphertext.as_bytes().to_vec(),
    ))
}

/// A group message key's AES-256-GCM key and nonce for a header salt (PROTOCOL.md 14.3): the
/// expansion under "ratchetry v1 group message keys".
pub fn group_message_keys(message_key: [u8; 32], salt: [u8; 16]) -> ([u8; 32], [u8; 12]) {
    crate::ratchet::keys::MessageKey(crate::primitives::Secret::from_bytes(message_key))
        .aead_key(&salt, crate::labels::GROUP_MESSAGE_KEYS)
        .key_and_nonce()
}

/// Chunk `index` of a payload under the post-quantum ratchet's erasure code (PROTOCOL.md 25.1):
/// the payload's length a multiple of 32, at most 64 symbols.
pub fn erasure_chunk(payload: &[u8], index: u8) -> [u8; 32] {
    crate::ratchet::pq::erasure::encode(payload, index)
}
