//! Envelope ids: what names one sealed copy of a message on the wire, for the read ring
//! (duplicate suppression), retries and replaced ids. Not the app's id of a message: that is
//! [`MessageId`](super::MessageId), the same on every device, while a 1:1 message sent to
//! several devices travels in envelopes of different ids.

use alloc::vec::Vec;
use core::fmt;

use super::envelope::{Envelope, GROUP, MessageRef, PAIRWISE, is_retry};
use crate::devices::DeviceAddress;
use crate::labels;
use crate::primitives::sha256;

/// The id of one envelope: what the read ring remembers, so a redelivery is `Duplicate`. A
/// pairwise or group envelope is named by its sender and the random salt of its message
/// header, so a copy whose ciphertext the relay changed has the id of the genuine envelope,
/// and a resend reports that id (`resent`); other envelopes (retry requests) are named by
/// their bytes. Each pairwise copy of a 1:1 message has an envelope id of its own: to name
/// the message itself (for edits, reactions, receipts) use [`MessageId`](super::MessageId).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvelopeId(pub [u8; 16]);

impl EnvelopeId {
    /// The id of `envelope` (PROTOCOL.md 18.4; the label is the one it had when this type was
    /// called `MessageId`, so read rings stored then still recognise their envelopes):
    /// SHA-256("ratchetry v1 message id" ‖ kind ‖
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

    /// The ids an app may have stored the message of `envelope` under: for a pairwise or group
    /// envelope, the ids of a sealed message from its sender with its salt as either kind,
    /// pairwise first (a sender draws a salt for one message, and the relay can put it in an
    /// envelope of the other kind); for any other bytes, [`of`](Self::of) alone. Before asking
    /// for an envelope again, look in the store under each: one is the envelope's own id.
    pub fn of_either_kind(envelope: &[u8]) -> Vec<Self> {
        match Envelope::decode(envelope)
            .ok()
            .and_then(|e| e.sealed_name())
        {
            Some((sender, _, salt)) => Self::either_kind(sender, salt).to_vec(),
            _ => alloc::vec![Self::of(envelope)],
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
        [Self::pairwise(sender, salt), Self::group(sender, salt)]
    }

    /// The id of the pairwise message `sender` sealed with `salt`.
    pub(crate) fn pairwise(sender: DeviceAddress, salt: MessageRef) -> Self {
        Self::of_sealed(&sender, PAIRWISE, &salt)
    }

    /// The id of the group message `sender` sealed with `salt`.
    pub(crate) fn group(sender: DeviceAddress, salt: MessageRef) -> Self {
        Self::of_sealed(&sender, GROUP, &salt)
    }

    fn of_sealed(sender: &DeviceAddress, kind: u8, salt: &MessageRef) -> Self {
        Self::truncate(sha256(&[
            labels::ENVELOPE_ID,
            &[kind],
            &sender.to_array(),
            salt,
        ]))
    }

    /// Tagged 0x00, so no byte string is named like a sealed message (tags 0x01, 0x02).
    fn of_bytes(bytes: &[u8]) -> Self {
        Self::truncate(sha256(&[labels::ENVELOPE_ID, &[0], bytes]))
    }

    fn truncate(full: [u8; 32]) -> Self {
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        Self(id)
    }
}

impl fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeId(")?;
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
        let id = EnvelopeId([0xab; 16]);
        assert_eq!(alloc::format!("{id:?}"), "EnvelopeId(abababababab…)");
    }
}
