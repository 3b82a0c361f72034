//! Prekey bundles: what a device publishes so others can start sessions with it while it is
//! offline. A bundle is bytes until [`PreKeyBundle::verify`] turns it into a
//! [`VerifiedBundle`], the only form [`Session::initiate`](crate::Session::initiate) accepts.
//! Every bundle carries an ML-KEM prekey signed by the identity key (one-time, or the
//! last-resort one), so every session is post-quantum.

use alloc::vec::Vec;

use super::{
    KemPreKeyId, KemPreKeyPublic, OneTimePreKeyId, OneTimePreKeyPublic, SignedPreKeyId,
    SignedPreKeyPublic,
};
use crate::error::{DecodeError, X3dhError};
use crate::labels;
use crate::primitives::{DhPublicKey, IdentityKey, KEM_PUBLIC_KEY_LEN, KemPublicKey, Signature};
use crate::wire::{Reader, Writer, kind};

/// A device's published keys: identity key, signed prekey with signature, optionally one
/// one-time prekey, and one signed ML-KEM prekey. Not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    identity: IdentityKey,
    signed: SignedPreKeyPublic,
    one_time: Option<OneTimePreKeyPublic>,
    kem: KemPreKeyPublic,
}

/// A bundle whose signed prekey and ML-KEM prekey signatures verified under its identity key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle(PreKeyBundle);

impl PreKeyBundle {
    /// Assembles a bundle from a device's published parts.
    pub fn new(
        identity: IdentityKey,
        signed: SignedPreKeyPublic,
        one_time: Option<OneTimePreKeyPublic>,
        kem: KemPreKeyPublic,
    ) -> Self {
        Self {
            identity,
            signed,
            one_time,
            kem,
        }
    }

    /// The identity key the bundle claims.
    pub fn identity_key(&self) -> IdentityKey {
        self.identity
    }

    /// The signed prekey, with its signature (unchecked until [`verify`](Self::verify)).
    pub fn signed_prekey(&self) -> SignedPreKeyPublic {
        self.signed
    }

    /// The one-time prekey, if the bundle carries one.
    pub fn one_time_prekey(&self) -> Option<OneTimePreKeyPublic> {
        self.one_time
    }

    /// The ML-KEM prekey (one-time or last-resort), with its signature. A server assembles
    /// bundles from a device's uploads: the signed prekey and last-resort ML-KEM prekey of the
    /// device's `bundle(None, None)`, plus one-time keys of each kind handed out once, through
    /// [`new`](Self::new).
    pub fn kem_prekey(&self) -> &KemPreKeyPublic {
        &self.kem
    }

    /// Checks the signed prekey's and the ML-KEM prekey's signatures.
    pub fn verify(self) -> Result<VerifiedBundle, X3dhError> {
        let signed = signed_prekey_message(self.signed.id, &self.signed.key);
        self.identity
            .verify(labels::SIGNED_PREKEY, &signed, &self.signed.signature)
            .map_err(|_| X3dhError::BadSignedPreKeySignature)?;
        verify_kem_prekey(&self.identity, &self.kem)?;
        Ok(VerifiedBundle(self))
    }

    /// The wire encoding (PROTOCOL.md, "Prekey bundle").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 + 100 + 37 + 4 + KEM_PUBLIC_KEY_LEN + 64);
        out.header(kind::BUNDLE);
        out.put(self.identity.as_bytes());
        out.u32(self.signed.id.0);
        out.put(self.signed.key.as_bytes());
        out.put(&self.signed.signature.to_bytes());
        out.optional(self.one_time, |out, otk| {
            out.u32(otk.id.0);
            out.put(otk.key.as_bytes());
        });
        self.kem.write(&mut out);
        out
    }

    /// Parses the wire encoding; the ML-KEM key passes the FIPS 203 modulus check here, the
    /// signatures are checked by [`verify`](Self::verify).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::BUNDLE)?;
        let identity = IdentityKey::from_bytes(&r.array()?)?;
        let signed = SignedPreKeyPublic {
            id: SignedPreKeyId(r.u32()?),
            key: DhPublicKey::from_bytes(r.array()?)?,
            signature: Signature::from_bytes(r.array()?),
        };
        let one_time = r.optional(|r| {
            Ok(OneTimePreKeyPublic {
                id: OneTimePreKeyId(r.u32()?),
                key: DhPublicKey::from_bytes(r.array()?)?,
            })
        })?;
        let kem = KemPreKeyPublic::read(&mut r)?;
        r.finish()?;
        Ok(Self::new(identity, signed, one_time, kem))
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

    pub(crate) fn kem_prekey(&self) -> &KemPreKeyPublic {
        &self.0.kem
    }
}

impl KemPreKeyPublic {
    /// `u32(id) ‖ key (1568) ‖ signature (64)`.
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.u32(self.id.0);
        out.put(self.key.as_bytes());
        out.put(&self.signature.to_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: KemPreKeyId(r.u32()?),
            key: KemPublicKey::from_bytes(r.bytes(KEM_PUBLIC_KEY_LEN)?)?,
            signature: Signature::from_bytes(r.array()?),
        })
    }
}

/// The bytes a signed prekey's signature covers, after the label: id ‖ key.
pub(super) fn signed_prekey_message(id: SignedPreKeyId, key: &DhPublicKey) -> [u8; 36] {
    let mut m = [0u8; 36];
    m[..4].copy_from_slice(&id.0.to_be_bytes());
    m[4..].copy_from_slice(&key.to_bytes());
    m
}

/// Checks an ML-KEM prekey's signature under `identity`.
pub(crate) fn verify_kem_prekey(
    identity: &IdentityKey,
    kem: &KemPreKeyPublic,
) -> Result<(), X3dhError> {
    identity
        .verify(
            labels::KEM_PREKEY,
            &kem_prekey_message(kem.id, &kem.key),
            &kem.signature,
        )
        .map_err(|_| X3dhError::BadKemPreKeySignature)
}

/// The bytes an ML-KEM prekey's signature covers, after the label: id ‖ key.
pub(super) fn kem_prekey_message(id: KemPreKeyId, key: &KemPublicKey) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + KEM_PUBLIC_KEY_LEN);
    m.u32(id.0);
    m.put(key.as_bytes());
    m
}
