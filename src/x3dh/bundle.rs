//! Prekey bundles: what a device publishes so others can start sessions with it while it is
//! offline. A bundle is bytes until [`PreKeyBundle::verify`] turns it into a
//! [`VerifiedBundle`], the only form [`Session::initiate`](crate::Session::initiate) accepts.

use alloc::vec::Vec;

use super::{OneTimePreKeyId, OneTimePreKeyPublic, SignedPreKeyId, SignedPreKeyPublic};
use crate::error::{DecodeError, X3dhError};
use crate::labels;
use crate::primitives::{DhPublicKey, IdentityKey, Signature};
use crate::wire::{Reader, Writer, kind};

/// A device's published keys: identity key, signed prekey with signature, and optionally one
/// one-time prekey. Not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    identity: IdentityKey,
    signed: SignedPreKeyPublic,
    one_time: Option<OneTimePreKeyPublic>,
}

/// A bundle whose signed prekey signature verified under its identity key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle(PreKeyBundle);

impl PreKeyBundle {
    /// Assembles a bundle from a device's published parts.
    pub fn new(
        identity: IdentityKey,
        signed: SignedPreKeyPublic,
        one_time: Option<OneTimePreKeyPublic>,
    ) -> Self {
        Self {
            identity,
            signed,
            one_time,
        }
    }

    /// The identity key the bundle claims.
    pub fn identity_key(&self) -> IdentityKey {
        self.identity
    }

    /// Checks the signed prekey's signature.
    pub fn verify(self) -> Result<VerifiedBundle, X3dhError> {
        let signed = signed_prekey_message(self.signed.id, &self.signed.key);
        self.identity
            .verify(labels::SIGNED_PREKEY, &signed, &self.signed.signature)
            .map_err(|_| X3dhError::BadSignedPreKeySignature)?;
        Ok(VerifiedBundle(self))
    }

    /// The wire encoding (PROTOCOL.md, "Prekey bundle").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 + 4 + 32 + 64 + 1 + 36);
        out.header(kind::BUNDLE);
        out.extend_from_slice(&self.identity.to_bytes());
        out.u32(self.signed.id.0);
        out.extend_from_slice(&self.signed.key.to_bytes());
        out.extend_from_slice(&self.signed.signature.to_bytes());
        out.optional(self.one_time, |out, otk| {
            out.u32(otk.id.0);
            out.extend_from_slice(&otk.key.to_bytes());
        });
        out
    }

    /// Parses the wire encoding; the signature is checked by [`verify`](Self::verify).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::BUNDLE)?;
        let identity = IdentityKey::from_bytes(&r.array()?)?;
        let signed = SignedPreKeyPublic {
            id: SignedPreKeyId(r.u32()?),
            key: DhPublicKey::from_bytes(r.array()?),
            signature: Signature::from_bytes(r.array()?),
        };
        let one_time = r.optional(|r| {
            Ok(OneTimePreKeyPublic {
                id: OneTimePreKeyId(r.u32()?),
                key: DhPublicKey::from_bytes(r.array()?),
            })
        })?;
        r.finish()?;
        Ok(Self::new(identity, signed, one_time))
    }
}

impl VerifiedBundle {
    /// The bundle's identity key.
    pub fn identity_key(&self) -> IdentityKey {
        self.0.identity
    }

    pub(crate) fn signed_prekey(&self) -> &SignedPreKeyPublic {
        &self.0.signed
    }

    pub(crate) fn one_time_prekey(&self) -> Option<&OneTimePreKeyPublic> {
        self.0.one_time.as_ref()
    }
}

/// The bytes a signed prekey's signature covers, after the label: id ‖ key.
pub(super) fn signed_prekey_message(id: SignedPreKeyId, key: &DhPublicKey) -> [u8; 36] {
    let mut m = [0u8; 36];
    m[..4].copy_from_slice(&id.0.to_be_bytes());
    m[4..].copy_from_slice(&key.to_bytes());
    m
}
