//! The account role of a primary device, account creation, and a companion's side of linking.

use ratchetry::IdentityKeyPair;
use ratchetry::devices::{
    self, DeviceId, LinkApproval, LinkConfirmation, LinkInvitation, LinkRequest, PRIMARY_DEVICE,
};
use ratchetry::fanout;
use wasm_bindgen::prelude::*;

use crate::config::{self, JsAccountOptions, JsCompanionOptions, JsPrimaryPolicy};
use crate::convert::{JsLinkedCompanion, JsNewAccount, bytes, epoch, int_in, num, object, rng, ts};
use crate::device::Device;
use crate::error;
use crate::prekeys::upload;
use crate::records::{self, JsChanges, JsRecords};

#[wasm_bindgen(typescript_custom_section)]
const TS_PRIMARY: &'static str = r#"
/** A primary rebuilt from its records; `stale` when they were older than `lastEpoch`: `resync` before it signs. */
export interface RestoredPrimary { primary: Primary; stale: boolean }
"#;

#[wasm_bindgen]
extern "C" {
    /// `RestoredPrimary`.
    #[wasm_bindgen(typescript_type = "RestoredPrimary")]
    pub type JsRestoredPrimary;
}

/// The primary's account role: holds the account key, links companions, signs device lists.
/// Persist `takeChanges()` (or `toBytes()`) after every change, before publishing the new
/// list.
#[wasm_bindgen]
pub struct Primary {
    inner: devices::Primary,
}

/// Creates an account with a fresh account key and a primary device:
/// `{ primary, device, upload }` (`upload`: the device's first one-time prekeys, to publish).
/// `options` (all optional): the device's `config`, the primary's `policy`, and how many
/// one-time prekeys of each kind to make (`oneTimePrekeys`, default 20).
#[wasm_bindgen(js_name = createAccount)]
pub fn create_account(
    now: f64,
    options: Option<JsAccountOptions>,
) -> Result<JsNewAccount, JsValue> {
    let now = ts(now)?;
    let options = config::account_options(&options.map_or(JsValue::UNDEFINED, Into::into))?;
    let mut rng = rng()?;
    let identity = IdentityKeyPair::generate(&mut rng);
    let primary = devices::Primary::new(&mut rng, &identity, now, options.policy);
    let list = primary.device_list().clone();
    let (device, keys) = fanout::Device::new(
        &mut rng,
        now,
        identity,
        PRIMARY_DEVICE,
        list,
        options.one_time_prekeys,
        options.config,
    )
    .map_err(error::lib)?;
    Ok(JsValue::from(object(&[
        ("primary", Primary { inner: primary }.into()),
        ("device", Device::wrap(device).into()),
        ("upload", upload(&keys).into()),
    ]))
    .unchecked_into())
}

#[wasm_bindgen]
impl Primary {
    /// The policy this primary applies (its account part is signed into every list it signs),
    /// with every field present.
    pub fn policy(&self) -> JsPrimaryPolicy {
        let p = self.inner.policy();
        let account = object(&[
            ("maxCompanions", p.account.max_companions.into()),
            (
                "companionValidityMs",
                num(p.account.companion_validity_ms).into(),
            ),
        ]);
        JsValue::from(object(&[
            ("account", account.into()),
            (
                "linkInvitationValidityMs",
                num(p.link_invitation_validity_ms).into(),
            ),
        ]))
        .unchecked_into()
    }

    /// Restores a primary from `toBytes()`; `lastEpoch` as for devices (the epoch of the last
    /// unit written, kept apart from the bytes; if the app does not know it, use
    /// `Primary.restoreFromBackup`). A stale snapshot must `resync` before it signs
    /// (`needsResync()`).
    pub fn restore(bytes: &[u8], last_epoch: f64) -> Result<Primary, JsValue> {
        let (inner, _stale) =
            devices::Primary::restore(bytes, epoch(last_epoch)?).map_err(error::decode)?;
        Ok(Self { inner })
    }

    /// Restores a primary from bytes the app knows are a backup, or whose last epoch it does
    /// not know (a new phone, a copied profile): it signs nothing until `resync` gave it the
    /// newest list of its account, so it never signs a list the account already moved past
    /// (one naming a companion unlinked after the backup) nor issues a device id twice.
    #[wasm_bindgen(js_name = restoreFromBackup)]
    pub fn restore_from_backup(bytes: &[u8]) -> Result<Primary, JsValue> {
        let inner = devices::Primary::restore_from_backup(bytes).map_err(error::decode)?;
        Ok(Self { inner })
    }

    /// `fromRecords` for a store that was itself restored from a backup, or whose last epoch
    /// is unknown: the primary is restored as `restoreFromBackup` says; its next
    /// `takeChanges()` goes on from the records (and writes the meta record).
    #[wasm_bindgen(js_name = fromBackupRecords)]
    pub fn from_backup_records(records: JsRecords) -> Result<Primary, JsValue> {
        let records = records::records_in(&records)?;
        let inner = devices::Primary::from_records(records::pairs(&records))
            .map_err(error::decode)?
            .into_restored();
        Ok(Self { inner })
    }

    /// Rebuilds a primary from every stored record (as `takeChanges()` yielded them);
    /// `lastEpoch` is the epoch of the last unit written, kept where a restore of the store
    /// does not reach, so that a stale store is detected as `Primary.restore` detects a stale
    /// snapshot: `{ primary, stale }`, and a stale primary must `resync` before it signs
    /// (`needsResync()`). A store whose last epoch is unknown: `Primary.fromBackupRecords`.
    #[wasm_bindgen(js_name = fromRecords)]
    pub fn from_records(records: JsRecords, last_epoch: f64) -> Result<JsRestoredPrimary, JsValue> {
        let last_epoch = epoch(last_epoch)?;
        let records = records::records_in(&records)?;
        let (inner, stale) =
            devices::Primary::restore_from_records(records::pairs(&records), last_epoch)
                .map_err(error::decode)?;
        Ok(JsValue::from(object(&[
            ("primary", Self { inner }.into()),
            ("stale", stale.into()),
        ]))
        .unchecked_into())
    }

    /// What changed since the last call, as records to write in one transaction before
    /// publishing what the primary signed. The first call, and the first after a restore from
    /// bytes, holds every record and `replacesAll`.
    #[wasm_bindgen(js_name = takeChanges)]
    pub fn take_changes(&mut self) -> Result<JsChanges, JsValue> {
        let mut rng = rng()?;
        Ok(records::changes(
            "primary",
            self.inner.take_changes(&mut rng),
        ))
    }

    /// Whether changes are waiting for `takeChanges()`.
    #[wasm_bindgen(js_name = hasChanges)]
    pub fn has_changes(&self) -> bool {
        self.inner.has_changes()
    }

    /// The account key (32 bytes).
    #[wasm_bindgen(js_name = accountKey)]
    pub fn account_key(&self) -> Vec<u8> {
        self.inner.account().to_bytes().to_vec()
    }

    /// The current signed device list, to publish.
    #[wasm_bindgen(js_name = deviceList)]
    pub fn device_list(&self) -> Vec<u8> {
        self.inner.device_list().to_bytes()
    }

    /// The current list's version.
    #[wasm_bindgen(js_name = deviceListVersion)]
    pub fn device_list_version(&self) -> f64 {
        num(self.inner.device_list().version())
    }

    /// The state epoch.
    #[wasm_bindgen(js_name = stateEpoch)]
    pub fn state_epoch(&self) -> f64 {
        num(self.inner.state_epoch())
    }

    /// The whole state as bytes (secret).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }

    /// An invitation for one companion (show it as a QR code).
    pub fn invite(&mut self, now: f64) -> Result<Vec<u8>, JsValue> {
        let now = ts(now)?;
        let mut rng = rng()?;
        Ok(self
            .inner
            .invite(&mut rng, now)
            .map_err(error::device)?
            .to_bytes())
    }

    /// Approves a companion's request: a new list with it; returns the approval to send back.
    pub fn approve(&mut self, now: f64, request: &[u8]) -> Result<Vec<u8>, JsValue> {
        let request = LinkRequest::from_bytes(request).map_err(error::decode)?;
        Ok(self
            .inner
            .approve(ts(now)?, &request)
            .map_err(error::device)?
            .to_bytes())
    }

    /// Records the companion's confirmation; returns its device id.
    pub fn confirm(&mut self, confirmation: &[u8]) -> Result<u32, JsValue> {
        let confirmation = LinkConfirmation::from_bytes(confirmation).map_err(error::decode)?;
        Ok(self.inner.confirm(&confirmation).map_err(error::device)?.0)
    }

    /// Whether the companion `device` countersigned the list that admitted it (`confirm`).
    #[wasm_bindgen(js_name = isConfirmed)]
    pub fn is_confirmed(&self, device: f64) -> Result<bool, JsValue> {
        Ok(self.inner.is_confirmed(device_id(device)?))
    }

    /// Removes a companion; returns the new list to publish.
    pub fn unlink(&mut self, now: f64, device: f64) -> Result<Vec<u8>, JsValue> {
        Ok(self
            .inner
            .unlink(ts(now)?, device_id(device)?)
            .map_err(error::device)?
            .to_bytes())
    }

    /// Re-signs the list (renews the companions' validity); returns it.
    pub fn renew(&mut self, now: f64) -> Result<Vec<u8>, JsValue> {
        Ok(self
            .inner
            .renew(ts(now)?)
            .map_err(error::device)?
            .to_bytes())
    }

    /// Whether this primary was restored from a stale snapshot and must `resync` before it
    /// signs again.
    #[wasm_bindgen(js_name = needsResync)]
    pub fn needs_resync(&self) -> bool {
        self.inner.needs_resync()
    }

    /// After a stale restore: adopts the newest list of this account the app could fetch,
    /// skips far ahead in versions and device ids, and signs a list of this primary alone
    /// (companions link again); returns it, to publish.
    pub fn resync(&mut self, now: f64, newest: &[u8]) -> Result<Vec<u8>, JsValue> {
        let newest = devices::SignedDeviceList::from_bytes(newest).map_err(error::decode)?;
        Ok(self
            .inner
            .resync(ts(now)?, newest)
            .map_err(error::device)?
            .to_bytes())
    }
}

/// A web companion being linked: made from the primary's invitation (scanned from its QR
/// code), it holds the new device's identity until the approval arrives.
#[wasm_bindgen]
pub struct LinkingCompanion {
    identity: IdentityKeyPair,
    invitation: LinkInvitation,
}

#[wasm_bindgen]
impl LinkingCompanion {
    /// Starts linking from an invitation's bytes; makes the companion's identity key.
    #[wasm_bindgen(constructor)]
    pub fn new(invitation: &[u8]) -> Result<LinkingCompanion, JsValue> {
        let invitation = LinkInvitation::from_bytes(invitation).map_err(error::decode)?;
        let mut rng = rng()?;
        Ok(Self {
            identity: IdentityKeyPair::generate(&mut rng),
            invitation,
        })
    }

    /// The request to send to the primary.
    pub fn request(&self) -> Vec<u8> {
        LinkRequest::new(&self.identity, &self.invitation).to_bytes()
    }

    /// Checks the primary's approval and sets up the device:
    /// `{ device, confirmation, upload }` (`upload`: its first one-time prekeys, to publish).
    /// `options` (all optional): the device's `config` (whose `lists` limits also check the
    /// approval's list) and `oneTimePrekeys` (default 20).
    pub fn complete(
        &self,
        now: f64,
        approval: &[u8],
        options: Option<JsCompanionOptions>,
    ) -> Result<JsLinkedCompanion, JsValue> {
        let now = ts(now)?;
        let (config, one_time_prekeys) =
            config::companion_options(&options.map_or(JsValue::UNDEFINED, Into::into))?;
        let approval = LinkApproval::from_bytes(approval).map_err(error::decode)?;
        let (list, confirmation) =
            devices::complete_link(&self.identity, &self.invitation, &approval, &config.lists)
                .map_err(error::device)?;
        let mut rng = rng()?;
        let (device, keys) = fanout::Device::new(
            &mut rng,
            now,
            self.identity.clone(),
            approval.device,
            list,
            one_time_prekeys,
            config,
        )
        .map_err(error::lib)?;
        Ok(JsValue::from(object(&[
            ("device", Device::wrap(device).into()),
            ("confirmation", bytes(&confirmation.to_bytes())),
            ("upload", upload(&keys).into()),
        ]))
        .unchecked_into())
    }
}

/// A companion's device id from a JavaScript number (`convert::int_in`).
fn device_id(device: f64) -> Result<DeviceId, JsValue> {
    int_in(device, u32::MAX, "device must be a device id").map(DeviceId)
}
