//! Message ids: what names one sealed message on the wire, the same on every device, for
//! the read ring, retries and the app's own store.

use core::fmt;

use super::envelope::{Envelope, GROUP, MessageRef, PAIRWISE, is_retry};
use crate::devices::DeviceAddress;
use crate::labels;
use crate::primitives::sha256;

/// A stable identity of one message on the wire, the same on every device. A pairwise or
/// group envelope is named by its sender and the random salt of its message header, so a copy
/// whose ciphertext the relay changed has the id of the genuine message, and a resend reports
/// that id too (`resent`); other envelopes (retry requests) are named by their bytes. Use it to
/// recognise a redelivery and answer it idempotently.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// The id of `envelope` (PROTOCOL.md 18.4): SHA-256("ratchetry v1 message id" ‖ kind ‖
    /// sender address ‖ salt) for a pairwise or group envelope whose message decodes, else
    /// SHA-256("ratchetry v1 message id" ‖ 0x00 ‖ envelope); the first 16 bytes.
    pub fn of(envelope: &[u8]) -> Self {
        if is_retry(envelope) {
            return Self::of_bytes(envelope);
        }
        match Envelope::decode(envelope) {
            Ok(decoded) => Self::named(decoded.sealed_name(), envelope),
            Err(_) => Self::of_bytes(envelope),
        }
    }

    /// The id of the envelope `bytes`, given its sealed message's name
    /// ([`Envelope::sealed_name`]), so a caller that needs the name too parses it once.
    pub(crate) fn named(name: Option<(DeviceAddress, u8, MessageRef)>, bytes: &[u8]) -> Self {
        match name {
            Some((sender, kind, salt)) => Self::of_sealed(&sender, kind, &salt),
            None => Self::of_bytes(bytes),
        }
    }

    /// The ids of the message `sender` sealed with `salt`, as either kind: a sender uses a
    /// salt once, so a copy re-wrapped as the other kind names the same message.
    pub(crate) fn either_kind(sender: DeviceAddress, salt: MessageRef) -> [Self; 2] {
        [PAIRWISE, GROUP].map(|kind| Self::of_sealed(&sender, kind, &salt))
    }

    fn of_sealed(sender: &DeviceAddress, kind: u8, salt: &MessageRef) -> Self {
        Self::truncate(sha256(&[
            labels::MESSAGE_ID,
            &[kind],
            &sender.to_array(),
            salt,
        ]))
    }

    /// Tagged 0x00, so no byte string is named like a sealed message (tags 0x01, 0x02).
    fn of_bytes(bytes: &[u8]) -> Self {
        Self::truncate(sha256(&[labels::MESSAGE_ID, &[0], bytes]))
    }

    fn truncate(full: [u8; 32]) -> Self {
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        Self(id)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_a_short_prefix() {
        let id = MessageId([0xab; 16]);
        assert_eq!(alloc::format!("{id:?}"), "MessageId(abababababab…)");
    }
}
