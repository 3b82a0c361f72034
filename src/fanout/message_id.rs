//! Message ids: the app's name for one message, the same on the sender, on every recipient
//! device and on the sender's own other devices, for edits, reactions and receipts.
//!
//! A 1:1 message travels in one pairwise envelope per device, each with its own salt (and so
//! its own [`EnvelopeId`](super::EnvelopeId)); a group message in one group envelope. The
//! message id is therefore derived from what every copy carries inside its authenticated
//! plaintext (or, for a group message, its signed header) and from the sender address the
//! envelope authenticates: a relay can neither change it on one copy nor give it to another
//! message. It binds the sender address, so no device can claim another sender's id, and the
//! conversation (or group). It does not bind the body: only the sending device chooses its
//! nonce, and a sender that reuses one names two of its own messages alike, which says no more
//! than it could say anyway (it controls what it sends). Hashing the body would cost a SHA-256
//! pass over it on every receive: a quarter of a 1 KiB decrypt.

use core::fmt;

use super::envelope::MessageRef;
use crate::devices::{AccountKey, DeviceAddress};
use crate::group::GroupId;
use crate::labels;
use crate::primitives::sha256;

/// The random value a sender draws for each 1:1 message and carries in every copy's payload
/// (PROTOCOL.md 18.2): with the sender and the conversation it makes the message id.
pub(crate) type MessageNonce = [u8; 16];

const DIRECT: u8 = 1;
const GROUP: u8 = 2;

/// The id of one message, the same on every device of every account involved: the outbox of
/// its send reports it ([`Outbox::message_id`](super::Outbox::message_id)), and every device
/// that reads it, a resend included, reports it on [`Received`](super::Received). Use it to
/// refer to a message (edits, reactions, receipts). It is not an envelope's id: duplicate
/// suppression works on [`EnvelopeId`](super::EnvelopeId)s, one per copy.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// A 1:1 message (PROTOCOL.md 18.4): H("ratchetry v1 app message id" ‖ 0x01 ‖ sender
    /// address ‖ conversation account ‖ nonce)[0..16], the conversation being the account it
    /// was sent to.
    pub(crate) fn direct(
        sender: &DeviceAddress,
        conversation: &AccountKey,
        nonce: &MessageNonce,
    ) -> Self {
        Self::truncate(sha256(&[
            labels::MESSAGE_ID,
            &[DIRECT],
            &sender.to_array(),
            conversation.as_bytes(),
            nonce,
        ]))
    }

    /// A group message: H("ratchetry v1 app message id" ‖ 0x02 ‖ sender address ‖ group id ‖
    /// salt of the group message)[0..16].
    pub(crate) fn group(sender: &DeviceAddress, group: &GroupId, salt: &MessageRef) -> Self {
        Self::truncate(sha256(&[
            labels::MESSAGE_ID,
            &[GROUP],
            &sender.to_array(),
            &group.0,
            salt,
        ]))
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
    use crate::devices::DeviceId;

    fn address(account: u8, device: u32) -> DeviceAddress {
        DeviceAddress {
            account: AccountKey::from_trusted([account; 32]),
            device: DeviceId(device),
        }
    }

    #[test]
    fn debug_shows_a_short_prefix() {
        let id = MessageId([0xcd; 16]);
        assert_eq!(alloc::format!("{id:?}"), "MessageId(cdcdcdcdcdcd…)");
    }

    /// Every input changes the id: a relay or another device cannot make two messages that
    /// differ in any of them share one.
    #[test]
    fn a_direct_id_binds_sender_conversation_and_nonce() {
        let (alice, bob) = (address(1, 1), AccountKey::from_trusted([2; 32]));
        let id = MessageId::direct(&alice, &bob, &[7; 16]);
        assert_eq!(id, MessageId::direct(&alice, &bob, &[7; 16]));
        for other in [
            MessageId::direct(&address(1, 2), &bob, &[7; 16]),
            MessageId::direct(&address(3, 1), &bob, &[7; 16]),
            MessageId::direct(&alice, &AccountKey::from_trusted([3; 32]), &[7; 16]),
            MessageId::direct(&alice, &bob, &[8; 16]),
        ] {
            assert_ne!(id, other);
        }
    }

    #[test]
    fn a_group_id_binds_sender_group_and_salt_and_differs_from_a_direct_one() {
        let alice = address(1, 1);
        let group = GroupId([2; 32]);
        let id = MessageId::group(&alice, &group, &[7; 16]);
        for other in [
            MessageId::group(&address(1, 2), &group, &[7; 16]),
            MessageId::group(&alice, &GroupId([3; 32]), &[7; 16]),
            MessageId::group(&alice, &group, &[8; 16]),
            // The same 32 bytes as a conversation: the kind byte keeps them apart.
            MessageId::direct(&alice, &AccountKey::from_trusted([2; 32]), &[7; 16]),
        ] {
            assert_ne!(id, other);
        }
    }

    /// The construction of PROTOCOL.md 18.4, byte for byte.
    #[test]
    fn ids_hash_the_label_kind_and_fields_in_order() {
        let alice = address(1, 1);
        let mut input = b"ratchetry v1 app message id\x01".to_vec();
        input.extend_from_slice(&alice.to_array());
        input.extend_from_slice(&[2; 32]);
        input.extend_from_slice(&[7; 16]);
        let full = sha256(&[&input]);
        let id = MessageId::direct(&alice, &AccountKey::from_trusted([2; 32]), &[7; 16]);
        assert_eq!(id.0[..], full[..16]);
        input[27] = 2;
        let full = sha256(&[&input]);
        let id = MessageId::group(&alice, &GroupId([2; 32]), &[7; 16]);
        assert_eq!(id.0[..], full[..16]);
    }
}
