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
 *   placeholder under `envelopeId(envelope)`; the answer arrives with `resent` set. Keep the
 *   envelope: if no answer is read within a while, ask again with `askAgain(...)`;
 * - `askLater`: unreadable, and its sender cannot be asked yet (the device already waits on
 *   as many answers as it keeps for that account, or in all): keep the envelope
 *   unacknowledged and show nothing; at `at` (Unix ms), or sooner once a resend is read,
 *   receive it again (or `askAgain(...)` it, if you were asking again);
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
  | { kind: "askLater"; at: number }
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
    /// `Inbound`.
    #[wasm_bindgen(typescript_type = "Inbound")]
    pub type JsInbound;
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
    /// whether the app's message store already holds a message read under any of
    /// `envelopeIds(envelope)` (its own id, and the other kind's: a relay can put a read
    /// message's salt in an envelope of the other kind); an unreadable envelope whose message
    /// is stored is a replay, `duplicate` (with the id found) instead of asked for again.
    /// Persist the device's changes before acting on a `done` outcome. Throws the library's error when the device refuses, and
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

/// Asks the sender of `envelope` for it again (the library's `driver::ask_again`): for an
/// envelope held (`hold`) whose sender key never came, with reason 3 (sender key missing),
/// and for one asked for (`askAgain`) whose answer never came.
/// `stored`, as `Receiving.step`'s: whether the store holds a message read under any of
/// `envelopeIds(envelope)`; then it is a replay, `duplicate`, and nothing is asked. Otherwise
/// `askAgain` with the request to ship, `duplicate` for a message the device read,
/// `awaitMembers` for a group unconfirmed since a restore, or `dropped` with the device's
/// refusal. Persist the device's changes before shipping the request.
#[wasm_bindgen(js_name = askAgain)]
pub fn ask_again(
    device: &mut Device,
    now: f64,
    envelope: &[u8],
    reason: f64,
    stored: bool,
) -> Result<JsInbound, JsValue> {
    let reason = convert::int_in(reason, u8::MAX.into(), "reason must be from 0 to 255")?;
    let now = ts(now)?;
    let mut rng = rng()?;
    let inbound = driver::ask_again(
        &mut device.inner,
        &mut rng,
        now,
        envelope,
        crate::retry::reason(reason as u8),
        |_| stored,
    );
    Ok(inbound_out(inbound).unchecked_into())
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
        Inbound::AskLater { at } => object(&[
            ("kind", "askLater".into()),
            ("at", convert::num(at.0).into()),
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
