//! wasm-bindgen bindings for ratchetry's device-level API: what a web companion needs.
//!
//! A thin wrapper (conversion and error mapping only; no protocol logic lives here). From
//! JavaScript:
//!
//! - `createAccount(now)` makes a primary (`Primary`, the account role, and its `Device`); a
//!   web page normally only does that in a demo, since the phone is the primary;
//! - `new LinkingCompanion(invitation)` → `request()` → primary's `approve` →
//!   `complete(now, approval)` links the web companion;
//! - a `Device` follows device lists, sends and receives 1:1 and group messages, receives a
//!   history offer (`HistoryOffer`, `HistoryOpener`), and persists as bytes (`toBytes`,
//!   `Device.restore`) or as change records (`takeChanges`, `Device.fromRecords`; a primary
//!   likewise, `Primary.fromRecords`), each record a `ChangedRecord` whose value shows in no
//!   string form;
//! - calls: `Call` (start, join, remove, apply, catch up, SRTP keys), the `CallKeyMessage` a
//!   device sends (`Device.sendCallKey`) and receives, and the `SrtpKeys` derived; their
//!   secrets come only from explicit methods, never from a string form;
//! - options: `createAccount` and `LinkingCompanion.complete` take a device config, a
//!   primary policy and a one-time prekey count as plain objects, and return the first
//!   one-time prekey upload;
//! - a receive stepped by the page (`Receiving`): each `step` decides what to do with an
//!   envelope (read, duplicate, hold, ask again, await a list, dropped) or names the account
//!   whose device list to fetch and apply first;
//! - a relay in JavaScript: `ServedLists` (verified device lists, the coverage check of each
//!   batch) and `PublishedPreKeys` (one device's uploaded prekeys, one bundle at a time).
//! - state at rest: `sealState` / `openState` under the app's storage key, bound to a slot
//!   and a sequence (a moved blob does not open, an older one is a rollback); `OpenedState`
//!   shows its bytes only through `state()`.
//!
//! Nothing here does I/O: the page moves the bytes, stores the state and passes `now` (Unix
//! milliseconds, e.g. `Date.now()`). Randomness comes from the browser's
//! `crypto.getRandomValues` (getrandom's `wasm_js` backend). Every failure is thrown as a
//! JavaScript `Error` named `RatchetryError` with a stable `code` (see `bindings/codes.rs`) and
//! a readable message; nothing panics across the boundary.

mod call;
#[path = "../../codes.rs"]
mod codes;
mod config;
mod convert;
mod device;
mod error;
mod groups;
mod history;
mod persist;
mod prekeys;
mod primary;
mod receiving;
mod records;
mod retry;
mod rng;
mod server;

pub use call::{Call, CallKeyMessage, SrtpKeys};
pub use device::Device;
pub use history::{HistoryOffer, HistoryOpener, HistorySealer};
pub use persist::{OpenedState, open_state, seal_state};
pub use primary::{LinkingCompanion, Primary, create_account};
pub use receiving::Receiving;
pub use records::ChangedRecord;
pub use retry::RetryRequest;
pub use server::{PublishedPreKeys, ServedLists};

use wasm_bindgen::prelude::*;

/// The safety number of two accounts (60 digits in 12 groups), for people to compare.
#[wasm_bindgen(js_name = safetyNumber)]
pub fn safety_number(ours: &[u8], theirs: &[u8]) -> Result<String, JsValue> {
    let ours = convert::account(ours)?;
    let theirs = convert::account(theirs)?;
    Ok(ratchetry::devices::SafetyNumber::new(&ours, &theirs).to_string())
}

/// The id of an envelope (16 bytes): a resent message's `resent` names the envelope it
/// replaces by it, so the app can match the resend with the envelope it could not read.
#[wasm_bindgen(js_name = envelopeId)]
pub fn envelope_id(envelope: &[u8]) -> Vec<u8> {
    ratchetry::fanout::EnvelopeId::of(envelope).0.to_vec()
}

/// The ids an app may have stored the message of `envelope` under (16 bytes each): for a 1:1
/// or group envelope, its id as either kind of message from its sender with its salt (one is
/// `envelopeId(envelope)`: a relay can put a read message's salt in an envelope of the other
/// kind); for other bytes, its id alone. `Receiving.step`'s and `askAgain`'s `stored` is
/// whether the store holds a message read under any of them.
#[wasm_bindgen(js_name = envelopeIds)]
pub fn envelope_ids(envelope: &[u8]) -> convert::JsByteArrays {
    let ids: js_sys::Array = ratchetry::fanout::EnvelopeId::of_either_kind(envelope)
        .into_iter()
        .map(|id| convert::bytes(&id.0))
        .collect();
    JsValue::from(ids).unchecked_into()
}
