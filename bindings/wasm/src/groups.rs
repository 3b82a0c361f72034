//! What a device holds of groups, accounts and sessions, and what the app changes there:
//! leaving a group, forgetting an account, sending to a group while withholding its sender key,
//! and taking back a send
//! the relay refused.

use js_sys::Array;
use ratchetry::devices::DeviceAddress;
use ratchetry::fanout::{SendId, WithheldReason};
use wasm_bindgen::prelude::*;

use crate::convert::{
    self, JsAddress, JsAddresses, JsByteArrays, JsOutgoing, account, address_in, addresses_in,
    bytes, outgoing, rng, ts,
};
use crate::device::Device;
use crate::error::{self, binding};

#[wasm_bindgen(typescript_custom_section)]
const TS_WITHHELD: &'static str = r#"
/**
 * A member device a group send withholds its sender key from. `reason`: 1 blocked, 2
 * unverified, other values (0 to 255) the app's own; absent: the device is not told.
 */
export interface WithheldDevice { device: Address; reason?: number }
"#;

#[wasm_bindgen]
extern "C" {
    /// `WithheldDevice[]`.
    #[wasm_bindgen(typescript_type = "WithheldDevice[]")]
    pub type JsWithheldDevices;
}

/// A `WithheldDevice[]`'s devices and reasons.
fn withheld_in(value: &JsValue) -> Result<Vec<(DeviceAddress, Option<WithheldReason>)>, JsValue> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| binding("binding.bad_input", "expected an array of WithheldDevice"))?;
    array
        .iter()
        .map(|w| {
            let device = address_in(&convert::get(&w, "device")?)?;
            let reason = convert::get(&w, "reason")?;
            if reason.is_undefined() || reason.is_null() {
                return Ok((device, None));
            }
            let code = reason
                .as_f64()
                .filter(|r| r.fract() == 0.0 && (0.0..=255.0).contains(r))
                .ok_or_else(|| binding("binding.bad_input", "a reason is a u8 number"))?;
            Ok((device, Some(withheld_reason(code as u8))))
        })
        .collect()
}

/// A withholding reason's number: 1 blocked, 2 unverified, other values the app's own.
pub(crate) fn withheld_code(reason: WithheldReason) -> u8 {
    match reason {
        WithheldReason::Blocked => 1,
        WithheldReason::Unverified => 2,
        WithheldReason::Other(n) => n,
        // A reason the library adds later.
        _ => 0,
    }
}

fn withheld_reason(code: u8) -> WithheldReason {
    match code {
        1 => WithheldReason::Blocked,
        2 => WithheldReason::Unverified,
        n => WithheldReason::Other(n),
    }
}

fn byte_list(list: impl Iterator<Item = JsValue>) -> JsByteArrays {
    JsValue::from(list.collect::<Array>()).unchecked_into()
}

#[wasm_bindgen]
impl Device {
    /// The groups whose members were set here (or a history offer installed), in id order.
    pub fn groups(&self) -> JsByteArrays {
        byte_list(self.inner.groups().map(|g| bytes(&g.0)))
    }

    /// The groups held at a restore from a backup whose members the app has not set since:
    /// nothing is sent to them or read from them until `setGroupMembers` sets them (throws
    /// `fanout.group_unconfirmed`), in id order.
    #[wasm_bindgen(js_name = unconfirmedGroups)]
    pub fn unconfirmed_groups(&self) -> JsByteArrays {
        byte_list(self.inner.unconfirmed_groups().map(|g| bytes(&g.0)))
    }

    /// The member accounts set for `group` (without this device's own), or `undefined` if
    /// the group is not held.
    #[wasm_bindgen(js_name = groupMembers)]
    pub fn group_members(&self, group: &[u8]) -> Result<Option<JsByteArrays>, JsValue> {
        let group = convert::group(group)?;
        Ok(self
            .inner
            .group_members(group)
            .map(|m| byte_list(m.map(|a| bytes(&a.to_bytes())))))
    }

    /// Leaves `group`: its members, this device's sender key and every sender key received
    /// for it are deleted (a history offer never puts it back).
    #[wasm_bindgen(js_name = forgetGroup)]
    pub fn forget_group(&mut self, group: &[u8]) -> Result<(), JsValue> {
        let group = convert::group(group)?;
        self.inner.forget_group(group);
        Ok(())
    }

    /// Forgets an account (not this device's own): its list, its devices' sessions and
    /// sender keys, and the retries pending with them; groups whose sender key one of them
    /// held rotate at their next send. The list's mark stays: followed again, the account is
    /// refused a list older than the one forgotten.
    #[wasm_bindgen(js_name = forgetAccount)]
    pub fn forget_account(&mut self, account_key: &[u8]) -> Result<(), JsValue> {
        let account = account(account_key)?;
        self.inner.forget_account(&account);
        Ok(())
    }

    /// The accounts whose device lists this device follows (its own included).
    pub fn accounts(&self) -> JsByteArrays {
        byte_list(self.inner.accounts().map(|a| bytes(&a.to_bytes())))
    }

    /// Whether a pairwise session with `device` exists.
    #[wasm_bindgen(js_name = hasSession)]
    pub fn has_session(&self, device: JsAddress) -> Result<bool, JsValue> {
        Ok(self.inner.has_session(&address_in(&device)?))
    }

    /// The devices whose current session is classical (migrated from before PQXDH): the
    /// next send to one asks for its bundle and starts a PQXDH session.
    #[wasm_bindgen(js_name = classicalSessions)]
    pub fn classical_sessions(&self) -> JsAddresses {
        let list: Array = self
            .inner
            .classical_sessions()
            .into_iter()
            .map(convert::address_out)
            .collect();
        JsValue::from(list).unchecked_into()
    }

    /// Sends `body` to a group as `sendGroup` does, but gives the sender key to none of the
    /// `withheld` member devices (the group envelope still reaches them). None is ever given a
    /// generation withheld from it: one holding the current key makes it rotate, and so does a
    /// later send that no longer names it. Each named with a `reason` is told, once per key
    /// generation and reason, in the same outbox (it receives `{ kind: "withheld" }`); one
    /// without is not (its bundle may never verify). A device that is not a member device
    /// throws `fanout.not_a_group_device`.
    #[wasm_bindgen(js_name = sendGroupWithholding)]
    pub fn send_group_withholding(
        &mut self,
        now: f64,
        group: &[u8],
        body: &[u8],
        withheld: JsWithheldDevices,
    ) -> Result<JsOutgoing, JsValue> {
        let now = ts(now)?;
        let group = convert::group(group)?;
        let withheld = withheld_in(&withheld)?;
        let mut rng = rng()?;
        let out = self
            .inner
            .send_group_withholding(&mut rng, now, group, body, &withheld)
            .map_err(error::lib)?;
        Ok(outgoing(out))
    }

    /// Tells this device that the outbox of `sendId` did not reach `devices` (the relay
    /// refused the batch, or these envelopes of it): a sender key given to them in that send
    /// no longer counts as held (the group's next send rotates), and they are no longer its
    /// recipients. Then persist, fetch what the relay asked for, and send again. A send no
    /// longer held throws `fanout.unknown_message`.
    #[wasm_bindgen(js_name = notDelivered)]
    pub fn not_delivered(&mut self, send_id: f64, devices: JsAddresses) -> Result<(), JsValue> {
        if !(send_id.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&send_id)) {
            return Err(binding(
                "binding.bad_input",
                "sendId must be a whole number >= 0",
            ));
        }
        let devices = addresses_in(&devices)?;
        self.inner
            .not_delivered(SendId(send_id as u64), &devices)
            .map_err(error::lib)
    }
}
