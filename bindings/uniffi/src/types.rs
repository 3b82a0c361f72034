//! The plain data that crosses the boundary, and its conversions from and to the library's
//! types. Keys, ids and envelopes cross as bytes; `now` as Unix milliseconds.

use std::sync::Arc;

use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;
use ratchetry::Timestamp;
use ratchetry::devices::{AccountKey, DeviceAddress, DeviceId};
use ratchetry::fanout::{self, Event};
use ratchetry::group::GroupId;

use crate::calls::CallKeyMessage;
use crate::error::RatchetryError;

/// A device of an account. Compared, hashed and ordered by value in every language (Rust's
/// `Eq`, `Hash` and `Ord`, exported: a Kotlin data class would otherwise compare its
/// `ByteArray` by identity), so it can key a map or a set.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, uniffi::Record)]
#[uniffi::export(Debug, Eq, Hash, Ord)]
pub struct Address {
    /// The account key (32 bytes).
    pub account: Vec<u8>,
    /// The device id within the account (the primary is 1).
    pub device: u32,
}

/// The account key in hex (public) and the device id.
impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address(")?;
        for b in &self.account {
            write!(f, "{b:02x}")?;
        }
        write!(f, "#{})", self.device)
    }
}

/// The device list one account's part of a send was encrypted for: hand an outbox's coverage
/// to the relay with its envelopes (`ServedLists.check_coverage`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ListCoverage {
    /// The account key (32 bytes).
    pub account: Vec<u8>,
    /// The list version the sender held.
    pub version: u64,
    /// The digest of that list (32 bytes).
    pub digest: Vec<u8>,
}

/// A member device a group send withholds its sender key from, and why: `reason` 1 blocked,
/// 2 unverified, other values the app's own (1 and 2 only as named); none: the device is not
/// told (its bundle may never verify).
#[derive(Clone, Debug, uniffi::Record)]
pub struct WithheldDevice {
    /// The device.
    pub device: Address,
    /// The reason it is told, if it is told.
    pub reason: Option<u8>,
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
    /// For a message (1:1 or group): its id (16 bytes), the same that every device reading it
    /// reports on `Received` (and on a resend). Refer to the message by it.
    pub message_id: Option<Vec<u8>>,
    /// Pairwise envelopes, one per device.
    pub envelopes: Vec<Envelope>,
    /// For a group send: the group envelope.
    pub group: Option<GroupEnvelope>,
    /// For a message: the device list each account it reaches in full was encrypted for. The
    /// relay checks it (`ServedLists.check_coverage`) and refuses a batch made under a stale
    /// list: then fetch that list, `update_device_list`, `not_delivered`, and send again.
    pub coverage: Vec<ListCoverage>,
    /// Every device this outbox reaches (pairwise or through the group envelope), each once, in
    /// address order: what the relay checks the coverage against.
    pub recipients: Vec<Address>,
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

    /// Why the device asks, as `Device.request_retry` takes it: 1 no session, 2 authentication
    /// failed, 3 sender key missing, 4 restored from backup, other values the app's own.
    pub fn reason(&self) -> u8 {
        retry_reason_code(self.inner.reason)
    }

    /// The request as bytes, to keep an unanswered one across a restart (with the device's
    /// state: `answer_retry` checks the requester's entitlement again from the journal).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }

    /// A request kept with [`to_bytes`](Self::to_bytes).
    #[uniffi::constructor]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, RatchetryError> {
        Ok(Arc::new(Self {
            inner: fanout::RetryRequest::from_bytes(&bytes)?,
        }))
    }
}

/// A retry reason's code (the library's wire code).
pub(crate) fn retry_reason_code(reason: fanout::RetryReason) -> u8 {
    use fanout::RetryReason as R;
    match reason {
        R::NoSession => 1,
        R::AuthenticationFailed => 2,
        R::SenderKeyMissing => 3,
        R::RestoredFromBackup => 4,
        R::Other(n) => n,
        _ => 0,
    }
}

/// A retry reason from its code: 1 no session, 2 authentication failed, 3 sender key
/// missing, 4 restored from backup, other values the app's own.
pub(crate) fn retry_reason(code: u8) -> fanout::RetryReason {
    use fanout::RetryReason as R;
    match code {
        1 => R::NoSession,
        2 => R::AuthenticationFailed,
        3 => R::SenderKeyMissing,
        4 => R::RestoredFromBackup,
        n => R::Other(n),
    }
}

/// A withholding reason's code: 1 blocked, 2 unverified, other values the app's own.
pub(crate) fn withheld_code(reason: fanout::WithheldReason) -> u8 {
    use fanout::WithheldReason as W;
    match reason {
        W::Blocked => 1,
        W::Unverified => 2,
        W::Other(n) => n,
        _ => 0,
    }
}

/// A withholding reason from its code.
pub(crate) fn withheld_reason(code: u8) -> fanout::WithheldReason {
    use fanout::WithheldReason as W;
    match code {
        1 => W::Blocked,
        2 => W::Unverified,
        n => W::Other(n),
    }
}

/// What a received envelope was. Its `Debug` (exported: Kotlin's `toString()`, Python's `repr`)
/// shows the kind, the sender and the ids, never the plaintext or a key.
#[derive(uniffi::Enum)]
#[uniffi::export(Debug, Display)]
pub enum Received {
    /// A 1:1 message to this account.
    Direct {
        /// The sending device.
        sender: Address,
        /// The message's id (16 bytes), the same on every device and in the sender's outbox.
        id: Vec<u8>,
        /// The body.
        body: Vec<u8>,
        /// For a message resent on this device's request: the id of the envelope it replaces
        /// (`envelope_id` of the one this device could not read); none otherwise.
        resent: Option<Vec<u8>>,
    },
    /// A copy of a message another device of this account sent to `sent_to`.
    OwnCopy {
        /// The device of this account that sent it.
        sender: Address,
        /// The conversation's account key.
        sent_to: Vec<u8>,
        /// The message's id (16 bytes).
        id: Vec<u8>,
        /// The body.
        body: Vec<u8>,
        /// For a resent message: the id of the envelope it replaces.
        resent: Option<Vec<u8>>,
    },
    /// A group message.
    Group {
        /// The sending device.
        sender: Address,
        /// The group id (32 bytes).
        group: Vec<u8>,
        /// The message's id (16 bytes).
        id: Vec<u8>,
        /// The body.
        body: Vec<u8>,
        /// For a resent message: the id of the group envelope it replaces.
        resent: Option<Vec<u8>>,
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
        /// The app's data the sealer attached (`HistorySealer.finish`'s `app_data`; empty if
        /// none).
        app_data: Vec<u8>,
        /// The groups it changed, ascending: installed or given new members (this device can
        /// now send to them), or left (`Device.group_members` is null). Empty for an offer
        /// older than the last one applied, and once this device's app has set or forgotten a
        /// group itself.
        groups: Vec<Vec<u8>>,
    },
    /// A call's key for an epoch: for a call not held yet, `Call.from_key_message`; for a held
    /// call, `Call.apply` (and on `sync.call_key_ahead`, `Call.catch_up`), passing `sender`.
    CallKey {
        /// The sender (the call's manager, if genuine).
        sender: Address,
        /// The key message (secret; printing it shows no key).
        message: Arc<CallKeyMessage>,
    },
    /// A device asks for a message again.
    RetryRequest {
        /// The request.
        request: Arc<RetryRequest>,
    },
    /// `from` withholds a generation of its group key from this device: its group messages
    /// under `key_id` fail with `fanout.withheld`.
    Withheld {
        /// The device withholding.
        sender: Address,
        /// The group id.
        group: Vec<u8>,
        /// The sender key generation withheld.
        key_id: u32,
        /// Why: 1 blocked, 2 unverified, other values the sender's app's own.
        reason: u8,
    },
    /// Something this binding version does not know yet (read and committed).
    Other,
}

/// Bodies and offers print their length only; a call key message its redacted `Debug`.
impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = |f: &mut std::fmt::Formatter<'_>,
                       kind,
                       sender: &Address,
                       id: &[u8],
                       len: usize,
                       resent: &Option<Vec<u8>>| {
            f.debug_struct(kind)
                .field("sender", sender)
                .field("id", &Hex(id))
                .field("len", &len)
                .field("resent", &resent.as_deref().map(Hex))
                .finish_non_exhaustive()
        };
        match self {
            Self::Direct {
                sender,
                id,
                body,
                resent,
            } => message(f, "Direct", sender, id, body.len(), resent),
            Self::OwnCopy {
                sender,
                id,
                body,
                resent,
                ..
            } => message(f, "OwnCopy", sender, id, body.len(), resent),
            Self::Group {
                sender,
                id,
                body,
                resent,
                ..
            } => message(f, "Group", sender, id, body.len(), resent),
            Self::HistoryOffer {
                sender,
                offer,
                app_data,
                groups,
            } => f
                .debug_struct("HistoryOffer")
                .field("sender", sender)
                .field("len", &offer.len())
                .field("app_data_len", &app_data.len())
                .field("groups", &groups.len())
                .finish_non_exhaustive(),
            Self::CallKey { sender, message } => f
                .debug_struct("CallKey")
                .field("sender", sender)
                .field("message", &**message)
                .finish(),
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
                .field("reason", &request.reason())
                .finish(),
            Self::Withheld {
                sender,
                key_id,
                reason,
                ..
            } => f
                .debug_struct("Withheld")
                .field("sender", sender)
                .field("key_id", key_id)
                .field("reason", reason)
                .finish_non_exhaustive(),
            Self::Other => f.write_str("Other"),
        }
    }
}

/// Public ids in hex.
struct Hex<'a>(&'a [u8]);

impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
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
    /// This device is no longer in its own account's list (unlinked): it must link again.
    ThisDeviceRemoved,
    /// Its own account's list names this device, expired: it waits for a renewal (errors
    /// `fanout.this_device_expired`); keep what it is sent.
    ThisDeviceExpired,
    /// An event this binding version does not know yet.
    Other,
}

/// One stored record: write `value` under `key`, or delete `key` when `value` is absent.
/// Its redacted `Debug` is exported (Kotlin's `toString()`, Python's `repr`).
#[derive(Clone, uniffi::Record)]
#[uniffi::export(Debug, Display)]
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

/// Whose records a [`Changes`] unit holds: a device's and a primary's go to separate stores
/// (the library keeps them apart as two types; a binding's store checks this field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum StateRole {
    /// A device's records (`Device.take_changes`).
    Device,
    /// A primary's records (`Primary.take_changes`).
    Primary,
}

/// What one operation changed: write it in one transaction.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Changes {
    /// Whose records these are: write them only to that state's store (a primary's unit
    /// written over a device's records, or the reverse, loses the state).
    pub role: StateRole,
    /// Whether these records replace everything stored (delete the rest first).
    pub replaces_all: bool,
    /// The epoch the changes start from: the `epoch` of the previous changes taken from the
    /// same state (or the epoch it was loaded at, from records or bytes); `None` only when
    /// they replace all of a new or restored state (write them whatever is stored). A store
    /// holding another epoch lacks changes that were never written: refuse these, load from
    /// the store again and redo. Changes that replace all and have a base (a state loaded
    /// from bytes) go where nothing is stored, or where exactly their base is.
    pub base_epoch: Option<u64>,
    /// The tag (16 bytes) of the changes these start from, `None` exactly when `base_epoch` is.
    /// Keep the last `tag` written beside the epoch, and refuse changes whose `base_tag` is not
    /// it: another live copy of the state (an app extension, a second process) wrote since.
    pub base_tag: Option<Vec<u8>>,
    /// The state epoch after the changes (keep the last one written for `restore_device`).
    pub epoch: u64,
    /// These changes' tag (16 bytes): random for changes with records, the base's if empty.
    pub tag: Vec<u8>,
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

/// The key of an account, found among those `device` follows when it can be (a lookup), else
/// parsed and checked (curve arithmetic that costs most of a native 1:1 send).
pub(crate) fn account_for(
    device: &ratchetry::fanout::Device,
    bytes: &[u8],
) -> Result<AccountKey, RatchetryError> {
    match <&[u8; 32]>::try_from(bytes)
        .ok()
        .and_then(|b| device.followed_account(b))
    {
        Some(key) => Ok(key),
        None => account(bytes),
    }
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

impl From<fanout::Outbox> for Outbox {
    fn from(outbox: fanout::Outbox) -> Self {
        let recipients = outbox.recipients().into_iter().map(address_out).collect();
        Self {
            send_id: outbox.send_id.map(|s| s.0),
            message_id: outbox.message_id.map(|m| m.0.to_vec()),
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
                recipients: to.iter().copied().map(address_out).collect(),
            }),
            coverage: outbox.coverage.iter().map(coverage_out).collect(),
            recipients,
        }
    }
}

/// A coverage entry in its binding form.
pub(crate) fn coverage_out(c: &ratchetry::devices::ListCoverage) -> ListCoverage {
    ListCoverage {
        account: c.account.to_bytes().to_vec(),
        version: c.version,
        digest: c.digest.to_vec(),
    }
}

/// A coverage entry from its binding form.
pub(crate) fn coverage_in(
    c: &ListCoverage,
) -> Result<ratchetry::devices::ListCoverage, RatchetryError> {
    Ok(ratchetry::devices::ListCoverage {
        account: account(&c.account)?,
        version: c.version,
        digest: c.digest.as_slice().try_into().map_err(|_| {
            RatchetryError::binding("binding.bad_length", "a list digest is 32 bytes")
        })?,
    })
}

impl From<fanout::Outgoing> for Outgoing {
    fn from(o: fanout::Outgoing) -> Self {
        match o {
            fanout::Outgoing::Ready(outbox) => Self::Ready {
                outbox: outbox.into(),
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
        let resent = |r: Option<fanout::EnvelopeId>| r.map(|e| e.0.to_vec());
        match r {
            R::Direct {
                from,
                id,
                body,
                resent: r,
            } => Self::Direct {
                sender: address_out(from),
                id: id.0.to_vec(),
                body,
                resent: resent(r),
            },
            R::OwnCopy {
                from,
                sent_to,
                id,
                body,
                resent: r,
            } => Self::OwnCopy {
                sender: address_out(from),
                sent_to: sent_to.to_bytes().to_vec(),
                id: id.0.to_vec(),
                body,
                resent: resent(r),
            },
            R::Group {
                from,
                group,
                id,
                body,
                resent: r,
            } => Self::Group {
                sender: address_out(from),
                group: group.0.to_vec(),
                id: id.0.to_vec(),
                body,
                resent: resent(r),
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
            R::HistoryOffer {
                from,
                offer,
                groups,
            } => Self::HistoryOffer {
                sender: address_out(from),
                app_data: offer.app_data().to_vec(),
                offer: offer.to_bytes().to_vec(),
                groups: groups.into_iter().map(|g| g.0.to_vec()).collect(),
            },
            R::CallKey { from, message } => Self::CallKey {
                sender: address_out(from),
                message: Arc::new(CallKeyMessage { inner: message }),
            },
            R::RetryRequest(inner) => Self::RetryRequest {
                request: Arc::new(RetryRequest { inner }),
            },
            R::Withheld {
                from,
                group,
                key_id,
                reason,
            } => Self::Withheld {
                sender: address_out(from),
                group: group.0.to_vec(),
                key_id: key_id.0,
                reason: withheld_code(reason),
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
            Event::ThisDeviceExpired => Self::ThisDeviceExpired,
            _ => Self::Other,
        }
    }
}

impl From<ratchetry::persist::Changes<ratchetry::persist::DeviceState>> for Changes {
    fn from(c: ratchetry::persist::Changes<ratchetry::persist::DeviceState>) -> Self {
        changes_out(StateRole::Device, &c)
    }
}

impl From<ratchetry::persist::Changes<ratchetry::persist::PrimaryState>> for Changes {
    fn from(c: ratchetry::persist::Changes<ratchetry::persist::PrimaryState>) -> Self {
        changes_out(StateRole::Primary, &c)
    }
}

fn changes_out<S>(role: StateRole, c: &ratchetry::persist::Changes<S>) -> Changes {
    Changes {
        role,
        replaces_all: c.replaces_all(),
        base_epoch: c.base_epoch(),
        base_tag: c.base_tag().map(|t| t.to_bytes().to_vec()),
        epoch: c.epoch(),
        tag: c.tag().to_bytes().to_vec(),
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

/// The same redacted text as `Debug`: Python's `str()` of a record or enum prints every field
/// unless `Display` is exported.
impl std::fmt::Display for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The same redacted text as `Debug`: Python's `str()` of a record or enum prints every field
/// unless `Display` is exported.
impl std::fmt::Display for StoredRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
