//! Who a sender key speaks for: the owning device's identity key and the context the layer
//! above binds it to (the fanout layer's device address). Both enter every signature, so a
//! message can be presented as coming from no other device, not even one that re-distributed
//! the same sender key as its own.

use alloc::vec::Vec;

use crate::error::DecodeError;
use crate::labels;
use crate::primitives::IdentityKey;
use crate::wire::{Reader, Writer};

/// Bytes a [`GroupSender`] context may hold.
pub const MAX_SENDER_CONTEXT: usize = 64;

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

    /// The bytes every group message signature starts with: the label, the identity key, the
    /// context's length and the context.
    pub(crate) fn signature_prefix(&self) -> Vec<u8> {
        let mut prefix = Vec::with_capacity(labels::GROUP_MESSAGE.len() + 33 + self.context.len());
        prefix.put(labels::GROUP_MESSAGE);
        prefix.put(self.identity.as_bytes());
        self.write_context(&mut prefix);
        prefix
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
