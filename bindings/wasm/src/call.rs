//! End-to-end call keys: a call's state (`Call`), the key message a device sends for each
//! epoch (`CallKeyMessage`), the SRTP keys derived from it (`SrtpKeys`), and the device's
//! sends of key messages. Each carries a secret, so each is a class: its bytes and keys come
//! only from explicit methods (`toBytes()`, `masterKey()`, `masterSalt()`), and neither
//! `String(x)`, `JSON.stringify(x)` nor `console.log(x)` shows them.

use js_sys::Array;
use ratchetry::calls::{self, CallConfig, CallKind};
use wasm_bindgen::prelude::*;

use crate::config::{JsCallConfig, call_config};
use crate::convert::{
    JsAddress, JsAddresses, JsOutgoing, address_in, address_out, addresses_in, get, int_in, object,
    outgoing, rng, ts,
};
use crate::device::Device;
use crate::error::{self, binding};

#[wasm_bindgen(typescript_custom_section)]
const TS_CALLS: &'static str = r#"
/** What kind of call, which decides its participant cap. */
export type CallKind = "oneToOne" | "group" | "room";
/** A call restored from bytes; `fromBackup` when the bytes were older than `lastEpoch`. */
export interface RestoredCall { call: Call; fromBackup: boolean }
/**
 * What the app keeps of a call where a restore from backup does not reach: its `manager` and
 * the highest `epoch` persisted (a call's `manager` and `epoch`).
 */
export interface KeptCall { manager: Address; epoch: number }
"#;

#[wasm_bindgen]
extern "C" {
    /// `CallKind`.
    #[wasm_bindgen(typescript_type = "CallKind")]
    pub type JsCallKind;
    /// `RestoredCall`.
    #[wasm_bindgen(typescript_type = "RestoredCall")]
    pub type JsRestoredCall;
    /// `KeptCall`.
    #[wasm_bindgen(typescript_type = "KeptCall")]
    pub type JsKeptCall;
}

/// A `KeptCall` object.
fn kept_in(value: &JsValue) -> Result<calls::KeptCall, JsValue> {
    let epoch = get(value, "epoch")?
        .as_f64()
        .filter(|e| e.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(e))
        .ok_or_else(|| binding("binding.bad_input", "epoch must be a u32 number"))?;
    Ok(calls::KeptCall {
        manager: address_in(&get(value, "manager")?)?,
        epoch: epoch as u32,
    })
}

fn kind_in(kind: &JsValue) -> Result<CallKind, JsValue> {
    match kind.as_string().as_deref() {
        Some("oneToOne") => Ok(CallKind::OneToOne),
        Some("group") => Ok(CallKind::Group),
        Some("room") => Ok(CallKind::Room),
        _ => Err(binding(
            "binding.bad_input",
            "a call kind is \"oneToOne\", \"group\" or \"room\"",
        )),
    }
}

fn kind_out(kind: CallKind) -> JsCallKind {
    JsValue::from_str(match kind {
        CallKind::OneToOne => "oneToOne",
        CallKind::Group => "group",
        CallKind::Room => "room",
    })
    .unchecked_into()
}

fn addresses_out(list: &[ratchetry::devices::DeviceAddress]) -> JsAddresses {
    let array: Array = list.iter().map(|a| address_out(*a)).collect();
    JsValue::from(array).unchecked_into()
}

/// A call's secret for one epoch, its manager and its participants, as a device sends it
/// (`Device.sendCallKey`) and receives it (`{ kind: "callKey", message }`). Secret: its
/// bytes (`toBytes()`) travel only inside pairwise sessions.
#[wasm_bindgen]
pub struct CallKeyMessage {
    pub(crate) inner: calls::CallKeyMessage,
}

#[wasm_bindgen]
impl CallKeyMessage {
    /// Parses a key message's bytes (as `toBytes()` wrote them).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<CallKeyMessage, JsValue> {
        let inner = calls::CallKeyMessage::from_bytes(bytes).map_err(error::decode)?;
        Ok(Self { inner })
    }

    /// The call's id (16 bytes).
    #[wasm_bindgen(getter)]
    pub fn call(&self) -> Vec<u8> {
        self.inner.call().0.to_vec()
    }

    /// The epoch this secret belongs to.
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> u32 {
        self.inner.epoch()
    }

    /// The call's kind.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> JsCallKind {
        kind_out(self.inner.kind())
    }

    /// The device that manages the call's keys.
    #[wasm_bindgen(getter)]
    pub fn manager(&self) -> JsAddress {
        address_out(self.inner.manager()).unchecked_into()
    }

    /// The bytes (secret: they hold the epoch's secret).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }
}

/// An SRTP master key and salt (`AEAD_AES_256_GCM`, RFC 7714): what one participant sends
/// media with in the current epoch. Secret: only `masterKey()` and `masterSalt()` give them.
#[wasm_bindgen]
pub struct SrtpKeys {
    inner: calls::SrtpKeys,
}

#[wasm_bindgen]
impl SrtpKeys {
    /// The 32-byte SRTP master key (secret).
    #[wasm_bindgen(js_name = masterKey)]
    pub fn master_key(&self) -> Vec<u8> {
        self.inner.master_key().to_vec()
    }

    /// The 12-byte SRTP master salt (secret).
    #[wasm_bindgen(js_name = masterSalt)]
    pub fn master_salt(&self) -> Vec<u8> {
        self.inner.master_salt().to_vec()
    }
}

/// One call's current epoch as this device (`me`) knows it. The participant caps
/// (`CallConfig`) given when it was made or restored apply to every later step. Persist
/// `toBytes()` (secret) before sending each key message it returns.
#[wasm_bindgen]
pub struct Call {
    inner: calls::Call,
    config: CallConfig,
}

#[wasm_bindgen]
impl Call {
    /// Starts a call this device `me` manages, with `participants` (`me` is added): a fresh
    /// id and epoch-0 secret. Send `keyMessage()` to the participants with
    /// `Device.sendCallKey`.
    pub fn start(
        kind: JsCallKind,
        me: JsAddress,
        participants: JsAddresses,
        config: Option<JsCallConfig>,
    ) -> Result<Call, JsValue> {
        let kind = kind_in(&kind)?;
        let me = address_in(&me)?;
        let participants = addresses_in(&participants)?;
        let config = call_config(&config.map_or(JsValue::UNDEFINED, Into::into))?;
        let mut rng = rng()?;
        let inner =
            calls::Call::start(&mut rng, kind, me, &participants, &config).map_err(error::sync)?;
        Ok(Self { inner, config })
    }

    /// A call this device does not hold yet, as participant `me` learns it from a received
    /// key message that `from` (the received object's `sender`) sent. Never use it for a call
    /// already held: use `apply` / `catchUp`. `kept`: the manager and epoch of this call the
    /// app kept, if the device was restored from a backup older than the call: a key message
    /// of another manager is `sync.not_call_manager`, an older one `sync.stale_call_key` (a
    /// replay; learn the call from the manager's current message).
    #[wasm_bindgen(js_name = fromKeyMessage)]
    pub fn from_key_message(
        me: JsAddress,
        from: JsAddress,
        message: &CallKeyMessage,
        config: Option<JsCallConfig>,
        kept: Option<JsKeptCall>,
    ) -> Result<Call, JsValue> {
        let me = address_in(&me)?;
        let from = address_in(&from)?;
        let config = call_config(&config.map_or(JsValue::UNDEFINED, Into::into))?;
        let message = message.inner.clone();
        let inner = match kept {
            Some(kept) => {
                let kept = kept_in(&kept.into())?;
                calls::Call::from_key_message_kept(me, &from, message, &config, &kept)
            }
            None => calls::Call::from_key_message(me, &from, message, &config),
        }
        .map_err(error::sync)?;
        Ok(Self { inner, config })
    }

    /// Loads `toBytes()`; `lastEpoch` is the highest epoch of this call persisted (0 if
    /// unknown). A stale snapshot gives `fromBackup`: a managed call moves to a fresh epoch
    /// with this device alone (add the others back with `join`); a participant's refuses key
    /// messages older than `lastEpoch`.
    pub fn restore(
        bytes: &[u8],
        last_epoch: f64,
        config: Option<JsCallConfig>,
    ) -> Result<JsRestoredCall, JsValue> {
        let last_epoch = int_in(last_epoch, u32::MAX, "lastEpoch must be from 0 to 2^32 - 1")?;
        let config = call_config(&config.map_or(JsValue::UNDEFINED, Into::into))?;
        let mut rng = rng()?;
        let (inner, from_backup) =
            calls::Call::restore(&mut rng, bytes, last_epoch).map_err(error::lib)?;
        Ok(JsValue::from(object(&[
            ("call", Call { inner, config }.into()),
            ("fromBackup", from_backup.into()),
        ]))
        .unchecked_into())
    }

    /// Moves to the next epoch from a key message of this call that `from` sent. Throws
    /// `sync.call_key_ahead` when epochs were missed (then `catchUp`), `sync.stale_call_key`
    /// for an old or replayed one (drop it), `sync.not_in_call` when this device was removed.
    pub fn apply(&mut self, from: JsAddress, message: &CallKeyMessage) -> Result<(), JsValue> {
        let from = address_in(&from)?;
        self.inner
            .apply(&from, message.inner.clone(), &self.config)
            .map_err(error::sync)
    }

    /// Catches up to any newer epoch of this call, after `apply` threw `sync.call_key_ahead`.
    #[wasm_bindgen(js_name = catchUp)]
    pub fn catch_up(&mut self, from: JsAddress, message: &CallKeyMessage) -> Result<(), JsValue> {
        let from = address_in(&from)?;
        self.inner
            .catch_up(&from, message.inner.clone(), &self.config)
            .map_err(error::sync)
    }

    /// Adds a participant (manager only): the next epoch, whose secret the newcomer cannot
    /// take back to earlier ones. Send the message to every participant, the newcomer too.
    pub fn join(&mut self, participant: JsAddress) -> Result<CallKeyMessage, JsValue> {
        let participant = address_in(&participant)?;
        let mut rng = rng()?;
        let inner = self
            .inner
            .join(&mut rng, participant, &self.config)
            .map_err(error::sync)?;
        Ok(CallKeyMessage { inner })
    }

    /// Removes a participant (manager only): the next epoch with a fresh secret. Send the
    /// message to the remaining participants only.
    pub fn remove(&mut self, participant: JsAddress) -> Result<CallKeyMessage, JsValue> {
        let participant = address_in(&participant)?;
        let mut rng = rng()?;
        let inner = self
            .inner
            .remove(&mut rng, &participant)
            .map_err(error::sync)?;
        Ok(CallKeyMessage { inner })
    }

    /// The current key message (to send, or resend to a participant).
    #[wasm_bindgen(js_name = keyMessage)]
    pub fn key_message(&self) -> CallKeyMessage {
        CallKeyMessage {
            inner: self.inner.key_message().clone(),
        }
    }

    /// The call's id (16 bytes).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> Vec<u8> {
        self.inner.id().0.to_vec()
    }

    /// The current epoch.
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> u32 {
        self.inner.epoch()
    }

    /// The device that manages the call's keys.
    #[wasm_bindgen(getter)]
    pub fn manager(&self) -> JsAddress {
        address_out(self.inner.manager()).unchecked_into()
    }

    /// The participants, ascending.
    #[wasm_bindgen(getter)]
    pub fn participants(&self) -> JsAddresses {
        addresses_out(self.inner.participants())
    }

    /// The SRTP keys `participant` sends with in the current epoch (this device's own, to
    /// send; another's, to receive from it). Throws `sync.not_in_call` for a non-participant.
    #[wasm_bindgen(js_name = srtpKeys)]
    pub fn srtp_keys(&self, participant: JsAddress) -> Result<SrtpKeys, JsValue> {
        let participant = address_in(&participant)?;
        let inner = self.inner.srtp_keys(&participant).map_err(error::sync)?;
        Ok(SrtpKeys { inner })
    }

    /// The state as bytes (secret): load with `Call.restore`.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }
}

#[wasm_bindgen]
impl Device {
    /// Sends a call key message to `devices` (a 1:1 call: the callee's devices and this
    /// account's other devices; a group call: the participants). Keep which call it was
    /// under the outbox's `sendId`: a device that asks for it again is answered with
    /// `answerCallKeyRetry`.
    #[wasm_bindgen(js_name = sendCallKey)]
    pub fn send_call_key(
        &mut self,
        now: f64,
        devices: JsAddresses,
        message: &CallKeyMessage,
    ) -> Result<JsOutgoing, JsValue> {
        let now = ts(now)?;
        let devices = addresses_in(&devices)?;
        let mut rng = rng()?;
        let out = self
            .inner
            .send_call_key(&mut rng, now, &devices, &message.inner)
            .map_err(error::lib)?;
        Ok(outgoing(out))
    }

    /// Answers a retry request for a call key message this device sent (`request.sendId` is
    /// a `sendCallKey` outbox's) with `call` as it is now: the call's current key message,
    /// for the requester alone.
    #[wasm_bindgen(js_name = answerCallKeyRetry)]
    pub fn answer_call_key_retry(
        &mut self,
        now: f64,
        request: &crate::RetryRequest,
        call: &Call,
    ) -> Result<JsOutgoing, JsValue> {
        let now = ts(now)?;
        let mut rng = rng()?;
        let out = self
            .inner
            .answer_call_key_retry(&mut rng, now, &request.inner, &call.inner)
            .map_err(error::lib)?;
        Ok(outgoing(out))
    }
}

/// A received key message as the class, for `Received`.
pub(crate) fn key_message(inner: calls::CallKeyMessage) -> JsValue {
    CallKeyMessage { inner }.into()
}
