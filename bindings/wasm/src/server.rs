//! What a relay runs (`ratchetry::server`), for a server written in JavaScript (Node, Deno, a
//! worker) or a test relay in the page: `ServedLists`, the device lists it serves and the
//! coverage check of each batch against them, and `PublishedPreKeys`, one device's uploaded
//! prekeys handed out one bundle at a time. Nothing here is trusted by a device; it serves an
//! honest relay. Every method is transactional: when it throws, nothing changed.

use std::collections::BTreeMap;

use ratchetry::PreKeyBundle;
use ratchetry::devices::{AccountKey, ListLimits, SignedDeviceList, VerifiedDeviceList};
use ratchetry::server;
use ratchetry::x3dh::OneTimePreKeys;
use wasm_bindgen::prelude::*;

use crate::config::{JsListLimits, list_limits};
use crate::convert::{
    JsAddress, JsAddresses, JsByteArrays, address_in, address_out, addresses_in, byte_arrays,
    coverage_in, num, object, ts,
};
use crate::error;

#[wasm_bindgen(typescript_custom_section)]
const TS_SERVER: &'static str = r#"
/** How many one-time keys of each kind a device's pools hold. */
export interface PoolCounts {
  /** X25519 one-time prekeys. */
  oneTime: number;
  /** ML-KEM one-time prekeys. */
  kem: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `ListCoverage[]`.
    #[wasm_bindgen(typescript_type = "ListCoverage[]")]
    pub type JsCoverage;
    /// `PoolCounts`.
    #[wasm_bindgen(typescript_type = "PoolCounts")]
    pub type JsPoolCounts;
}

/// The device lists a relay serves, one per account, each verified when published (its
/// account's signature, no rollback against the one held). To persist them, store each
/// account's `list(account)` and publish them again after a restart.
#[wasm_bindgen]
pub struct ServedLists {
    lists: BTreeMap<AccountKey, VerifiedDeviceList>,
    limits: ListLimits,
}

#[wasm_bindgen]
impl ServedLists {
    /// No lists yet. `limits` (`{ maxCompanions }`) is the ceiling on an account's signed
    /// policy the relay accepts (the library's default if absent).
    #[wasm_bindgen(constructor)]
    pub fn new(limits: Option<JsListLimits>) -> Result<ServedLists, JsValue> {
        Ok(Self {
            lists: BTreeMap::new(),
            limits: list_limits(&limits.map_or(JsValue::UNDEFINED, Into::into), "limits")?,
        })
    }

    /// Accepts `account`'s newly signed list (from its primary): it must verify for that
    /// account and not roll back the list held. Returns its version.
    pub fn publish(&mut self, account: &[u8], list: &[u8]) -> Result<f64, JsValue> {
        let account = crate::convert::account(account)?;
        let signed = SignedDeviceList::from_bytes(list).map_err(error::decode)?;
        let verified = signed
            .verify(&account, self.lists.get(&account), &self.limits)
            .map_err(error::device)?;
        let version = verified.version();
        self.lists.insert(account, verified);
        Ok(num(version))
    }

    /// The list served for `account`, or `undefined` (what a device-list fetch returns).
    pub fn list(&self, account: &[u8]) -> Result<Option<Vec<u8>>, JsValue> {
        let account = crate::convert::account(account)?;
        Ok(self.lists.get(&account).map(VerifiedDeviceList::to_bytes))
    }

    /// Checks a batch from `sender` to `recipients` (an outbox's `recipients`) against the
    /// lists served: `coverage` (the outbox's) must name each recipient account once, under
    /// the very list served (else `server.stale_list`: the sender fetches it, calls
    /// `notDelivered` and sends again), and the batch must reach exactly each covered
    /// account's active devices. With `coverage` empty (call keys, history offers, retry
    /// answers), each recipient need only be an active listed device.
    #[wasm_bindgen(js_name = checkCoverage)]
    pub fn check_coverage(
        &self,
        now: f64,
        sender: JsAddress,
        recipients: JsAddresses,
        coverage: JsCoverage,
    ) -> Result<(), JsValue> {
        let now = ts(now)?;
        let sender = address_in(&sender)?;
        let recipients = addresses_in(&recipients)?;
        let coverage = coverage_in(&coverage)?;
        server::check_coverage(&sender, &recipients, &coverage, |a| self.lists.get(a), now)
            .map_err(|e| error::lib(ratchetry::Error::Server(e)))
    }
}

impl ServedLists {
    /// The list served for `account`, or `server.unknown_account`.
    fn get(&self, account: &AccountKey) -> Result<&VerifiedDeviceList, JsValue> {
        self.lists.get(account).ok_or_else(|| {
            error::lib(ratchetry::Error::Server(
                ratchetry::ServerError::UnknownAccount(*account),
            ))
        })
    }
}

/// One device's published prekeys as its relay keeps them: the base bundle (signed prekey,
/// last-resort ML-KEM prekey) and pools of one-time keys, each handed out in one bundle only.
/// Public keys only. Persist `base()`, `pooled()` and `accepted()` after every change (before
/// handing out a bundle), and rebuild with `PublishedPreKeys.fromParts`.
#[wasm_bindgen]
pub struct PublishedPreKeys {
    inner: server::PublishedPreKeys,
}

#[wasm_bindgen]
impl PublishedPreKeys {
    /// Starts a device's keys from its base upload (`Device.prekeyBundle()`, with no one-time
    /// prekey), checked against its account's list in `lists`: the device must be active there
    /// with the bundle's identity key, and the bundle must verify.
    #[wasm_bindgen(constructor)]
    pub fn new(
        now: f64,
        device: JsAddress,
        base: &[u8],
        lists: &ServedLists,
    ) -> Result<PublishedPreKeys, JsValue> {
        let now = ts(now)?;
        let device = address_in(&device)?;
        let base = PreKeyBundle::from_bytes(base).map_err(error::decode)?;
        let list = lists.get(&device.account)?;
        let inner = server::PublishedPreKeys::new(device, base, list, now).map_err(error::lib)?;
        Ok(Self { inner })
    }

    /// Rebuilds stored keys from `base()`, `pooled()` and `accepted()`, checked as when they
    /// were uploaded.
    #[wasm_bindgen(js_name = fromParts)]
    pub fn from_parts(
        now: f64,
        device: JsAddress,
        base: &[u8],
        pooled: &[u8],
        accepted: JsByteArrays,
        lists: &ServedLists,
    ) -> Result<PublishedPreKeys, JsValue> {
        let now = ts(now)?;
        let device = address_in(&device)?;
        let accepted = byte_arrays(&accepted.into())?
            .iter()
            .map(|a| server::AcceptedUpload::from_bytes(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(error::decode)?;
        let base = PreKeyBundle::from_bytes(base).map_err(error::decode)?;
        let pooled = OneTimePreKeys::from_bytes(pooled).map_err(error::decode)?;
        let list = lists.get(&device.account)?;
        let inner =
            server::PublishedPreKeys::from_parts(device, base, &pooled, &accepted, list, now)
                .map_err(error::lib)?;
        Ok(Self { inner })
    }

    /// Replaces the base after the device rotated its signed prekey (same checks, same
    /// identity key); the pools stay.
    #[wasm_bindgen(js_name = replaceBase)]
    pub fn replace_base(
        &mut self,
        now: f64,
        base: &[u8],
        lists: &ServedLists,
    ) -> Result<(), JsValue> {
        let now = ts(now)?;
        let base = PreKeyBundle::from_bytes(base).map_err(error::decode)?;
        let list = lists.get(&self.inner.address().account)?;
        self.inner.replace_base(base, list, now).map_err(error::lib)
    }

    /// Adds a one-time key upload (a `PrekeyUpload`'s `bytes`: `createAccount`'s,
    /// `LinkingCompanion.complete`'s, `Device.generateOneTimePrekeys`'), all or nothing:
    /// no key of the last 16 uploads accepted (`server.duplicate_prekey_id`: an upload sent
    /// again, whose keys may have been handed out already), signatures verify, no id already
    /// pooled, within the pool bound.
    pub fn add(&mut self, upload: &[u8]) -> Result<(), JsValue> {
        let upload = OneTimePreKeys::from_bytes(upload).map_err(error::decode)?;
        self.inner.add(&upload).map_err(error::lib)
    }

    /// A bundle for one session (what a bundle fetch returns): the base with one one-time key
    /// of each kind taken from the pools, or the last-resort ML-KEM prekey alone when they
    /// are empty. A key taken is never served again.
    #[wasm_bindgen(js_name = takeBundle)]
    pub fn take_bundle(&mut self) -> Vec<u8> {
        self.inner.take_bundle().to_bytes()
    }

    /// The device.
    pub fn address(&self) -> JsAddress {
        address_out(self.inner.address()).unchecked_into()
    }

    /// The base upload's bytes (to store).
    pub fn base(&self) -> Vec<u8> {
        self.inner.base().to_bytes()
    }

    /// The pooled keys in upload form (to store).
    pub fn pooled(&self) -> Vec<u8> {
        self.inner.pooled().to_bytes()
    }

    /// What the pools remember of the last 16 uploads accepted (16 bytes each: their ids,
    /// oldest first), to store with them: their keys uploaded again are refused.
    pub fn accepted(&self) -> JsByteArrays {
        self.inner
            .accepted()
            .iter()
            .map(|a| JsValue::from(js_sys::Uint8Array::from(&a.to_bytes()[..])))
            .collect::<js_sys::Array>()
            .unchecked_into()
    }

    /// One-time keys of each kind left (`{ oneTime, kem }`): ask the device for more when
    /// low.
    pub fn remaining(&self) -> JsPoolCounts {
        let (one_time, kem) = self.inner.remaining();
        JsValue::from(object(&[
            ("oneTime", num(one_time as u64).into()),
            ("kem", num(kem as u64).into()),
        ]))
        .unchecked_into()
    }
}
