//! One device's published prekeys as its relay keeps them: the base (identity key, signed
//! prekey, last-resort ML-KEM prekey) and pools of one-time keys of each kind, each handed out
//! in exactly one bundle.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::AcceptedUpload;
use crate::devices::{DeviceAddress, VerifiedDeviceList};
use crate::error::{Error, ServerError};
use crate::time::Timestamp;
use crate::x3dh::{
    KemPreKeyPublic, OneTimePreKeyPublic, OneTimePreKeys, PreKeyBundle, verify_kem_prekey,
};

/// One-time keys of each kind a device's pools hold at most.
pub const MAX_POOLED_PREKEYS: usize = 10_000;

/// Uploads a device's pools remember having accepted (the newest), by their ids
/// ([`AcceptedUpload`]): their keys uploaded again (an app that retries an upload whose answer
/// it lost, alone or beside newer keys) are refused, even once they were handed out and left
/// the pools.
pub const REMEMBERED_UPLOADS: usize = 16;

/// A device's published prekeys. Uploads are verified before they are kept: the base bundle's
/// signatures and its identity key against the device's entry in its account's list, every
/// one-time ML-KEM prekey's signature. A bundle taken from here opens at the device, and each
/// one-time key goes into one bundle only.
///
/// To persist it, store [`base`](Self::base)'s bytes, [`pooled`](Self::pooled)'s bytes and
/// the [`accepted`](Self::accepted) uploads, and rebuild with [`from_parts`](Self::from_parts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPreKeys {
    address: DeviceAddress,
    base: PreKeyBundle,
    one_time: BTreeMap<u32, OneTimePreKeyPublic>,
    kem: BTreeMap<u32, KemPreKeyPublic>,
    /// The last [`REMEMBERED_UPLOADS`] uploads accepted, oldest first.
    accepted: Vec<AcceptedUpload>,
}

impl PublishedPreKeys {
    /// Starts a device's keys from its base upload (`Device::bundle(None, None)`: the signed
    /// prekey and the last-resort ML-KEM prekey), checked against `list`, the device's
    /// account's list as the relay serves it: the device must be active there at `now` with
    /// the bundle's identity key.
    pub fn new(
        address: DeviceAddress,
        base: PreKeyBundle,
        list: &VerifiedDeviceList,
        now: Timestamp,
    ) -> Result<Self, Error> {
        check_base(&address, &base, list, now)?;
        Ok(Self {
            address,
            base,
            one_time: BTreeMap::new(),
            kem: BTreeMap::new(),
            accepted: Vec::new(),
        })
    }

    /// Rebuilds stored keys: `base`, `pooled` and `accepted` as [`base`](Self::base),
    /// [`pooled`](Self::pooled) and [`accepted`](Self::accepted) gave them, checked as when
    /// they were uploaded (only the last [`REMEMBERED_UPLOADS`] are kept).
    pub fn from_parts(
        address: DeviceAddress,
        base: PreKeyBundle,
        pooled: &OneTimePreKeys,
        accepted: &[AcceptedUpload],
        list: &VerifiedDeviceList,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let mut keys = Self::new(address, base, list, now)?;
        // Checked with no upload remembered yet (the pooled keys came from remembered ones).
        keys.add(pooled)?;
        let newest = accepted.len().saturating_sub(REMEMBERED_UPLOADS);
        keys.accepted = accepted[newest..].to_vec();
        Ok(keys)
    }

    /// Replaces the base after the device rotated its signed prekey (same checks as
    /// [`new`](Self::new), and the same identity key: a new identity at this address starts
    /// anew with [`new`](Self::new)); the pools stay: one-time keys do not depend on the
    /// signed prekey.
    pub fn replace_base(
        &mut self,
        base: PreKeyBundle,
        list: &VerifiedDeviceList,
        now: Timestamp,
    ) -> Result<(), Error> {
        if base.identity_key() != self.base.identity_key() {
            // A new identity at this address is a new device: start its keys anew, so the old
            // device's one-time keys are never served under it.
            return Err(ServerError::IdentityMismatch(self.address).into());
        }
        check_base(&self.address, &base, list, now)?;
        self.base = base;
        Ok(())
    }

    /// Adds a one-time key upload (`Device::generate_one_time_prekeys`), all or nothing: every
    /// ML-KEM key's signature verifies under the device's identity key, no id is already
    /// pooled nor held by one of the last [`REMEMBERED_UPLOADS`] uploads accepted (their keys
    /// sent again, perhaps handed out already: `DuplicatePreKeyId`), and the pools stay within
    /// [`MAX_POOLED_PREKEYS`].
    pub fn add(&mut self, upload: &OneTimePreKeys) -> Result<(), Error> {
        let Some(ranges) = AcceptedUpload::of(upload) else {
            // Nothing to pool, nothing to remember: an empty upload changes nothing.
            return Ok(());
        };
        if overflows(self.one_time.len(), upload.keys().len())
            || overflows(self.kem.len(), upload.kem_keys().len())
        {
            return Err(ServerError::PoolFull.into());
        }
        let identity = self.base.identity_key();
        for k in upload.kem_keys() {
            if self.kem.contains_key(&k.id.0) || self.accepted.iter().any(|a| a.held_kem(k.id.0)) {
                return Err(ServerError::DuplicatePreKeyId(k.id.0).into());
            }
            verify_kem_prekey(&identity, k)?;
        }
        if let Some(k) = upload.keys().iter().find(|k| {
            self.one_time.contains_key(&k.id.0)
                || self.accepted.iter().any(|a| a.held_one_time(k.id.0))
        }) {
            return Err(ServerError::DuplicatePreKeyId(k.id.0).into());
        }
        self.one_time
            .extend(upload.keys().iter().map(|k| (k.id.0, *k)));
        self.kem
            .extend(upload.kem_keys().iter().map(|k| (k.id.0, k.clone())));
        if self.accepted.len() == REMEMBERED_UPLOADS {
            self.accepted.remove(0);
        }
        self.accepted.push(ranges);
        Ok(())
    }

    /// A bundle for one session: the base with one one-time prekey and one one-time ML-KEM
    /// prekey taken from the pools (lowest ids first), or without a one-time prekey and with
    /// the last-resort ML-KEM prekey when a pool is empty. A key taken is never served again:
    /// persist the pools before handing out the bundle.
    pub fn take_bundle(&mut self) -> PreKeyBundle {
        let one_time = self.one_time.pop_first().map(|(_, k)| k);
        let kem = self
            .kem
            .pop_first()
            .map_or_else(|| self.base.kem_prekey().clone(), |(_, k)| k);
        PreKeyBundle::new(
            self.base.identity_key(),
            self.base.signed_prekey(),
            one_time,
            kem,
        )
    }

    /// The device.
    pub fn address(&self) -> DeviceAddress {
        self.address
    }

    /// The base upload: signed prekey and last-resort ML-KEM prekey.
    pub fn base(&self) -> &PreKeyBundle {
        &self.base
    }

    /// One-time prekeys and one-time ML-KEM prekeys left, to ask the device for more.
    pub fn remaining(&self) -> (usize, usize) {
        (self.one_time.len(), self.kem.len())
    }

    /// The last [`REMEMBERED_UPLOADS`] uploads accepted, oldest first (to store with the
    /// pools, as [`AcceptedUpload::to_bytes`]).
    pub fn accepted(&self) -> &[AcceptedUpload] {
        &self.accepted
    }

    /// The pooled keys, in upload form (to store).
    pub fn pooled(&self) -> OneTimePreKeys {
        OneTimePreKeys::new(
            self.one_time.values().copied().collect(),
            self.kem.values().cloned().collect::<Vec<_>>(),
        )
    }
}

/// Whether adding `adding` keys to a pool of `held` passes the bound.
fn overflows(held: usize, adding: usize) -> bool {
    held + adding > MAX_POOLED_PREKEYS
}

/// A base upload: no one-time prekey, signatures valid, identity key the device's listed one.
fn check_base(
    address: &DeviceAddress,
    base: &PreKeyBundle,
    list: &VerifiedDeviceList,
    now: Timestamp,
) -> Result<(), Error> {
    if base.one_time_prekey().is_some() {
        return Err(ServerError::NotABaseBundle.into());
    }
    if list.account() != address.account {
        return Err(ServerError::UnknownAccount(address.account).into());
    }
    let entry = list.check(address.device, now)?;
    if entry.identity != base.identity_key() {
        return Err(ServerError::IdentityMismatch(*address).into());
    }
    base.clone().verify()?;
    Ok(())
}
