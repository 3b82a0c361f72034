//! The public halves of prekeys, as bundles carry them and uploads hand them to the server.

use super::{KemPreKeyId, OneTimePreKeyId, SignedPreKeyId};
use crate::primitives::{DhPublicKey, KemPublicKey, Signature};

/// The public half of a signed prekey, as published in bundles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedPreKeyPublic {
    /// Its id.
    pub id: SignedPreKeyId,
    /// The X25519 key.
    pub key: DhPublicKey,
    /// The identity key's signature over it.
    pub signature: Signature,
}

/// The public half of an ML-KEM prekey with the identity key's signature, as published in
/// bundles (the last-resort one) or uploaded for the server to hand out once (one-time ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KemPreKeyPublic {
    /// Its id.
    pub id: KemPreKeyId,
    /// The ML-KEM-1024 encapsulation key.
    pub key: KemPublicKey,
    /// The identity key's signature over it.
    pub signature: Signature,
}

/// The public half of a one-time prekey, as uploaded for the server to hand out once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneTimePreKeyPublic {
    /// Its id.
    pub id: OneTimePreKeyId,
    /// The X25519 key.
    pub key: DhPublicKey,
}
