//! A device of an account: the object an app holds, feeds bytes and `now`, and persists.

use std::sync::{Arc, Mutex};

use ratchetry::PreKeyBundle;
use ratchetry::fanout::{self, SendId};
use ratchetry::history::HistoryOffer;

use crate::calls::{Call, addresses};
use crate::error::RatchetryError;
use crate::types::{
    self, Address, BundleFor, Changes, DeviceEvent, Envelope, Outgoing, Received, RetryRequest,
    address_in, address_out, retry_reason, rng, ts, withheld_reason,
};

/// One device (a primary's or a companion's). Every method is transactional: on error nothing
/// changed. After a call that changed it, persist [`take_changes`](Self::take_changes) or
/// [`to_bytes`](Self::to_bytes) before shipping what it returned.
#[derive(uniffi::Object)]
pub struct Device {
    pub(crate) inner: Mutex<fanout::Device>,
    /// Units `SqliteStore::persist` took from this device and SQLite did not write (busy,
    /// full): written first by its next `persist` of this device. Kept with the device, not
    /// the store, so that no other device's persist writes them.
    pub(crate) unpersisted: Mutex<Vec<ratchetry::fanout::StateChanges>>,
}

/// The library's redacted `Debug` (address, counts; never keys).
impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.lock() {
            Ok(d) => d.fmt(f),
            Err(_) => f.write_str("Device(<poisoned>)"),
        }
    }
}

impl Device {
    pub(crate) fn wrap(device: fanout::Device) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(device),
            unpersisted: Mutex::new(Vec::new()),
        })
    }
}

/// A device restored from bytes.
#[derive(uniffi::Record)]
pub struct RestoredDevice {
    /// The device.
    pub device: Arc<Device>,
    /// Whether the bytes were older than `last_epoch`: the device was restored as from a
    /// backup and will re-key before it sends.
    pub from_backup: bool,
}

/// Restores a device from [`Device::to_bytes`]; `last_epoch` is the epoch of the state last
/// persisted (`Changes.epoch` of the last unit written, kept apart from the bytes), so that a
/// stale snapshot is detected and never reuses a key. Bytes whose last epoch the app does not
/// know (a backup, a copied profile) go to [`restore_device_from_backup`]: a `last_epoch` of 0
/// detects nothing.
/// `now` is the restore's time: a device restored from a backup awaits an own device list
/// issued since before it talks to its own account (`awaiting_own_list`).
#[uniffi::export]
pub fn restore_device(
    bytes: Vec<u8>,
    last_epoch: u64,
    now: u64,
) -> Result<RestoredDevice, RatchetryError> {
    let (device, from_backup) = fanout::Device::restore(&bytes, last_epoch, ts(now))?;
    Ok(RestoredDevice {
        device: Device::wrap(device),
        from_backup,
    })
}

/// Restores a device from bytes the app knows are a backup (a new phone, a reinstall): its
/// sessions' sending chains and its sender keys are renewed, and it awaits an own device list
/// issued at or after `now` before it talks to its own account (`awaiting_own_list`).
#[uniffi::export]
pub fn restore_device_from_backup(bytes: Vec<u8>, now: u64) -> Result<Arc<Device>, RatchetryError> {
    Ok(Device::wrap(fanout::Device::restore_from_backup(
        &bytes,
        ts(now),
    )?))
}

#[uniffi::export]
impl Device {
    /// Rebuilds a device from every stored record (as [`take_changes`](Self::take_changes)
    /// yielded them).
    #[uniffi::constructor]
    pub fn from_records(records: Vec<types::StoredRecord>) -> Result<Arc<Self>, RatchetryError> {
        Ok(Self::wrap(fanout::Device::from_records(pairs(&records))?))
    }

    /// Rebuilds a device from the records of a store that was itself restored from a backup:
    /// as [`restore_device_from_backup`], it renews its sending chains and sender keys and
    /// awaits an own device list issued at or after `now`.
    #[uniffi::constructor]
    pub fn from_backup_records(
        records: Vec<types::StoredRecord>,
        now: u64,
    ) -> Result<Arc<Self>, RatchetryError> {
        let device = fanout::Device::from_records(pairs(&records))?;
        Ok(Self::wrap(device.into_restored(ts(now))))
    }

    /// Whether changes are waiting for [`take_changes`](Self::take_changes), or units a
    /// `SqliteStore` took and could not write yet: persist again before acting.
    pub fn has_changes(&self) -> Result<bool, RatchetryError> {
        let device = self.inner.lock()?;
        Ok(device.has_changes() || !self.unpersisted.lock()?.is_empty())
    }

    /// This device's address.
    pub fn address(&self) -> Result<Address, RatchetryError> {
        Ok(address_out(self.inner.lock()?.address()))
    }

    /// This device's identity key (32 bytes).
    pub fn identity_key(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.identity_key().to_bytes().to_vec())
    }

    /// A prekey bundle to publish (no one-time prekey; the last-resort ML-KEM prekey).
    pub fn prekey_bundle(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.bundle(None, None).to_bytes())
    }

    /// The state epoch (grows with every change).
    pub fn state_epoch(&self) -> Result<u64, RatchetryError> {
        Ok(self.inner.lock()?.state_epoch())
    }

    /// Whether this device was restored from a backup and waits for an own device list issued
    /// since (fetch it and pass it to `update_device_list`).
    pub fn awaiting_own_list(&self) -> Result<bool, RatchetryError> {
        Ok(self.inner.lock()?.awaiting_own_list())
    }

    /// Makes a new signed prekey and a new last-resort ML-KEM prekey current: do it regularly
    /// (for example weekly), then publish [`prekey_bundle`](Self::prekey_bundle) again.
    /// Earlier ones stay accepted for a while, so sessions started in between still open.
    pub fn rotate_signed_prekey(&self, now: u64) -> Result<(), RatchetryError> {
        let mut rng = rng()?;
        self.inner.lock()?.rotate_signed_prekey(&mut rng, ts(now));
        Ok(())
    }

    /// The post-quantum ratchet's epoch in the current session with `device`, or `None` if
    /// there is none or it does not run the ratchet.
    pub fn pq_ratchet_epoch(&self, device: Address) -> Result<Option<u32>, RatchetryError> {
        let device = address_in(&device)?;
        Ok(self.inner.lock()?.pq_ratchet_epoch(&device))
    }

    /// The devices whose current session does not run the post-quantum ratchet: after
    /// enabling it, and now and then, fetch their bundles and pass them to
    /// [`start_sessions`](Self::start_sessions); a bundle of a device that runs it moves the
    /// pair onto the ratchet.
    pub fn sessions_without_pq_ratchet(&self) -> Result<Vec<Address>, RatchetryError> {
        Ok(self
            .inner
            .lock()?
            .sessions_without_pq_ratchet()
            .into_iter()
            .map(address_out)
            .collect())
    }

    /// The whole state as bytes (secret): restore with [`restore_device`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.to_bytes().to_vec())
    }

    /// What changed since the last call, as records to write in one transaction.
    pub fn take_changes(&self) -> Result<Changes, RatchetryError> {
        let mut rng = rng()?;
        Ok(self.inner.lock()?.take_changes(&mut rng).into())
    }

    /// The version of the device list held for `account`, if any.
    pub fn device_list_version(&self, account: Vec<u8>) -> Result<Option<u64>, RatchetryError> {
        let account = types::account(&account)?;
        Ok(self
            .inner
            .lock()?
            .device_list(&account)
            .map(|l| l.version()))
    }

    /// Accepts a signed device list for `account` (a contact's, or this account's own after
    /// the primary linked or unlinked a device). Returns what changed.
    pub fn update_device_list(
        &self,
        now: u64,
        account: Vec<u8>,
        list: Vec<u8>,
    ) -> Result<Vec<DeviceEvent>, RatchetryError> {
        let account = types::account(&account)?;
        let list = ratchetry::devices::SignedDeviceList::from_bytes(&list)?;
        let events = self
            .inner
            .lock()?
            .update_device_list(ts(now), &account, list)?;
        Ok(events.into_iter().map(DeviceEvent::from).collect())
    }

    /// Sets a group's member accounts (the app's group state; this account may be included).
    /// More than `MAX_GROUP_MEMBERS` (4,096) others fail with `fanout.too_many_members`, and
    /// nothing changes.
    pub fn set_group_members(
        &self,
        group: Vec<u8>,
        members: Vec<Vec<u8>>,
    ) -> Result<(), RatchetryError> {
        let group = types::group(&group)?;
        let members = members
            .iter()
            .map(|m| types::account(m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.inner.lock()?.set_group_members(group, &members)?)
    }

    /// Creates sessions from the prekey bundles fetched for [`Outgoing::NeedBundles`].
    pub fn start_sessions(&self, now: u64, bundles: Vec<BundleFor>) -> Result<(), RatchetryError> {
        let bundles = bundles
            .iter()
            .map(|b| Ok((address_in(&b.device)?, PreKeyBundle::from_bytes(&b.bundle)?)))
            .collect::<Result<Vec<_>, RatchetryError>>()?;
        let mut rng = rng()?;
        self.inner
            .lock()?
            .start_sessions(&mut rng, ts(now), &bundles)?;
        Ok(())
    }

    /// Sends `body` to every device of `to`'s account and this account's other devices.
    pub fn send(&self, now: u64, to: Vec<u8>, body: Vec<u8>) -> Result<Outgoing, RatchetryError> {
        let mut device = self.inner.lock()?;
        let to = types::account_for(&device, &to)?;
        let mut rng = rng()?;
        Ok(device.send(&mut rng, ts(now), &to, &body)?.into())
    }

    /// Sends `body` to a group whose members were set with
    /// [`set_group_members`](Self::set_group_members).
    pub fn send_group(
        &self,
        now: u64,
        group: Vec<u8>,
        body: Vec<u8>,
    ) -> Result<Outgoing, RatchetryError> {
        let group = types::group(&group)?;
        let mut rng = rng()?;
        Ok(self
            .inner
            .lock()?
            .send_group(&mut rng, ts(now), group, &body)?
            .into())
    }

    /// Sends `body` to a group as `send_group` does, but gives the sender key to none of the
    /// `withheld` member devices (the group envelope still reaches them). None is ever given a
    /// generation withheld from it: one holding the current key makes it rotate, and so does a
    /// later send that no longer names it. Each named with a reason is told, once per key
    /// generation and reason, in the same outbox (it receives `Received.Withheld`); one without
    /// is not.
    /// A device that is not a member device: `fanout.not_a_group_device`.
    pub fn send_group_withholding(
        &self,
        now: u64,
        group: Vec<u8>,
        body: Vec<u8>,
        withheld: Vec<types::WithheldDevice>,
    ) -> Result<Outgoing, RatchetryError> {
        let group = types::group(&group)?;
        let withheld = withheld
            .iter()
            .map(|w| Ok((address_in(&w.device)?, w.reason.map(withheld_reason))))
            .collect::<Result<Vec<_>, RatchetryError>>()?;
        let mut rng = rng()?;
        Ok(self
            .inner
            .lock()?
            .send_group_withholding(&mut rng, ts(now), group, &body, &withheld)?
            .into())
    }

    /// Sends a history offer (from [`HistorySealer`](crate::HistorySealer)) to another device
    /// of this account.
    pub fn send_history_offer(
        &self,
        now: u64,
        device: u32,
        offer: Vec<u8>,
    ) -> Result<Outgoing, RatchetryError> {
        let offer = HistoryOffer::from_bytes(&offer)?;
        let mut guard = self.inner.lock()?;
        let to = ratchetry::devices::DeviceAddress {
            account: guard.address().account,
            device: ratchetry::devices::DeviceId(device),
        };
        let mut rng = rng()?;
        Ok(guard
            .send_history_offer(&mut rng, ts(now), to, &offer)?
            .into())
    }

    /// Reads one envelope.
    pub fn receive(&self, now: u64, envelope: Vec<u8>) -> Result<Received, RatchetryError> {
        Ok(self.inner.lock()?.receive(ts(now), &envelope)?.into())
    }

    /// Asks the sender of `failed` (an envelope this device could not read) to send it again.
    /// `reason`: 1 no session, 2 authentication failed, 3 sender key missing, 4 restored from
    /// backup, other values the app's own. Returns the request envelope and its recipient.
    pub fn request_retry(
        &self,
        now: u64,
        failed: Vec<u8>,
        reason: u8,
    ) -> Result<Envelope, RatchetryError> {
        let mut rng = rng()?;
        let (to, bytes) =
            self.inner
                .lock()?
                .request_retry(&mut rng, ts(now), &failed, retry_reason(reason))?;
        Ok(Envelope {
            to: address_out(to),
            bytes,
        })
    }

    /// Answers a retry request with the body stored under its `send_id`.
    pub fn answer_retry(
        &self,
        now: u64,
        request: Arc<RetryRequest>,
        body: Vec<u8>,
    ) -> Result<Outgoing, RatchetryError> {
        let mut rng = rng()?;
        Ok(self
            .inner
            .lock()?
            .answer_retry(&mut rng, ts(now), &request.inner, &body)?
            .into())
    }

    /// One-time prekeys made for upload and not yet consumed: replenish with
    /// [`generate_one_time_prekeys`](Self::generate_one_time_prekeys) when low.
    pub fn one_time_prekeys_remaining(&self) -> Result<u64, RatchetryError> {
        Ok(self.inner.lock()?.one_time_prekeys_remaining() as u64)
    }

    /// One-time ML-KEM prekeys made for upload and not yet consumed.
    pub fn one_time_kem_prekeys_remaining(&self) -> Result<u64, RatchetryError> {
        Ok(self.inner.lock()?.one_time_kem_prekeys_remaining() as u64)
    }

    /// Sessions the current last-resort ML-KEM prekey started (rotate well before the
    /// configured bound).
    pub fn last_resort_uses(&self) -> Result<u32, RatchetryError> {
        Ok(self.inner.lock()?.last_resort_uses())
    }

    /// Sessions the current signed prekey accepted (every account's share its budget):
    /// rotate well before the configured `max_sessions_per_signed_prekey`.
    pub fn signed_prekey_sessions(&self) -> Result<u32, RatchetryError> {
        Ok(self.inner.lock()?.signed_prekey_sessions())
    }

    /// When the current signed prekey was made (Unix ms): rotate on the app's schedule
    /// counted from here.
    pub fn signed_prekey_created_at(&self) -> Result<u64, RatchetryError> {
        Ok(self.inner.lock()?.signed_prekey_created_at().0)
    }

    /// New one-time prekeys, `count` of each kind (X25519 and ML-KEM) within the configured
    /// caps: the upload's bytes, for the relay's `PublishedPreKeys.add`. Persist first.
    pub fn generate_one_time_prekeys(
        &self,
        now: u64,
        count: u32,
    ) -> Result<Vec<u8>, RatchetryError> {
        let mut rng = rng()?;
        Ok(self
            .inner
            .lock()?
            .generate_one_time_prekeys(&mut rng, ts(now), count)
            .to_bytes())
    }

    /// The accounts whose device lists this device follows (its own included), as account
    /// keys.
    pub fn accounts(&self) -> Result<Vec<Vec<u8>>, RatchetryError> {
        Ok(self
            .inner
            .lock()?
            .accounts()
            .map(|a| a.to_bytes().to_vec())
            .collect())
    }

    /// Whether a pairwise session with `device` exists.
    pub fn has_session(&self, device: Address) -> Result<bool, RatchetryError> {
        let device = address_in(&device)?;
        Ok(self.inner.lock()?.has_session(&device))
    }

    /// The devices whose current session is classical (migrated from before PQXDH): the next
    /// send to one of them asks for its bundle and starts a PQXDH session.
    pub fn classical_sessions(&self) -> Result<Vec<Address>, RatchetryError> {
        Ok(self
            .inner
            .lock()?
            .classical_sessions()
            .into_iter()
            .map(address_out)
            .collect())
    }

    /// Forgets an account: its list, its devices' sessions and sender keys, and the retries
    /// pending with them (this device's own account: nothing happens). Groups whose sender
    /// key one of its devices held rotate at their next send. The list's mark stays: followed
    /// again, the account is refused a list older than the one forgotten.
    pub fn forget_account(&self, account: Vec<u8>) -> Result<(), RatchetryError> {
        let account = types::account(&account)?;
        self.inner.lock()?.forget_account(&account);
        Ok(())
    }

    /// The groups set on this device (or installed from a history offer), in id order.
    pub fn groups(&self) -> Result<Vec<Vec<u8>>, RatchetryError> {
        Ok(self.inner.lock()?.groups().map(|g| g.0.to_vec()).collect())
    }

    /// The groups held at a restore from a backup whose members the app has not set since:
    /// nothing is sent to them or read from them (`fanout.group_unconfirmed`) until
    /// `set_group_members` sets them, in id order.
    pub fn unconfirmed_groups(&self) -> Result<Vec<Vec<u8>>, RatchetryError> {
        Ok(self
            .inner
            .lock()?
            .unconfirmed_groups()
            .map(|g| g.0.to_vec())
            .collect())
    }

    /// The member accounts of `group` (without this device's own account), or none if the
    /// group is not set here.
    pub fn group_members(&self, group: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, RatchetryError> {
        let group = types::group(&group)?;
        Ok(self
            .inner
            .lock()?
            .group_members(group)
            .map(|members| members.map(|a| a.to_bytes().to_vec()).collect()))
    }

    /// Leaves `group`: its members, this device's sender key and ledger, and every sender key
    /// received for it are deleted.
    pub fn forget_group(&self, group: Vec<u8>) -> Result<(), RatchetryError> {
        let group = types::group(&group)?;
        self.inner.lock()?.forget_group(group);
        Ok(())
    }

    /// Tells this device that the outbox of `send_id` did not reach `devices` (the relay
    /// refused the batch, or these envelopes of it): keys given to them there no longer count
    /// as held, and they cannot ask for the message again. Then persist, fetch what the relay
    /// asked for, and send again. A send no longer held: `fanout.unknown_message`.
    pub fn not_delivered(&self, send_id: u64, devices: Vec<Address>) -> Result<(), RatchetryError> {
        let devices = addresses(&devices)?;
        self.inner
            .lock()?
            .not_delivered(SendId(send_id), &devices)?;
        Ok(())
    }

    /// Sends `call`'s current key message to `devices` (for a 1:1 call: the callee's devices
    /// and this account's other devices; for a group call: the participants). Keep which call
    /// it was under the outbox's `send_id`, to answer a retry request with
    /// [`answer_call_key_retry`](Self::answer_call_key_retry).
    pub fn send_call_key(
        &self,
        now: u64,
        devices: Vec<Address>,
        call: Arc<Call>,
    ) -> Result<Outgoing, RatchetryError> {
        let devices = addresses(&devices)?;
        let message = call.with(|c| c.key_message().clone())?;
        let mut rng = rng()?;
        Ok(self
            .inner
            .lock()?
            .send_call_key(&mut rng, ts(now), &devices, &message)?
            .into())
    }

    /// Answers a retry request for a call key message this device sent (its `send_id` is a
    /// `send_call_key` outbox's) with `call` as it is now: its current key message, for the
    /// requester alone. Refused: another call (`fanout.body_mismatch`), not managed here
    /// (`sync.not_call_manager`), older than the epoch sent (`sync.stale_call_key`), the
    /// requester removed since (`sync.not_in_call`).
    pub fn answer_call_key_retry(
        &self,
        now: u64,
        request: Arc<RetryRequest>,
        call: Arc<Call>,
    ) -> Result<Outgoing, RatchetryError> {
        let call = call.with(Clone::clone)?;
        let mut rng = rng()?;
        Ok(self
            .inner
            .lock()?
            .answer_call_key_retry(&mut rng, ts(now), &request.inner, &call)?
            .into())
    }
}

/// The (key, value) pairs of stored records; a record without a value is not stored.
fn pairs(records: &[types::StoredRecord]) -> impl Iterator<Item = (&[u8], &[u8])> {
    records
        .iter()
        .filter_map(|r| r.value.as_deref().map(|v| (r.key.as_slice(), v)))
}
