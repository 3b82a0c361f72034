//! What the fanout layer hands back to the app: bytes to ship, messages to show, events.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use super::{EnvelopeId, MessageId, RetryRequest, SendId, WithheldReason};
use crate::calls::CallKeyMessage;
use crate::devices::{AccountKey, DeviceAddress, ListCoverage};
use crate::group::{GroupId, SenderKeyId};
use crate::history::HistoryOffer;

/// The result of a send. Loop until it is `Ready`: [`Device`](super::Device) shows how.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Outgoing {
    /// Everything is encrypted: persist the device's changes, then ship the outbox.
    Ready(Outbox),
    /// These devices have no session yet. Nothing changed: fetch their prekey bundles, pass
    /// them to [`Device::start_sessions`](super::Device::start_sessions), and send again.
    NeedBundles(Vec<DeviceAddress>),
    /// No device list is held for these accounts. Nothing changed: fetch their lists, pass
    /// them to [`Device::update_device_list`](super::Device::update_device_list), and send
    /// again.
    NeedDeviceLists(Vec<AccountKey>),
}

/// Envelopes to deliver.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outbox {
    /// For a message (1:1 or group) or a call key: its id in this device's sent journal. Store
    /// the body (for a call key, which call it was) under it: a device that cannot read the
    /// envelope asks for it again by this id.
    pub send_id: Option<SendId>,
    /// For a message (1:1 or group): its id, the same that every device reading it reports on
    /// [`Received`] (the recipients', this account's other devices, and on a resend). Refer to
    /// the message by it (edits, reactions, receipts).
    pub message_id: Option<MessageId>,
    /// One envelope per recipient device (pairwise-encrypted).
    pub envelopes: Vec<(DeviceAddress, Vec<u8>)>,
    /// For a group send: the one group envelope, and every device it must reach, in address
    /// order. The list is shared with the group's kept reach: a steady send to 3,000 devices
    /// hands it out without copying it.
    pub group: Option<(Vec<u8>, Arc<[DeviceAddress]>)>,
    /// For a message (1:1 or group): the device list each account it reaches in full was
    /// encrypted for (the recipients' accounts and this one's, for its own copies), in account
    /// order. Hand it
    /// to the relay with the envelopes: a relay that serves a newer list refuses the batch
    /// ([`check_coverage`](crate::server::check_coverage)); fetch that list, pass it to
    /// [`Device::update_device_list`](super::Device::update_device_list), call
    /// [`Device::not_delivered`](super::Device::not_delivered), and send again. A group send
    /// shares it with the group's kept reach, as it does the recipients.
    pub coverage: Arc<[ListCoverage]>,
}

impl Outbox {
    /// Every device this outbox reaches, pairwise or through the group envelope, each once, in
    /// address order: what the relay checks the coverage against.
    pub fn recipients(&self) -> Vec<DeviceAddress> {
        let mut all: Vec<DeviceAddress> = self.envelopes.iter().map(|(d, _)| *d).collect();
        if let Some((_, devices)) = &self.group {
            all.extend_from_slice(devices);
        }
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// A message this device read.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A 1:1 message to this account.
    Direct {
        /// The sending device.
        from: DeviceAddress,
        /// The message's id, the same on every device and in the sender's outbox.
        id: MessageId,
        /// The text or app payload.
        body: Vec<u8>,
        /// For a message resent on this device's request: the id of the envelope it replaces
        /// (the one this device could not read; its genuine copy, if it comes, is a
        /// `Duplicate`). `id` is the message's own, as on every other device.
        resent: Option<EnvelopeId>,
    },
    /// A copy of a message another device of this account sent, to show in its conversation.
    OwnCopy {
        /// The device of this account that sent it.
        from: DeviceAddress,
        /// The account it was sent to: the conversation.
        sent_to: AccountKey,
        /// The message's id, the same on every device and in the sender's outbox.
        id: MessageId,
        /// The text or app payload.
        body: Vec<u8>,
        /// For a message resent on this device's request: the id of the envelope it replaces
        /// (the one this device could not read; its genuine copy, if it comes, is a
        /// `Duplicate`). `id` is the message's own, as on every other device.
        resent: Option<EnvelopeId>,
    },
    /// A group message.
    Group {
        /// The sending device.
        from: DeviceAddress,
        /// The group.
        group: GroupId,
        /// The message's id, the same on every device and in the sender's outbox.
        id: MessageId,
        /// The text or app payload.
        body: Vec<u8>,
        /// For a message resent on this device's request: the id of the group envelope it
        /// replaces (its genuine copy is then a `Duplicate`). `id` is the message's own.
        resent: Option<EnvelopeId>,
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
    /// A call's key for an epoch, from `from` (a resend answering this device's retry request
    /// carries the call's current epoch): for a call not held yet,
    /// [`Call::from_key_message`](crate::calls::Call::from_key_message); for a held call,
    /// [`Call::apply`](crate::calls::Call::apply), and on `CallKeyAhead`
    /// [`Call::catch_up`](crate::calls::Call::catch_up), passing `from`.
    CallKey {
        /// The device that sent it.
        from: DeviceAddress,
        /// The key message.
        message: CallKeyMessage,
    },
    /// Another device of this account offers its history: fetch the sealed chunks and open
    /// them with [`HistoryOpener`](crate::history::HistoryOpener). Until this device's app
    /// sets or forgets a group itself, the newest offer's groups are this device's: the groups
    /// it names that this device did not hold are installed with their members (see
    /// [`Device::group_members`](super::Device::group_members)), and the groups an earlier
    /// offer installed take its members, or are left if it no longer names them. An offer
    /// made no later than one applied (the relay held it back), or stamped more than
    /// [`OWN_LIST_CLOCK_ALLOWANCE_MS`](super::OWN_LIST_CLOCK_ALLOWANCE_MS) after this
    /// device's clock, changes no group.
    HistoryOffer {
        /// The device of this account that sealed it.
        from: DeviceAddress,
        /// The offer.
        offer: HistoryOffer,
        /// The groups it changed, ascending: installed or given new members (this device
        /// sends to them and accepts their members' sender keys and messages), or left
        /// (`group_members` is `None`). Empty for an older offer, and once this device's app
        /// has set or forgotten a group itself (its app owns its groups then).
        groups: Vec<GroupId>,
    },
    /// A device that was a recipient of a message from this one could not read it and asks
    /// for it again: look up the body stored under `request.send_id` and call
    /// [`Device::answer_retry`](super::Device::answer_retry).
    RetryRequest(RetryRequest),
    /// `from` withholds its group key from this device.
    Withheld {
        /// The device withholding.
        from: DeviceAddress,
        /// The group.
        group: GroupId,
        /// The generation of `from`'s sender key withheld: its messages are refused with
        /// `FanoutError::Withheld` (those of another generation whose key is missing with
        /// `SenderKeyMissing`).
        key_id: SenderKeyId,
        /// Why.
        reason: WithheldReason,
    },
}

/// Bodies are the user's messages: `Debug` shows their length only.
impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Direct {
                from,
                id,
                body,
                resent,
            } => f
                .debug_struct("Direct")
                .field("from", from)
                .field("id", id)
                .field("body_len", &body.len())
                .field("resent", resent)
                .finish(),
            Self::OwnCopy {
                from,
                sent_to,
                id,
                body,
                resent,
            } => f
                .debug_struct("OwnCopy")
                .field("from", from)
                .field("sent_to", sent_to)
                .field("id", id)
                .field("body_len", &body.len())
                .field("resent", resent)
                .finish(),
            Self::Group {
                from,
                group,
                id,
                body,
                resent,
            } => f
                .debug_struct("Group")
                .field("from", from)
                .field("group", group)
                .field("id", id)
                .field("body_len", &body.len())
                .field("resent", resent)
                .finish(),
            Self::SenderKey {
                from,
                group,
                key_id,
            } => f
                .debug_struct("SenderKey")
                .field("from", from)
                .field("group", group)
                .field("key_id", key_id)
                .finish(),
            Self::CallKey { from, message } => f
                .debug_struct("CallKey")
                .field("from", from)
                .field("message", message)
                .finish(),
            Self::HistoryOffer {
                from,
                offer,
                groups,
            } => f
                .debug_struct("HistoryOffer")
                .field("from", from)
                .field("offer", offer)
                .field("groups", groups)
                .finish(),
            Self::RetryRequest(r) => f.debug_tuple("RetryRequest").field(r).finish(),
            Self::Withheld {
                from,
                group,
                key_id,
                reason,
            } => f
                .debug_struct("Withheld")
                .field("from", from)
                .field("group", group)
                .field("key_id", key_id)
                .field("reason", reason)
                .finish(),
        }
    }
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
    /// This device is not in its own account's new list (unlinked, or its id now carries
    /// another identity key): it neither sends nor reads again, and must link anew.
    ThisDeviceRemoved,
    /// Its own account's new list names this device, expired: it neither sends nor reads
    /// (`ThisDeviceExpired`) until a newer list renews it. Not an unlink: keep what it is sent.
    ThisDeviceExpired,
}
