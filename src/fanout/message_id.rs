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
use crate::devices::{ADDRESS_LEN, AccountKey, DeviceAddress};
use crate::group::GroupId;
use crate::labels;
use crate::primitives::sha256;
use sha2::block_api::compress256;

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
        DirectIdPrefix::of(sender).id(conversation, nonce)
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

/// The SHA-256 state of a 1:1 message id from one sender after its first block: the label,
/// the kind and the sender address fill exactly one block, so a device that keeps this state
/// per remote device finishes each id with one compression instead of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirectIdPrefix([u32; 8]);

/// What the prefix covers: one SHA-256 block.
const PREFIX_LEN: usize = 64;
/// What follows it: the conversation account and the nonce.
const SUFFIX_LEN: usize = 32 + 16;
const _: () = assert!(labels::MESSAGE_ID.len() + 1 + ADDRESS_LEN == PREFIX_LEN);
// The suffix, the padding byte and the 8-byte length fit in the one block that ends the id.
const _: () = assert!(SUFFIX_LEN + 1 + 8 <= 64);

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

impl DirectIdPrefix {
    /// The state after `"ratchetry v1 app message id" ‖ 0x01 ‖ sender address`.
    pub(crate) fn of(sender: &DeviceAddress) -> Self {
        let mut block = [0u8; PREFIX_LEN];
        let (label, rest) = block.split_at_mut(labels::MESSAGE_ID.len());
        label.copy_from_slice(labels::MESSAGE_ID);
        rest[0] = DIRECT;
        rest[1..].copy_from_slice(&sender.to_array());
        let mut state = SHA256_IV;
        compress256(&mut state, &[block]);
        Self(state)
    }

    /// The id of the message `nonce` in `conversation` from this prefix's sender: the last
    /// block (the suffix, SHA-256's padding and the message length in bits) compressed into
    /// the kept state.
    pub(crate) fn id(&self, conversation: &AccountKey, nonce: &MessageNonce) -> MessageId {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(conversation.as_bytes());
        block[32..SUFFIX_LEN].copy_from_slice(nonce);
        block[SUFFIX_LEN] = 0x80;
        block[56..].copy_from_slice(&(((PREFIX_LEN + SUFFIX_LEN) * 8) as u64).to_be_bytes());
        let mut state = self.0;
        compress256(&mut state, &[block]);
        let mut id = [0u8; 16];
        for (out, word) in id.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        MessageId(id)
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
    /// The id finished from a kept prefix is PROTOCOL.md 18.4's hash of the whole input.
    #[test]
    fn a_direct_id_from_its_prefix_is_the_hash_of_its_input() {
        let mut rng = crate::testing::SeededRng::from_label("direct id prefix");
        for _ in 0..64 {
            let mut bytes = [0u8; 32 + 4 + 32 + 16];
            rand_core::Rng::fill_bytes(&mut rng, &mut bytes);
            let sender = DeviceAddress {
                account: AccountKey::from_trusted(bytes[..32].try_into().unwrap()),
                device: DeviceId(u32::from_be_bytes(bytes[32..36].try_into().unwrap())),
            };
            let conversation = AccountKey::from_trusted(bytes[36..68].try_into().unwrap());
            let nonce: MessageNonce = bytes[68..].try_into().unwrap();
            let whole = sha256(&[
                labels::MESSAGE_ID,
                &[DIRECT],
                &sender.to_array(),
                conversation.as_bytes(),
                &nonce,
            ]);
            assert_eq!(
                DirectIdPrefix::of(&sender).id(&conversation, &nonce).0,
                whole[..16]
            );
        }
    }

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
