//! What the fanout layer hands back to the app: bytes to ship, messages to show, events.

use alloc::vec::Vec;

use super::WithheldReason;
use crate::calls::CallKeyMessage;
use crate::devices::{AccountKey, DeviceAddress};
use crate::group::{GroupId, SenderKeyId};
use crate::history::HistoryOffer;

/// The result of a send.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Outgoing {
    /// Everything is encrypted: persist the device, then ship the outbox.
    Ready(Outbox),
    /// These devices have no session yet. Nothing changed: fetch their prekey bundles, pass
    /// them to [`Device::start_sessions`](super::Device::start_sessions), and send again.
    NeedBundles(Vec<DeviceAddress>),
}

/// Envelopes to deliver.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outbox {
    /// One envelope per recipient device (pairwise-encrypted).
    pub envelopes: Vec<(DeviceAddress, Vec<u8>)>,
    /// For a group send: the one group envelope, and every device it must reach.
    pub group: Option<(Vec<u8>, Vec<DeviceAddress>)>,
}

/// A message this device read.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A 1:1 message to this account.
    Direct {
        /// The sending device.
        from: DeviceAddress,
        /// The text or app payload.
        body: Vec<u8>,
    },
    /// A copy of a message another device of this account sent, to show in its conversation.
    OwnCopy {
        /// The device of this account that sent it.
        from: DeviceAddress,
        /// The account it was sent to: the conversation.
        sent_to: AccountKey,
        /// The text or app payload.
        body: Vec<u8>,
    },
    /// A group message.
    Group {
        /// The sending device.
        from: DeviceAddress,
        /// The group.
        group: GroupId,
        /// The text or app payload.
        body: Vec<u8>,
    },
    /// A sender key arrived: this device can now read `from`'s messages in `group`.
    SenderKey {
        /// The device whose key it is.
        from: DeviceAddress,
        /// The group.
        group: GroupId,
        /// Its generation.
        key_id: SenderKeyId,
    },
    /// A call's key for an epoch: start or update the call with
    /// [`Call::from_key_message`](crate::calls::Call::from_key_message) or
    /// [`Call::apply`](crate::calls::Call::apply).
    CallKey {
        /// The device that sent it.
        from: DeviceAddress,
        /// The key message.
        message: CallKeyMessage,
    },
    /// Another device of this account offers its history: fetch the sealed chunks and open
    /// them with [`HistoryOpener`](crate::history::HistoryOpener).
    HistoryOffer {
        /// The device of this account that sealed it.
        from: DeviceAddress,
        /// The offer.
        offer: HistoryOffer,
    },
    /// Another device could not read a message from this one and asks for it again: look up
    /// the plaintext stored under `message_id` and call
    /// [`Device::answer_retry`](super::Device::answer_retry).
    RetryRequest(super::RetryRequest),
    /// `from` withholds its group key from this device.
    Withheld {
        /// The device withholding.
        from: DeviceAddress,
        /// The group.
        group: GroupId,
        /// Why.
        reason: WithheldReason,
    },
}

/// Changes a device-list update brought, for the app to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A device joined an account (or was first seen).
    DeviceAdded(DeviceAddress),
    /// A device left an account (unlinked, or dropped after expiring); its session is gone.
    DeviceRemoved(DeviceAddress),
    /// A device id now carries another identity key: its session is gone; show a warning.
    IdentityChanged(DeviceAddress),
    /// This device is not in its own account's new list: it was unlinked or expired.
    ThisDeviceRemoved,
}
