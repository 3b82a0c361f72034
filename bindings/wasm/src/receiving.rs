//! A receive stepped by the page: each step decides what to do with an envelope, or names the
//! account whose device list to fetch (on the page's own transport, in its own async style)
//! and apply before stepping again. No callback into JavaScript runs while the device is
//! borrowed.

use ratchetry::driver::{self, Inbound, ReceiveStep};
use wasm_bindgen::prelude::*;

use crate::codes;
use crate::convert::{self, object, rng, ts};
use crate::device::Device;
use crate::error;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/**
 * What to do with a received envelope, once the device's changes are persisted:
 * - `read`: show `message` (what `Device.receive` returns), then acknowledge the envelope;
 * - `duplicate`: already read; acknowledge it again and show nothing new;
 * - `hold`: a group message whose sender key has not arrived: keep the envelope
 *   unacknowledged and receive it again after the next envelopes from `from`;
 * - `askAgain`: unreadable: ship `request` to `to`, acknowledge the envelope and show a
 *   placeholder under `envelopeId(envelope)`; the answer arrives with `resent` set;
 * - `awaitList`: the envelope names a newer device list of `account` than the relay serves
 *   yet: keep it and receive it again once that list is out (drop it after the app's bound);
 * - `awaitMembers`: for a `group` held at a restore from a backup whose members the app has
 *   not set since (`Device.unconfirmedGroups`): keep it and receive it again once
 *   `setGroupMembers` set them;
 * - `dropped`: nothing to show (forged, misdelivered, an account not followed, withheld,
 *   asked for as often as allowed): acknowledge it; `code` and `message` say why, and
 *   `account`, `device`, `group`, `envelopeId`, `number` what the refusal names, as a thrown
 *   `RatchetryError`'s do (the device to warn about for `fanout.identity_mismatch`);
 * - `other`: an outcome a later version adds.
 */
export type Inbound =
  | { kind: "read"; message: Received }
  | { kind: "duplicate"; envelopeId: Uint8Array }
  | { kind: "hold"; from: Address }
  | { kind: "askAgain"; to: Address; request: Uint8Array }
  | { kind: "awaitList"; account: Uint8Array }
  | { kind: "awaitMembers"; group: Uint8Array }
  | { kind: "dropped"; code: string; message: string; account?: Uint8Array; device?: Address; group?: Uint8Array; envelopeId?: Uint8Array; number?: number }
  | { kind: "other" };
/**
 * What a `Receiving.step` asks: act on a `done` receive, or fetch `account`'s current device
 * list, apply it with `Device.updateDeviceList` (or nothing, if the relay has none) and step
 * again; a list refused as `device.rollback` (older than the one held) is nothing newer: step
 * again all the same.
 */
export type ReceiveStep =
  | { kind: "done"; inbound: Inbound }
  | { kind: "needDeviceList"; account: Uint8Array };
"#;

#[wasm_bindgen]
extern "C" {
    /// `ReceiveStep`.
    #[wasm_bindgen(typescript_type = "ReceiveStep")]
    pub type JsReceiveStep;
}

/// The receive of one envelope, stepped by the page: `step` until it is `done`, fetching and
/// applying the device list each `needDeviceList` names. It decides what the library's
/// receive loop decides.
#[wasm_bindgen]
#[derive(Default)]
pub struct Receiving {
    inner: driver::Receiving,
}

#[wasm_bindgen]
impl Receiving {
    /// A receive of one envelope, not yet tried.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Receiving {
        Self::default()
    }

    /// Tries `envelope` (the same one at every step of this receive) on `device`. `stored`:
    /// whether the app's message store already holds a message under this envelope's id
    /// (`envelopeId(envelope)`); an unreadable envelope whose message is stored is a replay,
    /// dropped instead of asked for again. Persist the device's changes before acting on a
    /// `done` outcome. Throws the library's error when the device refuses, and
    /// `driver.unresolved` after a few lists that did not resolve the receive.
    pub fn step(
        &mut self,
        device: &mut Device,
        now: f64,
        envelope: &[u8],
        stored: bool,
    ) -> Result<JsReceiveStep, JsValue> {
        let now = ts(now)?;
        let mut rng = rng()?;
        let step = self
            .inner
            .step(&mut device.inner, &mut rng, now, envelope, |_| stored)
            .map_err(error::drive)?;
        let value = match step {
            ReceiveStep::Done(inbound) => {
                object(&[("kind", "done".into()), ("inbound", inbound_out(inbound))])
            }
            ReceiveStep::NeedDeviceList(account) => object(&[
                ("kind", "needDeviceList".into()),
                ("account", convert::bytes(&account.to_bytes())),
            ]),
        };
        Ok(JsValue::from(value).unchecked_into())
    }
}

/// An `Inbound` object.
fn inbound_out(inbound: Inbound) -> JsValue {
    let value = match inbound {
        Inbound::Read(received) => object(&[
            ("kind", "read".into()),
            ("message", convert::received(received).into()),
        ]),
        Inbound::Duplicate(id) => object(&[
            ("kind", "duplicate".into()),
            ("envelopeId", convert::bytes(&id.0)),
        ]),
        Inbound::Hold { from } => object(&[
            ("kind", "hold".into()),
            ("from", convert::address_out(from)),
        ]),
        Inbound::AskAgain { to, request } => object(&[
            ("kind", "askAgain".into()),
            ("to", convert::address_out(to)),
            ("request", convert::bytes(&request)),
        ]),
        Inbound::AwaitList { account } => object(&[
            ("kind", "awaitList".into()),
            ("account", convert::bytes(&account.to_bytes())),
        ]),
        Inbound::AwaitMembers { group } => object(&[
            ("kind", "awaitMembers".into()),
            ("group", convert::bytes(&group.0)),
        ]),
        Inbound::Dropped(e) => {
            let value = object(&[
                ("kind", "dropped".into()),
                ("code", codes::code(&e).into()),
                ("message", e.to_string().into()),
            ]);
            error::set_subject(&value, codes::subject(&e));
            value
        }
        // An outcome the library adds later.
        _ => object(&[("kind", "other".into())]),
    };
    value.into()
}
