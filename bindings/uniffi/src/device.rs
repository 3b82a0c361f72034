//! A device of an account: the object an app holds, feeds bytes and `now`, and persists.

use std::sync::{Arc, Mutex};

use ratchetry::fanout::{self, DeviceConfig};
use ratchetry::history::HistoryOffer;
use ratchetry::{PreKeyBundle, fanout::RetryReason};

use crate::error::RatchetryError;
use crate::types::{
    self, Address, BundleFor, Changes, DeviceEvent, Envelope, Outgoing, Received, RetryRequest,
    address_in, address_out, rng, ts,
};

/// One device (a primary's or a companion's). Every method is transactional: on error nothing
/// changed. After a call that changed it, persist [`take_changes`](Self::take_changes) or
/// [`to_bytes`](Self::to_bytes) before shipping what it returned.
#[derive(uniffi::Object)]
pub struct Device {
    inner: Mutex<fanout::Device>,
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
/// persisted (0 if unknown), so that a stale snapshot is detected and never reuses a key.
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

#[uniffi::export]
impl Device {
    /// Rebuilds a device from every stored record (as [`take_changes`](Self::take_changes)
    /// yielded them).
    #[uniffi::constructor]
    pub fn from_records(records: Vec<types::StoredRecord>) -> Result<Arc<Self>, RatchetryError> {
        let pairs = records
            .iter()
            .filter_map(|r| r.value.as_deref().map(|v| (r.key.as_slice(), v)));
        Ok(Self::wrap(fanout::Device::from_records(pairs)?))
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

    /// Opts this device into the post-quantum ratchet (PROTOCOL.md 25), one-way, and rotates
    /// so that [`prekey_bundle`](Self::prekey_bundle) says so at once: publish it again.
    /// Sessions other devices start with this one then run the ratchet; for sessions already
    /// held, see [`sessions_without_pq_ratchet`](Self::sessions_without_pq_ratchet).
    pub fn enable_pq_ratchet(&self, now: u64) -> Result<(), RatchetryError> {
        let mut rng = rng()?;
        let mut device = self.inner.lock()?;
        device.enable_pq_ratchet();
        device.rotate_signed_prekey(&mut rng, ts(now));
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
        Ok(self.inner.lock()?.take_changes().into())
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
        self.inner.lock()?.set_group_members(group, &members);
        Ok(())
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
        let to = types::account(&to)?;
        let mut rng = rng()?;
        Ok(self
            .inner
            .lock()?
            .send(&mut rng, ts(now), &to, &body)?
            .into())
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
        let reason = match reason {
            1 => RetryReason::NoSession,
            2 => RetryReason::AuthenticationFailed,
            3 => RetryReason::SenderKeyMissing,
            4 => RetryReason::RestoredFromBackup,
            n => RetryReason::Other(n),
        };
        let mut rng = rng()?;
        let (to, bytes) = self
            .inner
            .lock()?
            .request_retry(&mut rng, ts(now), &failed, reason)?;
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
}

/// Default device settings for devices the bindings create.
pub(crate) fn config() -> DeviceConfig {
    DeviceConfig::default()
}
