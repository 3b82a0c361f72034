//! A device of an account: the object a page holds, feeds bytes and `now`, and persists.

use ratchetry::PreKeyBundle;
use ratchetry::devices::{DeviceAddress, DeviceId, SignedDeviceList};
use ratchetry::fanout;
use wasm_bindgen::prelude::*;

use crate::convert::{
    self, JsAddress, JsAddresses, JsBundles, JsByteArrays, JsEvents, JsOutgoing, JsReceived,
    JsRestoredDevice, JsRetryEnvelope, account, epoch, num, object, rng, ts,
};
use crate::error;
use crate::history::HistoryOffer;
use crate::records::{self, JsChanges, JsRecords};

/// One device (a web companion, or in a demo a simulated phone's). Every method is
/// transactional: when it throws, nothing changed. After a call that changed it, persist
/// `takeChanges()` or `toBytes()` before shipping what it returned.
#[wasm_bindgen]
pub struct Device {
    pub(crate) inner: fanout::Device,
}

impl Device {
    pub(crate) fn wrap(inner: fanout::Device) -> Self {
        Self { inner }
    }
}

#[wasm_bindgen]
impl Device {
    /// Restores a device from `toBytes()`; `lastEpoch` is the epoch of the state last
    /// persisted (the `epoch` of the last unit written, kept apart from the bytes), so that a
    /// stale snapshot is detected (`fromBackup`) and never reuses a key. Bytes whose last
    /// epoch the app does not know go to `Device.restoreFromBackup`: 0 detects nothing.
    /// `now` is the restore's time: a device restored from a backup awaits an own device list
    /// issued since before it talks to its own account (`awaitingOwnList`).
    pub fn restore(bytes: &[u8], last_epoch: f64, now: f64) -> Result<JsRestoredDevice, JsValue> {
        let (device, from_backup) =
            fanout::Device::restore(bytes, epoch(last_epoch)?, ts(now)?).map_err(error::lib)?;
        Ok(JsValue::from(object(&[
            ("device", Self::wrap(device).into()),
            ("fromBackup", from_backup.into()),
        ]))
        .unchecked_into())
    }

    /// Rebuilds a device from every stored record (as `takeChanges()` yielded them).
    #[wasm_bindgen(js_name = fromRecords)]
    pub fn from_records(records: JsRecords) -> Result<Device, JsValue> {
        let records = records::records_in(&records)?;
        let device =
            fanout::Device::from_records(records::pairs(&records)).map_err(error::decode)?;
        Ok(Self::wrap(device))
    }

    /// For an app whose stored bytes may be older than the state it last had and that kept
    /// no epoch to tell (a copied profile, an old backup): restores as `restore` does a stale
    /// snapshot. Every session starts a new sending chain, every own sender key rotates at its
    /// next send, and until it holds an own device list issued since `now` it talks to no
    /// device of its own account (`awaitingOwnList`).
    #[wasm_bindgen(js_name = restoreFromBackup)]
    pub fn restore_from_backup(bytes: &[u8], now: f64) -> Result<Device, JsValue> {
        let now = ts(now)?;
        let device = fanout::Device::restore_from_backup(bytes, now).map_err(error::lib)?;
        Ok(Self::wrap(device))
    }

    /// `fromRecords` for an app whose record store itself was restored from a backup: the
    /// device is restored as `restoreFromBackup` says, and its next `takeChanges()` replaces
    /// every record.
    #[wasm_bindgen(js_name = fromBackupRecords)]
    pub fn from_backup_records(records: JsRecords, now: f64) -> Result<Device, JsValue> {
        let now = ts(now)?;
        let records = records::records_in(&records)?;
        let device =
            fanout::Device::from_records(records::pairs(&records)).map_err(error::decode)?;
        Ok(Self::wrap(device.into_restored(now)))
    }

    /// This device's address.
    pub fn address(&self) -> JsAddress {
        convert::address_out(self.inner.address()).unchecked_into()
    }

    /// This device's identity key (32 bytes).
    #[wasm_bindgen(js_name = identityKey)]
    pub fn identity_key(&self) -> Vec<u8> {
        self.inner.identity_key().to_bytes().to_vec()
    }

    /// The state epoch (grows with every change).
    #[wasm_bindgen(js_name = stateEpoch)]
    pub fn state_epoch(&self) -> f64 {
        num(self.inner.state_epoch())
    }

    /// Whether this device was restored from a backup and waits for an own device list issued
    /// since (fetch it and pass it to `updateDeviceList`).
    #[wasm_bindgen(js_name = awaitingOwnList)]
    pub fn awaiting_own_list(&self) -> bool {
        self.inner.awaiting_own_list()
    }

    /// Makes a new signed prekey and a new last-resort ML-KEM prekey current: do it regularly
    /// (for example weekly), then publish `prekeyBundle()` again. Earlier ones stay accepted
    /// for a while, so sessions started in between still open.
    #[wasm_bindgen(js_name = rotateSignedPrekey)]
    pub fn rotate_signed_prekey(&mut self, now: f64) -> Result<(), JsValue> {
        let now = ts(now)?;
        let mut rng = rng()?;
        self.inner.rotate_signed_prekey(&mut rng, now);
        Ok(())
    }

    /// The post-quantum ratchet's epoch in the current session with `device`, or `undefined`
    /// if there is none or it does not run the ratchet.
    #[wasm_bindgen(js_name = pqRatchetEpoch)]
    pub fn pq_ratchet_epoch(&self, device: JsAddress) -> Result<Option<u32>, JsValue> {
        let device = convert::address_in(&device)?;
        Ok(self.inner.pq_ratchet_epoch(&device))
    }

    /// The devices whose current session does not run the post-quantum ratchet: after
    /// enabling it, and now and then, fetch their bundles and pass them to `startSessions`;
    /// a bundle of a device that runs it moves the pair onto the ratchet.
    #[wasm_bindgen(js_name = sessionsWithoutPqRatchet)]
    pub fn sessions_without_pq_ratchet(&self) -> JsAddresses {
        let list: js_sys::Array = self
            .inner
            .sessions_without_pq_ratchet()
            .into_iter()
            .map(convert::address_out)
            .collect();
        JsValue::from(list).unchecked_into()
    }

    /// The whole state as bytes (secret): restore with `Device.restore`.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }

    /// Whether anything changed since the last `takeChanges()`.
    #[wasm_bindgen(js_name = hasChanges)]
    pub fn has_changes(&self) -> bool {
        self.inner.has_changes()
    }

    /// What changed since the last call, as records to write in one transaction.
    #[wasm_bindgen(js_name = takeChanges)]
    pub fn take_changes(&mut self) -> Result<JsChanges, JsValue> {
        let mut rng = rng()?;
        Ok(records::changes(
            "device",
            self.inner.take_changes(&mut rng),
        ))
    }

    /// The version of the device list held for `account`, if any.
    #[wasm_bindgen(js_name = deviceListVersion)]
    pub fn device_list_version(&self, account: &[u8]) -> Result<Option<f64>, JsValue> {
        let account = convert::account(account)?;
        Ok(self.inner.device_list(&account).map(|l| num(l.version())))
    }

    /// Accepts a signed device list for `account` (a contact's, or this account's own after
    /// the primary linked or unlinked a device). Returns what changed.
    #[wasm_bindgen(js_name = updateDeviceList)]
    pub fn update_device_list(
        &mut self,
        now: f64,
        account: &[u8],
        list: &[u8],
    ) -> Result<JsEvents, JsValue> {
        let account = convert::account(account)?;
        let list = SignedDeviceList::from_bytes(list).map_err(error::decode)?;
        let events = self
            .inner
            .update_device_list(ts(now)?, &account, list)
            .map_err(error::lib)?;
        Ok(convert::events(events))
    }

    /// Sets a group's member accounts (the app's group state; this account may be included).
    /// More than 4,096 others throw `fanout.too_many_members`, and nothing changes.
    #[wasm_bindgen(js_name = setGroupMembers)]
    pub fn set_group_members(
        &mut self,
        group: &[u8],
        members: JsByteArrays,
    ) -> Result<(), JsValue> {
        let group = convert::group(group)?;
        let members = convert::byte_arrays(&members)?
            .iter()
            .map(|m| account(m))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner
            .set_group_members(group, &members)
            .map_err(error::lib)
    }

    /// Creates sessions from the prekey bundles fetched for a `needBundles` outcome.
    #[wasm_bindgen(js_name = startSessions)]
    pub fn start_sessions(&mut self, now: f64, bundles: JsBundles) -> Result<(), JsValue> {
        let bundles = convert::bundles_in(&bundles)?
            .into_iter()
            .map(|(a, b)| Ok((a, PreKeyBundle::from_bytes(&b).map_err(error::decode)?)))
            .collect::<Result<Vec<_>, JsValue>>()?;
        let mut rng = rng()?;
        self.inner
            .start_sessions(&mut rng, ts(now)?, &bundles)
            .map_err(error::lib)
    }

    /// Sends `body` to every device of `to`'s account and this account's other devices.
    pub fn send(&mut self, now: f64, to: &[u8], body: &[u8]) -> Result<JsOutgoing, JsValue> {
        let to = convert::account_for(&self.inner, to)?;
        let mut rng = rng()?;
        let out = self
            .inner
            .send(&mut rng, ts(now)?, &to, body)
            .map_err(error::lib)?;
        Ok(convert::outgoing(out))
    }

    /// Sends `body` to a group whose members were set with `setGroupMembers`.
    #[wasm_bindgen(js_name = sendGroup)]
    pub fn send_group(
        &mut self,
        now: f64,
        group: &[u8],
        body: &[u8],
    ) -> Result<JsOutgoing, JsValue> {
        let group = convert::group(group)?;
        let mut rng = rng()?;
        let out = self
            .inner
            .send_group(&mut rng, ts(now)?, group, body)
            .map_err(error::lib)?;
        Ok(convert::outgoing(out))
    }

    /// Sends a history offer (a `HistorySealer`'s) to another device of this account.
    #[wasm_bindgen(js_name = sendHistoryOffer)]
    pub fn send_history_offer(
        &mut self,
        now: f64,
        device: f64,
        offer: &HistoryOffer,
    ) -> Result<JsOutgoing, JsValue> {
        let to = DeviceAddress {
            account: self.inner.address().account,
            device: DeviceId(convert::int_in(
                device,
                u32::MAX,
                "device must be a device id",
            )?),
        };
        let mut rng = rng()?;
        let out = self
            .inner
            .send_history_offer(&mut rng, ts(now)?, to, &offer.inner)
            .map_err(error::lib)?;
        Ok(convert::outgoing(out))
    }

    /// Reads one envelope.
    pub fn receive(&mut self, now: f64, envelope: &[u8]) -> Result<JsReceived, JsValue> {
        let received = self.inner.receive(ts(now)?, envelope).map_err(error::lib)?;
        Ok(convert::received(received))
    }

    /// Asks the sender of `failed` (an envelope this device could not read) to send it again.
    /// `reason`: 1 no session, 2 authentication failed, 3 sender key missing, 4 restored from
    /// backup, other values the app's own. Returns `{ to, bytes }`: ship `bytes` to `to`.
    #[wasm_bindgen(js_name = requestRetry)]
    pub fn request_retry(
        &mut self,
        now: f64,
        failed: &[u8],
        reason: f64,
    ) -> Result<JsRetryEnvelope, JsValue> {
        let reason = convert::int_in(reason, u8::MAX.into(), "reason must be from 0 to 255")?;
        let now = ts(now)?;
        let mut rng = rng()?;
        let (to, bytes) = self
            .inner
            .request_retry(&mut rng, now, failed, crate::retry::reason(reason as u8))
            .map_err(error::lib)?;
        Ok(JsValue::from(object(&[
            ("to", convert::address_out(to)),
            ("bytes", convert::bytes(&bytes)),
        ]))
        .unchecked_into())
    }

    /// Answers a retry request with the body the app stored under its `sendId`.
    #[wasm_bindgen(js_name = answerRetry)]
    pub fn answer_retry(
        &mut self,
        now: f64,
        request: &crate::RetryRequest,
        body: &[u8],
    ) -> Result<JsOutgoing, JsValue> {
        let now = ts(now)?;
        let mut rng = rng()?;
        let out = self
            .inner
            .answer_retry(&mut rng, now, &request.inner, body)
            .map_err(error::lib)?;
        Ok(convert::outgoing(out))
    }
}
