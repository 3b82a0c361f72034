//! The plain JavaScript objects that cross the boundary, their TypeScript types, and their
//! conversions. Keys, ids and envelopes are `Uint8Array`s; `now` is Unix milliseconds.

use js_sys::{Array, Object, Reflect, Uint8Array};
use rand_core::UnwrapErr;
use ratchetry::Timestamp;
use ratchetry::devices::{AccountKey, DeviceAddress, DeviceId, ListCoverage};
use ratchetry::fanout::{EnvelopeId, Event, Outgoing as LibOutgoing, Received as LibReceived};
use ratchetry::group::GroupId;
use wasm_bindgen::prelude::*;

use crate::error::binding;
use crate::rng::BatchRng;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A device of an account. */
export interface Address { account: Uint8Array; device: number }
/** A prekey bundle fetched for a device named in a `needBundles` outcome. */
export interface BundleFor { device: Address; bundle: Uint8Array }
/** The device list one account's part of a send was encrypted for. */
export interface ListCoverage { account: Uint8Array; version: number; digest: Uint8Array }
/** Envelopes to deliver: persist the device first, then ship them. */
export interface Outbox {
  /** For a message or a call key: its id in the sender's sent journal (store the body, or which call, under it). */
  sendId?: number;
  /** For a message (1:1 or group): its id (16 bytes), the same every reading device reports as `id`. */
  messageId?: Uint8Array;
  /**
   * For a message: the device list each account it reaches in full was encrypted for, in
   * account order. Hand it to the relay with the envelopes; a relay serving a newer list
   * refuses the batch: fetch that list, `updateDeviceList`, `notDelivered`, send again.
   */
  coverage: ListCoverage[];
  /** Pairwise envelopes, one per device. */
  envelopes: { to: Address; bytes: Uint8Array }[];
  /** For a group send: the one group envelope and every device it must reach. */
  group?: { bytes: Uint8Array; recipients: Address[] };
  /**
   * Every device this outbox reaches (pairwise or through the group envelope), each once, in
   * address order: what the relay checks `coverage` against (`ServedLists.checkCoverage`).
   * Made when read, from `envelopes` and `group`.
   */
  readonly recipients: Address[];
}
/** The result of a send. For `needBundles` and `needDeviceLists` nothing changed: fetch, then send again. */
export type Outgoing =
  | { kind: "ready"; outbox: Outbox }
  | { kind: "needBundles"; devices: Address[] }
  | { kind: "needDeviceLists"; accounts: Uint8Array[] };
/**
 * What a received envelope was. `id` is the message's id (16 bytes), the same on every device
 * and in the sender's outbox (`messageId`). `resent` is null, or for a message resent on this
 * device's request the id of the envelope it replaces (`envelopeId` of the one it could not
 * read). `reason`s are numbers: a retry's 1 no session, 2 authentication failed, 3 sender
 * key missing, 4 restored from backup; a withholding's 1 blocked, 2 unverified; other values
 * the app's own.
 */
export type Received =
  | { kind: "direct"; sender: Address; id: Uint8Array; body: Uint8Array; resent: Uint8Array | null }
  | { kind: "ownCopy"; sender: Address; sentTo: Uint8Array; id: Uint8Array; body: Uint8Array; resent: Uint8Array | null }
  | { kind: "group"; sender: Address; group: Uint8Array; id: Uint8Array; body: Uint8Array; resent: Uint8Array | null }
  | { kind: "senderKey"; sender: Address; group: Uint8Array; keyId: number }
  | { kind: "historyOffer"; sender: Address; offer: HistoryOffer; groups: Uint8Array[] }
  | { kind: "callKey"; sender: Address; message: CallKeyMessage }
  | { kind: "retryRequest"; sender: Address; sendId: number; reason: number; request: RetryRequest }
  | { kind: "withheld"; sender: Address; group: Uint8Array; keyId: number; reason: number }
  | { kind: "other" };
/** A change a device-list update brought. */
export type DeviceEvent =
  | { kind: "deviceAdded"; device: Address }
  | { kind: "deviceRemoved"; device: Address }
  | { kind: "identityChanged"; device: Address }
  | { kind: "thisDeviceRemoved" }
  | { kind: "thisDeviceExpired" }
  | { kind: "other" };
/** A retry request envelope and the device to ship it to. */
export interface RetryEnvelope { to: Address; bytes: Uint8Array }
/** A new account: its primary role, the primary's own device and its first one-time prekeys. */
export interface NewAccount { primary: Primary; device: Device; upload: PrekeyUpload }
/** A linked companion: its device, the confirmation for `Primary.confirm`, its first one-time prekeys. */
export interface LinkedCompanion { device: Device; confirmation: Uint8Array; upload: PrekeyUpload }
/** A device restored from bytes; `fromBackup` when the bytes were older than `lastEpoch`. */
export interface RestoredDevice { device: Device; fromBackup: boolean }
/** The end of history sealing: the last chunks and the offer (secret: send it with `Device.sendHistoryOffer`). */
export interface SealedHistory { chunks: Uint8Array[]; offer: HistoryOffer }
/**
 * Every error thrown is an `Error` named "RatchetryError" with a stable `code`, and what the
 * error names, set only by the codes that carry it (the guide's table of what to do):
 * `account` whose list to fetch (also the account of `device`), `device` to ask again or warn
 * about, `group` whose members to set, `envelopeId` to acknowledge again, `number` (a prekey
 * or key id, a reason, a history chunk's index).
 */
export interface RatchetryError extends Error {
  name: "RatchetryError"; code: string;
  account?: Uint8Array; device?: Address; group?: Uint8Array; envelopeId?: Uint8Array; number?: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `Address`.
    #[wasm_bindgen(typescript_type = "Address")]
    pub type JsAddress;
    /// `BundleFor[]`.
    #[wasm_bindgen(typescript_type = "BundleFor[]")]
    pub type JsBundles;
    /// `Outgoing`.
    #[wasm_bindgen(typescript_type = "Outgoing")]
    pub type JsOutgoing;
    /// `Received`.
    #[wasm_bindgen(typescript_type = "Received")]
    pub type JsReceived;
    /// `DeviceEvent[]`.
    #[wasm_bindgen(typescript_type = "DeviceEvent[]")]
    pub type JsEvents;
    /// `Uint8Array[]`.
    #[wasm_bindgen(typescript_type = "Uint8Array[]")]
    pub type JsByteArrays;
    /// `NewAccount`.
    #[wasm_bindgen(typescript_type = "NewAccount")]
    pub type JsNewAccount;
    /// `LinkedCompanion`.
    #[wasm_bindgen(typescript_type = "LinkedCompanion")]
    pub type JsLinkedCompanion;
    /// `RestoredDevice`.
    #[wasm_bindgen(typescript_type = "RestoredDevice")]
    pub type JsRestoredDevice;
    /// `RetryEnvelope`.
    #[wasm_bindgen(typescript_type = "RetryEnvelope")]
    pub type JsRetryEnvelope;
    /// `SealedHistory`.
    #[wasm_bindgen(typescript_type = "SealedHistory")]
    pub type JsSealedHistory;
    /// `Address[]`.
    #[wasm_bindgen(typescript_type = "Address[]")]
    pub type JsAddresses;
}

/// The browser's RNG for one call, its first batch fetched now so that a missing source is an
/// error, not a trap inside the library.
pub(crate) fn rng() -> Result<UnwrapErr<BatchRng>, JsValue> {
    BatchRng::new().map_err(|_| {
        binding(
            "binding.rng_unavailable",
            "crypto.getRandomValues is not available",
        )
    })
}

/// The largest integer a JavaScript number holds exactly (`Number.MAX_SAFE_INTEGER`).
pub(crate) const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A whole number from 0 to `MAX_SAFE_INTEGER` (a version, a sequence), else `None`.
pub(crate) fn whole_number(value: f64) -> Option<u64> {
    (value.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&value)).then_some(value as u64)
}

/// `now` from a JavaScript number of Unix milliseconds.
pub(crate) fn ts(now: f64) -> Result<Timestamp, JsValue> {
    if !(0.0..=MAX_SAFE_INTEGER).contains(&now) {
        return Err(binding(
            "binding.bad_time",
            "now must be a non-negative integer of milliseconds",
        ));
    }
    // In range and finite: the conversion is exact for integers and truncates fractions.
    Ok(Timestamp(now as u64))
}

/// An integer argument (an id, a count, an epoch, a reason code) from a JavaScript number,
/// refused unless it is an integer in `0..=max`. Such arguments are taken as numbers and
/// checked here because wasm-bindgen's own `u32` and `u8` arguments wrap: `2 ** 32 + 2`
/// arrives as 2, `undefined` and `NaN` as 0, a reason of 260 as 4.
pub(crate) fn int_in(value: f64, max: u32, what: &'static str) -> Result<u32, JsValue> {
    if value.fract() != 0.0 || !(0.0..=f64::from(max)).contains(&value) {
        return Err(binding("binding.bad_input", what));
    }
    // An integer in range: the conversion is exact.
    Ok(value as u32)
}

/// A `lastEpoch` (the epoch of the state last persisted) from a JavaScript number.
pub(crate) fn epoch(last_epoch: f64) -> Result<u64, JsValue> {
    if !(last_epoch.is_finite() && last_epoch >= 0.0) {
        return Err(binding("binding.bad_input", "lastEpoch must be >= 0"));
    }
    // Finite and non-negative: the conversion saturates above u64::MAX and truncates fractions.
    Ok(last_epoch as u64)
}

/// A u64 counter or time as a JavaScript number (epochs, ids and Unix milliseconds stay far
/// below 2^53).
pub(crate) fn num(n: u64) -> f64 {
    n as f64
}

/// An account key from 32 bytes.
pub(crate) fn account(bytes: &[u8]) -> Result<AccountKey, JsValue> {
    let array: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| binding("binding.bad_length", "an account key is 32 bytes"))?;
    AccountKey::from_bytes(array).map_err(crate::error::decode)
}

/// The key of an account, found among those `device` follows when it can be (a lookup), else
/// parsed and checked (curve arithmetic that was a fifteenth of a 1:1 send).
pub(crate) fn account_for(
    device: &ratchetry::fanout::Device,
    bytes: &[u8],
) -> Result<AccountKey, JsValue> {
    match <&[u8; 32]>::try_from(bytes)
        .ok()
        .and_then(|b| device.followed_account(b))
    {
        Some(key) => Ok(key),
        None => account(bytes),
    }
}

/// A group id from 32 bytes.
pub(crate) fn group(bytes: &[u8]) -> Result<GroupId, JsValue> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| binding("binding.bad_length", "a group id is 32 bytes"))?;
    Ok(GroupId(array))
}

/// A property of a JavaScript object.
pub(crate) fn get(value: &JsValue, name: &str) -> Result<JsValue, JsValue> {
    Reflect::get(value, &name.into())
        .map_err(|_| binding("binding.bad_input", "expected an object"))
}

/// The bytes of a `Uint8Array` property.
fn get_bytes(value: &JsValue, name: &str) -> Result<Vec<u8>, JsValue> {
    let v = get(value, name)?;
    v.dyn_into::<Uint8Array>()
        .map(|a| a.to_vec())
        .map_err(|_| binding("binding.bad_input", "expected a Uint8Array"))
}

/// A `Uint8Array[]`'s bytes.
pub(crate) fn byte_arrays(value: &JsValue) -> Result<Vec<Vec<u8>>, JsValue> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| binding("binding.bad_input", "expected an array"))?;
    array
        .iter()
        .map(|v| {
            v.dyn_into::<Uint8Array>()
                .map(|a| a.to_vec())
                .map_err(|_| binding("binding.bad_input", "expected a Uint8Array"))
        })
        .collect()
}

/// An `Address` object's device address.
pub(crate) fn address_in(value: &JsValue) -> Result<DeviceAddress, JsValue> {
    let device = get(value, "device")?
        .as_f64()
        .filter(|d| d.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(d))
        .ok_or_else(|| binding("binding.bad_input", "device must be a u32 number"))?;
    Ok(DeviceAddress {
        account: account(&get_bytes(value, "account")?)?,
        device: DeviceId(device as u32),
    })
}

/// An `Address[]`'s device addresses.
pub(crate) fn addresses_in(value: &JsValue) -> Result<Vec<DeviceAddress>, JsValue> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| binding("binding.bad_input", "expected an array of Address"))?;
    array.iter().map(|a| address_in(&a)).collect()
}

/// `BundleFor[]` as (address, bundle bytes) pairs.
pub(crate) fn bundles_in(value: &JsValue) -> Result<Vec<(DeviceAddress, Vec<u8>)>, JsValue> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| binding("binding.bad_input", "expected an array of BundleFor"))?;
    array
        .iter()
        .map(|b| Ok((address_in(&get(&b, "device")?)?, get_bytes(&b, "bundle")?)))
        .collect()
}

/// A `ListCoverage[]`'s entries (an outbox's `coverage`, as the relay checks it).
pub(crate) fn coverage_in(value: &JsValue) -> Result<Vec<ListCoverage>, JsValue> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| binding("binding.bad_input", "expected an array of ListCoverage"))?;
    array
        .iter()
        .map(|c| {
            let version = get(&c, "version")?
                .as_f64()
                .and_then(whole_number)
                .ok_or_else(|| binding("binding.bad_input", "version must be a whole number"))?;
            let digest = get_bytes(&c, "digest")?
                .try_into()
                .map_err(|_| binding("binding.bad_length", "a list digest is 32 bytes"))?;
            Ok(ListCoverage {
                account: account(&get_bytes(&c, "account")?)?,
                version,
                digest,
            })
        })
        .collect()
}

/// A plain object from (name, value) pairs.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (name, value) in fields {
        // Defining a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &(*name).into(), value);
    }
    o
}

/// Bytes as a new `Uint8Array`.
pub(crate) fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

/// An array of byte arrays.
pub(crate) fn byte_array_list(list: &[Vec<u8>]) -> JsValue {
    list.iter().map(|b| bytes(b)).collect::<Array>().into()
}

// The objects every message makes, built in JavaScript by one call each: from Rust, each field
// is a crossing of its own (and its name a string decoded on every object), which made building
// an outbox a quarter of a 1:1 send. The byte arguments arrive as views of wasm memory, copied
// (`slice`) before the call returns.
#[wasm_bindgen(inline_js = "
export function address(account, device) {
  return { account: account.slice(), device };
}
export function envelope(account, device, bytes) {
  return { to: { account: account.slice(), device }, bytes: bytes.slice() };
}
export function coverage(account, version, digest) {
  return { account: account.slice(), version, digest: digest.slice() };
}
export function ready(envelopes, coverage, sendId, messageId, group) {
  const outbox = { envelopes, coverage };
  if (sendId !== undefined) outbox.sendId = sendId;
  if (messageId !== undefined) outbox.messageId = messageId;
  if (group !== undefined) outbox.group = group;
  Object.defineProperty(outbox, 'recipients', { enumerable: true, get: recipients });
  return { kind: 'ready', outbox };
}
// An outbox's `recipients`, made when read (a relay's check needs them, a sender does not),
// from the addresses it holds: each device once, in the library's address order (account
// bytes, then device id), as `Outbox::recipients` gives them.
function recipients() {
  const order = (a, b) => {
    for (let i = 0; i < a.account.length; i++) {
      if (a.account[i] !== b.account[i]) return a.account[i] - b.account[i];
    }
    return a.device - b.device;
  };
  const all = this.envelopes.map((e) => e.to).concat(this.group ? this.group.recipients : []);
  all.sort(order);
  return all
    .filter((a, i) => i === 0 || order(all[i - 1], a) !== 0)
    .map((a) => ({ account: a.account.slice(), device: a.device }));
}
export function direct(account, device, id, body, resent) {
  return {
    kind: 'direct',
    sender: { account: account.slice(), device },
    id: id.slice(),
    body: body.slice(),
    resent,
  };
}
")]
extern "C" {
    #[wasm_bindgen(js_name = address)]
    fn js_address(account: &[u8], device: u32) -> JsValue;
    #[wasm_bindgen(js_name = envelope)]
    fn js_envelope(account: &[u8], device: u32, bytes: &[u8]) -> JsValue;
    #[wasm_bindgen(js_name = coverage)]
    fn js_coverage(account: &[u8], version: f64, digest: &[u8]) -> JsValue;
    #[wasm_bindgen(js_name = ready)]
    fn js_ready(
        envelopes: Array,
        coverage: Array,
        send_id: JsValue,
        message_id: JsValue,
        group: JsValue,
    ) -> Object;
    #[wasm_bindgen(js_name = direct)]
    fn js_direct(account: &[u8], device: u32, id: &[u8], body: &[u8], resent: JsValue) -> Object;
}

/// An `Address` object.
pub(crate) fn address_out(a: DeviceAddress) -> JsValue {
    js_address(&a.account.to_bytes(), a.device.0)
}

/// An `Outgoing` object.
pub(crate) fn outgoing(o: LibOutgoing) -> JsOutgoing {
    let value = match o {
        LibOutgoing::Ready(outbox) => {
            let envelopes: Array = outbox
                .envelopes
                .iter()
                .map(|(to, b)| js_envelope(&to.account.to_bytes(), to.device.0, b))
                .collect();
            let coverage: Array = outbox
                .coverage
                .iter()
                .map(|c| js_coverage(&c.account.to_bytes(), num(c.version), &c.digest))
                .collect();
            let group = outbox.group.as_ref().map_or(JsValue::UNDEFINED, |(b, to)| {
                let recipients: Array = to.iter().map(|a| address_out(*a)).collect();
                object(&[("bytes", bytes(b)), ("recipients", recipients.into())]).into()
            });
            js_ready(
                envelopes,
                coverage,
                outbox
                    .send_id
                    .map_or(JsValue::UNDEFINED, |id| num(id.0).into()),
                outbox
                    .message_id
                    .map_or(JsValue::UNDEFINED, |id| bytes(&id.0)),
                group,
            )
        }
        LibOutgoing::NeedBundles(devices) => {
            let list: Array = devices.iter().map(|a| address_out(*a)).collect();
            object(&[("kind", "needBundles".into()), ("devices", list.into())])
        }
        LibOutgoing::NeedDeviceLists(accounts) => {
            let list: Array = accounts.iter().map(|a| bytes(&a.to_bytes())).collect();
            object(&[
                ("kind", "needDeviceLists".into()),
                ("accounts", list.into()),
            ])
        }
    };
    JsValue::from(value).unchecked_into()
}

/// A `Received` object.
pub(crate) fn received(r: LibReceived) -> JsReceived {
    let value = match r {
        LibReceived::Direct {
            from,
            id,
            body,
            resent,
        } => js_direct(
            &from.account.to_bytes(),
            from.device.0,
            &id.0,
            &body,
            resent_out(resent),
        ),
        LibReceived::OwnCopy {
            from,
            sent_to,
            id,
            body,
            resent,
        } => object(&[
            ("kind", "ownCopy".into()),
            ("sender", address_out(from)),
            ("sentTo", bytes(&sent_to.to_bytes())),
            ("id", bytes(&id.0)),
            ("body", bytes(&body)),
            ("resent", resent_out(resent)),
        ]),
        LibReceived::Group {
            from,
            group,
            id,
            body,
            resent,
        } => object(&[
            ("kind", "group".into()),
            ("sender", address_out(from)),
            ("group", bytes(&group.0)),
            ("id", bytes(&id.0)),
            ("body", bytes(&body)),
            ("resent", resent_out(resent)),
        ]),
        LibReceived::SenderKey {
            from,
            group,
            key_id,
        } => object(&[
            ("kind", "senderKey".into()),
            ("sender", address_out(from)),
            ("group", bytes(&group.0)),
            ("keyId", key_id.0.into()),
        ]),
        LibReceived::HistoryOffer {
            from,
            offer,
            groups,
        } => object(&[
            ("kind", "historyOffer".into()),
            ("sender", address_out(from)),
            ("offer", crate::history::HistoryOffer::wrap(offer)),
            (
                "groups",
                groups.iter().map(|g| bytes(&g.0)).collect::<Array>().into(),
            ),
        ]),
        LibReceived::CallKey { from, message } => object(&[
            ("kind", "callKey".into()),
            ("sender", address_out(from)),
            ("message", crate::call::key_message(message)),
        ]),
        LibReceived::RetryRequest(request) => object(&[
            ("kind", "retryRequest".into()),
            ("sender", address_out(request.from)),
            ("sendId", num(request.send_id.0).into()),
            ("reason", crate::retry::reason_code(request.reason).into()),
            ("request", crate::RetryRequest { inner: request }.into()),
        ]),
        LibReceived::Withheld {
            from,
            group,
            key_id,
            reason,
        } => object(&[
            ("kind", "withheld".into()),
            ("sender", address_out(from)),
            ("group", bytes(&group.0)),
            ("keyId", key_id.0.into()),
            ("reason", crate::groups::withheld_code(reason).into()),
        ]),
        _ => object(&[("kind", "other".into())]),
    };
    JsValue::from(value).unchecked_into()
}

/// A resend's replaced envelope id, or null.
fn resent_out(resent: Option<EnvelopeId>) -> JsValue {
    resent.map_or(JsValue::NULL, |id| bytes(&id.0))
}

/// A `DeviceEvent[]` array.
pub(crate) fn events(list: Vec<Event>) -> JsEvents {
    let array: Array = list
        .into_iter()
        .map(|e| {
            let (kind, device) = match e {
                Event::DeviceAdded(a) => ("deviceAdded", Some(a)),
                Event::DeviceRemoved(a) => ("deviceRemoved", Some(a)),
                Event::IdentityChanged(a) => ("identityChanged", Some(a)),
                Event::ThisDeviceRemoved => ("thisDeviceRemoved", None),
                Event::ThisDeviceExpired => ("thisDeviceExpired", None),
                _ => ("other", None),
            };
            let o = object(&[("kind", kind.into())]);
            if let Some(a) = device {
                let _ = Reflect::set(&o, &"device".into(), &address_out(a));
            }
            JsValue::from(o)
        })
        .collect();
    JsValue::from(array).unchecked_into()
}
