//! One-time prekeys: making them, the upload the server hands out one of each kind per bundle,
//! bundles that carry them, and the counts that tell when to make more.

use js_sys::Array;
use ratchetry::x3dh::{KemPreKeyId, OneTimePreKeyId, OneTimePreKeys};
use wasm_bindgen::prelude::*;

use crate::convert::{bytes, int_in, num, object, rng, ts};
use crate::device::Device;

#[wasm_bindgen(typescript_custom_section)]
const TS_PREKEYS: &'static str = r#"
/**
 * One-time prekeys to upload (public keys only): `bytes` is the upload as the library encodes
 * it; the ids name them for `Device.prekeyBundle(prekeyId, kemPrekeyId)`, one of each kind per
 * bundle, each handed out once.
 */
export interface PrekeyUpload {
  bytes: Uint8Array;
  /** The X25519 one-time prekeys' ids, ascending. */
  prekeyIds: number[];
  /** The ML-KEM one-time prekeys' ids, ascending. */
  kemPrekeyIds: number[];
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `PrekeyUpload`.
    #[wasm_bindgen(typescript_type = "PrekeyUpload")]
    pub type JsPrekeyUpload;
}

/// A `PrekeyUpload` object.
pub(crate) fn upload(keys: &OneTimePreKeys) -> JsPrekeyUpload {
    let ids: Array = keys.keys().iter().map(|k| JsValue::from(k.id.0)).collect();
    let kem: Array = keys
        .kem_keys()
        .iter()
        .map(|k| JsValue::from(k.id.0))
        .collect();
    JsValue::from(object(&[
        ("bytes", bytes(&keys.to_bytes())),
        ("prekeyIds", ids.into()),
        ("kemPrekeyIds", kem.into()),
    ]))
    .unchecked_into()
}

#[wasm_bindgen]
impl Device {
    /// A prekey bundle to publish, with the one-time prekey `prekeyId` and the one-time
    /// ML-KEM prekey `kemPrekeyId` (ids from a `PrekeyUpload`) if this device still holds
    /// them; without them (or once used), the signed prekey alone and the last-resort ML-KEM
    /// prekey. Normally the server assembles bundles from the uploads.
    #[wasm_bindgen(js_name = prekeyBundle)]
    pub fn prekey_bundle(
        &self,
        prekey_id: Option<f64>,
        kem_prekey_id: Option<f64>,
    ) -> Result<Vec<u8>, JsValue> {
        let id = |id: f64| int_in(id, u32::MAX, "a prekey id is from 0 to 2^32 - 1");
        let prekey_id = prekey_id.map(id).transpose()?;
        let kem_prekey_id = kem_prekey_id.map(id).transpose()?;
        Ok(self
            .inner
            .bundle(
                prekey_id.map(OneTimePreKeyId),
                kem_prekey_id.map(KemPreKeyId),
            )
            .to_bytes())
    }

    /// Makes `count` new one-time prekeys of each kind (within the config's caps: fewer, or
    /// none, once they are reached) and returns the upload to publish.
    #[wasm_bindgen(js_name = generateOneTimePrekeys)]
    pub fn generate_one_time_prekeys(
        &mut self,
        now: f64,
        count: f64,
    ) -> Result<JsPrekeyUpload, JsValue> {
        let count = int_in(count, u32::MAX, "count must be an integer >= 0")?;
        let now = ts(now)?;
        let mut rng = rng()?;
        Ok(upload(
            &self.inner.generate_one_time_prekeys(&mut rng, now, count),
        ))
    }

    /// X25519 one-time prekeys made and not yet used: make more when low.
    #[wasm_bindgen(js_name = oneTimePrekeysRemaining)]
    pub fn one_time_prekeys_remaining(&self) -> f64 {
        num(self.inner.one_time_prekeys_remaining() as u64)
    }

    /// ML-KEM one-time prekeys made and not yet used: make more when low.
    #[wasm_bindgen(js_name = oneTimeKemPrekeysRemaining)]
    pub fn one_time_kem_prekeys_remaining(&self) -> f64 {
        num(self.inner.one_time_kem_prekeys_remaining() as u64)
    }

    /// Sessions the current last-resort ML-KEM prekey started: rotate
    /// (`rotateSignedPrekey`) well before the config's `maxLastResortUses`.
    #[wasm_bindgen(js_name = lastResortUses)]
    pub fn last_resort_uses(&self) -> u32 {
        self.inner.last_resort_uses()
    }

    /// Sessions the current signed prekey accepted (every account's share its budget):
    /// rotate (`rotateSignedPrekey`) well before the config's `maxSessionsPerSignedPrekey`.
    #[wasm_bindgen(js_name = signedPrekeySessions)]
    pub fn signed_prekey_sessions(&self) -> u32 {
        self.inner.signed_prekey_sessions()
    }

    /// When the current signed prekey was made (Unix ms): rotate on the app's schedule
    /// counted from here.
    #[wasm_bindgen(js_name = signedPrekeyCreatedAt)]
    pub fn signed_prekey_created_at(&self) -> f64 {
        num(self.inner.signed_prekey_created_at().0)
    }
}
