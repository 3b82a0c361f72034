//! The plain data that crosses the boundary, and its conversions from and to the library's
//! types. Keys, ids and envelopes cross as bytes; `now` as Unix milliseconds.

use std::sync::Arc;

use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;
use ratchetry::Timestamp;
use ratchetry::devices::{AccountKey, DeviceAddress, DeviceId};
use ratchetry::fanout::{self, Event};
use ratchetry::group::GroupId;

use crate::error::RatchetryError;

/// A device of an account.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Address {
    /// The account key (32 bytes).
    pub account: Vec<u8>,
    /// The device id within the account (the primary is 1).
    pub device: u32,
}

/// A prekey bundle fetched for a device named in [`Outgoing::NeedBundles`].
#[derive(Clone, Debug, uniffi::Record)]
pub struct BundleFor {
    /// The device.
    pub device: Address,
    /// Its bundle's bytes (as `Device.prekey_bundle` made them).
    pub bundle: Vec<u8>,
}

/// One pairwise envelope for one device.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Envelope {
    /// The recipient device.
    pub to: Address,
    /// The envelope's bytes.
    pub bytes: Vec<u8>,
}

/// The one envelope of a group send and every device it must reach.
#[derive(Clone, Debug, uniffi::Record)]
pub struct GroupEnvelope {
    /// The envelope's bytes.
    pub bytes: Vec<u8>,
    /// The recipient devices.
    pub recipients: Vec<Address>,
}

/// Envelopes to deliver. Persist the device first, then ship them.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Outbox {
    /// For a message: its id in the sender's sent journal (store the body under it, for
    /// retries).
    pub send_id: Option<u64>,
    /// Pairwise envelopes, one per device.
    pub envelopes: Vec<Envelope>,
    /// For a group send: the group envelope.
    pub group: Option<GroupEnvelope>,
}

/// The result of a send.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum Outgoing {
    /// Sent: ship the outbox.
    Ready {
        /// What to ship.
        outbox: Outbox,
    },
    /// Nothing changed: fetch these devices' prekey bundles, call `start_sessions`, send again.
    NeedBundles {
        /// The devices.
        devices: Vec<Address>,
    },
    /// Nothing changed: fetch these accounts' device lists, call `update_device_list`, send
    /// again.
    NeedDeviceLists {
        /// The account keys.
        accounts: Vec<Vec<u8>>,
    },
}

/// A retry request another device sent: answer it with `Device.answer_retry` and the body
/// stored under `send_id`.
#[derive(Debug, uniffi::Object)]
pub struct RetryRequest {
    pub(crate) inner: fanout::RetryRequest,
}

#[uniffi::export]
impl RetryRequest {
    /// The device asking.
    pub fn sender(&self) -> Address {
        address_out(self.inner.from)
    }

    /// The message asked for, as the send's outbox named it.
    pub fn send_id(&self) -> u64 {
        self.inner.send_id.0
    }

    /// Which answer this would be (1 for the first).
    pub fn attempt(&self) -> u8 {
        self.inner.attempt
    }
}

/// What a received envelope was. Its `Debug` (exported: Kotlin's `toString()`, Python's `repr`)
/// shows the kind and the sender, never the plaintext or a key.
#[derive(uniffi::Enum)]
#[uniffi::export(Debug)]
pub enum Received {
    /// A 1:1 message to this account.
    Direct {
        /// The sending device.
        sender: Address,
        /// The body.
        body: Vec<u8>,
    },
    /// A copy of a message another device of this account sent to `sent_to`.
    OwnCopy {
        /// The device of this account that sent it.
        sender: Address,
        /// The conversation's account key.
        sent_to: Vec<u8>,
        /// The body.
        body: Vec<u8>,
    },
    /// A group message.
    Group {
        /// The sending device.
        sender: Address,
        /// The group id (32 bytes).
        group: Vec<u8>,
        /// The body.
        body: Vec<u8>,
    },
    /// A sender key: `sender`'s group messages in `group` can now be read.
    SenderKey {
        /// Whose key.
        sender: Address,
        /// The group id.
        group: Vec<u8>,
        /// The key's generation.
        key_id: u32,
    },
    /// A history offer from another device of this account: open the chunks with a
    /// `HistoryOpener` made from `offer`.
    HistoryOffer {
        /// The device that sealed the history.
        sender: Address,
        /// The offer's bytes (secret: it holds the key to the chunks).
        offer: Vec<u8>,
    },
    /// A call key message (its bytes, for `ratchetry::calls`).
    CallKey {
        /// The sender.
        sender: Address,
        /// The key message's bytes (secret).
        message: Vec<u8>,
    },
    /// A device asks for a message again.
    RetryRequest {
        /// The request.
        request: Arc<RetryRequest>,
    },
    /// `from` withholds its group key from this device.
    Withheld {
        /// The device withholding.
        sender: Address,
        /// The group id.
        group: Vec<u8>,
    },
    /// Something this binding version does not know yet (read and committed).
    Other,
}

/// Bodies, offers and call keys print their length only.
impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with_len = |f: &mut std::fmt::Formatter<'_>, kind, sender: &Address, len: usize| {
            f.debug_struct(kind)
                .field("sender", sender)
                .field("len", &len)
                .finish_non_exhaustive()
        };
        match self {
            Self::Direct { sender, body } => with_len(f, "Direct", sender, body.len()),
            Self::OwnCopy { sender, body, .. } => with_len(f, "OwnCopy", sender, body.len()),
            Self::Group { sender, body, .. } => with_len(f, "Group", sender, body.len()),
            Self::HistoryOffer { sender, offer } => {
                with_len(f, "HistoryOffer", sender, offer.len())
            }
            Self::CallKey { sender, message } => with_len(f, "CallKey", sender, message.len()),
            Self::SenderKey { sender, key_id, .. } => f
                .debug_struct("SenderKey")
                .field("sender", sender)
                .field("key_id", key_id)
                .finish_non_exhaustive(),
            Self::RetryRequest { request } => f
                .debug_struct("RetryRequest")
                .field("sender", &request.sender())
                .field("send_id", &request.send_id())
                .field("attempt", &request.attempt())
                .finish(),
            Self::Withheld { sender, .. } => f
                .debug_struct("Withheld")
                .field("sender", sender)
                .finish_non_exhaustive(),
            Self::Other => f.write_str("Other"),
        }
    }
}

/// A change a device-list update brought.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DeviceEvent {
    /// A device joined an account (or was first seen).
    DeviceAdded {
        /// The device.
        device: Address,
    },
    /// A device left an account; its sessions are gone.
    DeviceRemoved {
        /// The device.
        device: Address,
    },
    /// A device id now has another identity key: show a warning.
    IdentityChanged {
        /// The device.
        device: Address,
    },
    /// This device is no longer in its own account's list.
    ThisDeviceRemoved,
    /// An event this binding version does not know yet.
    Other,
}

/// One stored record: write `value` under `key`, or delete `key` when `value` is absent.
/// Its redacted `Debug` is exported (Kotlin's `toString()`, Python's `repr`).
#[derive(Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct StoredRecord {
    /// The record's key.
    pub key: Vec<u8>,
    /// The record's value (secret), or none to delete.
    pub value: Option<Vec<u8>>,
}

/// Records print their key length and whether they hold a value, never the bytes.
impl std::fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRecord")
            .field("key_len", &self.key.len())
            .field("has_value", &self.value.is_some())
            .finish()
    }
}

/// What one operation changed: write it in one transaction.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Changes {
    /// Whether these records replace everything stored (delete the rest first).
    pub replaces_all: bool,
    /// The state epoch after the changes (keep the last one written for `restore_device`).
    pub epoch: u64,
    /// The records.
    pub records: Vec<StoredRecord>,
}

/// The operating system's RNG, checked first so that a failing source is an error, not a panic
/// inside the library.
pub(crate) fn rng() -> Result<UnwrapErr<SysRng>, RatchetryError> {
    let mut probe = [0u8; 1];
    getrandom::fill(&mut probe)
        .map_err(|_| RatchetryError::binding("binding.rng_unavailable", "no system randomness"))?;
    Ok(UnwrapErr(SysRng))
}

/// `now` in Unix milliseconds.
pub(crate) fn ts(now: u64) -> Timestamp {
    Timestamp(now)
}

/// An account key from 32 bytes.
pub(crate) fn account(bytes: &[u8]) -> Result<AccountKey, RatchetryError> {
    let array: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| RatchetryError::binding("binding.bad_length", "an account key is 32 bytes"))?;
    Ok(AccountKey::from_bytes(array)?)
}

/// A group id from 32 bytes.
pub(crate) fn group(bytes: &[u8]) -> Result<GroupId, RatchetryError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| RatchetryError::binding("binding.bad_length", "a group id is 32 bytes"))?;
    Ok(GroupId(array))
}

/// A device address from its binding form.
pub(crate) fn address_in(a: &Address) -> Result<DeviceAddress, RatchetryError> {
    Ok(DeviceAddress {
        account: account(&a.account)?,
        device: DeviceId(a.device),
    })
}

/// A device address in its binding form.
pub(crate) fn address_out(a: DeviceAddress) -> Address {
    Address {
        account: a.account.to_bytes().to_vec(),
        device: a.device.0,
    }
}

impl From<fanout::Outgoing> for Outgoing {
    fn from(o: fanout::Outgoing) -> Self {
        match o {
            fanout::Outgoing::Ready(outbox) => Self::Ready {
                outbox: Outbox {
                    send_id: outbox.send_id.map(|s| s.0),
                    envelopes: outbox
                        .envelopes
                        .into_iter()
                        .map(|(to, bytes)| Envelope {
                            to: address_out(to),
                            bytes,
                        })
                        .collect(),
                    group: outbox.group.map(|(bytes, to)| GroupEnvelope {
                        bytes,
                        recipients: to.into_iter().map(address_out).collect(),
                    }),
                },
            },
            fanout::Outgoing::NeedBundles(devices) => Self::NeedBundles {
                devices: devices.into_iter().map(address_out).collect(),
            },
            fanout::Outgoing::NeedDeviceLists(accounts) => Self::NeedDeviceLists {
                accounts: accounts.iter().map(|a| a.to_bytes().to_vec()).collect(),
            },
        }
    }
}

impl From<fanout::Received> for Received {
    fn from(r: fanout::Received) -> Self {
        use fanout::Received as R;
        match r {
            R::Direct { from, body, .. } => Self::Direct {
                sender: address_out(from),
                body,
            },
            R::OwnCopy {
                from,
                sent_to,
                body,
                ..
            } => Self::OwnCopy {
                sender: address_out(from),
                sent_to: sent_to.to_bytes().to_vec(),
                body,
            },
            R::Group {
                from, group, body, ..
            } => Self::Group {
                sender: address_out(from),
                group: group.0.to_vec(),
                body,
            },
            R::SenderKey {
                from,
                group,
                key_id,
            } => Self::SenderKey {
                sender: address_out(from),
                group: group.0.to_vec(),
                key_id: key_id.0,
            },
            R::HistoryOffer { from, offer, .. } => Self::HistoryOffer {
                sender: address_out(from),
                offer: offer.to_bytes().to_vec(),
            },
            R::CallKey { from, message } => Self::CallKey {
                sender: address_out(from),
                message: message.to_bytes().to_vec(),
            },
            R::RetryRequest(inner) => Self::RetryRequest {
                request: Arc::new(RetryRequest { inner }),
            },
            R::Withheld { from, group, .. } => Self::Withheld {
                sender: address_out(from),
                group: group.0.to_vec(),
            },
            _ => Self::Other,
        }
    }
}

impl From<Event> for DeviceEvent {
    fn from(e: Event) -> Self {
        match e {
            Event::DeviceAdded(a) => Self::DeviceAdded {
                device: address_out(a),
            },
            Event::DeviceRemoved(a) => Self::DeviceRemoved {
                device: address_out(a),
            },
            Event::IdentityChanged(a) => Self::IdentityChanged {
                device: address_out(a),
            },
            Event::ThisDeviceRemoved => Self::ThisDeviceRemoved,
            _ => Self::Other,
        }
    }
}

impl From<fanout::StateChanges> for Changes {
    fn from(c: fanout::StateChanges) -> Self {
        Self {
            replaces_all: c.replaces_all(),
            epoch: c.epoch(),
            records: c
                .records()
                .iter()
                .map(|r| StoredRecord {
                    key: r.key().to_vec(),
                    value: r.value().map(<[u8]>::to_vec),
                })
                .collect(),
        }
    }
}
