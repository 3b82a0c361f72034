//! History sync: the primary seals its history into chunks and offers it to a new companion
//! pairwise; the companion opens the chunks as they arrive.

use ratchetry::history::{self, HistoryOffer};
use wasm_bindgen::prelude::*;

use crate::convert::{JsByteArrays, JsSealedHistory, byte_array_list, bytes, object, rng};
use crate::error;

/// Seals history incrementally: `push` data, then `finish` for the last chunks and the offer.
#[wasm_bindgen]
pub struct HistorySealer {
    inner: history::HistorySealer,
}

#[wasm_bindgen]
impl HistorySealer {
    /// A sealer with a fresh key.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<HistorySealer, JsValue> {
        let mut rng = rng()?;
        Ok(Self {
            inner: history::HistorySealer::new(&mut rng),
        })
    }

    /// Seals more data; returns the chunks completed.
    pub fn push(&mut self, data: &[u8]) -> JsByteArrays {
        byte_array_list(&self.inner.push(data)).unchecked_into()
    }

    /// Seals the rest: `{ chunks, offer }` (the offer is secret: it holds the key). The sealer
    /// is consumed.
    pub fn finish(self) -> JsSealedHistory {
        let (chunks, offer) = self.inner.finish();
        JsValue::from(object(&[
            ("chunks", byte_array_list(&chunks)),
            ("offer", bytes(&offer.to_bytes())),
        ]))
        .unchecked_into()
    }
}

/// Opens sealed history chunks in order.
#[wasm_bindgen]
pub struct HistoryOpener {
    inner: history::HistoryOpener,
}

#[wasm_bindgen]
impl HistoryOpener {
    /// An opener for the history an offer describes.
    #[wasm_bindgen(constructor)]
    pub fn new(offer: &[u8]) -> Result<HistoryOpener, JsValue> {
        let offer = HistoryOffer::from_bytes(offer).map_err(error::decode)?;
        Ok(Self {
            inner: history::HistoryOpener::new(&offer),
        })
    }

    /// Opens the next chunk; returns its plaintext.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, JsValue> {
        self.inner.push(chunk).map_err(error::sync)
    }

    /// Checks that every chunk arrived and the length and digest match. Consumes the opener.
    pub fn finish(self) -> Result<(), JsValue> {
        self.inner.finish().map_err(error::sync)
    }
}
