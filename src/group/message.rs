//! The signed group message (PROTOCOL.md, "Group message"), parsed once into a borrowed view.

use super::{GroupId, SenderKeyId};
use crate::error::DecodeError;
use crate::primitives::{Signature, TAG_LEN};
use crate::ratchet::keys::SALT_LEN;
use crate::wire::{Reader, kind};

/// Length of a group message's header: version, type, group id, key id, iteration, salt.
pub(crate) const HEADER_LEN: usize = 2 + 32 + 4 + 4 + SALT_LEN;
/// Length of the trailing Ed25519 signature.
pub(crate) const SIGNATURE_LEN: usize = 64;

/// A parsed group message (form checked; signature and ciphertext not yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupMessage<'a> {
    pub(crate) group: GroupId,
    pub(crate) key_id: SenderKeyId,
    pub(crate) iteration: u32,
    pub(crate) salt: [u8; SALT_LEN],
    /// Everything the signature covers (after its prefix): header ‖ ciphertext.
    pub(crate) signed: &'a [u8],
    pub(crate) ciphertext: &'a [u8],
    pub(crate) signature: Signature,
}

impl<'a> GroupMessage<'a> {
    /// Parses wire bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::GROUP_MESSAGE)?;
        let group = GroupId(r.array()?);
        let key_id = SenderKeyId(r.u32()?);
        let iteration = r.u32()?;
        let salt = r.array()?;
        let rest = r.rest();
        let Some(split) = rest.len().checked_sub(SIGNATURE_LEN) else {
            return Err(DecodeError::Truncated);
        };
        if split < TAG_LEN {
            return Err(DecodeError::Truncated);
        }
        let (ciphertext, signature) = rest.split_at(split);
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(signature);
        Ok(Self {
            group,
            key_id,
            iteration,
            salt,
            signed: &bytes[..HEADER_LEN + ciphertext.len()],
            ciphertext,
            signature: Signature::from_bytes(sig),
        })
    }

    /// The group this message claims to belong to.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The sender key generation it was sent under.
    pub fn key_id(&self) -> SenderKeyId {
        self.key_id
    }

    /// Its position in the sender's chain.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    pub(crate) fn header(&self) -> &'a [u8] {
        &self.signed[..HEADER_LEN]
    }
}
