//! Who a sender key speaks for: the owning device's identity key and the context the layer
//! above binds it to (the fanout layer's device address). Both enter every signature, so a
//! message can be presented as coming from no other device, not even one that re-distributed
//! the same sender key as its own. A per-message context (the fanout layer's envelope header)
//! is signed after them, length first.

use alloc::vec::Vec;

use crate::error::{DecodeError, GroupError};
use crate::labels;
use crate::primitives::IdentityKey;
use crate::wire::{Reader, Writer};

/// Bytes a [`GroupSender`] context may hold.
pub const MAX_SENDER_CONTEXT: usize = 64;

/// Bytes of per-message context a group message's signature may bind
/// ([`OutboundGroupSession::encrypt_bound`](super::OutboundGroupSession::encrypt_bound)); its
/// length is signed as one byte.
pub const MAX_MESSAGE_CONTEXT: usize = 255;

const _: () = assert!(MAX_MESSAGE_CONTEXT <= u8::MAX as usize);

/// The signed length byte of a message context, or `ContextTooLong`.
pub(crate) fn context_len(context: &[u8]) -> Result<u8, GroupError> {
    if context.len() > MAX_MESSAGE_CONTEXT {
        return Err(GroupError::ContextTooLong);
    }
    Ok(context.len() as u8)
}

/// The sending device of a sender key: its identity key and an opaque context of at most
/// [`MAX_SENDER_CONTEXT`] bytes (for a `Device`, its account key and device id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupSender {
    identity: IdentityKey,
    context: Vec<u8>,
}

impl GroupSender {
    /// A sender; `None` if `context` is longer than [`MAX_SENDER_CONTEXT`].
    pub fn new(identity: IdentityKey, context: &[u8]) -> Option<Self> {
        (context.len() <= MAX_SENDER_CONTEXT).then(|| Self {
            identity,
            context: context.to_vec(),
        })
    }

    /// A sender whose context has a fixed length, checked against the bound when compiling.
    pub(crate) fn fixed<const N: usize>(identity: IdentityKey, context: &[u8; N]) -> Self {
        const { assert!(N <= MAX_SENDER_CONTEXT) };
        Self {
            identity,
            context: context.to_vec(),
        }
    }

    /// The sending device's identity key.
    pub fn identity(&self) -> IdentityKey {
        self.identity
    }

    /// The bytes a group message signature covers (PROTOCOL.md 14.3), in one buffer: the label,
    /// the identity key, the sender context's length and the sender context, then the message
    /// context's length and the message context, then `message` (header ‖ ciphertext). A
    /// message context longer than [`MAX_MESSAGE_CONTEXT`] is `ContextTooLong`.
    pub(crate) fn signed_bytes(
        &self,
        context: &[u8],
        message: &[u8],
    ) -> Result<Vec<u8>, GroupError> {
        let len = context_len(context)?;
        let mut signed = Vec::with_capacity(
            labels::GROUP_MESSAGE.len() + 34 + self.context.len() + context.len() + message.len(),
        );
        signed.put(labels::GROUP_MESSAGE);
        signed.put(self.identity.as_bytes());
        self.write_context(&mut signed);
        signed.u8(len);
        signed.put(context);
        signed.put(message);
        Ok(signed)
    }

    fn write_context(&self, out: &mut impl Writer) {
        out.u8(self.context.len() as u8);
        out.put(&self.context);
    }

    /// `IK (32) ‖ u8(len) ‖ context`, as stored in state. The key was checked when received.
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.put(self.identity.as_bytes());
        self.write_context(out);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let identity = IdentityKey::from_trusted(r.array()?);
        let len = r.u8()? as usize;
        if len > MAX_SENDER_CONTEXT {
            return Err(DecodeError::InvalidValue);
        }
        let context = r.bytes(len)?.to_vec();
        Ok(Self { identity, context })
    }
}
