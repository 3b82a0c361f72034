//! What a relay runs (`ratchetry::server`), for a server written in Kotlin (JVM) or Python:
//! [`ServedLists`], the device lists it serves and the coverage check of each batch against
//! them, and [`PublishedPreKeys`], one device's uploaded prekeys handed out one bundle at a
//! time. Nothing here is trusted by a device; it serves an honest relay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ratchetry::PreKeyBundle;
use ratchetry::devices::{self, AccountKey, SignedDeviceList, VerifiedDeviceList};
use ratchetry::server;
use ratchetry::x3dh::OneTimePreKeys;

use crate::calls::addresses;
use crate::config::ListLimits;
use crate::error::RatchetryError;
use crate::types::{self, Address, ListCoverage, address_in, address_out, coverage_in, ts};

/// The device lists a relay serves, one per account, each verified when published (its
/// account's signature, no rollback against the one held).
#[derive(uniffi::Object)]
pub struct ServedLists {
    lists: Mutex<BTreeMap<AccountKey, VerifiedDeviceList>>,
    limits: devices::ListLimits,
}

/// Prints the number of accounts.
impl std::fmt::Debug for ServedLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lists.lock().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("ServedLists").field("accounts", &n).finish()
    }
}

#[uniffi::export]
impl ServedLists {
    /// No lists yet. `limits` is the ceiling on an account's signed policy the relay accepts
    /// (the library's default if none).
    #[uniffi::constructor(default(limits = None))]
    pub fn new(limits: Option<ListLimits>) -> Arc<Self> {
        Arc::new(Self {
            lists: Mutex::new(BTreeMap::new()),
            limits: limits.map_or_else(devices::ListLimits::default, |l| devices::ListLimits {
                max_companions: l.max_companions,
            }),
        })
    }

    /// Accepts `account`'s newly signed list (from its primary): it must verify for that
    /// account and not roll back the list held. Returns its version.
    pub fn publish(&self, account: Vec<u8>, list: Vec<u8>) -> Result<u64, RatchetryError> {
        let account = types::account(&account)?;
        let signed = SignedDeviceList::from_bytes(&list)?;
        let mut lists = self.lists.lock()?;
        let verified = signed.verify(&account, lists.get(&account), &self.limits)?;
        let version = verified.version();
        lists.insert(account, verified);
        Ok(version)
    }

    /// The list served for `account`, if any (what a device-list fetch returns).
    pub fn list(&self, account: Vec<u8>) -> Result<Option<Vec<u8>>, RatchetryError> {
        let account = types::account(&account)?;
        Ok(self.lists.lock()?.get(&account).map(|l| l.to_bytes()))
    }

    /// Checks a batch from `sender` to `recipients` (an outbox's `recipients`) against the
    /// lists served: `coverage` (the outbox's) must name each recipient account once, under the
    /// very list served (else `server.stale_list`: the sender fetches it and sends again), and
    /// the batch must reach exactly each covered account's active devices. With `coverage`
    /// empty (call keys, history offers, retry answers), each recipient need only be an active
    /// listed device.
    pub fn check_coverage(
        &self,
        now: u64,
        sender: Address,
        recipients: Vec<Address>,
        coverage: Vec<ListCoverage>,
    ) -> Result<(), RatchetryError> {
        let sender = address_in(&sender)?;
        let recipients = addresses(&recipients)?;
        let coverage = coverage
            .iter()
            .map(coverage_in)
            .collect::<Result<Vec<_>, _>>()?;
        let lists = self.lists.lock()?;
        server::check_coverage(&sender, &recipients, &coverage, |a| lists.get(a), ts(now))
            .map_err(|e| ratchetry::Error::Server(e).into())
    }
}

impl ServedLists {
    fn get(&self, account: &AccountKey) -> Result<VerifiedDeviceList, RatchetryError> {
        self.lists.lock()?.get(account).cloned().ok_or_else(|| {
            ratchetry::Error::Server(ratchetry::ServerError::UnknownAccount(*account)).into()
        })
    }
}

/// One device's published prekeys as its relay keeps them: the base bundle (signed prekey,
/// last-resort ML-KEM prekey) and pools of one-time keys, each handed out in one bundle only.
/// Persist [`base`](Self::base), [`pooled`](Self::pooled) and [`accepted`](Self::accepted)
/// after every change (before handing out a bundle), and rebuild with
/// [`from_parts`](Self::from_parts).
#[derive(uniffi::Object)]
pub struct PublishedPreKeys {
    inner: Mutex<server::PublishedPreKeys>,
}

/// Prints the address and pool sizes (all of it is public anyway).
impl std::fmt::Debug for PublishedPreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.lock() {
            Ok(k) => f
                .debug_struct("PublishedPreKeys")
                .field("address", &k.address())
                .field("remaining", &k.remaining())
                .finish(),
            Err(_) => f.write_str("PublishedPreKeys(<poisoned>)"),
        }
    }
}

/// How many one-time keys of each kind a pool holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PoolCounts {
    /// X25519 one-time prekeys.
    pub one_time: u64,
    /// ML-KEM one-time prekeys.
    pub kem: u64,
}

#[uniffi::export]
impl PublishedPreKeys {
    /// Starts a device's keys from its base upload (`Device.prekey_bundle`), checked against
    /// its account's list in `lists`: the device must be active there with the bundle's
    /// identity key, and the bundle must carry no one-time prekey and verify.
    #[uniffi::constructor]
    pub fn new(
        now: u64,
        device: Address,
        base: Vec<u8>,
        lists: Arc<ServedLists>,
    ) -> Result<Arc<Self>, RatchetryError> {
        let device = address_in(&device)?;
        let base = PreKeyBundle::from_bytes(&base)?;
        let list = lists.get(&device.account)?;
        let inner = server::PublishedPreKeys::new(device, base, &list, ts(now))?;
        Ok(Arc::new(Self {
            inner: Mutex::new(inner),
        }))
    }

    /// Rebuilds stored keys from [`base`](Self::base), [`pooled`](Self::pooled) and
    /// [`accepted`](Self::accepted), checked as when they were uploaded.
    #[uniffi::constructor]
    pub fn from_parts(
        now: u64,
        device: Address,
        base: Vec<u8>,
        pooled: Vec<u8>,
        accepted: Vec<Vec<u8>>,
        lists: Arc<ServedLists>,
    ) -> Result<Arc<Self>, RatchetryError> {
        let device = address_in(&device)?;
        let accepted = accepted
            .iter()
            .map(|a| server::AcceptedUpload::from_bytes(a))
            .collect::<Result<Vec<_>, _>>()?;
        let base = PreKeyBundle::from_bytes(&base)?;
        let pooled = OneTimePreKeys::from_bytes(&pooled)?;
        let list = lists.get(&device.account)?;
        let inner =
            server::PublishedPreKeys::from_parts(device, base, &pooled, &accepted, &list, ts(now))?;
        Ok(Arc::new(Self {
            inner: Mutex::new(inner),
        }))
    }

    /// Replaces the base after the device rotated its signed prekey (same checks, same
    /// identity key); the pools stay.
    pub fn replace_base(
        &self,
        now: u64,
        base: Vec<u8>,
        lists: Arc<ServedLists>,
    ) -> Result<(), RatchetryError> {
        let base = PreKeyBundle::from_bytes(&base)?;
        let mut inner = self.inner.lock()?;
        let list = lists.get(&inner.address().account)?;
        inner.replace_base(base, &list, ts(now))?;
        Ok(())
    }

    /// Adds a one-time key upload (`Device.generate_one_time_prekeys`, or a new device's
    /// `prekey_upload`), all or nothing: no key of the last 16 uploads accepted
    /// (`server.duplicate_prekey_id`: an upload sent again, whose keys may have been handed
    /// out already), signatures verify, no id already pooled, within the pool bound.
    pub fn add(&self, upload: Vec<u8>) -> Result<(), RatchetryError> {
        let upload = OneTimePreKeys::from_bytes(&upload)?;
        self.inner.lock()?.add(&upload)?;
        Ok(())
    }

    /// A bundle for one session (what a bundle fetch returns): the base with one one-time key
    /// of each kind taken from the pools, or the last-resort ML-KEM prekey alone when they are
    /// empty. A key taken is never served again.
    pub fn take_bundle(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.take_bundle().to_bytes())
    }

    /// The device.
    pub fn address(&self) -> Result<Address, RatchetryError> {
        Ok(address_out(self.inner.lock()?.address()))
    }

    /// The base upload's bytes (to store).
    pub fn base(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.base().to_bytes())
    }

    /// The pooled keys in upload form (to store).
    pub fn pooled(&self) -> Result<Vec<u8>, RatchetryError> {
        Ok(self.inner.lock()?.pooled().to_bytes())
    }

    /// What the pools remember of the last 16 uploads accepted (16 bytes each: their ids,
    /// oldest first), to store with them: their keys uploaded again are refused.
    pub fn accepted(&self) -> Result<Vec<Vec<u8>>, RatchetryError> {
        Ok(self
            .inner
            .lock()?
            .accepted()
            .iter()
            .map(|a| a.to_bytes().to_vec())
            .collect())
    }

    /// One-time keys of each kind left: ask the device for more when low.
    pub fn remaining(&self) -> Result<PoolCounts, RatchetryError> {
        let (one_time, kem) = self.inner.lock()?.remaining();
        Ok(PoolCounts {
            one_time: one_time as u64,
            kem: kem as u64,
        })
    }
}
