//! The account role of a primary device, account creation, and a companion's side of linking.

use std::sync::{Arc, Mutex};

use ratchetry::IdentityKeyPair;
use ratchetry::devices::{
    self, DeviceId, LinkApproval, LinkConfirmation, LinkInvitation, LinkRequest, PRIMARY_DEVICE,
};
use ratchetry::fanout;

use crate::config::{DeviceConfig, PrimaryPolicy, device_config};
use crate::device::Device;
use crate::error::RatchetryError;
use crate::types::{Changes, StoredRecord, rng, ts};

/// One-time prekeys of each kind a new device makes.
const ONE_TIME_PREKEYS: u32 = 20;

/// The primary's account role: holds the account key, links companions, signs device lists.
/// Persist [`to_bytes`](Self::to_bytes) after every change, before publishing the new list.
#[derive(uniffi::Object)]
pub struct Primary {
    pub(crate) inner: Mutex<devices::Primary>,
    /// Units `SqliteStore::persist_primary` took and SQLite did not write, as the device's.
    pub(crate) unpersisted: Mutex<Vec<devices::PrimaryChanges>>,
}

/// The library's redacted `Debug` (account key, list version; never the secret key).
impl std::fmt::Debug for Primary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.lock() {
            Ok(p) => p.fmt(f),
            Err(_) => f.write_str("Primary(<poisoned>)"),
        }
    }
}

/// A new account: its primary role and the primary's device.
#[derive(uniffi::Record)]
pub struct NewAccount {
    /// The account role.
    pub primary: Arc<Primary>,
    /// The primary's own device (device id 1).
    pub device: Arc<Device>,
    /// The device's first one-time prekeys (20 of each kind), to upload beside its
    /// `prekey_bundle` (the relay's `PublishedPreKeys.add`).
    pub prekey_upload: Vec<u8>,
}

/// Creates an account with a fresh account key and a primary device. `config` (the device's
/// policies) and `policy` (the account's, signed into its lists) default to the library's.
#[uniffi::export(default(config = None, policy = None))]
pub fn create_account(
    now: u64,
    config: Option<DeviceConfig>,
    policy: Option<PrimaryPolicy>,
) -> Result<NewAccount, RatchetryError> {
    let mut rng = rng()?;
    let identity = IdentityKeyPair::generate(&mut rng);
    let policy = policy.map_or_else(devices::PrimaryPolicy::default, Into::into);
    let primary = devices::Primary::new(&mut rng, &identity, ts(now), policy);
    let list = primary.device_list().clone();
    let (device, upload) = fanout::Device::new(
        &mut rng,
        ts(now),
        identity,
        PRIMARY_DEVICE,
        list,
        ONE_TIME_PREKEYS,
        device_config(config),
    )?;
    Ok(NewAccount {
        primary: Primary::wrap(primary),
        device: Device::wrap(device),
        prekey_upload: upload.to_bytes(),
    })
}

/// Restores a primary from [`Primary::to_bytes`]; `last_epoch` as for devices (the epoch of
/// the last unit written, kept apart from the bytes; if the app does not know it, use
/// [`restore_primary_from_backup`]). A primary restored from a stale snapshot must resync
/// before it signs again ([`Primary::needs_resync`]).
#[uniffi::export]
pub fn restore_primary(bytes: Vec<u8>, last_epoch: u64) -> Result<Arc<Primary>, RatchetryError> {
    let (primary, _stale) = devices::Primary::restore(&bytes, last_epoch)?;
    Ok(Primary::wrap(primary))
}

/// Restores a primary from bytes the app knows are a backup, or whose last epoch it does not
/// know (a new phone, a reinstall): it signs nothing until [`Primary::resync`] gave it the
/// newest list of its account, so it never signs a list the account already moved past (one
/// naming a companion unlinked after the backup) nor issues a device id twice.
#[uniffi::export]
pub fn restore_primary_from_backup(bytes: Vec<u8>) -> Result<Arc<Primary>, RatchetryError> {
    Ok(Primary::wrap(devices::Primary::restore_from_backup(
        &bytes,
    )?))
}

/// A primary rebuilt from its change records.
#[derive(uniffi::Record)]
pub struct RestoredPrimary {
    /// The primary.
    pub primary: Arc<Primary>,
    /// Whether the records were older than `last_epoch`: it must `resync` before it signs.
    pub stale: bool,
}

/// Rebuilds a primary from every stored record (as [`Primary::take_changes`] yielded them);
/// `last_epoch` is the epoch of the last unit written, kept where a restore of the store does
/// not reach, so that a stale store is detected as [`restore_primary`] detects a stale
/// snapshot. A store restored from a backup, or whose last epoch is unknown:
/// [`Primary::from_backup_records`].
#[uniffi::export]
pub fn restore_primary_from_records(
    records: Vec<StoredRecord>,
    last_epoch: u64,
) -> Result<RestoredPrimary, RatchetryError> {
    let pairs = records
        .iter()
        .filter_map(|r| r.value.as_deref().map(|v| (r.key.as_slice(), v)));
    let (primary, stale) = devices::Primary::restore_from_records(pairs, last_epoch)?;
    Ok(RestoredPrimary {
        primary: Primary::wrap(primary),
        stale,
    })
}

impl Primary {
    pub(crate) fn wrap(primary: devices::Primary) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(primary),
            unpersisted: Mutex::new(Vec::new()),
        })
    }
}

#[uniffi::export]
impl Primary {
    /// Rebuilds a primary from the records of a store that was itself restored from a backup,
    /// or whose last epoch is unknown: as [`restore_primary_from_backup`], it signs nothing
    /// until [`resync`](Self::resync); its next [`take_changes`](Self::take_changes) goes on
    /// from the records (and writes the meta record).
    #[uniffi::constructor]
    pub fn from_backup_records(records: Vec<StoredRecord>) -> Result<Arc<Self>, RatchetryError> {
        let pairs = records
            .iter()
            .filter_map(|r| r.value.as_deref().map(|v| (r.key.as_slice(), v)));
        Ok(Self::wrap(
            devices::Primary::from_records(pairs)?.into_restored(),
        ))
    }

    /// What changed since the last call, as records to write in one transaction (the first
    /// call, and the first after a restore from bytes, replaces all).
    pub fn take_changes(&self) -> Result<Changes, RatchetryError> {
        let mut rng = rng()?;
        Ok(self.inner.lock()?.take_changes(&mut rng).into())
    }

    /// Whether changes are waiting for [`take_changes`](Self::take_changes), or units a
    /// `SqliteStore` took and could not write yet: persist again before publishing.
    pub fn has_changes(&self) -> Result<bool, RatchetryError> {
        let primary = self.inner.lock()?;
        Ok(primary.has_changes() || !self.unpersisted.lock()?.is_empty())
    }

    /// The policy this primary applies (its account part is signed into every list).
    pub fn policy(&self) -> Result<PrimaryPolicy, RatchetryError> {
        Ok(self.inner.lock()?.policy().into())
    }

    /// Whether the companion `device` confirmed its link.
    pub fn is_confirmed(&self, device: u32) -> Result<bool, RatchetryError> {
        Ok(self.inner.lock()?.is_confirmed(DeviceId(device)))
    }

    /// The account key (32 bytes).
    pub fn account_key(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.account().to_bytes().to_vec())
    }

    /// The current signed device list, to publish.
    pub fn device_list(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.device_list().to_bytes())
    }

    /// The current list's version.
    pub fn device_list_version(&self) -> Result<u64, RatchetryError> {
        Ok(self.inner.lock()?.device_list().version())
    }

    /// The state epoch.
    pub fn state_epoch(&self) -> Result<u64, RatchetryError> {
        Ok(self.inner.lock()?.state_epoch())
    }

    /// The whole state as bytes (secret).
    pub fn to_bytes(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.to_bytes().to_vec())
    }

    /// An invitation for one companion (show it as a QR code).
    pub fn invite(&self, now: u64) -> Result<Vec<u8>, RatchetryError> {
        let mut rng = rng()?;
        Ok(self.inner.lock()?.invite(&mut rng, ts(now))?.to_bytes())
    }

    /// Approves a companion's request: a new list with it; returns the approval to send back.
    pub fn approve(&self, now: u64, request: Vec<u8>) -> Result<Vec<u8>, RatchetryError> {
        let request = LinkRequest::from_bytes(&request)?;
        Ok(self.inner.lock()?.approve(ts(now), &request)?.to_bytes())
    }

    /// Records the companion's confirmation; returns its device id.
    pub fn confirm(&self, confirmation: Vec<u8>) -> Result<u32, RatchetryError> {
        let confirmation = LinkConfirmation::from_bytes(&confirmation)?;
        Ok(self.inner.lock()?.confirm(&confirmation)?.0)
    }

    /// Removes a companion; returns the new list to publish.
    pub fn unlink(&self, now: u64, device: u32) -> Result<Vec<u8>, RatchetryError> {
        Ok(self
            .inner
            .lock()?
            .unlink(ts(now), DeviceId(device))?
            .to_bytes())
    }

    /// Re-signs the list (renews the companions' validity); returns it.
    pub fn renew(&self, now: u64) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.renew(ts(now))?.to_bytes())
    }

    /// Whether this primary was restored from a stale snapshot and must
    /// [`resync`](Self::resync) before it signs again.
    pub fn needs_resync(&self) -> Result<bool, RatchetryError> {
        Ok(self.inner.lock()?.needs_resync())
    }

    /// After a stale restore: adopts the newest list of this account the app could fetch,
    /// skips far ahead in versions and device ids, and signs a list of this primary alone
    /// (companions link again); returns it, to publish.
    pub fn resync(&self, now: u64, newest: Vec<u8>) -> Result<Vec<u8>, RatchetryError> {
        let newest = devices::SignedDeviceList::from_bytes(&newest)?;
        Ok(self.inner.lock()?.resync(ts(now), newest)?.to_bytes())
    }
}

/// A companion being linked: made from the primary's invitation, it holds the new device's
/// identity until the approval arrives.
#[derive(uniffi::Object)]
pub struct LinkingCompanion {
    identity: IdentityKeyPair,
    invitation: LinkInvitation,
}

/// Prints the account only: the identity and the invitation's nonce are secret.
impl std::fmt::Debug for LinkingCompanion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkingCompanion")
            .field("account", &self.invitation.account)
            .finish_non_exhaustive()
    }
}

/// A linked companion: its device, and the confirmation to send to the primary.
#[derive(uniffi::Record)]
pub struct LinkedCompanion {
    /// The new device.
    pub device: Arc<Device>,
    /// The confirmation bytes for `Primary.confirm`.
    pub confirmation: Vec<u8>,
    /// The device's first one-time prekeys (20 of each kind), to upload.
    pub prekey_upload: Vec<u8>,
}

#[uniffi::export]
impl LinkingCompanion {
    /// Starts linking from an invitation's bytes; makes the companion's identity key.
    #[uniffi::constructor]
    pub fn new(invitation: Vec<u8>) -> Result<Arc<Self>, RatchetryError> {
        let invitation = LinkInvitation::from_bytes(&invitation)?;
        let mut rng = rng()?;
        Ok(Arc::new(Self {
            identity: IdentityKeyPair::generate(&mut rng),
            invitation,
        }))
    }

    /// The request to send to the primary.
    pub fn request(&self) -> Vec<u8> {
        LinkRequest::new(&self.identity, &self.invitation).to_bytes()
    }

    /// Checks the primary's approval and sets up the device with `config` (the library's
    /// defaults if none; its list limits also check the account's list here).
    #[uniffi::method(default(config = None))]
    pub fn complete(
        &self,
        now: u64,
        approval: Vec<u8>,
        config: Option<DeviceConfig>,
    ) -> Result<LinkedCompanion, RatchetryError> {
        let approval = LinkApproval::from_bytes(&approval)?;
        let config = device_config(config);
        let (list, confirmation) =
            devices::complete_link(&self.identity, &self.invitation, &approval, &config.lists)?;
        let mut rng = rng()?;
        let (device, upload) = fanout::Device::new(
            &mut rng,
            ts(now),
            self.identity.clone(),
            approval.device,
            list,
            ONE_TIME_PREKEYS,
            config,
        )?;
        Ok(LinkedCompanion {
            device: Device::wrap(device),
            confirmation: confirmation.to_bytes(),
            prekey_upload: upload.to_bytes(),
        })
    }
}
