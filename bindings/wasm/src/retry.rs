//! Retries: a device that cannot read an envelope asks its sender to send it again.

use ratchetry::fanout;
use wasm_bindgen::prelude::*;

use crate::convert::{JsAddress, address_out, num};
use crate::error;

/// A retry request another device sent (from a received `{ kind: "retryRequest" }`): answer it
/// with `Device.answerRetry` and the body the app stored under `sendId`.
#[wasm_bindgen]
pub struct RetryRequest {
    pub(crate) inner: fanout::RetryRequest,
}

#[wasm_bindgen]
impl RetryRequest {
    /// The device asking.
    #[wasm_bindgen(getter)]
    pub fn sender(&self) -> JsAddress {
        address_out(self.inner.from).unchecked_into()
    }

    /// The message asked for, as the send's outbox named it.
    #[wasm_bindgen(getter, js_name = sendId)]
    pub fn send_id(&self) -> f64 {
        num(self.inner.send_id.0)
    }

    /// Which answer this would be (1 for the first).
    #[wasm_bindgen(getter)]
    pub fn attempt(&self) -> u8 {
        self.inner.attempt
    }

    /// Why it asks: 1 no session, 2 authentication failed, 3 sender key missing, 4 restored
    /// from backup, other values the requester app's own.
    #[wasm_bindgen(getter)]
    pub fn reason(&self) -> u8 {
        reason_code(self.inner.reason)
    }

    /// Bytes to keep the request while the app fetches the body it asks for (across a
    /// restart): load with `RetryRequest.fromBytes`, then answer as usual (the device checks
    /// the requester's entitlement again).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }

    /// Loads `toBytes()`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<RetryRequest, JsValue> {
        let inner = fanout::RetryRequest::from_bytes(bytes).map_err(error::decode)?;
        Ok(Self { inner })
    }
}

/// A retry reason's number (as `reason` below takes it).
pub(crate) fn reason_code(reason: fanout::RetryReason) -> u8 {
    match reason {
        fanout::RetryReason::NoSession => 1,
        fanout::RetryReason::AuthenticationFailed => 2,
        fanout::RetryReason::SenderKeyMissing => 3,
        fanout::RetryReason::RestoredFromBackup => 4,
        fanout::RetryReason::Other(n) => n,
        // A reason the library adds later: the app's "other" range has no number for it.
        _ => 0,
    }
}

/// A retry reason from its number: 1 no session, 2 authentication failed, 3 sender key
/// missing, 4 restored from backup, other values the app's own.
pub(crate) fn reason(code: u8) -> fanout::RetryReason {
    match code {
        1 => fanout::RetryReason::NoSession,
        2 => fanout::RetryReason::AuthenticationFailed,
        3 => fanout::RetryReason::SenderKeyMissing,
        4 => fanout::RetryReason::RestoredFromBackup,
        n => fanout::RetryReason::Other(n),
    }
}
