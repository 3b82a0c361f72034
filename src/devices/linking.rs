//! Linking a companion, with no I/O (PROTOCOL.md, "Linking"):
//!
//! 1. the primary makes a [`LinkInvitation`] (account key, fresh nonce, expiry) that the app
//!    shows as a QR code;
//! 2. the companion answers with a [`LinkRequest`]: its identity key, its binding signature
//!    (consent to be listed under this account), a proof that it read the invitation (a MAC
//!    under the nonce over the account and its key: the nonce itself never leaves the QR code,
//!    so the server that carries the request cannot answer the invitation with another key),
//!    and its signature over all of it;
//! 3. the primary checks it, lists the companion in a new signed device list and returns a
//!    [`LinkApproval`];
//! 4. the companion verifies the list and its own entry ([`complete_link`]) and countersigns a
//!    [`LinkConfirmation`] over the list's digest.

use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::list::binding;
use super::{
    AccountKey, DeviceAddress, DeviceId, ListLimits, SignedDeviceList, VerifiedDeviceList,
};
use crate::error::{DecodeError, DeviceError};
use crate::labels;
use crate::primitives::{IdentityKey, IdentityKeyPair, Signature, hmac_sha256};
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, kind};
use subtle::ConstantTimeEq;

/// The primary's offer to link one companion. Its nonce is what proves a request answers it:
/// `Debug` does not print it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LinkInvitation {
    /// The account to join.
    pub account: AccountKey,
    pub(crate) nonce: [u8; 16],
    /// Requests after this are refused.
    pub expires_at: Timestamp,
}

impl LinkInvitation {
    pub(crate) fn new(
        rng: &mut impl CryptoRng,
        account: AccountKey,
        expires_at: Timestamp,
    ) -> Self {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        Self {
            account,
            nonce,
            expires_at,
        }
    }

    /// Wire bytes (for a QR code).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 + 16 + 8);
        out.header(kind::LINK_INVITATION);
        out.put(self.account.as_bytes());
        out.extend_from_slice(&self.nonce);
        out.u64(self.expires_at.0);
        out
    }

    /// Parses wire bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::LINK_INVITATION)?;
        let v = Self {
            account: AccountKey::read(&mut r)?,
            nonce: r.array()?,
            expires_at: Timestamp(r.u64()?),
        };
        r.finish()?;
        Ok(v)
    }
}

impl core::fmt::Debug for LinkInvitation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkInvitation")
            .field("account", &self.account)
            .field("expires_at", &self.expires_at)
            .field("nonce", &"redacted")
            .finish()
    }
}

/// A companion's answer to an invitation. It carries no secret: the server may carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkRequest {
    pub(crate) account: AccountKey,
    pub(crate) identity: IdentityKey,
    pub(crate) binding: Signature,
    /// HMAC-SHA256 under the invitation's nonce: only a reader of the invitation can make it.
    pub(crate) proof: [u8; 32],
    pub(crate) signature: Signature,
}

impl LinkRequest {
    /// The companion's request to join `invitation`'s account with `identity`.
    pub fn new(identity: &IdentityKeyPair, invitation: &LinkInvitation) -> Self {
        let public = identity.public();
        let binding = binding(identity, &invitation.account);
        let proof = request_proof(&invitation.nonce, &invitation.account, &public);
        let signature = identity.sign(
            labels::LINK_REQUEST,
            &request_message(&invitation.account, &public, &proof),
        );
        Self {
            account: invitation.account,
            identity: public,
            binding,
            proof,
            signature,
        }
    }

    /// Whether this request answers an invitation with `nonce` (constant time).
    pub(crate) fn answers(&self, nonce: &[u8; 16]) -> bool {
        let expected = request_proof(nonce, &self.account, &self.identity);
        bool::from(expected.ct_eq(&self.proof))
    }

    /// The companion's identity key.
    pub fn identity(&self) -> IdentityKey {
        self.identity
    }

    /// Checks both of the companion's signatures.
    pub(crate) fn verify(&self) -> Result<(), DeviceError> {
        let message = request_message(&self.account, &self.identity, &self.proof);
        self.identity
            .verify(labels::LINK_REQUEST, &message, &self.signature)
            .and_then(|()| {
                self.identity.verify(
                    labels::DEVICE_BINDING,
                    self.account.as_bytes(),
                    &self.binding,
                )
            })
            .map_err(|_| DeviceError::BadSignature)
    }

    /// Wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 + 32 + 64 + 32 + 64);
        out.header(kind::LINK_REQUEST);
        out.put(self.account.as_bytes());
        out.extend_from_slice(&self.identity.to_bytes());
        out.extend_from_slice(&self.binding.to_bytes());
        out.put(&self.proof);
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Parses wire bytes (signatures are checked by the primary).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::LINK_REQUEST)?;
        let v = Self {
            account: AccountKey::read(&mut r)?,
            identity: IdentityKey::from_bytes(&r.array()?)?,
            binding: Signature::from_bytes(r.array()?),
            proof: r.array()?,
            signature: Signature::from_bytes(r.array()?),
        };
        r.finish()?;
        Ok(v)
    }
}

/// `HMAC(nonce, "ratchetry v1 link request" ‖ AK ‖ IK)`.
fn request_proof(nonce: &[u8; 16], account: &AccountKey, identity: &IdentityKey) -> [u8; 32] {
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(labels::LINK_REQUEST);
    m.extend_from_slice(account.as_bytes());
    m.extend_from_slice(identity.as_bytes());
    hmac_sha256(nonce, &m)
}

fn request_message(account: &AccountKey, identity: &IdentityKey, proof: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(account.as_bytes());
    m.extend_from_slice(identity.as_bytes());
    m.extend_from_slice(proof);
    m
}

/// The primary's answer: the companion's device id and the new signed device list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkApproval {
    /// The id assigned to the companion.
    pub device: DeviceId,
    /// The list that now includes it.
    pub list: SignedDeviceList,
}

impl LinkApproval {
    /// Wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.header(kind::LINK_APPROVAL);
        out.u32(self.device.0);
        out.extend_from_slice(&self.list.to_bytes());
        out
    }

    /// Parses wire bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::LINK_APPROVAL)?;
        let device = DeviceId(r.u32()?);
        let list = SignedDeviceList::from_bytes(r.rest())?;
        Ok(Self { device, list })
    }
}

/// The companion's countersignature over the list that admitted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfirmation {
    pub(crate) account: AccountKey,
    pub(crate) device: DeviceId,
    pub(crate) list_digest: [u8; 32],
    pub(crate) signature: Signature,
}

impl LinkConfirmation {
    /// Wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 + 4 + 32 + 64);
        out.header(kind::LINK_CONFIRMATION);
        out.put(self.account.as_bytes());
        out.u32(self.device.0);
        out.extend_from_slice(&self.list_digest);
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Parses wire bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::LINK_CONFIRMATION)?;
        let v = Self {
            account: AccountKey::read(&mut r)?,
            device: DeviceId(r.u32()?),
            list_digest: r.array()?,
            signature: Signature::from_bytes(r.array()?),
        };
        r.finish()?;
        Ok(v)
    }

    pub(crate) fn signed_message(&self) -> Vec<u8> {
        confirmation_message(&self.account, self.device, &self.list_digest)
    }
}

fn confirmation_message(account: &AccountKey, device: DeviceId, digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(68);
    m.extend_from_slice(account.as_bytes());
    m.extend_from_slice(&device.0.to_be_bytes());
    m.extend_from_slice(digest);
    m
}

/// The companion's last step: checks that `approval` carries a list signed by the invitation's
/// account, valid under `limits` (the ceiling the companion's
/// [`DeviceConfig::lists`](crate::fanout::DeviceConfig::lists) will hold), that lists this
/// identity under the assigned id, and countersigns it. Create the
/// companion's [`Device`](crate::fanout::Device) from the returned list and send the
/// confirmation to the primary. [`Primary`](super::Primary) shows the whole flow.
pub fn complete_link(
    identity: &IdentityKeyPair,
    invitation: &LinkInvitation,
    approval: &LinkApproval,
    limits: &ListLimits,
) -> Result<(VerifiedDeviceList, LinkConfirmation), DeviceError> {
    let list = approval
        .list
        .clone()
        .verify(&invitation.account, None, limits)?;
    let listed = list
        .entries()
        .iter()
        .any(|e| e.id == approval.device && e.identity == identity.public());
    if !listed {
        return Err(DeviceError::NotInList(DeviceAddress {
            account: invitation.account,
            device: approval.device,
        }));
    }
    let list_digest = list.digest();
    let signature = identity.sign(
        labels::LINK_CONFIRMATION,
        &confirmation_message(&invitation.account, approval.device, &list_digest),
    );
    Ok((
        list,
        LinkConfirmation {
            account: invitation.account,
            device: approval.device,
            list_digest,
            signature,
        },
    ))
}
